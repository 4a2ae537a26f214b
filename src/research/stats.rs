//! Statistics: what the tree's protocol did — operations, CAS installs and their failures per delta
//! kind, restarts from the root by cause, help-along, structure modifications and the delta-chain
//! lengths operations met — read with [`BwTree::stats`] as a [`StatsSnapshot`].
//!
//! The snapshot computes the two published retry metrics:
//! - **ICDE'13 Table I** (Levandoski et al.): failed CAS installs as a share of attempted installs, per
//!   kind of install (updates, splits, consolidations): [`StatsSnapshot::cas_failure_rate`] and
//!   [`StatsSnapshot::update_cas_failure_rate`];
//! - **SIGMOD'18 Table 2** (Wang et al., OpenBw-Tree): the *abort rate*, every restart from the root
//!   plus every failed leaf-delta CAS, divided by the number of operations (it can exceed 100%):
//!   [`StatsSnapshot::abort_rate`] and [`StatsSnapshot::abort_rate_of`].
//!
//! Counting is per thread and per tree and costs no shared-memory traffic (see the `counters` module
//! for the design); [`Config::statistics`](crate::Config::statistics) turns it off.

use core::fmt;

use crate::BwTree;

/// The operations counted, one per call of the public API (a [`Pinned`](crate::Pinned) call
/// included).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// `get` and `contains_key`.
    Get,
    /// `insert`.
    Insert,
    /// `remove`, whether or not the key was present.
    Remove,
    /// `range` and `iter` (one per iterator created, however many pages it reads; `is_empty` creates
    /// one).
    Scan,
}

impl OpKind {
    /// Every kind, in counter order.
    pub const ALL: [OpKind; 4] = [OpKind::Get, OpKind::Insert, OpKind::Remove, OpKind::Scan];
    const COUNT: usize = Self::ALL.len();
}

/// The compare-and-swap installs the tree performs, one kind per delta record or state change.
///
/// All but the two root kinds are CASes on a page's mapping-table slot; a failure means another
/// thread changed that page (or the root PID) first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CasKind {
    /// An insert (or overwrite) delta on a leaf: an update in ICDE'13's terms.
    Insert,
    /// A delete delta on a leaf: an update in ICDE'13's terms.
    Delete,
    /// A batch delta on a leaf, posting several writes of one bulk call at once (`src/bulk`): an
    /// update in ICDE'13's terms.
    Batch,
    /// A new base page replacing a chain (consolidation). A failed one is abandoned, not retried.
    Consolidate,
    /// A split delta on the page being split (step 2 of a split; also installs its lower half). A
    /// bulk call's multi-way split is one such CAS.
    Split,
    /// An index-entry delta on the parent of a split page (step 3 of a split, by anyone).
    IndexEntry,
    /// The root PID switched to a new root above a split root.
    RootGrow,
    /// A remove-node delta freezing an under-full page (merge step 1).
    RemoveNode,
    /// An index-term-delete delta on the parent of a frozen page (merge step 2).
    IndexDelete,
    /// A merge delta on the left neighbour of a removed page (merge step 3).
    Merge,
    /// A collapse delta freezing a root that has a single child.
    Collapse,
    /// The root PID switched from a collapsed root to its only child (by anyone who meets it).
    RootCollapse,
}

impl CasKind {
    /// Every kind, in counter order.
    pub const ALL: [CasKind; 12] = [
        CasKind::Insert,
        CasKind::Delete,
        CasKind::Batch,
        CasKind::Consolidate,
        CasKind::Split,
        CasKind::IndexEntry,
        CasKind::RootGrow,
        CasKind::RemoveNode,
        CasKind::IndexDelete,
        CasKind::Merge,
        CasKind::Collapse,
        CasKind::RootCollapse,
    ];
    const COUNT: usize = Self::ALL.len();
}

