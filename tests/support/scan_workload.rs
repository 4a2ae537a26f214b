//! The concurrent workload of the scan-consistency checks: writers insert (with globally unique
//! values) and remove keys of a small range while scanners scan random sub-ranges with every kind of
//! bound, every write and scan recorded with `scancheck.rs`; and what a consistent run must show.
//!
//! Used by `scan_consistency.rs` (the Bw-tree) and `checkers.rs` (the reference map and broken
//! scanners), each using part of it, hence the module-wide `dead_code` allowance.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ops::Bound::{self, Excluded, Included, Unbounded};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Instant;

use bwtree::ConcurrentMap;

use super::clock::{Clock, StartGate};
use super::env::{count_from_env, seed_from_env};
use super::rng::Rng;
use super::scancheck::{ScanHistory, ScanRecorder, ScanSummary};

/// Keys `0..KEYS` are written; bounds range a little beyond on both sides.
pub const KEYS: u64 = 256;

/// Writer `t` (numbered from 1) writes the values `t·10⁸ + sequence`; the preload writes `key`.
pub const VALUE_STRIDE: u64 = 100_000_000;

/// Random bounds of every kind, from empty and inverted ranges to whole-range scans.
pub fn random_bounds(rng: &mut Rng) -> (Bound<u64>, Bound<u64>) {
    let span = [2, 8, 40, KEYS + 8][rng.below(4) as usize];
    let a = rng.below(KEYS + 8).saturating_sub(4);
    let b = a + rng.below(span);
    let (a, b) = if rng.below(16) == 0 { (b, a) } else { (a, b) };
    let bound = |rng: &mut Rng, k: u64| match rng.below(7) {
        0 => Unbounded,
        1..=3 => Included(k),
        _ => Excluded(k),
    };
    (bound(rng, a), bound(rng, b))
}

pub fn random_limit(rng: &mut Rng) -> usize {
    [1, 2, 5, 17, usize::MAX][rng.below(5) as usize]
}

/// One scan of any map through `ConcurrentMap::scan`.
pub fn scan_map<M: ConcurrentMap<u64, u64>>(map: &M, rec: &mut ScanRecorder<'_>, rng: &mut Rng) {
    let (lo, hi) = random_bounds(rng);
    rec.scan(map, lo, hi, random_limit(rng));
}

/// The shape of a workload.
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    pub writers: usize,
    pub scanners: usize,
    /// Writes per writer, at least.
    pub writes: u64,
    /// Writers keep writing until the scanners have done this many scans between them (so that
    /// scans and writes overlap even where the scheduler runs the writers first).
    pub min_scans: usize,
}

/// Preloads every other key and runs the workload's writer and scanner threads on `map`; the
/// scanners scan until the writers are done.
pub fn run_workload<M: ConcurrentMap<u64, u64>>(
    map: &M,
    workload: Workload,
    scan: fn(&M, &mut ScanRecorder<'_>, &mut Rng),
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
                let mut rng = Rng::new(seed ^ t as u64);
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
                let mut rng = Rng::new(seed ^ ((t as u64) << 8));
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

pub fn assert_consistent(name: &str, history: &ScanHistory, started: Instant) -> ScanSummary {
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
pub fn writes_per_writer() -> u64 {
    count_from_env("BWTREE_SCAN_WRITES", 400_000)
}

pub fn workload(writers: usize, scanners: usize, writes: u64) -> Workload {
    Workload {
        writers,
        scanners,
        writes,
        min_scans: 1_000,
    }
}
