//! Thread-local recycling of base-page memory.
//!
//! Base pages are the tree's large allocations (about 1–2 KiB with the default 128-entry pages):
//! a consolidation builds one every few updates of a leaf and retires the one it replaces. The
//! epoch collector frees a retired page on whichever thread happens to collect, usually not the one
//! that allocated it, and for blocks of this size the system allocator (glibc) then takes the
//! allocating thread's arena lock on the free while that thread takes the same lock for its next
//! page. Measured with `cargo run --release --example profile -- scaling [--no-recycling]` (1M
//! keys loaded, 400k fresh random inserts on 1 and on 2 threads): without recycling two threads
//! ran 1.07–1.16× one thread, with it 1.47–1.55× (0.85–0.94 M inserts/s on 2 threads instead of
//! 0.52–0.64); a single glibc arena for both threads (`GLIBC_TUNABLES=glibc.malloc.arena_max=1`)
//! made two threads slower than one, and chains long enough that consolidations are rare (leaf
//! chain threshold 64) let them scale 1.6–1.8× even without recycling.
//!
//! So a thread that frees a base page keeps its block, sorted by size class, and the next base page
//! of that class the thread builds reuses it. Both are pushes and pops on thread-local lists: no
//! lock, no shared cache line. Each thread keeps at most [`BLOCKS_PER_CLASS`] blocks per class and
//! [`MAX_POOL_BYTES`] in all, frees the rest, and frees its pool when it exits (consecutive
//! versions of a page fall in the same class or a neighbouring one, so a few classes do the work).
//!
//! A block's class is its size rounded up to [`CLASS_BYTES`]; pooled pages are allocated with the
//! rounded size, so a block is always freed or reused with the layout it was allocated with. Pages
//! larger than the largest class, or aligned beyond a cache line, bypass the pool.
//!
//! [`set_page_recycling`] turns the pool off for the whole process: for programs whose allocator
//! already keeps per-thread caches of such blocks, and for memory checkers such as valgrind, which
//! can only see a use after free if every free reaches the allocator. Under loom the pool is
//! compiled out.

use core::alloc::Layout;
use core::ptr::NonNull;

/// Size classes are multiples of this many bytes.
pub(crate) const CLASS_BYTES: usize = 256;
/// Number of size classes: blocks up to `CLASSES * CLASS_BYTES` (16 KiB) are pooled.
const CLASSES: usize = 64;
/// Blocks a thread keeps per size class; further frees go to the allocator.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) const BLOCKS_PER_CLASS: usize = 16;
/// Bytes a thread keeps in all classes together (128 default-sized leaf pages).
#[cfg_attr(loom, allow(dead_code))]
pub(crate) const MAX_POOL_BYTES: usize = 256 * 1024;
/// The alignment of every pooled block (base pages are aligned to a cache line).
const POOL_ALIGN: usize = 64;

#[cfg(not(loom))]
mod imp {
    use core::cell::RefCell;
    use core::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    /// Process-wide switch (see [`super::set_page_recycling`]).
    static ENABLED: AtomicBool = AtomicBool::new(true);

    /// One thread's free blocks, by size class.
    struct Pool {
        classes: [Vec<NonNull<u8>>; CLASSES],
        /// Total size of the blocks in `classes`.
        bytes: usize,
    }

    impl Drop for Pool {
        fn drop(&mut self) {
            for (class, blocks) in self.classes.iter_mut().enumerate() {
                for block in blocks.drain(..) {
                    // SAFETY: every pooled block of `class` was allocated by `allocate` with
                    // `class_layout(class)` and is owned by the pool alone.
                    unsafe { std::alloc::dealloc(block.as_ptr(), class_layout(class)) };
                }
            }
        }
    }

    std::thread_local! {
        static POOL: RefCell<Pool> = const {
            RefCell::new(Pool { classes: [const { Vec::new() }; CLASSES], bytes: 0 })
        };
    }

    pub(super) fn set_enabled(enabled: bool) {
        // Relaxed: the switch orders nothing; a thread that still sees the old value pools (or
        // does not pool) one more block, which is correct either way.
        ENABLED.store(enabled, Ordering::Relaxed);
    }

    pub(super) fn enabled() -> bool {
        // Relaxed: see `set_enabled`.
        ENABLED.load(Ordering::Relaxed)
    }

