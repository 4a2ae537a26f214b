//! A key type whose `Ord` is not a total order is a logic error of the caller, as it is for std's
//! `BTreeMap`: results are unspecified (wrong answers, a panic), but every call must end — it
//! returns or panics — and nothing may be freed twice or leaked. The protocol's retry loops are
//! bounded for this (`src/protocol/progress.rs`); a walk that advances by keys checks that they
//! increase.
//!
//! Each test drives a tree of [`Chaos`] keys through every kind of call, each call under
//! `catch_unwind`, on a worker thread watched by a watchdog that fails the test when one call runs
//! for longer than [`stall()`] (a hang detector sized for a loaded 2-core machine, not a timing
//! assertion). Afterwards the tree is dropped, its collector flushed, and every key and value ever
//! made must have been dropped exactly once.
//!
//! The orders: keys loaded in one order and then compared in the reverse one (a flipped order);
//! an order that is random per comparison; a non-transitive order (three classes in a cycle).
//!
//! Environment (optional): `BWTREE_BROKEN_ORD_CALLS`, the calls per configuration (default 400);
//! `BWTREE_BROKEN_ORD_SEED`, the seed (default: from the clock, printed with each outcome).
#![cfg(not(loom))]
// `clippy.toml`'s atomics rule is for the crate's `src/`: tests and tools use std's atomics.
#![allow(clippy::disallowed_types)]

use std::cmp::Ordering as CmpOrdering;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bwtree::epoch::Collector;
use bwtree::{BwTree, Config};

mod support {
    pub mod counting;
    pub mod env;
    pub mod rng;
}
use support::counting::flush;
use support::env::{count_from_env, seed_from_env};
use support::rng::Rng;

/// How long one call may run before the watchdog calls it a hang. A bounded loop gives up after
/// `MAX_ATTEMPTS` (100,000) attempts, each a descent of a small tree: well under a second on an
/// idle machine.
/// `BWTREE_BROKEN_ORD_STALL_SECS` overrides it (a long one leaves time to attach a debugger).
fn stall() -> Duration {
    Duration::from_secs(count_from_env("BWTREE_BROKEN_ORD_STALL_SECS", 30))
}

/// How the keys of one test compare. Plain std atomics, `Relaxed`: the worker thread is the only
/// one that compares keys; the test thread reads `live` after joining it.
struct Order {
    /// One of the `NORMAL`, `REVERSED`, `RANDOM`, `CYCLE` constants.
    mode: AtomicU8,
    /// The xorshift state of `RANDOM`.
    state: AtomicU64,
    /// Keys and values alive: created plus cloned minus dropped.
    live: AtomicIsize,
}

const NORMAL: u8 = 0;
const REVERSED: u8 = 1;
const RANDOM: u8 = 2;
const CYCLE: u8 = 3;

impl Order {
    fn new(mode: u8, seed: u64) -> &'static Order {
        Box::leak(Box::new(Order {
            mode: AtomicU8::new(mode),
            state: AtomicU64::new(seed | 1),
            live: AtomicIsize::new(0),
        }))
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::Relaxed);
    }

    fn random(&self) -> u64 {
        let mut x = self.state.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state.store(x, Ordering::Relaxed);
        x
    }
}

/// A `u64` key (or value) compared by its [`Order`], which also counts its live copies.
struct Chaos {
    value: u64,
    order: &'static Order,
}

impl Chaos {
    fn new(value: u64, order: &'static Order) -> Chaos {
        order.live.fetch_add(1, Ordering::Relaxed);
        Chaos { value, order }
    }
}

impl Clone for Chaos {
    fn clone(&self) -> Chaos {
        Chaos::new(self.value, self.order)
    }
}

