//! Bulk operations: model tests of every batch call against `BTreeMap` on tiny pages, bulk loading,
//! the deferred multi-way split, rollback (rejections, source errors, a panicking source, concurrent
//! writers), progress callbacks (including one that panics) and concurrent batches overlapping with
//! point operations and scans.
// `clippy.toml`'s atomics rule is for the crate's `src/`: tests and tools use std's atomics.
#![allow(clippy::disallowed_types)]

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::ops::Bound;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bwtree::{BatchFailure, BatchOptions, BulkLoadError, BwTree, Config, KeyExists};
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};

mod support {
    pub mod bounds;
}

use support::bounds::arbitrary_bound;

fn tiny() -> BwTree<u64, u64> {
    BwTree::with_config(Config::tiny()).unwrap()
}

fn key(g: &mut Gen) -> u64 {
    match u8::arbitrary(g) % 16 {
        0 => 0,
        1 => u64::MAX,
        _ => u64::arbitrary(g) % 200,
    }
}

fn keys(g: &mut Gen) -> Vec<u64> {
    let len = usize::arbitrary(g) % 40;
    let base = u64::arbitrary(g) % 200;
    (0..len)
        .map(|_| {
            if bool::arbitrary(g) {
                // Clustered: near a common base, so groups hold several keys.
                base + u64::arbitrary(g) % 12
            } else {
                key(g)
            }
        })
        .collect()
}

fn bound(g: &mut Gen) -> Bound<u64> {
    arbitrary_bound(g, key)
}

#[derive(Clone, Debug)]
enum Op {
    Insert(u64, u64),
    Remove(u64),
    InsertBatch(Vec<(u64, u64)>),
    RemoveBatch(Vec<u64>),
    GetMany(Vec<u64>),
    /// Insert if absent, all or nothing.
    IfAbsent(Vec<(u64, u64)>),
    Chunks(Bound<u64>, Bound<u64>, usize),
    Ranges(Vec<(Bound<u64>, Bound<u64>)>),
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Self {
        match u8::arbitrary(g) % 10 {
            0 => Op::Insert(key(g), u64::arbitrary(g)),
            1 => Op::Remove(key(g)),
            2 | 3 => Op::InsertBatch(
                keys(g)
                    .into_iter()
                    .map(|k| (k, u64::arbitrary(g)))
                    .collect(),
            ),
            4 => Op::RemoveBatch(keys(g)),
            5 => Op::GetMany(keys(g)),
            6 => Op::IfAbsent(
                keys(g)
                    .into_iter()
                    .map(|k| (k, u64::arbitrary(g)))
                    .collect(),
            ),
            7 => Op::Chunks(bound(g), bound(g), usize::arbitrary(g) % 5),
            _ => Op::Ranges(
                (0..u8::arbitrary(g) % 4)
                    .map(|_| (bound(g), bound(g)))
                    .collect(),
            ),
        }
    }
}

fn in_range(k: u64, (lo, hi): &(Bound<u64>, Bound<u64>)) -> bool {
    use std::ops::RangeBounds;
    (*lo, *hi).contains(&k)
}

fn run_model(ops: Vec<Op>) -> TestResult {
    let tree = tiny();
    let mut model = BTreeMap::new();
    for op in ops {
        match op {
            Op::Insert(k, v) => assert_eq!(tree.insert(k, v), model.insert(k, v)),
            Op::Remove(k) => assert_eq!(tree.remove(&k), model.remove(&k)),
            Op::InsertBatch(pairs) => {
                let expected: Vec<_> = pairs.iter().map(|&(k, v)| model.insert(k, v)).collect();
                let out = tree.insert_batch(pairs.clone());
                assert_eq!(out.results, expected, "insert_batch {pairs:?}");
                assert_eq!(out.metrics.keys, pairs.len());
            }
            Op::RemoveBatch(keys) => {
                let expected: Vec<_> = keys.iter().map(|k| model.remove(k)).collect();
                assert_eq!(
                    tree.remove_batch(keys.clone()).results,
                    expected,
                    "{keys:?}"
                );
            }
            Op::GetMany(keys) => {
                let expected: Vec<_> = keys.iter().map(|k| model.get(k).copied()).collect();
                assert_eq!(tree.get_many(&keys), expected);
            }
            Op::IfAbsent(pairs) => {
                let clash = pairs.iter().position(|(k, _)| model.contains_key(k));
                let result = tree.insert_batch_if_absent(pairs.clone());
                match clash {
                    None => {
                        let out = result.expect("no key was present");
                        let mut staged = BTreeMap::new();
                        let expected: Vec<_> =
                            pairs.iter().map(|&(k, v)| staged.insert(k, v)).collect();
                        assert_eq!(out.results, expected);
                        model.extend(staged);
                    }
                    Some(_) => {
                        let err = result.expect_err("a key was present");
                        assert!(matches!(
                            err.failure,
                            BatchFailure::Rejected {
                                error: KeyExists,
                                ..
                            }
                        ));
                        assert!(err.not_restored.is_empty());
                        assert_eq!(err.rolled_back, err.applied);
                    }
                }
            }
            Op::Chunks(lo, hi, size) => {
                let size = NonZeroUsize::new(size + 1).unwrap();
                let chunks: Vec<Vec<(u64, u64)>> = tree.range_chunks((lo, hi), size).collect();
                assert!(
                    chunks
                        .iter()
                        .all(|c| !c.is_empty() && c.len() <= size.get())
                );
                let got: Vec<_> = chunks.into_iter().flatten().collect();
                let want: Vec<_> = model
                    .iter()
                    .filter(|(k, _)| in_range(**k, &(lo, hi)))
                    .map(|(k, v)| (*k, *v))
                    .collect();
                assert_eq!(got, want);
            }
            Op::Ranges(ranges) => {
                let got: Vec<_> = tree.ranges(ranges.clone()).collect();
                let want: Vec<_> = model
                    .iter()
                    .filter(|(k, _)| ranges.iter().any(|r| in_range(**k, r)))
                    .map(|(k, v)| (*k, *v))
                    .collect();
                assert_eq!(got, want, "{ranges:?}");
            }
        }
    }
    assert_eq!(
        tree.iter().collect::<Vec<_>>(),
        model.into_iter().collect::<Vec<_>>()
    );
    tree.check_invariants().unwrap();
    TestResult::passed()
}

