//! Nodes owned by one thread (not yet published, or handed back by a lost CAS), and freeing
//! nodes and whole chains.

use core::marker::PhantomData;
use core::ptr::NonNull;

use super::base;
use super::delta::*;
use super::{Kind, Node, NodeRef, batch};

/// A node that has not been published (or whose publication CAS failed): freed on drop.
///
/// Most unpublished nodes are a delta on top of a published head, which they do not own; a split
/// delta is built on top of the fresh base page of its lower half, which it does own
/// (`owns_chain`): dropping it frees both.
pub(crate) struct OwnedNode<K, V> {
    pub(super) ptr: NonNull<Node<K, V>>,
    /// Whether the node's successors are unpublished too and belong to it.
    pub(super) owns_chain: bool,
}

// SAFETY: an unpublished node is exclusively owned; sending it sends its keys and values.
unsafe impl<K: Send + Sync, V: Send + Sync> Send for OwnedNode<K, V> {}

impl<K, V> OwnedNode<K, V> {
    /// A node that owns nothing but itself.
    #[inline]
    pub(super) fn new(ptr: NonNull<Node<K, V>>) -> Self {
        OwnedNode {
            ptr,
            owns_chain: false,
        }
    }

    /// The node's address (for the CAS that publishes it).
    #[inline]
    pub(crate) fn as_ptr(&self) -> *mut Node<K, V> {
        self.ptr.as_ptr()
    }

    /// Gives up ownership: the caller has published the node (or handed it to a chain that owns it).
    #[inline]
    pub(crate) fn into_raw(self) -> *mut Node<K, V> {
        let ptr = self.ptr.as_ptr();
        core::mem::forget(self);
        ptr
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
    /// lookup could not take the shortcut (see [`Meta::slots`](super::Meta::slots)).
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
        // SAFETY: an `OwnedNode` is the only owner of an unpublished node, and of its successors
        // when `owns_chain` says so (they were never published either).
        unsafe {
            if self.owns_chain {
                free_chain(self.ptr.as_ptr());
            } else {
                free_node(self.ptr.as_ptr());
            }
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
            Kind::LeafBase | Kind::InnerBase => base::free(ptr),
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
