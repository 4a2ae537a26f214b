//! Writes the results as a markdown report (`report.md`) and CSV files.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use crate::maps::SUBJECT;
use crate::suite::Results;
use crate::workload::Workload;

/// Writes `report.md` and the CSV files into `dir`; `figures` are the SVG file names to link.
pub fn write(results: &Results, dir: &Path, figures: &[(String, String)]) -> std::io::Result<()> {
    fs::write(dir.join("report.md"), markdown(results, figures))?;
    fs::write(dir.join("cells.csv"), cells_csv(results))?;
    fs::write(dir.join("runs.csv"), runs_csv(results))?;
    fs::write(dir.join("counters.csv"), counters_csv(results))?;
    fs::write(dir.join("shape.csv"), shape_csv(results))?;
    Ok(())
}

/// Whether `threads` exceeds the machine's cores.
fn oversubscribed(results: &Results, threads: usize) -> bool {
    threads > results.cores
}

/// A thread-count column header; oversubscribed counts carry a dagger.
fn thread_header(results: &Results, threads: usize) -> String {
    if oversubscribed(results, threads) {
        format!("{threads} †")
    } else {
        threads.to_string()
    }
}

/// Millions per second with three significant digits.
fn millions(per_sec: f64) -> String {
    let m = per_sec / 1e6;
    if m >= 100.0 {
        format!("{m:.0}")
    } else if m >= 10.0 {
        format!("{m:.1}")
    } else if m >= 1.0 {
        format!("{m:.2}")
    } else {
        format!("{m:.3}")
    }
}

fn unit(workload: Workload) -> &'static str {
    if workload.counts_pairs() {
        "M pairs/s"
    } else {
        "M ops/s"
    }
}

/// Where the subject stands among the maps in one column: `(rank, of, best map, best value,
/// subject value)`, or `None` if the subject has no number there.
fn standing(
    results: &Results,
    workload: Workload,
    threads: usize,
) -> Option<(usize, usize, String, f64, f64)> {
    let mut values: Vec<(String, f64)> = results
        .maps
        .iter()
        .filter_map(|m| Some((m.clone(), results.throughput(workload, m, threads)?)))
        .collect();
    values.sort_by(|a, b| b.1.total_cmp(&a.1));
    let rank = values.iter().position(|(m, _)| m == SUBJECT)? + 1;
    let subject = values[rank - 1].1;
    let (best, top) = values[0].clone();
    Some((rank, values.len(), best, top, subject))
}

fn markdown(results: &Results, figures: &[(String, String)]) -> String {
    let o = &results.options;
    let mut md = String::new();
    let _ = writeln!(md, "# bwtree lab report\n");
    let _ = writeln!(
        md,
        "**Machine: {} cores** ({}, {}/{}). Thread counts above {} are **oversubscribed** (marked †): more \
         threads than cores, so the operating system time-slices them and a thread can be preempted in the \
         middle of an operation (while holding a latch, or between the steps of a structure change). \
         Those columns show behaviour under preemption, not scaling.\n",
        results.cores,
        cpu_model(),
        std::env::consts::OS,
        std::env::consts::ARCH,
        results.cores
    );
    let _ = writeln!(md, "- command: `{}`", results.command);
    let loading: f64 = results.loads.iter().map(|l| l.wall.as_secs_f64()).sum();
    let cells: f64 = results.cells.iter().map(|c| c.wall.as_secs_f64()).sum();
    let timed: f64 = results
        .cells
        .iter()
        .flat_map(|c| c.result.runs.iter())
        .map(|r| r.secs)
        .sum();
    let _ = writeln!(
        md,
        "- date (UTC): {}; wall time of the run: {:.1} s (loading maps {loading:.1} s; cells {cells:.1} s, of which \
         timed runs {timed:.1} s)",
        utc_now(),
        results.wall.as_secs_f64()
    );
    let _ = writeln!(
        md,
        "- {} preloaded keys ({}), key choice {}, {} run(s) of {} ms per cell (median shown), maps loaded with {} thread(s){}",
        o.keys,
        o.order.name(),
        o.dist.label(),
        o.runs,
        o.duration.as_millis(),
        o.load_threads,
        if o.quick {
            "; **--quick smoke run: sizes too small for conclusions**"
        } else {
            ""
        }
    );
    let _ = writeln!(md, "- maps: {}\n", describe_maps(results));
    if !results.violations.is_empty() {
        let _ = writeln!(md, "## WRONG ANSWERS\n");
        let _ = writeln!(
            md,
            "These maps returned wrong values; their cells are shown as ✗ and excluded from comparisons.\n"
        );
        for v in &results.violations {
            let _ = writeln!(md, "- {v}");
        }
        md.push('\n');
    }

    summary(results, &mut md);
    for &workload in &o.workloads {
        workload_table(results, workload, &mut md);
    }
    counters(results, &mut md);
    shape_tables(results, &mut md);

    if !figures.is_empty() {
        let _ = writeln!(md, "## Figures\n");
        for (file, title) in figures {
            let _ = writeln!(md, "### {title}\n\n![{title}]({file})\n");
        }
    }
    notes(results, &mut md);
    md
}

