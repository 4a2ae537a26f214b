//! Reclamation glue: how replaced chains reach the epoch collector, and how a chain is freed.
//!
//! A chain (a page state: its deltas and base page) is *retired* when one CAS replaces it as a
//! whole — a consolidation or a split installs a new base page ([`MappingTable::replace`]), or a root
//! collapse moves the root away and clears the old root's slot — and at that moment it stops being
//! reachable from the mapping table. Those CASes hand back an [`Unlinked`] token, which [`retire`]
//! consumes: no other code frees a published chain while the tree is in use. The whole argument,
//! site by site, is in the [protocol guide](crate::protocol_guide). It is freed by one deferred function once every thread that was
//! pinned at the time of the retirement has unpinned: those are the only threads that could have
//! loaded a pointer into it. Freeing walks the chain from its newest node through every `next` link.
//!
//! The argument for each [`retire`] call, in short:
//! 1. the CAS that replaced the chain succeeded, so the slot no longer points into it;
//! 2. no other live node points into it: new base pages own copies of every key they need, and
//!    only older nodes of the same chain point at each other;
//! 3. no other slot points into it: the chain may own the chains of pages merged into it (through
//!    merge deltas), and the slot of such a page is cleared by the thread whose merge CAS succeeded
//!    only *after* that CAS. So `retire` itself first clears every such slot that still
//!    points into the chain ([`MappingTable::release_merged`]); otherwise a thread that pinned after
//!    the retirement could still load the merged page from its slot — a maintenance pass visiting
//!    every PID does — and read it after the deferred free;
//! 4. any thread that still holds a pointer into it loaded that pointer while pinned, before steps 1
//!    and 3, so the collector runs the deferred free only after that thread has unpinned.

use crossbeam_epoch::Guard;

use crate::mapping::{MappingTable, Unlinked};
use crate::page::{Node, free_chain};

/// Hands a chain that one CAS unlinked to the epoch collector, after clearing the slots of merged
/// pages that still point into it. See the module docs for why this is safe; the [`Unlinked`]
/// token is the proof of steps 1 and 2, and since it is consumed, a chain is retired once.
pub(crate) fn retire<K: Send + 'static, V: Send + 'static>(
    table: &MappingTable<K, V>,
    unlinked: Unlinked<'_, K, V>,
    guard: &Guard,
) {
    let head = unlinked.head();
    // Step 3 of the module docs: must happen before the deferral below.
    table.release_merged(head, guard);
    let chain = SendChain(head.as_ptr() as *mut Node<K, V>);
    if crate::research::fault::active(crate::research::fault::Fault::EarlyRetire) {
        // The injected bug: free while other threads may still be reading the chain.
        // SAFETY: none — this is the use-after-free the checks must catch.
        unsafe { free_chain(chain.0) };
        return;
    }
    let free = move || {
        let chain = chain;
        // SAFETY: `Unlinked` guarantees the chain is unreachable for every thread that pins after
        // the retirement (steps 1–3), and the collector runs this only after all earlier pins
        // ended (step 4).
        unsafe { free_chain(chain.0) }
    };
    // SAFETY: the closure owns nothing borrowed (only the chain pointer, and `K`, `V` are `Send +
    // 'static`), so it may run on any thread at any later time.
    unsafe { guard.defer_unchecked(free) };
}

/// A retired chain on its way to a deferred free, possibly on another thread.
struct SendChain<K, V>(*mut Node<K, V>);

// SAFETY: the chain is no longer shared with anyone: it is moved to whichever thread runs the
// deferred function, which drops its keys and values there; `K` and `V` are `Send`.
unsafe impl<K: Send, V: Send> Send for SendChain<K, V> {}
