//! Maintenance passes: consolidating long chains, splitting large pages and completing unfinished
//! splits, either on demand ([`BwTree::run_maintenance`]) or on a background thread
//! ([`BwTree::start_maintenance`]).
//!
//! A pass walks the tree level by level, from the leaves up to the root's level, each level left to
//! right by key (a fresh descent to the page covering the previous page's high key, read after the
//! visit, so the upper half of a split the visit made is visited next), and for each
//! page does what an operation would have done inline: complete a split that is still the newest node of its chain
//! (or a removal or collapse in progress), split a page over capacity, merge an under-full page into
//! its left neighbour, collapse a root with one child, consolidate a chain over its threshold.
//! Merges are only triggered by operations on the page itself, so a page emptied by removals that
//! nobody touches again is merged by the next pass. It uses the same CAS-based
//! steps as the inline path, so it needs no coordination with concurrent operations: if it loses a
//! race it simply moves on.
//!
//! It reaches pages only the way operations do, from the root through child and right links, never
//! by scanning PIDs: a PID scan would also reach pages that are allocated but not linked yet (the
//! upper half of a split before its CAS), which no other thread may modify, and which are freed
//! if that CAS fails. In [`Maintenance::Background`](crate::Maintenance::Background) mode
//! operations leave this work to the thread (up to a hard limit); in the default inline mode the
//! thread only picks up what operations left behind.

use crate::sync::unmodeled::AtomicBool;
#[cfg(not(loom))]
use std::sync::Weak;
use std::thread::JoinHandle;
#[cfg(not(loom))]
use std::time::Duration;

use crate::BwTree;
use crate::mapping::Pid;
use crossbeam_epoch::Guard;

use crate::page::Body;
use crate::page::chain::{At, First};
use crate::protocol::policy::{Applied, Trigger};
use crate::protocol::traverse::{Intent, PageRef};

/// What one maintenance pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    /// Live pages visited.
    pub pages: u64,
    /// Chains replaced by a new base page.
    pub consolidations: u64,
    /// Pages split.
    pub splits: u64,
    /// Under-full pages the pass started to merge into their left neighbours (frozen for removal;
    /// a removal may still be aborted, see the `merge` module).
    pub merges: u64,
    /// Unfinished splits (left by operations) whose index entry the pass posted.
    pub splits_completed: u64,
}

impl<K, V> BwTree<K, V>
where
    K: Ord + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Runs one maintenance pass over every page (see the module docs). Safe to call at any time,
    /// from any number of threads.
    pub fn run_maintenance(&self) -> MaintenanceReport {
        let mut report = MaintenanceReport::default();
        let mut guard = self.guard();
        // Leaves first, then each level above: a split or merge below changes the level above
        // (an index entry posted or removed), which this pass then visits; the height is read
        // again per level, so a root grown during the pass is visited too.
        let mut level = 0u8;
        while usize::from(level) < self.height() {
            // The pages of one level, left to right: each visit starts from a fresh descent to the
            // page that covers `cursor`, so no page is held across a repin, and splits and merges
            // meanwhile only move the boundaries.
            let mut cursor: Option<K> = None;
            loop {
                if report.pages % 256 == 255 {
                    // Let reclamation advance during long passes.
                    guard.repin();
                }
                let found = match &cursor {
                    None => self.descend(&First, level, Intent::Read, &guard),
                    Some(key) => self.descend(&At(key), level, Intent::Read, &guard),
                };
                // The tree shrank below this level meanwhile: nothing left to visit on it.
                let Some(page) = found else { break };
                report.pages += 1;
                self.maintain_visited(page.pid, &guard, &mut report);
                // Go on from where the page ends now: a split the visit made leaves the page's
                // lower part under its PID, and the next visit then reaches the new upper part.
                // A page whose slot was cleared (merged away; the guard keeps its PID from being
                // reused) or whose bound now lies at or below the cursor ends where it ended when
                // found.
                let now_high = self.table.load(page.pid, &guard).map(|node| node.high());
                let high = match now_high {
                    Some(high) if beyond(high, &cursor) => high,
                    _ => page.node().high(),
                };
                match high {
                    Some(high) if !beyond(Some(high), &cursor) => {
                        crate::protocol::progress::keys_out_of_order("a maintenance pass")
                    }
                    Some(high) => cursor = Some(high.clone()),
                    None => break,
                }
            }
            level += 1;
        }
        report
    }

    /// A maintenance pass's work on the page `pid`: finishes an unfinished modification on top of
    /// it, then applies the policy (repeatedly while it splits: a page far over capacity, in
    /// background mode, may need several splits in a row).
    fn maintain_visited(&self, pid: Pid, guard: &Guard, report: &mut MaintenanceReport) {
        for _ in 0..64 {
            let Some(node) = self.table.load(pid, guard) else {
                return;
            };
            let page = PageRef { pid, node };
            match node.body() {
                Body::Split(_) => match self.complete_split(page, guard) {
                    Ok(true) => report.splits_completed += 1,
                    Ok(false) => {}
                    Err(_) => return,
                },
                // Frozen pages: finish their removal or collapse and move on.
                Body::Remove(_) | Body::Collapse | Body::IndexDelete(_)
                    if self.finish_top_smo(page, guard).is_err() =>
                {
                    return;
                }
                _ => {}
            }
            match self.apply_policy(page, Trigger::Pass, guard) {
                Applied::Split => report.splits += 1,
                Applied::Merged => {
                    report.merges += 1;
                    return;
                }
                Applied::Consolidated => {
                    report.consolidations += 1;
                    return;
                }
                Applied::Collapse | Applied::Nothing => return,
            }
        }
    }

    /// Starts a background thread that runs a maintenance pass every `interval` until the returned
    /// handle is stopped or dropped, or the tree is dropped.
    #[cfg(not(loom))]
    pub fn start_maintenance(self: &std::sync::Arc<Self>, interval: Duration) -> MaintenanceHandle {
        let tree: Weak<Self> = std::sync::Arc::downgrade(self);
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("bwtree-maintenance".into())
            .spawn(move || {
                let mut total = MaintenanceReport::default();
                // Relaxed: the flag carries no data; `stop` joins the thread, which synchronises.
                while !flag.load(crate::sync::unmodeled::Ordering::Relaxed) {
                    let Some(tree) = tree.upgrade() else { break };
                    let pass = tree.run_maintenance();
                    drop(tree);
                    total.pages += pass.pages;
                    total.consolidations += pass.consolidations;
                    total.splits += pass.splits;
                    total.splits_completed += pass.splits_completed;
                    total.merges += pass.merges;
                    std::thread::park_timeout(interval);
                }
                total
            })
            .expect("failed to spawn the maintenance thread");
        MaintenanceHandle {
            stop,
            thread: Some(thread),
        }
    }
}

