//! `lab bulk`: the batch operations against their one-by-one equivalents on every map, measured in
//! one process so that every figure is a ratio of two paths run side by side.
//!
//! Per map, on one thread:
//! - **load**: `n` pairs in ascending key order into an empty map, by the map's bulk path (its own
//!   bulk load if the factory has one — the Bw-tree's `from_sorted_iter` — else `insert_batch` of
//!   all `n` pairs) against `n` single inserts;
//! - **insert**: `insert_batch` of 1k and 10k fresh keys, random or clustered, into the loaded map
//!   against as many fresh keys of the same kind inserted one by one (each sample's keys are
//!   removed again, untimed, so the map stays at `n` keys);
//! - **get**: `get_many` of 1k and 10k present keys, random or clustered, against single gets.
//!
//! The batch methods are the [`ConcurrentMap`](bwtree::ConcurrentMap) trait's, so a map without
//! native batches runs the trait's one-by-one default (ratio 1 up to noise), and the coarse-lock
//! baseline runs its batches under one lock acquisition. Loaded keys are multiples of
//! [`SPACING`]; fresh keys are the integers between them ([`FreeKeys`]), handed out only while
//! absent from the map, so every measurement inserts keys that are absent. Each run measures both paths, alternating which goes
//! first (small batches get more runs, see [`runs_of`]); the clock stops before anything is
//! dropped. Answers are checked after the clock stops. [`measure`] returns the timings and
//! [`report()`] turns them into the tables and figures. Submodules: `keys` (fresh keys), `report`
//! (tables and figures).

use std::time::{Duration, Instant};

mod keys;
mod report;

use self::keys::{Draw, FreeKeys};
pub use self::report::report;
use super::ExpOptions;
use super::output::Out;
use crate::keys::value_of;
use crate::maps::{self, LabMap, MapFactory, settle};
use crate::report::short_count;
use crate::runner::median;

/// Distance between neighbouring loaded keys; the integers in between are the fresh keys.
pub const SPACING: u64 = 16;

/// Keys each path of an insert or get case handles over its runs, at least (see [`runs_of`]).
const KEYS_PER_RUNS: usize = 50_000;

/// Distance between neighbouring keys of a clustered insert batch (as in `examples/bulk.rs`): about
/// five new keys land between two loaded ones.
const CLUSTER_STRIDE: u64 = 3;

/// What is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    /// Building a map from sorted pairs.
    Load,
    /// Inserting fresh keys into the loaded map.
    Insert,
    /// Looking up present keys.
    Get,
}

/// How the keys of a case are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pattern {
    /// Every loaded key, ascending.
    Sorted,
    /// Uniformly spread over the key space.
    Random,
    /// A dense run of neighbouring keys.
    Clustered,
}

impl Pattern {
    fn name(self) -> &'static str {
        match self {
            Pattern::Sorted => "sorted",
            Pattern::Random => "random",
            Pattern::Clustered => "clustered",
        }
    }
}

/// One comparison: an operation on `keys` keys chosen by `pattern`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Case {
    op: Op,
    pattern: Pattern,
    keys: usize,
}

impl Case {
    /// The batch call and the one-by-one call it is compared with.
    fn calls(self) -> (&'static str, &'static str) {
        match self.op {
            Op::Load => ("bulk path", "insert"),
            Op::Insert => ("insert_batch", "insert"),
            Op::Get => ("get_many", "get"),
        }
    }

    /// Row label: `insert_batch 1k clustered`.
    fn label(self) -> String {
        let what = match self.op {
            Op::Load => "load",
            _ => self.calls().0,
        };
        format!("{what} {} {}", short_count(self.keys), self.pattern.name())
    }

    /// Short label for a figure's x axis: `ins 1k clu`.
    fn short(self) -> String {
        match self.op {
            Op::Load => format!("load {}", short_count(self.keys)),
            Op::Insert | Op::Get => format!(
                "{} {} {}",
                if self.op == Op::Insert { "ins" } else { "get" },
                short_count(self.keys),
                &self.pattern.name()[..3]
            ),
        }
    }
}

