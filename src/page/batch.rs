//! Batch delta records: one leaf's share of a batch, posted with one CAS.
//!
//! A batch delta carries the sorted, distinct keys of the entries a batch posts on one leaf and, for
//! each key, its new value (`Some`) or its deletion (`None`). All entries of one batch delta take
//! effect at the same instant, the CAS that publishes it; a lookup binary-searches the keys, and a
//! newer delta for the same key still wins because the chain is walked newest first.
//!
//! # Layout
//! One allocation, like a base page: the [`BatchHeader`] (node header, `next` link, entry count),
//! then the keys in one contiguous array, then the values (`Option<V>`) in another, so that the
//! binary search reads key cache lines only.

use core::alloc::Layout;
use core::marker::PhantomData;
use core::mem::{align_of, size_of};
use core::ptr::{self, NonNull};

use super::{Kind, Node, NodeRef, OwnedNode, delta_header, round_up};

/// The fixed part of a batch delta; the key and value arrays follow it in the same allocation.
#[repr(C)]
pub(crate) struct BatchHeader<K, V> {
    pub(super) node: Node<K, V>,
    pub(super) next: *const Node<K, V>,
    /// Number of entries (keys, and values).
    len: usize,
}

/// Offsets of the key and value arrays of a batch delta of `len` entries, and its layout.
fn batch_layout<K, V>(len: usize) -> (Layout, usize, usize) {
    let keys_at = round_up(size_of::<BatchHeader<K, V>>(), align_of::<K>());
    let values_at = round_up(keys_at + len * size_of::<K>(), align_of::<Option<V>>());
    let size = values_at + len * size_of::<Option<V>>();
    let align = align_of::<BatchHeader<K, V>>()
        .max(align_of::<K>())
        .max(align_of::<Option<V>>());
    let layout = Layout::from_size_align(size, align).expect("batch delta too large");
    (layout, keys_at, values_at)
}

/// A batch delta on top of `prev`, for a page that will hold `size` entries once it is published.
///
/// `entries` must be sorted by distinct keys, all inside `prev`'s key range. Moving the entries in
/// cannot fail; should the iterator panic all the same, what was moved in is dropped and the memory
/// freed.
pub(crate) fn batch_delta<K, V>(
    prev: NodeRef<'_, K, V>,
    entries: impl ExactSizeIterator<Item = (K, Option<V>)>,
    size: u32,
) -> OwnedNode<K, V> {
    let len = entries.len();
    let (layout, keys_at, values_at) = batch_layout::<K, V>(len);
    // SAFETY: the layout has a non-zero size (it contains the header).
    let raw = unsafe { std::alloc::alloc(layout) };
    let Some(header) = NonNull::new(raw.cast::<BatchHeader<K, V>>()) else {
        std::alloc::handle_alloc_error(layout)
    };
    // SAFETY: freshly allocated with room and alignment for the header.
    unsafe {
        header.as_ptr().write(BatchHeader {
            node: delta_header(prev, Kind::Batch, size),
            next: prev.as_ptr(),
            len,
        })
    };
    let mut building = Building::<K, V> {
        header,
        layout,
        initialised: 0,
    };
    for (i, (key, value)) in entries.take(len).enumerate() {
        // SAFETY: slot `i < len` of both arrays lies inside the allocation and is written once.
        unsafe {
            raw.add(keys_at).cast::<K>().add(i).write(key);
            raw.add(values_at).cast::<Option<V>>().add(i).write(value);
        }
        building.initialised = i + 1;
    }
    assert_eq!(
        building.initialised, len,
        "ExactSizeIterator reported a wrong length"
    );
    core::mem::forget(building);
    OwnedNode {
        ptr: header.cast::<Node<K, V>>(),
    }
}

/// A batch delta under construction: frees it, and the entries written so far, if dropped.
struct Building<K, V> {
    header: NonNull<BatchHeader<K, V>>,
    layout: Layout,
    initialised: usize,
}

impl<K, V> Drop for Building<K, V> {
    fn drop(&mut self) {
        // Only reached when the entry iterator panicked.
        // SAFETY: the header and the first `initialised` entries of both arrays were written.
        unsafe { drop_entries(self.header.as_ptr(), self.initialised) };
        // SAFETY: allocated with this layout in `batch_delta`; nothing refers to it any more.
        unsafe { std::alloc::dealloc(self.header.as_ptr().cast(), self.layout) };
    }
}

/// Drops the first `count` keys and values of a batch delta (not its memory).
///
/// # Safety
/// `header` must point to a batch delta whose first `count` entries are initialised; nothing may use
/// them afterwards.
unsafe fn drop_entries<K, V>(header: *mut BatchHeader<K, V>, count: usize) {
    // SAFETY: the caller's contract; the header itself is always initialised here.
    unsafe {
        let len = (*header).len;
        let (_, keys_at, values_at) = batch_layout::<K, V>(len);
        let base = header.cast::<u8>();
        ptr::drop_in_place(ptr::slice_from_raw_parts_mut(
            base.add(keys_at).cast::<K>(),
            count,
        ));
        ptr::drop_in_place(ptr::slice_from_raw_parts_mut(
            base.add(values_at).cast::<Option<V>>(),
            count,
        ));
    }
}

