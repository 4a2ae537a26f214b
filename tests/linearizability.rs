//! Linearizability of point operations under concurrency, checked with the Wing–Gong/Lowe checker
//! in `support::lincheck`.
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
//! The same harness runs over a `BTreeMap` behind a `Mutex`, which it must accept, and over two
//! deliberately broken maps, which it must reject.
//!
//! # Batches
//! A second generator mixes batch calls into the programs (2–3 threads of 3–12 steps over up to 8
//! keys): `insert_batch`, `remove_batch` and `get_many` of 1–4 checked keys (repeats allowed, which
//! exercises the documented policy for keys given twice), interleaved with point operations. A
//! batched write also carries up to 20 untracked *filler* keys packed around each of its checked
//! keys (within ±10, preloaded keys among them), so that an `insert_batch` overfills the checked
//! key's leaf several times over (the deferred rebalancing then cuts it into three or more pages at
//! once) and a `remove_batch` empties leaves (merges). Each batch is recorded as one operation per
//! checked key with the batch's timestamps (see `support::lincheck`). The harness must accept the
//! locked `BTreeMap` and reject a map whose batched writes are not atomic per key.
//!
//! Environment: `BWTREE_LIN_OPS` raises the number of operations checked on the Bw-tree (default
//! 100,000 for point programs, 15,000 for batch programs); `BWTREE_LIN_SEED` fixes the program
//! generator's seed.

mod support;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Instant;

use bwtree::{BwTree, CasKind, ConcurrentMap, Config, Level};
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};

use support::lincheck::{BatchOf, Call, History, Operation, Recorder, Violation};
use support::maps::{DroppingWrites, LockedBTreeMap, RacyBatches, StaleReads};
use support::{Clock, StartGate, XorShift, count_from_env, seed_from_env};

// ---------------------------------------------------------------------------------------------
// The checker itself, on hand-written histories.
// ---------------------------------------------------------------------------------------------

fn history(initial: &[(u64, u64)], ops: Vec<Operation>) -> History {
    let mut history = History::new(initial.iter().copied().collect());
    history.extend(ops);
    history
}

fn violation(initial: &[(u64, u64)], ops: Vec<Operation>) -> Violation {
    match history(initial, ops).check() {
        Ok(summary) => panic!("a non-linearizable history was accepted ({summary:?})"),
        Err(violation) => {
            // The report must render, and what it shows must be the failing sub-history.
            let text = violation.to_string();
            assert!(text.contains("linearizability violation on key"), "{text}");
            assert!(text.contains("thread | op"), "{text}");
            assert!(!violation.ops.is_empty());
            violation
        }
    }
}

#[test]
fn checker_accepts_a_sequential_history() {
    let ops = vec![
        Operation::insert(0, 1, 10, None, 1, 2),
        Operation::get(0, 1, Some(10), 3, 4),
        Operation::insert(0, 1, 11, Some(10), 5, 6),
        Operation::remove(0, 1, Some(11), 7, 8),
        Operation::get(0, 1, None, 9, 10),
        Operation::remove(0, 1, None, 11, 12),
    ];
    let summary = history(&[], ops).check().expect("linearizable");
    assert_eq!((summary.ops, summary.keys), (6, 1));
}

#[test]
fn checker_uses_the_preloaded_value() {
    let ops = vec![
        Operation::get(0, 5, Some(50), 1, 2),
        Operation::remove(1, 5, Some(50), 3, 4),
    ];
    history(&[(5, 50)], ops.clone())
        .check()
        .expect("linearizable from the preload");
    violation(&[], ops);
}

#[test]
fn checker_reorders_a_read_that_finishes_before_the_write_it_sees() {
    // The get returns inside the insert's interval, so the insert must be linearized first even
    // though it responds last.
    let ops = vec![
        Operation::insert(0, 1, 10, None, 1, 10),
        Operation::get(1, 1, Some(10), 2, 3),
        Operation::get(2, 1, None, 4, 5),
    ];
    assert!(
        history(&[], ops).check().is_err(),
        "get None after get Some(10) inside one insert"
    );
    let ops = vec![
        Operation::insert(0, 1, 10, None, 1, 10),
        Operation::get(2, 1, None, 2, 3),
        Operation::get(1, 1, Some(10), 4, 5),
    ];
    history(&[], ops)
        .check()
        .expect("None then Some(10), both during the insert");
}