/// Every case, in report order, for `n` loaded keys and these batch sizes.
fn cases(n: usize, sizes: &[usize]) -> Vec<Case> {
    let mut cases = vec![Case {
        op: Op::Load,
        pattern: Pattern::Sorted,
        keys: n,
    }];
    for op in [Op::Insert, Op::Get] {
        for &keys in sizes {
            for pattern in [Pattern::Random, Pattern::Clustered] {
                cases.push(Case { op, pattern, keys });
            }
        }
    }
    cases
}

/// One map's timings for one case.
struct Row {
    case: Case,
    map: String,
    /// How the map does the batch side (`from_sorted_iter`, `native`, ...).
    path: String,
    batch: Vec<Duration>,
    single: Vec<Duration>,
}

impl Row {
    fn new(case: Case, map: &str, path: String) -> Row {
        Row {
            case,
            map: map.to_string(),
            path,
            batch: Vec::new(),
            single: Vec::new(),
        }
    }

    /// Median keys per second of a list of timings.
    fn rate(&self, times: &[Duration]) -> Option<f64> {
        let secs = median(times.iter().map(Duration::as_secs_f64).collect());
        (secs > 0.0).then(|| self.case.keys as f64 / secs)
    }

    fn batch_rate(&self) -> Option<f64> {
        self.rate(&self.batch)
    }

    fn single_rate(&self) -> Option<f64> {
        self.rate(&self.single)
    }

    /// Batch throughput over one-by-one throughput.
    fn ratio(&self) -> Option<f64> {
        Some(self.batch_rate()? / self.single_rate()?)
    }
}

/// Runs of each path of an insert or get case: `runs` times as many as it takes for each path to
/// handle at least [`KEYS_PER_RUNS`] keys, so that a 1k-key cell (a fraction of a millisecond) gets
/// enough samples for its median to shrug off a preemption on a shared machine.
fn runs_of(runs: usize, case: Case) -> usize {
    runs * KEYS_PER_RUNS.div_ceil(case.keys).max(1)
}

/// The time `work` takes, and what it returned (to be dropped after the clock stopped).
fn timed<T>(work: impl FnOnce() -> T) -> (Duration, T) {
    let started = Instant::now();
    let output = work();
    (started.elapsed(), output)
}

/// The two paths of run `run` in the order they are measured: alternating, so that neither always
/// meets the other's leftovers (caches, allocator state, a grown map).
fn order(run: usize) -> [bool; 2] {
    if run % 2 == 0 {
        [true, false]
    } else {
        [false, true]
    }
}

/// The pairs the lab stores for `keys`.
fn pairs(keys: &[u64]) -> Vec<(u64, u64)> {
    keys.iter().map(|&k| (k, value_of(k))).collect()
}

/// Sizes of the experiment: loaded keys and batch sizes.
fn sizes(options: &ExpOptions) -> (usize, Vec<usize>) {
    let n = options.key_count();
    let batches: Vec<usize> = if options.quick {
        vec![100, 1_000]
    } else {
        vec![1_000, 10_000]
    };
    (n, batches.into_iter().map(|b| b.min(n)).collect())
}

/// What `bulk` measured (read by [`report()`]).
pub struct Bulk {
    /// Loaded keys.
    keys: usize,
    /// `--runs`.
    runs: usize,
    /// The maps, in `--maps` order.
    factories: Vec<MapFactory>,
    /// Every case, in report order.
    cases: Vec<Case>,
    /// Each map's timings for each case it got to (a map that answers wrongly stops early).
    rows: Vec<Row>,
}

/// Measures every case on every map; wrong answers go to `out`. `None` (nothing measured, a wrong
/// answer recorded) if `--maps` names an unknown map.
pub fn measure(options: &ExpOptions, out: &mut Out) -> Option<Bulk> {
    let factories = match maps::select(&options.maps) {
        Ok(factories) => factories,
        Err(message) => {
            out.violation(format!("bad --maps: {message}"));
            return None;
        }
    };
    let (n, batch_sizes) = sizes(options);
    let runs = options.runs;
    let cases = cases(n, &batch_sizes);
    let mut rows: Vec<Row> = Vec::new();
    for factory in &factories {
        eprintln!("lab bulk: {}", factory.name);
        settle();
        let (load, map) = measure_load(factory, n, runs, out);
        rows.push(load);
        let Some(map) = map else { continue };
        let bench = Bench {
            map: &*map,
            name: &factory.name,
            path: factory.batches.describe(),
            n,
            runs,
        };
        // The same seed for every map: each draws the same keys.
        let mut draw = Draw(options.seed);
        let mut free = FreeKeys::new(n);
        for &case in &cases[1..] {
            let row = match case.op {
                Op::Insert => bench.insert(case, &mut free, &mut draw, out),
                Op::Get => bench.get(case, &mut draw, out),
                Op::Load => unreachable!("the load is measured first"),
            };
            rows.push(row);
        }
        drop(map);
        settle();
    }
    Some(Bulk {
        keys: n,
        runs,
        factories,
        cases,
        rows,
    })
}

