//! The counting machinery behind [`BwTree::stats`](crate::BwTree::stats): per-thread counter blocks
//! owned by each tree, and the handles the protocol code counts through.
//!
//! # Design
//! - **Thread slots.** The first time a thread counts anything it claims one of
//!   [`EXCLUSIVE_SLOTS`] process-wide slot numbers with a CAS on a static flag array, and gives it back
//!   from a thread-local destructor when it exits. A thread that finds every slot taken (more than
//!   `EXCLUSIVE_SLOTS` threads alive at once that ever counted) uses the one *shared* slot instead.
//! - **Blocks.** Each tree owns one cache-padded block of counters per slot number, allocated by the
//!   slot's first use on that tree and freed with the tree. A thread counts into `blocks[its slot]`.
//!   A slot has one owner at a time, so its blocks have a single writer: an increment is a `Relaxed`
//!   load and store (no read-modify-write instruction, no cache-line transfer). The shared slot's
//!   blocks have many writers and use `fetch_add`.
//! - **Thread exit, many trees.** Nothing thread-local refers to a tree: a thread keeps only its slot
//!   number. When it exits, its counts stay in the tree's block and the next owner of the slot keeps
//!   adding to them (the claim's Acquire pairs with the exit's Release, so the single-writer chain is
//!   ordered). A dropped tree frees its blocks; a thread's slot costs nothing on trees it never used
//!   (a null pointer in a table of `EXCLUSIVE_SLOTS + 1`). Nothing is leaked or left dangling.
//! - **Aggregation** (`BwTree::stats`) sums every block with `Relaxed` loads: each counter is exact
//!   for the operations that happened before the call (e.g. joined threads), a mix of older and newer
//!   values for the ones running concurrently. **Reset** stores the current sums as a baseline that
//!   later snapshots subtract, so that counting threads remain the only writers of their blocks.
//!
//! A thread-local `Cell` array flushed into the tree now and then was the alternative: it saves the
//! table lookup per operation but needs a flush point per tree (a thread that stops using a tree
//! without exiting would hold its counts back), a per-thread map keyed by tree identity, and care when
//! the tree dies first. The slot table is simpler and its cost is measured in `examples/stats_cost.rs`.
//!
//! # Cost
//! Measured with `examples/stats_cost.rs` (random u64 keys, default config, one thread), on the
//! shared 2-core development machine:
//! - **instructions** (deterministic, `valgrind --tool=cachegrind`, 100k inserts + 100k gets per
//!   run): 300.2 M compiled without the `stats` feature, 304.7 M with the feature but
//!   `Config::statistics` off (+1.5%), 316.7 M with statistics on (+5.5%, about 80 instructions per
//!   operation; the per-level chain histogram of the descent is the largest part). L1 data misses
//!   grew by 0.8%;
//! - **time** (CPU time of the worker threads, median of 7–21 alternating runs, 300k–1M keys, nine
//!   comparisons): inserts 0.4–4.5% slower with statistics on, gets −2.6–7.3% (median of the
//!   comparisons about 1.5% for both), on a machine whose load average was 5–25: the spread is the
//!   machine's, not the counters'.
//!
//! Counting is therefore a default cargo feature (`stats`): builds that need the last few percent
//! leave it out (`default-features = false`), and `Config::statistics` turns it off per tree.
//! Single-writer load-and-store increments and `fetch_add` could not be told apart in time at this
//! noise level; the load-and-store form is kept because it needs no locked instruction.
//!
//! # Loom
//! The counters are statistics, not synchronisation, and are deliberately kept out of the loom
//! models: they use the standard library's atomics even under `--cfg loom` (see
//! [`crate::sync::unmodeled`]); making each increment a loom operation would multiply the
//! interleavings the models explore without checking anything about the tree. Loom runs its threads
//! on one OS thread, so they share one slot; since std atomics are not scheduling points for loom, a
//! load-and-store increment still cannot be interleaved.

use core::cell::Cell;
use core::ptr;

