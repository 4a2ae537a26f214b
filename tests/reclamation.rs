//! Reclamation: nothing leaks. A counting global allocator and drop-counted values show that retired
//! chains are freed while the tree is in use (memory plateaus under churn) and that dropping the tree
//! frees every page, delta, key and value.
//!
//! Everything runs in one `#[test]` so that no other test allocates concurrently with the counts.
// `clippy.toml`'s atomics rule is for the crate's `src/`: tests and tools use std's atomics.
#![allow(clippy::disallowed_types)]

use bwtree::epoch::Collector;
use bwtree::{BwTree, Config};

mod support {
    pub mod counting;
    pub mod rng;
    pub mod tracked;
}

use support::counting::{
    Counting, count_this_thread, flush, live_blocks, live_bytes, settled_blocks,
};
use support::rng::Rng;
use support::tracked::{Counters, Tracked};

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The live values.
static VALUES: Counters = Counters::new();

fn churn(tree: &BwTree<u64, Tracked>, rounds: u64, threads: u64) {
    // Joined explicitly: a scope's implicit join returns before the threads have fully exited, and
    // their exit (thread-local destructors) frees memory the counts would then race with.
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|tid| {
                s.spawn(move || {
                    count_this_thread();
                    let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15 ^ (tid + 1));
                    for i in 0..rounds {
                        let x = rng.next_u64();
                        let key = x % 5_000;
                        if x % 3 == 0 {
                            drop(tree.remove(&key));
                        } else {
                            drop(tree.insert(key, Tracked::new(i, &VALUES)));
                        }
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
    });
}

#[test]
fn nothing_leaks() {
    count_this_thread();
    let blocks_before = live_blocks();
    let bytes_before = live_bytes();
    {
        let collector = Collector::new();
        let tree = BwTree::with_collector(Config::tiny(), collector.clone()).unwrap();

        // Memory must plateau under churn on a fixed key set: retired chains are really freed.
        churn(&tree, 50_000, 2);
        flush(&collector);
        let plateau = live_bytes() - bytes_before;
        for _ in 0..5 {
            churn(&tree, 50_000, 2);
        }
        flush(&collector);
        let after = live_bytes() - bytes_before;
        assert!(
            after < plateau * 2,
            "live memory grew from {plateau} to {after} bytes over 5 more rounds of churn on the same keys"
        );
        tree.check_invariants().unwrap();

        // Every live value is accounted for: at most one per entry plus those in delta records.
        let entries = tree.len() as isize;
        let live = VALUES.live();
        assert!(live >= entries, "{live} live values for {entries} entries");

        drop(tree);
        // The tree's collector handle is gone with the tree; dropping ours runs all deferred frees.
        drop(collector); // This thread keeps freed page blocks for reuse (bounded); hand them back before counting.
        bwtree::release_recycled_pages();
    }
    assert_eq!(VALUES.live(), 0, "values leaked");
    assert_eq!(
        settled_blocks(blocks_before),
        blocks_before,
        "allocations leaked"
    );
    assert_eq!(live_bytes(), bytes_before, "bytes leaked");

    // The same with the default (global) collector: dropping the tree frees every live page; retired
    // ones are freed by the collector later, so only values are counted here after flushing.
    {
        let tree: BwTree<u64, Tracked> = BwTree::with_config(Config::tiny()).unwrap();
        churn(&tree, 30_000, 2);
        drop(tree);
        for _ in 0..256 {
            bwtree::epoch::pin().flush();
        }
    }
    assert_eq!(VALUES.live(), 0, "values leaked with the default collector");
}
