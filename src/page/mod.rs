//! Page layout: base pages and delta records.
//!
//! A logical page is what its mapping-table slot points to: a chain of *delta records*, newest first,
//! ending in a *base page*. Every node of a chain is immutable once published; a page changes only
//! when a new node is prepended with one CAS on the slot (or the whole chain is replaced by a new base
//! page, see `smo`).
//!
//! # Memory layout
//! Every node is one heap allocation that starts with the same `#[repr(C)]` header, [`Node`]: a
//! [`Meta`] summary of the whole logical page *as of that node* (key range `[low, high)`, right
//! sibling, level, entry count, chain length) and a [`Kind`] tag. A thread therefore learns everything
//! it needs for navigation from the head alone. The node types behind the header:
//!
//! | kind | after the header |
//! | --- | --- |
//! | leaf base page | low key, high key, length, then the sorted keys and the values, each array contiguous |
//! | inner base page | low key, high key, length, then the separators and the child PIDs |
//! | insert / delete delta | link to the next node, key (and value) |
//! | split / index-entry delta | link to the next node, separator, PID, high key of the new page |
//!
//! A base page is a single allocation — header, bounds and both arrays — so a lookup touches the
//! header's cache line and the cache lines its binary search probes, nothing else. Keys and values are
//! kept in separate arrays so that the search reads key lines only.
//!
//! The `low`/`high` pointers of a header point at keys stored further down the same chain (in the base
//! page or a split delta); a chain is always freed as a unit, so they live as long as the node.
//!
//! # Safety model
//! Nodes are reached through [`NodeRef`], a copyable raw pointer valid for the epoch guard it was
//! loaded under (`'g`); it keeps the pointer's provenance over the whole allocation, which the trailing
//! arrays of base pages need. All casts from the header to a concrete node type happen in
//! [`NodeRef::body`], after checking the tag.

use core::alloc::Layout;
use core::marker::PhantomData;
use core::mem::{align_of, size_of};
use core::ops::Deref;
use core::ptr::{self, NonNull};

use crate::mapping::Pid;
use crate::sync::{Arc, AtomicU8, Ordering, PublishWitness};

mod batch;
pub(crate) mod chain;
pub(crate) use batch::{BatchRef, batch_delta};

/// What a node is. Stored in every header; decides the node's concrete type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    LeafBase,
    InnerBase,
    Insert,
    Delete,
    Split,
    IndexEntry,
    Remove,
    Merge,
    IndexDelete,
    Collapse,
    /// A batch delta (see [`batch`]): many leaf records posted with one CAS.
    Batch,
}

impl Kind {
    /// Whether a node of this kind, as the newest node of its page, may be an unfinished structure
    /// modification that a thread passing by must help (a split whose index entry may be missing, a
    /// pending index-term-delete, a removal or a collapse). Every other kind leaves a traversal
    /// nothing to do but read the page. The traversal's fast path tests this one byte.
    #[inline]
    pub(crate) fn asks_for_help(self) -> bool {
        matches!(
            self,
            Kind::Split | Kind::IndexDelete | Kind::Remove | Kind::Collapse
        )
    }
}

/// The header every node starts with. See the module docs.
#[repr(C)]
pub(crate) struct Node<K, V> {
    pub(crate) meta: Meta<K>,
    pub(crate) kind: Kind,
    witness: PublishWitness,
    _values: PhantomData<V>,
}

// SAFETY: a node owns its keys and values (sent to and shared with other threads, hence the bounds)
// and holds raw pointers only to older, immutable nodes of the same chain, which are kept alive by
// the epoch collector for as long as any thread can reach this node.
unsafe impl<K: Send + Sync, V: Send + Sync> Send for Node<K, V> {}
// SAFETY: as above; nodes are never mutated after publication.
unsafe impl<K: Send + Sync, V: Send + Sync> Sync for Node<K, V> {}

/// A summary of the logical page as of the node that carries it.
pub(crate) struct Meta<K> {
    /// Inclusive lower bound of the page's keys; null for "unbounded". Never changes for a PID.
    low: *const K,
    /// Exclusive upper bound; null for "unbounded".
    high: *const K,
    /// The right sibling on the same level ([`Pid::NONE`] for the rightmost page).
    pub(crate) right: Pid,
    /// Number of entries: records for a leaf, children for an inner page.
    pub(crate) size: u32,
    /// Number of delta records above the base page.
    pub(crate) depth: u32,
    /// 0 for leaves; a parent is one level above its children.
    pub(crate) level: u8,
    /// The base page at the end of this node's chain (a base page points at itself). Lets a leaf
    /// lookup search the base page first and skip the deltas (see [`Meta::slots`]).
    base: *const (),
    /// The lookup shortcut's summary of the leaf deltas above the base page: bit `i % 64` is set
    /// when some insert or delete delta of the chain has a key whose position in the base page
    /// (the index of the first base key not below it) is `i`. A lookup whose key's position bit
    /// is clear can answer from the base page alone, since equal keys have equal positions.
    /// [`NO_SHORTCUT`] (all bits) whenever the chain holds anything else that changes a lookup's
    /// answer (a merge delta, an inner page): every new delta kind starts from it (see
    /// `delta_header`) and only the insert and delete builders narrow it.
    pub(crate) slots: u64,
}

/// [`Meta::slots`] for chains a lookup must walk.
pub(crate) const NO_SHORTCUT: u64 = u64::MAX;

/// The [`Meta::slots`] bit of a key whose position in the base page is `position`.
#[inline]
pub(crate) fn slot_bit(position: usize) -> u64 {
    1 << (position % 64)
}

