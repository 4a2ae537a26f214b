//! [`LockCouplingBTree`]: a B+tree with a reader/writer latch per node, acquired by lock coupling.
//!
//! The protocol is documented on the type, [`LockCouplingBTree`].

use core::fmt;
use core::marker::PhantomData;
use core::mem;
use core::ops::Bound;
use core::ptr::NonNull;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::{
    DEFAULT_INNER_CAPACITY, DEFAULT_LEAF_CAPACITY, Shape, StripedCounter, below_hi,
    check_capacities, is_empty_range, read_lock, write_lock,
};
use crate::{ConcurrentMap, ConfigError, TreeShape};

/// A pointer to a latched node owned by a [`LockCouplingBTree`].
///
/// Nodes are allocated by [`Ptr::alloc`] and freed only by the tree's `Drop`; see
/// [`LockCouplingBTree::latch`].
struct Ptr<T>(NonNull<RwLock<T>>);

impl<T> Clone for Ptr<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Ptr<T> {}

impl<T> Ptr<T> {
    fn alloc(node: T) -> Self {
        Ptr(NonNull::from(Box::leak(Box::new(RwLock::new(node)))))
    }

    /// Takes the node back as the `Box` that [`Ptr::alloc`] leaked.
    ///
    /// # Safety
    /// The caller has exclusive access to the tree, and neither `self` nor a copy of it is used again.
    unsafe fn into_node(self) -> T {
        // SAFETY: `self.0` came from `Box::leak` in `alloc` and, per the contract, is reclaimed once
        // while no one else can access it.
        let node = unsafe { Box::from_raw(self.0.as_ptr()) };
        node.into_inner().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A leaf: sorted keys, their values, and the right sibling.
struct Leaf<K, V> {
    keys: Vec<K>,
    values: Vec<V>,
    next: Option<Ptr<Leaf<K, V>>>,
}

/// An inner node: `children[i]` holds the keys in `[keys[i - 1], keys[i])`, with the missing ends
/// unbounded.
struct Inner<K, V> {
    keys: Vec<K>,
    children: Children<K, V>,
}

/// The children of an inner node; all children of one node are on the same level.
enum Children<K, V> {
    Leaves(Vec<Ptr<Leaf<K, V>>>),
    Inners(Vec<Ptr<Inner<K, V>>>),
}

/// A node of either kind.
enum NodePtr<K, V> {
    Leaf(Ptr<Leaf<K, V>>),
    Inner(Ptr<Inner<K, V>>),
}

impl<K, V> Clone for NodePtr<K, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K, V> Copy for NodePtr<K, V> {}

impl<K, V> Children<K, V> {
    fn len(&self) -> usize {
        match self {
            Children::Leaves(c) => c.len(),
            Children::Inners(c) => c.len(),
        }
    }

    fn get(&self, i: usize) -> NodePtr<K, V> {
        match self {
            Children::Leaves(c) => NodePtr::Leaf(c[i]),
            Children::Inners(c) => NodePtr::Inner(c[i]),
        }
    }

    /// Inserts `child`, which a split of a node on this level produced, at position `i`.
    fn insert(&mut self, i: usize, child: NodePtr<K, V>) {
        match (self, child) {
            (Children::Leaves(c), NodePtr::Leaf(p)) => c.insert(i, p),
            (Children::Inners(c), NodePtr::Inner(p)) => c.insert(i, p),
            _ => unreachable!("a split's new node is on the same level as its siblings"),
        }
    }

    /// Moves the children from position `at` on into a new list.
    fn split_off(&mut self, at: usize, capacity: usize) -> Self {
        fn tail<T>(v: &mut Vec<T>, at: usize, capacity: usize) -> Vec<T> {
            let mut right = Vec::with_capacity(capacity);
            right.extend(v.drain(at..));
            right
        }
        match self {
            Children::Leaves(c) => Children::Leaves(tail(c, at, capacity)),
            Children::Inners(c) => Children::Inners(tail(c, at, capacity)),
        }
    }
}

/// The root holder: what the root latch protects.
struct Root<K, V> {
    node: NodePtr<K, V>,
    /// Number of levels; 1 while the root is a leaf.
    height: usize,
}

/// Index of the child of an inner node with separators `keys` that covers `key`.
#[inline]
fn child_index<K: Ord>(keys: &[K], key: &K) -> usize {
    keys.partition_point(|sep| sep <= key)
}

/// A B+tree whose nodes each carry a reader/writer latch, taken top-down by lock coupling.
///
/// Leaves are linked left to right for scans.
///
/// # Protocol
/// - **Root holder.** The root pointer and the height live behind their own latch, the "parent" of
///   the root: every descent starts by taking it, and a root split replaces the root under it.
/// - **Readers** (`get`, the descent of `scan`) crab down with shared latches: latch the child, then
///   release the parent, so at most two are held.
/// - **Writers, first pass** (`insert`, `remove`): crab down the inner nodes with shared latches and
///   take the leaf exclusively. If the change fits in the leaf (an overwrite, an insert into a leaf
///   with room, any removal) it is done there. This is Bayer and Schkolnick's optimistic descent: most
///   writes never latch an inner node exclusively.
/// - **Writers, second pass** (an insert into a full leaf): start again from the root holder taking
///   exclusive latches. Whenever the node just latched is *safe*, meaning it has room for one more
///   entry and so will not split, every latch above it is released. The held suffix of the path then
///   absorbs the splits: the leaf splits, each held ancestor takes the separator and splits in turn if
///   it overflows, and a split of the root installs a new root under the still-held root holder.
/// - **Scans** start at the leaf of the lower bound and walk the leaf chain hand over hand: latch the
///   next leaf shared, then release the current one.
///
/// # Why it cannot deadlock
/// Latches are only ever *waited for* in one global order: the root holder, then inner nodes from
/// the top level down, then leaves from left to right. Descents wait only for a child of a node they
/// hold; scans only for the right sibling of the leaf they hold; a writer holding exclusive latches
/// waits for nothing else once it has reached its leaf (splits build their new right node privately
/// and publish it under latches already held). A cycle of waits would need someone to wait against
/// this order.
///
/// # Removal policy
/// No merges or redistribution: a removal only deletes the entry from its leaf, so leaves may become
/// empty and stay in the tree (see the [module docs](crate::baselines)). Every node is therefore always safe for
/// a removal, which never needs the second pass, and no node is freed before the tree is dropped.
///
/// # Panics in user code
/// `Ord` and `Clone` of keys run only before a node is modified (searches, and the separator's clone
/// before a split moves anything), so a panicking implementation leaves every node valid. The latches
/// it poisons are used as if not poisoned.
///
/// ```
/// use bwtree::baselines::LockCouplingBTree;
/// use bwtree::ConcurrentMap;
///
/// let tree = LockCouplingBTree::with_capacity(4, 4).unwrap();
/// for k in 0..100u64 {
///     tree.insert(k, k * 10);
/// }
/// assert_eq!(tree.get(&42), Some(420));
/// assert!(tree.height() > 2);
/// ```
pub struct LockCouplingBTree<K, V> {
    root: RwLock<Root<K, V>>,
    leaf_cap: usize,
    inner_cap: usize,
    /// Latch acquisitions that had to wait.
    latch_waits: StripedCounter,
    /// Inserts that needed the second, exclusive pass.
    pessimistic: StripedCounter,
    /// The tree owns its keys and values (through the nodes its raw pointers lead to).
    _owns: PhantomData<(K, V)>,
}

// SAFETY: the tree owns every node, as a `Box` would; nodes are reached only through latches, so
// sharing the tree shares `K` and `V` by reference (`Sync`) and moves them across threads through
// `insert`/`remove` (`Send`): the same requirements as `RwLock<BTreeMap<K, V>>`.
unsafe impl<K: Send + Sync, V: Send + Sync> Send for LockCouplingBTree<K, V> {}
// SAFETY: as for `Send` above.
unsafe impl<K: Send + Sync, V: Send + Sync> Sync for LockCouplingBTree<K, V> {}

impl<K: Ord + Clone, V: Clone> LockCouplingBTree<K, V> {
    /// An empty tree with [`DEFAULT_LEAF_CAPACITY`] entries per leaf
    /// and [`DEFAULT_INNER_CAPACITY`] children per inner node.
    pub fn new() -> Self {
        Self::build(DEFAULT_LEAF_CAPACITY, DEFAULT_INNER_CAPACITY)
    }

    /// An empty tree whose leaves hold at most `leaf` entries (at least 2) and whose inner nodes at
    /// most `inner` children (at least 3), or the first argument out of range.
    pub fn with_capacity(leaf: usize, inner: usize) -> Result<Self, ConfigError> {
        check_capacities(leaf, inner)?;
        Ok(Self::build(leaf, inner))
    }

    fn build(leaf_cap: usize, inner_cap: usize) -> Self {
        let leaf = Ptr::alloc(Leaf {
            keys: Vec::with_capacity(leaf_cap + 1),
            values: Vec::with_capacity(leaf_cap + 1),
            next: None,
        });
        LockCouplingBTree {
            root: RwLock::new(Root {
                node: NodePtr::Leaf(leaf),
                height: 1,
            }),
            leaf_cap,
            inner_cap,
            latch_waits: StripedCounter::new(),
            pessimistic: StripedCounter::new(),
            _owns: PhantomData,
        }
    }

    /// Number of levels; 1 while the root is a leaf.
    pub fn height(&self) -> usize {
        self.read_root().height
    }

    /// Leaf capacity (entries) and inner capacity (children) this tree was built with.
    pub fn capacities(&self) -> (usize, usize) {
        (self.leaf_cap, self.inner_cap)
    }

    /// Height, node counts and average leaf fill, from a walk that latches one node at a time.
    ///
    /// Exact when no writer runs concurrently; otherwise each node is counted as it was when visited.
    pub fn shape(&self) -> Shape {
        let (root, height) = {
            let root = self.read_root();
            (root.node, root.height)
        };
        let (mut leaves, mut inner_nodes, mut entries) = (0, 0, 0);
        let mut stack = vec![root];
        while let Some(node) = stack.pop() {
            match node {
                NodePtr::Leaf(p) => {
                    leaves += 1;
                    entries += self.shared(p).keys.len();
                }
                NodePtr::Inner(p) => {
                    inner_nodes += 1;
                    let inner = self.shared(p);
                    stack.extend((0..inner.children.len()).map(|i| inner.children.get(i)));
                }
            }
        }
        Shape::new(height, leaves, inner_nodes, entries, self.leaf_cap)
    }

    /// How many latch acquisitions (root holder included) found the latch held in a conflicting mode
    /// and had to wait. Counted only on the waiting path.
    pub fn latch_waits(&self) -> u64 {
        self.latch_waits.sum()
    }

    /// How many inserts found their leaf full and took the second, exclusive pass (one per leaf
    /// split, plus races where the leaf filled up between the passes).
    pub fn pessimistic_descents(&self) -> u64 {
        self.pessimistic.sum()
    }

    /// The latch of the node `p` leads to.
    fn latch<T>(&self, p: Ptr<T>) -> &RwLock<T> {
        // SAFETY: every `Ptr` stored in the tree comes from `Ptr::alloc` and is freed only by `Drop`,
        // which needs `&mut self`; the returned reference borrows `self`, so it cannot outlive the node.
        unsafe { p.0.as_ref() }
    }

    fn shared<T>(&self, p: Ptr<T>) -> RwLockReadGuard<'_, T> {
        read_lock(self.latch(p), &self.latch_waits)
    }

    fn exclusive<T>(&self, p: Ptr<T>) -> RwLockWriteGuard<'_, T> {
        write_lock(self.latch(p), &self.latch_waits)
    }

