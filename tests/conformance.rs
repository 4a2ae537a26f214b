//! One conformance suite for every [`ConcurrentMap`]: the Bw-tree (tiny and default pages) and the
//! three baselines (with node capacities small enough that splits happen every few inserts).
//!
//! Each map gets a module with the same four tests:
//! - `model`: random operation sequences compared op by op against `std`'s `BTreeMap` (quickcheck);
//! - `disjoint_writers`: threads writing disjoint key sets, then an exact check of the contents;
//! - `overlapping_writers_and_scanners`: writers contending on one key range while scanners check
//!   order, bounds, limits, value integrity, and that keys no one removes are never missed;
//! - `edge_keys`: 0 and `u64::MAX` as ordinary keys and as bounds.
// `clippy.toml`'s atomics rule is for the crate's `src/`: tests and tools use std's atomics.
#![allow(clippy::disallowed_types)]

use std::collections::BTreeMap;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicBool, Ordering};

use bwtree::baselines::{CoarseLockMap, LockCouplingBTree, OlcBTree};
use bwtree::{BwTree, ConcurrentMap, Config};
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};

mod support {
    pub mod bounds;
    pub mod rng;
}

use support::bounds::{arbitrary_bound, bound_of_kind, model_range};
use support::rng::Rng;

type Map = dyn ConcurrentMap<u64, u64>;

// ---------------------------------------------------------------------------------------------
// (a) Sequential model test.

/// Keys from a small domain (so operations collide and trees grow several levels with tiny nodes),
/// plus the extreme values.
#[derive(Clone, Copy, Debug)]
struct Key(u64);

