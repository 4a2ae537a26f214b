//! Consistency of the Bw-tree's range scans while other threads write, checked with
//! `support/scancheck.rs` on the workload of `support/scan_workload.rs`: writers insert (with
//! globally unique values) and remove keys of a small range while scanners scan random sub-ranges
//! with every kind of bound — through `BwTree::range` read forwards, backwards and from both ends,
//! and through `ConcurrentMap::scan` with limits. The checker verifies that each scan is strictly
//! ascending, stays within its bounds and limit, returns only pairs present at some moment of the
//! scan, and misses no key that was present and untouched throughout it; on tiny pages, with
//! background maintenance, and on default pages. That the checker itself catches broken scanners is
//! shown in `checkers.rs`.
//!
//! Environment: `BWTREE_SCAN_WRITES` raises the number of writes per writer thread;
//! `BWTREE_SCAN_SEED` fixes the workload's seed.
// `clippy.toml`'s atomics rule is for the crate's `src/`: tests and tools use std's atomics.
#![allow(clippy::disallowed_types)]

use std::time::Instant;

use bwtree::{BwTree, Config};

mod support {
    pub mod bounds;
    pub mod clock;
    pub mod env;
    pub mod rng;
    pub mod scan_workload;
    pub mod scancheck;
}

use support::rng::Rng;
use support::scan_workload::{
    assert_consistent, random_bounds, random_limit, run_workload, workload, writes_per_writer,
};
use support::scancheck::ScanRecorder;

/// One scan of a Bw-tree by a randomly chosen method.
fn scan_tree(tree: &BwTree<u64, u64>, rec: &mut ScanRecorder<'_>, rng: &mut Rng) {
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