    fn read_root(&self) -> RwLockReadGuard<'_, Root<K, V>> {
        read_lock(&self.root, &self.latch_waits)
    }

    /// Crabs down with shared latches to the leaf covering `key` (the leftmost leaf for `None`) and
    /// returns what `take_leaf` makes of that leaf's latch, called while its parent is still held.
    fn descend<'a, G>(
        &'a self,
        key: Option<&K>,
        take_leaf: impl FnOnce(&'a RwLock<Leaf<K, V>>) -> G,
    ) -> G {
        let root = self.read_root();
        let mut inner = match root.node {
            NodePtr::Leaf(p) => return take_leaf(self.latch(p)),
            NodePtr::Inner(p) => self.shared(p),
        };
        drop(root);
        loop {
            let i = key.map_or(0, |k| child_index(&inner.keys, k));
            match &inner.children {
                Children::Inners(c) => {
                    let child = self.shared(c[i]);
                    inner = child;
                }
                Children::Leaves(c) => return take_leaf(self.latch(c[i])),
            }
        }
    }

    /// Second insert pass: exclusive crabbing with safe-node release, then splits up the held path.
    fn insert_pessimistic(&self, key: K, value: V) -> Option<V> {
        let root_guard = write_lock(&self.root, &self.latch_waits);
        let mut node = root_guard.node;
        // The root holder while the root may still split; `None` once a safe node was latched.
        let mut root = Some(root_guard);
        // Exclusively latched inner nodes below the deepest safe one, each with the index of the
        // child the descent took.
        let mut path: Vec<(RwLockWriteGuard<'_, Inner<K, V>>, usize)> = Vec::new();
        let mut leaf = loop {
            match node {
                NodePtr::Inner(p) => {
                    let inner = self.exclusive(p);
                    if inner.children.len() < self.inner_cap {
                        // Safe: a split below adds at most one child, so nothing above changes.
                        root = None;
                        path.clear();
                    }
                    let i = child_index(&inner.keys, &key);
                    node = inner.children.get(i);
                    path.push((inner, i));
                }
                NodePtr::Leaf(p) => {
                    let leaf = self.exclusive(p);
                    if leaf.keys.len() < self.leaf_cap {
                        root = None;
                        path.clear();
                    }
                    break leaf;
                }
            }
        };

        let i = match leaf.keys.binary_search(&key) {
            Ok(i) => return Some(mem::replace(&mut leaf.values[i], value)),
            Err(i) => i,
        };
        leaf.keys.insert(i, key);
        leaf.values.insert(i, value);
        if leaf.keys.len() <= self.leaf_cap {
            return None;
        }

        let mut split = Some(self.split_leaf(&mut leaf));
        while let Some((separator, right)) = split.take() {
            match path.pop() {
                Some((mut parent, i)) => {
                    parent.keys.insert(i, separator);
                    parent.children.insert(i + 1, right);
                    if parent.children.len() > self.inner_cap {
                        split = Some(self.split_inner(&mut parent));
                    }
                }
                None => {
                    let Some(root) = root.as_mut() else {
                        unreachable!(
                            "only a path with no safe node splits the root, and it keeps the root holder"
                        )
                    };
                    let children = match (root.node, right) {
                        (NodePtr::Leaf(l), NodePtr::Leaf(r)) => Children::Leaves(vec![l, r]),
                        (NodePtr::Inner(l), NodePtr::Inner(r)) => Children::Inners(vec![l, r]),
                        _ => {
                            unreachable!("a split's new node is on the same level as the old root")
                        }
                    };
                    let mut keys = Vec::with_capacity(self.inner_cap);
                    keys.push(separator);
                    root.node = NodePtr::Inner(Ptr::alloc(Inner { keys, children }));
                    root.height += 1;
                }
            }
        }
        None
    }

    /// Moves the upper half of an overfull `leaf` into a new right sibling; returns the separator (the
    /// sibling's first key) and the sibling, which the caller must insert into the parent.
    fn split_leaf(&self, leaf: &mut Leaf<K, V>) -> (K, NodePtr<K, V>) {
        let mid = leaf.keys.len() / 2;
        // Clone first: a panicking `Clone` then leaves the leaf untouched.
        let separator = leaf.keys[mid].clone();
        let mut keys = Vec::with_capacity(self.leaf_cap + 1);
        keys.extend(leaf.keys.drain(mid..));
        let mut values = Vec::with_capacity(self.leaf_cap + 1);
        values.extend(leaf.values.drain(mid..));
        let right = Ptr::alloc(Leaf {
            keys,
            values,
            next: leaf.next,
        });
        leaf.next = Some(right);
        (separator, NodePtr::Leaf(right))
    }

    /// Moves the upper half of an overfull inner node into a new right sibling; returns the middle key,
    /// which moves up as the separator, and the sibling.
    fn split_inner(&self, inner: &mut Inner<K, V>) -> (K, NodePtr<K, V>) {
        // Keys k0..k(n-1), children c0..cn: the left keeps k0..k(mid-1) and c0..c(mid), k(mid) moves
        // up, the right takes k(mid+1).. and c(mid+1)...
        let mid = inner.keys.len() / 2;
        let mut keys = Vec::with_capacity(self.inner_cap);
        keys.extend(inner.keys.drain(mid + 1..));
        let Some(separator) = inner.keys.pop() else {
            unreachable!("an overfull inner node has at least two keys")
        };
        let children = inner.children.split_off(mid + 1, self.inner_cap + 1);
        (
            separator,
            NodePtr::Inner(Ptr::alloc(Inner { keys, children })),
        )
    }
}