impl<K> Clone for Meta<K> {
    fn clone(&self) -> Self {
        Meta {
            low: self.low,
            high: self.high,
            right: self.right,
            size: self.size,
            depth: self.depth,
            level: self.level,
            base: self.base,
            slots: self.slots,
        }
    }
}

/// Leaf delta: `key` now maps to `value` (insert or overwrite).
#[repr(C)]
pub(crate) struct InsertDelta<K, V> {
    node: Node<K, V>,
    next: *const Node<K, V>,
    pub(crate) key: K,
    pub(crate) value: V,
}

/// Leaf delta: `key` is no longer present.
#[repr(C)]
pub(crate) struct DeleteDelta<K, V> {
    node: Node<K, V>,
    next: *const Node<K, V>,
    pub(crate) key: K,
}

/// Split delta: keys `>= separator` moved to the new right sibling `right`, which covers
/// `[separator, right_high)`. While it is the newest node of its chain, the index entry for `right`
/// may still be missing from the parent level: a thread that wants to post on this page or cross to
/// `right` first completes that step (help-along).
#[repr(C)]
pub(crate) struct SplitDelta<K, V> {
    node: Node<K, V>,
    next: *const Node<K, V>,
    pub(crate) separator: K,
    pub(crate) right: Pid,
    pub(crate) right_high: Option<K>,
}

/// Inner delta: keys in `[separator, child_high)` are routed to `child` (the parent-level half of a
/// split of one of this page's children).
#[repr(C)]
pub(crate) struct IndexEntryDelta<K, V> {
    node: Node<K, V>,
    next: *const Node<K, V>,
    pub(crate) separator: K,
    pub(crate) child: Pid,
    pub(crate) child_high: Option<K>,
}

/// Remove-node delta: the page is frozen for removal (merge step 1). While its [`Removal`] is
/// pending or committed nobody posts on the page; once committed the page's keys belong to its left
/// neighbour. An aborted removal makes the delta transparent.
#[repr(C)]
pub(crate) struct RemoveDelta<K, V> {
    node: Node<K, V>,
    next: *const Node<K, V>,
    pub(crate) removal: Arc<Removal>,
}

/// Merge delta (merge step 3) on the left neighbour: keys `>= separator` are now found in
/// `right_state`, the frozen chain of the removed page `removed`, which this delta owns from now on.
/// The removed page's slot may still point at `right_state` for a moment after the merge CAS; see
/// [`MappingTable::release_removed`](crate::mapping::MappingTable::release_removed).
#[repr(C)]
pub(crate) struct MergeDelta<K, V> {
    node: Node<K, V>,
    next: *const Node<K, V>,
    pub(crate) separator: K,
    right_state: *const Node<K, V>,
    pub(crate) removed: Pid,
}

/// Index-term-delete delta (merge step 2) on the parent: the child whose low key is `separator` is
/// gone; keys in `[separator, high)` are routed to `left`, the child before it. Takes effect only
/// once `removal` is committed; an aborted one is transparent.
#[repr(C)]
pub(crate) struct IndexDeleteDelta<K, V> {
    node: Node<K, V>,
    next: *const Node<K, V>,
    pub(crate) separator: K,
    pub(crate) high: Option<K>,
    pub(crate) left: Pid,
    pub(crate) removal: Arc<Removal>,
}

/// Collapse delta on a root with a single child: the root is frozen and its child is about to become
/// the root.
#[repr(C)]
pub(crate) struct CollapseDelta<K, V> {
    node: Node<K, V>,
    next: *const Node<K, V>,
}

/// The shared state of one page removal, referenced by its remove-node delta and, once posted, by
/// the parent's index-term-delete delta. The one CAS that moves it out of `PENDING` decides the
/// removal for every thread.
pub(crate) struct Removal {
    state: AtomicU8,
}

/// Outcome of a [`Removal`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RemovalState {
    /// Frozen; nobody knows yet whether the page goes.
    Pending,
    /// The page is gone: its parent routes its keys to its left neighbour.
    Committed,
    /// The page stays; the remove-node delta (and an index-term-delete, if posted) are no-ops.
    Aborted,
}

impl Removal {
    const PENDING: u8 = 0;
    const COMMITTED: u8 = 1;
    const ABORTED: u8 = 2;

    pub(crate) fn new() -> Arc<Removal> {
        Arc::new(Removal {
            state: AtomicU8::new(Self::PENDING),
        })
    }

    #[inline]
    pub(crate) fn state(&self) -> RemovalState {
        // Acquire: pairs with the AcqRel CAS in `decide`, so that whoever sees the outcome also sees
        // the index-term-delete that a commit relies on.
        match self.state.load(Ordering::Acquire) {
            Self::PENDING => RemovalState::Pending,
            Self::COMMITTED => RemovalState::Committed,
            _ => RemovalState::Aborted,
        }
    }

    /// Moves a pending removal to `Committed` (or `Aborted`); returns the outcome, whoever decided it.
    pub(crate) fn decide(&self, commit: bool) -> RemovalState {
        let to = if commit {
            Self::COMMITTED
        } else {
            Self::ABORTED
        };
        // AcqRel: Release publishes the decision (and the index-term-delete CASed before it);
        // Acquire on failure reads the winner's decision.
        let _ = self
            .state
            .compare_exchange(Self::PENDING, to, Ordering::AcqRel, Ordering::Acquire);
        self.state()
    }
}

impl<K, V> MergeDelta<K, V> {
    /// The removed page's frozen chain, for keys `>= separator`.
    #[inline]
    pub(crate) fn right_state(&self) -> NodeRef<'_, K, V> {
        // SAFETY: the merge delta owns the removed page's chain: it lives exactly as long as the
        // delta.
        unsafe { NodeRef::from_raw(self.right_state) }
            .expect("a merge delta always has a right state")
    }
}