#[test]
fn checker_reorders_overlapping_writes() {
    // Thread 0 is invoked first but must be linearized second: its insert returned thread 1's value.
    let ops = vec![
        Operation::insert(0, 1, 10, Some(20), 1, 6),
        Operation::insert(1, 1, 20, None, 2, 5),
        Operation::get(2, 1, Some(10), 7, 8),
        Operation::remove(2, 1, Some(10), 9, 10),
        Operation::insert(3, 1, 30, None, 11, 20),
        Operation::insert(4, 1, 40, Some(30), 12, 19),
        Operation::remove(5, 1, Some(40), 13, 18),
        Operation::get(6, 1, None, 14, 15),
    ];
    history(&[], ops)
        .check()
        .expect("linearizable with reordering");
}

#[test]
fn checker_keeps_keys_independent() {
    let ops = vec![
        Operation::insert(0, 1, 10, None, 1, 4),
        Operation::insert(1, 2, 20, None, 2, 3),
        Operation::get(0, 2, Some(20), 5, 6),
        Operation::get(1, 1, Some(10), 7, 8),
        Operation::get(1, 3, Some(30), 9, 10),
    ];
    let summary = history(&[(3, 30)], ops).check().expect("linearizable");
    assert_eq!(summary.keys, 3);
}

#[test]
fn checker_rejects_a_stale_read_after_a_completed_write() {
    let v = violation(
        &[],
        vec![
            Operation::insert(0, 7, 70, None, 1, 2),
            Operation::get(1, 7, None, 3, 4),
        ],
    );
    assert_eq!((v.key, v.ops.len()), (7, 2));
}

#[test]
fn checker_rejects_a_lost_insert() {
    // The second insert saw the first, but a later get sees the first's value again.
    violation(
        &[],
        vec![
            Operation::insert(0, 1, 10, None, 1, 2),
            Operation::insert(1, 1, 20, Some(10), 3, 4),
            Operation::get(0, 1, Some(10), 5, 6),
        ],
    );
    // Both inserts claim the key was empty, with no remove between them.
    violation(
        &[],
        vec![
            Operation::insert(0, 1, 10, None, 1, 4),
            Operation::insert(1, 1, 20, None, 2, 3),
        ],
    );
}

#[test]
fn checker_rejects_a_remove_of_a_value_never_written() {
    let v = violation(
        &[(1, 10)],
        vec![
            Operation::insert(0, 1, 11, Some(10), 1, 2),
            Operation::remove(1, 1, Some(42), 3, 4),
        ],
    );
    assert!(v.ops.iter().any(|op| op.call == Call::Remove));
}

#[test]
fn checker_rejects_a_read_before_the_write_was_invoked() {
    violation(
        &[],
        vec![
            Operation::get(1, 1, Some(10), 1, 2),
            Operation::insert(0, 1, 10, None, 3, 4),
        ],
    );
}

#[test]
fn checker_rejects_a_value_removed_twice() {
    violation(
        &[],
        vec![
            Operation::insert(0, 1, 10, None, 1, 2),
            Operation::remove(1, 1, Some(10), 3, 6),
            Operation::remove(2, 1, Some(10), 4, 5),
        ],
    );
}