/// Why a descent started over from the root.
///
/// Counted for every descent (operations, scans, and the descents of structure modifications to a
/// parent), and for an insert or remove that lost its CAS and could not reach the key's leaf from the
/// old one. A help-along step that retries its own CAS does not restart the caller's descent and is
/// not counted here (its failures are in [`CasKind::IndexEntry`] and the other SMO kinds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RestartCause {
    /// A page on the route had been removed from the tree (empty mapping-table slot).
    PageGone,
    /// A page on the route was frozen for removal; the thread helped the removal along, then
    /// restarted because the page's keys are moving to its left neighbour.
    PageRemoved,
    /// The root was frozen for a collapse; the thread finished the collapse, then restarted.
    RootCollapsed,
    /// A split met on the route could not be completed from this thread's view: the parent does not
    /// route the split key to the page while its newest node is still the split delta.
    SplitView,
    /// A child reached from a parent was not one level below it: the route was out of date.
    StaleRoute,
}

impl RestartCause {
    /// Every cause, in counter order.
    pub const ALL: [RestartCause; 5] = [
        RestartCause::PageGone,
        RestartCause::PageRemoved,
        RestartCause::RootCollapsed,
        RestartCause::SplitView,
        RestartCause::StaleRoute,
    ];
    const COUNT: usize = Self::ALL.len();
}

/// Unfinished structure modifications a traversal meets and works on itself (help-along).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SmoKind {
    /// A split delta that is a page's newest node, met when crossing its right link or before
    /// posting on the page: the thread checks the parent and posts the index entry if missing.
    Split,
    /// A remove-node delta whose removal is not aborted: the thread decides and merges it.
    Remove,
    /// A pending index-term-delete delta on a parent: the thread commits the removal.
    IndexDelete,
    /// A collapse delta on the root: the thread switches the root PID.
    Collapse,
}

impl SmoKind {
    /// Every kind, in counter order.
    pub const ALL: [SmoKind; 4] = [
        SmoKind::Split,
        SmoKind::Remove,
        SmoKind::IndexDelete,
        SmoKind::Collapse,
    ];
    const COUNT: usize = Self::ALL.len();
}

/// Leaf or inner pages, for the counters kept per level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Level {
    /// Level 0.
    Leaf,
    /// Every level above the leaves.
    Inner,
}

impl Level {
    pub(crate) fn of(level: u8) -> Level {
        if level == 0 {
            Level::Leaf
        } else {
            Level::Inner
        }
    }
}

/// Buckets of the delta-chain histograms: one per length `0..=32`, the last one (index 33) for every
/// length above 32. Linear, because chain thresholds are small (default 8, OpenBw-Tree used 2–24) and
/// the interesting question is how the lengths spread below and just above the threshold; the exact
/// mean comes from a separate sum, not from the buckets.
pub const CHAIN_BUCKETS: usize = 34;

/// The histogram bucket of a chain of `depth` delta records.
#[inline]
pub(crate) fn chain_bucket(depth: u32) -> usize {
    (depth as usize).min(CHAIN_BUCKETS - 1)
}

/// One counter of a block; `index` lays them out in one array.
#[derive(Clone, Copy)]
pub(crate) enum Counter {
    Op(OpKind),
    OpAborts(OpKind),
    CasAttempt(CasKind),
    CasFailure(CasKind),
    Restart(RestartCause),
    Help(SmoKind),
    Consolidation(Level),
    Split(Level),
    Merge(Level),
    Chain(Level, usize),
    /// Sum of the lengths that fell into the overflow bucket (the others are known from their bucket).
    OverflowSum(Level),
}

