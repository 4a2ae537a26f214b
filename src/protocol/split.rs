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
//! freed: it was never linked.
//!
//! # Into more than two pieces
//! A batch can leave a leaf holding many times its capacity. Halving it again and again would copy
//! its records once per halving; instead ([`Cut::Capacity`]) the content is cut into `k` pieces of
//! at most the capacity (sizes as even as possible), installed as a chain of ordinary half-splits:
//! pieces `k-1, ..., 1` are built right to left under fresh PIDs, every piece but the last with a
//! split delta on top naming its right neighbour — an unfinished split, exactly what a page looks
//! like between steps 2 and 3. One CAS on the page (step 2, the linearization point) makes all of
//! them reachable, and the index entries are posted left to right. A thread can only reach piece
//! `i` through piece `i-1`'s right link (or the parent entry that completing piece `i-1`'s split
//! posts), so the splits are completed in order, whoever completes them. An ordinary split is the
//! case `k = 2` ([`Cut::Halves`]).
//!
//! A split of the root cannot post to a parent: instead a new root with the two halves as children
//! is published under a fresh PID and the tree's root PID is switched to it with one CAS. Until that
//! CAS, the old root plus its right link keep every key reachable.

use core::ops::Bound;

use crossbeam_epoch::Guard;

use crate::BwTree;
use crate::mapping::Pid;
use crate::memory::reclaim::retire;
use crate::page::chain::{self, At};
use crate::page::{self, Body, NodeRef, OwnedNode, RemovalState};
use crate::protocol::consolidate::{cloned_records, split_children};
use crate::protocol::progress::Attempts;
use crate::protocol::traverse::{Intent, PageRef, Restart};
use crate::research::stats::{CasKind, Counter, RestartCause};
use crate::sync::retry_pause;

