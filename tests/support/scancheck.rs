//! A consistency checker for range scans that run concurrently with writes.
//!
//! Scans of a concurrent map are usually not atomic snapshots (the Bw-tree copies one leaf at a
//! time), so they cannot be checked for linearizability. What they must guarantee — and what
//! [`ScanHistory::check`] checks — is, for every scan with invocation time `inv` and response time
//! `resp`:
//!
//! 1. its keys are strictly ascending (so no pair is returned twice) and lie within its bounds;
//! 2. it returns at most `limit` pairs when it was given a limit;
//! 3. every returned pair `(k, v)` was present at some moment of the scan: `v` was written to `k`
//!    (by the preload or an insert) by a write invoked before `resp`, and neither the write that
//!    replaced or removed `v` nor any write to `k` that started after `v`'s write had returned
//!    completed before `inv`;
//! 4. it misses no key that was present and untouched throughout the scan: a key within the bounds
//!    (and, if the scan stopped at its limit, not beyond its last key) whose writes all completed
//!    before `inv` or were invoked after `resp`, and whose value after the writes that completed
//!    before `inv` was present, must be returned.
//!
//! # Values identify writes
//! The checker needs every written value to be unique over the whole history (for example
//! `thread × 10⁸ + sequence number`, with a separate range for the preload). Then the value a scan
//! returns names the write that produced it, and the write that *ended* it is the unique write whose
//! returned previous value is that value. Those "ends" come from the map itself; the point
//! operations' own correctness is the business of the linearizability checker
//! (`lincheck.rs`). Where they disagree with real time, the checker uses whichever gives the
//! scan more leeway.
//!
//! # Recording
//! Each thread records with a [`ScanRecorder`], which ticks the shared [`Clock`] immediately before
//! and after every write and every whole scan.
//!
//! Each test binary that records histories uses part of this module, hence the module-wide
//! `dead_code` allowance.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::ops::{Bound, RangeBounds};

use bwtree::ConcurrentMap;

use super::bounds;
use super::clock::Clock;

/// What a recorded write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteKind {
    /// `insert(key, value)`.
    Insert(u64),
    /// `remove(key)`.
    Remove,
}

/// A recorded write: who, what, the previous value it returned, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Write {
    /// The recording thread's number (only used in reports).
    pub thread: usize,
    /// The key written.
    pub key: u64,
    /// Insert or remove.
    pub kind: WriteKind,
    /// The previous value the map returned.
    pub prev: Option<u64>,
    /// Invocation timestamp.
    pub inv: u64,
    /// Response timestamp.
    pub resp: u64,
}

/// A recorded scan: its bounds and limit, what it returned, and when it started and finished.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scan {
    /// The recording thread's number (only used in reports).
    pub thread: usize,
    /// How the scan was done (only used in reports): "forward", "backward", "scan(limit)", ...
    pub label: &'static str,
    /// Lower bound.
    pub lo: Bound<u64>,
    /// Upper bound.
    pub hi: Bound<u64>,
    /// The most pairs the scan may return, if it was limited.
    pub limit: Option<usize>,
    /// The pairs returned, in the order the scan should return them (ascending).
    pub result: Vec<(u64, u64)>,
    /// Invocation timestamp (before the scan started).
    pub inv: u64,
    /// Response timestamp (after its last pair was produced).
    pub resp: u64,
}

impl Scan {
    fn contains(&self, key: u64) -> bool {
        (self.lo, self.hi).contains(&key)
    }

    /// The bounds of the keys the scan was obliged to cover: its own bounds, cut at its last key if
    /// it stopped at its limit; `None` if no key lies within them.
    fn covered(&self) -> Option<(Bound<u64>, Bound<u64>)> {
        let hi = match (self.limit, self.result.last()) {
            (Some(0), _) => return None,
            (Some(limit), Some(&(last, _))) if self.result.len() >= limit => match self.hi {
                Bound::Included(hi) | Bound::Excluded(hi) if hi < last => self.hi,
                _ => Bound::Included(last),
            },
            _ => self.hi,
        };
        (!bounds::is_empty(self.lo.as_ref(), hi.as_ref())).then_some((self.lo, hi))
    }
}

