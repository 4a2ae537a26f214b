//! Statistics leak nothing: counter blocks are freed with their tree, and threads that exit give their
//! slot back, so many trees used by many short-lived threads leave memory where it was. A counting
//! global allocator checks it; everything runs in one test function so that nothing else allocates
//! concurrently with the counts.
// `clippy.toml`'s atomics rule is for the crate's `src/`: tests and tools use std's atomics.
#![allow(clippy::disallowed_types)]
#![cfg(all(not(loom), feature = "stats"))]

use bwtree::epoch::Collector;
use bwtree::{BwTree, Config, OpKind};

mod support {
    pub mod counting;
}

use support::counting::{Counting, count_all_threads, live_bytes};

#[global_allocator]
static GLOBAL: Counting = Counting;

/// One round: a fresh tree (with its own collector, so that dropping it frees every page at once)
/// used by the calling thread and by `threads` short-lived threads, its statistics read, then dropped.
fn round(threads: u64) {
    let collector = Collector::new();
    let tree = BwTree::with_collector(Config::tiny(), collector.clone()).unwrap();
    for key in 0..50 {
        tree.insert(key, key);
    }
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let tree = &tree;
                s.spawn(move || {
                    for key in 0..200 {
                        tree.insert(key * threads + t, key);
                        tree.get(&key);
                    }
                })
            })
            .collect();
        // An explicit join waits for the thread's exit, thread-local destructors included (the
        // scope's implicit one does not), so that the counts below are final.
        for worker in workers {
            worker.join().unwrap();
        }
    });
    let stats = tree.stats();
    assert_eq!(stats.ops(OpKind::Insert), 50 + 200 * threads);
    assert!(!stats.to_pairs().is_empty());
    drop(tree);
    drop(collector);
}

/// Bytes the runtime may still hold after a round for reasons of its own (thread bookkeeping that
/// libstd or the epoch collector frees lazily; seen as a few small blocks on a loaded machine). A
/// statistics leak would be far larger: every round allocates a 1 KiB slot table and a 1 KiB counter
/// block per thread slot that counted (at least two), so 100 leaked rounds would hold over 300 KiB.
const NOISE_BYTES: isize = 16 * 1024;

fn assert_no_growth(bytes_before: isize, what: &str) {
    // The node blocks this thread keeps for reuse (bounded per thread) are not a leak; hand them
    // back so that the count sees only what the trees and their statistics still hold.
    bwtree::release_recycled_pages();
    let grown = live_bytes() - bytes_before;
    assert!(grown < NOISE_BYTES, "{what}: {grown} bytes still allocated");
}

#[test]
fn statistics_leak_nothing() {
    // Every thread's blocks: the short-lived threads' statistics slots are what is checked.
    count_all_threads();
    // Warm up once: the first thread spawns and the test harness allocate lazily.
    round(3);
    bwtree::release_recycled_pages();
    let bytes_before = live_bytes();
    // More trees and more thread lifetimes than there are exclusive slots.
    for _ in 0..100 {
        round(3);
    }
    assert_no_growth(bytes_before, "100 trees used by 300 short-lived threads");

    // Many trees alive at once, each used by the same long-lived thread, then all dropped.
    {
        let collector = Collector::new();
        let trees: Vec<BwTree> = (0..200)
            .map(|_| BwTree::with_collector(Config::tiny(), collector.clone()).unwrap())
            .collect();
        for (i, tree) in trees.iter().enumerate() {
            for key in 0..10 {
                tree.insert(key, i as u64);
            }
            assert_eq!(tree.stats().ops(OpKind::Insert), 10);
        }
        drop(trees);
        drop(collector);
    }
    assert_no_growth(bytes_before, "200 trees alive at once");
}
