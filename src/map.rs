//! One interface for every concurrent ordered map the crate measures or checks: the Bw-tree, the
//! in-crate baselines and (in the lab) peer crates.
//!
//! The trait is deliberately small and object-safe so that the lab, the conformance suite and the
//! checkers can hold any map as `&dyn ConcurrentMap<K, V>` or a generic parameter.

use core::ops::Bound;

use crate::BwTree;

/// A concurrent ordered map: every method takes `&self` and may be called from many threads.
pub trait ConcurrentMap<K, V>: Send + Sync {
    /// A short name for reports ("bwtree", "olc-btree", ...).
    fn name(&self) -> &'static str;

    /// Inserts or overwrites `key`; returns the previous value.
    fn insert(&self, key: K, value: V) -> Option<V>;

    /// The value stored for `key`.
    fn get(&self, key: &K) -> Option<V>;

    /// Removes `key`; returns the value it had.
    fn remove(&self, key: &K) -> Option<V>;

    /// Appends to `out`, in ascending key order, the pairs whose keys lie within `(lo, hi)`, stopping
    /// after `limit` pairs. Returns how many were appended.
    fn scan(&self, lo: Bound<&K>, hi: Bound<&K>, limit: usize, out: &mut Vec<(K, V)>) -> usize;

    /// Inserts many pairs; returns each key's previous value, in input order. The default inserts
    /// them one by one; maps with a better way (one lock acquisition, one delta per leaf) override it.
    fn insert_batch(&self, pairs: Vec<(K, V)>) -> Vec<Option<V>> {
        pairs
            .into_iter()
            .map(|(key, value)| self.insert(key, value))
            .collect()
    }

    /// Removes many keys; returns the value each had, in input order. Default: one by one.
    fn remove_batch(&self, keys: &[K]) -> Vec<Option<V>> {
        keys.iter().map(|key| self.remove(key)).collect()
    }

    /// The values of many keys, in input order. Default: one `get` per key.
    fn get_many(&self, keys: &[K]) -> Vec<Option<V>> {
        keys.iter().map(|key| self.get(key)).collect()
    }

    /// Event counters the map keeps (CAS retries, restarts, latch waits, ...), as `(name, count)`
    /// pairs totalled since the map was built; empty when the map counts nothing.
    ///
    /// Counts are exact once the threads that caused them have been joined. The lab reports the
    /// difference between two calls, per operation, so a counter must only ever grow.
    fn stats(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }

    /// Height and node utilization, for maps that are trees and can report them; `None` otherwise.
    ///
    /// May walk the whole structure: call it between measurements, not on a hot path. Exact when no
    /// thread is writing.
    fn tree_shape(&self) -> Option<TreeShape> {
        None
    }
}

/// Height and node utilization of a tree-shaped map, as returned by [`ConcurrentMap::tree_shape`].
///
/// Fields a map cannot report cheaply are `None`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TreeShape {
    /// Number of levels; 1 when the root is a leaf.
    pub height: usize,
    /// Number of leaves.
    pub leaves: Option<usize>,
    /// Number of inner nodes.
    pub inner_nodes: Option<usize>,
    /// Average fraction of a leaf's slots in use, in `0..=1`.
    pub leaf_fill: Option<f64>,
    /// Average fraction of an inner node's child slots in use, in `0..=1`.
    pub inner_fill: Option<f64>,
}

impl<K, V> ConcurrentMap<K, V> for BwTree<K, V>
where
    K: Ord + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn name(&self) -> &'static str {
        "bwtree"
    }

    fn insert(&self, key: K, value: V) -> Option<V> {
        BwTree::insert(self, key, value)
    }

    fn get(&self, key: &K) -> Option<V> {
        BwTree::get(self, key)
    }

    fn remove(&self, key: &K) -> Option<V> {
        BwTree::remove(self, key)
    }

    fn scan(&self, lo: Bound<&K>, hi: Bound<&K>, limit: usize, out: &mut Vec<(K, V)>) -> usize {
        BwTree::scan_into(self, lo, hi, limit, out)
    }

    fn insert_batch(&self, pairs: Vec<(K, V)>) -> Vec<Option<V>> {
        BwTree::insert_batch(self, pairs).results
    }

    fn remove_batch(&self, keys: &[K]) -> Vec<Option<V>> {
        BwTree::remove_batch(self, keys.iter().cloned()).results
    }

    fn get_many(&self, keys: &[K]) -> Vec<Option<V>> {
        BwTree::get_many(self, keys)
    }

    fn stats(&self) -> Vec<(&'static str, u64)> {
        BwTree::stats(self).to_pairs()
    }

    fn tree_shape(&self) -> Option<TreeShape> {
        let shape = BwTree::shape(self);
        Some(TreeShape {
            height: shape.height,
            leaves: Some(shape.leaves),
            inner_nodes: Some(shape.inner_pages),
            leaf_fill: Some(shape.leaf_fill),
            // A tree of one leaf has no inner page, and `Shape` reports 0 for it.
            inner_fill: (shape.inner_pages > 0).then_some(shape.inner_fill),
        })
    }
}
