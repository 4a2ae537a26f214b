//! The one allocation shape of the crate's variable-size nodes: a `#[repr(C)]` header followed, in
//! the same block, by up to three arrays.
//!
//! Base pages (leaf: keys and values; inner: separators, child PIDs and cached child pointers) and
//! batch deltas (keys and optional values) are laid out by [`BlockLayout`] and built in place by a
//! [`Block`], which frees a half-built block — the header and the entries written so far — if
//! building panics. Every block comes from the thread's recycled blocks where it has one (see
//! `memory::page_pool`) and goes back through [`free`].

use core::alloc::Layout;
use core::mem::{align_of, size_of};
use core::ptr::{self, NonNull};

use crate::memory::page_pool;

/// Rounds `offset` up to a multiple of `align` (a power of two).
pub(super) const fn round_up(offset: usize, align: usize) -> usize {
    (offset + align - 1) & !(align - 1)
}

/// One array of a block: its element size and alignment, and its length.
#[derive(Clone, Copy)]
pub(super) struct Array {
    size: usize,
    align: usize,
    len: usize,
}

impl Array {
    /// `len` elements of `T`.
    #[inline]
    pub(super) const fn of<T>(len: usize) -> Self {
        Array {
            size: size_of::<T>(),
            align: align_of::<T>(),
            len,
        }
    }
}

/// The layout of a block holding a header of type `H` followed by `N` arrays, each at its own
/// alignment, and where each array starts (bytes from the block's start).
pub(super) struct BlockLayout<const N: usize> {
    pub(super) layout: Layout,
    pub(super) offsets: [usize; N],
}

impl<const N: usize> BlockLayout<N> {
    /// The block of header `H` and `arrays`, aligned to at least `min_align`.
    #[inline]
    pub(super) fn of<H>(min_align: usize, arrays: [Array; N]) -> Self {
        let (offsets, end) = Self::place::<H>(&arrays);
        let align = arrays
            .iter()
            .fold(min_align.max(align_of::<H>()), |align, array| {
                align.max(array.align)
            });
        let layout = Layout::from_size_align(end, align).expect("node too large");
        BlockLayout { layout, offsets }
    }

    /// Where each array starts, without the layout: what a reader of a finished block needs (its
    /// layout was valid when the block was built).
    #[inline(always)]
    pub(super) fn offsets<H>(arrays: [Array; N]) -> [usize; N] {
        Self::place::<H>(&arrays).0
    }

    /// The arrays' offsets and the block's end.
    #[inline(always)]
    fn place<H>(arrays: &[Array; N]) -> ([usize; N], usize) {
        let mut end = size_of::<H>();
        let mut offsets = [0; N];
        let mut i = 0;
        while i < N {
            offsets[i] = round_up(end, arrays[i].align);
            end = offsets[i] + arrays[i].size * arrays[i].len;
            i += 1;
        }
        (offsets, end)
    }
}

/// The header of a node laid out as a block: it knows how large its block is and how to drop what
/// the block holds.
///
/// # Safety
/// [`BlockHeader::layout`] must return the layout the block was allocated with, computed from the
/// header alone, and [`BlockHeader::drop_contents`] must drop exactly the header's own fields and
/// the first `initialised` entries of its arrays.
pub(super) unsafe trait BlockHeader: Sized {
    /// The layout of the block this header heads.
    fn layout(&self) -> Layout;

    /// Drops the header and the first `initialised` entries of its arrays, not the memory.
    ///
    /// # Safety
    /// `this` must point to a header in its block whose first `initialised` entries are
    /// initialised; nothing may use any of them afterwards.
    unsafe fn drop_contents(this: *mut Self, initialised: usize);
}

/// A block under construction: header written, arrays being filled. Dropped before
/// [`Block::finish`] (a panicking clone or iterator), it drops the header and the `initialised`
/// entries and gives the memory back.
pub(super) struct Block<H: BlockHeader> {
    ptr: NonNull<H>,
    layout: Layout,
    /// Entries written so far, in the sense of [`BlockHeader::drop_contents`].
    pub(super) initialised: usize,
}

