//! The command line: `lab [SUBCOMMAND] [OPTIONS]`.

use std::path::PathBuf;
use std::time::Duration;

use crate::experiments::{ExpOptions, Experiment};
use crate::keys::{Dist, KeyOrder, MAX_KEYS};
use crate::workload::Workload;

/// What to do.
#[derive(Debug, PartialEq)]
pub enum Command {
    /// Print the usage text.
    Help,
    /// List maps, workloads and experiments.
    List,
    /// Run the default report with these options.
    Run(RunOptions),
    /// Run one paper experiment.
    Experiment(ExpOptions),
}

/// Options of `lab run`.
#[derive(Clone, Debug, PartialEq)]
pub struct RunOptions {
    /// Maps to measure, by name, in report order.
    pub maps: Vec<String>,
    /// Thread counts of every workload (the mixed one stops at 32).
    pub threads: Vec<usize>,
    /// Preloaded keys.
    pub keys: usize,
    /// Random or sequential keys.
    pub order: KeyOrder,
    /// How workloads choose keys.
    pub dist: Dist,
    /// Length of one timed run.
    pub duration: Duration,
    /// Runs per cell (the median is reported).
    pub runs: usize,
    /// Threads that load the maps.
    pub load_threads: usize,
    /// Workloads to run.
    pub workloads: Vec<Workload>,
    /// Where the report goes.
    pub out: PathBuf,
    /// Whether `--quick` was given (recorded in the report).
    pub quick: bool,
    /// Seed of the key streams.
    pub seed: u64,
}

impl RunOptions {
    /// The defaults of a full run.
    pub fn full() -> RunOptions {
        RunOptions {
            maps: crate::maps::all().into_iter().map(|f| f.name).collect(),
            threads: vec![1, 2, 4, 8, 16, 32, 64],
            keys: 1_000_000,
            order: KeyOrder::Random,
            dist: Dist::Uniform,
            duration: Duration::from_millis(50),
            runs: 3,
            load_threads: cores(),
            workloads: Workload::ALL.to_vec(),
            out: PathBuf::from("target/lab/latest"),
            quick: false,
            seed: 0x1AB,
        }
    }

    /// `--quick`: a smoke run with tiny sizes (seconds).
    pub fn quick() -> RunOptions {
        RunOptions {
            threads: vec![1, 2, 4],
            keys: 20_000,
            duration: Duration::from_millis(20),
            runs: 1,
            out: PathBuf::from("target/lab/quick"),
            quick: true,
            ..RunOptions::full()
        }
    }
}

/// The machine's hardware threads (1 if unknown).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The usage text.
pub const USAGE: &str = "\
The bwtree lab: throughput, shape and memory of the Bw-tree next to baselines and peer crates.

USAGE:
    cargo run --release --example lab -- [SUBCOMMAND] [OPTIONS]

SUBCOMMANDS:
    run     the default report (the default when no subcommand is given)
    list    list the maps, workloads and experiments
    help    print this text
    table1  ICDE'13 Table I replica: failed CAS installs per kind, 5:1 read:write mix
    fig5    ICDE'13 Fig. 5 replica: throughput vs leaf delta-chain threshold
    table2  SIGMOD'18 Table 2 replica: insert abort rates (random, monotonic, right edge)
    decomp  SIGMOD'18 §6.3 replica: single-thread reads with/without delta chains, OLC B+tree
    skew    Zipfian skew, leaf chain-length distribution at access, abort-rate thread sweep
    bulk    bulk load, insert_batch and get_many vs one-by-one inserts and gets, every map

OPTIONS (run):
    --maps A,B,...         maps to measure (default: all; see `list`)
    --threads 1,2,4,...    thread counts (default 1,2,4,8,16,32,64; the mixed workload stops at 32)
    --keys N               preloaded keys, e.g. 1M, 250k, 5000 (default 1M)
    --key-order ORDER      random (default) or sequential: keys 0..N loaded ascending, and the
                           insert workload appends ascending keys
    --dist DIST            key choice of get/scan/mixed: uniform (default) or zipf[:THETA]
                           (Zipfian, THETA default 0.99)
    --duration D           length of one timed run, e.g. 50ms, 0.5s (default 50ms)
    --runs R               runs per cell; the report shows the median (default 3)
    --load-threads T       threads that load each map (default: the core count)
    --workloads W,...      subset of get,scan10,scan100,scan1000,insert,mixed (default all)
    --out DIR              output folder (default target/lab/latest; --quick: target/lab/quick)
    --seed S               seed of the key streams
    --quick                smoke run: 20k keys, threads 1,2,4, 20ms, 1 run (later options
                           still apply)
    -h, --help             print this text

