//! Multi-threaded stress with tiny pages, so that splits, consolidations and help-along happen
//! constantly. Every run ends with an exact check of the final contents and `check_invariants()`.
// `clippy.toml`'s atomics rule is for the crate's `src/`: tests and tools use std's atomics.
#![allow(clippy::disallowed_types)]

use std::collections::BTreeMap;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};

use bwtree::{BwTree, Config};

mod support {
    pub mod rng;
}

use support::rng::Rng;

const THREADS: u64 = 4;

fn scale() -> u64 {
    std::env::var("BWTREE_STRESS_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
}

fn configs() -> Vec<(&'static str, Config)> {
    vec![
        ("tiny", Config::tiny()),
        (
            "capacity-2",
            Config {
                leaf_capacity: 2,
                inner_capacity: 3,
                leaf_chain_threshold: 1,
                inner_chain_threshold: 1,
                leaf_merge_threshold: 1,
                inner_merge_threshold: 1,
                ..Config::default()
            },
        ),
    ]
}

/// Each thread owns the keys `k * THREADS + tid`: the final content is known exactly.
#[test]
fn disjoint_keys_exact_final_content() {
    for (name, config) in configs() {
        let tree = BwTree::with_config(config).unwrap();
        let ops_per_thread = 250_000 * scale();
        let barrier = Barrier::new(THREADS as usize);
        let models: Vec<BTreeMap<u64, u64>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS)
                .map(|tid| {
                    let (tree, barrier) = (&tree, &barrier);
                    s.spawn(move || {
                        let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15 ^ (tid + 1));
                        let mut model = BTreeMap::new();
                        barrier.wait();
                        for i in 0..ops_per_thread {
                            let r = rng.next_u64();
                            let key = (r % 20_000) * THREADS + tid;
                            match r >> 60 {
                                0..=8 => assert_eq!(tree.insert(key, i), model.insert(key, i)),
                                9..=13 => assert_eq!(tree.remove(&key), model.remove(&key)),
                                _ => assert_eq!(tree.get(&key), model.get(&key).copied()),
                            }
                        }
                        model
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut expected = BTreeMap::new();
        for model in models {
            expected.extend(model);
        }
        tree.check_invariants()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            tree.iter().eq(expected.iter().map(|(k, v)| (*k, *v))),
            "{name}: final content"
        );
        assert_eq!(tree.len(), expected.len(), "{name}");
    }
}

/// All threads hit the same keys. Values are unique per (thread, op); the final value of every key
/// must be the effect of the last operation some thread performed on it.
#[test]
fn overlapping_keys_final_value_is_some_threads_last_write() {
    for (name, config) in configs() {
        let tree = BwTree::with_config(config).unwrap();
        let ops_per_thread = 100_000 * scale();
        let keys = 512u64;
        let barrier = Barrier::new(THREADS as usize);
        let last_effects: Vec<Vec<Option<Option<u64>>>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS)
                .map(|tid| {
                    let (tree, barrier) = (&tree, &barrier);
                    s.spawn(move || {
                        let mut rng = Rng::new(0xD1B5_4A32_D192_ED03 ^ (tid + 1));
                        // None: never touched; Some(None): last op removed; Some(Some(v)): inserted v.
                        let mut last = vec![None; keys as usize];
                        barrier.wait();
                        for i in 0..ops_per_thread {
                            let r = rng.next_u64();
                            let key = r % keys;
                            let value = (tid << 40) | i;
                            if r >> 62 == 0 {
                                tree.remove(&key);
                                last[key as usize] = Some(None);
                            } else {
                                let prev = tree.insert(key, value);
                                if let Some(prev) = prev {
                                    assert!(
                                        prev >> 40 < THREADS,
                                        "{name}: a value never written: {prev:#x}"
                                    );
                                }
                                last[key as usize] = Some(Some(value));
                            }
                        }
                        last
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        tree.check_invariants()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        for key in 0..keys {
            let final_value = tree.get(&key);
            let candidates: Vec<Option<u64>> = last_effects
                .iter()
                .filter_map(|t| t[key as usize])
                .collect();
            if candidates.is_empty() {
                assert_eq!(final_value, None);
            } else {
                assert!(
                    candidates.contains(&final_value),
                    "{name}: key {key} ends as {final_value:?}, not any thread's last write {candidates:?}"
                );
            }
        }
    }
}

/// Writers churn odd keys while scanners read ranges: every scan must be strictly ascending, inside
/// its bounds, and contain every even key (present and untouched for the whole run) exactly once.
#[test]
fn scans_during_splits_never_miss_stable_keys() {
    for (name, config) in configs() {
        let tree = BwTree::with_config(config).unwrap();
        let span = 4_000u64;
        for key in (0..span).step_by(2) {
            tree.insert(key, key);
        }
        let done = AtomicBool::new(false);
        let writer_ops = 200_000 * scale();
        std::thread::scope(|s| {
            for tid in 0..2u64 {
                let (tree, done) = (&tree, &done);
                s.spawn(move || {
                    let mut rng = Rng::new(0xA076_1D64_78BD_642F ^ (tid + 1));
                    for _ in 0..writer_ops {
                        let key = (rng.next_u64() % (span / 2)) * 2 + 1;
                        if rng.next_u64() % 3 == 0 {
                            tree.remove(&key);
                        } else {
                            tree.insert(key, key);
                        }
                    }
                    done.store(true, Ordering::Release);
                });
            }
            for tid in 0..2u64 {
                let (tree, done) = (&tree, &done);
                s.spawn(move || {
                    let mut rng = Rng::new(0xE703_7ED1_A0B4_28DB ^ (tid + 1));
                    let mut scans = 0u64;
                    while !done.load(Ordering::Acquire) || scans < 50 {
                        let a = rng.next_u64() % span;
                        let b = a + rng.next_u64() % 600;
                        let forward = rng.next_u64() % 2 == 0;
                        let mut got: Vec<(u64, u64)> = tree.range(a..b).collect();
                        if !forward {
                            let mut rev: Vec<(u64, u64)> = tree.range(a..b).rev().collect();
                            rev.reverse();
                            got = rev;
                        }
                        assert!(
                            got.windows(2).all(|w| w[0].0 < w[1].0),
                            "{name}: not ascending"
                        );
                        assert!(
                            got.iter().all(|(k, v)| (a..b).contains(k) && k == v),
                            "{name}: out of bounds or wrong value"
                        );
                        let evens = got.iter().filter(|(k, _)| k % 2 == 0).count() as u64;
                        let want = (a.min(span)..b.min(span)).filter(|k| k % 2 == 0).count() as u64;
                        assert_eq!(evens, want, "{name}: scan [{a}, {b}) missed stable keys");
                        scans += 1;
                    }
                });
            }
        });
        tree.check_invariants()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        for key in (0..span).step_by(2) {
            assert_eq!(tree.get(&key), Some(key), "{name}");
        }
    }
}

/// Many threads racing on the rightmost page: every insert lands, splits cascade to new roots.
#[test]
fn right_edge_append_contention() {
    for (name, config) in configs() {
        let tree = BwTree::with_config(config).unwrap();
        let next = std::sync::atomic::AtomicU64::new(0);
        let per_thread = 50_000 * scale();
        std::thread::scope(|s| {
            for _ in 0..THREADS {
                let (tree, next) = (&tree, &next);
                s.spawn(move || {
                    for _ in 0..per_thread {
                        let key = next.fetch_add(1, Ordering::Relaxed);
                        assert_eq!(tree.insert(key, key), None);
                    }
                });
            }
        });
        let total = per_thread * THREADS;
        tree.check_invariants()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(tree.iter().map(|(k, _)| k).eq(0..total), "{name}");
    }
}
