//! `lab skew`, curves neither paper published: update CAS failures and abort rates under Zipfian
//! key choice, the leaf delta-chain length distribution at access, and a thread sweep of the abort
//! rate on the default report's mixed workload, all on one loaded tree.

use bwtree::{CHAIN_BUCKETS, Config, Level, StatsSnapshot};

use super::ExpOptions;
use super::common::{
    READ_WRITE_5_1, consolidations_per_k, fill, fixed, measure_cell, percent, shade_from,
    threads_label,
};
use super::output::{Figure, Out, Table};
use super::trees::bwtree;
use crate::cli::cores;
use crate::keys::{Chooser, Dist, KeyOrder, KeySet};
use crate::maps::settle;
use crate::plot::Series;
use crate::report::short_count;
use crate::runner::Cell;
use crate::workload::OpMix;

/// 50% lookups, 50% upserts of preloaded keys.
const READ_UPDATE_50_50: OpMix = OpMix {
    get: 50,
    insert: 50,
    ..READ_WRITE_5_1
};

/// What `skew` measured.
pub struct Skew {
    /// Preloaded keys.
    pub keys: usize,
    /// The thread counts of every key distribution, in order.
    pub threads: Vec<usize>,
    /// Whether the tree loaded correctly; if not, nothing else was measured.
    pub loaded: bool,
    /// One entry per key distribution, uniform first.
    pub dists: Vec<DistCells>,
    /// The thread sweep on the mixed workload, one cell per thread count.
    pub sweep: Vec<Measured>,
}

/// The cells of one key distribution.
pub struct DistCells {
    /// Row label: `uniform (θ=0)` or `θ=…`.
    pub label: &'static str,
    /// One cell per thread count, in the order of [`Skew::threads`].
    pub cells: Vec<Measured>,
}

/// One measured cell.
pub struct Measured {
    /// Threads.
    pub threads: usize,
    /// Median operations per second.
    pub ops: f64,
    /// The tree's counters' increase over the cell.
    pub stats: StatsSnapshot,
}

/// Loads one tree, runs the 50:50 mix under each key distribution and thread count, then the thread
/// sweep of the mixed workload; wrong answers go to `out`.
pub fn measure(options: &ExpOptions, out: &mut Out) -> Skew {
    let n = options.key_count();
    let keys = KeySet::new(n, KeyOrder::Random);
    let dists: [(&str, Dist); 4] = [
        ("uniform (θ=0)", Dist::Uniform),
        ("θ=0.5", Dist::Zipf { theta: 0.5 }),
        ("θ=0.9", Dist::Zipf { theta: 0.9 }),
        ("θ=0.99", Dist::Zipf { theta: 0.99 }),
    ];
    let threads = vec![2usize, 4];
    let mut skew = Skew {
        keys: n,
        threads,
        loaded: false,
        dists: Vec::new(),
        sweep: Vec::new(),
    };
    settle();
    let tree = bwtree(Config::default());
    if let Some(v) = fill(&tree, &keys, n, cores()) {
        out.violation(v);
        return skew;
    }
    skew.loaded = true;
    let stats = || tree.stats();
    let mut measure_mix = |chooser: &Chooser, mix: OpMix, threads: usize| {
        let cell = Cell {
            map: &tree,
            keys: &keys,
            chooser,
            mix,
            threads,
            duration: options.duration,
            runs: options.runs,
            seed: options.seed,
        };
        let (result, d) = measure_cell(&cell, &stats);
        if let Some(v) = result.violation.clone() {
            out.violation(v);
        }
        Measured {
            threads,
            ops: result.median_ops(),
            stats: d,
        }
    };
    for (label, dist) in dists {
        let chooser = Chooser::new(n, dist, options.seed).expect("valid θ");
        let cells = skew
            .threads
            .iter()
            .map(|&t| measure_mix(&chooser, READ_UPDATE_50_50, t))
            .collect();
        skew.dists.push(DistCells { label, cells });
    }

    // Thread sweep on the default report's mixed workload.
    let sweep: Vec<usize> = if options.quick {
        vec![1, 2, 4, 8]
    } else {
        vec![1, 2, 4, 8, 16, 32, 64]
    };
    let chooser = Chooser::new(n, Dist::Uniform, options.seed).expect("uniform");
    skew.sweep = sweep
        .iter()
        .map(|&t| measure_mix(&chooser, OpMix::MIXED, t))
        .collect();
    drop(tree);
    settle();
    skew
}

