//! `lab table1`, the ICDE'13 Table I replica: failed CAS installs per kind under a 5:1 read:write
//! mix, with 8-byte values and with 100-byte records, at 2, 4 and 8 threads.

use bwtree::{CasKind, Config, StatsSnapshot};

use super::ExpOptions;
use super::common::{
    READ_WRITE_5_1, fill, measure_cell, percent, ratio, shade_from, threads_label,
};
use super::output::{Figure, Out, Table};
use super::trees::measured_bwtree;
use crate::cli::cores;
use crate::keys::{Chooser, Dist, KeyOrder, KeySet};
use crate::maps::settle;
use crate::plot::Series;
use crate::report::short_count;
use crate::runner::Cell;

/// ICDE'13 Table I, 8 threads on 4 cores / 8 hardware threads: (workload, failed updates %,
/// failed splits %, failed consolidates %).
const TABLE1_PUBLISHED: [(&str, &str, &str, &str); 3] = [
    ("Synthetic", "0.0003", "8.88", "7.35"),
    ("Xbox", "0.0171", "1.27", "0.22"),
    ("Dedup", "0.0013", "0.25", "1.19"),
];

/// What `table1` measured.
pub struct Table1 {
    /// Preloaded keys (the key universe is twice as large).
    pub keys: usize,
    /// The thread counts of every record size, in order.
    pub threads: Vec<usize>,
    /// One entry per record size whose tree loaded correctly.
    pub values: Vec<Values>,
}

/// The cells of one record size.
pub struct Values {
    /// Row label: `8 B` or `100 B`.
    pub label: &'static str,
    /// Colour of its line in the figure (by record size, whether or not the other one loaded).
    pub colour: usize,
    /// One cell per thread count, in the order of [`Table1::threads`].
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

/// Loads a tree per record size and runs the 5:1 mix at each thread count; wrong answers go to
/// `out`.
pub fn measure(options: &ExpOptions, out: &mut Out) -> Table1 {
    let n = options.key_count();
    // The key universe is twice the preload: upserts of the other half insert new keys, so pages
    // keep splitting during the measurement, as in the paper's synthetic workload.
    let keys = KeySet::new(2 * n, KeyOrder::Random);
    let chooser = Chooser::new(keys.len(), Dist::Uniform, options.seed).expect("uniform");
    let threads = vec![2, 4, 8];
    let mut values = Vec::new();
    for (colour, (label, wide)) in [("8 B", false), ("100 B", true)].into_iter().enumerate() {
        settle();
        let (map, stats) = measured_bwtree(Config::default(), wide);
        if let Some(v) = fill(&*map, &keys, n, cores()) {
            out.violation(v);
            continue;
        }
        let mut cells = Vec::new();
        for &t in &threads {
            let cell = Cell {
                map: &*map,
                keys: &keys,
                chooser: &chooser,
                mix: READ_WRITE_5_1,
                threads: t,
                duration: options.duration,
                runs: options.runs,
                seed: options.seed,
            };
            let (result, d) = measure_cell(&cell, &*stats);
            if let Some(v) = result.violation.clone() {
                out.violation(v);
            }
            cells.push(Measured {
                threads: t,
                ops: result.median_ops(),
                stats: d,
            });
        }
        values.push(Values {
            label,
            colour,
            cells,
        });
        drop(map);
        settle();
    }
    Table1 {
        keys: n,
        threads,
        values,
    }
}

/// Writes the description, the measured and the published table and the figure.
pub fn report(table1: &Table1, out: &mut Out) {
    let n = table1.keys;
    out.text(&format!(
        "## ICDE'13 Table I replica: failed CAS installs per kind\n\n\
         {} uniformly random 8-byte keys preloaded; then 83% lookups and 17% upserts (5:1), keys \
         drawn uniformly from a universe of {} (half of them preloaded, so about half the upserts \
         insert a new key and pages keep splitting). Each row: counters from `stats().since(before)` \
         over the cell. Failure rate = failed CAS / attempted CAS of that kind, in percent. \
         \"updates\" = insert+delete+batch deltas; \"others\" = index-entry, root, merge and \
         remove-node installs together.\n",
        short_count(n),
        short_count(2 * n)
    ));
    let mut table = Table::new(
        "table1",
        &[
            "values",
            "threads",
            "Mops/s",
            "updates failed %",
            "splits failed %",
            "consolidations failed %",
            "index-entry failed %",
            "others failed %",
            "update CAS",
            "split CAS",
            "consolidate CAS",
        ],
    );
    let mut series = Vec::new();
    for values in &table1.values {
        let mut points = Vec::new();
        for (i, cell) in values.cells.iter().enumerate() {
            let d = &cell.stats;
            points.push((i as f64, d.update_cas_failure_rate().unwrap_or(0.0) * 100.0));
            table.rows.push(vec![
                values.label.to_string(),
                threads_label(cell.threads),
                format!("{:.2}", cell.ops / 1e6),
                percent(d.update_cas_failure_rate()),
                percent(d.cas_failure_rate(CasKind::Split)),
                percent(d.cas_failure_rate(CasKind::Consolidate)),
                percent(d.cas_failure_rate(CasKind::IndexEntry)),
                percent(other_cas_failure_rate(d)),
                (d.cas_attempts(CasKind::Insert)
                    + d.cas_attempts(CasKind::Delete)
                    + d.cas_attempts(CasKind::Batch))
                .to_string(),
                d.cas_attempts(CasKind::Split).to_string(),
                d.cas_attempts(CasKind::Consolidate).to_string(),
            ]);
        }
        series.push(Series {
            name: format!("{} values", values.label),
            colour: values.colour,
            points,
        });
    }
    out.table(&table);
    let mut published = Table::new(
        "table1-published",
        &[
            "workload (ICDE'13)",
            "updates failed %",
            "splits failed %",
            "consolidations failed %",
        ],
    );
    for (w, u, s, c) in TABLE1_PUBLISHED {
        published
            .rows
            .push(vec![w.into(), u.into(), s.into(), c.into()]);
    }
    out.text(
        "Published (Levandoski, Lomet, Sengupta, ICDE 2013, Table I; 8 threads on a 4-core, \
         8-hardware-thread machine, 8 KB pages):\n",
    );
    out.table(&published);
    out.figure(Figure {
        file: "table1-update-failures.svg".into(),
        title: format!(
            "Table I replica: update CAS failures vs threads ({} cores)",
            cores()
        ),
        labels: table1.threads.iter().map(|&t| t.to_string()).collect(),
        series,
        x_desc: "threads".into(),
        y_desc: "failed update CAS, %".into(),
        shade_from: shade_from(&table1.threads),
    });
}

/// Failure share of every CAS kind except the three Table I names, together.
fn other_cas_failure_rate(d: &StatsSnapshot) -> Option<f64> {
    let named = [
        CasKind::Insert,
        CasKind::Delete,
        CasKind::Batch,
        CasKind::Split,
        CasKind::Consolidate,
    ];
    let others = CasKind::ALL.iter().filter(|k| !named.contains(k));
    let (failures, attempts) = others.fold((0, 0), |(f, a), &k| {
        (f + d.cas_failures(k), a + d.cas_attempts(k))
    });
    ratio(failures, attempts)
}
