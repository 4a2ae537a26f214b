//! Adapters that put peer crates behind [`ConcurrentMap`], each used the way its crate intends.
//!
//! Where a peer's API cannot return the replaced value in the same step (scc's `upsert`), the
//! adapter reads it just before; the lab never relies on an overwrite's return value (it checks
//! that inserts of *fresh* keys return `None`, which every adapter reports exactly).

use std::cell::{Cell, RefCell};
use std::ops::Bound;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bwtree::{ConcurrentMap, TreeShape};

/// Whether no key lies within `(lo, hi)`; some peers panic on such ranges, the trait returns nothing.
fn empty_range(lo: Bound<&u64>, hi: Bound<&u64>) -> bool {
    match (lo, hi) {
        (Bound::Included(l), Bound::Included(h)) => l > h,
        (Bound::Included(l), Bound::Excluded(h))
        | (Bound::Excluded(l), Bound::Included(h))
        | (Bound::Excluded(l), Bound::Excluded(h)) => l >= h,
        (Bound::Unbounded, _) | (_, Bound::Unbounded) => false,
    }
}

/// `crossbeam_skiplist::SkipMap`: lock-free skip list, entries reached through ref-counted handles.
pub struct SkipMapAdapter {
    map: crossbeam_skiplist::SkipMap<u64, u64>,
}

impl SkipMapAdapter {
    pub fn new() -> Self {
        SkipMapAdapter {
            map: crossbeam_skiplist::SkipMap::new(),
        }
    }
}

impl ConcurrentMap<u64, u64> for SkipMapAdapter {
    fn name(&self) -> &'static str {
        "skipmap"
    }

    fn insert(&self, key: u64, value: u64) -> Option<u64> {
        // `compare_insert` shows the closure the entry it is about to replace (and is what `insert`
        // does with an always-true closure), so the previous value comes out of the same traversal.
        let previous = Cell::new(None);
        self.map.compare_insert(key, value, |old| {
            previous.set(Some(*old));
            true
        });
        previous.get()
    }

    fn get(&self, key: &u64) -> Option<u64> {
        self.map.get(key).map(|entry| *entry.value())
    }

    fn remove(&self, key: &u64) -> Option<u64> {
        self.map.remove(key).map(|entry| *entry.value())
    }

    fn scan(
        &self,
        lo: Bound<&u64>,
        hi: Bound<&u64>,
        limit: usize,
        out: &mut Vec<(u64, u64)>,
    ) -> usize {
        if limit == 0 || empty_range(lo, hi) {
            return 0;
        }
        let before = out.len();
        out.extend(
            self.map
                .range((lo, hi))
                .take(limit)
                .map(|entry| (*entry.key(), *entry.value())),
        );
        out.len() - before
    }
}

/// `scc::TreeIndex`: B+tree with lock-free reads through an `scc::Guard`; structure changes latch.
pub struct SccAdapter {
    index: scc::TreeIndex<u64, u64>,
}

impl SccAdapter {
    pub fn new() -> Self {
        SccAdapter {
            index: scc::TreeIndex::new(),
        }
    }
}

impl ConcurrentMap<u64, u64> for SccAdapter {
    fn name(&self) -> &'static str {
        "scc-treeindex"
    }

    fn insert(&self, key: u64, value: u64) -> Option<u64> {
        match self.index.insert_sync(key, value) {
            Ok(()) => None,
            Err((key, value)) => {
                // The key exists: TreeIndex overwrites with `upsert`, which returns nothing, so the
                // old value is read just before (not atomic with the overwrite).
                let previous = self.get(&key);
                self.index.upsert_sync(key, value);
                previous
            }
        }
    }

    fn get(&self, key: &u64) -> Option<u64> {
        let guard = scc::Guard::new();
        self.index.peek(key, &guard).copied()
    }

    fn remove(&self, key: &u64) -> Option<u64> {
        // The condition sees the entry being removed, so its value is exactly the removed one.
        let mut removed = None;
        self.index.remove_if_sync(key, |value| {
            removed = Some(*value);
            true
        });
        removed
    }

    fn scan(
        &self,
        lo: Bound<&u64>,
        hi: Bound<&u64>,
        limit: usize,
        out: &mut Vec<(u64, u64)>,
    ) -> usize {
        if limit == 0 || empty_range(lo, hi) {
            return 0;
        }
        let before = out.len();
        let guard = scc::Guard::new();
        out.extend(
            self.index
                .range::<u64, _>((lo, hi), &guard)
                .take(limit)
                .map(|(k, v)| (*k, *v)),
        );
        out.len() - before
    }

    fn tree_shape(&self) -> Option<TreeShape> {
        Some(TreeShape {
            height: self.index.depth(),
            leaves: None,
            inner_nodes: None,
            leaf_fill: None,
            inner_fill: None,
        })
    }
}

