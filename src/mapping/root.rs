//! The root PID: the one word outside the mapping table that a structure modification changes.

use crate::mapping::Pid;
use crate::sync::{AtomicU64, Ordering, PUBLISHED_LOAD};

/// The PID of the tree's root page. It changes only by a CAS: a root split publishes a new root
/// above the old one (grow), a root inner page left with one child hands the root to that child
/// (collapse).
pub(crate) struct RootPid(AtomicU64);

impl RootPid {
    /// A root PID naming `pid`, for a tree that is not shared yet.
    pub(crate) fn new(pid: Pid) -> Self {
        RootPid(AtomicU64::new(pid.0))
    }

    /// The current root page.
    #[inline]
    pub(crate) fn load(&self) -> Pid {
        // Acquire: pairs with the Release of the CAS in `switch` that installed this root, so the
        // root page's state (published before) is visible (`PUBLISHED_LOAD`, see `sync`).
        Pid(self.0.load(PUBLISHED_LOAD))
    }

    /// Whether `pid` is the root page now.
    #[inline]
    pub(crate) fn is(&self, pid: Pid) -> bool {
        self.load() == pid
    }

    /// Moves the root from `from` to `to` if it still names `from`; `Err` with the current root
    /// otherwise.
    pub(crate) fn switch(&self, from: Pid, to: Pid) -> Result<(), Pid> {
        // AcqRel: Release publishes the new root PID after its page (published with Release in
        // `MappingTable::allocate`, or long ago for a collapse's child); Acquire on failure: the
        // caller looks at the winner's root next.
        self.0
            .compare_exchange(from.0, to.0, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
            .map_err(Pid)
    }
}
