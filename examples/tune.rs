//! Measures how the page capacities and delta-chain thresholds affect throughput, one knob at a time
//! around the defaults: the measurement behind `Config::default()`.
//!
//! For every configuration: insert N random u64 keys (T threads), then look all of them up, then run
//! a 50/50 get/overwrite mix; each is repeated `--runs` times and the median is printed.
//!
//! ```text
//! cargo run --release --example tune -- [--keys N] [--threads T] [--runs R]
//! ```
// `clippy.toml`'s atomics rule is for the crate's `src/`: tests and tools use std's atomics.
#![allow(clippy::disallowed_types)]

use std::time::Instant;

use bwtree::{BwTree, Config};

fn main() {
    let mut keys_total = 1_000_000u64;
    let mut threads = 1usize;
    let mut runs = 3usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().and_then(|v| v.parse::<u64>().ok());
        match (arg.as_str(), value) {
            ("--keys", Some(v)) => keys_total = v,
            ("--threads", Some(v)) => threads = v.max(1) as usize,
            ("--runs", Some(v)) => runs = v.max(1) as usize,
            _ => {
                eprintln!("usage: tune [--keys N] [--threads T] [--runs R]");
                std::process::exit(2);
            }
        }
    }
    let keys = random_keys(keys_total);
    let base = Config::default();
    let mut variants: Vec<(String, Config)> = vec![("default".into(), base.clone())];
    // Merge thresholds follow the capacities (half a page, as the defaults; at most half is valid).
    for leaf in [32, 64, 256] {
        variants.push((
            format!("leaf_capacity={leaf}"),
            Config {
                leaf_capacity: leaf,
                leaf_merge_threshold: leaf / 2,
                ..base.clone()
            },
        ));
    }
    for inner in [32, 64, 256] {
        variants.push((
            format!("inner_capacity={inner}"),
            Config {
                inner_capacity: inner,
                inner_merge_threshold: inner / 2,
                ..base.clone()
            },
        ));
    }
    for chain in [2, 8, 16, 24] {
        variants.push((
            format!("leaf_chain_threshold={chain}"),
            Config {
                leaf_chain_threshold: chain,
                ..base.clone()
            },
        ));
    }
    for chain in [1, 4, 8] {
        variants.push((
            format!("inner_chain_threshold={chain}"),
            Config {
                inner_chain_threshold: chain,
                ..base.clone()
            },
        ));
    }
    println!("{keys_total} random u64 keys, {threads} thread(s), median of {runs} runs, M ops/s");
    println!(
        "{:<28} {:>8} {:>8} {:>8}",
        "config", "insert", "get", "mixed"
    );
    for (name, config) in variants {
        let mut insert = Vec::new();
        let mut get = Vec::new();
        let mut mixed = Vec::new();
        for _ in 0..runs {
            let tree: BwTree = BwTree::with_config(config.clone()).unwrap();
            insert.push(rate(threads, &keys, |k| {
                tree.insert(k, k);
            }));
            get.push(rate(threads, &keys, |k| {
                assert_eq!(tree.get(&k), Some(k));
            }));
            mixed.push(rate(threads, &keys, |k| {
                if k & 1 == 0 {
                    assert_eq!(tree.get(&k), Some(k));
                } else {
                    tree.insert(k, k);
                }
            }));
        }
        println!(
            "{name:<28} {:>8.2} {:>8.2} {:>8.2}",
            median(&mut insert),
            median(&mut get),
            median(&mut mixed)
        );
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn rate(threads: usize, keys: &[u64], op: impl Fn(u64) + Sync) -> f64 {
    let chunk = keys.len().div_ceil(threads).max(1);
    let start = Instant::now();
    std::thread::scope(|s| {
        for part in keys.chunks(chunk) {
            let op = &op;
            s.spawn(move || part.iter().for_each(|&k| op(k)));
        }
    });
    keys.len() as f64 / start.elapsed().as_secs_f64() / 1e6
}

fn random_keys(n: u64) -> Vec<u64> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        })
        .collect()
}
