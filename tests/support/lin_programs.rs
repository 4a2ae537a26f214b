//! The generated concurrent programs of the linearizability checks, and the harness that runs them
//! on any [`Subject`] map and checks the recorded history with `lincheck.rs`.
//!
//! quickcheck generates small concurrent programs (2–4 threads of 5–30 inserts, gets and removes
//! over up to 16 keys). Each program runs on a fresh map preloaded with 2,000 other keys, so that a
//! `Config::tiny()` Bw-tree has several levels, while a background thread churns keys interleaved
//! with the checked ones (the checked keys are `1000·i + 500`, the churn keys lie within ±48 of
//! them), so splits and consolidations hit the very leaves the checked keys live on. A barrier
//! starts all threads together. The recorded history is checked key by key; a failing program is
//! shrunk (each candidate re-run several times, since failures depend on the interleaving) and the
//! minimal failing sub-history of the smallest failing program is printed.
//!
//! # Batches
//! A second generator ([`BatchProgram`]) mixes batch calls into the programs (2–3 threads of 3–12
//! steps over up to 8 keys): `insert_batch`, `remove_batch` and `get_many` of 1–4 checked keys
//! (repeats allowed, which exercises the documented policy for keys given twice), interleaved with
//! point operations. A batched write also carries up to 20 untracked *filler* keys packed around
//! each of its checked keys (within ±10, preloaded keys among them), so that an `insert_batch`
//! overfills the checked key's leaf several times over (the deferred rebalancing then cuts it into
//! three or more pages at once) and a `remove_batch` empties leaves (merges). Each batch is recorded
//! as one operation per checked key with the batch's timestamps (see `lincheck.rs`).
//!
//! Used by `linearizability.rs` (the Bw-tree) and `checkers.rs` (the reference and broken maps),
//! each using part of it, hence the module-wide `dead_code` allowance.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Instant;

use bwtree::ConcurrentMap;
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};

use super::clock::{Clock, StartGate};
use super::env::seed_from_env;
use super::lincheck::{History, Operation, Recorder};
use super::rng::Rng;

/// Checked keys are `1000·i + 500`, `i < MAX_KEYS`.
pub const MAX_KEYS: u8 = 16;
/// Keys preloaded around the checked ones: `0, 8, 16, …` (never a checked key: those are ≡ 4 mod 8).
pub const PRELOAD: u64 = 2_000;
/// Churn keys lie within this distance of a checked key (and are never one).
pub const CHURN_RADIUS: u64 = 48;

pub fn checked_key(i: u8) -> u64 {
    u64::from(i) * 1_000 + 500
}

/// Whether `key` is not one of the checked keys (a preloaded, churn or filler key).
pub fn untracked(key: u64) -> bool {
    key % 1_000 != 500 || key / 1_000 >= u64::from(MAX_KEYS)
}

/// The `n`-th filler key of checked key `i`: `+1, -1, +2, -2, …` around it (never a checked key).
pub fn filler_key(i: u8, n: u8) -> u64 {
    let d = u64::from(n / 2) + 1;
    if n % 2 == 0 {
        checked_key(i) + d
    } else {
        checked_key(i) - d
    }
}

/// Most filler keys a batched write carries per checked key.
pub const MAX_FILL: u8 = 20;

/// The value a preloaded checked key holds (even `i` are preloaded, odd ones start absent).
pub fn preloaded_value(i: u8) -> Option<u64> {
    (i % 2 == 0).then(|| 9_000_000 + u64::from(i))
}

/// One step of a generated thread; a `u8` is the index of a checked key.
#[derive(Clone, PartialEq, Eq)]
pub enum Step {
    Insert(u8),
    Get(u8),
    Remove(u8),
    /// `insert_batch` of these checked keys (in this order, repeats allowed), each followed in the
    /// input by `fill` filler keys.
    InsertBatch {
        keys: Vec<u8>,
        fill: u8,
    },
    /// `remove_batch`, like `InsertBatch`.
    RemoveBatch {
        keys: Vec<u8>,
        fill: u8,
    },
    /// `get_many` of these checked keys.
    GetMany(Vec<u8>),
}

impl Step {
    /// The checked keys the step operates on.
    fn keys(&self) -> &[u8] {
        match self {
            Step::Insert(k) | Step::Get(k) | Step::Remove(k) => core::slice::from_ref(k),
            Step::InsertBatch { keys, .. }
            | Step::RemoveBatch { keys, .. }
            | Step::GetMany(keys) => keys,
        }
    }