#[test]
fn checker_minimizes_the_report() {
    // 40 correct operations on key 1 from three threads, then a stale read; other keys are noise.
    let mut ops = Vec::new();
    let mut t = 1;
    let mut value = None;
    for i in 0..40 {
        let thread = i % 3;
        let op = match i % 4 {
            0 | 1 => {
                let next = 100 + i as u64;
                let op = Operation::insert(thread, 1, next, value, t, t + 1);
                value = Some(next);
                op
            }
            2 => Operation::get(thread, 1, value, t, t + 1),
            _ => {
                let op = Operation::remove(thread, 1, value, t, t + 1);
                value = None;
                op
            }
        };
        ops.push(op);
        ops.push(Operation::get(thread, 2, None, t + 2, t + 3));
        t += 4;
    }
    let stale = Operation::insert(0, 1, 999, value, t, t + 1);
    ops.push(stale);
    ops.push(Operation::get(1, 1, value, t + 2, t + 3));
    ops.push(Operation::get(2, 1, Some(999), t + 4, t + 5));
    let v = violation(&[], ops);
    assert_eq!(v.key, 1);
    assert_eq!(v.key_history.len(), 43);
    assert!(v.folded.is_some(), "the correct prefix is folded:\n{v}");
    // What is left: the insert of 999 and the read that missed it, from the value before it.
    assert_eq!(v.ops.len(), 2, "minimal history:\n{v}");
    assert_eq!(v.ops[0].call, Call::Insert(999));
    assert_eq!(v.initial, None);
}

#[test]
fn checker_cuts_the_report_at_the_first_failure_with_pending_operations() {
    // The violation (get None after the insert returned) happens while a long insert is in flight;
    // the operations invoked after the failing response are left out, the long insert is pending.
    let ops = vec![
        Operation::insert(0, 1, 10, None, 1, 2),
        Operation::insert(1, 1, 20, Some(10), 3, 100),
        Operation::get(2, 1, None, 4, 5),
        Operation::get(2, 1, Some(20), 101, 102),
        Operation::remove(2, 1, Some(20), 103, 104),
    ];
    let v = violation(&[], ops);
    assert!(
        v.ops.iter().all(|op| op.inv <= 5),
        "cut at the failure:\n{v}"
    );
    assert!(
        v.ops.iter().any(|op| !op.is_completed()),
        "the long insert is pending:\n{v}"
    );
    assert!(v.to_string().contains("pending"));
}

#[test]
fn checker_memoizes_wide_concurrency() {
    // 16 mutually overlapping inserts whose results chain them in a scrambled order: 16! orders,
    // but only 2^16 (set, value) configurations. Then the same with two inserts claiming the same
    // predecessor, which forces the search to exhaust them all.
    let n = 16u64;
    let order: Vec<u64> = (0..n).map(|i| (i * 7) % n).collect();
    let chained = |broken: bool| -> Vec<Operation> {
        order
            .iter()
            .enumerate()
            .map(|(pos, &value)| {
                let prev = match pos {
                    0 => None,
                    1 if broken => None,
                    _ => Some(order[pos - 1]),
                };
                Operation::insert(value as usize, 1, value, prev, 1 + value, 100 + value)
            })
            .collect()
    };
    let summary = history(&[], chained(false)).check().expect("linearizable");
    assert!(summary.configurations <= 1 << n);
    let v = violation(&[], chained(true));
    assert_eq!(v.key_history.len(), n as usize);
}

#[test]
fn checker_accepts_recorded_histories_of_a_locked_map() {
    // Real concurrent histories of a correct map, long and on few keys so reordering is needed.
    let map = LockedBTreeMap::new();
    let clock = Clock::new();
    let mut history = History::new(BTreeMap::new());
    let barrier = StartGate::new(4);
    thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let (map, clock, barrier) = (&map, &clock, &barrier);
                s.spawn(move || {
                    let mut rng = XorShift::new(t as u64 + 1);
                    let mut rec = Recorder::new(clock, t);
                    barrier.wait();
                    for i in 0..2_000u64 {
                        let key = rng.below(3);
                        match rng.below(3) {
                            0 => rec.insert(map, key, (t as u64 + 1) * 1_000_000 + i),
                            1 => rec.get(map, key),
                            _ => rec.remove(map, key),
                        };
                    }
                    rec.finish()
                })
            })
            .collect();
        for handle in handles {
            history.extend(handle.join().expect("recorder thread"));
        }
    });
    let summary = history.check().unwrap_or_else(|v| panic!("{v}"));
    assert_eq!(summary.ops, 8_000);
}

