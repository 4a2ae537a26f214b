//! Consolidation: a page's chain replaced by one new base page.
//!
//! When a page's chain grows past its threshold, the thread that noticed — right after finishing its
//! own operation — replays the chain into a new base page and CASes it over the head it read. A
//! failed CAS means someone else changed the page; the new base page is dropped and the work is left
//! to a later thread (ICDE'13 §III.B). The replaced chain is retired through the epoch collector.

use core::ops::Bound;

use crossbeam_epoch::Guard;

use crate::BwTree;
use crate::mapping::Pid;
use crate::memory::reclaim::retire;
use crate::page::{self, chain};
use crate::protocol::traverse::PageRef;
use crate::research::stats::{CasKind, Counter};

impl<K, V> BwTree<K, V>
where
    K: Ord + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Replaces `page`'s chain with one new base page. Returns the page with its new state if the
    /// CAS succeeded; `None` if the page changed first (the work is abandoned).
    pub(crate) fn consolidate<'g>(
        &self,
        page: PageRef<'g, K, V>,
        guard: &'g Guard,
    ) -> Option<PageRef<'g, K, V>> {
        // A split delta disappears into the new base page, so its index entry must be in place
        // first (see `traverse`: a split that is not the newest node is complete).
        if self.finish_top_smo(page, guard).is_err() {
            return None;
        }
        let node = page.node();
        let low = node.low().cloned();
        let high = node.high().cloned();
        let base = if node.is_leaf() {
            let mut deltas = Vec::with_capacity(node.meta.depth as usize);
            if let Some((base, len)) = chain::sorted_leaf_deltas(node, &mut deltas) {
                // The common chain (inserts and deletes over one base page): the base page's runs
                // are copied between the delta keys, without collecting the page first.
                page::leaf_base_merged(low, high, node.meta.right, base, &deltas, len)
            } else {
                let mut records = Vec::with_capacity(node.meta.size as usize);
                chain::collect_leaf(node, Bound::Unbounded, Bound::Unbounded, &mut records);
                page::leaf_base(low, high, node.meta.right, cloned_records(&records))
            }
        } else {
            let children = chain::collect_inner(node);
            let (separators, pids) = split_children(&children);
            page::inner_base(
                node.meta.level,
                low,
                high,
                node.meta.right,
                separators,
                &pids,
            )
        };
        let installed = self.table.replace(page.pid, page.node, base, guard);
        self.stats.cas(CasKind::Consolidate, installed.is_ok());
        match installed {
            Ok(replaced) => {
                self.stats.done(Counter::Consolidation, node.meta.level, 1);
                // The new base page owns copies of everything it needs from the old chain.
                retire(&self.table, replaced.old, guard);
                Some(PageRef {
                    pid: page.pid,
                    node: replaced.installed,
                })
            }
            // Never published: dropping it frees it.
            Err(base) => {
                drop(base);
                None
            }
        }
    }
}

/// Clones collected records for a new base page.
pub(super) fn cloned_records<'a, K: Clone + 'a, V: Clone + 'a>(
    records: &'a [(&'a K, &'a V)],
) -> impl ExactSizeIterator<Item = (K, V)> + 'a {
    records.iter().map(|(k, v)| ((*k).clone(), (*v).clone()))
}

/// Turns collected children (the first one without a low key of its own: it starts at the page's
/// low key) into a new inner page's separators and child PIDs.
pub(super) fn split_children<'a, K: Clone + 'a>(
    children: &'a [(Option<&'a K>, Pid)],
) -> (impl ExactSizeIterator<Item = K> + 'a, Vec<Pid>) {
    let separators = children[1..].iter().map(|(low, _)| {
        (*low)
            .expect("only the first child lacks a low key")
            .clone()
    });
    let pids = children.iter().map(|(_, pid)| *pid).collect();
    (separators, pids)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use crate::BwTree;
    use crate::config::Config;
    use crate::page::chain::At;
    use crate::protocol::traverse::Intent;

    fn tree(leaf_capacity: usize, leaf_chain_threshold: usize) -> BwTree {
        BwTree::with_config(Config {
            leaf_capacity,
            leaf_chain_threshold,
            ..Config::tiny()
        })
        .unwrap()
    }

    fn leaf_depth(tree: &BwTree, key: u64) -> u32 {
        let guard = &tree.guard();
        tree.find_leaf(&At(&key), Intent::Read, guard)
            .node()
            .meta
            .depth
    }

    #[test]
    fn consolidation_keeps_chains_within_the_threshold() {
        let tree = tree(64, 3);
        let mut depths = Vec::new();
        for key in 0..9 {
            tree.insert(key, key);
            depths.push(leaf_depth(&tree, 0));
        }
        // Three deltas accumulate, the fourth triggers a consolidation into a fresh base page.
        assert_eq!(depths, vec![1, 2, 3, 0, 1, 2, 3, 0, 1]);
        let guard = &tree.guard();
        let leaf = tree.find_leaf(&At(&0), Intent::Read, guard);
        assert_eq!(leaf.node().meta.size, 9);
        // Overwrites and deletes replay correctly through a consolidation.
        tree.insert(3, 33);
        tree.remove(&4);
        tree.insert(4, 44);
        // depth 1 + 3 = 4 > 3: consolidated, then the last delete is on top of the new base page.
        tree.remove(&5);
        assert_eq!(leaf_depth(&tree, 0), 1);
        assert_eq!(
            tree.iter().collect::<Vec<_>>(),
            vec![
                (0, 0),
                (1, 1),
                (2, 2),
                (3, 33),
                (4, 44),
                (6, 6),
                (7, 7),
                (8, 8)
            ]
        );
    }
}
