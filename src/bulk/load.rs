//! Bulk loading: a tree built bottom-up from sorted input, in O(n).
//!
//! The input is read once and checked to be strictly ascending; the leaves are then cut into pieces
//! of `fill × leaf_capacity` records (sizes as even as possible), built right to left so that each
//! page is created knowing its right sibling's PID, and the inner levels are built the same way
//! from the level below until one page remains: the root. Every page is a plain base page; nothing
//! is published until the whole tree is built, and the tree is not shared before it is returned, so
//! no other thread can see a partial tree. Bad input (unsorted or duplicate keys, an out-of-range
//! fill factor, an invalid configuration) is reported before anything is built.

use core::fmt;

use crate::BwTree;
use crate::config::{Config, ConfigError};
use crate::mapping::Pid;
use crate::page;
use crate::protocol::split::even_pieces;

/// The fill factor [`BwTree::from_sorted_iter`] uses: pages are filled to 90% of their capacity, so
/// that later inserts into a bulk-loaded page do not split it at once.
pub const DEFAULT_FILL_FACTOR: f64 = 0.9;

/// Why a bulk load was refused. Nothing was built.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum BulkLoadError<K> {
    /// The input was not in ascending key order: item `index` has a key smaller than the one before.
    Unsorted {
        /// Position of the offending item in the input.
        index: usize,
        /// Its key.
        key: K,
        /// The key of the item before it.
        previous: K,
    },
    /// Item `index` repeats the key of the item before it.
    Duplicate {
        /// Position of the second occurrence in the input.
        index: usize,
        /// The repeated key.
        key: K,
    },
    /// The fill factor is not a number in `0.5..=1.0`.
    FillFactor(f64),
    /// The configuration is invalid.
    Config(ConfigError),
}

impl<K: fmt::Debug> fmt::Display for BulkLoadError<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BulkLoadError::Unsorted {
                index,
                key,
                previous,
            } => write!(
                f,
                "bulk load input is not sorted: item {index} has key {key:?} after {previous:?}"
            ),
            BulkLoadError::Duplicate { index, key } => {
                write!(f, "bulk load input repeats key {key:?} at item {index}")
            }
            BulkLoadError::FillFactor(fill) => {
                write!(f, "bulk load fill factor {fill} is outside 0.5..=1.0")
            }
            BulkLoadError::Config(error) => write!(f, "bulk load: {error}"),
        }
    }
}

impl<K: fmt::Debug> std::error::Error for BulkLoadError<K> {}

impl<K, V> BwTree<K, V>
where
    K: Ord + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Builds a tree with the default [`Config`] from pairs in strictly ascending key order, pages
    /// filled to [`DEFAULT_FILL_FACTOR`]. O(n); see [`BwTree::from_sorted_iter_with`].
    ///
    /// ```
    /// use bwtree::BwTree;
    ///
    /// let tree = BwTree::from_sorted_iter((0..1_000u64).map(|k| (k, k * 2))).unwrap();
    /// assert_eq!(tree.get(&500), Some(1_000));
    /// assert!(BwTree::from_sorted_iter([(2u64, 0u64), (1, 0)]).is_err());
    /// ```
    pub fn from_sorted_iter<I>(pairs: I) -> Result<Self, BulkLoadError<K>>
    where
        I: IntoIterator<Item = (K, V)>,
    {
        Self::from_sorted_iter_with(Config::default(), DEFAULT_FILL_FACTOR, pairs)
    }

    /// Builds a tree with `config` from pairs in strictly ascending key order, bottom-up in O(n),
    /// filling every page to `fill` × its capacity (`0.5..=1.0`; the last pages of a level share
    /// what is left evenly).
    ///
    /// Unsorted input, a repeated key, a bad fill factor or an invalid configuration is an error,
    /// and nothing is built. The result passes [`BwTree::check_invariants`].
    pub fn from_sorted_iter_with<I>(
        config: Config,
        fill: f64,
        pairs: I,
    ) -> Result<Self, BulkLoadError<K>>
    where
        I: IntoIterator<Item = (K, V)>,
    {
        config.validate().map_err(BulkLoadError::Config)?;
        if !(0.5..=1.0).contains(&fill) {
            return Err(BulkLoadError::FillFactor(fill));
        }
        let records = sorted_records(pairs)?;
        let (leaf_capacity, inner_capacity) = (config.leaf_capacity, config.inner_capacity);
        let tree = Self::with_config(config).map_err(BulkLoadError::Config)?;
        if records.is_empty() {
            return Ok(tree);
        }
        let per_page = |capacity: usize, least: usize| {
            ((capacity as f64 * fill) as usize).clamp(least, capacity)
        };
        {
            let guard = &tree.guard();
            let mut level = build_leaves(&tree, records, per_page(leaf_capacity, 1), guard);
            let mut height = 0u8;
            while level.len() > 1 {
                height += 1;
                level = build_inner(&tree, height, level, per_page(inner_capacity, 2), guard);
            }
            let empty_root = tree.root.pid(guard);
            tree.root.set_unshared(level[0].1, guard);
            // The empty leaf the tree started with was never reachable by another thread.
            tree.table.free_unpublished(empty_root, guard);
        }
        Ok(tree)
    }
}

