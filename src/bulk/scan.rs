//! Batched and chunked range scans.
//!
//! - [`BwTree::ranges`] scans several ranges in one ascending pass. Overlapping or touching ranges
//!   are merged first, so every key is returned once, in ascending order, however the ranges were
//!   given; empty (inverted) ranges are dropped.
//! - [`BwTree::range_chunks`] streams a range as vectors of at most a chosen number of pairs. It
//!   holds one chunk and the records of one leaf at a time, so its memory stays bounded however
//!   large the range is, and like [`BwTree::range`] it holds no epoch guard between calls.
//!
//! Both have the guarantees of [`BwTree::range`]: not a snapshot; a key present and unchanged for
//! the whole scan is returned exactly once; every returned pair was present at some moment of it.

use core::cmp::Ordering as CmpOrdering;
use core::num::NonZeroUsize;
use core::ops::{Bound, RangeBounds};

use crate::BwTree;
use crate::iter::Range;

/// An iterator over a range in chunks of at most a chosen size, returned by
/// [`BwTree::range_chunks`].
pub struct Chunks<'t, K, V> {
    inner: Range<'t, K, V>,
    size: usize,
}

impl<K, V> Iterator for Chunks<'_, K, V>
where
    K: Ord + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    type Item = Vec<(K, V)>;

    fn next(&mut self) -> Option<Vec<(K, V)>> {
        let mut chunk = Vec::with_capacity(self.size.min(1024));
        chunk.extend(self.inner.by_ref().take(self.size));
        (!chunk.is_empty()).then_some(chunk)
    }
}

impl<K, V> core::fmt::Debug for Chunks<'_, K, V> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Chunks")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl<K, V> BwTree<K, V>
where
    K: Ord + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// The pairs of `range` in ascending chunks of at most `size` pairs (see the module docs).
    ///
    /// ```
    /// use std::num::NonZeroUsize;
    /// use bwtree::BwTree;
    ///
    /// let tree = BwTree::from_sorted_iter((0..10u64).map(|k| (k, k))).unwrap();
    /// let sizes: Vec<usize> = tree
    ///     .range_chunks(2.., NonZeroUsize::new(3).unwrap())
    ///     .map(|chunk| chunk.len())
    ///     .collect();
    /// assert_eq!(sizes, vec![3, 3, 2]);
    /// ```
    pub fn range_chunks<R: RangeBounds<K>>(
        &self,
        range: R,
        size: NonZeroUsize,
    ) -> Chunks<'_, K, V> {
        Chunks {
            inner: Range::new(self, range),
            size: size.get(),
        }
    }

    /// The pairs of several ranges in one ascending pass, overlapping ranges merged (every key once).
    ///
    /// ```
    /// use std::ops::Bound::{Excluded, Included, Unbounded};
    /// use bwtree::BwTree;
    ///
    /// let tree = BwTree::from_sorted_iter((0..10u64).map(|k| (k, k))).unwrap();
    /// let keys: Vec<u64> = tree
    ///     .ranges([(Included(7), Unbounded), (Included(1), Excluded(3)), (Included(2), Included(4))])
    ///     .map(|(k, _)| k)
    ///     .collect();
    /// assert_eq!(keys, vec![1, 2, 3, 4, 7, 8, 9]);
    /// ```
    pub fn ranges<I>(&self, ranges: I) -> impl Iterator<Item = (K, V)> + '_
    where
        I: IntoIterator<Item = (Bound<K>, Bound<K>)>,
    {
        merge_ranges(ranges)
            .into_iter()
            .flat_map(move |range| Range::new(self, range))
    }
}

