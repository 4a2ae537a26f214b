//! Reliability under adversarial but legal use: bounds that must hold under churn, calls that must
//! not exhaust a small stack, and the auto traits the types promise.

// `clippy.toml`'s atomics rule is for the crate's `src/`: tests and tools use std's atomics.
#![allow(clippy::disallowed_types)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use bwtree::{BwTree, Config};

mod support {
    pub mod rng;
}
use support::rng::Rng;

/// `len()` counts every key at most once, even while merges move keys between the leaves it walks:
/// writers empty and refill blocks of adjacent keys (so leaves merge and split all the time), and
/// the tree never holds more than `KEYS` keys.
#[test]
fn len_never_exceeds_what_the_tree_can_hold() {
    const KEYS: u64 = 400;
    const BLOCK: u64 = 12;
    let tree = BwTree::with_config(Config::tiny()).unwrap();
    for key in 0..KEYS {
        tree.insert(key, key);
    }
    let stop = AtomicBool::new(false);
    let worst = thread::scope(|s| {
        for writer in 0..2u64 {
            let (tree, stop) = (&tree, &stop);
            s.spawn(move || {
                let mut rng = Rng::new(writer + 1);
                let half = KEYS / 2;
                while !stop.load(Ordering::Relaxed) {
                    let start = writer * half + rng.below(half - BLOCK);
                    for key in start..start + BLOCK {
                        assert_eq!(tree.remove(&key), Some(key));
                    }
                    for key in start..start + BLOCK {
                        assert_eq!(tree.insert(key, key), None);
                    }
                }
            });
        }
        // The checks come after the writers are told to stop: a failing assertion here would
        // leave them running and the scope waiting for them.
        let mut worst = 0;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while std::time::Instant::now() < deadline {
            worst = worst.max(tree.len());
        }
        stop.store(true, Ordering::Relaxed);
        worst
    });
    assert!(
        worst <= KEYS as usize,
        "len() = {worst} with at most {KEYS} keys"
    );
    assert_eq!(tree.len(), KEYS as usize);
    tree.check_invariants().unwrap();
}

/// The auto traits the types promise (see `BwTree`'s *Thread safety*; the negative cases are
/// `compile_fail` doctests there).
#[test]
fn auto_traits() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<BwTree<u64, u64>>();
    send_sync::<BwTree<String, Vec<u8>>>();
    send::<bwtree::Range<'static, u64, u64>>();
    send_sync::<bwtree::Range<'static, String, String>>();
    send_sync::<bwtree::FrozenRoutes<'static, u64, u64>>();
}
