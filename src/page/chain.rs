//! Reading a logical page through its delta chain.
//!
//! A lookup walks the chain newest-first and stops at the first record that mentions its key (an
//! insert returns the value, a delete returns "absent"); only if none does, it binary-searches the
//! base page. Routing in an inner page works the same way: an index-entry delta whose range holds
//! the probe answers at once, otherwise the base page's separators decide.
//!
//! *Collecting* a page (for consolidation, splits and scans) replays the chain onto the base page:
//! the deltas are gathered, sorted by key with the newest first, and merged with the base page's
//! sorted run in one pass.
//!
//! # Why an index entry may answer from its own range
//! An index-entry delta `[separator, child_high) -> child` was posted when the parent routed all of
//! that range to the child's left neighbour. A later split of `child` posts a *newer* entry, which a
//! newest-first walk meets first. Routing is therefore never too far right; at worst it is too far
//! left (a page that has since split), which the B-link rule repairs by following right links. Page
//! low keys never change for a PID, which is what makes "too far left" detectable and safe.

use core::cmp::Ordering as CmpOrdering;
use core::ops::Bound;

use crate::mapping::Pid;
use crate::page::{self, Body, LeafRef, NodeRef, RemovalState};
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
            "the lookup shortcut disagrees with the chain"
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

/// Whether `key` lies inside `(lo, hi)` bounds.
#[inline]
pub(crate) fn in_bounds<K: Ord>(key: &K, lo: Bound<&K>, hi: Bound<&K>) -> bool {
    let above = match lo {
        Bound::Included(l) => key >= l,
        Bound::Excluded(l) => key > l,
        Bound::Unbounded => true,
    };
    above
        && match hi {
            Bound::Included(h) => key <= h,
            Bound::Excluded(h) => key < h,
            Bound::Unbounded => true,
        }
}

/// Where a leaf collection appends its records, in ascending key order: a vector of references
/// (consolidation, splits, the range iterator) or a scan's own output, which clones each record
/// straight into the caller's vector (`BwTree::scan_into`) without an intermediate buffer.
pub(crate) trait RecordSink<'g, K, V> {
    /// Appends one record.
    fn push(&mut self, key: &'g K, value: &'g V);

    /// Appends a run of records from a base page (`keys` and `values` have the same length).
    fn push_run(&mut self, keys: &'g [K], values: &'g [V]);
}

impl<'g, K, V> RecordSink<'g, K, V> for Vec<(&'g K, &'g V)> {
    #[inline]
    fn push(&mut self, key: &'g K, value: &'g V) {
        Vec::push(self, (key, value));
    }

    #[inline]
    fn push_run(&mut self, keys: &'g [K], values: &'g [V]) {
        self.extend(keys.iter().zip(values));
    }
}

/// Appends to `out`, in ascending key order, every record of the leaf page whose key lies within
/// `(lo, hi)`: the page's logical content as of `head`.
pub(crate) fn collect_leaf<'g, K: Ord, V>(
    head: NodeRef<'g, K, V>,
    lo: Bound<&K>,
    hi: Bound<&K>,
    out: &mut Vec<(&'g K, &'g V)>,
) {
    // One allocation sized for the usual chain of single-record deltas (a batch reserves more).
    let mut deltas = Vec::with_capacity(head.meta.depth as usize);
    collect_leaf_with(head, lo, hi, usize::MAX, out, &mut deltas);
}

/// The records of one leaf snapshot's delta chain that a [`collect_leaf`] merges into its base run,
/// newest first (`None` marks a delete): a scratch buffer callers may reuse across leaves.
pub(crate) type DeltaScratch<'g, K, V> = Vec<(&'g K, Option<&'g V>)>;

