//! The mapping table: logical page ids (PIDs) to the current state of each page.
//!
//! Every link between pages — a child pointer in an inner page, a right-sibling link — is a [`Pid`],
//! never a memory address. Changing a page therefore means one compare-and-swap on its slot here,
//! and nothing that refers to the page needs to be touched.
//!
//! # Layout
//! The table is a two-level array whose segments grow geometrically: segment `s` holds
//! `FIRST_SEGMENT << s` slots, so 54 segments cover every `u64` PID and the table has no fixed cap.
//! A segment is allocated the first time a PID inside it is handed out and installed with a CAS; a
//! thread that loses that race frees its copy. Segments are never freed before the table itself, so a
//! slot's address is stable for the table's lifetime and lookups need no guard of their own.
//!
//! # PID allocation and reuse
//! Fresh PIDs come from a counter. PIDs of dead pages go to a free list (a Treiber stack whose nodes
//! are reclaimed through the epoch collector, which also rules out ABA on its head), but only after
//! an epoch has passed since the page became unreachable (see [`PidAllocator::recycle_after_epoch`]),
//! so a thread that read an old link to the PID can never land on a page that reused it.

use core::marker::PhantomData;
use core::ptr;

use crossbeam_epoch::Guard;

use crate::memory::reclaim::retire;
use crate::page::{Body, Node, NodeRef, OwnedNode, free_chain};
use crate::research::fault::{self, Fault};
use crate::sync::{AtomicPtr, Ordering, PUBLISHED_LOAD};

mod pid;
mod root;

pub(crate) use pid::Pid;
use pid::PidAllocator;
pub(crate) use root::RootPid;

/// Slots in segment 0; segment `s` has `FIRST_SEGMENT << s`. Under loom every slot is a tracked
/// object, so segments start small there (and models still cross segment boundaries).
#[cfg(not(loom))]
const FIRST_SEGMENT_BITS: u32 = 10;
#[cfg(loom)]
const FIRST_SEGMENT_BITS: u32 = 2;
const FIRST_SEGMENT: u64 = 1 << FIRST_SEGMENT_BITS;
/// Enough segments for every `u64` PID.
const SEGMENTS: usize = (64 - FIRST_SEGMENT_BITS) as usize;

/// Which segment holds `pid`, and where inside it.
#[inline]
fn locate(pid: Pid) -> (usize, usize) {
    // Shift so that segment boundaries fall on powers of two: segment s covers
    // [FIRST << s, FIRST << (s + 1)) of `pid + FIRST`. Saturating keeps u64::MAX in range.
    let shifted = pid.0.saturating_add(FIRST_SEGMENT);
    let bit = 63 - shifted.leading_zeros();
    let segment = (bit - FIRST_SEGMENT_BITS) as usize;
    let offset = (shifted - (1u64 << bit)) as usize;
    (segment, offset)
}

fn segment_len(segment: usize) -> usize {
    (FIRST_SEGMENT as usize) << segment
}

type Slot<K, V> = AtomicPtr<Node<K, V>>;

/// PID → page-state table. See the module docs.
pub(crate) struct MappingTable<K, V> {
    segments: Box<[AtomicPtr<Slot<K, V>>]>,
    pids: PidAllocator,
    /// The table owns the nodes its slots point to, and with them keys and values that other
    /// threads read and drop: it is `Send` and `Sync` exactly when [`Node`] is (`K` and `V` both
    /// `Send + Sync`), which the atomic pointers alone would not say.
    _nodes: PhantomData<Node<K, V>>,
}

impl<K, V> MappingTable<K, V> {
    pub(crate) fn new() -> Self {
        let segments = (0..SEGMENTS)
            .map(|_| AtomicPtr::new(ptr::null_mut()))
            .collect();
        MappingTable {
            segments,
            pids: PidAllocator::new(),
            _nodes: PhantomData,
        }
    }

