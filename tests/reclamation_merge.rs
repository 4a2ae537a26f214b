//! Reclamation under remove-heavy churn: pages that merge, roots that collapse and PIDs that are
//! recycled must all be freed. A counting global allocator checks that dropping the tree (and its
//! collector) returns every block, and that memory plateaus while pages are emptied and refilled.
//!
//! One `#[test]` per file so that nothing else allocates while the counts are compared.
// `clippy.toml`'s atomics rule is for the crate's `src/`: tests and tools use std's atomics.
#![allow(clippy::disallowed_types)]

use bwtree::epoch::Collector;
use bwtree::{BwTree, Config};

mod support {
    pub mod counting;
}

use support::counting::{
    Counting, count_this_thread, flush, live_blocks, live_bytes, settled_blocks,
};

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Each thread repeatedly fills its own interleaved share of `0..keys` and then empties it again,
/// so that pages keep merging into neighbours, roots collapse and the tree grows back.
fn fill_and_empty(tree: &BwTree<u64, u64>, threads: u64, keys: u64, rounds: u64) {
    // Joined explicitly: a scope's implicit join returns before the threads have fully exited, and
    // their exit (thread-local destructors) frees memory the counts would then race with.
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|tid| {
                s.spawn(move || {
                    count_this_thread();
                    for round in 0..rounds {
                        for k in (tid..keys).step_by(threads as usize) {
                            tree.insert(k, round);
                        }
                        for k in (tid..keys).step_by(threads as usize) {
                            assert_eq!(tree.remove(&k), Some(round));
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

const THREADS: u64 = 3;

#[test]
fn merges_and_collapses_free_every_page() {
    count_this_thread();
    let blocks_before = live_blocks();
    let bytes_before = live_bytes();
    {
        let collector = Collector::new();
        let tree = BwTree::with_collector(Config::tiny(), collector.clone()).unwrap();
        fill_and_empty(&tree, THREADS, 2_000, 20);
        flush(&collector);
        let plateau = live_bytes() - bytes_before;
        fill_and_empty(&tree, THREADS, 2_000, 60);
        flush(&collector);
        let after = live_bytes() - bytes_before;
        assert!(
            after <= plateau * 2,
            "live memory grew from {plateau} to {after} bytes while the same keys were refilled"
        );
        assert!(tree.is_empty());
        tree.check_invariants().unwrap();
        drop(tree);
        drop(collector); // This thread keeps freed page blocks for reuse (bounded); hand them back before counting.
        bwtree::release_recycled_pages();
    }
    assert_eq!(
        settled_blocks(blocks_before),
        blocks_before,
        "allocations leaked"
    );
    assert_eq!(live_bytes(), bytes_before, "bytes leaked");
}
