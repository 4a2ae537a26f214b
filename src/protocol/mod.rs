//! The protocol: how threads read and change the tree through the mapping table, without locks.
//!
//! Safe code only: every memory-layout detail lives in [`page`](crate::page), every pointer
//! publication and reclamation step behind [`mapping`](crate::mapping) and
//! [`memory`](crate::memory). The whole protocol — page states, every CAS, the invariants and the
//! reclamation argument — is described in the [protocol guide](crate::protocol_guide).

pub(crate) mod consolidate;
pub(crate) mod maintenance;
pub(crate) mod merge;
pub(crate) mod policy;
pub(crate) mod progress;
pub(crate) mod split;
pub(crate) mod traverse;
pub(crate) mod write;
