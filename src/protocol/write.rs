//! Point operations: the CAS loops that post insert and delete deltas, and lookups.
//!
//! # Linearization points
//! - `get`: the Acquire load of the leaf's head that the lookup then reads (the chain it walks is
//!   immutable, so the answer is the page's content at that instant).
//! - `insert`/`remove`: the successful CAS. The previous value they return was read from the very
//!   head the CAS replaced, so it is exact: nothing came between.
//! - `remove` of an absent key: the load of the head in which the key was found absent; nothing is
//!   posted.
//!
//! A lost CAS means some other thread's CAS on the same page succeeded (lock-freedom): the loser
//! reloads the page (following right links if the key moved in a split) and tries again with the
//! same delta, re-targeted at the new head.

use crossbeam_epoch::Guard;

use crate::BwTree;
use crate::mapping::Pid;
use crate::page::chain::{self, At};
use crate::page::{self, OwnedNode};
use crate::protocol::progress::Attempts;
use crate::protocol::traverse::{Intent, PageRef, Restart};
use crate::research::stats::{CasKind, OpKind};

impl<K, V> BwTree<K, V>
where
    K: Ord + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// The value stored for `key`, borrowed for the guard's lifetime.
    #[inline]
    pub(crate) fn get_in<'g>(&self, key: &K, guard: &'g Guard) -> Option<&'g V> {
        let op = self.stats.op(OpKind::Get);
        let leaf = self.find_leaf_counted(&At(key), Intent::Read, guard, op.local());
        chain::leaf_get(leaf.node(), key)
    }

    /// Inserts or overwrites `key`; returns the value it replaced.
    pub(crate) fn insert_in<'g>(&self, key: K, value: V, guard: &'g Guard) -> Option<&'g V> {
        let op = self.stats.op(OpKind::Insert);
        let mut page = self.find_leaf_counted(&At(&key), Intent::Write, guard, op.local());
        let mut delta = page::insert_delta(page.node(), key, value, 0, None);
        let mut attempts = Attempts::new("an insert");
        loop {
            let node = page.node();
            let found = chain::leaf_lookup(node, delta.data_key());
            let previous = found.value;
            delta.rebase(
                node,
                node.meta.size + u32::from(previous.is_none()),
                found.position,
            );
            let installed = self.table.cas(page.pid, page.node, delta, guard);
            op.cas(CasKind::Insert, installed.is_ok());
            match installed {
                Ok(installed) => {
                    self.maintain(
                        PageRef {
                            pid: page.pid,
                            node: installed,
                        },
                        guard,
                    );
                    return previous;
                }
                Err(lost) => {
                    attempts.again();
                    delta = lost;
                    page = self.relocate(page.pid, delta.data_key(), guard);
                }
            }
        }
    }

    /// Removes `key`; returns the value it had. Posts nothing if the key is absent.
    pub(crate) fn remove_in<'g>(&self, key: &K, guard: &'g Guard) -> Option<&'g V> {
        let op = self.stats.op(OpKind::Remove);
        let mut page = self.find_leaf_counted(&At(key), Intent::Write, guard, op.local());
        let mut delta: Option<OwnedNode<K, V>> = None;
        let mut attempts = Attempts::new("a remove");
        loop {
            let node = page.node();
            let found = chain::leaf_lookup(node, key);
            let previous = found.value?;
            let size = node.meta.size - 1;
            let new = match delta.take() {
                Some(mut d) => {
                    d.rebase(node, size, found.position);
                    d
                }
                None => page::delete_delta(node, key.clone(), size, found.position),
            };
            let installed = self.table.cas(page.pid, page.node, new, guard);
            op.cas(CasKind::Delete, installed.is_ok());
            match installed {
                Ok(installed) => {
                    self.maintain(
                        PageRef {
                            pid: page.pid,
                            node: installed,
                        },
                        guard,
                    );
                    return Some(previous);
                }
                Err(lost) => {
                    attempts.again();
                    delta = Some(lost);
                    page = self.relocate(page.pid, key, guard);
                }
            }
        }
    }

    /// After a lost CAS on leaf `pid`: the leaf that now covers `key`, ready for a post.
    pub(crate) fn relocate<'g>(&self, pid: Pid, key: &K, guard: &'g Guard) -> PageRef<'g, K, V> {
        crate::sync::retry_pause();
        match self.settle(pid, &At(key), Intent::Write, guard) {
            Ok(page) => page,
            Err(Restart(cause)) => {
                self.stats.restart(cause);
                self.find_leaf(&At(key), Intent::Write, guard)
            }
        }
    }
}
