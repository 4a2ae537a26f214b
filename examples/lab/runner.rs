//! Runs one measurement cell: a map, a thread count, an operation mix, a key distribution and a
//! duration, repeated a few times; returns the median throughput and the map's counters per
//! operation. Every answer the map gives is checked against [`value_of`] (and, for read-only
//! mixes, against the known key set), so a broken map produces a violation, not a number.
//!
//! This is the piece later experiments reuse: they build [`Cell`]s with their own mixes,
//! distributions and map factories.

use std::ops::Bound;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::keys::{Chooser, KeySet, value_of};
use crate::workload::{InsertKeys, OpMix};

/// Operations between two reads of the clock (one read costs about as much as a few percent of a
/// point operation). Scan-only mixes read it after every scan: a batch of long scans would keep a
/// thread that was descheduled at the deadline running well past it.
const OPS_PER_CHECK: usize = 16;

/// One measurement: what to run, on what, how long and how often.
pub struct Cell<'a> {
    /// The map, already loaded with `keys`.
    pub map: &'a (dyn bwtree::ConcurrentMap<u64, u64> + 'a),
    /// The preloaded keys.
    pub keys: &'a KeySet,
    /// How keys are chosen.
    pub chooser: &'a Chooser,
    /// The operation mix.
    pub mix: OpMix,
    /// Worker threads.
    pub threads: usize,
    /// Length of one run.
    pub duration: Duration,
    /// Runs; the result is their median.
    pub runs: usize,
    /// Seed of the threads' key streams (each run and thread derives its own).
    pub seed: u64,
}

/// One run's totals.
#[derive(Clone, Copy, Debug)]
pub struct RunResult {
    /// Operations completed.
    pub ops: u64,
    /// Pairs returned by scans.
    pub pairs: u64,
    /// Seconds from the start signal until the last thread stopped.
    pub secs: f64,
}

impl RunResult {
    /// Operations per second.
    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.secs
    }

    /// Scanned pairs per second.
    pub fn pairs_per_sec(&self) -> f64 {
        self.pairs as f64 / self.secs
    }
}

/// What a cell measured.
#[derive(Clone, Debug, Default)]
pub struct CellResult {
    /// Every run, in order.
    pub runs: Vec<RunResult>,
    /// Each counter the map reports ([`bwtree::ConcurrentMap::stats`]): its increase over all
    /// runs divided by the operations of all runs.
    pub per_op: Vec<(&'static str, f64)>,
    /// The first wrong answer, if the map gave one; the cell's numbers must then not be used.
    pub violation: Option<String>,
}

impl CellResult {
    /// Median operations per second over the runs.
    pub fn median_ops(&self) -> f64 {
        median(self.runs.iter().map(RunResult::ops_per_sec).collect())
    }

