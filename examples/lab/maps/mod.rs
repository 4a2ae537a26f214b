//! The maps the lab can measure: the Bw-tree, the crate's baselines and peer crates, each behind
//! [`ConcurrentMap`] and built by a [`MapFactory`].

mod peers;

use bwtree::BwTree;
use bwtree::ConcurrentMap;
use bwtree::baselines::{CoarseLockMap, LockCouplingBTree, OlcBTree};

/// Every map the lab drives: u64 keys and values, shared by reference between threads.
pub type LabMap = dyn ConcurrentMap<u64, u64>;

/// Builds empty maps of one kind; later experiments can make factories for configured variants
/// (a Bw-tree with another chain threshold, say) with [`MapFactory::new`].
pub struct MapFactory {
    /// The name in reports and on the command line.
    pub name: String,
    /// One line on what the map is.
    pub about: &'static str,
    make: Box<dyn Fn() -> Box<LabMap> + Send + Sync>,
}

impl MapFactory {
    /// A factory named `name` that builds maps with `make`.
    pub fn new(
        name: impl Into<String>,
        about: &'static str,
        make: impl Fn() -> Box<LabMap> + Send + Sync + 'static,
    ) -> MapFactory {
        MapFactory {
            name: name.into(),
            about,
            make: Box::new(make),
        }
    }

    /// A new, empty map.
    pub fn make(&self) -> Box<LabMap> {
        (self.make)()
    }
}

/// The name of the map the report compares with the others.
pub const SUBJECT: &str = "bwtree";

/// All maps, the Bw-tree first, then the baselines, then the peers.
pub fn all() -> Vec<MapFactory> {
    vec![
        MapFactory::new(
            SUBJECT,
            "this crate's lock-free Bw-tree, default Config",
            || Box::new(BwTree::<u64, u64>::new()),
        ),
        MapFactory::new(
            "olc-btree",
            "baseline: B+tree with optimistic lock coupling",
            || Box::new(OlcBTree::new()),
        ),
        MapFactory::new(
            "lock-coupling-btree",
            "baseline: B+tree with per-node reader/writer latches (crabbing)",
            || Box::new(LockCouplingBTree::<u64, u64>::new()),
        ),
        MapFactory::new(
            "coarse-rwlock",
            "baseline: std BTreeMap behind one RwLock",
            || Box::new(CoarseLockMap::<u64, u64>::new()),
        ),
        MapFactory::new(
            "skipmap",
            "peer: crossbeam-skiplist SkipMap (lock-free skip list)",
            || Box::new(peers::SkipMapAdapter::new()),
        ),
        MapFactory::new(
            "scc-treeindex",
            "peer: scc TreeIndex (lock-free reads, latched structure changes)",
            || Box::new(peers::SccAdapter::new()),
        ),
        MapFactory::new(
            "concurrent-map",
            "peer: concurrent-map (lock-free B+tree, copy-on-write leaves; one clone per thread)",
            || Box::new(peers::KomoraAdapter::new()),
        ),
        MapFactory::new(
            "ferntree",
            "peer: ferntree Tree (B+tree with optimistic lock coupling, hybrid latches)",
            || Box::new(peers::FerntreeAdapter::new()),
        ),
    ]
}

/// Variants of the Bw-tree for ablations, selectable with `--maps` but not in the default run.
pub fn variants() -> Vec<MapFactory> {
    vec![MapFactory::new(
        "bwtree-no-merge",
        "this crate's Bw-tree with merges off (both merge thresholds 0)",
        || {
            Box::new(
                BwTree::<u64, u64>::with_config(bwtree::Config {
                    leaf_merge_threshold: 0,
                    inner_merge_threshold: 0,
                    ..bwtree::Config::default()
                })
                .expect("a valid configuration"),
            )
        },
    )]
}

/// The factories named in `names` (in that order), or an error naming the unknown one.
pub fn select(names: &[String]) -> Result<Vec<MapFactory>, String> {
    let mut all = all();
    all.extend(variants());
    let mut chosen = Vec::with_capacity(names.len());
    for name in names {
        match all.iter().position(|f| f.name == *name) {
            Some(at) => chosen.push(all.remove(at)),
            None if chosen.iter().any(|f: &MapFactory| f.name == *name) => {
                return Err(format!("map {name:?} is listed twice"));
            }
            None => {
                let known: Vec<String> = self::all()
                    .into_iter()
                    .chain(variants())
                    .map(|f| f.name)
                    .collect();
                return Err(format!(
                    "unknown map {name:?}; known maps: {}",
                    known.join(", ")
                ));
            }
        }
    }
    Ok(chosen)
}

/// Frees what epoch-based reclamation still holds: pins and flushes crossbeam-epoch's default
/// collector (used by the Bw-tree and the skip map) until deferred frees have run. Called between
/// measurements so that one map's garbage is not counted against, or freed during, another's.
pub fn settle() {
    for _ in 0..32 {
        bwtree::epoch::pin().flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::mix;
    use std::collections::BTreeMap;
    use std::ops::Bound;

    /// Every map, peers included, agrees with `BTreeMap` on a single-threaded random sequence,
    /// return values included (overwrites, removes, scans with every bound kind).
    #[test]
    fn every_map_matches_a_model() {
        for factory in all() {
            let map = factory.make();
            assert_eq!(map.name(), factory.name);
            let mut model = BTreeMap::new();
            for step in 0..4_000u64 {
                let r = mix(step ^ 0x5EED);
                let key = r % 500;
                match r >> 60 {
                    0..=5 => assert_eq!(
                        map.insert(key, step),
                        model.insert(key, step),
                        "{}",
                        factory.name
                    ),
                    6..=8 => assert_eq!(map.remove(&key), model.remove(&key), "{}", factory.name),
                    9..=12 => {
                        assert_eq!(map.get(&key), model.get(&key).copied(), "{}", factory.name)
                    }
                    _ => {
                        let hi = key + (r >> 20) % 100;
                        let limit = (r >> 40) as usize % 30;
                        let bounds = [
                            (Bound::Included(&key), Bound::Excluded(&hi)),
                            (Bound::Excluded(&key), Bound::Included(&hi)),
                            (Bound::Included(&key), Bound::Unbounded),
                            (Bound::Included(&hi), Bound::Excluded(&key)),
                        ];
                        let (lo, hi) = bounds[(r >> 32) as usize % bounds.len()];
                        let mut out = Vec::new();
                        let n = map.scan(lo, hi, limit, &mut out);
                        let empty = match (lo, hi) {
                            (Bound::Included(l), Bound::Excluded(h)) => l >= h,
                            (Bound::Excluded(l), Bound::Included(h)) => l >= h,
                            _ => false,
                        };
                        let expected: Vec<(u64, u64)> = if empty {
                            Vec::new()
                        } else {
                            model
                                .range((lo, hi))
                                .take(limit)
                                .map(|(k, v)| (*k, *v))
                                .collect()
                        };
                        assert_eq!((n, out), (expected.len(), expected), "{}", factory.name);
                    }
                }
            }
        }
    }

    #[test]
    fn select_keeps_order_and_rejects_unknown_names() {
        let names = ["skipmap".to_string(), SUBJECT.to_string()];
        let chosen: Vec<String> = select(&names)
            .unwrap()
            .into_iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(chosen, names);
        assert!(
            select(&["nope".to_string()])
                .err()
                .unwrap()
                .contains("unknown map")
        );
        assert!(
            select(&[SUBJECT.to_string(), SUBJECT.to_string()])
                .err()
                .unwrap()
                .contains("twice")
        );
    }
}