impl Drop for Chaos {
    fn drop(&mut self) {
        self.order.live.fetch_sub(1, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Chaos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Chaos({})", self.value)
    }
}

impl PartialEq for Chaos {
    fn eq(&self, other: &Chaos) -> bool {
        self.cmp(other) == CmpOrdering::Equal
    }
}

impl Eq for Chaos {}

impl PartialOrd for Chaos {
    fn partial_cmp(&self, other: &Chaos) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl Ord for Chaos {
    fn cmp(&self, other: &Chaos) -> CmpOrdering {
        let (a, b) = (self.value, other.value);
        match self.order.mode.load(Ordering::Relaxed) {
            NORMAL => a.cmp(&b),
            REVERSED => b.cmp(&a),
            RANDOM => match self.order.random() % 3 {
                0 => CmpOrdering::Less,
                1 => CmpOrdering::Equal,
                _ => CmpOrdering::Greater,
            },
            _ => {
                // Rock, paper, scissors between the classes `value % 3`; by value within one.
                let (ca, cb) = (a % 3, b % 3);
                if ca == cb {
                    a.cmp(&b)
                } else if (ca + 1) % 3 == cb {
                    CmpOrdering::Less
                } else {
                    CmpOrdering::Greater
                }
            }
        }
    }
}

type Tree = BwTree<Chaos, Chaos>;

/// What a run saw.
#[derive(Debug, Default)]
struct Outcome {
    /// The seed of the run (`BWTREE_BROKEN_ORD_SEED` minus the configuration's salt repeats it).
    seed: u64,
    calls: u64,
    panics: u64,
    /// The distinct panic messages.
    messages: Vec<String>,
    /// The longest call.
    longest: Duration,
}

/// One call of the public API with a random key (or keys) below `keys`.
fn call(tree: &Tree, rng: &mut Rng, order: &'static Order, keys: u64, kind: &AtomicU64) {
    let key = |rng: &mut Rng| Chaos::new(rng.below(keys), order);
    let which = rng.below(16);
    kind.store(which, Ordering::Relaxed);
    match which {
        0..=4 => {
            let k = key(rng);
            tree.insert(k, Chaos::new(rng.next_u64(), order));
        }
        5..=7 => {
            tree.remove(&key(rng));
        }
        8 | 9 => {
            tree.get(&key(rng));
        }
        10 => {
            let (a, b) = (key(rng), key(rng));
            // A range whose bounds are "out of order" is fine: it is empty or not, by the order.
            let _ = tree.range(a..b).take(64).count();
        }
        11 => {
            let _ = tree.iter().rev().take(64).count();
        }
        12 => {
            let start = rng.below(keys);
            let pairs: Vec<_> = (start..start + 1 + rng.below(24))
                .map(|k| (Chaos::new(k % keys, order), Chaos::new(k, order)))
                .collect();
            let _ = tree.insert_batch(pairs);
        }
        13 => {
            let start = rng.below(keys);
            let keys: Vec<_> = (start..start + 1 + rng.below(24))
                .map(|k| Chaos::new(k % keys, order))
                .collect();
            let _ = tree.remove_batch(keys);
        }
        14 => {
            let _ = tree.len();
        }
        _ => {
            tree.run_maintenance();
        }
    }
}

thread_local! {
    /// Set on the worker threads, whose panics are expected and counted.
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Where the last quiet panic of this thread was raised, for the outcome's messages.
    static LOCATION: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Keeps the panic hook from printing the expected panics of this thread; every other thread's
/// panics (a failing assertion) are printed as usual.
fn quiet_panics() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if QUIET.with(|q| q.get()) {
                let at = info.location().map(|l| l.to_string()).unwrap_or_default();
                LOCATION.with(|l| *l.borrow_mut() = at);
            } else {
                default(info);
            }
        }));
    });
    QUIET.with(|q| q.set(true));
}

