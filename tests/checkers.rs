//! Self-tests of the test kit in `tests/support/`: the checkers the other tests rely on accept
//! correct histories and maps and reject broken ones, so that a pass of `linearizability.rs` or
//! `scan_consistency.rs` means something.
//!
//! - [`linearizability`]: the Wing–Gong/Lowe checker (`lincheck.rs`) on hand-written histories
//!   (reordering, memoization, minimal reports, batches recorded per key), on recorded histories of
//!   a `BTreeMap` behind a `Mutex` (which it must accept), and the generated-program harness
//!   (`lin_programs.rs`) over that map and over maps that drop writes, read stale values or make
//!   batched writes non-atomic per key (which it must reject);
//! - [`scan_consistency`]: the scan-consistency checker (`scancheck.rs`) on hand-written histories
//!   (every bound kind, limits, concurrent writes either way, every kind of violation), and the
//!   workload (`scan_workload.rs`) over the locked map (accepted) and over scanners that skip a key,
//!   repeat a pair or overrun their bound (caught);
//! - [`tracked`]: the drop-counting value counts and panics on the clone it was told to.
// `clippy.toml`'s atomics rule is for the crate's `src/`: tests and tools use std's atomics.
#![allow(clippy::disallowed_types)]

mod support {
    pub mod bounds;
    pub mod clock;
    pub mod env;
    pub mod lin_programs;
    pub mod lincheck;
    pub mod maps;
    pub mod rng;
    pub mod scan_workload;
    pub mod scancheck;
    pub mod tracked;
}

mod linearizability {
    use std::collections::BTreeMap;
    use std::fmt;
    use std::thread;

    use bwtree::ConcurrentMap;
    use quickcheck::{Arbitrary, TestResult};

    use crate::support::clock::{Clock, StartGate};
    use crate::support::lin_programs::{Subject, check_batch_program, check_program, drive};
    use crate::support::lincheck::{BatchOf, Call, History, Operation, Recorder, Violation};
    use crate::support::maps::{DroppingWrites, LockedBTreeMap, RacyBatches, StaleReads};
    use crate::support::rng::Rng;

    // -----------------------------------------------------------------------------------------
    // The checker on hand-written histories.
    // -----------------------------------------------------------------------------------------

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
                        let mut rng = Rng::new(t as u64 + 1);
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

    // -----------------------------------------------------------------------------------------
    // The generated-program harness over a correct map and broken ones.
    // -----------------------------------------------------------------------------------------

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

    #[test]
    fn checker_accepts_a_locked_btreemap() {
        match drive(check_program::<LockedBTreeMap>, 20_000, u64::MAX) {
            Ok(driven) => println!("locked-btreemap: {driven}"),
            Err(report) => panic!("a correct map was rejected: {report}"),
        }
    }

    /// Runs the harness over a broken map and insists that it is caught; returns the report.
    fn assert_rejected<P: Arbitrary + fmt::Debug>(
        property: fn(P) -> TestResult,
        name: &str,
    ) -> String {
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
}

mod scan_consistency {
    use std::collections::BTreeMap;
    use std::ops::Bound::{self, Excluded, Included, Unbounded};
    use std::time::Instant;

    use bwtree::{BwTree, Config};

    use crate::support::maps::{BrokenScan, LockedBTreeMap, ScanFault};
    use crate::support::scan_workload::{
        assert_consistent, run_workload, scan_map, workload, writes_per_writer,
    };
    use crate::support::scancheck::{
        Problem, Scan, ScanHistory, ScanSummary, ScanViolation, Write, WriteKind,
    };

    // -----------------------------------------------------------------------------------------
    // The checker on hand-written histories.
    // -----------------------------------------------------------------------------------------

    fn insert(
        thread: usize,
        key: u64,
        value: u64,
        prev: Option<u64>,
        inv: u64,
        resp: u64,
    ) -> Write {
        Write {
            thread,
            key,
            kind: WriteKind::Insert(value),
            prev,
            inv,
            resp,
        }
    }

