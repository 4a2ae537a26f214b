//! Bulk operations: bulk loading, batched writes with rollback, multi-gets, batched and chunked
//! scans.
//!
//! # Batched writes
//! [`BwTree::insert_batch`](crate::BwTree::insert_batch) and [`BwTree::remove_batch`](crate::BwTree::remove_batch) sort their input, group it by target leaf
//! and post **one batch delta per leaf with one CAS** (a delta record that carries all of the
//! group's entries, see `page::batch`). A lost CAS re-reads the leaf and recomputes the group's
//! previous values from the new head; if the leaf split or merged meanwhile, the keys it no longer
//! covers are re-routed. Splits, merges and consolidations that the batch makes necessary are done
//! once per page after all groups are posted (*deferred rebalancing*); an overfull leaf is cut into
//! as many pages as it needs in one step, not by repeated halving.
//!
//! # Consistency
//! Each key's update is linearizable on its own: it takes effect at the CAS that installs its
//! group's delta, and the previous value reported for it is the one that CAS replaced. All keys of
//! one group (one leaf) become visible at the same instant. **A batch as a whole is not atomic**:
//! a concurrent reader may see the keys of some leaves updated and others not yet, and a concurrent
//! writer may interleave between two groups. Keys given more than once are applied in input order:
//! the last value is stored, and each occurrence reports the value that the one before it stored.
//!
//! # Rollback
//! [`BwTree::try_insert_batch`](crate::BwTree::try_insert_batch) validates every key against the value it currently holds (with a
//! closure of the caller's) and reads a fallible source. On the first rejection, source error or
//! panic (of the source, the closure or the progress callback) it undoes what it applied: every key
//! it wrote is restored to its previous value — **if** the key still holds the value the batch wrote
//! (compared with `==`). A key that a concurrent writer changed in the meantime keeps that writer's
//! value and is listed in [`BatchError::not_restored`]. Concurrent readers may observe the batch's
//! values between the write and the rollback: a rolled-back batch is not invisible, it is undone.
//!
//! # Metrics and progress
//! Every batch returns [`BatchMetrics`]. A progress callback ([`BatchOptions::progress`]) is called
//! between groups, at most once per chosen interval, and once at the end. A panic in the callback
//! stops the batch: what was posted stays posted (or, for `try_insert_batch`, is rolled back), the
//! deferred rebalancing still runs, and the panic is then resumed; the tree is never left
//! inconsistent.

mod batch;
mod engine;
mod load;
mod multi_get;
mod scan;

use core::fmt;
use std::time::Duration;

pub use load::{BulkLoadError, DEFAULT_FILL_FACTOR};
pub use scan::Chunks;

/// Figures about one batch call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchMetrics {
    /// Items read from the input (keys of a multi-get).
    pub keys: usize,
    /// Distinct keys among them.
    pub distinct_keys: usize,
    /// Keys whose update was posted (a removal of an absent key, or a rollback of a key that a
    /// concurrent writer changed, posts nothing).
    pub applied: usize,
    /// Keys left alone (see `applied`).
    pub skipped: usize,
    /// Batch deltas installed: one per leaf per group.
    pub leaves_touched: usize,
    /// CAS attempts to install batch deltas.
    pub cas_attempts: usize,
    /// Of those, the ones lost to a concurrent change (each is retried).
    pub cas_failures: usize,
    /// Pages created by splitting overfull leaves during the deferred rebalancing.
    pub splits: usize,
    /// Pages handed to the ordinary maintenance (consolidation, merge) after the batch.
    pub pages_maintained: usize,
    /// Root-to-leaf descents.
    pub descents: usize,
    /// Leaves reached by following a right link instead of a descent (multi-get).
    pub right_moves: usize,
    /// Wall-clock time of the call.
    pub elapsed: Duration,
}