/// Records one thread's writes and scans, stamping each with the shared [`Clock`].
#[derive(Debug)]
pub struct ScanRecorder<'c> {
    clock: &'c Clock,
    thread: usize,
    writes: Vec<Write>,
    scans: Vec<Scan>,
}

impl<'c> ScanRecorder<'c> {
    /// A recorder for thread number `thread`.
    pub fn new(clock: &'c Clock, thread: usize) -> Self {
        ScanRecorder {
            clock,
            thread,
            writes: Vec::new(),
            scans: Vec::new(),
        }
    }

    /// Calls `map.insert(key, value)` and records it. `value` must be unique in the history.
    pub fn insert<M: ConcurrentMap<u64, u64> + ?Sized>(
        &mut self,
        map: &M,
        key: u64,
        value: u64,
    ) -> Option<u64> {
        self.write(key, WriteKind::Insert(value), || map.insert(key, value))
    }

    /// Calls `map.remove(&key)` and records it.
    pub fn remove<M: ConcurrentMap<u64, u64> + ?Sized>(
        &mut self,
        map: &M,
        key: u64,
    ) -> Option<u64> {
        self.write(key, WriteKind::Remove, || map.remove(&key))
    }

    fn write(
        &mut self,
        key: u64,
        kind: WriteKind,
        run: impl FnOnce() -> Option<u64>,
    ) -> Option<u64> {
        let inv = self.clock.tick();
        let prev = run();
        let resp = self.clock.tick();
        self.writes.push(Write {
            thread: self.thread,
            key,
            kind,
            prev,
            inv,
            resp,
        });
        prev
    }

    /// Calls [`ConcurrentMap::scan`] with the given bounds and limit and records it.
    pub fn scan<M: ConcurrentMap<u64, u64> + ?Sized>(
        &mut self,
        map: &M,
        lo: Bound<u64>,
        hi: Bound<u64>,
        limit: usize,
    ) -> &[(u64, u64)] {
        let mut out = Vec::new();
        let inv = self.clock.tick();
        map.scan(lo.as_ref(), hi.as_ref(), limit, &mut out);
        let resp = self.clock.tick();
        self.push_scan("scan(limit)", lo, hi, Some(limit), out, inv, resp)
    }

    /// Runs `scan`, which must return the pairs of `(lo, hi)` in ascending order, and records it
    /// under `label`: for scans through other APIs than [`ConcurrentMap::scan`] (a tree's own range
    /// iterator, read forwards, backwards or from both ends).
    pub fn scan_with(
        &mut self,
        label: &'static str,
        lo: Bound<u64>,
        hi: Bound<u64>,
        scan: impl FnOnce() -> Vec<(u64, u64)>,
    ) -> &[(u64, u64)] {
        let inv = self.clock.tick();
        let out = scan();
        let resp = self.clock.tick();
        self.push_scan(label, lo, hi, None, out, inv, resp)
    }

    #[allow(clippy::too_many_arguments)]
    fn push_scan(
        &mut self,
        label: &'static str,
        lo: Bound<u64>,
        hi: Bound<u64>,
        limit: Option<usize>,
        result: Vec<(u64, u64)>,
        inv: u64,
        resp: u64,
    ) -> &[(u64, u64)] {
        self.scans.push(Scan {
            thread: self.thread,
            label,
            lo,
            hi,
            limit,
            result,
            inv,
            resp,
        });
        &self.scans.last().expect("just pushed").result
    }

    /// The recorded writes and scans.
    pub fn finish(self) -> (Vec<Write>, Vec<Scan>) {
        (self.writes, self.scans)
    }
}

/// A recorded history of writes and scans over a map whose initial contents were `initial`.
#[derive(Clone, Debug, Default)]
pub struct ScanHistory {
    initial: BTreeMap<u64, u64>,
    writes: Vec<Write>,
    scans: Vec<Scan>,
}

