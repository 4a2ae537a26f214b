//! Splits, done cooperatively (two half-splits, ICDE'13 §IV.A), and growing the root.
//!
//! # Split
//! When a page holds more entries than its capacity:
//! 1. build the right sibling `Q` from the upper half of the page's logical content and publish it
//!    under a fresh PID (no other thread can reach it yet);
//! 2. CAS a *split delta* `(separator, Q)` onto the page. From this moment the split is visible:
//!    the page's high key is the separator and its right link is `Q`, so a search for a key above the
//!    separator moves right. The CAS installs the split delta on top of a fresh base page holding the
//!    lower half, which consolidates the page in the same step (the paper puts the split delta on the
//!    old chain and consolidates later; ours saves that second copy);
//! 3. post an *index-entry delta* `[separator, Q.high) -> Q` on the parent.
//!
//! Step 3 is done by whoever needs it first: the splitter right after step 2, or any thread that
//! wants to post on the split page or cross its right link while the split delta is still the newest
//! node of the chain ([`BwTree::complete_split`], called from the traversal). If step 2 fails, `Q` is
//! freed at once: it was never reachable.
//!
//! A split of the root cannot post to a parent: instead a new root with the two halves as children
//! is published under a fresh PID and the tree's root PID is switched to it with one CAS. Until that
//! CAS, the old root plus its right link keep every key reachable.

use core::ops::Bound;

use crossbeam_epoch::Guard;

use crate::BwTree;
use crate::mapping::Pid;
use crate::memory::reclaim::retire_chain;
use crate::page::chain::{self, At};
use crate::page::{self, Body, OwnedNode, RemovalState};
use crate::protocol::consolidate::{cloned_records, split_children};
use crate::protocol::traverse::{Intent, PageRef, Restart};
use crate::research::stats::{CasKind, Counter, RestartCause};
use crate::sync::{Ordering, retry_pause};