#[test]
fn every_batch_call_matches_btreemap() {
    QuickCheck::new()
        .tests(300)
        .rng(Gen::new(40))
        .quickcheck(run_model as fn(Vec<Op>) -> TestResult);
}

#[test]
fn bulk_load_builds_a_valid_tree_for_every_size_and_fill() {
    for config in [Config::tiny(), Config::default()] {
        for fill in [0.5, 0.7, 1.0] {
            for n in [0u64, 1, 2, 3, 4, 5, 9, 17, 100, 1_000, 5_003] {
                let tree =
                    BwTree::from_sorted_iter_with(config.clone(), fill, (0..n).map(|k| (k * 2, k)))
                        .unwrap();
                tree.check_invariants()
                    .unwrap_or_else(|e| panic!("n={n} fill={fill}: {e}"));
                assert_eq!(tree.len(), n as usize);
                assert_eq!(tree.get(&(n.saturating_sub(1) * 2)), n.checked_sub(1));
                // The loaded tree keeps working.
                for k in 0..50 {
                    tree.insert(k * 2 + 1, k);
                }
                tree.remove_batch((0..n).map(|k| k * 2));
                tree.check_invariants().unwrap();
                assert_eq!(tree.len(), 50);
            }
        }
    }
    // Full pages: exactly one leaf per `leaf_capacity` keys.
    let capacity = Config::default().leaf_capacity as u64;
    let shape = BwTree::from_sorted_iter_with(
        Config::default(),
        1.0,
        (0..1_000 * capacity).map(|k| (k, k)),
    )
    .unwrap()
    .shape();
    assert_eq!(shape.leaves, 1_000, "{shape:?}");
}

#[test]
fn bulk_load_rejects_bad_input() {
    let unsorted = BwTree::<u64, u64>::from_sorted_iter([(1, 0), (3, 0), (2, 0)]);
    assert_eq!(
        unsorted.err(),
        Some(BulkLoadError::Unsorted {
            index: 2,
            key: 2,
            previous: 3
        })
    );
    let duplicate = BwTree::<u64, u64>::from_sorted_iter([(1, 0), (1, 1)]);
    assert_eq!(
        duplicate.err(),
        Some(BulkLoadError::Duplicate { index: 1, key: 1 })
    );
    for fill in [0.49, 1.01, f64::NAN] {
        let err = BwTree::<u64, u64>::from_sorted_iter_with(Config::default(), fill, [(1, 1)])
            .err()
            .unwrap();
        assert!(err.to_string().contains("fill factor"), "{err}");
    }
    let bad = Config {
        leaf_capacity: 1,
        ..Config::default()
    };
    assert!(matches!(
        BwTree::<u64, u64>::from_sorted_iter_with(bad, 0.9, [(1, 1)]),
        Err(BulkLoadError::Config(_))
    ));
}