/// What a successful [`ScanHistory::check`] looked at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanSummary {
    /// Scans checked.
    pub scans: usize,
    /// Writes recorded.
    pub writes: usize,
    /// Pairs returned by all scans (each checked for bounds, order and presence).
    pub pairs: usize,
    /// (scan, key) pairs where the key was present and untouched throughout the scan, so the scan
    /// had to return it.
    pub obligatory: usize,
    /// (scan, key) pairs where a write to the key overlapped the scan, so that the key's presence
    /// and value could go either way (within the rules for returned pairs).
    pub contested: usize,
}

/// What is wrong with a scan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The pair at `position` does not have a larger key than the one before it (out of order, or a
    /// pair returned twice).
    NotAscending {
        /// Index into the scan's result.
        position: usize,
    },
    /// The pair at `position` lies outside the scan's bounds.
    OutOfBounds {
        /// Index into the scan's result.
        position: usize,
    },
    /// More pairs than the limit were returned.
    OverLimit,
    /// The value at `position` was never written by anyone.
    UnknownValue {
        /// Index into the scan's result.
        position: usize,
    },
    /// The value at `position` was written, but to another key.
    WrongKey {
        /// Index into the scan's result.
        position: usize,
        /// The key the value was written to.
        written_to: u64,
    },
    /// The value at `position` was written by an insert invoked after the scan had returned.
    NotYetWritten {
        /// Index into the scan's result.
        position: usize,
        /// The insert.
        write: Write,
    },
    /// The value at `position` had been replaced or removed by `by` before the scan started.
    AlreadyGone {
        /// Index into the scan's result.
        position: usize,
        /// The write that ended the value (it completed before the scan was invoked).
        by: Write,
    },
    /// `key` held `value` and was not written during the scan, but the scan did not return it.
    Missed {
        /// The key.
        key: u64,
        /// Its value throughout the scan.
        value: u64,
    },
}

/// The first scan found to break a guarantee, with the writes that show it.
#[derive(Clone, Debug)]
pub struct ScanViolation {
    /// The offending scan.
    pub scan: Scan,
    /// What is wrong with it.
    pub problem: Problem,
    /// Writes to the key concerned that overlap [`ScanViolation::window`], by invocation time (at
    /// most 24).
    pub context: Vec<Write>,
    /// The time window of `context`: from the write of the value concerned (or from the scan's
    /// invocation) to the scan's response.
    pub window: (u64, u64),
    /// How many problems the whole history has (this is the first, in scan invocation order).
    pub total_problems: usize,
}

/// Where a value came from and what ended it.
#[derive(Clone, Copy, Debug)]
struct ValueLife {
    key: u64,
    /// The insert that wrote it; `None` for a preloaded value (written at time 0).
    written: Option<Write>,
    /// The latest-responding write that returned it as its previous value.
    ended: Option<Write>,
}

/// The state of a key after a set of writes, derived from their results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Live {
    Absent,
    Present(u64),
    /// The writes' results do not determine one value (only possible if they are not
    /// linearizable); the checker then demands nothing.
    Ambiguous,
}

/// One key's writes, indexed for the per-scan questions.
#[derive(Debug, Default)]
struct KeyLog {
    /// By invocation time.
    writes: Vec<Write>,
    /// `prefix_max_resp[i]`: the latest response among `writes[..=i]`.
    prefix_max_resp: Vec<u64>,
    /// `suffix_min_resp[i]`: the earliest response among `writes[i..]`.
    suffix_min_resp: Vec<u64>,
    /// `live_after[i]`: the key's state after the preload and `writes[..i]` (meaningful where no
    /// write straddles the boundary).
    live_after: Vec<Live>,
}

