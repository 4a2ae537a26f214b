//! Tree configuration: page capacities, delta-chain thresholds and where maintenance runs.
//!
//! Every field is checked by [`Config::validate`]; [`BwTree::with_config`](crate::BwTree::with_config)
//! returns the first violation as a [`ConfigError`] instead of panicking later.
//!
//! # Research switches (SIGMOD'18 §6.3)
//! The OpenBw-Tree study measured, single-threaded and read-only, what the delta chains, the atomics
//! and the mapping-table indirection cost. The lab builds the same variants from this code:
//! - *no delta chains*: [`Config::consolidate_every_update`];
//! - *no acquire loads*: the `--cfg bwtree_relaxed_loads` build (see `sync::PUBLISHED_LOAD`), sound
//!   only while a single thread uses the tree;
//! - *no mapping table*: [`BwTree::freeze_routes`](crate::BwTree::freeze_routes), a read-only view
//!   that holds the tree exclusively and descends through child pointers cached in the inner pages
//!   (see the `frozen` module). Caching pointers in a tree that keeps changing would be unsound — a
//!   consolidation or split retires the cached chain — so the view exists only while no writer
//!   can.

use core::fmt;

/// Largest accepted page capacity or chain threshold.
///
/// Page sizes and chain lengths are kept in 32-bit counters inside every page header; the cap also
/// keeps a single consolidation's work (and allocation) bounded.
pub const MAX_PAGE_CAPACITY: usize = 1 << 20;

/// Largest accepted delta-chain threshold (chains are walked on every access, so longer ones make no
/// sense; the bound keeps the depth counter far from overflow).
pub const MAX_CHAIN_THRESHOLD: usize = 1 << 10;

/// Where consolidation and splits run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Maintenance {
    /// The thread whose operation makes a chain too long or a page too large consolidates or splits
    /// it right after finishing its own operation (the Bw-tree paper's policy).
    #[default]
    Inline,
    /// Operations leave consolidation and splits to a background thread started with
    /// [`BwTree::start_maintenance`](crate::BwTree::start_maintenance). To keep every page bounded
    /// when that thread falls behind (or was never started), an operation still does the work inline
    /// once a chain reaches [`Config::BACKGROUND_HARD_FACTOR`] times its threshold or a page holds that
    /// many times its capacity. Completing *unfinished* structure modifications met on the way (help
    /// along) is never deferred: correctness needs it.
    Background,
}

/// Tuning knobs of a [`BwTree`](crate::BwTree).
///
/// The defaults were chosen by measurement on the crate's own lab (`papers/tuning.md`): for 8-byte
/// keys and values, 128-entry leaves and inner pages with a leaf chain threshold of 4 and an inner
/// threshold of 2 gave the best gets, scans and mixed work (1M keys: a tree one level lower than
/// with 64-entry pages), at the same insert throughput. The Bw-tree paper (ICDE'13, Fig. 5) reports
/// the best leaf chain threshold between about 4 (large records) and 8 (8-byte keys); OpenBw-Tree
/// (SIGMOD'18) used leaf chains of 8–24, inner chains of 2–8 and pages of 64–128 entries.
///
/// The merge thresholds may be at most half the capacities: a configuration that lowers a capacity
/// below the default must lower its merge threshold too (or [`Config::validate`] says which field is
/// out of range).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Maximum number of records in a leaf page; one more triggers a split. At least 2.
    /// (Fields are validated by [`Config::validate`]; the merge thresholds depend on the capacities.)
    pub leaf_capacity: usize,
    /// Maximum number of children of an inner page; one more triggers a split. At least 3.
    pub inner_capacity: usize,
    /// A leaf whose delta chain grows longer than this is consolidated into a new base page. At least 1.
    pub leaf_chain_threshold: usize,
    /// An inner page whose delta chain grows longer than this is consolidated. At least 1. Inner pages
    /// are read by every operation, so they are kept short.
    pub inner_chain_threshold: usize,
    /// A leaf with fewer records than this is merged with a neighbour, if the merged page holds at
    /// most seven eighths of the capacity (0: leaves never merge). At most half the leaf capacity.
    /// See the `merge` module docs for the policy.
    pub leaf_merge_threshold: usize,
    /// An inner page with fewer children than this is merged with a neighbour, under the same policy
    /// as leaves (0: never). At most half the inner capacity.
    pub inner_merge_threshold: usize,
    /// Where consolidations and splits run.
    pub maintenance: Maintenance,
    /// Whether the tree keeps statistics ([`BwTree::stats`](crate::BwTree::stats)): per-thread
    /// counters of operations, CAS attempts and failures, restarts, help-along, structure
    /// modifications and chain lengths. On by default; their cost is measured by
    /// `examples/stats_cost.rs` (figures in the `counters` module docs). Off, the tree allocates no
    /// counters and `stats()` reports zeros; building without the default `stats` cargo feature
    /// removes the counting code altogether (and this field has no effect).
    pub statistics: bool,
    /// Research switch, off by default: consolidate every page right after each delta posted on it,
    /// as if both chain thresholds were 0 (which [`Config::validate`] does not accept), so that
    /// operations find bare base pages. It reproduces the "no delta chain" variant of the OpenBw-Tree
    /// study (SIGMOD'18 §6.3) from the same code. A reader can still meet one delta between a post and
    /// its consolidation, and the lower half of a split keeps its split delta until the page is next
    /// written; a [`BwTree::run_maintenance`](crate::BwTree::run_maintenance) pass after loading
    /// consolidates those too. With [`Maintenance::Background`] consolidation stays inline.
    pub consolidate_every_update: bool,
}

