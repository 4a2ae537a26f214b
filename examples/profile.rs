//! The profiling harness behind `papers/performance.md`: single-thread gets and inserts of
//! uniformly random u64 keys on BwTree and on the in-crate OLC B+tree, in one process.
//!
//! ```text
//! # wall-clock medians, BwTree next to OLC in the same process (gets also next to a plain,
//! # single-threaded std BTreeMap)
//! cargo run --release --example profile -- time [--keys N] [--runs R]
//! # instruction and simulated-cache counts of the measured loops only (valgrind's callgrind):
//! valgrind --tool=callgrind --cache-sim=yes --toggle-collect='profile::measure_*' \
//!     target/release/examples/profile bwtree --keys 200000
//! callgrind_annotate callgrind.out.<pid>
//! # fresh random inserts into a loaded BwTree on 1 and on 2 threads (the page-recycling measurement)
//! cargo run --release --example profile -- scaling [--keys N] [--runs R] [--no-recycling]
//! ```
//!
//! `--leaf`, `--inner`, `--chain` and `--inner-chain` set BwTree's leaf and inner capacities and its
//! leaf and inner chain thresholds; `--scan-len` the pairs per scan (default 100).
//! `bwtree` and `olc` modes build one map, then run a get loop over every key (shuffled), a loop of
//! 100-pair scans (from every hundredth probe) and an insert loop of fresh keys (a quarter as many);
//! the `measure_*` functions are the loops, so
//! callgrind's `--toggle-collect` counts nothing else. `scaling` loads `--keys` keys, then times
//! 400k fresh inserts split over 1 and over 2 threads (alternating, fresh tree each time);
//! `--no-recycling` turns off the reuse of freed page blocks (`bwtree::set_page_recycling`).
// `clippy.toml`'s atomics rule is for the crate's `src/`: tests and tools use std's atomics.
#![allow(clippy::disallowed_types)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

use bwtree::baselines::OlcBTree;
use bwtree::{BwTree, ConcurrentMap, Config};

/// xorshift64: a fast, reproducible stream of distinct-enough random keys.
fn random_keys(n: usize, seed: u64) -> Vec<u64> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        })
        .collect()
}

/// `keys` in a random order (Fisher-Yates with the same generator).
fn shuffled(keys: &[u64], seed: u64) -> Vec<u64> {
    let mut out = keys.to_vec();
    let mut x = seed;
    for i in (1..out.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.swap(i, (x % (i as u64 + 1)) as usize);
    }
    out
}

#[inline(never)]
fn measure_gets<M: ConcurrentMap<u64, u64>>(map: &M, probes: &[u64]) -> u64 {
    probes
        .iter()
        .map(|k| map.get(k).expect("every probed key was inserted"))
        .fold(0, u64::wrapping_add)
}

#[inline(never)]
fn measure_inserts<M: ConcurrentMap<u64, u64>>(map: &M, keys: &[u64]) -> u64 {
    keys.iter()
        .map(|&k| map.insert(k, k).unwrap_or(0))
        .fold(0, u64::wrapping_add)
}

/// Pairs per scan in the scan loop by default (the lab's scan100); `--scan-len` changes it.
const SCAN_LEN: usize = 100;

#[inline(never)]
fn measure_scans<M: ConcurrentMap<u64, u64>>(map: &M, starts: &[u64], len: usize) -> u64 {
    let mut out = Vec::with_capacity(len);
    let mut sum = 0u64;
    for k in starts {
        out.clear();
        map.scan(
            std::ops::Bound::Included(k),
            std::ops::Bound::Unbounded,
            len,
            &mut out,
        );
        sum = out.iter().fold(sum, |s, &(k, v)| s.wrapping_add(k ^ v));
    }
    sum
}

fn load<M: ConcurrentMap<u64, u64>>(map: &M, keys: &[u64]) {
    for &k in keys {
        map.insert(k, k);
    }
}

/// Fresh inserts per `scaling` measurement, split evenly over the threads.
const SCALING_INSERTS: usize = 400_000;

/// M inserts/s of `SCALING_INSERTS` fresh random keys on `threads` threads into a new tree loaded
/// with `keys`.
fn insert_throughput(config: &Config, keys: &[u64], threads: usize) -> f64 {
    let tree = BwTree::with_config(config.clone()).expect("validated");
    load(&tree, keys);
    let per_thread = SCALING_INSERTS / threads;
    let fresh: Vec<Vec<u64>> = (0..threads)
        .map(|t| random_keys(per_thread, 1234 + 7919 * t as u64))
        .collect();
    let start = Instant::now();
    std::thread::scope(|s| {
        for keys in &fresh {
            let tree = &tree;
            s.spawn(move || black_box(measure_inserts(tree, keys)));
        }
    });
    million_per_second(per_thread * threads, start)
}

