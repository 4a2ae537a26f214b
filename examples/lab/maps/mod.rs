//! The maps the lab can measure: the Bw-tree, the crate's baselines and peer crates, each behind
//! [`ConcurrentMap`] and built by a [`MapFactory`].

mod peers;

use bwtree::BwTree;
use bwtree::ConcurrentMap;
use bwtree::baselines::{CoarseLockMap, LockCouplingBTree, OlcBTree};

/// Every map the lab drives: u64 keys and values, shared by reference between threads.
pub type LabMap = dyn ConcurrentMap<u64, u64>;

/// Builds a map from pairs in ascending key order in one step (a bulk load).
type BulkLoad = Box<dyn Fn(Vec<(u64, u64)>) -> Box<LabMap> + Send + Sync>;

/// Builds empty maps of one kind; later experiments can make factories for configured variants
/// (a Bw-tree with another chain threshold, say) with [`MapFactory::new`].
pub struct MapFactory {
    /// The name in reports and on the command line.
    pub name: String,
    /// One line on what the map is.
    pub about: &'static str,
    /// How the map's `insert_batch` and `get_many` work (for the `bulk` experiment's report).
    pub batches: Batches,
    make: Box<dyn Fn() -> Box<LabMap> + Send + Sync>,
    /// The map's own bulk load from sorted pairs, if it has one.
    bulk_load: Option<(&'static str, BulkLoad)>,
}

/// How a map implements the batch methods of [`ConcurrentMap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Batches {
    /// The trait's defaults: one `insert`/`get` per key.
    OneByOne,
    /// One lock acquisition for the whole batch, then one operation per key under it.
    OneLock,
    /// The map's own batch operations (the Bw-tree: one delta per leaf, shared traversals).
    Native,
}

impl Batches {
    /// A short description for reports.
    pub fn describe(self) -> &'static str {
        match self {
            Batches::OneByOne => "trait default (one by one)",
            Batches::OneLock => "one lock acquisition",
            Batches::Native => "native (one delta per leaf; shared traversals)",
        }
    }
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
            batches: Batches::OneByOne,
            make: Box::new(make),
            bulk_load: None,
        }
    }

    /// The same factory, recording how the map's batch methods work.
    pub fn with_batches(mut self, batches: Batches) -> MapFactory {
        self.batches = batches;
        self
    }

    /// The same factory with a bulk load, named `how` in reports, that builds a map from pairs in
    /// strictly ascending key order.
    pub fn with_bulk_load(
        mut self,
        how: &'static str,
        load: impl Fn(Vec<(u64, u64)>) -> Box<LabMap> + Send + Sync + 'static,
    ) -> MapFactory {
        self.bulk_load = Some((how, Box::new(load)));
        self
    }

    /// A new, empty map.
    pub fn make(&self) -> Box<LabMap> {
        (self.make)()
    }

    /// The name of the map's own bulk load, if it has one.
    pub fn bulk_load_name(&self) -> Option<&'static str> {
        self.bulk_load.as_ref().map(|(how, _)| *how)
    }

    /// A map built by the map's own bulk load from `sorted` (strictly ascending keys), or `None`
    /// (and `sorted` unused) if it has none.
    pub fn bulk_load(&self, sorted: Vec<(u64, u64)>) -> Option<Box<LabMap>> {
        self.bulk_load.as_ref().map(|(_, load)| load(sorted))
    }
}

/// A Bw-tree with `config` bulk-loaded from `sorted` with the default fill factor.
fn bwtree_from_sorted(config: bwtree::Config, sorted: Vec<(u64, u64)>) -> Box<LabMap> {
    Box::new(
        BwTree::from_sorted_iter_with(config, bwtree::DEFAULT_FILL_FACTOR, sorted)
            .expect("the lab's bulk loads are sorted and distinct"),
    )
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
        )
        .with_batches(Batches::Native)
        .with_bulk_load("from_sorted_iter", |sorted| {
            bwtree_from_sorted(bwtree::Config::default(), sorted)
        }),
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
        )
        .with_batches(Batches::OneLock),
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
    let no_merge = || bwtree::Config {
        leaf_merge_threshold: 0,
        inner_merge_threshold: 0,
        ..bwtree::Config::default()
    };
    // The defaults before the page-size measurement of papers/performance.md (step 5).
    let small_pages = || bwtree::Config {
        leaf_capacity: 64,
        inner_capacity: 64,
        leaf_chain_threshold: 8,
        leaf_merge_threshold: 32,
        inner_merge_threshold: 32,
        ..bwtree::Config::default()
    };
    vec![
        MapFactory::new(
            "bwtree-64",
            "this crate's Bw-tree with 64-entry pages and leaf chain threshold 8",
            move || {
                Box::new(
                    BwTree::<u64, u64>::with_config(small_pages()).expect("a valid configuration"),
                )
            },
        )
        .with_batches(Batches::Native)
        .with_bulk_load("from_sorted_iter", move |sorted| {
            bwtree_from_sorted(small_pages(), sorted)
        }),
        MapFactory::new(
            "bwtree-no-merge",
            "this crate's Bw-tree with merges off (both merge thresholds 0)",
            move || {
                Box::new(
                    BwTree::<u64, u64>::with_config(no_merge()).expect("a valid configuration"),
                )
            },
        )
        .with_batches(Batches::Native)
        .with_bulk_load("from_sorted_iter", move |sorted| {
            bwtree_from_sorted(no_merge(), sorted)
        }),
    ]
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

    /// Every factory's bulk load (where it has one) and batch methods give the map the pairs.
    #[test]
    fn bulk_loads_and_batches_fill_every_map() {
        let sorted: Vec<(u64, u64)> = (0..1_000).map(|k| (k * 2, k)).collect();
        for factory in all().into_iter().chain(variants()) {
            match factory.bulk_load(sorted.clone()) {
                Some(map) => {
                    assert!(factory.name.starts_with(SUBJECT), "{}", factory.name);
                    assert!(factory.bulk_load_name().is_some());
                    assert_eq!(map.get(&998), Some(499), "{}", factory.name);
                    assert_eq!(map.get(&999), None, "{}", factory.name);
                }
                None => assert!(factory.bulk_load_name().is_none(), "{}", factory.name),
            }
            let map = factory.make();
            assert_eq!(map.insert_batch(sorted.clone()), vec![None; 1_000]);
            assert_eq!(
                map.get_many(&[0, 1, 1_998]),
                vec![Some(0), None, Some(999)],
                "{}",
                factory.name
            );
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
