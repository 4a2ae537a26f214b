//! The public map type and its point operations.

use core::fmt;
use core::ops::{Bound, RangeBounds};

use crossbeam_epoch::{Collector, LocalHandle};

use crate::config::{Config, ConfigError};
use crate::iter::Range;
use crate::mapping::{MappingTable, Pid, RootPid};
use crate::memory::handles::{Handles, TreeGuard};
use crate::page;
use crate::page::chain::{self, At, Count, First};
use crate::protocol::traverse::Intent;
use crate::research::counters::Stats;

/// A lock-free ordered map: a Bw-tree.
///
/// Every method takes `&self`; share the tree between threads with `Arc` or scoped threads. Keys are
/// ordered by [`Ord`]; values are returned as clones (or borrowed through a [`Pinned`] handle).
///
/// See the [crate documentation](crate) for the design and the consistency guarantees.
///
/// ```
/// use bwtree::BwTree;
///
/// let tree = BwTree::new();
/// assert_eq!(tree.insert(7, 70), None);
/// assert_eq!(tree.insert(7, 71), Some(70));
/// assert_eq!(tree.get(&7), Some(71));
/// assert_eq!(tree.remove(&7), Some(71));
/// assert!(tree.is_empty());
/// ```
///
/// # Thread safety
/// `BwTree<K, V>` is `Send` and `Sync` exactly when `K` and `V` are both `Send + Sync`: readers on
/// any thread borrow keys and values, and a replaced value is dropped by whichever thread runs the
/// epoch collector. A [`Range`] is `Send` under the same condition; a [`Pinned`]
/// handle keeps the current thread pinned and stays on it.
///
/// ```compile_fail
/// // Not `Send`: `Rc` keys could be cloned or dropped on two threads at once.
/// fn needs_send<T: Send>() {}
/// needs_send::<bwtree::BwTree<std::rc::Rc<String>, u64>>();
/// ```
///
/// ```compile_fail
/// // A pinned handle belongs to the thread that pinned.
/// fn needs_send<T: Send>() {}
/// needs_send::<bwtree::Pinned<'static, u64, u64>>();
/// ```
///
/// # Panics
/// The tree runs user code in `K: Clone`, `V: Clone`, `K: Ord` and in the keys' and values'
/// `Drop`; it panics on its own only for a broken `Ord` (see below). If a `Clone` or an `Ord`
/// panics inside an operation — in the operation itself or in a consolidation, split, merge,
/// root change, batch or maintenance pass it runs — the panic reaches the caller of that operation
/// (or, on the background maintenance thread, [`MaintenanceHandle::stop`](crate::MaintenanceHandle::stop)), and:
/// - the operation took effect or not, as one unit per key (an `insert` whose clone of the replaced
///   value panics has inserted; a batch has applied some of its keys);
/// - every other key keeps its value and is found at once by `get`, `range` and the other reads;
/// - a structure modification the panic interrupted is left as an unfinished step that the next
///   thread to meet it completes (help-along) or a maintenance pass does, as if its thread had
///   stalled; nothing waits for it;
/// - no page, key or value leaks or is dropped twice, and the tree stays usable.
///
/// `tests/panic_safety.rs` checks this for a panic at every clone and comparison site a workload on
/// tiny pages reaches. Hence `BwTree` is [`UnwindSafe`](std::panic::UnwindSafe) and
/// [`RefUnwindSafe`](std::panic::RefUnwindSafe) when its keys and values are.
///
/// `Drop` of a key or value must not panic: replaced values are dropped by the epoch collector on
/// whichever thread collects, where a panic can abort the process or leak the rest of the batch.
///
/// An `Ord` that is not a total order (or changes while keys are in the tree) is a logic error,
/// as for [`BTreeMap`](std::collections::BTreeMap): results are unspecified (missing or duplicate
/// keys, wrong answers, a panic), but never undefined behaviour, and every call ends: a loop that
/// cannot make progress gives up with a panic whose message names the `Ord`
/// (`tests/broken_ord.rs` checks flipped, random and non-transitive orders).
pub struct BwTree<K = u64, V = u64> {
    pub(crate) table: MappingTable<K, V>,
    /// PID of the root page.
    pub(crate) root: RootPid,
    pub(crate) config: Config,
    /// The epoch collector that protects this tree's pages, with the tree's pool of handles of it;
    /// `None` for crossbeam's default collector.
    handles: Option<Handles>,
    /// Per-thread statistics counters (see [`BwTree::stats`]).
    pub(crate) stats: Stats,
}

