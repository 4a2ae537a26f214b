//! [`CoarseLockMap`]: one reader/writer lock around a `std` `BTreeMap` (seed 000's design).

use core::fmt;
use core::ops::Bound;
use std::collections::BTreeMap;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::{StripedCounter, is_empty_range, read_lock, write_lock};
use crate::ConcurrentMap;

/// An ordered map behind one [`RwLock`]: readers share it, every writer excludes everyone.
///
/// The floor for the finer-grained maps: no structure beyond `std`'s `BTreeMap`, whose node size is
/// fixed by the standard library (so, unlike the other baselines, it has no capacity parameters and
/// cannot report its height or node fill).
///
/// A panic while the lock is held (a panicking `Ord` or `Clone` of a key or value) poisons it; this
/// map ignores poisoning and keeps serving the `BTreeMap` as the panic left it, which `BTreeMap`
/// keeps memory-safe and structurally valid.
///
/// ```
/// use bwtree::baselines::CoarseLockMap;
/// use bwtree::ConcurrentMap;
///
/// let map = CoarseLockMap::new();
/// assert_eq!(map.insert(1u64, 10u64), None);
/// assert_eq!(map.get(&1), Some(10));
/// ```
pub struct CoarseLockMap<K, V> {
    map: RwLock<BTreeMap<K, V>>,
    /// Acquisitions that found the lock taken and had to wait.
    lock_waits: StripedCounter,
}

impl<K: Ord + Clone, V: Clone> CoarseLockMap<K, V> {
    /// An empty map.
    pub fn new() -> Self {
        CoarseLockMap {
            map: RwLock::new(BTreeMap::new()),
            lock_waits: StripedCounter::new(),
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether the map holds no entry.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// How many lock acquisitions found the lock held in a conflicting mode and had to wait.
    ///
    /// Counted only on the waiting path (a failed `try_read`/`try_write`), so it costs nothing when
    /// the lock is free.
    pub fn lock_waits(&self) -> u64 {
        self.lock_waits.sum()
    }

    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<K, V>> {
        read_lock(&self.map, &self.lock_waits)
    }

    fn write(&self) -> RwLockWriteGuard<'_, BTreeMap<K, V>> {
        write_lock(&self.map, &self.lock_waits)
    }
}

impl<K: Ord + Clone, V: Clone> Default for CoarseLockMap<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Ord + Clone, V: Clone> fmt::Debug for CoarseLockMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoarseLockMap")
            .field("len", &self.len())
            .field("lock_waits", &self.lock_waits())
            .finish()
    }
}

impl<K, V> ConcurrentMap<K, V> for CoarseLockMap<K, V>
where
    K: Ord + Clone + Send + Sync,
    V: Clone + Send + Sync,
{
    fn name(&self) -> &'static str {
        "coarse-rwlock"
    }

    fn stats(&self) -> Vec<(&'static str, u64)> {
        vec![("lock_waits", self.lock_waits())]
    }

    fn insert(&self, key: K, value: V) -> Option<V> {
        self.write().insert(key, value)
    }

    fn get(&self, key: &K) -> Option<V> {
        self.read().get(key).cloned()
    }

    fn remove(&self, key: &K) -> Option<V> {
        self.write().remove(key)
    }

    fn scan(&self, lo: Bound<&K>, hi: Bound<&K>, limit: usize, out: &mut Vec<(K, V)>) -> usize {
        // `(l, l)` with an excluded end is empty too, but `BTreeMap::range` panics on
        // `(Excluded(l), Excluded(l))`, so every empty range returns before reaching it.
        if limit == 0 || is_empty_range(lo, hi) {
            return 0;
        }
        let before = out.len();
        let map = self.read();
        out.extend(
            map.range::<K, _>((lo, hi))
                .take(limit)
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        out.len() - before
    }

    /// All pairs under one acquisition of the write lock (seed 000's batch).
    fn insert_batch(&self, pairs: Vec<(K, V)>) -> Vec<Option<V>> {
        let mut map = self.write();
        pairs
            .into_iter()
            .map(|(key, value)| map.insert(key, value))
            .collect()
    }

    /// All keys under one acquisition of the write lock.
    fn remove_batch(&self, keys: &[K]) -> Vec<Option<V>> {
        let mut map = self.write();
        keys.iter().map(|key| map.remove(key)).collect()
    }

    /// All keys under one acquisition of the read lock.
    fn get_many(&self, keys: &[K]) -> Vec<Option<V>> {
        let map = self.read();
        keys.iter().map(|key| map.get(key).cloned()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_inverted_ranges_do_not_panic() {
        let map = CoarseLockMap::new();
        for k in 0..10u64 {
            map.insert(k, k);
        }
        let mut out = Vec::new();
        let cases = [
            (Bound::Included(&5), Bound::Included(&4)),
            (Bound::Excluded(&5), Bound::Excluded(&5)),
            (Bound::Included(&5), Bound::Excluded(&5)),
            (Bound::Excluded(&5), Bound::Included(&5)),
        ];
        for (lo, hi) in cases {
            assert_eq!(map.scan(lo, hi, 10, &mut out), 0, "{lo:?}..{hi:?}");
        }
        assert_eq!(
            map.scan(Bound::Included(&5), Bound::Included(&5), 10, &mut out),
            1
        );
        assert_eq!(out, vec![(5, 5)]);
    }

    #[test]
    fn survives_a_poisoned_lock() {
        let map = CoarseLockMap::new();
        map.insert(1u64, 1u64);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _guard = map.map.write().unwrap();
            panic!("poison the lock");
        }));
        assert!(result.is_err());
        assert!(map.map.is_poisoned());
        assert_eq!(map.insert(2, 2), None);
        assert_eq!(map.get(&1), Some(1));
        assert_eq!(map.remove(&2), Some(2));
        assert_eq!(map.len(), 1);
    }

    #[test]
    fn counts_waits_only_when_contended() {
        let map = CoarseLockMap::new();
        map.insert(1u64, 1u64);
        assert_eq!(map.lock_waits(), 0);
        let guard = map.map.read().unwrap();
        std::thread::scope(|s| {
            let writer = s.spawn(|| map.insert(2, 2));
            // The writer must wait: it holds no way to proceed until the guard goes.
            while map.lock_waits() == 0 {
                std::thread::yield_now();
            }
            drop(guard);
            assert_eq!(writer.join().unwrap(), None);
        });
        assert_eq!(map.lock_waits(), 1);
        assert_eq!(map.get(&2), Some(2));
    }
}
