//! Collecting a page: the chain's deltas gathered, sorted newest first per key, and merged with the
//! base page's sorted run in one pass, into any [`RecordSink`].

use core::ops::Bound;

use crate::mapping::Pid;
use crate::page::{Body, LeafRef, NodeRef, RemovalState};

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

/// A sink that only counts what it is given.
#[derive(Default)]
pub(crate) struct Count(pub(crate) usize);

impl<'g, K, V> RecordSink<'g, K, V> for Count {
    #[inline]
    fn push(&mut self, _: &'g K, _: &'g V) {
        self.0 += 1;
    }

    #[inline]
    fn push_run(&mut self, keys: &'g [K], _: &'g [V]) {
        self.0 += keys.len();
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
    // A merge delta makes the chain a tree: keys below its separator in `next`, the rest in the
    // merged-away page's chain. The tree is walked depth first, left side first, without
    // recursion (a cascade of merges can nest deeply): the right sides still to visit wait in
    // `pending` with their bounds and the number of `deltas` above them, innermost last, so that
    // they come out in key order. Each base page is one *segment*, to which the deltas on its path
    // from the head apply (those within the segment's bounds).
    let mut pending: Vec<RightSide<'g, K, V, Bound<&K>>> = Vec::new();
    let mut segment: DeltaScratch<'g, K, V> = Vec::new();
    let mut appended = 0;
    let mut merged = false;
    let (mut node, mut lo, mut hi) = (head, lo, hi);
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
                let (keys, values) = (&base.keys()[start..end], &base.values()[start..end]);
                let Some(RightSide {
                    head: right,
                    lo: right_lo,
                    hi: right_hi,
                    above,
                }) = pending.pop()
                else {
                    if !merged {
                        // A plain chain (the common case): every delta is within the bounds.
                        return apply_deltas_to_run(deltas, keys, values, limit, out);
                    }
                    segment.clear();
                    segment.extend(
                        deltas
                            .iter()
                            .filter(|&&(k, _)| in_bounds(k, lo, hi))
                            .copied(),
                    );
                    return appended
                        + apply_deltas_to_run(&mut segment, keys, values, limit - appended, out);
                };
                segment.clear();
                segment.extend(
                    deltas
                        .iter()
                        .filter(|&&(k, _)| in_bounds(k, lo, hi))
                        .copied(),
                );
                appended += apply_deltas_to_run(&mut segment, keys, values, limit - appended, out);
                if appended == limit {
                    return appended;
                }
                // On to the right side of the innermost merge still pending: only the deltas
                // above that merge apply there.
                deltas.truncate(above);
                (node, lo, hi) = (right, right_lo, right_hi);
                continue;
            }
            Body::Merge(merge) => {
                merged = true;
                let sep = &merge.separator;
                let right_lo = match lo {
                    Bound::Included(l) | Bound::Excluded(l) if l >= sep => lo,
                    _ => Bound::Included(sep),
                };
                // The right side holds keys from the separator on, if the bounds reach there.
                if in_bounds(sep, Bound::Unbounded, hi) {
                    pending.push(RightSide {
                        head: merge.right_state(),
                        lo: right_lo,
                        hi,
                        above: deltas.len(),
                    });
                    hi = Bound::Excluded(sep);
                }
            }
            Body::Inner(_) | Body::IndexEntry(_) | Body::IndexDelete(_) => {
                unreachable!("inner node in a leaf chain")
            }
        }
        node = node.next().expect("a delta always has a successor");
    }
}

/// The right side of a merge delta still to collect, in a walk of a chain that merges made a tree:
/// its chain, the bounds of its keys (`B`: a bound, or a key for inner pages), and how many of the
/// records gathered on the path above the merge apply to it (the first `above`).
struct RightSide<'g, K, V, B> {
    head: NodeRef<'g, K, V>,
    lo: B,
    hi: B,
    above: usize,
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

