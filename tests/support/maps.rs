//! Maps for checking the checkers: a trivially correct one ([`LockedBTreeMap`]) that they must
//! accept, and deliberately broken ones ([`DroppingWrites`], [`StaleReads`], [`BrokenScan`],
//! [`RacyBatches`]) that they must reject.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bwtree::ConcurrentMap;

use super::bounds::model_range;

/// Appends the pairs of `map` within `(lo, hi)` to `out`, at most `limit` of them.
fn scan_btree(
    map: &BTreeMap<u64, u64>,
    lo: Bound<&u64>,
    hi: Bound<&u64>,
    limit: usize,
    out: &mut Vec<(u64, u64)>,
) -> usize {
    let before = out.len();
    out.extend(model_range(map, lo, hi).take(limit).map(|(k, v)| (*k, *v)));
    out.len() - before
}

/// `std::collections::BTreeMap` behind one `Mutex`: every operation, scans included, runs atomically
/// under the lock, so it is linearizable and every scan is a snapshot. The checkers must accept it.
#[derive(Debug, Default)]
pub struct LockedBTreeMap {
    inner: Mutex<BTreeMap<u64, u64>>,
}

impl LockedBTreeMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, u64>> {
        self.inner
            .lock()
            .expect("no test thread panics while holding the lock")
    }
}

impl ConcurrentMap<u64, u64> for LockedBTreeMap {
    fn name(&self) -> &'static str {
        "locked-btreemap"
    }

    fn insert(&self, key: u64, value: u64) -> Option<u64> {
        self.lock().insert(key, value)
    }

    fn get(&self, key: &u64) -> Option<u64> {
        self.lock().get(key).copied()
    }

    fn remove(&self, key: &u64) -> Option<u64> {
        self.lock().remove(key)
    }

    fn scan(
        &self,
        lo: Bound<&u64>,
        hi: Bound<&u64>,
        limit: usize,
        out: &mut Vec<(u64, u64)>,
    ) -> usize {
        scan_btree(&self.lock(), lo, hi, limit, out)
    }

    /// Under one lock acquisition: the whole batch is atomic, which is more than a batch must be.
    fn insert_batch(&self, pairs: Vec<(u64, u64)>) -> Vec<Option<u64>> {
        let mut map = self.lock();
        pairs.into_iter().map(|(k, v)| map.insert(k, v)).collect()
    }

    /// Under one lock acquisition (see [`LockedBTreeMap::insert_batch`]).
    fn remove_batch(&self, keys: &[u64]) -> Vec<Option<u64>> {
        let mut map = self.lock();
        keys.iter().map(|k| map.remove(k)).collect()
    }

    /// Under one lock acquisition (see [`LockedBTreeMap::insert_batch`]).
    fn get_many(&self, keys: &[u64]) -> Vec<Option<u64>> {
        let map = self.lock();
        keys.iter().map(|k| map.get(k).copied()).collect()
    }
}

/// Broken: once armed, every `every`-th insert (counted over all threads) reports the previous value
/// correctly but does not store the new one, so a later read finds the old value (a lost write).
#[derive(Debug)]
pub struct DroppingWrites {
    map: LockedBTreeMap,
    armed: AtomicBool,
    inserts: AtomicU64,
    every: u64,
}

impl DroppingWrites {
    /// A map that drops one insert in `every` (`every >= 1`).
    pub fn new(every: u64) -> Self {
        assert!(every >= 1);
        DroppingWrites {
            map: LockedBTreeMap::new(),
            armed: AtomicBool::new(false),
            inserts: AtomicU64::new(0),
            every,
        }
    }

    /// Starts dropping writes (so that a preload goes in intact).
    pub fn arm(&self) {
        // Relaxed: the threads that insert afterwards are spawned after this call.
        self.armed.store(true, Ordering::Relaxed);
    }
}

impl ConcurrentMap<u64, u64> for DroppingWrites {
    fn name(&self) -> &'static str {
        "dropping-writes"
    }

    fn insert(&self, key: u64, value: u64) -> Option<u64> {
        // Relaxed: only picks which inserts to drop.
        if !self.armed.load(Ordering::Relaxed) {
            return self.map.insert(key, value);
        }
        let n = self.inserts.fetch_add(1, Ordering::Relaxed);
        if n % self.every == self.every - 1 {
            self.map.get(&key)
        } else {
            self.map.insert(key, value)
        }
    }

    fn get(&self, key: &u64) -> Option<u64> {
        self.map.get(key)
    }

    fn remove(&self, key: &u64) -> Option<u64> {
        self.map.remove(key)
    }

    fn scan(
        &self,
        lo: Bound<&u64>,
        hi: Bound<&u64>,
        limit: usize,
        out: &mut Vec<(u64, u64)>,
    ) -> usize {
        self.map.scan(lo, hi, limit, out)
    }
}

/// Broken: every other `get` (counted over all threads) answers from a cache filled by the previous
/// fresh `get` of that key instead of from the map, so it can miss writes that completed in between
/// (a stale read).
#[derive(Debug, Default)]
pub struct StaleReads {
    map: LockedBTreeMap,
    cache: Mutex<BTreeMap<u64, Option<u64>>>,
    gets: AtomicU64,
}

impl StaleReads {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }
}

