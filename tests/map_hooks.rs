//! The optional `ConcurrentMap` hooks the lab reads: `tree_shape()` agrees with each map's own shape
//! report, and `stats()` counters only grow.
// `clippy.toml`'s atomics rule is for the crate's `src/`: tests and tools use std's atomics.
#![allow(clippy::disallowed_types)]

use bwtree::baselines::{CoarseLockMap, LockCouplingBTree, OlcBTree};
use bwtree::{BwTree, ConcurrentMap};

type Map = dyn ConcurrentMap<u64, u64>;

fn load(map: &Map, n: u64) {
    for i in 0..n {
        map.insert(i.wrapping_mul(0x9E37_79B9_7F4A_7C15), i);
    }
}

#[test]
fn tree_shape_matches_the_maps_own_reports() {
    let tree = BwTree::<u64, u64>::new();
    load(&tree, 20_000);
    let shape = ConcurrentMap::tree_shape(&tree).expect("the Bw-tree reports its shape");
    let own = tree.shape();
    assert_eq!(shape.height, tree.height());
    assert!(shape.height >= 2);
    assert_eq!(shape.leaves, Some(own.leaves));
    assert_eq!(shape.inner_nodes, Some(own.inner_pages));
    assert_eq!(shape.leaf_fill, Some(own.leaf_fill));
    assert_eq!(shape.inner_fill, Some(own.inner_fill));
    assert!(shape.leaf_fill.is_some_and(|f| f > 0.3 && f <= 1.0));

    let small = BwTree::<u64, u64>::new();
    load(&small, 3);
    let shape = ConcurrentMap::tree_shape(&small).unwrap();
    assert_eq!(
        (shape.height, shape.inner_fill),
        (1, None),
        "a lone leaf has no inner fill"
    );

    let olc = OlcBTree::new();
    load(&olc, 20_000);
    let shape = olc.tree_shape().unwrap();
    assert_eq!(shape.height, olc.height());
    assert_eq!(shape.leaves, Some(olc.shape().leaves));

    let crabbing = LockCouplingBTree::<u64, u64>::new();
    load(&crabbing, 20_000);
    let shape = crabbing.tree_shape().unwrap();
    assert_eq!(shape.height, crabbing.height());
    assert_eq!(shape.leaf_fill, Some(crabbing.shape().avg_leaf_fill));

    assert_eq!(CoarseLockMap::<u64, u64>::new().tree_shape(), None);
}

#[test]
fn baseline_counters_are_named_and_grow() {
    let maps: Vec<(Box<Map>, &[&str])> = vec![
        (Box::new(OlcBTree::new()), &["restarts", "lock_waits"]),
        (
            Box::new(LockCouplingBTree::<u64, u64>::new()),
            &["latch_waits", "pessimistic_descents"],
        ),
        (Box::new(CoarseLockMap::<u64, u64>::new()), &["lock_waits"]),
    ];
    for (map, names) in maps {
        let before = map.stats();
        let got: Vec<&str> = before.iter().map(|&(n, _)| n).collect();
        assert_eq!(got, names, "{}", map.name());
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let map = &map;
                s.spawn(move || {
                    for i in 0..5_000u64 {
                        map.insert(i * 4 + t, i);
                    }
                });
            }
        });
        let after = map.stats();
        for (b, a) in before.iter().zip(&after) {
            assert!(a.1 >= b.1, "{}: {} shrank", map.name(), a.0);
        }
    }
    // One leaf split at least took the crabbing tree's pessimistic path.
    let crabbing = LockCouplingBTree::<u64, u64>::new();
    load(&crabbing, 1_000);
    assert!(crabbing.stats()[1].1 > 0);
}
