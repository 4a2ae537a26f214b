//! Remove-side structure modifications: merges, index-term deletes and root collapse.
// `clippy.toml`'s atomics rule is for the crate's `src/`: tests and tools use std's atomics.
#![allow(clippy::disallowed_types)]

use std::collections::BTreeMap;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};

use bwtree::{BwTree, Config};
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};

mod support {
    pub mod rng;
}

use support::rng::Rng;

/// Runs maintenance passes until one finds nothing to merge, split or consolidate.
fn settle_down(tree: &BwTree) {
    for _ in 0..100 {
        let pass = tree.run_maintenance();
        if pass.merges == 0 && pass.splits == 0 && pass.consolidations == 0 {
            return;
        }
    }
    panic!("maintenance passes do not converge");
}

#[derive(Clone, Debug)]
enum Op {
    Insert(u8),
    Remove(u8),
    /// Removes a run of consecutive keys, emptying whole pages.
    RemoveRun(u8, u8),
    Maintain,
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Self {
        let key = u8::arbitrary(g) % 48;
        match u8::arbitrary(g) % 10 {
            0..=2 => Op::Insert(key),
            3..=7 => Op::Remove(key),
            8 => Op::RemoveRun(key, u8::arbitrary(g) % 12),
            _ => Op::Maintain,
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        match *self {
            Op::Insert(k) => Box::new(k.shrink().map(Op::Insert)),
            Op::Remove(k) => Box::new(k.shrink().map(Op::Remove)),
            _ => quickcheck::empty_shrinker(),
        }
    }
}

/// Remove-heavy sequences on tiny pages, starting from a preloaded tree, with the model compared at
/// every step and `check_invariants()` after every operation.
#[test]
fn remove_heavy_model_with_invariants_after_every_step() {
    fn prop(ops: Vec<Op>) -> TestResult {
        let tree = BwTree::with_config(Config::tiny()).unwrap();
        let mut model = BTreeMap::new();
        for key in 0..48u64 {
            tree.insert(key, key);
            model.insert(key, key);
        }
        for (i, op) in ops.iter().enumerate() {
            let ok = match *op {
                Op::Insert(k) => {
                    tree.insert(k as u64, i as u64) == model.insert(k as u64, i as u64)
                }
                Op::Remove(k) => tree.remove(&(k as u64)) == model.remove(&(k as u64)),
                Op::RemoveRun(k, n) => (k..k.saturating_add(n))
                    .all(|k| tree.remove(&(k as u64)) == model.remove(&(k as u64))),
                Op::Maintain => {
                    tree.run_maintenance();
                    true
                }
            };
            if !ok {
                return TestResult::error(format!("op #{i} {op:?} disagrees with the model"));
            }
            if let Err(e) = tree.check_invariants() {
                return TestResult::error(format!("after op #{i} {op:?}: {e}"));
            }
            if !tree.iter().eq(model.iter().map(|(k, v)| (*k, *v))) {
                return TestResult::error(format!("after op #{i} {op:?}: contents differ"));
            }
        }
        TestResult::passed()
    }
    QuickCheck::new()
        .rng(Gen::new(200))
        .tests(400)
        .quickcheck(prop as fn(Vec<Op>) -> TestResult);
}

/// Emptying a deep tree merges everything back into one page per level and collapses the root.
#[test]
fn emptying_the_tree_collapses_it() {
    let tree = BwTree::with_config(Config::tiny()).unwrap();
    for key in 0..5_000u64 {
        tree.insert(key, key);
    }
    let full = tree.shape();
    assert!(full.height >= 6, "{full:?}");
    for key in 0..5_000u64 {
        assert_eq!(tree.remove(&key), Some(key));
    }
    settle_down(&tree);
    tree.check_invariants().unwrap();
    let empty = tree.shape();
    assert_eq!(empty.entries, 0);
    assert_eq!(
        empty.height, 1,
        "the root collapsed down to a single leaf: {empty:?}"
    );
    assert_eq!(
        (empty.leaves, empty.inner_pages, empty.mapped_pages),
        (1, 0, 1),
        "{empty:?}"
    );
    // And it grows again.
    for key in 0..1_000u64 {
        tree.insert(key, key);
    }
    tree.check_invariants().unwrap();
    assert_eq!(tree.len(), 1_000);
}

/// Writers insert and remove keys in the same and in adjacent ranges (every thread owns the keys
/// congruent to its id, so they share pages), scanners check every scan, and a set of stable keys is
/// never touched: scans must never miss them. Final contents are exact.
#[test]
fn concurrent_removes_inserts_and_scans_on_shared_pages() {
    for config in [
        Config::tiny(),
        Config {
            leaf_capacity: 8,
            inner_capacity: 4,
            leaf_merge_threshold: 4,
            inner_merge_threshold: 2,
            ..Config::tiny()
        },
    ] {
        let tree = BwTree::with_config(config).unwrap();
        const WRITERS: u64 = 3;
        const SPAN: u64 = 3_000;
        // Stable keys: multiples of 10 (never written by the writers).
        for key in (0..SPAN).step_by(10) {
            tree.insert(key, key);
        }
        let done = AtomicBool::new(false);
        let barrier = Barrier::new(WRITERS as usize + 1);
        let models: Vec<BTreeMap<u64, u64>> = std::thread::scope(|s| {
            let writers: Vec<_> = (0..WRITERS)
                .map(|t| {
                    let (tree, barrier) = (&tree, &barrier);
                    s.spawn(move || {
                        let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15 ^ (t + 1));
                        let mut model = BTreeMap::new();
                        barrier.wait();
                        for round in 0..30u64 {
                            // Fill a stretch, then empty most of it: pages split, then merge.
                            let start = rng.next_u64() % SPAN;
                            let owned = |k: u64| k % 10 != 0 && k % WRITERS == t;
                            for key in (start..start + 300).filter(|&k| owned(k)) {
                                assert_eq!(tree.insert(key, round), model.insert(key, round));
                            }
                            for key in (start..start + 300)
                                .filter(|&k| owned(k) && rng.next_u64() % 8 != 0)
                            {
                                assert_eq!(tree.remove(&key), model.remove(&key));
                            }
                        }
                        model
                    })
                })
                .collect();
            s.spawn(|| {
                barrier.wait();
                let mut rng = Rng::new(0xD1B5_4A32_D192_ED03);
                let mut scans = 0;
                while !done.load(Ordering::Acquire) || scans < 100 {
                    let a = rng.next_u64() % (SPAN + 300);
                    let b = a + rng.next_u64() % 400;
                    let got: Vec<(u64, u64)> = tree.range(a..b).collect();
                    assert!(
                        got.windows(2).all(|w| w[0].0 < w[1].0),
                        "scan not ascending"
                    );
                    assert!(
                        got.iter().all(|(k, _)| (a..b).contains(k)),
                        "scan out of bounds"
                    );
                    let stable = got.iter().filter(|(k, _)| k % 10 == 0).count();
                    let want = (a..b.min(SPAN)).filter(|k| k % 10 == 0).count();
                    assert_eq!(stable, want, "scan [{a}, {b}) missed a stable key");
                    scans += 1;
                }
            });
            let models = writers.into_iter().map(|h| h.join().unwrap()).collect();
            done.store(true, Ordering::Release);
            models
        });
        let mut expected: BTreeMap<u64, u64> = (0..SPAN).step_by(10).map(|k| (k, k)).collect();
        for model in models {
            expected.extend(model);
        }
        tree.check_invariants().unwrap();
        assert!(tree.iter().eq(expected.iter().map(|(k, v)| (*k, *v))));
        settle_down(&tree);
        tree.check_invariants().unwrap();
        assert!(tree.iter().eq(expected.iter().map(|(k, v)| (*k, *v))));
    }
}

