//! The keys of `lab bulk`: loaded keys are multiples of [`SPACING`], fresh keys the integers
//! between them, handed out only while they are absent from the map.

use super::{CLUSTER_STRIDE, SPACING};
use crate::keys::mix;

/// A deterministic stream of pseudo-random numbers (splitmix64).
pub struct Draw(pub u64);

impl Draw {
    /// A number in `0..bound` (`bound > 0`).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.0 = self.0.wrapping_add(1);
        mix(self.0) % bound
    }
}

/// The fresh keys not used yet: every integer below `n × SPACING` that is not a loaded key (a
/// multiple of [`SPACING`]), minus those handed out and not released.
pub struct FreeKeys {
    /// Bit `o` of entry `g`: key `g × SPACING + o` is handed out (in the map).
    used: Vec<u16>,
}

impl FreeKeys {
    /// All fresh keys between `n` loaded keys are free.
    pub fn new(n: usize) -> FreeKeys {
        FreeKeys { used: vec![0; n] }
    }

    /// The end of the key space.
    pub fn end(&self) -> u64 {
        self.used.len() as u64 * SPACING
    }

    /// Marks `key` used; whether it was a free fresh key.
    pub fn claim(&mut self, key: u64) -> bool {
        let (gap, offset) = (key / SPACING, key % SPACING);
        if offset == 0 || gap >= self.used.len() as u64 {
            return false;
        }
        let bit = 1u16 << offset;
        let slot = &mut self.used[gap as usize];
        let free = *slot & bit == 0;
        *slot |= bit;
        free
    }

    /// Frees `keys` again (they were removed from the map).
    pub fn release(&mut self, keys: &[u64]) {
        for &key in keys {
            if key % SPACING != 0 {
                self.used[(key / SPACING) as usize] &= !(1u16 << (key % SPACING));
            }
        }
    }

    /// `count` free keys spread uniformly over the key space, in random order.
    pub fn random(&mut self, count: usize, draw: &mut Draw) -> Vec<u64> {
        let mut keys = Vec::with_capacity(count);
        while keys.len() < count {
            let key = draw.below(self.end());
            if self.claim(key) {
                keys.push(key);
            }
        }
        keys
    }

    /// Up to `count` free keys: every [`CLUSTER_STRIDE`]th integer from `start` up, ascending; if
    /// the key space ends first, the lowest free keys make up the rest.
    pub fn clustered(&mut self, count: usize, start: u64) -> Vec<u64> {
        let end = self.end();
        let mut keys = Vec::with_capacity(count);
        for step in [CLUSTER_STRIDE, 1] {
            let mut key = if step == 1 { 0 } else { start };
            while keys.len() < count && key < end {
                if self.claim(key) {
                    keys.push(key);
                }
                key += step;
            }
        }
        keys
    }

    /// A start for a clustered draw of `count` keys that ends before the key space does.
    pub fn cluster_start(&self, count: usize, draw: &mut Draw) -> u64 {
        let span = count as u64 * CLUSTER_STRIDE * SPACING / (SPACING - 1) + SPACING;
        draw.below(self.end().saturating_sub(span).max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_keys_are_distinct_free_and_never_loaded() {
        let mut free = FreeKeys::new(100);
        let mut draw = Draw(7);
        let mut keys = free.random(500, &mut draw);
        keys.extend(free.clustered(300, 5));
        keys.extend(free.clustered(300, 5));
        assert_eq!(keys.len(), 1_100);
        assert!(keys.iter().all(|k| k % SPACING != 0 && *k < 100 * SPACING));
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), 1_100, "no key is handed out twice");
        assert!(!free.claim(keys[0]));
        assert!(!free.claim(32), "loaded keys are never fresh");
        // The space holds 1,500 fresh keys: a clustered draw stops when it runs out.
        assert_eq!(free.clustered(1_000, 0).len(), 400);
        free.release(&keys[..10]);
        let mut again = free.random(10, &mut draw);
        again.sort_unstable();
        assert_eq!(again, keys[..10], "released keys are the only free ones");
    }
}
