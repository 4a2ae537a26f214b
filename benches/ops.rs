//! Single-operation latency on a pre-built map of 1M random u64 keys, for the Bw-tree and the
//! baselines: `get` of a present key (hit) and of an absent one (miss), `insert` of a new key,
//! `remove` of a present key, and a scan of 100 pairs.
//!
//! ```text
//! cargo bench                      # everything
//! cargo bench -- get_hit/bwtree    # one benchmark (criterion's filter)
//! ```
//!
//! Each operation runs on one thread against a map that stays at about 1M keys: inserts are undone
//! and removes are refilled outside the timed part (criterion's `iter_batched` setup). Keys are
//! chosen in a scrambled order over the whole key set, so lookups miss the caches as they would in
//! a large index. Throughput under concurrency is the lab's job (`cargo run --release --example lab`).
// `clippy.toml`'s atomics rule is for the crate's `src/`: tests and tools use std's atomics.
#![allow(clippy::disallowed_types)]

use std::collections::VecDeque;
use std::hint::black_box;
use std::ops::Bound;
use std::time::Duration;

use bwtree::baselines::{CoarseLockMap, LockCouplingBTree, OlcBTree};
use bwtree::{BwTree, ConcurrentMap};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

/// Keys in each pre-built map.
const KEYS: u64 = 1_000_000;

/// Fresh keys inserted by the insert benchmark and not yet removed, at most this many.
const PENDING: usize = 4_096;

/// Iterations per `iter_batched` batch (below `PENDING`, so setup only removes inserted keys).
const BATCH: u64 = 1_024;

/// The splitmix64 finalizer, a bijection: distinct inputs give distinct, well-spread keys.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The `i`-th preloaded key (`i < KEYS`).
fn present(i: u64) -> u64 {
    mix(i % KEYS)
}

/// A key that is never preloaded (its pre-image is at least `2^62 > KEYS`).
fn absent(i: u64) -> u64 {
    mix((1 << 62) + i)
}

/// The maps measured, each loaded with `KEYS` keys.
fn maps() -> Vec<Box<dyn ConcurrentMap<u64, u64>>> {
    let maps: Vec<Box<dyn ConcurrentMap<u64, u64>>> = vec![
        Box::new(BwTree::<u64, u64>::new()),
        Box::new(OlcBTree::new()),
        Box::new(LockCouplingBTree::<u64, u64>::new()),
        Box::new(CoarseLockMap::<u64, u64>::new()),
    ];
    for map in &maps {
        for i in 0..KEYS {
            map.insert(present(i), i);
        }
    }
    maps
}

/// A cursor that visits indices in a scrambled order (a stride coprime to `KEYS`).
struct Cursor(u64);

impl Cursor {
    fn next(&mut self) -> u64 {
        // 618_033 is coprime to 10^6, so the sequence visits every index before repeating.
        self.0 = (self.0 + 618_033) % KEYS;
        self.0
    }
}

fn bench(c: &mut Criterion) {
    let maps = maps();
    for map in &maps {
        let map = &**map;
        let name = map.name();

        let mut group = c.benchmark_group("get_hit");
        let mut cursor = Cursor(0);
        group.bench_function(name, |b| {
            b.iter(|| black_box(map.get(&present(cursor.next()))))
        });
        group.finish();

        let mut group = c.benchmark_group("get_miss");
        let mut cursor = Cursor(0);
        group.bench_function(name, |b| {
            b.iter(|| black_box(map.get(&absent(cursor.next()))))
        });
        group.finish();

        let mut group = c.benchmark_group("insert");
        let mut fresh = 0u64;
        let mut pending = VecDeque::with_capacity(PENDING + 1);
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    // Untimed: keep the map near KEYS keys by removing keys inserted earlier.
                    while pending.len() >= PENDING {
                        let old = pending.pop_front().expect("pending is not empty");
                        map.remove(&old);
                    }
                    fresh += 1;
                    let key = absent(fresh);
                    pending.push_back(key);
                    key
                },
                |key| black_box(map.insert(key, key)),
                BatchSize::NumIterations(BATCH),
            )
        });
        for key in pending.drain(..) {
            map.remove(&key);
        }
        group.finish();

        let mut group = c.benchmark_group("remove");
        let mut fresh = 0u64;
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    // Untimed: insert the key the timed part removes, so the map keeps its size.
                    fresh += 1;
                    let key = absent(fresh);
                    map.insert(key, key);
                    key
                },
                |key| black_box(map.remove(&key)),
                BatchSize::NumIterations(BATCH),
            )
        });
        group.finish();

        let mut group = c.benchmark_group("scan100");
        let mut cursor = Cursor(0);
        let mut out = Vec::with_capacity(100);
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                let start = present(cursor.next());
                black_box(map.scan(Bound::Included(&start), Bound::Unbounded, 100, &mut out))
            })
        });
        group.finish();
    }
}

fn config() -> Criterion {
    // Short windows: 5 operations × 4 maps stay around a minute and a half.
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench
}
criterion_main!(benches);
