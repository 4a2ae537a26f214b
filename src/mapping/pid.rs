//! Page ids and their allocation: fresh PIDs from a counter, PIDs of dead pages recycled through a
//! lock-free free list once an epoch has passed.

use crossbeam_epoch::{Atomic, Guard, Owned};

use crate::sync::{Arc, AtomicU64, Ordering};

/// A logical page id: an index into the [`MappingTable`](super::MappingTable).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Pid(pub(crate) u64);

impl Pid {
    /// "No page": the right link of the rightmost page of a level.
    pub(crate) const NONE: Pid = Pid(0);

    pub(crate) fn is_none(self) -> bool {
        self == Pid::NONE
    }
}

/// Hands out PIDs: recycled ones first, then fresh ones from a counter.
pub(crate) struct PidAllocator {
    next: AtomicU64,
    free: Arc<FreeList>,
}

impl PidAllocator {
    pub(super) fn new() -> Self {
        PidAllocator {
            // PID 0 is `Pid::NONE`.
            next: AtomicU64::new(1),
            free: Arc::new(FreeList::new()),
        }
    }

    pub(super) fn allocate(&self, guard: &Guard) -> Pid {
        if let Some(pid) = self.free.pop(guard) {
            return pid;
        }
        // Relaxed: the counter only needs to hand out distinct values; the page itself is published
        // by the Release store into its slot.
        Pid(self.next.fetch_add(1, Ordering::Relaxed))
    }

    #[allow(dead_code)]
    pub(super) fn push(&self, pid: Pid, guard: &Guard) {
        self.free.push(pid, guard);
    }

    /// Puts `pid` on the free list once every thread pinned now has unpinned.
    ///
    /// Why this is enough: the caller has already made the page unreachable (no live page links to
    /// it, its slot is cleared). A thread can only learn the PID from a state it loaded while
    /// pinned; once all threads pinned before this call have left, nobody holds such a state.
    pub(super) fn recycle_after_epoch(&self, pid: Pid, guard: &Guard) {
        let free = Arc::clone(&self.free);
        guard.defer(move || {
            // SAFETY: the free list's own epoch use needs a guard; running inside a deferred
            // function, no node of the list is freed concurrently with this push (push never
            // dereferences other nodes).
            let guard = unsafe { crossbeam_epoch::unprotected() };
            free.push(pid, guard);
        });
    }

    pub(super) fn high_water(&self) -> u64 {
        // Relaxed: a snapshot used only to bound scans of the table.
        self.next.load(Ordering::Relaxed) - 1
    }
}

/// A Treiber stack of free PIDs.
struct FreeList {
    head: Atomic<FreeNode>,
}

struct FreeNode {
    pid: Pid,
    next: Atomic<FreeNode>,
}

impl FreeList {
    fn new() -> Self {
        FreeList {
            head: Atomic::null(),
        }
    }

    fn push(&self, pid: Pid, guard: &Guard) {
        let mut node = Owned::new(FreeNode {
            pid,
            next: Atomic::null(),
        });
        // Relaxed: the value is only used as the CAS's expected value and as the new node's link;
        // the CAS below is the synchronising operation.
        let mut head = self.head.load(Ordering::Relaxed, guard);
        loop {
            node.next.store(head, Ordering::Relaxed);
            // Release: publishes the node's fields to the popper that Acquire-loads the head.
            match self.head.compare_exchange(
                head,
                node,
                Ordering::Release,
                Ordering::Relaxed,
                guard,
            ) {
                Ok(_) => return,
                Err(err) => {
                    head = err.current;
                    node = err.new;
                    crate::sync::retry_pause();
                }
            }
        }
    }

    fn pop(&self, guard: &Guard) -> Option<Pid> {
        loop {
            // Acquire: pairs with the Release CAS of `push`, making the node's fields visible.
            let head = self.head.load(Ordering::Acquire, guard);
            // SAFETY: nodes are freed only through `defer_destroy` after being unlinked, and we are
            // pinned, so a node loaded from the head stays allocated while we read it.
            let node = unsafe { head.as_ref() }?;
            let next = node.next.load(Ordering::Relaxed, guard);
            // Acquire on success: we take ownership of the node; Relaxed on failure: we reload.
            if self
                .head
                .compare_exchange(head, next, Ordering::Acquire, Ordering::Relaxed, guard)
                .is_ok()
            {
                let pid = node.pid;
                // SAFETY: the CAS unlinked the node, so no new thread can reach it; threads that
                // loaded it earlier are pinned and the collector waits for them.
                unsafe { guard.defer_destroy(head) };
                return Some(pid);
            }
            crate::sync::retry_pause();
        }
    }
}

impl Drop for FreeList {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: nobody else uses the list.
        let guard = unsafe { crossbeam_epoch::unprotected() };
        let mut cur = self.head.load(Ordering::Relaxed, guard);
        while !cur.is_null() {
            // SAFETY: the list is exclusively ours; each node is owned by its predecessor's link.
            let node = unsafe { cur.into_owned() };
            cur = node.next.load(Ordering::Relaxed, guard);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn free_list_is_lifo_and_reuses_pids() {
        let list = FreeList::new();
        let guard = &crossbeam_epoch::pin();
        assert_eq!(list.pop(guard), None);
        list.push(Pid(7), guard);
        list.push(Pid(9), guard);
        assert_eq!(list.pop(guard), Some(Pid(9)));
        assert_eq!(list.pop(guard), Some(Pid(7)));
        assert_eq!(list.pop(guard), None);
    }
}
