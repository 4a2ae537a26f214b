//! What more than one experiment uses: loading a map, measuring a cell with the tree's counters,
//! ICDE'13's 5:1 mix, and the formatting of thread counts, rates and ratios in the tables.

use bwtree::{Level, StatsSnapshot};

use crate::cli::cores;
use crate::keys::{KeySet, value_of};
use crate::maps::LabMap;
use crate::runner::{Cell, CellResult, run_cell};
use crate::workload::{InsertKeys, OpMix};

/// ICDE'13's read:write mix of 5:1 (83% lookups, 17% upserts), in whole percent.
pub const READ_WRITE_5_1: OpMix = OpMix {
    get: 83,
    insert: 17,
    remove: 0,
    scan: 0,
    scan_len: 0,
    insert_keys: InsertKeys::Preloaded,
};

/// Inserts the first `n` keys of `keys` (load order) on `threads` threads; returns the first wrong
/// answer (a fresh insert must return `None`).
pub fn fill(map: &LabMap, keys: &KeySet, n: usize, threads: usize) -> Option<String> {
    let threads = threads.max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (t..n).step_by(threads).find_map(|i| {
                        let key = keys.load_key(i);
                        map.insert(key, value_of(key)).map(|v| {
                            format!("{}: loading key {key} returned Some({v})", map.name())
                        })
                    })
                })
            })
            .collect();
        workers
            .into_iter()
            .find_map(|w| w.join().expect("a loader panicked"))
    })
}

/// Runs a cell on a map whose statistics `stats` reads; returns the result and the counters'
/// increase over the cell.
pub fn measure_cell(
    cell: &Cell<'_>,
    stats: &dyn Fn() -> StatsSnapshot,
) -> (CellResult, StatsSnapshot) {
    let before = stats();
    let result = run_cell(cell);
    (result, stats().since(&before))
}

/// A thread count, with † when it exceeds the hardware threads.
pub fn threads_label(threads: usize) -> String {
    if threads > cores() {
        format!("{threads}†")
    } else {
        threads.to_string()
    }
}

/// Where the shading of oversubscribed thread counts starts on a categorical axis.
pub fn shade_from(threads: &[usize]) -> Option<f64> {
    threads
        .iter()
        .position(|&t| t > cores())
        .map(|i| i as f64 - 0.5)
}

/// A share (0–1) as a percentage with enough digits for tiny rates; `—` for none.
pub fn percent(share: Option<f64>) -> String {
    match share {
        None => "—".into(),
        Some(0.0) => "0".into(),
        Some(s) if s * 100.0 < 0.01 => format!("{:.5}", s * 100.0),
        Some(s) if s * 100.0 < 1.0 => format!("{:.3}", s * 100.0),
        Some(s) => format!("{:.2}", s * 100.0),
    }
}

/// A number with two decimals; `—` for none.
pub fn fixed(value: Option<f64>) -> String {
    value.map_or_else(|| "—".into(), |v| format!("{v:.2}"))
}

/// `a / b`, `None` when `b` is 0.
pub fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Consolidations (both levels) per 1,000 operations.
pub fn consolidations_per_k(d: &StatsSnapshot) -> Option<f64> {
    let c = d.consolidations(Level::Leaf) + d.consolidations(Level::Inner);
    ratio(c * 1000, d.total_ops())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_keep_small_rates_visible() {
        assert_eq!(percent(None), "—");
        assert_eq!(percent(Some(0.0)), "0");
        assert_eq!(percent(Some(0.000003)), "0.00030");
        assert_eq!(percent(Some(0.0888)), "8.88");
        assert_eq!(percent(Some(10.7863)), "1078.63");
        assert_eq!(ratio(1, 0), None);
    }
}