/// [`collect_leaf`] appending only the first `limit` records to any [`RecordSink`], with a
/// caller-provided scratch buffer for the deltas (cleared first), so that a scan over many leaves
/// allocates it once. Returns how many records it appended.
pub(crate) fn collect_leaf_with<'g, K: Ord, V, S: RecordSink<'g, K, V>>(
    head: NodeRef<'g, K, V>,
    lo: Bound<&K>,
    hi: Bound<&K>,
    limit: usize,
    out: &mut S,
    deltas: &mut DeltaScratch<'g, K, V>,
) -> usize {
    deltas.clear();
    if head.meta.depth > 0 {
        // The walk below is a chain of dependent misses; let the base page's arrive meanwhile.
        head.prefetch_leaf_base();
    }
    let mut node = head;
    loop {
        match node.body() {
            Body::Insert(delta) => {
                if in_bounds(&delta.key, lo, hi) {
                    deltas.push((&delta.key, Some(&delta.value)));
                }
            }
            Body::Delete(delta) => {
                if in_bounds(&delta.key, lo, hi) {
                    deltas.push((&delta.key, None));
                }
            }
            Body::Batch(batch) => {
                // Sorted and distinct: only the slice inside the bounds is looked at.
                let keys = batch.keys();
                let start = keys.partition_point(|k| !in_bounds(k, lo, Bound::Unbounded));
                let end = start + keys[start..].partition_point(|k| in_bounds(k, lo, hi));
                deltas.extend(
                    keys[start..end]
                        .iter()
                        .zip(&batch.values()[start..end])
                        .map(|(k, v)| (k, v.as_ref())),
                );
            }
            Body::Split(_) | Body::Remove(_) | Body::Collapse => {}
            Body::Leaf(base) => {
                let start = match lo {
                    Bound::Included(l) => base.lower_bound(l, false),
                    Bound::Excluded(l) => base.lower_bound(l, true),
                    Bound::Unbounded => 0,
                };
                let end = match hi {
                    Bound::Included(h) => base.lower_bound(h, true),
                    Bound::Excluded(h) => base.lower_bound(h, false),
                    Bound::Unbounded => base.keys().len(),
                };
                let end = end.max(start);
                return apply_deltas_to_run(
                    deltas,
                    &base.keys()[start..end],
                    &base.values()[start..end],
                    limit,
                    out,
                );
            }
            Body::Merge(merge) => {
                // The page is a tree here: keys below the separator in `next`, the rest in the
                // merged-away page's chain. Collect both (they are disjoint and ordered), then
                // apply the deltas above the merge.
                let sep = &merge.separator;
                let mut run = Vec::new();
                let left_hi = if in_bounds(sep, Bound::Unbounded, hi) {
                    Bound::Excluded(sep)
                } else {
                    hi
                };
                let right_lo = match lo {
                    Bound::Unbounded => Bound::Included(sep),
                    Bound::Included(l) | Bound::Excluded(l) if l < sep => Bound::Included(sep),
                    other => other,
                };
                collect_leaf(
                    node.next().expect("a delta always has a successor"),
                    lo,
                    left_hi,
                    &mut run,
                );
                collect_leaf(merge.right_state(), right_lo, hi, &mut run);
                return apply_deltas(deltas, run.into_iter(), limit, out);
            }
            Body::Inner(_) | Body::IndexEntry(_) | Body::IndexDelete(_) => {
                unreachable!("inner node in a leaf chain")
            }
        }
        node = node.next().expect("a delta always has a successor");
    }
}

/// Sorts `deltas` (newest first, `None` = delete) by key, keeping only the newest record of each
/// key.
fn sort_newest<K: Ord, V>(deltas: &mut DeltaScratch<'_, K, V>) {
    // A stable sort keeps the newest record of each key first; drop the older ones.
    deltas.sort_by(|a, b| a.0.cmp(b.0));
    deltas.dedup_by(|later, first| later.0 == first.0);
}

