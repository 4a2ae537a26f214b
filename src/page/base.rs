//! Base pages: a leaf's sorted records or an inner page's separators and children, in one
//! allocation after the header.

use core::alloc::Layout;
use core::marker::PhantomData;
use core::ptr;

use super::layout::{self, Array, Block, BlockHeader, BlockLayout, DropOnUnwind, write_clones};
use super::{Kind, Meta, NO_SHORTCUT, Node, OwnedNode, opt_ptr};
use crate::mapping::Pid;

/// The fixed part of a base page; the arrays follow it in the same block (see `layout`).
#[repr(C)]
pub(super) struct BaseHeader<K, V> {
    node: Node<K, V>,
    /// First after the header: every visit compares the probe with it, so for small keys it shares
    /// the header's cache line.
    high: Option<K>,
    low: Option<K>,
    /// Leaf: number of records. Inner: number of children (one more than separators).
    len: usize,
}

/// Base pages are aligned to a cache line so that the header never straddles two.
pub(super) const BASE_ALIGN: usize = 64;

/// The arrays of a leaf base page of `len` records: the keys, the values.
#[inline(always)]
fn leaf_arrays<K, V>(len: usize) -> [Array; 2] {
    [Array::of::<K>(len), Array::of::<V>(len)]
}

/// Layout of a leaf base page of `len` records: the header, the keys, the values.
#[inline]
fn leaf_layout<K, V>(len: usize) -> BlockLayout<2> {
    BlockLayout::of::<BaseHeader<K, V>>(BASE_ALIGN, leaf_arrays::<K, V>(len))
}

/// Offsets of a leaf base page's keys and values.
#[inline(always)]
fn leaf_offsets<K, V>(len: usize) -> [usize; 2] {
    BlockLayout::offsets::<BaseHeader<K, V>>(leaf_arrays::<K, V>(len))
}

/// A child pointer cached in an inner base page by [`BwTree::freeze_routes`](crate::BwTree::freeze_routes)
/// (null otherwise). A plain std atomic even under loom: it is written and read only while the tree
/// is exclusively borrowed by a frozen view, so no thread races on it.
pub(crate) type CachedChild = crate::sync::unmodeled::AtomicPtr<u8>;

/// Layout of an inner base page with `len` children: the header, `len - 1` separators, `len` child
/// PIDs and `len` [`CachedChild`] slots.
#[inline(always)]
fn inner_arrays<K>(len: usize) -> [Array; 3] {
    [
        Array::of::<K>(len - 1),
        Array::of::<Pid>(len),
        Array::of::<CachedChild>(len),
    ]
}

/// Layout of an inner base page with `len` children (see [`inner_arrays`]).
#[inline]
fn inner_layout<K, V>(len: usize) -> BlockLayout<3> {
    BlockLayout::of::<BaseHeader<K, V>>(BASE_ALIGN, inner_arrays::<K>(len))
}

/// Offsets of an inner base page's separators, children and cached children.
#[inline(always)]
fn inner_offsets<K, V>(len: usize) -> [usize; 3] {
    BlockLayout::offsets::<BaseHeader<K, V>>(inner_arrays::<K>(len))
}

impl<K, V> BaseHeader<K, V> {
    /// The number of droppable entries of a complete page: records of a leaf, separators of an
    /// inner page (PIDs and cached pointers need no drop).
    fn entries(&self) -> usize {
        match self.node.kind {
            Kind::LeafBase => self.len,
            _ => self.len - 1,
        }
    }
}

// SAFETY: `layout` recomputes the layout the page was built with from its kind and length, and
// `drop_contents` drops the header (node, bounds) and the first `initialised` keys and values of a
// leaf, or separators of an inner page, which are the only entries with drop glue.
unsafe impl<K, V> BlockHeader for BaseHeader<K, V> {
    fn layout(&self) -> Layout {
        match self.node.kind {
            Kind::LeafBase => leaf_layout::<K, V>(self.len).layout,
            _ => inner_layout::<K, V>(self.len).layout,
        }
    }