/// Sorts ranges by start and merges those that overlap or touch; drops empty ones.
pub(crate) fn merge_ranges<K: Ord>(
    ranges: impl IntoIterator<Item = (Bound<K>, Bound<K>)>,
) -> Vec<(Bound<K>, Bound<K>)> {
    let mut ranges: Vec<_> = ranges.into_iter().filter(|r| !is_empty(r)).collect();
    ranges.sort_by(|a, b| cmp_starts(&a.0, &b.0));
    let mut merged: Vec<(Bound<K>, Bound<K>)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match merged.last_mut() {
            Some(last) if reaches(&last.1, &start) => {
                if cmp_ends(&end, &last.1) == CmpOrdering::Greater {
                    last.1 = end;
                }
            }
            _ => merged.push((start, end)),
        }
    }
    merged
}

fn is_empty<K: Ord>((start, end): &(Bound<K>, Bound<K>)) -> bool {
    match (start, end) {
        (Bound::Included(s), Bound::Included(e)) => s > e,
        (Bound::Included(s), Bound::Excluded(e))
        | (Bound::Excluded(s), Bound::Included(e))
        | (Bound::Excluded(s), Bound::Excluded(e)) => s >= e,
        _ => false,
    }
}

/// Orders start bounds by the first key they admit.
fn cmp_starts<K: Ord>(a: &Bound<K>, b: &Bound<K>) -> CmpOrdering {
    match (a, b) {
        (Bound::Unbounded, Bound::Unbounded) => CmpOrdering::Equal,
        (Bound::Unbounded, _) => CmpOrdering::Less,
        (_, Bound::Unbounded) => CmpOrdering::Greater,
        (Bound::Included(x), Bound::Included(y)) | (Bound::Excluded(x), Bound::Excluded(y)) => {
            x.cmp(y)
        }
        (Bound::Included(x), Bound::Excluded(y)) => x.cmp(y).then(CmpOrdering::Less),
        (Bound::Excluded(x), Bound::Included(y)) => x.cmp(y).then(CmpOrdering::Greater),
    }
}

/// Orders end bounds by the last key they admit.
fn cmp_ends<K: Ord>(a: &Bound<K>, b: &Bound<K>) -> CmpOrdering {
    match (a, b) {
        (Bound::Unbounded, Bound::Unbounded) => CmpOrdering::Equal,
        (Bound::Unbounded, _) => CmpOrdering::Greater,
        (_, Bound::Unbounded) => CmpOrdering::Less,
        (Bound::Included(x), Bound::Included(y)) | (Bound::Excluded(x), Bound::Excluded(y)) => {
            x.cmp(y)
        }
        (Bound::Included(x), Bound::Excluded(y)) => x.cmp(y).then(CmpOrdering::Greater),
        (Bound::Excluded(x), Bound::Included(y)) => x.cmp(y).then(CmpOrdering::Less),
    }
}

/// Whether a range starting at `start` overlaps or touches one ending at `end` (their union has no
/// gap), given that it does not start before it.
fn reaches<K: Ord>(end: &Bound<K>, start: &Bound<K>) -> bool {
    match (end, start) {
        (Bound::Unbounded, _) | (_, Bound::Unbounded) => true,
        (Bound::Included(e), Bound::Included(s)) => s <= e,
        (Bound::Included(e), Bound::Excluded(s)) => s <= e,
        (Bound::Excluded(e), Bound::Included(s)) => s <= e,
        (Bound::Excluded(e), Bound::Excluded(s)) => s < e,
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use Bound::{Excluded, Included, Unbounded};

    #[test]
    fn overlapping_and_touching_ranges_merge() {
        let merged = merge_ranges([
            (Included(10u64), Excluded(20)),
            (Included(0), Included(5)),
            (Excluded(5), Excluded(7)),
            (Included(20), Included(25)),
            (Included(30), Excluded(30)),
            (Excluded(40), Unbounded),
            (Included(45), Included(50)),
        ]);
        assert_eq!(
            merged,
            vec![
                (Included(0), Excluded(7)),
                (Included(10), Included(25)),
                (Excluded(40), Unbounded)
            ]
        );
        // A gap of one excluded key stays a gap.
        let gap = merge_ranges([(Included(0u64), Excluded(5)), (Excluded(5), Included(9))]);
        assert_eq!(gap.len(), 2);
    }
}