    /// The same step with the `i`-th of its several checked keys left out (`None` for a step with
    /// one key).
    fn without_key(&self, i: usize) -> Option<Step> {
        let mut keys = self.keys().to_vec();
        if keys.len() < 2 {
            return None;
        }
        keys.remove(i);
        Some(match *self {
            Step::InsertBatch { fill, .. } => Step::InsertBatch { keys, fill },
            Step::RemoveBatch { fill, .. } => Step::RemoveBatch { keys, fill },
            _ => Step::GetMany(keys),
        })
    }

    /// The same step with no filler keys (`None` if it has none).
    fn without_fill(&self) -> Option<Step> {
        match self {
            Step::InsertBatch { keys, fill } if *fill > 0 => Some(Step::InsertBatch {
                keys: keys.clone(),
                fill: 0,
            }),
            Step::RemoveBatch { keys, fill } if *fill > 0 => Some(Step::RemoveBatch {
                keys: keys.clone(),
                fill: 0,
            }),
            _ => None,
        }
    }
}

impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |keys: &[u8]| -> String {
            let keys: Vec<String> = keys.iter().map(|k| format!("k{k}")).collect();
            keys.join(",")
        };
        match self {
            Step::Insert(k) => write!(f, "insert(k{k})"),
            Step::Get(k) => write!(f, "get(k{k})"),
            Step::Remove(k) => write!(f, "remove(k{k})"),
            Step::InsertBatch { keys, fill } => {
                write!(f, "insert_batch({} fill {fill})", list(keys))
            }
            Step::RemoveBatch { keys, fill } => {
                write!(f, "remove_batch({} fill {fill})", list(keys))
            }
            Step::GetMany(keys) => write!(f, "get_many({})", list(keys)),
        }
    }
}

/// A concurrent program: one list of steps per thread. Thread `t`'s `j`-th step, if an insert,
/// writes the value `(t + 1)·1000 + j + 1`; if an `insert_batch`, it writes `(t + 1)·1,000,000 +
/// (j + 1)·1000 + n` to its `n`-th input item (fillers included, counted from 0). So every value
/// written to a checked key is unique.
#[derive(Clone)]
pub struct Program {
    threads: Vec<Vec<Step>>,
}

impl Program {
    fn ops(&self) -> usize {
        self.threads.iter().map(Vec::len).sum()
    }
}

impl fmt::Debug for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Program ({} threads, {} ops) {{",
            self.threads.len(),
            self.ops()
        )?;
        for (t, steps) in self.threads.iter().enumerate() {
            writeln!(f, "  T{t}: {steps:?}")?;
        }
        write!(f, "}}")
    }
}

impl Arbitrary for Program {
    fn arbitrary(g: &mut Gen) -> Self {
        let keys = 4 + u8::arbitrary(g) % (MAX_KEYS - 3);
        let threads = 2 + usize::arbitrary(g) % 3;
        let threads = (0..threads)
            .map(|_| {
                let len = 5 + usize::arbitrary(g) % 26;
                (0..len)
                    .map(|_| {
                        let key = u8::arbitrary(g) % keys;
                        match u8::arbitrary(g) % 20 {
                            0..8 => Step::Insert(key),
                            8..15 => Step::Get(key),
                            _ => Step::Remove(key),
                        }
                    })
                    .collect()
            })
            .collect();
        Program { threads }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        let mut candidates = Vec::new();
        let with_thread = |t: usize, steps: Vec<Step>| {
            let mut threads = self.threads.clone();
            threads[t] = steps;
            Program { threads }
        };
        // Whole threads first, then halves of threads, then single steps.
        if self.threads.len() > 1 {
            for t in 0..self.threads.len() {
                let mut threads = self.threads.clone();
                threads.remove(t);
                candidates.push(Program { threads });
            }
        }
        for (t, steps) in self.threads.iter().enumerate() {
            if steps.len() >= 4 {
                let half = steps.len() / 2;
                candidates.push(with_thread(t, steps[..half].to_vec()));
                candidates.push(with_thread(t, steps[half..].to_vec()));
            }
        }
        for (t, steps) in self.threads.iter().enumerate() {
            if steps.len() > 1 {
                for i in 0..steps.len() {
                    let mut fewer = steps.clone();
                    fewer.remove(i);
                    candidates.push(with_thread(t, fewer));
                }
            }
        }
        // Then smaller batches: without their fillers, with one key fewer.
        for (t, steps) in self.threads.iter().enumerate() {
            for (i, step) in steps.iter().enumerate() {
                let smaller = step
                    .without_fill()
                    .into_iter()
                    .chain((0..step.keys().len()).filter_map(|k| step.without_key(k)));
                for smaller in smaller {
                    let mut changed = steps.clone();
                    changed[i] = smaller;
                    candidates.push(with_thread(t, changed));
                }
            }
        }
        Box::new(candidates.into_iter())
    }
}

