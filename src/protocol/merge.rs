//! Remove-side structure modifications: page merges and root collapse, done cooperatively and
//! without locks.
//!
//! # Merging a page `R` into its left neighbour
//! A page with fewer entries than its merge threshold is removed in three steps, each one CAS that
//! any thread can perform:
//!
//! 1. **Freeze** — a *remove-node* delta is posted on `R` (only once `R`'s own split, if it is the
//!    newest node, is complete). It carries a shared [`Removal`] whose state starts `Pending`. From
//!    now on nobody posts on `R`; a thread that meets the delta helps the removal along instead.
//! 2. **Decide** — a thread finds the parent `P` that covers `R`'s low key. If `R` is a child of `P`
//!    other than the first, it posts an *index-term-delete* delta on `P` (routing `R`'s key range,
//!    up to the next separator of `P`, to the child left of `R`) and then CASes the removal to
//!    `Committed`. If `R` has become the first child of its parent — the parent split exactly at
//!    `R`'s low key after the freeze, the race the OpenBw-Tree authors met — it CASes the removal to
//!    `Aborted` instead, which turns both deltas into no-ops and unfreezes `R`. The one CAS on the
//!    removal's state decides for everyone: a commit can only follow an index-term-delete that is in
//!    the parent covering `R` (posted on its current head, while `R` was not its first child); an
//!    abort is always safe. While a pending index-term-delete is the newest node of `P`, nothing else
//!    is posted on `P` (threads that meet it commit it first), so `P` cannot split between the post
//!    and the commit. This replaces OpenBw-Tree's "abort" delta, which blocks the parent until the
//!    thread that posted it removes it; here any thread finishes the step, so no one waits.
//! 3. **Merge** — on `R`'s left neighbour `L` (the page whose high key is `R`'s low key and whose
//!    right link is `R`; found by a descent that moves right from the parent's route) a *merge*
//!    delta is posted that takes over `R`'s key range, right link and frozen chain (which it owns
//!    from then on: `L`'s chain becomes a tree). The thread whose merge CAS succeeds then clears
//!    `R`'s mapping-table slot and hands `R`'s PID back to the allocator after an epoch — unless a
//!    thread that retired `L`'s chain (a consolidation or split of `L`, which frees `R`'s chain
//!    with it) got there first: retiring a chain clears the slots of the pages it merged before
//!    deferring the free, so that no thread can reach them afterwards. The slot is cleared by a
//!    CAS from `R`'s frozen head, so exactly one of them does it and recycles the PID.
//!
//! Until step 3 is done, `R`'s frozen content is still the truth for its keys: a reader routed to
//! `L` moves right to `R`, meets the committed removal, performs step 3 itself and restarts.
//!
//! # Races, and why each is safe
//! - *Merge vs split of `R`*: a split of `R` is completed before the freeze; after it, `R` takes no
//!   posts. A split that lands before the freeze makes the freeze CAS fail (the head changed).
//! - *Merge vs split of `L`*: step 3 looks for the page whose high key equals `R`'s low key by moving
//!   right, so it finds `L`'s right half if `L` split; the CAS on that page's head orders the two.
//! - *Merge vs split of the parent*: see step 2 (abort, or the parent cannot split before the commit).
//!   After the commit `R`'s separator is gone from the parent, so no later split can separate `R`'s
//!   range from `L`'s.
//! - *Adjacent merges*: if `L` itself is frozen, step 3 for `R` helps `L`'s removal first (its descent
//!   meets `L`'s remove-node delta); if `L`'s removal commits, `R` merges into `L`'s left neighbour.
//!   An index-term-delete spans up to the next separator still in the parent, so a later delete of
//!   `L` covers the key range earlier deletes had routed to `L`.
//! - *Routes that lag to the left*: the index-term-delete hands `R`'s range to the parent's child
//!   left of `R`, but step 3 merges into the page whose right link is `R` at `R`'s level, which is
//!   a page further right when that child split after step 2 (or its split's index entry was not
//!   posted yet). The parent then routes `R`'s keys to a page left of their owner, which a descent
//!   corrects by moving right. A later split of the owner inside that range finds its separator
//!   routed to the left page: `complete_split` posts its entry all the same (it only treats the
//!   split as done when the parent routes to the right half, that half was removed, or the split
//!   page has moved on), so such routes are repaired instead of stalling the split.
//! - *Collapse vs a merge still pending one level down*: removals at two levels under
//!   a three-level tree, the root `G` over `A = [-, k)` and `R = [k, -)`, each over two leaves.
//!   1. T1 removes a leaf under `R`; `R` is left with one child, is frozen, its index-term-delete
//!      commits on `G`, and `G`, now with one child, collapses into `A`. T1 has not merged `R`
//!      into `A` yet: `A` is the root with high key `k` and right link `R`.
//!   2. T2 removes a leaf under `A` (the index-term-delete is posted on `A`), which leaves `A` with
//!      one child `a1`; `A` is the root, so it collapses into `a1`.
//!   3. T1 goes on to merge `R` into its left neighbour at level 1, finds no level 1 any more and
//!      stops. `R` stays frozen and unmerged, and no parent routes to its leaves: the root leaf
//!      covers `[-, k)` and the keys from `k` on are reachable through its right link alone. The
//!      next levels to grow get their ranges from the root (`[x, -)`), not from the leaves, so
//!      `check_invariants` finds children whose ranges end before their parents' do, and a split
//!      of a leaf right of `k` never completes: its parent routes the separator to a page it does
//!      not know (`SplitView`, forever), or there is no parent and the split page is not the root.
//!
//!   Steps 1 and 2 each collapsed a root whose only child had a right sibling. A collapse now
//!   requires the child to be alone on its level and merges pending removals into it first (see
//!   "Root collapse"): in step 1, `G` collapses only once `R` is merged into `A` (by whichever
//!   thread gets there first), so `A` becomes the root over all of `R`'s leaves as well, and T2's
//!   removal in step 2 leaves it more than one child.
//! - *Merge vs an in-flight range scan*: scans keep cursor keys, not pages; a page found removed
//!   sends them back to the root, and the keys are found in `L`.
//! - *The leftmost child*: a page that is the first child of its parent (or the leftmost page of its
//!   level) is never removed itself; when it is under-full it absorbs its right neighbour instead
//!   (the right neighbour is removed into it, by the same three steps), if that neighbour is a
//!   child of the same parent.
//!
//! # Size policy
//! A page is merged when it holds fewer entries than its merge threshold (`Config`, default half the
//! capacity), and only if the merged page holds at most seven eighths of the capacity; otherwise
//! its right neighbour is tried. The gap between the two keeps merges and splits from undoing each
//! other: the two halves of a split together hold more than seven eighths of the capacity, so a
//! removal right after a split does not merge them back. A page that has just absorbed its neighbour keeps merging leftwards while
//! the result fits, which packs runs of nearly empty pages after mass removals.
//!
//! # Root collapse
//! When the root is an inner page with a single child, and that child is the only page of its level
//! (it has no right sibling), a *collapse* delta freezes the root and one CAS on the tree's root word
//! (see `mapping::root`) makes the child the root; the winner clears the old root's slot and retires its
//! chain. A thread that meets the collapse delta performs the root CAS itself and restarts.
//!
//! A single child is not enough: the pages right of it may be removals whose index-term-delete is
//! committed on the root but whose merge (step 3) is not done yet. Those are merged into the child
//! first (by the collapsing thread, helping along); a root whose only child still has a live right
//! sibling (the right half of the child's own unfinished split) is left as it is. So the root always
//! covers the whole key space, and a collapse never drops a level that still holds a page. The
//! check reads the child after the root's head, and the freeze is a CAS on that head: a split of
//! the child after the check either posts its entry on the root first (the freeze fails) or finds
//! the root collapsed and grows a new root over the two halves.

