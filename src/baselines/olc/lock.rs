//! The per-node version lock: optimistic [`ReadGuard`]s that validate with
//! [`check`](ReadGuard::check) and [`upgrade`](ReadGuard::upgrade) into a [`WriteGuard`], which
//! bumps the version on drop; the [`Restart`] every failed validation returns; and the backoff
//! between attempts.
//!
//! The version word's format and the orderings are documented on [`OlcBTree`](super::OlcBTree).

use crate::sync::unmodeled::{Ordering, fence};

use super::node::NodeRef;
use crate::baselines::StripedCounter;

/// Version bit: the node was unlinked and must not be used (never set under the no-merge policy).
const OBSOLETE: u64 = 0b01;
/// Version bit: a writer holds the node.
const LOCKED: u64 = 0b10;

/// Why an optimistic attempt must start again from the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Restart {
    /// A validation or upgrade failed: another thread changed a node this one read.
    Conflict,
    /// This thread split a full inner node on its way down and descends again.
    Split,
}

/// An optimistic read "lock": a node and the unlocked version it had when the guard was taken.
pub(super) struct ReadGuard<'t> {
    node: NodeRef<'t>,
    version: u64,
}

impl<'t> ReadGuard<'t> {
    /// Records `node`'s version, first waiting (counted in `waits`) while a writer holds it.
    #[inline]
    pub(super) fn new(node: NodeRef<'t>, waits: &StripedCounter) -> Result<Self, Restart> {
        let mut spins = 0u32;
        loop {
            // Acquire: pairs with the Release unlock in `WriteGuard::drop` that produced this version,
            // so the node's contents as of that unlock are visible to the reads that follow.
            let version = node.header().version.load(Ordering::Acquire);
            if version & (LOCKED | OBSOLETE) == 0 {
                return Ok(ReadGuard { node, version });
            }
            if version & OBSOLETE != 0 {
                return Err(Restart::Conflict);
            }
            if spins == 0 {
                count(waits);
            }
            backoff(&mut spins);
        }
    }

    /// The guarded node.
    #[inline]
    pub(super) fn node(&self) -> NodeRef<'t> {
        self.node
    }

    /// Succeeds if the node has not changed since the guard was taken, which makes every read of it
    /// made so far part of one consistent state.
    #[inline]
    pub(super) fn check(&self) -> Result<(), Restart> {
        // Acquire fence: keeps the relaxed reads above before the re-load below; if one of them saw a
        // writer's store, that writer's Release fence (in `upgrade`) synchronises with this fence, so
        // its lock is visible to the re-load. See the orderings section of `OlcBTree`'s docs.
        fence(Ordering::Acquire);
        // Relaxed: ordered by the fence above.
        if self.node.header().version.load(Ordering::Relaxed) == self.version {
            Ok(())
        } else {
            Err(Restart::Conflict)
        }
    }

    /// Locks the node if it has not changed since the guard was taken.
    #[inline]
    pub(super) fn upgrade(self) -> Result<WriteGuard<'t>, Restart> {
        // Acquire fence: as in `check`, so that a successful CAS also validates the reads made under
        // this guard, which the writer goes on to rely on.
        fence(Ordering::Acquire);
        // Acquire on success: keeps this thread's accesses to the node after the lock is taken
        // (the Release unlock it pairs with was already acquired by `new`). Relaxed on failure:
        // nothing is read.
        self.node
            .header()
            .version
            .compare_exchange(
                self.version,
                self.version + LOCKED,
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .map_err(|_| Restart::Conflict)?;
        // Release fence: orders the lock before every relaxed store this writer makes next, so a
        // reader that sees one of them also sees the lock when it validates. See the orderings
        // section of `OlcBTree`'s docs.
        fence(Ordering::Release);
        Ok(WriteGuard { node: self.node })
    }
}

/// An exclusive lock on a node, taken by [`ReadGuard::upgrade`]; unlocks on drop.
pub(super) struct WriteGuard<'t> {
    node: NodeRef<'t>,
}

impl<'t> WriteGuard<'t> {
    /// The locked node.
    #[inline]
    pub(super) fn node(&self) -> NodeRef<'t> {
        self.node
    }
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        // Release: publishes every store made under the lock to readers whose Acquire version load
        // sees the new version. Adding LOCKED to a locked version clears the bit and bumps the counter.
        self.node
            .header()
            .version
            .fetch_add(LOCKED, Ordering::Release);
    }
}

/// Adds one to `counter`, out of line: the counters sit on slow paths (a wait, a restart), and
/// kept out of line their thread-local slot lookup cannot be hoisted into every operation's fast
/// path, which an inlined `incr` lets LLVM do.
#[cold]
#[inline(never)]
pub(super) fn count(counter: &StripedCounter) {
    counter.incr();
}

/// Spins briefly, then yields, while a node is locked.
#[inline]
pub(super) fn backoff(spins: &mut u32) {
    *spins += 1;
    if *spins < 64 {
        core::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConcurrentMap;
    use crate::baselines::OlcBTree;

    #[test]
    fn version_word_protocol() {
        let tree = OlcBTree::new();
        let root = tree.root_node();
        let read = ReadGuard::new(root, &tree.waits).unwrap();
        assert_eq!(read.version, 0);
        let stale = ReadGuard {
            node: root,
            version: 0,
        };
        let lock = read.upgrade().unwrap();
        assert_eq!(root.header().version.load(Ordering::Relaxed), LOCKED);
        // While locked, a guard taken earlier neither validates nor upgrades.
        assert_eq!(stale.check(), Err(Restart::Conflict));
        drop(lock);
        assert_eq!(root.header().version.load(Ordering::Relaxed), 4);
        assert_eq!(stale.check(), Err(Restart::Conflict));
        assert!(stale.upgrade().is_err());
        let fresh = ReadGuard::new(root, &tree.waits).unwrap();
        assert_eq!(fresh.check(), Ok(()));
        assert_eq!(tree.lock_waits(), 0);
    }

    #[test]
    fn a_locked_node_makes_readers_wait_then_restart_nothing() {
        let tree = OlcBTree::with_capacity(4, 4).unwrap();
        tree.insert(1, 1);
        let lock = ReadGuard::new(tree.root_node(), &tree.waits)
            .unwrap()
            .upgrade()
            .unwrap();
        std::thread::scope(|s| {
            let reader = s.spawn(|| tree.get(&1));
            while tree.lock_waits() == 0 {
                std::thread::yield_now();
            }
            drop(lock);
            assert_eq!(reader.join().unwrap(), Some(1));
        });
        // The reader waited before recording a version, so it had nothing to restart.
        assert_eq!(tree.restarts(), 0);
    }
}
