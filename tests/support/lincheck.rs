//! A linearizability checker for histories of point operations and batch calls on a
//! `ConcurrentMap<u64, u64>`.
//!
//! # Recording
//! Each thread records its operations with a [`Recorder`]: the shared [`Clock`] is ticked
//! immediately before the call and immediately after it returns, so every [`Operation`] carries an
//! invocation and a response timestamp, and "A responded before B was invoked" is a real-time order
//! that every linearization must respect. The per-thread records are merged into a [`History`]
//! together with the map's initial contents (the preload) for the recorded keys.
//!
//! # Batches
//! A batch call (`insert_batch`, `remove_batch`, `get_many`) is not atomic as a whole: what the
//! Bw-tree promises is that each key's part of it is linearizable on its own (see `bwtree::bulk`).
//! So a batch is recorded as one operation per key, each with the batch's invocation and response
//! timestamps and that key's own result, and the per-key decomposition below checks each of them
//! against the other operations on its key. A key given more than once to one `insert_batch` or
//! `remove_batch` is, as documented, applied in input order at one instant: the last value is
//! stored and each occurrence reports the value the one before it left. It is recorded as *one*
//! operation whose later occurrences are [`Operation::repeats`], applied atomically right after the
//! first (so nothing of another thread may be linearized between them, and each repeat's result is
//! checked against the register too). The answers of `get_many` are independent reads, so every
//! occurrence of a key in it is an operation of its own.
//!
//! # Checking
//! A map is a collection of independent registers, one per key, and linearizability is *local*
//! (Herlihy & Wing, 1990): a history is linearizable if and only if each key's sub-history is. So
//! [`History::check`] splits the history by key and checks each key's register history on its own,
//! with the Wing–Gong search and Lowe's memoization (the algorithm of the Porcupine checker):
//!
//! * the search state is the set of operations linearized so far (a bitset) and the register's value
//!   after them;
//! * the next operation to linearize must be *minimal*: invoked before the earliest response among
//!   the operations not linearized yet (otherwise some unlinearized operation precedes it in real
//!   time); it must also be legal in the current state (`get` and the previous value returned by
//!   `insert`/`remove` must equal the register's value);
//! * a depth-first search tries the minimal operations in invocation order and backtracks on dead
//!   ends; a cache of every (bitset, value) pair already explored prunes orders that reach a
//!   configuration seen before, which keeps the search polynomial in the history length for a
//!   bounded number of threads.
//!
//! # Reporting
//! When a key's history is not linearizable the checker shrinks it, keeping only steps that preserve
//! non-linearizability (so what is printed is itself a proof of the violation), and returns a
//! [`Violation`] whose `Display` is a table of the minimal failing sub-history. The steps:
//! 1. cut the history at the earliest response time at which it already fails (linearizability is
//!    prefix-closed); operations invoked but not yet returned at the cut become *pending*: they may
//!    take effect or not, and their result is unknown;
//! 2. drop `get`s one at a time while the rest still fails (a `get` changes no state, so a history
//!    that fails without it fails with it);
//! 3. fold the longest prefix that ends at a quiescent point (no operation in flight), has exactly
//!    one reachable final value and leaves at least two operations into the initial value (every
//!    linearization of the whole history passes through that value at that point).
//!
//! Each test binary that records histories uses part of this module, hence the module-wide
//! `dead_code` allowance.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use bwtree::ConcurrentMap;

use super::clock::Clock;

/// What an operation asked of the map (the key is stored in [`Operation::key`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Call {
    /// `insert(key, value)`: returns the previous value.
    Insert(u64),
    /// `get(key)`: returns the current value.
    Get,
    /// `remove(key)`: returns the removed value.
    Remove,
}

/// Which batch call an [`Operation`] was part of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BatchOf {
    /// The recording thread's sequence number of the batch call (only used in reports).
    pub id: usize,
    /// How many keys (input items) the call had, tracked or not.
    pub len: usize,
}