/// The outcome of a batched write: one result per input item, in input order, and the metrics.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchOutput<V> {
    /// For inserts the previous value of each key, for removals the removed value (`None`: absent).
    pub results: Vec<Option<V>>,
    /// What the batch did.
    pub metrics: BatchMetrics,
}

/// Where a running batch stands, as reported to a progress callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Input items processed so far.
    pub done: usize,
    /// The number of input items if the input knew it (an exact `size_hint`).
    pub total: Option<usize>,
    /// Time since the batch started.
    pub elapsed: Duration,
}

/// Options of a batched write.
pub struct BatchOptions<'a> {
    pub(crate) progress: Option<(Duration, &'a mut dyn FnMut(Progress))>,
    pub(crate) chunk: usize,
}

impl<'a> BatchOptions<'a> {
    /// The default chunk: how many input items are read, sorted and posted at a time.
    pub const DEFAULT_CHUNK: usize = 1 << 16;

    /// No progress callback, the default chunk.
    pub fn new() -> Self {
        BatchOptions {
            progress: None,
            chunk: Self::DEFAULT_CHUNK,
        }
    }

    /// Calls `callback` between groups at most once per `every` (and once at the end).
    pub fn progress(mut self, every: Duration, callback: &'a mut dyn FnMut(Progress)) -> Self {
        self.progress = Some((every, callback));
        self
    }

    /// Reads, sorts and posts the input `items` at a time (at least 1; 0 is taken as 1). Smaller
    /// chunks bound the memory a batch holds besides its results; larger ones group better.
    pub fn chunk(mut self, items: usize) -> Self {
        self.chunk = items.max(1);
        self
    }
}

impl Default for BatchOptions<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for BatchOptions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchOptions")
            .field("progress_every", &self.progress.as_ref().map(|p| p.0))
            .field("chunk", &self.chunk)
            .finish()
    }
}

/// Why [`BwTree::try_insert_batch`](crate::BwTree::try_insert_batch) stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchFailure<K, E> {
    /// The validation closure rejected `key`, the `index`-th input item.
    Rejected {
        /// The rejected key.
        key: K,
        /// Its position in the input.
        index: usize,
        /// The closure's error.
        error: E,
    },
    /// The input yielded an error as its `index`-th item.
    Source {
        /// Position of the failing item in the input.
        index: usize,
        /// The source's error.
        error: E,
    },
}

/// A failed [`BwTree::try_insert_batch`](crate::BwTree::try_insert_batch): what failed and what was
/// rolled back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchError<K, E> {
    /// What stopped the batch.
    pub failure: BatchFailure<K, E>,
    /// Keys the batch had written before it stopped.
    pub applied: usize,
    /// Of those, the keys restored to their previous value.
    pub rolled_back: usize,
    /// Keys not restored because a concurrent writer changed them after the batch wrote them; they
    /// keep that writer's value.
    pub not_restored: Vec<K>,
    /// Metrics of the batch, rollback included.
    pub metrics: BatchMetrics,
}

impl<K: fmt::Debug, E: fmt::Display> fmt::Display for BatchError<K, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.failure {
            BatchFailure::Rejected { key, index, error } => write!(
                f,
                "batch rejected key {key:?} (input item {index}): {error}"
            )?,
            BatchFailure::Source { index, error } => {
                write!(f, "batch input failed at item {index}: {error}")?
            }
        }
        write!(
            f,
            "; rolled back {} of {} applied keys",
            self.rolled_back, self.applied
        )?;
        if !self.not_restored.is_empty() {
            write!(
                f,
                " ({} changed concurrently and kept their new value)",
                self.not_restored.len()
            )?;
        }
        Ok(())
    }
}

impl<K: fmt::Debug, E: fmt::Debug + fmt::Display> std::error::Error for BatchError<K, E> {}

/// The error of [`BwTree::insert_batch_if_absent`](crate::BwTree::insert_batch_if_absent): the key was
/// already present.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyExists;

impl fmt::Display for KeyExists {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the key is already present")
    }
}

impl std::error::Error for KeyExists {}
