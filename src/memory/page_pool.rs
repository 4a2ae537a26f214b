//! Thread-local recycling of node memory: base pages and delta records.
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
//! Delta records are small (about 90 bytes for a u64 → u64 insert delta) and many: every update
//! allocates one, and a retired chain frees all of its deltas in one go, so the collector frees
//! them in bursts of hundreds (a bag of retired chains at a time). glibc's per-thread cache holds
//! 7 blocks per size, so most of a burst went back to the arena (and was consolidated there)
//! and the next updates took it out again.
//!
//! So a thread that frees a node keeps its block, sorted by size class, and the next node of that
//! class the thread builds reuses it. Both are pushes and pops on thread-local free lists threaded
//! through the free blocks themselves: no lock, no shared cache line, no allocation. There are two
//! tiers of classes:
//! - *small* blocks (up to [`SMALL_CLASSES`]` * `[`SMALL_CLASS_BYTES`] bytes, alignment at most
//!   [`SMALL_ALIGN`]): delta records; at most [`SMALL_BLOCKS_PER_CLASS`] per class and
//!   [`MAX_SMALL_BYTES`] in all;
//! - *page* blocks (alignment [`PAGE_ALIGN`], up to [`PAGE_CLASSES`]` * `[`PAGE_CLASS_BYTES`]
//!   bytes): base pages; at most [`PAGES_PER_CLASS`] per class and [`MAX_PAGE_BYTES`] in all
//!   (consecutive versions of a page fall in the same class or a neighbouring one, so a few
//!   classes do the work).
//!
//! Further frees go to the allocator, and a thread frees its pool when it exits. A block's class is
//! its size rounded up to its tier's class size; pooled blocks are allocated with the class layout,
//! so a block is always freed or reused with the layout it was allocated with. Other layouts
//! bypass the pool.
//!
//! [`set_page_recycling`] turns the pool off for the whole process: for programs whose allocator
//! already keeps per-thread caches of such blocks, and for memory checkers such as valgrind, which
//! can only see a use after free if every free reaches the allocator. Under loom the pool is
//! compiled out.

use core::alloc::Layout;
use core::ptr::NonNull;

/// Small size classes (delta records) are multiples of this many bytes.
pub(crate) const SMALL_CLASS_BYTES: usize = 16;
/// Number of small size classes: blocks up to 256 bytes.
pub(crate) const SMALL_CLASSES: usize = 16;
/// The alignment of every small block; larger alignments bypass the small tier.
const SMALL_ALIGN: usize = 16;
/// Small blocks a thread keeps per class: a burst of frees from the collector (a bag of retired
/// chains) fits.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) const SMALL_BLOCKS_PER_CLASS: usize = 1024;
/// Bytes a thread keeps in small blocks.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) const MAX_SMALL_BYTES: usize = 128 * 1024;

/// Page size classes are multiples of this many bytes.
pub(crate) const PAGE_CLASS_BYTES: usize = 256;
/// Number of page size classes: blocks up to 16 KiB.
pub(crate) const PAGE_CLASSES: usize = 64;
/// The alignment of every pooled page block (base pages are aligned to a cache line).
const PAGE_ALIGN: usize = 64;
/// Page blocks a thread keeps per class.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) const PAGES_PER_CLASS: usize = 16;
/// Bytes a thread keeps in page blocks (128 default-sized leaf pages).
#[cfg_attr(loom, allow(dead_code))]
pub(crate) const MAX_PAGE_BYTES: usize = 256 * 1024;

/// All classes: the small ones first, then the page ones.
#[cfg_attr(loom, allow(dead_code))]
const CLASSES: usize = SMALL_CLASSES + PAGE_CLASSES;

/// A pooled size class: an index into the pool's classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Class(usize);

impl Class {
    fn is_small(self) -> bool {
        self.0 < SMALL_CLASSES
    }

    /// The layout blocks of this class are allocated with.
    #[inline]
    fn layout(self) -> Layout {
        let (size, align) = if self.is_small() {
            ((self.0 + 1) * SMALL_CLASS_BYTES, SMALL_ALIGN)
        } else {
            ((self.0 - SMALL_CLASSES + 1) * PAGE_CLASS_BYTES, PAGE_ALIGN)
        };
        Layout::from_size_align(size, align)
            .expect("size classes are small and the alignments are powers of two")
    }

