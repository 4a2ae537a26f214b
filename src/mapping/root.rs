//! The root PID: the one word outside the mapping table that a structure modification changes,
//! switched by a CAS that cannot be fooled by ABA.
//!
//! The root changes in two ways, each by one CAS on this word: a split of the root grows a new root
//! above it (`protocol::split`), and a root with a single child collapses into that child
//! (`protocol::merge`). A collapse makes a page the root that may have been the root before: the
//! tree grew over it and shrank back. A thread that read the root PID before the grow and still
//! holds it (one about to grow the tree over that same split of the old root, which another thread
//! has completed since) would find the same PID in a word that held only a PID, and its CAS would
//! succeed against a root that is not the one it looked at: it would publish a second root over a
//! finished split, whose right half may be merged away (descents routed there then find no page and
//! restart forever).
//!
//! So the word is a pointer to a small record holding the root PID, and every switch installs a new
//! record. Records are freed through the epoch collector, so the address a pinned thread loaded is
//! not reused while that thread stays pinned: a CAS from the record it loaded succeeds only if the
//! root has not been switched at all since the load, whatever PIDs came and went.

use crossbeam_epoch::{Atomic, Guard, Owned, Shared};

use crate::mapping::Pid;
use crate::sync::{Ordering, PUBLISHED_LOAD};

/// One value of the root word.
struct RootRecord {
    pid: Pid,
}

/// The root of a tree (see the module docs).
pub(crate) struct RootPid {
    current: Atomic<RootRecord>,
}

/// The root as loaded at one moment: the page, and the record a switch must start from.
#[derive(Clone, Copy)]
pub(crate) struct RootView<'g> {
    record: Shared<'g, RootRecord>,
}

impl RootView<'_> {
    /// The root page.
    #[inline]
    pub(crate) fn pid(self) -> Pid {
        // SAFETY: the record was loaded under the guard the view borrows, and records are freed
        // only through the epoch collector after they were switched away (or by `Drop`, which needs
        // `&mut`), so it is alive while the view is. The word never holds null.
        unsafe { self.record.deref() }.pid
    }
}

impl RootPid {
    /// A root naming `pid`, for a tree that is not shared yet.
    pub(crate) fn new(pid: Pid) -> Self {
        RootPid {
            current: Atomic::new(RootRecord { pid }),
        }
    }

    /// The root as of now, to read its PID or to switch from.
    #[inline]
    pub(crate) fn load<'g>(&self, guard: &'g Guard) -> RootView<'g> {
        // Acquire: pairs with the Release of the switch that installed the record, so its PID and
        // the root page published before it are visible (`PUBLISHED_LOAD`, see `sync`).
        RootView {
            record: self.current.load(PUBLISHED_LOAD, guard),
        }
    }

    /// The root page now.
    #[inline]
    pub(crate) fn pid(&self, guard: &Guard) -> Pid {
        self.load(guard).pid()
    }

    /// Whether `pid` is the root page now.
    #[inline]
    pub(crate) fn is(&self, pid: Pid, guard: &Guard) -> bool {
        self.pid(guard) == pid
    }

    /// Switches the root from `from` (a view this thread loaded under `guard`) to `to`. Fails if
    /// the root was switched in between, even if it names `from`'s PID again.
    pub(crate) fn switch(&self, from: RootView<'_>, to: Pid, guard: &Guard) -> bool {
        // AcqRel: Release publishes the new record (and the root page, published before the call)
        // to the Acquire loads of later descents; Acquire on failure: the caller looks at the
        // winner's root next.
        match self.current.compare_exchange(
            from.record,
            Owned::new(RootRecord { pid: to }),
            Ordering::AcqRel,
            Ordering::Acquire,
            guard,
        ) {
            Ok(_) => {
                // SAFETY: the CAS unlinked the old record; only threads pinned now can hold it,
                // and the collector frees it after they have all unpinned.
                unsafe { guard.defer_destroy(from.record) };
                true
            }
            // The new record was never shared: dropping it frees it.
            Err(_) => false,
        }
    }

    /// Points the root at `pid` in a tree no other thread can see yet (bulk loading).
    pub(crate) fn set_unshared(&self, pid: Pid, guard: &Guard) {
        // Relaxed: the tree has not been shared; whatever shares it synchronises.
        let old = self
            .current
            .swap(Owned::new(RootRecord { pid }), Ordering::Relaxed, guard);
        // SAFETY: the swap unlinked the old record; only threads pinned now could hold it (none:
        // the tree is not shared yet), and the collector frees it after they have unpinned.
        unsafe { guard.defer_destroy(old) };
    }
}

impl Drop for RootPid {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: no thread can load the word any more, and the current record is
        // owned by the word alone (earlier ones were handed to the collector when switched away).
        // Relaxed: `&mut` access is already synchronised with every thread that used the tree.
        unsafe {
            let guard = crossbeam_epoch::unprotected();
            drop(self.current.load(Ordering::Relaxed, guard).into_owned());
        }
    }
}
