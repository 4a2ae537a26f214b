//! What statistics cost: insert and get throughput of a `BwTree` with `Config::statistics` on and off,
//! measured in the same run (the two variants alternate, run after run), followed by the statistics
//! the last "on" tree collected.
//!
//! Throughput is per second of CPU time of the worker threads (from `/proc/thread-self/schedstat`,
//! where available, else wall time), so that other processes competing for the cores disturb the
//! comparison less.
//!
//! ```text
//! cargo run --release --example stats_cost -- [--keys N] [--threads T] [--runs R] [--only on|off]
//! ```
//!
//! `--only` runs one variant, e.g. under `valgrind --tool=cachegrind` to compare the instructions
//! executed with statistics on and off (a count that other processes cannot disturb).
// `clippy.toml`'s atomics rule is for the crate's `src/`: tests and tools use std's atomics.
#![allow(clippy::disallowed_types)]

use std::time::{Duration, Instant};

use bwtree::{BwTree, CasKind, Config, Level, OpKind, RestartCause, SmoKind};

fn main() {
    let mut keys_total = 1_000_000u64;
    let mut threads = 1u64;
    let mut runs = 5usize;
    let mut variants = vec![0, 1];
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or_else(|| usage(&arg))
        };
        match arg.as_str() {
            "--keys" => keys_total = value(),
            "--threads" => threads = value().max(1),
            "--runs" => runs = value().max(1) as usize,
            "--only" => match args.next().as_deref() {
                Some("on") => variants = vec![0],
                Some("off") => variants = vec![1],
                _ => usage(&arg),
            },
            _ => usage(&arg),
        }
    }
    let keys = random_keys(keys_total);
    let clock = if thread_cpu_ns().is_some() {
        "CPU"
    } else {
        "wall"
    };
    println!(
        "{} random u64 keys, {threads} thread(s), median of {runs} runs, default config; \
         M ops per {clock} second",
        keys.len()
    );
    // [variant][phase] -> throughputs; variant 0 = statistics on, 1 = off.
    let mut results = [[Vec::new(), Vec::new()], [Vec::new(), Vec::new()]];
    let mut last_on = None;
    for run in 0..runs {
        // Alternate which variant goes first, so that neither always runs on a warmer machine.
        let mut order = variants.clone();
        if run % 2 == 1 {
            order.reverse();
        }
        for variant in order {
            let config = Config {
                statistics: variant == 0,
                ..Config::default()
            };
            let tree: BwTree = BwTree::with_config(config).expect("valid");
            let insert = timed(threads, &keys, |key| {
                tree.insert(key, key);
            });
            let get = timed(threads, &keys, |key| {
                assert_eq!(tree.get(&key), Some(key));
            });
            results[variant][0].push(mops(keys.len(), insert));
            results[variant][1].push(mops(keys.len(), get));
            if variant == 0 {
                last_on = Some(tree);
            }
        }
    }
    println!(
        "{:<8} {:>10} {:>10} {:>9}",
        "phase", "stats on", "stats off", "cost"
    );
    if variants.len() < 2 {
        return;
    }
    for (phase, name) in ["insert", "get"].iter().enumerate() {
        let on = median(&mut results[0][phase]);
        let off = median(&mut results[1][phase]);
        println!(
            "{name:<8} {on:>10.3} {off:>10.3} {:>8.1}%",
            (off - on) / off * 100.0
        );
    }
    let tree = last_on.expect("at least one run");
    let stats = tree.stats();
    println!("\nstatistics of the last run with statistics on:");
    for op in OpKind::ALL {
        println!(
            "  {op:?}: {} ops, abort rate {:?}",
            stats.ops(op),
            stats.abort_rate_of(op)
        );
    }
    for kind in CasKind::ALL {
        if stats.cas_attempts(kind) > 0 {
            println!(
                "  CAS {kind:?}: {} attempts, {} failed ({:.4}%)",
                stats.cas_attempts(kind),
                stats.cas_failures(kind),
                stats.cas_failure_rate(kind).unwrap_or(0.0) * 100.0
            );
        }
    }
    for cause in RestartCause::ALL {
        println!("  restarts {cause:?}: {}", stats.restarts(cause));
    }
    for kind in SmoKind::ALL {
        println!("  help-along {kind:?}: {}", stats.help_along(kind));
    }
    println!(
        "  splits leaf/inner {}/{}, consolidations leaf/inner {}/{}, root grows {}",
        stats.splits(Level::Leaf),
        stats.splits(Level::Inner),
        stats.consolidations(Level::Leaf),
        stats.consolidations(Level::Inner),
        stats.root_grows()
    );
    println!(
        "  mean chain at access: leaf {:.3}, inner {:.3}",
        stats.mean_leaf_chain().unwrap_or(0.0),
        stats.mean_chain(Level::Inner).unwrap_or(0.0)
    );
}

fn usage(arg: &str) -> ! {
    eprintln!(
        "unexpected argument {arg:?}\n\
         usage: stats_cost [--keys N] [--threads T] [--runs R] [--only on|off]"
    );
    std::process::exit(2)
}

fn mops(ops: usize, took: Duration) -> f64 {
    ops as f64 / took.as_secs_f64() / 1e6
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
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
    for i in (1..keys.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        keys.swap(i, (x % (i as u64 + 1)) as usize);
    }
    keys
}

/// Runs `op` over `keys`, split into `threads` contiguous chunks on as many threads; returns the
/// CPU time the threads used together (wall time where that is not available).
fn timed(threads: u64, keys: &[u64], op: impl Fn(u64) + Sync) -> Duration {
    let chunk = keys.len().div_ceil(threads as usize).max(1);
    let start = Instant::now();
    let cpu: Option<u64> = std::thread::scope(|s| {
        let workers: Vec<_> = keys
            .chunks(chunk)
            .map(|part| {
                let op = &op;
                s.spawn(move || {
                    let before = thread_cpu_ns();
                    part.iter().for_each(|&k| op(k));
                    Some(thread_cpu_ns()? - before?)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    match cpu {
        Some(ns) => Duration::from_nanos(ns),
        None => start.elapsed(),
    }
}

/// Nanoseconds the calling thread has spent on a CPU (Linux), if known.
fn thread_cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}
