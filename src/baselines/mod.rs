//! Lock-based ordered maps that the Bw-tree is measured and checked against.
//!
//! Each baseline implements [`ConcurrentMap`](crate::ConcurrentMap), so the lab and the conformance
//! suite (`tests/conformance.rs`) drive them exactly like the Bw-tree. They are deliberately three
//! points on the classic latching spectrum:
//!
//! | map | protocol | readers | writers | blocks? |
//! | --- | --- | --- | --- | --- |
//! | [`CoarseLockMap`] | one reader/writer lock around a `std` `BTreeMap` | share the lock | exclude everyone | yes |
//! | [`LockCouplingBTree`] | per-node reader/writer latches, taken root to leaf ("crabbing") | hold ≤ 2 shared latches | shared latches down, exclusive leaf; pessimistic exclusive crabbing when the leaf must split | yes, per node |
//! | [`OlcBTree`] | optimistic lock coupling: a version word per node | write nothing, validate versions, restart on conflict | lock ≤ 2 nodes by CAS on their version | readers never block writers |
//!
//! # Coarse lock
//! Seed 000's design: correct by construction and fast for one thread, but every writer serialises
//! the whole map and readers wait behind it. It is the floor any finer protocol must beat.
//!
//! # Lock coupling (crabbing)
//! Seeds 002 and 003: a latch per node, acquired only root-to-leaf and, along the leaf chain,
//! left-to-right, so waits can never form a cycle. Readers hold at most a parent and a child latch.
//! A writer first descends with shared latches and takes only the leaf exclusively (Bayer and
//! Schkolnick's optimistic variant); if the leaf could split, it starts again taking exclusive latches
//! on the whole path and releasing every ancestor of the deepest "safe" node. Every operation
//! still writes to the root's latch word (even shared acquisition is a write), so the root's cache
//! line bounces between cores: the scalability limit of the protocol.
//!
//! # Optimistic lock coupling
//! Leis, Haubenschild and Neumann, "Optimistic Lock Coupling: A Scalable and Efficient
//! General-Purpose Synchronization Method" (IEEE Data Eng. Bull. 2019), the design of their
//! `BTreeOLC`. Readers only *read* version words: a traversal never writes shared memory, so the
//! upper levels stay in every core's cache. Writers lock a node by a CAS on its version and
//! unlock by bumping it; a reader that sees a changed version restarts. Specialised to `u64` keys
//! and values stored in atomic arrays, so racing reads are defined behaviour.
//!
//! # Shared policies
//! - **No merges.** Removing keys never merges or rebalances nodes; empty leaves stay in the tree
//!   and keep routing their key range. This matches `BTreeOLC` and keeps every node's key range
//!   stable except for splits, which only move keys to a new right sibling. Deletion-heavy
//!   workloads therefore show low leaf fill in [`Shape`].
//! - **No reclamation before drop.** Since nodes are never merged away, no node is ever unlinked;
//!   all of them are freed when the map is dropped. No epoch pinning is needed on any path.
//! - **Capacities.** `new()` uses [`DEFAULT_LEAF_CAPACITY`] and [`DEFAULT_INNER_CAPACITY`] (the
//!   OLC tree its own, measured, [`OlcBTree::DEFAULT_LEAF_CAPACITY`]);
//!   `with_capacity(leaf, inner)` accepts a leaf capacity (entries) in
//!   `2..=`[`crate::MAX_PAGE_CAPACITY`] and an inner capacity (children) in
//!   `3..=MAX_PAGE_CAPACITY`, the same bounds as [`Config`](crate::Config), and returns a
//!   [`ConfigError`] otherwise.
//!
//! The baselines are not loom-checked, so unlike the Bw-tree they take their atomics from `std`
//! directly rather than through the crate's loom shim.

mod coarse;
mod crabbing;
mod olc;

pub use coarse::CoarseLockMap;
pub use crabbing::LockCouplingBTree;
pub use olc::OlcBTree;

