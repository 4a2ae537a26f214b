//! The paper experiments, one subcommand each: `table1` and `fig5` (ICDE'13 Table I and Fig. 5),
//! `table2` and `decomp` (SIGMOD'18 Table 2 and §6.3), and `skew` (curves neither paper published:
//! retries under Zipfian skew, the leaf chain-length distribution at access, a thread sweep); and
//! `bulk` (module [`bulk`]): batch operations against their one-by-one equivalents on every map.
//!
//! Each one builds Bw-trees with the configuration it studies, drives them with [`runner::Cell`]s
//! (or, for the insert-only Table 2, with its own key streams), reads the tree's
//! [`StatsSnapshot`] before and after each cell and writes `report.md`, one CSV file per table and
//! SVG figures into its output folder. Every answer is checked as in the default report; a wrong one
//! makes the experiment exit with status 1.
//!
//! [`runner::Cell`]: crate::runner::Cell

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bwtree::{CHAIN_BUCKETS, Config, Level};

use crate::cli::cores;
use crate::keys::{Chooser, Dist, KeyOrder, KeySet};
use crate::maps::settle;
use crate::plot::Series;
use crate::report::short_count;
use crate::runner::Cell;
use crate::workload::OpMix;

mod bulk;
mod common;
mod decomp;
mod fig5;
mod output;
mod table1;
mod table2;
mod trees;

use common::{
    READ_WRITE_5_1, consolidations_per_k, fill, fixed, measure_cell, percent, shade_from,
    threads_label,
};
use output::{Figure, Out, Table};
use trees::bwtree;

/// The experiment subcommands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Experiment {
    /// ICDE'13 Table I: failed CAS installs per kind under a 5:1 read:write mix.
    Table1,
    /// ICDE'13 Fig. 5: throughput against the leaf chain threshold.
    Fig5,
    /// SIGMOD'18 Table 2: insert-only abort rates for random, monotonic and right-edge keys.
    Table2,
    /// SIGMOD'18 §6.3: single-thread reads with and without delta chains, and the OLC B+tree.
    Decomp,
    /// Zipfian skew, chain-length distributions and a thread sweep of the abort rate.
    Skew,
    /// Bulk load, `insert_batch` and `get_many` against one-by-one inserts and gets, every map.
    Bulk,
}

impl Experiment {
    /// Every experiment, in the order `scripts/reproduce.sh` runs them.
    pub const ALL: [Experiment; 6] = [
        Experiment::Table1,
        Experiment::Fig5,
        Experiment::Table2,
        Experiment::Decomp,
        Experiment::Skew,
        Experiment::Bulk,
    ];

    /// The subcommand (and default output folder) name.
    pub fn name(self) -> &'static str {
        match self {
            Experiment::Table1 => "table1",
            Experiment::Fig5 => "fig5",
            Experiment::Table2 => "table2",
            Experiment::Decomp => "decomp",
            Experiment::Skew => "skew",
            Experiment::Bulk => "bulk",
        }
    }

    /// One line on what the experiment measures (for `lab list`).
    pub fn describe(self) -> &'static str {
        match self {
            Experiment::Table1 => "ICDE'13 Table I replica: failed CAS installs per kind",
            Experiment::Fig5 => "ICDE'13 Fig. 5 replica: throughput vs leaf delta-chain threshold",
            Experiment::Table2 => "SIGMOD'18 Table 2 replica: insert abort rates",
            Experiment::Decomp => "SIGMOD'18 §6.3 replica: reads with/without delta chains",
            Experiment::Skew => "Zipfian skew, chain lengths at access, abort-rate thread sweep",
            Experiment::Bulk => {
                "bulk load, insert_batch and get_many vs one by one, every map (ratios)"
            }
        }
    }

    /// The experiment called `name`.
    pub fn parse(name: &str) -> Option<Experiment> {
        Experiment::ALL.into_iter().find(|e| e.name() == name)
    }
}