    unsafe fn drop_contents(this: *mut Self, initialised: usize) {
        // SAFETY: the caller's contract: a header in its block with `initialised` entries.
        unsafe {
            let (kind, len) = ((*this).node.kind, (*this).len);
            let base = this.cast::<u8>();
            match kind {
                Kind::LeafBase => {
                    let [keys_at, values_at] = leaf_layout::<K, V>(len).offsets;
                    drop_run(base.add(keys_at).cast::<K>(), initialised);
                    drop_run(base.add(values_at).cast::<V>(), initialised);
                }
                _ => {
                    let [separators_at, ..] = inner_layout::<K, V>(len).offsets;
                    drop_run(base.add(separators_at).cast::<K>(), initialised);
                }
            }
            ptr::drop_in_place(this);
        }
    }
}

/// Drops `n` values starting at `first`.
///
/// # Safety
/// They must be initialised and not used afterwards.
unsafe fn drop_run<T>(first: *mut T, n: usize) {
    // SAFETY: the caller's contract.
    unsafe { ptr::drop_in_place(ptr::slice_from_raw_parts_mut(first, n)) }
}

/// A leaf base page, valid for `'g`.
pub(crate) struct LeafRef<'g, K, V> {
    pub(super) ptr: *const BaseHeader<K, V>,
    pub(super) _guard: PhantomData<&'g Node<K, V>>,
}

impl<'g, K, V> LeafRef<'g, K, V> {
    #[inline]
    fn len(&self) -> usize {
        // SAFETY: `ptr` points to a live leaf base page for `'g`.
        unsafe { (*self.ptr).len }
    }

    /// The sorted keys.
    #[inline]
    pub(crate) fn keys(&self) -> &'g [K] {
        let len = self.len();
        let [keys, _] = leaf_offsets::<K, V>(len);
        // SAFETY: a leaf base page of `len` records holds `len` initialised keys at this offset, in
        // the same allocation as the header; it lives for `'g`.
        unsafe { core::slice::from_raw_parts(self.ptr.cast::<u8>().add(keys).cast::<K>(), len) }
    }

    /// The values, in key order.
    #[inline]
    pub(crate) fn values(&self) -> &'g [V] {
        let len = self.len();
        let [_, values] = leaf_offsets::<K, V>(len);
        // SAFETY: as for `keys`.
        unsafe { core::slice::from_raw_parts(self.ptr.cast::<u8>().add(values).cast::<V>(), len) }
    }
}

impl<'g, K: Ord, V> LeafRef<'g, K, V> {
    /// The value stored for `key`, if any.
    #[inline]
    pub(crate) fn get(&self, key: &K) -> Option<&'g V> {
        self.search(key).ok().map(|i| &self.values()[i])
    }

    /// `Ok(i)`: `key` is record `i`; `Err(i)`: absent, `i` is where it would go. Either way `i` is
    /// the key's position for [`Meta::slots`].
    #[inline]
    pub(crate) fn search(&self, key: &K) -> Result<usize, usize> {
        let keys = self.keys();
        crate::memory::prefetch::slice(keys);
        keys.binary_search(key)
    }

    /// The value of record `i`.
    #[inline]
    pub(crate) fn value(&self, i: usize) -> &'g V {
        &self.values()[i]
    }

    /// Index of the first key `>= key` (`strict`: `> key`).
    #[inline]
    pub(crate) fn lower_bound(&self, key: &K, strict: bool) -> usize {
        // The binary search's probes are dependent loads: start all of their misses at once.
        crate::memory::prefetch::slice(self.keys());
        if strict {
            self.keys().partition_point(|k| k <= key)
        } else {
            self.keys().partition_point(|k| k < key)
        }
    }
}

/// An inner base page, valid for `'g`: `children[i]` covers `[separators[i - 1], separators[i])`,
/// with the page's own `low` and `high` standing in at the ends.
pub(crate) struct InnerRef<'g, K, V> {
    pub(super) ptr: *const BaseHeader<K, V>,
    pub(super) _guard: PhantomData<&'g Node<K, V>>,
}

impl<'g, K, V> InnerRef<'g, K, V> {
    #[inline]
    fn len(&self) -> usize {
        // SAFETY: `ptr` points to a live inner base page for `'g`.
        unsafe { (*self.ptr).len }
    }

