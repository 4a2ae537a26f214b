//! `lab run`: the default report. For each map: load it once (recording shape and memory at each
//! checkpoint), run the read-only workloads, then the insert and mixed ones, then drop it.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::{RunOptions, cores};
use crate::keys::{Chooser, KeySet};
use crate::load::{Checkpoint, load};
use crate::maps::{self, MapFactory};
use crate::runner::{Cell, CellResult, run_cell};
use crate::workload::Workload;

/// One measured cell of the report.
pub struct CellRecord {
    /// The workload.
    pub workload: Workload,
    /// The map's name.
    pub map: String,
    /// Worker threads.
    pub threads: usize,
    /// What was measured.
    pub result: CellResult,
    /// Wall time of the whole cell: every run, thread start-up and untimed clean-up.
    pub wall: Duration,
}

/// One map's load.
pub struct LoadRecord {
    /// The map's name.
    pub map: String,
    /// Shape and memory at each checkpoint.
    pub checkpoints: Vec<Checkpoint>,
    /// Inserts per second while loading.
    pub ops_per_sec: f64,
    /// Wall time of the load, checkpoints included.
    pub wall: Duration,
}

/// Everything a run produced, for the report and the plots.
pub struct Results {
    /// The options it ran with.
    pub options: RunOptions,
    /// The command line, for the report.
    pub command: String,
    /// Hardware threads of the machine.
    pub cores: usize,
    /// The maps, in report order.
    pub maps: Vec<String>,
    /// Every cell, in run order.
    pub cells: Vec<CellRecord>,
    /// Every load.
    pub loads: Vec<LoadRecord>,
    /// Wrong answers: each disqualifies the cell (or, during a load, the map).
    pub violations: Vec<String>,
    /// Wall time of the whole run.
    pub wall: Duration,
}

impl Results {
    /// The cell for `(workload, map, threads)`, if it ran.
    pub fn cell(&self, workload: Workload, map: &str, threads: usize) -> Option<&CellRecord> {
        self.cells
            .iter()
            .find(|c| c.workload == workload && c.map == map && c.threads == threads)
    }

    /// The thread counts `workload` ran with.
    pub fn threads_of(&self, workload: Workload) -> Vec<usize> {
        self.options
            .threads
            .iter()
            .copied()
            .filter(|&t| workload.runs_with(t))
            .collect()
    }

    /// The reported throughput of a cell (pairs/s for scans, ops/s otherwise), unless the map gave
    /// a wrong answer in it.
    pub fn throughput(&self, workload: Workload, map: &str, threads: usize) -> Option<f64> {
        let cell = self.cell(workload, map, threads)?;
        if cell.result.violation.is_some() {
            return None;
        }
        Some(if workload.counts_pairs() {
            cell.result.median_pairs()
        } else {
            cell.result.median_ops()
        })
    }
}

/// Runs the default report's measurements.
pub fn run(options: &RunOptions, command: String) -> Result<Results, String> {
    let started = Instant::now();
    let factories = maps::select(&options.maps)?;
    let keys = KeySet::new(options.keys, options.order);
    let chooser = Chooser::new(keys.len(), options.dist, options.seed)?;
    let cells_per_map: usize = options
        .workloads
        .iter()
        .map(|&w| options.threads.iter().filter(|&&t| w.runs_with(t)).count())
        .sum();
    let progress = progress_bar((factories.len() * (cells_per_map + 1)) as u64);
    let mut results = Results {
        options: options.clone(),
        command,
        cores: cores(),
        maps: factories.iter().map(|f| f.name.clone()).collect(),
        cells: Vec::new(),
        loads: Vec::new(),
        violations: Vec::new(),
        wall: Duration::ZERO,
    };
    for factory in &factories {
        run_map(factory, options, &keys, &chooser, &progress, &mut results);
    }
    progress.finish_and_clear();
    results.wall = started.elapsed();
    Ok(results)
}

/// Loads one map and runs every selected workload on it.
fn run_map(
    factory: &MapFactory,
    options: &RunOptions,
    keys: &KeySet,
    chooser: &Chooser,
    progress: &ProgressBar,
    results: &mut Results,
) {
    progress.set_message(format!("{}: loading {} keys", factory.name, keys.len()));
    let started = Instant::now();
    let loaded = load(factory, keys, options.load_threads);
    progress.inc(1);
    results.loads.push(LoadRecord {
        map: factory.name.clone(),
        checkpoints: loaded.checkpoints.clone(),
        ops_per_sec: loaded.load_ops_per_sec,
        wall: started.elapsed(),
    });
    if let Some(violation) = loaded.violation {
        progress.println(format!("WRONG ANSWER while loading: {violation}"));
        results.violations.push(violation);
        progress.inc(
            options
                .workloads
                .iter()
                .map(|&w| options.threads.iter().filter(|&&t| w.runs_with(t)).count() as u64)
                .sum(),
        );
        return;
    }
    for &workload in &options.workloads {
        for &threads in options.threads.iter().filter(|&&t| workload.runs_with(t)) {
            progress.set_message(format!("{}: {} × {threads}", factory.name, workload.id()));
            let started = Instant::now();
            let result = run_cell(&Cell {
                map: &*loaded.map,
                keys,
                chooser,
                mix: workload.mix(),
                threads,
                duration: options.duration,
                runs: options.runs,
                seed: options.seed,
            });
            progress.inc(1);
            if let Some(violation) = &result.violation {
                progress.println(format!("WRONG ANSWER: {violation}"));
                results.violations.push(violation.clone());
            }
            results.cells.push(CellRecord {
                workload,
                map: factory.name.clone(),
                threads,
                result,
                wall: started.elapsed(),
            });
        }
    }
    drop(loaded.map);
    maps::settle();
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} cells  {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
