//! The bwtree lab: measures the Bw-tree next to the crate's baselines and peer crates, checks every
//! answer while doing so, and writes a markdown report, CSV files and SVG plots.
//!
//! ```text
//! cargo run --release --example lab                 # the full default report (target/lab/latest)
//! cargo run --release --example lab -- --quick      # a smoke run with tiny sizes
//! cargo run --release --example lab -- --help       # options
//! ```
//!
//! Modules: `cli` (options), `keys` (key sets, values, distributions), `maps` (the maps and the peer
//! adapters), `workload` (operation mixes), `runner` (one measured cell), `load` (loading a map,
//! with height, fill and memory checkpoints), `suite` (the default report's sequence), `report`
//! (markdown and CSV), `plot` (SVG), `alloc` (the counting allocator behind bytes per key).
//! `experiments` holds the paper experiments, one module each (`table1`, `fig5`, `table2`,
//! `decomp`, `skew`), built from `runner::Cell` and the tree's statistics, and `bulk` (batch
//! operations against one-by-one on every map); each measures into a plain struct that its report
//! function turns into markdown, CSV and SVG.
// `clippy.toml`'s atomics rule is for the crate's `src/`: tests and tools use std's atomics.
#![allow(clippy::disallowed_types)]

mod alloc;
mod cli;
mod experiments;
mod keys;
mod load;
mod maps;
mod plot;
mod report;
mod runner;
mod suite;
mod workload;

use std::process::ExitCode;

use cli::Command;

#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;

fn main() -> ExitCode {
    let command = match cli::parse(std::env::args().skip(1)) {
        Ok(command) => command,
        Err(message) => {
            eprintln!("error: {message}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Help => {
            print!("{}", cli::USAGE);
            ExitCode::SUCCESS
        }
        Command::List => {
            println!("maps:");
            for f in maps::all() {
                println!("  {:<16} {}", f.name, f.about);
            }
            println!("workloads:");
            for w in workload::Workload::ALL {
                println!("  {:<16} {}", w.id(), w.describe());
            }
            println!("experiments (subcommands):");
            for e in experiments::Experiment::ALL {
                println!("  {:<16} {}", e.name(), e.describe());
            }
            ExitCode::SUCCESS
        }
        Command::Run(options) => run(&options),
        Command::Experiment(options) => ExitCode::from(experiments::run(&options, command_line())),
    }
}

/// The command that started this run, for the reports.
fn command_line() -> String {
    std::iter::once("cargo run --release --example lab --".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `lab run`: measure, then write the report, CSV files and figures.
fn run(options: &cli::RunOptions) -> ExitCode {
    let command = command_line();
    let cores = cli::cores();
    eprintln!(
        "lab: {} cores; thread counts above {cores} are oversubscribed; {} keys; writing to {}",
        cores,
        options.keys,
        options.out.display()
    );
    let results = match suite::run(options, command) {
        Ok(results) => results,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let written = std::fs::create_dir_all(&options.out)
        .map_err(|e| e.to_string())
        .and_then(|()| plot::write(&results, &options.out))
        .and_then(|figures| {
            report::write(&results, &options.out, &figures).map_err(|e| e.to_string())
        });
    if let Err(message) = written {
        eprintln!(
            "error: writing the report to {}: {message}",
            options.out.display()
        );
        return ExitCode::from(2);
    }
    eprintln!(
        "lab: done in {:.1} s; report: {}",
        results.wall.as_secs_f64(),
        options.out.join("report.md").display()
    );
    if results.violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "lab: {} wrong answer(s); see the report",
            results.violations.len()
        );
        ExitCode::from(1)
    }
}
