//! Page layout: base pages and delta records.
//!
//! A logical page is what its mapping-table slot points to: a chain of *delta records*, newest first,
//! ending in a *base page*. Every node of a chain is immutable once published; a page changes only
//! when a new node is prepended with one CAS on the slot (or the whole chain is replaced by a new base
//! page, see `smo`).
//!
//! Every node carries a [`Meta`] header that summarises the whole logical page *as of that node*:
//! its key range `[low, high)`, right sibling, level, number of entries and chain length. A thread
//! therefore learns everything it needs for navigation from the head alone, without walking the chain.
//! The `low`/`high` fields point at keys stored further down the same chain (in the base page or a
//! split delta); a chain is always retired as a unit, so these pointers live exactly as long as the
//! node that holds them.
//!
//! Base pages keep keys and values in separate contiguous arrays so that a binary search touches only
//! key cache lines.

use core::ptr;

use crossbeam_epoch::Owned;

use crate::mapping::Pid;
use crate::sync::PublishWitness;

/// A pointer to an older node of the same chain. Immutable after publication.
pub(crate) type NodePtr<K, V> = *const Node<K, V>;

/// One node of a page's chain: a delta record or a base page. See the module docs.
pub(crate) struct Node<K, V> {
    pub(crate) meta: Meta<K>,
    pub(crate) body: Body<K, V>,
    witness: PublishWitness,
}

// SAFETY: a node owns its keys and values (sent to and shared with other threads, hence the bounds)
// and holds raw pointers only to older, immutable nodes of the same chain, which are kept alive by
// the epoch collector for as long as any thread can reach this node.
unsafe impl<K: Send + Sync, V: Send + Sync> Send for Node<K, V> {}
// SAFETY: as above; nodes are never mutated after publication.
unsafe impl<K: Send + Sync, V: Send + Sync> Sync for Node<K, V> {}

/// A summary of the logical page as of the node that carries it.
pub(crate) struct Meta<K> {
    /// Inclusive lower bound of the page's keys; null for "unbounded". Never changes for a PID.
    low: *const K,
    /// Exclusive upper bound; null for "unbounded".
    high: *const K,
    /// The right sibling on the same level ([`Pid::NONE`] for the rightmost page).
    pub(crate) right: Pid,
    /// Number of entries: records for a leaf, children for an inner page.
    pub(crate) size: u32,
    /// Number of delta records above the base page.
    pub(crate) depth: u32,
    /// 0 for leaves; a parent is one level above its children.
    pub(crate) level: u8,
}

impl<K> Clone for Meta<K> {
    fn clone(&self) -> Self {
        Meta {
            low: self.low,
            high: self.high,
            right: self.right,
            size: self.size,
            depth: self.depth,
            level: self.level,
        }
    }
}

/// What a node is.
pub(crate) enum Body<K, V> {
    /// A leaf base page.
    Leaf(LeafBase<K, V>),
    /// An inner base page.
    Inner(InnerBase<K>),
    /// Leaf delta: `key` now maps to `value` (insert or overwrite).
    Insert {
        next: NodePtr<K, V>,
        key: K,
        value: V,
    },
    /// Leaf delta: `key` is no longer present.
    Delete { next: NodePtr<K, V>, key: K },
    /// Split delta: keys `>= separator` moved to the new right sibling `right`, which covers
    /// `[separator, right_high)`. While it is the newest node of its chain, the index entry for
    /// `right` may still be missing from the parent level: a thread that wants to post on this page
    /// or cross to `right` first completes that step (help-along).
    Split {
        next: NodePtr<K, V>,
        separator: K,
        right: Pid,
        right_high: Option<K>,
    },
    /// Inner delta: keys in `[separator, child_high)` are routed to `child` (the parent-level half of
    /// a split of one of this page's children).
    IndexEntry {
        next: NodePtr<K, V>,
        separator: K,
        child: Pid,
        child_high: Option<K>,
    },
}

/// A leaf base page: sorted, distinct keys and their values.
pub(crate) struct LeafBase<K, V> {
    low: Option<K>,
    high: Option<K>,
    keys: Box<[K]>,
    values: Box<[V]>,
}

