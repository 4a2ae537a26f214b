//! A small concurrent workload meant for `valgrind --tool=memcheck` (CI runs it under valgrind; it
//! also runs as an ordinary test). Tiny pages make every code path run: splits, consolidations,
//! help-along, scans, and the epoch-deferred frees of replaced chains. The tree has its own collector,
//! so dropping it frees everything and valgrind can check for leaks too.
// `clippy.toml`'s atomics rule is for the crate's `src/`: tests and tools use std's atomics.
#![allow(clippy::disallowed_types)]

use bwtree::epoch::Collector;
use bwtree::{BwTree, Config};

mod support {
    pub mod rng;
}

use support::rng::Rng;

#[test]
fn concurrent_churn_for_memcheck() {
    // Every freed page must reach the allocator, or valgrind cannot see a use after free.
    bwtree::set_page_recycling(false);
    let collector = Collector::new();
    let tree: BwTree<u64, String> =
        BwTree::with_collector(Config::tiny(), collector.clone()).unwrap();
    let ops = std::env::var("BWTREE_MEMCHECK_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4_000u64);
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let tree = &tree;
            s.spawn(move || {
                let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15 ^ (t + 1));
                for i in 0..ops {
                    let x = rng.next_u64();
                    let key = x % 600;
                    match x % 8 {
                        0..=3 => {
                            tree.insert(key, format!("{t}-{i}"));
                        }
                        4 | 5 => {
                            tree.remove(&key);
                        }
                        6 => {
                            let _ = tree.get(&key);
                        }
                        _ => {
                            let scanned: Vec<_> = tree.range(key..key + 40).collect();
                            assert!(scanned.windows(2).all(|w| w[0].0 < w[1].0));
                        }
                    }
                }
            });
        }
    });
    tree.check_invariants().unwrap();
    let remaining = tree.len();
    assert_eq!(remaining, tree.iter().count());
    drop(tree);
    drop(collector);
}
