//! Whole-tree tests through the public API: capacities, leaf and inner splits, removal, and
//! concurrent splits under scans.

use core::ops::Bound;

use super::OlcBTree;
use crate::ConcurrentMap;

fn all(tree: &OlcBTree) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    tree.scan(Bound::Unbounded, Bound::Unbounded, usize::MAX, &mut out);
    out
}

#[test]
fn rejects_bad_capacities() {
    assert!(OlcBTree::with_capacity(1, 4).is_err());
    assert!(OlcBTree::with_capacity(4, 2).is_err());
    assert!(OlcBTree::with_capacity(2, 3).is_ok());
}

#[test]
fn leaf_split_puts_the_new_key_in_either_half() {
    for new_key in [0u64, 15, 25, 35, 45, 100] {
        let tree = OlcBTree::with_capacity(4, 4).unwrap();
        for k in [10u64, 20, 30, 40] {
            tree.insert(k, k);
        }
        assert_eq!(tree.height(), 1);
        assert_eq!(tree.insert(new_key, new_key), None);
        assert_eq!(tree.height(), 2, "key {new_key}");
        let mut expected: Vec<u64> = vec![10, 20, 30, 40, new_key];
        expected.sort_unstable();
        assert_eq!(
            all(&tree),
            expected.iter().map(|&k| (k, k)).collect::<Vec<_>>()
        );
        for k in expected {
            assert_eq!(tree.get(&k), Some(k));
        }
    }
}

#[test]
fn minimal_capacities_split_up_to_many_levels() {
    for descending in [false, true] {
        let tree = OlcBTree::with_capacity(2, 3).unwrap();
        let keys: Vec<u64> = if descending {
            (0..500).rev().collect()
        } else {
            (0..500).map(|k| k * 7919 % 500).collect()
        };
        for &k in &keys {
            assert_eq!(tree.insert(k, k + 1), None);
        }
        let shape = tree.shape();
        assert!(shape.height >= 6, "{shape:?}");
        assert_eq!(shape.entries, 500);
        for k in 0..500 {
            assert_eq!(tree.get(&k), Some(k + 1));
        }
        assert_eq!(all(&tree), (0..500).map(|k| (k, k + 1)).collect::<Vec<_>>());
    }
}

#[test]
fn removal_keeps_empty_leaves_and_they_still_route() {
    let tree = OlcBTree::with_capacity(4, 4).unwrap();
    for k in 0..100u64 {
        tree.insert(k, k);
    }
    let before = tree.shape();
    for k in 0..100u64 {
        assert_eq!(tree.remove(&k), Some(k));
        assert_eq!(tree.remove(&k), None);
    }
    let after = tree.shape();
    assert_eq!((after.leaves, after.entries), (before.leaves, 0));
    assert!(all(&tree).is_empty());
    for k in (0..100u64).rev() {
        tree.insert(k, k * 2);
    }
    assert_eq!(all(&tree), (0..100).map(|k| (k, k * 2)).collect::<Vec<_>>());
}

/// Writers on both halves of the key space while scanners check order and bounds; afterwards every
/// key is present, and (on two threads that really interleave) some operation restarted.
#[test]
fn concurrent_splits_and_scans_stay_ordered() {
    let tree = OlcBTree::with_capacity(3, 3).unwrap();
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let tree = &tree;
            s.spawn(move || {
                for i in 0..crate::test_size(20_000, 300) {
                    tree.insert(i * 2 + t, i);
                }
            });
        }
        s.spawn(|| {
            for _ in 0..crate::test_size(500, 10) {
                let mut out = Vec::new();
                tree.scan(
                    Bound::Excluded(&100),
                    Bound::Included(&30_000),
                    64,
                    &mut out,
                );
                assert!(out.len() <= 64);
                assert!(out.windows(2).all(|w| w[0].0 < w[1].0), "{out:?}");
                assert!(out.iter().all(|&(k, _)| k > 100 && k <= 30_000));
            }
        });
    });
    assert_eq!(tree.shape().entries, 40_000);
    assert_eq!(all(&tree), {
        let mut v: Vec<(u64, u64)> = (0..crate::test_size(40_000, 400))
            .map(|k| (k, k / 2))
            .collect();
        v.sort_unstable();
        v
    });
}
