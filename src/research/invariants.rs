//! Structural checks of a quiescent tree, for tests and research.

use core::fmt;
use core::ops::Bound;

use crate::BwTree;
use crate::mapping::Pid;
use crate::page::NodeRef;
use crate::page::chain;
use crate::protocol::traverse::Intent;

/// A broken structural invariant found by [`BwTree::check_invariants`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvariantViolation {
    /// Level of the page where the problem was found (0 = leaves).
    pub level: usize,
    /// Position of the page on its level, counted from the left.
    pub position: usize,
    /// What is wrong, in words.
    pub problem: String,
}

impl fmt::Display for InvariantViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bwtree invariant violated at level {}, page {} from the left: {}",
            self.level, self.position, self.problem
        )
    }
}

impl std::error::Error for InvariantViolation {}

impl<K, V> BwTree<K, V>
where
    K: Ord + Clone + Send + Sync + 'static + fmt::Debug,
    V: Clone + Send + Sync + 'static,
{
    /// Checks the tree's structure and returns the first violation found.
    ///
    /// Checked, level by level from the root: every page's entries are sorted and inside its
    /// `[low, high)` range; its entry count matches its header; the pages of a level, read through
    /// the parents' child lists, are exactly the chain of right links, with each page's high key equal
    /// to its right sibling's low key, the leftmost page unbounded below and the rightmost unbounded
    /// above; each child's key range equals the range its parent's separators give it (so separators
    /// match children) and its level is one below its parent (so all leaves have the same depth);
    /// and every key is found by a lookup from the root.
    ///
    /// Call it when no other thread is modifying the tree: in the middle of a structure modification
    /// a parent may legitimately lag behind its children.
    pub fn check_invariants(&self) -> Result<(), InvariantViolation> {
        let guard = &self.guard();
        // Acquire: pairs with the Release CAS that installed the root.
        let root = self.root.pid(guard);
        let root_level = self
            .node_at(root, guard)
            .map_or(0, |n| n.meta.level as usize);
        // (pid, expected low, expected high) for the pages of the current level, left to right.
        let mut level_pages: Vec<(Pid, Option<K>, Option<K>)> = vec![(root, None, None)];
        for level in (0..=root_level).rev() {
            let fail = |position: usize, problem: String| InvariantViolation {
                level,
                position,
                problem,
            };
            let mut next_level = Vec::new();
            for (position, (pid, want_low, want_high)) in level_pages.iter().enumerate() {
                let node = self
                    .node_at(*pid, guard)
                    .ok_or_else(|| fail(position, format!("{pid:?} has no page")))?;
                if node.meta.level as usize != level {
                    return Err(fail(
                        position,
                        format!("{pid:?} is at level {}, expected {level}", node.meta.level),
                    ));
                }
                if node.low() != want_low.as_ref() || node.high() != want_high.as_ref() {
                    return Err(fail(
                        position,
                        format!(
                            "{pid:?} covers [{:?}, {:?}) but its parent gives it [{want_low:?}, {want_high:?})",
                            node.low(),
                            node.high()
                        ),
                    ));
                }
                let right_wanted = level_pages.get(position + 1).map_or(Pid::NONE, |p| p.0);
                if node.meta.right != right_wanted {
                    return Err(fail(
                        position,
                        format!(
                            "{pid:?} links right to {:?}, but the next page of the level is {right_wanted:?}",
                            node.meta.right
                        ),
                    ));
                }
                let in_range = |k: &K| node.above_low(k) && node.below_high(k);
                if node.is_leaf() {
                    let mut records = Vec::new();
                    chain::collect_leaf(node, Bound::Unbounded, Bound::Unbounded, &mut records);
                    check_sorted_in_range(records.iter().map(|(k, _)| *k), &in_range)
                        .map_err(|p| fail(position, format!("{pid:?}: {p}")))?;
                    if records.len() != node.meta.size as usize {
                        return Err(fail(
                            position,
                            format!(
                                "{pid:?} holds {} records but its header says {}",
                                records.len(),
                                node.meta.size
                            ),
                        ));
                    }
                    for (key, value) in &records {
                        // Not `lookup`: a check is not an operation for the statistics.
                        let leaf = self.find_leaf(&chain::At(*key), Intent::Read, guard);
                        let found = chain::leaf_get(leaf.node(), key);
                        if !found.is_some_and(|v| core::ptr::eq(v, *value)) {
                            return Err(fail(
                                position,
                                format!(
                                    "{pid:?}: key {key:?} is not found by a lookup from the root"
                                ),
                            ));
                        }
                    }
                } else {
                    let children = chain::collect_inner(node);
                    check_sorted_in_range(
                        children.iter().skip(1).filter_map(|(low, _)| *low),
                        &in_range,
                    )
                    .map_err(|p| fail(position, format!("{pid:?}: {p}")))?;
                    // An aborted removal's index-term-delete lowered the header's count by one.
                    let counted = node.meta.size + chain::aborted_deletes(node);
                    if children.len() != counted as usize {
                        return Err(fail(
                            position,
                            format!(
                                "{pid:?} has {} children but its header says {}",
                                children.len(),
                                counted
                            ),
                        ));
                    }
                    for (i, (low, child)) in children.iter().enumerate() {
                        let child_low = if i == 0 { node.low() } else { *low };
                        let child_high = children
                            .get(i + 1)
                            .map_or(node.high(), |(next_low, _)| *next_low);
                        next_level.push((*child, child_low.cloned(), child_high.cloned()));
                    }
                }
            }
            level_pages = next_level;
        }
        Ok(())
    }

    fn node_at<'g>(
        &self,
        pid: Pid,
        guard: &'g crossbeam_epoch::Guard,
    ) -> Option<NodeRef<'g, K, V>> {
        self.table.load(pid, guard)
    }
}

