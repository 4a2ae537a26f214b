//! Keys, values and key choosers.
//!
//! Every value the lab stores is a fixed function of its key ([`value_of`]), so any thread can check
//! any answer without shared bookkeeping: a `get` that returns `Some(v)` with `v != value_of(k)` is
//! a broken map, whatever else ran concurrently.
//!
//! The preloaded keys are `key(i)` for `i < n`: either a bijective scramble of `i` (uniformly spread
//! u64 keys, inserted in that random order) or `i` itself (sequential keys, inserted ascending).
//! Workloads pick keys by *index* into the sorted preloaded keys, so a chosen key is known to be
//! present (until something removes it) and a scan starting at index `i` knows how many pairs it
//! must return. Fresh keys for the insert workload ([`KeySet::fresh`]) never collide with preloaded
//! ones nor with each other.

use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};

/// The splitmix64 finalizer: a bijection on `u64` that spreads consecutive inputs over the whole
/// range (distinct inputs give distinct outputs, so scrambled keys never collide).
pub const fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The value the lab stores under `key`: a cheap function of the key that differs from it, so a map
/// that returns a key for a value, or another key's value, is caught.
#[inline]
pub const fn value_of(key: u64) -> u64 {
    key.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD6E8_FEB8_6659_FD93
}

/// First pre-image used for fresh keys of a random key set: above any preloaded index (`n < 2^32`),
/// so `mix` of it never equals a preloaded key.
const FRESH_BASE: u64 = 1 << 62;

/// The largest key count the lab accepts (indices are stored as `u32`).
pub const MAX_KEYS: usize = 1 << 31;

/// How preloaded keys are drawn and in which order they are inserted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyOrder {
    /// `mix(i)`: keys spread uniformly over u64, inserted in random order; fresh keys are random too.
    Random,
    /// `i`: keys `0..n`, inserted ascending; fresh keys append at the right end (`n`, `n+1`, ...),
    /// the monotonic-insert pattern.
    Sequential,
}

impl KeyOrder {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            KeyOrder::Random => "random",
            KeyOrder::Sequential => "sequential",
        }
    }
}

/// The preloaded key set.
pub struct KeySet {
    order: KeyOrder,
    /// The preloaded keys, ascending.
    sorted: Vec<u64>,
}

impl KeySet {
    /// The key set of `n` keys (`1..=MAX_KEYS`, checked by the command line).
    pub fn new(n: usize, order: KeyOrder) -> KeySet {
        let mut sorted: Vec<u64> = (0..n as u64).map(|i| Self::key_at(order, i)).collect();
        sorted.sort_unstable();
        KeySet { order, sorted }
    }

    fn key_at(order: KeyOrder, i: u64) -> u64 {
        match order {
            KeyOrder::Random => mix(i),
            KeyOrder::Sequential => i,
        }
    }

    /// Number of preloaded keys.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// The `i`-th key in load order (`i < len()`).
    #[inline]
    pub fn load_key(&self, i: usize) -> u64 {
        Self::key_at(self.order, i as u64)
    }

    /// The `rank`-th smallest preloaded key (`rank < len()`).
    #[inline]
    pub fn sorted(&self, rank: usize) -> u64 {
        self.sorted[rank]
    }

    /// A key that is not preloaded; distinct slots give distinct keys.
    #[inline]
    pub fn fresh(&self, slot: u64) -> u64 {
        match self.order {
            KeyOrder::Random => mix(FRESH_BASE + slot),
            KeyOrder::Sequential => self.sorted.len() as u64 + slot,
        }
    }
}

/// How workloads choose among the preloaded keys.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Dist {
    /// Every key equally likely.
    Uniform,
    /// Zipfian with exponent `theta`: the `r`-th most popular key is chosen with probability
    /// proportional to `1 / r^theta`. Popular keys are scattered over the key space, not adjacent.
    Zipf {
        /// The skew; 0 is uniform, 0.99 the usual YCSB setting.
        theta: f64,
    },
}

impl Dist {
    /// The name used on the command line and in reports ("uniform", "zipf:0.99").
    pub fn label(self) -> String {
        match self {
            Dist::Uniform => "uniform".into(),
            Dist::Zipf { theta } => format!("zipf:{theta}"),
        }
    }
}

/// Length of the precomputed Zipfian index table that threads stream through.
const ZIPF_TABLE: usize = 1 << 20;

/// Chooses key indices in `0..n` by a [`Dist`]; shared by all threads of a cell.
///
/// Uniform indices are drawn on the fly (a few nanoseconds). Zipfian samples cost tens of
/// nanoseconds, which would flatten the differences between maps, so they are drawn once into a
/// table that each thread walks from its own random offset.
pub struct Chooser {
    n: usize,
    table: Option<Arc<[u32]>>,
}