/// An inner base page: `children[i]` covers `[separators[i - 1], separators[i])`, with the page's own
/// `low` and `high` standing in at the ends.
pub(crate) struct InnerBase<K> {
    low: Option<K>,
    high: Option<K>,
    separators: Box<[K]>,
    children: Box<[Pid]>,
}

impl<K: Ord, V> LeafBase<K, V> {
    /// The value stored for `key`, if any.
    #[inline]
    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        match self.keys.binary_search(key) {
            Ok(i) => Some(&self.values[i]),
            Err(_) => None,
        }
    }

    /// Index of the first key `>= key` (`strict`: `> key`).
    #[inline]
    pub(crate) fn lower_bound(&self, key: &K, strict: bool) -> usize {
        if strict {
            self.keys.partition_point(|k| k <= key)
        } else {
            self.keys.partition_point(|k| k < key)
        }
    }
}

impl<K, V> LeafBase<K, V> {
    pub(crate) fn keys(&self) -> &[K] {
        &self.keys
    }

    pub(crate) fn values(&self) -> &[V] {
        &self.values
    }
}

impl<K> InnerBase<K> {
    pub(crate) fn separators(&self) -> &[K] {
        &self.separators
    }

    pub(crate) fn children(&self) -> &[Pid] {
        &self.children
    }
}

impl<K, V> Node<K, V> {
    /// A new leaf base page. `keys` must be sorted and distinct, inside `[low, high)`.
    pub(crate) fn leaf_base(
        low: Option<K>,
        high: Option<K>,
        right: Pid,
        keys: Vec<K>,
        values: Vec<V>,
    ) -> Owned<Self> {
        debug_assert_eq!(keys.len(), values.len());
        let size = keys.len() as u32;
        Self::base(
            Body::Leaf(LeafBase {
                low,
                high,
                keys: keys.into_boxed_slice(),
                values: values.into_boxed_slice(),
            }),
            right,
            size,
            0,
        )
    }

    /// A new inner base page at `level` (≥ 1). `children.len() == separators.len() + 1`.
    pub(crate) fn inner_base(
        level: u8,
        low: Option<K>,
        high: Option<K>,
        right: Pid,
        separators: Vec<K>,
        children: Vec<Pid>,
    ) -> Owned<Self> {
        debug_assert!(level >= 1);
        debug_assert_eq!(children.len(), separators.len() + 1);
        let size = children.len() as u32;
        Self::base(
            Body::Inner(InnerBase {
                low,
                high,
                separators: separators.into_boxed_slice(),
                children: children.into_boxed_slice(),
            }),
            right,
            size,
            level,
        )
    }

    fn base(body: Body<K, V>, right: Pid, size: u32, level: u8) -> Owned<Self> {
        let mut node = Owned::new(Node {
            meta: Meta {
                low: ptr::null(),
                high: ptr::null(),
                right,
                size,
                depth: 0,
                level,
            },
            body,
            witness: PublishWitness::new(),
        });
        // The bounds live inside the node itself; their addresses are fixed only now that the node
        // is on the heap.
        let (low, high) = match &node.body {
            Body::Leaf(base) => (base.low.as_ref(), base.high.as_ref()),
            Body::Inner(base) => (base.low.as_ref(), base.high.as_ref()),
            _ => unreachable!("base() builds base pages only"),
        };
        let (low, high) = (opt_ptr(low), opt_ptr(high));
        node.meta.low = low;
        node.meta.high = high;
        node
    }

    /// A delta record on top of `prev`, describing a page that now has `size` entries.
    pub(crate) fn delta(prev: &Node<K, V>, body: Body<K, V>, size: u32) -> Owned<Self> {
        let mut meta = prev.meta.clone();
        meta.size = size;
        meta.depth = prev.meta.depth + 1;
        let mut node = Owned::new(Node {
            meta,
            body,
            witness: PublishWitness::new(),
        });
        node.set_next(prev);
        node
    }

