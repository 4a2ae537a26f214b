//! Batch delta records: one leaf's share of a batch, posted with one CAS.
//!
//! A batch delta carries the sorted, distinct keys of the entries a batch posts on one leaf and, for
//! each key, its new value (`Some`) or its deletion (`None`). All entries of one batch delta take
//! effect at the same instant, the CAS that publishes it; a lookup binary-searches the keys, and a
//! newer delta for the same key still wins because the chain is walked newest first.
//!
//! # Layout
//! One block, like a base page (see `layout`): the [`BatchHeader`] (node header, `next` link,
//! entry count), then the keys in one contiguous array, then the values (`Option<V>`) in another,
//! so that the binary search reads key cache lines only.

use core::alloc::Layout;
use core::marker::PhantomData;
use core::ptr;

use super::delta::delta_header;
use super::layout::{self, Array, Block, BlockHeader, BlockLayout};
use super::{Kind, Node, NodeRef, OwnedNode};

/// The fixed part of a batch delta; the key and value arrays follow it in the same allocation.
#[repr(C)]
pub(crate) struct BatchHeader<K, V> {
    pub(super) node: Node<K, V>,
    pub(super) next: *const Node<K, V>,
    /// Number of entries (keys, and values).
    len: usize,
}

/// Layout of a batch delta of `len` entries: the header, the keys, the values.
#[inline]
fn batch_layout<K, V>(len: usize) -> BlockLayout<2> {
    BlockLayout::of::<BatchHeader<K, V>>(1, batch_arrays::<K, V>(len))
}

/// The arrays of a batch delta of `len` entries: the keys, the values.
#[inline(always)]
fn batch_arrays<K, V>(len: usize) -> [Array; 2] {
    [Array::of::<K>(len), Array::of::<Option<V>>(len)]
}

/// Offsets of a batch delta's keys and values.
#[inline(always)]
fn batch_offsets<K, V>(len: usize) -> [usize; 2] {
    BlockLayout::offsets::<BatchHeader<K, V>>(batch_arrays::<K, V>(len))
}

// SAFETY: `layout` recomputes the block's layout from its length; `drop_contents` drops the header
// and the first `initialised` keys and values, the only entries there are.
unsafe impl<K, V> BlockHeader for BatchHeader<K, V> {
    fn layout(&self) -> Layout {
        batch_layout::<K, V>(self.len).layout
    }

    unsafe fn drop_contents(this: *mut Self, initialised: usize) {
        // SAFETY: the caller's contract: a header in its block with `initialised` entries.
        unsafe {
            let [keys_at, values_at] = batch_layout::<K, V>((*this).len).offsets;
            let base = this.cast::<u8>();
            ptr::drop_in_place(ptr::slice_from_raw_parts_mut(
                base.add(keys_at).cast::<K>(),
                initialised,
            ));
            ptr::drop_in_place(ptr::slice_from_raw_parts_mut(
                base.add(values_at).cast::<Option<V>>(),
                initialised,
            ));
            ptr::drop_in_place(this);
        }
    }
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
    let mut block = Block::new(BatchHeader {
        node: delta_header(prev, Kind::Batch, size),
        next: prev.as_ptr(),
        len,
    });
    let [keys_at, values_at] = batch_layout::<K, V>(len).offsets;
    let (keys, values) = (
        block.array::<K>(keys_at),
        block.array::<Option<V>>(values_at),
    );
    for (i, (key, value)) in entries.take(len).enumerate() {
        // SAFETY: slot `i < len` of both arrays lies inside the block and is written once.
        unsafe {
            keys.add(i).write(key);
            values.add(i).write(value);
        }
        block.initialised = i + 1;
    }
    assert_eq!(
        block.initialised, len,
        "ExactSizeIterator reported a wrong length"
    );
    // `BatchHeader` is `#[repr(C)]` with the node header first.
    OwnedNode::new(block.finish().cast())
}

/// Frees a batch delta: its entries and its memory (not its successors).
///
/// # Safety
/// `ptr` must point to a batch delta that no other thread can reach, and it must not be freed again.
pub(super) unsafe fn free<K, V>(ptr: *mut Node<K, V>) {
    let header = ptr.cast::<BatchHeader<K, V>>();
    // SAFETY: the caller's contract; a published or finished batch delta has all entries written,
    // and it was built by `Block::finish`.
    unsafe { layout::free(header, (*header).len) }
}

/// Takes the entries back out of an unpublished batch delta (after a lost CAS) and frees it.
///
/// # Safety
/// `ptr` must point to an exclusively owned batch delta (never published, or handed back by a failed
/// CAS); it must not be used afterwards.
pub(super) unsafe fn take_entries<K, V>(ptr: *mut Node<K, V>) -> Vec<(K, Option<V>)> {
    let header = ptr.cast::<BatchHeader<K, V>>();
    // SAFETY: the caller's contract: every entry is initialised and exclusively ours; each is read
    // out exactly once, and the block is then freed with no entry counted as initialised, so none
    // is dropped again.
    unsafe {
        let len = (*header).len;
        let [keys_at, values_at] = batch_layout::<K, V>(len).offsets;
        let base = header.cast::<u8>();
        let mut entries = Vec::with_capacity(len);
        for i in 0..len {
            let key = base.add(keys_at).cast::<K>().add(i).read();
            let value = base.add(values_at).cast::<Option<V>>().add(i).read();
            entries.push((key, value));
        }
        layout::free(header, 0);
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
        let [keys_at, _] = batch_offsets::<K, V>(len);
        // SAFETY: a batch delta of `len` entries holds `len` initialised keys at this offset of its
        // allocation, which lives for `'g`.
        unsafe { core::slice::from_raw_parts(self.ptr.cast::<u8>().add(keys_at).cast::<K>(), len) }
    }

    /// The new values in key order (`None`: the key is deleted).
    #[inline]
    pub(crate) fn values(&self) -> &'g [Option<V>] {
        let len = self.len();
        let [_, values_at] = batch_offsets::<K, V>(len);
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