/// Options shared by the experiment subcommands.
#[derive(Clone, Debug, PartialEq)]
pub struct ExpOptions {
    /// Which experiment.
    pub experiment: Experiment,
    /// Tiny sizes (a smoke test of seconds).
    pub quick: bool,
    /// Output folder (default `target/lab/<name>`).
    pub out: PathBuf,
    /// Length of one timed run.
    pub duration: Duration,
    /// Runs per cell (median throughput; counters summed over the runs).
    pub runs: usize,
    /// Preloaded keys (Table 2: keys inserted per cell); `None`: the experiment's default.
    pub keys: Option<usize>,
    /// Seed of the key streams.
    pub seed: u64,
    /// `decomp` only: a lab binary built with `--cfg bwtree_relaxed_loads`, run for the
    /// "also relaxed loads" row.
    pub relaxed_lab: Option<PathBuf>,
    /// Maps to measure, by name (only `bulk` measures more than the Bw-tree): default all.
    pub maps: Vec<String>,
}

impl ExpOptions {
    /// The defaults of `experiment`, full or `--quick`.
    pub fn new(experiment: Experiment, quick: bool) -> ExpOptions {
        ExpOptions {
            experiment,
            quick,
            out: PathBuf::from(format!("target/lab/{}", experiment.name())),
            duration: Duration::from_millis(if quick { 20 } else { 250 }),
            runs: if quick { 1 } else { 3 },
            keys: None,
            seed: 0x1AB,
            relaxed_lab: None,
            maps: crate::maps::all().into_iter().map(|f| f.name).collect(),
        }
    }

    /// The preloaded (or inserted) key count: `--keys`, else 1M (quick: 20k).
    fn key_count(&self) -> usize {
        self.keys
            .unwrap_or(if self.quick { 20_000 } else { 1_000_000 })
    }
}

/// Runs one experiment; returns the process exit status (0, 1 on a wrong answer, 2 on I/O errors).
pub fn run(options: &ExpOptions, command: String) -> u8 {
    let started = Instant::now();
    let mut out = Out::new(options, command);
    eprintln!(
        "lab {}: {} cores; writing to {}",
        options.experiment.name(),
        cores(),
        options.out.display()
    );
    match options.experiment {
        Experiment::Table1 => table1::report(&table1::measure(options, &mut out), &mut out),
        Experiment::Fig5 => fig5::report(&fig5::measure(options, &mut out), &mut out),
        Experiment::Table2 => table2::report(&table2::measure(options, &mut out), &mut out),
        Experiment::Decomp => decomp::report(&decomp::measure(options, &mut out), &mut out),
        Experiment::Skew => skew(options, &mut out),
        Experiment::Bulk => bulk::run(options, &mut out),
    }
    let violations = out.violations().len();
    let out_errors = out.errors().to_vec();
    out.text(&format!(
        "\n---\nWall time {:.1} s.",
        started.elapsed().as_secs_f64()
    ));
    if let Err(message) = out.finish() {
        eprintln!("error: {message}");
        return 2;
    }
    eprintln!(
        "lab {}: done in {:.1} s; report: {}",
        options.experiment.name(),
        started.elapsed().as_secs_f64(),
        options.out.join("report.md").display()
    );
    if violations > 0 {
        eprintln!("lab: {violations} wrong answer(s); see the report");
        1
    } else if !out_errors.is_empty() {
        eprintln!(
            "lab: {} measurement(s) failed: {}",
            out_errors.len(),
            out_errors.join("; ")
        );
        2
    } else {
        0
    }
}

// ---------------------------------------------------------------------------------------------
// skew

/// 50% lookups, 50% upserts of preloaded keys.
const READ_UPDATE_50_50: OpMix = OpMix {
    get: 50,
    insert: 50,
    ..READ_WRITE_5_1
};

/// Shares (percent) of the histogram's buckets, trailing empty buckets cut after `min_len`.
pub fn histogram_shares(histogram: &[u64], min_len: usize) -> Vec<f64> {
    let total: u64 = histogram.iter().sum();
    let last = histogram
        .iter()
        .rposition(|&c| c > 0)
        .map_or(0, |i| i + 1)
        .max(min_len)
        .min(histogram.len());
    histogram[..last]
        .iter()
        .map(|&c| {
            if total == 0 {
                0.0
            } else {
                c as f64 * 100.0 / total as f64
            }
        })
        .collect()
}