use crossbeam_utils::CachePadded;

use crate::research::stats::{
    CHAIN_BUCKETS, CasKind, Counter, Level, OpKind, RestartCause, SmoKind, StatsSnapshot,
    chain_bucket,
};
use crate::sync::unmodeled::{AtomicBool, AtomicPtr, AtomicU64, Ordering};

/// Slot numbers a thread can own exclusively; threads beyond this many (alive at once) share one.
pub(crate) const EXCLUSIVE_SLOTS: usize = 128;
/// The slot of threads that found no free exclusive slot (or count during their own exit).
const SHARED_SLOT: usize = EXCLUSIVE_SLOTS;
/// A thread that has not counted yet.
const UNCLAIMED: usize = usize::MAX;

/// Which exclusive slots are owned by a live thread.
static CLAIMED: [AtomicBool; EXCLUSIVE_SLOTS] = [const { AtomicBool::new(false) }; EXCLUSIVE_SLOTS];

std::thread_local! {
    /// This thread's slot number, [`UNCLAIMED`] before its first count. No destructor, so reading it
    /// is a plain thread-local load that never fails.
    static SLOT: Cell<usize> = const { Cell::new(UNCLAIMED) };
    /// Gives the slot back when the thread exits.
    static RELEASE: SlotRelease = const { SlotRelease(Cell::new(UNCLAIMED)) };
    /// Aborts (restarts from the root and failed leaf CAS) counted by this thread, on any tree: an
    /// operation attributes to itself the difference between its end and its start.
    static ABORT_TICKS: Cell<u64> = const { Cell::new(0) };
}

/// Owns this thread's exclusive slot; its destructor runs at thread exit.
struct SlotRelease(Cell<usize>);

impl Drop for SlotRelease {
    fn drop(&mut self) {
        // Counts made by destructors that run after this one go to the shared slot.
        SLOT.with(|slot| slot.set(SHARED_SLOT));
        let slot = self.0.get();
        if slot < EXCLUSIVE_SLOTS {
            // Release: this thread's last counter stores happen before the next owner's Acquire
            // claim, so that owner continues from the final values (single writer at any time).
            CLAIMED[slot].store(false, Ordering::Release);
        }
    }
}

/// The calling thread's slot number, claimed on first use.
#[inline]
fn thread_slot() -> usize {
    match SLOT.with(Cell::get) {
        UNCLAIMED => claim_slot(),
        slot => slot,
    }
}

#[cold]
fn claim_slot() -> usize {
    let mut slot = CLAIMED
        .iter()
        .position(|flag| {
            // Relaxed pre-check: only skips taken slots; Acquire on the claim pairs with the Release
            // of the previous owner's exit (see `SlotRelease`).
            !flag.load(Ordering::Relaxed)
                && flag
                    .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
        })
        .unwrap_or(SHARED_SLOT);
    if slot != SHARED_SLOT && RELEASE.try_with(|release| release.0.set(slot)).is_err() {
        // The thread is already exiting and could never give the slot back.
        CLAIMED[slot].store(false, Ordering::Release);
        slot = SHARED_SLOT;
    }
    SLOT.with(|cell| cell.set(slot));
    slot
}

/// Records one abort of the calling thread (see [`ABORT_TICKS`]).
#[inline]
fn tick_abort() {
    ABORT_TICKS.with(|ticks| ticks.set(ticks.get().wrapping_add(1)));
}

#[inline]
fn abort_ticks() -> u64 {
    ABORT_TICKS.with(Cell::get)
}

/// One thread slot's counters on one tree, indexed by [`Counter`].
struct Block {
    counters: [AtomicU64; Counter::COUNT],
}

/// A tree's statistics: one block per thread slot. See the module docs.
pub(crate) struct Stats {
    /// `EXCLUSIVE_SLOTS` exclusive blocks and the shared one, each allocated at first use; empty
    /// when the tree counts nothing ([`Config::statistics`](crate::Config::statistics) off).
    blocks: Box<[AtomicPtr<CachePadded<Block>>]>,
    /// The sums at the last reset, subtracted from every snapshot.
    baseline: Box<[AtomicU64]>,
}