impl<H: BlockHeader> Block<H> {
    /// Allocates a block for `header` (whose [`BlockHeader::layout`] sizes it) and writes the
    /// header at its start; the arrays are not written yet.
    #[inline]
    pub(super) fn new(header: H) -> Self {
        let layout = header.layout();
        let ptr = page_pool::allocate(layout).cast::<H>();
        // SAFETY: `allocate` returned a fresh block of `layout`, which has room and alignment for
        // the header at its start (the layout is a `BlockLayout::of::<H>`).
        unsafe { ptr.as_ptr().write(header) };
        Block {
            ptr,
            layout,
            initialised: 0,
        }
    }

    /// The header, for fix-ups that need its final address (pointers into the block itself).
    #[inline]
    pub(super) fn header(&mut self) -> *mut H {
        self.ptr.as_ptr()
    }

    /// The start of the array at `offset` (a [`BlockLayout`] offset of this block's layout).
    #[inline]
    pub(super) fn array<T>(&self, offset: usize) -> *mut T {
        debug_assert!(offset <= self.layout.size());
        // SAFETY: `offset` lies inside the block (the caller takes it from the block's layout).
        unsafe { self.ptr.as_ptr().cast::<u8>().add(offset).cast::<T>() }
    }

    /// The finished block; from here on its owner frees it with [`free`].
    #[inline]
    pub(super) fn finish(self) -> NonNull<H> {
        let ptr = self.ptr;
        core::mem::forget(self);
        ptr
    }
}

impl<H: BlockHeader> Drop for Block<H> {
    fn drop(&mut self) {
        // Only reached when building panicked.
        // SAFETY: the header and the first `initialised` entries were written and nothing else
        // refers to the block; it came from `page_pool::allocate(self.layout)`.
        unsafe {
            H::drop_contents(self.ptr.as_ptr(), self.initialised);
            page_pool::release(self.ptr.cast(), self.layout);
        }
    }
}

/// Drops the header and the first `initialised` entries of a finished block and gives the memory
/// back.
///
/// # Safety
/// `header` must come from [`Block::finish`], its first `initialised` entries must be initialised
/// (all of them, unless the caller moved some out), no other thread may reach it, and it must not
/// be used again.
pub(super) unsafe fn free<H: BlockHeader>(header: *mut H, initialised: usize) {
    // SAFETY: the caller's contract; the layout is read before the header is dropped.
    unsafe {
        let layout = (*header).layout();
        H::drop_contents(header, initialised);
        page_pool::release(NonNull::new_unchecked(header.cast()), layout);
    }
}

/// Writes clones of `src` to the `src.len()` slots starting at `dst`, in one tight loop (for
/// `Copy` types the compiler turns it into a block copy); if a clone panics, drops the clones
/// already written.
///
/// # Safety
/// The slots must be valid for writes, unaliased and hold nothing that needs dropping.
#[inline]
pub(super) unsafe fn write_clones<T: Clone>(dst: *mut T, src: &[T]) {
    let mut written = DropOnUnwind(ptr::slice_from_raw_parts_mut(dst, 0));
    for (i, item) in src.iter().enumerate() {
        // SAFETY: the caller's contract; `i < src.len()`.
        unsafe { dst.add(i).write(item.clone()) };
        written.0 = ptr::slice_from_raw_parts_mut(dst, i + 1);
    }
    core::mem::forget(written);
}

/// Drops the values it points to unless forgotten: cleans up a half-written run when a clone
/// panics.
pub(super) struct DropOnUnwind<T>(pub(super) *mut [T]);

impl<T> Drop for DropOnUnwind<T> {
    fn drop(&mut self) {
        // SAFETY: built from a slice of values just written, which nothing else owns yet (the
        // block's drop does not count them); dropped once, here, or forgotten.
        unsafe { ptr::drop_in_place(self.0) };
    }
}
