//! Cutting an overfull leaf into as many pages as it needs, in one step.
//!
//! A batch can leave a leaf holding many times its capacity. Halving it again and again would copy
//! its records once per halving; instead the leaf's content is cut into `k` pieces of at most the
//! capacity (sizes as even as possible) and installed as a chain of ordinary half-splits whose
//! index entries are completed left to right:
//!
//! 1. pieces `k-1, ..., 1` are built right to left, each under a fresh PID that no other thread can
//!    reach yet. The last piece is a plain base page; every other piece `i` is a base page with a
//!    *split delta* on top that names piece `i+1` as its new right sibling — an unfinished split,
//!    exactly what a page looks like between steps 2 and 3 of an ordinary split (see `smo`);
//! 2. one CAS installs, on the leaf, a split delta naming piece 1 on top of a new base page holding
//!    piece 0. This is the linearization point: before it no piece is reachable, after it the leaf's
//!    keys are exactly where the chain of right links says;
//! 3. the index entries are posted left to right (`complete_split` on the leaf, then on each piece).
//!
//! Step 3 is help-along work like any split's: a thread that crosses the right link of a piece
//! whose split delta is still its newest node completes that split first, and a thread can only
//! reach piece `i` through piece `i-1`'s right link (or through the parent entry that completing
//! piece `i-1`'s split posts), so the splits are completed in order whoever does them. If the CAS of
//! step 2 fails, the pieces were never reachable and are freed at once.

use core::ops::Bound;

use crossbeam_epoch::Guard;

use crate::BwTree;
use crate::mapping::Pid;
use crate::memory::reclaim::retire_chain;
use crate::page::chain;
use crate::page::{self, NodeRef};
use crate::protocol::traverse::PageRef;
use crate::research::stats::{CasKind, Counter};
use crate::sync::retry_pause;

impl<K, V> BwTree<K, V>
where
    K: Ord + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Cuts the overfull leaf `page` into pages of at most the leaf capacity (see the module docs).
    /// Returns the number of pages created; 0 if the leaf changed meanwhile (the caller looks again).
    pub(crate) fn split_leaf(&self, page: PageRef<'_, K, V>, guard: &Guard) -> usize {
        if self.finish_top_smo(page, guard).is_err() {
            return 0;
        }
        let node = page.node();
        let mut records = Vec::with_capacity(node.meta.size as usize);
        chain::collect_leaf(node, Bound::Unbounded, Bound::Unbounded, &mut records);
        let sizes = even_pieces(records.len(), self.config.leaf_capacity);
        if sizes.len() < 2 {
            return 0;
        }
        let mut starts = Vec::with_capacity(sizes.len());
        let mut at = 0;
        for size in &sizes {
            starts.push(at);
            at += size;
        }
        let high = node.high().cloned();
        // Step 1: pieces k-1 .. 1, right to left, each linked to the one after it.
        let mut right = node.meta.right;
        let mut pieces: Vec<(Pid, NodeRef<'_, K, V>)> = Vec::with_capacity(sizes.len() - 1);
        for i in (1..sizes.len()).rev() {
            let slice = &records[starts[i]..starts[i] + sizes[i]];
            let low = slice[0].0.clone();
            let next_low = starts.get(i + 1).map(|&s| records[s].0.clone());
            let base = page::leaf_base(
                Some(low),
                next_low.clone().or_else(|| high.clone()),
                right,
                cloned(slice),
            );
            let state = match next_low {
                // An unfinished split towards piece i+1 (completed in step 3).
                Some(separator) => {
                    let delta = page::split_delta(base.as_ref(), separator, right, high.clone());
                    // The split delta owns the base page from here on (it is its successor).
                    let _ = base.into_raw();
                    delta
                }
                None => base,
            };
            right = self.table.allocate(state, guard);
            let published = self
                .table
                .load(right, guard)
                .expect("a page just allocated is in the table");
            pieces.push((right, published));
        }
        // Step 2: the leaf keeps piece 0 and points at piece 1.
        let separator = records[starts[1]].0.clone();
        let lower = page::leaf_base(
            node.low().cloned(),
            Some(separator.clone()),
            right,
            cloned(&records[..sizes[0]]),
        );
        let delta = page::split_delta(lower.as_ref(), separator, right, high);
        let _ = lower.into_raw();
        let installed = self.table.cas(page.pid, page.node, delta, guard);
        self.stats.cas(CasKind::Split, installed.is_ok());
        match installed {
            Ok(installed) => {
                self.stats.done(Counter::Split, 0, (sizes.len() - 1) as u64);
                // SAFETY: the CAS unlinked the old chain; the pieces own copies of every key and
                // value, so nothing live points into it.
                unsafe { retire_chain(&self.table, page.node, guard) };
                // Step 3, left to right.
                self.complete_in_order(page.pid, installed, guard);
                for &(pid, state) in pieces.iter().rev() {
                    self.complete_in_order(pid, state, guard);
                }
                sizes.len() - 1
            }
            Err(delta) => {
                // SAFETY: the CAS failed, so the split delta and its base page were never published.
                unsafe { page::free_chain(delta.into_raw()) };
                for (pid, _) in pieces {
                    // Never linked: only this thread knows the PIDs.
                    self.table.free_unpublished(pid, guard);
                }
                0
            }
        }
    }

    /// Completes the split whose delta is `node`, the state of `pid` (if it still is), retrying
    /// until it is complete or the page moved on (someone else completed it).
    fn complete_in_order<'g>(&self, pid: Pid, node: NodeRef<'g, K, V>, guard: &'g Guard) {
        let page = PageRef { pid, node };
        while self.complete_split(page, guard).is_err() {
            let still_head = self
                .table
                .load(pid, guard)
                .is_some_and(|now| now.as_ptr() == node.as_ptr());
            if !still_head {
                return;
            }
            retry_pause();
        }
    }
}

/// Sizes of the fewest pieces of at most `capacity` records that `len` records fit in, as even as
/// possible (so every piece is more than half full when there are several).
pub(crate) fn even_pieces(len: usize, capacity: usize) -> Vec<usize> {
    if len == 0 {
        return Vec::new();
    }
    let count = len.div_ceil(capacity);
    let (base, extra) = (len / count, len % count);
    (0..count).map(|i| base + usize::from(i < extra)).collect()
}

/// Clones collected records for a new base page.
fn cloned<'a, K: Clone + 'a, V: Clone + 'a>(
    records: &'a [(&'a K, &'a V)],
) -> impl ExactSizeIterator<Item = (K, V)> + 'a {
    records.iter().map(|(k, v)| ((*k).clone(), (*v).clone()))
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::even_pieces;

    #[test]
    fn pieces_are_even_and_fit() {
        assert_eq!(even_pieces(0, 4), Vec::<usize>::new());
        assert_eq!(even_pieces(4, 4), vec![4]);
        assert_eq!(even_pieces(5, 4), vec![3, 2]);
        assert_eq!(even_pieces(9, 4), vec![3, 3, 3]);
        assert_eq!(even_pieces(130, 64), vec![44, 43, 43]);
    }
}
