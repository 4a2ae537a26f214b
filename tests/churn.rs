//! Plain insert/remove churn: every thread fills its own key range, then empties it, forever. Pages
//! split and merge back all the time, at every level. Every round must finish (a watchdog turns a
//! stalled thread into a failure instead of a hang), every operation must return what a map would,
//! and at regular quiescent points (all threads paused at a barrier) `check_invariants()` must hold
//! and the contents must be exact.
//!
//! The reproduction of issue 14. With two threads on tiny pages the tree shrinks to a single leaf
//! and grows back thousands of times a second, and two races in that cycle broke it within a second
//! or so: a root collapsing while a removal one level down had committed but not yet merged (the
//! collapse dropped a level that still held pages: ranges that no parent covers, then splits that
//! restart forever with `SplitView`), and a root grow that switched the root word after a collapse
//! had made the same page the root again (a second root over a finished split). See the race list
//! in `src/protocol/merge.rs` and the module docs of `src/mapping/root.rs`.
//!
//! Environment (all optional):
//! - `BWTREE_CHURN_SECS`: how long each configuration runs (default 4 s);
//! - `BWTREE_CHURN_THREADS`: how many threads churn (default 2);
//! - `BWTREE_CHURN_STALL_SECS`: how long a thread may go without finishing a round before the
//!   watchdog fails the test (default 10 s).
#![cfg(not(loom))]
// `clippy.toml`'s atomics rule is for the crate's `src/`: tests and tools use std's atomics.
#![allow(clippy::disallowed_types)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bwtree::{BwTree, Config, RestartCause};

mod support {
    pub mod env;
}
use support::env::count_from_env;

/// What every thread of a run shares.
struct Shared {
    tree: BwTree,
    barrier: Barrier,
    /// Set by the leader at a checkpoint once the run's time is up; read by all after the barrier.
    stop: AtomicBool,
    /// Rounds finished, per thread.
    rounds: Vec<AtomicU64>,
    /// Whether the thread is waiting at a checkpoint (not stalled: it waits for the others).
    paused: Vec<AtomicBool>,
    threads: u64,
    keys_per_thread: u64,
    /// Rounds between two quiescent checks (each thread counts its own rounds; all pause at the
    /// same round numbers).
    check_every: u64,
    deadline: Instant,
}

impl Shared {
    /// Both phases of a checkpoint: all threads wait, the leader checks the tree holds exactly
    /// `expected` and that its invariants hold, all threads go on. Returns whether to stop.
    fn checkpoint(&self, tid: usize, full: bool, name: &str) -> bool {
        // Relaxed: a flag for the watchdog's report only, no data is published through it.
        self.paused[tid].store(true, Ordering::Relaxed);
        let leader = self.barrier.wait().is_leader();
        if leader {
            // The barrier orders every thread's operations before this check (it synchronises).
            if let Err(e) = self.tree.check_invariants() {
                panic!("{name}: {e}\n{}", self.tree.debug_dump());
            }
            let expected: Vec<(u64, u64)> = if full {
                (0..self.threads * self.keys_per_thread)
                    .map(|k| (k, k))
                    .collect()
            } else {
                Vec::new()
            };
            let seen: Vec<(u64, u64)> = self.tree.iter().collect();
            assert!(
                seen == expected,
                "{name}: contents at a quiescent point: {} records, expected {}",
                seen.len(),
                expected.len()
            );
            assert_eq!(self.tree.len(), expected.len(), "{name}: len");
            if !full && Instant::now() >= self.deadline {
                // Relaxed: published to the other threads by the barrier below.
                self.stop.store(true, Ordering::Relaxed);
            }
        }
        self.barrier.wait();
        self.paused[tid].store(false, Ordering::Relaxed);
        // Relaxed: the barrier ordered the leader's store before this load.
        self.stop.load(Ordering::Relaxed)
    }
}

/// One thread's churn: insert its keys, remove them, forever (until a checkpoint says stop).
fn churn(shared: &Shared, tid: usize, name: &str) {
    let first = tid as u64 * shared.keys_per_thread;
    let keys = first..first + shared.keys_per_thread;
    let mut round = 0u64;
    loop {
        let check = round % shared.check_every == 0;
        for k in keys.clone() {
            assert_eq!(shared.tree.insert(k, k), None, "{name}: insert {k}");
        }
        if check {
            shared.checkpoint(tid, true, name);
        }
        for k in keys.clone() {
            assert_eq!(shared.tree.remove(&k), Some(k), "{name}: remove {k}");
        }
        round += 1;
        // Relaxed: read by the watchdog only to see progress.
        shared.rounds[tid].store(round, Ordering::Relaxed);
        if check && shared.checkpoint(tid, false, name) {
            return;
        }
    }
}