fn check_sorted_in_range<'k, K: Ord + fmt::Debug + 'k>(
    keys: impl Iterator<Item = &'k K>,
    in_range: &dyn Fn(&K) -> bool,
) -> Result<(), String> {
    let mut last: Option<&K> = None;
    for key in keys {
        if !in_range(key) {
            return Err(format!("key {key:?} lies outside the page's range"));
        }
        if let Some(last) = last {
            if last >= key {
                return Err(format!("keys out of order: {last:?} then {key:?}"));
            }
        }
        last = Some(key);
    }
    Ok(())
}

impl<K, V> BwTree<K, V>
where
    K: Ord + Clone + Send + Sync + 'static + fmt::Debug,
    V: Clone + Send + Sync + 'static,
{
    /// A textual dump of every live page (kind of each chain node, range, entries), for debugging.
    #[doc(hidden)]
    pub fn debug_dump(&self) -> String {
        use crate::page::Body;
        use fmt::Write;
        let guard = &self.guard();
        let mut out = String::new();
        let _ = writeln!(out, "root {:?}", self.root.pid(guard).0);
        for raw in 1..=self.table.high_water() {
            let Some(head) = self.table.load(Pid(raw), guard) else {
                continue;
            };
            let _ = write!(
                out,
                "{raw}: L{} [{:?}, {:?}) right {:?} size {} |",
                head.meta.level,
                head.low(),
                head.high(),
                head.meta.right,
                head.meta.size
            );
            let mut node = Some(head);
            while let Some(n) = node {
                let _ = match n.body() {
                    Body::Leaf(b) => write!(out, " leaf{:?}", b.keys()),
                    Body::Inner(b) => write!(out, " inner{:?}/{:?}", b.separators(), b.children()),
                    Body::Insert(d) => write!(out, " +{:?}", d.key),
                    Body::Delete(d) => write!(out, " -{:?}", d.key),
                    Body::Split(d) => write!(out, " split@{:?}->{:?}", d.separator, d.right),
                    Body::IndexEntry(d) => write!(out, " entry@{:?}->{:?}", d.separator, d.child),
                    Body::Remove(d) => write!(out, " remove({:?})", d.removal.state()),
                    Body::Merge(d) => write!(out, " merge@{:?}", d.separator),
                    Body::IndexDelete(d) => write!(
                        out,
                        " delete@{:?}->{:?}({:?})",
                        d.separator,
                        d.left,
                        d.removal.state()
                    ),
                    Body::Collapse => write!(out, " collapse"),
                    Body::Batch(b) => write!(out, " batch{:?}", b.keys()),
                };
                node = n.next();
            }
            out.push('\n');
        }
        out
    }
}