    /// A split delta on top of `lower`, the new base page of the left half.
    pub(crate) fn split_delta(
        lower: &Node<K, V>,
        separator: K,
        right: Pid,
        right_high: Option<K>,
    ) -> Owned<Self> {
        let body = Body::Split {
            next: lower,
            separator,
            right,
            right_high,
        };
        Self::delta(lower, body, lower.meta.size)
    }

    /// Re-targets an unpublished delta at a newer `prev` (after a lost CAS) with a new entry count.
    pub(crate) fn rebase(&mut self, prev: &Node<K, V>, size: u32) {
        self.meta = prev.meta.clone();
        self.meta.size = size;
        self.meta.depth = prev.meta.depth + 1;
        self.set_next(prev);
    }

    fn set_next(&mut self, prev: &Node<K, V>) {
        let prev: NodePtr<K, V> = prev;
        match &mut self.body {
            Body::Insert { next, .. }
            | Body::Delete { next, .. }
            | Body::Split { next, .. }
            | Body::IndexEntry { next, .. } => *next = prev,
            Body::Leaf(_) | Body::Inner(_) => unreachable!("a base page has no successor"),
        }
    }

    /// The inclusive lower bound of the page (`None`: unbounded).
    #[inline]
    pub(crate) fn low(&self) -> Option<&K> {
        self.witness.observe();
        // SAFETY: `low` is null or points at a key inside this node or an older node of its chain;
        // the chain is freed as a unit, so the key lives as long as `self`.
        unsafe { self.meta.low.as_ref() }
    }

    /// The exclusive upper bound of the page (`None`: unbounded).
    #[inline]
    pub(crate) fn high(&self) -> Option<&K> {
        self.witness.observe();
        // SAFETY: as for `low`.
        unsafe { self.meta.high.as_ref() }
    }

    /// The next older node of the chain, for a delta record.
    #[inline]
    pub(crate) fn next(&self) -> Option<&Node<K, V>> {
        let next = match &self.body {
            Body::Insert { next, .. }
            | Body::Delete { next, .. }
            | Body::Split { next, .. }
            | Body::IndexEntry { next, .. } => *next,
            Body::Leaf(_) | Body::Inner(_) => return None,
        };
        self.witness.observe();
        // SAFETY: a delta's successor is an older node of the same chain, published before the
        // delta and freed no earlier than it.
        Some(unsafe { &*next })
    }

    /// Whether this is a leaf page.
    #[inline]
    pub(crate) fn is_leaf(&self) -> bool {
        self.meta.level == 0
    }
}

impl<K: Ord, V> Node<K, V> {
    /// `key < high`: the page (or one to its left) is responsible for `key`.
    #[inline]
    pub(crate) fn below_high(&self, key: &K) -> bool {
        self.high().is_none_or(|high| key < high)
    }

    /// `low <= key`.
    #[inline]
    pub(crate) fn above_low(&self, key: &K) -> bool {
        self.low().is_none_or(|low| low <= key)
    }
}

fn opt_ptr<K>(key: Option<&K>) -> *const K {
    key.map_or(ptr::null(), |k| k as *const K)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn base_bounds_point_into_the_node() {
        let base =
            Node::<u64, u64>::leaf_base(Some(10), Some(20), Pid(3), vec![10, 15], vec![1, 2]);
        assert_eq!(base.low(), Some(&10));
        assert_eq!(base.high(), Some(&20));
        assert_eq!(base.meta.size, 2);
        assert!(base.below_high(&19) && !base.below_high(&20));
        assert!(base.above_low(&10) && !base.above_low(&9));

        let delta = Node::delta(
            &base,
            Body::Insert {
                next: ptr::null(),
                key: 12,
                value: 3,
            },
            3,
        );
        assert_eq!(delta.meta.depth, 1);
        assert_eq!(delta.meta.size, 3);
        assert_eq!(delta.high(), Some(&20));
        assert!(ptr::eq(delta.next().unwrap(), &*base));
    }

    #[test]
    fn unbounded_pages_cover_everything() {
        let base = Node::<u64, u64>::leaf_base(None, None, Pid::NONE, vec![], vec![]);
        assert!(base.below_high(&u64::MAX));
        assert!(base.above_low(&0));
    }
}