/// One operation of a history: who ran it, what it asked, what it got, and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    /// The recording thread's number (only used in reports).
    pub thread: usize,
    /// The key operated on.
    pub key: u64,
    /// The operation and its argument.
    pub call: Call,
    /// What it returned: the previous value for `insert` and `remove`, the value read for `get`.
    /// Ignored while the operation is pending.
    pub result: Option<u64>,
    /// Invocation timestamp.
    pub inv: u64,
    /// Response timestamp; `None` for a *pending* operation (invoked, never returned), which may or
    /// may not have taken effect.
    pub resp: Option<u64>,
    /// Later occurrences of the same key in the same batch call, in input order, each with its own
    /// result: they take effect atomically right after `call`, in this order (see the module docs).
    /// Empty for point operations. Their results are ignored while the operation is pending.
    pub repeats: Vec<(Call, Option<u64>)>,
    /// The batch call this operation is one key of; `None` for a point operation.
    pub batch: Option<BatchOf>,
}

impl Operation {
    /// A completed `insert(key, value)` that returned `prev`.
    pub fn insert(
        thread: usize,
        key: u64,
        value: u64,
        prev: Option<u64>,
        inv: u64,
        resp: u64,
    ) -> Self {
        Self::completed(thread, key, Call::Insert(value), prev, inv, resp)
    }

    /// A completed `get(key)` that returned `result`.
    pub fn get(thread: usize, key: u64, result: Option<u64>, inv: u64, resp: u64) -> Self {
        Self::completed(thread, key, Call::Get, result, inv, resp)
    }

    /// A completed `remove(key)` that returned `prev`.
    pub fn remove(thread: usize, key: u64, prev: Option<u64>, inv: u64, resp: u64) -> Self {
        Self::completed(thread, key, Call::Remove, prev, inv, resp)
    }

    fn completed(
        thread: usize,
        key: u64,
        call: Call,
        result: Option<u64>,
        inv: u64,
        resp: u64,
    ) -> Self {
        assert!(inv < resp, "an operation must respond after it is invoked");
        Operation {
            thread,
            key,
            call,
            result,
            inv,
            resp: Some(resp),
            repeats: Vec::new(),
            batch: None,
        }
    }

    /// This operation as one key of batch call `batch`.
    pub fn in_batch(mut self, batch: BatchOf) -> Self {
        self.batch = Some(batch);
        self
    }

    /// This operation followed, atomically, by another occurrence of its key in the same batch call
    /// (`call` must be a write: repeated reads are independent operations) that returned `result`.
    pub fn then(mut self, call: Call, result: Option<u64>) -> Self {
        assert!(call != Call::Get, "repeated reads are separate operations");
        self.repeats.push((call, result));
        self
    }

    /// This operation as if it had never returned: it may or may not take effect, its result is
    /// unknown.
    pub fn pending(mut self) -> Self {
        self.resp = None;
        self.result = None;
        for (_, result) in &mut self.repeats {
            *result = None;
        }
        self
    }

    /// Whether the operation returned.
    pub fn is_completed(&self) -> bool {
        self.resp.is_some()
    }

    /// The response timestamp, with a pending operation's at infinity.
    fn resp_or_max(&self) -> u64 {
        self.resp.unwrap_or(u64::MAX)
    }

    /// The register's value after this operation takes effect on `state`, or `None` if it cannot
    /// take effect there (its result contradicts `state`).
    /// Repeats (see [`Operation::repeats`]) are applied right after the first occurrence, each
    /// checked against the value the one before it left.
    fn apply(&self, mut state: Option<u64>) -> Option<Option<u64>> {
        let steps = std::iter::once((self.call, self.result)).chain(self.repeats.iter().copied());
        for (call, result) in steps {
            if self.is_completed() && result != state {
                return None;
            }
            state = match call {
                Call::Insert(value) => Some(value),
                Call::Get => state,
                Call::Remove => None,
            };
        }
        Some(state)
    }
}

/// Records one thread's operations on a map, stamping each with the shared [`Clock`].
#[derive(Debug)]
pub struct Recorder<'c> {
    clock: &'c Clock,
    thread: usize,
    ops: Vec<Operation>,
    /// Batch calls recorded so far.
    batches: usize,
    /// Keys whose operations are not recorded (see [`Recorder::untracked`]).
    untracked: fn(u64) -> bool,
}

impl<'c> Recorder<'c> {
    /// A recorder for thread number `thread`.
    pub fn new(clock: &'c Clock, thread: usize) -> Self {
        Recorder {
            clock,
            thread,
            ops: Vec::new(),
            batches: 0,
            untracked: |_| false,
        }
    }