fn describe_maps(results: &Results) -> String {
    let mut all = crate::maps::all();
    all.extend(crate::maps::variants());
    results
        .maps
        .iter()
        .map(|m| {
            let about = all.iter().find(|f| f.name == *m).map_or("", |f| f.about);
            format!("`{m}` ({about})")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn summary(results: &Results, md: &mut String) {
    let _ = writeln!(md, "## Where `{SUBJECT}` stands\n");
    let _ = writeln!(
        md,
        "Each entry: `{SUBJECT}`'s rank among the maps with a number in that column, then its throughput as a \
         fraction of the best map's (named). **1/n** means `{SUBJECT}` was the fastest.\n"
    );
    let threads = &results.options.threads;
    let _ = write!(md, "| workload |");
    for &t in threads {
        let _ = write!(md, " {} |", thread_header(results, t));
    }
    let _ = write!(md, "\n| --- |");
    for _ in threads {
        md.push_str(" --- |");
    }
    md.push('\n');
    for &workload in &results.options.workloads {
        let _ = write!(md, "| {} |", workload.id());
        for &t in threads {
            let entry = if !workload.runs_with(t) {
                "–".to_string()
            } else {
                match standing(results, workload, t) {
                    None => "✗".to_string(),
                    Some((1, of, _, _, _)) => format!("**1**/{of}"),
                    Some((rank, of, best, top, subject)) => {
                        format!("{rank}/{of} · {:.2}× {best}", subject / top)
                    }
                }
            };
            let _ = write!(md, " {entry} |");
        }
        md.push('\n');
    }
    md.push('\n');
}

fn workload_table(results: &Results, workload: Workload, md: &mut String) {
    let threads = results.threads_of(workload);
    let _ = writeln!(md, "## {} ({})\n", workload.id(), unit(workload));
    let _ = writeln!(
        md,
        "{}. Best in each column in bold.\n",
        capitalise(&workload.describe())
    );
    let _ = write!(md, "| map |");
    for &t in &threads {
        let _ = write!(md, " {} |", thread_header(results, t));
    }
    let _ = write!(md, "\n| --- |");
    for _ in &threads {
        md.push_str(" ---: |");
    }
    md.push('\n');
    let best: Vec<Option<f64>> = threads
        .iter()
        .map(|&t| {
            results
                .maps
                .iter()
                .filter_map(|m| results.throughput(workload, m, t))
                .max_by(f64::total_cmp)
        })
        .collect();
    for map in &results.maps {
        let name = if map == SUBJECT {
            format!("**{map}**")
        } else {
            map.clone()
        };
        let _ = write!(md, "| {name} |");
        for (i, &t) in threads.iter().enumerate() {
            let entry = match (
                results.cell(workload, map, t),
                results.throughput(workload, map, t),
            ) {
                (None, _) => "–".to_string(),
                (Some(_), None) => "✗".to_string(),
                (Some(_), Some(v)) if Some(v) == best[i] => format!("**{}**", millions(v)),
                (Some(_), Some(v)) => millions(v),
            };
            let _ = write!(md, " {entry} |");
        }
        md.push('\n');
    }
    let _ = write!(md, "| *{SUBJECT} ÷ best* |");
    for (i, &t) in threads.iter().enumerate() {
        let entry = match (results.throughput(workload, SUBJECT, t), best[i]) {
            (Some(v), Some(b)) if b > 0.0 => format!("*{:.2}*", v / b),
            _ => "–".to_string(),
        };
        let _ = write!(md, " {entry} |");
    }
    md.push_str("\n\n");
}

fn counters(results: &Results, md: &mut String) {
    let _ = writeln!(md, "## Event counters per operation\n");
    let _ = writeln!(
        md,
        "What each map counts about itself (`ConcurrentMap::stats()`), as the increase during a cell divided by \
         the operations of that cell: CAS retries for the Bw-tree, restarts and lock waits for the optimistic \
         B+tree, latch waits for the lock-based maps. Counters that stayed at zero are left out (all are in \
         `counters.csv`).\n"
    );
    let silent: Vec<&String> = results
        .maps
        .iter()
        .filter(|m| {
            !results
                .cells
                .iter()
                .any(|c| c.map == **m && !c.result.per_op.is_empty())
        })
        .collect();
    if !silent.is_empty() {
        let names: Vec<String> = silent.iter().map(|m| format!("`{m}`")).collect();
        let _ = writeln!(md, "Maps that report no counters: {}.\n", names.join(", "));
    }
    for &workload in &results.options.workloads {
        let threads = results.threads_of(workload);
        let mut rows = Vec::new();
        for map in &results.maps {
            let names: Vec<&'static str> = results
                .cells
                .iter()
                .find(|c| c.map == *map && c.workload == workload)
                .map(|c| c.result.per_op.iter().map(|&(n, _)| n).collect())
                .unwrap_or_default();
            for name in names {
                let values: Vec<Option<f64>> = threads
                    .iter()
                    .map(|&t| {
                        results
                            .cell(workload, map, t)
                            .and_then(|c| c.result.per_op.iter().find(|(n, _)| *n == name))
                            .map(|&(_, v)| v)
                    })
                    .collect();
                // Counters that stayed at zero in every cell are in counters.csv only.
                if values.iter().all(|v| v.is_none_or(|v| v == 0.0)) {
                    continue;
                }
                let mut row = format!("| {map} | {name} |");
                for value in values {
                    let value = value.map_or("–".to_string(), |v| format!("{v:.4}"));
                    let _ = write!(row, " {value} |");
                }
                rows.push(row);
            }
        }
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(md, "### {}\n", workload.id());
        let _ = write!(md, "| map | counter |");
        for &t in &threads {
            let _ = write!(md, " {} |", thread_header(results, t));
        }
        let _ = write!(md, "\n| --- | --- |");
        for _ in &threads {
            md.push_str(" ---: |");
        }
        md.push('\n');
        for row in rows {
            let _ = writeln!(md, "{row}");
        }
        md.push('\n');
    }
}

fn shape_tables(results: &Results, md: &mut String) {
    let points: Vec<usize> = results
        .loads
        .iter()
        .flat_map(|l| l.checkpoints.iter().map(|c| c.keys))
        .fold(Vec::new(), |mut acc, k| {
            if !acc.contains(&k) {
                acc.push(k);
            }
            acc
        });
    let _ = writeln!(md, "## Shape and memory while loading\n");
    let _ = writeln!(
        md,
        "Measured at checkpoints while each map is loaded with {} thread(s), in {} key order. \
         Height: levels (1 = the root is a leaf); fill: average fraction of slots in use; bytes/key: live heap bytes \
         the map holds (counting allocator, after flushing crossbeam-epoch garbage) divided by the keys loaded. \
         Maps that report nothing for a metric are left out of its table.\n",
        results.options.load_threads,
        results.options.order.name()
    );
    type Metric = fn(&crate::load::Checkpoint) -> Option<String>;
    let metrics: [(&str, Metric); 4] = [
        ("height", |c| c.height.map(|h| h.to_string())),
        ("leaf fill", |c| {
            c.leaf_fill.map(|f| format!("{:.0}%", f * 100.0))
        }),
        ("inner fill", |c| {
            c.inner_fill.map(|f| format!("{:.0}%", f * 100.0))
        }),
        ("bytes/key", |c| Some(format!("{:.1}", c.bytes_per_key))),
    ];
    for (name, metric) in &metrics {
        let _ = writeln!(md, "### {name} vs keys\n");
        let _ = write!(md, "| map |");
        for &k in &points {
            let _ = write!(md, " {} |", short_count(k));
        }
        let _ = write!(md, "\n| --- |");
        for _ in &points {
            md.push_str(" ---: |");
        }
        md.push('\n');
        for load in &results.loads {
            let values: Vec<String> = points
                .iter()
                .map(|&k| {
                    load.checkpoints
                        .iter()
                        .find(|c| c.keys == k)
                        .and_then(metric)
                        .unwrap_or_else(|| "–".into())
                })
                .collect();
            if values.iter().all(|v| v == "–") {
                continue;
            }
            let _ = writeln!(md, "| {} | {} |", load.map, values.join(" | "));
        }
        md.push('\n');
    }
    let _ = writeln!(md, "### load throughput\n");
    let _ = writeln!(
        md,
        "| map | M inserts/s | load wall time (s) |\n| --- | ---: | ---: |"
    );
    for load in &results.loads {
        let _ = writeln!(
            md,
            "| {} | {} | {:.1} |",
            load.map,
            millions(load.ops_per_sec),
            load.wall.as_secs_f64()
        );
    }
    md.push('\n');
}

fn notes(results: &Results, md: &mut String) {
    let _ = writeln!(md, "## How to read this\n");
    let _ = writeln!(
        md,
        "- Every cell is the median of {} timed run(s); each run starts all threads together and stops them after \
         {} ms. Spreads are in `runs.csv`. Numbers from a shared or noisy machine move by 10–20% between runs: \
         compare maps within one report.",
        results.options.runs,
        results.options.duration.as_millis()
    );
    let _ = writeln!(
        md,
        "- Every answer is checked while measuring: a returned value must be the one stored for its key; in the \
         read-only workloads every lookup must hit and every scan must return exactly the next preloaded keys; \
         fresh inserts must return `None` and are found again (by `remove`) after each insert run. A map that \
         fails gets ✗ instead of a number, and the lab exits with status 1."
    );
    let _ = writeln!(
        md,
        "- Each map is loaded once; the read-only workloads (get, scans) run first, then insert (whose keys are \
         removed again, untimed, after each run), then mixed, whose inserts and removes draw from the preloaded \
         keys so the map stays near its size."
    );
    let _ = writeln!(
        md,
        "- All maps run behind the same `ConcurrentMap` trait object (one dynamic call per operation) with u64 \
         keys and values; peers are used through their intended APIs (scc with its `Guard`, concurrent-map with \
         one clone per thread)."
    );
    let _ = writeln!(
        md,
        "- {} of the thread counts exceed the {} cores (†).",
        results
            .options
            .threads
            .iter()
            .filter(|&&t| oversubscribed(results, t))
            .count(),
        results.cores
    );
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map_or_else(String::new, |c| c.to_uppercase().chain(chars).collect())
}

/// `1000` → `1k`, `1000000` → `1M`, others as they are.
pub fn short_count(n: usize) -> String {
    if n >= 1_000_000 && n % 1_000_000 == 0 {
        format!("{}M", n / 1_000_000)
    } else if n >= 1_000 && n % 1_000 == 0 {
        format!("{}k", n / 1_000)
    } else {
        n.to_string()
    }
}

/// The CPU model from `/proc/cpuinfo`, or "unknown CPU".
pub fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// The current UTC time as `YYYY-MM-DD HH:MM`.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        rest / 3_600,
        rest % 3_600 / 60
    )
}

fn cells_csv(results: &Results) -> String {
    let mut csv = String::from(
        "workload,map,threads,oversubscribed,runs,median_ops_per_s,median_pairs_per_s,min_ops_per_s,max_ops_per_s,violation\n",
    );
    for c in &results.cells {
        let ops: Vec<f64> = c.result.runs.iter().map(|r| r.ops_per_sec()).collect();
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{:.0},{:.0},{:.0},{:.0},{}",
            c.workload.id(),
            c.map,
            c.threads,
            oversubscribed(results, c.threads),
            c.result.runs.len(),
            c.result.median_ops(),
            c.result.median_pairs(),
            ops.iter().copied().fold(f64::INFINITY, f64::min),
            ops.iter().copied().fold(0.0, f64::max),
            csv_text(c.result.violation.as_deref().unwrap_or("")),
        );
    }
    csv
}