const OPS: usize = 0;
const OP_ABORTS: usize = OPS + OpKind::COUNT;
const CAS_ATTEMPTS: usize = OP_ABORTS + OpKind::COUNT;
const CAS_FAILURES: usize = CAS_ATTEMPTS + CasKind::COUNT;
const RESTARTS: usize = CAS_FAILURES + CasKind::COUNT;
const HELPS: usize = RESTARTS + RestartCause::COUNT;
const CONSOLIDATIONS: usize = HELPS + SmoKind::COUNT;
const SPLITS: usize = CONSOLIDATIONS + 2;
const MERGES: usize = SPLITS + 2;
const CHAINS: usize = MERGES + 2;
const OVERFLOW_SUMS: usize = CHAINS + 2 * CHAIN_BUCKETS;

impl Counter {
    pub(crate) const COUNT: usize = OVERFLOW_SUMS + 2;

    #[inline]
    pub(crate) const fn index(self) -> usize {
        match self {
            Counter::Op(op) => OPS + op as usize,
            Counter::OpAborts(op) => OP_ABORTS + op as usize,
            Counter::CasAttempt(kind) => CAS_ATTEMPTS + kind as usize,
            Counter::CasFailure(kind) => CAS_FAILURES + kind as usize,
            Counter::Restart(cause) => RESTARTS + cause as usize,
            Counter::Help(kind) => HELPS + kind as usize,
            Counter::Consolidation(level) => CONSOLIDATIONS + level as usize,
            Counter::Split(level) => SPLITS + level as usize,
            Counter::Merge(level) => MERGES + level as usize,
            Counter::Chain(level, bucket) => CHAINS + level as usize * CHAIN_BUCKETS + bucket,
            Counter::OverflowSum(level) => OVERFLOW_SUMS + level as usize,
        }
    }
}

/// The names [`StatsSnapshot::to_pairs`] gives the counters, in counter order.
const NAMES: [&str; Counter::COUNT] = [
    "ops.get",
    "ops.insert",
    "ops.remove",
    "ops.scan",
    "aborts.get",
    "aborts.insert",
    "aborts.remove",
    "aborts.scan",
    "cas.insert.attempts",
    "cas.delete.attempts",
    "cas.batch.attempts",
    "cas.consolidate.attempts",
    "cas.split.attempts",
    "cas.index_entry.attempts",
    "cas.root_grow.attempts",
    "cas.remove_node.attempts",
    "cas.index_delete.attempts",
    "cas.merge.attempts",
    "cas.collapse.attempts",
    "cas.root_collapse.attempts",
    "cas.insert.failures",
    "cas.delete.failures",
    "cas.batch.failures",
    "cas.consolidate.failures",
    "cas.split.failures",
    "cas.index_entry.failures",
    "cas.root_grow.failures",
    "cas.remove_node.failures",
    "cas.index_delete.failures",
    "cas.merge.failures",
    "cas.collapse.failures",
    "cas.root_collapse.failures",
    "restarts.page_gone",
    "restarts.page_removed",
    "restarts.root_collapsed",
    "restarts.split_view",
    "restarts.stale_route",
    "help.split",
    "help.remove",
    "help.index_delete",
    "help.collapse",
    "consolidations.leaf",
    "consolidations.inner",
    "splits.leaf",
    "splits.inner",
    "merges.leaf",
    "merges.inner",
    "chain.leaf.0",
    "chain.leaf.1",
    "chain.leaf.2",
    "chain.leaf.3",
    "chain.leaf.4",
    "chain.leaf.5",
    "chain.leaf.6",
    "chain.leaf.7",
    "chain.leaf.8",
    "chain.leaf.9",
    "chain.leaf.10",
    "chain.leaf.11",
    "chain.leaf.12",
    "chain.leaf.13",
    "chain.leaf.14",
    "chain.leaf.15",
    "chain.leaf.16",
    "chain.leaf.17",
    "chain.leaf.18",
    "chain.leaf.19",
    "chain.leaf.20",
    "chain.leaf.21",
    "chain.leaf.22",
    "chain.leaf.23",
    "chain.leaf.24",
    "chain.leaf.25",
    "chain.leaf.26",
    "chain.leaf.27",
    "chain.leaf.28",
    "chain.leaf.29",
    "chain.leaf.30",
    "chain.leaf.31",
    "chain.leaf.32",
    "chain.leaf.33+",
    "chain.inner.0",
    "chain.inner.1",
    "chain.inner.2",
    "chain.inner.3",
    "chain.inner.4",
    "chain.inner.5",
    "chain.inner.6",
    "chain.inner.7",
    "chain.inner.8",
    "chain.inner.9",
    "chain.inner.10",
    "chain.inner.11",
    "chain.inner.12",
    "chain.inner.13",
    "chain.inner.14",
    "chain.inner.15",
    "chain.inner.16",
    "chain.inner.17",
    "chain.inner.18",
    "chain.inner.19",
    "chain.inner.20",
    "chain.inner.21",
    "chain.inner.22",
    "chain.inner.23",
    "chain.inner.24",
    "chain.inner.25",
    "chain.inner.26",
    "chain.inner.27",
    "chain.inner.28",
    "chain.inner.29",
    "chain.inner.30",
    "chain.inner.31",
    "chain.inner.32",
    "chain.inner.33+",
    "chain.leaf.overflow_sum",
    "chain.inner.overflow_sum",
];