impl<K: Ord + Clone, V: Clone> Default for LockCouplingBTree<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Ord + Clone, V: Clone> fmt::Debug for LockCouplingBTree<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockCouplingBTree")
            .field("leaf_capacity", &self.leaf_cap)
            .field("inner_capacity", &self.inner_cap)
            .field("height", &self.height())
            .field("latch_waits", &self.latch_waits())
            .field("pessimistic_descents", &self.pessimistic_descents())
            .finish_non_exhaustive()
    }
}

impl<K, V> Drop for LockCouplingBTree<K, V> {
    fn drop(&mut self) {
        let root = self.root.get_mut().unwrap_or_else(PoisonError::into_inner);
        let mut stack = vec![root.node];
        while let Some(node) = stack.pop() {
            match node {
                // SAFETY: `&mut self` excludes every other access, and each node is reachable from
                // exactly one parent slot (or the root), so each is taken back once.
                NodePtr::Leaf(p) => drop(unsafe { p.into_node() }),
                NodePtr::Inner(p) => {
                    // SAFETY: as for leaves.
                    let inner = unsafe { p.into_node() };
                    match inner.children {
                        Children::Leaves(c) => stack.extend(c.into_iter().map(NodePtr::Leaf)),
                        Children::Inners(c) => stack.extend(c.into_iter().map(NodePtr::Inner)),
                    }
                }
            }
        }
    }
}