    /// The separators, sorted (one fewer than children).
    #[inline]
    pub(crate) fn separators(&self) -> &'g [K] {
        let len = self.len();
        let [separators, _, _] = inner_offsets::<K, V>(len);
        // SAFETY: an inner base page with `len` children holds `len - 1` initialised separators at
        // this offset of its allocation; it lives for `'g`.
        unsafe {
            core::slice::from_raw_parts(self.ptr.cast::<u8>().add(separators).cast::<K>(), len - 1)
        }
    }

    /// The child PIDs.
    #[inline]
    pub(crate) fn children(&self) -> &'g [Pid] {
        let len = self.len();
        let [_, children, _] = inner_offsets::<K, V>(len);
        // SAFETY: as for `separators`, `len` child PIDs.
        unsafe {
            core::slice::from_raw_parts(self.ptr.cast::<u8>().add(children).cast::<Pid>(), len)
        }
    }

    /// The cached child pointers, parallel to [`InnerRef::children`]: null unless a frozen view
    /// filled them (see `frozen`).
    #[inline]
    pub(crate) fn cached_children(&self) -> &'g [CachedChild] {
        let len = self.len();
        let [_, _, cached] = inner_offsets::<K, V>(len);
        // SAFETY: as for `separators`, `len` slots, initialised (null) by `inner_base`.
        unsafe {
            core::slice::from_raw_parts(
                self.ptr.cast::<u8>().add(cached).cast::<CachedChild>(),
                len,
            )
        }
    }
}

/// A new leaf base page with the records of `entries`, which must be sorted by distinct keys inside
/// `[low, high)`. Panic-safe: if producing an entry panics, what was built is freed.
pub(crate) fn leaf_base<K, V>(
    low: Option<K>,
    high: Option<K>,
    right: Pid,
    entries: impl ExactSizeIterator<Item = (K, V)>,
) -> OwnedNode<K, V> {
    let len = entries.len();
    let mut page = LeafPageWriter::new(low, high, right, len);
    for (key, value) in entries.take(len) {
        page.push(key, value);
    }
    page.finish()
}

/// A new leaf base page holding `base`'s records with `deltas` applied: `deltas` sorted by key, one
/// record per key (`None` deletes the key), `len` the exact resulting number of records (see
/// `chain::sorted_leaf_deltas`). The base page's records between two delta keys are copied as
/// one run.
pub(crate) fn leaf_base_merged<K: Ord + Clone, V: Clone>(
    low: Option<K>,
    high: Option<K>,
    right: Pid,
    base: LeafRef<'_, K, V>,
    deltas: &[(&K, Option<&V>)],
    len: usize,
) -> OwnedNode<K, V> {
    let mut page = LeafPageWriter::new(low, high, right, len);
    let (keys, values) = (base.keys(), base.values());
    let mut next = 0;
    for &(key, value) in deltas {
        let at = next + keys[next..].partition_point(|k| k < key);
        page.push_run(&keys[next..at], &values[next..at]);
        // The delta replaces (or deletes) the base record with its key.
        next = if keys.get(at) == Some(key) {
            at + 1
        } else {
            at
        };
        if let Some(value) = value {
            page.push(key.clone(), value.clone());
        }
    }
    page.push_run(&keys[next..], &values[next..]);
    page.finish()
}

/// A leaf base page of a fixed number of records under construction, written in key order. Frees
/// what was written (and the page) if dropped before `finish`, e.g. when a clone panics.
struct LeafPageWriter<K, V> {
    page: Block<BaseHeader<K, V>>,
    keys: *mut K,
    values: *mut V,
    len: usize,
}

impl<K, V> LeafPageWriter<K, V> {
    fn new(low: Option<K>, high: Option<K>, right: Pid, len: usize) -> Self {
        let page = base_page(Kind::LeafBase, 0, right, low, high, len);
        let [keys_at, values_at] = leaf_layout::<K, V>(len).offsets;
        let (keys, values) = (page.array::<K>(keys_at), page.array::<V>(values_at));
        LeafPageWriter {
            page,
            keys,
            values,
            len,
        }
    }

