//! Consistency of range scans that run concurrently with writes, checked with `support::scancheck`.
//!
//! Writer threads insert (with globally unique values) and remove keys of a small range while
//! scanner threads scan random sub-ranges with every kind of bound — through `BwTree::range` read
//! forwards, backwards and from both ends, and through `ConcurrentMap::scan` with limits. Every
//! write and every scan is stamped with one shared clock; the checker then verifies that each scan
//! is strictly ascending, stays within its bounds and limit, returns only pairs present at some
//! moment of the scan, and misses no key that was present and untouched throughout it.
//!
//! The same workload runs over a `BTreeMap` behind a `Mutex` (snapshot scans, must pass) and over
//! deliberately broken scanners (must be caught).
//!
//! Environment: `BWTREE_SCAN_WRITES` raises the number of writes per writer thread;
//! `BWTREE_SCAN_SEED` fixes the workload's seed.
#![cfg(not(loom))] // uses the maintenance thread, which loom builds leave out

mod support;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Instant;

use bwtree::{BwTree, ConcurrentMap, Config};

use support::maps::{BrokenScan, LockedBTreeMap, ScanFault};
use support::scancheck::{Problem, Scan, ScanHistory, ScanRecorder, ScanSummary, Write, WriteKind};
use support::{Clock, StartGate, XorShift, count_from_env, seed_from_env};

// ---------------------------------------------------------------------------------------------
// The checker itself, on hand-written histories.
// ---------------------------------------------------------------------------------------------

use Bound::{Excluded, Included, Unbounded};