    /// The slot of `pid`, if its segment exists.
    #[inline]
    fn slot(&self, pid: Pid) -> Option<&Slot<K, V>> {
        let (segment, offset) = locate(pid);
        // Acquire: pairs with the Release of the CAS in `slot_or_grow` that installed the segment,
        // so the segment's initialised (null) slots are visible. (`PUBLISHED_LOAD` is Acquire except
        // in the single-thread research build, see `sync`.)
        let base = self.segments[segment].load(PUBLISHED_LOAD);
        if base.is_null() {
            return None;
        }
        // SAFETY: `base` points to a live segment of `segment_len(segment)` slots (segments are only
        // freed in `Drop`, which has `&mut self`), and `offset < segment_len(segment)` by `locate`.
        Some(unsafe { &*base.add(offset) })
    }

    fn slot_or_grow(&self, pid: Pid) -> &Slot<K, V> {
        if let Some(slot) = self.slot(pid) {
            return slot;
        }
        let (segment, _) = locate(pid);
        let len = segment_len(segment);
        let fresh: Box<[Slot<K, V>]> = (0..len).map(|_| AtomicPtr::new(ptr::null_mut())).collect();
        let fresh = Box::into_raw(fresh) as *mut Slot<K, V>;
        // Release: publishes the initialised slots with the segment pointer. Acquire on failure: the
        // winner's slots must be visible before we use them.
        if let Err(_winner) = self.segments[segment].compare_exchange(
            ptr::null_mut(),
            fresh,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            // SAFETY: `fresh` came from `Box::into_raw` of a slice of `len` slots just above and was
            // never shared, because the CAS that would have published it failed.
            drop(unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(fresh, len)) });
        }
        self.slot(pid).expect("segment was just installed")
    }

    /// Loads the current state of `pid`; `None` if the page is gone (its PID was freed).
    #[inline]
    pub(crate) fn load<'g>(&self, pid: Pid, _guard: &'g Guard) -> Option<NodeRef<'g, K, V>> {
        // Acquire: pairs with the Release of the CAS or store that published this state, so the
        // node's contents (written before publication) are visible (`PUBLISHED_LOAD`, see `sync`).
        let ptr = self.slot(pid)?.load(PUBLISHED_LOAD);
        // SAFETY: the node was reachable from the table while we are pinned by `_guard`; it is
        // retired (and freed only after every such guard is dropped) once it stops being reachable.
        unsafe { NodeRef::from_raw(ptr) }
    }

    /// Installs `new` as the state of `pid` if the current state is still `current`, where `new`
    /// is a delta on top of `current` (it links to it: nothing is unlinked).
    ///
    /// This and [`MappingTable::replace`] are the ways a published page changes. On failure the
    /// caller gets its node back to retry with or to free.
    #[inline]
    pub(crate) fn cas<'g>(
        &self,
        pid: Pid,
        current: NodeRef<'g, K, V>,
        new: OwnedNode<K, V>,
        _guard: &'g Guard,
    ) -> Result<NodeRef<'g, K, V>, OwnedNode<K, V>> {
        let slot = self
            .slot(pid)
            .expect("CAS on a PID that was never allocated");
        let expected = current.as_ptr() as *mut Node<K, V>;
        // AcqRel: Release publishes the new node's contents (and everything it points to) to the
        // threads that Acquire-load it; Acquire orders our later reads after the state we replaced.
        // Acquire on failure: the caller inspects the state that beat it.
        let (success, failure) = if fault::active(Fault::RelaxedPublish) {
            (Ordering::Relaxed, Ordering::Relaxed)
        } else {
            (Ordering::AcqRel, Ordering::Acquire)
        };
        let outcome = if fault::active(Fault::PlainStorePublish) {
            // The injected bug: check, then store, with a window between them.
            let seen = slot.load(Ordering::Acquire);
            crate::sync::retry_pause();
            if seen == expected {
                slot.store(new.as_ptr(), Ordering::Release);
                Ok(seen)
            } else {
                Err(seen)
            }
        } else {
            slot.compare_exchange(expected, new.as_ptr(), success, failure)
        };
        match outcome {
            Ok(_) => {
                let new = new.into_raw();
                // SAFETY: we just published `new`; it is retired only after being unlinked, which
                // cannot be observed before `_guard` is dropped.
                Ok(unsafe { NodeRef::from_raw(new) }.expect("non-null"))
            }
            // The CAS failed: `new` was never published and is still ours.
            Err(_) => Err(new),
        }
    }

    /// Like [`MappingTable::cas`] for a `new` state that does not link into `current`'s chain (a
    /// new base page, or a split delta over one): on success the replaced chain is unlinked from
    /// the table, and the caller gets it as an [`Unlinked`] to retire.
    #[inline]
    pub(crate) fn replace<'g>(
        &self,
        pid: Pid,
        current: NodeRef<'g, K, V>,
        new: OwnedNode<K, V>,
        guard: &'g Guard,
    ) -> Result<Replaced<'g, K, V>, OwnedNode<K, V>> {
        debug_assert!(
            !chain_contains(new.as_ref(), current),
            "a replacing state links into the chain it replaces"
        );
        let installed = self.cas(pid, current, new, guard)?;
        // The slot no longer points into `current`'s chain, `new` does not link into it, and no
        // other slot or page does (see `Unlinked`).
        Ok(Replaced {
            installed,
            old: Unlinked { head: current },
        })
    }

    /// Completes a root collapse: if `root` still names `frozen`'s page `pid`, switches it to
    /// `child`, clears `pid`'s slot (it still holds `frozen`: nothing is posted on a frozen root)
    /// and hands back the old root's chain to retire. `Err` if another thread switched it first.
    pub(crate) fn collapse_root<'g>(
        &self,
        root: &RootPid,
        pid: Pid,
        frozen: NodeRef<'g, K, V>,
        child: Pid,
        guard: &'g Guard,
    ) -> Result<Unlinked<'g, K, V>, ()> {
        // A frozen root is never the root again (its PID is recycled only an epoch after its slot
        // is cleared, and the caller is pinned), so seeing its PID here means the collapse is not
        // done yet.
        let view = root.load(guard);
        if view.pid() != pid || !root.switch(view, child, guard) {
            return Err(());
        }
        // Only the winner of the root CAS gets here, once. The slot is cleared so that no thread
        // loads the old root afterwards; those that loaded it before are pinned and see the
        // collapse delta.
        let cleared = self.release_removed(pid, frozen, guard);
        debug_assert!(cleared, "a collapsed root's slot changed after the freeze");
        // Unlinked: no page links to a root (it is nobody's child and nobody's right sibling), the
        // root PID has moved on and the slot is cleared.
        Ok(Unlinked { head: frozen })
    }

    /// Allocates a PID and publishes `page` as its first state.
    pub(crate) fn allocate(&self, page: OwnedNode<K, V>, guard: &Guard) -> Pid {
        let pid = self.reserve(guard);
        self.publish_reserved(pid, page);
        pid
    }

    /// Hands out a PID whose page will be published later ([`MappingTable::publish_reserved`]);
    /// until then its slot reads as "no page" (a fresh PID's slot is null, a recycled one's was
    /// cleared before it was recycled).
    pub(crate) fn reserve(&self, guard: &Guard) -> Pid {
        let pid = self.pids.allocate(guard);
        let _ = self.slot_or_grow(pid);
        pid
    }

    /// Publishes `page` as the first state of the reserved `pid`.
    pub(crate) fn publish_reserved(&self, pid: Pid, page: OwnedNode<K, V>) {
        let slot = self.slot(pid).expect("a reserved PID has a slot");
        // Release: publishes the page's contents with the slot. The PID becomes reachable by links
        // only through a later Release CAS that links it.
        let previous = slot.swap(page.into_raw(), Ordering::Release);
        debug_assert!(previous.is_null(), "a reserved PID's slot held a page");
    }

    /// Clears the slot of a page that was removed from the tree, if it still holds `state` (the
    /// page's final, frozen state), and then hands its PID back to the allocator after an epoch
    /// (see [`PidAllocator::recycle_after_epoch`]). Returns whether this call cleared it: of all
    /// the calls for one removal exactly one does, and only that one recycles the PID.
    ///
    /// The page's memory is not touched: whoever took ownership of it (a merge delta, or the
    /// caller that retires an old root) frees it. Two kinds of callers race for one merged page:
    /// the thread whose merge CAS succeeded, right after it, and any thread that retires a chain
    /// holding the merge delta (see [`MappingTable::release_merged`]), which must not leave the
    /// slot pointing into what it retires.
    pub(crate) fn release_removed(
        &self,
        pid: Pid,
        state: NodeRef<'_, K, V>,
        guard: &Guard,
    ) -> bool {
        let slot = self
            .slot(pid)
            .expect("releasing a PID that was never allocated");
        // Release: orders the merge (or root CAS) that made the page unreachable before the slot
        // reads null; threads that load null restart from the root. Relaxed on failure: another
        // caller cleared it, and we read nothing else through it. The slot cannot hold a new page
        // under a reused PID: the PID is recycled only an epoch after it was cleared, and the
        // caller has been pinned since it saw `state` reachable.
        let cleared = slot
            .compare_exchange(
                state.as_ptr() as *mut Node<K, V>,
                ptr::null_mut(),
                Ordering::Release,
                Ordering::Relaxed,
            )
            .is_ok();
        if cleared {
            self.pids.recycle_after_epoch(pid, guard);
        }
        cleared
    }

    /// Clears the slots of the removed pages whose chains `head`'s chain owns through merge deltas
    /// (nested ones included), where the merging thread has not done it yet. Called before
    /// retiring the chain, which frees those pages too.
    pub(crate) fn release_merged(&self, head: NodeRef<'_, K, V>, guard: &Guard) {
        let mut pending = Vec::new();
        let mut next = Some(head);
        loop {
            while let Some(node) = next {
                if let Body::Merge(merge) = node.body() {
                    let removed = merge.right_state();
                    self.release_removed(merge.removed, removed, guard);
                    pending.push(removed);
                }
                next = node.next();
            }
            match pending.pop() {
                Some(right) => next = Some(right),
                None => return,
            }
        }
    }

    /// The number of PIDs ever handed out (an upper bound on live pages).
    pub(crate) fn high_water(&self) -> u64 {
        self.pids.high_water()
    }
}

