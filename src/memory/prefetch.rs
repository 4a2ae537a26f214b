//! Cache prefetch hints for the searches inside base pages.
//!
//! A binary search over a page's keys makes a chain of dependent loads: each probe's address
//! depends on the previous comparison, so every cache miss is paid in full, one after another.
//! Asking the CPU to start loading all of the slice's cache lines first turns those serial misses
//! into parallel ones. The hint never faults and has no effect on the program's semantics; off
//! x86_64 it compiles to nothing.

/// Cache-line size assumed for the hints.
#[cfg(all(target_arch = "x86_64", not(loom)))]
const LINE: usize = 64;

/// Asks the CPU to start loading every cache line of `items`.
#[inline(always)]
pub(crate) fn slice<T>(items: &[T]) {
    bytes(items.as_ptr().cast(), core::mem::size_of_val(items));
}

/// Asks the CPU to start loading the cache lines of the `len` bytes at `start`. Any address is
/// allowed: nothing is read, so a stale or dangling one only wastes the hint.
#[inline(always)]
pub(crate) fn bytes(start: *const u8, len: usize) {
    #[cfg(all(target_arch = "x86_64", not(loom)))]
    {
        use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let start = start.cast::<i8>();
        let mut offset = 0;
        while offset < len {
            // SAFETY: `sse`, which `_mm_prefetch` needs, is part of the x86_64 baseline; a prefetch
            // is only a hint, never faults and reads no memory in the abstract machine, so the
            // address need not even be valid (`wrapping_add` keeps its computation defined).
            unsafe { _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(offset)) };
            offset += LINE;
        }
    }
    #[cfg(not(all(target_arch = "x86_64", not(loom))))]
    let _ = (start, len);
}
