//! The shared decision of one page removal (merge step 2).

use crate::sync::{Arc, AtomicU8, Ordering};

/// The shared state of one page removal, referenced by its remove-node delta and, once posted, by
/// the parent's index-term-delete delta. The one CAS that moves it out of `PENDING` decides the
/// removal for every thread.
pub(crate) struct Removal {
    state: AtomicU8,
}

/// Outcome of a [`Removal`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RemovalState {
    /// Frozen; nobody knows yet whether the page goes.
    Pending,
    /// The page is gone: its parent routes its keys to its left neighbour.
    Committed,
    /// The page stays; the remove-node delta (and an index-term-delete, if posted) are no-ops.
    Aborted,
}

impl Removal {
    const PENDING: u8 = 0;
    const COMMITTED: u8 = 1;
    const ABORTED: u8 = 2;

    pub(crate) fn new() -> Arc<Removal> {
        Arc::new(Removal {
            state: AtomicU8::new(Self::PENDING),
        })
    }

    #[inline]
    pub(crate) fn state(&self) -> RemovalState {
        // Acquire: pairs with the AcqRel CAS in `decide`, so that whoever sees the outcome also sees
        // the index-term-delete that a commit relies on.
        match self.state.load(Ordering::Acquire) {
            Self::PENDING => RemovalState::Pending,
            Self::COMMITTED => RemovalState::Committed,
            _ => RemovalState::Aborted,
        }
    }

    /// Moves a pending removal to `Committed` (or `Aborted`); returns the outcome, whoever decided it.
    pub(crate) fn decide(&self, commit: bool) -> RemovalState {
        let to = if commit {
            Self::COMMITTED
        } else {
            Self::ABORTED
        };
        // AcqRel: Release publishes the decision (and the index-term-delete CASed before it);
        // Acquire on failure reads the winner's decision.
        let _ = self
            .state
            .compare_exchange(Self::PENDING, to, Ordering::AcqRel, Ordering::Acquire);
        self.state()
    }
}