/// Loads `n` sorted pairs `runs` times by each path; returns the timings and the map of the last
/// bulk-path load (the one the other cases run on), unless the map answered wrongly.
fn measure_load(
    factory: &MapFactory,
    n: usize,
    runs: usize,
    out: &mut Out,
) -> (Row, Option<Box<LabMap>>) {
    let case = Case {
        op: Op::Load,
        pattern: Pattern::Sorted,
        keys: n,
    };
    let path = match factory.bulk_load_name() {
        Some(how) => how.to_string(),
        None => format!("insert_batch: {}", factory.batches.describe()),
    };
    let mut row = Row::new(case, &factory.name, path);
    let sorted = pairs(&(0..n as u64).map(|i| i * SPACING).collect::<Vec<_>>());
    let mut kept: Option<Box<LabMap>> = None;
    for run in 0..runs {
        for batch in order(run) {
            let input = sorted.clone();
            let (time, map, overwrites) = if batch {
                match factory.bulk_load_name() {
                    Some(_) => {
                        let (time, map) = timed(|| factory.bulk_load(input).expect("has one"));
                        (time, map, 0)
                    }
                    None => {
                        let map = factory.make();
                        let (time, results) = timed(|| map.insert_batch(input));
                        let overwrites = results.iter().filter(|r| r.is_some()).count();
                        (time, map, overwrites)
                    }
                }
            } else {
                let map = factory.make();
                let (time, overwrites) = timed(|| {
                    input
                        .iter()
                        .filter(|&&(k, v)| map.insert(k, v).is_some())
                        .count()
                });
                (time, map, overwrites)
            };
            let side = if batch { row.path.as_str() } else { "insert" };
            if let Some(wrong) = check_loaded(&*map, n, overwrites) {
                out.violation(format!("{}: load by {side}: {wrong}", factory.name));
                return (row, None);
            }
            if batch {
                row.batch.push(time);
                kept = Some(map);
            } else {
                row.single.push(time);
                drop(map);
            }
            settle();
        }
    }
    (row, kept)
}

/// Checks a freshly loaded map: no insert found its key present, and a sample of keys reads back.
fn check_loaded(map: &LabMap, n: usize, overwrites: usize) -> Option<String> {
    if overwrites > 0 {
        return Some(format!("{overwrites} inserts of fresh keys returned Some"));
    }
    let step = (n / 1024).max(1);
    for i in (0..n).step_by(step).chain([n - 1]) {
        let key = i as u64 * SPACING;
        let got = map.get(&key);
        if got != Some(value_of(key)) {
            return Some(format!("get({key}) = {got:?} after the load"));
        }
    }
    map.get(&1)
        .map(|v| format!("get(1) = Some({v}), but key 1 was never inserted"))
}

/// A loaded map and what the insert and get cases need to know about it.
struct Bench<'a> {
    map: &'a LabMap,
    /// The factory's name (a variant's map may report its base map's name).
    name: &'a str,
    /// How the map's batch methods work.
    path: &'a str,
    /// Loaded keys: `i × SPACING` for `i < n`.
    n: usize,
    /// `--runs` (see [`runs_of`]).
    runs: usize,
}

