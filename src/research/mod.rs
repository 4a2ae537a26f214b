//! Research and verification tooling around the tree: statistics counters and their snapshots,
//! the tree's shape, the structural invariant checker, the frozen-routes view of SIGMOD'18 §6.3,
//! and the test-only fault injection.

pub(crate) mod counters;
pub(crate) mod fault;
pub(crate) mod frozen;
pub(crate) mod invariants;
pub(crate) mod shape;
pub(crate) mod stats;
