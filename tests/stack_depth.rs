//! Every call runs in a stack whose depth does not grow with the tree or the batch: each test runs
//! one large operation on a thread with a 256 KiB stack (std's default for spawned threads is
//! 2 MiB). A recursion per page or per level of a cascade overflows it and aborts the test binary.

// `clippy.toml`'s atomics rule is for the crate's `src/`: tests and tools use std's atomics.
#![allow(clippy::disallowed_types)]

use std::ops::Bound;
use std::thread;

use bwtree::{BwTree, Config};

/// The stack every test's work runs on.
const STACK: usize = 256 * 1024;

/// Runs `work` on a thread with a [`STACK`]-byte stack and returns its result.
fn on_small_stack<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    thread::scope(|s| {
        thread::Builder::new()
            .stack_size(STACK)
            .spawn_scoped(s, work)
            .expect("spawn")
            .join()
            .expect("the work panicked")
    })
}

fn loaded(config: Config, keys: u64) -> BwTree {
    let tree = BwTree::with_config(config).unwrap();
    let _ = tree.insert_batch((0..keys).map(|k| (k, k)));
    tree
}

#[test]
fn remove_batch_of_a_million_keys() {
    let tree = loaded(Config::default(), 1_000_000);
    let out = on_small_stack(|| tree.remove_batch(0..1_000_000u64));
    assert_eq!(out.metrics.applied, 1_000_000);
    assert!(tree.is_empty());
    assert_eq!(tree.height(), 1, "an emptied tree collapses to one leaf");
    tree.check_invariants().unwrap();
}

#[test]
fn remove_batch_on_tiny_pages() {
    let tree = loaded(Config::tiny(), 200_000);
    let out = on_small_stack(|| tree.remove_batch(0..200_000u64));
    assert_eq!(out.metrics.applied, 200_000);
    assert!(tree.is_empty());
    tree.check_invariants().unwrap();
}

#[test]
fn insert_batch_of_a_million_keys() {
    let tree = BwTree::new();
    let out = on_small_stack(|| tree.insert_batch((0..1_000_000u64).map(|k| (k, k))));
    assert_eq!(out.metrics.applied, 1_000_000);
    assert_eq!(tree.len(), 1_000_000);
    tree.check_invariants().unwrap();
}

#[test]
fn insert_batch_on_tiny_pages() {
    let tree = BwTree::with_config(Config::tiny()).unwrap();
    let out = on_small_stack(|| tree.insert_batch((0..200_000u64).map(|k| (k, k))));
    assert_eq!(out.metrics.applied, 200_000);
    assert_eq!(tree.len(), 200_000);
    tree.check_invariants().unwrap();
}

#[test]
fn ranges_and_chunks_over_a_large_tree() {
    let tree = loaded(Config::tiny(), 200_000);
    let (many, chunked) = on_small_stack(|| {
        let bounds = [(0, 50_000u64), (25_000, 150_000), (190_000, 200_000)]
            .map(|(lo, hi)| (Bound::Included(lo), Bound::Excluded(hi)));
        let many = tree.ranges(bounds).count();
        let chunked: usize = tree
            .range_chunks(.., std::num::NonZeroUsize::new(1_000).unwrap())
            .map(|chunk| chunk.len())
            .sum();
        (many, chunked)
    });
    assert_eq!(many, 160_000);
    assert_eq!(chunked, 200_000);
}

#[test]
fn maintenance_and_drop_of_a_large_tree() {
    let tree = loaded(Config::tiny(), 200_000);
    for key in (0..200_000u64).filter(|k| k % 4 != 0) {
        tree.remove(&key);
    }
    on_small_stack(|| {
        tree.run_maintenance();
        tree.check_invariants().unwrap();
        drop(tree);
    });
}

#[test]
fn removing_one_by_one_from_the_left_end() {
    let tree = loaded(Config::tiny(), 100_000);
    on_small_stack(|| {
        for key in 0..100_000u64 {
            assert_eq!(tree.remove(&key), Some(key));
        }
    });
    assert!(tree.is_empty());
    tree.check_invariants().unwrap();
}
