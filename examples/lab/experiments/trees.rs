//! The Bw-trees the experiments build: with a given [`Config`], with 100-byte records behind the
//! lab's `u64` interface ([`Wide`]), and shared with the closure that reads their statistics.

use std::ops::Bound;
use std::sync::Arc;

use bwtree::{BwTree, ConcurrentMap, Config, StatsSnapshot};

use crate::maps::LabMap;

/// A Bw-tree with `config`.
pub fn bwtree(config: Config) -> BwTree<u64, u64> {
    BwTree::with_config(config).expect("the experiments' configurations are valid")
}

/// Reads a tree's statistics.
pub type StatsFn = Box<dyn Fn() -> StatsSnapshot>;

/// A map shared with the closure that reads its statistics.
pub struct ArcMap<M>(pub Arc<M>);

impl<M: ConcurrentMap<u64, u64>> ConcurrentMap<u64, u64> for ArcMap<M> {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn insert(&self, key: u64, value: u64) -> Option<u64> {
        self.0.insert(key, value)
    }
    fn get(&self, key: &u64) -> Option<u64> {
        self.0.get(key)
    }
    fn remove(&self, key: &u64) -> Option<u64> {
        self.0.remove(key)
    }
    fn scan(
        &self,
        lo: Bound<&u64>,
        hi: Bound<&u64>,
        limit: usize,
        out: &mut Vec<(u64, u64)>,
    ) -> usize {
        self.0.scan(lo, hi, limit, out)
    }
}

/// A fresh Bw-tree with `config` and the reader of its statistics: 8-byte values, or 100-byte
/// records (ICDE'13's "large records").
pub fn measured_bwtree(config: Config, wide: bool) -> (Box<LabMap>, StatsFn) {
    if wide {
        let tree = Arc::new(WideTree(
            BwTree::with_config(config).expect("the experiments' configurations are valid"),
        ));
        let stats = tree.clone();
        (Box::new(ArcMap(tree)), Box::new(move || stats.0.stats()))
    } else {
        let tree = Arc::new(bwtree(config));
        let stats = tree.clone();
        (Box::new(ArcMap(tree)), Box::new(move || stats.stats()))
    }
}

/// A record of 100 bytes: the lab's `u64` value in the first eight bytes, the rest a fill byte
/// derived from it (checked on every read).
#[derive(Clone)]
pub struct Wide([u8; 100]);

impl Wide {
    /// The record holding `value`.
    pub fn of(value: u64) -> Wide {
        let mut bytes = [value as u8 ^ 0x5A; 100];
        bytes[..8].copy_from_slice(&value.to_le_bytes());
        Wide(bytes)
    }

    /// The value, or `None` if the fill bytes do not match it (a torn or mixed-up record).
    pub fn value(&self) -> Option<u64> {
        let value = u64::from_le_bytes(self.0[..8].try_into().expect("8 bytes"));
        self.0[8..]
            .iter()
            .all(|&b| b == value as u8 ^ 0x5A)
            .then_some(value)
    }
}

/// A Bw-tree with 100-byte values behind the lab's `u64` interface: a torn record reads as a wrong
/// value, which the runner reports.
struct WideTree(BwTree<u64, Wide>);

impl WideTree {
    fn unpack(record: Option<Wide>) -> Option<u64> {
        record.map(|r| r.value().unwrap_or(u64::MAX))
    }
}

impl ConcurrentMap<u64, u64> for WideTree {
    fn name(&self) -> &'static str {
        "bwtree-100B"
    }
    fn insert(&self, key: u64, value: u64) -> Option<u64> {
        Self::unpack(self.0.insert(key, Wide::of(value)))
    }
    fn get(&self, key: &u64) -> Option<u64> {
        Self::unpack(self.0.get(key))
    }
    fn remove(&self, key: &u64) -> Option<u64> {
        Self::unpack(self.0.remove(key))
    }
    fn scan(
        &self,
        lo: Bound<&u64>,
        hi: Bound<&u64>,
        limit: usize,
        out: &mut Vec<(u64, u64)>,
    ) -> usize {
        let mut wide = Vec::new();
        let n = ConcurrentMap::scan(&self.0, lo, hi, limit, &mut wide);
        out.extend(
            wide.into_iter()
                .map(|(k, v)| (k, v.value().unwrap_or(u64::MAX))),
        );
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_records_round_trip_and_detect_tearing() {
        let w = Wide::of(0xDEAD_BEEF);
        assert_eq!(w.value(), Some(0xDEAD_BEEF));
        let mut torn = w.clone();
        torn.0[50] ^= 1;
        assert_eq!(torn.value(), None);
        let tree = WideTree(BwTree::new());
        assert_eq!(tree.insert(7, 70), None);
        assert_eq!(tree.get(&7), Some(70));
    }
}
