//! Panic safety: a key's or value's `Clone` that panics at any call site inside the tree — an
//! insert's or remove's returned value, a consolidation, a split, a merge, a root grow or collapse,
//! a batch, a maintenance pass — leaves every other key reachable at once, nothing leaked or freed
//! twice, and a tree that keeps working (the promise on `BwTree`, section *Panics*).
//!
//! Each run arms the `n`-th clone from some point on to panic and drives a single-threaded workload
//! on tiny pages (structure modifications at almost every step) against a model. After the panic
//! the operation that panicked may or may not have taken effect: its keys are read back and the
//! model follows the tree. Everything else must agree with the model immediately; after a
//! maintenance pass (which finishes a modification the panic interrupted, as the next thread to
//! meet it would) `check_invariants` must hold; when the tree and its collector are dropped, every
//! key and value ever made must have been dropped exactly once.

// `clippy.toml`'s atomics rule is for the crate's `src/`: tests and tools use std's atomics.
#![allow(clippy::disallowed_types)]

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use bwtree::epoch::Collector;
use bwtree::{BwTree, Config};

mod support {
    pub mod counting;
    pub mod rng;
    pub mod tracked;
}

use support::counting::flush;
use support::rng::Rng;
use support::tracked::{Counters, Tracked};

type Tree = BwTree<Tracked, Tracked>;

/// What a step of the workload does.
#[derive(Clone, Debug)]
enum Step {
    Insert(u64, u64),
    Remove(u64),
    Get(u64),
    InsertBatch(Vec<(u64, u64)>),
    RemoveBatch(Vec<u64>),
    Maintenance,
}

impl Step {
    fn random(rng: &mut Rng, keys: u64) -> Step {
        match rng.below(20) {
            0..=8 => Step::Insert(rng.below(keys), rng.next_u64() % 1_000),
            9..=14 => Step::Remove(rng.below(keys)),
            15 | 16 => Step::Get(rng.below(keys)),
            17 => {
                let start = rng.below(keys);
                Step::InsertBatch(
                    (start..start + 1 + rng.below(12))
                        .map(|k| (k % keys, k))
                        .collect(),
                )
            }
            18 => {
                let start = rng.below(keys);
                Step::RemoveBatch(
                    (start..start + 1 + rng.below(12))
                        .map(|k| k % keys)
                        .collect(),
                )
            }
            _ => Step::Maintenance,
        }
    }

    /// The keys whose state is unknown if the step panics.
    fn keys(&self) -> Vec<u64> {
        match self {
            Step::Insert(k, _) | Step::Remove(k) | Step::Get(k) => vec![*k],
            Step::InsertBatch(pairs) => pairs.iter().map(|(k, _)| *k).collect(),
            Step::RemoveBatch(keys) => keys.clone(),
            Step::Maintenance => Vec::new(),
        }
    }
}

/// The counters of one run's keys and values (leaked: the tree's collector may drop them late).
struct Run {
    keys: &'static Counters,
    values: &'static Counters,
}

impl Run {
    fn new() -> Self {
        Run {
            keys: Box::leak(Box::new(Counters::new())),
            values: Box::leak(Box::new(Counters::new())),
        }
    }

    fn key(&self, k: u64) -> Tracked {
        Tracked::new(k, self.keys)
    }

    fn value(&self, v: u64) -> Tracked {
        Tracked::new(v, self.values)
    }

    /// Applies `step` to the tree and, if it returns, to the model, checking what it returned.
    fn apply(&self, tree: &Tree, model: &mut BTreeMap<u64, u64>, step: &Step) {
        match step {
            Step::Insert(k, v) => {
                let old = tree.insert(self.key(*k), self.value(*v)).map(|v| v.value());
                assert_eq!(old, model.insert(*k, *v), "insert {k}");
            }
            Step::Remove(k) => {
                let old = tree.remove(&self.key(*k)).map(|v| v.value());
                assert_eq!(old, model.remove(k), "remove {k}");
            }
            Step::Get(k) => {
                let got = tree.get(&self.key(*k)).map(|v| v.value());
                assert_eq!(got, model.get(k).copied(), "get {k}");
            }
            Step::InsertBatch(pairs) => {
                let _ = tree.insert_batch(pairs.iter().map(|&(k, v)| (self.key(k), self.value(v))));
                for &(k, v) in pairs {
                    model.insert(k, v);
                }
            }
            Step::RemoveBatch(keys) => {
                let _ = tree.remove_batch(keys.iter().map(|&k| self.key(k)));
                for k in keys {
                    model.remove(k);
                }
            }
            Step::Maintenance => {
                tree.run_maintenance();
            }
        }
    }
}

