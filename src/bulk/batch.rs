//! The public batched writes: `insert_batch`, `remove_batch`, `try_insert_batch` (with rollback)
//! and `insert_batch_if_absent`. See the module docs of `bulk` for the guarantees.

use core::any::Any;
use core::convert::Infallible;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use super::engine::{Decide, Entry, Outcome, Run, Stop, Verdict};
use super::{BatchError, BatchFailure, BatchOptions, BatchOutput, KeyExists};
use crate::BwTree;

/// One key the batch wrote, for a rollback.
struct Applied<K, V> {
    key: K,
    previous: Option<V>,
    written: Option<V>,
}

/// How driving the input stopped early.
enum Halt<K, E> {
    Failure(BatchFailure<K, E>),
    Panic(Box<dyn Any + Send>),
}

/// The keys written, chunk by chunk (each chunk's keys sorted and distinct).
type Log<K, V> = Vec<Vec<Applied<K, V>>>;

impl<K, V> BwTree<K, V>
where
    K: Ord + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Inserts many pairs, overwriting existing keys; returns each key's previous value in input
    /// order, and the metrics.
    ///
    /// The input is sorted and grouped by leaf, and each group is posted as one delta record with
    /// one CAS; splits and merges are done once per page at the end. Each key's update is
    /// linearizable; **the batch as a whole is not atomic** (see the [`bulk`](crate::bulk) docs).
    /// A key given twice is written in input order: the last value stays.
    ///
    /// ```
    /// use bwtree::BwTree;
    ///
    /// let tree = BwTree::new();
    /// tree.insert(5, 50);
    /// let out = tree.insert_batch([(9, 90), (5, 51), (1, 10)]);
    /// assert_eq!(out.results, vec![None, Some(50), None]);
    /// assert_eq!(out.metrics.applied, 3);
    /// assert_eq!(tree.get(&5), Some(51));
    /// ```
    pub fn insert_batch<I>(&self, pairs: I) -> BatchOutput<V>
    where
        I: IntoIterator<Item = (K, V)>,
    {
        self.insert_batch_with(pairs, BatchOptions::new())
    }

    /// [`BwTree::insert_batch`] with options: a progress callback and the chunk size.
    ///
    /// A panic in the progress callback stops the batch after the groups already posted (they stay
    /// posted), runs the deferred rebalancing, and is then resumed.
    pub fn insert_batch_with<I>(&self, pairs: I, options: BatchOptions<'_>) -> BatchOutput<V>
    where
        I: IntoIterator<Item = (K, V)>,
    {
        let source = pairs
            .into_iter()
            .map(|(key, value)| Ok::<_, Infallible>((key, Some(value))));
        self.infallible(source, &mut |_, _| Verdict::Apply, options)
    }

    /// Removes many keys; returns the value each had, in input order (`None`: it was absent, and
    /// nothing is posted for it), and the metrics. Grouped like [`BwTree::insert_batch`]; merges of
    /// pages that became under-full are done once per page at the end.
    ///
    /// ```
    /// use bwtree::BwTree;
    ///
    /// let tree = BwTree::from_sorted_iter((0..10u64).map(|k| (k, k))).unwrap();
    /// let out = tree.remove_batch([3, 42, 7]);
    /// assert_eq!(out.results, vec![Some(3), None, Some(7)]);
    /// assert_eq!(tree.len(), 8);
    /// ```
    pub fn remove_batch<I>(&self, keys: I) -> BatchOutput<V>
    where
        I: IntoIterator<Item = K>,
    {
        self.remove_batch_with(keys, BatchOptions::new())
    }

    /// [`BwTree::remove_batch`] with options (see [`BwTree::insert_batch_with`]).
    pub fn remove_batch_with<I>(&self, keys: I, options: BatchOptions<'_>) -> BatchOutput<V>
    where
        I: IntoIterator<Item = K>,
    {
        let source = keys.into_iter().map(|key| Ok::<_, Infallible>((key, None)));
        let mut present_only = |_: &Entry<K, V>, current: Option<&V>| {
            if current.is_some() {
                Verdict::Apply
            } else {
                Verdict::Skip
            }
        };
        self.infallible(source, &mut present_only, options)
    }

    /// Runs an infallible batch; resumes a panic of the progress callback after rebalancing.
    fn infallible(
        &self,
        mut source: impl Iterator<Item = Result<(K, Option<V>), Infallible>>,
        decide: &mut Decide<'_, K, V, Infallible>,
        options: BatchOptions<'_>,
    ) -> BatchOutput<V> {
        let mut run = Run::new(options.progress);
        run.total = exact_len(&source);
        let (results, halt) = self.drive(&mut source, decide, None, options.chunk, &mut run);
        self.rebalance(&mut run);
        match halt {
            None => {}
            Some(Halt::Panic(payload)) => resume_unwind(payload),
            Some(Halt::Failure(BatchFailure::Rejected { error, .. }))
            | Some(Halt::Failure(BatchFailure::Source { error, .. })) => match error {},
        }
        // A panic of the final report is resumed like any other of the callback's.
        if let Err(payload) = run.report(true) {
            resume_unwind(payload);
        }
        BatchOutput {
            results,
            metrics: run.finish(),
        }
    }

    /// Inserts many pairs from a fallible source, each only if `validate` accepts it, all or
    /// nothing: on the first error the keys already written are rolled back.
    ///
    /// `validate(key, current, new)` sees the value the key holds at the moment its group is
    /// posted (it may be called again for the same key if the group's CAS is lost; the last call
    /// decides). The input is read, sorted and posted in chunks ([`BatchOptions::chunk`]), so a
    /// source that fails late may find earlier chunks already written.
    ///
    /// On a rejected key, a source error, or a panic of the source, of `validate` or of the
    /// progress callback, every key the batch wrote is restored to its previous value if it still
    /// holds the value the batch wrote (compared with `==`); a key a concurrent writer changed since
    /// keeps that writer's value and is listed in [`BatchError::not_restored`]. A panic is resumed
    /// after the rollback. Concurrent readers may see the batch's values before the rollback: the
    /// batch is undone, not invisible.
    ///
    /// ```
    /// use bwtree::BwTree;
    ///
    /// let tree = BwTree::new();
    /// tree.insert(3, 30);
    /// let pairs = [(1, 10), (2, 20), (3, 31), (4, 40)].map(Ok::<_, String>);
    /// let err = tree
    ///     .try_insert_batch(pairs, |key, current, _| match current {
    ///         Some(_) => Err(format!("{key} exists")),
    ///         None => Ok(()),
    ///     })
    ///     .unwrap_err();
    /// assert!(err.to_string().contains("3 exists"));
    /// // Whatever was written before the rejection was rolled back.
    /// assert_eq!(tree.iter().collect::<Vec<_>>(), vec![(3, 30)]);
    /// ```
    pub fn try_insert_batch<I, E, F>(
        &self,
        pairs: I,
        validate: F,
    ) -> Result<BatchOutput<V>, Box<BatchError<K, E>>>
    where
        I: IntoIterator<Item = Result<(K, V), E>>,
        F: FnMut(&K, Option<&V>, &V) -> Result<(), E>,
        V: PartialEq,
    {
        self.try_insert_batch_with(pairs, validate, BatchOptions::new())
    }

    /// [`BwTree::try_insert_batch`] with options (progress callback, chunk size).
    pub fn try_insert_batch_with<I, E, F>(
        &self,
        pairs: I,
        mut validate: F,
        options: BatchOptions<'_>,
    ) -> Result<BatchOutput<V>, Box<BatchError<K, E>>>
    where
        I: IntoIterator<Item = Result<(K, V), E>>,
        F: FnMut(&K, Option<&V>, &V) -> Result<(), E>,
        V: PartialEq,
    {
        let mut source = pairs
            .into_iter()
            .map(|item| item.map(|(key, value)| (key, Some(value))));
        let mut run = Run::new(options.progress);
        run.total = exact_len(&source);
        let mut decide = |entry: &Entry<K, V>, current: Option<&V>| {
            let new = entry.value.as_ref().expect("inserts carry a value");
            match validate(&entry.key, current, new) {
                Ok(()) => Verdict::Apply,
                Err(error) => Verdict::Abort(error),
            }
        };
        let mut log: Log<K, V> = Vec::new();
        let (results, halt) = self.drive(
            &mut source,
            &mut decide,
            Some(&mut log),
            options.chunk,
            &mut run,
        );
        let halt = match halt {
            None => match run.report(true) {
                Ok(()) => {
                    self.rebalance(&mut run);
                    return Ok(BatchOutput {
                        results,
                        metrics: run.finish(),
                    });
                }
                Err(payload) => Halt::Panic(payload),
            },
            Some(halt) => halt,
        };
        run.silence();
        let applied = log.iter().map(Vec::len).sum();
        let (rolled_back, not_restored) = self.roll_back(log, &mut run);
        self.rebalance(&mut run);
        match halt {
            Halt::Panic(payload) => resume_unwind(payload),
            Halt::Failure(failure) => Err(Box::new(BatchError {
                failure,
                applied,
                rolled_back,
                not_restored,
                metrics: run.finish(),
            })),
        }
    }

    /// Inserts many pairs only if none of their keys is present: all or nothing (see
    /// [`BwTree::try_insert_batch`]). A key given twice in the input is not an error: the last
    /// value is stored.
    pub fn insert_batch_if_absent<I>(
        &self,
        pairs: I,
    ) -> Result<BatchOutput<V>, Box<BatchError<K, KeyExists>>>
    where
        I: IntoIterator<Item = (K, V)>,
        V: PartialEq,
    {
        self.try_insert_batch(pairs.into_iter().map(Ok), |_, current, _| match current {
            Some(_) => Err(KeyExists),
            None => Ok(()),
        })
    }

    /// Reads the source chunk by chunk and posts each; returns the results so far and why it
    /// stopped early, if it did. Applied keys are logged when `log` is given.
    fn drive<E>(
        &self,
        source: &mut dyn Iterator<Item = Result<(K, Option<V>), E>>,
        decide: &mut Decide<'_, K, V, E>,
        mut log: Option<&mut Log<K, V>>,
        chunk: usize,
        run: &mut Run<'_, K>,
    ) -> (Vec<Option<V>>, Option<Halt<K, E>>) {
        let mut results: Vec<Option<V>> = Vec::new();
        loop {
            let first = results.len();
            let mut entries: Vec<Entry<K, V>> = Vec::new();
            let read = catch_unwind(AssertUnwindSafe(|| {
                while entries.len() < chunk {
                    match source.next() {
                        None => return Ok(true),
                        Some(Ok((key, value))) => entries.push(Entry {
                            key,
                            value,
                            slot: first + entries.len(),
                        }),
                        Some(Err(error)) => return Err((first + entries.len(), error)),
                    }
                }
                Ok(false)
            }));
            let ended = match read {
                Err(payload) => return (results, Some(Halt::Panic(payload))),
                Ok(Err((index, error))) => {
                    return (
                        results,
                        Some(Halt::Failure(BatchFailure::Source { index, error })),
                    );
                }
                Ok(Ok(ended)) => ended,
            };
            let read_now = entries.len();
            run.metrics.keys += read_now;
            results.resize_with(first + read_now, || None);
            let entries = dedupe(entries, &mut results);
            run.metrics.distinct_keys += entries.len();
            // Repeated keys are finished by the merge.
            run.done += read_now - entries.len();
            let mut written = Vec::new();
            let logging = log.is_some();
            let mut sink = |outcome: Outcome<'_, K, V>| match outcome {
                Outcome::Posted {
                    slot,
                    key,
                    previous,
                    written: value,
                } => {
                    results[slot] = previous.cloned();
                    if logging {
                        written.push(Applied {
                            key: key.clone(),
                            previous: previous.cloned(),
                            written: value.cloned(),
                        });
                    }
                }
                Outcome::Skipped { slot, current, .. } => results[slot] = current.cloned(),
            };
            let posted = self.post_sorted(entries, decide, &mut sink, run);
            if let Some(log) = log.as_deref_mut() {
                log.push(written);
            }
            match posted {
                Ok(()) => {}
                Err(Stop::Abort { key, slot, error }) => {
                    let failure = BatchFailure::Rejected {
                        key,
                        index: slot,
                        error,
                    };
                    return (results, Some(Halt::Failure(failure)));
                }
                Err(Stop::Panic(payload)) => return (results, Some(Halt::Panic(payload))),
            }
            if ended {
                return (results, None);
            }
        }
    }

    /// Undoes the logged writes, newest chunk first: each key is set back to its previous value if
    /// it still holds the value the batch wrote. Returns how many were restored and the keys that
    /// were not.
    fn roll_back(&self, log: Log<K, V>, run: &mut Run<'_, K>) -> (usize, Vec<K>)
    where
        V: PartialEq,
    {
        let mut restored = 0;
        let mut not_restored = Vec::new();
        for chunk in log.into_iter().rev() {
            let mut expected = Vec::with_capacity(chunk.len());
            let mut entries = Vec::with_capacity(chunk.len());
            for (slot, applied) in chunk.into_iter().enumerate() {
                expected.push(applied.written);
                entries.push(Entry {
                    key: applied.key,
                    value: applied.previous,
                    slot,
                });
            }
            let mut still_ours = |entry: &Entry<K, V>, current: Option<&V>| {
                if current == expected[entry.slot].as_ref() {
                    Verdict::<Infallible>::Apply
                } else {
                    Verdict::Skip
                }
            };
            let mut sink = |outcome: Outcome<'_, K, V>| match outcome {
                Outcome::Posted { .. } => restored += 1,
                Outcome::Skipped { key, .. } => not_restored.push(key.clone()),
            };
            match self.post_sorted(entries, &mut still_ours, &mut sink, run) {
                Ok(()) => {}
                Err(Stop::Abort { error, .. }) => match error {},
                // Only `still_ours` could panic here (a panicking `==`): give up the rollback.
                Err(Stop::Panic(payload)) => resume_unwind(payload),
            }
        }
        (restored, not_restored)
    }
}

/// Sorts a chunk by key (stably, so equal keys keep their input order) and merges repeated keys:
/// the merged entry keeps the first occurrence's slot (which reports the tree's previous value) and
/// the last occurrence's value; every later occurrence reports the value of the one before it.
fn dedupe<K: Ord, V: Clone>(
    mut entries: Vec<Entry<K, V>>,
    results: &mut [Option<V>],
) -> Vec<Entry<K, V>> {
    entries.sort_by(|a, b| a.key.cmp(&b.key));
    let mut out: Vec<Entry<K, V>> = Vec::with_capacity(entries.len());
    for entry in entries {
        match out.last_mut() {
            Some(last) if last.key == entry.key => {
                results[entry.slot] = last.value.clone();
                last.value = entry.value;
            }
            _ => out.push(entry),
        }
    }
    out
}

/// The length of an iterator that knows it exactly.
fn exact_len(iter: &impl Iterator) -> Option<usize> {
    match iter.size_hint() {
        (low, Some(high)) if low == high => Some(low),
        _ => None,
    }
}
