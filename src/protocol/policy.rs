//! The structure-modification policy, written once: what a page needs — a split, a merge, a root
//! collapse, a consolidation or nothing — decided from its head, and carrying it out.
//!
//! Four callers consult it, and differ only in the [`Trigger`] they pass:
//! - an operation that has just posted on a page ([`BwTree::maintain`], after inserts, deletes,
//!   index entries and index-term-deletes): in [`Maintenance::Background`] mode only past the hard
//!   limits, which leave the rest to the background thread;
//! - a page that has just absorbed its right neighbour (`merge`): it keeps merging leftwards while
//!   the merged page fits (the merge's size policy decides, not the threshold), which packs runs of
//!   nearly empty pages after mass removals;
//! - a maintenance pass ([`BwTree::run_maintenance`]), which applies the configured limits
//!   whatever the mode;
//! - a batch deciding which leaves its deferred rebalancing must visit (`bulk`).
//!
//! Order of precedence: a page over capacity splits; an under-full page (not the root) merges; a
//! root inner page with one child collapses; a chain over its threshold is consolidated. A merge
//! the size policy declines (the result would be too large) falls through to the later rules, so
//! an under-full page still has its chain kept short.

use crossbeam_epoch::Guard;

use crate::BwTree;
use crate::config::{Config, Maintenance};
use crate::protocol::traverse::PageRef;

/// Why the policy is consulted (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// An operation has just posted on the page.
    Post,
    /// The page has just absorbed its right neighbour.
    Merged,
    /// A maintenance pass, or a batch's rebalancing, visits the page.
    Pass,
}

/// What the policy asks of a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Over capacity: split it.
    Split,
    /// Under-full and not the root: merge it with a neighbour.
    Merge,
    /// A root inner page with a single child: make the child the root.
    Collapse,
    /// Chain over its threshold: replace it with one base page.
    Consolidate,
    /// Nothing to do.
    Nothing,
}

/// What a merge attempt did ([`BwTree::try_merge`]).
pub(crate) enum MergeAttempt<'g, K, V> {
    /// Nothing was frozen: the size policy declined, or a race was lost.
    Declined,
    /// A page (this one, or its right neighbour) was frozen for removal; `merged` is the page
    /// that absorbed it if this call also posted the merge.
    Frozen { merged: Option<PageRef<'g, K, V>> },
}

/// What [`BwTree::apply_policy`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Applied {
    /// The split delta was installed.
    Split,
    /// The page (or its right neighbour) was frozen for a merge.
    Merged,
    /// A root collapse was attempted.
    Collapse,
    /// The chain was replaced by a new base page.
    Consolidated,
    /// Nothing was needed, or every attempt lost a race or was declined (a later operation or pass
    /// tries again).
    Nothing,
}

impl<K, V> BwTree<K, V>
where
    K: Ord + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Called after a successful post on `page`: carries out what the policy asks for it.
    /// Failures are abandoned (a later operation or maintenance pass will try again).
    pub(crate) fn maintain(&self, page: PageRef<'_, K, V>, guard: &Guard) {
        self.apply_policy(page, Trigger::Post, guard);
    }

    /// What the policy asks of `page` for `trigger`; `merge_declined`: a merge was just tried and
    /// declined (or lost), so the later rules apply.
    pub(crate) fn action(
        &self,
        page: PageRef<'_, K, V>,
        trigger: Trigger,
        merge_declined: bool,
        guard: &Guard,
    ) -> Action {
        let node = page.node();
        let level = node.meta.level;
        let (capacity, threshold) = self.limits(level);
        let (capacity, threshold) =
            if trigger == Trigger::Post && self.config.maintenance == Maintenance::Background {
                (
                    capacity * Config::BACKGROUND_HARD_FACTOR,
                    threshold * Config::BACKGROUND_HARD_FACTOR,
                )
            } else {
                (capacity, threshold)
            };
        let size = node.meta.size as usize;
        if size > capacity {
            return Action::Split;
        }
        // A page that has just absorbed a neighbour carries the neighbour's chain under a merge
        // delta; before it merges on, a long chain is consolidated, so that a cascade over many
        // pages does not nest one merge inside the next.
        if trigger == Trigger::Merged && node.meta.depth as usize > threshold {
            return Action::Consolidate;
        }
        let merge_threshold = self.merge_threshold(level);
        let under_full = match trigger {
            Trigger::Merged => merge_threshold > 0,
            Trigger::Post | Trigger::Pass => size < merge_threshold,
        };
        if under_full && !merge_declined && !self.is_root(page.pid, guard) {
            return Action::Merge;
        }
        if trigger != Trigger::Merged
            && size == 1
            && !node.is_leaf()
            && self.is_root(page.pid, guard)
        {
            return Action::Collapse;
        }
        if node.meta.depth as usize > threshold {
            return Action::Consolidate;
        }
        Action::Nothing
    }

    /// Carries out what the policy asks of `page` for `trigger`. A declined merge falls through to
    /// the later rules; a completed merge goes on with the page that absorbed the other one
    /// ([`Trigger::Merged`]), in this loop: a cascade over many nearly empty pages (a mass removal)
    /// takes no stack per page.
    pub(crate) fn apply_policy<'g>(
        &self,
        mut page: PageRef<'g, K, V>,
        mut trigger: Trigger,
        guard: &'g Guard,
    ) -> Applied {
        let mut merge_declined = false;
        let mut merged_any = false;
        loop {
            return match self.action(page, trigger, merge_declined, guard) {
                Action::Split if self.split(page, guard) => Applied::Split,
                Action::Merge => match self.try_merge(page, guard) {
                    MergeAttempt::Declined => {
                        merge_declined = true;
                        continue;
                    }
                    MergeAttempt::Frozen { merged: None } => Applied::Merged,
                    MergeAttempt::Frozen {
                        merged: Some(merged),
                    } => {
                        (page, trigger, merge_declined, merged_any) =
                            (merged, Trigger::Merged, false, true);
                        continue;
                    }
                },
                Action::Collapse => {
                    self.try_collapse(page, guard);
                    Applied::Collapse
                }
                Action::Consolidate => match self.consolidate(page, guard) {
                    // The cascade goes on from the consolidated page.
                    Some(consolidated) if trigger == Trigger::Merged => {
                        page = consolidated;
                        continue;
                    }
                    Some(_) => Applied::Consolidated,
                    None if merged_any => Applied::Merged,
                    None => Applied::Nothing,
                },
                Action::Split | Action::Nothing if merged_any => Applied::Merged,
                Action::Split | Action::Nothing => Applied::Nothing,
            };
        }
    }

    /// Whether `pid` is the root page now.
    pub(crate) fn is_root(&self, pid: crate::mapping::Pid, guard: &Guard) -> bool {
        self.root.is(pid, guard)
    }

    /// Capacity and chain threshold of pages at `level` (threshold 0 with
    /// [`Config::consolidate_every_update`]).
    pub(crate) fn limits(&self, level: u8) -> (usize, usize) {
        let (capacity, threshold) = if level == 0 {
            (self.config.leaf_capacity, self.config.leaf_chain_threshold)
        } else {
            (
                self.config.inner_capacity,
                self.config.inner_chain_threshold,
            )
        };
        if self.config.consolidate_every_update {
            (capacity, 0)
        } else {
            (capacity, threshold)
        }
    }

    /// Merge threshold of pages at `level` (0: never merge).
    pub(crate) fn merge_threshold(&self, level: u8) -> usize {
        if level == 0 {
            self.config.leaf_merge_threshold
        } else {
            self.config.inner_merge_threshold
        }
    }
}
