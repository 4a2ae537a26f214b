//! Epoch participation for a tree with its own collector ([`BwTree::with_collector`]).
//!
//! With crossbeam's default collector every thread has a cached handle in a thread-local, and
//! pinning costs a few nanoseconds. A custom collector has no such cache: registering a fresh
//! [`LocalHandle`](crossbeam_epoch::LocalHandle) for every operation costs about a microsecond (it allocates a participant with a
//! 64-slot garbage bag and links it into the collector's list), and worse, dropping it seals that bag
//! — even when empty — into the collector's global queue, where the participant itself also ends up
//! as garbage. Each collection step frees at most eight bags, and only after the global epoch has
//! advanced, which a single descheduled pinned thread prevents. So while one thread was preempted,
//! every operation of the others added about 4 KiB of backlog: megabytes that the tree's own
//! garbage had little to do with, and that took thousands of later pins to drain.
//!
//! Instead the tree keeps a small pool of handles of its collector. An operation takes a free handle
//! (the one its thread used last if that is free, so that a thread normally keeps one handle and
//! its slot's cache line; else the first free one, so that the pool stays as small as the
//! concurrency), pins it, and gives it back when its guard is dropped. A handle therefore
//! collects garbage in its bag like a thread-local one and pushes it to the global queue only when
//! the bag is full. Handles belong to the pool, not to threads, so threads that come and go do not
//! leave participants behind; the pool holds at most as many as operations ever ran at once (up to
//! `SLOTS`; beyond that an operation registers a short-lived handle as before). What an idle
//! handle's bag holds (at most 63 deferred frees) waits, as it would in a thread-local handle,
//! until the handle is used again or the tree is dropped: dropping the tree drops the pool and its
//! handles, which hands their bags to the collector.
//!
//! Under loom there is no pool (its atomics would multiply the interleavings the models explore):
//! an operation without a handle registers a short-lived one, so that every model also checks
//! reclamation while the other threads run (a finished handle hands its garbage to the collector
//! at once). A model can instead ask, with `BwTree::loom_keep_thread_handles`, that each loom
//! thread keep one handle per tree until the tree is dropped (`loom_handles`). The multi-page split
//! model needs that: with short-lived handles, a finished handle's participant is freed and a later
//! one may be allocated at the same address, and whether a compare-and-swap on the collector's
//! list of participants then succeeds (against a stale value loom lets a relaxed load return)
//! depended on the allocator, not on the interleaving, which loom reports as a nondeterministic
//! model. Kept handles hand their garbage over when their bag fills or the tree is dropped, so in
//! that model most pages are reclaimed when the tree is dropped.
//!
//! [`BwTree::with_collector`]: crate::BwTree::with_collector

use core::mem::ManuallyDrop;
use core::ops::{Deref, DerefMut};

use crossbeam_epoch::{Collector, Guard};

/// A pinned guard of a tree's collector; gives its pooled handle (if any) back when dropped.
pub(crate) struct TreeGuard<'t> {
    guard: ManuallyDrop<Guard>,
    #[cfg(not(loom))]
    slot: Option<&'t pool::Slot>,
    #[cfg(loom)]
    _tree: core::marker::PhantomData<&'t ()>,
}

impl TreeGuard<'_> {
    /// A guard that owns no pooled handle (default collector, or a short-lived handle).
    pub(crate) fn unpooled(guard: Guard) -> Self {
        TreeGuard {
            guard: ManuallyDrop::new(guard),
            #[cfg(not(loom))]
            slot: None,
            #[cfg(loom)]
            _tree: core::marker::PhantomData,
        }
    }
}

impl Deref for TreeGuard<'_> {
    type Target = Guard;

    #[inline]
    fn deref(&self) -> &Guard {
        &self.guard
    }
}

impl DerefMut for TreeGuard<'_> {
    #[inline]
    fn deref_mut(&mut self) -> &mut Guard {
        &mut self.guard
    }
}