/// Merges `deltas` (newest first, `None` = delete) into a sorted run of a base page (`keys` and
/// their `values`), appending the first `limit` records of the result to `out`; returns how many
/// it appended. The base records between consecutive delta keys go to `out` as whole runs.
fn apply_deltas_to_run<'g, K: Ord, V, S: RecordSink<'g, K, V>>(
    deltas: &mut DeltaScratch<'g, K, V>,
    mut keys: &'g [K],
    mut values: &'g [V],
    limit: usize,
    out: &mut S,
) -> usize {
    sort_newest(deltas);
    let mut appended = 0;
    for &(key, value) in deltas.iter() {
        // The base records below the delta's key, then the delta in place of an equal one.
        let below = keys.partition_point(|k| k < key);
        let run = below.min(limit - appended);
        out.push_run(&keys[..run], &values[..run]);
        appended += run;
        if appended == limit {
            return appended;
        }
        let skip = below + usize::from(keys.get(below) == Some(key));
        keys = &keys[skip..];
        values = &values[skip..];
        if let Some(value) = value {
            out.push(key, value);
            appended += 1;
            if appended == limit {
                return appended;
            }
        }
    }
    let run = keys.len().min(limit - appended);
    out.push_run(&keys[..run], &values[..run]);
    appended + run
}

/// [`apply_deltas_to_run`] for a run given as an iterator of records (a merged page's two parts).
fn apply_deltas<'g, K: Ord, V, S: RecordSink<'g, K, V>>(
    deltas: &mut DeltaScratch<'g, K, V>,
    base: impl Iterator<Item = (&'g K, &'g V)>,
    limit: usize,
    out: &mut S,
) -> usize {
    sort_newest(deltas);
    let mut appended = 0;

    let mut base = base.peekable();
    let mut newer = deltas.iter().peekable();
    while appended < limit {
        // The smaller key goes next; on a tie the delta replaces (or deletes) the base record.
        let from_base = match (base.peek(), newer.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(&(base_key, _)), Some(&&(delta_key, _))) => match base_key.cmp(delta_key) {
                CmpOrdering::Less => true,
                CmpOrdering::Equal => {
                    base.next();
                    false
                }
                CmpOrdering::Greater => false,
            },
        };
        if from_base {
            let (key, value) = base.next().expect("peeked above");
            out.push(key, value);
            appended += 1;
        } else if let &(key, Some(value)) = newer.next().expect("peeked above") {
            out.push(key, value);
            appended += 1;
        }
    }
    appended
}

/// For a leaf chain with a lookup-shortcut summary (insert, delete and split deltas over one leaf
/// base page, see `Meta::slots`): gathers its deltas into `deltas`, sorted by key with only the
/// newest record of each key (`None`: a delete), and returns the base page with the exact number of
/// records of the page. A consolidation then copies the base page's runs between the delta keys
/// ([`page::leaf_base_merged`]) instead of collecting the page record by record. `None` for other
/// chains (a merge or batch delta on them), which callers collect with [`collect_leaf`].
pub(crate) fn sorted_leaf_deltas<'g, K: Ord, V>(
    head: NodeRef<'g, K, V>,
    deltas: &mut DeltaScratch<'g, K, V>,
) -> Option<(LeafRef<'g, K, V>, usize)> {
    let base = head.shortcut_base()?;
    deltas.clear();
    let mut node = head;
    loop {
        match node.body() {
            Body::Insert(delta) => deltas.push((&delta.key, Some(&delta.value))),
            Body::Delete(delta) => deltas.push((&delta.key, None)),
            Body::Split(_) => {}
            Body::Leaf(_) => break,
            _ => {
                debug_assert!(
                    false,
                    "a chain with a shortcut summary holds another delta kind"
                );
                return None;
            }
        }
        node = node.next().expect("a delta always has a successor");
    }
    // A stable sort keeps the newest record of each key first; drop the older ones.
    deltas.sort_by(|a, b| a.0.cmp(b.0));
    deltas.dedup_by(|later, first| later.0 == first.0);
    let keys = base.keys();
    let mut len = keys.len();
    for &(key, value) in deltas.iter() {
        // Not `base.search`: its prefetch is for cold pages, and the update asking for this
        // consolidation has usually just searched this one.
        match (keys.binary_search(key).is_ok(), value.is_some()) {
            (false, true) => len += 1,
            (true, false) => len -= 1,
            _ => {}
        }
    }
    Some((base, len))
}