/// Writes the description, then (if the tree loaded) the skew table, the chain-length
/// distribution and the thread sweep, each with its figure.
pub fn report(skew: &Skew, out: &mut Out) {
    out.text(&format!(
        "## Skew: retries under Zipfian key choice\n\n\
         {} random keys preloaded into one Bw-tree (default Config); 50% lookups, 50% upserts of \
         preloaded keys, keys chosen Zipfian with exponent θ (the hottest keys scattered over the \
         key space). Update CAS failure rate per attempted update CAS; abort rate = SIGMOD'18's \
         aborts per operation; restarts from the root per operation; consolidations per 1,000 \
         operations; mean leaf delta-chain length at access.\n",
        short_count(skew.keys)
    ));
    if !skew.loaded {
        return;
    }
    report_skew(skew, out);
    report_chains(skew, out);
    report_sweep(&skew.sweep, out);
}

/// The table and figure of the 50:50 mix by key distribution and threads.
fn report_skew(skew: &Skew, out: &mut Out) {
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
    let mut series: Vec<Series> = Vec::new();
    for (c, dist) in skew.dists.iter().enumerate() {
        let mut points = Vec::new();
        for (i, cell) in dist.cells.iter().enumerate() {
            let d = &cell.stats;
            points.push((i as f64, d.update_cas_failure_rate().unwrap_or(0.0) * 100.0));
            table.rows.push(vec![
                dist.label.to_string(),
                threads_label(cell.threads),
                format!("{:.2}", cell.ops / 1e6),
                percent(d.update_cas_failure_rate()),
                percent(d.abort_rate()),
                format!(
                    "{:.5}",
                    d.total_restarts() as f64 / d.total_ops().max(1) as f64
                ),
                fixed(consolidations_per_k(d)),
                fixed(d.mean_leaf_chain()),
            ]);
        }
        series.push(Series {
            name: dist.label.to_string(),
            colour: c,
            points,
        });
    }
    out.table(&table);
    out.figure(Figure {
        file: "skew-update-failures.svg".into(),
        title: format!("Update CAS failures vs threads by skew ({} cores)", cores()),
        labels: skew.threads.iter().map(|t| t.to_string()).collect(),
        series,
        x_desc: "threads".into(),
        y_desc: "failed update CAS, %".into(),
        shade_from: shade_from(&skew.threads),
    });
}

/// The chain-length distribution at access, from each distribution's first (fewest-threads) cell.
fn report_chains(skew: &Skew, out: &mut Out) {
    let histograms: Vec<(String, [u64; CHAIN_BUCKETS])> = skew
        .dists
        .iter()
        .filter_map(|dist| {
            let first = dist.cells.first()?;
            Some((
                dist.label.to_string(),
                *first.stats.chain_histogram(Level::Leaf),
            ))
        })
        .collect();
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
        skew.threads[0],
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
}

/// The table and figure of the thread sweep on the mixed workload.
fn report_sweep(sweep: &[Measured], out: &mut Out) {
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
    for (i, cell) in sweep.iter().enumerate() {
        let d = &cell.stats;
        points.push((i as f64, d.abort_rate().unwrap_or(0.0) * 100.0));
        sweep_table.rows.push(vec![
            threads_label(cell.threads),
            format!("{:.2}", cell.ops / 1e6),
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
    let threads: Vec<usize> = sweep.iter().map(|c| c.threads).collect();
    out.figure(Figure {
        file: "thread-sweep.svg".into(),
        title: format!("Abort rate vs threads, mixed workload ({} cores)", cores()),
        labels: threads.iter().map(|t| t.to_string()).collect(),
        series: vec![Series {
            name: "bwtree".into(),
            colour: 0,
            points,
        }],
        x_desc: "threads".into(),
        y_desc: "aborts per op, %".into(),
        shade_from: shade_from(&threads),
    });
}

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
}