impl Arbitrary for Key {
    fn arbitrary(g: &mut Gen) -> Self {
        let domain = *g.choose(&[16u64, 128, 1024]).unwrap();
        match u8::arbitrary(g) % 32 {
            0 => Key(0),
            1 => Key(u64::MAX),
            2 => Key(u64::MAX - 1),
            3 => Key(u64::MAX - u64::arbitrary(g) % domain),
            _ => Key(u64::arbitrary(g) % domain),
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        Box::new(self.0.shrink().map(Key))
    }
}

#[derive(Clone, Debug)]
enum Op {
    Insert(Key, u64),
    Get(Key),
    Remove(Key),
    Scan(Bound<u64>, Bound<u64>, usize),
}

fn bound(g: &mut Gen) -> Bound<u64> {
    arbitrary_bound(g, |g| Key::arbitrary(g).0)
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Self {
        match u8::arbitrary(g) % 20 {
            0..=9 => Op::Insert(Key::arbitrary(g), u64::arbitrary(g)),
            10..=12 => Op::Get(Key::arbitrary(g)),
            13..=16 => Op::Remove(Key::arbitrary(g)),
            _ => Op::Scan(
                bound(g),
                bound(g),
                *g.choose(&[0, 1, 3, 17, usize::MAX]).unwrap(),
            ),
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        match *self {
            Op::Insert(k, v) => Box::new(k.shrink().map(move |k| Op::Insert(k, v))),
            Op::Get(k) => Box::new(k.shrink().map(Op::Get)),
            Op::Remove(k) => Box::new(k.shrink().map(Op::Remove)),
            Op::Scan(..) => Box::new(std::iter::empty()),
        }
    }
}

/// The expected scan result (nothing for empty and inverted bounds).
fn model_scan(
    model: &BTreeMap<u64, u64>,
    lo: Bound<u64>,
    hi: Bound<u64>,
    limit: usize,
) -> Vec<(u64, u64)> {
    model_range(model, lo.as_ref(), hi.as_ref())
        .take(limit)
        .map(|(&k, &v)| (k, v))
        .collect()
}

fn run_model(map: &Map, ops: &[Op]) -> TestResult {
    let mut model = BTreeMap::new();
    for (step, op) in ops.iter().enumerate() {
        let ok = match *op {
            Op::Insert(Key(k), v) => map.insert(k, v) == model.insert(k, v),
            Op::Get(Key(k)) => map.get(&k) == model.get(&k).copied(),
            Op::Remove(Key(k)) => map.remove(&k) == model.remove(&k),
            Op::Scan(lo, hi, limit) => {
                // `scan` appends: start from a non-empty buffer and check the prefix survives.
                let mut out = vec![(7, 7)];
                let n = map.scan(lo.as_ref(), hi.as_ref(), limit, &mut out);
                let expected = model_scan(&model, lo, hi, limit);
                n == expected.len() && out[0] == (7, 7) && out[1..] == expected[..]
            }
        };
        if !ok {
            return TestResult::error(format!(
                "{} diverged from BTreeMap at step {step}: {op:?}",
                map.name()
            ));
        }
    }
    // The final contents, in full.
    let mut out = Vec::new();
    map.scan(Bound::Unbounded, Bound::Unbounded, usize::MAX, &mut out);
    let expected: Vec<(u64, u64)> = model.into_iter().collect();
    if out != expected {
        return TestResult::error(format!("{}: final contents differ", map.name()));
    }
    TestResult::passed()
}

fn check_model(prop: fn(Vec<Op>) -> TestResult) {
    // Long sequences (up to ~600 ops) so that tiny nodes split into trees of several levels.
    QuickCheck::new()
        .rng(Gen::new(600))
        .tests(1000)
        .quickcheck(prop);
}

// ---------------------------------------------------------------------------------------------
// (b) Concurrent stress.

/// A bijection on `u64` that scatters consecutive integers over the whole key space.
fn scatter(i: u64) -> u64 {
    let x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^ (x >> 29)
}

const DISJOINT_THREADS: u64 = 4;
const DISJOINT_KEYS: u64 = 40_000;

/// Each thread inserts, overwrites and removes only keys `scatter(i * THREADS + t)`; afterwards the
/// map must hold exactly the surviving keys with their last values.
fn disjoint_writers(map: &Map) {
    std::thread::scope(|s| {
        for t in 0..DISJOINT_THREADS {
            s.spawn(move || {
                let key = |i: u64| scatter(i * DISJOINT_THREADS + t);
                for i in 0..DISJOINT_KEYS {
                    assert_eq!(map.insert(key(i), i), None, "{}: fresh key {i}", map.name());
                }
                for i in (0..DISJOINT_KEYS).filter(|i| i % 3 == 0) {
                    assert_eq!(map.remove(&key(i)), Some(i), "{}: remove {i}", map.name());
                }
                for i in (0..DISJOINT_KEYS).filter(|i| i % 3 == 1) {
                    assert_eq!(
                        map.insert(key(i), i + 1),
                        Some(i),
                        "{}: overwrite {i}",
                        map.name()
                    );
                }
                for i in 0..DISJOINT_KEYS {
                    let expected = match i % 3 {
                        0 => None,
                        1 => Some(i + 1),
                        _ => Some(i),
                    };
                    assert_eq!(map.get(&key(i)), expected, "{}: own key {i}", map.name());
                }
            });
        }
    });
    let mut expected: Vec<(u64, u64)> = (0..DISJOINT_THREADS)
        .flat_map(|t| {
            (0..DISJOINT_KEYS).filter_map(move |i| {
                let k = scatter(i * DISJOINT_THREADS + t);
                match i % 3 {
                    0 => None,
                    1 => Some((k, i + 1)),
                    _ => Some((k, i)),
                }
            })
        })
        .collect();
    expected.sort_unstable();
    let mut out = Vec::new();
    let n = map.scan(Bound::Unbounded, Bound::Unbounded, usize::MAX, &mut out);
    assert_eq!(n, expected.len(), "{}", map.name());
    assert!(out == expected, "{}: final contents differ", map.name());
}

/// Keys `0..OVERLAP_KEYS`: the even ones are inserted first and never removed (only overwritten);
/// writers insert and remove the odd ones, forcing splits next to the stable keys.
const OVERLAP_KEYS: u64 = 2_048;
const OVERLAP_ROUNDS: u64 = 100;

/// Values carry their key in the upper half, so a torn or misplaced pair is detectable.
fn tagged(key: u64, seq: u64) -> u64 {
    (key << 32) | (seq & 0xFFFF_FFFF)
}

/// A bound of a random kind at a random key around the overlap range.
fn random_bound(rng: &mut Rng) -> Bound<u64> {
    let k = rng.next_u64() % (OVERLAP_KEYS + 16);
    bound_of_kind(rng.next_u64(), k)
}

/// Checks one concurrent scan result: ascending, within bounds, at most `limit`, values tagged with
/// their key, and containing every stable (even) key between the lower bound and where it stopped.
fn check_scan(
    name: &str,
    lo: Bound<u64>,
    hi: Bound<u64>,
    limit: usize,
    n: usize,
    out: &[(u64, u64)],
) {
    assert_eq!(n, out.len(), "{name}: returned count");
    assert!(n <= limit, "{name}: {n} > limit {limit}");
    assert!(
        out.windows(2).all(|w| w[0].0 < w[1].0),
        "{name}: not ascending: {out:?}"
    );
    for &(k, v) in out {
        assert!((lo, hi).contains(&k), "{name}: {k} outside {lo:?}..{hi:?}");
        assert_eq!(
            v >> 32,
            k,
            "{name}: value {v:#x} does not belong to key {k}"
        );
    }
    // Every stable key in range and below the scan's end must have been seen.
    let end = match (n == limit, out.last()) {
        (true, Some(&(last, _))) => Bound::Included(last),
        _ => hi,
    };
    let seen: Vec<u64> = out.iter().map(|&(k, _)| k).filter(|k| k % 2 == 0).collect();
    let stable: Vec<u64> = (0..OVERLAP_KEYS)
        .step_by(2)
        .filter(|k| (lo, end).contains(k) && (lo, hi).contains(k))
        .collect();
    assert_eq!(
        seen, stable,
        "{name}: scan {lo:?}..{hi:?} limit {limit} missed a stable key"
    );
}

fn overlapping_writers_and_scanners(map: &Map) {
    let name = map.name();
    for k in (0..OVERLAP_KEYS).step_by(2) {
        map.insert(k, tagged(k, 0));
    }
    let writers_done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let writers: Vec<_> = (0..2u64)
            .map(|t| {
                s.spawn(move || {
                    let mut rng = Rng::new(0x1234_5678 + t);
                    for round in 0..OVERLAP_ROUNDS {
                        for i in 0..OVERLAP_KEYS {
                            // Both writers walk the same keys, in opposite directions.
                            let k = if t == 0 { i } else { OVERLAP_KEYS - 1 - i };
                            let seq = round * OVERLAP_KEYS + i;
                            if k % 2 == 0 {
                                let old = map.insert(k, tagged(k, seq));
                                assert!(
                                    old.is_some_and(|v| v >> 32 == k),
                                    "{name}: stable {k}: {old:?}"
                                );
                            } else if (rng.next_u64() + round) % 2 == 0 {
                                let old = map.insert(k, tagged(k, seq));
                                assert!(old.is_none_or(|v| v >> 32 == k), "{name}: {k}: {old:?}");
                            } else {
                                let old = map.remove(&k);
                                assert!(old.is_none_or(|v| v >> 32 == k), "{name}: {k}: {old:?}");
                            }
                        }
                    }
                })
            })
            .collect();
        for t in 0..2u64 {
            let writers_done = &writers_done;
            s.spawn(move || {
                let mut rng = Rng::new(0x9876_5431 + t);
                let mut out = Vec::new();
                // At least a few scans even if the writers finish first.
                let mut scans = 0;
                while scans < 20 || !writers_done.load(Ordering::Relaxed) {
                    let (lo, hi) = (random_bound(&mut rng), random_bound(&mut rng));
                    let limit = [1, 10, 100, usize::MAX][(rng.next_u64() % 4) as usize];
                    out.clear();
                    let n = map.scan(lo.as_ref(), hi.as_ref(), limit, &mut out);
                    check_scan(name, lo, hi, limit, n, &out);
                    let k = (rng.next_u64() % OVERLAP_KEYS) & !1;
                    assert_eq!(
                        map.get(&k).map(|v| v >> 32),
                        Some(k),
                        "{name}: stable key {k} missing"
                    );
                    scans += 1;
                }
            });
        }
        for w in writers {
            w.join().unwrap();
        }
        writers_done.store(true, Ordering::Relaxed);
    });
    // Quiescent: a full scan agrees with point lookups and contains every stable key.
    let mut out = Vec::new();
    map.scan(Bound::Unbounded, Bound::Unbounded, usize::MAX, &mut out);
    check_scan(
        name,
        Bound::Unbounded,
        Bound::Unbounded,
        usize::MAX,
        out.len(),
        &out,
    );
    for k in 0..OVERLAP_KEYS {
        let in_scan = out
            .binary_search_by_key(&k, |&(k, _)| k)
            .ok()
            .map(|i| out[i].1);
        assert_eq!(map.get(&k), in_scan, "{name}: get and scan disagree on {k}");
    }
}

