//! Reading a logical page through its delta chain: point lookups and routing
//! ([`lookup`]), and replaying the chain onto the base page for consolidation, splits and scans
//! ([`collect`]).
//!
//! A lookup first consults the head's summary of the base-page positions its deltas name (the lookup
//! shortcut, `Meta::slots`): if no delta can name the key, it answers from the base page alone.
//! Otherwise it walks the chain newest-first and stops at the first record that mentions its key (an
//! insert returns the value, a delete returns "absent"); only if none does, the base page decides. Routing in an inner page works the same way: an index-entry delta whose range holds
//! the probe answers at once, otherwise the base page's separators decide.
//!
//! *Collecting* a page (for consolidation, splits and scans) replays the chain onto the base page:
//! the deltas are gathered, sorted by key with the newest first, and merged with the base page's
//! sorted run in one pass.
//!
//! # Why an index entry may answer from its own range
//! An index-entry delta `[separator, child_high) -> child` was posted when the parent routed all of
//! that range to the child's left neighbour. A later split of `child` posts a *newer* entry, which a
//! newest-first walk meets first. Routing is therefore never too far right; at worst it is too far
//! left (a page that has since split), which the B-link rule repairs by following right links. Page
//! low keys never change for a PID, which is what makes "too far left" detectable and safe.

mod collect;
mod lookup;
#[cfg(all(test, not(loom)))]
mod tests;

pub(crate) use collect::*;
pub(crate) use lookup::*;
