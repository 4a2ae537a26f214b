//! Page layout: base pages and delta records.
//!
//! A logical page is what its mapping-table slot points to: a chain of *delta records*, newest first,
//! ending in a *base page*. Every node of a chain is immutable once published; a page changes only
//! when a new node is prepended with one CAS on the slot (or the whole chain is replaced by a new base
//! page, see `protocol::consolidate` and `protocol::split`). The states a page goes through are in
//! the [protocol guide](crate::protocol_guide).
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
//! | remove-node delta | link to the next node, the shared [`Removal`] decision |
//! | merge delta | link to the next node, separator, the removed page's PID and frozen chain |
//! | index-term-delete delta | link to the next node, separator, high key, left PID, the [`Removal`] |
//! | collapse delta | link to the next node |
//! | batch delta | link to the next node, length, then the sorted keys and the optional values |
//!
//! Files: [`base`] (base pages), [`delta`] (single-record and SMO deltas), [`batch`] (batch
//! deltas), [`layout`] (the one block layout of base pages and batch deltas), [`owned`]
//! (unpublished nodes and freeing), [`removal`] (the removal decision), [`chain`] (reading a page
//! through its chain).
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

use core::marker::PhantomData;
use core::mem::size_of;
use core::ops::Deref;
use core::ptr::{self, NonNull};

use crate::mapping::Pid;
use crate::sync::PublishWitness;

mod base;
mod batch;
pub(crate) mod chain;
mod delta;
mod layout;
mod owned;
mod removal;

pub(crate) use base::{InnerRef, LeafRef, inner_base, leaf_base, leaf_base_merged};
pub(crate) use batch::{BatchRef, batch_delta};
pub(crate) use delta::{
    DeleteDelta, IndexDeleteDelta, IndexEntryDelta, InsertDelta, MergeDelta, RemoveDelta,
    SplitDelta, collapse_delta, delete_delta, index_delete_delta, index_entry_delta, insert_delta,
    merge_delta, remove_delta, split_delta,
};
pub(crate) use owned::{OwnedNode, free_chain};
pub(crate) use removal::{Removal, RemovalState};

/// What a node is. Stored in every header; decides the node's concrete type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    /// A leaf base page: sorted keys and their values (see [`base`]).
    LeafBase,
    /// An inner base page: separators and child PIDs (see [`base`]).
    InnerBase,
    /// A leaf delta setting one key's value ([`InsertDelta`]).
    Insert,
    /// A leaf delta removing one key ([`DeleteDelta`]).
    Delete,
    /// The first half of a split: the upper keys moved to a new right sibling ([`SplitDelta`]).
    Split,
    /// The second half of a split, on the parent: a route to the new sibling ([`IndexEntryDelta`]).
    IndexEntry,
    /// A page frozen for removal ([`RemoveDelta`], merge step 1).
    Remove,
    /// A left neighbour taking over a removed page ([`MergeDelta`], merge step 3).
    Merge,
    /// A parent dropping a removed child's route ([`IndexDeleteDelta`], merge step 2).
    IndexDelete,
    /// A root with a single child, frozen while the child becomes the root (`CollapseDelta`).
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
        let next = delta::next_of(self.as_ptr());
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
        let keys_at = base::leaf_keys_offset::<K, V>();
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

/// A key reference as the raw pointer a [`Meta`] stores (null for unbounded).
fn opt_ptr<K>(key: Option<&K>) -> *const K {
    key.map_or(ptr::null(), |k| k as *const K)
}
