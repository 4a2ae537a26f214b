//! [`OlcBTree`]: a B+tree synchronised by optimistic lock coupling, specialised to `u64` keys and
//! values.
//!
//! The protocol is documented on the type, [`OlcBTree`].

use crate::sync::unmodeled::{AtomicPtr, AtomicU64, Ordering, fence};
use core::alloc::Layout;
use core::fmt;
use core::marker::PhantomData;
use core::mem::{align_of, size_of};
use core::ops::Bound;
use core::ptr::{self, NonNull};
use std::alloc::{alloc_zeroed, dealloc, handle_alloc_error};

use crossbeam_utils::CachePadded;

use super::{Shape, StripedCounter, below_hi, check_capacities, is_empty_range};
use crate::{ConcurrentMap, ConfigError, TreeShape};

/// Version bit: the node was unlinked and must not be used (never set under the no-merge policy).
const OBSOLETE: u64 = 0b01;
/// Version bit: a writer holds the node.
const LOCKED: u64 = 0b10;

/// The fixed part of a node, followed in the same allocation by its slot arrays.
#[repr(C, align(64))]
struct Header {
    version: AtomicU64,
    /// Number of keys in use (clamped to `key_cap` by optimistic readers).
    count: AtomicU64,
    /// Right sibling; leaves only.
    next: AtomicPtr<Header>,
    /// 0 for a leaf, the children's level plus one for an inner node. Immutable.
    level: u32,
    /// Number of key slots. Immutable.
    key_cap: u32,
}

// Child pointers and `u64` slots share one slot size, so both arrays are laid out alike.
const _: () = assert!(size_of::<AtomicPtr<Header>>() == size_of::<AtomicU64>());
const _: () = assert!(align_of::<AtomicPtr<Header>>() <= align_of::<Header>());
const _: () = assert!(size_of::<Header>() % align_of::<AtomicU64>() == 0);

/// Layout of a node with `key_cap` key slots: leaves have as many value slots, inner nodes one child
/// slot more.
fn node_layout(level: u32, key_cap: u32) -> Layout {
    let slots = 2 * key_cap as usize + usize::from(level != 0);
    Layout::from_size_align(
        size_of::<Header>() + slots * size_of::<AtomicU64>(),
        align_of::<Header>(),
    )
    .expect("capacities are bounded by MAX_PAGE_CAPACITY, so a node's size fits a Layout")
}

/// Allocates an empty, unpublished node. Every slot is zero: key and value 0, child pointer null.
fn alloc_node(level: u32, key_cap: u32) -> NonNull<Header> {
    let layout = node_layout(level, key_cap);
    // SAFETY: the layout has a non-zero size (the header alone is 64 bytes).
    let raw = unsafe { alloc_zeroed(layout) }.cast::<Header>();
    let Some(node) = NonNull::new(raw) else {
        handle_alloc_error(layout)
    };
    // SAFETY: `node` is a fresh allocation of at least `size_of::<Header>()` bytes with `Header`'s
    // alignment. The slots after the header are atomics, for which all-zero bytes are valid values.
    unsafe {
        ptr::write(
            node.as_ptr(),
            Header {
                version: AtomicU64::new(0),
                count: AtomicU64::new(0),
                next: AtomicPtr::new(ptr::null_mut()),
                level,
                key_cap,
            },
        )
    };
    node
}

/// A node of a tree that is borrowed for `'t`.
///
/// Invariant: `ptr` was returned by [`alloc_node`] for that tree, whose initialisation happens before
/// this handle's creation. Nodes are freed only by the tree's `Drop`, which the borrow excludes.
#[derive(Clone, Copy)]
struct NodeRef<'t> {
    ptr: NonNull<Header>,
    _tree: PhantomData<&'t OlcBTree>,
}

impl<'t> NodeRef<'t> {
    /// # Safety
    /// `ptr` satisfies the type's invariant for `'t`.
    unsafe fn new(ptr: NonNull<Header>) -> Self {
        NodeRef {
            ptr,
            _tree: PhantomData,
        }
    }