impl<K: Send + 'static, V: Send + 'static> MappingTable<K, V> {
    /// Takes back a PID that was reserved (and maybe published) but never linked into the tree:
    /// the pages of a split or a root installation whose CAS failed. Threads that do not follow
    /// links may still read the page — `shape()` and `debug_dump()` visit every PID, and a range
    /// iterator's saved hint may name a recycled PID — so the page is freed, and the PID
    /// recycled, only through the epoch collector, like any unlinked page.
    pub(crate) fn free_unpublished(&self, pid: Pid, guard: &Guard) {
        let slot = self
            .slot(pid)
            .expect("freeing a PID that was never allocated");
        // Relaxed: the swap hands nothing over; a thread that loaded the page before it is pinned,
        // and the deferred free below waits for it.
        let page = slot.swap(ptr::null_mut(), Ordering::Relaxed);
        // SAFETY: a page reserved for a link that was never made was published only into this
        // slot (never linked from another page), which the swap just cleared.
        if let Some(head) = unsafe { NodeRef::from_raw(page) } {
            // The slot no longer points into the page and no page links to it: unlinked.
            retire(self, Unlinked { head }, guard);
        }
        self.pids.recycle_after_epoch(pid, guard);
    }
}

/// A page state that a successful [`MappingTable::replace`] (or root collapse) has unlinked: its
/// slot no longer points into it and no live node links to it, so threads that pin from now on
/// cannot reach it. Only the table makes one; `memory::reclaim::retire` consumes it, which is
/// the only way a published chain is freed while the tree is in use.
#[must_use = "an unlinked chain must be retired, or it leaks"]
pub(crate) struct Unlinked<'g, K, V> {
    head: NodeRef<'g, K, V>,
}

