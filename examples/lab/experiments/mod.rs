//! The paper experiments, one subcommand and one module each: [`table1`] and [`fig5`] (ICDE'13
//! Table I and Fig. 5), [`table2`] and [`decomp`] (SIGMOD'18 Table 2 and §6.3), [`skew`] (curves
//! neither paper published: retries under Zipfian skew, the leaf chain-length distribution at
//! access, a thread sweep) and [`bulk`] (batch operations against their one-by-one equivalents on
//! every map).
//!
//! Each one builds Bw-trees with the configuration it studies, drives them with [`runner::Cell`]s
//! (or, for the insert-only Table 2, with its own key streams), reads the tree's
//! [`StatsSnapshot`] before and after each cell and writes `report.md`, one CSV file per table and
//! SVG figures into its output folder. Every answer is checked as in the default report; a wrong one
//! makes the experiment exit with status 1.
//!
//! Every experiment module has a `measure` function, which runs the experiment and returns what it
//! measured as a plain struct (recording wrong answers in the [`Out`] as it goes), and a `report`
//! function, which turns that struct into the report's text, tables and figures. Shared pieces:
//! [`output`] (the report being written: [`Out`], [`Table`](output::Table),
//! [`Figure`](output::Figure)), [`common`] (loading a map, measuring a cell, number formats) and
//! [`trees`] (the Bw-trees the experiments build).
//!
//! [`runner::Cell`]: crate::runner::Cell
//! [`StatsSnapshot`]: bwtree::StatsSnapshot

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::cli::cores;

mod bulk;
mod common;
mod decomp;
mod fig5;
mod output;
mod skew;
mod table1;
mod table2;
mod trees;

use output::Out;

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
        Experiment::Skew => skew::report(&skew::measure(options, &mut out), &mut out),
        Experiment::Bulk => {
            if let Some(bulk) = bulk::measure(options, &mut out) {
                bulk::report(&bulk, &mut out);
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn experiments_parse_by_name() {
        for e in Experiment::ALL {
            assert_eq!(Experiment::parse(e.name()), Some(e));
        }
        assert_eq!(Experiment::parse("run"), None);
    }
}