    #[inline]
    fn header(self) -> &'t Header {
        // SAFETY: by the type's invariant the node is initialised and lives for `'t`; every field
        // that changes after publication is atomic.
        unsafe { self.ptr.as_ref() }
    }

    #[inline]
    fn is_leaf(self) -> bool {
        self.header().level == 0
    }

    /// The atomic slots from `offset` (in slots, after the header) on.
    #[inline]
    fn slots<T>(self, offset: usize, len: usize) -> &'t [T] {
        // SAFETY: `alloc_node` allocated `2 * key_cap` (+1 for inner nodes) slots of 8 bytes after the
        // header and initialised them to zero, a valid value of `AtomicU64` and `AtomicPtr`, the only
        // `T`s used; callers stay within those slots. The node lives for `'t` (type invariant).
        unsafe {
            let base = self.ptr.as_ptr().add(1).cast::<AtomicU64>().add(offset);
            core::slice::from_raw_parts(base.cast::<T>(), len)
        }
    }

    #[inline]
    fn keys(self) -> &'t [AtomicU64] {
        self.slots(0, self.header().key_cap as usize)
    }

    /// Value slots of a leaf.
    #[inline]
    fn values(self) -> &'t [AtomicU64] {
        debug_assert!(self.is_leaf());
        let cap = self.header().key_cap as usize;
        self.slots(cap, cap)
    }

    /// Child slots of an inner node.
    #[inline]
    fn children(self) -> &'t [AtomicPtr<Header>] {
        debug_assert!(!self.is_leaf());
        let cap = self.header().key_cap as usize;
        self.slots(cap, cap + 1)
    }

    /// Number of keys, clamped so that racing reads index within the arrays.
    #[inline]
    fn count(self) -> usize {
        // Relaxed: an optimistic read, validated by the caller's version check.
        (self.header().count.load(Ordering::Relaxed) as usize).min(self.header().key_cap as usize)
    }

    #[inline]
    fn set_count(self, _lock: &WriteGuard<'t>, n: usize) {
        // Relaxed: written under the lock; readers validate it (see the module docs on orderings).
        self.header().count.store(n as u64, Ordering::Relaxed);
    }

    #[inline]
    fn key(self, i: usize) -> u64 {
        // Relaxed: an optimistic read, validated by the caller's version check.
        self.keys()[i].load(Ordering::Relaxed)
    }

    /// The child in slot `i`, or `None` if a racing read found the slot not yet written.
    #[inline]
    fn child(self, i: usize) -> Option<NodeRef<'t>> {
        // Acquire: pairs with the Release store that put the pointer into this slot (directly or by
        // moving it from another slot), so the child's initialisation is visible before use.
        let ptr = NonNull::new(self.children()[i].load(Ordering::Acquire))?;
        // SAFETY: child slots only ever hold null or nodes of this tree (see the Acquire above).
        Some(unsafe { NodeRef::new(ptr) })
    }

    /// The right sibling of a leaf.
    #[inline]
    fn next(self) -> Option<NodeRef<'t>> {
        // Acquire: pairs with the Release store in `publish_split_leaf` that linked the sibling.
        let ptr = NonNull::new(self.header().next.load(Ordering::Acquire))?;
        // SAFETY: `next` only ever holds null or leaves of this tree, published as above.
        Some(unsafe { NodeRef::new(ptr) })
    }
}

/// Index of the first of the first `n` keys that is `>= key` (or `> key` when `strict`).
///
/// Branch-free binary search; relaxed loads, validated by the caller's version check.
#[inline]
fn search(keys: &[AtomicU64], n: usize, key: u64, strict: bool) -> usize {
    let keys = &keys[..n];
    let below = |k: u64| if strict { k <= key } else { k < key };
    let mut base = 0;
    let mut size = n;
    while size > 1 {
        let half = size / 2;
        // Relaxed: see the function docs.
        if below(keys[base + half].load(Ordering::Relaxed)) {
            base += half;
        }
        size -= half;
    }
    // Relaxed: see the function docs.
    if size == 1 && below(keys[base].load(Ordering::Relaxed)) {
        base + 1
    } else {
        base
    }
}

/// Asks the CPU to start loading a node's header and its `key_cap` key slots (a no-op off x86_64).
#[inline(always)]
fn prefetch(node: *const Header, key_cap: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let bytes = size_of::<Header>() + key_cap * size_of::<AtomicU64>();
        let base = node.cast::<i8>();
        let mut offset = 0;
        while offset < bytes {
            // SAFETY: `sse`, which `_mm_prefetch` needs, is part of the x86_64 baseline; a
            // prefetch is only a hint, never faults and accesses no memory in the abstract machine.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(base.wrapping_add(offset)) };
            offset += 64;
        }
    }
}

/// Why an optimistic attempt must start again from the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Restart {
    /// A validation or upgrade failed: another thread changed a node this one read.
    Conflict,
    /// This thread split a full inner node on its way down and descends again.
    Split,
}

/// An optimistic read "lock": a node and the unlocked version it had when the guard was taken.
struct ReadGuard<'t> {
    node: NodeRef<'t>,
    version: u64,
}

impl<'t> ReadGuard<'t> {
    /// Records `node`'s version, first waiting (counted in `waits`) while a writer holds it.
    #[inline]
    fn new(node: NodeRef<'t>, waits: &StripedCounter) -> Result<Self, Restart> {
        let mut spins = 0u32;
        loop {
            // Acquire: pairs with the Release unlock in `WriteGuard::drop` that produced this version,
            // so the node's contents as of that unlock are visible to the reads that follow.
            let version = node.header().version.load(Ordering::Acquire);
            if version & (LOCKED | OBSOLETE) == 0 {
                return Ok(ReadGuard { node, version });
            }
            if version & OBSOLETE != 0 {
                return Err(Restart::Conflict);
            }
            if spins == 0 {
                waits.incr();
            }
            backoff(&mut spins);
        }
    }

    /// Succeeds if the node has not changed since the guard was taken, which makes every read of it
    /// made so far part of one consistent state.
    #[inline]
    fn check(&self) -> Result<(), Restart> {
        // Acquire fence: keeps the relaxed reads above before the re-load below; if one of them saw a
        // writer's store, that writer's Release fence (in `upgrade`) synchronises with this fence, so
        // its lock is visible to the re-load. See the module docs.
        fence(Ordering::Acquire);
        // Relaxed: ordered by the fence above.
        if self.node.header().version.load(Ordering::Relaxed) == self.version {
            Ok(())
        } else {
            Err(Restart::Conflict)
        }
    }

