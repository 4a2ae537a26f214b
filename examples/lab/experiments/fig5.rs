//! `lab fig5`, the ICDE'13 Fig. 5 replica: throughput of the Table I mix against the leaf
//! delta-chain threshold, one fresh tree per threshold, with 8-byte values and 100-byte records.

use bwtree::{Config, StatsSnapshot};

use super::ExpOptions;
use super::common::{READ_WRITE_5_1, consolidations_per_k, fill, fixed, measure_cell, percent};
use super::output::{Figure, Out, Table};
use super::trees::measured_bwtree;
use crate::cli::cores;
use crate::keys::{Chooser, Dist, KeyOrder, KeySet};
use crate::maps::settle;
use crate::plot::Series;
use crate::report::short_count;
use crate::runner::Cell;

/// What `fig5` measured.
pub struct Fig5 {
    /// Preloaded keys (the key universe is twice as large).
    pub keys: usize,
    /// Threads of every cell.
    pub threads: usize,
    /// The leaf chain thresholds tried, in order (the figures' x axis).
    pub thresholds: Vec<usize>,
    /// One entry per record size: 8-byte values, then 100-byte records.
    pub records: Vec<Records>,
}

/// The cells of one record size.
pub struct Records {
    /// Row label: `8 B` or `100 B`.
    pub label: &'static str,
    /// One cell per threshold whose tree loaded correctly.
    pub cells: Vec<Measured>,
}

/// One measured cell.
pub struct Measured {
    /// Position of the threshold in [`Fig5::thresholds`].
    pub index: usize,
    /// The tree's `leaf_chain_threshold`.
    pub threshold: usize,
    /// Median operations per second.
    pub ops: f64,
    /// The tree's counters' increase over the cell.
    pub stats: StatsSnapshot,
}

/// Loads a fresh tree per record size and threshold and runs the 5:1 mix on it; wrong answers go
/// to `out`.
pub fn measure(options: &ExpOptions, out: &mut Out) -> Fig5 {
    let n = options.key_count();
    let keys = KeySet::new(2 * n, KeyOrder::Random);
    let chooser = Chooser::new(keys.len(), Dist::Uniform, options.seed).expect("uniform");
    let thresholds = vec![2usize, 4, 8, 16, 32];
    let threads = 2;
    let mut records = Vec::new();
    for (label, wide) in [("8 B", false), ("100 B", true)] {
        let mut cells = Vec::new();
        for (index, &threshold) in thresholds.iter().enumerate() {
            settle();
            let config = Config {
                leaf_chain_threshold: threshold,
                ..Config::default()
            };
            let (map, stats) = measured_bwtree(config, wide);
            if let Some(v) = fill(&*map, &keys, n, cores()) {
                out.violation(v);
                continue;
            }
            let cell = Cell {
                map: &*map,
                keys: &keys,
                chooser: &chooser,
                mix: READ_WRITE_5_1,
                threads,
                duration: options.duration,
                runs: options.runs,
                seed: options.seed,
            };
            let (result, d) = measure_cell(&cell, &*stats);
            if let Some(v) = result.violation.clone() {
                out.violation(v);
            }
            cells.push(Measured {
                index,
                threshold,
                ops: result.median_ops(),
                stats: d,
            });
            drop(map);
            settle();
        }
        records.push(Records { label, cells });
    }
    Fig5 {
        keys: n,
        threads,
        thresholds,
        records,
    }
}

/// Writes the description, the table and the two figures.
pub fn report(fig5: &Fig5, out: &mut Out) {
    let (n, threads) = (fig5.keys, fig5.threads);
    out.text(&format!(
        "## ICDE'13 Fig. 5 replica: throughput vs leaf delta-chain threshold\n\n\
         The Table I workload (5:1 lookups:upserts, uniform over {} keys, {} preloaded) on \
         {threads} threads, one fresh tree per `leaf_chain_threshold` (other fields default), with \
         8-byte values (the synthetic workload) and with 100-byte records (the paper's large Xbox \
         records; ours keep 8-byte keys). Mean chain = mean leaf delta-chain length met at access; \
         \"of best\" = throughput relative to the best threshold for the same record size.\n",
        short_count(2 * n),
        short_count(n)
    ));
    let mut table = Table::new(
        "fig5",
        &[
            "records",
            "leaf chain threshold",
            "Mops/s",
            "of best",
            "mean leaf chain at access",
            "consolidations per 1k ops",
            "updates failed %",
        ],
    );
    let (mut ops_series, mut chain_series) = (Vec::new(), Vec::new());
    for (colour, records) in fig5.records.iter().enumerate() {
        let mops = |cell: &Measured| cell.ops / 1e6;
        let best = records.cells.iter().map(mops).fold(0.0, f64::max);
        for cell in &records.cells {
            let d = &cell.stats;
            table.rows.push(vec![
                records.label.to_string(),
                cell.threshold.to_string(),
                format!("{:.2}", mops(cell)),
                if best > 0.0 {
                    format!("{:.2}", mops(cell) / best)
                } else {
                    "—".into()
                },
                fixed(d.mean_leaf_chain()),
                fixed(consolidations_per_k(d)),
                percent(d.update_cas_failure_rate()),
            ]);
        }
        let name = format!("bwtree, {} records", records.label);
        ops_series.push(Series {
            name: name.clone(),
            colour,
            points: records
                .cells
                .iter()
                .map(|c| {
                    let y = mops(c);
                    (c.index as f64, if best > 0.0 { y / best } else { 0.0 })
                })
                .collect(),
        });
        chain_series.push(Series {
            name,
            colour,
            points: records
                .cells
                .iter()
                .map(|c| (c.index as f64, c.stats.mean_leaf_chain().unwrap_or(0.0)))
                .collect(),
        });
    }
    out.table(&table);
    out.text(
        "Published (ICDE 2013, Fig. 5): bars per threshold for the Xbox and synthetic workloads; \
         small thresholds lose throughput to frequent consolidation, Xbox (large records) peaks \
         near 4 and the synthetic 8-byte workload tolerates about 8 without loss.\n",
    );
    let labels: Vec<String> = fig5.thresholds.iter().map(|t| t.to_string()).collect();
    out.figure(Figure {
        file: "fig5-throughput.svg".into(),
        title: format!(
            "Fig. 5 replica: 5:1 mix throughput vs leaf chain threshold, relative to the best \
             threshold ({threads} threads)"
        ),
        labels: labels.clone(),
        series: ops_series,
        x_desc: "leaf chain threshold".into(),
        y_desc: "throughput / best threshold's".into(),
        shade_from: None,
    });
    out.figure(Figure {
        file: "fig5-chain.svg".into(),
        title: "Fig. 5 replica: mean leaf chain at access vs threshold".into(),
        labels,
        series: chain_series,
        x_desc: "leaf chain threshold".into(),
        y_desc: "deltas".into(),
        shade_from: None,
    });
}
