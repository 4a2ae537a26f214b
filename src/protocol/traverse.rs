//! Traversal: from the root to the page that covers a probe, with B-link right moves and help-along.
//!
//! # Protocol
//! A descent reads the root PID, then at every level loads the page's current head from the mapping
//! table ([`BwTree::settle`]) and checks the probe against the page's key range, which the head's
//! header summarises:
//! - probe at or beyond `high`: the page split (or the parent's view was stale); follow the right
//!   link. If the split that moved the keys is still the newest node of the chain, its index entry
//!   may be missing from the parent: complete it first (help-along), so that no thread depends on a
//!   side link for longer than one split takes;
//! - probe below `low`: impossible for a PID read under the same guard (a route is never too far
//!   right, and PIDs are reused only an epoch after their page became unreachable); a PID kept
//!   across guards (a range iterator's hint) is checked against `low` before use, see
//!   [`BwTree::settle_hint`]. Low keys never change for a PID, which makes that check sound;
//! - otherwise route to a child (inner page) or stop (target level reached).
//!
//! A thread that is about to post on a page (`Intent::Write`) also completes a split that is the
//! newest node of that page. This keeps the invariant every help-along check relies on: **a split
//! delta that is not the newest node of its chain has its index entry in the parent level.**
//!
//! Nothing here waits for another thread: each step either makes progress on the descent, completes
//! someone else's unfinished split itself, or restarts because another thread's CAS succeeded.

use crossbeam_epoch::Guard;

use crate::BwTree;
use crate::mapping::Pid;
use crate::page::chain::{self, Probe};
use crate::page::{Body, Kind, NodeRef, RemovalState};
use crate::protocol::policy::Trigger;
use crate::protocol::progress::Attempts;
use crate::research::counters::Local;
use crate::research::fault::{self, Fault};
use crate::research::stats::{RestartCause, SmoKind};
use crate::sync::retry_pause;

/// A page as loaded at one moment: its PID and the head of its chain.
pub(crate) struct PageRef<'g, K, V> {
    pub(crate) pid: Pid,
    pub(crate) node: NodeRef<'g, K, V>,
}

impl<K, V> Clone for PageRef<'_, K, V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K, V> Copy for PageRef<'_, K, V> {}

impl<'g, K, V> PageRef<'g, K, V> {
    /// The head node of the page.
    #[inline]
    pub(crate) fn node(&self) -> NodeRef<'g, K, V> {
        self.node
    }
}

/// Whether the caller will post a delta on the page it asks for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Intent {
    /// Only reading.
    Read,
    /// About to CAS a delta onto the page: its newest node must not be an unfinished split.
    Write,
}

/// The descent must start over from the root, and why (counted in the statistics).
#[derive(Debug)]
pub(crate) struct Restart(pub(crate) RestartCause);