fn runs_csv(results: &Results) -> String {
    let mut csv = String::from("workload,map,threads,run,ops,pairs,secs\n");
    for c in &results.cells {
        for (i, r) in c.result.runs.iter().enumerate() {
            let _ = writeln!(
                csv,
                "{},{},{},{},{},{},{:.6}",
                c.workload.id(),
                c.map,
                c.threads,
                i,
                r.ops,
                r.pairs,
                r.secs
            );
        }
    }
    csv
}

fn counters_csv(results: &Results) -> String {
    let mut csv = String::from("workload,map,threads,counter,per_op\n");
    for c in &results.cells {
        for (name, v) in &c.result.per_op {
            let _ = writeln!(
                csv,
                "{},{},{},{name},{v:.6}",
                c.workload.id(),
                c.map,
                c.threads
            );
        }
    }
    csv
}

fn shape_csv(results: &Results) -> String {
    let mut csv =
        String::from("map,keys,height,leaf_fill,inner_fill,bytes_per_key,load_ops_per_s\n");
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.4}"));
    for l in &results.loads {
        for c in &l.checkpoints {
            let _ = writeln!(
                csv,
                "{},{},{},{},{},{:.2},{:.0}",
                l.map,
                c.keys,
                c.height.map_or(String::new(), |h| h.to_string()),
                opt(c.leaf_fill),
                opt(c.inner_fill),
                c.bytes_per_key,
                l.ops_per_sec
            );
        }
    }
    csv
}

/// Quotes a CSV field.
fn csv_text(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!("\"{}\"", text.replace('"', "\"\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_formats() {
        assert_eq!(millions(12_345_678.0), "12.3");
        assert_eq!(millions(1_234_567.0), "1.23");
        assert_eq!(millions(123_456.0), "0.123");
        assert_eq!(short_count(1_000_000), "1M");
        assert_eq!(short_count(20_000), "20k");
        assert_eq!(short_count(1_234), "1234");
        assert_eq!(csv_text("a \"b\""), "\"a \"\"b\"\"\"");
        assert_eq!(utc_now().len(), 16);
    }
}