impl<K, V> ConcurrentMap<K, V> for LockCouplingBTree<K, V>
where
    K: Ord + Clone + Send + Sync,
    V: Clone + Send + Sync,
{
    fn stats(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("latch_waits", self.latch_waits()),
            ("pessimistic_descents", self.pessimistic_descents()),
        ]
    }

    fn tree_shape(&self) -> Option<TreeShape> {
        Some(LockCouplingBTree::shape(self).summary())
    }

    fn name(&self) -> &'static str {
        "lock-coupling-btree"
    }

    fn insert(&self, key: K, value: V) -> Option<V> {
        {
            let mut leaf = self.descend(Some(&key), |l| write_lock(l, &self.latch_waits));
            match leaf.keys.binary_search(&key) {
                Ok(i) => return Some(mem::replace(&mut leaf.values[i], value)),
                Err(i) if leaf.keys.len() < self.leaf_cap => {
                    leaf.keys.insert(i, key);
                    leaf.values.insert(i, value);
                    return None;
                }
                // Full: the insert would split the leaf, and the parent is no longer latched.
                Err(_) => {}
            }
        }
        self.pessimistic.incr();
        self.insert_pessimistic(key, value)
    }

    fn get(&self, key: &K) -> Option<V> {
        let leaf = self.descend(Some(key), |l| read_lock(l, &self.latch_waits));
        let i = leaf.keys.binary_search(key).ok()?;
        Some(leaf.values[i].clone())
    }

    fn remove(&self, key: &K) -> Option<V> {
        // Without merges every node is safe for a removal: only the leaf is latched exclusively.
        let mut leaf = self.descend(Some(key), |l| write_lock(l, &self.latch_waits));
        let i = leaf.keys.binary_search(key).ok()?;
        leaf.keys.remove(i);
        Some(leaf.values.remove(i))
    }

    fn scan(&self, lo: Bound<&K>, hi: Bound<&K>, limit: usize, out: &mut Vec<(K, V)>) -> usize {
        if limit == 0 || is_empty_range(lo, hi) {
            return 0;
        }
        let start = match lo {
            Bound::Included(k) | Bound::Excluded(k) => Some(k),
            Bound::Unbounded => None,
        };
        let mut leaf = self.descend(start, |l| read_lock(l, &self.latch_waits));
        let mut pos = match lo {
            Bound::Included(k) => leaf.keys.partition_point(|x| x < k),
            Bound::Excluded(k) => leaf.keys.partition_point(|x| x <= k),
            Bound::Unbounded => 0,
        };
        let mut count = 0;
        loop {
            for (k, v) in leaf.keys[pos..].iter().zip(&leaf.values[pos..]) {
                if !below_hi(k, hi) {
                    return count;
                }
                out.push((k.clone(), v.clone()));
                count += 1;
                if count == limit {
                    return count;
                }
            }
            let Some(next) = leaf.next else {
                return count;
            };
            // Hand over hand, left to right: while the current leaf is held it cannot split, so the
            // next leaf's keys all lie above every key taken so far.
            let next = self.shared(next);
            leaf = next;
            pos = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::unmodeled::{AtomicBool, Ordering};

    fn all(tree: &LockCouplingBTree<u64, u64>) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        tree.scan(Bound::Unbounded, Bound::Unbounded, usize::MAX, &mut out);
        out
    }

    #[test]
    fn rejects_bad_capacities() {
        assert!(LockCouplingBTree::<u64, u64>::with_capacity(1, 4).is_err());
        assert!(LockCouplingBTree::<u64, u64>::with_capacity(4, 2).is_err());
        assert!(LockCouplingBTree::<u64, u64>::with_capacity(2, 3).is_ok());
    }

    #[test]
    fn root_leaf_splits_exactly_when_full() {
        let tree = LockCouplingBTree::with_capacity(4, 4).unwrap();
        for k in 0..4u64 {
            tree.insert(k, k);
        }
        assert_eq!(tree.height(), 1);
        assert_eq!(tree.pessimistic_descents(), 0);
        // Overwriting in a full leaf needs no split.
        assert_eq!(tree.insert(3, 30), Some(3));
        assert_eq!(tree.pessimistic_descents(), 0);
        tree.insert(4, 4);
        assert_eq!(tree.height(), 2);
        assert_eq!(tree.pessimistic_descents(), 1);
        let shape = tree.shape();
        assert_eq!((shape.leaves, shape.inner_nodes, shape.entries), (2, 1, 5));
        assert_eq!(all(&tree), vec![(0, 0), (1, 1), (2, 2), (3, 30), (4, 4)]);
    }

    #[test]
    fn minimal_capacities_split_up_to_many_levels() {
        for order in [false, true] {
            let tree = LockCouplingBTree::with_capacity(2, 3).unwrap();
            let keys: Vec<u64> = if order {
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
            assert_eq!(shape.height, tree.height());
            for k in 0..500 {
                assert_eq!(tree.get(&k), Some(k + 1));
            }
            assert_eq!(all(&tree), (0..500).map(|k| (k, k + 1)).collect::<Vec<_>>());
        }
    }

    #[test]
    fn removal_keeps_empty_leaves_and_they_still_route() {
        let tree = LockCouplingBTree::with_capacity(4, 4).unwrap();
        for k in 0..100u64 {
            tree.insert(k, k);
        }
        let before = tree.shape();
        for k in 0..100u64 {
            assert_eq!(tree.remove(&k), Some(k));
            assert_eq!(tree.remove(&k), None);
        }
        let after = tree.shape();
        assert_eq!(
            (after.leaves, after.entries, after.avg_leaf_fill),
            (before.leaves, 0, 0.0)
        );
        assert!(all(&tree).is_empty());
        for k in (0..100u64).rev() {
            tree.insert(k, k * 2);
        }
        assert_eq!(all(&tree), (0..100).map(|k| (k, k * 2)).collect::<Vec<_>>());
    }

    /// A held leaf latch blocks an operation on that leaf and no other.
    #[test]
    fn a_latched_leaf_blocks_only_its_own_keys() {
        let tree = LockCouplingBTree::with_capacity(4, 4).unwrap();
        for k in 0..64u64 {
            tree.insert(k, k);
        }
        let held = tree.descend(Some(&0), |l| write_lock(l, &tree.latch_waits));
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            // Another leaf: completes while the latch is held.
            s.spawn(|| assert_eq!(tree.get(&63), Some(63)))
                .join()
                .unwrap();
            assert_eq!(tree.latch_waits(), 0);
            let blocked = s.spawn(|| {
                let v = tree.get(&0);
                done.store(true, Ordering::SeqCst);
                v
            });
            while tree.latch_waits() == 0 {
                std::thread::yield_now();
            }
            assert!(!done.load(Ordering::SeqCst));
            drop(held);
            assert_eq!(blocked.join().unwrap(), Some(0));
        });
    }

    #[test]
    fn concurrent_splits_and_scans_stay_ordered() {
        let tree = LockCouplingBTree::with_capacity(3, 3).unwrap();
        std::thread::scope(|s| {
            for t in 0..2u64 {
                let tree = &tree;
                s.spawn(move || {
                    for i in 0..crate::test_size(3_000, 200) {
                        tree.insert(i * 2 + t, i);
                    }
                });
            }
            s.spawn(|| {
                for _ in 0..crate::test_size(200, 10) {
                    let mut out = Vec::new();
                    tree.scan(Bound::Excluded(&100), Bound::Included(&5000), 64, &mut out);
                    assert!(out.len() <= 64);
                    assert!(out.windows(2).all(|w| w[0].0 < w[1].0), "{out:?}");
                    assert!(out.iter().all(|&(k, _)| k > 100 && k <= 5000));
                }
            });
        });
        assert_eq!(tree.shape().entries, 6000);
        assert_eq!(all(&tree).len(), 6000);
    }
}