impl<'g, K, V> Unlinked<'g, K, V> {
    /// The head of the unlinked chain.
    pub(crate) fn head(&self) -> NodeRef<'g, K, V> {
        self.head
    }
}

/// A successful [`MappingTable::replace`]: the installed state, and the chain it unlinked.
pub(crate) struct Replaced<'g, K, V> {
    /// The new state of the page.
    pub(crate) installed: NodeRef<'g, K, V>,
    /// The replaced chain, to retire.
    pub(crate) old: Unlinked<'g, K, V>,
}

/// Whether `node`'s chain (its `next` links, merge deltas' right states included) reaches `target`.
fn chain_contains<K, V>(node: NodeRef<'_, K, V>, target: NodeRef<'_, K, V>) -> bool {
    let mut pending = vec![node];
    while let Some(mut at) = pending.pop() {
        loop {
            if at.as_ptr() == target.as_ptr() {
                return true;
            }
            if let Body::Merge(merge) = at.body() {
                pending.push(merge.right_state());
            }
            match at.next() {
                Some(next) => at = next,
                None => break,
            }
        }
    }
    false
}

impl<K, V> Drop for MappingTable<K, V> {
    fn drop(&mut self) {
        for (segment, base) in self.segments.iter().enumerate() {
            let base = base.load(Ordering::Relaxed);
            if base.is_null() {
                continue;
            }
            let len = segment_len(segment);
            // SAFETY: `&mut self` means no other thread uses the table; the segment was created by
            // `Box::into_raw` on a slice of exactly `len` slots in `slot_or_grow`.
            let slots = unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(base, len)) };
            for slot in slots.iter() {
                let page = slot.load(Ordering::Relaxed);
                if !page.is_null() {
                    // SAFETY: `&mut self`: no other thread can access the table. Each live chain is
                    // owned by exactly one slot: the slot of a page merged into another one is
                    // cleared by the operation whose merge CAS succeeded before it returns (or
                    // earlier, by one that retired the merging chain), and retired chains are
                    // never in a slot, so this frees every remaining page exactly once.
                    unsafe { free_chain(page) };
                }
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn locate_covers_every_pid_without_overlap() {
        assert_eq!(locate(Pid(0)), (0, 0));
        assert_eq!(
            locate(Pid(FIRST_SEGMENT - 1)),
            (0, FIRST_SEGMENT as usize - 1)
        );
        assert_eq!(locate(Pid(FIRST_SEGMENT)), (1, 0));
        assert_eq!(
            locate(Pid(3 * FIRST_SEGMENT - 1)),
            (1, 2 * FIRST_SEGMENT as usize - 1)
        );
        assert_eq!(locate(Pid(3 * FIRST_SEGMENT)), (2, 0));
        let (segment, offset) = locate(Pid(u64::MAX));
        assert!(segment < SEGMENTS);
        assert!(offset < segment_len(segment));
        // Consecutive PIDs map to consecutive offsets or to the start of the next segment.
        let mut last = locate(Pid(1));
        for raw in 2..100_000u64 {
            let here = locate(Pid(raw));
            assert!(
                here == (last.0, last.1 + 1) || here == (last.0 + 1, 0),
                "{raw}: {last:?} -> {here:?}"
            );
            last = here;
        }
    }
}
