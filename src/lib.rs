#![doc = include_str!("../README.md")]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod baselines;
mod chain;
mod config;
mod invariants;
mod iter;
mod maintenance;
pub mod map;
mod mapping;
mod node;
mod reclaim;
mod smo;
mod sync;
mod traverse;
mod tree;
mod write;

pub use config::{Config, ConfigError, MAX_CHAIN_THRESHOLD, MAX_PAGE_CAPACITY, Maintenance};
pub use invariants::InvariantViolation;
pub use iter::Range;
pub use map::ConcurrentMap;
pub use maintenance::{MaintenanceHandle, MaintenanceReport};
pub use tree::{BwTree, ForeignHandle, Pinned};