    /// Records nothing for the keys `untracked` selects: the calls still run (and a batch keeps
    /// them in its input), but their results are not part of the history. For background keys
    /// that other, unrecorded threads also write.
    pub fn untracked(mut self, untracked: fn(u64) -> bool) -> Self {
        self.untracked = untracked;
        self
    }

    /// Calls `map.insert(key, value)` and records it.
    pub fn insert<M: ConcurrentMap<u64, u64> + ?Sized>(
        &mut self,
        map: &M,
        key: u64,
        value: u64,
    ) -> Option<u64> {
        self.record(key, Call::Insert(value), || map.insert(key, value))
    }

    /// Calls `map.get(&key)` and records it.
    pub fn get<M: ConcurrentMap<u64, u64> + ?Sized>(&mut self, map: &M, key: u64) -> Option<u64> {
        self.record(key, Call::Get, || map.get(&key))
    }

    /// Calls `map.remove(&key)` and records it.
    pub fn remove<M: ConcurrentMap<u64, u64> + ?Sized>(
        &mut self,
        map: &M,
        key: u64,
    ) -> Option<u64> {
        self.record(key, Call::Remove, || map.remove(&key))
    }

    /// Calls `map.insert_batch(pairs)` and records one operation per tracked key.
    pub fn insert_batch<M: ConcurrentMap<u64, u64> + ?Sized>(
        &mut self,
        map: &M,
        pairs: &[(u64, u64)],
    ) -> Vec<Option<u64>> {
        let items: Vec<(u64, Call)> = pairs.iter().map(|&(k, v)| (k, Call::Insert(v))).collect();
        self.record_batch(&items, || map.insert_batch(pairs.to_vec()))
    }

    /// Calls `map.remove_batch(keys)` and records one operation per tracked key.
    pub fn remove_batch<M: ConcurrentMap<u64, u64> + ?Sized>(
        &mut self,
        map: &M,
        keys: &[u64],
    ) -> Vec<Option<u64>> {
        let items: Vec<(u64, Call)> = keys.iter().map(|&k| (k, Call::Remove)).collect();
        self.record_batch(&items, || map.remove_batch(keys))
    }

    /// Calls `map.get_many(keys)` and records one operation per tracked key occurrence.
    pub fn get_many<M: ConcurrentMap<u64, u64> + ?Sized>(
        &mut self,
        map: &M,
        keys: &[u64],
    ) -> Vec<Option<u64>> {
        let items: Vec<(u64, Call)> = keys.iter().map(|&k| (k, Call::Get)).collect();
        self.record_batch(&items, || map.get_many(keys))
    }

    /// Runs one batch call whose input items are `items` (key and what is asked of it, in input
    /// order; all writes or all reads) and which returns one result per item, in input order;
    /// records it as one operation per tracked key (see the module docs): every occurrence of a key
    /// read is an operation of its own, and the occurrences of a key written are one operation whose
    /// later occurrences are its [`Operation::repeats`].
    ///
    /// Panics if `run` returns a different number of results than there are items.
    pub fn record_batch(
        &mut self,
        items: &[(u64, Call)],
        run: impl FnOnce() -> Vec<Option<u64>>,
    ) -> Vec<Option<u64>> {
        let inv = self.clock.tick();
        let results = run();
        let resp = self.clock.tick();
        assert_eq!(
            results.len(),
            items.len(),
            "a batch call must return one result per input item"
        );
        let batch = BatchOf {
            id: self.batches,
            len: items.len(),
        };
        self.batches += 1;
        // Index into `self.ops` of the operation recording each written key, for its repeats.
        let mut written: BTreeMap<u64, usize> = BTreeMap::new();
        for (&(key, call), &result) in items.iter().zip(&results) {
            if (self.untracked)(key) {
                continue;
            }
            if call != Call::Get {
                if let Some(&at) = written.get(&key) {
                    self.ops[at].repeats.push((call, result));
                    continue;
                }
                written.insert(key, self.ops.len());
            }
            self.ops.push(Operation {
                thread: self.thread,
                key,
                call,
                result,
                inv,
                resp: Some(resp),
                repeats: Vec::new(),
                batch: Some(batch),
            });
        }
        results
    }