/// For a leaf chain with a lookup-shortcut summary (insert, delete and split deltas over one leaf
/// base page, see `Meta::slots`): gathers its deltas into `deltas`, sorted by key with only the
/// newest record of each key (`None`: a delete), and returns the base page with the exact number of
/// records of the page. A consolidation then copies the base page's runs between the delta keys
/// ([`leaf_base_merged`](crate::page::leaf_base_merged)) instead of collecting the page record by record. `None` for other
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
///
/// A merge delta makes the chain a tree (see [`collect_leaf_with`]); it is walked depth first,
/// left side first, without recursion. Each inner base page reached is a *segment* covering the
/// key range its path allows: below the separator of each merge whose left side it is in, from the
/// separator on for each merge whose right side it is in, and below the high key of the newest
/// node of the page it belongs to. A segment's content is its base page's children in that range,
/// with the index changes on its path applied, oldest first.
pub(crate) fn collect_inner<'g, K: Ord, V>(head: NodeRef<'g, K, V>) -> Vec<(Option<&'g K>, Pid)> {
    // Index changes on the current path, newest first: `Some(child)` posts a separator, `None`
    // deletes one.
    let mut changes: Vec<(&'g K, Option<Pid>)> = Vec::new();
    // Right sides still to visit: their head, the segment's low key, its high key, and the number
    // of changes above them.
    let mut pending: Vec<RightSide<'g, K, V, Option<&'g K>>> = Vec::new();
    let mut children: Vec<(Option<&'g K>, Pid)> = Vec::new();
    let (mut node, mut lo, mut hi): (_, Option<&'g K>, Option<&'g K>) = (head, None, head.high());
    loop {
        match node.body() {
            Body::IndexEntry(entry) => changes.push((&entry.separator, Some(entry.child))),
            Body::IndexDelete(delete) => {
                if delete.removal.state() != RemovalState::Aborted {
                    changes.push((&delete.separator, None));
                }
            }
            Body::Split(_) | Body::Remove(_) | Body::Collapse => {}
            Body::Inner(base) => {
                let start = children.len();
                // The segment's first child starts at the segment's low key.
                children.push((lo, base.children()[0]));
                children.extend(
                    base.separators()
                        .iter()
                        .zip(&base.children()[1..])
                        .map(|(s, c)| (Some(s), *c)),
                );
                let inside =
                    |key: &K| lo.is_none_or(|lo| lo <= key) && hi.is_none_or(|hi| key < hi);
                // Oldest first, so that later changes win; changes outside the segment belong to
                // another segment.
                for &(separator, child) in changes.iter().rev().filter(|(s, _)| inside(s)) {
                    let segment = &mut children[start..];
                    let at =
                        segment.partition_point(|(low, _)| low.is_none_or(|low| low < separator));
                    let exists =
                        matches!(segment.get(at), Some((Some(low), _)) if *low == separator);
                    match (child, exists) {
                        (Some(child), true) => segment[at].1 = child,
                        (Some(child), false) => {
                            children.insert(start + at, (Some(separator), child))
                        }
                        (None, true) => {
                            children.remove(start + at);
                        }
                        (None, false) => {}
                    }
                }
                // Drop anything a split moved to a right sibling (entries are kept below `hi`).
                if let Some(hi) = hi {
                    let keep = start
                        + children[start..]
                            .partition_point(|(low, _)| low.is_none_or(|low| low < hi));
                    children.truncate(keep);
                }
                let Some(RightSide {
                    head: right,
                    lo: right_lo,
                    hi: right_hi,
                    above,
                }) = pending.pop()
                else {
                    return children;
                };
                changes.truncate(above);
                // The right side's own page ends at its newest node's high key.
                let right_hi = match (right_hi, right.high()) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                (node, lo, hi) = (right, right_lo, right_hi);
                continue;
            }
            Body::Merge(merge) => {
                pending.push(RightSide {
                    head: merge.right_state(),
                    lo: Some(&merge.separator),
                    hi,
                    above: changes.len(),
                });
                hi = Some(&merge.separator);
            }
            Body::Leaf(_) | Body::Insert(_) | Body::Delete(_) | Body::Batch(_) => {
                unreachable!("leaf node in an inner chain")
            }
        }
        node = node.next().expect("a delta always has a successor");
    }
}

/// Number of index-term-delete deltas in an inner page's chain whose removal was aborted: each made
/// the header's child count one lower than the real one (see `check_invariants`).
pub(crate) fn aborted_deletes<K, V>(head: NodeRef<'_, K, V>) -> u32 {
    let mut count = 0;
    // Merged pages' chains still to walk (no recursion: merges can nest deeply).
    let mut pending = vec![head];
    while let Some(mut node) = pending.pop() {
        loop {
            match node.body() {
                Body::IndexDelete(delete) if delete.removal.state() == RemovalState::Aborted => {
                    count += 1
                }
                Body::Merge(merge) => pending.push(merge.right_state()),
                _ => {}
            }
            match node.next() {
                Some(next) => node = next,
                None => break,
            }
        }
    }
    count
}