impl Stats {
    /// Statistics for a new tree; `enabled == false` allocates nothing and counts nothing.
    pub(crate) fn new(enabled: bool) -> Self {
        let (blocks, baseline) = if enabled && cfg!(feature = "stats") {
            (
                (0..=EXCLUSIVE_SLOTS)
                    .map(|_| AtomicPtr::new(ptr::null_mut()))
                    .collect(),
                (0..Counter::COUNT).map(|_| AtomicU64::new(0)).collect(),
            )
        } else {
            (Box::default(), Box::default())
        };
        Stats { blocks, baseline }
    }

    /// The calling thread's counters on this tree; `None` when statistics are off.
    #[inline]
    pub(crate) fn local(&self) -> Option<Local<'_>> {
        if !cfg!(feature = "stats") || self.blocks.is_empty() {
            // Compiled without statistics (every counting site folds away), or off for this tree.
            return None;
        }
        let index = thread_slot();
        let slot = &self.blocks[index];
        // Acquire: pairs with the Release of the CAS in `install`, so the zeroed counters are
        // visible (only the shared slot can be installed by another thread than its user).
        let mut block = slot.load(Ordering::Acquire);
        if block.is_null() {
            block = install(slot);
        }
        // SAFETY: a block is never replaced once installed and is freed only by `Drop` (which has
        // `&mut self`), so it lives as long as `&self`.
        let block = unsafe { &*block };
        Some(Local {
            block,
            shared: index == SHARED_SLOT,
        })
    }

    /// Counts one operation of kind `op` and opens its abort window (see [`OpScope`]).
    #[inline]
    pub(crate) fn op(&self, op: OpKind) -> OpScope<'_> {
        let local = self.local();
        let mut ticks = 0;
        if let Some(local) = local {
            local.add(Counter::Op(op), 1);
            ticks = abort_ticks();
        }
        OpScope { local, op, ticks }
    }

    /// Opens an abort window for more work of an operation already counted (a scan's refills).
    #[inline]
    pub(crate) fn resume(&self, op: OpKind) -> OpScope<'_> {
        let local = self.local();
        let ticks = if local.is_some() { abort_ticks() } else { 0 };
        OpScope { local, op, ticks }
    }

    /// Counts an operation without an abort window (a scan is counted when it is created).
    pub(crate) fn count_op(&self, op: OpKind) {
        if let Some(local) = self.local() {
            local.add(Counter::Op(op), 1);
        }
    }

    /// Counts one CAS attempt of `kind` and whether it failed.
    #[inline]
    pub(crate) fn cas(&self, kind: CasKind, succeeded: bool) {
        if let Some(local) = self.local() {
            local.cas(kind, succeeded);
        }
    }

    /// Counts a descent that starts over from the root.
    pub(crate) fn restart(&self, cause: RestartCause) {
        if let Some(local) = self.local() {
            local.restart(cause);
        }
    }

    /// Counts an unfinished structure modification met and worked on (help-along).
    pub(crate) fn help(&self, kind: SmoKind) {
        if let Some(local) = self.local() {
            local.add(Counter::Help(kind), 1);
        }
    }

    /// Counts `n` completed consolidations, splits or merges of pages at `level`.
    pub(crate) fn done(&self, counter: fn(Level) -> Counter, level: u8, n: u64) {
        if let Some(local) = self.local() {
            local.add(counter(Level::of(level)), n);
        }
    }

    /// Sums every block, minus the baseline of the last reset.
    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        let mut sums = self.sums();
        for (sum, base) in sums.iter_mut().zip(self.baseline.iter()) {
            // Relaxed: statistics, not synchronisation (see `reset`).
            *sum = sum.saturating_sub(base.load(Ordering::Relaxed));
        }
        StatsSnapshot::from_counters(sums)
    }

    /// Makes the current sums the zero of later snapshots. Exact when no thread counts concurrently;
    /// otherwise counts made during the call may land on either side of it.
    pub(crate) fn reset(&self) {
        let sums = self.sums();
        for (base, sum) in self.baseline.iter().zip(sums) {
            // Relaxed: statistics; a concurrent snapshot may pair old and new baselines.
            base.store(sum, Ordering::Relaxed);
        }
    }

    fn sums(&self) -> [u64; Counter::COUNT] {
        let mut sums = [0u64; Counter::COUNT];
        for slot in self.blocks.iter() {
            // Acquire: pairs with the Release of the CAS in `install` (another thread's block).
            let block = slot.load(Ordering::Acquire);
            if block.is_null() {
                continue;
            }
            // SAFETY: see `local`: installed blocks live until the tree is dropped.
            let block = unsafe { &*block };
            for (sum, counter) in sums.iter_mut().zip(block.counters.iter()) {
                // Relaxed: statistics, not synchronisation; counts that happened before this call
                // (ordered by a join, a channel, ...) are all seen.
                *sum = sum.wrapping_add(counter.load(Ordering::Relaxed));
            }
        }
        sums
    }
}

