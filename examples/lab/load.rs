//! Loads a map with the key set, in stages, recording at each checkpoint (10^3, 10^4, ... keys and
//! the full count) the tree's height and fill and the heap bytes per key. One load per map serves
//! the shape, memory and throughput measurements alike.

use std::time::Instant;

use crate::alloc::Window;
use crate::keys::{KeySet, value_of};
use crate::maps::{LabMap, MapFactory, settle};

/// The map's state after loading its first `keys` keys.
#[derive(Clone, Copy, Debug)]
pub struct Checkpoint {
    /// Keys loaded so far.
    pub keys: usize,
    /// Levels, if the map reports them.
    pub height: Option<usize>,
    /// Average leaf fill, if reported.
    pub leaf_fill: Option<f64>,
    /// Average inner-node fill, if reported.
    pub inner_fill: Option<f64>,
    /// Live heap bytes the map holds (counted since before it was created), per key.
    pub bytes_per_key: f64,
}

/// A loaded map and what loading it showed.
pub struct Loaded {
    /// The map holding every key of the key set (unless `violation` is set).
    pub map: Box<LabMap>,
    /// One entry per checkpoint, in increasing key count.
    pub checkpoints: Vec<Checkpoint>,
    /// Inserts per second over the whole load, counting only the timed insert phases.
    pub load_ops_per_sec: f64,
    /// The first wrong answer an insert gave (a fresh insert must return `None`).
    pub violation: Option<String>,
}

/// The checkpoints for `n` keys: powers of ten from 1,000 below `n`, then `n`.
pub fn checkpoints(n: usize) -> Vec<usize> {
    let mut points: Vec<usize> = std::iter::successors(Some(1_000usize), |p| p.checked_mul(10))
        .take_while(|&p| p < n)
        .collect();
    points.push(n);
    points
}

/// Builds a map with `factory` and inserts the key set on `threads` threads, stopping at each
/// checkpoint to measure it.
///
/// Thread `t` of a stage inserts the stage's keys `t, t + threads, ...` in load order, so with
/// sequential keys the threads together still append roughly in ascending order.
pub fn load(factory: &MapFactory, keys: &KeySet, threads: usize) -> Loaded {
    settle();
    let window = Window::open();
    let map = factory.make();
    let mut checkpoints_done = Vec::new();
    let mut secs = 0.0;
    let mut violation = None;
    let mut from = 0;
    for to in self::checkpoints(keys.len()) {
        let start = Instant::now();
        violation = insert_range(&*map, keys, from, to, threads);
        secs += start.elapsed().as_secs_f64();
        if violation.is_some() {
            break;
        }
        settle();
        let bytes = window.net_bytes();
        let shape = map.tree_shape();
        checkpoints_done.push(Checkpoint {
            keys: to,
            height: shape.map(|s| s.height),
            leaf_fill: shape.and_then(|s| s.leaf_fill),
            inner_fill: shape.and_then(|s| s.inner_fill),
            bytes_per_key: bytes as f64 / to as f64,
        });
        from = to;
    }
    drop(window);
    Loaded {
        map,
        checkpoints: checkpoints_done,
        load_ops_per_sec: from as f64 / secs.max(1e-9),
        violation,
    }
}

/// Inserts keys `from..to` (load order) on `threads` threads; the first wrong answer, if any.
fn insert_range(
    map: &LabMap,
    keys: &KeySet,
    from: usize,
    to: usize,
    threads: usize,
) -> Option<String> {
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    for i in (from + t..to).step_by(threads) {
                        let key = keys.load_key(i);
                        if let Some(v) = map.insert(key, value_of(key)) {
                            return Some(format!(
                                "{}: loading key {key} (not yet present) returned Some({v})",
                                map.name()
                            ));
                        }
                    }
                    None
                })
            })
            .collect();
        workers
            .into_iter()
            .find_map(|w| w.join().expect("a lab loader panicked"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_are_powers_of_ten_then_the_total() {
        assert_eq!(
            checkpoints(1_000_000),
            vec![1_000, 10_000, 100_000, 1_000_000]
        );
        assert_eq!(checkpoints(20_000), vec![1_000, 10_000, 20_000]);
        assert_eq!(checkpoints(500), vec![500]);
    }
}