/// The fixed part of a base page; the arrays follow it in the same allocation.
#[repr(C)]
struct BaseHeader<K, V> {
    node: Node<K, V>,
    /// First after the header: every visit compares the probe with it, so for small keys it shares
    /// the header's cache line.
    high: Option<K>,
    low: Option<K>,
    /// Leaf: number of records. Inner: number of children (one more than separators).
    len: usize,
}

const fn round_up(offset: usize, align: usize) -> usize {
    (offset + align - 1) & !(align - 1)
}

/// Base pages are aligned to a cache line so that the header never straddles two.
const BASE_ALIGN: usize = 64;

/// Offsets of a base page's two arrays `[A; a_len]` and `[B; b_len]`, and its layout.
#[inline]
fn base_layout<K, V, A, B>(a_len: usize, b_len: usize) -> (Layout, usize, usize) {
    let a_offset = round_up(size_of::<BaseHeader<K, V>>(), align_of::<A>());
    let b_offset = round_up(a_offset + a_len * size_of::<A>(), align_of::<B>());
    let size = b_offset + b_len * size_of::<B>();
    let align = BASE_ALIGN
        .max(align_of::<BaseHeader<K, V>>())
        .max(align_of::<A>())
        .max(align_of::<B>());
    let layout = Layout::from_size_align(size, align).expect("base page too large");
    (layout, a_offset, b_offset)
}

/// A child pointer cached in an inner base page by [`BwTree::freeze_routes`](crate::BwTree::freeze_routes)
/// (null otherwise). A plain std atomic even under loom: it is written and read only while the tree
/// is exclusively borrowed by a frozen view, so no thread races on it.
pub(crate) type CachedChild = core::sync::atomic::AtomicPtr<u8>;

/// Layout of an inner base page with `len` children: the header, `len - 1` separators, `len` child
/// PIDs and `len` [`CachedChild`] slots; returns the layout and the three arrays' offsets.
fn inner_layout<K, V>(len: usize) -> (Layout, usize, usize, usize) {
    let (layout, separators_at, children_at) = base_layout::<K, V, K, Pid>(len - 1, len);
    let cached_at = round_up(layout.size(), align_of::<CachedChild>());
    let size = cached_at + len * size_of::<CachedChild>();
    let align = layout.align().max(align_of::<CachedChild>());
    let layout = Layout::from_size_align(size, align).expect("base page too large");
    (layout, separators_at, children_at, cached_at)
}

/// A published node, valid while the epoch guard `'g` it was loaded under is alive.
pub(crate) struct NodeRef<'g, K, V> {
    ptr: NonNull<Node<K, V>>,
    _guard: PhantomData<&'g Node<K, V>>,
}

impl<K, V> Clone for NodeRef<'_, K, V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K, V> Copy for NodeRef<'_, K, V> {}

impl<K, V> Deref for NodeRef<'_, K, V> {
    type Target = Node<K, V>;

    #[inline]
    fn deref(&self) -> &Node<K, V> {
        // SAFETY: `from_raw`'s contract: the node is alive for `'g`, which outlives `self`.
        unsafe { self.ptr.as_ref() }
    }
}

