//! Statistics: exact counts in single-threaded scenarios whose every step is known, agreement with
//! `shape()` and maintenance reports, consistency of per-thread counters summed across threads, reset,
//! the off switch, and the "consolidate after every update" research switch.
// `clippy.toml`'s atomics rule is for the crate's `src/`: tests and tools use std's atomics.
#![allow(clippy::disallowed_types)]
#![cfg(all(not(loom), feature = "stats"))]

use bwtree::{
    BwTree, CHAIN_BUCKETS, CasKind, Config, Level, Maintenance, OpKind, RestartCause, SmoKind,
    StatsSnapshot,
};

fn tree(config: Config) -> BwTree {
    BwTree::with_config(config).expect("valid config")
}

/// Kinds that no single-threaded run can see fail, and structure-modification kinds no insert-only
/// run performs.
fn assert_no_failures(stats: &StatsSnapshot) {
    for kind in CasKind::ALL {
        assert_eq!(stats.cas_failures(kind), 0, "{kind:?} failed: {stats:?}");
    }
    assert_eq!(stats.total_restarts(), 0, "{stats:?}");
    for op in OpKind::ALL {
        assert_eq!(stats.aborts(op), 0, "{op:?}: {stats:?}");
    }
}

#[test]
fn one_leaf_counts_every_step() {
    // One leaf (capacity 64), chain threshold 3: the fourth delta triggers a consolidation.
    let tree = tree(Config {
        leaf_capacity: 64,
        leaf_chain_threshold: 3,
        ..Config::tiny()
    });
    for key in 0..9 {
        tree.insert(key, key);
    }
    let stats = tree.stats();
    assert_eq!(stats.ops(OpKind::Insert), 9);
    assert_eq!(stats.cas_attempts(CasKind::Insert), 9);
    assert_eq!(stats.cas_attempts(CasKind::Consolidate), 2);
    assert_eq!(stats.consolidations(Level::Leaf), 2);
    assert_eq!(stats.splits(Level::Leaf), 0);
    assert_no_failures(&stats);
    // Each insert reads the leaf before posting: chains of 0, 1, 2, 3, 0 (consolidated), 1, 2, 3, 0.
    let mut expected = [0u64; CHAIN_BUCKETS];
    expected[..4].copy_from_slice(&[3, 2, 2, 2]);
    assert_eq!(stats.chain_histogram(Level::Leaf), &expected);
    assert_eq!(stats.chain_samples(Level::Inner), 0, "the root is a leaf");
    assert_eq!(stats.mean_leaf_chain(), Some(12.0 / 9.0));

    // Gets see the one delta left on top of the last consolidation.
    for key in 0..9 {
        assert_eq!(tree.get(&key), Some(key));
    }
    assert!(tree.contains_key(&3));
    assert_eq!(tree.remove(&100), None, "absent: nothing posted");
    assert_eq!(tree.remove(&4), Some(4));
    let stats = tree.stats();
    assert_eq!(stats.ops(OpKind::Get), 10);
    assert_eq!(stats.ops(OpKind::Remove), 2);
    assert_eq!(stats.cas_attempts(CasKind::Delete), 1);
    assert_eq!(stats.chain_histogram(Level::Leaf)[1], 2 + 10 + 2);
    assert_eq!(stats.total_ops(), 21);
    assert_eq!(stats.abort_rate(), Some(0.0));
    assert_eq!(stats.cas_failure_rate(CasKind::Insert), Some(0.0));
    assert_eq!(stats.cas_failure_rate(CasKind::Split), None);

    // One scan is one operation, however many leaves it reads.
    assert_eq!(tree.iter().count(), 8);
    assert_eq!(tree.stats().ops(OpKind::Scan), 1);
}

#[test]
fn splits_and_root_grows_match_the_shape() {
    let tree = tree(Config::tiny());
    let n = 3_000u64;
    // A scattered order, so that splits happen all over the tree.
    for i in 0..n {
        tree.insert(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % 1_000_003, i);
    }
    let stats = tree.stats();
    let shape = tree.shape();
    tree.check_invariants().unwrap();
    assert_eq!(stats.ops(OpKind::Insert), n);
    assert_eq!(stats.cas_attempts(CasKind::Insert), n);
    assert_no_failures(&stats);
    // Every page but the first leaf was created by a split or a root grow; nothing was merged.
    assert_eq!(shape.leaves as u64, 1 + stats.splits(Level::Leaf));
    assert_eq!(
        shape.inner_pages as u64,
        stats.splits(Level::Inner) + stats.root_grows()
    );
    assert_eq!(shape.height as u64, 1 + stats.root_grows());
    assert_eq!(stats.merges(Level::Leaf) + stats.merges(Level::Inner), 0);
    // Each split posted its index entry itself (or grew the root): nobody had to help.
    let splits = stats.splits(Level::Leaf) + stats.splits(Level::Inner);
    assert_eq!(
        stats.cas_attempts(CasKind::IndexEntry) + stats.root_grows(),
        splits
    );
    for kind in SmoKind::ALL {
        assert_eq!(stats.help_along(kind), 0, "{kind:?}");
    }
    // Every descent sampled one leaf and one page per inner level it passed.
    assert!(stats.chain_samples(Level::Leaf) >= n);
    assert!(stats.chain_samples(Level::Inner) > 0);
    let mean_inner = stats.mean_chain(Level::Inner).unwrap();
    assert!(
        (0.0..=1.0).contains(&mean_inner),
        "inner threshold 1: {mean_inner}"
    );
}