impl Config {
    /// In [`Maintenance::Background`] mode, the multiple of a threshold (chain length or page
    /// capacity) at which an operation stops waiting for the background thread and does the work.
    pub const BACKGROUND_HARD_FACTOR: usize = 4;

    /// Checks every field; returns the first problem found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_range("leaf_capacity", self.leaf_capacity, 2, MAX_PAGE_CAPACITY)?;
        check_range("inner_capacity", self.inner_capacity, 3, MAX_PAGE_CAPACITY)?;
        check_range(
            "leaf_chain_threshold",
            self.leaf_chain_threshold,
            1,
            MAX_CHAIN_THRESHOLD,
        )?;
        check_range(
            "inner_chain_threshold",
            self.inner_chain_threshold,
            1,
            MAX_CHAIN_THRESHOLD,
        )?;
        check_range(
            "leaf_merge_threshold",
            self.leaf_merge_threshold,
            0,
            self.leaf_capacity / 2,
        )?;
        check_range(
            "inner_merge_threshold",
            self.inner_merge_threshold,
            0,
            self.inner_capacity / 2,
        )?;
        Ok(())
    }

    /// Tiny pages and chains that make splits, merges and consolidations happen after a handful of
    /// operations: what the crate's own tests use to exercise every structure modification.
    pub fn tiny() -> Self {
        Config {
            leaf_capacity: 4,
            inner_capacity: 4,
            leaf_chain_threshold: 2,
            inner_chain_threshold: 1,
            leaf_merge_threshold: 2,
            inner_merge_threshold: 2,
            maintenance: Maintenance::Inline,
            statistics: true,
            consolidate_every_update: false,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            leaf_capacity: 128,
            inner_capacity: 128,
            leaf_chain_threshold: 4,
            inner_chain_threshold: 2,
            leaf_merge_threshold: 64,
            inner_merge_threshold: 64,
            maintenance: Maintenance::Inline,
            statistics: true,
            consolidate_every_update: false,
        }
    }
}

fn check_range(
    field: &'static str,
    value: usize,
    min: usize,
    max: usize,
) -> Result<(), ConfigError> {
    if value < min || value > max {
        Err(ConfigError::OutOfRange {
            field,
            value,
            min,
            max,
        })
    } else {
        Ok(())
    }
}

/// Why a [`Config`] was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A numeric field lies outside its accepted range.
    OutOfRange {
        /// The name of the offending field.
        field: &'static str,
        /// The value given.
        value: usize,
        /// Smallest accepted value.
        min: usize,
        /// Largest accepted value.
        max: usize,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::OutOfRange {
                field,
                value,
                min,
                max,
            } => write!(
                f,
                "invalid bwtree config: {field} = {value} is outside the accepted range {min}..={max}"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_and_tiny_are_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
        assert_eq!(Config::tiny().validate(), Ok(()));
    }

    #[test]
    fn every_bound_is_checked() {
        type Breaker = fn(&mut Config);
        let cases: [(Breaker, &str); 8] = [
            (
                |c| c.leaf_merge_threshold = c.leaf_capacity / 2 + 1,
                "leaf_merge_threshold",
            ),
            (
                |c| c.inner_merge_threshold = c.inner_capacity,
                "inner_merge_threshold",
            ),
            (|c| c.leaf_capacity = 1, "leaf_capacity"),
            (|c| c.inner_capacity = 2, "inner_capacity"),
            (|c| c.leaf_chain_threshold = 0, "leaf_chain_threshold"),
            (|c| c.inner_chain_threshold = 0, "inner_chain_threshold"),
            (|c| c.leaf_capacity = MAX_PAGE_CAPACITY + 1, "leaf_capacity"),
            (
                |c| c.inner_chain_threshold = MAX_CHAIN_THRESHOLD + 1,
                "inner_chain_threshold",
            ),
        ];
        for (break_it, name) in cases {
            let mut config = Config::default();
            break_it(&mut config);
            match config.validate() {
                Err(ConfigError::OutOfRange { field, .. }) => assert_eq!(field, name),
                other => panic!("{name}: expected an error, got {other:?}"),
            }
        }
    }

    #[test]
    fn error_message_names_the_field() {
        let config = Config {
            leaf_capacity: 0,
            ..Config::default()
        };
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains("leaf_capacity = 0"), "{message}");
    }
}