    fn record(&mut self, key: u64, call: Call, run: impl FnOnce() -> Option<u64>) -> Option<u64> {
        let inv = self.clock.tick();
        let result = run();
        let resp = self.clock.tick();
        if !(self.untracked)(key) {
            self.ops.push(Operation {
                thread: self.thread,
                key,
                call,
                result,
                inv,
                resp: Some(resp),
                repeats: Vec::new(),
                batch: None,
            });
        }
        result
    }

    /// The recorded operations, in program order.
    pub fn finish(self) -> Vec<Operation> {
        self.ops
    }
}

/// A recorded history: the initial value of every key that was present before the history started,
/// and the operations of all threads. Keys absent from `initial` start absent.
#[derive(Clone, Debug, Default)]
pub struct History {
    initial: BTreeMap<u64, u64>,
    ops: Vec<Operation>,
}

/// What a successful [`History::check`] looked at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Operations checked.
    pub ops: usize,
    /// Distinct keys (independent register histories) checked.
    pub keys: usize,
    /// The longest single-key history.
    pub longest_key_history: usize,
    /// Search configurations explored over all keys (a measure of how much reordering was needed).
    pub configurations: usize,
}

impl History {
    /// An empty history over a map whose recorded keys initially hold `initial` (keys not in it are
    /// absent). Entries for keys that are never operated on are ignored.
    pub fn new(initial: BTreeMap<u64, u64>) -> Self {
        History {
            initial,
            ops: Vec::new(),
        }
    }

    /// Adds operations (typically one thread's [`Recorder::finish`]).
    pub fn extend(&mut self, ops: impl IntoIterator<Item = Operation>) {
        self.ops.extend(ops);
    }

    /// The number of operations recorded.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether no operation was recorded.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The operations recorded, in the order they were added.
    pub fn operations(&self) -> &[Operation] {
        &self.ops
    }

    /// Checks that the history is linearizable with respect to a map (see the module docs): key by
    /// key, the operations can be put in one sequential order that respects real time and in which
    /// every result is what a sequential map would return. Returns the first key (in key order) that
    /// fails, with its minimal failing sub-history.
    pub fn check(&self) -> Result<Summary, Violation> {
        let mut by_key: BTreeMap<u64, Vec<Operation>> = BTreeMap::new();
        for op in &self.ops {
            by_key.entry(op.key).or_default().push(op.clone());
        }
        let mut summary = Summary {
            ops: self.ops.len(),
            keys: by_key.len(),
            ..Summary::default()
        };
        for (key, ops) in by_key {
            let initial = self.initial.get(&key).copied();
            summary.longest_key_history = summary.longest_key_history.max(ops.len());
            let mut search = Search::new(ops, initial);
            if search.run(|_| true) {
                summary.configurations += search.explored();
            } else {
                return Err(Violation::minimize(key, initial, search.ops));
            }
        }
        Ok(summary)
    }
}

/// A dense set of operation indices.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Bitset(Vec<u64>);

impl Bitset {
    fn new(len: usize) -> Self {
        Bitset(vec![0; len.div_ceil(64)])
    }

    fn contains(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }

    fn insert(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }

    fn remove(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

/// The Wing–Gong search with Lowe's memoization over one key's history.
struct Search {
    /// The key's operations sorted by invocation time; pending `get`s are dropped (they neither
    /// change the register nor constrain it).
    ops: Vec<Operation>,
    initial: Option<u64>,
    /// Every (linearized set, register value) configuration reached so far.
    cache: HashSet<(Bitset, Option<u64>)>,
}

impl Search {
    fn new(mut ops: Vec<Operation>, initial: Option<u64>) -> Self {
        ops.retain(|op| op.is_completed() || op.call != Call::Get);
        ops.sort_by_key(|op| op.inv);
        Search {
            ops,
            initial,
            cache: HashSet::new(),
        }
    }

    /// How many configurations the last [`Search::run`] explored.
    fn explored(&self) -> usize {
        self.cache.len()
    }

    /// Searches for linearizations of all completed operations (pending ones may be left out).
    /// `found` is called with the final register value of each one found, and stops the search by
    /// returning `true`. Returns whether the search was stopped, that is, whether some
    /// linearization was accepted; `found` returning `false` every time explores them all.
    fn run(&mut self, mut found: impl FnMut(Option<u64>) -> bool) -> bool {
        self.cache.clear();
        let ops = &self.ops;
        let n = ops.len();
        let required = ops.iter().filter(|op| op.is_completed()).count();
        let mut linearized = Bitset::new(n);
        let mut linearized_completed = 0;
        let mut state = self.initial;
        // The operations linearized so far, in order, each with the register value before it.
        let mut stack: Vec<(usize, Option<u64>)> = Vec::new();
        // Where to resume looking for the next candidate at the current depth.
        let mut resume = 0;
        loop {
            let mut advanced = false;
            if linearized_completed == required {
                if found(state) {
                    return true;
                }
            } else {
                // Minimal operations: invoked before the earliest response still outstanding.
                let horizon = (0..n)
                    .filter(|&i| !linearized.contains(i))
                    .map(|i| ops[i].resp_or_max())
                    .min()
                    .expect("an unlinearized completed operation exists");
                let mut from = resume;
                while let Some((i, next)) = candidate(ops, &linearized, state, from, horizon) {
                    linearized.insert(i);
                    if self.cache.insert((linearized.clone(), next)) {
                        stack.push((i, state));
                        state = next;
                        linearized_completed += usize::from(ops[i].is_completed());
                        resume = 0;
                        advanced = true;
                        break;
                    }
                    linearized.remove(i);
                    from = i + 1;
                }
            }
            if advanced {
                continue;
            }
            // Dead end (or an accepted linearization the caller wants to see past): backtrack.
            let Some((i, before)) = stack.pop() else {
                return false;
            };
            linearized.remove(i);
            linearized_completed -= usize::from(ops[i].is_completed());
            state = before;
            resume = i + 1;
        }
    }
}

/// The first operation at index `from` or later (in invocation order) that is not linearized yet,
/// is minimal (invoked before `horizon`, the earliest outstanding response) and can take effect in
/// `state`; with the register value after it.
fn candidate(
    ops: &[Operation],
    linearized: &Bitset,
    state: Option<u64>,
    from: usize,
    horizon: u64,
) -> Option<(usize, Option<u64>)> {
    ops.iter()
        .enumerate()
        .skip(from)
        .take_while(|(_, op)| op.inv < horizon)
        .filter(|&(i, _)| !linearized.contains(i))
        .find_map(|(i, op)| op.apply(state).map(|next| (i, next)))
}

/// Whether `ops` (one key's operations) is linearizable from `initial`.
fn linearizable(ops: &[Operation], initial: Option<u64>) -> bool {
    Search::new(ops.to_vec(), initial).run(|_| true)
}

/// A key whose history is not linearizable, with a minimal failing sub-history.
#[derive(Clone, Debug)]
pub struct Violation {
    /// The key.
    pub key: u64,
    /// The register's value at the start of [`Violation::ops`]: the key's initial value, or the
    /// value every linearization reaches at the quiescent point [`Violation::folded`] describes.
    pub initial: Option<u64>,
    /// If a linearizable prefix was folded into `initial`: the quiescent timestamp at which it
    /// ended and how many operations it had.
    pub folded: Option<(u64, usize)>,
    /// The minimal failing sub-history, by invocation time. Not linearizable from `initial`.
    pub ops: Vec<Operation>,
    /// The key's whole history, by invocation time.
    pub key_history: Vec<Operation>,
}

impl Violation {
    fn minimize(key: u64, initial: Option<u64>, mut history: Vec<Operation>) -> Self {
        history.sort_by_key(|op| op.inv);
        debug_assert!(!linearizable(&history, initial));

        // 1. The earliest cut (a response time) at which the history already fails.
        let mut cuts: Vec<u64> = history.iter().filter_map(|op| op.resp).collect();
        cuts.sort_unstable();
        let prefix = |cut: u64| -> Vec<Operation> {
            history
                .iter()
                .filter(|op| op.inv <= cut)
                .map(|op| {
                    if op.resp_or_max() > cut {
                        op.clone().pending()
                    } else {
                        op.clone()
                    }
                })
                .collect()
        };
        // Failing is monotone in the cut: binary search for the first failing one. The last cut
        // (the latest response) keeps every completed operation completed, so it fails.
        let first_failing = cuts.partition_point(|&cut| linearizable(&prefix(cut), initial));
        let mut ops = match cuts.get(first_failing) {
            Some(&cut) => prefix(cut),
            None => history.clone(),
        };

        // 2. Drop completed gets that are not needed for the failure.
        let mut i = 0;
        while i < ops.len() {
            if ops[i].call == Call::Get && ops[i].is_completed() {
                let mut without = ops.clone();
                without.remove(i);
                if !linearizable(&without, initial) {
                    ops = without;
                    continue;
                }
            }
            i += 1;
        }

        // 3. Fold the longest prefix before a quiescent point that has one reachable final value,
        //    keeping at least two operations (typically the write and the read that contradicts it).
        let mut start = initial;
        let mut folded = None;
        for split in (1..ops.len().saturating_sub(1)).rev() {
            let before = &ops[..split];
            let end_of_before = before.iter().map(Operation::resp_or_max).max().unwrap_or(0);
            if ops[split].inv < end_of_before {
                continue; // not quiescent: something before `split` is still in flight
            }
            let mut finals = HashSet::new();
            Search::new(before.to_vec(), initial).run(|state| {
                finals.insert(state);
                false
            });
            if finals.len() == 1 {
                start = finals.into_iter().next().expect("one final value");
                folded = Some((end_of_before, split));
                ops.drain(..split);
                break;
            }
        }
        debug_assert!(!linearizable(&ops, start));
        Violation {
            key,
            initial: start,
            folded,
            ops,
            key_history: history,
        }
    }

    /// The key's whole history as a table, for when the minimal one is not enough context.
    pub fn key_history_table(&self) -> String {
        table(&self.key_history)
    }
}

fn show(value: Option<u64>) -> String {
    match value {
        Some(v) => format!("Some({v})"),
        None => "None".to_string(),
    }
}

/// Formats operations as a table: thread, op, args, result, inv, resp. An operation that is one
/// key of a batch call is named after the call, with the call's number and size; a key repeated in
/// it shows every occurrence's value and result, in input order.
pub fn table(ops: &[Operation]) -> String {
    let rows: Vec<[String; 6]> = ops
        .iter()
        .map(|op| {
            let name = match (op.call, op.batch.is_some()) {
                (Call::Insert(_), false) => "insert",
                (Call::Get, false) => "get",
                (Call::Remove, false) => "remove",
                (Call::Insert(_), true) => "insert_batch",
                (Call::Get, true) => "get_many",
                (Call::Remove, true) => "remove_batch",
            };
            let calls = std::iter::once(op.call).chain(op.repeats.iter().map(|r| r.0));
            let values: Vec<String> = calls
                .filter_map(|call| match call {
                    Call::Insert(value) => Some(value.to_string()),
                    Call::Get | Call::Remove => None,
                })
                .collect();
            let mut args = format!("k={}", op.key);
            if !values.is_empty() {
                args.push_str(&format!(" v={}", values.join(",")));
            }
            if !op.repeats.is_empty() {
                args.push_str(&format!(" ({} times)", op.repeats.len() + 1));
            }
            if let Some(batch) = op.batch {
                args.push_str(&format!(" [batch #{} of {}]", batch.id, batch.len));
            }
            let (result, resp) = match op.resp {
                Some(resp) => {
                    let results = std::iter::once(op.result).chain(op.repeats.iter().map(|r| r.1));
                    let shown: Vec<String> = results.map(show).collect();
                    (shown.join(","), resp.to_string())
                }
                None => ("?".to_string(), "pending".to_string()),
            };
            [
                op.thread.to_string(),
                name.to_string(),
                args,
                result,
                op.inv.to_string(),
                resp,
            ]
        })
        .collect();
    let header = ["thread", "op", "args", "result", "inv", "resp"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(c, (cell, w))| {
                // Text columns left-aligned, numeric ones right-aligned.
                if matches!(c, 1..=3) {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        out.push_str(cells.join(" | ").trim_end());
        out.push('\n');
    }
    out
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "linearizability violation on key {}: its {} operations have no linearization.",
            self.key,
            self.key_history.len()
        )?;
        match self.folded {
            Some((at, count)) => writeln!(
                f,
                "Minimal failing sub-history ({} operations); the {count} operations before the \
                 quiescent point t={at} are folded into the value every linearization has there: {}",
                self.ops.len(),
                show(self.initial)
            )?,
            None => writeln!(
                f,
                "Minimal failing sub-history ({} operations), initial value {}:",
                self.ops.len(),
                show(self.initial)
            )?,
        }
        write!(f, "{}", table(&self.ops))
    }
}