/// A node seen through its concrete type.
pub(crate) enum Body<'g, K, V> {
    Leaf(LeafRef<'g, K, V>),
    Inner(InnerRef<'g, K, V>),
    Insert(&'g InsertDelta<K, V>),
    Delete(&'g DeleteDelta<K, V>),
    Split(&'g SplitDelta<K, V>),
    IndexEntry(&'g IndexEntryDelta<K, V>),
    Remove(&'g RemoveDelta<K, V>),
    Merge(&'g MergeDelta<K, V>),
    IndexDelete(&'g IndexDeleteDelta<K, V>),
    Collapse,
    Batch(BatchRef<'g, K, V>),
}

impl<'g, K, V> NodeRef<'g, K, V> {
    /// # Safety
    /// `ptr` must be null or point to a node that stays allocated for `'g` (it was loaded from the
    /// mapping table, or reached from such a node, under an epoch guard that lives for `'g`).
    #[inline]
    pub(crate) unsafe fn from_raw(ptr: *const Node<K, V>) -> Option<Self> {
        NonNull::new(ptr as *mut Node<K, V>).map(|ptr| {
            let node = NodeRef {
                ptr,
                _guard: PhantomData,
            };
            node.witness.observe();
            node
        })
    }

    #[inline]
    pub(crate) fn as_ptr(self) -> *const Node<K, V> {
        self.ptr.as_ptr()
    }

    /// The node as its concrete type.
    #[inline]
    pub(crate) fn body(self) -> Body<'g, K, V> {
        let ptr = self.ptr.as_ptr();
        // SAFETY: every node type is `#[repr(C)]` with the header first, and the tag names the type
        // the node was allocated as; `ptr` carries the provenance of the whole allocation and the
        // node lives for `'g`.
        unsafe {
            match self.kind {
                Kind::LeafBase => Body::Leaf(LeafRef {
                    ptr: ptr.cast(),
                    _guard: PhantomData,
                }),
                Kind::InnerBase => Body::Inner(InnerRef {
                    ptr: ptr.cast(),
                    _guard: PhantomData,
                }),
                Kind::Insert => Body::Insert(&*ptr.cast::<InsertDelta<K, V>>()),
                Kind::Delete => Body::Delete(&*ptr.cast::<DeleteDelta<K, V>>()),
                Kind::Split => Body::Split(&*ptr.cast::<SplitDelta<K, V>>()),
                Kind::IndexEntry => Body::IndexEntry(&*ptr.cast::<IndexEntryDelta<K, V>>()),
                Kind::Remove => Body::Remove(&*ptr.cast::<RemoveDelta<K, V>>()),
                Kind::Merge => Body::Merge(&*ptr.cast::<MergeDelta<K, V>>()),
                Kind::IndexDelete => Body::IndexDelete(&*ptr.cast::<IndexDeleteDelta<K, V>>()),
                Kind::Collapse => Body::Collapse,
                Kind::Batch => Body::Batch(BatchRef {
                    ptr: ptr.cast(),
                    _guard: PhantomData,
                }),
            }
        }
    }

    /// The next older node of the chain, for a delta record.
    #[inline]
    pub(crate) fn next(self) -> Option<NodeRef<'g, K, V>> {
        let next = next_of(self.as_ptr());
        // SAFETY: a delta's successor is an older node of the same chain, published before it and
        // freed no earlier than it, so it lives for `'g` as well.
        unsafe { NodeRef::from_raw(next) }
    }

    /// The inclusive lower bound of the page (`None`: unbounded).
    #[inline]
    pub(crate) fn low(self) -> Option<&'g K> {
        // SAFETY: `low` is null or points at a key inside this node or an older node of its chain;
        // the chain is freed as a unit, so the key lives for `'g`.
        unsafe { (*self.ptr.as_ptr()).meta.low.as_ref() }
    }

    /// The leaf base page a lookup may search directly, skipping the deltas whose key positions
    /// [`Meta::slots`] does not flag; `None` if the chain must be walked.
    #[inline]
    pub(crate) fn shortcut_base(self) -> Option<LeafRef<'g, K, V>> {
        if self.meta.slots == NO_SHORTCUT {
            return None;
        }
        // SAFETY: a node whose summary allows the shortcut is a leaf node whose `base` was set to
        // the leaf base page at the end of its chain (see `Meta::slots`); the chain is freed as a
        // unit, so the base lives as long as this node, for `'g`.
        let base = unsafe { NodeRef::<'g, K, V>::from_raw(self.meta.base.cast()) };
        match base.map(NodeRef::body) {
            Some(Body::Leaf(leaf)) => Some(leaf),
            _ => {
                debug_assert!(false, "a shortcut summary on a chain without a leaf base");
                None
            }
        }
    }

    /// Starts loading the header and key array of the leaf base page at the end of this node's
    /// chain, so that a walk of the deltas above it overlaps with those misses instead of paying
    /// them after it. Sizes the array from [`Meta::size`] (the page's entry count as of this node,
    /// close to the base page's).
    #[inline]
    pub(crate) fn prefetch_leaf_base(self) {
        let (_, keys_at, _) = base_layout::<K, V, K, V>(0, 0);
        let bytes = keys_at + self.meta.size as usize * size_of::<K>();
        // A hint only: `base` is not dereferenced.
        crate::memory::prefetch::bytes(self.meta.base.cast(), bytes);
    }

    /// The exclusive upper bound of the page (`None`: unbounded).
    #[inline]
    pub(crate) fn high(self) -> Option<&'g K> {
        // SAFETY: as for `low`.
        unsafe { (*self.ptr.as_ptr()).meta.high.as_ref() }
    }
}

impl<K: Ord, V> NodeRef<'_, K, V> {
    /// `key < high`: the page (or one to its left) is responsible for `key`.
    #[inline]
    pub(crate) fn below_high(self, key: &K) -> bool {
        self.high().is_none_or(|high| key < high)
    }

    /// `low <= key`.
    #[inline]
    pub(crate) fn above_low(self, key: &K) -> bool {
        self.low().is_none_or(|low| low <= key)
    }
}

impl<K, V> Node<K, V> {
    /// Whether this is a leaf page.
    #[inline]
    pub(crate) fn is_leaf(&self) -> bool {
        self.meta.level == 0
    }

    fn header(meta: Meta<K>, kind: Kind) -> Self {
        Node {
            meta,
            kind,
            witness: PublishWitness::new(),
            _values: PhantomData,
        }
    }
}

/// The `next` link of a delta record; null for a base page.
#[inline]
fn next_of<K, V>(ptr: *const Node<K, V>) -> *const Node<K, V> {
    // SAFETY: the caller passes a live node; for a delta kind the node is a `#[repr(C)]` delta struct
    // whose `next` field sits at the same offset for every delta type (right after the header).
    unsafe {
        match (*ptr).kind {
            Kind::LeafBase | Kind::InnerBase => ptr::null(),
            Kind::Insert => (*ptr.cast::<InsertDelta<K, V>>()).next,
            Kind::Delete => (*ptr.cast::<DeleteDelta<K, V>>()).next,
            Kind::Split => (*ptr.cast::<SplitDelta<K, V>>()).next,
            Kind::IndexEntry => (*ptr.cast::<IndexEntryDelta<K, V>>()).next,
            Kind::Remove => (*ptr.cast::<RemoveDelta<K, V>>()).next,
            Kind::Merge => (*ptr.cast::<MergeDelta<K, V>>()).next,
            Kind::IndexDelete => (*ptr.cast::<IndexDeleteDelta<K, V>>()).next,
            Kind::Collapse => (*ptr.cast::<CollapseDelta<K, V>>()).next,
            Kind::Batch => (*ptr.cast::<batch::BatchHeader<K, V>>()).next,
        }
    }
}

/// A leaf base page, valid for `'g`.
pub(crate) struct LeafRef<'g, K, V> {
    ptr: *const BaseHeader<K, V>,
    _guard: PhantomData<&'g Node<K, V>>,
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
        let (_, keys, _) = base_layout::<K, V, K, V>(len, len);
        // SAFETY: a leaf base page of `len` records holds `len` initialised keys at this offset, in
        // the same allocation as the header; it lives for `'g`.
        unsafe { core::slice::from_raw_parts(self.ptr.cast::<u8>().add(keys).cast::<K>(), len) }
    }

    /// The values, in key order.
    #[inline]
    pub(crate) fn values(&self) -> &'g [V] {
        let len = self.len();
        let (_, _, values) = base_layout::<K, V, K, V>(len, len);
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
    ptr: *const BaseHeader<K, V>,
    _guard: PhantomData<&'g Node<K, V>>,
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
        let (_, separators, _, _) = inner_layout::<K, V>(len);
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
        let (_, _, children, _) = inner_layout::<K, V>(len);
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
        let (_, _, _, cached) = inner_layout::<K, V>(len);
        // SAFETY: as for `separators`, `len` slots, initialised (null) by `inner_base`.
        unsafe {
            core::slice::from_raw_parts(
                self.ptr.cast::<u8>().add(cached).cast::<CachedChild>(),
                len,
            )
        }
    }
}

/// A node that has not been published (or whose publication CAS failed): freed on drop.
pub(crate) struct OwnedNode<K, V> {
    ptr: NonNull<Node<K, V>>,
}

// SAFETY: an unpublished node is exclusively owned; sending it sends its keys and values.
unsafe impl<K: Send + Sync, V: Send + Sync> Send for OwnedNode<K, V> {}

impl<K, V> OwnedNode<K, V> {
    /// Gives up ownership: the caller has published the node (or handed it to a chain that owns it).
    #[inline]
    pub(crate) fn into_raw(self) -> *mut Node<K, V> {
        let ptr = self.ptr.as_ptr();
        core::mem::forget(self);
        ptr
    }

    /// # Safety
    /// `ptr` must come from [`OwnedNode::into_raw`] of a node that was never published, or that is
    /// exclusively owned again (a lost CAS hands the node back).
    #[inline]
    pub(crate) unsafe fn from_raw(ptr: *mut Node<K, V>) -> Self {
        OwnedNode {
            ptr: NonNull::new(ptr).expect("null node"),
        }
    }

    /// A shared view of the node (for building a delta on top of it before publication).
    #[inline]
    pub(crate) fn as_ref(&self) -> NodeRef<'_, K, V> {
        NodeRef {
            ptr: self.ptr,
            _guard: PhantomData,
        }
    }

    /// The key of an insert or delete delta.
    pub(crate) fn data_key(&self) -> &K {
        let ptr = self.ptr.as_ptr();
        // SAFETY: we own the node; the tag names its type.
        unsafe {
            match (*ptr).kind {
                Kind::Insert => &(*ptr.cast::<InsertDelta<K, V>>()).key,
                Kind::Delete => &(*ptr.cast::<DeleteDelta<K, V>>()).key,
                kind => unreachable!("{kind:?} is not a data delta"),
            }
        }
    }

    /// Takes the entries back out of an unpublished batch delta (after a lost CAS), freeing it.
    pub(crate) fn into_batch_entries(self) -> Vec<(K, Option<V>)> {
        let ptr = self.into_raw();
        // SAFETY: we owned the node exclusively (`into_raw` gave up the `OwnedNode`, so it is not
        // freed again); the tag is checked before the cast.
        unsafe {
            assert_eq!((*ptr).kind, Kind::Batch, "not a batch delta");
            batch::take_entries(ptr)
        }
    }

    /// Re-targets an unpublished insert or delete delta at a newer `prev` (after a lost CAS) with
    /// a new entry count; `position` is its key's position in `prev`'s base page, `None` if the
    /// lookup could not take the shortcut (see [`Meta::slots`]).
    pub(crate) fn rebase(&mut self, prev: NodeRef<'_, K, V>, size: u32, position: Option<usize>) {
        let ptr = self.ptr.as_ptr();
        let meta = data_meta(prev, size, position);
        // SAFETY: we own the unpublished node exclusively; every delta type has `next` right after
        // the header, written through the concrete type named by the tag.
        unsafe {
            (*ptr).meta = meta;
            set_next(ptr, prev.as_ptr());
        }
    }
}

