//! The engine under every batched write: routes sorted entries to leaves, posts one batch delta per
//! leaf with one CAS, and afterwards rebalances the pages the batch left over- or under-full.
//!
//! # One group
//! The entries still to post are kept sorted in a queue. A group is the run of them that the leaf
//! covering the first one holds: the leaf's `[low, high)` is read from the head it was found at.
//! For each entry the current value is read from that same head, the caller's `decide` closure says
//! whether to post it, and the entries to post become one batch delta whose entry count is the
//! head's count adjusted by the group's inserts of absent keys and deletions of present ones. The
//! CAS on the leaf's head is the linearization point of every key in the group, and the previous
//! values reported are exactly those of the head it replaced. A lost CAS hands the delta back: its
//! entries are taken out, the leaf is re-read (moving right if it split) and the group is trimmed to
//! the keys the new head still covers; the rest go back to the queue. Nothing is posted on a page
//! whose newest node is an unfinished structure modification: the leaf is found with write intent,
//! which completes it first. The group's buffers are reused from one group to the next, so a group
//! of one key (a random batch spread over a large tree) allocates only its delta and its verdicts,
//! and a group is cut from the queue by a galloping search from the front, O(log) of the group's
//! length rather than of the queue's.
//!
//! # Deferred rebalancing
//! A group's delta can leave its leaf above capacity, below the merge threshold or with a long
//! chain. Such leaves are not fixed one key at a time: the key range of each such group is recorded
//! and, once the batch is posted, each page of those ranges is visited once: an overfull leaf is cut
//! into as many pages as it needs (`split`), any other goes through the ordinary `maintain`.

use core::any::Any;
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use crossbeam_epoch::Guard;

use super::{BatchMetrics, Progress};
use crate::BwTree;
use crate::page::chain::{self, At};
use crate::page::{self, Body, NodeRef};
use crate::protocol::policy::{Action, Trigger};
use crate::protocol::progress::{Attempts, keys_out_of_order};
use crate::protocol::split::Cut;
use crate::protocol::traverse::{Intent, PageRef};
use crate::research::stats::CasKind;

/// One input item on its way into the tree.
pub(crate) struct Entry<K, V> {
    pub(crate) key: K,
    /// The new value, or `None` to delete the key.
    pub(crate) value: Option<V>,
    /// Where its result goes (its position in the input).
    pub(crate) slot: usize,
}

/// What the caller's `decide` closure says about one entry, given the key's current value.
pub(crate) enum Verdict<E> {
    /// Post it.
    Apply,
    /// Leave the key alone.
    Skip,
    /// Stop the batch (nothing more is posted).
    Abort(E),
}

/// The caller's verdict on each entry, given the key's current value.
pub(crate) type Decide<'d, K, V, E> = dyn FnMut(&Entry<K, V>, Option<&V>) -> Verdict<E> + 'd;

/// What happened to one entry, reported to the caller's sink.
pub(crate) enum Outcome<'a, K, V> {
    /// Posted; `previous` is the value the CAS replaced, `written` the value now stored.
    Posted {
        slot: usize,
        key: &'a K,
        previous: Option<&'a V>,
        written: Option<&'a V>,
    },
    /// Not posted (the verdict was `Skip`); `current` is the value the key holds.
    Skipped {
        slot: usize,
        key: &'a K,
        current: Option<&'a V>,
    },
}

/// Why posting stopped early.
pub(crate) enum Stop<K, E> {
    /// `decide` rejected the entry of `key` (input position `slot`).
    Abort { key: K, slot: usize, error: E },
    /// `decide` or the progress callback panicked.
    Panic(Box<dyn Any + Send>),
}

/// Buffers that posting reuses from group to group, so that a group of one key (a random batch
/// spread thin over a large tree) costs no allocation besides its delta and its verdicts. Each is
/// empty between groups.
struct Scratch<K, V> {
    /// The entries of the group being posted, sorted.
    group: Vec<Entry<K, V>>,
    /// The entries going into the group's delta.
    posted: Vec<(K, Option<V>)>,
    /// Their input positions.
    slots: Vec<usize>,
}

impl<K, V> Default for Scratch<K, V> {
    fn default() -> Self {
        Scratch {
            group: Vec::new(),
            posted: Vec::new(),
            slots: Vec::new(),
        }
    }
}

