#![doc = include_str!("../README.md")]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod baselines;
pub mod bulk;
mod config;
mod iter;
pub mod map;
mod mapping;
mod memory;
mod page;
mod protocol;
#[doc = include_str!("../docs/PROTOCOL.md")]
pub mod protocol_guide {}
mod research;
mod sync;
mod tree;

/// The epoch-based reclamation crate the tree uses, re-exported so that [`BwTree::with_collector`] and
/// [`BwTree::pin_with`] can be called without depending on a matching version of it.
pub use crossbeam_epoch as epoch;

/// A unit test's size: `native` normally, `miri` under Miri, which runs code about a thousand
/// times slower (`scripts/miri.sh`).
#[cfg(test)]
pub(crate) const fn test_size(native: u64, miri: u64) -> u64 {
    if cfg!(miri) { miri } else { native }
}

/// Test hooks, only with the `fault-injection` feature (see `scripts/fault-injection.sh`).
#[cfg(feature = "fault-injection")]
#[doc(hidden)]
pub mod fault_injection {
    pub use crate::research::fault::{stall_at_next_split, stalled_threads};
}

pub use bulk::{
    BatchError, BatchFailure, BatchMetrics, BatchOptions, BatchOutput, BulkLoadError, Chunks,
    DEFAULT_FILL_FACTOR, KeyExists, Progress,
};
pub use config::{Config, ConfigError, MAX_CHAIN_THRESHOLD, MAX_PAGE_CAPACITY, Maintenance};
pub use iter::Range;
pub use map::{ConcurrentMap, TreeShape};
pub use memory::page_pool::{release_recycled_pages, set_page_recycling};
pub use protocol::maintenance::{MaintenanceHandle, MaintenanceReport};
pub use research::frozen::FrozenRoutes;
pub use research::invariants::InvariantViolation;
pub use research::shape::Shape;
pub use research::stats::{
    CHAIN_BUCKETS, CasKind, Level, OpKind, RestartCause, SmoKind, StatsSnapshot,
};
pub use tree::{BwTree, ForeignHandle, Pinned};