impl Drop for TreeGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: dropped exactly once, here; the guard must be unpinned before its handle is given
        // back, since the next user of the handle may be another thread.
        unsafe { ManuallyDrop::drop(&mut self.guard) };
        #[cfg(not(loom))]
        if let Some(slot) = self.slot {
            slot.release();
        }
    }
}

/// The handles of a tree's own collector. See the module docs.
pub(crate) struct Handles {
    collector: Collector,
    #[cfg(not(loom))]
    pool: pool::Pool,
    #[cfg(loom)]
    per_thread: loom_handles::PerThread,
    /// Set by `BwTree::loom_keep_thread_handles` (a std atomic: a switch set before the model's
    /// threads start, not part of what loom explores).
    #[cfg(loom)]
    keep_thread_handles: crate::sync::unmodeled::AtomicBool,
}

impl Handles {
    pub(crate) fn new(collector: Collector) -> Self {
        Handles {
            #[cfg(not(loom))]
            pool: pool::Pool::new(),
            #[cfg(loom)]
            per_thread: loom_handles::PerThread::default(),
            #[cfg(loom)]
            keep_thread_handles: crate::sync::unmodeled::AtomicBool::new(false),
            collector,
        }
    }

    pub(crate) fn collector(&self) -> &Collector {
        &self.collector
    }

    /// Pins the current thread, with a pooled handle if one is free.
    #[cfg(not(loom))]
    #[inline]
    pub(crate) fn pin(&self) -> TreeGuard<'_> {
        if let Some(guard) = self.pool.pin(&self.collector) {
            return guard;
        }
        // Every slot is busy: a short-lived handle.
        TreeGuard::unpooled(self.collector.register().pin())
    }

    /// Pins the current loom thread: with a short-lived handle, or with the thread's own kept
    /// handle of this tree if the model asked for that (see the module docs).
    #[cfg(loom)]
    pub(crate) fn pin(&self) -> TreeGuard<'_> {
        // Relaxed: set before the model's threads are spawned, which orders it before their loads.
        if self
            .keep_thread_handles
            .load(crate::sync::unmodeled::Ordering::Relaxed)
        {
            TreeGuard::unpooled(self.per_thread.pin(&self.collector))
        } else {
            TreeGuard::unpooled(self.collector.register().pin())
        }
    }

    /// Makes every loom thread keep one handle of this tree until the tree is dropped.
    #[cfg(loom)]
    pub(crate) fn keep_thread_handles(&self) {
        // Relaxed: see `pin`.
        self.keep_thread_handles
            .store(true, crate::sync::unmodeled::Ordering::Relaxed);
    }
}

/// Under loom: one handle per loom thread and tree, kept until the tree is dropped.
#[cfg(loom)]
mod loom_handles {
    use std::sync::Mutex;

    use crossbeam_epoch::{Collector, Guard, LocalHandle};

    /// The handles of the loom threads that used the tree, by thread.
    ///
    /// The list sits behind a standard-library mutex, which loom does not see: it is never held
    /// across a loom operation (registering and pinning happen outside it), so no loom thread can be
    /// switched out while holding it, and loom threads run on one OS thread, so the lock is never
    /// contended. Each handle is boxed so that its address survives the list growing.
    #[derive(Default)]
    pub(super) struct PerThread {
        handles: Mutex<Vec<(loom::thread::ThreadId, Box<LocalHandle>)>>,
    }

    // SAFETY: each handle is used (pinned) only by the loom thread it was registered for, so the
    // `!Send`/`!Sync` participant state it refers to is only touched by that thread; it is dropped
    // with the tree (needs `&mut`), when no operation, so no guard of it, is in flight. Loom threads
    // are coroutines on one OS thread, and loom orders everything one loom thread does before what
    // another does after synchronising with it.
    unsafe impl Send for PerThread {}
    // SAFETY: see `Send`; shared access only pins the calling thread's own handle.
    unsafe impl Sync for PerThread {}

