//! A frozen, read-only view of a tree that routes through child pointers cached in the inner pages
//! instead of through the mapping table: the "no mapping table" variant of the SIGMOD'18 §6.3
//! study, built from the tree's own pages and lookup code.
//!
//! # Protocol
//! [`BwTree::freeze_routes`] takes the tree by `&mut`, so while the returned [`FrozenRoutes`] lives
//! no other handle to the tree exists (a tree shared through an `Arc`, a background maintenance
//! thread included, cannot be borrowed mutably): no delta is posted, no page is consolidated, split
//! or merged, and no chain is retired. Freezing first brings every inner page to a single base page
//! (consolidating it, which also completes any split on top of it), then stores in every inner base
//! page, next to each child PID, the child's current head node — the node the mapping table would
//! give for that PID for as long as the view lives — and the root's head in the view.
//!
//! A lookup through the view starts at the root's head and at every inner page picks the child
//! exactly as a normal descent does (the same separator search over the same base page), but takes
//! the cached node instead of loading the child's mapping-table slot. At the leaf it runs the
//! normal leaf lookup (delta chain and all). Two cases fall back to the mapping table, so that
//! correctness never depends on the cache: an inner page whose consolidation did not leave a
//! base page (its cache slot stays null), and a probe at or beyond a page's high key — routes may
//! lag to the left after merges (see `merge`), and such a page is left through its right link.
//!
//! Dropping the view leaves the cached pointers in place, stale as soon as the tree changes; they
//! are never read again until the next `freeze_routes` overwrites every one of them.

use crate::sync::unmodeled::Ordering;

use crossbeam_epoch::Guard;

use crate::BwTree;
use crate::mapping::Pid;
use crate::page::chain::{self, At, First, Probe};
use crate::page::{Body, NodeRef};
use crate::protocol::traverse::{Intent, PageRef};

/// Consolidation attempts per inner page while freezing; a page that is still not a single base
/// page after them keeps null cache slots, which lookups route around through the mapping table.
const CONSOLIDATION_ATTEMPTS: usize = 8;

/// A read-only view of a [`BwTree`] whose lookups bypass the mapping table (see the module docs).
///
/// Returned by [`BwTree::freeze_routes`]; it holds the tree's exclusive borrow, so the tree cannot
/// change while the view exists. `Send` and `Sync`: any number of threads may read through it.
pub struct FrozenRoutes<'t, K, V> {
    tree: &'t mut BwTree<K, V>,
    /// The root page's head at freezing time.
    root: *const crate::page::Node<K, V>,
    /// Lookups that had to load a mapping-table slot (cache miss or right move), for tests and
    /// the lab's report.
    fallbacks: crate::sync::unmodeled::AtomicU64,
}

// SAFETY: the raw root pointer points into the tree this view borrows exclusively; sharing the view
// shares only read access to immutable pages (and a counter), as sharing `&BwTree` would.
unsafe impl<K: Send + Sync, V: Send + Sync> Send for FrozenRoutes<'_, K, V> {}
// SAFETY: as above.
unsafe impl<K: Send + Sync, V: Send + Sync> Sync for FrozenRoutes<'_, K, V> {}

