//! Linearizability of the Bw-tree's point operations and of each key of its batch calls under
//! concurrency, checked with the Wing–Gong/Lowe checker (`support/lincheck.rs`) on generated
//! concurrent programs (`support/lin_programs.rs`): each runs on a `Config::tiny()` tree preloaded
//! with 2,000 keys (several levels) while a background thread churns keys next to the checked ones,
//! so that splits and consolidations hit the very leaves the checked keys live on. Batch programs
//! carry filler keys that overfill a leaf into three or more pages at once and empty leaves again;
//! each batch is checked as one operation per key. That the checker itself rejects broken maps is
//! shown in `checkers.rs`.
//!
//! Environment: `BWTREE_LIN_OPS` raises the number of operations checked (default 100,000 for point
//! programs, 15,000 for batch programs); `BWTREE_LIN_SEED` fixes the program generator's seed.
// `clippy.toml`'s atomics rule is for the crate's `src/`: tests and tools use std's atomics.
#![allow(clippy::disallowed_types)]

use bwtree::{BwTree, CasKind, Config, Level};

mod support {
    pub mod clock;
    pub mod env;
    pub mod lin_programs;
    pub mod lincheck;
    pub mod rng;
}

use support::env::count_from_env;
use support::lin_programs::{
    MAX_FILL, Modifications, Subject, batch_keys, check_batch_program, check_program, drive,
    preload,
};

impl Subject for BwTree<u64, u64> {
    fn fresh() -> Self {
        BwTree::with_config(Config::tiny()).expect("tiny is valid")
    }

    fn audit(&self) -> Result<(), String> {
        self.check_invariants()
            .map_err(|e| format!("invariant violated after the run: {e}"))
    }

    fn modifications(&self) -> Modifications {
        let stats = self.stats();
        // Every split installs one split delta with one successful CAS; an ordinary split adds one
        // page with it, a multi-page split of a batch several.
        let pages = stats.splits(Level::Leaf) + stats.splits(Level::Inner);
        Modifications {
            extra_split_pages: pages - stats.cas_successes(CasKind::Split),
            merges: stats.merges(Level::Leaf) + stats.merges(Level::Inner),
        }
    }
}

#[test]
fn bwtree_point_operations_are_linearizable() {
    let target = count_from_env("BWTREE_LIN_OPS", 100_000);
    match drive(check_program::<BwTree<u64, u64>>, target, u64::MAX) {
        Ok(driven) => {
            let tree = BwTree::<u64, u64>::fresh();
            preload(&tree);
            println!(
                "bwtree (height {} after the preload): {driven}",
                tree.height()
            );
            assert!(tree.height() >= 3);
            assert!(driven.stats.ops >= target);
        }
        Err(report) => panic!("{report}"),
    }
}

#[test]
fn bwtree_batches_are_linearizable_per_key() {
    let target = count_from_env("BWTREE_LIN_OPS", 15_000);
    match drive(check_batch_program::<BwTree<u64, u64>>, target, u64::MAX) {
        Ok(driven) => {
            println!("bwtree with batches: {driven}");
            assert!(driven.stats.ops >= target);
            // The programs really exercised what they are meant to.
            assert!(driven.stats.batched * 2 > driven.stats.ops, "{driven}");
            assert!(driven.stats.overlapped > 0, "{driven}");
            assert!(
                driven.stats.modifications.extra_split_pages > 0,
                "no multi-page split happened: {driven}"
            );
            assert!(
                driven.stats.modifications.merges > 0,
                "no merge happened: {driven}"
            );
        }
        Err(report) => panic!("{report}"),
    }
}

#[test]
fn a_batch_overfills_a_leaf_into_three_or_more_pages() {
    // What the batch programs rely on: one checked key with its most fillers, on the preloaded
    // tiny tree, overfills a leaf that is then cut into at least three pages at once; removing
    // them again merges pages.
    let tree = BwTree::<u64, u64>::fresh();
    preload(&tree);
    // Point inserts split one page at a time: the measure counts only multi-page splits.
    assert_eq!(tree.modifications().extra_split_pages, 0);
    let pairs: Vec<(u64, u64)> = batch_keys(&[3], MAX_FILL).map(|k| (k, 1)).collect();
    let out = tree.insert_batch(pairs.clone());
    assert!(out.metrics.splits >= 2, "{:?}", out.metrics);
    assert!(
        tree.modifications().extra_split_pages > 0,
        "{:?}",
        out.metrics
    );
    let keys: Vec<u64> = pairs.iter().map(|p| p.0).collect();
    let before = tree.modifications().merges;
    tree.remove_batch(keys);
    assert!(tree.modifications().merges > before);
    tree.check_invariants().unwrap();
}