    /// Median scanned pairs per second over the runs.
    pub fn median_pairs(&self) -> f64 {
        median(self.runs.iter().map(RunResult::pairs_per_sec).collect())
    }
}

/// The median (mean of the middle two for an even count); 0 for no values.
pub fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// Runs the cell `cell.runs` times and collects the results; stops at the first violation.
pub fn run_cell(cell: &Cell<'_>) -> CellResult {
    assert!(cell.mix.is_valid(), "invalid operation mix {:?}", cell.mix);
    let mut result = CellResult::default();
    let before = cell.map.stats();
    let mut stats_delta: Vec<(&'static str, u64)> = before.iter().map(|&(n, _)| (n, 0)).collect();
    for run in 0..cell.runs.max(1) {
        let start_stats = cell.map.stats();
        let (totals, tallies) = run_once(cell, run as u64);
        let end_stats = cell.map.stats();
        for ((_, delta), (&(_, a), &(_, b))) in stats_delta
            .iter_mut()
            .zip(start_stats.iter().zip(end_stats.iter()))
        {
            *delta += b.saturating_sub(a);
        }
        result.runs.push(totals);
        let violation = tallies
            .iter()
            .find_map(|t| t.violation.clone())
            .or_else(|| {
                (cell.mix.insert > 0 && cell.mix.insert_keys == InsertKeys::Fresh)
                    .then(|| remove_fresh(cell, &tallies))
                    .flatten()
            });
        if violation.is_some() {
            result.violation = violation;
            break;
        }
    }
    let ops: u64 = result.runs.iter().map(|r| r.ops).sum();
    result.per_op = stats_delta
        .into_iter()
        .map(|(name, delta)| (name, delta as f64 / ops.max(1) as f64))
        .collect();
    result
}

/// What one worker thread did in one run.
struct Tally {
    ops: u64,
    pairs: u64,
    /// Fresh inserts done: slots `thread + threads·j` for `j < fresh`.
    fresh: u64,
    /// When the thread stopped.
    end: Instant,
    violation: Option<String>,
}

/// One timed run: start the workers together, let each run until the shared deadline.
///
/// The workers stop themselves at the deadline instead of waiting for a signal, and they start on a
/// flag they poll (yielding) rather than on a `Barrier`: with many more threads than cores, waking
/// threads one after another through a condition variable, or waiting for a descheduled main thread
/// to raise a stop flag, stretched 50 ms runs to seconds.
fn run_once(cell: &Cell<'_>, run: u64) -> (RunResult, Vec<Tally>) {
    let ready = AtomicUsize::new(0);
    let go = AtomicBool::new(false);
    let start = OnceLock::new();
    let tallies: Vec<Tally> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..cell.threads)
            .map(|t| {
                let signals = Signals {
                    ready: &ready,
                    go: &go,
                    start: &start,
                };
                scope.spawn(move || worker(cell, run, t, signals))
            })
            .collect();
        // Relaxed: the count only paces this loop; what the workers read after `go` is published by
        // the Release store below.
        while ready.load(Ordering::Relaxed) < cell.threads {
            std::thread::yield_now();
        }
        start
            .set(Instant::now())
            .expect("the start time is set once per run");
        // Release: pairs with the workers' Acquire load, so they see the start time set above.
        go.store(true, Ordering::Release);
        workers
            .into_iter()
            .map(|w| w.join().expect("a lab worker panicked"))
            .collect()
    });
    let start = *start.get().expect("set before the workers started");
    let end = tallies.iter().map(|t| t.end).max().unwrap_or(start);
    let totals = RunResult {
        ops: tallies.iter().map(|t| t.ops).sum(),
        pairs: tallies.iter().map(|t| t.pairs).sum(),
        secs: end.duration_since(start).as_secs_f64().max(1e-9),
    };
    (totals, tallies)
}

/// How a run's workers are started.
#[derive(Clone, Copy)]
struct Signals<'a> {
    /// Workers ready to start.
    ready: &'a AtomicUsize,
    /// Raised once the start time is set.
    go: &'a AtomicBool,
    /// When the run started; the deadline is this plus the cell's duration.
    start: &'a OnceLock<Instant>,
}