impl<K, V> BwTree<K, V>
where
    K: Ord + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// An empty tree with the default [`Config`].
    pub fn new() -> Self {
        Self::build(Config::default(), None)
    }

    /// An empty tree with the given configuration, or the reason it is invalid.
    pub fn with_config(config: Config) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self::build(config, None))
    }

    /// An empty tree whose pages are protected by its own epoch `collector` instead of crossbeam's
    /// global one.
    ///
    /// With its own collector, dropping the tree (and every [`LocalHandle`] of the collector) frees
    /// all retired pages at once, which leak tests rely on, and model checkers can give each thread
    /// its own handle ([`BwTree::pin_with`]). Operations that are not given a handle take one from a
    /// small pool of handles that the tree keeps for its collector (and drops with the tree).
    pub fn with_collector(config: Config, collector: Collector) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self::build(config, Some(collector)))
    }

    fn build(config: Config, collector: Option<Collector>) -> Self {
        let table = MappingTable::new();
        let handles = collector.map(Handles::new);
        let empty_leaf = page::leaf_base(None, None, Pid::NONE, core::iter::empty());
        let root = {
            let guard = match &handles {
                None => TreeGuard::unpooled(crossbeam_epoch::pin()),
                Some(handles) => handles.pin(),
            };
            table.allocate(empty_leaf, &guard)
        };
        // The tree is not shared yet: publication to other threads happens through whatever
        // shares the tree (a spawn, an `Arc`), which synchronises.
        BwTree {
            table,
            root: RootPid::new(root),
            stats: Stats::new(config.statistics),
            config,
            handles,
        }
    }

    /// The configuration the tree was built with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Pins the current thread in this tree's epoch collector.
    pub(crate) fn guard(&self) -> TreeGuard<'_> {
        match &self.handles {
            None => TreeGuard::unpooled(crossbeam_epoch::pin()),
            Some(handles) => handles.pin(),
        }
    }

    /// Inserts `key` → `value`, overwriting any previous value, and returns the previous value.
    ///
    /// Linearizable: it takes effect at the one CAS that installs its delta record, and the returned
    /// previous value is the one that CAS replaced.
    pub fn insert(&self, key: K, value: V) -> Option<V> {
        let guard = &self.guard();
        self.insert_in(key, value, guard).cloned()
    }

    /// The value stored for `key`. Linearizable.
    pub fn get(&self, key: &K) -> Option<V> {
        let guard = &self.guard();
        self.get_in(key, guard).cloned()
    }

    /// Removes `key` and returns the value it had; `None`, with nothing posted, if it was absent.
    /// Linearizable.
    pub fn remove(&self, key: &K) -> Option<V> {
        let guard = &self.guard();
        self.remove_in(key, guard).cloned()
    }

    /// Whether `key` is present. Linearizable.
    pub fn contains_key(&self, key: &K) -> bool {
        let guard = &self.guard();
        self.get_in(key, guard).is_some()
    }

    /// An ascending, double-ended iterator over the pairs whose keys lie in `range`.
    ///
    /// Any bound kinds are accepted; a range whose start lies after its end is simply empty (no
    /// panic). The iterator copies one leaf at a time and holds no epoch guard between calls. A key
    /// present and unchanged for the whole scan is returned exactly once; keys inserted or removed
    /// during the scan may or may not be returned; every returned pair was present at some moment of
    /// the scan.
    pub fn range<R: RangeBounds<K>>(
        &self,
        range: R,
    ) -> impl DoubleEndedIterator<Item = (K, V)> + '_ {
        Range::new(self, range)
    }

    /// An ascending iterator over all pairs; see [`BwTree::range`] for the guarantees.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (K, V)> + '_ {
        Range::new(self, ..)
    }

    /// The number of levels (1 for a tree that is a single leaf).
    pub fn height(&self) -> usize {
        let guard = &self.guard();
        loop {
            // A collapse may switch the root away and clear the old root's slot between the two
            // loads; the root names a live page again when read anew.
            match self.table.load(self.root.pid(guard), guard) {
                Some(node) => return node.meta.level as usize + 1,
                None => crate::sync::retry_pause(),
            }
        }
    }

    /// The number of entries, summed over the leaves from left to right.
    ///
    /// Exact when no other thread modifies the tree; under concurrent changes each leaf is counted
    /// at a slightly different moment, and each key at most once (a key present throughout is
    /// counted exactly once). O(number of leaves).
    pub fn len(&self) -> usize {
        let guard = &self.guard();
        let mut page = self.find_leaf(&First, Intent::Read, guard);
        let mut total = page.node().meta.size as usize;
        loop {
            let node = page.node();
            let Some(high) = node.high() else {
                return total;
            };
            page = match self.settle(node.meta.right, &At(high), Intent::Read, guard) {
                Ok(next) => next,
                Err(_) => self.find_leaf(&At(high), Intent::Read, guard),
            };
            let next = page.node();
            // The leaf covers `high`, so it ends beyond it: the walk advances.
            if next.high().is_some_and(|next_high| next_high <= high) {
                crate::protocol::progress::keys_out_of_order("len()");
            }
            total += if next.low() == Some(high) {
                next.meta.size as usize
            } else {
                // The leaf that covers `high` now starts left of it (it absorbed the page counted
                // last, or a neighbour of it, since): only its keys from `high` on are new.
                let mut count = Count::default();
                let mut scratch = Vec::new();
                chain::collect_leaf_with(
                    next,
                    Bound::Included(high),
                    Bound::Unbounded,
                    usize::MAX,
                    &mut count,
                    &mut scratch,
                );
                count.0
            };
        }
    }

    /// Whether the tree holds no entries (same caveat as [`BwTree::len`]).
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// A handle that keeps the current thread pinned, for many operations without re-pinning and for
    /// values borrowed instead of cloned.
    ///
    /// While the handle lives, memory retired by any thread cannot be reclaimed: keep it short-lived
    /// or call [`Pinned::repin`] now and then.
    pub fn pin(&self) -> Pinned<'_, K, V> {
        Pinned {
            tree: self,
            guard: self.guard(),
        }
    }

    /// Loom builds only: makes each loom thread keep one epoch handle of this tree's collector until
    /// the tree is dropped, instead of registering a short-lived one per operation (see the
    /// `handles` module docs). For models whose operations take no handle (the batch calls).
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn loom_keep_thread_handles(&self) {
        if let Some(handles) = &self.handles {
            handles.keep_thread_handles();
        }
    }

    /// Like [`BwTree::pin`], using a handle of this tree's collector (see
    /// [`BwTree::with_collector`]). Fails if `handle` belongs to another collector.
    pub fn pin_with(&self, handle: &LocalHandle) -> Result<Pinned<'_, K, V>, ForeignHandle> {
        let ours = match &self.handles {
            Some(handles) => handle.collector() == handles.collector(),
            None => handle.collector() == crossbeam_epoch::default_collector(),
        };
        if !ours {
            return Err(ForeignHandle);
        }
        Ok(Pinned {
            tree: self,
            guard: TreeGuard::unpooled(handle.pin()),
        })
    }
}