fn insert(thread: usize, key: u64, value: u64, prev: Option<u64>, inv: u64, resp: u64) -> Write {
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

fn check(
    writes: Vec<Write>,
    scans: Vec<Scan>,
) -> Result<ScanSummary, Box<support::scancheck::ScanViolation>> {
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

// ---------------------------------------------------------------------------------------------
// Concurrent workloads.
// ---------------------------------------------------------------------------------------------

/// Keys `0..KEYS` are written; bounds range a little beyond on both sides.
const KEYS: u64 = 256;
/// Writer `t` (numbered from 1) writes the values `t·10⁸ + sequence`; the preload writes `key`.
const VALUE_STRIDE: u64 = 100_000_000;

/// Random bounds of every kind, from empty and inverted ranges to whole-range scans.
fn random_bounds(rng: &mut XorShift) -> (Bound<u64>, Bound<u64>) {
    let span = [2, 8, 40, KEYS + 8][rng.below(4) as usize];
    let a = rng.below(KEYS + 8).saturating_sub(4);
    let b = a + rng.below(span);
    let (a, b) = if rng.below(16) == 0 { (b, a) } else { (a, b) };
    let bound = |rng: &mut XorShift, k: u64| match rng.below(7) {
        0 => Unbounded,
        1..=3 => Included(k),
        _ => Excluded(k),
    };
    (bound(rng, a), bound(rng, b))
}

fn random_limit(rng: &mut XorShift) -> usize {
    [1, 2, 5, 17, usize::MAX][rng.below(5) as usize]
}

/// One scan of a Bw-tree by a randomly chosen method.
fn scan_tree(tree: &BwTree<u64, u64>, rec: &mut ScanRecorder<'_>, rng: &mut XorShift) {
    let (lo, hi) = random_bounds(rng);
    match rng.below(4) {
        0 => rec.scan_with("range forwards", lo, hi, || tree.range((lo, hi)).collect()),
        1 => rec.scan_with("range backwards", lo, hi, || {
            let mut pairs: Vec<_> = tree.range((lo, hi)).rev().collect();
            pairs.reverse();
            pairs
        }),
        2 => rec.scan_with("range from both ends", lo, hi, || {
            let mut range = tree.range((lo, hi));
            let (mut front, mut back) = (Vec::new(), Vec::new());
            while let Some(pair) = range.next() {
                front.push(pair);
                match range.next_back() {
                    Some(pair) => back.push(pair),
                    None => break,
                }
            }
            front.extend(back.into_iter().rev());
            front
        }),
        _ => rec.scan(tree, lo, hi, random_limit(rng)),
    };
}

/// One scan of any map through `ConcurrentMap::scan`.
fn scan_map<M: ConcurrentMap<u64, u64>>(map: &M, rec: &mut ScanRecorder<'_>, rng: &mut XorShift) {
    let (lo, hi) = random_bounds(rng);
    rec.scan(map, lo, hi, random_limit(rng));
}

/// The shape of a workload.
#[derive(Clone, Copy, Debug)]
struct Workload {
    writers: usize,
    scanners: usize,
    /// Writes per writer, at least.
    writes: u64,
    /// Writers keep writing until the scanners have done this many scans between them (so that
    /// scans and writes overlap even where the scheduler runs the writers first).
    min_scans: usize,
}

/// Preloads every other key and runs the workload's writer and scanner threads on `map`; the
/// scanners scan until the writers are done.
fn run_workload<M: ConcurrentMap<u64, u64>>(
    map: &M,
    workload: Workload,
    scan: fn(&M, &mut ScanRecorder<'_>, &mut XorShift),
) -> ScanHistory {
    let Workload {
        writers,
        scanners,
        writes,
        min_scans,
    } = workload;
    let mut initial = BTreeMap::new();
    for key in (0..KEYS).step_by(2) {
        map.insert(key, key);
        initial.insert(key, key);
    }
    let seed = seed_from_env("BWTREE_SCAN_SEED");
    let clock = Clock::new();
    let gate = StartGate::new(writers + scanners);
    let writing = AtomicUsize::new(writers);
    let scans_done = AtomicUsize::new(0);
    let mut history = ScanHistory::new(initial);
    thread::scope(|s| {
        let (clock, gate, writing, scans_done) = (&clock, &gate, &writing, &scans_done);
        let mut handles = Vec::new();
        for t in 1..=writers {
            handles.push(s.spawn(move || {
                let mut rng = XorShift::new(seed ^ t as u64);
                let mut rec = ScanRecorder::new(clock, t);
                gate.wait();
                let mut seq = 0;
                // Relaxed: a progress counter; it orders nothing.
                while seq < writes || scans_done.load(Ordering::Relaxed) < min_scans {
                    seq += 1;
                    let key = rng.below(KEYS);
                    if rng.below(9) < 5 {
                        rec.insert(map, key, t as u64 * VALUE_STRIDE + seq);
                    } else {
                        rec.remove(map, key);
                    }
                }
                // Release: pairs with the scanners' Acquire load (only ends their loops).
                writing.fetch_sub(1, Ordering::Release);
                rec.finish()
            }));
        }
        for t in writers + 1..=writers + scanners {
            handles.push(s.spawn(move || {
                let mut rng = XorShift::new(seed ^ ((t as u64) << 8));
                let mut rec = ScanRecorder::new(clock, t);
                gate.wait();
                while writing.load(Ordering::Acquire) > 0 {
                    scan(map, &mut rec, &mut rng);
                    scans_done.fetch_add(1, Ordering::Relaxed);
                }
                rec.finish()
            }));
        }
        for handle in handles {
            history.extend(handle.join().expect("workload thread"));
        }
    });
    history
}

fn assert_consistent(name: &str, history: &ScanHistory, started: Instant) -> ScanSummary {
    match history.check() {
        Ok(summary) => {
            println!(
                "{name}: {summary:?} in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            assert!(
                summary.scans > 100,
                "too few scans overlapped the writes: {summary:?}"
            );
            assert!(
                summary.obligatory > 1_000,
                "the scans were hardly constrained: {summary:?}"
            );
            assert!(
                summary.contested > 100,
                "the writes hardly overlapped the scans: {summary:?}"
            );
            summary
        }
        Err(violation) => panic!("{name}: {violation}"),
    }
}

/// Writes per writer thread in the Bw-tree workloads.
fn writes_per_writer() -> u64 {
    count_from_env("BWTREE_SCAN_WRITES", 400_000)
}

fn workload(writers: usize, scanners: usize, writes: u64) -> Workload {
    Workload {
        writers,
        scanners,
        writes,
        min_scans: 1_000,
    }
}

#[test]
fn bwtree_scans_are_consistent() {
    let started = Instant::now();
    let tree = BwTree::with_config(Config::tiny()).expect("tiny is valid");
    let history = run_workload(&tree, workload(2, 2, writes_per_writer()), scan_tree);
    tree.check_invariants().unwrap_or_else(|e| panic!("{e}"));
    assert_consistent("bwtree (tiny pages)", &history, started);
}

#[test]
// The maintenance thread is a real thread, not available in loom builds.
#[cfg(not(loom))]
fn bwtree_scans_are_consistent_with_background_maintenance() {
    use bwtree::Maintenance;
    use std::sync::Arc;
    use std::time::Duration;
    // Longer delta chains (consolidated by a maintenance thread, or inline at 4× the threshold)
    // and splits run by another thread than the writers.
    let started = Instant::now();
    let config = Config {
        maintenance: Maintenance::Background,
        ..Config::tiny()
    };
    let tree = Arc::new(BwTree::with_config(config).expect("valid"));
    let maintenance = tree.start_maintenance(Duration::from_micros(200));
    let history = run_workload(&*tree, workload(2, 1, writes_per_writer() / 2), scan_tree);
    let report = maintenance.stop();
    tree.check_invariants().unwrap_or_else(|e| panic!("{e}"));
    println!("maintenance: {report:?}");
    assert_consistent(
        "bwtree (tiny pages, background maintenance)",
        &history,
        started,
    );
}

#[test]
fn bwtree_scans_are_consistent_with_default_pages() {
    let started = Instant::now();
    let tree = BwTree::new();
    let history = run_workload(&tree, workload(2, 1, writes_per_writer() / 2), scan_tree);
    assert_consistent("bwtree (default pages)", &history, started);
}

#[test]
fn checker_accepts_a_locked_btreemap() {
    let started = Instant::now();
    let map = LockedBTreeMap::new();
    let history = run_workload(&map, workload(2, 1, writes_per_writer() / 4), scan_map);
    assert_consistent("locked-btreemap", &history, started);
}

/// Runs a broken scanner over a Bw-tree and returns what the checker found.
fn broken(fault: ScanFault) -> Box<support::scancheck::ScanViolation> {
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
