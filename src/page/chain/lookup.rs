//! Point lookups in a leaf's chain (with the base-page shortcut) and routing in an inner page's
//! chain; the probes a descent looks for.

use crate::mapping::Pid;
use crate::page::{self, Body, NodeRef, RemovalState};
use crate::research::fault::{self, Fault};

/// What a descent is looking for. Implemented by zero-sized or reference types so that every
/// traversal is monomorphised for its probe and the hot `At` case compiles to plain comparisons.
pub(crate) trait Probe<K> {
    /// Whether the probe lies at or to the right of the bound `s` (`None` = +infinity, never).
    fn right_of(&self, bound: Option<&K>) -> bool;
}

/// The page that holds `key`.
pub(crate) struct At<'k, K>(pub(crate) &'k K);
/// The page that holds the greatest keys `< key` (for reverse scans).
pub(crate) struct Below<'k, K>(pub(crate) &'k K);
/// The leftmost page of a level.
pub(crate) struct First;
/// The rightmost page of a level.
pub(crate) struct Last;

impl<K: Ord> Probe<K> for At<'_, K> {
    #[inline]
    fn right_of(&self, bound: Option<&K>) -> bool {
        bound.is_some_and(|s| s <= self.0)
    }
}

impl<K: Ord> Probe<K> for Below<'_, K> {
    #[inline]
    fn right_of(&self, bound: Option<&K>) -> bool {
        bound.is_some_and(|s| s < self.0)
    }
}

impl<K> Probe<K> for First {
    #[inline]
    fn right_of(&self, _bound: Option<&K>) -> bool {
        false
    }
}

impl<K> Probe<K> for Last {
    #[inline]
    fn right_of(&self, bound: Option<&K>) -> bool {
        bound.is_some()
    }
}

/// The value a leaf page holds for `key`. `key` must lie in the page's range.
#[inline]
pub(crate) fn leaf_get<'g, K: Ord, V>(head: NodeRef<'g, K, V>, key: &K) -> Option<&'g V> {
    leaf_lookup(head, key).value
}

/// What a leaf lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LeafLookup<'g, V> {
    /// The value the page holds for the key.
    pub(crate) value: Option<&'g V>,
    /// The key's position in the chain's base page (see `Meta::slots`), if the chain allows the
    /// shortcut; a delta posted on this head for this key records it.
    pub(crate) position: Option<usize>,
}

/// Looks `key` up in the leaf page whose head is `head`.
///
/// The shortcut: when the head's summary allows it, search the base page first; if no delta of the
/// chain has a key at the same base position, the base page's answer is the page's answer and the
/// deltas are never touched. Otherwise (or without a summary) walk the chain from the head; the
/// first delta that names the key decides.
#[inline]
pub(crate) fn leaf_lookup<'g, K: Ord, V>(head: NodeRef<'g, K, V>, key: &K) -> LeafLookup<'g, V> {
    let Some(base) = head.shortcut_base() else {
        return LeafLookup {
            value: walk_leaf(head, key),
            position: None,
        };
    };
    let found = base.search(key);
    let position = match found {
        Ok(i) | Err(i) => i,
    };
    let in_base = found.ok().map(|i| base.value(i));
    let value = if head.meta.slots & page::slot_bit(position) == 0 {
        debug_assert!(
            in_base.map(|v| v as *const V) == walk_leaf(head, key).map(|v| v as *const V),
            "the lookup shortcut disagrees with the chain (a crate bug, or a key type whose `Ord` is not a total order)"
        );
        in_base
    } else {
        // A chain with a shortcut summary has no merge delta, so the walk ends at this same base
        // page: reuse its answer instead of searching it again.
        walk_chain(head, key, Some(in_base))
    };
    LeafLookup {
        value,
        position: Some(position),
    }
}

/// The value a leaf page holds for `key`, found by walking its chain from `head`.
fn walk_leaf<'g, K: Ord, V>(head: NodeRef<'g, K, V>, key: &K) -> Option<&'g V> {
    walk_chain(head, key, None)
}

/// Walks a leaf chain from `head`; at the base page, answers `in_base` if the caller already
/// searched it, else searches it.
fn walk_chain<'g, K: Ord, V>(
    head: NodeRef<'g, K, V>,
    key: &K,
    in_base: Option<Option<&'g V>>,
) -> Option<&'g V> {
    let mut node = head;
    loop {
        match node.body() {
            Body::Insert(delta) => {
                if delta.key == *key && !fault::active(Fault::WrongDelta) {
                    return Some(&delta.value);
                }
            }
            Body::Delete(delta) => {
                if delta.key == *key {
                    return None;
                }
            }
            Body::Leaf(base) => return in_base.unwrap_or_else(|| base.get(key)),
            Body::Batch(batch) => {
                if let Some(entry) = batch.get(key) {
                    return entry;
                }
            }
            Body::Merge(merge) if *key >= merge.separator => {
                node = merge.right_state();
                continue;
            }
            Body::Split(_) | Body::Remove(_) | Body::Collapse | Body::Merge(_) => {}
            Body::Inner(_) | Body::IndexEntry(_) | Body::IndexDelete(_) => {
                debug_assert!(false, "inner node in a leaf chain");
                return None;
            }
        }
        node = node.next().expect("a delta always has a successor");
    }
}

/// The child of an inner page that the probe should descend into.
#[inline]
pub(crate) fn inner_route<K: Ord, V, P: Probe<K>>(head: NodeRef<'_, K, V>, probe: &P) -> Pid {
    let mut node = head;
    loop {
        match node.body() {
            Body::IndexEntry(entry) => {
                if probe.right_of(Some(&entry.separator))
                    && !probe.right_of(entry.child_high.as_ref())
                {
                    return entry.child;
                }
            }
            Body::IndexDelete(delete) => {
                if probe.right_of(Some(&delete.separator))
                    && !probe.right_of(delete.high.as_ref())
                    && delete.removal.state() != RemovalState::Aborted
                {
                    return delete.left;
                }
            }
            Body::Inner(base) => {
                let separators = base.separators();
                crate::memory::prefetch::slice(separators);
                let i = separators.partition_point(|s| probe.right_of(Some(s)));
                return base.children()[i];
            }
            Body::Merge(merge) if probe.right_of(Some(&merge.separator)) => {
                node = merge.right_state();
                continue;
            }
            Body::Split(_) | Body::Remove(_) | Body::Collapse | Body::Merge(_) => {}
            Body::Leaf(_) | Body::Insert(_) | Body::Delete(_) | Body::Batch(_) => {
                unreachable!("leaf node in an inner chain")
            }
        }
        node = node.next().expect("a delta always has a successor");
    }
}