/// The logical content of an inner page as of `head`: its children in key order, each with its low
/// key (`None` for the first child, which starts at the page's own low key).
pub(crate) fn collect_inner<'g, K: Ord, V>(head: NodeRef<'g, K, V>) -> Vec<(Option<&'g K>, Pid)> {
    // Index changes, newest first: `Some(child)` posts a separator, `None` deletes one.
    let mut changes: Vec<(&'g K, Option<Pid>)> = Vec::new();
    let mut node = head;
    let mut children: Vec<(Option<&'g K>, Pid)> = loop {
        match node.body() {
            Body::IndexEntry(entry) => changes.push((&entry.separator, Some(entry.child))),
            Body::IndexDelete(delete) => {
                if delete.removal.state() != RemovalState::Aborted {
                    changes.push((&delete.separator, None));
                }
            }
            Body::Split(_) | Body::Remove(_) | Body::Collapse => {}
            Body::Inner(base) => {
                let mut children = Vec::with_capacity(base.children().len() + changes.len());
                children.push((None, base.children()[0]));
                children.extend(
                    base.separators()
                        .iter()
                        .zip(&base.children()[1..])
                        .map(|(s, c)| (Some(s), *c)),
                );
                break children;
            }
            Body::Merge(merge) => {
                let mut children =
                    collect_inner(node.next().expect("a delta always has a successor"));
                let mut right = collect_inner(merge.right_state());
                right[0].0 = Some(&merge.separator);
                children.append(&mut right);
                break children;
            }
            Body::Leaf(_) | Body::Insert(_) | Body::Delete(_) | Body::Batch(_) => {
                unreachable!("leaf node in an inner chain")
            }
        }
        node = node.next().expect("a delta always has a successor");
    };
    // Oldest first, so that later changes win.
    for (separator, child) in changes.into_iter().rev() {
        let at = children.partition_point(|(low, _)| low.is_none_or(|low| low < separator));
        let exists = matches!(children.get(at), Some((Some(low), _)) if *low == separator);
        match (child, exists) {
            (Some(child), true) => children[at].1 = child,
            (Some(child), false) => children.insert(at, (Some(separator), child)),
            (None, true) => {
                children.remove(at);
            }
            (None, false) => {}
        }
    }
    // Drop anything a split moved to the right sibling (entries are kept below `high`).
    if let Some(high) = head.high() {
        children.retain(|(low, _)| low.is_none_or(|low| low < high));
    }
    children
}

/// Number of index-term-delete deltas in an inner page's chain whose removal was aborted: each made
/// the header's child count one lower than the real one (see `check_invariants`).
pub(crate) fn aborted_deletes<K, V>(head: NodeRef<'_, K, V>) -> u32 {
    let mut count = 0;
    let mut node = Some(head);
    while let Some(n) = node {
        match n.body() {
            Body::IndexDelete(delete) if delete.removal.state() == RemovalState::Aborted => {
                count += 1
            }
            Body::Merge(merge) => count += aborted_deletes(merge.right_state()),
            _ => {}
        }
        node = n.next();
    }
    count
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::page::{self, OwnedNode, free_chain};

    /// A chain built by hand, freed on drop.
    struct Chain(*mut crate::page::Node<u64, u64>);

    impl Chain {
        fn head(&self) -> NodeRef<'_, u64, u64> {
            // SAFETY: the chain is alive until `self` is dropped.
            unsafe { NodeRef::from_raw(self.0) }.unwrap()
        }

        fn push(&mut self, build: impl FnOnce(NodeRef<'_, u64, u64>) -> OwnedNode<u64, u64>) {
            let node = build(self.head());
            self.0 = node.into_raw();
        }
    }

    impl Drop for Chain {
        fn drop(&mut self) {
            // SAFETY: built here, never shared.
            unsafe { free_chain(self.0) }
        }
    }

    /// A leaf chain from a base page and `(key, Some(value) | None)` deltas, oldest first.
    fn leaf_chain(base: &[(u64, u64)], deltas: &[(u64, Option<u64>)]) -> Chain {
        let mut chain =
            Chain(page::leaf_base(None, None, Pid::NONE, base.iter().copied()).into_raw());
        for &(key, value) in deltas {
            chain.push(|prev| {
                // As the write path does: the key's base position comes from a lookup on `prev`.
                let position = leaf_lookup(prev, &key).position;
                match value {
                    Some(value) => page::insert_delta(prev, key, value, 0, position),
                    None => page::delete_delta(prev, key, 0, position),
                }
            });
        }
        chain
    }

    fn collect_all(chain: &Chain, lo: Bound<&u64>, hi: Bound<&u64>) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        collect_leaf(chain.head(), lo, hi, &mut out);
        out.into_iter().map(|(k, v)| (*k, *v)).collect()
    }

    #[test]
    fn newest_delta_wins_in_get_and_collect() {
        let chain = leaf_chain(
            &[(1, 10), (3, 30), (5, 50)],
            &[
                (3, None),
                (4, Some(40)),
                (3, Some(31)),
                (1, None),
                (6, Some(60)),
            ],
        );
        let node = chain.head();
        assert_eq!(leaf_get(node, &1), None);
        assert_eq!(leaf_get(node, &3), Some(&31));
        assert_eq!(leaf_get(node, &4), Some(&40));
        assert_eq!(leaf_get(node, &5), Some(&50));
        assert_eq!(leaf_get(node, &2), None);
        assert_eq!(node.meta.depth, 5);
        assert_eq!(
            collect_all(&chain, Bound::Unbounded, Bound::Unbounded),
            vec![(3, 31), (4, 40), (5, 50), (6, 60)]
        );
        assert_eq!(
            collect_all(&chain, Bound::Excluded(&3), Bound::Included(&5)),
            vec![(4, 40), (5, 50)]
        );
        assert_eq!(
            collect_all(&chain, Bound::Included(&3), Bound::Excluded(&5)),
            vec![(3, 31), (4, 40)]
        );
        assert_eq!(
            collect_all(&chain, Bound::Included(&7), Bound::Unbounded),
            vec![]
        );
    }

    #[test]
    fn consolidation_by_runs_matches_the_collected_page() {
        // Random base pages and delta chains over a small key range (so deltas hit base keys,
        // each other and the page's ends): the page built from the base page's runs and the sorted
        // deltas must equal the collected page, record for record.
        let mut next = draws(0x9e37_79b9_7f4a_7c15);
        for case in 0..500 {
            let base: Vec<(u64, u64)> = (0..40u64)
                .filter(|_| next(3) == 0)
                .map(|k| (k, k + 1000))
                .collect();
            let deltas: Vec<(u64, Option<u64>)> = (0..next(10))
                .map(|i| (next(42), (next(3) != 0).then_some(i)))
                .collect();
            let chain = leaf_chain(&base, &deltas);
            let mut scratch = Vec::new();
            let (page, len) = sorted_leaf_deltas(chain.head(), &mut scratch)
                .expect("insert and delete deltas keep the shortcut summary");
            let built = page::leaf_base_merged(None, None, Pid::NONE, page, &scratch, len);
            let Body::Leaf(leaf) = built.as_ref().body() else {
                panic!("not a leaf")
            };
            let got: Vec<(u64, u64)> = leaf
                .keys()
                .iter()
                .copied()
                .zip(leaf.values().iter().copied())
                .collect();
            let want = collect_all(&chain, Bound::Unbounded, Bound::Unbounded);
            assert_eq!(got, want, "case {case}: base {base:?} deltas {deltas:?}");
            assert_eq!(built.as_ref().meta.size as usize, want.len());
        }
    }

    /// xorshift64 draws below `n`, from `seed`.
    fn draws(seed: u64) -> impl FnMut(u64) -> u64 {
        let mut x = seed;
        move |n| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        }
    }

    /// `(key, Some(value) | None)` records applied in order to `model`.
    fn apply(model: &mut std::collections::BTreeMap<u64, u64>, records: &[(u64, Option<u64>)]) {
        for &(key, value) in records {
            match value {
                Some(value) => model.insert(key, value),
                None => model.remove(&key),
            };
        }
    }

    /// For four bound kinds around `lo`/`hi` and several limits: the collection of `chain` must be
    /// `model`'s records in the bounds, cut at the limit, and report how many it appended.
    fn assert_collects_model(
        chain: &Chain,
        model: &std::collections::BTreeMap<u64, u64>,
        lo: u64,
        hi: u64,
        case: usize,
    ) {
        let bounds = [
            (Bound::Included(&lo), Bound::Excluded(&hi)),
            (Bound::Excluded(&lo), Bound::Included(&hi)),
            (Bound::Included(&lo), Bound::Unbounded),
            (Bound::Unbounded, Bound::Unbounded),
        ];
        let mut scratch = Vec::new();
        for (lo_bound, hi_bound) in bounds {
            let want: Vec<(u64, u64)> = model
                .iter()
                .filter(|(k, _)| in_bounds(*k, lo_bound, hi_bound))
                .map(|(k, v)| (*k, *v))
                .collect();
            for limit in [0, 1, 2, 5, want.len(), usize::MAX] {
                let mut out = Vec::new();
                let appended = collect_leaf_with(
                    chain.head(),
                    lo_bound,
                    hi_bound,
                    limit,
                    &mut out,
                    &mut scratch,
                );
                let got: Vec<(u64, u64)> = out.into_iter().map(|(k, v)| (*k, *v)).collect();
                let cut = &want[..want.len().min(limit)];
                assert_eq!(
                    got, cut,
                    "case {case}: {lo_bound:?}..{hi_bound:?} limit {limit}"
                );
                assert_eq!(appended, got.len());
            }
        }
    }

    #[test]
    fn bounded_and_limited_collection_matches_a_model() {
        // Random chains as above; the base page's runs and the deltas merged by
        // `apply_deltas_to_run`.
        let mut next = draws(0x2545_f491_4f6c_dd1d);
        for case in 0..300 {
            let base: Vec<(u64, u64)> = (0..30u64)
                .filter(|_| next(2) == 0)
                .map(|k| (k, k + 1000))
                .collect();
            let deltas: Vec<(u64, Option<u64>)> = (0..next(8))
                .map(|i| (next(32), (next(3) != 0).then_some(i)))
                .collect();
            let chain = leaf_chain(&base, &deltas);
            let mut model: std::collections::BTreeMap<u64, u64> = base.iter().copied().collect();
            apply(&mut model, &deltas);
            assert_collects_model(&chain, &model, next(34), next(34), case);
        }
    }

    #[test]
    fn collection_through_a_merge_delta_matches_a_model() {
        // A left page (keys below 20) with a merge delta taking in a right page (keys from 20),
        // each with its own deltas, and deltas on either side of the separator above the merge:
        // the two halves are collected and the newer deltas merged over them (`apply_deltas`).
        let mut next = draws(0x9e37_79b9_7f4a_7c15);
        for case in 0..300 {
            let half = |next: &mut dyn FnMut(u64) -> u64, from: u64| -> Vec<(u64, u64)> {
                (from..from + 20)
                    .filter(|_| next(2) == 0)
                    .map(|k| (k, k + 1000))
                    .collect()
            };
            let (left_base, right_base) = (half(&mut next, 0), half(&mut next, 20));
            let mut records = |from: u64, n: u64| -> Vec<(u64, Option<u64>)> {
                (0..next(n))
                    .map(|i| (from + next(20), (next(3) != 0).then_some(i + 500)))
                    .collect()
            };
            let (left_deltas, right_deltas) = (records(0, 4), records(20, 4));
            let above: Vec<(u64, Option<u64>)> = (0..next(6))
                .map(|i| (next(42), (next(3) != 0).then_some(i + 900)))
                .collect();
            let mut chain = leaf_chain(&left_base, &left_deltas);
            let right = leaf_chain(&right_base, &right_deltas);
            chain.push(|prev| page::merge_delta(prev, right.head(), Pid(7), 20));
            // The merge delta owns the right chain now (freed with `chain`).
            core::mem::forget(right);
            for &(key, value) in &above {
                chain.push(|prev| match value {
                    Some(value) => page::insert_delta(prev, key, value, 0, None),
                    None => page::delete_delta(prev, key, 0, None),
                });
            }
            let mut model: std::collections::BTreeMap<u64, u64> =
                left_base.iter().chain(&right_base).copied().collect();
            apply(&mut model, &left_deltas);
            apply(&mut model, &right_deltas);
            apply(&mut model, &above);
            assert_collects_model(&chain, &model, next(44), next(44), case);
        }
    }

    #[test]
    fn lookup_shortcut_summarises_delta_positions() {
        // Base [1, 3, 5]: key 1 has position 0, key 6 position 3.
        let chain = leaf_chain(&[(1, 10), (3, 30), (5, 50)], &[(1, None), (6, Some(60))]);
        let head = chain.head();
        assert_eq!(head.meta.slots, page::slot_bit(0) | page::slot_bit(3));
        // Key 5 (position 2) is unflagged: answered by the base page alone.
        assert_eq!(
            leaf_lookup(head, &5),
            LeafLookup {
                value: Some(&50),
                position: Some(2)
            }
        );
        // Flagged positions walk the chain, where the newest delta wins.
        assert_eq!(leaf_lookup(head, &1).value, None);
        assert_eq!(leaf_lookup(head, &6).value, Some(&60));
        // Key 7 shares position 3 with key 6: flagged, walked, absent.
        assert_eq!(leaf_lookup(head, &7).value, None);
        assert_eq!(leaf_lookup(head, &7).position, Some(3));
    }

    #[test]
    fn index_entries_route_by_their_own_range() {
        let base = page::inner_base::<u64, u64>(
            1,
            None,
            None,
            Pid::NONE,
            [100].into_iter(),
            &[Pid(1), Pid(2)],
        );
        let mut chain = Chain(base.into_raw());
        // Pid(1) split at 50 into Pid(3); then Pid(3) split at 70 into Pid(4).
        chain.push(|prev| page::index_entry_delta(prev, 50, Pid(3), Some(100), 3));
        chain.push(|prev| page::index_entry_delta(prev, 70, Pid(4), Some(100), 4));
        let node = chain.head();
        let route = |k: u64| inner_route(node, &At(&k));
        assert_eq!(route(0), Pid(1));
        assert_eq!(route(49), Pid(1));
        assert_eq!(route(50), Pid(3));
        assert_eq!(route(69), Pid(3));
        assert_eq!(route(70), Pid(4));
        assert_eq!(route(99), Pid(4));
        assert_eq!(route(100), Pid(2));
        assert_eq!(inner_route(node, &Below(&70)), Pid(3));
        assert_eq!(inner_route(node, &Below(&71)), Pid(4));
        assert_eq!(inner_route(node, &First), Pid(1));
        assert_eq!(inner_route(node, &Last), Pid(2));
        let children: Vec<_> = collect_inner(node)
            .into_iter()
            .map(|(low, pid)| (low.copied(), pid))
            .collect();
        assert_eq!(
            children,
            vec![
                (None, Pid(1)),
                (Some(50), Pid(3)),
                (Some(70), Pid(4)),
                (Some(100), Pid(2))
            ]
        );
    }
}
#[cfg(all(test, not(loom)))]
mod delete_tests {
    use super::*;
    use crate::page::{self, Removal, free_chain};
    #[test]
    fn index_delete_removes_the_separator() {
        let base = page::inner_base::<u64, u64>(
            1,
            None,
            None,
            Pid::NONE,
            [18, 27, 34].into_iter(),
            &[Pid(1), Pid(2), Pid(4), Pid(5)],
        );
        let base = base.into_raw();
        let removal = Removal::new();
        // SAFETY: test-local chain.
        let head = page::index_delete_delta(
            unsafe { NodeRef::from_raw(base) }.unwrap(),
            27,
            Some(34),
            Pid(2),
            removal.clone(),
            3,
        )
        .into_raw();
        removal.decide(true);
        // SAFETY: test-local chain.
        let children: Vec<_> = collect_inner(unsafe { NodeRef::from_raw(head) }.unwrap())
            .into_iter()
            .map(|c| c.1)
            .collect();
        assert_eq!(children, vec![Pid(1), Pid(2), Pid(5)]);
        // SAFETY: test-local chain.
        unsafe { free_chain(head) };
    }
}
