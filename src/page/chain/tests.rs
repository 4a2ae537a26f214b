//! Unit tests of chain lookups, routing and collection on chains built by hand.

mod collect_and_lookup {
    use super::super::*;
    use crate::mapping::Pid;
    use crate::page::{self, OwnedNode, free_chain};
    use crate::page::{Body, NodeRef};
    use core::ops::Bound;

    /// A chain built by hand, freed on drop.
    struct Chain(*mut crate::page::Node<u64, u64>);

    // SAFETY: a hand-built chain is owned by its `Chain` alone; moving it moves the whole chain.
    unsafe impl Send for Chain {}

    impl Chain {
        fn head(&self) -> NodeRef<'_, u64, u64> {
            // SAFETY: the chain is alive until `self` is dropped.
            unsafe { NodeRef::from_raw(self.0) }.unwrap()
        }

        fn push(&mut self, build: impl FnOnce(NodeRef<'_, u64, u64>) -> OwnedNode<u64, u64>) {
            let node = build(self.head());
            self.0 = node.into_raw();
        }
    }

    impl Drop for Chain {
        fn drop(&mut self) {
            // SAFETY: built here, never shared.
            unsafe { free_chain(self.0) }
        }
    }

    /// A leaf chain from a base page and `(key, Some(value) | None)` deltas, oldest first.
    fn leaf_chain(base: &[(u64, u64)], deltas: &[(u64, Option<u64>)]) -> Chain {
        let mut chain =
            Chain(page::leaf_base(None, None, Pid::NONE, base.iter().copied()).into_raw());
        for &(key, value) in deltas {
            chain.push(|prev| {
                // As the write path does: the key's base position comes from a lookup on `prev`.
                let position = leaf_lookup(prev, &key).position;
                match value {
                    Some(value) => page::insert_delta(prev, key, value, 0, position),
                    None => page::delete_delta(prev, key, 0, position),
                }
            });
        }
        chain
    }