/// Allocates the block of `slot` if it is still empty; returns the installed one.
#[cold]
fn install(slot: &AtomicPtr<CachePadded<Block>>) -> *mut CachePadded<Block> {
    let fresh = Box::into_raw(Box::new(CachePadded::new(Block {
        counters: [const { AtomicU64::new(0) }; Counter::COUNT],
    })));
    // AcqRel: Release publishes the zeroed block to readers (snapshots, other sharers); Acquire on
    // failure: the winner's block must be visible before we count into it.
    match slot.compare_exchange(ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => fresh,
        Err(winner) => {
            // SAFETY: `fresh` came from `Box::into_raw` above and was never shared: the CAS failed.
            drop(unsafe { Box::from_raw(fresh) });
            winner
        }
    }
}

impl Drop for Stats {
    fn drop(&mut self) {
        for slot in self.blocks.iter() {
            // Relaxed: `&mut self`, no other thread uses the table.
            let block = slot.load(Ordering::Relaxed);
            if !block.is_null() {
                // SAFETY: installed by `install` from `Box::into_raw`, freed only here, once.
                drop(unsafe { Box::from_raw(block) });
            }
        }
    }
}

/// The calling thread's block on one tree.
#[derive(Clone, Copy)]
pub(crate) struct Local<'a> {
    block: &'a Block,
    /// The block of the shared slot: several writers, so increments must be read-modify-writes.
    shared: bool,
}

impl Local<'_> {
    #[inline]
    fn add(self, counter: Counter, n: u64) {
        let counter = &self.block.counters[counter.index()];
        if self.shared {
            // Relaxed: statistics, not synchronisation; the RMW only keeps sharers' counts apart.
            counter.fetch_add(n, Ordering::Relaxed);
        } else {
            // Relaxed load and store: statistics, not synchronisation. This thread owns the slot, so
            // it is the block's only writer and no increment can be lost.
            counter.store(
                counter.load(Ordering::Relaxed).wrapping_add(n),
                Ordering::Relaxed,
            );
        }
    }

    /// See [`Stats::cas`]. A failed leaf-delta CAS is also an abort (SIGMOD'18's definition).
    #[inline]
    pub(crate) fn cas(self, kind: CasKind, succeeded: bool) {
        self.add(Counter::CasAttempt(kind), 1);
        if !succeeded {
            self.add(Counter::CasFailure(kind), 1);
            if matches!(kind, CasKind::Insert | CasKind::Delete | CasKind::Batch) {
                tick_abort();
            }
        }
    }

    /// See [`Stats::restart`]. Every restart is an abort.
    #[inline]
    pub(crate) fn restart(self, cause: RestartCause) {
        self.add(Counter::Restart(cause), 1);
        tick_abort();
    }

    /// Samples the delta-chain length of a page a descent settled on.
    #[inline]
    pub(crate) fn chain(self, level: u8, depth: u32) {
        let level = Level::of(level);
        let bucket = chain_bucket(depth);
        self.add(Counter::Chain(level, bucket), 1);
        if bucket == CHAIN_BUCKETS - 1 {
            // Shorter lengths are known exactly from their bucket; only the overflow needs a sum.
            self.add(Counter::OverflowSum(level), u64::from(depth));
        }
    }
}