/// Reads the input, checking that keys strictly ascend.
fn sorted_records<K: Ord, V>(
    pairs: impl IntoIterator<Item = (K, V)>,
) -> Result<Vec<(K, V)>, BulkLoadError<K>> {
    let pairs = pairs.into_iter();
    let mut records: Vec<(K, V)> = Vec::with_capacity(pairs.size_hint().0);
    for (index, (key, value)) in pairs.enumerate() {
        if let Some((previous, _)) = records.last() {
            match previous.cmp(&key) {
                core::cmp::Ordering::Less => {}
                core::cmp::Ordering::Equal => return Err(BulkLoadError::Duplicate { index, key }),
                core::cmp::Ordering::Greater => {
                    let (previous, _) = records.pop().expect("checked above");
                    return Err(BulkLoadError::Unsorted {
                        index,
                        key,
                        previous,
                    });
                }
            }
        }
        records.push((key, value));
    }
    Ok(records)
}

/// Builds the leaves, right to left; returns `(low key, PID)` of each, left to right (the first
/// low key is `None`: the leftmost page is unbounded below).
fn build_leaves<K, V>(
    tree: &BwTree<K, V>,
    mut records: Vec<(K, V)>,
    per_leaf: usize,
    guard: &crossbeam_epoch::Guard,
) -> Vec<(Option<K>, Pid)>
where
    K: Ord + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    let sizes = even_pieces(records.len(), per_leaf);
    let mut pages = Vec::with_capacity(sizes.len());
    let mut high: Option<K> = None;
    let mut right = Pid::NONE;
    let mut end = records.len();
    for (i, size) in sizes.iter().enumerate().rev() {
        let start = end - size;
        let low = (i > 0).then(|| records[start].0.clone());
        let page = page::leaf_base(low.clone(), high.take(), right, records.drain(start..));
        right = tree.table.allocate(page, guard);
        pages.push((low.clone(), right));
        high = low;
        end = start;
    }
    pages.reverse();
    pages
}

/// Builds one inner level above `children` (`(low key, PID)`, left to right), right to left.
fn build_inner<K, V>(
    tree: &BwTree<K, V>,
    level: u8,
    children: Vec<(Option<K>, Pid)>,
    per_page: usize,
    guard: &crossbeam_epoch::Guard,
) -> Vec<(Option<K>, Pid)>
where
    K: Ord + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    let mut sizes = even_pieces(children.len(), per_page);
    if sizes.last() == Some(&1) {
        // Only possible with two or three children per page and a remainder: give every page at
        // least two children (an inner page holds at most its capacity, which is at least 3).
        sizes = even_pieces(children.len(), per_page + 1);
    }
    let mut pages = Vec::with_capacity(sizes.len());
    let mut high: Option<K> = None;
    let mut right = Pid::NONE;
    let mut end = children.len();
    for size in sizes.iter().rev() {
        let start = end - size;
        let group = &children[start..end];
        let low = group[0].0.clone();
        let separators = group[1..]
            .iter()
            .map(|(low, _)| low.clone().expect("only the leftmost page lacks a low key"));
        let pids: Vec<Pid> = group.iter().map(|(_, pid)| *pid).collect();
        let page = page::inner_base(level, low.clone(), high.take(), right, separators, &pids);
        right = tree.table.allocate(page, guard);
        pages.push((low.clone(), right));
        high = low;
        end = start;
    }
    pages.reverse();
    pages
}
