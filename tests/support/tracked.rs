//! A drop-counting value (or key) for the tests that prove nothing leaks and nothing is freed twice:
//! every [`Tracked`] created, cloned and dropped is counted in the [`Counters`] it was made with,
//! and a clone can be made to panic (for panic-safety tests).
//!
//! A test binary includes it with `mod support { pub mod tracked; }`; the counters are a `static`
//! (`static VALUES: Counters = Counters::new();`) or, for one per run, leaked (`Box::leak`).
#![allow(dead_code)]

use std::cmp::Ordering as CmpOrdering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

/// The counts of the [`Tracked`] values made with these counters. Plain std atomics, `Relaxed`: pure
/// bookkeeping, read after the threads that touched the values were joined (and, in loom models,
/// not explored).
#[derive(Debug, Default)]
pub struct Counters {
    /// Values alive: created plus cloned minus dropped.
    live: AtomicIsize,
    /// Calls of `clone`, the one that panics included.
    clones: AtomicUsize,
    /// Values dropped.
    drops: AtomicUsize,
    /// The clone (counted from 1 in `clones`) that panics; 0: none.
    panic_at: AtomicUsize,
    /// Calls of `cmp` (and so of every comparison operator).
    compares: AtomicUsize,
    /// The comparison (counted from 1 in `compares`) that panics; 0: none.
    panic_compare_at: AtomicUsize,
}

impl Counters {
    /// Counters at zero, with no clone set to panic.
    pub const fn new() -> Self {
        Counters {
            live: AtomicIsize::new(0),
            clones: AtomicUsize::new(0),
            drops: AtomicUsize::new(0),
            panic_at: AtomicUsize::new(0),
            compares: AtomicUsize::new(0),
            panic_compare_at: AtomicUsize::new(0),
        }
    }

    /// Values alive now (negative if some were dropped twice).
    pub fn live(&self) -> isize {
        self.live.load(Ordering::Relaxed)
    }

    /// Calls of `clone` so far.
    pub fn clones(&self) -> usize {
        self.clones.load(Ordering::Relaxed)
    }

    /// Values dropped so far.
    pub fn drops(&self) -> usize {
        self.drops.load(Ordering::Relaxed)
    }

    /// Makes the `n`-th comparison of two values from now on panic (`n >= 1`); `n = 0` cancels it.
    pub fn panic_on_compare(&self, n: usize) {
        let at = if n == 0 {
            0
        } else {
            self.compares.load(Ordering::Relaxed) + n
        };
        self.panic_compare_at.store(at, Ordering::Relaxed);
    }

    /// Makes the `n`-th clone from now on panic, before it creates anything (`n >= 1`); `n = 0`
    /// cancels it.
    pub fn panic_on_clone(&self, n: usize) {
        let at = if n == 0 { 0 } else { self.clones() + n };
        self.panic_at.store(at, Ordering::Relaxed);
    }
}

/// A `u64` that counts its live copies in its [`Counters`]. Compares, orders and hashes by value,
/// so it serves as a key too.
pub struct Tracked {
    value: u64,
    counters: &'static Counters,
}

impl Tracked {
    /// A new value, counted in `counters`.
    pub fn new(value: u64, counters: &'static Counters) -> Self {
        counters.live.fetch_add(1, Ordering::Relaxed);
        Tracked { value, counters }
    }

    /// The value.
    pub fn value(&self) -> u64 {
        self.value
    }
}

impl Clone for Tracked {
    fn clone(&self) -> Self {
        let n = self.counters.clones.fetch_add(1, Ordering::Relaxed) + 1;
        if n == self.counters.panic_at.load(Ordering::Relaxed) {
            panic!("Tracked: clone {n} panics, as the test asked");
        }
        Tracked::new(self.value, self.counters)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.counters.drops.fetch_add(1, Ordering::Relaxed);
        self.counters.live.fetch_sub(1, Ordering::Relaxed);
    }
}

impl fmt::Debug for Tracked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Tracked").field(&self.value).finish()
    }
}

impl PartialEq for Tracked {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl Eq for Tracked {}

impl PartialOrd for Tracked {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl Ord for Tracked {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        let n = self.counters.compares.fetch_add(1, Ordering::Relaxed) + 1;
        if n == self.counters.panic_compare_at.load(Ordering::Relaxed) {
            panic!("Tracked: comparison {n} panics, as the test asked");
        }
        self.value.cmp(&other.value)
    }
}

impl Hash for Tracked {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.value.hash(state);
    }
}
