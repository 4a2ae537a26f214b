//! Node layout: a cache-line [`Header`] followed, in the same allocation, by the key slots and the
//! value slots (leaves) or child pointers (inner nodes); allocation and freeing; typed access
//! through [`NodeRef`]; and the in-node [`search`].

use crate::sync::unmodeled::{AtomicPtr, AtomicU64, Ordering};
use core::alloc::Layout;
use core::marker::PhantomData;
use core::mem::{align_of, size_of};
use core::ptr::{self, NonNull};
use std::alloc::{alloc_zeroed, dealloc, handle_alloc_error};

use super::OlcBTree;
use super::lock::WriteGuard;

/// The fixed part of a node, followed in the same allocation by its slot arrays.
#[repr(C, align(64))]
pub(super) struct Header {
    pub(super) version: AtomicU64,
    /// Number of keys in use (clamped to `key_cap` by optimistic readers).
    pub(super) count: AtomicU64,
    /// Right sibling; leaves only.
    pub(super) next: AtomicPtr<Header>,
    /// 0 for a leaf, the children's level plus one for an inner node. Immutable.
    pub(super) level: u32,
    /// Number of key slots. Immutable.
    pub(super) key_cap: u32,
}

// Child pointers and `u64` slots share one slot size, so both arrays are laid out alike.
const _: () = assert!(size_of::<AtomicPtr<Header>>() == size_of::<AtomicU64>());
const _: () = assert!(align_of::<AtomicPtr<Header>>() <= align_of::<Header>());
const _: () = assert!(size_of::<Header>() % align_of::<AtomicU64>() == 0);

/// Layout of a node with `key_cap` key slots: leaves have as many value slots, inner nodes one child
/// slot more.
fn node_layout(level: u32, key_cap: u32) -> Layout {
    let slots = 2 * key_cap as usize + usize::from(level != 0);
    Layout::from_size_align(
        size_of::<Header>() + slots * size_of::<AtomicU64>(),
        align_of::<Header>(),
    )
    .expect("capacities are bounded by MAX_PAGE_CAPACITY, so a node's size fits a Layout")
}

/// Allocates an empty, unpublished node. Every slot is zero: key and value 0, child pointer null.
pub(super) fn alloc_node(level: u32, key_cap: u32) -> NonNull<Header> {
    let layout = node_layout(level, key_cap);
    // SAFETY: the layout has a non-zero size (the header alone is 64 bytes).
    let raw = unsafe { alloc_zeroed(layout) }.cast::<Header>();
    let Some(node) = NonNull::new(raw) else {
        handle_alloc_error(layout)
    };
    // SAFETY: `node` is a fresh allocation of at least `size_of::<Header>()` bytes with `Header`'s
    // alignment. The slots after the header are atomics, for which all-zero bytes are valid values.
    unsafe {
        ptr::write(
            node.as_ptr(),
            Header {
                version: AtomicU64::new(0),
                count: AtomicU64::new(0),
                next: AtomicPtr::new(ptr::null_mut()),
                level,
                key_cap,
            },
        )
    };
    node
}

/// A node of a tree that is borrowed for `'t`.
///
/// Invariant: `ptr` was returned by [`alloc_node`] for that tree, whose initialisation happens before
/// this handle's creation. Nodes are freed only by the tree's `Drop`, which the borrow excludes.
#[derive(Clone, Copy)]
pub(super) struct NodeRef<'t> {
    ptr: NonNull<Header>,
    _tree: PhantomData<&'t OlcBTree>,
}

impl<'t> NodeRef<'t> {
    /// # Safety
    /// `ptr` satisfies the type's invariant for `'t`.
    pub(super) unsafe fn new(ptr: NonNull<Header>) -> Self {
        NodeRef {
            ptr,
            _tree: PhantomData,
        }
    }

    /// The node's address.
    #[inline]
    pub(super) fn as_ptr(self) -> *mut Header {
        self.ptr.as_ptr()
    }

    /// Frees the node, with the layout it was allocated with.
    ///
    /// # Safety
    /// Nothing accesses the node afterwards (through this or any other handle), and no other call
    /// frees it.
    pub(super) unsafe fn dealloc(self) {
        let header = self.header();
        let layout = node_layout(header.level, header.key_cap);
        // SAFETY: `ptr` came from `alloc_node`, which used this layout (level and capacity are
        // immutable); the caller guarantees it is freed once and not touched afterwards.
        unsafe { dealloc(self.ptr.as_ptr().cast(), layout) };
    }