impl<K, V> BwTree<K, V>
where
    K: Ord + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Splits `page` in two (steps 1–3 of the module docs). Returns whether the split delta was
    /// installed.
    pub(crate) fn split(&self, page: PageRef<'_, K, V>, guard: &Guard) -> bool {
        self.split_into(page, Cut::Halves, guard) > 0
    }

    /// Splits `page` into pieces cut by `cut` (see the module docs): one CAS on `page` makes all
    /// of them reachable. Returns the number of pages created; 0 if there was nothing to split or
    /// the page changed meanwhile (the caller looks again).
    pub(crate) fn split_into(&self, page: PageRef<'_, K, V>, cut: Cut, guard: &Guard) -> usize {
        if self.finish_top_smo(page, guard).is_err() {
            return 0;
        }
        let node = page.node();
        let level = node.meta.level;
        // The new pages' PIDs are reserved before the content is read. A thread may hold one of
        // them from before it was recycled (a range iterator's hint names a page without a guard,
        // see `iter`) and find the unlinked piece there: it then reads a copy of the page taken
        // after it saved the PID, which is as good as reading the page (see the protocol guide,
        // R6). Until a piece is published its slot reads as no page.
        let expected = cut.sizes(node.meta.size as usize).len();
        if expected < 2 {
            return 0;
        }
        let mut pids = ReservedPids {
            tree: self,
            pids: (1..expected).map(|_| self.table.reserve(guard)).collect(),
            guard,
        };
        let content = Content::collect(node);
        let sizes = cut.sizes(content.len());
        // The header's count is exact, so this only adjusts for an `Ord` that is not a total
        // order (keys collected differently from how they were counted).
        while pids.pids.len() + 1 > sizes.len().max(1) {
            let pid = pids.pids.pop().expect("more PIDs than pieces");
            self.table.free_unpublished(pid, guard);
        }
        while pids.pids.len() + 1 < sizes.len() {
            pids.pids.push(self.table.reserve(guard));
        }
        if sizes.len() < 2 {
            return 0;
        }
        let mut starts = Vec::with_capacity(sizes.len() + 1);
        let mut at = 0;
        for size in &sizes {
            starts.push(at);
            at += size;
        }
        starts.push(at);
        let high = node.high().cloned();
        // Step 1: pieces k-1 .. 1, right to left, each linked to the one after it; every piece but
        // the last carries the unfinished split towards its right neighbour. Piece `i` goes under
        // `pids[i - 1]`.
        let mut pieces: Vec<(Pid, NodeRef<'_, K, V>)> = Vec::with_capacity(sizes.len() - 1);
        for i in (1..sizes.len()).rev() {
            let right = pids.pids.get(i).copied().unwrap_or(node.meta.right);
            let low = content.low_key(starts[i]).clone();
            let next_low = (i + 1 < sizes.len()).then(|| content.low_key(starts[i + 1]).clone());
            let base = content.page(
                starts[i]..starts[i + 1],
                level,
                Some(low),
                next_low.clone().or_else(|| high.clone()),
                right,
            );
            let state = match next_low {
                Some(separator) => page::split_delta(base, separator, right, high.clone()),
                None => base,
            };
            let pid = pids.pids[i - 1];
            self.table.publish_reserved(pid, state);
            let published = self
                .table
                .load(pid, guard)
                .expect("a page just published is in the table");
            pieces.push((pid, published));
        }
        let right = pids.pids[0];
        // Step 2: the page keeps piece 0 and points at piece 1.
        let separator = content.low_key(starts[1]).clone();
        let lower = content.page(
            0..sizes[0],
            level,
            node.low().cloned(),
            Some(separator.clone()),
            right,
        );
        let delta = page::split_delta(lower, separator, right, high);
        let installed = self.table.replace(page.pid, page.node, delta, guard);
        self.stats.cas(CasKind::Split, installed.is_ok());
        match installed {
            Ok(replaced) => {
                // Linked: the pieces belong to the tree now.
                pids.pids.clear();
                self.stats
                    .done(Counter::Split, level, (sizes.len() - 1) as u64);
                // The pieces own copies of every key and value of the old chain.
                retire(&self.table, replaced.old, guard);
                crate::research::fault::split_delta_installed();
                // Step 3, left to right. A piece's entry can only be posted once its left
                // neighbour's is; if one fails here, the next thread that meets it completes it.
                let first = PageRef {
                    pid: page.pid,
                    node: replaced.installed,
                };
                let rest = pieces
                    .iter()
                    .rev()
                    .map(|&(pid, node)| PageRef { pid, node });
                for piece in core::iter::once(first).chain(rest) {
                    if self.complete_split(piece, guard).is_err() {
                        break;
                    }
                }
                sizes.len() - 1
            }
            Err(delta) => {
                // Neither the split delta nor the lower half (which it owns) was published; the
                // pieces were never linked and go back with their PIDs when `pids` is dropped.
                drop(delta);
                drop(pieces);
                0
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
        let mut attempts = Attempts::new("a split's index entry");
        loop {
            attempts.again();
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
        let root = self.root.load(guard);
        if root.pid() != page.pid {
            // Another thread already grew the tree (a parent level will now be found), or the page
            // is no longer the root. (The cause is not counted: the caller retries its own step.)
            return Err(Restart(RestartCause::SplitView));
        }
        // The page may have become the root by a collapse of its parent after our caller checked
        // the right half: then the split was complete and its right half has been merged into the
        // page since (a collapse needs the page to be alone on its level). The root load above is
        // ordered after the collapse, which is ordered after that removal, so this check sees it.
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
        // Fails if the root was switched since the load above, even if a collapse has made the
        // page the root again since (see `mapping::root`): then its split was completed by
        // another grow.
        let switched = self.root.switch(root, new_pid, guard);
        self.stats.cas(CasKind::RootGrow, switched);
        if switched {
            Ok(())
        } else {
            self.table.free_unpublished(new_pid, guard);
            Err(Restart(RestartCause::SplitView))
        }
    }
}

/// The PIDs a split reserved for its new pages, until one CAS links them: if the split fails, or a
/// key's or value's `Clone` or `Ord` panics while it builds them, dropping this hands them back
/// with whatever was published under them, so nothing stays behind unreachable.
struct ReservedPids<'t, 'g, K: Send + 'static, V: Send + 'static> {
    tree: &'t BwTree<K, V>,
    pids: Vec<Pid>,
    guard: &'g Guard,
}

impl<K: Send + 'static, V: Send + 'static> Drop for ReservedPids<'_, '_, K, V> {
    fn drop(&mut self) {
        for pid in self.pids.drain(..) {
            self.tree.table.free_unpublished(pid, self.guard);
        }
    }
}

/// How a split cuts a page's entries.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Cut {
    /// In two halves (the lower one holds the smaller half of an odd count): an ordinary split.
    Halves,
    /// Into the fewest pieces of at most this many entries, sizes as even as possible: a page a
    /// batch left far over capacity.
    Capacity(usize),
}

impl Cut {
    /// The piece sizes for `len` entries.
    fn sizes(self, len: usize) -> Vec<usize> {
        match self {
            Cut::Halves if len < 2 => vec![len],
            Cut::Halves => vec![len / 2, len - len / 2],
            Cut::Capacity(capacity) => even_pieces(len, capacity),
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

/// A page's logical content, collected for a split.
enum Content<'g, K, V> {
    Leaf(Vec<(&'g K, &'g V)>),
    Inner(Vec<(Option<&'g K>, Pid)>),
}

impl<'g, K: Ord + Clone, V: Clone> Content<'g, K, V> {
    fn collect(node: NodeRef<'g, K, V>) -> Self {
        if node.is_leaf() {
            let mut records = Vec::with_capacity(node.meta.size as usize);
            chain::collect_leaf(node, Bound::Unbounded, Bound::Unbounded, &mut records);
            Content::Leaf(records)
        } else {
            Content::Inner(chain::collect_inner(node))
        }
    }

    fn len(&self) -> usize {
        match self {
            Content::Leaf(records) => records.len(),
            Content::Inner(children) => children.len(),
        }
    }

    /// The smallest key of entry `i > 0`: the low key of a piece that starts there.
    fn low_key(&self, i: usize) -> &'g K {
        match self {
            Content::Leaf(records) => records[i].0,
            Content::Inner(children) => {
                children[i].0.expect("only the first child lacks a low key")
            }
        }
    }

    /// A base page at `level` holding `entries`, covering `[low, high)`, with right link `right`.
    fn page(
        &self,
        entries: core::ops::Range<usize>,
        level: u8,
        low: Option<K>,
        high: Option<K>,
        right: Pid,
    ) -> OwnedNode<K, V> {
        match self {
            Content::Leaf(records) => {
                page::leaf_base(low, high, right, cloned_records(&records[entries]))
            }
            Content::Inner(children) => {
                let (separators, pids) = split_children(&children[entries]);
                page::inner_base(level, low, high, right, separators, &pids)
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
        for key in 0..crate::test_size(2_000, 200) {
            tree.insert(key, key);
            let height = tree.height();
            assert!(height == last_height || height == last_height + 1);
            last_height = height;
        }
        assert!(last_height >= 6, "{last_height}");
        tree.check_invariants().unwrap();
    }

    #[test]
    fn pieces_are_even_and_fit() {
        use super::even_pieces;
        assert_eq!(even_pieces(0, 4), Vec::<usize>::new());
        assert_eq!(even_pieces(4, 4), vec![4]);
        assert_eq!(even_pieces(5, 4), vec![3, 2]);
        assert_eq!(even_pieces(9, 4), vec![3, 3, 3]);
        assert_eq!(even_pieces(130, 64), vec![44, 43, 43]);
    }
}