/// A worker: operations until the deadline, each one checked.
fn worker(cell: &Cell<'_>, run: u64, thread: usize, signals: Signals<'_>) -> Tally {
    let mix = cell.mix;
    let (get_cut, insert_cut, remove_cut) = (
        mix.get,
        mix.get + mix.insert,
        mix.get + mix.insert + mix.remove,
    );
    // Read-only mixes know exactly what every answer must be; mutating ones only that a returned
    // value belongs to its key.
    let strict = !mix.mutates();
    let mut stream = cell
        .chooser
        .stream(cell.seed ^ (run << 32) ^ (thread as u64).wrapping_mul(0x9E37_79B9));
    let mut out = Vec::with_capacity(mix.scan_len);
    let map = cell.map;
    let keys = cell.keys;
    // Relaxed: see `run_once`.
    signals.ready.fetch_add(1, Ordering::Relaxed);
    // Acquire: pairs with the Release store of `go`, which follows setting the start time.
    while !signals.go.load(Ordering::Acquire) {
        std::thread::yield_now();
    }
    let deadline = *signals.start.get().expect("set before `go`") + cell.duration;
    let mut tally = Tally {
        ops: 0,
        pairs: 0,
        fresh: 0,
        end: Instant::now(),
        violation: None,
    };
    let ops_per_check = if mix.scan == 100 { 1 } else { OPS_PER_CHECK };
    'run: loop {
        for _ in 0..ops_per_check {
            let pick = if mix.get == 100 { 0 } else { stream.percent() };
            let outcome = if pick < get_cut {
                let key = keys.sorted(stream.next_index());
                check_value(map, "get", key, map.get(&key), strict)
            } else if pick < insert_cut {
                match mix.insert_keys {
                    InsertKeys::Fresh => {
                        let key = keys.fresh(thread as u64 + cell.threads as u64 * tally.fresh);
                        tally.fresh += 1;
                        match map.insert(key, value_of(key)) {
                            None => Ok(()),
                            Some(v) => Err(format!(
                                "{}: insert of fresh key {key} returned Some({v}), expected None",
                                map.name()
                            )),
                        }
                    }
                    InsertKeys::Preloaded => {
                        let key = keys.sorted(stream.next_index());
                        check_value(map, "insert", key, map.insert(key, value_of(key)), false)
                    }
                }
            } else if pick < remove_cut {
                let key = keys.sorted(stream.next_index());
                check_value(map, "remove", key, map.remove(&key), false)
            } else {
                let rank = stream.next_index();
                out.clear();
                let n = map.scan(
                    Bound::Included(&keys.sorted(rank)),
                    Bound::Unbounded,
                    mix.scan_len,
                    &mut out,
                );
                tally.pairs += n as u64;
                check_scan(map, keys, rank, mix.scan_len, n, &out, strict)
            };
            if let Err(violation) = outcome {
                tally.violation = Some(violation);
                break 'run;
            }
            tally.ops += 1;
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    tally.end = Instant::now();
    tally
}

/// Checks a point operation's answer: a returned value must be the key's; under `strict` the key
/// must be present.
fn check_value(
    map: &dyn bwtree::ConcurrentMap<u64, u64>,
    op: &str,
    key: u64,
    got: Option<u64>,
    strict: bool,
) -> Result<(), String> {
    match got {
        Some(v) if v == value_of(key) => Ok(()),
        None if !strict => Ok(()),
        Some(v) => Err(format!(
            "{}: {op}({key}) returned Some({v}), but the value stored under that key is {}",
            map.name(),
            value_of(key)
        )),
        None => Err(format!(
            "{}: {op}({key}) returned None for a key that is present",
            map.name()
        )),
    }
}

/// Checks a scan from the key of rank `rank`: ascending keys, none below the start, each with its
/// value; under `strict` exactly the next `min(len, n - rank)` preloaded keys.
fn check_scan(
    map: &dyn bwtree::ConcurrentMap<u64, u64>,
    keys: &KeySet,
    rank: usize,
    len: usize,
    returned: usize,
    out: &[(u64, u64)],
    strict: bool,
) -> Result<(), String> {
    let lo = keys.sorted(rank);
    let fail = |what: String| Err(format!("{}: scan of {len} from {lo}: {what}", map.name()));
    if returned != out.len() || returned > len {
        return fail(format!(
            "reported {returned} pairs but appended {} (limit {len})",
            out.len()
        ));
    }
    let mut previous: Option<u64> = None;
    for &(k, v) in out {
        if k < lo || previous.is_some_and(|p| p >= k) {
            return fail(format!("key {k} out of order or below the start"));
        }
        if v != value_of(k) {
            return fail(format!("value {v} under key {k}, expected {}", value_of(k)));
        }
        previous = Some(k);
    }
    if strict {
        let expected = len.min(keys.len() - rank);
        if returned != expected {
            return fail(format!("returned {returned} pairs, expected {expected}"));
        }
        if let (Some(&(first, _)), Some(&(last, _))) = (out.first(), out.last()) {
            if first != lo || last != keys.sorted(rank + returned - 1) {
                return fail(format!(
                    "returned keys {first}..={last}, which skip preloaded keys"
                ));
            }
        }
    }
    Ok(())
}

/// Removes the fresh keys a run inserted (untimed, one thread per worker), checking that each is
/// still there with its value: this is where a map that lost an insert is caught.
fn remove_fresh(cell: &Cell<'_>, tallies: &[Tally]) -> Option<String> {
    let threads = cell.threads as u64;
    std::thread::scope(|scope| {
        let cleaners: Vec<_> = tallies
            .iter()
            .enumerate()
            .map(|(t, tally)| {
                let fresh = tally.fresh;
                scope.spawn(move || {
                    for j in 0..fresh {
                        let key = cell.keys.fresh(t as u64 + threads * j);
                        let got = cell.map.remove(&key);
                        if got != Some(value_of(key)) {
                            return Some(format!(
                                "{}: fresh key {key} was inserted, but removing it returned {got:?}, expected Some({})",
                                cell.map.name(),
                                value_of(key)
                            ));
                        }
                    }
                    None
                })
            })
            .collect();
        cleaners
            .into_iter()
            .find_map(|c| c.join().expect("a lab cleaner panicked"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Dist, KeyOrder};
    use crate::maps::LabMap;
    use crate::workload::Workload;
    use bwtree::{BwTree, ConcurrentMap};

    /// A map that loses every write to an odd key: reads of those keys miss. (Half the keys, so that
    /// even the 16 operations a worker runs at least are sure to meet one, however loaded the machine.)
    struct Forgetful(BwTree<u64, u64>);

    impl ConcurrentMap<u64, u64> for Forgetful {
        fn name(&self) -> &'static str {
            "forgetful"
        }
        fn insert(&self, key: u64, value: u64) -> Option<u64> {
            if key % 2 == 1 {
                None
            } else {
                self.0.insert(key, value)
            }
        }
        fn get(&self, key: &u64) -> Option<u64> {
            self.0.get(key)
        }
        fn remove(&self, key: &u64) -> Option<u64> {
            self.0.remove(key)
        }
        fn scan(
            &self,
            lo: Bound<&u64>,
            hi: Bound<&u64>,
            limit: usize,
            out: &mut Vec<(u64, u64)>,
        ) -> usize {
            ConcurrentMap::scan(&self.0, lo, hi, limit, out)
        }
    }

    /// A map whose gets answer with a value off by one.
    struct OffByOne(BwTree<u64, u64>);

    impl ConcurrentMap<u64, u64> for OffByOne {
        fn name(&self) -> &'static str {
            "off-by-one"
        }
        fn insert(&self, key: u64, value: u64) -> Option<u64> {
            self.0.insert(key, value)
        }
        fn get(&self, key: &u64) -> Option<u64> {
            self.0.get(key).map(|v| v.wrapping_add(1))
        }
        fn remove(&self, key: &u64) -> Option<u64> {
            self.0.remove(key)
        }
        fn scan(
            &self,
            lo: Bound<&u64>,
            hi: Bound<&u64>,
            limit: usize,
            out: &mut Vec<(u64, u64)>,
        ) -> usize {
            ConcurrentMap::scan(&self.0, lo, hi, limit, out)
        }
    }

    fn load(map: &LabMap, keys: &KeySet) {
        for i in 0..keys.len() {
            map.insert(keys.load_key(i), value_of(keys.load_key(i)));
        }
    }

    fn cell<'a>(map: &'a LabMap, keys: &'a KeySet, chooser: &'a Chooser, w: Workload) -> Cell<'a> {
        Cell {
            map,
            keys,
            chooser,
            mix: w.mix(),
            threads: 2,
            duration: Duration::from_millis(5),
            runs: 2,
            seed: 42,
        }
    }

    #[test]
    fn a_correct_map_passes_every_workload_and_keeps_its_size() {
        let keys = KeySet::new(3_000, KeyOrder::Random);
        let chooser = Chooser::new(keys.len(), Dist::Uniform, 1).unwrap();
        let tree = BwTree::<u64, u64>::new();
        load(&tree, &keys);
        for w in Workload::ALL {
            let result = run_cell(&cell(&tree, &keys, &chooser, w));
            assert_eq!(result.violation, None, "{w:?}");
            assert_eq!(result.runs.len(), 2);
            assert!(result.runs.iter().all(|r| r.ops > 0), "{w:?}");
            if w == Workload::Insert {
                assert_eq!(
                    tree.len(),
                    keys.len(),
                    "fresh keys are removed after each run"
                );
            }
        }
    }

    #[test]
    fn wrong_values_and_lost_writes_are_violations() {
        let keys = KeySet::new(2_000, KeyOrder::Sequential);
        let chooser = Chooser::new(keys.len(), Dist::Uniform, 1).unwrap();
        let off = OffByOne(BwTree::new());
        load(&off, &keys);
        let result = run_cell(&cell(&off, &keys, &chooser, Workload::Get));
        assert!(result.violation.unwrap().contains("off-by-one: get("));

        let forgetful = Forgetful(BwTree::new());
        load(&forgetful, &keys);
        let get = run_cell(&cell(&forgetful, &keys, &chooser, Workload::Get));
        assert!(
            get.violation
                .unwrap()
                .contains("returned None for a key that is present")
        );
        let scan = run_cell(&cell(&forgetful, &keys, &chooser, Workload::Scan(100)));
        assert!(scan.violation.unwrap().contains("scan of 100"));
        let insert = run_cell(&cell(&forgetful, &keys, &chooser, Workload::Insert));
        assert!(
            insert
                .violation
                .unwrap()
                .contains("removing it returned None")
        );
        assert_eq!(insert.runs.len(), 1, "a violation ends the cell");
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(vec![]), 0.0);
    }
}