impl Chooser {
    /// A chooser over `0..n` (`1..=MAX_KEYS`); errors if the distribution's parameter is invalid.
    pub fn new(n: usize, dist: Dist, seed: u64) -> Result<Chooser, String> {
        let table = match dist {
            Dist::Uniform => None,
            Dist::Zipf { theta } => {
                let zipf = Zipf::new(n as f64, theta)
                    .map_err(|e| format!("invalid Zipfian parameter {theta}: {e}"))?;
                let mut rng = SmallRng::seed_from_u64(seed);
                let stride = coprime_stride(n as u64);
                let table: Vec<u32> = (0..ZIPF_TABLE)
                    .map(|_| {
                        // Samples are ranks 1..=n; scatter rank r to index (r-1)·stride mod n, a
                        // permutation because the stride is coprime to n.
                        let rank = (zipf.sample(&mut rng) as u64).clamp(1, n as u64) - 1;
                        ((rank as u128 * stride as u128) % n as u128) as u32
                    })
                    .collect();
                Some(table.into())
            }
        };
        Ok(Chooser { n, table })
    }

    /// A per-thread stream of indices, deterministic in `seed`.
    pub fn stream(&self, seed: u64) -> IndexStream<'_> {
        let mut rng = SmallRng::seed_from_u64(seed);
        let cursor = match &self.table {
            Some(table) => reduce(rng.next_u64(), table.len()),
            None => 0,
        };
        IndexStream {
            rng,
            n: self.n,
            table: self.table.as_deref(),
            cursor,
        }
    }
}

/// One thread's sequence of key indices.
pub struct IndexStream<'a> {
    rng: SmallRng,
    n: usize,
    table: Option<&'a [u32]>,
    cursor: usize,
}

impl IndexStream<'_> {
    /// The next index, in `0..n`.
    #[inline]
    pub fn next_index(&mut self) -> usize {
        match self.table {
            None => reduce(self.rng.next_u64(), self.n),
            Some(table) => {
                self.cursor += 1;
                if self.cursor == table.len() {
                    self.cursor = 0;
                }
                table[self.cursor] as usize
            }
        }
    }

    /// A uniform number in `0..100`, for choosing an operation by percentages.
    #[inline]
    pub fn percent(&mut self) -> u32 {
        reduce(self.rng.next_u64(), 100) as u32
    }
}

/// Maps a uniform u64 to `0..n` without division (Lemire's multiply-shift).
#[inline]
fn reduce(x: u64, n: usize) -> usize {
    ((x as u128 * n as u128) >> 64) as usize
}

/// A multiplier coprime to `n`, near `n` times the golden ratio's fraction, so that consecutive
/// ranks land far apart.
fn coprime_stride(n: u64) -> u64 {
    if n <= 2 {
        return 1;
    }
    let mut stride = ((n as f64 * 0.618_033_988_75) as u64).max(1);
    while gcd(stride, n) != 1 {
        stride += 1;
    }
    stride
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn fresh_keys_are_distinct_and_never_preloaded() {
        for order in [KeyOrder::Random, KeyOrder::Sequential] {
            let keys = KeySet::new(5_000, order);
            let preloaded: HashSet<u64> = (0..keys.len()).map(|i| keys.load_key(i)).collect();
            assert_eq!(preloaded.len(), 5_000);
            let fresh: HashSet<u64> = (0..5_000).map(|s| keys.fresh(s)).collect();
            assert_eq!(fresh.len(), 5_000);
            assert!(fresh.is_disjoint(&preloaded));
            assert!((1..keys.len()).all(|r| keys.sorted(r - 1) < keys.sorted(r)));
        }
    }

    #[test]
    fn indices_stay_in_range_and_zipf_is_skewed() {
        let n = 1_000;
        let uniform = Chooser::new(n, Dist::Uniform, 1).unwrap();
        let zipf = Chooser::new(n, Dist::Zipf { theta: 0.99 }, 1).unwrap();
        let mut hot = vec![0u32; n];
        let (mut u, mut z) = (uniform.stream(7), zipf.stream(7));
        for _ in 0..100_000 {
            assert!(u.next_index() < n);
            let i = z.next_index();
            hot[i] += 1;
            assert!(u.percent() < 100);
        }
        // Under θ = 0.99 over 1,000 keys the most popular key draws about 13% of the samples;
        // uniformly it would draw 0.1%.
        assert!(*hot.iter().max().unwrap() > 5_000);
        assert!(Chooser::new(n, Dist::Zipf { theta: -1.0 }, 1).is_err());
    }
}
