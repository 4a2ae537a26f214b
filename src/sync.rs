//! The one place the crate takes its synchronisation primitives from.
//!
//! Under `--cfg loom` every atomic, `Arc` and yield comes from [loom] so that the model checker sees
//! (and permutes) each of them; otherwise they are the standard library's. crossbeam-epoch switches
//! to loom by itself when built with its `loom` feature and `--cfg crossbeam_loom` (see
//! `tests/loom.rs`).
//!
//! No other module names `std::sync::atomic` or `core::sync::atomic` types: `clippy.toml` forbids
//! them everywhere, and this module alone wraps them (in [`std_atomics`], transparent newtypes that
//! dereference to the standard type), so that a new atomic cannot bypass loom by accident. Atomics
//! that loom must not see are taken from [`unmodeled`], which says why.
//!
//! [loom]: https://docs.rs/loom

#[cfg(loom)]
pub(crate) use loom::sync::Arc;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicPtr, AtomicU8, AtomicU64};

#[cfg(not(loom))]
pub(crate) use std::sync::Arc;
#[cfg(not(loom))]
pub(crate) use std_atomics::{AtomicPtr, AtomicU8, AtomicU64};

pub(crate) use core::sync::atomic::Ordering;

/// Atomics that loom deliberately does not see. They are the standard library's under every cfg:
/// - the statistics counters (see `research::counters`), which carry no protocol data, so a model
///   explores the same interleavings with statistics on or off;
/// - process-wide switches and test hooks (page recycling, fault injection, the maintenance
///   thread's stop flag, the handle pool's loom-only mode), which are not part of the protocol;
/// - the child pointers a frozen view caches (`research::frozen`), written and read only while the
///   tree is exclusively borrowed;
/// - the in-crate baseline maps, which loom does not model.
pub(crate) mod unmodeled {
    #[cfg(test)]
    pub(crate) use super::std_atomics::AtomicIsize;
    pub(crate) use super::std_atomics::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize};
    pub(crate) use core::sync::atomic::{Ordering, fence};
}

/// The standard library's atomics as transparent newtypes (see the module docs): each dereferences
/// to the standard type, so every method is available unchanged.
#[allow(clippy::disallowed_types)]
pub(crate) mod std_atomics {
    use core::ops::{Deref, DerefMut};
    use core::sync::atomic as std_atomic;

    macro_rules! wrap {
        ($(#[$doc:meta])* $name:ident $(<$t:ident>)?, $value:ty) => {
            $(#[$doc])*
            #[repr(transparent)]
            #[derive(Debug, Default)]
            pub(crate) struct $name$(<$t>)?(std_atomic::$name$(<$t>)?);

            impl$(<$t>)? $name$(<$t>)? {
                /// A new atomic holding `value`.
                #[allow(dead_code)]
                #[inline]
                pub(crate) const fn new(value: $value) -> Self {
                    Self(std_atomic::$name::new(value))
                }

                /// The value, from an exclusively owned atomic.
                #[allow(dead_code)]
                #[inline]
                pub(crate) fn into_inner(self) -> $value {
                    self.0.into_inner()
                }
            }

            impl$(<$t>)? Deref for $name$(<$t>)? {
                type Target = std_atomic::$name$(<$t>)?;

                #[inline]
                fn deref(&self) -> &Self::Target {
                    &self.0
                }
            }

            impl$(<$t>)? DerefMut for $name$(<$t>)? {
                #[inline]
                fn deref_mut(&mut self) -> &mut Self::Target {
                    &mut self.0
                }
            }
        };
    }

    wrap!(
        /// [`core::sync::atomic::AtomicBool`].
        AtomicBool, bool
    );
    wrap!(
        /// [`core::sync::atomic::AtomicU8`].
        AtomicU8, u8
    );
    wrap!(
        /// [`core::sync::atomic::AtomicU64`].
        AtomicU64, u64
    );
    wrap!(
        /// [`core::sync::atomic::AtomicUsize`].
        AtomicUsize, usize
    );
    wrap!(
        /// [`core::sync::atomic::AtomicIsize`].
        AtomicIsize, isize
    );
    wrap!(
        /// [`core::sync::atomic::AtomicPtr`].
        AtomicPtr<T>, *mut T
    );
}

/// The ordering of the loads that read a published page state or the root PID.
///
/// `Acquire`, pairing with the `Release` half of the CAS or store that published it. Only in the
/// research build `RUSTFLAGS="--cfg bwtree_relaxed_loads"` is it `Relaxed`, to measure what the
/// acquire loads cost (SIGMOD'18 §6.3 removed atomics from a single-threaded read-only run). **That
/// build is unsound as soon as a tree is used by more than one thread**: a reader could see a page
/// pointer before the page's contents. It exists for single-threaded measurements only, and is a
/// `--cfg` rather than a cargo feature so that no dependent crate can switch it on by accident.
#[cfg(not(bwtree_relaxed_loads))]
pub(crate) const PUBLISHED_LOAD: Ordering = Ordering::Acquire;
/// See the other definition: the unsound, single-thread-only research variant.
#[cfg(bwtree_relaxed_loads)]
pub(crate) const PUBLISHED_LOAD: Ordering = Ordering::Relaxed;

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