#[test]
fn an_append_batch_is_one_delta_then_one_multiway_split() {
    let tree = BwTree::with_config(Config::default()).unwrap();
    tree.insert_batch((0..100u64).map(|k| (k, k)));
    let out = tree.insert_batch((1_000..11_000u64).map(|k| (k, k)));
    assert_eq!(out.metrics.leaves_touched, 1, "{:?}", out.metrics);
    assert_eq!(out.metrics.cas_attempts, 1);
    assert!(out.results.iter().all(Option::is_none));
    // 10,000 keys onto the rightmost leaf: cut into pages of at most `leaf_capacity` in one step,
    // nearly full ones (at least 15/16 of the capacity, the last two aside).
    let capacity = Config::default().leaf_capacity;
    assert!(out.metrics.splits >= 10_000 / capacity, "{:?}", out.metrics);
    tree.check_invariants().unwrap();
    assert_eq!(tree.len(), 10_100);
    let shape = tree.shape();
    assert!(
        shape.leaves <= 10_100 / (capacity * 15 / 16) + 2,
        "{shape:?}"
    );
}

#[test]
fn clustered_batches_touch_few_leaves() {
    let tree = BwTree::from_sorted_iter((0..100_000u64).map(|k| (k * 10, k))).unwrap();
    let out = tree.insert_batch((0..1_000u64).map(|k| (500_001 + k * 3, k)));
    // 1,000 keys within 3,000 of key space: about 300 old keys, a handful of leaves.
    assert!(out.metrics.leaves_touched <= 10, "{:?}", out.metrics);
    tree.check_invariants().unwrap();
    let (values, metrics) =
        tree.get_many_with_metrics(&(0..2_000u64).map(|k| k * 10).collect::<Vec<_>>());
    assert!(values.iter().enumerate().all(|(i, v)| *v == Some(i as u64)));
    assert!(metrics.right_moves > metrics.descents, "{metrics:?}");
}

#[test]
fn rollback_restores_previous_values_on_rejection() {
    let tree = tiny();
    for k in 0..100u64 {
        tree.insert(k * 2, k);
    }
    let before: Vec<_> = tree.iter().collect();
    // Rejects key 151, after some groups (the smaller keys) were written; chunks of 16 make
    // earlier chunks already applied too.
    let pairs = (0..200u64).rev().map(|k| Ok::<_, String>((k, k + 1_000)));
    let err = tree
        .try_insert_batch_with(
            pairs,
            |k, _, _| if *k == 151 { Err("no".into()) } else { Ok(()) },
            BatchOptions::new().chunk(16),
        )
        .unwrap_err();
    match &err.failure {
        BatchFailure::Rejected { key, index, error } => {
            assert_eq!((*key, *index, error.as_str()), (151, 48, "no"));
        }
        other => panic!("{other:?}"),
    }
    assert!(err.applied > 0);
    assert_eq!(err.rolled_back, err.applied);
    assert!(err.not_restored.is_empty());
    assert!(err.to_string().contains("151"), "{err}");
    assert_eq!(tree.iter().collect::<Vec<_>>(), before);
    tree.check_invariants().unwrap();
}

#[test]
fn rollback_on_source_error_and_on_a_panicking_source() {
    let tree = tiny();
    tree.insert_batch((0..50u64).map(|k| (k, k)));
    let before: Vec<_> = tree.iter().collect();

    let source = (0..100u64).map(|k| if k == 70 { Err("disk") } else { Ok((k, k + 7)) });
    let err = tree
        .try_insert_batch_with(source, |_, _, _| Ok(()), BatchOptions::new().chunk(8))
        .unwrap_err();
    assert_eq!(
        err.failure,
        BatchFailure::Source {
            index: 70,
            error: "disk"
        }
    );
    assert_eq!(err.applied, 64);
    assert_eq!(err.rolled_back, 64);
    assert_eq!(tree.iter().collect::<Vec<_>>(), before);

    let panicking = (0..100u64).map(|k| {
        assert!(k != 33, "the source broke");
        Ok::<_, ()>((k, k + 9))
    });
    let result = catch_unwind(AssertUnwindSafe(|| {
        tree.try_insert_batch_with(panicking, |_, _, _| Ok(()), BatchOptions::new().chunk(10))
    }));
    assert!(result.is_err(), "the panic is resumed after the rollback");
    assert_eq!(tree.iter().collect::<Vec<_>>(), before);
    tree.check_invariants().unwrap();
}

#[test]
fn rollback_keeps_concurrent_writes() {
    // A writer overwrites keys while a batch that will fail writes them: after the rollback every
    // key holds either its original value or the writer's, never the batch's, and those the writer
    // changed after the batch wrote them are reported.
    for round in 0..20u64 {
        let tree = tiny();
        tree.insert_batch((0..400u64).map(|k| (k, k)));
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut k = round;
                while !stop.load(Ordering::Relaxed) {
                    tree.insert(k % 400, 1_000_000 + k);
                    k += 7;
                }
            });
            let err = tree
                .try_insert_batch_with(
                    (0..400u64).map(|k| Ok::<_, ()>((k, 5_000_000 + k))),
                    |k, _, _| if *k == 390 { Err(()) } else { Ok(()) },
                    BatchOptions::new().chunk(50),
                )
                .unwrap_err();
            stop.store(true, Ordering::Relaxed);
            assert_eq!(err.rolled_back + err.not_restored.len(), err.applied);
            for k in &err.not_restored {
                let v = tree.get(k).unwrap();
                assert!((1_000_000..5_000_000).contains(&v), "{k} -> {v}");
            }
        });
        for (k, v) in tree.iter() {
            assert!(v == k || (1_000_000..5_000_000).contains(&v), "{k} -> {v}");
        }
        tree.check_invariants().unwrap();
    }
}