fn skew(options: &ExpOptions, out: &mut Out) {
    let n = options.key_count();
    let keys = KeySet::new(n, KeyOrder::Random);
    let dists: [(&str, Dist); 4] = [
        ("uniform (θ=0)", Dist::Uniform),
        ("θ=0.5", Dist::Zipf { theta: 0.5 }),
        ("θ=0.9", Dist::Zipf { theta: 0.9 }),
        ("θ=0.99", Dist::Zipf { theta: 0.99 }),
    ];
    let threads = [2usize, 4];
    out.text(&format!(
        "## Skew: retries under Zipfian key choice\n\n\
         {} random keys preloaded into one Bw-tree (default Config); 50% lookups, 50% upserts of \
         preloaded keys, keys chosen Zipfian with exponent θ (the hottest keys scattered over the \
         key space). Update CAS failure rate per attempted update CAS; abort rate = SIGMOD'18's \
         aborts per operation; restarts from the root per operation; consolidations per 1,000 \
         operations; mean leaf delta-chain length at access.\n",
        short_count(n)
    ));
    settle();
    let tree = bwtree(Config::default());
    if let Some(v) = fill(&tree, &keys, n, cores()) {
        out.violation(v);
        return;
    }
    let stats = || tree.stats();
    let mut table = Table::new(
        "skew",
        &[
            "keys",
            "threads",
            "Mops/s",
            "update CAS failed %",
            "abort rate %",
            "restarts per op",
            "consolidations per 1k ops",
            "mean leaf chain",
        ],
    );
    let mut histograms: Vec<(String, [u64; CHAIN_BUCKETS])> = Vec::new();
    let mut series: Vec<Series> = Vec::new();
    for (c, (label, dist)) in dists.iter().enumerate() {
        let chooser = Chooser::new(n, *dist, options.seed).expect("valid θ");
        let mut points = Vec::new();
        for (i, &t) in threads.iter().enumerate() {
            let cell = Cell {
                map: &tree,
                keys: &keys,
                chooser: &chooser,
                mix: READ_UPDATE_50_50,
                threads: t,
                duration: options.duration,
                runs: options.runs,
                seed: options.seed,
            };
            let (result, d) = measure_cell(&cell, &stats);
            if let Some(v) = result.violation.clone() {
                out.violation(v);
            }
            if i == 0 {
                histograms.push((label.to_string(), *d.chain_histogram(Level::Leaf)));
            }
            points.push((i as f64, d.update_cas_failure_rate().unwrap_or(0.0) * 100.0));
            table.rows.push(vec![
                label.to_string(),
                threads_label(t),
                format!("{:.2}", result.median_ops() / 1e6),
                percent(d.update_cas_failure_rate()),
                percent(d.abort_rate()),
                format!(
                    "{:.5}",
                    d.total_restarts() as f64 / d.total_ops().max(1) as f64
                ),
                fixed(consolidations_per_k(&d)),
                fixed(d.mean_leaf_chain()),
            ]);
        }
        series.push(Series {
            name: label.to_string(),
            colour: c,
            points,
        });
    }
    out.table(&table);
    out.figure(Figure {
        file: "skew-update-failures.svg".into(),
        title: format!("Update CAS failures vs threads by skew ({} cores)", cores()),
        labels: threads.iter().map(|t| t.to_string()).collect(),
        series,
        x_desc: "threads".into(),
        y_desc: "failed update CAS, %".into(),
        shade_from: shade_from(&threads),
    });

    // Chain-length distribution at access, 2 threads.
    let min_len = Config::default().leaf_chain_threshold + 2;
    let shares: Vec<Vec<f64>> = histograms
        .iter()
        .map(|(_, h)| histogram_shares(h, min_len))
        .collect();
    let len = shares.iter().map(Vec::len).max().unwrap_or(0);
    let mut header = vec!["leaf chain length".to_string()];
    header.extend(histograms.iter().map(|(l, _)| format!("{l} %")));
    let mut chains = Table {
        id: "chains".into(),
        header,
        rows: Vec::new(),
    };
    for length in 0..len {
        let mut row = vec![if length == CHAIN_BUCKETS - 1 {
            format!(">{}", CHAIN_BUCKETS - 2)
        } else {
            length.to_string()
        }];
        row.extend(
            shares
                .iter()
                .map(|s| format!("{:.2}", s.get(length).copied().unwrap_or(0.0))),
        );
        chains.rows.push(row);
    }
    out.text(&format!(
        "### Leaf delta-chain length at access ({} threads, same mix)\n\nShare of leaf accesses \
         that met a chain of each length (leaf chain threshold {}).\n",
        threads[0],
        Config::default().leaf_chain_threshold
    ));
    out.table(&chains);
    out.figure(Figure {
        file: "chains.svg".into(),
        title: "Leaf chain length at access: uniform vs Zipfian".into(),
        labels: (0..len).map(|l| l.to_string()).collect(),
        series: histograms
            .iter()
            .zip(&shares)
            .enumerate()
            .map(|(c, ((label, _), s))| Series {
                name: label.clone(),
                colour: c,
                points: s.iter().enumerate().map(|(i, &v)| (i as f64, v)).collect(),
            })
            .collect(),
        x_desc: "delta records above the base page".into(),
        y_desc: "% of leaf accesses".into(),
        shade_from: None,
    });

    // Thread sweep on the default report's mixed workload.
    let sweep: Vec<usize> = if options.quick {
        vec![1, 2, 4, 8]
    } else {
        vec![1, 2, 4, 8, 16, 32, 64]
    };
    let chooser = Chooser::new(n, Dist::Uniform, options.seed).expect("uniform");
    out.text(
        "### Thread sweep: abort rate on the mixed workload\n\nThe default report's mix (80% get, \
         10% upsert, 5% remove, 5% scan of 100), uniform keys, same tree.\n",
    );
    let mut sweep_table = Table::new(
        "thread-sweep",
        &[
            "threads",
            "Mops/s",
            "abort rate %",
            "restarts per op",
            "update CAS failed %",
            "mean leaf chain",
        ],
    );
    let mut points = Vec::new();
    for (i, &t) in sweep.iter().enumerate() {
        let cell = Cell {
            map: &tree,
            keys: &keys,
            chooser: &chooser,
            mix: OpMix::MIXED,
            threads: t,
            duration: options.duration,
            runs: options.runs,
            seed: options.seed,
        };
        let (result, d) = measure_cell(&cell, &stats);
        if let Some(v) = result.violation.clone() {
            out.violation(v);
        }
        points.push((i as f64, d.abort_rate().unwrap_or(0.0) * 100.0));
        sweep_table.rows.push(vec![
            threads_label(t),
            format!("{:.2}", result.median_ops() / 1e6),
            percent(d.abort_rate()),
            format!(
                "{:.5}",
                d.total_restarts() as f64 / d.total_ops().max(1) as f64
            ),
            percent(d.update_cas_failure_rate()),
            fixed(d.mean_leaf_chain()),
        ]);
    }
    out.table(&sweep_table);
    out.figure(Figure {
        file: "thread-sweep.svg".into(),
        title: format!("Abort rate vs threads, mixed workload ({} cores)", cores()),
        labels: sweep.iter().map(|t| t.to_string()).collect(),
        series: vec![Series {
            name: "bwtree".into(),
            colour: 0,
            points,
        }],
        x_desc: "threads".into(),
        y_desc: "aborts per op, %".into(),
        shade_from: shade_from(&sweep),
    });
    drop(tree);
    settle();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_shares_cut_trailing_zeros() {
        let shares = histogram_shares(&[1, 3, 0, 0, 0], 2);
        assert_eq!(shares, vec![25.0, 75.0]);
        assert_eq!(histogram_shares(&[0, 0, 0], 1), vec![0.0]);
        assert_eq!(histogram_shares(&[0, 0, 4], 1).len(), 3);
    }

    #[test]
    fn experiments_parse_by_name() {
        for e in Experiment::ALL {
            assert_eq!(Experiment::parse(e.name()), Some(e));
        }
        assert_eq!(Experiment::parse("run"), None);
    }
}
