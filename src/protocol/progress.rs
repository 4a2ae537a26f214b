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

/// The most attempts one loop makes before it concludes that it cannot end.
pub(crate) const MAX_ATTEMPTS: u32 = 100_000;

/// The attempts of one retry loop (see the module docs).
pub(crate) struct Attempts {
    count: u32,
    /// What the loop does, for the panic message.
    what: &'static str,
}

impl Attempts {
    /// A loop doing `what` that has made no attempt yet.
    #[inline]
    pub(crate) fn new(what: &'static str) -> Self {
        Attempts { count: 0, what }
    }

    /// Counts one more attempt; panics once there were [`MAX_ATTEMPTS`].
    #[inline]
    pub(crate) fn again(&mut self) {
        self.count += 1;
        if self.count >= MAX_ATTEMPTS {
            no_progress(self.what, self.count);
        }
    }
}

/// The panic of a loop that cannot end.
#[cold]
#[inline(never)]
fn no_progress(what: &str, attempts: u32) -> ! {
    panic!(
        "bwtree: {what} made no progress in {attempts} attempts; the key type's `Ord` is \
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