/// Every key of `model` is found by `get` and by a full scan, and nothing else is.
fn assert_agrees(tree: &Tree, run: &Run, model: &BTreeMap<u64, u64>, context: &str) {
    for (&k, &v) in model {
        let got = tree.get(&run.key(k)).map(|v| v.value());
        assert_eq!(got, Some(v), "{context}: key {k}");
    }
    let scanned: Vec<(u64, u64)> = tree.iter().map(|(k, v)| (k.value(), v.value())).collect();
    let want: Vec<(u64, u64)> = model.iter().map(|(k, v)| (*k, *v)).collect();
    assert_eq!(scanned, want, "{context}: full scan");
}

/// Which user call panics.
#[derive(Clone, Copy, Debug)]
enum Arm {
    KeyClone,
    ValueClone,
    KeyCompare,
}

/// One run: 300 steps, then the `n`-th call `arm` names panics, then 300 steps more.
/// Returns whether the armed clone was reached.
fn run_once(seed: u64, n: usize, arm: Arm, config: Config) -> bool {
    let run = Run::new();
    let collector = Collector::new();
    let mut panicked = false;
    {
        let tree: Tree = BwTree::with_collector(config, collector.clone()).unwrap();
        let mut model = BTreeMap::new();
        let mut rng = Rng::new(seed);
        let key_space = 200;
        for _ in 0..300 {
            let step = Step::random(&mut rng, key_space);
            run.apply(&tree, &mut model, &step);
        }
        match arm {
            Arm::KeyClone => run.keys.panic_on_clone(n),
            Arm::ValueClone => run.values.panic_on_clone(n),
            Arm::KeyCompare => run.keys.panic_on_compare(n),
        }
        for i in 0..300 {
            let step = Step::random(&mut rng, key_space);
            let outcome = catch_unwind(AssertUnwindSafe(|| run.apply(&tree, &mut model, &step)));
            let Err(panic) = outcome else { continue };
            SITES.with(|sites| sites.borrow_mut().push(LAST.with(|l| l.take())));
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("");
            assert!(
                message.starts_with("Tracked: "),
                "step {i} ({step:?}) panicked for another reason: {message}"
            );
            assert!(!panicked, "the armed call panicked twice");
            panicked = true;
            // The step may or may not have taken effect: the model follows the tree on its keys.
            for k in step.keys() {
                match tree.get(&run.key(k)) {
                    Some(v) => model.insert(k, v.value()),
                    None => model.remove(&k),
                };
            }
            let context = format!("seed {seed:#x}, clone {n}, after {step:?}");
            assert_agrees(&tree, &run, &model, &context);
            tree.run_maintenance();
            if let Err(violation) = tree.check_invariants() {
                panic!("{context}: {violation}");
            }
            // No page the panic interrupted stays behind in the mapping table.
            let shape = tree.shape();
            assert_eq!(
                shape.mapped_pages,
                shape.leaves + shape.inner_pages,
                "{context}: pages left in the mapping table"
            );
        }
        assert_agrees(&tree, &run, &model, "at the end");
        tree.check_invariants().unwrap();
    }
    // The tree is gone; its collector frees what it retired.
    flush(&collector);
    drop(collector);
    assert_eq!(run.keys.live(), 0, "keys leaked or freed twice (clone {n})");
    assert_eq!(
        run.values.live(),
        0,
        "values leaked or freed twice (clone {n})"
    );
    panicked
}

thread_local! {
    /// The tree's functions on the stack of the last armed panic on this thread.
    static LAST: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    /// Every such list this thread has seen.
    static SITES: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The protocol steps a panic may interrupt, as named in backtraces.
const STEPS: [&str; 6] = [
    "consolidate",
    "split_into",
    "complete_split",
    "decide_removal",
    "complete_merge",
    "post_group",
];

/// Records which protocol steps an armed panic interrupted (from a backtrace); other panics go to
/// the default hook, so failures still print.
fn install_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let armed = info
                .payload()
                .downcast_ref::<String>()
                .is_some_and(|m| m.starts_with("Tracked: "));
            if !armed {
                return default(info);
            }
            let trace = std::backtrace::Backtrace::force_capture().to_string();
            let steps: Vec<&str> = STEPS.into_iter().filter(|s| trace.contains(s)).collect();
            LAST.with(|l| *l.borrow_mut() = steps.join(","));
        }));
    });
}