/// Batch call number `id` of `len` items, for hand-written histories.
fn batch(id: usize, len: usize) -> BatchOf {
    BatchOf { id, len }
}

#[test]
fn checker_linearizes_each_key_of_a_batch_on_its_own() {
    // A batch over keys 1 and 2 (t 1..10) overlaps a thread that writes 1 and then 2. The batch
    // saw the write to 2 but not the one to 1: not atomic as a whole, but each key linearizable.
    let b = batch(0, 2);
    let ops = vec![
        Operation::insert(0, 1, 10, None, 1, 10).in_batch(b),
        Operation::insert(0, 2, 20, Some(21), 1, 10).in_batch(b),
        Operation::insert(1, 1, 11, Some(10), 2, 3),
        Operation::insert(1, 2, 21, None, 4, 5),
        Operation::get(1, 1, Some(11), 11, 12),
        Operation::get(1, 2, Some(20), 13, 14),
    ];
    history(&[], ops).check().expect("each key linearizable");
    // But a key's part of a batch still has to fall inside the batch's interval.
    let v = violation(
        &[],
        vec![
            Operation::insert(1, 1, 11, None, 1, 2),
            Operation::insert(0, 1, 10, None, 3, 6).in_batch(b),
            Operation::insert(0, 2, 20, None, 3, 6).in_batch(b),
        ],
    );
    assert_eq!(v.key, 1);
    assert!(v.to_string().contains("insert_batch"), "{v}");
    assert!(v.to_string().contains("[batch #0 of 2]"), "{v}");
}

#[test]
fn checker_applies_a_key_repeated_in_a_batch_at_one_instant() {
    // insert_batch([(1, 10), (1, 11)]) concurrent with insert(1, 20): the occurrences report the
    // value before the batch and then the first occurrence's value.
    let b = batch(0, 2);
    let repeated = |first: Option<u64>, second: Option<u64>| {
        Operation::insert(0, 1, 10, first, 1, 10)
            .then(Call::Insert(11), second)
            .in_batch(b)
    };
    let ops = vec![
        repeated(None, Some(10)),
        Operation::insert(1, 1, 20, Some(11), 2, 3),
        Operation::get(1, 1, Some(20), 11, 12),
    ];
    history(&[], ops).check().expect("batch, then the insert");
    let ops = vec![
        repeated(Some(20), Some(10)),
        Operation::insert(1, 1, 20, None, 2, 3),
        Operation::get(1, 1, Some(11), 11, 12),
    ];
    history(&[], ops)
        .check()
        .expect("the insert, then the batch");
    // The other thread's write between the two occurrences: allowed for two separate inserts, not
    // for one batch.
    let v = violation(
        &[],
        vec![
            repeated(None, Some(20)),
            Operation::insert(1, 1, 20, Some(10), 2, 3),
            Operation::get(1, 1, Some(11), 11, 12),
        ],
    );
    assert!(v.to_string().contains("v=10,11 (2 times)"), "{v}");
    assert!(v.key_history_table().contains("None,Some(20)"), "{v}");
    // A repeat whose result is not the value the occurrence before it stored.
    violation(&[], vec![repeated(None, None)]);
    // A remove repeated in a remove_batch reports nothing the second time.
    let removes = |second: Option<u64>| {
        Operation::remove(0, 1, Some(10), 1, 2)
            .then(Call::Remove, second)
            .in_batch(b)
    };
    history(&[(1, 10)], vec![removes(None)])
        .check()
        .expect("removed once");
    violation(&[(1, 10)], vec![removes(Some(10))]);
}