use crossbeam_epoch::Guard;

use crate::BwTree;
use crate::memory::reclaim::retire;
use crate::page::chain::{self, At, Below};
use crate::page::{self, Body, Removal, RemovalState};
use crate::protocol::policy::MergeAttempt;
use crate::protocol::progress::Attempts;
use crate::protocol::traverse::{Intent, PageRef};
use crate::research::stats::{CasKind, Counter};
use crate::sync::{Arc, retry_pause};

impl<K, V> BwTree<K, V>
where
    K: Ord + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// The largest page a merge may produce at `level`: seven eighths of the capacity.
    fn merge_limit(&self, level: u8) -> usize {
        let (capacity, _) = self.limits(level);
        (capacity * 7 / 8).max(1)
    }

    /// Merges an under-full `page` with a neighbour: removes it into its left neighbour (steps 1–3),
    /// or, if that is not allowed (it is the first child of its parent, or the result would be too
    /// large), removes its right neighbour into it. See the module docs for the size policy.
    pub(crate) fn try_merge<'g>(
        &self,
        page: PageRef<'g, K, V>,
        guard: &'g Guard,
    ) -> MergeAttempt<'g, K, V> {
        self.merge_page(page, true, guard)
    }

    /// [`BwTree::try_merge`]; `may_absorb_right` allows falling back to the right neighbour (once).
    fn merge_page<'g>(
        &self,
        page: PageRef<'g, K, V>,
        may_absorb_right: bool,
        guard: &'g Guard,
    ) -> MergeAttempt<'g, K, V> {
        let node = page.node();
        let absorb = |page| {
            if may_absorb_right {
                self.absorb_right(page, guard)
            } else {
                MergeAttempt::Declined
            }
        };
        // The leftmost page of a level (the root included) is never removed, but may absorb.
        let Some(low) = node.low() else {
            return absorb(page);
        };
        if self.finish_top_smo(page, guard).is_err() {
            return MergeAttempt::Declined;
        }
        let level = node.meta.level;
        let Some(parent) = self.descend(&At(low), level + 1, Intent::Read, guard) else {
            return MergeAttempt::Declined;
        };
        if chain::inner_route(parent.node(), &At(low)) != page.pid {
            return MergeAttempt::Declined;
        }
        // Policy checks (the decision in step 2 re-checks the first one): not the first child of
        // its parent, and the merged page at most seven eighths full, so that a merge is not
        // undone by a split a few inserts later.
        let first_child = parent.node().low() == Some(low);
        let too_large = first_child
            || match self.descend(&Below(low), level, Intent::Read, guard) {
                Some(left) => {
                    left.node().high() == Some(low)
                        && (left.node().meta.size + node.meta.size) as usize
                            > self.merge_limit(level)
                }
                None => true,
            };
        if too_large {
            return absorb(page);
        }
        let delta = page::remove_delta(node, Removal::new());
        let frozen = self.table.cas(page.pid, page.node, delta, guard);
        self.stats.cas(CasKind::RemoveNode, frozen.is_ok());
        match frozen {
            Ok(frozen) => MergeAttempt::Frozen {
                merged: self.help_remove(
                    PageRef {
                        pid: page.pid,
                        node: frozen,
                    },
                    guard,
                ),
            },
            Err(_) => MergeAttempt::Declined,
        }
    }

    /// Merges `page`'s right neighbour into it, if the two fit within the merge limit (the fallback
    /// for a page that cannot go into its left neighbour, e.g. a first child).
    fn absorb_right<'g>(
        &self,
        page: PageRef<'g, K, V>,
        guard: &'g Guard,
    ) -> MergeAttempt<'g, K, V> {
        let node = page.node();
        let Some(high) = node.high() else {
            return MergeAttempt::Declined;
        };
        let Ok(right) = self.settle(node.meta.right, &At(high), Intent::Read, guard) else {
            return MergeAttempt::Declined;
        };
        let fits =
            (node.meta.size + right.node().meta.size) as usize <= self.merge_limit(node.meta.level);
        if fits && right.node().low() == Some(high) {
            self.merge_page(right, false, guard)
        } else {
            MergeAttempt::Declined
        }
    }

    /// Helps the removal whose remove-node delta is `page`'s newest node: decides it (step 2) if it
    /// is pending, then merges (step 3) if it is committed. Returns the page that absorbed it if
    /// this call posted the merge: the caller applies the policy to it (it may go on merging
    /// leftwards), in its own loop rather than by recursion (see `policy`).
    pub(crate) fn help_remove<'g>(
        &self,
        page: PageRef<'g, K, V>,
        guard: &'g Guard,
    ) -> Option<PageRef<'g, K, V>> {
        let Body::Remove(remove) = page.node().body() else {
            return None;
        };
        let state = match remove.removal.state() {
            RemovalState::Pending => self.decide_removal(page, &remove.removal, guard),
            decided => decided,
        };
        if state == RemovalState::Committed {
            self.complete_merge(page, guard)
        } else {
            None
        }
    }

    /// Step 2: posts the index-term-delete on the parent and commits, or aborts if the page has
    /// become the first child of its parent. Returns the decision (whoever made it).
    fn decide_removal(
        &self,
        page: PageRef<'_, K, V>,
        removal: &Arc<Removal>,
        guard: &Guard,
    ) -> RemovalState {
        let node = page.node();
        let low = node
            .low()
            .expect("the leftmost page of a level is never removed");
        let level = node.meta.level;
        let mut attempts = Attempts::new("a removal's decision");
        loop {
            attempts.again();
            let state = removal.state();
            if state != RemovalState::Pending {
                return state;
            }
            // Write intent: the parent's own unfinished modifications are finished first.
            let Some(parent) = self.descend(&At(low), level + 1, Intent::Write, guard) else {
                // The level above is gone (the tree shrank): the page is a root's only child.
                return removal.decide(false);
            };
            let parent_node = parent.node();
            if let Body::IndexDelete(delete) = parent_node.body() {
                if Arc::ptr_eq(&delete.removal, removal) {
                    return removal.decide(true);
                }
            }
            let children = chain::collect_inner(parent_node);
            let Some(at) = children.iter().position(|&(_, pid)| pid == page.pid) else {
                // Not a child of the page that covers its low key: only possible if our view of the
                // parent is already outdated. Look again.
                retry_pause();
                continue;
            };
            if at == 0 {
                // The parent split exactly at our low key after the freeze: we are its first child
                // now, and a first child is not removed.
                return removal.decide(false);
            }
            let left = children[at - 1].1;
            let high = children
                .get(at + 1)
                .map_or(parent_node.high(), |(next_low, _)| *next_low)
                .cloned();
            let delete = page::index_delete_delta(
                parent_node,
                low.clone(),
                high,
                left,
                Arc::clone(removal),
                parent_node.meta.size - 1,
            );
            let posted = self.table.cas(parent.pid, parent.node, delete, guard);
            self.stats.cas(CasKind::IndexDelete, posted.is_ok());
            if let Ok(installed) = posted {
                let state = removal.decide(true);
                if state == RemovalState::Committed {
                    // The parent lost a child: it may be under-full now (or be a root with one).
                    self.maintain(
                        PageRef {
                            pid: parent.pid,
                            node: installed,
                        },
                        guard,
                    );
                }
                return state;
            }
            retry_pause();
        }
    }

    /// Step 3: posts the merge delta on the removed page's left neighbour, then releases its PID.
    /// Returns the merged page if this call's merge CAS succeeded.
    fn complete_merge<'g>(
        &self,
        page: PageRef<'g, K, V>,
        guard: &'g Guard,
    ) -> Option<PageRef<'g, K, V>> {
        let removed = page.node();
        let low = removed
            .low()
            .expect("the leftmost page of a level is never removed");
        let level = removed.meta.level;
        let mut attempts = Attempts::new("a merge");
        loop {
            attempts.again();
            let left = self.descend(&Below(low), level, Intent::Write, guard)?;
            let left_node = left.node();
            match left_node.high() {
                Some(high) if high == low => {
                    if left_node.meta.right != page.pid {
                        // Merged earlier, and the merged page split again at the same key.
                        return None;
                    }
                    let merge = page::merge_delta(left_node, removed, page.pid, low.clone());
                    let merged = self.table.cas(left.pid, left.node, merge, guard);
                    self.stats.cas(CasKind::Merge, merged.is_ok());
                    if let Ok(installed) = merged {
                        self.stats.done(Counter::Merge, level, 1);
                        // The removed page is reachable only through the merge delta now (and,
                        // until this, its slot). A thread that retires the left page's chain
                        // before this line clears the slot itself (see `reclaim`).
                        self.table.release_removed(page.pid, removed, guard);
                        return Some(PageRef {
                            pid: left.pid,
                            node: installed,
                        });
                    }
                }
                // The left neighbour already covers our low key: someone merged.
                _ if left_node.below_high(low) => return None,
                _ => {}
            }
            retry_pause();
        }
    }

    /// Freezes a root that has a single child and makes the child the root, once the child is the
    /// only page of its level (see "Root collapse" in the module docs).
    pub(crate) fn try_collapse(&self, page: PageRef<'_, K, V>, guard: &Guard) {
        if self.finish_top_smo(page, guard).is_err() {
            return;
        }
        let children = chain::collect_inner(page.node());
        let [(_, child)] = children[..] else { return };
        // The child is the leftmost page of its level; it is the only one when it has no right
        // sibling. Read after the root's head. A right sibling the root no longer routes to is a
        // page whose removal was committed before its merge (step 3) was done: finish that merge,
        // into the child, and look again. A live right sibling (the right half of the child's own
        // unfinished split) keeps the root as it is.
        let mut attempts = Attempts::new("a root collapse");
        loop {
            let Some(child_node) = self.table.load(child, guard) else {
                return;
            };
            let Some(high) = child_node.high() else {
                break;
            };
            match self.settle(child_node.meta.right, &At(high), Intent::Read, guard) {
                // The right sibling was frozen (its removal has been helped along) or is gone
                // (merged already): the child's range has grown since we read it.
                Err(_) => {
                    attempts.again();
                    retry_pause();
                }
                Ok(_) => return,
            }
        }
        let frozen = self.table.cas(
            page.pid,
            page.node,
            page::collapse_delta(page.node()),
            guard,
        );
        self.stats.cas(CasKind::Collapse, frozen.is_ok());
        if let Ok(frozen) = frozen {
            self.help_collapse(
                PageRef {
                    pid: page.pid,
                    node: frozen,
                },
                guard,
            );
        }
    }

    /// Finishes the root collapse whose collapse delta is `page`'s newest node.
    pub(crate) fn help_collapse(&self, page: PageRef<'_, K, V>, guard: &Guard) {
        let child = chain::collect_inner(page.node())[0].1;
        let collapsed = self
            .table
            .collapse_root(&self.root, page.pid, page.node, child, guard);
        self.stats.cas(CasKind::RootCollapse, collapsed.is_ok());
        if let Ok(old_root) = collapsed {
            // Retired exactly once, by the winner of the root CAS.
            retire(&self.table, old_root, guard);
        }
    }
}
