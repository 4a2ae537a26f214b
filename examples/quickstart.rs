//! Loads random keys into a `BwTree` on several threads, runs point lookups and range scans, and
//! prints throughput and the tree's shape, next to a single-threaded `std::collections::BTreeMap`
//! doing the same inserts and lookups in the same run.
//!
//! ```text
//! cargo run --release --example quickstart -- [--keys N] [--threads T]
//! ```
// `clippy.toml`'s atomics rule is for the crate's `src/`: tests and tools use std's atomics.
#![allow(clippy::disallowed_types)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bwtree::BwTree;

fn main() {
    let mut keys_total = 1_000_000u64;
    let mut threads = std::thread::available_parallelism().map_or(2, |n| n.get() as u64);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| usage(&arg))
        };
        match arg.as_str() {
            "--keys" => keys_total = value(),
            "--threads" => threads = value().max(1),
            _ => usage(&arg),
        }
    }
    let keys = random_keys(keys_total);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("{keys_total} random u64 keys, {threads} threads, {cores} cores");

    let tree: BwTree = BwTree::new();
    let insert = timed(threads, &keys, |key| {
        tree.insert(key, key);
    });
    report("BwTree insert", keys_total, insert);
    let get = timed(threads, &keys, |key| {
        assert_eq!(tree.get(&key), Some(key));
    });
    report("BwTree get", keys_total, get);
    let scans = keys_total / 100;
    let mut returned = 0u64;
    let start = Instant::now();
    for &key in keys.iter().take(scans as usize) {
        returned += tree.range(key..).take(100).count() as u64;
    }
    let scan = start.elapsed();
    report("BwTree scan-100 (1 thread, pairs)", returned, scan);
    println!(
        "shape: height {}, {} entries, {:?}",
        tree.height(),
        tree.len(),
        tree.config()
    );
    tree.check_invariants().expect("structure");

    let mut map = BTreeMap::new();
    let start = Instant::now();
    for &key in &keys {
        map.insert(key, key);
    }
    report(
        "std BTreeMap insert (1 thread)",
        keys_total,
        start.elapsed(),
    );
    let start = Instant::now();
    for &key in &keys {
        black_box(map.get(&key));
    }
    report("std BTreeMap get (1 thread)", keys_total, start.elapsed());
}

fn usage(arg: &str) -> ! {
    eprintln!("unexpected argument {arg:?}\nusage: quickstart [--keys N] [--threads T]");
    std::process::exit(2)
}

fn random_keys(n: u64) -> Vec<u64> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut keys: Vec<u64> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    // Shuffle back into random order (Fisher-Yates with the same generator).
    for i in (1..keys.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        keys.swap(i, (x % (i as u64 + 1)) as usize);
    }
    keys
}

/// Runs `op` over `keys`, split into `threads` contiguous chunks on as many threads.
fn timed(threads: u64, keys: &[u64], op: impl Fn(u64) + Sync) -> Duration {
    let chunk = keys.len().div_ceil(threads as usize).max(1);
    let start = Instant::now();
    std::thread::scope(|s| {
        for part in keys.chunks(chunk) {
            let op = &op;
            s.spawn(move || part.iter().for_each(|&k| op(k)));
        }
    });
    start.elapsed()
}

fn report(what: &str, ops: u64, took: Duration) {
    println!(
        "{what:<36} {:>8.2} M/s  ({ops} in {:.3} s)",
        ops as f64 / took.as_secs_f64() / 1e6,
        took.as_secs_f64()
    );
}
