//! `lab decomp`, the SIGMOD'18 §6.3 replica: what the delta chain costs a reader. Single-thread
//! lookups on the Bw-tree with and without delta chains, through frozen routes (no mapping
//! table), in a relaxed-loads build (a child process) and on the OLC B+tree baseline.

use std::ops::Bound;
use std::sync::Arc;

use bwtree::baselines::OlcBTree;
use bwtree::{ConcurrentMap, Config};

use super::ExpOptions;
use super::common::{fill, fixed, measure_cell};
use super::output::{Figure, Out, Table};
use super::trees::{ArcMap, StatsFn, bwtree};
use crate::cli::cores;
use crate::keys::{Chooser, Dist, KeyOrder, KeySet};
use crate::maps::{LabMap, settle};
use crate::plot::Series;
use crate::report::short_count;
use crate::runner::{Cell, run_cell};
use crate::workload::OpMix;

/// The `decomp` row that reads through [`BwTree::freeze_routes`]: no mapping table on the way down.
///
/// [`BwTree::freeze_routes`]: bwtree::BwTree::freeze_routes
const FROZEN_ROW: &str = "bwtree no delta chain + no mapping table";

/// The `decomp` row measured by a relaxed-loads build of the lab.
const RELAXED_ROW: &str = "bwtree no delta chain + relaxed loads";

/// What `decomp` measured.
pub struct Decomp {
    /// Keys loaded (and looked up).
    pub keys: usize,
    /// Whether this is the relaxed-loads build (which measures only its own row).
    pub relaxed_build: bool,
    /// Whether `--relaxed-lab` named a relaxed-loads build.
    pub relaxed_lab: bool,
    /// One row per variant, in the table's order.
    pub rows: Vec<Row>,
    /// Page visits of the frozen-routes row that fell back to the mapping table, if it ran.
    pub fallbacks: Option<u64>,
    /// Why the relaxed-loads row is missing, when `--relaxed-lab` could not provide it.
    pub relaxed_missing: Option<String>,
}

/// One variant's lookups.
pub struct Row {
    /// Variant name (the table's first column).
    pub name: String,
    /// Median million lookups per second.
    pub mops: f64,
    /// Mean leaf delta-chain length at access, where the variant counts it.
    pub chain: Option<f64>,
}

/// Loads each variant and runs single-thread lookups on it, plus the relaxed-loads build's row
/// when `--relaxed-lab` names one; wrong answers go to `out`.
pub fn measure(options: &ExpOptions, out: &mut Out) -> Decomp {
    let n = options.key_count();
    let keys = KeySet::new(n, KeyOrder::Random);
    let chooser = Chooser::new(n, Dist::Uniform, options.seed).expect("uniform");
    // A lab built with `--cfg bwtree_relaxed_loads` measures only the variant that build changes;
    // the normal build runs it as a child process (`--relaxed-lab`) for that row.
    let relaxed_build = cfg!(bwtree_relaxed_loads);
    let variants: &[&str] = if relaxed_build {
        &[RELAXED_ROW]
    } else {
        &[
            "bwtree default",
            "bwtree no delta chain",
            FROZEN_ROW,
            "olc-btree",
        ]
    };
    let mut fallbacks = None;
    let mut rows: Vec<Row> = Vec::new();
    for &name in variants {
        settle();
        if name == FROZEN_ROW {
            let mut tree = bwtree(Config {
                consolidate_every_update: true,
                ..Config::default()
            });
            if let Some(v) = fill(&tree, &keys, n, cores()) {
                out.violation(v);
                continue;
            }
            tree.run_maintenance();
            let frozen = FrozenMap(tree.freeze_routes());
            let cell = Cell {
                map: &frozen,
                keys: &keys,
                chooser: &chooser,
                mix: OpMix::GET,
                threads: 1,
                duration: options.duration,
                runs: options.runs,
                seed: options.seed,
            };
            let result = run_cell(&cell);
            if let Some(v) = result.violation.clone() {
                out.violation(v);
            }
            fallbacks = Some(frozen.0.fallbacks());
            rows.push(Row {
                name: name.to_string(),
                mops: result.median_ops() / 1e6,
                chain: None,
            });
            drop(tree);
            settle();
            continue;
        }
        let no_chain = name.contains("no delta chain");
        let tree = (name != "olc-btree").then(|| {
            Arc::new(bwtree(Config {
                consolidate_every_update: no_chain,
                ..Config::default()
            }))
        });
        let (map, stats): (Box<LabMap>, Option<StatsFn>) = match &tree {
            None => (Box::new(OlcBTree::new()), None),
            Some(tree) => {
                let t2 = tree.clone();
                (
                    Box::new(ArcMap(tree.clone())),
                    Some(Box::new(move || t2.stats())),
                )
            }
        };
        if let Some(v) = fill(&*map, &keys, n, cores()) {
            out.violation(v);
            continue;
        }
        if let (true, Some(tree)) = (no_chain, &tree) {
            // The lower halves of splits keep their split delta until next written: consolidate them.
            tree.run_maintenance();
        }
        let cell = Cell {
            map: &*map,
            keys: &keys,
            chooser: &chooser,
            mix: OpMix::GET,
            threads: 1,
            duration: options.duration,
            runs: options.runs,
            seed: options.seed,
        };
        let (result, chain) = match &stats {
            Some(stats) => {
                let (r, d) = measure_cell(&cell, &**stats);
                (r, d.mean_leaf_chain())
            }
            None => (run_cell(&cell), None),
        };
        if let Some(v) = result.violation.clone() {
            out.violation(v);
        }
        rows.push(Row {
            name: name.to_string(),
            mops: result.median_ops() / 1e6,
            chain,
        });
        drop(map);
        drop(tree);
        settle();
    }
    let mut relaxed_missing = None;
    if let (false, Some(lab)) = (relaxed_build, &options.relaxed_lab) {
        settle();
        match relaxed_row(lab, options) {
            Ok(row) => rows.insert(2.min(rows.len()), row),
            Err(message) => relaxed_missing = Some(message),
        }
    }
    Decomp {
        keys: n,
        relaxed_build,
        relaxed_lab: options.relaxed_lab.is_some(),
        rows,
        fallbacks,
        relaxed_missing,
    }
}

