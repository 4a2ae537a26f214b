//! Maintenance passes, `shape()` and scans beside writers on tiny pages: the program that
//! `scripts/tsan.sh` runs under ThreadSanitizer (page recycling off, so that every free is a free).
//! A pass used to scan every PID and could work on a split's upper half that was not linked yet,
//! which the splitter then freed at once when its CAS failed (issue 14); natively the test checks
//! that the tree ends exact and consistent.

// `clippy.toml`'s atomics rule is for the crate's `src/`: tests and tools use std's atomics.
#![allow(clippy::disallowed_types)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use bwtree::{BwTree, Config};

mod support {
    pub mod rng;
}
use support::rng::Rng;

#[test]
fn maintenance_shape_and_scans_beside_writers() {
    bwtree::set_page_recycling(false);
    let tree = BwTree::with_config(Config::tiny()).unwrap();
    let stop = AtomicBool::new(false);
    let run_for = Duration::from_millis(if cfg!(debug_assertions) { 1_500 } else { 1_000 });
    thread::scope(|s| {
        for writer in 0..2u64 {
            let (tree, stop) = (&tree, &stop);
            s.spawn(move || {
                let mut rng = Rng::new(writer + 7);
                while !stop.load(Ordering::Relaxed) {
                    // Interleaved keys, so both writers split and merge the same pages.
                    let key = rng.below(500) * 2 + writer;
                    if rng.below(3) == 0 {
                        tree.remove(&key);
                    } else {
                        tree.insert(key, key);
                    }
                }
            });
        }
        let (tree, stop) = (&tree, &stop);
        s.spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                tree.run_maintenance();
                let shape = tree.shape();
                assert!(shape.leaves >= 1);
            }
        });
        let started = Instant::now();
        while started.elapsed() < run_for {
            let mut last = None;
            for (k, v) in tree.range(100..900) {
                assert_eq!(k, v);
                assert!(last < Some(k), "scan out of order");
                last = Some(k);
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    tree.run_maintenance();
    tree.check_invariants().unwrap();
    for (k, v) in tree.iter() {
        assert_eq!(k, v);
    }
    bwtree::set_page_recycling(true);
}
