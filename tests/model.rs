//! Sequential model test: random operation sequences on a `BwTree` and on `std::collections::BTreeMap`,
//! compared operation by operation, with pages small enough that splits and consolidations happen
//! every few operations.
// `clippy.toml`'s atomics rule is for the crate's `src/`: tests and tools use std's atomics.
#![allow(clippy::disallowed_types)]

use std::collections::BTreeMap;
use std::ops::Bound;

use bwtree::{BwTree, Config};
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};

mod support {
    pub mod bounds;
    pub mod rng;
}

use support::bounds::{self, arbitrary_bound};
use support::rng::Rng;

/// Keys are drawn from a small domain so that operations collide, plus the extreme values.
#[derive(Clone, Copy, Debug)]
struct Key(u64);

impl Arbitrary for Key {
    fn arbitrary(g: &mut Gen) -> Self {
        let domain = *g.choose(&[16u64, 64, 512]).unwrap();
        match u8::arbitrary(g) % 32 {
            0 => Key(0),
            1 => Key(u64::MAX),
            2 => Key(u64::MAX - 1),
            _ => Key(u64::arbitrary(g) % domain),
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        Box::new(self.0.shrink().map(Key))
    }
}

#[derive(Clone, Debug)]
enum Op {
    Insert(Key, u64),
    Get(Key),
    Remove(Key),
    Contains(Key),
    Range(Bound<u64>, Bound<u64>),
    RangeRev(Bound<u64>, Bound<u64>),
    /// Alternates next() and next_back() on one iterator.
    RangeBoth(Bound<u64>, Bound<u64>),
    /// `scan_into` with a limit, appending to a non-empty vector.
    ScanInto(Bound<u64>, Bound<u64>, usize),
    Len,
}

fn bound(g: &mut Gen) -> Bound<u64> {
    arbitrary_bound(g, |g| Key::arbitrary(g).0)
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Self {
        match u8::arbitrary(g) % 21 {
            19 => Op::ScanInto(bound(g), bound(g), usize::arbitrary(g) % 300),
            0..=7 => Op::Insert(Key::arbitrary(g), u64::arbitrary(g)),
            8..=10 => Op::Get(Key::arbitrary(g)),
            11..=14 => Op::Remove(Key::arbitrary(g)),
            15 => Op::Contains(Key::arbitrary(g)),
            16 => Op::Range(bound(g), bound(g)),
            17 => Op::RangeRev(bound(g), bound(g)),
            18 => Op::RangeBoth(bound(g), bound(g)),
            _ => Op::Len,
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        match self.clone() {
            Op::Insert(k, v) => Box::new(k.shrink().map(move |k| Op::Insert(k, v))),
            Op::Get(k) => Box::new(k.shrink().map(Op::Get)),
            Op::Remove(k) => Box::new(k.shrink().map(Op::Remove)),
            _ => quickcheck::empty_shrinker(),
        }
    }
}

/// BTreeMap panics on inverted ranges; the tree returns nothing. Model that.
fn model_range(model: &BTreeMap<u64, u64>, lo: Bound<u64>, hi: Bound<u64>) -> Vec<(u64, u64)> {
    bounds::model_range(model, lo.as_ref(), hi.as_ref())
        .map(|(k, v)| (*k, *v))
        .collect()
}

fn run(config: Config, ops: Vec<Op>) -> TestResult {
    let tree = BwTree::with_config(config).unwrap();
    let mut model = BTreeMap::new();
    for (i, op) in ops.iter().enumerate() {
        let ok = match op {
            Op::Insert(k, v) => tree.insert(k.0, *v) == model.insert(k.0, *v),
            Op::Get(k) => tree.get(&k.0) == model.get(&k.0).copied(),
            Op::Remove(k) => tree.remove(&k.0) == model.remove(&k.0),
            Op::Contains(k) => tree.contains_key(&k.0) == model.contains_key(&k.0),
            Op::Range(lo, hi) => {
                tree.range((*lo, *hi)).collect::<Vec<_>>() == model_range(&model, *lo, *hi)
            }
            Op::RangeRev(lo, hi) => {
                let mut want = model_range(&model, *lo, *hi);
                want.reverse();
                tree.range((*lo, *hi)).rev().collect::<Vec<_>>() == want
            }
            Op::ScanInto(lo, hi, limit) => {
                let mut want = vec![(7, 7)];
                want.extend(model_range(&model, *lo, *hi).into_iter().take(*limit));
                let mut got = vec![(7, 7)];
                let n = tree.scan_into(lo.as_ref(), hi.as_ref(), *limit, &mut got);
                n == want.len() - 1 && got == want
            }
            Op::RangeBoth(lo, hi) => {
                let want = model_range(&model, *lo, *hi);
                let mut iter = tree.range((*lo, *hi));
                let (mut front, mut back) = (Vec::new(), Vec::new());
                let mut from_front = true;
                loop {
                    let item = if from_front {
                        iter.next()
                    } else {
                        iter.next_back()
                    };
                    match item {
                        Some(item) if from_front => front.push(item),
                        Some(item) => back.push(item),
                        None => break,
                    }
                    from_front = !from_front;
                }
                back.reverse();
                front.extend(back);
                // Fused: once exhausted, stays exhausted.
                front == want && iter.next().is_none() && iter.next_back().is_none()
            }
            Op::Len => tree.len() == model.len(),
        };
        if !ok {
            return TestResult::error(format!("op #{i} {op:?} disagrees with the model"));
        }
    }
    if let Err(violation) = tree.check_invariants() {
        return TestResult::error(violation.to_string());
    }
    let all: Vec<_> = tree.iter().collect();
    let want: Vec<_> = model.into_iter().collect();
    TestResult::from_bool(all == want)
}

#[test]
fn model_tiny_pages() {
    fn prop(ops: Vec<Op>) -> TestResult {
        run(Config::tiny(), ops)
    }
    QuickCheck::new()
        .rng(Gen::new(400))
        .tests(300)
        .quickcheck(prop as fn(Vec<Op>) -> TestResult);
}

#[test]
fn model_smallest_legal_pages() {
    fn prop(ops: Vec<Op>) -> TestResult {
        run(
            Config {
                leaf_capacity: 2,
                inner_capacity: 3,
                leaf_chain_threshold: 1,
                inner_chain_threshold: 1,
                leaf_merge_threshold: 1,
                inner_merge_threshold: 1,
                ..Config::default()
            },
            ops,
        )
    }
    QuickCheck::new()
        .rng(Gen::new(400))
        .tests(300)
        .quickcheck(prop as fn(Vec<Op>) -> TestResult);
}

#[test]
fn model_default_config() {
    fn prop(ops: Vec<Op>) -> TestResult {
        run(Config::default(), ops)
    }
    QuickCheck::new()
        .rng(Gen::new(1000))
        .tests(100)
        .quickcheck(prop as fn(Vec<Op>) -> TestResult);
}

#[test]
fn model_background_mode_without_thread() {
    // Background mode with no maintenance thread: pages still stay bounded by the hard limits.
    fn prop(ops: Vec<Op>) -> TestResult {
        run(
            Config {
                maintenance: bwtree::Maintenance::Background,
                ..Config::tiny()
            },
            ops,
        )
    }
    QuickCheck::new()
        .rng(Gen::new(400))
        .tests(100)
        .quickcheck(prop as fn(Vec<Op>) -> TestResult);
}

/// A long deterministic run that grows a deep tree and empties it again.
#[test]
fn grow_and_shrink_against_model() {
    let tree = BwTree::with_config(Config::tiny()).unwrap();
    let mut model = BTreeMap::new();
    let mut rng = Rng::new(0x2545_f491_4f6c_dd1d);
    for i in 0..60_000u64 {
        let x = rng.next_u64();
        let key = x % 20_000;
        if i < 40_000 || x % 4 == 0 {
            assert_eq!(tree.insert(key, i), model.insert(key, i));
        } else {
            assert_eq!(tree.remove(&key), model.remove(&key));
        }
    }
    tree.check_invariants().unwrap();
    assert!(tree.height() > 4, "tiny pages must give a deep tree");
    assert!(tree.iter().eq(model.iter().map(|(k, v)| (*k, *v))));
    for key in model.keys().copied().collect::<Vec<_>>() {
        assert_eq!(tree.remove(&key), model.remove(&key));
    }
    assert!(tree.is_empty());
    assert_eq!(tree.len(), 0);
    tree.check_invariants().unwrap();
}