/// Writes the description, the measured and the published table, the notes on the frozen and
/// relaxed rows, and the figure; a missing relaxed-loads row is also recorded as an error.
pub fn report(decomp: &Decomp, out: &mut Out) {
    let relaxed_build = decomp.relaxed_build;
    out.text(&format!(
        "## SIGMOD'18 §6.3 replica: what the delta chain costs a reader\n\n\
         One thread, lookups only (every one must hit), {} random keys loaded on {} threads. \
         Variants: the Bw-tree with the default Config (leaves keep delta chains of up to {}); \
         the same code with `consolidate_every_update` (each page consolidated after every delta, \
         plus a `run_maintenance` pass after the load: no delta chain); that variant built with \
         `RUSTFLAGS=\"--cfg bwtree_relaxed_loads\"` (every acquire load of a published page or \
         root is `Relaxed`, the counterpart of the paper's \"no std::atomic\" step; sound only \
         because one thread reads a tree whose loaders have been joined; measured in a child \
         process, present when `--relaxed-lab` names such a build); and the crate's OLC B+tree \
         baseline (`bwtree::baselines::OlcBTree`).{}\n",
        short_count(decomp.keys),
        cores(),
        Config::default().leaf_chain_threshold,
        if relaxed_build {
            " **This is the relaxed-loads build: it measures only that variant.**"
        } else {
            ""
        }
    ));
    if let Some(message) = &decomp.relaxed_missing {
        out.text(&format!(
            "**The relaxed-loads row is missing:** {message}\n"
        ));
        out.error(format!("the relaxed-loads row: {message}"));
    }
    let mut table = Table::new(
        "decomp",
        &[
            "variant",
            "Mops/s",
            "ratio to bwtree default",
            "mean leaf chain at access",
        ],
    );
    let base = decomp.rows.first().map_or(0.0, |r| r.mops);
    let mut points = Vec::new();
    for (i, row) in decomp.rows.iter().enumerate() {
        let mops = row.mops;
        points.push((i as f64, mops));
        table.rows.push(vec![
            row.name.clone(),
            format!("{mops:.2}"),
            if base > 0.0 {
                format!("{:.2}", mops / base)
            } else {
                "—".into()
            },
            fixed(row.chain),
        ]);
    }
    out.table(&table);
    let mut published = Table::new(
        "decomp-published",
        &[
            "variant (SIGMOD'18 Fig. 18)",
            "Mops/s",
            "ratio to OpenBw-Tree",
        ],
    );
    for (v, m) in [
        ("OpenBw-Tree", 1.31),
        ("no delta chain", 1.61),
        ("also no std::atomic", 1.67),
        ("also no mapping table", 1.97),
        ("BTreeOLC", 2.27),
    ] {
        published.rows.push(vec![
            v.into(),
            format!("{m:.2}"),
            format!("{:.2}", m / 1.31),
        ]);
    }
    out.text(
        "Published (Wang et al., SIGMOD 2018, §6.3 / Fig. 18: single thread, read-only, 50M keys; \
         the paper's text gives +23% for removing the delta chain and +18% for removing the mapping \
         table):\n",
    );
    out.table(&published);
    if let Some(fallbacks) = decomp.fallbacks {
        out.text(&format!(
            "The \"{FROZEN_ROW}\" row reads through `BwTree::freeze_routes` (the same tree, loaded \
             without delta chains, then frozen: every inner page stores its children's heads next \
             to their PIDs, and lookups follow those instead of the mapping table); page visits \
             that fell back to the mapping table during its runs: {fallbacks}.\n"
        ));
    }
    if !decomp.relaxed_lab && !relaxed_build {
        out.text(
            "The relaxed-loads row needs a second build: `RUSTFLAGS=\"--cfg \
             bwtree_relaxed_loads\" cargo build --release --target-dir target/relaxed --example \
             lab`, then `lab decomp --relaxed-lab target/relaxed/release/examples/lab` \
             (`scripts/reproduce.sh` does both).\n",
        );
    }
    out.figure(Figure {
        file: "decomp.svg".into(),
        title: "§6.3 replica: single-thread lookups (million ops/s)".into(),
        labels: decomp.rows.iter().map(|r| r.name.clone()).collect(),
        series: vec![Series {
            name: "lookups".into(),
            colour: 0,
            points,
        }],
        x_desc: "variant".into(),
        y_desc: "million ops/s".into(),
        shade_from: None,
    });
}