use crate::sync::unmodeled::{AtomicU64, AtomicUsize, Ordering};
use core::ops::Bound;
use std::cell::Cell;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, TryLockError};

use crossbeam_utils::CachePadded;

use crate::{ConfigError, MAX_PAGE_CAPACITY, TreeShape};

/// Leaf capacity (entries per leaf) that `LockCouplingBTree::new()` uses (the Bw-tree's default page
/// size).
pub const DEFAULT_LEAF_CAPACITY: usize = 64;

/// Inner capacity (children per inner node) that `LockCouplingBTree::new()` uses.
pub const DEFAULT_INNER_CAPACITY: usize = 64;

/// A structural snapshot of a tree, for comparing node utilisation across maps.
///
/// Computed by walking every node, so it costs O(nodes) but nothing on any operation's path. It is
/// exact when no writer runs concurrently and approximate otherwise.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shape {
    /// Number of levels; 1 when the root is a leaf.
    pub height: usize,
    /// Number of leaves (empty leaves included: removal never merges).
    pub leaves: usize,
    /// Number of inner nodes.
    pub inner_nodes: usize,
    /// Number of entries stored in all leaves.
    pub entries: usize,
    /// `entries / (leaves * leaf capacity)`: the average fraction of a leaf's slots in use, in `0..=1`.
    pub avg_leaf_fill: f64,
}

impl Shape {
    fn new(
        height: usize,
        leaves: usize,
        inner_nodes: usize,
        entries: usize,
        leaf_cap: usize,
    ) -> Self {
        let slots = leaves * leaf_cap;
        let avg_leaf_fill = if slots == 0 {
            0.0
        } else {
            entries as f64 / slots as f64
        };
        Shape {
            height,
            leaves,
            inner_nodes,
            entries,
            avg_leaf_fill,
        }
    }

    /// The trait-level summary ([`ConcurrentMap::tree_shape`](crate::ConcurrentMap::tree_shape)).
    /// Inner fill is not tracked by the baselines' walks.
    fn summary(&self) -> TreeShape {
        TreeShape {
            height: self.height,
            leaves: Some(self.leaves),
            inner_nodes: Some(self.inner_nodes),
            leaf_fill: Some(self.avg_leaf_fill),
            inner_fill: None,
        }
    }
}

/// Checks `with_capacity` arguments against the same bounds as [`Config`](crate::Config).
fn check_capacities(leaf: usize, inner: usize) -> Result<(), ConfigError> {
    let check = |field, value, min| {
        if (min..=MAX_PAGE_CAPACITY).contains(&value) {
            Ok(())
        } else {
            Err(ConfigError::OutOfRange {
                field,
                value,
                min,
                max: MAX_PAGE_CAPACITY,
            })
        }
    };
    check("leaf_capacity", leaf, 2)?;
    check("inner_capacity", inner, 3)
}

/// Takes `lock` shared, counting in `waits` when it has to wait, and ignoring poisoning.
///
/// The uncontended path is one `try_read`, as cheap as `read`. Poisoning is ignored because every
/// writer of these maps leaves the protected data valid at each point where user code (`Ord`, `Clone`)
/// can panic.
fn read_lock<'a, T>(lock: &'a RwLock<T>, waits: &StripedCounter) -> RwLockReadGuard<'a, T> {
    match lock.try_read() {
        Ok(guard) => guard,
        Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        Err(TryLockError::WouldBlock) => {
            waits.incr();
            lock.read().unwrap_or_else(PoisonError::into_inner)
        }
    }
}

/// Takes `lock` exclusive; otherwise as [`read_lock`].
fn write_lock<'a, T>(lock: &'a RwLock<T>, waits: &StripedCounter) -> RwLockWriteGuard<'a, T> {
    match lock.try_write() {
        Ok(guard) => guard,
        Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        Err(TryLockError::WouldBlock) => {
            waits.incr();
            lock.write().unwrap_or_else(PoisonError::into_inner)
        }
    }
}

