//! Criterion benchmarks of the bulk operations against their one-by-one equivalents: bulk load of
//! sorted keys vs single inserts, `insert_batch` of random and clustered keys vs inserts, and
//! `get_many` vs gets. `cargo bench --bench bulk`.
//!
//! Batch benchmarks start from a tree of 100k keys spaced 16 apart, rebuilt for every batch (not
//! timed) so that each batch inserts fresh keys. `examples/bulk.rs` prints the same comparisons at
//! 1M keys as plain medians.
// `clippy.toml`'s atomics rule is for the crate's `src/`: tests and tools use std's atomics.
#![allow(clippy::disallowed_types)]

use std::hint::black_box;

use bwtree::BwTree;
use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};

const BASE_KEYS: u64 = 100_000;

fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

fn spaced_tree() -> BwTree<u64, u64> {
    BwTree::from_sorted_iter((0..BASE_KEYS).map(|i| (i * 16, i))).expect("sorted input")
}

fn load(c: &mut Criterion) {
    let mut group = c.benchmark_group("load_sorted");
    group.sample_size(10);
    for n in [100_000u64, 1_000_000] {
        group.bench_with_input(BenchmarkId::new("from_sorted_iter", n), &n, |b, &n| {
            b.iter(|| BwTree::from_sorted_iter((0..n).map(|k| (k, k))).expect("sorted input"));
        });
        group.bench_with_input(BenchmarkId::new("insert_one_by_one", n), &n, |b, &n| {
            b.iter(|| {
                let tree = BwTree::new();
                for k in 0..n {
                    tree.insert(k, k);
                }
                tree
            });
        });
    }
    group.finish();
}

fn batches(c: &mut Criterion) {
    let mut group = c.benchmark_group("insert_batch");
    group.sample_size(20);
    for size in [1_000u64, 10_000] {
        let mut next = xorshift(size);
        let random: Vec<(u64, u64)> = (0..size).map(|i| (next() % (BASE_KEYS * 16), i)).collect();
        let start = BASE_KEYS * 8 + 1;
        let clustered: Vec<(u64, u64)> = (0..size).map(|i| (start + 3 * i, i)).collect();
        for (shape, pairs) in [("random", &random), ("clustered", &clustered)] {
            group.bench_with_input(
                BenchmarkId::new(format!("batch_{shape}"), size),
                pairs,
                |b, pairs| {
                    b.iter_batched(
                        spaced_tree,
                        |tree| {
                            black_box(tree.insert_batch(pairs.iter().copied()));
                            tree
                        },
                        BatchSize::LargeInput,
                    );
                },
            );
            group.bench_with_input(
                BenchmarkId::new(format!("one_by_one_{shape}"), size),
                pairs,
                |b, pairs| {
                    b.iter_batched(
                        spaced_tree,
                        |tree| {
                            for &(k, v) in pairs.iter() {
                                black_box(tree.insert(k, v));
                            }
                            tree
                        },
                        BatchSize::LargeInput,
                    );
                },
            );
        }
    }
    group.finish();
}

fn multi_get(c: &mut Criterion) {
    let tree = spaced_tree();
    let mut next = xorshift(99);
    let keys: Vec<u64> = (0..10_000).map(|_| (next() % BASE_KEYS) * 16).collect();
    let mut group = c.benchmark_group("get_10k_random");
    group.bench_function("get_many", |b| b.iter(|| black_box(tree.get_many(&keys))));
    group.bench_function("gets", |b| {
        b.iter(|| keys.iter().map(|k| tree.get(k)).collect::<Vec<_>>())
    });
    group.finish();
}

criterion_group!(benches, load, batches, multi_get);
criterion_main!(benches);