#[test]
fn progress_is_reported_and_a_panicking_callback_leaves_a_sound_tree() {
    let tree = tiny();
    let mut calls = Vec::new();
    let mut record = |p: bwtree::Progress| calls.push(p.done);
    let out = tree.insert_batch_with(
        (0..2_000u64).map(|k| (k * 7 % 2_000, k)),
        BatchOptions::new().progress(Duration::ZERO, &mut record),
    );
    assert_eq!(out.metrics.distinct_keys, 2_000);
    assert_eq!(calls.last(), Some(&2_000));
    assert!(calls.windows(2).all(|w| w[0] <= w[1]));

    let mut calls = 0;
    let mut explode = |_: bwtree::Progress| {
        calls += 1;
        assert!(calls < 5, "callback failed");
    };
    // Overwrites spread over many leaves: many groups, so the callback runs (and fails) midway.
    let result = catch_unwind(AssertUnwindSafe(|| {
        tree.insert_batch_with(
            (0..2_000u64).map(|k| (k, k + 100_000)),
            BatchOptions::new().progress(Duration::ZERO, &mut explode),
        )
    }));
    assert!(result.is_err());
    tree.check_invariants().unwrap();
    assert_eq!(tree.len(), 2_000);
    // Groups are posted in key order: the keys written before the panic are a prefix.
    let written = tree.iter().take_while(|(k, v)| *v == k + 100_000).count();
    assert!(written > 0 && written < 2_000, "{written}");
    assert!(tree.iter().skip(written).all(|(_, v)| v < 100_000));
}

#[test]
fn concurrent_batches_with_point_operations_and_scans() {
    // Keys below 10,000 that are multiples of 10 are never touched: every scan must return each of
    // them exactly once. Two threads batch-insert and batch-remove the other keys (overlapping),
    // one does point operations, one scans; at the end the tree equals what a replay of the last
    // writes gives for the stable keys, and its invariants hold.
    let tree = BwTree::with_config(Config::tiny()).unwrap();
    tree.insert_batch((0..1_000u64).map(|k| (k * 10, k * 10)));
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let writers: Vec<_> = (0..2u64)
            .map(|t| {
                let tree = &tree;
                s.spawn(move || {
                    for round in 0..60u64 {
                        let keys: Vec<u64> = (0..300u64)
                            .map(|i| (i * 37 + round * 101 + t) % 10_000)
                            .filter(|k| k % 10 != 0)
                            .collect();
                        let out = tree.insert_batch(keys.iter().map(|&k| (k, k + 1)));
                        for (k, v) in keys.iter().zip(&out.results) {
                            assert!(v.is_none_or(|v| v == k + 1), "{k} -> {v:?}");
                        }
                        let gone: Vec<u64> = keys.iter().copied().filter(|k| k % 3 == 0).collect();
                        let removed = tree.remove_batch(gone.iter().copied());
                        for (k, v) in gone.iter().zip(&removed.results) {
                            assert!(v.is_none_or(|v| v == k + 1), "{k} -> {v:?}");
                        }
                    }
                })
            })
            .collect();
        s.spawn(|| {
            let mut k = 1u64;
            while !stop.load(Ordering::Relaxed) {
                let key = (k * 7_919) % 10_000;
                if key % 10 != 0 {
                    tree.insert(key, key + 1);
                    if let Some(v) = tree.remove(&key) {
                        assert_eq!(v, key + 1);
                    }
                }
                k += 1;
            }
        });
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let stable: Vec<u64> = tree
                    .range(..10_000)
                    .map(|(k, v)| {
                        assert!(v == k || v == k + 1, "{k} -> {v}");
                        k
                    })
                    .filter(|k| k % 10 == 0)
                    .collect();
                assert_eq!(stable, (0..1_000u64).map(|k| k * 10).collect::<Vec<_>>());
                let got = tree.get_many(&[0, 5_000, 9_990, 3]);
                assert_eq!(got[..3], [Some(0), Some(5_000), Some(9_990)]);
            }
        });
        for writer in writers {
            writer.join().unwrap();
        }
        stop.store(true, Ordering::Relaxed);
    });
    tree.check_invariants().unwrap();
    for k in 0..1_000u64 {
        assert_eq!(tree.get(&(k * 10)), Some(k * 10));
    }
}
