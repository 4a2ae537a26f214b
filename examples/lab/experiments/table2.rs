//! `lab table2`, the SIGMOD'18 Table 2 replica: insert-only abort rates for random, monotonic and
//! right-edge keys, with the default configuration and the OpenBw-Tree benchmark's, by threads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bwtree::{BwTree, CasKind, Config, OpKind, StatsSnapshot};

use super::ExpOptions;
use super::common::{fixed, percent, shade_from, threads_label};
use super::output::{Figure, Out, Table};
use super::trees::bwtree;
use crate::cli::cores;
use crate::keys::{mix, value_of};
use crate::maps::settle;
use crate::plot::Series;
use crate::report::short_count;

/// How Table 2's threads choose the keys they insert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsertPattern {
    /// Uniformly random keys (SIGMOD'18 Rand-Int), split between the threads.
    Random,
    /// Each thread appends ascending keys to its own contiguous range (Mono-Int).
    Chunks,
    /// All threads append to one shared counter (`fetch_add`): the right edge (Mono-HC).
    RightEdge,
}

impl InsertPattern {
    /// All three, in the table's order.
    pub const ALL: [InsertPattern; 3] = [
        InsertPattern::Chunks,
        InsertPattern::Random,
        InsertPattern::RightEdge,
    ];

    /// Row label.
    pub fn label(self) -> &'static str {
        match self {
            InsertPattern::Random => "random",
            InsertPattern::Chunks => "monotonic, per-thread chunks",
            InsertPattern::RightEdge => "shared right edge",
        }
    }

    /// The key thread `thread` of `threads` inserts as its `j`-th key (`j < n / threads`) for
    /// patterns with a fixed assignment; the right edge takes its keys from a shared counter.
    pub fn key(self, thread: usize, threads: usize, j: usize, n: usize) -> u64 {
        let per = n / threads;
        match self {
            InsertPattern::Random => mix((thread * per + j) as u64),
            InsertPattern::Chunks => (thread * per + j) as u64,
            InsertPattern::RightEdge => unreachable!("right-edge keys come from the counter"),
        }
    }
}

/// Inserts `n` keys (rounded down to a multiple of `threads`) into `tree` with `pattern`; returns
/// the seconds taken, the keys inserted and the first wrong answer.
fn insert_run(
    tree: &BwTree<u64, u64>,
    pattern: InsertPattern,
    threads: usize,
    n: usize,
) -> (f64, usize, Option<String>) {
    let per = n / threads;
    let total = per * threads;
    let counter = AtomicU64::new(0);
    let started = Instant::now();
    let violation = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let counter = &counter;
                scope.spawn(move || {
                    let insert = |key: u64| {
                        tree.insert(key, value_of(key))
                            .map(|v| format!("insert of new key {key} returned Some({v})"))
                    };
                    if pattern == InsertPattern::RightEdge {
                        loop {
                            // Relaxed: the counter only hands out distinct keys.
                            let key = counter.fetch_add(1, Ordering::Relaxed);
                            if key >= total as u64 {
                                return None;
                            }
                            if let Some(v) = insert(key) {
                                return Some(v);
                            }
                        }
                    }
                    (0..per).find_map(|j| insert(pattern.key(t, threads, j, n)))
                })
            })
            .collect();
        workers
            .into_iter()
            .find_map(|w| w.join().expect("an inserter panicked"))
    });
    (started.elapsed().as_secs_f64(), total, violation)
}

/// What `table2` measured.
pub struct Table2 {
    /// Keys each cell inserts.
    pub keys: usize,
    /// The thread counts of every curve, in order.
    pub threads: Vec<usize>,
    /// One entry per configuration: the default, then the OpenBw-Tree benchmark's.
    pub configs: Vec<ConfigRuns>,
}

/// The curves of one configuration.
pub struct ConfigRuns {
    /// Row label, with the chain thresholds.
    pub label: String,
    /// One curve per pattern, in the order of [`InsertPattern::ALL`].
    pub patterns: Vec<PatternRuns>,
}

/// The cells of one insert pattern.
pub struct PatternRuns {
    /// How the keys were chosen.
    pub pattern: InsertPattern,
    /// One cell per thread count, in the order of [`Table2::threads`].
    pub cells: Vec<Measured>,
}

/// One measured cell.
pub struct Measured {
    /// Threads.
    pub threads: usize,
    /// Seconds the inserts took.
    pub secs: f64,
    /// Keys inserted (the key count rounded down to a multiple of the threads).
    pub inserted: usize,
    /// The fresh tree's counters after the inserts.
    pub stats: StatsSnapshot,
}