/// The tree's statistics at one moment, from [`BwTree::stats`].
///
/// Every count covers the tree's whole life, or the time since the last [`BwTree::reset_stats`].
/// Counts made by threads that finished before the call (joined, or ordered before it by other
/// synchronisation) are exact; operations running during the call may be partly included.
/// [`StatsSnapshot::since`] gives the difference of two snapshots (one phase of a benchmark).
#[derive(Clone, PartialEq, Eq)]
pub struct StatsSnapshot {
    counters: [u64; Counter::COUNT],
}

impl Default for StatsSnapshot {
    /// All zero.
    fn default() -> Self {
        StatsSnapshot {
            counters: [0; Counter::COUNT],
        }
    }
}

fn ratio(numerator: u64, denominator: u64) -> Option<f64> {
    (denominator != 0).then(|| numerator as f64 / denominator as f64)
}

impl StatsSnapshot {
    pub(crate) fn from_counters(counters: [u64; Counter::COUNT]) -> Self {
        StatsSnapshot { counters }
    }

    fn get(&self, counter: Counter) -> u64 {
        self.counters[counter.index()]
    }

    fn sum<T: Copy>(&self, all: &[T], counter: impl Fn(T) -> Counter) -> u64 {
        all.iter().map(|&item| self.get(counter(item))).sum()
    }

    /// Operations of kind `op` started (see [`OpKind`] for what each counts).
    pub fn ops(&self, op: OpKind) -> u64 {
        self.get(Counter::Op(op))
    }

    /// Operations of every kind.
    pub fn total_ops(&self) -> u64 {
        self.sum(&OpKind::ALL, Counter::Op)
    }

    /// CAS installs of `kind` attempted (successful or not).
    pub fn cas_attempts(&self, kind: CasKind) -> u64 {
        self.get(Counter::CasAttempt(kind))
    }

    /// CAS installs of `kind` that failed because the slot (or root PID) had changed.
    pub fn cas_failures(&self, kind: CasKind) -> u64 {
        self.get(Counter::CasFailure(kind))
    }

    /// CAS installs of `kind` that succeeded.
    pub fn cas_successes(&self, kind: CasKind) -> u64 {
        self.cas_attempts(kind) - self.cas_failures(kind)
    }

    /// ICDE'13 Table I's metric for one kind of install: failed CAS installs of `kind` as a share of
    /// attempted installs of `kind` (0.0–1.0; `None` if none was attempted). The paper's "failed
    /// splits" is [`CasKind::Split`] (the split delta on the splitting page), "failed consolidates" is
    /// [`CasKind::Consolidate`]; for "failed updates" see
    /// [`update_cas_failure_rate`](Self::update_cas_failure_rate).
    pub fn cas_failure_rate(&self, kind: CasKind) -> Option<f64> {
        ratio(self.cas_failures(kind), self.cas_attempts(kind))
    }

