//! What every recorded history shares: the one logical [`Clock`] that stamps its operations, and a
//! spinning [`StartGate`] that starts the recording threads together. Used by the linearizability
//! checker (`lincheck.rs`), the scan-consistency checker (`scancheck.rs`) and their workloads.

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