    /// Locks the node if it has not changed since the guard was taken.
    #[inline]
    fn upgrade(self) -> Result<WriteGuard<'t>, Restart> {
        // Acquire fence: as in `check`, so that a successful CAS also validates the reads made under
        // this guard, which the writer goes on to rely on.
        fence(Ordering::Acquire);
        // Acquire on success: keeps this thread's accesses to the node after the lock is taken
        // (the Release unlock it pairs with was already acquired by `new`). Relaxed on failure:
        // nothing is read.
        self.node
            .header()
            .version
            .compare_exchange(
                self.version,
                self.version + LOCKED,
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .map_err(|_| Restart::Conflict)?;
        // Release fence: orders the lock before every relaxed store this writer makes next, so a
        // reader that sees one of them also sees the lock when it validates. See the module docs.
        fence(Ordering::Release);
        Ok(WriteGuard { node: self.node })
    }
}

/// An exclusive lock on a node, taken by [`ReadGuard::upgrade`]; unlocks on drop.
struct WriteGuard<'t> {
    node: NodeRef<'t>,
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        // Release: publishes every store made under the lock to readers whose Acquire version load
        // sees the new version. Adding LOCKED to a locked version clears the bit and bumps the counter.
        self.node
            .header()
            .version
            .fetch_add(LOCKED, Ordering::Release);
    }
}

