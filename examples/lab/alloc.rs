//! A counting global allocator, for the `memory` workload's bytes per key.
//!
//! [`Counting`] forwards every call to the system allocator. While a [`Window`] is open it also adds
//! each allocation's size to one net counter and subtracts each deallocation's, so the counter ends
//! as the live heap bytes the window's work left behind. Outside a window the only cost is one
//! `Relaxed` load of a flag that nothing writes while the throughput cells run, so counting does not
//! distort the throughput measurements (an always-on shared counter would be one contended atomic
//! add per allocation, which would penalise the maps that allocate per operation).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

/// The system allocator plus a net byte count while a [`Window`] is open.
pub struct Counting;

/// Whether a window is open.
static OPEN: AtomicBool = AtomicBool::new(false);

/// Bytes allocated minus bytes freed since the window opened.
static NET: AtomicI64 = AtomicI64::new(0);

/// Adds `delta` to the net count if a window is open.
#[inline]
fn note(delta: i64) {
    // Relaxed: the flag and the count are only read back by the thread that opened the window,
    // after it joined every thread that allocated inside it (joining synchronises); threads see
    // the flag set because they were spawned after it was set (spawning synchronises).
    if OPEN.load(Ordering::Relaxed) {
        NET.fetch_add(delta, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards its arguments unchanged to `System` and returns what `System`
// returned, so `System`'s implementation of the `GlobalAlloc` contract is ours; the bookkeeping
// touches two atomics, never allocates and never unwinds.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc`'s contract (a layout of non-zero size), which is
        // exactly what `System.alloc` requires.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            note(layout.size() as i64);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            note(layout.size() as i64);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller guarantees `ptr` came from this allocator (hence from `System`, which
        // every method forwards to) with this `layout`.
        unsafe { System.dealloc(ptr, layout) };
        note(-(layout.size() as i64));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `ptr` came from this allocator (hence from `System`) with
        // `layout`, and that `new_size` is non-zero and does not overflow when rounded to the
        // alignment: `System.realloc`'s requirements.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            note(new_size as i64 - layout.size() as i64);
        }
        new
    }
}

/// An open measurement window; closing it (dropping it) stops the counting.
///
/// Only one window may be open at a time (the lab opens them from its main thread only).
pub struct Window {
    /// Not constructible outside [`Window::open`].
    _private: (),
}

impl Window {
    /// Resets the net count and starts counting.
    pub fn open() -> Window {
        // Relaxed: see `note`; the threads that allocate inside the window start after this.
        NET.store(0, Ordering::Relaxed);
        OPEN.store(true, Ordering::Relaxed);
        Window { _private: () }
    }

    /// Live bytes allocated since the window opened (negative if it freed older memory).
    ///
    /// Exact once every thread that allocated in the window has been joined.
    pub fn net_bytes(&self) -> i64 {
        // Relaxed: see `note`.
        NET.load(Ordering::Relaxed)
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        // Relaxed: see `note`.
        OPEN.store(false, Ordering::Relaxed);
    }
}