/// A generated program that mixes batch calls with point operations (see the module docs).
#[derive(Clone)]
pub struct BatchProgram(Program);

impl fmt::Debug for BatchProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Most checked keys a batch program uses.
pub const BATCH_KEYS: u8 = 8;

impl Arbitrary for BatchProgram {
    fn arbitrary(g: &mut Gen) -> Self {
        let keys = 2 + u8::arbitrary(g) % (BATCH_KEYS - 1);
        let threads = 2 + usize::arbitrary(g) % 2;
        let threads = (0..threads)
            .map(|_| {
                let len = 3 + usize::arbitrary(g) % 10;
                (0..len)
                    .map(|_| {
                        let key = u8::arbitrary(g) % keys;
                        let several = |g: &mut Gen| -> Vec<u8> {
                            let n = 1 + usize::arbitrary(g) % 4;
                            (0..n).map(|_| u8::arbitrary(g) % keys).collect()
                        };
                        match u8::arbitrary(g) % 20 {
                            0..4 => Step::Insert(key),
                            4..7 => Step::Get(key),
                            7..9 => Step::Remove(key),
                            9..14 => Step::InsertBatch {
                                keys: several(g),
                                fill: u8::arbitrary(g) % (MAX_FILL + 1),
                            },
                            14..17 => Step::RemoveBatch {
                                keys: several(g),
                                fill: u8::arbitrary(g) % (MAX_FILL + 1),
                            },
                            _ => Step::GetMany(several(g)),
                        }
                    })
                    .collect()
            })
            .collect();
        BatchProgram(Program { threads })
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        Box::new(self.0.shrink().map(BatchProgram))
    }
}

/// A map the harness can run programs on.
pub trait Subject: ConcurrentMap<u64, u64> + Sized {
    fn fresh() -> Self;

    /// Called once the preload is in, before the program runs.
    fn arm(&self) {}

    /// Structural checks after a run (the Bw-tree's invariants).
    fn audit(&self) -> Result<(), String> {
        Ok(())
    }

    /// Structure modifications since the map was built, for maps that count them.
    fn modifications(&self) -> Modifications {
        Modifications::default()
    }
}

/// Structure modifications of a run, as far as the map counts them.
#[derive(Clone, Copy, Debug, Default)]
pub struct Modifications {
    /// Pages added by splits beyond one per split (the ones a multi-page split of a batch adds:
    /// a leaf cut into `k` pieces adds `k - 2` here).
    pub extra_split_pages: u64,
    /// Pages merged into a neighbour.
    pub merges: u64,
}

/// Fills `map` with the preload and returns the initial values of the checked keys.
pub fn preload<M: ConcurrentMap<u64, u64>>(map: &M) -> BTreeMap<u64, u64> {
    for j in 0..PRELOAD {
        map.insert(j * 8, j);
    }
    let mut initial = BTreeMap::new();
    for i in 0..MAX_KEYS {
        if let Some(value) = preloaded_value(i) {
            map.insert(checked_key(i), value);
            initial.insert(checked_key(i), value);
        }
    }
    initial
}

