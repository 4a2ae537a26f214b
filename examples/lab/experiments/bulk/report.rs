//! The report of `lab bulk`: the long table, the ratio matrix with the subject against the best
//! other map, and two figures.

use super::super::output::{Figure, Out, Table};
use super::{Bulk, CLUSTER_STRIDE, Case, KEYS_PER_RUNS, Op, Row, SPACING};
use crate::maps::SUBJECT;
use crate::plot::Series;
use crate::report::short_count;

/// Millions per second with two decimals; `—` for none.
fn mega(rate: Option<f64>) -> String {
    rate.map_or_else(|| "—".into(), |r| format!("{:.2}", r / 1e6))
}

/// A ratio with two decimals and a `×`; `—` for none.
fn times(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "—".into(), |r| format!("{r:.2}×"))
}

/// Whether `map` is the subject or one of its variants (not an "other map" for the comparison).
fn is_bwtree(map: &str) -> bool {
    map.starts_with(SUBJECT)
}

/// Writes the description, the tables and the figures of what [`measure`](super::measure) measured.
pub fn report(bulk: &Bulk, out: &mut Out) {
    let (n, runs) = (bulk.keys, bulk.runs);
    let (factories, cases, rows) = (&bulk.factories, &bulk.cases, &bulk.rows);
    let row = |case: Case, map: &str| rows.iter().find(|r| r.case == case && r.map == map);
    out.text(&format!(
        "## Bulk operations against one-by-one, every map\n\n\
         One thread. **load**: {} pairs with ascending keys (multiples of {SPACING}) into an empty \
         map by the map's bulk path — its own bulk load if it has one (the Bw-tree's \
         `from_sorted_iter`, pages filled to 90%), else `insert_batch` of all pairs — against as \
         many single `insert`s. The other cases run on the map of the last bulk-path load: \
         **insert_batch** of fresh keys (never present before) against as many fresh keys \
         inserted one by one, each sample's keys removed again afterwards (untimed, checked) so \
         that the map stays at {} keys; **get_many** of present keys against single `get`s. *random*: \
         keys uniform over the key space; *clustered*: inserts take every {CLUSTER_STRIDE}rd \
         integer from a random start (about five new keys between neighbouring loaded keys, as \
         in `examples/bulk.rs`), gets take consecutive loaded keys. The batch side is the \
         `ConcurrentMap` trait's method: maps without native batches run the trait's one-by-one \
         default (ratio 1 up to noise), the coarse-lock map runs a batch under one lock \
         acquisition. Every throughput is the median over the runs of each path: the load runs \
         {runs} time(s) per path, an insert or get case {runs} × ⌈{}k ÷ batch size⌉ times per \
         path (so {} times for 1k-key batches), each time with its own keys; the paths alternate \
         which goes first, and clocks stop before maps or results are dropped. Ratio = batch \
         keys/s ÷ one-by-one keys/s.\n",
        short_count(n),
        short_count(n),
        KEYS_PER_RUNS / 1000,
        runs * KEYS_PER_RUNS.div_ceil(1000)
    ));
    if let Some(load) = load_average() {
        out.text(&format!(
            "Load average (1, 5, 15 min) when the report was written: {load}. On a shared machine \
             other jobs take turns with this one; the maps whose batch is the one-by-one default \
             show how far that moves a ratio that should read 1.00×.\n"
        ));
    }
    let mut table = Table::new(
        "bulk",
        &[
            "case",
            "map",
            "batch path",
            "batch Mkeys/s",
            "one-by-one Mkeys/s",
            "batch / one-by-one",
        ],
    );
    for r in rows {
        table.rows.push(vec![
            r.case.label(),
            r.map.clone(),
            r.path.clone(),
            mega(r.batch_rate()),
            mega(r.single_rate()),
            times(r.ratio()),
        ]);
    }
    out.table(&table);

    // The ratios side by side, and the subject against the best other map.
    let names: Vec<&str> = factories.iter().map(|f| f.name.as_str()).collect();
    let mut header: Vec<String> = vec!["case".into()];
    header.extend(names.iter().map(|m| m.to_string()));
    header.extend([
        "best other map (batch)".into(),
        format!("{SUBJECT} batch / best other batch"),
    ]);
    let mut ratios = Table {
        id: "bulk-ratios".into(),
        header,
        rows: Vec::new(),
    };
    for &case in cases {
        let mut cells = vec![case.label()];
        cells.extend(
            names
                .iter()
                .map(|m| times(row(case, m).and_then(Row::ratio))),
        );
        let best = rows
            .iter()
            .filter(|r| r.case == case && !is_bwtree(&r.map))
            .filter_map(|r| Some((r, r.batch_rate()?)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let subject = row(case, SUBJECT).and_then(Row::batch_rate);
        cells.push(best.map_or_else(
            || "—".into(),
            |(r, rate)| format!("{} ({})", r.map, mega(Some(rate))),
        ));
        cells.push(times(subject.zip(best).map(|(s, (_, b))| s / b)));
        ratios.rows.push(cells);
    }
    out.text(&format!(
        "### Ratios: batch / one-by-one throughput per map\n\nThe last two columns compare \
         {SUBJECT}'s batch throughput with the fastest batch path among the other maps (Bw-tree \
         variants excluded; Mkeys/s in brackets).\n"
    ));
    out.table(&ratios);

    // The figures leave the load out: its ratio (tens for a bulk load) would flatten the others.
    let plotted: Vec<Case> = cases.iter().copied().filter(|c| c.op != Op::Load).collect();
    let labels: Vec<String> = plotted.iter().map(|c| c.short()).collect();
    let series = |value: &dyn Fn(&Row) -> Option<f64>| -> Vec<Series> {
        names
            .iter()
            .enumerate()
            .map(|(colour, m)| Series {
                name: m.to_string(),
                colour,
                points: plotted
                    .iter()
                    .enumerate()
                    .filter_map(|(i, &c)| Some((i as f64, value(row(c, m)?)?)))
                    .collect(),
            })
            .collect()
    };
    out.figure(Figure {
        file: "bulk-ratio.svg".into(),
        title: format!(
            "insert_batch / get_many vs one by one, {}-key map, one thread",
            short_count(n)
        ),
        labels: labels.clone(),
        series: series(&Row::ratio),
        x_desc: "case (ins = insert_batch, get = get_many; ran = random, clu = clustered)".into(),
        y_desc: "batch ÷ one-by-one keys/s".into(),
        shade_from: None,
    });
    out.figure(Figure {
        file: "bulk-batch-throughput.svg".into(),
        title: format!(
            "Batch-path throughput on a {}-key map, one thread",
            short_count(n)
        ),
        labels,
        series: series(&|r: &Row| Some(r.batch_rate()? / 1e6)),
        x_desc: "case (ins = insert_batch, get = get_many; ran = random, clu = clustered)".into(),
        y_desc: "million keys/s (batch path)".into(),
        shade_from: None,
    });
}

/// The system's load averages from `/proc/loadavg` (Linux), if readable.
fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let fields: Vec<&str> = text.split_whitespace().take(3).collect();
    (fields.len() == 3).then(|| fields.join(", "))
}