#[test]
fn maintenance_report_agrees_with_stats() {
    // Background mode: operations leave splits to the maintenance pass below 4× capacity.
    let tree = tree(Config {
        leaf_capacity: 64,
        leaf_merge_threshold: 32,
        leaf_chain_threshold: 8,
        maintenance: Maintenance::Background,
        ..Config::default()
    });
    for key in 0..200 {
        tree.insert(key, key);
    }
    assert_eq!(tree.stats().splits(Level::Leaf), 0, "left to maintenance");
    tree.reset_stats();
    let report = tree.run_maintenance();
    let stats = tree.stats();
    assert!(report.splits > 0, "{report:?}");
    assert_eq!(
        report.splits,
        stats.splits(Level::Leaf) + stats.splits(Level::Inner)
    );
    assert_eq!(
        report.consolidations,
        stats.consolidations(Level::Leaf) + stats.consolidations(Level::Inner)
    );
    assert_eq!(stats.total_ops(), 0, "a pass is not an operation");
    assert_eq!(tree.shape().leaves as u64, 1 + stats.splits(Level::Leaf));
    tree.check_invariants().unwrap();
}

#[test]
fn consolidate_every_update_leaves_no_chain_to_read() {
    let config = Config {
        consolidate_every_update: true,
        ..Config::default()
    };
    // The switch is the only way to get threshold 0: validation still rejects it.
    assert!(
        Config {
            leaf_chain_threshold: 0,
            ..Config::default()
        }
        .validate()
        .is_err()
    );
    let tree = tree(config);
    for key in 0..60 {
        tree.insert(key, key);
    }
    for key in 0..60 {
        assert_eq!(tree.get(&key), Some(key));
    }
    let stats = tree.stats();
    assert_eq!(
        stats.consolidations(Level::Leaf),
        60,
        "one per insert: {stats:?}"
    );
    assert_eq!(stats.chain_histogram(Level::Leaf)[0], 120);
    assert_eq!(stats.mean_leaf_chain(), Some(0.0));

    // With splits and merges too, the tree stays correct and every page a descent meets is a bare
    // base page, except the lower half of a split until its next write.
    let tree = tree_with_every_update_consolidated();
    for key in (0..2_000u64).rev() {
        tree.insert(key, key);
    }
    for key in (0..2_000u64).step_by(3) {
        assert_eq!(tree.remove(&key), Some(key));
    }
    tree.check_invariants().unwrap();
    tree.run_maintenance();
    tree.reset_stats();
    for key in 0..2_000u64 {
        assert_eq!(tree.get(&key), (key % 3 != 0).then_some(key));
    }
    let stats = tree.stats();
    assert_eq!(stats.mean_leaf_chain(), Some(0.0), "{stats:?}");
    assert_eq!(stats.mean_chain(Level::Inner), Some(0.0), "{stats:?}");
}

fn tree_with_every_update_consolidated() -> BwTree {
    tree(Config {
        consolidate_every_update: true,
        ..Config::tiny()
    })
}

#[test]
fn reset_and_since_start_from_zero() {
    let tree = tree(Config::tiny());
    for key in 0..100 {
        tree.insert(key, key);
    }
    let before = tree.stats();
    assert_ne!(before, StatsSnapshot::default());
    for key in 0..10 {
        tree.get(&key);
    }
    let phase = tree.stats().since(&before);
    assert_eq!(phase.ops(OpKind::Get), 10);
    assert_eq!(phase.ops(OpKind::Insert), 0);
    tree.reset_stats();
    assert_eq!(tree.stats(), StatsSnapshot::default());
    tree.insert(1_000, 0);
    let stats = tree.stats();
    assert_eq!(stats.ops(OpKind::Insert), 1);
    assert_eq!(stats.cas_attempts(CasKind::Insert), 1);
    assert_eq!(
        stats
            .to_pairs()
            .iter()
            .find(|(name, _)| *name == "ops.insert"),
        Some(&("ops.insert", 1))
    );
}