/// Controls the background maintenance thread started by [`BwTree::start_maintenance`]; dropping it
/// stops the thread.
#[derive(Debug)]
pub struct MaintenanceHandle {
    stop: std::sync::Arc<AtomicBool>,
    thread: Option<JoinHandle<MaintenanceReport>>,
}

impl MaintenanceHandle {
    /// Stops the thread, waits for it, and returns the sum of what its passes did.
    ///
    /// # Panics
    /// If a pass panicked (a key's or value's `Clone`, `Ord` or `Drop` panicked while the thread
    /// consolidated or split a page), the thread stopped there, and this resumes its panic on the
    /// caller's thread. [`MaintenanceHandle::try_stop`] returns it instead. The tree stays
    /// consistent and usable either way (see [`BwTree`]'s *Panics*).
    pub fn stop(mut self) -> MaintenanceReport {
        match self.shutdown() {
            Ok(report) => report,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Like [`MaintenanceHandle::stop`], returning the thread's panic as an `Err` instead of
    /// resuming it.
    pub fn try_stop(mut self) -> std::thread::Result<MaintenanceReport> {
        self.shutdown()
    }

    /// Whether the thread has ended: stopped, or stopped by a panic (see
    /// [`MaintenanceHandle::stop`]), or because the tree was dropped.
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    fn shutdown(&mut self) -> std::thread::Result<MaintenanceReport> {
        // Relaxed: see the load in the thread; the join below synchronises.
        self.stop
            .store(true, crate::sync::unmodeled::Ordering::Relaxed);
        match self.thread.take() {
            Some(thread) => {
                thread.thread().unpark();
                thread.join()
            }
            None => Ok(MaintenanceReport::default()),
        }
    }
}

impl Drop for MaintenanceHandle {
    /// Stops the thread and waits for it. A panic of the thread is resumed here unless the
    /// current thread is already unwinding (then it is dropped: a second panic would abort).
    fn drop(&mut self) {
        if let Err(panic) = self.shutdown() {
            if !std::thread::panicking() {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

/// Whether the bound `high` (`None`: unbounded) lies beyond the walk's `cursor` (`None`: the
/// start of the level), so that moving the cursor there advances the walk.
fn beyond<K: Ord>(high: Option<&K>, cursor: &Option<K>) -> bool {
    match (high, cursor) {
        (None, _) | (_, None) => true,
        (Some(high), Some(cursor)) => high > cursor,
    }
}