/// Runs `program` on `map` with a churning background thread; returns the recorded history and
/// how many churn operations ran meanwhile.
pub fn run_program<M: ConcurrentMap<u64, u64>>(
    map: &M,
    initial: BTreeMap<u64, u64>,
    program: &Program,
    churn_seed: u64,
) -> (History, u64) {
    let clock = Clock::new();
    let barrier = StartGate::new(program.threads.len() + 1);
    let stop = AtomicBool::new(false);
    let mut used: Vec<u8> = program
        .threads
        .iter()
        .flatten()
        .flat_map(|s| s.keys().iter().copied())
        .collect();
    used.sort_unstable();
    used.dedup();
    if used.is_empty() {
        used.push(0);
    }
    let mut history = History::new(initial);
    let churned = thread::scope(|s| {
        let (clock, barrier, stop, used) = (&clock, &barrier, &stop, &used);
        let churn = s.spawn(move || {
            // Churn around the keys the program uses: splits and consolidations of their leaves.
            let mut rng = Rng::new(churn_seed);
            barrier.wait();
            let mut churned = 0;
            // Relaxed: only ends the loop; the scope's join synchronises.
            while !stop.load(Ordering::Relaxed) {
                churned += 1;
                // Yield after every operation: on a machine with few cores the workers would
                // otherwise mostly wait for the churn thread's core instead of overlapping.
                thread::yield_now();
                let i = used[rng.below(used.len() as u64) as usize];
                let d = 1 + rng.below(CHURN_RADIUS);
                let key = if rng.below(2) == 0 {
                    checked_key(i) - d
                } else {
                    checked_key(i) + d
                };
                if rng.below(2) == 0 {
                    map.insert(key, rng.next_u64());
                } else {
                    map.remove(&key);
                }
            }
            churned
        });
        let workers: Vec<_> = program
            .threads
            .iter()
            .enumerate()
            .map(|(t, steps)| {
                s.spawn(move || {
                    let mut rec = Recorder::new(clock, t).untracked(untracked);
                    barrier.wait();
                    for (j, step) in steps.iter().enumerate() {
                        match step {
                            &Step::Insert(i) => {
                                rec.insert(
                                    map,
                                    checked_key(i),
                                    (t as u64 + 1) * 1_000 + j as u64 + 1,
                                );
                            }
                            &Step::Get(i) => {
                                rec.get(map, checked_key(i));
                            }
                            &Step::Remove(i) => {
                                rec.remove(map, checked_key(i));
                            }
                            Step::InsertBatch { keys, fill } => {
                                let base = (t as u64 + 1) * 1_000_000 + (j as u64 + 1) * 1_000;
                                let pairs: Vec<(u64, u64)> =
                                    batch_keys(keys, *fill).zip(base..).collect();
                                rec.insert_batch(map, &pairs);
                            }
                            Step::RemoveBatch { keys, fill } => {
                                let keys: Vec<u64> = batch_keys(keys, *fill).collect();
                                rec.remove_batch(map, &keys);
                            }
                            Step::GetMany(keys) => {
                                let keys: Vec<u64> = batch_keys(keys, 0).collect();
                                rec.get_many(map, &keys);
                            }
                        }
                    }
                    rec.finish()
                })
            })
            .collect();
        for worker in workers {
            history.extend(worker.join().expect("worker thread"));
        }
        stop.store(true, Ordering::Relaxed);
        churn.join().expect("churn thread")
    });
    (history, churned)
}

/// The input keys of a batch step: each checked key followed by its `fill` filler keys.
pub fn batch_keys(keys: &[u8], fill: u8) -> impl Iterator<Item = u64> + '_ {
    keys.iter().flat_map(move |&i| {
        std::iter::once(checked_key(i)).chain((0..fill).map(move |n| filler_key(i, n)))
    })
}

/// How many operations overlap in time with an operation of another thread.
pub fn overlapping(ops: &[Operation]) -> u64 {
    let count = ops
        .iter()
        .filter(|a| {
            ops.iter().any(|b| {
                a.thread != b.thread
                    && a.inv < b.resp.unwrap_or(u64::MAX)
                    && b.inv < a.resp.unwrap_or(u64::MAX)
            })
        })
        .count();
    count as u64
}

/// What the property has checked so far on this test thread.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// Checked operations.
    pub ops: u64,
    /// Of those, the ones that overlapped an operation of another thread.
    pub overlapped: u64,
    /// Program runs (retries included).
    pub programs: u64,
    /// Background churn operations during the runs.
    pub churned: u64,
    /// Of the checked operations, the ones that were a key of a batch call.
    pub batched: u64,
    /// Structure modifications during the runs (preloads included).
    pub modifications: Modifications,
}

/// How often a candidate is re-run once a failure has been seen (failures depend on scheduling, so
/// a shrunk program that passes once may still be a failing one).
pub const RETRIES: usize = 8;

