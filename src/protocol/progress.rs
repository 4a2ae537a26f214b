//! Bounds on the protocol's loops, so that a key type whose `Ord` is not a total order ends in a
//! panic that says so instead of an endless loop.
//!
//! Every retry loop of the protocol ends, for a correct `Ord`, because each retry follows another
//! thread's successful CAS (lock-freedom) or a step this thread completed itself. Under a broken
//! order — keys that compare differently from one call to the next, or an order that is not
//! transitive — a descent can be routed where no page covers its key, a split can find its
//! separator routed nowhere, and so on, and the loops would never end. [`Attempts`] counts one
//! loop's attempts and gives up after [`MAX_ATTEMPTS`], far more than contention explains (a retry
//! is caused by another thread's structure modification on the same path; even 64 threads on two
//! cores stay orders of magnitude below), with a panic that names the likely cause. Walks that
//! advance by keys (scans, `len`, maintenance) check instead that the keys increase.
//!
//! std's `BTreeMap` documents the same contract: a broken `Ord` is a logic error whose results are
//! unspecified (a panic, wrong answers), never undefined behaviour.

use std::cell::Cell;

/// The most attempts one loop makes before it concludes that it cannot end, counting the retries
/// of the loops nested in it (see [`Attempts`]).
pub(crate) const MAX_ATTEMPTS: u32 = 100_000;

std::thread_local! {
    /// Retries (second and later attempts) of every bounded loop this thread has run, ever. A loop
    /// reads it at its own first retry; the difference to the current value counts its own retries
    /// and those of the loops nested in it since then. Plain thread-local state: each thread counts
    /// its own loops.
    static RETRIES: Cell<u64> = const { Cell::new(0) };
}

/// The attempts of one retry loop (see the module docs).
///
/// Loops nest: a descent settles a page by helping its split, whose index entry needs a descent one
/// level up, and so on, each with its own loop. A separate bound per loop would multiply along the
/// nesting (a descent four levels deep could run `MAX_ATTEMPTS`⁴ attempts under a broken order).
/// So from its first retry on a loop counts every retry on its thread — its own and its nested
/// loops' — in the thread's retry count, and gives up when that has grown by [`MAX_ATTEMPTS`]. A
/// loop nested `d` deep thus ends after at most about `d + 1` times the bound, not its `d`-th power.
/// The first attempt, the common case, touches nothing but the local count.
pub(crate) struct Attempts {
    count: u32,
    /// The thread's retry count at this loop's first retry.
    start: u64,
    /// What the loop does, for the panic message.
    what: &'static str,
}

impl Attempts {
    /// A loop doing `what` that has made no attempt yet.
    #[inline]
    pub(crate) fn new(what: &'static str) -> Self {
        Attempts {
            count: 0,
            start: 0,
            what,
        }
    }

    /// Counts one more attempt; panics once this loop and the loops nested in it made
    /// [`MAX_ATTEMPTS`] retries since this loop's first retry.
    #[inline]
    pub(crate) fn again(&mut self) {
        self.count += 1;
        if self.count > 1 {
            self.retry();
        }
    }

    /// The bookkeeping of a retry, off the first attempt's path.
    #[inline(never)]
    fn retry(&mut self) {
        let retries = RETRIES.with(|r| {
            let now = r.get().wrapping_add(1);
            r.set(now);
            now
        });
        if self.count == 2 {
            self.start = retries - 1;
        }
        let made = retries.wrapping_sub(self.start);
        if made >= u64::from(MAX_ATTEMPTS) {
            no_progress(self.what, made);
        }
    }
}

/// The panic of a loop that cannot end.
#[cold]
#[inline(never)]
fn no_progress(what: &str, attempts: u64) -> ! {
    panic!(
        "bwtree: {what} made no progress in {attempts} retries; the key type's `Ord` is \
         probably not a total order, or keys changed their order while in the tree (a logic \
         error: see `BwTree`'s *Panics*)"
    )
}

/// The panic of a walk whose keys stopped increasing.
#[cold]
#[inline(never)]
pub(crate) fn keys_out_of_order(what: &str) -> ! {
    panic!(
        "bwtree: {what} met page bounds out of order; the key type's `Ord` is probably not a \
         total order, or keys changed their order while in the tree (a logic error: see \
         `BwTree`'s *Panics*)"
    )
}