/// The state of one batch call: metrics, the ranges to rebalance, progress reporting.
pub(crate) struct Run<'o, K> {
    pub(crate) metrics: BatchMetrics,
    started: Instant,
    /// Key ranges `[first, last]` of groups whose leaf needs maintenance.
    touched: Vec<(K, K)>,
    progress: Option<(Duration, &'o mut dyn FnMut(Progress))>,
    last_report: Instant,
    /// Input items finished.
    pub(crate) done: usize,
    /// Input length, if known.
    pub(crate) total: Option<usize>,
}

impl<'o, K> Run<'o, K> {
    pub(crate) fn new(progress: Option<(Duration, &'o mut dyn FnMut(Progress))>) -> Self {
        let now = Instant::now();
        Run {
            metrics: BatchMetrics::default(),
            started: now,
            touched: Vec::new(),
            progress,
            last_report: now,
            done: 0,
            total: None,
        }
    }

    /// Calls the progress callback if the interval has passed (or `last`). A panic in the
    /// callback is caught and handed back.
    pub(crate) fn report(&mut self, last: bool) -> Result<(), Box<dyn Any + Send>> {
        let Some((every, callback)) = &mut self.progress else {
            return Ok(());
        };
        let now = Instant::now();
        if !last && now.duration_since(self.last_report) < *every {
            return Ok(());
        }
        self.last_report = now;
        let progress = Progress {
            done: self.done,
            total: self.total,
            elapsed: now.duration_since(self.started),
        };
        catch_unwind(AssertUnwindSafe(|| callback(progress)))
    }

    /// No more progress reports (during a rollback or after a panic in the callback).
    pub(crate) fn silence(&mut self) {
        self.progress = None;
    }

    /// Stamps the elapsed time into the metrics.
    pub(crate) fn finish(&mut self) -> BatchMetrics {
        self.metrics.elapsed = self.started.elapsed();
        self.metrics.clone()
    }
}

impl<K, V> BwTree<K, V>
where
    K: Ord + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Posts `entries` (sorted by distinct keys) group by group; see the module docs.
    ///
    /// `decide` sees each entry with its key's current value (it may be asked again for the same
    /// entry after a lost CAS; the last answer counts); `sink` hears what happened to each entry.
    pub(crate) fn post_sorted<E>(
        &self,
        entries: Vec<Entry<K, V>>,
        decide: &mut Decide<'_, K, V, E>,
        sink: &mut dyn FnMut(Outcome<'_, K, V>),
        run: &mut Run<'_, K>,
    ) -> Result<(), Stop<K, E>> {
        let mut queue: VecDeque<Entry<K, V>> = entries.into();
        let mut scratch = Scratch::default();
        while let Some(first) = queue.front() {
            let guard = &self.guard();
            let page = self.find_leaf(&At(&first.key), Intent::Write, guard);
            run.metrics.descents += 1;
            let node = page.node();
            let len = leading(&queue, |e| node.below_high(&e.key));
            scratch.group.extend(queue.drain(..len));
            let finished =
                self.post_group(&mut scratch, page, &mut queue, decide, sink, run, guard)?;
            run.done += finished;
            run.report(false).map_err(Stop::Panic)?;
        }
        Ok(())
    }

    /// Posts the group in `scratch.group` on `page` (retrying on lost CASes); returns how many
    /// entries it finished, leaving the scratch buffers empty (on an error the batch stops and the
    /// buffers are dropped).
    #[allow(clippy::too_many_arguments)]
    fn post_group<'g, E>(
        &self,
        scratch: &mut Scratch<K, V>,
        mut page: PageRef<'g, K, V>,
        queue: &mut VecDeque<Entry<K, V>>,
        decide: &mut Decide<'_, K, V, E>,
        sink: &mut dyn FnMut(Outcome<'_, K, V>),
        run: &mut Run<'_, K>,
        guard: &'g Guard,
    ) -> Result<usize, Stop<K, E>> {
        let mut attempts = Attempts::new("a batch's leaf group");
        loop {
            attempts.again();
            let node = page.node();
            let group = &mut scratch.group;
            // The page may have split since the group was formed: hand back what it lost.
            let keep = group.partition_point(|e| node.below_high(&e.key));
            for entry in group.drain(keep..).rev() {
                queue.push_front(entry);
            }
            // The group's first key was routed to this page, which keeps it after a split (a
            // split hands on the upper half), unless the key type's order is broken.
            if group.is_empty() {
                keys_out_of_order("a batch's leaf group");
            }
            let appending = beyond_every_key(node, &group[0].key);
            // Each entry's verdict and current value, in group order.
            let mut verdicts: Vec<(Verdict<E>, Option<&'g V>)> = Vec::with_capacity(group.len());
            for entry in group.iter() {
                let current = if appending {
                    None
                } else {
                    chain::leaf_get(node, &entry.key)
                };
                let verdict = catch_unwind(AssertUnwindSafe(|| decide(entry, current)))
                    .map_err(Stop::Panic)?;
                if let Verdict::Abort(error) = verdict {
                    return Err(Stop::Abort {
                        key: entry.key.clone(),
                        slot: entry.slot,
                        error,
                    });
                }
                verdicts.push((verdict, current));
            }
            let (posted, slots) = (&mut scratch.posted, &mut scratch.slots);
            let mut held: Vec<(Entry<K, V>, Option<&'g V>)> = Vec::new();
            let mut size = i64::from(node.meta.size);
            for (entry, (verdict, current)) in group.drain(..).zip(&verdicts) {
                if let Verdict::Apply = verdict {
                    size += match (&entry.value, current) {
                        (Some(_), None) => 1,
                        (None, Some(_)) => -1,
                        _ => 0,
                    };
                    slots.push(entry.slot);
                    posted.push((entry.key, entry.value));
                } else {
                    held.push((entry, *current));
                }
            }
            if posted.is_empty() {
                run.metrics.skipped += held.len();
                for (entry, current) in &held {
                    sink(Outcome::Skipped {
                        slot: entry.slot,
                        key: &entry.key,
                        current: *current,
                    });
                }
                return Ok(held.len());
            }
            let size = u32::try_from(size).expect("a page holds fewer than 2^32 entries");
            let delta = page::batch_delta(node, posted.drain(..), size);
            run.metrics.cas_attempts += 1;
            let installed = self.table.cas(page.pid, page.node, delta, guard);
            self.stats.cas(CasKind::Batch, installed.is_ok());
            match installed {
                Ok(installed) => {
                    let Body::Batch(batch) = installed.body() else {
                        unreachable!("a batch delta was installed")
                    };
                    let (keys, values) = (batch.keys(), batch.values());
                    // The posted entries are the applied ones, in group order.
                    let previous = verdicts
                        .iter()
                        .filter(|(verdict, _)| matches!(verdict, Verdict::Apply))
                        .map(|(_, current)| *current);
                    for (i, (slot, previous)) in slots.drain(..).zip(previous).enumerate() {
                        sink(Outcome::Posted {
                            slot,
                            key: &keys[i],
                            previous,
                            written: values[i].as_ref(),
                        });
                    }
                    for (entry, current) in &held {
                        sink(Outcome::Skipped {
                            slot: entry.slot,
                            key: &entry.key,
                            current: *current,
                        });
                    }
                    run.metrics.leaves_touched += 1;
                    run.metrics.applied += keys.len();
                    run.metrics.skipped += held.len();
                    let installed = PageRef {
                        pid: page.pid,
                        node: installed,
                    };
                    if self.action(installed, Trigger::Pass, false, guard) != Action::Nothing {
                        run.touched
                            .push((keys[0].clone(), keys[keys.len() - 1].clone()));
                    }
                    return Ok(keys.len() + held.len());
                }
                Err(delta) => {
                    run.metrics.cas_failures += 1;
                    let back = delta.into_batch_entries();
                    scratch.group = merge_back(back, slots.drain(..), held);
                    page = self.relocate(page.pid, &scratch.group[0].key, guard);
                }
            }
        }
    }

    /// The deferred rebalancing: visits every page of the recorded ranges once, cutting overfull
    /// leaves into pages that fit and handing the others to `maintain`.
    pub(crate) fn rebalance(&self, run: &mut Run<'_, K>) {
        let mut touched = core::mem::take(&mut run.touched);
        touched.sort_by(|a, b| a.0.cmp(&b.0));
        // Everything below `passed` has been visited (`None` before the first range).
        let mut passed: Option<K> = None;
        for (first, last) in touched {
            let mut cursor = match passed.take() {
                Some(p) if p > last => {
                    passed = Some(p);
                    continue;
                }
                Some(p) if p > first => p,
                _ => first,
            };
            let mut splits = Attempts::new("a batch's rebalancing");
            loop {
                let guard = &self.guard();
                let page = self.find_leaf(&At(&cursor), Intent::Write, guard);
                run.metrics.descents += 1;
                let node = page.node();
                if node.meta.size as usize > self.config.leaf_capacity {
                    run.metrics.splits +=
                        self.split_into(page, Cut::Capacity(self.config.leaf_capacity), guard);
                    // Look again: the leaf now ends earlier (or the split lost a race).
                    splits.again();
                    continue;
                }
                self.maintain(page, guard);
                run.metrics.pages_maintained += 1;
                match node.high() {
                    Some(high) if *high <= last => cursor = high.clone(),
                    Some(high) => {
                        passed = Some(high.clone());
                        break;
                    }
                    // The rightmost leaf: every later range has been visited.
                    None => return,
                }
            }
        }
    }
}

/// Whether `key` lies beyond every key a leaf chain mentions (so that it, and every larger key, is
/// absent): the append fast path, which skips the per-key lookups. Conservative: `false` when unsure.
fn beyond_every_key<K: Ord, V>(head: NodeRef<'_, K, V>, key: &K) -> bool {
    if head.high().is_some() {
        return false;
    }
    let mut node = head;
    loop {
        match node.body() {
            Body::Insert(delta) if delta.key >= *key => return false,
            Body::Batch(batch) if batch.keys().last().is_some_and(|last| last >= key) => {
                return false;
            }
            Body::Insert(_) | Body::Delete(_) | Body::Batch(_) => {}
            Body::Split(_) | Body::Remove(_) | Body::Collapse => {}
            Body::Leaf(base) => return base.keys().last().is_none_or(|last| last < key),
            Body::Merge(_) | Body::Inner(_) | Body::IndexEntry(_) | Body::IndexDelete(_) => {
                return false;
            }
        }
        match node.next() {
            Some(next) => node = next,
            None => return false,
        }
    }
}

/// How many entries at the front of `queue` satisfy `pred` (which holds for a prefix of it): a
/// galloping search from the front, O(log g) for a group of `g` entries instead of O(log n) over
/// the whole queue — most groups of a random batch are a single key.
fn leading<T>(queue: &VecDeque<T>, pred: impl Fn(&T) -> bool) -> usize {
    // Every entry before `lo` satisfies `pred`; the answer lies in `lo..=hi`.
    let (mut lo, mut step) = (0, 1);
    while lo + step <= queue.len() && pred(&queue[lo + step - 1]) {
        lo += step;
        step *= 2;
    }
    let mut hi = (lo + step - 1).min(queue.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(&queue[mid]) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Rebuilds a group after a lost CAS: the entries taken back out of the delta (with their slots)
/// merged, in key order, with those that were held back.
fn merge_back<K: Ord, V>(
    back: Vec<(K, Option<V>)>,
    slots: impl Iterator<Item = usize>,
    held: Vec<(Entry<K, V>, Option<&V>)>,
) -> Vec<Entry<K, V>> {
    let mut out = Vec::with_capacity(back.len() + held.len());
    let mut posted = back
        .into_iter()
        .zip(slots)
        .map(|((key, value), slot)| Entry { key, value, slot })
        .peekable();
    let mut held = held.into_iter().map(|(entry, _)| entry).peekable();
    loop {
        let take_posted = match (posted.peek(), held.peek()) {
            (Some(p), Some(h)) => p.key < h.key,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return out,
        };
        let next = if take_posted {
            posted.next()
        } else {
            held.next()
        };
        out.extend(next);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::leading;
    use std::collections::VecDeque;

    #[test]
    fn leading_counts_the_prefix_that_satisfies() {
        for len in 0..40usize {
            let queue: VecDeque<usize> = (0..len).collect();
            for cut in 0..=len {
                assert_eq!(leading(&queue, |&x| x < cut), cut, "len {len}, cut {cut}");
            }
        }
    }
}