#[test]
fn recorder_records_one_operation_per_key_of_a_batch() {
    let map = LockedBTreeMap::new();
    map.insert(3, 30);
    map.insert(7, 70);
    let clock = Clock::new();
    let mut rec = Recorder::new(&clock, 0).untracked(|k| k >= 100);
    let results = rec.insert_batch(
        &map,
        &[(3, 31), (5, 50), (100, 1), (3, 32), (5, 51), (3, 33)],
    );
    assert_eq!(
        results,
        vec![Some(30), None, None, Some(31), Some(50), Some(32)]
    );
    assert_eq!(
        rec.get_many(&map, &[3, 4, 3, 100]),
        vec![Some(33), None, Some(33), Some(1)]
    );
    assert_eq!(rec.remove_batch(&map, &[7, 7]), vec![Some(70), None]);
    let ops = rec.finish();
    let b0 = batch(0, 6);
    let b1 = batch(1, 4);
    let b2 = batch(2, 2);
    assert_eq!(
        ops,
        vec![
            Operation::insert(0, 3, 31, Some(30), 1, 2)
                .then(Call::Insert(32), Some(31))
                .then(Call::Insert(33), Some(32))
                .in_batch(b0),
            Operation::insert(0, 5, 50, None, 1, 2)
                .then(Call::Insert(51), Some(50))
                .in_batch(b0),
            Operation::get(0, 3, Some(33), 3, 4).in_batch(b1),
            Operation::get(0, 4, None, 3, 4).in_batch(b1),
            Operation::get(0, 3, Some(33), 3, 4).in_batch(b1),
            Operation::remove(0, 7, Some(70), 5, 6)
                .then(Call::Remove, None)
                .in_batch(b2),
        ]
    );
    let mut history = History::new([(3, 30), (7, 70)].into_iter().collect());
    history.extend(ops);
    assert_eq!(history.check().expect("sequential").keys, 4);
}

// ---------------------------------------------------------------------------------------------
// Generated concurrent programs.
// ---------------------------------------------------------------------------------------------

/// Checked keys are `1000·i + 500`, `i < MAX_KEYS`.
const MAX_KEYS: u8 = 16;
/// Keys preloaded around the checked ones: `0, 8, 16, …` (never a checked key: those are ≡ 4 mod 8).
const PRELOAD: u64 = 2_000;
/// Churn keys lie within this distance of a checked key (and are never one).
const CHURN_RADIUS: u64 = 48;

fn checked_key(i: u8) -> u64 {
    u64::from(i) * 1_000 + 500
}

/// Whether `key` is not one of the checked keys (a preloaded, churn or filler key).
fn untracked(key: u64) -> bool {
    key % 1_000 != 500 || key / 1_000 >= u64::from(MAX_KEYS)
}

/// The `n`-th filler key of checked key `i`: `+1, -1, +2, -2, …` around it (never a checked key).
fn filler_key(i: u8, n: u8) -> u64 {
    let d = u64::from(n / 2) + 1;
    if n % 2 == 0 {
        checked_key(i) + d
    } else {
        checked_key(i) - d
    }
}

/// Most filler keys a batched write carries per checked key.
const MAX_FILL: u8 = 20;

/// The value a preloaded checked key holds (even `i` are preloaded, odd ones start absent).
fn preloaded_value(i: u8) -> Option<u64> {
    (i % 2 == 0).then(|| 9_000_000 + u64::from(i))
}

/// One step of a generated thread; a `u8` is the index of a checked key.
#[derive(Clone, PartialEq, Eq)]
enum Step {
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
struct Program {
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
struct BatchProgram(Program);

impl fmt::Debug for BatchProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Most checked keys a batch program uses.
const BATCH_KEYS: u8 = 8;

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
trait Subject: ConcurrentMap<u64, u64> + Sized {
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
struct Modifications {
    /// Pages added by splits beyond one per split (the ones a multi-page split of a batch adds:
    /// a leaf cut into `k` pieces adds `k - 2` here).
    extra_split_pages: u64,
    /// Pages merged into a neighbour.
    merges: u64,
}

impl Subject for BwTree<u64, u64> {
    fn fresh() -> Self {
        BwTree::with_config(Config::tiny()).expect("tiny is valid")
    }

    fn audit(&self) -> Result<(), String> {
        self.check_invariants()
            .map_err(|e| format!("invariant violated after the run: {e}"))
    }