/// The concrete concurrent-map type (default fanout 64).
type Komora = concurrent_map::ConcurrentMap<u64, u64>;

/// Identifies [`KomoraAdapter`] instances, so a thread's cached handle is never used on another map.
static NEXT_KOMORA: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's handle (a clone) of the concurrent-map it last used, with that map's id.
    static KOMORA_HANDLE: RefCell<Option<(u64, Komora)>> = const { RefCell::new(None) };
}

/// `concurrent_map::ConcurrentMap`: lock-free B+tree (sled's index). Its handle is `Send` but not
/// `Sync` (each holds thread-local reclamation state), so the crate's intended use is one clone per
/// thread. The adapter keeps that clone in a thread-local slot, made on the thread's first call.
pub struct KomoraAdapter {
    id: u64,
    /// The handle new threads clone from.
    origin: Mutex<Komora>,
}

impl KomoraAdapter {
    pub fn new() -> Self {
        KomoraAdapter {
            // Relaxed: only uniqueness matters, which the atomic increment gives in any ordering.
            id: NEXT_KOMORA.fetch_add(1, Ordering::Relaxed),
            origin: Mutex::new(Komora::default()),
        }
    }

    /// Runs `f` with this thread's handle on the map.
    #[inline]
    fn with<R>(&self, f: impl FnOnce(&Komora) -> R) -> R {
        KOMORA_HANDLE.with(|slot| {
            let mut slot = slot.borrow_mut();
            match &*slot {
                Some((id, handle)) if *id == self.id => f(handle),
                _ => {
                    let handle = self
                        .origin
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .clone();
                    f(&slot.insert((self.id, handle)).1)
                }
            }
        })
    }
}

impl Drop for KomoraAdapter {
    fn drop(&mut self) {
        // Worker threads drop their clones when they exit; the dropping thread may hold one too.
        // `try_with`: during thread teardown the slot may already be gone, and then so is the clone.
        let _ = KOMORA_HANDLE.try_with(|slot| {
            let mut slot = slot.borrow_mut();
            if matches!(&*slot, Some((id, _)) if *id == self.id) {
                *slot = None;
            }
        });
    }
}

impl ConcurrentMap<u64, u64> for KomoraAdapter {
    fn name(&self) -> &'static str {
        "concurrent-map"
    }

    fn insert(&self, key: u64, value: u64) -> Option<u64> {
        self.with(|map| map.insert(key, value))
    }

    fn get(&self, key: &u64) -> Option<u64> {
        self.with(|map| map.get(key))
    }

    fn remove(&self, key: &u64) -> Option<u64> {
        self.with(|map| map.remove(key))
    }

    fn scan(
        &self,
        lo: Bound<&u64>,
        hi: Bound<&u64>,
        limit: usize,
        out: &mut Vec<(u64, u64)>,
    ) -> usize {
        if limit == 0 || empty_range(lo, hi) {
            return 0;
        }
        let before = out.len();
        self.with(|map| out.extend(map.range((lo, hi)).take(limit)));
        out.len() - before
    }
}

/// `ferntree::Tree`: B+tree with optimistic lock coupling (LeanStore-style hybrid latches).
pub struct FerntreeAdapter {
    tree: ferntree::Tree<u64, u64>,
}

impl FerntreeAdapter {
    pub fn new() -> Self {
        FerntreeAdapter {
            tree: ferntree::Tree::new(),
        }
    }
}

impl ConcurrentMap<u64, u64> for FerntreeAdapter {
    fn name(&self) -> &'static str {
        "ferntree"
    }

    fn insert(&self, key: u64, value: u64) -> Option<u64> {
        self.tree.insert(key, value)
    }

    fn get(&self, key: &u64) -> Option<u64> {
        // The crate's fast path for plain-data values: validated optimistic reads, no shared latch.
        self.tree.get_optimistic(key)
    }

    fn remove(&self, key: &u64) -> Option<u64> {
        self.tree.remove(key)
    }

    fn scan(
        &self,
        lo: Bound<&u64>,
        hi: Bound<&u64>,
        limit: usize,
        out: &mut Vec<(u64, u64)>,
    ) -> usize {
        if limit == 0 || empty_range(lo, hi) {
            return 0;
        }
        let before = out.len();
        // The range cursor holds a shared latch on one leaf at a time; it lends its pairs, so it is
        // driven by hand rather than as an `Iterator`.
        let mut range = self.tree.range(lo, hi);
        while out.len() - before < limit {
            match range.next() {
                Some((k, v)) => out.push((*k, *v)),
                None => break,
            }
        }
        out.len() - before
    }

    fn tree_shape(&self) -> Option<TreeShape> {
        Some(TreeShape {
            height: self.tree.height(),
            leaves: None,
            inner_nodes: None,
            leaf_fill: None,
            inner_fill: None,
        })
    }
}