OPTIONS (table1, fig5, table2, decomp, skew, bulk):
    --quick                tiny sizes (20k keys, 20ms, 1 run; seconds; bulk: batches of 100
                           and 1k instead of 1k and 10k)
    --out DIR              output folder (default target/lab/<subcommand>)
    --keys N               preloaded keys (table2: keys inserted per cell; bulk: keys loaded
                           and preloaded; default 1M)
    --duration D           length of one timed run (default 250ms; bulk times whole calls)
    --runs R               runs per cell (default 3)
    --seed S               seed of the key streams
    --relaxed-lab PATH     decomp only: a lab built with RUSTFLAGS=\"--cfg bwtree_relaxed_loads\",
                           run in a child process for the relaxed-loads row
    --maps A,B,...         bulk only: maps to measure (default: all; see `list`)

OUTPUT: DIR/report.md (tables), DIR/*.csv, DIR/*.svg (plots).
Exit status: 0 on success, 1 if a map gave a wrong answer, 2 on bad usage or an I/O error.
";

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let args: Vec<String> = args.into_iter().collect();
    let mut rest = args.as_slice();
    match rest.first().map(String::as_str) {
        Some("help") => return Ok(Command::Help),
        Some("list") => {
            return if rest.len() == 1 {
                Ok(Command::List)
            } else {
                Err(format!("`list` takes no options (got {:?})", rest[1]))
            };
        }
        Some("run") => rest = &rest[1..],
        Some(name) if Experiment::parse(name).is_some() => {
            return parse_experiment(Experiment::parse(name).expect("checked"), &rest[1..]);
        }
        Some(other) if !other.starts_with('-') => {
            return Err(format!(
                "unknown subcommand {other:?}; available: run, list, help, table1, fig5, table2, decomp, \
                 skew, bulk"
            ));
        }
        _ => {}
    }
    if rest.iter().any(|a| a == "-h" || a == "--help") {
        return Ok(Command::Help);
    }
    let mut options = if rest.iter().any(|a| a == "--quick") {
        RunOptions::quick()
    } else {
        RunOptions::full()
    };
    let mut it = rest.iter();
    while let Some(flag) = it.next() {
        if flag == "--quick" {
            continue;
        }
        let value = it
            .next()
            .ok_or_else(|| format!("option {flag} needs a value"))?
            .as_str();
        let bad = |what: &str| format!("invalid value {value:?} for {flag}: {what}");
        match flag.as_str() {
            "--maps" => {
                options.maps = list(value);
                crate::maps::select(&options.maps)?;
            }
            "--threads" => {
                options.threads = list(value)
                    .iter()
                    .map(|t| parse_count(t).filter(|&t| (1..=1024).contains(&t)))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| bad("expected thread counts in 1..=1024, e.g. 1,2,4"))?;
                options.threads.sort_unstable();
                options.threads.dedup();
            }
            "--keys" => {
                options.keys = parse_count(value)
                    .filter(|&n| (1..=MAX_KEYS).contains(&n))
                    .ok_or_else(|| bad(&format!("expected a count in 1..={MAX_KEYS}, e.g. 1M")))?;
            }
            "--key-order" => {
                options.order = match value {
                    "random" => KeyOrder::Random,
                    "sequential" | "seq" => KeyOrder::Sequential,
                    _ => return Err(bad("expected random or sequential")),
                };
            }
            "--dist" => {
                options.dist = parse_dist(value)
                    .ok_or_else(|| bad("expected uniform or zipf[:THETA] with THETA ≥ 0"))?
            }
            "--duration" => {
                options.duration = parse_duration(value)
                    .filter(|d| !d.is_zero() && *d <= Duration::from_secs(600))
                    .ok_or_else(|| bad("expected a duration up to 600s, e.g. 100ms or 0.5s"))?;
            }
            "--runs" => {
                options.runs = parse_count(value)
                    .filter(|&r| (1..=1000).contains(&r))
                    .ok_or_else(|| bad("expected 1..=1000"))?;
            }
            "--load-threads" => {
                options.load_threads = parse_count(value)
                    .filter(|&t| (1..=1024).contains(&t))
                    .ok_or_else(|| bad("expected 1..=1024"))?;
            }
            "--workloads" => {
                options.workloads = list(value)
                    .iter()
                    .map(|w| Workload::parse(w))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| {
                        bad("expected a subset of get,scan10,scan100,scan1000,insert,mixed")
                    })?;
                // Keep the run order (read-only workloads first) whatever order they were given in.
                options.workloads = Workload::ALL
                    .into_iter()
                    .filter(|w| options.workloads.contains(w))
                    .collect();
            }
            "--out" => options.out = PathBuf::from(value),
            "--seed" => options.seed = value.parse().map_err(|_| bad("expected an integer"))?,
            _ => return Err(format!("unknown option {flag:?} (see --help)")),
        }
    }
    if options.maps.is_empty() || options.workloads.is_empty() || options.threads.is_empty() {
        return Err("--maps, --workloads and --threads must not be empty".into());
    }
    Ok(Command::Run(options))
}

/// Parses the options of an experiment subcommand.
fn parse_experiment(experiment: Experiment, rest: &[String]) -> Result<Command, String> {
    if rest.iter().any(|a| a == "-h" || a == "--help") {
        return Ok(Command::Help);
    }
    let mut options = ExpOptions::new(experiment, rest.iter().any(|a| a == "--quick"));
    let mut it = rest.iter();
    while let Some(flag) = it.next() {
        if flag == "--quick" {
            continue;
        }
        let value = it
            .next()
            .ok_or_else(|| format!("option {flag} needs a value"))?
            .as_str();
        let bad = |what: &str| format!("invalid value {value:?} for {flag}: {what}");
        match flag.as_str() {
            "--out" => options.out = PathBuf::from(value),
            "--keys" => {
                options.keys = Some(
                    parse_count(value)
                        .filter(|&n| (16..=MAX_KEYS / 2).contains(&n))
                        .ok_or_else(|| bad("expected a count of at least 16, e.g. 1M"))?,
                );
            }
            "--duration" => {
                options.duration = parse_duration(value)
                    .filter(|d| !d.is_zero() && *d <= Duration::from_secs(600))
                    .ok_or_else(|| bad("expected a duration up to 600s, e.g. 100ms or 0.5s"))?;
            }
            "--runs" => {
                options.runs = parse_count(value)
                    .filter(|&r| (1..=1000).contains(&r))
                    .ok_or_else(|| bad("expected 1..=1000"))?;
            }
            "--seed" => options.seed = value.parse().map_err(|_| bad("expected an integer"))?,
            "--relaxed-lab" if experiment == Experiment::Decomp => {
                options.relaxed_lab = Some(PathBuf::from(value));
            }
            "--maps" if experiment == Experiment::Bulk => {
                options.maps = list(value);
                if options.maps.is_empty() {
                    return Err(bad("expected at least one map"));
                }
                crate::maps::select(&options.maps)?;
            }
            _ => {
                return Err(format!(
                    "unknown option {flag:?} for {} (see --help)",
                    experiment.name()
                ));
            }
        }
    }
    Ok(Command::Experiment(options))
}

/// Splits a comma-separated list, dropping empty items.
fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// A count with an optional k/M suffix and `_` separators: `1M`, `250k`, `10_000`.
pub fn parse_count(text: &str) -> Option<usize> {
    let text = text.replace('_', "");
    let (digits, scale) = match text.chars().last()? {
        'k' | 'K' => (&text[..text.len() - 1], 1_000),
        'm' | 'M' => (&text[..text.len() - 1], 1_000_000),
        _ => (text.as_str(), 1),
    };
    digits.parse::<usize>().ok()?.checked_mul(scale)
}

/// A duration with a unit: `100ms`, `0.5s`, `2s`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let (number, unit) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else {
        return None;
    };
    let secs = number.parse::<f64>().ok()? * unit;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// `uniform`, `zipf` or `zipf:THETA`.
fn parse_dist(text: &str) -> Option<Dist> {
    match text.split_once(':') {
        None if text == "uniform" => Some(Dist::Uniform),
        None if text == "zipf" => Some(Dist::Zipf { theta: 0.99 }),
        Some(("zipf", theta)) => {
            let theta: f64 = theta.parse().ok()?;
            (theta.is_finite() && theta >= 0.0).then_some(Dist::Zipf { theta })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<RunOptions, String> {
        match parse(args.iter().map(|s| s.to_string()))? {
            Command::Run(options) => Ok(options),
            other => panic!("expected a run, got {other:?}"),
        }
    }

    #[test]
    fn defaults_subcommands_and_quick() {
        assert_eq!(run(&[]).unwrap(), RunOptions::full());
        assert_eq!(run(&["run"]).unwrap(), RunOptions::full());
        assert_eq!(parse(["list".to_string()]), Ok(Command::List));
        assert_eq!(parse(["--help".to_string()]), Ok(Command::Help));
        assert!(
            parse(["table9".to_string()])
                .unwrap_err()
                .contains("unknown subcommand")
        );
        let quick = run(&["--threads", "1,3", "--quick"]).unwrap();
        assert_eq!(quick.threads, vec![1, 3], "options apply on top of --quick");
        assert_eq!(quick.keys, RunOptions::quick().keys);
    }

    #[test]
    fn experiment_subcommands_take_their_options() {
        let args = |a: &[&str]| parse(a.iter().map(|s| s.to_string()));
        let Ok(Command::Experiment(o)) = args(&["table2", "--quick", "--out", "x", "--runs", "2"])
        else {
            panic!("expected an experiment");
        };
        assert_eq!(o.experiment, Experiment::Table2);
        assert!(o.quick);
        assert_eq!(o.out, PathBuf::from("x"));
        assert_eq!(o.runs, 2);
        assert_eq!(
            args(&["skew"]),
            Ok(Command::Experiment(ExpOptions::new(
                Experiment::Skew,
                false
            )))
        );
        assert!(args(&["fig5", "--threads", "2"]).is_err());
        assert!(
            args(&["fig5", "--maps", "bwtree"]).is_err(),
            "only bulk takes --maps"
        );
        let Ok(Command::Experiment(o)) = args(&["bulk", "--maps", "bwtree,skipmap", "--quick"])
        else {
            panic!("expected an experiment");
        };
        assert_eq!((o.experiment, o.maps.len()), (Experiment::Bulk, 2));
        assert!(args(&["bulk", "--maps", "nosuchmap"]).is_err());
        assert!(args(&["decomp", "--keys", "1"]).is_err());
    }

    #[test]
    fn values_parse_and_bad_ones_are_errors() {
        let o = run(&[
            "--keys",
            "250k",
            "--dist",
            "zipf:0.5",
            "--duration",
            "0.25s",
            "--threads",
            "4,1,4",
            "--workloads",
            "mixed,get",
            "--maps",
            "bwtree,skipmap",
            "--key-order",
            "seq",
        ])
        .unwrap();
        assert_eq!(o.keys, 250_000);
        assert_eq!(o.dist, Dist::Zipf { theta: 0.5 });
        assert_eq!(o.duration, Duration::from_millis(250));
        assert_eq!(o.threads, vec![1, 4]);
        assert_eq!(o.workloads, vec![Workload::Get, Workload::Mixed]);
        assert_eq!(o.maps, vec!["bwtree", "skipmap"]);
        assert_eq!(o.order, KeyOrder::Sequential);
        for bad in [
            &["--keys", "0"][..],
            &["--keys", "lots"],
            &["--threads", "0"],
            &["--duration", "100"],
            &["--dist", "zipf:-1"],
            &["--maps", "nosuchmap"],
            &["--workloads", "scan7"],
            &["--runs"],
            &["--frobnicate", "1"],
        ] {
            assert!(run(bad).is_err(), "{bad:?} must be rejected");
        }
        assert_eq!(parse_count("1_000_000"), Some(1_000_000));
        assert_eq!(parse_count("2M"), Some(2_000_000));
    }
}