fn million_per_second(n: usize, start: Instant) -> f64 {
    n as f64 / start.elapsed().as_secs_f64() / 1e6
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut mode = String::from("time");
    let mut keys_total = 1_000_000usize;
    let mut runs = 7usize;
    let mut scan_len = SCAN_LEN;
    let mut config = Config::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--keys" => keys_total = args.next().and_then(|v| v.parse().ok()).unwrap_or(0),
            "--runs" => runs = args.next().and_then(|v| v.parse().ok()).unwrap_or(0),
            "--scan-len" => scan_len = args.next().and_then(|v| v.parse().ok()).unwrap_or(0),
            // The merge thresholds follow the capacities (half a page, as the defaults).
            "--leaf" => {
                config.leaf_capacity = args.next().and_then(|v| v.parse().ok()).unwrap_or(0);
                config.leaf_merge_threshold = config.leaf_capacity / 2;
            }
            "--inner" => {
                config.inner_capacity = args.next().and_then(|v| v.parse().ok()).unwrap_or(0);
                config.inner_merge_threshold = config.inner_capacity / 2;
            }
            "--chain" => {
                config.leaf_chain_threshold = args.next().and_then(|v| v.parse().ok()).unwrap_or(0)
            }
            "--inner-chain" => {
                config.inner_chain_threshold = args.next().and_then(|v| v.parse().ok()).unwrap_or(0)
            }
            "--no-recycling" => bwtree::set_page_recycling(false),
            "time" | "bwtree" | "olc" | "scaling" => mode = arg,
            _ => keys_total = 0,
        }
    }
    if keys_total == 0 || runs == 0 || scan_len == 0 {
        eprintln!(
            "usage: profile [time|bwtree|olc|scaling] [--keys N] [--runs R] [--leaf N] [--inner N] [--chain N] [--inner-chain N] [--scan-len N] [--no-recycling]"
        );
        std::process::exit(2);
    }
    if let Err(e) = config.validate() {
        eprintln!("invalid configuration: {e}");
        std::process::exit(2);
    }
    let keys = random_keys(keys_total, 0x9e37_79b9_7f4a_7c15);
    let probes = shuffled(&keys, 7);
    let fresh = random_keys(keys_total / 4, 12345);
    match mode.as_str() {
        "bwtree" => {
            let tree = BwTree::with_config(config.clone()).expect("validated");
            load(&tree, &keys);
            black_box(measure_gets(&tree, &probes));
            black_box(measure_scans(
                &tree,
                &probes[..probes.len() / scan_len],
                scan_len,
            ));
            black_box(measure_inserts(&tree, &fresh));
        }
        "scaling" => {
            let (mut one, mut two) = (vec![], vec![]);
            for _ in 0..runs {
                one.push(insert_throughput(&config, &keys, 1));
                two.push(insert_throughput(&config, &keys, 2));
            }
            let (one, two) = (median(one), median(two));
            println!(
                "{keys_total} random u64 keys loaded, {SCALING_INSERTS} fresh inserts, medians of {runs} runs ({} cores)",
                std::thread::available_parallelism().map_or(1, usize::from)
            );
            println!(
                "insert  1 thread {one:5.3} M/s   2 threads {two:5.3} M/s   ratio {:.2}",
                two / one
            );
        }
        "olc" => {
            let olc = OlcBTree::new();
            load(&olc, &keys);
            black_box(measure_gets(&olc, &probes));
            black_box(measure_scans(
                &olc,
                &probes[..probes.len() / scan_len],
                scan_len,
            ));
            black_box(measure_inserts(&olc, &fresh));
        }
        _ => {
            let (mut bw_get, mut olc_get, mut bw_ins, mut olc_ins) =
                (vec![], vec![], vec![], vec![]);
            let (mut bw_scan, mut olc_scan, mut std_get) = (vec![], vec![], vec![]);
            let starts = &probes[..probes.len() / scan_len];
            for _ in 0..runs {
                // Fresh maps per run so that inserts always add new keys; the two maps alternate
                // so that machine noise hits both alike.
                let tree = BwTree::with_config(config.clone()).expect("validated");
                load(&tree, &keys);
                let olc = OlcBTree::new();
                load(&olc, &keys);
                let start = Instant::now();
                black_box(measure_gets(&tree, &probes));
                bw_get.push(million_per_second(probes.len(), start));
                let start = Instant::now();
                black_box(measure_gets(&olc, &probes));
                olc_get.push(million_per_second(probes.len(), start));
                // The single-thread reference of the performance targets: a plain `BTreeMap`, no
                // lock around it, loaded like the others (one insert at a time, random order).
                let mut std_map = BTreeMap::new();
                for &k in &keys {
                    std_map.insert(k, k);
                }
                let start = Instant::now();
                let sum = probes
                    .iter()
                    .map(|k| *std_map.get(k).expect("every probed key was inserted"))
                    .fold(0, u64::wrapping_add);
                black_box(sum);
                std_get.push(million_per_second(probes.len(), start));
                drop(std_map);
                let start = Instant::now();
                black_box(measure_scans(&tree, starts, scan_len));
                bw_scan.push(million_per_second(starts.len() * scan_len, start));
                let start = Instant::now();
                black_box(measure_scans(&olc, starts, scan_len));
                olc_scan.push(million_per_second(starts.len() * scan_len, start));
                let start = Instant::now();
                black_box(measure_inserts(&tree, &fresh));
                bw_ins.push(million_per_second(fresh.len(), start));
                let start = Instant::now();
                black_box(measure_inserts(&olc, &fresh));
                olc_ins.push(million_per_second(fresh.len(), start));
            }
            let (bg, og, bi, oi) = (
                median(bw_get),
                median(olc_get),
                median(bw_ins),
                median(olc_ins),
            );
            println!(
                "{keys_total} random u64 keys, 1 thread, medians of {runs} runs ({} cores)",
                std::thread::available_parallelism().map_or(1, usize::from)
            );
            let sg = median(std_get);
            println!(
                "get     bwtree {bg:6.2} M/s   olc {og:6.2} M/s   ratio {:.2}   std BTreeMap {sg:6.2} M/s   ratio {:.2}",
                bg / og,
                bg / sg
            );
            println!(
                "insert  bwtree {bi:6.2} M/s   olc {oi:6.2} M/s   ratio {:.2}",
                bi / oi
            );
            let (bs, os) = (median(bw_scan), median(olc_scan));
            println!(
                "scan{scan_len} bwtree {bs:6.2} M pairs/s   olc {os:6.2} M pairs/s   ratio {:.2}",
                bs / os
            );
        }
    }
}
