//! Test-only fault injection: deliberately broken protocol steps, used to show that the crate's checks
//! (loom models, the linearizability and scan checkers, the model tests, valgrind) catch real bugs.
//!
//! Compiled in only with the `fault-injection` cargo feature, which is never enabled by default and
//! must never be enabled in production. The fault is chosen at run time with the `BWTREE_FAULT`
//! environment variable (one of [`Fault::NAMES`]); without the feature, [`active`] is a constant
//! `false` and every injection point compiles away. `scripts/fault-injection.sh` runs each fault
//! against the check that is expected to catch it and fails if any goes undetected.

/// An injectable protocol bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
pub(crate) enum Fault {
    /// Cross a right link, or post on a page, without first completing the split that is the page's
    /// newest node (the help-along step).
    SkipHelpAlong,
    /// Publish a new page state with a load, a comparison and a plain store instead of one CAS.
    PlainStorePublish,
    /// Free a replaced chain at once instead of after an epoch.
    EarlyRetire,
    /// In a leaf lookup, skip the newest delta for the key and answer from an older record.
    WrongDelta,
    /// Publish new page states with a `Relaxed` CAS, so their contents are not ordered before them.
    RelaxedPublish,
}

impl Fault {
    /// The values `BWTREE_FAULT` accepts, in the order of the variants.
    #[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
    pub(crate) const NAMES: [(&'static str, Fault); 5] = [
        ("skip-help-along", Fault::SkipHelpAlong),
        ("plain-store-publish", Fault::PlainStorePublish),
        ("early-retire", Fault::EarlyRetire),
        ("wrong-delta", Fault::WrongDelta),
        ("relaxed-publish", Fault::RelaxedPublish),
    ];
}

/// Whether `fault` was chosen with `BWTREE_FAULT` (always `false` without the feature).
#[cfg(feature = "fault-injection")]
pub(crate) fn active(fault: Fault) -> bool {
    static CHOSEN: std::sync::OnceLock<Option<Fault>> = std::sync::OnceLock::new();
    let chosen = CHOSEN.get_or_init(|| {
        let name = std::env::var("BWTREE_FAULT").ok()?;
        let found = Fault::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, f)| *f);
        assert!(
            found.is_some(),
            "unknown BWTREE_FAULT {name:?}; expected one of {:?}",
            Fault::NAMES.map(|(n, _)| n)
        );
        found
    });
    *chosen == Some(fault)
}

/// Whether `fault` was chosen with `BWTREE_FAULT` (always `false` without the feature).
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(crate) const fn active(_fault: Fault) -> bool {
    false
}

#[cfg(feature = "fault-injection")]
std::thread_local! {
    /// Set by [`stall_at_next_split`]: the thread parks for good right after its next split delta.
    static STALL_AFTER_SPLIT: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

/// Test hook (with the `fault-injection` feature only): makes the calling thread stop for good right
/// after it installs its next split delta, before it posts the index entry (step 3). The thread stays
/// pinned and never returns; tests use it to show that other threads complete the split themselves
/// (help-along) and are never blocked by a stalled one.
#[cfg(feature = "fault-injection")]
pub fn stall_at_next_split() {
    STALL_AFTER_SPLIT.with(|flag| flag.set(true));
}

/// Test hook (with the `fault-injection` feature only): how many threads are stalled for good by
/// [`stall_at_next_split`].
#[cfg(feature = "fault-injection")]
pub fn stalled_threads() -> usize {
    STALLED.load(crate::sync::unmodeled::Ordering::SeqCst)
}

#[cfg(feature = "fault-injection")]
static STALLED: crate::sync::unmodeled::AtomicUsize = crate::sync::unmodeled::AtomicUsize::new(0);

/// Called by the splitter between steps 2 and 3.
#[inline]
pub(crate) fn split_delta_installed() {
    #[cfg(feature = "fault-injection")]
    if STALL_AFTER_SPLIT.with(|flag| flag.get()) {
        STALLED.fetch_add(1, crate::sync::unmodeled::Ordering::SeqCst);
        loop {
            std::thread::park();
        }
    }
}
