//! Range scans: an iterator that copies one leaf at a time and holds no guard between calls.
//!
//! # Protocol
//! The iterator keeps two cursors, the bounds of what it has not buffered yet. To refill from the
//! front it pins, finds the leaf that covers the front cursor, copies that leaf's records inside the
//! remaining bounds (one consistent snapshot: one head, one immutable chain), unpins, and moves the
//! front cursor to the leaf's high key. The back works the same way from the other end, moving its
//! cursor down to the leaf's low key.
//!
//! Every leaf's snapshot covers exactly `[cursor, leaf.high)`, and the next snapshot starts at that
//! high key, so the key space is covered without gaps or overlap, whatever splits happen between
//! calls. Hence a key that is present and untouched for the whole scan is returned exactly once; a
//! key inserted or removed during the scan may or may not appear. Returned pairs were each present
//! at the moment their leaf was read. Pages are revisited by descending from the root (or through the
//! saved right-sibling PID, checked against the cursor) — never through a pointer kept across calls,
//! so a slow iterator never holds back writers or memory reclamation.
//!
//! [`BwTree::scan_into`] is the bounded, buffer-filling form for callers that know how many pairs
//! they want: it walks the same leaf snapshots (`[cursor, leaf.high)`, with the same guarantees) but
//! under one guard for the whole call, following right links instead of re-pinning and re-finding
//! each leaf, and clones each record straight into the caller's vector. Its work is bounded by
//! `limit`, so holding the guard that long delays reclamation by one short operation at most.

use core::iter::FusedIterator;
use core::ops::{Bound, RangeBounds};
use std::collections::VecDeque;

use crate::BwTree;
use crate::mapping::Pid;
use crate::page::chain::{self, At, Below, First, Last, Probe, RecordSink};
use crate::protocol::traverse::{Intent, PageRef};
use crate::research::stats::OpKind;

/// An ascending iterator over a key range of a [`BwTree`], returned by
/// [`BwTree::range`] and [`BwTree::iter`]. Double-ended.
///
/// It yields clones of the stored keys and values and borrows the tree only, not an epoch guard.
pub struct Range<'t, K, V> {
    tree: &'t BwTree<K, V>,
    /// Lower bound of what has not been buffered yet.
    front: Bound<K>,
    /// Upper bound of what has not been buffered yet.
    back: Bound<K>,
    /// The leaf that was right of the last front snapshot: a hint, validated before use.
    front_hint: Pid,
    /// Records buffered from the front, ascending.
    front_buf: VecDeque<(K, V)>,
    /// Records buffered from the back, ascending.
    back_buf: VecDeque<(K, V)>,
    /// Nothing is left between the cursors.
    exhausted: bool,
}

impl<'t, K, V> Range<'t, K, V>
where
    K: Ord + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub(crate) fn new<R: RangeBounds<K>>(tree: &'t BwTree<K, V>, range: R) -> Self {
        let front = range.start_bound().cloned();
        let back = range.end_bound().cloned();
        let exhausted = bounds_empty(&front, &back);
        tree.stats.count_op(OpKind::Scan);
        Range {
            tree,
            front,
            back,
            front_hint: Pid::NONE,
            front_buf: VecDeque::new(),
            back_buf: VecDeque::new(),
            exhausted,
        }
    }

    fn refill_front(&mut self) {
        let _op = self.tree.stats.resume(OpKind::Scan);
        let guard = &self.tree.guard();
        let hint = core::mem::replace(&mut self.front_hint, Pid::NONE);
        let leaf = match &self.front {
            Bound::Included(k) | Bound::Excluded(k) => leaf_for(self.tree, hint, &At(k), guard),
            Bound::Unbounded => leaf_for(self.tree, hint, &First, guard),
        };
        let node = leaf.node();
        let mut records = Vec::with_capacity(node.meta.size as usize);
        chain::collect_leaf(node, self.front.as_ref(), self.back.as_ref(), &mut records);
        self.front_buf
            .extend(records.into_iter().map(|(k, v)| (k.clone(), v.clone())));
        match node.high() {
            None => self.exhausted = true,
            Some(high) => {
                self.front = Bound::Included(high.clone());
                self.front_hint = node.meta.right;
                self.exhausted = bounds_empty(&self.front, &self.back);
            }
        }
    }

    fn refill_back(&mut self) {
        let _op = self.tree.stats.resume(OpKind::Scan);
        let guard = &self.tree.guard();
        let leaf = match &self.back {
            Bound::Included(k) => self.tree.find_leaf(&At(k), Intent::Read, guard),
            Bound::Excluded(k) => self.tree.find_leaf(&Below(k), Intent::Read, guard),
            Bound::Unbounded => self.tree.find_leaf(&Last, Intent::Read, guard),
        };
        let node = leaf.node();
        let mut records = Vec::with_capacity(node.meta.size as usize);
        chain::collect_leaf(node, self.front.as_ref(), self.back.as_ref(), &mut records);
        self.back_buf
            .extend(records.into_iter().map(|(k, v)| (k.clone(), v.clone())));
        match node.low() {
            None => self.exhausted = true,
            Some(low) => {
                self.back = Bound::Excluded(low.clone());
                self.exhausted = bounds_empty(&self.front, &self.back);
            }
        }
    }
}