/// A frozen view behind the lab's map interface. Lookups only: `decomp` runs nothing else, and a
/// frozen tree cannot change.
struct FrozenMap<'t>(bwtree::FrozenRoutes<'t, u64, u64>);

impl ConcurrentMap<u64, u64> for FrozenMap<'_> {
    fn name(&self) -> &'static str {
        "bwtree-frozen-routes"
    }
    fn insert(&self, _key: u64, _value: u64) -> Option<u64> {
        unreachable!("a frozen view is read-only; decomp only looks keys up")
    }
    fn get(&self, key: &u64) -> Option<u64> {
        self.0.get(key)
    }
    fn remove(&self, _key: &u64) -> Option<u64> {
        unreachable!("a frozen view is read-only; decomp only looks keys up")
    }
    fn scan(&self, _: Bound<&u64>, _: Bound<&u64>, _: usize, _: &mut Vec<(u64, u64)>) -> usize {
        unreachable!("a frozen view is read-only; decomp only looks keys up")
    }
}

/// Runs `lab decomp` in the relaxed-loads build `lab` with the same sizes and seed, and reads its
/// one row back from the child's CSV.
fn relaxed_row(lab: &std::path::Path, options: &ExpOptions) -> Result<Row, String> {
    let dir = options.out.join("relaxed-build");
    let status = std::process::Command::new(lab)
        .arg("decomp")
        .args(["--keys", &options.key_count().to_string()])
        .args(["--duration", &format!("{}ms", options.duration.as_millis())])
        .args(["--runs", &options.runs.to_string()])
        .args(["--seed", &options.seed.to_string()])
        .arg("--out")
        .arg(&dir)
        .status()
        .map_err(|e| format!("cannot run {}: {e}", lab.display()))?;
    if !status.success() {
        return Err(format!("{} decomp exited with {status}", lab.display()));
    }
    let csv = std::fs::read_to_string(dir.join("decomp.csv"))
        .map_err(|e| format!("cannot read the child's decomp.csv: {e}"))?;
    let row = csv
        .lines()
        .find(|line| line.starts_with(RELAXED_ROW))
        .ok_or_else(|| {
            format!(
                "{} is not a relaxed-loads build (no {RELAXED_ROW:?} row)",
                lab.display()
            )
        })?;
    let cells: Vec<&str> = row.split(',').collect();
    let mops = cells
        .get(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("unreadable row {row:?}"))?;
    let chain = cells.get(3).and_then(|c| c.parse().ok());
    Ok(Row {
        name: RELAXED_ROW.to_string(),
        mops,
        chain,
    })
}