/// Inserts the keys into a fresh tree per configuration, pattern and thread count; wrong answers
/// go to `out`.
pub fn measure(options: &ExpOptions, out: &mut Out) -> Table2 {
    let n = options.key_count();
    let threads = vec![1usize, 2, 4, 8, 16];
    let default = Config::default();
    let configs = [
        (
            format!(
                "default (leaf {} / inner {})",
                default.leaf_chain_threshold, default.inner_chain_threshold
            ),
            default,
        ),
        (
            "leaf 24 / inner 2 (OpenBw-Tree benchmark)".to_string(),
            Config {
                leaf_chain_threshold: 24,
                inner_chain_threshold: 2,
                ..Config::default()
            },
        ),
    ];
    let mut measured = Vec::new();
    for (label, config) in configs {
        let mut patterns = Vec::new();
        for pattern in InsertPattern::ALL {
            let mut cells = Vec::new();
            for &t in &threads {
                settle();
                let tree = bwtree(config.clone());
                let (secs, total, violation) = insert_run(&tree, pattern, t, n);
                let d = tree.stats();
                if let Some(v) = violation {
                    out.violation(v);
                } else if tree.len() != total {
                    out.violation(format!(
                        "{} × {t}: {total} keys inserted but the tree holds {}",
                        pattern.label(),
                        tree.len()
                    ));
                }
                cells.push(Measured {
                    threads: t,
                    secs,
                    inserted: total,
                    stats: d,
                });
                drop(tree);
            }
            patterns.push(PatternRuns { pattern, cells });
        }
        measured.push(ConfigRuns { label, patterns });
    }
    settle();
    Table2 {
        keys: n,
        threads,
        configs: measured,
    }
}

/// Writes the description, the measured and the published table and the figure.
pub fn report(table2: &Table2, out: &mut Out) {
    out.text(&format!(
        "## SIGMOD'18 Table 2 replica: insert-only abort rates\n\n\
         Each cell inserts {} keys into an empty tree: random keys split between the threads; \
         monotonic keys, each thread ascending through its own contiguous range; or one shared \
         `AtomicU64::fetch_add` counter (every thread appends at the right edge). Abort rate = \
         `abort_rate_of(Insert)`: restarts from the root plus failed leaf-delta CASes, per insert \
         (can exceed 100%). Mean chain = mean leaf delta-chain length at access during the inserts. \
         One run per cell (count-bounded, not timed).\n",
        short_count(table2.keys)
    ));
    let mut table = Table::new(
        "table2",
        &[
            "config",
            "keys",
            "threads",
            "Mops/s",
            "abort rate %",
            "restarts per insert",
            "failed leaf CAS per insert",
            "mean leaf chain",
        ],
    );
    let mut series = Vec::new();
    for (c, config) in table2.configs.iter().enumerate() {
        for (p, runs) in config.patterns.iter().enumerate() {
            let mut points = Vec::new();
            for (i, cell) in runs.cells.iter().enumerate() {
                let (d, total) = (&cell.stats, cell.inserted);
                let failed_leaf = d.cas_failures(CasKind::Insert);
                points.push((
                    i as f64,
                    d.abort_rate_of(OpKind::Insert).unwrap_or(0.0) * 100.0,
                ));
                table.rows.push(vec![
                    config.label.clone(),
                    runs.pattern.label().into(),
                    threads_label(cell.threads),
                    format!("{:.2}", total as f64 / cell.secs / 1e6),
                    percent(d.abort_rate_of(OpKind::Insert)),
                    format!("{:.4}", d.total_restarts() as f64 / total.max(1) as f64),
                    format!("{:.4}", failed_leaf as f64 / total.max(1) as f64),
                    fixed(d.mean_leaf_chain()),
                ]);
            }
            series.push(Series {
                name: format!(
                    "{} ({})",
                    runs.pattern.label(),
                    if c == 0 { "default" } else { "leaf 24" }
                ),
                colour: c * 3 + p,
                points,
            });
        }
    }
    out.table(&table);
    let mut published = Table::new(
        "table2-published",
        &["keys (SIGMOD'18)", "abort rate %", "mean leaf chain"],
    );
    for row in [
        ["Mono-Int (monotonic)", "1.05", "0"],
        ["Rand-Int (random)", "1.44", "11.38"],
        ["Mono-HC (shared right edge, rdtsc)", "1078.63", "0.34"],
    ] {
        published
            .rows
            .push(row.iter().map(|s| s.to_string()).collect());
    }
    out.text(
        "Published (Wang et al., SIGMOD 2018, Table 2; OpenBw-Tree, 20 threads, 50M keys, leaf \
         chain threshold 24; their mean chain was measured over the leaves after the load, ours at \
         access):\n",
    );
    out.table(&published);
    out.figure(Figure {
        file: "table2-abort-rate.svg".into(),
        title: format!(
            "Table 2 replica: insert abort rate vs threads ({} cores)",
            cores()
        ),
        labels: table2.threads.iter().map(|t| t.to_string()).collect(),
        series,
        x_desc: "threads".into(),
        y_desc: "aborts per insert, %".into(),
        shade_from: shade_from(&table2.threads),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_patterns_give_distinct_keys() {
        for pattern in [InsertPattern::Random, InsertPattern::Chunks] {
            let mut keys: Vec<u64> = (0..4)
                .flat_map(|t| (0..25).map(move |j| pattern.key(t, 4, j, 100)))
                .collect();
            keys.sort_unstable();
            keys.dedup();
            assert_eq!(keys.len(), 100, "{pattern:?}");
        }
        for pattern in InsertPattern::ALL {
            let tree = bwtree(Config::tiny());
            let (_, total, violation) = insert_run(&tree, pattern, 3, 300);
            assert_eq!((total, violation), (300, None));
            assert_eq!(tree.len(), 300);
        }
    }
}
