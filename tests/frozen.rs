//! The frozen read-only view (`BwTree::freeze_routes`): lookups that follow child pointers cached
//! in the inner pages must answer exactly like the tree, before and after the tree changes again.
// `clippy.toml`'s atomics rule is for the crate's `src/`: tests and tools use std's atomics.
#![allow(clippy::disallowed_types)]

use std::collections::BTreeMap;

use bwtree::{BwTree, Config};

mod support {
    pub mod rng;
}

use support::rng::Rng;

/// Every key of `0..domain` (present or not) and the extreme keys, through the view, on two
/// threads at once.
fn check_view(tree: &mut BwTree, model: &BTreeMap<u64, u64>, domain: u64) -> u64 {
    let frozen = tree.freeze_routes();
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let (frozen, model) = (&frozen, model);
            s.spawn(move || {
                for k in (t..domain).step_by(2).chain([u64::MAX, u64::MAX - 1]) {
                    assert_eq!(frozen.get(&k), model.get(&k).copied(), "key {k}");
                    assert_eq!(frozen.contains_key(&k), model.contains_key(&k));
                }
            });
        }
    });
    frozen.fallbacks()
}

#[test]
fn insert_only_tree_routes_every_lookup_through_the_cache() {
    let mut tree = BwTree::with_config(Config::tiny()).unwrap();
    let mut model = BTreeMap::new();
    let mut rng = Rng::new(7);
    for _ in 0..20_000 {
        let k = rng.next_u64() % 50_000;
        tree.insert(k, k ^ 0xABCD);
        model.insert(k, k ^ 0xABCD);
    }
    assert!(tree.height() >= 4, "tiny pages should give a deep tree");
    // All splits completed inline and every inner page consolidated: routes are exact.
    assert_eq!(check_view(&mut tree, &model, 50_000), 0);
    tree.check_invariants().unwrap();
}

#[test]
fn view_stays_exact_across_merges_and_refreezes() {
    let mut tree = BwTree::with_config(Config::tiny()).unwrap();
    let mut model = BTreeMap::new();
    let mut rng = Rng::new(99);
    const DOMAIN: u64 = 20_000;
    for round in 0..4 {
        // Churn: inserts and many removes, so pages split, merge and the root may collapse.
        for _ in 0..15_000 {
            let k = rng.next_u64() % DOMAIN;
            if rng.next_u64() % 3 == 0 {
                tree.insert(k, k + round);
                model.insert(k, k + round);
            } else {
                assert_eq!(tree.remove(&k), model.remove(&k));
            }
        }
        check_view(&mut tree, &model, DOMAIN);
        // The tree is writable again, and its normal lookups agree too.
        for (k, v) in &model {
            assert_eq!(tree.get(k), Some(*v));
        }
        tree.check_invariants().unwrap();
    }
}

#[test]
fn empty_and_single_leaf_trees() {
    let mut tree: BwTree = BwTree::new();
    assert_eq!(tree.freeze_routes().get(&0), None);
    tree.insert(0, 1);
    tree.insert(u64::MAX, 2);
    let frozen = tree.freeze_routes();
    assert_eq!(frozen.get(&0), Some(1));
    assert_eq!(frozen.get(&u64::MAX), Some(2));
    assert_eq!(frozen.get(&5), None);
}