    /// How many blocks of this class, and how many bytes of its tier, a thread keeps.
    #[cfg_attr(loom, allow(dead_code))]
    fn bounds(self) -> (usize, usize) {
        if self.is_small() {
            (SMALL_BLOCKS_PER_CLASS, MAX_SMALL_BYTES)
        } else {
            (PAGES_PER_CLASS, MAX_PAGE_BYTES)
        }
    }
}

/// The size class of a block of `layout`, if such blocks are pooled.
#[inline]
fn class_of(layout: Layout) -> Option<Class> {
    let size = layout.size();
    if size == 0 {
        return None;
    }
    if layout.align() <= SMALL_ALIGN && size <= SMALL_CLASSES * SMALL_CLASS_BYTES {
        return Some(Class((size - 1) / SMALL_CLASS_BYTES));
    }
    if layout.align() != PAGE_ALIGN {
        return None;
    }
    let class = (size - 1) / PAGE_CLASS_BYTES;
    (class < PAGE_CLASSES).then_some(Class(SMALL_CLASSES + class))
}

#[cfg(not(loom))]
mod imp {
    use crate::sync::unmodeled::{AtomicBool, Ordering};
    use core::cell::RefCell;

    use super::*;

    /// Process-wide switch (see [`super::set_page_recycling`]).
    static ENABLED: AtomicBool = AtomicBool::new(true);

    /// The link stored in the first bytes of a free block (every class is at least 16 bytes and
    /// 16-byte aligned, so it fits).
    struct FreeBlock {
        next: Option<NonNull<FreeBlock>>,
    }

    /// One class's free blocks: a list threaded through them.
    #[derive(Clone, Copy)]
    struct FreeList {
        head: Option<NonNull<FreeBlock>>,
        len: usize,
    }

    const EMPTY: FreeList = FreeList { head: None, len: 0 };

    /// One thread's free blocks, by size class.
    struct Pool {
        classes: [FreeList; CLASSES],
        /// Total size of the small blocks kept.
        small_bytes: usize,
        /// Total size of the page blocks kept.
        page_bytes: usize,
    }

    const EMPTY_POOL: Pool = Pool {
        classes: [EMPTY; CLASSES],
        small_bytes: 0,
        page_bytes: 0,
    };

    impl Pool {
        fn tier_bytes(&mut self, class: Class) -> &mut usize {
            if class.is_small() {
                &mut self.small_bytes
            } else {
                &mut self.page_bytes
            }
        }
    }

    impl Drop for Pool {
        fn drop(&mut self) {
            for (index, list) in self.classes.iter_mut().enumerate() {
                let layout = Class(index).layout();
                let mut next = list.head.take();
                while let Some(block) = next {
                    // SAFETY: every block on a list is a free block of that class, owned by the
                    // pool alone; its link was written by `keep`.
                    unsafe {
                        next = (*block.as_ptr()).next;
                        std::alloc::dealloc(block.as_ptr().cast(), layout);
                    }
                }
                list.len = 0;
            }
        }
    }

    std::thread_local! {
        static POOL: RefCell<Pool> = const { RefCell::new(EMPTY_POOL) };
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
            let blocks = core::mem::replace(&mut *pool.borrow_mut(), EMPTY_POOL);
            // `Pool::drop` frees the blocks.
            drop(blocks);
        });
    }

    /// A pooled block of `class`, if this thread has one.
    #[inline]
    pub(super) fn take(class: Class) -> Option<NonNull<u8>> {
        POOL.try_with(|pool| {
            let pool = &mut *pool.borrow_mut();
            let list = &mut pool.classes[class.0];
            let block = list.head?;
            // SAFETY: the block is on this thread's list: free, owned by the pool, its link
            // written by `keep`.
            list.head = unsafe { (*block.as_ptr()).next };
            list.len -= 1;
            *pool.tier_bytes(class) -= class.layout().size();
            Some(block.cast())
        })
        .ok()
        .flatten()
    }

    /// Keeps `block` of `class` for reuse; `false` if this thread keeps enough of them already (or
    /// the thread is exiting), in which case the caller frees it.
    #[inline]
    pub(super) fn keep(class: Class, block: NonNull<u8>) -> bool {
        POOL.try_with(|pool| {
            let pool = &mut *pool.borrow_mut();
            let size = class.layout().size();
            let (per_class, tier_max) = class.bounds();
            if pool.classes[class.0].len >= per_class || *pool.tier_bytes(class) + size > tier_max {
                return false;
            }
            let list = &mut pool.classes[class.0];
            let free = block.cast::<FreeBlock>();
            // SAFETY: the caller gives up the block (its contents already dropped); it is at least
            // 16 bytes and 16-byte aligned, room for the link.
            unsafe { free.as_ptr().write(FreeBlock { next: list.head }) };
            list.head = Some(free);
            list.len += 1;
            *pool.tier_bytes(class) += size;
            true
        })
        .unwrap_or(false)
    }

    /// Blocks this thread keeps for `class`.
    #[cfg(test)]
    pub(super) fn kept(class: Class) -> usize {
        POOL.with(|pool| pool.borrow().classes[class.0].len)
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

    pub(super) fn take(_class: Class) -> Option<NonNull<u8>> {
        None
    }

    pub(super) fn keep(_class: Class, _block: NonNull<u8>) -> bool {
        false
    }
}