/// Loads 1M random keys, removes 90% in random order: merges keep leaves at least half full and the
/// tree no taller than a fresh tree of the remaining keys plus one. Removing the rest leaves a
/// constant number of pages.
#[test]
fn million_keys_ninety_percent_removed() {
    let tree: BwTree = BwTree::new();
    let mut rng = Rng::new(0x2545_F491_4F6C_DD1D);
    let mut keys: Vec<u64> = (0..1_000_000).map(|_| rng.next_u64()).collect();
    keys.sort_unstable();
    keys.dedup();
    for i in (1..keys.len()).rev() {
        keys.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
    }
    for &key in &keys {
        tree.insert(key, key);
    }
    let loaded = tree.shape();
    let cut = keys.len() / 10;
    for &key in &keys[cut..] {
        assert_eq!(tree.remove(&key), Some(key));
    }
    settle_down(&tree);
    tree.check_invariants().unwrap();
    let after = tree.shape();

    let fresh: BwTree = BwTree::new();
    for &key in &keys[..cut] {
        fresh.insert(key, key);
    }
    let fresh_shape = fresh.shape();
    println!(
        "loaded {loaded:?}\nafter removing 90% {after:?}\nfresh tree of the rest {fresh_shape:?}"
    );
    assert_eq!(after.entries, cut);
    assert!(
        after.leaf_fill >= 0.5,
        "leaf fill {:.3} below 50%",
        after.leaf_fill
    );
    assert!(
        after.height <= fresh_shape.height + 1,
        "{} > {} + 1",
        after.height,
        fresh_shape.height
    );

    for &key in &keys[..cut] {
        assert_eq!(tree.remove(&key), Some(key));
    }
    settle_down(&tree);
    let empty = tree.shape();
    println!("after removing everything {empty:?}");
    assert_eq!(empty.entries, 0);
    assert!(empty.mapped_pages <= 2, "{empty:?}");
    tree.check_invariants().unwrap();
}