/// Loads `keys` keys in the normal order, switches `order` to `mode`, makes `calls` random calls,
/// then drops the tree and checks the live count. Fails if a call runs past [`stall()`].
fn run(mode: u8, config: Config, keys: u64, salt: u64) -> Outcome {
    let seed = seed_from_env("BWTREE_BROKEN_ORD_SEED").wrapping_add(salt);
    let order = Order::new(NORMAL, seed);
    let calls = count_from_env("BWTREE_BROKEN_ORD_CALLS", 400);
    let started = Arc::new(AtomicU64::new(0));
    // The kind of call running (the arm of `call`), for the watchdog's message.
    let kind = Arc::new(AtomicU64::new(0));
    // 0: between calls; otherwise the call's start, in microseconds since `epoch`, plus one.
    let epoch = Instant::now();
    let worker = {
        let started = Arc::clone(&started);
        let kind = Arc::clone(&kind);
        std::thread::spawn(move || {
            let collector = Collector::new();
            let tree: Tree = BwTree::with_collector(config, collector.clone()).unwrap();
            for k in 0..keys {
                tree.insert(Chaos::new(k, order), Chaos::new(k, order));
            }
            order.set(mode);
            let mut rng = Rng::new(seed);
            let mut outcome = Outcome {
                seed,
                ..Outcome::default()
            };
            quiet_panics();
            for _ in 0..calls {
                let t0 = Instant::now();
                started.store((t0 - epoch).as_micros() as u64 + 1, Ordering::Relaxed);
                let result = catch_unwind(AssertUnwindSafe(|| {
                    call(&tree, &mut rng, order, keys, &kind)
                }));
                started.store(0, Ordering::Relaxed);
                outcome.longest = outcome.longest.max(t0.elapsed());
                outcome.calls += 1;
                if let Err(panic) = result {
                    outcome.panics += 1;
                    let message = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_else(|| "(not a string)".to_owned());
                    // The first line names the cause; the rest (a page dump) varies.
                    let first = format!(
                        "{} (at {})",
                        message.lines().next().unwrap_or(""),
                        LOCATION.with(|l| l.borrow().clone())
                    );
                    if !outcome.messages.contains(&first) {
                        outcome.messages.push(first);
                    }
                }
            }
            order.set(NORMAL);
            drop(tree);
            flush(&collector);
            outcome
        })
    };
    while !worker.is_finished() {
        std::thread::sleep(Duration::from_millis(50));
        let since = started.load(Ordering::Relaxed);
        if since != 0 {
            let running = epoch
                .elapsed()
                .saturating_sub(Duration::from_micros(since - 1));
            assert!(
                running < stall(),
                "call kind {} has run for {running:?} under a broken order (mode {mode}, seed \
                 {seed}; BWTREE_BROKEN_ORD_SEED={} repeats it): a hang",
                kind.load(Ordering::Relaxed),
                seed.wrapping_sub(salt),
            );
        }
    }
    let outcome = worker.join().expect("the worker itself does not panic");
    eprintln!("mode {mode}, seed {seed}: {outcome:?}");
    assert_eq!(outcome.calls, calls);
    assert_eq!(
        order.live.load(Ordering::Relaxed),
        0,
        "keys or values leaked (positive) or dropped twice (negative); seed {seed}"
    );
    outcome
}

/// Every panic a broken order causes names the cause (the key type's `Ord`, or, in std's sort,
/// "a total order"), so that a user who meets one knows where to look.
fn assert_panics_name_the_order(outcome: &Outcome) {
    for message in &outcome.messages {
        assert!(
            message.contains("Ord") || message.contains("total order"),
            "a broken order panicked with a message that does not name it: {message} (seed {})",
            outcome.seed
        );
    }
}

#[test]
fn a_flipped_order_never_hangs_a_call() {
    for (seed, config) in [(1, Config::tiny()), (2, Config::default())] {
        let outcome = run(REVERSED, config, 300, seed);
        assert_panics_name_the_order(&outcome);
    }
}

#[test]
fn a_random_order_never_hangs_a_call() {
    for (seed, config) in [(3, Config::tiny()), (4, Config::default())] {
        let outcome = run(RANDOM, config, 300, seed);
        assert_panics_name_the_order(&outcome);
    }
}

#[test]
fn a_non_transitive_order_never_hangs_a_call() {
    for (seed, config) in [(5, Config::tiny()), (6, Config::default())] {
        let outcome = run(CYCLE, config, 300, seed);
        assert_panics_name_the_order(&outcome);
    }
}

/// The std suite's case: a cycle A < B < C < A, `insert_batch([B, C, A])` into {A, B}. Any answer
/// will do; the calls must end and nothing may leak.
#[test]
fn a_three_key_cycle_in_a_batch_ends() {
    let order = Order::new(CYCLE, 7);
    let collector = Collector::new();
    {
        let tree: Tree = BwTree::with_collector(Config::tiny(), collector.clone()).unwrap();
        let key = |v| Chaos::new(v, order);
        tree.insert(key(0), key(0));
        tree.insert(key(1), key(1));
        let _ = tree.insert_batch([(key(1), key(1)), (key(2), key(2)), (key(0), key(0))]);
        let _ = tree.len();
        let _ = tree.iter().count();
        let _ = tree.iter().rev().count();
        tree.run_maintenance();
    }
    flush(&collector);
    assert_eq!(order.live.load(Ordering::Relaxed), 0);
}

/// The negative control of the leak count: a key forgotten on purpose shows as a leak.
#[test]
fn the_live_count_sees_a_leak() {
    let order = Order::new(NORMAL, 8);
    std::mem::forget(Chaos::new(1, order));
    drop(Chaos::new(2, order));
    assert_eq!(order.live.load(Ordering::Relaxed), 1);
}
