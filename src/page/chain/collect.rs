//! Collecting a page: the chain's deltas gathered, sorted newest first per key, and merged with the
//! base page's sorted run in one pass, into any [`RecordSink`].

use core::cmp::Ordering as CmpOrdering;
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