    /// Frees every block this thread keeps.
    pub(super) fn drain() {
        let _ = POOL.try_with(|pool| {
            let mut pool = pool.borrow_mut();
            let blocks = core::mem::replace(
                &mut *pool,
                Pool {
                    classes: [const { Vec::new() }; CLASSES],
                    bytes: 0,
                },
            );
            drop(pool);
            // `Pool::drop` frees the blocks.
            drop(blocks);
        });
    }

    /// A pooled block of `class`, if this thread has one.
    pub(super) fn take(class: usize) -> Option<NonNull<u8>> {
        POOL.try_with(|pool| {
            let mut pool = pool.borrow_mut();
            let block = pool.classes[class].pop()?;
            pool.bytes -= class_layout(class).size();
            Some(block)
        })
        .ok()
        .flatten()
    }

    /// Keeps `block` of `class` for reuse; `false` if this thread's list for it is full (or the
    /// thread is exiting), in which case the caller frees it.
    pub(super) fn keep(class: usize, block: NonNull<u8>) -> bool {
        POOL.try_with(|pool| {
            let pool = &mut *pool.borrow_mut();
            let size = class_layout(class).size();
            let blocks = &mut pool.classes[class];
            if blocks.len() < BLOCKS_PER_CLASS && pool.bytes + size <= MAX_POOL_BYTES {
                // Reserved once for the class's whole bound, so keeping never allocates again.
                blocks.reserve_exact(BLOCKS_PER_CLASS - blocks.len());
                blocks.push(block);
                pool.bytes += size;
                true
            } else {
                false
            }
        })
        .unwrap_or(false)
    }
}

#[cfg(loom)]
mod imp {
    use super::*;

    pub(super) fn set_enabled(_enabled: bool) {}

    pub(super) fn enabled() -> bool {
        false
    }

    pub(super) fn drain() {}

    pub(super) fn take(_class: usize) -> Option<NonNull<u8>> {
        None
    }

    pub(super) fn keep(_class: usize, _block: NonNull<u8>) -> bool {
        false
    }
}

/// Turns the recycling of base-page memory on or off for the whole process (on by default).
///
/// With recycling on, a thread that frees a base page keeps the block for the next page it builds
/// (see the `page_pool` module docs: with glibc's allocator this is what lets consolidations on
/// several threads run in parallel). Turn it off when the process allocator already caches such
/// blocks per thread (jemalloc, mimalloc), or to run under a memory checker such as valgrind, which
/// only sees a use after free if every free reaches the allocator. Blocks already pooled stay
/// pooled until their thread reuses or frees them.
pub fn set_page_recycling(enabled: bool) {
    imp::set_enabled(enabled);
}

/// Frees the page blocks the calling thread keeps for reuse (see [`set_page_recycling`]).
///
/// A thread keeps at most 256 KiB of them and frees them when it exits; a long-lived thread that
/// has dropped its trees can hand them back to the allocator earlier with this call.
pub fn release_recycled_pages() {
    imp::drain();
}

/// The size class of a block of `layout`, if such blocks are pooled.
#[inline]
fn class_of(layout: Layout) -> Option<usize> {
    if layout.align() != POOL_ALIGN || layout.size() == 0 {
        return None;
    }
    let class = (layout.size() - 1) / CLASS_BYTES;
    (class < CLASSES).then_some(class)
}

/// The layout pooled blocks of `class` are allocated with.
#[inline]
fn class_layout(class: usize) -> Layout {
    Layout::from_size_align((class + 1) * CLASS_BYTES, POOL_ALIGN)
        .expect("size classes are small and the alignment is a power of two")
}

/// Allocates a block for `layout` (a reused one where this thread has one); aborts through
/// `handle_alloc_error` if the allocator fails.
pub(crate) fn allocate(layout: Layout) -> NonNull<u8> {
    let actual = match class_of(layout) {
        Some(class) if imp::enabled() => {
            if let Some(block) = imp::take(class) {
                return block;
            }
            class_layout(class)
        }
        // Allocated with the class layout even when recycling is off, so that a block allocated
        // while it was off can be pooled after it is turned on (and the other way round).
        Some(class) => class_layout(class),
        None => layout,
    };
    // SAFETY: every layout passed here has a non-zero size (base pages contain their header).
    let raw = unsafe { std::alloc::alloc(actual) };
    NonNull::new(raw).unwrap_or_else(|| std::alloc::handle_alloc_error(actual))
}

