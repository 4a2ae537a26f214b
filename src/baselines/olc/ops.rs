//! The operations: descents with lock coupling, one attempt each of get, insert, remove and scan
//! (any of which may return a [`Restart`]), the leaf and eager inner splits, and the
//! [`retry`](OlcBTree::retry) loop that runs attempts until one succeeds.

use crate::sync::unmodeled::Ordering;
use core::ops::Bound;
use core::ptr::NonNull;

use super::OlcBTree;
use super::lock::{ReadGuard, Restart, WriteGuard, backoff, count};
use super::node::{Header, NodeRef, alloc_node, prefetch, search, shift_right};
use crate::baselines::below_hi;

impl OlcBTree {
    /// A read guard on the current root.
    #[inline]
    fn lock_root(&self) -> Result<ReadGuard<'_>, Restart> {
        let root = self.root_node();
        let guard = ReadGuard::new(root, &self.waits)?;
        // Relaxed: if the version just read is that of a root that has since been split, its Acquire
        // load synchronised with the splitter's unlock, which follows its store of the new root; so
        // this load sees the new root and the attempt restarts.
        if self.root.load(Ordering::Relaxed) != root.as_ptr() {
            return Err(Restart::Conflict);
        }
        Ok(guard)
    }

    /// Descends to the leaf covering `key`, validating each parent after reading its child's version.
    #[inline(always)]
    fn find_leaf(&self, key: u64) -> Result<ReadGuard<'_>, Restart> {
        let mut guard = self.lock_root()?;
        while !guard.node().is_leaf() {
            guard = self.step(&guard, key)?;
        }
        Ok(guard)
    }

    /// From an inner node to its child covering `key`: a guard on the child, taken before the parent
    /// is validated.
    #[inline(always)]
    fn step<'t>(&'t self, parent: &ReadGuard<'t>, key: u64) -> Result<ReadGuard<'t>, Restart> {
        let node = parent.node();
        let i = search(node.keys(), node.count(), key, true);
        let child = node.child(i).ok_or(Restart::Conflict)?;
        let key_cap = if node.header().level == 1 {
            self.leaf_cap
        } else {
            self.inner_cap - 1
        };
        prefetch(child.as_ptr(), key_cap);
        let guard = ReadGuard::new(child, &self.waits)?;
        parent.check()?;
        Ok(guard)
    }

    /// Runs `attempt` until it does not restart, counting conflicts.
    #[inline]
    pub(super) fn retry<T>(&self, mut attempt: impl FnMut() -> Result<T, Restart>) -> T {
        let mut spins = 0;
        loop {
            match attempt() {
                Ok(result) => return result,
                Err(Restart::Conflict) => {
                    count(&self.restarts);
                    backoff(&mut spins);
                }
                Err(Restart::Split) => {}
            }
        }
    }

    pub(super) fn try_get(&self, key: u64) -> Result<Option<u64>, Restart> {
        let leaf = self.find_leaf(key)?;
        let node = leaf.node();
        let n = node.count();
        let i = search(node.keys(), n, key, false);
        // Relaxed: an optimistic read, validated by the check below.
        let value = (i < n && node.key(i) == key).then(|| node.values()[i].load(Ordering::Relaxed));
        leaf.check()?;
        Ok(value)
    }

    pub(super) fn try_remove(&self, key: u64) -> Result<Option<u64>, Restart> {
        let leaf = self.find_leaf(key)?;
        let node = leaf.node();
        let n = node.count();
        let i = search(node.keys(), n, key, false);
        if i >= n || node.key(i) != key {
            leaf.check()?;
            return Ok(None);
        }
        let lock = leaf.upgrade()?;
        let (keys, values) = (node.keys(), node.values());
        // Relaxed: read under the lock.
        let old = values[i].load(Ordering::Relaxed);
        for j in i..n - 1 {
            // Relaxed (all four): written under the lock, ordered for readers by the lock's fences.
            keys[j].store(keys[j + 1].load(Ordering::Relaxed), Ordering::Relaxed);
            values[j].store(values[j + 1].load(Ordering::Relaxed), Ordering::Relaxed);
        }
        node.set_count(&lock, n - 1);
        Ok(Some(old))
    }

    pub(super) fn try_insert(&self, key: u64, value: u64) -> Result<Option<u64>, Restart> {
        let mut parent: Option<ReadGuard<'_>> = None;
        let mut guard = self.lock_root()?;
        while !guard.node().is_leaf() {
            if guard.node().count() == guard.node().header().key_cap as usize {
                self.split_inner(parent, guard)?;
                return Err(Restart::Split);
            }
            let child = self.step(&guard, key)?;
            parent = Some(guard);
            guard = child;
        }

        let node = guard.node();
        let n = node.count();
        let i = search(node.keys(), n, key, false);
        if i < n && node.key(i) == key {
            let _lock = guard.upgrade()?;
            // Relaxed (both): under the lock; a swap would be a needless RMW.
            let old = node.values()[i].load(Ordering::Relaxed);
            node.values()[i].store(value, Ordering::Relaxed);
            return Ok(Some(old));
        }
        if n < self.leaf_cap {
            let lock = guard.upgrade()?;
            shift_right(node, &lock, i, n);
            // Relaxed (both): under the lock.
            node.keys()[i].store(key, Ordering::Relaxed);
            node.values()[i].store(value, Ordering::Relaxed);
            node.set_count(&lock, n + 1);
            return Ok(None);
        }

        // Full leaf: lock the parent, then the leaf (top-down, by CAS: never waits while holding).
        // The parent was not full when passed, and the upgrade proves it unchanged.
        let parent = parent.map(ReadGuard::upgrade).transpose()?;
        let lock = guard.upgrade()?;
        self.split_leaf_and_insert(parent.as_ref(), &lock, n, i, key, value);
        Ok(None)
    }

    /// Splits the full leaf held by `lock` (with `n` entries), inserting `key` at its position `i`
    /// into the proper half, then publishes the new right leaf.
    fn split_leaf_and_insert(
        &self,
        parent: Option<&WriteGuard<'_>>,
        lock: &WriteGuard<'_>,
        n: usize,
        i: usize,
        key: u64,
        value: u64,
    ) {
        let left = lock.node();
        let mid = n / 2;
        let right_ptr = alloc_node(0, self.leaf_cap as u32);
        // SAFETY: just allocated for this tree; private until published below.
        let right = unsafe { NodeRef::new(right_ptr) };
        let (lk, lv, rk, rv) = (left.keys(), left.values(), right.keys(), right.values());
        for j in mid..n {
            // Relaxed (all four): `right` is private; `left` is read under its lock.
            rk[j - mid].store(lk[j].load(Ordering::Relaxed), Ordering::Relaxed);
            rv[j - mid].store(lv[j].load(Ordering::Relaxed), Ordering::Relaxed);
        }
        // Relaxed: under the lock.
        let separator = lk[mid].load(Ordering::Relaxed);
        // Relaxed (header stores below): `right` is private until its Release publication.
        right
            .header()
            .count
            .store((n - mid) as u64, Ordering::Relaxed);
        left.set_count(lock, mid);
        // `key` is absent and `lk[i]` (if any) the first key above it, so it belongs left iff i <= mid.
        if i <= mid {
            shift_right(left, lock, i, mid);
            // Relaxed (both): under the lock.
            lk[i].store(key, Ordering::Relaxed);
            lv[i].store(value, Ordering::Relaxed);
            left.set_count(lock, mid + 1);
        } else {
            let r = i - mid;
            for j in (r..n - mid).rev() {
                // Relaxed (all four): `right` is private.
                rk[j + 1].store(rk[j].load(Ordering::Relaxed), Ordering::Relaxed);
                rv[j + 1].store(rv[j].load(Ordering::Relaxed), Ordering::Relaxed);
            }
            // Relaxed (all three): `right` is private.
            rk[r].store(key, Ordering::Relaxed);
            rv[r].store(value, Ordering::Relaxed);
            right
                .header()
                .count
                .store((n - mid + 1) as u64, Ordering::Relaxed);
        }
        // Relaxed: `left.next` is only written under left's lock, which this thread holds.
        let old_next = left.header().next.load(Ordering::Relaxed);
        // Relaxed: `right` is private.
        right.header().next.store(old_next, Ordering::Relaxed);
        // Release: publishes `right` (initialised above) to scans that load `next` with Acquire
        // (`NodeRef::next`).
        left.header()
            .next
            .store(right_ptr.as_ptr(), Ordering::Release);
        self.publish_split(parent, left, separator, right_ptr);
    }

    /// Splits the full inner node `guard` (taking its parent's lock too, then its own), publishing the
    /// new right half; the caller restarts.
    fn split_inner(
        &self,
        parent: Option<ReadGuard<'_>>,
        guard: ReadGuard<'_>,
    ) -> Result<(), Restart> {
        let parent = parent.map(ReadGuard::upgrade).transpose()?;
        let lock = guard.upgrade()?;
        let left = lock.node();
        let header = left.header();
        let n = header.key_cap as usize;
        // Keys k0..k(n-1), children c0..cn: the left keeps k0..k(mid-1) and c0..c(mid), k(mid) moves
        // up, the right takes k(mid+1).. and c(mid+1)...
        let mid = n / 2;
        let right_ptr = alloc_node(header.level, header.key_cap);
        // SAFETY: just allocated for this tree; private until published below.
        let right = unsafe { NodeRef::new(right_ptr) };
        let (lk, lc, rk, rc) = (left.keys(), left.children(), right.keys(), right.children());
        for j in mid + 1..n {
            // Relaxed (both): `left` is read under its lock; `right` is private.
            rk[j - mid - 1].store(lk[j].load(Ordering::Relaxed), Ordering::Relaxed);
        }
        for j in mid + 1..=n {
            // Relaxed load: under the lock. Release store: keeps the publication chain of the child
            // (see `NodeRef::child`).
            rc[j - mid - 1].store(lc[j].load(Ordering::Relaxed), Ordering::Release);
        }
        // Relaxed: `right` is private until its Release publication.
        right
            .header()
            .count
            .store((n - mid - 1) as u64, Ordering::Relaxed);
        // Relaxed: under the lock.
        let separator = lk[mid].load(Ordering::Relaxed);
        left.set_count(&lock, mid);
        self.publish_split(parent.as_ref(), left, separator, right_ptr);
        Ok(())
    }

    /// Makes `right`, split off `left` with `separator` as its first key, reachable: in the locked
    /// `parent`, which has room, or in a new root when `left` is the root.
    fn publish_split(
        &self,
        parent: Option<&WriteGuard<'_>>,
        left: NodeRef<'_>,
        separator: u64,
        right: NonNull<Header>,
    ) {
        let Some(parent) = parent else {
            let root_ptr = alloc_node(left.header().level + 1, (self.inner_cap - 1) as u32);
            // SAFETY: just allocated for this tree; private until the Release store below.
            let root = unsafe { NodeRef::new(root_ptr) };
            // Relaxed (all four): `root` is private; the Release store of the root pointer publishes it.
            root.keys()[0].store(separator, Ordering::Relaxed);
            root.children()[0].store(left.as_ptr(), Ordering::Relaxed);
            root.children()[1].store(right.as_ptr(), Ordering::Relaxed);
            root.header().count.store(1, Ordering::Relaxed);
            // Release: pairs with the Acquire load in `root_node`; publishes the new root and, through
            // it, `right`. Done while the old root is locked (see `lock_root`).
            self.root.store(root_ptr.as_ptr(), Ordering::Release);
            return;
        };
        let node = parent.node();
        let n = node.count();
        debug_assert!(
            n < node.header().key_cap as usize,
            "inner nodes are split eagerly"
        );
        let i = search(node.keys(), n, separator, true);
        let (keys, children) = (node.keys(), node.children());
        for j in (i..n).rev() {
            // Relaxed: moved under the lock.
            keys[j + 1].store(keys[j].load(Ordering::Relaxed), Ordering::Relaxed);
        }
        for j in (i + 1..=n).rev() {
            // Relaxed load under the lock; Release store keeps each child's publication chain.
            children[j + 1].store(children[j].load(Ordering::Relaxed), Ordering::Release);
        }
        // Relaxed: under the lock.
        keys[i].store(separator, Ordering::Relaxed);
        // Release: publishes `right` to readers that load the slot with Acquire (`NodeRef::child`).
        children[i + 1].store(right.as_ptr(), Ordering::Release);
        node.set_count(parent, n + 1);
    }

    /// One attempt of a scan, resuming after `cursor`; entries taken from validated leaves stay in
    /// `out` and advance `cursor` and `taken`, so a restart continues where the last one stopped.
    pub(super) fn try_scan(
        &self,
        cursor: &mut Bound<u64>,
        hi: Bound<&u64>,
        limit: usize,
        taken: &mut usize,
        out: &mut Vec<(u64, u64)>,
    ) -> Result<(), Restart> {
        let start = match *cursor {
            Bound::Included(k) | Bound::Excluded(k) => k,
            Bound::Unbounded => 0,
        };
        let mut leaf = self.find_leaf(start)?;
        loop {
            let node = leaf.node();
            let mark = out.len();
            let n = node.count();
            let mut i = match *cursor {
                Bound::Included(k) => search(node.keys(), n, k, false),
                Bound::Excluded(k) => search(node.keys(), n, k, true),
                Bound::Unbounded => 0,
            };
            let mut done = false;
            let (keys, values) = (node.keys(), node.values());
            while i < n {
                // Relaxed (both): optimistic reads, validated by the check below.
                let k = keys[i].load(Ordering::Relaxed);
                let v = values[i].load(Ordering::Relaxed);
                if !below_hi(&k, hi) {
                    done = true;
                    break;
                }
                out.push((k, v));
                i += 1;
                if *taken + (out.len() - mark) == limit {
                    done = true;
                    break;
                }
            }
            let next = node.next();
            if let Err(restart) = leaf.check() {
                out.truncate(mark);
                return Err(restart);
            }
            *taken += out.len() - mark;
            if let Some(&(k, _)) = out[mark..].last() {
                *cursor = Bound::Excluded(k);
            }
            // No merges: a leaf's keys only move right, so everything above `cursor` that was in
            // this leaf's range is here or in a leaf reachable through `next`.
            match next {
                Some(next) if !done => leaf = ReadGuard::new(next, &self.waits)?,
                _ => return Ok(()),
            }
        }
    }
}