    /// Appends one record.
    #[inline]
    fn push(&mut self, key: K, value: V) {
        let i = self.page.initialised;
        assert!(
            i < self.len,
            "more records than the page's length (a merge of sorted runs fell out of step: is the key type's `Ord` a total order?)"
        );
        // SAFETY: slot `i < len` of both arrays is in bounds and written exactly once.
        unsafe {
            self.keys.add(i).write(key);
            self.values.add(i).write(value);
        }
        self.page.initialised = i + 1;
    }

    /// Appends clones of a run of records, with one bounds check for the whole run: the keys'
    /// clones first, then the values' (for `Copy` types each is one `memcpy`).
    #[inline]
    fn push_run(&mut self, keys: &[K], values: &[V])
    where
        K: Clone,
        V: Clone,
    {
        let start = self.page.initialised;
        let n = keys.len();
        assert!(
            n == values.len() && start + n <= self.len,
            "more records than the page's length (a merge of sorted runs fell out of step: is the key type's `Ord` a total order?)"
        );
        // SAFETY: slots `start..start + n` of both arrays are in bounds (checked above), not yet
        // written (`initialised` counts the written ones) and the page is ours alone. If a
        // value's clone panics, the guard drops this run's keys, which `initialised` does not
        // count yet.
        unsafe {
            write_clones(self.keys.add(start), keys);
            let keys_written = DropOnUnwind(ptr::slice_from_raw_parts_mut(self.keys.add(start), n));
            write_clones(self.values.add(start), values);
            core::mem::forget(keys_written);
        }
        self.page.initialised = start + n;
    }

    fn finish(self) -> OwnedNode<K, V> {
        assert_eq!(
            self.page.initialised, self.len,
            "fewer records than the page's length (an ExactSizeIterator reported a wrong length, or the key type's `Ord` is not a total order)"
        );
        finish(self.page)
    }
}

/// A new inner base page at `level` (≥ 1) with `children` and the `separators` between them
/// (`children.len() == separators.len() + 1`).
pub(crate) fn inner_base<K, V>(
    level: u8,
    low: Option<K>,
    high: Option<K>,
    right: Pid,
    separators: impl ExactSizeIterator<Item = K>,
    children: &[Pid],
) -> OwnedNode<K, V> {
    let len = children.len();
    assert!(len >= 1 && separators.len() + 1 == len && level >= 1);
    let mut page = base_page(Kind::InnerBase, level, right, low, high, len);
    let [separators_at, children_at, cached_at] = inner_layout::<K, V>(len).offsets;
    let (separators_to, children_to, cached_to) = (
        page.array::<K>(separators_at),
        page.array::<Pid>(children_at),
        page.array::<CachedChild>(cached_at),
    );
    // SAFETY: `len` PIDs fit at `children_at` and `len` cached-child slots at `cached_at`; neither
    // has drop glue, so they count as initialised once written.
    unsafe {
        ptr::copy_nonoverlapping(children.as_ptr(), children_to, len);
        for i in 0..len {
            cached_to.add(i).write(CachedChild::new(ptr::null_mut()));
        }
    }
    for (i, separator) in separators.take(len - 1).enumerate() {
        // SAFETY: slot `i < len - 1` of the separator array lies inside the block.
        unsafe { separators_to.add(i).write(separator) };
        page.initialised = i + 1;
    }
    assert_eq!(
        page.initialised,
        len - 1,
        "ExactSizeIterator reported a wrong length"
    );
    finish(page)
}

/// A base page of `kind` at `level` with `len` entries, bounds `low`..`high` and right sibling
/// `right`, its arrays not yet written. The header's summary is derived from these: no chain
/// above it, the page is its own base, and the lookup shortcut is on for leaves (an empty
/// summary) and off for inner pages.
fn base_page<K, V>(
    kind: Kind,
    level: u8,
    right: Pid,
    low: Option<K>,
    high: Option<K>,
    len: usize,
) -> Block<BaseHeader<K, V>> {
    let meta = Meta {
        // The bounds and the base pointer are set below, once the header is in place.
        low: ptr::null(),
        high: ptr::null(),
        right,
        size: len as u32,
        depth: 0,
        level,
        base: ptr::null(),
        slots: if kind == Kind::LeafBase {
            0
        } else {
            NO_SHORTCUT
        },
    };
    let mut page = Block::new(BaseHeader {
        node: Node::header(meta, kind),
        high,
        low,
        len,
    });
    let header = page.header();
    // SAFETY: the header was just written at its final address and the block is ours alone. The
    // bounds live inside the page itself, and the page is its own base.
    unsafe {
        (*header).node.meta.low = opt_ptr((*header).low.as_ref());
        (*header).node.meta.high = opt_ptr((*header).high.as_ref());
        (*header).node.meta.base = header as *const ();
    }
    page
}