/// Runs the churn on `config` and fails if a thread panics or stalls.
fn run(name: &str, config: Config, keys_per_thread: u64, check_every: u64) {
    let secs = count_from_env("BWTREE_CHURN_SECS", 4);
    let threads = count_from_env("BWTREE_CHURN_THREADS", 2).max(1);
    let stall = Duration::from_secs(count_from_env("BWTREE_CHURN_STALL_SECS", 10));
    let started = Instant::now();
    let shared = Arc::new(Shared {
        tree: BwTree::with_config(config).unwrap(),
        barrier: Barrier::new(threads as usize),
        stop: AtomicBool::new(false),
        rounds: (0..threads).map(|_| AtomicU64::new(0)).collect(),
        paused: (0..threads).map(|_| AtomicBool::new(false)).collect(),
        threads,
        keys_per_thread,
        check_every,
        deadline: started + Duration::from_secs(secs),
    });
    // Plain spawned threads, not a scope: a livelocked thread never returns, and the watchdog must
    // be able to fail the test without waiting for it (it is left spinning until the process ends).
    let mut workers: Vec<Option<JoinHandle<()>>> = (0..threads as usize)
        .map(|tid| {
            let shared = Arc::clone(&shared);
            let name = name.to_owned();
            Some(std::thread::spawn(move || churn(&shared, tid, &name)))
        })
        .collect();
    let mut last: Vec<(u64, Instant)> = vec![(0, started); threads as usize];
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let now = Instant::now();
        for (tid, worker) in workers.iter_mut().enumerate() {
            if worker.as_ref().is_some_and(|w| w.is_finished()) {
                // A worker returns only after the final checkpoint, or by panicking.
                if let Err(panic) = worker.take().unwrap().join() {
                    std::panic::resume_unwind(panic);
                }
            }
            let rounds = shared.rounds[tid].load(Ordering::Relaxed);
            if rounds != last[tid].0 || shared.paused[tid].load(Ordering::Relaxed) {
                last[tid] = (rounds, now);
            } else if worker.is_some() && now - last[tid].1 > stall {
                let stats = shared.tree.stats();
                let rounds: Vec<u64> = shared
                    .rounds
                    .iter()
                    .map(|r| r.load(Ordering::Relaxed))
                    .collect();
                // Not quiescent (the stalled thread keeps trying), but the structure it cannot
                // get past is there to see.
                let structure = match shared.tree.check_invariants() {
                    Ok(()) => "check_invariants() passes".to_owned(),
                    Err(e) => format!("{e}\n{}", shared.tree.debug_dump()),
                };
                panic!(
                    "{name}: thread {tid} finished no round for {:.1} s (stalled after {:.1} s of \
                     churn; rounds per thread {rounds:?}; restarts: split_view {}, stale_route {}, \
                     page_removed {}, page_gone {})\n{structure}",
                    (now - last[tid].1).as_secs_f64(),
                    (last[tid].1 - started).as_secs_f64(),
                    stats.restarts(RestartCause::SplitView),
                    stats.restarts(RestartCause::StaleRoute),
                    stats.restarts(RestartCause::PageRemoved),
                    stats.restarts(RestartCause::PageGone),
                );
            }
        }
        if workers.iter().all(Option::is_none) {
            break;
        }
    }
    let rounds: u64 = shared
        .rounds
        .iter()
        .map(|r| r.load(Ordering::Relaxed))
        .sum();
    let stats = shared.tree.stats();
    println!(
        "{name}: {threads} threads, {rounds} rounds in {:.1} s; splits {}/{}, merges {}/{}, \
         split_view restarts {}",
        started.elapsed().as_secs_f64(),
        stats.splits(bwtree::Level::Leaf),
        stats.splits(bwtree::Level::Inner),
        stats.merges(bwtree::Level::Leaf),
        stats.merges(bwtree::Level::Inner),
        stats.restarts(RestartCause::SplitView),
    );
    assert!(shared.tree.is_empty());
    shared.tree.check_invariants().unwrap();
}

/// Pages of `capacity` entries at both levels, merged below half of it.
fn pages_of(capacity: usize) -> Config {
    Config {
        leaf_capacity: capacity,
        inner_capacity: capacity,
        leaf_merge_threshold: capacity / 2,
        inner_merge_threshold: capacity / 2,
        ..Config::tiny()
    }
}

#[test]
fn churn_tiny_pages() {
    run("tiny", Config::tiny(), 32, 2_000);
}

#[test]
fn churn_8_entry_pages() {
    run("8-entry", pages_of(8), 32, 2_000);
}

#[test]
fn churn_16_entry_pages() {
    run("16-entry", pages_of(16), 32, 2_000);
}

#[test]
fn churn_default_config() {
    run("default", Config::default(), 300, 1_000);
}
