//! Bulk operations against their one-by-one equivalents, in one run (so the ratios compare like with
//! like): bulk load vs single inserts, `insert_batch` of random and clustered keys vs inserts,
//! `get_many` vs gets, and the peak memory a chunked scan adds. Medians of five repetitions.
//!
//! `cargo run --release --example bulk [keys]` (default 1,000,000).
// `clippy.toml`'s atomics rule is for the crate's `src/`: tests and tools use std's atomics.
#![allow(clippy::disallowed_types)]

use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use bwtree::BwTree;

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

/// Median time of `work`; what it returns is dropped after the clock stops (dropping a tree is
/// not part of the operation measured: a closure must return the tree it built or changed, or the
/// drop — about a millisecond for a million keys — lands inside the measurement).
fn time<T, R>(reps: usize, mut setup: impl FnMut() -> T, mut work: impl FnMut(T) -> R) -> Duration {
    median(
        (0..reps)
            .map(|_| {
                let input = setup();
                let start = Instant::now();
                let output = work(input);
                let elapsed = start.elapsed();
                drop(output);
                elapsed
            })
            .collect(),
    )
}

fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

fn report(what: &str, bulk: Duration, single: Duration) {
    println!(
        "{what:<44} bulk {:>9.2} ms   one-by-one {:>9.2} ms   speed-up {:>5.1}x",
        bulk.as_secs_f64() * 1e3,
        single.as_secs_f64() * 1e3,
        single.as_secs_f64() / bulk.as_secs_f64()
    );
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .map_or(1_000_000, |s| s.parse().expect("a key count"));
    let reps = 5;

    let loaded = BwTree::from_sorted_iter((0..n).map(|k| (k, k))).unwrap();
    assert_eq!(loaded.len(), n as usize);
    drop(loaded);
    let load = time(
        reps,
        || (),
        |()| BwTree::from_sorted_iter((0..n).map(|k| (k, k))).unwrap(),
    );
    let single = time(
        reps,
        || (),
        |()| {
            let tree = BwTree::new();
            for k in 0..n {
                tree.insert(k, k);
            }
            tree
        },
    );
    report(&format!("load {n} sorted keys"), load, single);

    let base = || BwTree::from_sorted_iter((0..n).map(|k| (k * 16, k))).unwrap();
    for batch in [1_000u64, 10_000] {
        let mut rng = xorshift(batch);
        let random: Vec<(u64, u64)> = (0..batch).map(|i| (rng() % (n * 16), i)).collect();
        let start = rng() % (n * 16 - batch * 4);
        let clustered: Vec<(u64, u64)> = (0..batch).map(|i| (start + i * 3 + 1, i)).collect();
        for (name, keys) in [("random", &random), ("clustered", &clustered)] {
            let bulk = time(
                reps,
                || (base(), keys.clone()),
                |(tree, keys)| {
                    tree.insert_batch(keys);
                    tree
                },
            );
            let single = time(
                reps,
                || (base(), keys.clone()),
                |(tree, keys)| {
                    for (k, v) in keys {
                        tree.insert(k, v);
                    }
                    tree
                },
            );
            report(&format!("insert_batch {batch} {name} keys"), bulk, single);
        }
    }

    let tree = base();
    let mut rng = xorshift(7);
    for (name, keys) in [
        (
            "random",
            (0..100_000).map(|_| rng() % (n * 16)).collect::<Vec<u64>>(),
        ),
        (
            "clustered",
            (0..100_000u64).map(|i| (n / 2 + i) * 16).collect(),
        ),
    ] {
        let bulk = time(
            reps,
            || (),
            |()| {
                std::hint::black_box(tree.get_many(&keys));
            },
        );
        let single = time(
            reps,
            || (),
            |()| {
                for k in &keys {
                    std::hint::black_box(tree.get(k));
                }
            },
        );
        report(&format!("get_many 100000 {name} keys"), bulk, single);
    }

    // Chunked scans: the buffer a chunk needs, against the size of the whole range.
    let chunk = NonZeroUsize::new(1_024).unwrap();
    let largest = tree
        .range_chunks(.., chunk)
        .map(|c| c.capacity() * std::mem::size_of::<(u64, u64)>())
        .max()
        .unwrap_or(0);
    println!(
        "range_chunks(.., 1024) over {n} pairs: largest chunk buffer {largest} bytes, whole range {} bytes",
        n as usize * std::mem::size_of::<(u64, u64)>()
    );
}