    fn remove(thread: usize, key: u64, prev: Option<u64>, inv: u64, resp: u64) -> Write {
        Write {
            thread,
            key,
            kind: WriteKind::Remove,
            prev,
            inv,
            resp,
        }
    }

    fn scan(
        lo: Bound<u64>,
        hi: Bound<u64>,
        limit: Option<usize>,
        result: &[(u64, u64)],
        inv: u64,
        resp: u64,
    ) -> Scan {
        Scan {
            thread: 9,
            label: "hand-written",
            lo,
            hi,
            limit,
            result: result.to_vec(),
            inv,
            resp,
        }
    }

    /// Keys 10, 20, 30, 40 hold 1010, 1020, 1030, 1040 before the history starts.
    fn initial() -> BTreeMap<u64, u64> {
        [(10, 1010), (20, 1020), (30, 1030), (40, 1040)]
            .into_iter()
            .collect()
    }

    fn check(writes: Vec<Write>, scans: Vec<Scan>) -> Result<ScanSummary, Box<ScanViolation>> {
        let mut history = ScanHistory::new(initial());
        history.extend((writes, scans));
        history.check()
    }

    fn problem(writes: Vec<Write>, scans: Vec<Scan>) -> Problem {
        match check(writes, scans) {
            Ok(summary) => panic!("an inconsistent scan was accepted: {summary:?}"),
            Err(violation) => {
                let text = violation.to_string();
                assert!(text.contains("scan consistency violation"), "{text}");
                violation.problem
            }
        }
    }

    const ALL: [(u64, u64); 4] = [(10, 1010), (20, 1020), (30, 1030), (40, 1040)];

    #[test]
    fn checker_accepts_snapshots_with_every_bound_kind() {
        let scans = vec![
            scan(Unbounded, Unbounded, None, &ALL, 1, 2),
            scan(Included(20), Included(30), None, &ALL[1..3], 3, 4),
            scan(Excluded(20), Excluded(40), None, &ALL[2..3], 5, 6),
            scan(Excluded(10), Unbounded, None, &ALL[1..], 7, 8),
            scan(Unbounded, Excluded(30), None, &ALL[..2], 9, 10),
            scan(Included(31), Included(39), None, &[], 11, 12),
            scan(Included(30), Included(20), None, &[], 13, 14),
            scan(Excluded(20), Excluded(20), None, &[], 15, 16),
            scan(Unbounded, Unbounded, Some(2), &ALL[..2], 17, 18),
            scan(Excluded(10), Unbounded, Some(0), &[], 19, 20),
        ];
        let summary = check(vec![], scans).expect("consistent");
        assert_eq!(summary.obligatory, 4 + 2 + 1 + 3 + 2 + 2);
    }

    #[test]
    fn checker_accepts_either_outcome_of_concurrent_writes() {
        let writes = vec![
            insert(1, 25, 2025, None, 10, 20),
            remove(1, 30, Some(1030), 11, 19),
            insert(2, 20, 2020, Some(1020), 12, 18),
        ];
        let scans = vec![
            // Sees none of the writes.
            scan(Unbounded, Unbounded, None, &ALL, 9, 21),
            // Sees all of them.
            scan(
                Unbounded,
                Unbounded,
                None,
                &[(10, 1010), (20, 2020), (25, 2025), (40, 1040)],
                13,
                22,
            ),
            // Sees some: the new key and the old value of 20, the removed key still there.
            scan(
                Unbounded,
                Unbounded,
                None,
                &[(10, 1010), (20, 1020), (25, 2025), (30, 1030), (40, 1040)],
                14,
                15,
            ),
        ];
        check(writes, scans).expect("consistent");
    }

    #[test]
    fn checker_rejects_a_repeated_or_unordered_pair() {
        let repeated = scan(
            Unbounded,
            Unbounded,
            None,
            &[(10, 1010), (10, 1010), (20, 1020), (30, 1030), (40, 1040)],
            1,
            2,
        );
        assert_eq!(
            problem(vec![], vec![repeated]),
            Problem::NotAscending { position: 1 }
        );
        let unordered = scan(
            Unbounded,
            Unbounded,
            None,
            &[(10, 1010), (30, 1030), (20, 1020), (40, 1040)],
            1,
            2,
        );
        assert_eq!(
            problem(vec![], vec![unordered]),
            Problem::NotAscending { position: 2 }
        );
    }