// ---------------------------------------------------------------------------------------------
// (c) Edge keys.

fn scan_vec(map: &Map, lo: Bound<u64>, hi: Bound<u64>) -> Vec<u64> {
    let mut out = Vec::new();
    map.scan(lo.as_ref(), hi.as_ref(), usize::MAX, &mut out);
    out.into_iter().map(|(k, _)| k).collect()
}

fn edge_keys(map: &Map) {
    use Bound::{Excluded, Included, Unbounded};
    let max = u64::MAX;
    // Alone, then with enough neighbours that 0 and MAX end up in different leaves.
    for fill in [0u64, 200] {
        for k in [0, 1, max - 1, max] {
            assert_eq!(map.insert(k, k ^ 1), None, "{}: insert {k}", map.name());
        }
        for i in 2..fill {
            map.insert(i, i ^ 1);
            map.insert(max - i, (max - i) ^ 1);
        }
        let mut all: Vec<u64> = [0, 1, max - 1, max].into();
        all.extend((2..fill).flat_map(|i| [i, max - i]));
        all.sort_unstable();
        for &k in &[0, max, 1, max - 1] {
            assert_eq!(map.get(&k), Some(k ^ 1), "{}: get {k}", map.name());
        }
        assert_eq!(scan_vec(map, Unbounded, Unbounded), all, "{}", map.name());
        assert_eq!(
            scan_vec(map, Included(0), Included(max)),
            all,
            "{}",
            map.name()
        );
        assert_eq!(
            scan_vec(map, Excluded(0), Excluded(max)),
            all[1..all.len() - 1],
            "{}",
            map.name()
        );
        assert_eq!(
            scan_vec(map, Included(max), Unbounded),
            [max],
            "{}",
            map.name()
        );
        assert_eq!(scan_vec(map, Unbounded, Included(0)), [0], "{}", map.name());
        assert_eq!(
            scan_vec(map, Included(max), Included(max)),
            [max],
            "{}",
            map.name()
        );
        assert_eq!(
            scan_vec(map, Included(0), Included(0)),
            [0],
            "{}",
            map.name()
        );
        // Empty ranges, inverted ones included: no panic, nothing returned.
        for (lo, hi) in [
            (Excluded(max), Unbounded),
            (Unbounded, Excluded(0)),
            (Included(max), Included(0)),
            (Excluded(0), Excluded(1)),
            (Excluded(5), Excluded(5)),
            (Included(5), Excluded(5)),
            (Excluded(max), Included(max)),
        ] {
            assert_eq!(
                scan_vec(map, lo, hi),
                Vec::<u64>::new(),
                "{}: {lo:?}..{hi:?}",
                map.name()
            );
        }
        // A limit counts from the lower bound.
        let mut out = Vec::new();
        assert_eq!(map.scan(Excluded(&(max - 1)), Unbounded, 5, &mut out), 1);
        assert_eq!(out, [(max, max ^ 1)], "{}", map.name());
        assert_eq!(map.insert(max, 3), Some(max ^ 1), "{}", map.name());
        assert_eq!(map.insert(0, 4), Some(1), "{}", map.name());
        assert_eq!(map.remove(&max), Some(3), "{}", map.name());
        assert_eq!(map.remove(&0), Some(4), "{}", map.name());
        assert_eq!(map.get(&max), None, "{}", map.name());
        assert_eq!(map.get(&0), None, "{}", map.name());
        assert_eq!(
            scan_vec(map, Unbounded, Unbounded),
            all[1..all.len() - 1],
            "{}",
            map.name()
        );
        for &k in &all[1..all.len() - 1] {
            assert_eq!(map.remove(&k), Some(k ^ 1), "{}: remove {k}", map.name());
        }
        assert_eq!(
            scan_vec(map, Unbounded, Unbounded),
            Vec::<u64>::new(),
            "{}",
            map.name()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// One named module of tests per map.

macro_rules! conformance {
    ($($module:ident => $make:expr;)+) => {$(
        mod $module {
            use super::*;

            fn make() -> Box<Map> {
                Box::new($make)
            }

            fn prop(ops: Vec<Op>) -> TestResult {
                run_model(&*make(), &ops)
            }

            #[test]
            fn model() {
                check_model(prop);
            }

            #[test]
            fn disjoint_writers() {
                super::disjoint_writers(&*make());
            }

            #[test]
            fn overlapping_writers_and_scanners() {
                super::overlapping_writers_and_scanners(&*make());
            }

            #[test]
            fn edge_keys() {
                super::edge_keys(&*make());
            }
        }
    )+};
}

conformance! {
    bwtree_tiny => BwTree::<u64, u64>::with_config(Config::tiny()).unwrap();
    bwtree_default => BwTree::<u64, u64>::new();
    coarse => CoarseLockMap::<u64, u64>::new();
    crabbing_tiny => LockCouplingBTree::<u64, u64>::with_capacity(4, 4).unwrap();
    crabbing_min => LockCouplingBTree::<u64, u64>::with_capacity(2, 3).unwrap();
    crabbing_default => LockCouplingBTree::<u64, u64>::new();
    olc_tiny => OlcBTree::with_capacity(4, 4).unwrap();
    olc_min => OlcBTree::with_capacity(2, 3).unwrap();
    olc_default => OlcBTree::new();
}
