//! Delta records: the single-record and structure-modification nodes prepended to a page's
//! chain, and their constructors.

use core::alloc::Layout;
use core::ptr::{self, NonNull};

use super::{Kind, Meta, NO_SHORTCUT, Node, NodeRef, OwnedNode, Removal, batch, slot_bit};

use crate::mapping::Pid;
use crate::sync::Arc;

/// Leaf delta: `key` now maps to `value` (insert or overwrite).
#[repr(C)]
pub(crate) struct InsertDelta<K, V> {
    pub(super) node: Node<K, V>,
    pub(super) next: *const Node<K, V>,
    pub(crate) key: K,
    pub(crate) value: V,
}

/// Leaf delta: `key` is no longer present.
#[repr(C)]
pub(crate) struct DeleteDelta<K, V> {
    pub(super) node: Node<K, V>,
    pub(super) next: *const Node<K, V>,
    pub(crate) key: K,
}

/// Split delta: keys `>= separator` moved to the new right sibling `right`, which covers
/// `[separator, right_high)`. While it is the newest node of its chain, the index entry for `right`
/// may still be missing from the parent level: a thread that wants to post on this page or cross to
/// `right` first completes that step (help-along).
#[repr(C)]
pub(crate) struct SplitDelta<K, V> {
    pub(super) node: Node<K, V>,
    pub(super) next: *const Node<K, V>,
    pub(crate) separator: K,
    pub(crate) right: Pid,
    pub(crate) right_high: Option<K>,
}

/// Inner delta: keys in `[separator, child_high)` are routed to `child` (the parent-level half of a
/// split of one of this page's children).
#[repr(C)]
pub(crate) struct IndexEntryDelta<K, V> {
    pub(super) node: Node<K, V>,
    pub(super) next: *const Node<K, V>,
    pub(crate) separator: K,
    pub(crate) child: Pid,
    pub(crate) child_high: Option<K>,
}

/// Remove-node delta: the page is frozen for removal (merge step 1). While its [`Removal`] is
/// pending or committed nobody posts on the page; once committed the page's keys belong to its left
/// neighbour. An aborted removal makes the delta transparent.
#[repr(C)]
pub(crate) struct RemoveDelta<K, V> {
    pub(super) node: Node<K, V>,
    pub(super) next: *const Node<K, V>,
    pub(crate) removal: Arc<Removal>,
}

/// Merge delta (merge step 3) on the left neighbour: keys `>= separator` are now found in
/// `right_state`, the frozen chain of the removed page `removed`, which this delta owns from now on.
/// The removed page's slot may still point at `right_state` for a moment after the merge CAS; see
/// [`MappingTable::release_removed`](crate::mapping::MappingTable::release_removed).
#[repr(C)]
pub(crate) struct MergeDelta<K, V> {
    pub(super) node: Node<K, V>,
    pub(super) next: *const Node<K, V>,
    pub(crate) separator: K,
    pub(super) right_state: *const Node<K, V>,
    pub(crate) removed: Pid,
}

/// Index-term-delete delta (merge step 2) on the parent: the child whose low key is `separator` is
/// gone; keys in `[separator, high)` are routed to `left`, the child before it. Takes effect only
/// once `removal` is committed; an aborted one is transparent.
#[repr(C)]
pub(crate) struct IndexDeleteDelta<K, V> {
    pub(super) node: Node<K, V>,
    pub(super) next: *const Node<K, V>,
    pub(crate) separator: K,
    pub(crate) high: Option<K>,
    pub(crate) left: Pid,
    pub(crate) removal: Arc<Removal>,
}

/// Collapse delta on a root with a single child: the root is frozen and its child is about to become
/// the root.
#[repr(C)]
pub(crate) struct CollapseDelta<K, V> {
    pub(super) node: Node<K, V>,
    pub(super) next: *const Node<K, V>,
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

/// # Safety
/// `ptr` must be an exclusively owned delta node.
pub(super) unsafe fn set_next<K, V>(ptr: *mut Node<K, V>, next: *const Node<K, V>) {
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
pub(super) fn delta_header<K, V>(prev: NodeRef<'_, K, V>, kind: Kind, size: u32) -> Node<K, V> {
    let mut meta = prev.meta.clone();
    meta.size = size;
    meta.depth = prev.meta.depth + 1;
    meta.slots = NO_SHORTCUT;
    Node::header(meta, kind)
}

/// The header summary of an insert or delete delta on top of `prev` whose key has `position` in
/// the base page (`None`: unknown, the chain must be walked).
pub(super) fn data_meta<K, V>(
    prev: NodeRef<'_, K, V>,
    size: u32,
    position: Option<usize>,
) -> Meta<K> {
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
    // `T` is a `#[repr(C)]` node type whose first field is the header.
    OwnedNode::new(ptr.cast())
}

/// Drops a delta record built by [`boxed`] as a `T` and releases its block.
///
/// # Safety
/// `ptr` must come from `boxed::<T, ..>`, be exclusively owned and not be used again.
pub(super) unsafe fn free_delta<T, K, V>(ptr: *mut Node<K, V>) {
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

/// A split delta on top of `lower`, the new base page of the left half, which it takes over: the
/// two are published (or freed) together.
pub(crate) fn split_delta<K, V>(
    lower: OwnedNode<K, V>,
    separator: K,
    right: Pid,
    right_high: Option<K>,
) -> OwnedNode<K, V> {
    let mut node = delta_header(lower.as_ref(), Kind::Split, lower.as_ref().meta.size);
    // A split moves no key into the page: lookups below the separator may keep the shortcut, and
    // lookups at or above it never reach this page (they move right first).
    node.meta.slots = lower.as_ref().meta.slots;
    let mut delta = boxed(SplitDelta {
        node,
        next: lower.as_ptr(),
        separator,
        right,
        right_high,
    });
    // The split delta owns the lower half from here on (it is the next node of its chain).
    let _ = lower.into_raw();
    delta.owns_chain = true;
    delta
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

/// The `next` link of a delta record; null for a base page.
#[inline]
pub(super) fn next_of<K, V>(ptr: *const Node<K, V>) -> *const Node<K, V> {
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