impl ConcurrentMap<u64, u64> for StaleReads {
    fn name(&self) -> &'static str {
        "stale-reads"
    }

    fn insert(&self, key: u64, value: u64) -> Option<u64> {
        self.map.insert(key, value)
    }

    fn get(&self, key: &u64) -> Option<u64> {
        let mut cache = self
            .cache
            .lock()
            .expect("no test thread panics while holding the lock");
        // Relaxed: only picks which gets are stale.
        if self.gets.fetch_add(1, Ordering::Relaxed) % 2 == 1 {
            if let Some(&cached) = cache.get(key) {
                return cached;
            }
        }
        let fresh = self.map.get(key);
        cache.insert(*key, fresh);
        fresh
    }

    fn remove(&self, key: &u64) -> Option<u64> {
        self.map.remove(key)
    }

    fn scan(
        &self,
        lo: Bound<&u64>,
        hi: Bound<&u64>,
        limit: usize,
        out: &mut Vec<(u64, u64)>,
    ) -> usize {
        self.map.scan(lo, hi, limit, out)
    }
}

/// Broken: point operations are correct, but a batched write reads every key's previous value
/// first (under the lock), lets go of the lock and yields, and only then writes the keys one by one.
/// What it reports for a key is then stale if another thread wrote the key in the gap, and that
/// thread's write is lost (a read-modify-write that is not atomic per key). Multi-gets are correct.
#[derive(Debug, Default)]
pub struct RacyBatches {
    map: LockedBTreeMap,
}

impl RacyBatches {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// The racy write: `results` read first, the writes applied after a yield.
    fn racy(&self, items: Vec<(u64, Option<u64>)>) -> Vec<Option<u64>> {
        let results = {
            let map = self.map.lock();
            let mut view = BTreeMap::new();
            // What a correct batch would report, simulated on a private copy of the keys it reads.
            items
                .iter()
                .map(|&(key, value)| {
                    let before = *view.entry(key).or_insert_with(|| map.get(&key).copied());
                    view.insert(key, value);
                    before
                })
                .collect()
        };
        std::thread::yield_now();
        for (key, value) in items {
            match value {
                Some(value) => self.map.insert(key, value),
                None => self.map.remove(&key),
            };
        }
        results
    }
}

impl ConcurrentMap<u64, u64> for RacyBatches {
    fn name(&self) -> &'static str {
        "racy-batches"
    }

    fn insert(&self, key: u64, value: u64) -> Option<u64> {
        self.map.insert(key, value)
    }

    fn get(&self, key: &u64) -> Option<u64> {
        self.map.get(key)
    }

    fn remove(&self, key: &u64) -> Option<u64> {
        self.map.remove(key)
    }

    fn scan(
        &self,
        lo: Bound<&u64>,
        hi: Bound<&u64>,
        limit: usize,
        out: &mut Vec<(u64, u64)>,
    ) -> usize {
        self.map.scan(lo, hi, limit, out)
    }

    fn insert_batch(&self, pairs: Vec<(u64, u64)>) -> Vec<Option<u64>> {
        self.racy(pairs.into_iter().map(|(k, v)| (k, Some(v))).collect())
    }

    fn remove_batch(&self, keys: &[u64]) -> Vec<Option<u64>> {
        self.racy(keys.iter().map(|&k| (k, None)).collect())
    }

    fn get_many(&self, keys: &[u64]) -> Vec<Option<u64>> {
        self.map.get_many(keys)
    }
}

/// How [`BrokenScan`] corrupts the result of a scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanFault {
    /// Leaves out the third pair of every scan that returns at least three.
    SkipThird,
    /// Returns the first pair of every non-empty scan twice.
    DuplicateFirst,
    /// Returns one pair past the upper bound when there is one.
    Overrun,
}

/// Broken: point operations go to the wrapped map, scans come back corrupted as `fault` says.
#[derive(Debug)]
pub struct BrokenScan<M> {
    inner: M,
    fault: ScanFault,
}

impl<M> BrokenScan<M> {
    /// Wraps `inner`.
    pub fn new(inner: M, fault: ScanFault) -> Self {
        BrokenScan { inner, fault }
    }
}

impl<M: ConcurrentMap<u64, u64>> ConcurrentMap<u64, u64> for BrokenScan<M> {
    fn name(&self) -> &'static str {
        "broken-scan"
    }

    fn insert(&self, key: u64, value: u64) -> Option<u64> {
        self.inner.insert(key, value)
    }

    fn get(&self, key: &u64) -> Option<u64> {
        self.inner.get(key)
    }

    fn remove(&self, key: &u64) -> Option<u64> {
        self.inner.remove(key)
    }

    fn scan(
        &self,
        lo: Bound<&u64>,
        hi: Bound<&u64>,
        limit: usize,
        out: &mut Vec<(u64, u64)>,
    ) -> usize {
        let before = out.len();
        match self.fault {
            ScanFault::SkipThird => {
                self.inner.scan(lo, hi, limit.saturating_add(1), out);
                if out.len() - before >= 3 {
                    out.remove(before + 2);
                }
                out.truncate(before.saturating_add(limit));
            }
            ScanFault::DuplicateFirst => {
                self.inner.scan(lo, hi, limit, out);
                if out.len() > before {
                    let first = out[before];
                    out.insert(before, first);
                    out.truncate(before.saturating_add(limit));
                }
            }
            ScanFault::Overrun => {
                self.inner.scan(lo, hi, limit, out);
                let past = match hi {
                    Bound::Included(h) => Bound::Excluded(h),
                    Bound::Excluded(h) => Bound::Included(h),
                    Bound::Unbounded => return out.len() - before,
                };
                if out.len() - before < limit {
                    self.inner.scan(past, Bound::Unbounded, 1, out);
                }
            }
        }
        out.len() - before
    }
}
