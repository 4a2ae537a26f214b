//! Reclamation under batch churn: batch deltas, multi-page splits, the merges that batched removals
//! cause and rolled-back batches must all be freed. Memory must plateau while the same keys are
//! batch-inserted and batch-removed again, and dropping the tree and its collector must return
//! every block (counted exactly, see `support/counting.rs`).
// `clippy.toml`'s atomics rule is for the crate's `src/`: tests and tools use std's atomics.
#![allow(clippy::disallowed_types)]

use bwtree::epoch::Collector;
use bwtree::{BwTree, Config};

mod support {
    pub mod counting;
    pub mod tracked;
}

use support::counting::{
    Counting, count_this_thread, flush, live_blocks, live_bytes, settled_blocks,
};
use support::tracked::{Counters, Tracked};

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The live values.
static VALUES: Counters = Counters::new();

/// Two threads batch-insert 200 keys, batch-remove half of them and run a batch that fails and
/// rolls back, `rounds` times, on overlapping keys.
fn batch_churn(tree: &BwTree<u64, Tracked>, rounds: u64) {
    std::thread::scope(|s| {
        let workers: Vec<_> =
            (0..2u64)
                .map(|t| {
                    s.spawn(move || {
                        count_this_thread();
                        for round in 0..rounds {
                            let keys: Vec<u64> = (0..200u64)
                                .map(|i| (i * 31 + round * 7 + t) % 3_000)
                                .collect();
                            drop(tree.insert_batch(
                                keys.iter().map(|&k| (k, Tracked::new(round, &VALUES))),
                            ));
                            drop(tree.remove_batch(keys.into_iter().filter(|k| k % 2 == 0)));
                            let failed = tree.try_insert_batch(
                                (0..50u64).map(|k| Ok::<_, ()>((k * 60, Tracked::new(k, &VALUES)))),
                                |k, _, _| if *k == 1_200 { Err(()) } else { Ok(()) },
                            );
                            assert!(failed.is_err());
                        }
                    })
                })
                .collect();
        // Joined explicitly: a scope's implicit join returns before the threads have exited.
        for worker in workers {
            worker.join().unwrap();
        }
    });
}

#[test]
fn batch_churn_frees_every_allocation() {
    count_this_thread();
    let blocks_before = live_blocks();
    let bytes_before = live_bytes();
    {
        let collector = Collector::new();
        let tree = BwTree::with_collector(Config::tiny(), collector.clone()).unwrap();
        batch_churn(&tree, 100);
        flush(&collector);
        let plateau = live_bytes() - bytes_before;
        for _ in 0..4 {
            batch_churn(&tree, 100);
        }
        flush(&collector);
        let after = live_bytes() - bytes_before;
        assert!(
            after < plateau * 2,
            "live memory grew from {plateau} to {after} bytes under batch churn on the same keys"
        );
        tree.check_invariants().unwrap();
        drop(tree);
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
}