    fn collect_all(chain: &Chain, lo: Bound<&u64>, hi: Bound<&u64>) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        collect_leaf(chain.head(), lo, hi, &mut out);
        out.into_iter().map(|(k, v)| (*k, *v)).collect()
    }

    #[test]
    fn newest_delta_wins_in_get_and_collect() {
        let chain = leaf_chain(
            &[(1, 10), (3, 30), (5, 50)],
            &[
                (3, None),
                (4, Some(40)),
                (3, Some(31)),
                (1, None),
                (6, Some(60)),
            ],
        );
        let node = chain.head();
        assert_eq!(leaf_get(node, &1), None);
        assert_eq!(leaf_get(node, &3), Some(&31));
        assert_eq!(leaf_get(node, &4), Some(&40));
        assert_eq!(leaf_get(node, &5), Some(&50));
        assert_eq!(leaf_get(node, &2), None);
        assert_eq!(node.meta.depth, 5);
        assert_eq!(
            collect_all(&chain, Bound::Unbounded, Bound::Unbounded),
            vec![(3, 31), (4, 40), (5, 50), (6, 60)]
        );
        assert_eq!(
            collect_all(&chain, Bound::Excluded(&3), Bound::Included(&5)),
            vec![(4, 40), (5, 50)]
        );
        assert_eq!(
            collect_all(&chain, Bound::Included(&3), Bound::Excluded(&5)),
            vec![(3, 31), (4, 40)]
        );
        assert_eq!(
            collect_all(&chain, Bound::Included(&7), Bound::Unbounded),
            vec![]
        );
    }

    #[test]
    fn consolidation_by_runs_matches_the_collected_page() {
        // Random base pages and delta chains over a small key range (so deltas hit base keys,
        // each other and the page's ends): the page built from the base page's runs and the sorted
        // deltas must equal the collected page, record for record.
        let mut next = draws(0x9e37_79b9_7f4a_7c15);
        for case in 0..crate::test_size(500, 12) {
            let base: Vec<(u64, u64)> = (0..40u64)
                .filter(|_| next(3) == 0)
                .map(|k| (k, k + 1000))
                .collect();
            let deltas: Vec<(u64, Option<u64>)> = (0..next(10))
                .map(|i| (next(42), (next(3) != 0).then_some(i)))
                .collect();
            let chain = leaf_chain(&base, &deltas);
            let mut scratch = Vec::new();
            let (page, len) = sorted_leaf_deltas(chain.head(), &mut scratch)
                .expect("insert and delete deltas keep the shortcut summary");
            let built = page::leaf_base_merged(None, None, Pid::NONE, page, &scratch, len);
            let Body::Leaf(leaf) = built.as_ref().body() else {
                panic!("not a leaf")
            };
            let got: Vec<(u64, u64)> = leaf
                .keys()
                .iter()
                .copied()
                .zip(leaf.values().iter().copied())
                .collect();
            let want = collect_all(&chain, Bound::Unbounded, Bound::Unbounded);
            assert_eq!(got, want, "case {case}: base {base:?} deltas {deltas:?}");
            assert_eq!(built.as_ref().meta.size as usize, want.len());
        }
    }

    /// xorshift64 draws below `n`, from `seed`.
    fn draws(seed: u64) -> impl FnMut(u64) -> u64 {
        let mut x = seed;
        move |n| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        }
    }

    /// `(key, Some(value) | None)` records applied in order to `model`.
    fn apply(model: &mut std::collections::BTreeMap<u64, u64>, records: &[(u64, Option<u64>)]) {
        for &(key, value) in records {
            match value {
                Some(value) => model.insert(key, value),
                None => model.remove(&key),
            };
        }
    }

    /// For four bound kinds around `lo`/`hi` and several limits: the collection of `chain` must be
    /// `model`'s records in the bounds, cut at the limit, and report how many it appended.
    fn assert_collects_model(
        chain: &Chain,
        model: &std::collections::BTreeMap<u64, u64>,
        lo: u64,
        hi: u64,
        case: u64,
    ) {
        let bounds = [
            (Bound::Included(&lo), Bound::Excluded(&hi)),
            (Bound::Excluded(&lo), Bound::Included(&hi)),
            (Bound::Included(&lo), Bound::Unbounded),
            (Bound::Unbounded, Bound::Unbounded),
        ];
        let mut scratch = Vec::new();
        for (lo_bound, hi_bound) in bounds {
            let want: Vec<(u64, u64)> = model
                .iter()
                .filter(|(k, _)| in_bounds(*k, lo_bound, hi_bound))
                .map(|(k, v)| (*k, *v))
                .collect();
            for limit in [0, 1, 2, 5, want.len(), usize::MAX] {
                let mut out = Vec::new();
                let appended = collect_leaf_with(
                    chain.head(),
                    lo_bound,
                    hi_bound,
                    limit,
                    &mut out,
                    &mut scratch,
                );
                let got: Vec<(u64, u64)> = out.into_iter().map(|(k, v)| (*k, *v)).collect();
                let cut = &want[..want.len().min(limit)];
                assert_eq!(
                    got, cut,
                    "case {case}: {lo_bound:?}..{hi_bound:?} limit {limit}"
                );
                assert_eq!(appended, got.len());
            }
        }
    }

    #[test]
    fn bounded_and_limited_collection_matches_a_model() {
        // Random chains as above; the base page's runs and the deltas merged by
        // `apply_deltas_to_run`.
        let mut next = draws(0x2545_f491_4f6c_dd1d);
        for case in 0..crate::test_size(300, 10) {
            let base: Vec<(u64, u64)> = (0..30u64)
                .filter(|_| next(2) == 0)
                .map(|k| (k, k + 1000))
                .collect();
            let deltas: Vec<(u64, Option<u64>)> = (0..next(8))
                .map(|i| (next(32), (next(3) != 0).then_some(i)))
                .collect();
            let chain = leaf_chain(&base, &deltas);
            let mut model: std::collections::BTreeMap<u64, u64> = base.iter().copied().collect();
            apply(&mut model, &deltas);
            assert_collects_model(&chain, &model, next(34), next(34), case);
        }
    }

    #[test]
    fn collection_through_a_merge_delta_matches_a_model() {
        // A left page (keys below 20) with a merge delta taking in a right page (keys from 20),
        // each with its own deltas, and deltas on either side of the separator above the merge:
        // the two halves are collected and the newer deltas merged over them (`apply_deltas`).
        let mut next = draws(0x9e37_79b9_7f4a_7c15);
        for case in 0..crate::test_size(300, 10) {
            let half = |next: &mut dyn FnMut(u64) -> u64, from: u64| -> Vec<(u64, u64)> {
                (from..from + 20)
                    .filter(|_| next(2) == 0)
                    .map(|k| (k, k + 1000))
                    .collect()
            };
            let (left_base, right_base) = (half(&mut next, 0), half(&mut next, 20));
            let mut records = |from: u64, n: u64| -> Vec<(u64, Option<u64>)> {
                (0..next(n))
                    .map(|i| (from + next(20), (next(3) != 0).then_some(i + 500)))
                    .collect()
            };
            let (left_deltas, right_deltas) = (records(0, 4), records(20, 4));
            let above: Vec<(u64, Option<u64>)> = (0..next(6))
                .map(|i| (next(42), (next(3) != 0).then_some(i + 900)))
                .collect();
            let mut chain = leaf_chain(&left_base, &left_deltas);
            let right = leaf_chain(&right_base, &right_deltas);
            chain.push(|prev| page::merge_delta(prev, right.head(), Pid(7), 20));
            // The merge delta owns the right chain now (freed with `chain`).
            core::mem::forget(right);
            for &(key, value) in &above {
                chain.push(|prev| match value {
                    Some(value) => page::insert_delta(prev, key, value, 0, None),
                    None => page::delete_delta(prev, key, 0, None),
                });
            }
            let mut model: std::collections::BTreeMap<u64, u64> =
                left_base.iter().chain(&right_base).copied().collect();
            apply(&mut model, &left_deltas);
            apply(&mut model, &right_deltas);
            apply(&mut model, &above);
            assert_collects_model(&chain, &model, next(44), next(44), case);
        }
    }

    /// Chooses which of `n + 1` groups of pages absorbs its right neighbour next (`0..n`), given
    /// a source of random draws.
    type Pick<'a> = dyn FnMut(usize, &mut dyn FnMut(u64) -> u64) -> usize + 'a;

    /// Pages `[10i, 10i + 10)` for `i < pages`, each a base page with random records and random
    /// deltas, merged pairwise in the order `pick` chooses (an index into the current list of
    /// groups: group `g` absorbs group `g + 1`), with random deltas posted above each merge delta:
    /// a merge tree as merges of merges build it. Returns the chain and its logical content.
    fn merge_tree(
        pages: u64,
        next: &mut dyn FnMut(u64) -> u64,
        pick: &mut Pick<'_>,
    ) -> (Chain, std::collections::BTreeMap<u64, u64>) {
        let mut model = std::collections::BTreeMap::new();
        let mut groups: Vec<(u64, Chain)> = (0..pages)
            .map(|i| {
                let base: Vec<(u64, u64)> = (10 * i..10 * i + 10)
                    .filter(|_| next(2) == 0)
                    .map(|k| (k, k + 1000))
                    .collect();
                let deltas: Vec<(u64, Option<u64>)> = (0..next(3))
                    .map(|j| (10 * i + next(10), (next(3) != 0).then_some(j + 500)))
                    .collect();
                model.extend(base.iter().copied());
                apply(&mut model, &deltas);
                (10 * i, leaf_chain(&base, &deltas))
            })
            .collect();
        while groups.len() > 1 {
            let g = pick(groups.len() - 1, next);
            let (separator, right) = groups.remove(g + 1);
            let end = groups.get(g + 1).map_or(10 * pages, |(low, _)| *low);
            let (low, chain) = &mut groups[g];
            chain.push(|prev| page::merge_delta(prev, right.head(), Pid(7), separator));
            // The merge delta owns the right chain now (freed with `chain`).
            core::mem::forget(right);
            let above: Vec<(u64, Option<u64>)> = (0..next(3))
                .map(|j| (*low + next(end - *low), (next(3) != 0).then_some(j + 900)))
                .collect();
            for &(key, value) in &above {
                chain.push(|prev| match value {
                    Some(value) => page::insert_delta(prev, key, value, 0, None),
                    None => page::delete_delta(prev, key, 0, None),
                });
            }
            apply(&mut model, &above);
        }
        (groups.pop().expect("one group").1, model)
    }

    #[test]
    fn nested_merge_trees_collect_and_look_up_like_a_model() {
        // Merges of merged pages, in random orders: the deltas above each merge apply to both of
        // its sides, and each side's own deltas to that side only.
        let mut next = draws(0x2545_f491_4f6c_dd1d);
        for case in 0..crate::test_size(300, 10) {
            let pages = 2 + next(9);
            let (chain, model) = merge_tree(pages, &mut next, &mut |groups, next| {
                next(groups as u64) as usize
            });
            for key in 0..10 * pages {
                assert_eq!(
                    leaf_get(chain.head(), &key),
                    model.get(&key),
                    "case {case}, key {key}"
                );
            }
            let (lo, hi) = (next(10 * pages), next(10 * pages));
            assert_collects_model(&chain, &model, lo, hi, case);
        }
    }

    #[test]
    fn deep_merge_trees_collect_without_recursion() {
        // 3,000 pages merged as a cascade of removals builds them: every merged page merging on
        // into its left neighbour (nested through the right sides), or one page absorbing its
        // right neighbours one after the other (nested through `next`). Collected on a 64 KiB
        // stack, which a recursion per merge would overflow.
        let mut next = draws(0x9e37_79b9_7f4a_7c15);
        for leftwards in [true, false] {
            let (chain, model) =
                merge_tree(crate::test_size(3_000, 60), &mut next, &mut |groups, _| {
                    if leftwards { groups - 1 } else { 0 }
                });
            let collected = std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || {
                    let all = collect_all(&chain, Bound::Unbounded, Bound::Unbounded);
                    let some =
                        collect_all(&chain, Bound::Included(&15_000), Bound::Excluded(&15_100));
                    (all, some)
                })
                .unwrap()
                .join()
                .unwrap();
            let want: Vec<(u64, u64)> = model.iter().map(|(k, v)| (*k, *v)).collect();
            assert_eq!(collected.0, want);
            let some: Vec<(u64, u64)> =
                model.range(15_000..15_100).map(|(k, v)| (*k, *v)).collect();
            assert_eq!(collected.1, some);
        }
    }

    #[test]
    fn lookup_shortcut_summarises_delta_positions() {
        // Base [1, 3, 5]: key 1 has position 0, key 6 position 3.
        let chain = leaf_chain(&[(1, 10), (3, 30), (5, 50)], &[(1, None), (6, Some(60))]);
        let head = chain.head();
        assert_eq!(head.meta.slots, page::slot_bit(0) | page::slot_bit(3));
        // Key 5 (position 2) is unflagged: answered by the base page alone.
        assert_eq!(
            leaf_lookup(head, &5),
            LeafLookup {
                value: Some(&50),
                position: Some(2)
            }
        );
        // Flagged positions walk the chain, where the newest delta wins.
        assert_eq!(leaf_lookup(head, &1).value, None);
        assert_eq!(leaf_lookup(head, &6).value, Some(&60));
        // Key 7 shares position 3 with key 6: flagged, walked, absent.
        assert_eq!(leaf_lookup(head, &7).value, None);
        assert_eq!(leaf_lookup(head, &7).position, Some(3));
    }

    #[test]
    fn index_entries_route_by_their_own_range() {
        let base = page::inner_base::<u64, u64>(
            1,
            None,
            None,
            Pid::NONE,
            [100].into_iter(),
            &[Pid(1), Pid(2)],
        );
        let mut chain = Chain(base.into_raw());
        // Pid(1) split at 50 into Pid(3); then Pid(3) split at 70 into Pid(4).
        chain.push(|prev| page::index_entry_delta(prev, 50, Pid(3), Some(100), 3));
        chain.push(|prev| page::index_entry_delta(prev, 70, Pid(4), Some(100), 4));
        let node = chain.head();
        let route = |k: u64| inner_route(node, &At(&k));
        assert_eq!(route(0), Pid(1));
        assert_eq!(route(49), Pid(1));
        assert_eq!(route(50), Pid(3));
        assert_eq!(route(69), Pid(3));
        assert_eq!(route(70), Pid(4));
        assert_eq!(route(99), Pid(4));
        assert_eq!(route(100), Pid(2));
        assert_eq!(inner_route(node, &Below(&70)), Pid(3));
        assert_eq!(inner_route(node, &Below(&71)), Pid(4));
        assert_eq!(inner_route(node, &First), Pid(1));
        assert_eq!(inner_route(node, &Last), Pid(2));
        let children: Vec<_> = collect_inner(node)
            .into_iter()
            .map(|(low, pid)| (low.copied(), pid))
            .collect();
        assert_eq!(
            children,
            vec![
                (None, Pid(1)),
                (Some(50), Pid(3)),
                (Some(70), Pid(4)),
                (Some(100), Pid(2))
            ]
        );
    }
}
mod index_delete {
    use super::super::*;
    use crate::mapping::Pid;
    use crate::page::NodeRef;
    use crate::page::{self, Removal, free_chain};
    #[test]
    fn index_delete_removes_the_separator() {
        let base = page::inner_base::<u64, u64>(
            1,
            None,
            None,
            Pid::NONE,
            [18, 27, 34].into_iter(),
            &[Pid(1), Pid(2), Pid(4), Pid(5)],
        );
        let base = base.into_raw();
        let removal = Removal::new();
        // SAFETY: test-local chain.
        let head = page::index_delete_delta(
            unsafe { NodeRef::from_raw(base) }.unwrap(),
            27,
            Some(34),
            Pid(2),
            removal.clone(),
            3,
        )
        .into_raw();
        removal.decide(true);
        // SAFETY: test-local chain.
        let children: Vec<_> = collect_inner(unsafe { NodeRef::from_raw(head) }.unwrap())
            .into_iter()
            .map(|c| c.1)
            .collect();
        assert_eq!(children, vec![Pid(1), Pid(2), Pid(5)]);
        // SAFETY: test-local chain.
        unsafe { free_chain(head) };
    }