impl KeyLog {
    fn build(initial: Option<u64>, mut writes: Vec<Write>) -> Self {
        writes.sort_by_key(|w| w.inv);
        let mut prefix_max_resp = Vec::with_capacity(writes.len());
        let mut latest = 0;
        for w in &writes {
            latest = latest.max(w.resp);
            prefix_max_resp.push(latest);
        }
        let mut suffix_min_resp = vec![u64::MAX; writes.len()];
        let mut earliest = u64::MAX;
        for (i, w) in writes.iter().enumerate().rev() {
            earliest = earliest.min(w.resp);
            suffix_min_resp[i] = earliest;
        }
        // Live values: written and not yet ended (ends may be seen before their write when the two
        // overlap, hence the set of early ends).
        let mut live: HashSet<u64> = initial.into_iter().collect();
        let mut ended_early: HashSet<u64> = HashSet::new();
        let summarize = |live: &HashSet<u64>| match live.len() {
            0 => Live::Absent,
            1 => Live::Present(*live.iter().next().expect("one element")),
            _ => Live::Ambiguous,
        };
        let mut live_after = vec![summarize(&live)];
        for w in &writes {
            if let Some(prev) = w.prev {
                if !live.remove(&prev) {
                    ended_early.insert(prev);
                }
            }
            if let WriteKind::Insert(value) = w.kind {
                if !ended_early.remove(&value) {
                    live.insert(value);
                }
            }
            live_after.push(summarize(&live));
        }
        KeyLog {
            writes,
            prefix_max_resp,
            suffix_min_resp,
            live_after,
        }
    }

    /// Whether some write overlaps `[inv, resp]`; if none does, also the state throughout.
    fn untouched_state(&self, inv: u64, resp: u64) -> Option<Live> {
        let started = self.writes.partition_point(|w| w.inv < resp);
        if started > 0 && self.prefix_max_resp[started - 1] > inv {
            return None;
        }
        Some(self.live_after[started])
    }

    /// A write invoked after `after` that responded before `before`, if any.
    fn write_between(&self, after: u64, before: u64) -> Option<Write> {
        let first = self.writes.partition_point(|w| w.inv <= after);
        if first < self.writes.len() && self.suffix_min_resp[first] < before {
            self.writes[first..]
                .iter()
                .find(|w| w.resp < before)
                .copied()
        } else {
            None
        }
    }

    /// Writes that overlap `[from, to]`, at most `max` of them.
    fn around(&self, from: u64, to: u64, max: usize) -> Vec<Write> {
        self.writes
            .iter()
            .filter(|w| w.resp >= from && w.inv <= to)
            .take(max)
            .copied()
            .collect()
    }
}

impl ScanHistory {
    /// An empty history over a map that initially held `initial`. Preloaded values count as
    /// written at time 0 and must be distinct from every value written later.
    pub fn new(initial: BTreeMap<u64, u64>) -> Self {
        ScanHistory {
            initial,
            writes: Vec::new(),
            scans: Vec::new(),
        }
    }

    /// Adds one recorder's output ([`ScanRecorder::finish`]).
    pub fn extend(&mut self, (writes, scans): (Vec<Write>, Vec<Scan>)) {
        self.writes.extend(writes);
        self.scans.extend(scans);
    }

    /// The scans recorded.
    pub fn scans(&self) -> &[Scan] {
        &self.scans
    }

    /// The writes recorded.
    pub fn writes(&self) -> &[Write] {
        &self.writes
    }

