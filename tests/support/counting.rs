//! The counting global allocator of the memory tests. A `#[global_allocator]` is declared per test
//! binary, so each binary that needs it includes this module and installs it in one line:
//! ```text
//! mod support { pub mod counting; }
//! #[global_allocator]
//! static GLOBAL: support::counting::Counting = support::counting::Counting;
//! ```
//!
//! Only blocks allocated by *counted* threads — those that called [`count_this_thread`]: the test's
//! own thread and the workers it spawns — are counted, wherever they are freed. Each block carries
//! a tag in a small header in front of it, so a free is counted exactly when its allocation was.
//! [`count_all_threads`] counts every thread's blocks from then on, for the tests that measure
//! the whole process.
//!
//! Counting every thread's blocks is not enough for an exact leak check: the test harness's main
//! thread allocates concurrently with a test — after spawning the test's thread it records the
//! running test and, the first time it waits for a result, sets up its channel context (blocks of
//! 48 to 608 bytes that live until the test has finished) — so a count taken at the start of a test
//! could include them or not, depending on scheduling, and the test then saw a few "leaked" blocks.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};

use bwtree::epoch::Collector;

/// The allocator; see the module docs.
pub struct Counting;

static LIVE_BLOCKS: AtomicIsize = AtomicIsize::new(0);
static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
/// The most [`LIVE_BYTES`] held since the last [`reset_peak_bytes`].
static PEAK_BYTES: AtomicIsize = AtomicIsize::new(0);
/// Whether every thread's blocks are counted ([`count_all_threads`]).
static ALL_THREADS: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Whether this thread's allocations are counted. `const`, no destructor: using it allocates
    /// nothing.
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

/// Counts the blocks this thread allocates from now on (until it exits).
pub fn count_this_thread() {
    COUNTED.with(|counted| counted.set(true));
}

/// Counts the blocks every thread allocates from now on.
pub fn count_all_threads() {
    ALL_THREADS.store(true, Ordering::Relaxed);
}

/// Counted blocks allocated and not yet freed.
pub fn live_blocks() -> isize {
    LIVE_BLOCKS.load(Ordering::Relaxed)
}

/// Bytes of the counted live blocks (without the headers).
pub fn live_bytes() -> isize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

/// The most bytes [`live_bytes`] reached since the last [`reset_peak_bytes`].
pub fn peak_bytes() -> isize {
    PEAK_BYTES.load(Ordering::Relaxed)
}

/// Starts a new peak at the bytes live now, and returns them.
pub fn reset_peak_bytes() -> isize {
    let now = live_bytes();
    PEAK_BYTES.store(now, Ordering::Relaxed);
    now
}

/// Advances `collector`'s epoch until its deferred frees have run.
pub fn flush(collector: &Collector) {
    let handle = collector.register();
    for _ in 0..64 {
        handle.pin().flush();
    }
}

/// The live block count once it has reached `expected` or stopped changing for 2 s: threads that
/// have finished their work may still be exiting (freeing their runtime's blocks) on another core.
pub fn settled_blocks(expected: isize) -> isize {
    let mut last = live_blocks();
    for _ in 0..200 {
        if last == expected {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
        last = live_blocks();
    }
    last
}

/// The header in front of every block: big enough for the tag and keeping the block's alignment.
fn header(layout: Layout) -> usize {
    layout.align().max(16)
}

/// The layout of the block with its header.
fn with_header(layout: Layout) -> Layout {
    let header = header(layout);
    Layout::from_size_align(layout.size() + header, header).expect("layout overflow")
}

const COUNTED_TAG: usize = 0xC0C0_C0C0;
const UNCOUNTED_TAG: usize = 0x0B0B_0B0B;

// SAFETY: forwards to the system allocator with a larger layout whose first `header` bytes hold a
// tag; the caller gets the part after the header, which has the requested size and alignment
// (`header` is a multiple of the alignment), and `dealloc` recovers the same outer layout.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let header = header(layout);
        // SAFETY: the outer layout has a non-zero size (it includes the header).
        let base = unsafe { System.alloc(with_header(layout)) };
        if base.is_null() {
            return base;
        }
        // `try_with`: a thread's own exit may allocate after its thread-locals are gone.
        let counted =
            ALL_THREADS.load(Ordering::Relaxed) || COUNTED.try_with(Cell::get).unwrap_or(false);
        if counted {
            LIVE_BLOCKS.fetch_add(1, Ordering::Relaxed);
            let size = layout.size() as isize;
            let now = LIVE_BYTES.fetch_add(size, Ordering::Relaxed) + size;
            PEAK_BYTES.fetch_max(now, Ordering::Relaxed);
        }
        // SAFETY: `header >= 16` bytes were allocated before the returned part; the tag word sits
        // right before it, aligned because `header` is a multiple of 16.
        unsafe {
            let block = base.add(header);
            block
                .cast::<usize>()
                .sub(1)
                .write(if counted { COUNTED_TAG } else { UNCOUNTED_TAG });
            block
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let header = header(layout);
        // SAFETY: `ptr` came from `alloc` with the same layout, so the tag is right before it and
        // the outer block starts `header` bytes earlier.
        unsafe {
            let tag = ptr.cast::<usize>().sub(1).read();
            debug_assert!(
                tag == COUNTED_TAG || tag == UNCOUNTED_TAG,
                "corrupt block header"
            );
            if tag == COUNTED_TAG {
                LIVE_BLOCKS.fetch_sub(1, Ordering::Relaxed);
                LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
            }
            System.dealloc(ptr.sub(header), with_header(layout));
        }
    }
}