    /// ICDE'13 Table I's "failed updates": failed record-update CAS installs (insert, delete and
    /// batch deltas together) as a share of attempted ones (`None` if none).
    pub fn update_cas_failure_rate(&self) -> Option<f64> {
        let kinds = [CasKind::Insert, CasKind::Delete, CasKind::Batch];
        ratio(
            self.sum(&kinds, Counter::CasFailure),
            self.sum(&kinds, Counter::CasAttempt),
        )
    }

    /// Descents that started over from the root because of `cause`.
    pub fn restarts(&self, cause: RestartCause) -> u64 {
        self.get(Counter::Restart(cause))
    }

    /// Descents that started over from the root, for any cause.
    pub fn total_restarts(&self) -> u64 {
        self.sum(&RestartCause::ALL, Counter::Restart)
    }

    /// Times a traversal met an unfinished structure modification of `kind` and worked on it itself
    /// (whether or not its own CAS was the one that completed it).
    pub fn help_along(&self, kind: SmoKind) -> u64 {
        self.get(Counter::Help(kind))
    }

    /// Chains replaced by a new base page at `level` (successful consolidation CASes).
    pub fn consolidations(&self, level: Level) -> u64 {
        self.get(Counter::Consolidation(level))
    }

    /// Pages added by splits at `level`: one per successful split-delta CAS, several for a bulk
    /// call's multi-way split. A split root also grows the tree: see
    /// [`root_grows`](Self::root_grows).
    pub fn splits(&self, level: Level) -> u64 {
        self.get(Counter::Split(level))
    }

    /// Pages merged into a neighbour at `level` (successful merge-delta CASes).
    pub fn merges(&self, level: Level) -> u64 {
        self.get(Counter::Merge(level))
    }

    /// New root levels added above a split root.
    pub fn root_grows(&self) -> u64 {
        self.cas_successes(CasKind::RootGrow)
    }

    /// Root levels removed because the root had a single child.
    pub fn root_collapses(&self) -> u64 {
        self.cas_successes(CasKind::RootCollapse)
    }

    /// Aborts during operations of kind `op`, as SIGMOD'18 (OpenBw-Tree) counts them: every restart
    /// from the root and every failed leaf-delta CAS, including those of the final, successful
    /// attempt. Restarts during background maintenance passes belong to no operation, and neither do
    /// those of bulk calls (`insert_batch` and the like are not counted as operations; their CASes,
    /// restarts and structure modifications are).
    pub fn aborts(&self, op: OpKind) -> u64 {
        self.get(Counter::OpAborts(op))
    }

    /// SIGMOD'18 Table 2's abort rate: [`aborts`](Self::aborts) of all operations divided by the
    /// number of operations (`None` if none). Can exceed 1.0: it is a mean number of aborts per
    /// operation, not a probability.
    pub fn abort_rate(&self) -> Option<f64> {
        ratio(self.sum(&OpKind::ALL, Counter::OpAborts), self.total_ops())
    }

    /// The abort rate of one kind of operation: `aborts(op) / ops(op)` (`None` if none).
    pub fn abort_rate_of(&self, op: OpKind) -> Option<f64> {
        ratio(self.aborts(op), self.ops(op))
    }

    /// Histogram of the delta-chain length (delta records above the base page; a merged page counts
    /// both chains) of the pages at `level` at which a descent from the root settled, sampled when
    /// each was read: one sample per leaf an operation, scan refill or SMO reached and one per inner
    /// page routed through. Bucket `i` counts length `i`; the last bucket every length above
    /// `CHAIN_BUCKETS - 2` (see [`CHAIN_BUCKETS`]).
    pub fn chain_histogram(&self, level: Level) -> &[u64; CHAIN_BUCKETS] {
        let start = Counter::Chain(level, 0).index();
        self.counters[start..start + CHAIN_BUCKETS]
            .try_into()
            .expect("CHAIN_BUCKETS counters")
    }