    /// Checks every scan against the guarantees listed in the module docs. Returns a summary, or the
    /// first violation (in scan invocation order) and the number of problems found in all.
    ///
    /// # Panics
    /// If two writes (or the preload and a write) use the same value: the checker identifies writes
    /// by their values.
    pub fn check(&self) -> Result<ScanSummary, Box<ScanViolation>> {
        let mut values: HashMap<u64, ValueLife> = HashMap::new();
        for (&key, &value) in &self.initial {
            let fresh = values.insert(
                value,
                ValueLife {
                    key,
                    written: None,
                    ended: None,
                },
            );
            assert!(fresh.is_none(), "preloaded value {value} is not unique");
        }
        let mut per_key: BTreeMap<u64, Vec<Write>> = BTreeMap::new();
        for w in &self.writes {
            per_key.entry(w.key).or_default().push(*w);
            if let WriteKind::Insert(value) = w.kind {
                let fresh = values.insert(
                    value,
                    ValueLife {
                        key: w.key,
                        written: Some(*w),
                        ended: None,
                    },
                );
                assert!(fresh.is_none(), "written value {value} is not unique");
            }
        }
        for w in &self.writes {
            if let Some(life) = w.prev.and_then(|prev| values.get_mut(&prev)) {
                if life.ended.is_none_or(|e| e.resp < w.resp) {
                    life.ended = Some(*w);
                }
            }
        }
        for &key in self.initial.keys() {
            per_key.entry(key).or_default();
        }
        let logs: BTreeMap<u64, KeyLog> = per_key
            .into_iter()
            .map(|(key, writes)| (key, KeyLog::build(self.initial.get(&key).copied(), writes)))
            .collect();

        let mut order: Vec<&Scan> = self.scans.iter().collect();
        order.sort_by_key(|s| s.inv);
        let mut summary = ScanSummary {
            scans: self.scans.len(),
            writes: self.writes.len(),
            ..ScanSummary::default()
        };
        let mut first: Option<ScanViolation> = None;
        let mut total = 0;
        for scan in order {
            summary.pairs += scan.result.len();
            let mut report = |problem: Problem, key: Option<u64>, from: u64| {
                total += 1;
                if first.is_none() {
                    let window = (from.min(scan.inv), scan.resp);
                    let context = key
                        .and_then(|k| logs.get(&k))
                        .map(|log| log.around(window.0, window.1, 24))
                        .unwrap_or_default();
                    first = Some(ScanViolation {
                        scan: scan.clone(),
                        problem,
                        context,
                        window,
                        total_problems: 0,
                    });
                }
            };

            if let Some(limit) = scan.limit {
                if scan.result.len() > limit {
                    report(Problem::OverLimit, None, scan.inv);
                }
            }
            for (position, &(key, value)) in scan.result.iter().enumerate() {
                if position > 0 && scan.result[position - 1].0 >= key {
                    report(Problem::NotAscending { position }, Some(key), scan.inv);
                }
                if !scan.contains(key) {
                    report(Problem::OutOfBounds { position }, Some(key), scan.inv);
                }
                let Some(life) = values.get(&value) else {
                    report(Problem::UnknownValue { position }, Some(key), scan.inv);
                    continue;
                };
                if life.key != key {
                    let written_to = life.key;
                    report(
                        Problem::WrongKey {
                            position,
                            written_to,
                        },
                        Some(key),
                        scan.inv,
                    );
                    continue;
                }
                let (written_inv, written_resp) = life.written.map_or((0, 0), |w| (w.inv, w.resp));
                if let Some(write) = life.written.filter(|w| w.inv > scan.resp) {
                    report(
                        Problem::NotYetWritten { position, write },
                        Some(key),
                        written_inv,
                    );
                    continue;
                }
                // Ended before the scan began: by the write that returned it (the map's own
                // account) or by a write to the key that started after it and finished before.
                let gone = life
                    .ended
                    .filter(|e| e.resp < scan.inv)
                    .or_else(|| logs[&key].write_between(written_resp, scan.inv));
                if let Some(by) = gone {
                    report(
                        Problem::AlreadyGone { position, by },
                        Some(key),
                        written_inv,
                    );
                }
            }

            let returned: HashSet<u64> = scan.result.iter().map(|&(k, _)| k).collect();
            for (&key, log) in scan
                .covered()
                .into_iter()
                .flat_map(|range| logs.range(range))
            {
                match log.untouched_state(scan.inv, scan.resp) {
                    None => summary.contested += 1,
                    Some(Live::Present(value)) => {
                        summary.obligatory += 1;
                        if !returned.contains(&key) {
                            // Show the writes from the one that stored the value on.
                            let from = values
                                .get(&value)
                                .and_then(|life| life.written)
                                .map_or(0, |w| w.inv);
                            report(Problem::Missed { key, value }, Some(key), from);
                        }
                    }
                    Some(Live::Absent | Live::Ambiguous) => {}
                }
            }
        }
        match first {
            None => Ok(summary),
            Some(mut violation) => {
                violation.total_problems = total;
                Err(Box::new(violation))
            }
        }
    }
}