impl<K, V> BwTree<K, V>
where
    K: Ord + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Appends to `out`, in ascending order, at most `limit` pairs whose keys lie between `lo` and
    /// `hi`, and returns how many it appended.
    ///
    /// The guarantees are those of [`BwTree::range`] (every pair was present at some moment of the
    /// call; a key present and unchanged throughout is returned if it is among the first `limit`);
    /// bounds that enclose no key give 0. Faster than collecting `range(..).take(limit)`: one epoch
    /// pin and one descent for the whole call, and no intermediate buffers.
    ///
    /// ```
    /// use std::ops::Bound;
    /// use bwtree::BwTree;
    ///
    /// let tree = BwTree::from_sorted_iter((0..100u64).map(|k| (k, k * 10))).unwrap();
    /// let mut out = Vec::new();
    /// assert_eq!(tree.scan_into(Bound::Excluded(&10), Bound::Unbounded, 3, &mut out), 3);
    /// assert_eq!(out, vec![(11, 110), (12, 120), (13, 130)]);
    /// ```
    pub fn scan_into(
        &self,
        lo: Bound<&K>,
        hi: Bound<&K>,
        limit: usize,
        out: &mut Vec<(K, V)>,
    ) -> usize {
        if limit == 0 || bounds_empty(&lo, &hi) {
            return 0;
        }
        let _op = self.stats.op(OpKind::Scan);
        let guard = &self.guard();
        let start = out.len();
        let mut page = match lo {
            Bound::Included(k) | Bound::Excluded(k) => self.find_leaf(&At(k), Intent::Read, guard),
            Bound::Unbounded => self.find_leaf(&First, Intent::Read, guard),
        };
        let mut cursor = lo;
        // Delta scratch, allocated by the first leaf with deltas and reused for every later one.
        let mut deltas = Vec::new();
        loop {
            let node = page.node();
            let wanted = limit - (out.len() - start);
            out.reserve(wanted.min(node.meta.size as usize));
            // Records go straight from the page into `out`, cloned one by one.
            chain::collect_leaf_with(node, cursor, hi, wanted, &mut Cloning(out), &mut deltas);
            debug_assert!(out.len() - start <= limit);
            if out.len() - start >= limit {
                break;
            }
            // The next leaf starts at this one's high key; stop when that is past `hi`.
            let Some(high) = node.high() else { break };
            cursor = Bound::Included(high);
            if bounds_empty(&cursor, &hi) {
                break;
            }
            // The right link was read under this guard, so its PID cannot have been reused; if its
            // page is gone or frozen, descend again for the cursor.
            page = match self.settle(node.meta.right, &At(high), Intent::Read, guard) {
                Ok(next) => next,
                Err(_) => self.find_leaf(&At(high), Intent::Read, guard),
            };
            // The leaf covers `high`, so it ends beyond it: the scan advances.
            if page
                .node()
                .high()
                .is_some_and(|next_high| next_high <= high)
            {
                crate::protocol::progress::keys_out_of_order("a scan");
            }
        }
        out.len() - start
    }
}

/// A [`RecordSink`] that clones each record into a scan's output.
struct Cloning<'a, K, V>(&'a mut Vec<(K, V)>);

impl<'g, K: Clone, V: Clone> RecordSink<'g, K, V> for Cloning<'_, K, V> {
    #[inline]
    fn push(&mut self, key: &'g K, value: &'g V) {
        self.0.push((key.clone(), value.clone()));
    }

    #[inline]
    fn push_run(&mut self, keys: &'g [K], values: &'g [V]) {
        self.0
            .extend(keys.iter().cloned().zip(values.iter().cloned()));
    }
}

/// The leaf covering `probe`, trying the saved right-sibling `hint` before a descent from the root.
fn leaf_for<'g, K, V, P>(
    tree: &BwTree<K, V>,
    hint: Pid,
    probe: &P,
    guard: &'g crossbeam_epoch::Guard,
) -> PageRef<'g, K, V>
where
    K: Ord + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    P: Probe<K>,
{
    if !hint.is_none() {
        // The hint may be stale (its page may have been merged away and the PID reused):
        // `settle_hint` checks the level and that the page's low key is not above the cursor.
        if let Ok(page) = tree.settle_hint(hint, probe, guard) {
            return page;
        }
    }
    tree.find_leaf(probe, Intent::Read, guard)
}

/// Whether no key can lie between the two bounds.
fn bounds_empty<K: Ord>(lo: &Bound<K>, hi: &Bound<K>) -> bool {
    match (lo, hi) {
        (Bound::Included(l), Bound::Included(h)) => l > h,
        (Bound::Included(l), Bound::Excluded(h))
        | (Bound::Excluded(l), Bound::Included(h))
        | (Bound::Excluded(l), Bound::Excluded(h)) => l >= h,
        _ => false,
    }
}

impl<K, V> Iterator for Range<'_, K, V>
where
    K: Ord + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    type Item = (K, V);

    fn next(&mut self) -> Option<(K, V)> {
        loop {
            if let Some(item) = self.front_buf.pop_front() {
                return Some(item);
            }
            if self.exhausted {
                return self.back_buf.pop_front();
            }
            self.refill_front();
        }
    }
}

impl<K, V> DoubleEndedIterator for Range<'_, K, V>
where
    K: Ord + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn next_back(&mut self) -> Option<(K, V)> {
        loop {
            if let Some(item) = self.back_buf.pop_back() {
                return Some(item);
            }
            if self.exhausted {
                return self.front_buf.pop_back();
            }
            self.refill_back();
        }
    }
}

impl<K, V> FusedIterator for Range<'_, K, V>
where
    K: Ord + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn empty_bounds() {
        use Bound::*;
        assert!(bounds_empty(&Included(3), &Included(2)));
        assert!(!bounds_empty(&Included(3), &Included(3)));
        assert!(bounds_empty(&Included(3), &Excluded(3)));
        assert!(bounds_empty(&Excluded(3), &Included(3)));
        assert!(!bounds_empty(&Excluded(3), &Excluded(5)));
        assert!(!bounds_empty::<u64>(&Unbounded, &Unbounded));
        assert!(!bounds_empty(&Included(u64::MAX), &Unbounded));
    }
}
