//! Memory: epoch-based reclamation of replaced page states, the tree's pool of epoch handles,
//! per-thread recycling of page blocks, and cache prefetch hints.
//!
//! See the reclamation argument in the [protocol guide](crate::protocol_guide).

pub(crate) mod handles;
pub(crate) mod page_pool;
pub(crate) mod prefetch;
pub(crate) mod reclaim;