    #[test]
    fn checker_rejects_pairs_outside_the_bounds() {
        for (lo, hi, result) in [
            (Excluded(10), Unbounded, &ALL[..]),
            (Included(11), Included(40), &ALL[..]),
            (Unbounded, Excluded(40), &ALL[..]),
            (Included(10), Included(39), &ALL[..]),
        ] {
            let p = problem(vec![], vec![scan(lo, hi, None, result, 1, 2)]);
            assert!(
                matches!(p, Problem::OutOfBounds { .. }),
                "{lo:?}..{hi:?}: {p:?}"
            );
        }
    }

    #[test]
    fn checker_rejects_more_pairs_than_the_limit() {
        assert_eq!(
            problem(
                vec![],
                vec![scan(Unbounded, Unbounded, Some(3), &ALL, 1, 2)]
            ),
            Problem::OverLimit
        );
    }

    #[test]
    fn checker_rejects_values_never_written_or_written_elsewhere() {
        let p = problem(
            vec![],
            vec![scan(
                Unbounded,
                Unbounded,
                None,
                &[(10, 1010), (20, 7), (30, 1030), (40, 1040)],
                1,
                2,
            )],
        );
        assert_eq!(p, Problem::UnknownValue { position: 1 });
        let p = problem(
            vec![],
            vec![scan(
                Unbounded,
                Unbounded,
                None,
                &[(10, 1010), (20, 1030), (30, 1030), (40, 1040)],
                1,
                2,
            )],
        );
        assert_eq!(
            p,
            Problem::WrongKey {
                position: 1,
                written_to: 30
            }
        );
    }

    #[test]
    fn checker_rejects_a_value_from_the_future() {
        let late = insert(1, 20, 2020, Some(1020), 5, 6);
        let p = problem(
            vec![late],
            vec![scan(
                Unbounded,
                Unbounded,
                None,
                &[(10, 1010), (20, 2020), (30, 1030), (40, 1040)],
                1,
                2,
            )],
        );
        assert_eq!(
            p,
            Problem::NotYetWritten {
                position: 1,
                write: late
            }
        );
    }

    #[test]
    fn checker_rejects_a_value_replaced_before_the_scan() {
        // By the write that returned it...
        let replace = insert(1, 20, 2020, Some(1020), 1, 2);
        let p = problem(
            vec![replace],
            vec![scan(Unbounded, Unbounded, None, &ALL, 3, 4)],
        );
        assert_eq!(
            p,
            Problem::AlreadyGone {
                position: 1,
                by: replace
            }
        );
        // ...or by any write to the key that started after it and finished before the scan, even if
        // the map's results (here: a remove that claims the key was absent) do not say so.
        let write = insert(1, 20, 2020, Some(1020), 1, 2);
        let lying = remove(1, 20, None, 3, 4);
        let p = problem(
            vec![write, lying],
            vec![scan(Unbounded, Unbounded, None, &[(20, 2020)], 5, 6)],
        );
        assert_eq!(
            p,
            Problem::AlreadyGone {
                position: 0,
                by: lying
            }
        );
    }