impl<K, V> Drop for OwnedNode<K, V> {
    fn drop(&mut self) {
        // SAFETY: an `OwnedNode` is the only owner of an unpublished node.
        unsafe { free_node(self.ptr.as_ptr()) }
    }
}

/// # Safety
/// `ptr` must be an exclusively owned delta node.
unsafe fn set_next<K, V>(ptr: *mut Node<K, V>, next: *const Node<K, V>) {
    // SAFETY: the caller's contract; the tag names the concrete type.
    unsafe {
        match (*ptr).kind {
            Kind::Insert => (*ptr.cast::<InsertDelta<K, V>>()).next = next,
            Kind::Delete => (*ptr.cast::<DeleteDelta<K, V>>()).next = next,
            Kind::Split => (*ptr.cast::<SplitDelta<K, V>>()).next = next,
            Kind::IndexEntry => (*ptr.cast::<IndexEntryDelta<K, V>>()).next = next,
            Kind::Remove => (*ptr.cast::<RemoveDelta<K, V>>()).next = next,
            Kind::Merge => (*ptr.cast::<MergeDelta<K, V>>()).next = next,
            Kind::IndexDelete => (*ptr.cast::<IndexDeleteDelta<K, V>>()).next = next,
            Kind::Collapse => (*ptr.cast::<CollapseDelta<K, V>>()).next = next,
            Kind::Batch => (*ptr.cast::<batch::BatchHeader<K, V>>()).next = next,
            Kind::LeafBase | Kind::InnerBase => unreachable!("a base page has no successor"),
        }
    }
}