thread_local! {
    /// Whether this test thread's property has failed (from then on candidates are re-run).
    static FAILED: Cell<bool> = const { Cell::new(false) };
    /// The report of the latest failing run: the program and its minimal failing history.
    static LAST_FAILURE: RefCell<Option<String>> = const { RefCell::new(None) };
    /// What this test thread has checked.
    static CHECKED: Cell<Stats> = const {
        Cell::new(Stats {
            ops: 0,
            overlapped: 0,
            programs: 0,
            churned: 0,
            batched: 0,
            modifications: Modifications {
                extra_split_pages: 0,
                merges: 0,
            },
        })
    };
    /// Seeds the churn threads.
    static CHURN_RNG: RefCell<Rng> = RefCell::new(Rng::new(1));
}

/// The property: `program` run on a fresh preloaded `M` gives a linearizable history.
pub fn check_program<M: Subject>(program: Program) -> TestResult {
    let attempts = if FAILED.get() { RETRIES } else { 1 };
    for _ in 0..attempts {
        let map = M::fresh();
        let initial = preload(&map);
        map.arm();
        let churn_seed = CHURN_RNG.with_borrow_mut(Rng::next_u64);
        let (history, churned) = run_program(&map, initial, &program, churn_seed);
        let mut stats = CHECKED.get();
        stats.ops += history.len() as u64;
        stats.overlapped += overlapping(history.operations());
        stats.programs += 1;
        stats.churned += churned;
        stats.batched += history
            .operations()
            .iter()
            .filter(|op| op.batch.is_some())
            .count() as u64;
        let modifications = map.modifications();
        stats.modifications.extra_split_pages += modifications.extra_split_pages;
        stats.modifications.merges += modifications.merges;
        CHECKED.set(stats);
        let failure = match history.check() {
            Ok(_) => map.audit().err(),
            Err(violation) => Some(violation.to_string()),
        };
        if let Some(report) = failure {
            FAILED.set(true);
            let report = format!("{} on {program:?}\n{report}", map.name());
            LAST_FAILURE.set(Some(report.clone()));
            return TestResult::error(report);
        }
    }
    TestResult::passed()
}

/// The property for batch programs (see [`check_program`]).
pub fn check_batch_program<M: Subject>(program: BatchProgram) -> TestResult {
    check_program::<M>(program.0)
}

/// What a [`drive`] run did.
#[derive(Debug)]
pub struct Driven {
    pub stats: Stats,
    pub seed: u64,
    pub secs: f64,
}

impl fmt::Display for Driven {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Stats {
            ops,
            overlapped,
            programs,
            churned,
            batched,
            modifications,
        } = self.stats;
        write!(
            f,
            "{ops} operations ({overlapped} overlapping another thread's) in {programs} program runs \
             with {churned} churn operations, checked in {:.1} s (seed {})",
            self.secs, self.seed
        )?;
        if batched > 0 {
            write!(
                f,
                "; {batched} of the operations were keys of batch calls; {} pages added by \
                 multi-page splits beyond one per split, {} merges",
                modifications.extra_split_pages, modifications.merges
            )?;
        }
        Ok(())
    }
}

/// Runs generated programs through `property` until at least `target_ops` operations were checked
/// or a failure was found; returns the failure report of the minimal failing program.
pub fn drive<P: Arbitrary + fmt::Debug>(
    property: fn(P) -> TestResult,
    target_ops: u64,
    max_programs: u64,
) -> Result<Driven, String> {
    let seed = seed_from_env("BWTREE_LIN_SEED");
    FAILED.set(false);
    LAST_FAILURE.set(None);
    CHECKED.set(Stats::default());
    CHURN_RNG.set(Rng::new(seed));
    let start = Instant::now();
    let mut quickcheck = QuickCheck::new()
        .rng(Gen::from_size_and_seed(100, seed))
        .tests(50)
        .max_tests(50);
    loop {
        let stats = CHECKED.get();
        if stats.ops >= target_ops || stats.programs >= max_programs {
            return Ok(Driven {
                stats,
                seed,
                secs: start.elapsed().as_secs_f64(),
            });
        }
        if quickcheck.quicktest(property).is_err() {
            let report = LAST_FAILURE.take().unwrap_or_default();
            return Err(format!(
                "seed {seed} (BWTREE_LIN_SEED), minimal failing program: {report}"
            ));
        }
    }
}