/// Whether `(lo, hi)` contains no key at all (`BTreeMap::range` panics on such ranges).
fn is_empty_range<K: Ord>(lo: Bound<&K>, hi: Bound<&K>) -> bool {
    match (lo, hi) {
        (Bound::Included(l), Bound::Included(h)) => l > h,
        (Bound::Included(l), Bound::Excluded(h))
        | (Bound::Excluded(l), Bound::Included(h))
        | (Bound::Excluded(l), Bound::Excluded(h)) => l >= h,
        (Bound::Unbounded, _) | (_, Bound::Unbounded) => false,
    }
}

/// Whether `key` lies at or below the upper bound `hi`.
#[inline]
fn below_hi<K: Ord>(key: &K, hi: Bound<&K>) -> bool {
    match hi {
        Bound::Included(h) => key <= h,
        Bound::Excluded(h) => key < h,
        Bound::Unbounded => true,
    }
}

/// Number of slots of a [`StripedCounter`].
const STRIPES: usize = 16;

/// An event counter for slow paths (restarts, latch waits) that threads rarely contend on.
///
/// Each thread adds to one of [`STRIPES`] cache-padded slots, chosen once per thread, so counting
/// from many cores does not bounce one cache line; [`StripedCounter::sum`] adds the slots up. All
/// accesses are `Relaxed`: the counts are statistics that order nothing, and the sum is exact once the
/// counting threads have been joined (joining synchronises).
pub(crate) struct StripedCounter {
    slots: [CachePadded<AtomicU64>; STRIPES],
}

impl StripedCounter {
    pub(crate) fn new() -> Self {
        StripedCounter {
            slots: std::array::from_fn(|_| CachePadded::new(AtomicU64::new(0))),
        }
    }

    /// Adds one to the calling thread's slot.
    #[inline]
    pub(crate) fn incr(&self) {
        // Relaxed: a statistic; see the type's docs.
        self.slots[thread_stripe()].fetch_add(1, Ordering::Relaxed);
    }

    /// The total over all slots.
    pub(crate) fn sum(&self) -> u64 {
        self.slots
            .iter()
            // Relaxed: a statistic; see the type's docs.
            .map(|slot| slot.load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

/// The calling thread's slot in every [`StripedCounter`], assigned round-robin on first use.
fn thread_stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    STRIPE.with(|stripe| {
        let mut s = stripe.get();
        if s == usize::MAX {
            // Relaxed: only the uniqueness of the returned value matters, which any ordering gives.
            s = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
            stripe.set(s);
        }
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_bounds_match_config() {
        assert!(check_capacities(2, 3).is_ok());
        assert!(check_capacities(MAX_PAGE_CAPACITY, MAX_PAGE_CAPACITY).is_ok());
        let field = |r: Result<(), ConfigError>| match r {
            Err(ConfigError::OutOfRange { field, .. }) => field,
            Ok(()) => "ok",
        };
        assert_eq!(field(check_capacities(1, 64)), "leaf_capacity");
        assert_eq!(field(check_capacities(64, 2)), "inner_capacity");
        assert_eq!(
            field(check_capacities(MAX_PAGE_CAPACITY + 1, 64)),
            "leaf_capacity"
        );
        assert_eq!(field(check_capacities(0, 0)), "leaf_capacity");
    }

    #[test]
    fn striped_counter_sums_across_threads() {
        let counter = StripedCounter::new();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..crate::test_size(1_000, 50) {
                        counter.incr();
                    }
                });
            }
        });
        assert_eq!(counter.sum(), 4000);
    }

    #[test]
    fn shape_fill_handles_empty() {
        assert_eq!(Shape::new(1, 0, 0, 0, 4).avg_leaf_fill, 0.0);
        assert_eq!(Shape::new(2, 2, 1, 4, 4).avg_leaf_fill, 0.5);
    }
}
