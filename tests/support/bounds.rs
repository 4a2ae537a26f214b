//! Range bounds as the tests use them: which bounds make a range empty (`BTreeMap::range` panics on
//! those, the maps under test must return nothing), the model's answer for any bounds, and a
//! quickcheck bound of each kind.
//!
//! Each test binary that needs it includes it with `mod support { pub mod bounds; }` and uses only
//! part of it, hence the module-wide `dead_code` allowance.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ops::Bound;

use quickcheck::{Arbitrary, Gen};

/// Whether no key can lie within `(lo, hi)`: the start after the end, or equal to it with either end
/// excluded. `BTreeMap::range` panics on such bounds; a scan of the maps under test returns nothing.
pub fn is_empty<K: Ord>(lo: Bound<&K>, hi: Bound<&K>) -> bool {
    match (lo, hi) {
        (Bound::Included(l), Bound::Included(h)) => l > h,
        (Bound::Included(l), Bound::Excluded(h))
        | (Bound::Excluded(l), Bound::Included(h))
        | (Bound::Excluded(l), Bound::Excluded(h)) => l >= h,
        _ => false,
    }
}

/// The pairs of `model` within `(lo, hi)`, ascending: `BTreeMap::range`, except that empty and
/// inverted bounds give nothing instead of a panic (what the maps under test must do).
pub fn model_range<'a, K: Ord, V>(
    model: &'a BTreeMap<K, V>,
    lo: Bound<&K>,
    hi: Bound<&K>,
) -> impl DoubleEndedIterator<Item = (&'a K, &'a V)> {
    (!is_empty(lo, hi))
        .then(|| model.range::<K, _>((lo, hi)))
        .into_iter()
        .flatten()
}

/// `Included(key)`, `Excluded(key)` or `Unbounded`, for `kind % 3` = 0, 1, 2.
pub fn bound_of_kind(kind: u64, key: u64) -> Bound<u64> {
    match kind % 3 {
        0 => Bound::Included(key),
        1 => Bound::Excluded(key),
        _ => Bound::Unbounded,
    }
}

/// A quickcheck bound of each kind with equal odds, at a key drawn by `key` (drawn only for
/// `Included` and `Excluded`).
pub fn arbitrary_bound(g: &mut Gen, key: impl FnOnce(&mut Gen) -> u64) -> Bound<u64> {
    let kind = u8::arbitrary(g) % 3;
    let key = if kind < 2 { key(g) } else { 0 };
    bound_of_kind(kind.into(), key)
}