/// Turns the recycling of node memory (base pages and delta records) on or off for the whole
/// process (on by default).
///
/// With recycling on, a thread that frees a base page or a delta record keeps the block for the
/// next one of the same size it builds (see the `page_pool` module docs: with glibc's allocator
/// this is what lets consolidations on several threads run in parallel). Turn it off when the
/// process allocator already caches such blocks per thread (jemalloc, mimalloc), or to run under a
/// memory checker such as valgrind, which only sees a use after free if every free reaches the
/// allocator. Blocks already pooled stay pooled until their thread reuses or frees them.
pub fn set_page_recycling(enabled: bool) {
    imp::set_enabled(enabled);
}

/// Frees the node blocks the calling thread keeps for reuse (see [`set_page_recycling`]).
///
/// A thread keeps at most 256 KiB of page blocks and 128 KiB of delta blocks, and frees them when
/// it exits; a long-lived thread that has dropped its trees can hand them back to the allocator
/// earlier with this call.
pub fn release_recycled_pages() {
    imp::drain();
}

/// Allocates a block for `layout` (a reused one where this thread has one); aborts through
/// `handle_alloc_error` if the allocator fails.
#[inline]
pub(crate) fn allocate(layout: Layout) -> NonNull<u8> {
    let actual = match class_of(layout) {
        Some(class) if imp::enabled() => {
            if let Some(block) = imp::take(class) {
                return block;
            }
            class.layout()
        }
        // Allocated with the class layout even when recycling is off, so that a block allocated
        // while it was off can be pooled after it is turned on (and the other way round).
        Some(class) => class.layout(),
        None => layout,
    };
    // SAFETY: every layout passed here has a non-zero size (every node contains its header).
    let raw = unsafe { std::alloc::alloc(actual) };
    NonNull::new(raw).unwrap_or_else(|| std::alloc::handle_alloc_error(actual))
}

