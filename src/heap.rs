//! The process's live heap bytes, counted as they are allocated and freed.
//!
//! `/_status` reports it, and `quill bench insights` measures the dataflow's state with it.
//! Resident memory also counts pages the allocator keeps cached after a free (it returns them
//! to the system a second later), and during a load that moved readings by hundreds of MiB
//! from one run to the next. The live heap is what the state itself takes.
//!
//! Each thread adds to one of several counters, so that threads allocating at once do not
//! contend on one cache line; a reading sums them.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

/// The global allocator: mimalloc, counted.
pub struct CountingAllocator;

const STRIPES: usize = 32;

#[repr(align(64))]
struct Stripe(AtomicI64);

static LIVE: [Stripe; STRIPES] = [const { Stripe(AtomicI64::new(0)) }; STRIPES];
static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static STRIPE: Cell<Option<usize>> = const { Cell::new(None) };
}

fn count(bytes: i64) {
    // A thread being torn down has no thread-locals left; it shares stripe 0.
    let stripe = STRIPE
        .try_with(|s| match s.get() {
            Some(stripe) => stripe,
            None => {
                let stripe = NEXT_STRIPE.fetch_add(1, Ordering::Relaxed) % STRIPES;
                s.set(Some(stripe));
                stripe
            }
        })
        .unwrap_or(0);
    LIVE[stripe].0.fetch_add(bytes, Ordering::Relaxed);
}

fn counted(ptr: *mut u8, size: usize) -> *mut u8 {
    if !ptr.is_null() {
        count(size as i64);
    }
    ptr
}

/// Bytes allocated and not yet freed, by every thread.
pub fn live_bytes() -> u64 {
    let sum: i64 = LIVE.iter().map(|s| s.0.load(Ordering::Relaxed)).sum();
    sum.max(0) as u64
}

// SAFETY: every call is passed through to mimalloc unchanged; counting touches only atomics
// and a const-initialized thread-local, neither of which allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is mimalloc's.
        counted(unsafe { mimalloc::MiMalloc.alloc(layout) }, layout.size())
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as above.
        counted(
            unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) },
            layout.size(),
        )
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as i64));
        // SAFETY: as above.
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above.
        let moved = unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) };
        if !moved.is_null() {
            count(new_size as i64 - layout.size() as i64);
        }
        moved
    }
}