    /// Number of chain-length samples at `level` (the histogram's total).
    pub fn chain_samples(&self, level: Level) -> u64 {
        self.chain_histogram(level).iter().sum()
    }

    /// Total length of the chains sampled at `level` (exact: the overflow bucket keeps its own sum).
    pub fn chain_length_sum(&self, level: Level) -> u64 {
        let histogram = self.chain_histogram(level);
        let exact: u64 = histogram[..CHAIN_BUCKETS - 1]
            .iter()
            .zip(0u64..)
            .map(|(&count, length)| count * length)
            .sum();
        exact + self.get(Counter::OverflowSum(level))
    }

    /// Mean delta-chain length of the pages at `level` seen at access (exact; `None` without
    /// samples). [`mean_leaf_chain`](Self::mean_leaf_chain) is the leaf case.
    pub fn mean_chain(&self, level: Level) -> Option<f64> {
        ratio(self.chain_length_sum(level), self.chain_samples(level))
    }

    /// Mean delta-chain length of the leaves seen at access: the quantity SIGMOD'18 Table 2 reports
    /// as "average leaf delta-chain length" (note that OpenBw-Tree's benchmark measured it over all
    /// leaves after the load, not at access).
    pub fn mean_leaf_chain(&self) -> Option<f64> {
        self.mean_chain(Level::Leaf)
    }

    /// What happened between `earlier` and `self` (counter by counter; saturating at zero if
    /// `earlier` is in fact later, e.g. across a reset).
    pub fn since(&self, earlier: &StatsSnapshot) -> StatsSnapshot {
        let mut counters = self.counters;
        for (now, before) in counters.iter_mut().zip(earlier.counters) {
            *now = now.saturating_sub(before);
        }
        StatsSnapshot { counters }
    }

    /// Every counter as `(name, value)`, in a fixed order: `ops.*`, `aborts.*`,
    /// `cas.<kind>.attempts`, `cas.<kind>.failures`, `restarts.*`, `help.*`, `consolidations.*`,
    /// `splits.*`, `merges.*`, `chain.leaf.<bucket>`, `chain.inner.<bucket>`,
    /// `chain.*.overflow_sum` (the summed lengths of the overflow bucket's samples).
    /// Meant for reports that print or aggregate raw counters.
    pub fn to_pairs(&self) -> Vec<(&'static str, u64)> {
        NAMES.iter().copied().zip(self.counters).collect()
    }
}

impl fmt::Debug for StatsSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.to_pairs().into_iter().filter(|&(_, value)| value != 0))
            .finish()
    }
}

