//! Keys and values other than `u64`, and the extreme `u64` keys.
// `clippy.toml`'s atomics rule is for the crate's `src/`: tests and tools use std's atomics.
#![allow(clippy::disallowed_types)]
#![cfg(not(loom))] // uses the maintenance thread, which loom builds leave out

use std::collections::BTreeMap;
use std::ops::Bound;

use bwtree::{BwTree, Config};

mod support {
    pub mod rng;
}

use support::rng::Rng;

fn random_string(rng: &mut Rng) -> String {
    let len = (rng.next_u64() % 12) as usize;
    (0..len)
        .map(|_| (b'a' + (rng.next_u64() % 6) as u8) as char)
        .collect()
}

#[test]
fn string_keys_vec_values_against_model() {
    for config in [Config::tiny(), Config::default()] {
        let tree: BwTree<String, Vec<u8>> = BwTree::with_config(config).unwrap();
        let mut model = BTreeMap::new();
        let mut rng = Rng::new(0x1234_5678_9ABC_DEF1);
        for i in 0..30_000u64 {
            let key = random_string(&mut rng);
            match rng.next_u64() % 10 {
                0..=4 => {
                    let value = i.to_le_bytes()[..(i % 8) as usize].to_vec();
                    assert_eq!(
                        tree.insert(key.clone(), value.clone()),
                        model.insert(key, value)
                    );
                }
                5..=6 => assert_eq!(tree.remove(&key), model.remove(&key)),
                7..=8 => assert_eq!(tree.get(&key), model.get(&key).cloned()),
                _ => {
                    let end = random_string(&mut rng);
                    if key <= end {
                        let got: Vec<_> = tree.range(key.clone()..=end.clone()).collect();
                        let want: Vec<_> = model
                            .range(key..=end)
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect();
                        assert_eq!(got, want);
                    }
                }
            }
        }
        tree.check_invariants().unwrap();
        assert!(tree.iter().eq(model.into_iter()));
    }
}

#[test]
fn empty_string_and_extreme_u64_keys_are_ordinary() {
    let tree: BwTree<String, u32> = BwTree::with_config(Config::tiny()).unwrap();
    assert_eq!(tree.insert(String::new(), 1), None);
    assert_eq!(tree.get(&String::new()), Some(1));

    let tree: BwTree = BwTree::with_config(Config::tiny()).unwrap();
    for k in [0, u64::MAX, 1, u64::MAX - 1] {
        assert_eq!(tree.insert(k, k), None);
    }
    for k in 2..200 {
        tree.insert(k * 1_000_003, k);
    }
    assert_eq!(tree.get(&0), Some(0));
    assert_eq!(tree.get(&u64::MAX), Some(u64::MAX));
    assert_eq!(tree.range(..).next(), Some((0, 0)));
    assert_eq!(tree.range(..).next_back(), Some((u64::MAX, u64::MAX)));
    assert_eq!(
        tree.range(u64::MAX..).collect::<Vec<_>>(),
        vec![(u64::MAX, u64::MAX)]
    );
    assert_eq!(tree.range(..=0).collect::<Vec<_>>(), vec![(0, 0)]);
    assert_eq!(
        tree.range((Bound::Excluded(u64::MAX - 1), Bound::Unbounded))
            .count(),
        1
    );
    assert_eq!(
        tree.range((Bound::Excluded(u64::MAX), Bound::Unbounded))
            .count(),
        0
    );
    assert_eq!(tree.remove(&0), Some(0));
    assert_eq!(tree.remove(&u64::MAX), Some(u64::MAX));
    assert_eq!(tree.remove(&u64::MAX), None);
    tree.check_invariants().unwrap();
}

#[test]
#[allow(clippy::reversed_empty_ranges)]
fn inverted_and_empty_ranges_are_empty_not_panics() {
    let tree: BwTree = BwTree::new();
    for k in 0..100 {
        tree.insert(k, k);
    }
    assert_eq!(tree.range(50..10).count(), 0);
    assert_eq!(tree.range(50..50).count(), 0);
    assert_eq!(tree.range(50..=49).count(), 0);
    assert_eq!(
        tree.range((Bound::Excluded(50), Bound::Excluded(50)))
            .count(),
        0
    );
    assert_eq!(
        tree.range((Bound::Excluded(50), Bound::Included(50)))
            .count(),
        0
    );
    assert_eq!(tree.range(50..=50).count(), 1);
    assert_eq!(tree.range(50..10).rev().count(), 0);
}

#[test]
fn invalid_config_is_an_error_not_a_panic() {
    let bad = Config {
        leaf_capacity: 1,
        ..Config::default()
    };
    let err = BwTree::<u64, u64>::with_config(bad).unwrap_err();
    assert!(err.to_string().contains("leaf_capacity"));
}

#[test]
fn send_sync_and_debug() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<BwTree<u64, u64>>();
    assert_send_sync::<BwTree<String, Vec<u8>>>();
    let tree: BwTree = BwTree::default();
    tree.insert(1, 2);
    let text = format!("{tree:?}");
    assert!(text.contains("BwTree") && text.contains("height"), "{text}");
}

#[test]
fn pinned_handles_borrow_values() {
    let tree: BwTree<u64, String> = BwTree::new();
    let mut pinned = tree.pin();
    assert_eq!(pinned.insert(1, "one".into()), None);
    assert_eq!(
        pinned.insert(1, "uno".into()).map(String::as_str),
        Some("one")
    );
    assert_eq!(pinned.get(&1).map(String::as_str), Some("uno"));
    pinned.repin();
    assert_eq!(pinned.remove(&1).map(String::as_str), Some("uno"));
    assert!(!pinned.contains_key(&1));

    let other = bwtree::epoch::Collector::new();
    assert!(tree.pin_with(&other.register()).is_err());
    assert!(
        tree.pin_with(&bwtree::epoch::default_collector().register())
            .is_ok()
    );
    let own = bwtree::epoch::Collector::new();
    let custom: BwTree = BwTree::with_collector(Config::default(), own.clone()).unwrap();
    let handle = own.register();
    let pinned = custom.pin_with(&handle).unwrap();
    pinned.insert(5, 6);
    assert_eq!(pinned.get(&5), Some(&6));
    assert!(custom.pin_with(&other.register()).is_err());
}

#[test]
// The maintenance thread is a real thread, not available in loom builds.
#[cfg(not(loom))]
fn background_maintenance_thread_keeps_pages_bounded() {
    use std::sync::Arc;
    use std::time::Duration;
    let tree: Arc<BwTree> = Arc::new(
        BwTree::with_config(Config {
            maintenance: bwtree::Maintenance::Background,
            ..Config::tiny()
        })
        .unwrap(),
    );
    let handle = tree.start_maintenance(Duration::from_millis(1));
    for k in 0..20_000u64 {
        tree.insert(k.wrapping_mul(0x9E37_79B9_7F4A_7C15) % 100_000, k);
    }
    let report = handle.stop();
    assert!(report.pages > 0, "the thread ran no pass: {report:?}");
    // Passes converge: soon one finds no page over capacity and no chain over its threshold.
    let converged = (0..10).any(|_| {
        let pass = tree.run_maintenance();
        pass.splits == 0 && pass.consolidations == 0
    });
    assert!(converged, "maintenance passes do not converge");
    tree.check_invariants().unwrap();
    assert_eq!(tree.len(), tree.iter().count());
}