/// Frees (or keeps for reuse) a block that [`allocate`] returned for `layout`.
///
/// # Safety
/// `block` must come from `allocate(layout)` with this same `layout`, its contents must already be
/// dropped, and nothing may use it afterwards.
pub(crate) unsafe fn release(block: NonNull<u8>, layout: Layout) {
    let actual = match class_of(layout) {
        Some(class) => {
            if imp::enabled() && imp::keep(class, block) {
                return;
            }
            class_layout(class)
        }
        None => layout,
    };
    // SAFETY: the caller's contract: `allocate` allocated `block` with `actual` (the class layout
    // for pooled sizes, `layout` otherwise).
    unsafe { std::alloc::dealloc(block.as_ptr(), actual) };
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_freed_block_is_reused_by_the_same_thread_for_its_class() {
        let layout = Layout::from_size_align(1500, POOL_ALIGN).unwrap();
        let first = allocate(layout);
        // SAFETY: allocated just above with `layout`, nothing inside to drop.
        unsafe { release(first, layout) };
        // A different size of the same class (1281..=1536 bytes) gets the same block back.
        let similar = Layout::from_size_align(1300, POOL_ALIGN).unwrap();
        let second = allocate(similar);
        assert_eq!(first, second);
        // SAFETY: as above.
        unsafe { release(second, similar) };
        // Another thread has its own pool.
        let other = std::thread::spawn(move || allocate(layout).as_ptr() as usize)
            .join()
            .unwrap();
        assert_ne!(other, first.as_ptr() as usize);
    }

    #[test]
    fn classes_and_bypass() {
        assert_eq!(class_of(Layout::from_size_align(1, 64).unwrap()), Some(0));
        assert_eq!(class_of(Layout::from_size_align(256, 64).unwrap()), Some(0));
        assert_eq!(class_of(Layout::from_size_align(257, 64).unwrap()), Some(1));
        assert_eq!(
            class_of(Layout::from_size_align(CLASSES * CLASS_BYTES, 64).unwrap()),
            Some(CLASSES - 1)
        );
        assert_eq!(
            class_of(Layout::from_size_align(CLASSES * CLASS_BYTES + 1, 64).unwrap()),
            None
        );
        assert_eq!(class_of(Layout::from_size_align(100, 128).unwrap()), None);
        // A large block round-trips through the allocator.
        let big = Layout::from_size_align(1 << 20, 64).unwrap();
        let block = allocate(big);
        // SAFETY: allocated just above with `big`.
        unsafe { release(block, big) };
    }

    #[test]
    fn a_full_class_frees_further_blocks() {
        let layout = Layout::from_size_align(3000, POOL_ALIGN).unwrap();
        let blocks: Vec<_> = (0..BLOCKS_PER_CLASS + 4)
            .map(|_| allocate(layout))
            .collect();
        let distinct: std::collections::HashSet<_> = blocks.iter().collect();
        assert_eq!(distinct.len(), blocks.len());
        for &block in &blocks {
            // SAFETY: each allocated above with `layout`, released once.
            unsafe { release(block, layout) };
        }
        assert_eq!(imp_len(class_of(layout).unwrap()), BLOCKS_PER_CLASS);
        release_recycled_pages();
        assert_eq!(imp_len(class_of(layout).unwrap()), 0);
    }

    #[test]
    fn a_thread_keeps_at_most_max_pool_bytes() {
        // Fill the pool with the largest class up to the byte bound, then free a small block: the
        // per-class bound would let it in, the byte bound does not.
        let large = Layout::from_size_align(CLASSES * CLASS_BYTES, POOL_ALIGN).unwrap();
        let fill = MAX_POOL_BYTES / large.size();
        let blocks: Vec<_> = (0..fill).map(|_| allocate(large)).collect();
        for &block in &blocks {
            // SAFETY: each allocated above with `large`, released once.
            unsafe { release(block, large) };
        }
        assert_eq!(imp_len(CLASSES - 1), fill);
        let small = Layout::from_size_align(100, POOL_ALIGN).unwrap();
        let block = allocate(small);
        // SAFETY: allocated just above with `small`.
        unsafe { release(block, small) };
        assert_eq!(imp_len(0), 0);
    }

    /// Blocks this thread keeps for `class` (drains and restores them).
    fn imp_len(class: usize) -> usize {
        let mut taken = Vec::new();
        while let Some(block) = imp::take(class) {
            taken.push(block);
        }
        let n = taken.len();
        for block in taken {
            assert!(imp::keep(class, block));
        }
        n
    }
}
