//! Checkers shared by the integration tests: a linearizability checker for point operations and
//! batch calls ([`lincheck`]), a consistency checker for range scans ([`scancheck`]), and small
//! reference and deliberately broken maps that show what the checkers accept and reject ([`maps`]).
//!
//! Every checker works on *histories*: each recorded operation carries an invocation and a response
//! timestamp read from one shared [`Clock`]. Nothing here depends on the Bw-tree's internals; any
//! [`bwtree::ConcurrentMap<u64, u64>`] can be recorded and checked.
//!
//! Each test file includes this module with `mod support;` and uses only part of it, hence the
//! module-wide `dead_code` allowance.
#![allow(dead_code)]

pub mod lincheck;
pub mod maps;
pub mod scancheck;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// The one logical clock that stamps every recorded operation of a history.
///
/// A recorder ticks it immediately before invoking an operation and immediately after the operation
/// returns. The ticks are `SeqCst` read-modify-writes of a single atomic, so they are totally ordered
/// and that order is consistent with happens-before: if operation A's response tick is smaller than
/// operation B's invocation tick, B's invocation tick read (through the chain of read-modify-writes
/// in between) the value A's response tick wrote, so A happens-before B and a linearizable map must
/// order A before B. Hence "A responded before B was invoked" in timestamps is a sound real-time order.
///
/// Timestamp 0 is never handed out: it stands for "before the history started" (the preload).
#[derive(Debug)]
pub struct Clock(AtomicU64);

impl Clock {
    /// A clock whose first tick is 1.
    pub fn new() -> Self {
        Clock(AtomicU64::new(1))
    }

    /// The next timestamp (strictly greater than every timestamp handed out before it).
    pub fn tick(&self) -> u64 {
        // SeqCst: see the type's documentation; the total order of ticks is the real-time order the
        // checkers rely on.
        self.0.fetch_add(1, Ordering::SeqCst)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// A start barrier that spins instead of sleeping, so that the threads it releases start within
/// nanoseconds of each other rather than one scheduler wake-up after another (short operation
/// lists would otherwise finish before the next thread is even awake).
///
/// Waiters spin with a CPU hint and yield now and then, so that on a machine with fewer cores than
/// threads the ones not yet arrived still get to run.
#[derive(Debug)]
pub struct StartGate {
    expected: usize,
    arrived: AtomicUsize,
}

impl StartGate {
    /// A gate that opens when `threads` threads have called [`StartGate::wait`].
    pub fn new(threads: usize) -> Self {
        StartGate {
            expected: threads,
            arrived: AtomicUsize::new(0),
        }
    }

    /// Arrives at the gate and returns once every expected thread has arrived.
    pub fn wait(&self) {
        // AcqRel/Acquire: everything each thread did before arriving happens-before everything any
        // thread does after passing (the gate is also a synchronisation point).
        self.arrived.fetch_add(1, Ordering::AcqRel);
        let mut spins = 0u32;
        while self.arrived.load(Ordering::Acquire) < self.expected {
            spins = spins.wrapping_add(1);
            if spins % 64 == 0 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }
}

/// A small, fast, seedable pseudo-random generator (xorshift64*) for workload threads, so that they
/// need neither a shared generator nor one more dependency.
#[derive(Clone, Debug)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator seeded with `seed` (any value; zero is remapped).
    pub fn new(seed: u64) -> Self {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A pseudo-random number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// A seed for a test run: the value of the environment variable `name` if it is set and parses,
/// otherwise one derived from the current time. Tests print it on failure so a run can be repeated
/// (as far as thread scheduling allows).
pub fn seed_from_env(name: &str) -> u64 {
    if let Some(seed) = std::env::var(name).ok().and_then(|s| s.parse().ok()) {
        return seed;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    now.as_secs() ^ u64::from(now.subsec_nanos()).rotate_left(32)
}

/// A count from the environment variable `name`, or `default` if it is unset or does not parse. Never
/// below `default`: the variable can only raise the work a test does.
pub fn count_from_env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(default, |n: u64| n.max(default))
}