/// Frees (or keeps for reuse) a block that [`allocate`] returned for `layout`.
///
/// # Safety
/// `block` must come from `allocate(layout)` with this same `layout`, its contents must already be
/// dropped, and nothing may use it afterwards.
#[inline]
pub(crate) unsafe fn release(block: NonNull<u8>, layout: Layout) {
    let actual = match class_of(layout) {
        Some(class) => {
            if imp::enabled() && imp::keep(class, block) {
                return;
            }
            class.layout()
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

    fn page(size: usize) -> Layout {
        Layout::from_size_align(size, PAGE_ALIGN).unwrap()
    }

    #[test]
    fn a_freed_block_is_reused_by_the_same_thread_for_its_class() {
        for (layout, similar) in [
            // Page blocks: a different size of the same class (1281..=1536 bytes).
            (page(1500), page(1300)),
            // Small blocks: 81..=96 bytes, any alignment up to 16.
            (
                Layout::from_size_align(88, 8).unwrap(),
                Layout::from_size_align(96, 16).unwrap(),
            ),
        ] {
            let first = allocate(layout);
            // SAFETY: allocated just above with `layout`, nothing inside to drop.
            unsafe { release(first, layout) };
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
    }

    #[test]
    fn classes_and_bypass() {
        let small = |size, align| class_of(Layout::from_size_align(size, align).unwrap());
        assert_eq!(small(1, 1), Some(Class(0)));
        assert_eq!(small(16, 16), Some(Class(0)));
        assert_eq!(small(17, 8), Some(Class(1)));
        assert_eq!(small(256, 8), Some(Class(SMALL_CLASSES - 1)));
        // Too large or too aligned for the small tier, not page-aligned: bypass.
        assert_eq!(small(257, 8), None);
        assert_eq!(small(100, 32), None);
        assert_eq!(class_of(page(1)), Some(Class(SMALL_CLASSES)));
        assert_eq!(class_of(page(256)), Some(Class(SMALL_CLASSES)));
        assert_eq!(class_of(page(257)), Some(Class(SMALL_CLASSES + 1)));
        assert_eq!(
            class_of(page(PAGE_CLASSES * PAGE_CLASS_BYTES)),
            Some(Class(CLASSES - 1))
        );
        assert_eq!(class_of(page(PAGE_CLASSES * PAGE_CLASS_BYTES + 1)), None);
        assert_eq!(small(100, 128), None);
        for index in 0..CLASSES {
            let layout = Class(index).layout();
            assert_eq!(class_of(layout), Some(Class(index)), "{layout:?}");
        }
        // A large block round-trips through the allocator.
        let big = page(1 << 20);
        let block = allocate(big);
        // SAFETY: allocated just above with `big`.
        unsafe { release(block, big) };
    }

    #[test]
    fn a_full_class_frees_further_blocks() {
        for (layout, bound) in [
            (page(3000), PAGES_PER_CLASS),
            (
                Layout::from_size_align(40, 8).unwrap(),
                SMALL_BLOCKS_PER_CLASS,
            ),
        ] {
            let class = class_of(layout).unwrap();
            let blocks: Vec<_> = (0..bound + 4).map(|_| allocate(layout)).collect();
            let distinct: std::collections::HashSet<_> = blocks.iter().collect();
            assert_eq!(distinct.len(), blocks.len());
            for &block in &blocks {
                // SAFETY: each allocated above with `layout`, released once.
                unsafe { release(block, layout) };
            }
            assert_eq!(imp::kept(class), bound);
            // Reuse takes them back out, newest first.
            let again = allocate(layout);
            assert_eq!(again, blocks[bound - 1]);
            assert_eq!(imp::kept(class), bound - 1);
            // SAFETY: as above.
            unsafe { release(again, layout) };
            release_recycled_pages();
            assert_eq!(imp::kept(class), 0);
        }
    }

    #[test]
    fn a_thread_keeps_at_most_its_tiers_bytes() {
        // Fill the page tier with the largest class up to its byte bound, then free a small page:
        // the per-class bound would let it in, the byte bound does not. The small tier is bounded
        // separately, so a delta-sized block is still kept.
        let large = page(PAGE_CLASSES * PAGE_CLASS_BYTES);
        let fill = MAX_PAGE_BYTES / large.size();
        let blocks: Vec<_> = (0..fill).map(|_| allocate(large)).collect();
        for &block in &blocks {
            // SAFETY: each allocated above with `large`, released once.
            unsafe { release(block, large) };
        }
        assert_eq!(imp::kept(Class(CLASSES - 1)), fill);
        let small_page = page(100);
        let delta = Layout::from_size_align(100, 8).unwrap();
        for layout in [small_page, delta] {
            let block = allocate(layout);
            // SAFETY: allocated just above with `layout`.
            unsafe { release(block, layout) };
        }
        assert_eq!(imp::kept(class_of(small_page).unwrap()), 0);
        assert_eq!(imp::kept(class_of(delta).unwrap()), 1);
        // The small tier's byte bound: the largest small class holds fewer blocks than its
        // per-class bound allows.
        let largest = Class(SMALL_CLASSES - 1).layout();
        let blocks: Vec<_> = (0..SMALL_BLOCKS_PER_CLASS)
            .map(|_| allocate(largest))
            .collect();
        for &block in &blocks {
            // SAFETY: each allocated above with `largest`, released once.
            unsafe { release(block, largest) };
        }
        let kept_small = imp::kept(Class(SMALL_CLASSES - 1)) * largest.size()
            + imp::kept(class_of(delta).unwrap()) * class_of(delta).unwrap().layout().size();
        assert!(kept_small <= MAX_SMALL_BYTES);
        assert!(imp::kept(Class(SMALL_CLASSES - 1)) < SMALL_BLOCKS_PER_CLASS);
        release_recycled_pages();
    }
}