/// Spins briefly, then yields, while a node is locked.
#[inline]
fn backoff(spins: &mut u32) {
    *spins += 1;
    if *spins < 64 {
        core::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

/// Moves the entries in `[from, n)` one slot to the right. The caller holds the leaf's lock.
fn shift_right(leaf: NodeRef<'_>, _lock: &WriteGuard<'_>, from: usize, n: usize) {
    let (keys, values) = (leaf.keys(), leaf.values());
    for i in (from..n).rev() {
        // Relaxed (all four): written under the lock, ordered for readers by the lock's fences.
        keys[i + 1].store(keys[i].load(Ordering::Relaxed), Ordering::Relaxed);
        values[i + 1].store(values[i].load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

/// An optimistic-lock-coupling B+tree from `u64` to `u64` (Leis et al., the design of `BTreeOLC`).
///
/// Readers never write shared memory; writers lock at most two nodes. See the
/// [baselines overview](crate::baselines) for the no-merge, free-on-drop policy.
///
/// # Version words
/// Every node starts with a 64-bit version: bit 0 marks the node *obsolete*, bit 1 *locked*, and the
/// bits above count modifications. A writer locks a node by a CAS from an unlocked version `v` to
/// `v + LOCKED` and unlocks it by adding `LOCKED` again, which clears the lock bit and carries into
/// the counter, so every modification leaves a version no reader has seen before.
///
/// # Protocol as types
/// - `ReadGuard` records a node's unlocked version (waiting while the node is locked). Reads of the
///   node are *optimistic*: relaxed loads that may race with a writer and so may be inconsistent.
///   `ReadGuard::check` validates them: if the version is unchanged, they form a consistent view.
/// - `ReadGuard::upgrade` turns the guard into a `WriteGuard` by the CAS above, which fails if the
///   node changed since it was read; the `WriteGuard` unlocks (bumping the version) on drop.
/// - Any failed validation or upgrade returns `Restart`, and the operation starts again from the
///   root. Restarts are counted ([`OlcBTree::restarts`]).
///
/// # Descent
/// Per level: read the child pointer (an `Acquire` load, so the child may be dereferenced at once:
/// nodes are never freed), record the child's version, then validate the parent. A successful
/// validation proves the child was the right one *when its version was recorded*: a split of the
/// child locks the parent before it changes the child, so a reader that recorded a post-split
/// version of the child (its `Acquire` load synchronising with the child's unlock) finds the
/// parent's version changed. The child is then validated on its own. Writers upgrade only the
/// leaf, and both the leaf and its parent when the leaf must split, always parent first and by CAS
/// (a failed CAS restarts, it never waits), so writers cannot deadlock.
///
/// Following `BTreeOLC`, inner nodes are split *eagerly*: an insert that passes a full inner node
/// locks it and its parent, splits it and restarts, so a leaf split always finds room in its parent
/// and never locks more than two nodes. A leaf split inserts the new key into the proper half before
/// publishing it, so it needs no restart.
///
/// # Search
/// Within a node, a branch-free binary search. As soon as a descent knows a child's address it
/// prefetches the child's header and key slots, so the search's dependent probes find their cache
/// lines already in flight instead of missing one after another (about 25% more single-thread
/// gets on 1M random keys than without).
///
/// # Memory
/// Each node is one allocation: a cache-line header, then `AtomicU64` key slots, then value slots
/// (leaves) or child pointers (inner nodes). All slots are atomics read with `Relaxed` loads, so a read
/// that races with a writer is defined (it may see a stale or newer value, which the version check
/// then rejects). Nodes are never merged, so no node becomes unreachable and none is freed before the
/// tree is dropped: optimistic readers can never touch freed memory, and no epoch pinning is needed.
/// The obsolete bit is part of the format for a future merge policy but never set today; readers
/// still treat it as a conflict, which costs nothing extra (it is tested with the lock bit).
///
/// # Memory orderings, in one place
/// - Seqlock pairing: readers load the version with `Acquire`, read the node with `Relaxed` loads,
///   then issue an `Acquire` fence before re-loading the version (`check`, and `upgrade` before its
///   CAS). A writer issues a `Release` fence right after its locking CAS, before its `Relaxed` stores.
///   If a reader's load saw one of those stores, the writer's fence synchronises with the reader's
///   fence, so the locking CAS happens before the reader's re-load, which therefore sees a different
///   version. The unlock is a `Release` RMW that pairs with the next reader's `Acquire` version load.
/// - Publication: a new node is filled while private and published by a `Release` store of its pointer
///   (root pointer, child slot, leaf `next`); every load of such a pointer is `Acquire`, so the node's
///   initialisation happens before any dereference. Pointers moved between slots under a lock are
///   stored with `Release` too, extending the chain.
///
/// ```
/// use bwtree::baselines::OlcBTree;
/// use bwtree::ConcurrentMap;
///
/// let tree = OlcBTree::with_capacity(4, 4).unwrap();
/// for k in 0..100 {
///     tree.insert(k, k * 10);
/// }
/// assert_eq!(tree.get(&42), Some(420));
/// assert!(tree.height() > 2);
/// ```
pub struct OlcBTree {
    root: CachePadded<AtomicPtr<Header>>,
    leaf_cap: usize,
    inner_cap: usize,
    /// Operations restarted by a failed validation or upgrade.
    restarts: StripedCounter,
    /// Version reads that found the node locked and waited.
    waits: StripedCounter,
}

impl OlcBTree {
    /// Leaf capacity (entries) that [`OlcBTree::new`] uses.
    ///
    /// Larger than the other baselines' [`DEFAULT_LEAF_CAPACITY`](super::DEFAULT_LEAF_CAPACITY):
    /// with prefetched nodes, 128-entry nodes gave about 15% more single-thread gets than 64-entry
    /// ones on 1M random keys, and no fewer inserts (a tree one level lower costs one miss less).
    pub const DEFAULT_LEAF_CAPACITY: usize = 128;

    /// Inner capacity (children) that [`OlcBTree::new`] uses; see
    /// [`OlcBTree::DEFAULT_LEAF_CAPACITY`].
    pub const DEFAULT_INNER_CAPACITY: usize = 128;

    /// An empty tree with [`OlcBTree::DEFAULT_LEAF_CAPACITY`] entries per leaf and
    /// [`OlcBTree::DEFAULT_INNER_CAPACITY`] children per inner node.
    pub fn new() -> Self {
        Self::build(Self::DEFAULT_LEAF_CAPACITY, Self::DEFAULT_INNER_CAPACITY)
    }

    /// An empty tree whose leaves hold at most `leaf` entries (at least 2) and whose inner nodes at
    /// most `inner` children (at least 3), or the first argument out of range.
    pub fn with_capacity(leaf: usize, inner: usize) -> Result<Self, ConfigError> {
        check_capacities(leaf, inner)?;
        Ok(Self::build(leaf, inner))
    }

    fn build(leaf_cap: usize, inner_cap: usize) -> Self {
        // Capacities are at most MAX_PAGE_CAPACITY (2^20), so they fit the header's u32.
        let root = alloc_node(0, leaf_cap as u32);
        OlcBTree {
            root: CachePadded::new(AtomicPtr::new(root.as_ptr())),
            leaf_cap,
            inner_cap,
            restarts: StripedCounter::new(),
            waits: StripedCounter::new(),
        }
    }

    /// Number of levels; 1 while the root is a leaf.
    pub fn height(&self) -> usize {
        self.root_node().header().level as usize + 1
    }

    /// Leaf capacity (entries) and inner capacity (children) this tree was built with.
    pub fn capacities(&self) -> (usize, usize) {
        (self.leaf_cap, self.inner_cap)
    }

    /// How many times an operation restarted from the root because a validation or an upgrade
    /// failed (a concurrent writer changed a node it had read). Eager splits of inner nodes also
    /// restart the insert that did them but are not counted.
    pub fn restarts(&self) -> u64 {
        self.restarts.sum()
    }

    /// How many times a reader found a node locked and waited for the writer.
    pub fn lock_waits(&self) -> u64 {
        self.waits.sum()
    }

    /// Height, node counts and average leaf fill, from a walk of every node.
    ///
    /// The walk reads without validating, so it is exact only when no writer runs concurrently
    /// (it is always memory-safe).
    pub fn shape(&self) -> Shape {
        let root = self.root_node();
        let (mut leaves, mut inner_nodes, mut entries) = (0, 0, 0);
        let mut stack = vec![root];
        while let Some(node) = stack.pop() {
            if node.is_leaf() {
                leaves += 1;
                entries += node.count();
            } else {
                inner_nodes += 1;
                stack.extend((0..=node.count()).filter_map(|i| node.child(i)));
            }
        }
        Shape::new(
            root.header().level as usize + 1,
            leaves,
            inner_nodes,
            entries,
            self.leaf_cap,
        )
    }

    #[inline]
    fn root_node(&self) -> NodeRef<'_> {
        // Acquire: pairs with the Release store in `install_root`, so the root's initialisation is
        // visible.
        let ptr = self.root.load(Ordering::Acquire);
        // SAFETY: the root is never null and always a node of this tree, published as above.
        unsafe { NodeRef::new(NonNull::new_unchecked(ptr)) }
    }

    /// A read guard on the current root.
    #[inline]
    fn lock_root(&self) -> Result<ReadGuard<'_>, Restart> {
        let root = self.root_node();
        let guard = ReadGuard::new(root, &self.waits)?;
        // Relaxed: if the version just read is that of a root that has since been split, its Acquire
        // load synchronised with the splitter's unlock, which follows its store of the new root; so
        // this load sees the new root and the attempt restarts.
        if self.root.load(Ordering::Relaxed) != root.ptr.as_ptr() {
            return Err(Restart::Conflict);
        }
        Ok(guard)
    }

    /// Descends to the leaf covering `key`, validating each parent after reading its child's version.
    #[inline(always)]
    fn find_leaf(&self, key: u64) -> Result<ReadGuard<'_>, Restart> {
        let mut guard = self.lock_root()?;
        while !guard.node.is_leaf() {
            guard = self.step(&guard, key)?;
        }
        Ok(guard)
    }

    /// From an inner node to its child covering `key`: a guard on the child, taken before the parent
    /// is validated.
    #[inline(always)]
    fn step<'t>(&'t self, parent: &ReadGuard<'t>, key: u64) -> Result<ReadGuard<'t>, Restart> {
        let node = parent.node;
        let i = search(node.keys(), node.count(), key, true);
        let child = node.child(i).ok_or(Restart::Conflict)?;
        let key_cap = if node.header().level == 1 {
            self.leaf_cap
        } else {
            self.inner_cap - 1
        };
        prefetch(child.ptr.as_ptr(), key_cap);
        let guard = ReadGuard::new(child, &self.waits)?;
        parent.check()?;
        Ok(guard)
    }

    /// Runs `attempt` until it does not restart, counting conflicts.
    #[inline]
    fn retry<T>(&self, mut attempt: impl FnMut() -> Result<T, Restart>) -> T {
        let mut spins = 0;
        loop {
            match attempt() {
                Ok(result) => return result,
                Err(Restart::Conflict) => {
                    self.restarts.incr();
                    backoff(&mut spins);
                }
                Err(Restart::Split) => {}
            }
        }
    }

    fn try_get(&self, key: u64) -> Result<Option<u64>, Restart> {
        let leaf = self.find_leaf(key)?;
        let node = leaf.node;
        let n = node.count();
        let i = search(node.keys(), n, key, false);
        // Relaxed: an optimistic read, validated by the check below.
        let value = (i < n && node.key(i) == key).then(|| node.values()[i].load(Ordering::Relaxed));
        leaf.check()?;
        Ok(value)
    }

    fn try_remove(&self, key: u64) -> Result<Option<u64>, Restart> {
        let leaf = self.find_leaf(key)?;
        let node = leaf.node;
        let n = node.count();
        let i = search(node.keys(), n, key, false);
        if i >= n || node.key(i) != key {
            leaf.check()?;
            return Ok(None);
        }
        let lock = leaf.upgrade()?;
        let (keys, values) = (node.keys(), node.values());
        // Relaxed: read under the lock.
        let old = values[i].load(Ordering::Relaxed);
        for j in i..n - 1 {
            // Relaxed (all four): written under the lock, ordered for readers by the lock's fences.
            keys[j].store(keys[j + 1].load(Ordering::Relaxed), Ordering::Relaxed);
            values[j].store(values[j + 1].load(Ordering::Relaxed), Ordering::Relaxed);
        }
        node.set_count(&lock, n - 1);
        Ok(Some(old))
    }

    fn try_insert(&self, key: u64, value: u64) -> Result<Option<u64>, Restart> {
        let mut parent: Option<ReadGuard<'_>> = None;
        let mut guard = self.lock_root()?;
        while !guard.node.is_leaf() {
            if guard.node.count() == guard.node.header().key_cap as usize {
                self.split_inner(parent, guard)?;
                return Err(Restart::Split);
            }
            let child = self.step(&guard, key)?;
            parent = Some(guard);
            guard = child;
        }

        let node = guard.node;
        let n = node.count();
        let i = search(node.keys(), n, key, false);
        if i < n && node.key(i) == key {
            let _lock = guard.upgrade()?;
            // Relaxed (both): under the lock; a swap would be a needless RMW.
            let old = node.values()[i].load(Ordering::Relaxed);
            node.values()[i].store(value, Ordering::Relaxed);
            return Ok(Some(old));
        }
        if n < self.leaf_cap {
            let lock = guard.upgrade()?;
            shift_right(node, &lock, i, n);
            // Relaxed (both): under the lock.
            node.keys()[i].store(key, Ordering::Relaxed);
            node.values()[i].store(value, Ordering::Relaxed);
            node.set_count(&lock, n + 1);
            return Ok(None);
        }

        // Full leaf: lock the parent, then the leaf (top-down, by CAS: never waits while holding).
        // The parent was not full when passed, and the upgrade proves it unchanged.
        let parent = parent.map(ReadGuard::upgrade).transpose()?;
        let lock = guard.upgrade()?;
        self.split_leaf_and_insert(parent.as_ref(), &lock, n, i, key, value);
        Ok(None)
    }

    /// Splits the full leaf held by `lock` (with `n` entries), inserting `key` at its position `i`
    /// into the proper half, then publishes the new right leaf.
    fn split_leaf_and_insert(
        &self,
        parent: Option<&WriteGuard<'_>>,
        lock: &WriteGuard<'_>,
        n: usize,
        i: usize,
        key: u64,
        value: u64,
    ) {
        let left = lock.node;
        let mid = n / 2;
        let right_ptr = alloc_node(0, self.leaf_cap as u32);
        // SAFETY: just allocated for this tree; private until published below.
        let right = unsafe { NodeRef::new(right_ptr) };
        let (lk, lv, rk, rv) = (left.keys(), left.values(), right.keys(), right.values());
        for j in mid..n {
            // Relaxed (all four): `right` is private; `left` is read under its lock.
            rk[j - mid].store(lk[j].load(Ordering::Relaxed), Ordering::Relaxed);
            rv[j - mid].store(lv[j].load(Ordering::Relaxed), Ordering::Relaxed);
        }
        // Relaxed: under the lock.
        let separator = lk[mid].load(Ordering::Relaxed);
        // Relaxed (header stores below): `right` is private until its Release publication.
        right
            .header()
            .count
            .store((n - mid) as u64, Ordering::Relaxed);
        left.set_count(lock, mid);
        // `key` is absent and `lk[i]` (if any) the first key above it, so it belongs left iff i <= mid.
        if i <= mid {
            shift_right(left, lock, i, mid);
            // Relaxed (both): under the lock.
            lk[i].store(key, Ordering::Relaxed);
            lv[i].store(value, Ordering::Relaxed);
            left.set_count(lock, mid + 1);
        } else {
            let r = i - mid;
            for j in (r..n - mid).rev() {
                // Relaxed (all four): `right` is private.
                rk[j + 1].store(rk[j].load(Ordering::Relaxed), Ordering::Relaxed);
                rv[j + 1].store(rv[j].load(Ordering::Relaxed), Ordering::Relaxed);
            }
            // Relaxed (all three): `right` is private.
            rk[r].store(key, Ordering::Relaxed);
            rv[r].store(value, Ordering::Relaxed);
            right
                .header()
                .count
                .store((n - mid + 1) as u64, Ordering::Relaxed);
        }
        // Relaxed: `left.next` is only written under left's lock, which this thread holds.
        let old_next = left.header().next.load(Ordering::Relaxed);
        // Relaxed: `right` is private.
        right.header().next.store(old_next, Ordering::Relaxed);
        // Release: publishes `right` (initialised above) to scans that load `next` with Acquire.
        left.header()
            .next
            .store(right_ptr.as_ptr(), Ordering::Release);
        self.publish_split(parent, left, separator, right_ptr);
    }

    /// Splits the full inner node `guard` (taking its parent's lock too, then its own), publishing the
    /// new right half; the caller restarts.
    fn split_inner(
        &self,
        parent: Option<ReadGuard<'_>>,
        guard: ReadGuard<'_>,
    ) -> Result<(), Restart> {
        let parent = parent.map(ReadGuard::upgrade).transpose()?;
        let lock = guard.upgrade()?;
        let left = lock.node;
        let header = left.header();
        let n = header.key_cap as usize;
        // Keys k0..k(n-1), children c0..cn: the left keeps k0..k(mid-1) and c0..c(mid), k(mid) moves
        // up, the right takes k(mid+1).. and c(mid+1)...
        let mid = n / 2;
        let right_ptr = alloc_node(header.level, header.key_cap);
        // SAFETY: just allocated for this tree; private until published below.
        let right = unsafe { NodeRef::new(right_ptr) };
        let (lk, lc, rk, rc) = (left.keys(), left.children(), right.keys(), right.children());
        for j in mid + 1..n {
            // Relaxed (both): `left` is read under its lock; `right` is private.
            rk[j - mid - 1].store(lk[j].load(Ordering::Relaxed), Ordering::Relaxed);
        }
        for j in mid + 1..=n {
            // Relaxed load: under the lock. Release store: keeps the publication chain of the child
            // (see `NodeRef::child`).
            rc[j - mid - 1].store(lc[j].load(Ordering::Relaxed), Ordering::Release);
        }
        // Relaxed: `right` is private until its Release publication.
        right
            .header()
            .count
            .store((n - mid - 1) as u64, Ordering::Relaxed);
        // Relaxed: under the lock.
        let separator = lk[mid].load(Ordering::Relaxed);
        left.set_count(&lock, mid);
        self.publish_split(parent.as_ref(), left, separator, right_ptr);
        Ok(())
    }

    /// Makes `right`, split off `left` with `separator` as its first key, reachable: in the locked
    /// `parent`, which has room, or in a new root when `left` is the root.
    fn publish_split(
        &self,
        parent: Option<&WriteGuard<'_>>,
        left: NodeRef<'_>,
        separator: u64,
        right: NonNull<Header>,
    ) {
        let Some(parent) = parent else {
            let root_ptr = alloc_node(left.header().level + 1, (self.inner_cap - 1) as u32);
            // SAFETY: just allocated for this tree; private until the Release store below.
            let root = unsafe { NodeRef::new(root_ptr) };
            // Relaxed (all four): `root` is private; the Release store of the root pointer publishes it.
            root.keys()[0].store(separator, Ordering::Relaxed);
            root.children()[0].store(left.ptr.as_ptr(), Ordering::Relaxed);
            root.children()[1].store(right.as_ptr(), Ordering::Relaxed);
            root.header().count.store(1, Ordering::Relaxed);
            // Release: pairs with the Acquire load in `root_node`; publishes the new root and, through
            // it, `right`. Done while the old root is locked (see `lock_root`).
            self.root.store(root_ptr.as_ptr(), Ordering::Release);
            return;
        };
        let node = parent.node;
        let n = node.count();
        debug_assert!(
            n < node.header().key_cap as usize,
            "inner nodes are split eagerly"
        );
        let i = search(node.keys(), n, separator, true);
        let (keys, children) = (node.keys(), node.children());
        for j in (i..n).rev() {
            // Relaxed: moved under the lock.
            keys[j + 1].store(keys[j].load(Ordering::Relaxed), Ordering::Relaxed);
        }
        for j in (i + 1..=n).rev() {
            // Relaxed load under the lock; Release store keeps each child's publication chain.
            children[j + 1].store(children[j].load(Ordering::Relaxed), Ordering::Release);
        }
        // Relaxed: under the lock.
        keys[i].store(separator, Ordering::Relaxed);
        // Release: publishes `right` to readers that load the slot with Acquire (`NodeRef::child`).
        children[i + 1].store(right.as_ptr(), Ordering::Release);
        node.set_count(parent, n + 1);
    }

    /// One attempt of a scan, resuming after `cursor`; entries taken from validated leaves stay in
    /// `out` and advance `cursor` and `taken`, so a restart continues where the last one stopped.
    fn try_scan(
        &self,
        cursor: &mut Bound<u64>,
        hi: Bound<&u64>,
        limit: usize,
        taken: &mut usize,
        out: &mut Vec<(u64, u64)>,
    ) -> Result<(), Restart> {
        let start = match *cursor {
            Bound::Included(k) | Bound::Excluded(k) => k,
            Bound::Unbounded => 0,
        };
        let mut leaf = self.find_leaf(start)?;
        loop {
            let node = leaf.node;
            let mark = out.len();
            let n = node.count();
            let mut i = match *cursor {
                Bound::Included(k) => search(node.keys(), n, k, false),
                Bound::Excluded(k) => search(node.keys(), n, k, true),
                Bound::Unbounded => 0,
            };
            let mut done = false;
            let (keys, values) = (node.keys(), node.values());
            while i < n {
                // Relaxed (both): optimistic reads, validated by the check below.
                let k = keys[i].load(Ordering::Relaxed);
                let v = values[i].load(Ordering::Relaxed);
                if !below_hi(&k, hi) {
                    done = true;
                    break;
                }
                out.push((k, v));
                i += 1;
                if *taken + (out.len() - mark) == limit {
                    done = true;
                    break;
                }
            }
            let next = node.next();
            if let Err(restart) = leaf.check() {
                out.truncate(mark);
                return Err(restart);
            }
            *taken += out.len() - mark;
            if let Some(&(k, _)) = out[mark..].last() {
                *cursor = Bound::Excluded(k);
            }
            // No merges: a leaf's keys only move right, so everything above `cursor` that was in
            // this leaf's range is here or in a leaf reachable through `next`.
            match next {
                Some(next) if !done => leaf = ReadGuard::new(next, &self.waits)?,
                _ => return Ok(()),
            }
        }
    }
}

impl Default for OlcBTree {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for OlcBTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OlcBTree")
            .field("leaf_capacity", &self.leaf_cap)
            .field("inner_capacity", &self.inner_cap)
            .field("height", &self.height())
            .field("restarts", &self.restarts())
            .field("lock_waits", &self.lock_waits())
            .finish_non_exhaustive()
    }
}

impl Drop for OlcBTree {
    fn drop(&mut self) {
        let mut stack = vec![self.root_node()];
        while let Some(node) = stack.pop() {
            if !node.is_leaf() {
                stack.extend((0..=node.count()).filter_map(|i| node.child(i)));
            }
            let header = node.header();
            let layout = node_layout(header.level, header.key_cap);
            // SAFETY: `&mut self` excludes all other access; every node is reachable from exactly one
            // child slot among the first `count + 1` of its parent (or is the root), so each is freed
            // once, with the layout it was allocated with, and not touched afterwards.
            unsafe { dealloc(node.ptr.as_ptr().cast(), layout) };
        }
    }
}

impl ConcurrentMap<u64, u64> for OlcBTree {
    fn stats(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("restarts", self.restarts()),
            ("lock_waits", self.lock_waits()),
        ]
    }

    fn tree_shape(&self) -> Option<TreeShape> {
        Some(OlcBTree::shape(self).summary())
    }

    fn name(&self) -> &'static str {
        "olc-btree"
    }

    fn insert(&self, key: u64, value: u64) -> Option<u64> {
        self.retry(|| self.try_insert(key, value))
    }

    fn get(&self, key: &u64) -> Option<u64> {
        self.retry(|| self.try_get(*key))
    }

    fn remove(&self, key: &u64) -> Option<u64> {
        self.retry(|| self.try_remove(*key))
    }

    fn scan(
        &self,
        lo: Bound<&u64>,
        hi: Bound<&u64>,
        limit: usize,
        out: &mut Vec<(u64, u64)>,
    ) -> usize {
        if limit == 0 || is_empty_range(lo, hi) {
            return 0;
        }
        let mut cursor = lo.cloned();
        let mut taken = 0;
        self.retry(|| self.try_scan(&mut cursor, hi, limit, &mut taken, out));
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(tree: &OlcBTree) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        tree.scan(Bound::Unbounded, Bound::Unbounded, usize::MAX, &mut out);
        out
    }

    #[test]
    fn rejects_bad_capacities() {
        assert!(OlcBTree::with_capacity(1, 4).is_err());
        assert!(OlcBTree::with_capacity(4, 2).is_err());
        assert!(OlcBTree::with_capacity(2, 3).is_ok());
    }

    #[test]
    fn search_matches_partition_point() {
        let keys: Vec<AtomicU64> = [1u64, 3, 3, 5, 9].into_iter().map(AtomicU64::new).collect();
        let plain = [1u64, 3, 3, 5, 9];
        for n in 0..=5 {
            for key in 0..=10 {
                assert_eq!(
                    search(&keys, n, key, false),
                    plain[..n].partition_point(|&k| k < key)
                );
                assert_eq!(
                    search(&keys, n, key, true),
                    plain[..n].partition_point(|&k| k <= key)
                );
            }
        }
    }

    #[test]
    fn version_word_protocol() {
        let tree = OlcBTree::new();
        let root = tree.root_node();
        let read = ReadGuard::new(root, &tree.waits).unwrap();
        assert_eq!(read.version, 0);
        let stale = ReadGuard {
            node: root,
            version: 0,
        };
        let lock = read.upgrade().unwrap();
        assert_eq!(root.header().version.load(Ordering::Relaxed), LOCKED);
        // While locked, a guard taken earlier neither validates nor upgrades.
        assert_eq!(stale.check(), Err(Restart::Conflict));
        drop(lock);
        assert_eq!(root.header().version.load(Ordering::Relaxed), 4);
        assert_eq!(stale.check(), Err(Restart::Conflict));
        assert!(stale.upgrade().is_err());
        let fresh = ReadGuard::new(root, &tree.waits).unwrap();
        assert_eq!(fresh.check(), Ok(()));
        assert_eq!(tree.lock_waits(), 0);
    }

    #[test]
    fn a_locked_node_makes_readers_wait_then_restart_nothing() {
        let tree = OlcBTree::with_capacity(4, 4).unwrap();
        tree.insert(1, 1);
        let lock = ReadGuard::new(tree.root_node(), &tree.waits)
            .unwrap()
            .upgrade()
            .unwrap();
        std::thread::scope(|s| {
            let reader = s.spawn(|| tree.get(&1));
            while tree.lock_waits() == 0 {
                std::thread::yield_now();
            }
            drop(lock);
            assert_eq!(reader.join().unwrap(), Some(1));
        });
        // The reader waited before recording a version, so it had nothing to restart.
        assert_eq!(tree.restarts(), 0);
    }

    #[test]
    fn leaf_split_puts_the_new_key_in_either_half() {
        for new_key in [0u64, 15, 25, 35, 45, 100] {
            let tree = OlcBTree::with_capacity(4, 4).unwrap();
            for k in [10u64, 20, 30, 40] {
                tree.insert(k, k);
            }
            assert_eq!(tree.height(), 1);
            assert_eq!(tree.insert(new_key, new_key), None);
            assert_eq!(tree.height(), 2, "key {new_key}");
            let mut expected: Vec<u64> = vec![10, 20, 30, 40, new_key];
            expected.sort_unstable();
            assert_eq!(
                all(&tree),
                expected.iter().map(|&k| (k, k)).collect::<Vec<_>>()
            );
            for k in expected {
                assert_eq!(tree.get(&k), Some(k));
            }
        }
    }

    #[test]
    fn minimal_capacities_split_up_to_many_levels() {
        for descending in [false, true] {
            let tree = OlcBTree::with_capacity(2, 3).unwrap();
            let keys: Vec<u64> = if descending {
                (0..500).rev().collect()
            } else {
                (0..500).map(|k| k * 7919 % 500).collect()
            };
            for &k in &keys {
                assert_eq!(tree.insert(k, k + 1), None);
            }
            let shape = tree.shape();
            assert!(shape.height >= 6, "{shape:?}");
            assert_eq!(shape.entries, 500);
            for k in 0..500 {
                assert_eq!(tree.get(&k), Some(k + 1));
            }
            assert_eq!(all(&tree), (0..500).map(|k| (k, k + 1)).collect::<Vec<_>>());
        }
    }

    #[test]
    fn removal_keeps_empty_leaves_and_they_still_route() {
        let tree = OlcBTree::with_capacity(4, 4).unwrap();
        for k in 0..100u64 {
            tree.insert(k, k);
        }
        let before = tree.shape();
        for k in 0..100u64 {
            assert_eq!(tree.remove(&k), Some(k));
            assert_eq!(tree.remove(&k), None);
        }
        let after = tree.shape();
        assert_eq!((after.leaves, after.entries), (before.leaves, 0));
        assert!(all(&tree).is_empty());
        for k in (0..100u64).rev() {
            tree.insert(k, k * 2);
        }
        assert_eq!(all(&tree), (0..100).map(|k| (k, k * 2)).collect::<Vec<_>>());
    }

    /// Writers on both halves of the key space while scanners check order and bounds; afterwards every
    /// key is present, and (on two threads that really interleave) some operation restarted.
    #[test]
    fn concurrent_splits_and_scans_stay_ordered() {
        let tree = OlcBTree::with_capacity(3, 3).unwrap();
        std::thread::scope(|s| {
            for t in 0..2u64 {
                let tree = &tree;
                s.spawn(move || {
                    for i in 0..20_000u64 {
                        tree.insert(i * 2 + t, i);
                    }
                });
            }
            s.spawn(|| {
                for _ in 0..500 {
                    let mut out = Vec::new();
                    tree.scan(
                        Bound::Excluded(&100),
                        Bound::Included(&30_000),
                        64,
                        &mut out,
                    );
                    assert!(out.len() <= 64);
                    assert!(out.windows(2).all(|w| w[0].0 < w[1].0), "{out:?}");
                    assert!(out.iter().all(|&(k, _)| k > 100 && k <= 30_000));
                }
            });
        });
        assert_eq!(tree.shape().entries, 40_000);
        assert_eq!(all(&tree), {
            let mut v: Vec<(u64, u64)> = (0..40_000).map(|k| (k, k / 2)).collect();
            v.sort_unstable();
            v
        });
    }
}