fn show_bound(bound: Bound<u64>, lower: bool) -> String {
    match (bound, lower) {
        (Bound::Included(k), true) => format!("[{k}"),
        (Bound::Excluded(k), true) => format!("({k}"),
        (Bound::Unbounded, true) => "(-inf".to_string(),
        (Bound::Included(k), false) => format!("{k}]"),
        (Bound::Excluded(k), false) => format!("{k})"),
        (Bound::Unbounded, false) => "+inf)".to_string(),
    }
}

fn show_prev(prev: Option<u64>) -> String {
    prev.map_or_else(|| "None".to_string(), |v| format!("Some({v})"))
}

/// Formats writes as a table: thread, op, args, result (previous value), inv, resp.
pub fn write_table(writes: &[Write]) -> String {
    let mut out = format!(
        "{:>6} | {:<6} | {:<28} | {:<20} | {:>10} | {:>10}\n",
        "thread", "op", "args", "result", "inv", "resp"
    );
    for w in writes {
        let (op, args) = match w.kind {
            WriteKind::Insert(v) => ("insert", format!("k={} v={v}", w.key)),
            WriteKind::Remove => ("remove", format!("k={}", w.key)),
        };
        out.push_str(&format!(
            "{:>6} | {:<6} | {:<28} | {:<20} | {:>10} | {:>10}\n",
            w.thread,
            op,
            args,
            show_prev(w.prev),
            w.inv,
            w.resp
        ));
    }
    out
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::NotAscending { position } => write!(
                f,
                "pair #{position} is not above the pair before it (out of order or repeated)"
            ),
            Problem::OutOfBounds { position } => {
                write!(f, "pair #{position} lies outside the scan's bounds")
            }
            Problem::OverLimit => write!(f, "more pairs than the limit"),
            Problem::UnknownValue { position } => {
                write!(f, "pair #{position} has a value that was never written")
            }
            Problem::WrongKey {
                position,
                written_to,
            } => {
                write!(
                    f,
                    "pair #{position} has a value that was written to key {written_to}"
                )
            }
            Problem::NotYetWritten { position, write } => write!(
                f,
                "pair #{position} has a value whose insert was invoked at t={}, after the scan returned",
                write.inv
            ),
            Problem::AlreadyGone { position, by } => write!(
                f,
                "pair #{position} has a value that thread {}'s write (t={}..{}) had replaced or \
                 removed before the scan started",
                by.thread, by.inv, by.resp
            ),
            Problem::Missed { key, value } => write!(
                f,
                "key {key} held value {value} throughout the scan, untouched, but was not returned"
            ),
        }
    }
}

impl fmt::Display for ScanViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.scan;
        writeln!(
            f,
            "scan consistency violation (first of {} problems): {}",
            self.total_problems, self.problem
        )?;
        writeln!(
            f,
            "scan: thread {}, {} over {}, {}, limit {}, inv t={}, resp t={}, {} pairs returned",
            s.thread,
            s.label,
            show_bound(s.lo, true),
            show_bound(s.hi, false),
            s.limit
                .map_or_else(|| "none".to_string(), |l| l.to_string()),
            s.inv,
            s.resp,
            s.result.len()
        )?;
        let focus = match self.problem {
            Problem::NotAscending { position }
            | Problem::OutOfBounds { position }
            | Problem::UnknownValue { position }
            | Problem::WrongKey { position, .. }
            | Problem::NotYetWritten { position, .. }
            | Problem::AlreadyGone { position, .. } => position,
            Problem::Missed { key, .. } => s.result.partition_point(|&(k, _)| k < key),
            Problem::OverLimit => s.result.len(),
        };
        let from = focus.saturating_sub(4);
        let to = (focus + 4).min(s.result.len());
        write!(f, "returned pairs #{from}..#{to}:")?;
        for (i, (k, v)) in s.result[from..to].iter().enumerate() {
            write!(f, " #{}=({k}, {v})", from + i)?;
        }
        writeln!(f)?;
        if self.context.is_empty() {
            writeln!(
                f,
                "no write to the key concerned overlaps t={}..={}",
                self.window.0, self.window.1
            )
        } else {
            writeln!(
                f,
                "writes to the key concerned that overlap t={}..={}:",
                self.window.0, self.window.1
            )?;
            write!(f, "{}", write_table(&self.context))
        }
    }
}