impl<K, V> core::fmt::Debug for FrozenRoutes<'_, K, V> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FrozenRoutes")
            .field("fallbacks", &self.fallbacks.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<K, V> BwTree<K, V>
where
    K: Ord + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Freezes the tree into a read-only view whose lookups follow child pointers cached in the
    /// inner pages instead of the mapping table (see the `frozen` module docs). A research switch:
    /// it measures what the mapping-table indirection costs a reader. Freezing consolidates every
    /// inner page and touches each of them once.
    ///
    /// ```
    /// use bwtree::BwTree;
    ///
    /// let mut tree = BwTree::new();
    /// for k in 0..10_000u64 {
    ///     tree.insert(k, k + 1);
    /// }
    /// let frozen = tree.freeze_routes();
    /// assert_eq!(frozen.get(&1234), Some(1235));
    /// assert_eq!(frozen.get(&10_000), None);
    /// drop(frozen);
    /// tree.insert(10_000, 0); // the tree is writable again once the view is gone
    /// ```
    pub fn freeze_routes(&mut self) -> FrozenRoutes<'_, K, V> {
        let root = {
            let guard = &self.guard();
            self.consolidate_inner_pages(guard);
            self.cache_child_heads(guard);
            self.table
                .load(self.root.pid(guard), guard)
                .expect("the root page always exists")
                .as_ptr()
        };
        FrozenRoutes {
            tree: self,
            root,
            fallbacks: crate::sync::unmodeled::AtomicU64::new(0),
        }
    }

    /// The pages of `level`, left to right, as loaded under `guard`.
    fn level_pages<'g>(&self, level: u8, guard: &'g Guard) -> Vec<PageRef<'g, K, V>> {
        let mut pages = Vec::new();
        let Some(mut page) = self.descend(&First, level, Intent::Read, guard) else {
            return pages;
        };
        loop {
            pages.push(page);
            let right = page.node().meta.right;
            if right.is_none() {
                return pages;
            }
            match self.table.load(right, guard) {
                Some(node) => page = PageRef { pid: right, node },
                None => return pages,
            }
        }
    }

    /// Replaces every inner page's chain by a single base page (single-threaded: the caller holds
    /// the tree exclusively).
    fn consolidate_inner_pages(&self, guard: &Guard) {
        for level in 1..self.height() as u8 {
            for page in self.level_pages(level, guard) {
                let mut page = page;
                for _ in 0..CONSOLIDATION_ATTEMPTS {
                    if matches!(page.node().body(), Body::Inner(_)) {
                        break;
                    }
                    let _ = self.consolidate(page, guard);
                    match self.table.load(page.pid, guard) {
                        Some(node) => page.node = node,
                        None => break,
                    }
                }
            }
        }
    }

    /// Stores, next to every child PID of every inner base page, the child's current head.
    fn cache_child_heads(&self, guard: &Guard) {
        for level in 1..self.height() as u8 {
            for page in self.level_pages(level, guard) {
                let Body::Inner(base) = page.node().body() else {
                    continue;
                };
                for (pid, cached) in base.children().iter().zip(base.cached_children()) {
                    let head = self
                        .table
                        .load(*pid, guard)
                        .map_or(core::ptr::null_mut(), |n| n.as_ptr().cast_mut());
                    // Relaxed: written under the exclusive borrow; readers on other threads get
                    // the view (and with it these stores) through whatever shared it with them,
                    // which synchronises.
                    cached.store(head.cast(), Ordering::Relaxed);
                }
            }
        }
    }
}

impl<K, V> FrozenRoutes<'_, K, V>
where
    K: Ord + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// The value stored for `key`, found without reading the mapping table (except for the
    /// fallbacks described in the module docs).
    pub fn get(&self, key: &K) -> Option<V> {
        let guard = &self.tree.guard();
        // SAFETY: `root` was the root's head when the view was made, and the tree cannot change
        // (nor free anything reachable) while the view holds its exclusive borrow.
        let mut node: NodeRef<'_, K, V> =
            unsafe { NodeRef::from_raw(self.root) }.expect("the root page always exists");
        loop {
            let probe = At(key);
            if probe.right_of(node.high()) {
                node = self.load(node.meta.right, guard);
                continue;
            }
            if node.is_leaf() {
                return chain::leaf_get(node, key).cloned();
            }
            node = match node.body() {
                Body::Inner(base) => {
                    let i = base
                        .separators()
                        .partition_point(|s| probe.right_of(Some(s)));
                    // Relaxed: see `cache_child_heads`.
                    let cached = base.cached_children()[i].load(Ordering::Relaxed);
                    // SAFETY: a non-null slot holds the child's head stored by `freeze_routes`,
                    // still its head and alive: the tree has not changed since.
                    match unsafe { NodeRef::from_raw(cached.cast()) } {
                        Some(child) => child,
                        None => self.load(base.children()[i], guard),
                    }
                }
                _ => self.load(chain::inner_route(node, &probe), guard),
            };
        }
    }

    /// Whether `key` is present (see [`FrozenRoutes::get`]).
    pub fn contains_key(&self, key: &K) -> bool {
        self.get(key).is_some()
    }

    /// How many page visits so far had to load a mapping-table slot.
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    /// The head of `pid` through the mapping table (a counted fallback).
    fn load<'g>(&self, pid: Pid, guard: &'g Guard) -> NodeRef<'g, K, V> {
        // Relaxed: a statistic.
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        self.tree
            .table
            .load(pid, guard)
            .expect("a frozen tree's pages stay in place")
    }
}