    impl PerThread {
        pub(super) fn pin(&self, collector: &Collector) -> Guard {
            let me = loom::thread::current().id();
            let found = self
                .lock()
                .iter()
                .find(|(thread, _)| *thread == me)
                .map(|(_, handle)| &**handle as *const LocalHandle);
            let handle = match found {
                Some(handle) => handle,
                None => {
                    let handle = Box::new(collector.register());
                    let at = &*handle as *const LocalHandle;
                    self.lock().push((me, handle));
                    at
                }
            };
            // SAFETY: the box is owned by `self.handles`, which only grows until `self` is dropped,
            // and `&self` keeps `self` alive for this call; the handle is this thread's own (see the
            // `Send` impl), so no other thread uses it meanwhile.
            unsafe { (*handle).pin() }
        }

        fn lock(
            &self,
        ) -> std::sync::MutexGuard<'_, Vec<(loom::thread::ThreadId, Box<LocalHandle>)>> {
            self.handles
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        }
    }
}

#[cfg(not(loom))]
mod pool {
    use crate::sync::unmodeled::{AtomicBool, Ordering};
    use core::cell::{Cell, UnsafeCell};
    use core::mem::ManuallyDrop;

    use crossbeam_epoch::{Collector, LocalHandle};
    use crossbeam_utils::CachePadded;

    use super::TreeGuard;

    /// Handles per tree. More concurrent operations than this fall back to short-lived handles.
    const SLOTS: usize = 32;

    /// One pooled handle, used by at most one operation at a time.
    pub(crate) struct Slot {
        busy: AtomicBool,
        /// Created on first use; only touched by the operation that set `busy`.
        handle: UnsafeCell<Option<LocalHandle>>,
    }

    // SAFETY: the handle is only accessed by the one thread that holds the slot (`busy` set by its
    // Acquire CAS, cleared by its Release store), so every access to it, and to the `Local` it
    // refers to, happens after the previous holder's last one. A `LocalHandle` is `!Send` only
    // because its participant keeps non-atomic counters and its garbage bag in cells for the owning
    // thread; it stores no thread identity, so handing it over with that synchronisation is sound.
    unsafe impl Sync for Slot {}
    // SAFETY: as above; dropping the pool (and its handles) needs `&mut`, so no slot is held then.
    unsafe impl Send for Slot {}

    impl Slot {
        pub(super) fn release(&self) {
            // Release: everything this holder did with the handle (its guard's unpin included)
            // happens before the next holder's Acquire CAS.
            self.busy.store(false, Ordering::Release);
        }
    }

    pub(super) struct Pool {
        slots: Box<[CachePadded<Slot>]>,
    }

    thread_local! {
        /// The slot this thread used last. No destructor, no allocation.
        static HINT: Cell<usize> = const { Cell::new(0) };
    }

    impl Pool {
        pub(super) fn new() -> Self {
            Pool {
                slots: (0..SLOTS)
                    .map(|_| {
                        CachePadded::new(Slot {
                            busy: AtomicBool::new(false),
                            handle: UnsafeCell::new(None),
                        })
                    })
                    .collect(),
            }
        }

        /// Pins a free pooled handle of `collector` (registering it on first use); `None` if every
        /// slot is busy.
        #[inline]
        pub(super) fn pin(&self, collector: &Collector) -> Option<TreeGuard<'_>> {
            let hint = HINT.try_with(Cell::get).unwrap_or(0);
            // The hint first, then from the start.
            for at in core::iter::once(hint).chain((0..SLOTS).filter(|&at| at != hint)) {
                let slot: &Slot = &self.slots[at];
                // Acquire: pairs with `release` of the previous holder (see `Slot`'s Sync).
                if slot.busy.load(Ordering::Relaxed)
                    || slot
                        .busy
                        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                        .is_err()
                {
                    continue;
                }
                if at != hint {
                    let _ = HINT.try_with(|hint| hint.set(at));
                }
                // SAFETY: we hold the slot (the CAS above), so nobody else touches the handle.
                let handle = unsafe { &mut *slot.handle.get() };
                let guard = handle.get_or_insert_with(|| collector.register()).pin();
                return Some(TreeGuard {
                    guard: ManuallyDrop::new(guard),
                    slot: Some(slot),
                });
            }
            None
        }
    }
}
