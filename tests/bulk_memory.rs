//! Memory of bulk operations, measured with a counting global allocator: batch deltas are freed
//! (under churn and when the tree is dropped), a bulk-loaded tree holds at most 24 bytes per
//! 16-byte pair, and a chunked scan of a huge range holds only a chunk and a leaf at a time.
//!
//! Everything runs in one `#[test]` so that no other test allocates concurrently with the counts.
// `clippy.toml`'s atomics rule is for the crate's `src/`: tests and tools use std's atomics.
#![allow(clippy::disallowed_types)]

use std::num::NonZeroUsize;

use bwtree::epoch::Collector;
use bwtree::{BwTree, Config};

mod support {
    pub mod counting;
    pub mod tracked;
}

use support::counting::{
    Counting, count_all_threads, flush, live_bytes, peak_bytes, reset_peak_bytes,
};
use support::tracked::{Counters, Tracked};

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The live values.
static VALUES: Counters = Counters::new();

fn batch_churn(tree: &BwTree<u64, Tracked>, rounds: u64) {
    std::thread::scope(|s| {
        for t in 0..2u64 {
            s.spawn(move || {
                for round in 0..rounds {
                    let keys: Vec<u64> = (0..200u64)
                        .map(|i| (i * 31 + round * 7 + t) % 3_000)
                        .collect();
                    drop(
                        tree.insert_batch(keys.iter().map(|&k| (k, Tracked::new(round, &VALUES)))),
                    );
                    drop(tree.remove_batch(keys.into_iter().filter(|k| k % 2 == 0)));
                    let failed = tree.try_insert_batch(
                        (0..50u64).map(|k| Ok::<_, ()>((k * 60, Tracked::new(k, &VALUES)))),
                        |k, _, _| if *k == 1_200 { Err(()) } else { Ok(()) },
                    );
                    assert!(failed.is_err());
                }
            });
        }
    });
}

#[test]
fn batch_deltas_are_freed_and_chunked_scans_stay_bounded() {
    // Every thread's blocks count: the measures below are of the whole process.
    count_all_threads();
    {
        let collector = Collector::new();
        let rounds = 100;
        let tree = BwTree::with_collector(Config::tiny(), collector.clone()).unwrap();
        batch_churn(&tree, rounds);
        flush(&collector);
        for _ in 0..4 {
            batch_churn(&tree, rounds);
        }
        tree.check_invariants().unwrap();
        drop(tree);
        drop(collector);
    }
    assert_eq!(VALUES.live(), 0, "values leaked");

    // A bulk-loaded tree of 16-byte pairs holds at most 24 bytes per pair (issue 8's target).
    // Blocks this thread kept from the trees above would be reused without being counted.
    bwtree::release_recycled_pages();
    let before = live_bytes();
    let tree = BwTree::from_sorted_iter((0..200_000u64).map(|k| (k, k))).unwrap();
    let per_pair = (live_bytes() - before) as f64 / 200_000.0;
    println!("bulk load of 200,000 pairs: {per_pair:.1} heap bytes per pair");
    assert!(
        per_pair <= 24.0,
        "{per_pair:.1} bytes per pair after a bulk load"
    );

    // A chunked scan over 200,000 pairs holds a chunk and a leaf, not the range.
    let base = reset_peak_bytes();
    let mut seen = 0u64;
    for chunk in tree.range_chunks(.., NonZeroUsize::new(256).unwrap()) {
        assert!(chunk.len() <= 256);
        for (k, _) in chunk {
            assert_eq!(k, seen);
            seen += 1;
        }
    }
    assert_eq!(seen, 200_000);
    let extra = peak_bytes() - base;
    let whole_range = 200_000 * 16;
    println!(
        "chunked scan of 200,000 pairs: peak extra memory {extra} bytes (the range is {whole_range} bytes)"
    );
    assert!(
        extra < 64 * 1024,
        "a chunked scan used {extra} bytes at its peak"
    );
}