#[test]
fn statistics_off_counts_nothing() {
    let tree = tree(Config {
        statistics: false,
        ..Config::tiny()
    });
    for key in 0..500 {
        tree.insert(key, key);
        tree.get(&key);
    }
    assert_eq!(tree.iter().count(), 500);
    assert_eq!(tree.stats(), StatsSnapshot::default());
}

#[test]
fn counters_from_many_threads_add_up() {
    const THREADS: u64 = 4;
    const KEYS: u64 = 3_000;
    let tree = tree(Config::tiny());
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let tree = &tree;
            s.spawn(move || {
                // Interleaved keys: the threads share leaves, so CASes collide.
                for i in 0..KEYS {
                    tree.insert(i * THREADS + t, i);
                }
                for i in 0..KEYS {
                    assert_eq!(tree.get(&(i * THREADS + t)), Some(i));
                }
                for i in (0..KEYS).step_by(2) {
                    assert_eq!(tree.remove(&(i * THREADS + t)), Some(i));
                }
            });
        }
    });
    let stats = tree.stats();
    let inserts = THREADS * KEYS;
    let removes = THREADS * KEYS.div_ceil(2);
    assert_eq!(stats.ops(OpKind::Insert), inserts);
    assert_eq!(stats.ops(OpKind::Get), inserts);
    assert_eq!(stats.ops(OpKind::Remove), removes);
    // Every insert of a new key and every remove of a present one succeeded with exactly one CAS.
    assert_eq!(stats.cas_successes(CasKind::Insert), inserts);
    assert_eq!(stats.cas_successes(CasKind::Delete), removes);
    for kind in CasKind::ALL {
        assert!(
            stats.cas_attempts(kind) >= stats.cas_failures(kind),
            "{kind:?}"
        );
    }
    // A failed leaf CAS is an abort of the insert or remove that made it; restarts add to that.
    assert!(stats.aborts(OpKind::Insert) >= stats.cas_failures(CasKind::Insert));
    assert!(stats.aborts(OpKind::Remove) >= stats.cas_failures(CasKind::Delete));
    let attributed: u64 = OpKind::ALL.iter().map(|&op| stats.aborts(op)).sum();
    assert!(
        attributed
            <= stats.total_restarts()
                + stats.cas_failures(CasKind::Insert)
                + stats.cas_failures(CasKind::Delete)
    );
    // Once everything is quiet, the counted structure modifications explain the shape exactly.
    let shape = tree.shape();
    assert_eq!(
        shape.leaves as u64,
        1 + stats.splits(Level::Leaf) - stats.merges(Level::Leaf),
        "{stats:?}"
    );
    assert_eq!(
        shape.inner_pages as u64,
        stats.splits(Level::Inner) + stats.root_grows()
            - stats.merges(Level::Inner)
            - stats.root_collapses(),
        "{stats:?}"
    );
    assert_eq!(
        shape.height as u64,
        1 + stats.root_grows() - stats.root_collapses()
    );
    tree.check_invariants().unwrap();
    println!(
        "update CAS failure rate {:?}, abort rate {:?}, restarts {:?}, help {:?}",
        stats.update_cas_failure_rate(),
        stats.abort_rate(),
        RestartCause::ALL.map(|c| stats.restarts(c)),
        SmoKind::ALL.map(|k| stats.help_along(k)),
    );
}

#[test]
fn bulk_calls_count_their_installs_and_splits() {
    let tree = tree(Config::tiny());
    let out = tree.insert_batch((0..1_000u64).map(|k| (k * 7 % 1_009, k)));
    let stats = tree.stats();
    assert_eq!(
        stats.cas_attempts(CasKind::Batch),
        out.metrics.cas_attempts as u64
    );
    assert_eq!(
        stats.cas_failures(CasKind::Batch),
        out.metrics.cas_failures as u64
    );
    assert_eq!(
        stats.total_ops(),
        0,
        "bulk calls are not counted as operations"
    );
    let removed = tree.remove_batch((0..1_009u64).step_by(2));
    let stats = tree.stats();
    assert_eq!(
        stats.cas_attempts(CasKind::Batch),
        (out.metrics.cas_attempts + removed.metrics.cas_attempts) as u64
    );
    // Multi-way splits count every page they add, so the shape is still explained exactly.
    let shape = tree.shape();
    assert_eq!(
        shape.leaves as u64,
        1 + stats.splits(Level::Leaf) - stats.merges(Level::Leaf),
        "{stats:?}"
    );
    assert_eq!(
        shape.inner_pages as u64,
        stats.splits(Level::Inner) + stats.root_grows()
            - stats.merges(Level::Inner)
            - stats.root_collapses(),
        "{stats:?}"
    );
    tree.check_invariants().unwrap();
}