/// Frees a batch delta: its entries and its memory (not its successors).
///
/// # Safety
/// `ptr` must point to a batch delta that no other thread can reach, and it must not be freed again.
pub(super) unsafe fn free<K, V>(ptr: *mut Node<K, V>) {
    let header = ptr.cast::<BatchHeader<K, V>>();
    // SAFETY: the caller's contract; a published or finished batch delta has all entries written.
    unsafe {
        let len = (*header).len;
        drop_entries(header, len);
        ptr::drop_in_place(ptr::addr_of_mut!((*header).node));
        std::alloc::dealloc(header.cast(), batch_layout::<K, V>(len).0);
    }
}

/// Takes the entries back out of an unpublished batch delta (after a lost CAS) and frees it.
///
/// # Safety
/// `ptr` must point to an exclusively owned batch delta (never published, or handed back by a failed
/// CAS); it must not be used afterwards.
pub(super) unsafe fn take_entries<K, V>(ptr: *mut Node<K, V>) -> Vec<(K, Option<V>)> {
    let header = ptr.cast::<BatchHeader<K, V>>();
    // SAFETY: the caller's contract: every entry is initialised and exclusively ours; each is read
    // out exactly once and the memory is then freed without dropping them again.
    unsafe {
        let len = (*header).len;
        let (layout, keys_at, values_at) = batch_layout::<K, V>(len);
        let base = header.cast::<u8>();
        let mut entries = Vec::with_capacity(len);
        for i in 0..len {
            let key = base.add(keys_at).cast::<K>().add(i).read();
            let value = base.add(values_at).cast::<Option<V>>().add(i).read();
            entries.push((key, value));
        }
        ptr::drop_in_place(ptr::addr_of_mut!((*header).node));
        std::alloc::dealloc(header.cast(), layout);
        entries
    }
}

/// A published batch delta, valid for `'g`.
pub(crate) struct BatchRef<'g, K, V> {
    pub(super) ptr: *const BatchHeader<K, V>,
    pub(super) _guard: PhantomData<&'g Node<K, V>>,
}

impl<'g, K, V> BatchRef<'g, K, V> {
    #[inline]
    fn len(&self) -> usize {
        // SAFETY: `ptr` points to a live batch delta for `'g`.
        unsafe { (*self.ptr).len }
    }

    /// The sorted, distinct keys.
    #[inline]
    pub(crate) fn keys(&self) -> &'g [K] {
        let len = self.len();
        let (_, keys_at, _) = batch_layout::<K, V>(len);
        // SAFETY: a batch delta of `len` entries holds `len` initialised keys at this offset of its
        // allocation, which lives for `'g`.
        unsafe { core::slice::from_raw_parts(self.ptr.cast::<u8>().add(keys_at).cast::<K>(), len) }
    }

    /// The new values in key order (`None`: the key is deleted).
    #[inline]
    pub(crate) fn values(&self) -> &'g [Option<V>] {
        let len = self.len();
        let (_, _, values_at) = batch_layout::<K, V>(len);
        // SAFETY: as for `keys`: `len` initialised values.
        unsafe {
            core::slice::from_raw_parts(
                self.ptr.cast::<u8>().add(values_at).cast::<Option<V>>(),
                len,
            )
        }
    }
}

impl<'g, K: Ord, V> BatchRef<'g, K, V> {
    /// What the batch says about `key`: `None` if it does not mention it, `Some(None)` if it deletes
    /// it, `Some(Some(value))` if it sets it.
    #[inline]
    pub(crate) fn get(&self, key: &K) -> Option<Option<&'g V>> {
        self.keys()
            .binary_search(key)
            .ok()
            .map(|i| self.values()[i].as_ref())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::super::{Body, Pid, free_chain, leaf_base};
    use super::*;

    #[test]
    fn batch_delta_lookups_and_take_back() {
        let base = leaf_base::<u64, String>(
            None,
            None,
            Pid::NONE,
            vec![(1, "a".to_string()), (5, "b".to_string())].into_iter(),
        );
        let entries = vec![
            (1, None),
            (3, Some("c".to_string())),
            (9, Some("d".to_string())),
        ];
        let delta = batch_delta(base.as_ref(), entries.clone().into_iter(), 3);
        {
            let node = delta.as_ref();
            assert_eq!(node.meta.size, 3);
            assert_eq!(node.meta.depth, 1);
            let Body::Batch(batch) = node.body() else {
                panic!("not a batch")
            };
            assert_eq!(batch.keys(), &[1, 3, 9]);
            assert_eq!(batch.get(&1), Some(None));
            assert_eq!(batch.get(&3), Some(Some(&"c".to_string())));
            assert_eq!(batch.get(&4), None);
            assert_eq!(node.next().unwrap().as_ptr(), base.as_ref().as_ptr());
        }
        assert_eq!(delta.into_batch_entries(), entries);
        // An empty batch is well-formed too, and freeing a chain frees batch deltas.
        let empty = batch_delta(base.as_ref(), core::iter::empty(), 2).into_raw();
        let _ = base.into_raw();
        // SAFETY: built here, never shared; the chain is freed once.
        unsafe { free_chain(empty) };
    }
}