impl<K, V> Default for BwTree<K, V>
where
    K: Ord + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V> fmt::Debug for BwTree<K, V>
where
    K: Ord + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BwTree")
            .field("height", &self.height())
            .field("pids_allocated", &self.table.high_water())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

// The tree's own state survives a panic in user code consistent (see *Panics* on `BwTree`); what
// is not unwind safe is only what the keys and values themselves are.
impl<K: std::panic::RefUnwindSafe, V: std::panic::RefUnwindSafe> std::panic::UnwindSafe
    for BwTree<K, V>
{
}
impl<K: std::panic::RefUnwindSafe, V: std::panic::RefUnwindSafe> std::panic::RefUnwindSafe
    for BwTree<K, V>
{
}

/// A [`LocalHandle`] of another epoch collector was given to [`BwTree::pin_with`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForeignHandle;

impl fmt::Display for ForeignHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the epoch handle belongs to a different collector than the tree's")
    }
}

impl std::error::Error for ForeignHandle {}

/// A [`BwTree`] with the current thread pinned: operations skip pinning, and values are borrowed
/// for the handle's lifetime instead of cloned. Created by [`BwTree::pin`] or [`BwTree::pin_with`].
pub struct Pinned<'t, K, V> {
    tree: &'t BwTree<K, V>,
    guard: TreeGuard<'t>,
}

impl<K, V> Pinned<'_, K, V>
where
    K: Ord + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// The value stored for `key`, borrowed. Linearizable.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.tree.get_in(key, &self.guard)
    }

    /// Whether `key` is present. Linearizable.
    pub fn contains_key(&self, key: &K) -> bool {
        self.tree.get_in(key, &self.guard).is_some()
    }

    /// Inserts or overwrites `key`; returns the previous value, borrowed. Linearizable.
    pub fn insert(&self, key: K, value: V) -> Option<&V> {
        self.tree.insert_in(key, value, &self.guard)
    }

    /// Removes `key`; returns the value it had, borrowed. Linearizable.
    pub fn remove(&self, key: &K) -> Option<&V> {
        self.tree.remove_in(key, &self.guard)
    }

    /// Unpins and re-pins, letting reclamation advance. Needs `&mut self`, so no borrowed value
    /// survives it.
    pub fn repin(&mut self) {
        self.guard.repin();
    }
}

impl<K, V> fmt::Debug for Pinned<'_, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pinned").finish_non_exhaustive()
    }
}