/// An operation in progress: when dropped, it adds the aborts the thread counted since the scope
/// was opened to the operation's kind (SIGMOD'18 counts aborts per operation).
pub(crate) struct OpScope<'a> {
    local: Option<Local<'a>>,
    op: OpKind,
    /// [`ABORT_TICKS`] when the scope was opened.
    ticks: u64,
}

impl<'a> OpScope<'a> {
    /// The operation's counters (`None` when statistics are off), for the descent.
    #[inline]
    pub(crate) fn local(&self) -> Option<Local<'a>> {
        self.local
    }

    /// Counts a CAS made by this operation (see [`Stats::cas`]), without another table lookup.
    #[inline]
    pub(crate) fn cas(&self, kind: CasKind, succeeded: bool) {
        if let Some(local) = self.local {
            local.cas(kind, succeeded);
        }
    }
}

impl Drop for OpScope<'_> {
    #[inline]
    fn drop(&mut self) {
        if let Some(local) = self.local {
            let aborts = abort_ticks().wrapping_sub(self.ticks);
            if aborts != 0 {
                local.add(Counter::OpAborts(self.op), aborts);
            }
        }
    }
}

#[cfg(all(test, not(loom), feature = "stats"))]
mod tests {
    use super::*;

    #[test]
    fn slots_are_exclusive_and_reused_after_thread_exit() {
        let mine = thread_slot();
        assert!(mine < EXCLUSIVE_SLOTS);
        assert_eq!(thread_slot(), mine, "a thread keeps its slot");
        let other = std::thread::spawn(thread_slot).join().unwrap();
        assert_ne!(other, mine);
        assert!(other < EXCLUSIVE_SLOTS);
        // The exited thread gave its slot back; some later thread can claim it (other tests run in
        // parallel, so not necessarily the next one).
        let again: Vec<usize> = (0..4)
            .map(|_| std::thread::spawn(thread_slot).join().unwrap())
            .collect();
        assert!(again.iter().all(|&s| s < EXCLUSIVE_SLOTS && s != mine));
    }

    #[test]
    fn disabled_stats_allocate_and_count_nothing() {
        let stats = Stats::new(false);
        assert!(stats.local().is_none());
        stats.cas(CasKind::Insert, false);
        drop(stats.op(OpKind::Get));
        assert_eq!(stats.snapshot(), StatsSnapshot::default());
    }

    #[test]
    fn local_counts_are_summed_and_reset_subtracts() {
        let stats = Stats::new(true);
        let op = stats.op(OpKind::Insert);
        op.cas(CasKind::Insert, false);
        op.cas(CasKind::Insert, true);
        drop(op);
        std::thread::scope(|s| {
            s.spawn(|| stats.cas(CasKind::Split, true));
        });
        let snap = stats.snapshot();
        assert_eq!(snap.ops(OpKind::Insert), 1);
        assert_eq!(snap.cas_attempts(CasKind::Insert), 2);
        assert_eq!(snap.cas_failures(CasKind::Insert), 1);
        assert_eq!(snap.aborts(OpKind::Insert), 1);
        assert_eq!(snap.cas_attempts(CasKind::Split), 1);
        stats.reset();
        assert_eq!(stats.snapshot(), StatsSnapshot::default());
        stats.cas(CasKind::Split, false);
        assert_eq!(stats.snapshot().cas_failures(CasKind::Split), 1);
    }
}