    #[inline]
    pub(super) fn header(self) -> &'t Header {
        // SAFETY: by the type's invariant the node is initialised and lives for `'t`; every field
        // that changes after publication is atomic.
        unsafe { self.ptr.as_ref() }
    }

    #[inline]
    pub(super) fn is_leaf(self) -> bool {
        self.header().level == 0
    }

    /// The atomic slots from `offset` (in slots, after the header) on.
    #[inline]
    fn slots<T>(self, offset: usize, len: usize) -> &'t [T] {
        // SAFETY: `alloc_node` allocated `2 * key_cap` (+1 for inner nodes) slots of 8 bytes after the
        // header and initialised them to zero, a valid value of `AtomicU64` and `AtomicPtr`, the only
        // `T`s used; callers stay within those slots. The node lives for `'t` (type invariant).
        unsafe {
            let base = self.ptr.as_ptr().add(1).cast::<AtomicU64>().add(offset);
            core::slice::from_raw_parts(base.cast::<T>(), len)
        }
    }

    #[inline]
    pub(super) fn keys(self) -> &'t [AtomicU64] {
        self.slots(0, self.header().key_cap as usize)
    }

    /// Value slots of a leaf.
    #[inline]
    pub(super) fn values(self) -> &'t [AtomicU64] {
        debug_assert!(self.is_leaf());
        let cap = self.header().key_cap as usize;
        self.slots(cap, cap)
    }

    /// Child slots of an inner node.
    #[inline]
    pub(super) fn children(self) -> &'t [AtomicPtr<Header>] {
        debug_assert!(!self.is_leaf());
        let cap = self.header().key_cap as usize;
        self.slots(cap, cap + 1)
    }

    /// Number of keys, clamped so that racing reads index within the arrays.
    #[inline]
    pub(super) fn count(self) -> usize {
        // Relaxed: an optimistic read, validated by the caller's version check.
        (self.header().count.load(Ordering::Relaxed) as usize).min(self.header().key_cap as usize)
    }

    #[inline]
    pub(super) fn set_count(self, _lock: &WriteGuard<'t>, n: usize) {
        // Relaxed: written under the lock; readers validate it (see the orderings section of
        // `OlcBTree`'s docs).
        self.header().count.store(n as u64, Ordering::Relaxed);
    }

    #[inline]
    pub(super) fn key(self, i: usize) -> u64 {
        // Relaxed: an optimistic read, validated by the caller's version check.
        self.keys()[i].load(Ordering::Relaxed)
    }

    /// The child in slot `i`, or `None` if a racing read found the slot not yet written.
    #[inline]
    pub(super) fn child(self, i: usize) -> Option<NodeRef<'t>> {
        // Acquire: pairs with the Release store that put the pointer into this slot (directly or by
        // moving it from another slot), so the child's initialisation is visible before use.
        let ptr = NonNull::new(self.children()[i].load(Ordering::Acquire))?;
        // SAFETY: child slots only ever hold null or nodes of this tree (see the Acquire above).
        Some(unsafe { NodeRef::new(ptr) })
    }

    /// The children in the first `count + 1` slots of an inner node (none for a leaf), skipping
    /// slots a racing read found not yet written.
    pub(super) fn child_nodes(self) -> impl Iterator<Item = NodeRef<'t>> {
        let n = if self.is_leaf() { 0 } else { self.count() + 1 };
        (0..n).filter_map(move |i| self.child(i))
    }

    /// The right sibling of a leaf.
    #[inline]
    pub(super) fn next(self) -> Option<NodeRef<'t>> {
        // Acquire: pairs with the Release store in `split_leaf_and_insert` that linked the sibling.
        let ptr = NonNull::new(self.header().next.load(Ordering::Acquire))?;
        // SAFETY: `next` only ever holds null or leaves of this tree, published as above.
        Some(unsafe { NodeRef::new(ptr) })
    }
}

/// Moves the entries in `[from, n)` one slot to the right. The caller holds the leaf's lock.
pub(super) fn shift_right(leaf: NodeRef<'_>, _lock: &WriteGuard<'_>, from: usize, n: usize) {
    let (keys, values) = (leaf.keys(), leaf.values());
    for i in (from..n).rev() {
        // Relaxed (all four): written under the lock, ordered for readers by the lock's fences.
        keys[i + 1].store(keys[i].load(Ordering::Relaxed), Ordering::Relaxed);
        values[i + 1].store(values[i].load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

/// Index of the first of the first `n` keys that is `>= key` (or `> key` when `strict`).
///
/// Branch-free binary search; relaxed loads, validated by the caller's version check.
#[inline]
pub(super) fn search(keys: &[AtomicU64], n: usize, key: u64, strict: bool) -> usize {
    let keys = &keys[..n];
    let below = |k: u64| if strict { k <= key } else { k < key };
    let mut base = 0;
    let mut size = n;
    while size > 1 {
        let half = size / 2;
        // Relaxed: see the function docs.
        if below(keys[base + half].load(Ordering::Relaxed)) {
            base += half;
        }
        size -= half;
    }
    // Relaxed: see the function docs.
    if size == 1 && below(keys[base].load(Ordering::Relaxed)) {
        base + 1
    } else {
        base
    }
}

/// Asks the CPU to start loading a node's header and its `key_cap` key slots (a no-op off x86_64).
#[inline(always)]
pub(super) fn prefetch(node: *const Header, key_cap: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let bytes = size_of::<Header>() + key_cap * size_of::<AtomicU64>();
        let base = node.cast::<i8>();
        let mut offset = 0;
        while offset < bytes {
            // SAFETY: `sse`, which `_mm_prefetch` needs, is part of the x86_64 baseline; a
            // prefetch is only a hint, never faults and accesses no memory in the abstract machine.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(base.wrapping_add(offset)) };
            offset += 64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_matches_partition_point() {
        let keys: Vec<AtomicU64> = [1u64, 3, 3, 5, 9].into_iter().map(AtomicU64::new).collect();
        let plain = [1u64, 3, 3, 5, 9];
        for n in 0..=5 {
            for key in 0..=10 {
                assert_eq!(
                    search(&keys, n, key, false),
                    plain[..n].partition_point(|&k| k < key)
                );
                assert_eq!(
                    search(&keys, n, key, true),
                    plain[..n].partition_point(|&k| k <= key)
                );
            }
        }
    }
}