impl<K, V> BwTree<K, V>
where
    K: Ord + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// The tree's statistics: sums of every thread's counters (see [`StatsSnapshot`]). All zero if
    /// [`Config::statistics`](crate::Config::statistics) is off. Costs one pass over the per-thread
    /// counter blocks; operations are not disturbed.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Starts the statistics from zero. Exact when no thread is operating on the tree; counts made
    /// during the call may land on either side of it.
    pub fn reset_stats(&self) {
        self.stats.reset();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn counter_layout_is_dense_and_named() {
        assert_eq!(NAMES.len(), Counter::COUNT);
        let mut seen = [false; Counter::COUNT];
        let mut mark = |counter: Counter, name: &str| {
            let index = counter.index();
            assert!(!seen[index], "{name} overlaps");
            seen[index] = true;
            assert!(
                NAMES[index].contains(name),
                "{} is not {name}",
                NAMES[index]
            );
        };
        for (op, name) in OpKind::ALL
            .into_iter()
            .zip(["get", "insert", "remove", "scan"])
        {
            mark(Counter::Op(op), name);
            mark(Counter::OpAborts(op), name);
        }
        let cas = [
            "insert",
            "delete",
            "batch",
            "consolidate",
            "split",
            "index_entry",
            "root_grow",
            "remove_node",
            "index_delete",
            "merge",
            "collapse",
            "root_collapse",
        ];
        for (kind, name) in CasKind::ALL.into_iter().zip(cas) {
            mark(Counter::CasAttempt(kind), &format!("cas.{name}.attempts"));
            mark(Counter::CasFailure(kind), &format!("cas.{name}.failures"));
        }
        for cause in RestartCause::ALL {
            mark(Counter::Restart(cause), "restarts.");
        }
        for kind in SmoKind::ALL {
            mark(Counter::Help(kind), "help.");
        }
        for (level, name) in [(Level::Leaf, "leaf"), (Level::Inner, "inner")] {
            mark(
                Counter::Consolidation(level),
                &format!("consolidations.{name}"),
            );
            mark(Counter::Split(level), &format!("splits.{name}"));
            mark(Counter::Merge(level), &format!("merges.{name}"));
            for bucket in 0..CHAIN_BUCKETS - 1 {
                mark(
                    Counter::Chain(level, bucket),
                    &format!("chain.{name}.{bucket}"),
                );
            }
            mark(
                Counter::Chain(level, CHAIN_BUCKETS - 1),
                &format!("chain.{name}.33+"),
            );
            mark(
                Counter::OverflowSum(level),
                &format!("chain.{name}.overflow_sum"),
            );
        }
        assert!(seen.iter().all(|&s| s));
        assert_eq!(chain_bucket(0), 0);
        assert_eq!(chain_bucket(32), 32);
        assert_eq!(chain_bucket(33), 33);
        assert_eq!(chain_bucket(5_000), 33);
    }

    #[test]
    fn rates_follow_their_definitions() {
        let mut counters = [0u64; Counter::COUNT];
        let mut set = |counter: Counter, value: u64| counters[counter.index()] = value;
        set(Counter::CasAttempt(CasKind::Split), 8);
        set(Counter::CasFailure(CasKind::Split), 2);
        set(Counter::CasAttempt(CasKind::Insert), 30);
        set(Counter::CasFailure(CasKind::Insert), 3);
        set(Counter::CasAttempt(CasKind::Delete), 10);
        set(Counter::CasFailure(CasKind::Delete), 1);
        set(Counter::Op(OpKind::Insert), 27);
        set(Counter::Op(OpKind::Get), 13);
        set(Counter::OpAborts(OpKind::Insert), 54);
        set(Counter::OpAborts(OpKind::Get), 6);
        set(Counter::Chain(Level::Leaf, 0), 2);
        set(Counter::Chain(Level::Leaf, 3), 1);
        set(Counter::Chain(Level::Leaf, CHAIN_BUCKETS - 1), 1);
        set(Counter::OverflowSum(Level::Leaf), 40);
        let snap = StatsSnapshot::from_counters(counters);
        assert_eq!(snap.cas_failure_rate(CasKind::Split), Some(0.25));
        assert_eq!(snap.cas_failure_rate(CasKind::Merge), None);
        assert_eq!(snap.update_cas_failure_rate(), Some(0.1));
        assert_eq!(snap.abort_rate(), Some(1.5));
        assert_eq!(snap.abort_rate_of(OpKind::Insert), Some(2.0));
        assert_eq!(snap.abort_rate_of(OpKind::Scan), None);
        assert_eq!(snap.chain_length_sum(Level::Leaf), 43);
        assert_eq!(snap.mean_leaf_chain(), Some(10.75));
        assert_eq!(snap.mean_chain(Level::Inner), None);
        assert_eq!(snap.since(&snap), StatsSnapshot::default());
        let pairs = snap.to_pairs();
        assert_eq!(pairs.len(), Counter::COUNT);
        assert!(pairs.contains(&("cas.split.failures", 2)));
        assert!(format!("{snap:?}").contains("\"ops.insert\": 27"));
    }
}