    fn modifications(&self) -> Modifications {
        let stats = self.stats();
        // Every split installs one split delta with one successful CAS; an ordinary split adds one
        // page with it, a multi-page split of a batch several.
        let pages = stats.splits(Level::Leaf) + stats.splits(Level::Inner);
        Modifications {
            extra_split_pages: pages - stats.cas_successes(CasKind::Split),
            merges: stats.merges(Level::Leaf) + stats.merges(Level::Inner),
        }
    }
}

impl Subject for LockedBTreeMap {
    fn fresh() -> Self {
        LockedBTreeMap::new()
    }
}

impl Subject for DroppingWrites {
    fn fresh() -> Self {
        DroppingWrites::new(3)
    }

    /// Drops writes of the program only, not of the preload.
    fn arm(&self) {
        self.arm();
    }
}

impl Subject for StaleReads {
    fn fresh() -> Self {
        StaleReads::new()
    }
}

impl Subject for RacyBatches {
    fn fresh() -> Self {
        RacyBatches::new()
    }
}

/// Fills `map` with the preload and returns the initial values of the checked keys.
fn preload<M: ConcurrentMap<u64, u64>>(map: &M) -> BTreeMap<u64, u64> {
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
fn run_program<M: ConcurrentMap<u64, u64>>(
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
            let mut rng = XorShift::new(churn_seed);
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
fn batch_keys(keys: &[u8], fill: u8) -> impl Iterator<Item = u64> + '_ {
    keys.iter().flat_map(move |&i| {
        std::iter::once(checked_key(i)).chain((0..fill).map(move |n| filler_key(i, n)))
    })
}

/// How many operations overlap in time with an operation of another thread.
fn overlapping(ops: &[Operation]) -> u64 {
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
struct Stats {
    /// Checked operations.
    ops: u64,
    /// Of those, the ones that overlapped an operation of another thread.
    overlapped: u64,
    /// Program runs (retries included).
    programs: u64,
    /// Background churn operations during the runs.
    churned: u64,
    /// Of the checked operations, the ones that were a key of a batch call.
    batched: u64,
    /// Structure modifications during the runs (preloads included).
    modifications: Modifications,
}

/// How often a candidate is re-run once a failure has been seen (failures depend on scheduling, so
/// a shrunk program that passes once may still be a failing one).
const RETRIES: usize = 8;

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
    static CHURN_RNG: RefCell<XorShift> = RefCell::new(XorShift::new(1));
}

/// The property: `program` run on a fresh preloaded `M` gives a linearizable history.
fn check_program<M: Subject>(program: Program) -> TestResult {
    let attempts = if FAILED.get() { RETRIES } else { 1 };
    for _ in 0..attempts {
        let map = M::fresh();
        let initial = preload(&map);
        map.arm();
        let churn_seed = CHURN_RNG.with_borrow_mut(XorShift::next_u64);
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
fn check_batch_program<M: Subject>(program: BatchProgram) -> TestResult {
    check_program::<M>(program.0)
}

/// What a [`drive`] run did.
#[derive(Debug)]
struct Driven {
    stats: Stats,
    seed: u64,
    secs: f64,
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
fn drive<P: Arbitrary + fmt::Debug>(
    property: fn(P) -> TestResult,
    target_ops: u64,
    max_programs: u64,
) -> Result<Driven, String> {
    let seed = seed_from_env("BWTREE_LIN_SEED");
    FAILED.set(false);
    LAST_FAILURE.set(None);
    CHECKED.set(Stats::default());
    CHURN_RNG.set(XorShift::new(seed));
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

#[test]
fn bwtree_point_operations_are_linearizable() {
    let target = count_from_env("BWTREE_LIN_OPS", 100_000);
    match drive(check_program::<BwTree<u64, u64>>, target, u64::MAX) {
        Ok(driven) => {
            let tree = BwTree::<u64, u64>::fresh();
            preload(&tree);
            println!(
                "bwtree (height {} after the preload): {driven}",
                tree.height()
            );
            assert!(tree.height() >= 3);
            assert!(driven.stats.ops >= target);
        }
        Err(report) => panic!("{report}"),
    }
}

#[test]
fn checker_accepts_a_locked_btreemap() {
    match drive(check_program::<LockedBTreeMap>, 20_000, u64::MAX) {
        Ok(driven) => println!("locked-btreemap: {driven}"),
        Err(report) => panic!("a correct map was rejected: {report}"),
    }
}

/// Runs the harness over a broken map and insists that it is caught; returns the report.
fn assert_rejected<P: Arbitrary + fmt::Debug>(property: fn(P) -> TestResult, name: &str) -> String {
    match drive(property, u64::MAX, 2_000) {
        Ok(driven) => panic!("{name}: the broken map passed: {driven}"),
        Err(report) => {
            println!("{name} rejected as it should be:\n{report}");
            assert!(
                report.contains("linearizability violation on key"),
                "{report}"
            );
            assert!(report.contains("thread | op"), "{report}");
            report
        }
    }
}

#[test]
fn checker_rejects_a_map_that_drops_writes() {
    assert_rejected(check_program::<DroppingWrites>, "dropping-writes");
}

#[test]
fn checker_rejects_a_map_with_stale_reads() {
    assert_rejected(check_program::<StaleReads>, "stale-reads");
}

#[test]
fn bwtree_batches_are_linearizable_per_key() {
    let target = count_from_env("BWTREE_LIN_OPS", 15_000);
    match drive(check_batch_program::<BwTree<u64, u64>>, target, u64::MAX) {
        Ok(driven) => {
            println!("bwtree with batches: {driven}");
            assert!(driven.stats.ops >= target);
            // The programs really exercised what they are meant to.
            assert!(driven.stats.batched * 2 > driven.stats.ops, "{driven}");
            assert!(driven.stats.overlapped > 0, "{driven}");
            assert!(
                driven.stats.modifications.extra_split_pages > 0,
                "no multi-page split happened: {driven}"
            );
            assert!(
                driven.stats.modifications.merges > 0,
                "no merge happened: {driven}"
            );
        }
        Err(report) => panic!("{report}"),
    }
}

#[test]
fn a_batch_overfills_a_leaf_into_three_or_more_pages() {
    // What the batch programs rely on: one checked key with its most fillers, on the preloaded
    // tiny tree, overfills a leaf that is then cut into at least three pages at once; removing
    // them again merges pages.
    let tree = BwTree::<u64, u64>::fresh();
    preload(&tree);
    // Point inserts split one page at a time: the measure counts only multi-page splits.
    assert_eq!(tree.modifications().extra_split_pages, 0);
    let pairs: Vec<(u64, u64)> = batch_keys(&[3], MAX_FILL).map(|k| (k, 1)).collect();
    let out = tree.insert_batch(pairs.clone());
    assert!(out.metrics.splits >= 2, "{:?}", out.metrics);
    assert!(
        tree.modifications().extra_split_pages > 0,
        "{:?}",
        out.metrics
    );
    let keys: Vec<u64> = pairs.iter().map(|p| p.0).collect();
    let before = tree.modifications().merges;
    tree.remove_batch(keys);
    assert!(tree.modifications().merges > before);
    tree.check_invariants().unwrap();
}

#[test]
fn checker_accepts_batches_of_a_locked_btreemap() {
    match drive(check_batch_program::<LockedBTreeMap>, 5_000, u64::MAX) {
        Ok(driven) => {
            println!("locked-btreemap with batches: {driven}");
            assert!(driven.stats.batched > 0);
        }
        Err(report) => panic!("a correct map was rejected: {report}"),
    }
}

#[test]
fn checker_rejects_batched_writes_that_are_not_atomic_per_key() {
    // The map's point operations and multi-gets are correct: only the batch recording can catch it.
    let report = assert_rejected(check_batch_program::<RacyBatches>, "racy-batches");
    assert!(
        report.contains("insert_batch") || report.contains("remove_batch"),
        "{report}"
    );
}
