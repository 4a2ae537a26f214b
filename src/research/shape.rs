//! The tree's shape: height, page counts and node utilization, read from page headers only.

use crate::BwTree;
use crate::mapping::Pid;
use crate::page::chain::{At, First};
use crate::protocol::traverse::Intent;

/// A summary of the tree's structure, returned by [`BwTree::shape`].
///
/// Counts come from page headers, walking each level from its leftmost page along right links, so
/// the call costs one header read per page (no entries are copied). Under concurrent modification
/// each page is counted at a slightly different moment.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shape {
    /// Number of levels (1: the root is a leaf).
    pub height: usize,
    /// Leaf pages reachable from the root.
    pub leaves: usize,
    /// Inner pages reachable from the root.
    pub inner_pages: usize,
    /// Records in the leaves.
    pub entries: usize,
    /// Child links in the inner pages.
    pub children: usize,
    /// Average fill of the leaves: `entries / (leaves × leaf_capacity)`.
    pub leaf_fill: f64,
    /// Average fill of the inner pages: `children / (inner_pages × inner_capacity)` (0 if none).
    pub inner_fill: f64,
    /// Mapping-table slots that hold a page, reachable or not. Equals `leaves + inner_pages` when no
    /// structure modification is in flight: removed pages give their slot back.
    pub mapped_pages: usize,
}

impl<K, V> BwTree<K, V>
where
    K: Ord + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Height, page counts and node utilization (see [`Shape`]).
    pub fn shape(&self) -> Shape {
        let guard = &self.guard();
        let height = self.height();
        let (mut leaves, mut inner_pages, mut entries, mut children) = (0, 0, 0, 0);
        for level in 0..height {
            let Some(mut page) = self.descend(&First, level as u8, Intent::Read, guard) else {
                // The tree shrank while we walked it.
                continue;
            };
            loop {
                let node = page.node();
                if node.is_leaf() {
                    leaves += 1;
                    entries += node.meta.size as usize;
                } else {
                    inner_pages += 1;
                    children += node.meta.size as usize;
                }
                let Some(high) = node.high() else { break };
                page = match self.settle(node.meta.right, &At(high), Intent::Read, guard) {
                    Ok(next) => next,
                    Err(_) => match self.descend(&At(high), level as u8, Intent::Read, guard) {
                        Some(next) => next,
                        None => break,
                    },
                };
            }
        }
        let mapped_pages = (1..=self.table.high_water())
            .filter(|&raw| self.table.load(Pid(raw), guard).is_some())
            .count();
        let ratio = |used: usize, pages: usize, capacity: usize| {
            if pages == 0 {
                0.0
            } else {
                used as f64 / (pages * capacity) as f64
            }
        };
        Shape {
            height,
            leaves,
            inner_pages,
            entries,
            children,
            leaf_fill: ratio(entries, leaves, self.config.leaf_capacity),
            inner_fill: ratio(children, inner_pages, self.config.inner_capacity),
            mapped_pages,
        }
    }
}