/// Merges can be turned off: pages are never merged and the tree keeps its pages.
#[test]
fn merges_off_keeps_pages() {
    let tree = BwTree::with_config(Config {
        leaf_merge_threshold: 0,
        inner_merge_threshold: 0,
        ..Config::tiny()
    })
    .unwrap();
    for key in 0..2_000u64 {
        tree.insert(key, key);
    }
    let before = tree.shape();
    for key in 0..2_000u64 {
        tree.remove(&key);
    }
    tree.run_maintenance();
    let after = tree.shape();
    assert_eq!(after.entries, 0);
    assert_eq!(after.leaves, before.leaves);
    tree.check_invariants().unwrap();
}

/// Fill/empty churn on more threads than cores, with pages that split and merge all the time: every
/// round must finish. A regression test for a livelock: a merge's index-term-delete can route the
/// removed range to a page left of the one that absorbs it, and a later split of the absorbing page
/// then found its separator routed "elsewhere" and restarted forever instead of posting its entry.
/// A watchdog turns a livelock into a failure instead of a hang.
#[test]
fn split_and_merge_churn_always_finishes() {
    use std::sync::Arc;
    use std::sync::mpsc;
    use std::time::Duration;

    const THREADS: u64 = 3;
    const KEYS: u64 = 2_000;
    const ROUNDS: u64 = 400;
    let tree = Arc::new(BwTree::with_config(Config::tiny()).unwrap());
    let (done, finished) = mpsc::channel();
    for tid in 0..THREADS {
        let (tree, done) = (Arc::clone(&tree), done.clone());
        std::thread::spawn(move || {
            for round in 0..ROUNDS {
                for k in (tid..KEYS).step_by(THREADS as usize) {
                    tree.insert(k, round);
                }
                for k in (tid..KEYS).step_by(THREADS as usize) {
                    assert_eq!(tree.remove(&k), Some(round), "key {k} in round {round}");
                }
            }
            done.send(()).unwrap();
        });
    }
    for _ in 0..THREADS {
        finished
            .recv_timeout(Duration::from_secs(120))
            .expect("a writer made no progress for 2 minutes (livelock) or panicked");
    }
    assert!(tree.is_empty());
    tree.check_invariants().unwrap();
}

#[test]
fn an_under_full_page_whose_merge_is_declined_is_still_consolidated() {
    // Capacity 16, merge below 8, merged pages at most 14. Keys 0..17 split into [0, 8) and
    // [8, 17); removing two keys leaves the right page with 7 records: under-full, but merging it
    // into its left neighbour would make 15 > 14, and it has no right neighbour to absorb. Updates
    // on it must still consolidate its chain (they used to try the merge and stop there).
    let threshold = 2;
    let tree: BwTree = BwTree::with_config(Config {
        leaf_capacity: 16,
        inner_capacity: 16,
        leaf_chain_threshold: threshold,
        leaf_merge_threshold: 8,
        inner_merge_threshold: 8,
        ..Config::default()
    })
    .unwrap();
    for key in 0..17 {
        tree.insert(key, key);
    }
    tree.remove(&15);
    tree.remove(&16);
    let shape = tree.shape();
    assert_eq!(shape.leaves, 2, "{shape:?}");
    tree.reset_stats();
    for round in 0..200 {
        tree.insert(9, round);
    }
    let stats = tree.stats();
    let histogram = stats.chain_histogram(bwtree::Level::Leaf);
    let longest = histogram.iter().rposition(|&n| n > 0).unwrap();
    assert!(
        longest <= threshold + 1,
        "leaf chains of {longest} deltas seen (threshold {threshold}): {histogram:?}"
    );
    assert_eq!(tree.get(&9), Some(199));
    assert_eq!(tree.len(), 15);
    tree.check_invariants().unwrap();
}
