//! The one place the crate takes its synchronisation primitives from.
//!
//! Under `--cfg loom` every atomic, `Arc` and yield comes from [loom] so that the model checker sees
//! (and permutes) each of them; otherwise they are the standard library's. No other module imports
//! `std::sync::atomic` directly. crossbeam-epoch switches to loom by itself when built with its `loom`
//! feature and `--cfg crossbeam_loom` (see `tests/loom.rs`).
//!
//! [loom]: https://docs.rs/loom

#[cfg(loom)]
pub(crate) use loom::sync::Arc;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicPtr, AtomicU8, AtomicU64, Ordering};

#[cfg(not(loom))]
pub(crate) use std::sync::Arc;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicPtr, AtomicU8, AtomicU64, Ordering};

/// Gives other threads a chance to run inside a retry loop.
///
/// Under loom every retry loop must yield, or the model checker would explore an unbounded spin.
#[inline]
pub(crate) fn retry_pause() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    core::hint::spin_loop();
}

/// A marker written when a node is built and read each time a thread dereferences it.
///
/// Outside loom it is empty and costs nothing. Under loom it is a `loom::cell::UnsafeCell`, so the
/// model checker verifies that every read of a published node *happens after* the write that built
/// it: a publication with a too-weak ordering (a `Relaxed` CAS, say) is reported as a causality
/// violation instead of passing silently, since loom does not track plain fields.
#[derive(Default)]
pub(crate) struct PublishWitness {
    #[cfg(loom)]
    cell: loom::cell::UnsafeCell<u8>,
}

impl PublishWitness {
    /// Records, under loom, a write by the thread that builds the node.
    #[inline]
    pub(crate) fn new() -> Self {
        let witness = Self::default();
        #[cfg(loom)]
        witness.cell.with_mut(|p| {
            // SAFETY: the node is still private to the building thread, so this is the only access.
            unsafe { *p = 1 }
        });
        witness
    }

    /// Records, under loom, a read by a thread that reached the node through a shared pointer.
    #[inline]
    pub(crate) fn observe(&self) {
        #[cfg(loom)]
        self.cell.with(|p| {
            // SAFETY: after publication the cell is only read; loom checks that the write that built
            // it happens before this read.
            let _ = unsafe { *p };
        });
    }
}