/// A finished base page as a node.
fn finish<K, V>(page: Block<BaseHeader<K, V>>) -> OwnedNode<K, V> {
    // `BaseHeader` is `#[repr(C)]` with the node header first.
    OwnedNode::new(page.finish().cast())
}

/// Frees a base page: its bounds, its entries and its block.
///
/// # Safety
/// `ptr` must point to a complete base page that no other thread can reach; it must not be used
/// again.
pub(super) unsafe fn free<K, V>(ptr: *mut Node<K, V>) {
    let header = ptr.cast::<BaseHeader<K, V>>();
    // SAFETY: the caller's contract: a complete base page (the tag was checked by the caller), so
    // all its entries are initialised; it was built by `Block::finish`.
    unsafe { layout::free(header, (*header).entries()) }
}

/// Offset of a leaf base page's key array from the page's start (the same for every length).
pub(super) fn leaf_keys_offset<K, V>() -> usize {
    leaf_offsets::<K, V>(0)[0]
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::page::{Body, NodeRef, insert_delta, slot_bit};

    fn view<K, V>(node: &OwnedNode<K, V>) -> NodeRef<'_, K, V> {
        node.as_ref()
    }

    #[test]
    fn leaf_base_is_one_allocation_with_bounds_inside() {
        let base = leaf_base::<u64, u64>(
            Some(10),
            Some(20),
            Pid(3),
            vec![(10, 1), (15, 2)].into_iter(),
        );
        let node = view(&base);
        assert_eq!(node.low(), Some(&10));
        assert_eq!(node.high(), Some(&20));
        assert_eq!(node.meta.size, 2);
        assert_eq!(node.meta.right, Pid(3));
        assert!(node.below_high(&19) && !node.below_high(&20));
        assert!(node.above_low(&10) && !node.above_low(&9));
        let Body::Leaf(leaf) = node.body() else {
            panic!("not a leaf")
        };
        assert_eq!(leaf.keys(), &[10, 15]);
        assert_eq!(leaf.values(), &[1, 2]);
        assert_eq!(leaf.get(&15), Some(&2));
        assert_eq!(leaf.get(&11), None);
        assert_eq!(node.as_ptr() as usize % BASE_ALIGN, 0);

        let delta = insert_delta(node, 12, 3, 3, Some(1));
        let delta = view(&delta);
        assert_eq!(delta.meta.depth, 1);
        assert_eq!(delta.meta.slots, slot_bit(1));
        assert!(delta.shortcut_base().is_some_and(|b| b.keys() == [10, 15]));
        assert_eq!(delta.meta.size, 3);
        assert_eq!(delta.high(), Some(&20));
        assert_eq!(delta.next().unwrap().as_ptr(), node.as_ptr());
        // `delta` is freed before `base` (declaration order), as a chain would be.
    }

    #[test]
    fn inner_base_arrays_and_strings() {
        let inner = inner_base::<String, String>(
            2,
            Some("a".into()),
            None,
            Pid::NONE,
            vec!["m".to_string(), "t".to_string()].into_iter(),
            &[Pid(1), Pid(2), Pid(3)],
        );
        let node = view(&inner);
        let Body::Inner(base) = node.body() else {
            panic!("not inner")
        };
        assert_eq!(base.separators(), &["m".to_string(), "t".to_string()]);
        assert_eq!(base.children(), &[Pid(1), Pid(2), Pid(3)]);
        assert_eq!(node.meta.level, 2);
        assert_eq!(node.low().map(String::as_str), Some("a"));
        assert_eq!(node.high(), None);
    }

    #[test]
    fn unbounded_and_empty_pages() {
        let base = leaf_base::<u64, u64>(None, None, Pid::NONE, std::iter::empty());
        let node = view(&base);
        assert!(node.below_high(&u64::MAX));
        assert!(node.above_low(&0));
        let Body::Leaf(leaf) = node.body() else {
            panic!()
        };
        assert!(leaf.keys().is_empty());
    }

    #[test]
    fn a_panicking_clone_in_a_run_copy_frees_what_was_built() {
        use crate::sync::unmodeled::{AtomicIsize, Ordering};
        // Live instances, and the clone (counted from 1) that panics; 0: none does.
        static LIVE: AtomicIsize = AtomicIsize::new(0);
        static CLONES_LEFT: AtomicIsize = AtomicIsize::new(0);
        #[derive(PartialEq, Eq, PartialOrd, Ord)]
        struct Counted(u64);
        impl Counted {
            fn new(v: u64) -> Self {
                LIVE.fetch_add(1, Ordering::SeqCst);
                Counted(v)
            }
        }
        impl Clone for Counted {
            fn clone(&self) -> Self {
                assert_ne!(
                    CLONES_LEFT.fetch_sub(1, Ordering::SeqCst),
                    1,
                    "clone failed"
                );
                Counted::new(self.0)
            }
        }
        impl Drop for Counted {
            fn drop(&mut self) {
                LIVE.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let base = leaf_base::<Counted, Counted>(
            None,
            None,
            Pid::NONE,
            (0..10u32).map(|k| (Counted::new(k.into()), Counted::new(u64::from(k) + 100))),
        );
        assert_eq!(LIVE.load(Ordering::SeqCst), 20);
        let leaf = || match view(&base).body() {
            Body::Leaf(leaf) => leaf,
            _ => panic!("not a leaf"),
        };
        // One delta in the middle: runs of 5 and 4 records around it. Panics in the first run's
        // keys, in its values, in the delta's clone, in the second run; and no panic at all.
        let (key, value) = (Counted::new(5), Counted::new(55));
        let deltas = [(&key, Some(&value))];
        for panic_at in [3, 8, 11, 14, 19, 0] {
            CLONES_LEFT.store(panic_at, Ordering::SeqCst);
            let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                leaf_base_merged(None, None, Pid::NONE, leaf(), &deltas, 10)
            }));
            if panic_at == 0 {
                let page = built.expect("no clone panics");
                assert_eq!(LIVE.load(Ordering::SeqCst), 42);
                drop(page);
            } else {
                assert!(built.is_err(), "clone {panic_at} panics");
            }
            assert_eq!(LIVE.load(Ordering::SeqCst), 22, "panic at clone {panic_at}");
        }
        drop((key, value));
        drop(base);
        assert_eq!(LIVE.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_panicking_clone_while_building_frees_what_was_built() {
        use crate::sync::unmodeled::{AtomicIsize, Ordering};
        static LIVE: AtomicIsize = AtomicIsize::new(0);
        struct Probe;
        impl Probe {
            fn new() -> Self {
                LIVE.fetch_add(1, Ordering::SeqCst);
                Probe
            }
        }
        impl Drop for Probe {
            fn drop(&mut self) {
                LIVE.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let result = std::panic::catch_unwind(|| {
            let iter = ExactPanics {
                inner: (0..8u64),
                made: 0,
            };
            leaf_base::<u64, Probe>(None, None, Pid::NONE, iter)
        });
        assert!(result.is_err());
        assert_eq!(LIVE.load(Ordering::SeqCst), 0);

        struct ExactPanics {
            inner: core::ops::Range<u64>,
            made: u64,
        }
        impl Iterator for ExactPanics {
            type Item = (u64, Probe);
            fn next(&mut self) -> Option<(u64, Probe)> {
                let i = self.inner.next()?;
                self.made += 1;
                assert!(i < 5, "clone failed");
                Some((i, Probe::new()))
            }
            fn size_hint(&self) -> (usize, Option<usize>) {
                self.inner.size_hint()
            }
        }
        impl ExactSizeIterator for ExactPanics {}
    }
}