/// The header of a delta on top of `prev`, for a page that now has `size` entries. Lookups that
/// meet it walk the chain ([`NO_SHORTCUT`]) unless the builder narrows [`Meta::slots`].
fn delta_header<K, V>(prev: NodeRef<'_, K, V>, kind: Kind, size: u32) -> Node<K, V> {
    let mut meta = prev.meta.clone();
    meta.size = size;
    meta.depth = prev.meta.depth + 1;
    meta.slots = NO_SHORTCUT;
    Node::header(meta, kind)
}

/// The header summary of an insert or delete delta on top of `prev` whose key has `position` in
/// the base page (`None`: unknown, the chain must be walked).
fn data_meta<K, V>(prev: NodeRef<'_, K, V>, size: u32, position: Option<usize>) -> Meta<K> {
    let mut meta = prev.meta.clone();
    meta.size = size;
    meta.depth = prev.meta.depth + 1;
    meta.slots = match position {
        Some(position) => prev.meta.slots | slot_bit(position),
        None => NO_SHORTCUT,
    };
    meta
}

/// Moves a delta record into a block of its own (from this thread's recycled blocks where it has
/// one, see `page_pool`); [`free_delta`] gives it back.
fn boxed<T, K, V>(node: T) -> OwnedNode<K, V> {
    let ptr = crate::memory::page_pool::allocate(Layout::new::<T>()).cast::<T>();
    // SAFETY: `allocate` returned a fresh block for `T`'s layout (size and alignment), which
    // nobody else can see yet.
    unsafe { ptr.as_ptr().write(node) };
    OwnedNode {
        // `T` is a `#[repr(C)]` node type whose first field is the header.
        ptr: ptr.cast(),
    }
}

/// Drops a delta record built by [`boxed`] as a `T` and releases its block.
///
/// # Safety
/// `ptr` must come from `boxed::<T, ..>`, be exclusively owned and not be used again.
unsafe fn free_delta<T, K, V>(ptr: *mut Node<K, V>) {
    let ptr = ptr.cast::<T>();
    // SAFETY: the caller's contract: a live `T` in a block `boxed` allocated with `T`'s layout.
    unsafe {
        ptr::drop_in_place(ptr);
        crate::memory::page_pool::release(NonNull::new_unchecked(ptr.cast()), Layout::new::<T>());
    }
}

/// An insert delta on top of `prev`; `position`: see [`OwnedNode::rebase`].
pub(crate) fn insert_delta<K, V>(
    prev: NodeRef<'_, K, V>,
    key: K,
    value: V,
    size: u32,
    position: Option<usize>,
) -> OwnedNode<K, V> {
    boxed(InsertDelta {
        node: Node::header(data_meta(prev, size, position), Kind::Insert),
        next: prev.as_ptr(),
        key,
        value,
    })
}

/// A delete delta on top of `prev`; `position`: see [`OwnedNode::rebase`].
pub(crate) fn delete_delta<K, V>(
    prev: NodeRef<'_, K, V>,
    key: K,
    size: u32,
    position: Option<usize>,
) -> OwnedNode<K, V> {
    boxed(DeleteDelta {
        node: Node::header(data_meta(prev, size, position), Kind::Delete),
        next: prev.as_ptr(),
        key,
    })
}

/// A split delta on top of `lower`, the new base page of the left half.
pub(crate) fn split_delta<K, V>(
    lower: NodeRef<'_, K, V>,
    separator: K,
    right: Pid,
    right_high: Option<K>,
) -> OwnedNode<K, V> {
    let mut node = delta_header(lower, Kind::Split, lower.meta.size);
    // A split moves no key into the page: lookups below the separator may keep the shortcut, and
    // lookups at or above it never reach this page (they move right first).
    node.meta.slots = lower.meta.slots;
    boxed(SplitDelta {
        node,
        next: lower.as_ptr(),
        separator,
        right,
        right_high,
    })
}

/// An index-entry delta on top of `prev` (an inner page that now has `size` children).
pub(crate) fn index_entry_delta<K, V>(
    prev: NodeRef<'_, K, V>,
    separator: K,
    child: Pid,
    child_high: Option<K>,
    size: u32,
) -> OwnedNode<K, V> {
    boxed(IndexEntryDelta {
        node: delta_header(prev, Kind::IndexEntry, size),
        next: prev.as_ptr(),
        separator,
        child,
        child_high,
    })
}

/// A remove-node delta on top of `prev` (merge step 1).
pub(crate) fn remove_delta<K, V>(
    prev: NodeRef<'_, K, V>,
    removal: Arc<Removal>,
) -> OwnedNode<K, V> {
    boxed(RemoveDelta {
        node: delta_header(prev, Kind::Remove, prev.meta.size),
        next: prev.as_ptr(),
        removal,
    })
}

/// A merge delta on top of `left` that takes over `right`, the frozen head of the removed page
/// `removed` whose low key is `separator`. The delta owns `right`'s chain once published.
pub(crate) fn merge_delta<K, V>(
    left: NodeRef<'_, K, V>,
    right: NodeRef<'_, K, V>,
    removed: Pid,
    separator: K,
) -> OwnedNode<K, V> {
    let mut meta = left.meta.clone();
    meta.high = right.meta.high;
    meta.right = right.meta.right;
    meta.size = left.meta.size + right.meta.size;
    // Walking into the right state costs what its chain costs: count it, so consolidation comes soon.
    meta.depth = left.meta.depth + right.meta.depth + 1;
    // Lookups at or above the separator continue in the right state: no shortcut.
    meta.slots = NO_SHORTCUT;
    boxed(MergeDelta {
        node: Node::header(meta, Kind::Merge),
        next: left.as_ptr(),
        separator,
        right_state: right.as_ptr(),
        removed,
    })
}

