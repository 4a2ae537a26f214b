//! Multi-get: many point lookups that share their traversals.
//!
//! The keys are visited in ascending order. A key that the current leaf still covers is looked up
//! in the head already loaded; a key beyond it is looked for in the right sibling first (one load,
//! no descent), and only if that sibling does not cover it either does the lookup descend from the
//! root. Each answer is the content of its leaf at the moment that leaf's head was loaded, a moment
//! inside the call: every key's lookup is linearizable on its own, the set of answers is not a
//! snapshot. The epoch guard is renewed every [`KEYS_PER_GUARD`] keys so that a huge multi-get
//! does not hold back memory reclamation.

use std::time::Instant;

use crossbeam_epoch::Guard;

use super::BatchMetrics;
use crate::BwTree;
use crate::page::chain::{self, At};
use crate::protocol::traverse::{Intent, PageRef};

/// Keys looked up under one epoch guard.
const KEYS_PER_GUARD: usize = 1024;

impl<K, V> BwTree<K, V>
where
    K: Ord + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// The values of many keys, in the order of `keys` (`None`: absent).
    ///
    /// Sorts the keys and reuses the traversal between neighbours (see
    /// [`BwTree::get_many_with_metrics`]). Each answer is linearizable on its own; the answers
    /// together are not a snapshot.
    ///
    /// ```
    /// use bwtree::BwTree;
    ///
    /// let tree = BwTree::from_sorted_iter((0..100u64).map(|k| (k, k + 1))).unwrap();
    /// assert_eq!(tree.get_many(&[7, 500, 3]), vec![Some(8), None, Some(4)]);
    /// ```
    pub fn get_many(&self, keys: &[K]) -> Vec<Option<V>> {
        self.get_many_with_metrics(keys).0
    }

    /// [`BwTree::get_many`], with metrics: `descents` counts descents from the root, `right_moves`
    /// the leaves reached through a right link instead, `leaves_touched` the leaves read.
    pub fn get_many_with_metrics(&self, keys: &[K]) -> (Vec<Option<V>>, BatchMetrics) {
        let started = Instant::now();
        let mut metrics = BatchMetrics {
            keys: keys.len(),
            ..BatchMetrics::default()
        };
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_unstable_by(|&a, &b| keys[a].cmp(&keys[b]));
        let mut results: Vec<Option<V>> = vec![None; keys.len()];
        let mut previous: Option<&K> = None;
        for batch in order.chunks(KEYS_PER_GUARD) {
            let guard = &self.guard();
            let mut leaf: Option<PageRef<'_, K, V>> = None;
            for &i in batch {
                let key = &keys[i];
                if previous != Some(key) {
                    metrics.distinct_keys += 1;
                }
                previous = Some(key);
                let page = self.leaf_after(leaf, key, &mut metrics, guard);
                results[i] = chain::leaf_get(page.node(), key).cloned();
                leaf = Some(page);
            }
        }
        metrics.elapsed = started.elapsed();
        (results, metrics)
    }

    /// The leaf for `key`, the next key in ascending order after those `current` answered.
    fn leaf_after<'g>(
        &self,
        current: Option<PageRef<'g, K, V>>,
        key: &K,
        metrics: &mut BatchMetrics,
        guard: &'g Guard,
    ) -> PageRef<'g, K, V> {
        if let Some(page) = current {
            let node = page.node();
            // The keys come in ascending order, so `key` is not below the leaf's low key.
            if node.below_high(key) {
                return page;
            }
            let right = node.meta.right;
            let next_covers = self
                .table
                .load(right, guard)
                .is_some_and(|next| next.is_leaf() && next.below_high(key));
            if next_covers {
                if let Ok(next) = self.settle(right, &At(key), Intent::Read, guard) {
                    metrics.right_moves += 1;
                    metrics.leaves_touched += 1;
                    return next;
                }
            }
        }
        metrics.descents += 1;
        metrics.leaves_touched += 1;
        self.find_leaf(&At(key), Intent::Read, guard)
    }
}