impl Bench<'_> {
    /// `insert_batch` of fresh keys against one-by-one inserts of other fresh keys of the same kind.
    fn insert(&self, case: Case, free: &mut FreeKeys, draw: &mut Draw, out: &mut Out) -> Row {
        let mut row = Row::new(case, self.name, self.path.to_string());
        for run in 0..runs_of(self.runs, case) {
            for batch in order(run) {
                let keys = match case.pattern {
                    Pattern::Clustered => {
                        let start = free.cluster_start(case.keys, draw);
                        free.clustered(case.keys, start)
                    }
                    _ => free.random(case.keys, draw),
                };
                if keys.len() < case.keys {
                    out.violation(format!("{}: ran out of fresh keys", case.label()));
                    return row;
                }
                let input = pairs(&keys);
                let (time, results) = if batch {
                    timed(|| self.map.insert_batch(input))
                } else {
                    timed(|| {
                        input
                            .iter()
                            .map(|&(k, v)| self.map.insert(k, v))
                            .collect::<Vec<_>>()
                    })
                };
                let present = results.iter().filter(|r| r.is_some()).count();
                let reread = [keys[0], keys[keys.len() - 1]]
                    .into_iter()
                    .find(|k| self.map.get(k) != Some(value_of(*k)));
                if present > 0 || results.len() != keys.len() || reread.is_some() {
                    out.violation(format!(
                        "{}: {} by {}: {present} of {} fresh keys reported present, {} results; \
                         wrong value read back for {reread:?}",
                        self.name,
                        case.label(),
                        if batch { "insert_batch" } else { "insert" },
                        keys.len(),
                        results.len()
                    ));
                    return row;
                }
                // Untimed: take the keys out again, so that the map stays at `n` keys.
                let removed = self.map.remove_batch(&keys);
                if let Some((key, got)) = keys
                    .iter()
                    .zip(&removed)
                    .find(|(k, r)| **r != Some(value_of(**k)))
                {
                    out.violation(format!(
                        "{}: {}: removing inserted key {key} returned {got:?}",
                        self.name,
                        case.label()
                    ));
                    return row;
                }
                free.release(&keys);
                if batch {
                    row.batch.push(time);
                } else {
                    row.single.push(time);
                }
            }
        }
        row
    }

    /// `get_many` of present keys against single gets of other present keys of the same kind.
    fn get(&self, case: Case, draw: &mut Draw, out: &mut Out) -> Row {
        let mut row = Row::new(case, self.name, self.path.to_string());
        let n = self.n as u64;
        let count = case.keys as u64;
        for run in 0..runs_of(self.runs, case) {
            for batch in order(run) {
                let keys: Vec<u64> = match case.pattern {
                    Pattern::Clustered => {
                        let start = draw.below(n - count + 1);
                        (start..start + count).map(|i| i * SPACING).collect()
                    }
                    _ => (0..count).map(|_| draw.below(n) * SPACING).collect(),
                };
                let (time, results) = if batch {
                    timed(|| self.map.get_many(&keys))
                } else {
                    timed(|| keys.iter().map(|k| self.map.get(k)).collect::<Vec<_>>())
                };
                let wrong = keys
                    .iter()
                    .zip(&results)
                    .find(|(k, r)| **r != Some(value_of(**k)));
                if results.len() != keys.len() || wrong.is_some() {
                    out.violation(format!(
                        "{}: {} by {}: {} results for {} keys; first wrong answer {wrong:?}",
                        self.name,
                        case.label(),
                        if batch { "get_many" } else { "get" },
                        results.len(),
                        keys.len()
                    ));
                    return row;
                }
                if batch {
                    row.batch.push(time);
                } else {
                    row.single.push(time);
                }
            }
        }
        row
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_cover_every_operation_size_and_pattern() {
        let cases = cases(1_000_000, &[1_000, 10_000]);
        assert_eq!(cases.len(), 9);
        assert_eq!(cases[0].label(), "load 1M sorted");
        assert_eq!(cases[2].label(), "insert_batch 1k clustered");
        assert_eq!(cases[8].short(), "get 10k clu");
    }

    #[test]
    fn ratios_are_throughput_over_throughput() {
        let mut row = Row::new(cases(10, &[])[0], "m", "p".into());
        row.batch = vec![Duration::from_millis(1), Duration::from_millis(3)];
        row.single = vec![Duration::from_millis(4)];
        assert_eq!(row.ratio(), Some(2.0));
        assert_eq!(row.batch_rate(), Some(5_000.0));
    }
}