/// An index-term-delete delta on top of `prev` (an inner page that will have `size` children).
pub(crate) fn index_delete_delta<K, V>(
    prev: NodeRef<'_, K, V>,
    separator: K,
    high: Option<K>,
    left: Pid,
    removal: Arc<Removal>,
    size: u32,
) -> OwnedNode<K, V> {
    boxed(IndexDeleteDelta {
        node: delta_header(prev, Kind::IndexDelete, size),
        next: prev.as_ptr(),
        separator,
        high,
        left,
        removal,
    })
}

/// A collapse delta on top of `prev`, a root with a single child.
pub(crate) fn collapse_delta<K, V>(prev: NodeRef<'_, K, V>) -> OwnedNode<K, V> {
    boxed(CollapseDelta {
        node: delta_header(prev, Kind::Collapse, prev.meta.size),
        next: prev.as_ptr(),
    })
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

/// Writes clones of `src` to the `src.len()` slots starting at `dst`, in one tight loop (for
/// `Copy` types the compiler turns it into a block copy); if a clone panics, drops the clones
/// already written.
///
/// # Safety
/// The slots must be valid for writes, unaliased and hold nothing that needs dropping.
#[inline]
unsafe fn write_clones<T: Clone>(dst: *mut T, src: &[T]) {
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
struct DropOnUnwind<T>(*mut [T]);

impl<T> Drop for DropOnUnwind<T> {
    fn drop(&mut self) {
        // SAFETY: built from a slice of values just written, which nothing else owns yet (the
        // page's drop does not count them); dropped once, here, or forgotten.
        unsafe { ptr::drop_in_place(self.0) };
    }
}

/// A leaf base page of a fixed number of records under construction, written in key order. Frees
/// what was written (and the page) if dropped before `finish`, e.g. when a clone panics.
struct LeafPageWriter<K, V> {
    page: BasePageBuilder<K, V>,
    keys: *mut K,
    values: *mut V,
    len: usize,
}

impl<K, V> LeafPageWriter<K, V> {
    fn new(low: Option<K>, high: Option<K>, right: Pid, len: usize) -> Self {
        let (layout, keys_at, values_at) = base_layout::<K, V, K, V>(len, len);
        let page = BasePageBuilder::<K, V>::new(layout, Kind::LeafBase, 0, right, low, high, len);
        // SAFETY: `base_layout` put both arrays of `len` slots inside the page's allocation, at
        // these offsets.
        let (keys, values) = unsafe {
            (
                page.base().add(keys_at).cast::<K>(),
                page.base().add(values_at).cast::<V>(),
            )
        };
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
        assert!(i < self.len, "more records than the page's length");
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
            "more records than the page's length"
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
            "fewer records than the page's length (an ExactSizeIterator reported a wrong length?)"
        );
        self.page.finish()
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
    let (layout, separators_at, children_at, cached_at) = inner_layout::<K, V>(len);
    let mut page =
        BasePageBuilder::<K, V>::new(layout, Kind::InnerBase, level, right, low, high, len);
    // SAFETY: `len` PIDs fit at `children_at` and `len` cached-child slots at `cached_at`; neither
    // has drop glue, so they count as initialised once written.
    unsafe {
        ptr::copy_nonoverlapping(
            children.as_ptr(),
            page.base().add(children_at).cast::<Pid>(),
            len,
        );
        let cached = page.base().add(cached_at).cast::<CachedChild>();
        for i in 0..len {
            cached.add(i).write(CachedChild::new(ptr::null_mut()));
        }
    }
    for (i, separator) in separators.take(len - 1).enumerate() {
        // SAFETY: slot `i < len - 1` of the separator array lies inside the allocation.
        unsafe {
            page.base()
                .add(separators_at)
                .cast::<K>()
                .add(i)
                .write(separator)
        };
        page.initialised = i + 1;
    }
    assert_eq!(
        page.initialised,
        len - 1,
        "ExactSizeIterator reported a wrong length"
    );
    page.finish()
}

/// Builds a base page in place; frees it (and what was written so far) if dropped before `finish`.
struct BasePageBuilder<K, V> {
    ptr: NonNull<BaseHeader<K, V>>,
    layout: Layout,
    /// Entries written so far (leaf: records; inner: separators).
    initialised: usize,
}

impl<K, V> BasePageBuilder<K, V> {
    /// A base page of `kind` at `level` with `len` entries, bounds `low`..`high` and right sibling
    /// `right`, its arrays not yet written. The header's summary is derived from these: no chain
    /// above it, the page is its own base, and the lookup shortcut is on for leaves (an empty
    /// summary) and off for inner pages.
    fn new(
        layout: Layout,
        kind: Kind,
        level: u8,
        right: Pid,
        low: Option<K>,
        high: Option<K>,
        len: usize,
    ) -> Self {
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
        // Base pages come from the thread's recycled blocks where it has one (see `page_pool`).
        let ptr = crate::memory::page_pool::allocate(layout).cast::<BaseHeader<K, V>>();
        // SAFETY: freshly allocated with room and alignment for the header.
        unsafe {
            ptr.as_ptr().write(BaseHeader {
                node: Node::header(meta, kind),
                high,
                low,
                len,
            });
            // The bounds live inside the page itself.
            let header = ptr.as_ptr();
            (*header).node.meta.low = opt_ptr((*header).low.as_ref());
            (*header).node.meta.high = opt_ptr((*header).high.as_ref());
            (*header).node.meta.base = header as *const ();
        }
        BasePageBuilder {
            ptr,
            layout,
            initialised: 0,
        }
    }

    fn base(&self) -> *mut u8 {
        self.ptr.as_ptr().cast()
    }

    fn finish(self) -> OwnedNode<K, V> {
        let ptr = self.ptr.cast::<Node<K, V>>();
        core::mem::forget(self);
        OwnedNode { ptr }
    }
}

impl<K, V> Drop for BasePageBuilder<K, V> {
    fn drop(&mut self) {
        // Only reached when building panicked: drop what was written, then the memory.
        // SAFETY: the header and the first `initialised` entries were written; nothing else is.
        // The block came from `page_pool::allocate(self.layout)` and is not published.
        unsafe {
            let header = self.ptr.as_ptr();
            let len = (*header).len;
            let kind = (*header).node.kind;
            drop_base_contents::<K, V>(header, kind, len, self.initialised);
            crate::memory::page_pool::release(self.ptr.cast(), self.layout);
        }
    }
}

/// Drops a base page's bounds and its first `initialised` entries (not the memory).
///
/// # Safety
/// `header` must point to a base page of `kind` with `len` entries whose first `initialised` are
/// initialised; nothing may use them afterwards.
unsafe fn drop_base_contents<K, V>(
    header: *mut BaseHeader<K, V>,
    kind: Kind,
    len: usize,
    initialised: usize,
) {
    // SAFETY: the caller's contract.
    unsafe {
        ptr::drop_in_place(ptr::addr_of_mut!((*header).low));
        ptr::drop_in_place(ptr::addr_of_mut!((*header).high));
        let base = header.cast::<u8>();
        match kind {
            Kind::LeafBase => {
                let (_, keys_at, values_at) = base_layout::<K, V, K, V>(len, len);
                ptr::drop_in_place(ptr::slice_from_raw_parts_mut(
                    base.add(keys_at).cast::<K>(),
                    initialised,
                ));
                ptr::drop_in_place(ptr::slice_from_raw_parts_mut(
                    base.add(values_at).cast::<V>(),
                    initialised,
                ));
            }
            Kind::InnerBase => {
                let (_, separators_at, _, _) = inner_layout::<K, V>(len);
                ptr::drop_in_place(ptr::slice_from_raw_parts_mut(
                    base.add(separators_at).cast::<K>(),
                    initialised,
                ));
            }
            _ => unreachable!("not a base page"),
        }
    }
}

/// Frees one node (not its successors).
///
/// # Safety
/// `ptr` must point to a node no other thread can reach any more, and it must not be freed again.
pub(crate) unsafe fn free_node<K, V>(ptr: *mut Node<K, V>) {
    // SAFETY: the caller's contract; the tag names the type the node was allocated as.
    unsafe {
        match (*ptr).kind {
            Kind::Insert => free_delta::<InsertDelta<K, V>, K, V>(ptr),
            Kind::Delete => free_delta::<DeleteDelta<K, V>, K, V>(ptr),
            Kind::Split => free_delta::<SplitDelta<K, V>, K, V>(ptr),
            Kind::IndexEntry => free_delta::<IndexEntryDelta<K, V>, K, V>(ptr),
            Kind::Remove => free_delta::<RemoveDelta<K, V>, K, V>(ptr),
            // Only the delta itself: its right state is freed by `free_chain`, which owns the walk.
            Kind::Merge => free_delta::<MergeDelta<K, V>, K, V>(ptr),
            Kind::IndexDelete => free_delta::<IndexDeleteDelta<K, V>, K, V>(ptr),
            Kind::Collapse => free_delta::<CollapseDelta<K, V>, K, V>(ptr),
            Kind::Batch => batch::free(ptr),
            kind @ (Kind::LeafBase | Kind::InnerBase) => {
                let header = ptr.cast::<BaseHeader<K, V>>();
                let len = (*header).len;
                let (layout, initialised) = if kind == Kind::LeafBase {
                    (base_layout::<K, V, K, V>(len, len).0, len)
                } else {
                    (inner_layout::<K, V>(len).0, len - 1)
                };
                drop_base_contents::<K, V>(header, kind, len, initialised);
                // `BasePageBuilder::new` allocated it from the page pool with this layout.
                crate::memory::page_pool::release(NonNull::new_unchecked(header.cast()), layout);
            }
        }
    }
}

/// Frees the chain starting at `head` right now, following `next` links and, through merge
/// deltas, the chains of merged-away pages.
///
/// # Safety
/// No other thread may be able to reach any node of the chain, and it must not be freed again.
pub(crate) unsafe fn free_chain<K, V>(head: *const Node<K, V>) {
    let mut pending: Vec<*const Node<K, V>> = Vec::new();
    let mut next = head;
    loop {
        while !next.is_null() {
            let node = next as *mut Node<K, V>;
            // SAFETY: the caller's contract: the node is live and exclusively ours.
            if unsafe { (*node).kind } == Kind::Merge {
                // SAFETY: as above; the tag says it is a merge delta.
                pending.push(unsafe { (*node.cast::<MergeDelta<K, V>>()).right_state });
            }
            next = next_of(node);
            // SAFETY: the caller's contract; each node of the tree of chains is reached once.
            unsafe { free_node(node) };
        }
        match pending.pop() {
            Some(right) => next = right,
            None => return,
        }
    }
}

fn opt_ptr<K>(key: Option<&K>) -> *const K {
    key.map_or(ptr::null(), |k| k as *const K)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

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
        use std::sync::atomic::{AtomicIsize, Ordering};
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
        use std::sync::atomic::{AtomicIsize, Ordering};
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
