//! The one pseudo-random generator of the integration tests: small, fast, seedable and
//! deterministic, so that no test needs a shared generator or one more dependency.
//!
//! Each test binary that needs randomness includes it with `mod support { pub mod rng; }` and uses
//! only part of it, hence the module-wide `dead_code` allowance.
#![allow(dead_code)]

/// SplitMix64 (Steele, Lea & Flood, 2014): a 64-bit counter stepped by the golden ratio and passed
/// through a bijective mixer. Every seed is a good one (0 included), and a generator never repeats
/// an output before 2⁶⁴ calls, so seeds that differ in one bit (`seed ^ thread`) give unrelated
/// streams.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (any value).
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A pseudo-random number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}
