//! Help-along and lock-freedom with a stalled thread: a thread that stops for good between the two
//! halves of a split (split delta installed, index entry not yet posted) must not block anyone, and
//! the other threads must complete its split themselves.
//!
//! Needs the test-only `fault-injection` feature, which provides the stall hook:
//! `cargo test --release --features fault-injection --test help_along`.
// `clippy.toml`'s atomics rule is for the crate's `src/`: tests and tools use std's atomics.
#![allow(clippy::disallowed_types)]
#![cfg(feature = "fault-injection")]

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use bwtree::fault_injection::{stall_at_next_split, stalled_threads};
use bwtree::{BwTree, Config};

/// Starts a thread that inserts keys `from, from + 1, ...` until it performs a split, where it
/// stalls for good (the hook parks it), and waits until it is stalled.
fn stall_a_splitter(tree: &Arc<BwTree>, from: u64) {
    let before = stalled_threads();
    let tree = Arc::clone(tree);
    std::thread::spawn(move || {
        stall_at_next_split();
        for key in from.. {
            tree.insert(key, key);
        }
    });
    while stalled_threads() == before {
        std::thread::yield_now();
    }
}

/// Runs `work` on `threads` threads and fails if they are not all done within `limit`.
fn must_finish(threads: u64, limit: Duration, work: impl Fn(u64) + Send + Sync + 'static) {
    let work = Arc::new(work);
    let (done, finished) = mpsc::channel();
    for t in 0..threads {
        let (work, done) = (Arc::clone(&work), done.clone());
        std::thread::spawn(move || {
            work(t);
            done.send(()).unwrap();
        });
    }
    for _ in 0..threads {
        finished
            .recv_timeout(limit)
            .expect("an operation was blocked by a stalled thread (not lock-free)");
    }
}

fn check_tree(tree: &BwTree, expected: impl Iterator<Item = u64>) {
    tree.check_invariants()
        .expect("the stalled split was not completed by the other threads");
    for key in expected {
        assert_eq!(tree.get(&key), Some(key), "key {key} lost");
    }
}

#[test]
fn stalled_root_split_is_completed_by_others() {
    let tree = Arc::new(BwTree::with_config(Config::tiny()).unwrap());
    // The stalled thread splits the root leaf: the tree cannot grow unless someone else does it.
    stall_a_splitter(&tree, 0);
    let writer = Arc::clone(&tree);
    must_finish(2, Duration::from_secs(60), move |t| {
        for i in 0..20_000u64 {
            let key = 1_000_000 + i * 2 + t;
            writer.insert(key, key);
        }
    });
    assert!(tree.height() > 2);
    check_tree(
        &tree,
        (0..20_000u64).flat_map(|i| [1_000_000 + i * 2, 1_000_001 + i * 2]),
    );
}

#[test]
fn stalled_leaf_splits_in_a_deep_tree_are_completed_by_others() {
    let tree = Arc::new(BwTree::with_config(Config::tiny()).unwrap());
    for key in (0..40_000u64).step_by(4) {
        tree.insert(key, key);
    }
    // Three threads stall in the middle of splits in different parts of the key space.
    for from in [10_001, 20_001, 30_001] {
        stall_a_splitter(&tree, from);
    }
    let writer = Arc::clone(&tree);
    must_finish(2, Duration::from_secs(60), move |t| {
        for key in (0..40_000u64).filter(|k| k % 4 == 2 + t) {
            writer.insert(key, key);
        }
        for key in (0..40_000u64).step_by(4) {
            assert_eq!(writer.get(&key), Some(key));
        }
    });
    check_tree(&tree, (0..40_000u64).filter(|k| k % 2 == 0));
}