impl<K, V> BwTree<K, V>
where
    K: Ord + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Loads page `pid` and moves right until the page covers `probe`, helping unfinished splits on
    /// the way (see the module docs).
    ///
    /// The common case is inlined into the descent: the page covers the probe and its newest node
    /// is not one that asks for help ([`Kind::asks_for_help`]). For such a head the general loop
    /// ([`BwTree::settle_general`]) would do nothing but return it, for either intent, so the fast
    /// path takes exactly the decisions the general loop takes.
    #[inline]
    pub(crate) fn settle<'g, P: Probe<K>>(
        &self,
        pid: Pid,
        probe: &P,
        intent: Intent,
        guard: &'g Guard,
    ) -> Result<PageRef<'g, K, V>, Restart> {
        match self.table.load(pid, guard) {
            Some(node) => self.settle_loaded(pid, node, probe, intent, guard),
            None => Err(Restart(RestartCause::PageGone)),
        }
    }

    /// [`BwTree::settle`] from a head of `pid` the caller has just loaded.
    #[inline]
    fn settle_loaded<'g, P: Probe<K>>(
        &self,
        pid: Pid,
        node: NodeRef<'g, K, V>,
        probe: &P,
        intent: Intent,
        guard: &'g Guard,
    ) -> Result<PageRef<'g, K, V>, Restart> {
        if !node.kind.asks_for_help() && !probe.right_of(node.high()) {
            return Ok(PageRef { pid, node });
        }
        self.settle_general(pid, probe, intent, guard)
    }

    /// [`BwTree::settle`]'s general loop: right moves, help-along and every SMO state.
    #[inline(never)]
    fn settle_general<'g, P: Probe<K>>(
        &self,
        mut pid: Pid,
        probe: &P,
        intent: Intent,
        guard: &'g Guard,
    ) -> Result<PageRef<'g, K, V>, Restart> {
        // Right moves follow right links, which end at the rightmost page of the level; under a
        // broken `Ord` they could go on around pages that keep splitting.
        let mut moves = Attempts::new("a move right along a level");
        loop {
            let Some(node) = self.table.load(pid, guard) else {
                return Err(Restart(RestartCause::PageGone));
            };
            let page = PageRef { pid, node };
            self.help_gate(page, guard)?;
            if probe.right_of(node.high()) {
                // Crossing the right link of a split whose entry may be missing: post it first.
                if node.kind == Kind::Split {
                    self.help_split(page, guard)?;
                }
                pid = node.meta.right;
                debug_assert!(!pid.is_none(), "a bounded page always has a right sibling");
                moves.again();
                continue;
            }
            if intent == Intent::Write && node.kind == Kind::Split {
                self.help_split(page, guard)?;
            }
            return Ok(page);
        }
    }

    /// Like [`BwTree::settle`] for a PID that was saved without a guard (it may have been freed and
    /// reused since): accepts it only if it is still a leaf whose low key is at or left of `probe`.
    pub(crate) fn settle_hint<'g, P: Probe<K>>(
        &self,
        pid: Pid,
        probe: &P,
        guard: &'g Guard,
    ) -> Result<PageRef<'g, K, V>, Restart> {
        let node = self
            .table
            .load(pid, guard)
            .ok_or(Restart(RestartCause::PageGone))?;
        if !node.is_leaf() || (node.low().is_some() && !probe.right_of(node.low())) {
            return Err(Restart(RestartCause::StaleRoute));
        }
        self.settle(pid, probe, Intent::Read, guard)
    }

    /// Descends from the root to the page at `level` that covers `probe`.
    ///
    /// Returns `None` if the tree has no such level (the root is lower), which is how a split of the
    /// root learns that it must grow the tree.
    pub(crate) fn descend<'g, P: Probe<K>>(
        &self,
        probe: &P,
        level: u8,
        intent: Intent,
        guard: &'g Guard,
    ) -> Option<PageRef<'g, K, V>> {
        self.descend_counted(probe, level, intent, guard, self.stats.local())
    }

    /// [`BwTree::descend`], counting into `stats` (the caller's counters, looked up once per
    /// operation): restarts by cause, and the chain length of every page it settles on.
    #[inline]
    pub(crate) fn descend_counted<'g, P: Probe<K>>(
        &self,
        probe: &P,
        level: u8,
        intent: Intent,
        guard: &'g Guard,
        stats: Option<Local<'_>>,
    ) -> Option<PageRef<'g, K, V>> {
        self.retry(stats, || {
            self.try_descend(probe, level, intent, guard, stats)
        })
    }

    /// Runs `attempt` until it does not restart, counting each restart by its cause.
    #[inline(always)]
    pub(crate) fn retry<T>(
        &self,
        stats: Option<Local<'_>>,
        mut attempt: impl FnMut() -> Result<T, Restart>,
    ) -> T {
        let mut attempts = Attempts::new("a descent");
        loop {
            match attempt() {
                Ok(result) => return result,
                Err(Restart(cause)) => {
                    if let Some(stats) = stats {
                        stats.restart(cause);
                    }
                    attempts.again();
                    retry_pause();
                }
            }
        }
    }

    /// One descent from the root (see [`BwTree::descend`]); `Err` if it must start over.
    #[inline(always)]
    fn try_descend<'g, P: Probe<K>>(
        &self,
        probe: &P,
        level: u8,
        intent: Intent,
        guard: &'g Guard,
        stats: Option<Local<'_>>,
    ) -> Result<Option<PageRef<'g, K, V>>, Restart> {
        let root = self.root.pid(guard);
        // A root below the target level means the level does not exist. Checked before settling
        // on the root: settling may help a split of the root, and helping a split is what asks
        // for the level above it, so doing it here would recurse.
        let root_node = match self.table.load(root, guard) {
            Some(node) if node.meta.level < level => return Ok(None),
            Some(node) => node,
            None => return Err(Restart(RestartCause::PageGone)),
        };
        // The root's head just loaded serves as `settle`'s first load.
        let mut page = self.settle_loaded(root, root_node, probe, Intent::Read, guard)?;
        loop {
            let node = page.node();
            let here = node.meta.level;
            if let Some(stats) = stats {
                stats.chain(here, node.meta.depth);
            }
            if here < level {
                return Ok(None);
            }
            if here == level {
                if intent == Intent::Write {
                    self.finish_top_smo(page, guard)?;
                }
                return Ok(Some(page));
            }
            let child = chain::inner_route(node, probe);
            let next = self.settle(child, probe, Intent::Read, guard)?;
            // A child is always exactly one level down; anything else is a stale route.
            if next.node().meta.level + 1 != here {
                return Err(Restart(RestartCause::StaleRoute));
            }
            page = next;
        }
    }

    /// Finishes whatever unfinished structure modification is the newest node of `page`, so that a
    /// delta may be posted on top of it or the chain replaced: completes a split, and helps a
    /// frozen or gated head along ([`BwTree::help_gate`]).
    pub(crate) fn finish_top_smo(
        &self,
        page: PageRef<'_, K, V>,
        guard: &Guard,
    ) -> Result<(), Restart> {
        if let Body::Split(_) = page.node().body() {
            self.help_split(page, guard)?;
        }
        self.help_gate(page, guard)
    }

    /// Completes the split whose delta is `page`'s newest node (help-along), counting it if this
    /// call posted the missing entry.
    fn help_split(&self, page: PageRef<'_, K, V>, guard: &Guard) -> Result<(), Restart> {
        if !fault::active(Fault::SkipHelpAlong) && self.complete_split(page, guard)? {
            self.stats.help(SmoKind::Split);
        }
        Ok(())
    }

    /// Help-along for a head that freezes its page or gates posts on it: a removal or a root
    /// collapse in progress is finished, after which the page is gone or changed (`Err`: the route
    /// that led here is out of date); a pending index-term-delete is committed (nothing may be
    /// posted over it, see `merge`). Any other head needs nothing.
    fn help_gate(&self, page: PageRef<'_, K, V>, guard: &Guard) -> Result<(), Restart> {
        match page.node().body() {
            Body::Remove(remove) if remove.removal.state() != RemovalState::Aborted => {
                self.stats.help(SmoKind::Remove);
                if let Some(merged) = self.help_remove(page, guard) {
                    // The merge this call posted may leave the merged page to split or merge on.
                    self.apply_policy(merged, Trigger::Merged, guard);
                }
                Err(Restart(RestartCause::PageRemoved))
            }
            Body::Collapse => {
                self.stats.help(SmoKind::Collapse);
                self.help_collapse(page, guard);
                Err(Restart(RestartCause::RootCollapsed))
            }
            Body::IndexDelete(delete) if delete.removal.state() == RemovalState::Pending => {
                self.stats.help(SmoKind::IndexDelete);
                delete.removal.decide(true);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The leaf that covers `probe`.
    #[inline]
    pub(crate) fn find_leaf<'g, P: Probe<K>>(
        &self,
        probe: &P,
        intent: Intent,
        guard: &'g Guard,
    ) -> PageRef<'g, K, V> {
        self.descend(probe, 0, intent, guard)
            .expect("every tree has a leaf level")
    }

    /// [`BwTree::find_leaf`] for an operation that already holds its counters.
    #[inline]
    pub(crate) fn find_leaf_counted<'g, P: Probe<K>>(
        &self,
        probe: &P,
        intent: Intent,
        guard: &'g Guard,
        stats: Option<Local<'_>>,
    ) -> PageRef<'g, K, V> {
        self.descend_counted(probe, 0, intent, guard, stats)
            .expect("every tree has a leaf level")
    }
}