    /// The inner-page counterpart of the leaf merge trees: pages `[100i, 100i + 100)` with random
    /// separators, merged pairwise in random order (or as a cascade), with index entries and
    /// index-term-deletes posted above the merges. `collect_inner` must equal a model map from low
    /// key to child, and must not recurse per merge (run on a 64 KiB stack).
    #[test]
    fn inner_merge_trees_collect_like_a_model() {
        let mut x: u64 = 0x853c_49e6_748f_ea9b;
        let mut next = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut pid = 100u64;
        for case in 0..crate::test_size(200, 8) {
            let cascade = case % 50 == 49 || (cfg!(miri) && case == 7);
            let pages: u64 = if cascade {
                crate::test_size(2_000, 40)
            } else {
                2 + next(7)
            };
            let mut model: std::collections::BTreeMap<Option<u64>, Pid> = Default::default();
            let mut groups: Vec<(u64, *mut page::Node<u64, u64>)> = (0..pages)
                .map(|i| {
                    let low = 100 * i;
                    let mut separators: Vec<u64> =
                        (low + 1..low + 100).filter(|_| next(20) == 0).collect();
                    separators.dedup();
                    let children: Vec<Pid> = (0..=separators.len())
                        .map(|_| {
                            pid += 1;
                            Pid(pid)
                        })
                        .collect();
                    model.insert((i > 0).then_some(low), children[0]);
                    for (s, c) in separators.iter().zip(&children[1..]) {
                        model.insert(Some(*s), *c);
                    }
                    let high = (i + 1 < pages).then_some(low + 100);
                    let base = page::inner_base::<u64, u64>(
                        1,
                        (i > 0).then_some(low),
                        high,
                        Pid::NONE,
                        separators.into_iter(),
                        &children,
                    );
                    (low, base.into_raw())
                })
                .collect();
            while groups.len() > 1 {
                let g = if cascade {
                    groups.len() - 2
                } else {
                    next(groups.len() as u64 - 1) as usize
                };
                let (separator, right) = groups.remove(g + 1);
                let end = groups.get(g + 1).map_or(100 * pages, |(low, _)| *low);
                let (low, head) = &mut groups[g];
                // SAFETY: test-local chains, alive until freed at the end of the case.
                let (left_ref, right_ref) = unsafe {
                    (
                        NodeRef::from_raw(*head).unwrap(),
                        NodeRef::from_raw(right).unwrap(),
                    )
                };
                *head = page::merge_delta(left_ref, right_ref, Pid(7), separator).into_raw();
                for _ in 0..next(3) {
                    // SAFETY: as above.
                    let prev = unsafe { NodeRef::from_raw(*head) }.unwrap();
                    let key = *low + 1 + next(end - *low - 1);
                    *head = if next(2) == 0 {
                        pid += 1;
                        model.insert(Some(key), Pid(pid));
                        page::index_entry_delta(prev, key, Pid(pid), None, 0).into_raw()
                    } else {
                        model.remove(&Some(key));
                        page::index_delete_delta(prev, key, None, Pid::NONE, Removal::new(), 0)
                            .into_raw()
                    };
                }
            }
            let head = groups.pop().unwrap().1 as usize;
            let collected = std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || {
                    // SAFETY: as above; the chain is alive until freed below.
                    let head = unsafe { NodeRef::from_raw(head as *mut page::Node<u64, u64>) };
                    collect_inner(head.unwrap())
                        .into_iter()
                        .map(|(low, pid)| (low.copied(), pid))
                        .collect::<Vec<_>>()
                })
                .unwrap()
                .join()
                .unwrap();
            let want: Vec<(Option<u64>, Pid)> = model.into_iter().collect();
            assert_eq!(collected, want, "case {case}");
            // SAFETY: built here, never shared; the merge deltas own the merged chains.
            unsafe { free_chain(head as *mut page::Node<u64, u64>) };
        }
    }
}