    #[test]
    fn checker_rejects_a_missed_key_and_only_an_untouched_one() {
        let skipped = [(10, 1010), (30, 1030), (40, 1040)];
        let p = problem(
            vec![],
            vec![scan(Unbounded, Unbounded, None, &skipped, 1, 2)],
        );
        assert_eq!(
            p,
            Problem::Missed {
                key: 20,
                value: 1020
            }
        );
        // A key removed or overwritten during the scan may be missing.
        check(
            vec![remove(1, 20, Some(1020), 2, 4)],
            vec![scan(Unbounded, Unbounded, None, &skipped, 1, 5)],
        )
        .expect("consistent");
        check(
            vec![insert(1, 20, 2020, Some(1020), 2, 4)],
            vec![scan(Unbounded, Unbounded, None, &skipped, 3, 5)],
        )
        .expect("consistent");
        // A key written before the scan started must be there with its new value.
        let p = problem(
            vec![insert(1, 20, 2020, Some(1020), 1, 2)],
            vec![scan(Unbounded, Unbounded, None, &skipped, 3, 4)],
        );
        assert_eq!(
            p,
            Problem::Missed {
                key: 20,
                value: 2020
            }
        );
        // A scan that stopped at its limit owes nothing beyond its last key, but everything before it.
        check(
            vec![],
            vec![scan(Unbounded, Unbounded, Some(2), &ALL[..2], 1, 2)],
        )
        .expect("consistent");
        let p = problem(
            vec![],
            vec![scan(
                Unbounded,
                Unbounded,
                Some(2),
                &[(10, 1010), (30, 1030)],
                1,
                2,
            )],
        );
        assert_eq!(
            p,
            Problem::Missed {
                key: 20,
                value: 1020
            }
        );
    }

    #[test]
    fn checker_counts_all_problems_and_reports_the_first() {
        let bad = scan(Unbounded, Unbounded, None, &[(20, 1020), (20, 1020)], 1, 2);
        let violation = check(vec![], vec![bad]).expect_err("inconsistent");
        // Pair #1 repeats #0; keys 10, 30 and 40 are missed.
        assert_eq!(violation.total_problems, 4);
        assert_eq!(violation.problem, Problem::NotAscending { position: 1 });
    }

    // -----------------------------------------------------------------------------------------
    // The workload over a correct map and broken scanners.
    // -----------------------------------------------------------------------------------------

    #[test]
    fn checker_accepts_a_locked_btreemap() {
        let started = Instant::now();
        let map = LockedBTreeMap::new();
        let history = run_workload(&map, workload(2, 1, writes_per_writer() / 4), scan_map);
        assert_consistent("locked-btreemap", &history, started);
    }

    /// Runs a broken scanner over a Bw-tree and returns what the checker found.
    fn broken(fault: ScanFault) -> Box<ScanViolation> {
        let map = BrokenScan::new(BwTree::with_config(Config::tiny()).expect("valid"), fault);
        let history = run_workload(&map, workload(1, 1, 20_000), scan_map);
        match history.check() {
            Ok(summary) => panic!("{fault:?} was not caught: {summary:?}"),
            Err(violation) => {
                println!("{fault:?} caught as it should be:\n{violation}");
                violation
            }
        }
    }

    #[test]
    fn checker_catches_a_scanner_that_skips_a_key() {
        let violation = broken(ScanFault::SkipThird);
        assert!(
            matches!(violation.problem, Problem::Missed { .. }),
            "{violation}"
        );
    }

    #[test]
    fn checker_catches_a_scanner_that_repeats_a_pair() {
        let violation = broken(ScanFault::DuplicateFirst);
        assert!(
            matches!(violation.problem, Problem::NotAscending { .. }),
            "{violation}"
        );
    }

    #[test]
    fn checker_catches_a_scanner_that_overruns_its_bound() {
        let violation = broken(ScanFault::Overrun);
        assert!(
            matches!(violation.problem, Problem::OutOfBounds { .. }),
            "{violation}"
        );
    }
}

mod tracked {
    use std::panic::{AssertUnwindSafe, catch_unwind};

    use crate::support::tracked::{Counters, Tracked};

    #[test]
    fn tracked_values_count_clones_and_drops_and_panic_when_told() {
        static COUNTERS: Counters = Counters::new();
        let a = Tracked::new(7, &COUNTERS);
        let b = a.clone();
        assert_eq!((b.value(), COUNTERS.live(), COUNTERS.clones()), (7, 2, 1));
        COUNTERS.panic_on_clone(2);
        let c = a.clone();
        assert!(catch_unwind(AssertUnwindSafe(|| a.clone())).is_err());
        assert_eq!((COUNTERS.live(), COUNTERS.clones()), (3, 3));
        let d = a.clone();
        drop((a, b, c, d));
        assert_eq!((COUNTERS.live(), COUNTERS.drops()), (0, 4));
    }
}