impl<K, V> BwTree<K, V>
where
    K: Ord + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Splits `page` in two (steps 1–3 of the module docs). Returns whether the split delta was
    /// installed.
    pub(crate) fn split(&self, page: PageRef<'_, K, V>, guard: &Guard) -> bool {
        if self.finish_top_smo(page, guard).is_err() {
            return false;
        }
        let node = page.node();
        let level = node.meta.level;
        let low = node.low().cloned();
        let high = node.high().cloned();
        let right = node.meta.right;
        let (lower, upper_pid, separator): (OwnedNode<K, V>, _, K) = if node.is_leaf() {
            let mut records = Vec::with_capacity(node.meta.size as usize);
            chain::collect_leaf(node, Bound::Unbounded, Bound::Unbounded, &mut records);
            if records.len() < 2 {
                return false;
            }
            let middle = records.len() / 2;
            let separator = records[middle].0.clone();
            let upper = page::leaf_base(
                Some(separator.clone()),
                high.clone(),
                right,
                cloned_records(&records[middle..]),
            );
            let upper_pid = self.table.allocate(upper, guard);
            let lower = page::leaf_base(
                low,
                Some(separator.clone()),
                upper_pid,
                cloned_records(&records[..middle]),
            );
            (lower, upper_pid, separator)
        } else {
            let children = chain::collect_inner(node);
            if children.len() < 2 {
                return false;
            }
            let middle = children.len() / 2;
            let separator = children[middle]
                .0
                .expect("only the first child lacks a low key")
                .clone();
            let (separators, pids) = split_children(&children[middle..]);
            let upper = page::inner_base(
                level,
                Some(separator.clone()),
                high.clone(),
                right,
                separators,
                &pids,
            );
            let upper_pid = self.table.allocate(upper, guard);
            let (separators, pids) = split_children(&children[..middle]);
            let lower = page::inner_base(
                level,
                low,
                Some(separator.clone()),
                upper_pid,
                separators,
                &pids,
            );
            (lower, upper_pid, separator)
        };
        // The split delta owns the lower half from here on (it is the next node of its chain).
        let delta = page::split_delta(lower.as_ref(), separator, upper_pid, high);
        let _ = lower.into_raw();
        let installed = self.table.cas(page.pid, page.node, delta, guard);
        self.stats.cas(CasKind::Split, installed.is_ok());
        match installed {
            Ok(installed) => {
                self.stats.done(Counter::Split, level, 1);
                // SAFETY: the CAS unlinked the old chain; the new halves own copies of every key.
                unsafe { retire_chain(&self.table, page.node, guard) };
                crate::research::fault::split_delta_installed();
                let split_page = PageRef {
                    pid: page.pid,
                    node: installed,
                };
                // Step 3. If it fails here, the next thread that meets the split completes it.
                let _ = self.complete_split(split_page, guard);
                true
            }
            Err(delta) => {
                // Neither the split delta nor the lower half (its successor) was ever published.
                let delta = delta.into_raw();
                // SAFETY: exclusively ours: the CAS that would have published it failed.
                unsafe { page::free_chain(delta) };
                self.table.free_unpublished(upper_pid, guard);
                false
            }
        }
    }

    /// Step 3 of a split: makes sure the parent level routes the split-off keys to the new sibling.
    ///
    /// `page` must be a page whose newest node is a split delta. Idempotent: if the parent already
    /// has the entry, nothing is posted. Returns whether this call did the posting (or grew the root).
    pub(crate) fn complete_split(
        &self,
        page: PageRef<'_, K, V>,
        guard: &Guard,
    ) -> Result<bool, Restart> {
        let node = page.node();
        let Body::Split(split) = node.body() else {
            return Ok(false);
        };
        let (separator, right, right_high) = (&split.separator, &split.right, &split.right_high);
        let level = node.meta.level;
        // A split whose right half is being (or has been) merged away was complete: a page is only
        // frozen for removal once its parent routes to it. Its separator may be gone from the
        // parent by now, so the routing check below would wrongly post it again.
        if self.sibling_removed(*right, guard) {
            return Ok(false);
        }
        loop {
            let Some(parent) = self.descend(&At(separator), level + 1, Intent::Write, guard) else {
                // The split page is (or was) the root.
                match self.grow_root(page, separator, *right, guard) {
                    Ok(()) => return Ok(true),
                    // Another thread grew the tree first; if the page moved on meanwhile, the split
                    // was completed (nothing is posted on an unfinished split).
                    Err(Restart(_)) if !self.still_head(page, guard) => {
                        return Ok(false);
                    }
                    Err(Restart(_)) => {
                        retry_pause();
                        continue;
                    }
                }
            };
            let parent_node = parent.node();
            let routed = chain::inner_route(parent_node, &At(separator));
            if routed == *right {
                return Ok(false);
            }
            // The parent routes the separator to the split page or to a page left of it (routes
            // are never too far right, but they may lag to the left: a merge's index-term-delete
            // hands the removed range to the parent's child left of it, which can be left of the
            // page that absorbs the range at the child level, and an entry posted late carries the
            // right half's high key from its split time). If the split page has moved on, its split
            // was completed: nothing is posted on an unfinished split.
            if routed != page.pid && !self.still_head(page, guard) {
                return Ok(false);
            }
            // A removal of the right half freezes it only once the parent routes to it, and we read
            // the parent after that, so a frozen right half means the entry was there (and its
            // index-term-delete may have routed the separator back here since).
            if self.sibling_removed(*right, guard) {
                return Ok(false);
            }
            let children = chain::collect_inner(parent_node);
            // The entry can be present but shadowed for this key by a newer entry of a page to the
            // left whose high key was stale: the route is then merely long, not missing.
            if children
                .iter()
                .any(|&(low, child)| low == Some(separator) && child == *right)
            {
                return Ok(false);
            }
            // A split page that is not a child of the parent yet is the right half of an unfinished
            // split of the page the parent routes to: that split is completed first (by whoever
            // crosses its right link, the restarting caller included), so entries are posted in
            // split order. Only a split page the parent knows, but routes this key away from, gets
            // its entry posted here.
            if routed != page.pid && !children.iter().any(|&(_, child)| child == page.pid) {
                return Err(Restart(RestartCause::SplitView));
            }
            let entry = page::index_entry_delta(
                parent_node,
                separator.clone(),
                *right,
                right_high.clone(),
                parent_node.meta.size + 1,
            );
            let installed = self.table.cas(parent.pid, parent.node, entry, guard);
            self.stats.cas(CasKind::IndexEntry, installed.is_ok());
            match installed {
                Ok(installed) => {
                    self.maintain(
                        PageRef {
                            pid: parent.pid,
                            node: installed,
                        },
                        guard,
                    );
                    return Ok(true);
                }
                Err(entry) => {
                    drop(entry);
                    retry_pause();
                }
            }
        }
    }

    /// Whether the page `pid` is frozen for removal (pending or committed) or already released. Used
    /// on the right half of a split: such a split was complete (a page is frozen only once its
    /// parent routes to it), whatever the parent says now. `pid` cannot have been reused by another
    /// page while the caller is pinned: the caller read the split delta naming it before it was
    /// released.
    fn sibling_removed(&self, pid: Pid, guard: &Guard) -> bool {
        match self.table.load(pid, guard) {
            None => true,
            Some(sibling) => matches!(
                sibling.body(),
                Body::Remove(remove) if remove.removal.state() != RemovalState::Aborted
            ),
        }
    }

    /// Whether `page` is still the current state of its PID.
    fn still_head(&self, page: PageRef<'_, K, V>, guard: &Guard) -> bool {
        self.table
            .load(page.pid, guard)
            .is_some_and(|now| now.as_ptr() == page.node.as_ptr())
    }

    /// Completes a split of the root page by publishing a new root above it.
    fn grow_root(
        &self,
        page: PageRef<'_, K, V>,
        separator: &K,
        right: Pid,
        guard: &Guard,
    ) -> Result<(), Restart> {
        // Acquire: pairs with the Release of a competing root installation.
        let root = Pid(self.root.load(Ordering::Acquire));
        if root != page.pid {
            // Another thread already grew the tree (a parent level will now be found), or the page
            // is no longer the root. (The cause is not counted: the caller retries its own step.)
            return Err(Restart(RestartCause::SplitView));
        }
        // The page may have become the root by a collapse of its parent after our caller checked
        // the right half: then the split was complete and its right half has been removed since
        // (a collapse needs the parent down to one child). The root load above is ordered after the
        // collapse, which is ordered after that removal's commit, so this check sees it.
        if self.sibling_removed(right, guard) {
            return Ok(());
        }
        let level = page.node().meta.level;
        let new_root = page::inner_base(
            level + 1,
            None,
            None,
            Pid::NONE,
            [separator.clone()].into_iter(),
            &[page.pid, right],
        );
        let new_pid = self.table.allocate(new_root, guard);
        // AcqRel: Release publishes the new root PID after its page (stored with Release in
        // `allocate`); Acquire on failure: we look at the winner's root next.
        let switched =
            self.root
                .compare_exchange(root.0, new_pid.0, Ordering::AcqRel, Ordering::Acquire);
        self.stats.cas(CasKind::RootGrow, switched.is_ok());
        match switched {
            Ok(_) => Ok(()),
            Err(_) => {
                self.table.free_unpublished(new_pid, guard);
                Err(Restart(RestartCause::SplitView))
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use crate::BwTree;
    use crate::config::Config;
    use crate::page::Kind;
    use crate::page::chain::{At, First};
    use crate::protocol::traverse::Intent;

    fn tree(leaf_capacity: usize, leaf_chain_threshold: usize) -> BwTree {
        BwTree::with_config(Config {
            leaf_capacity,
            leaf_chain_threshold,
            ..Config::tiny()
        })
        .unwrap()
    }

    #[test]
    fn split_installs_sibling_parent_entry_and_new_root() {
        let tree = tree(4, 8);
        for key in 0..4 {
            tree.insert(key * 10, key);
        }
        assert_eq!(tree.height(), 1);
        tree.insert(40, 4);
        assert_eq!(tree.height(), 2, "the fifth record splits the root leaf");
        let guard = &tree.guard();
        let left = tree.find_leaf(&First, Intent::Read, guard);
        let node = left.node();
        // The left half keeps the split delta on top of its new base page until someone posts on it.
        assert_eq!(node.kind, Kind::Split);
        assert_eq!(node.meta.size, 2);
        assert_eq!(node.high(), Some(&20));
        let right = tree.find_leaf(&At(&20), Intent::Read, guard);
        assert_eq!(right.pid, node.meta.right);
        assert_eq!(right.node().low(), Some(&20));
        assert_eq!(right.node().meta.size, 3);
        tree.check_invariants().unwrap();
        // Posting on the left half again must not lose the split (its entry is in the new root).
        tree.insert(5, 5);
        assert_ne!(
            tree.find_leaf(&First, Intent::Read, guard).node().kind,
            Kind::Split
        );
        tree.check_invariants().unwrap();
    }

    #[test]
    fn cascading_splits_grow_the_tree_one_level_at_a_time() {
        let tree = tree(4, 2);
        let mut last_height = 1;
        for key in 0..2_000u64 {
            tree.insert(key, key);
            let height = tree.height();
            assert!(height == last_height || height == last_height + 1);
            last_height = height;
        }
        assert!(last_height >= 6, "{last_height}");
        tree.check_invariants().unwrap();
    }
}