/// Sweeps the panicking clone over the first `calls` clone sites of the workload.
/// `must_interrupt`: the protocol steps the sweep must have interrupted at least once.
fn sweep(arm: Arm, config: Config, seed: u64, calls: usize, must_interrupt: &[&str]) {
    install_hook();
    let mut reached = 0;
    for n in 1..=calls {
        // Comparisons are many per operation: spread the armed ones over the workload (the
        // stride and count reach every step named below for each of several seeds tried).
        let at = match arm {
            Arm::KeyCompare => 1 + (n - 1) * 47,
            _ => n,
        };
        if run_once(seed ^ n as u64, at, arm, config.clone()) {
            reached += 1;
        }
    }
    // The sweep is only a test if the armed clones are actually reached.
    assert!(
        reached * 2 > calls,
        "only {reached} of {calls} armed clones were reached"
    );
    // ... and if they interrupt the protocol's steps, not only the clones of returned values.
    let seen = SITES.with(|sites| sites.borrow().join(","));
    for step in must_interrupt {
        assert!(
            seen.contains(step),
            "no armed panic interrupted `{step}`: {seen}"
        );
    }
    SITES.with(|sites| sites.borrow_mut().clear());
}

#[test]
fn a_panicking_key_clone_anywhere_leaves_the_tree_consistent() {
    // Keys are cloned for the separators and bounds of new pages and index terms.
    sweep(Arm::KeyClone, Config::tiny(), 0x5eed_0001, 120, &STEPS);
}

#[test]
fn a_panicking_value_clone_anywhere_leaves_the_tree_consistent() {
    // Values are cloned only when pages are rebuilt, and for returned values.
    sweep(
        Arm::ValueClone,
        Config::tiny(),
        0x5eed_0002,
        120,
        &["consolidate", "split_into", "post_group"],
    );
}

#[test]
fn panics_in_larger_pages_and_background_mode() {
    let pages = Config {
        leaf_capacity: 8,
        inner_capacity: 8,
        leaf_merge_threshold: 4,
        inner_merge_threshold: 4,
        ..Config::tiny()
    };
    sweep(
        Arm::KeyClone,
        pages.clone(),
        0x5eed_0003,
        60,
        &["consolidate", "split_into"],
    );
    let background = Config {
        maintenance: bwtree::Maintenance::Background,
        ..pages
    };
    sweep(
        Arm::ValueClone,
        background,
        0x5eed_0004,
        60,
        &["consolidate"],
    );
}

#[test]
fn a_panicking_key_comparison_anywhere_leaves_the_tree_consistent() {
    // Comparisons run in every search, in every page rebuild (sorting a chain's deltas) and in the
    // structure modifications' routing checks.
    sweep(
        Arm::KeyCompare,
        Config::tiny(),
        0x5eed_0005,
        240,
        &[
            "consolidate",
            "split_into",
            "complete_split",
            "decide_removal",
        ],
    );
}

#[test]
fn a_panic_in_the_background_maintenance_thread_reaches_its_handle() {
    for resume in [false, true] {
        let run = Run::new();
        let config = Config {
            maintenance: bwtree::Maintenance::Background,
            ..Config::tiny()
        };
        let tree = std::sync::Arc::new(Tree::with_config(config).unwrap());
        let mut model = BTreeMap::new();
        // Chains and pages past the thresholds, below the hard limits: work for the thread.
        for k in 0..12 {
            run.apply(&tree, &mut model, &Step::Insert(k, k));
        }
        run.keys.panic_on_clone(1);
        run.values.panic_on_clone(1);
        let handle = tree.start_maintenance(std::time::Duration::from_millis(1));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !handle.is_finished() {
            assert!(
                std::time::Instant::now() < deadline,
                "the maintenance thread never met the panicking clone"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let panic = if resume {
            catch_unwind(AssertUnwindSafe(|| handle.stop())).expect_err("stop() resumes the panic")
        } else {
            handle.try_stop().expect_err("try_stop() returns the panic")
        };
        let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(message.starts_with("Tracked: clone"), "{message}");
        // Whichever of the two armed clones the thread did not meet is disarmed.
        run.keys.panic_on_clone(0);
        run.values.panic_on_clone(0);
        // The tree is consistent and goes on working, with maintenance inline.
        assert_agrees(&tree, &run, &model, "after the thread's panic");
        for k in 12..40 {
            run.apply(&tree, &mut model, &Step::Insert(k, k));
        }
        assert_agrees(&tree, &run, &model, "after more inserts");
        tree.run_maintenance();
        tree.check_invariants().unwrap();
    }
}

#[test]
fn the_tree_is_unwind_safe_when_its_keys_and_values_are() {
    fn unwind_safe<T: std::panic::UnwindSafe + std::panic::RefUnwindSafe>() {}
    unwind_safe::<BwTree<u64, u64>>();
    unwind_safe::<BwTree<String, Vec<u8>>>();
    // And so a shared tree can be used across `catch_unwind` without `AssertUnwindSafe`.
    let tree = BwTree::<u64, u64>::new();
    let result = catch_unwind(|| {
        tree.insert(1, 1);
        panic!("the caller's own panic");
    });
    assert!(result.is_err());
    assert_eq!(tree.get(&1), Some(1));
}
