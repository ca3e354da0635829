//! What the event pass's `distinct` has yet to apply, so that the pass does not map far
//! ahead of it.
//!
//! Both work in slices of the same length, but mapping a person's events is cheaper than
//! applying what they map to. A set installed over a long history (every set, after a
//! restart) could therefore fill the distinct's queue faster than the distinct emptied it,
//! with nothing to bound it. (The restart's peak RSS at 10M events went from 2.2 to 3.2 GiB
//! when the distinct's slices were held to their length in session 15; runs of one build
//! have since spread over 2.1–2.9 GiB, so how much of that was this queue is not known.)
//! The pass now waits while the distinct is working through more than [`limit`] updates, and
//! the distinct wakes it.
//!
//! The pass only waits on updates the distinct can apply now. Those it must hold until the
//! frontier passes their time are not counted: the pass may hold that frontier back itself,
//! and waiting on them would wait forever.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};

use timely::scheduling::Activator;

/// About 100 MB of queued updates (an update is 80–100 bytes).
static LIMIT: AtomicUsize = AtomicUsize::new(1 << 20);

/// Sets how many updates the distinct may have queued before the event pass waits (about a
/// million unless set). Results do not depend on it; tests lower it so that the waiting
/// happens.
pub fn set_backlog_limit(updates: usize) {
    LIMIT.store(updates, Ordering::Relaxed);
}

fn limit() -> usize {
    LIMIT.load(Ordering::Relaxed)
}

/// Shared by one set's event pass and its distinct, which run on the same worker thread.
#[derive(Clone, Default)]
pub(super) struct Backlog(Rc<RefCell<State>>);

#[derive(Default)]
struct State {
    /// Updates the distinct could apply now but has not yet, as of its last scheduling.
    queued: usize,
    /// The pass, when it waits.
    waiting: Option<Activator>,
}

impl Backlog {
    /// Whether the pass should map nothing this scheduling. If so, `activator` is woken once
    /// the distinct has worked its queue down to the limit.
    pub(super) fn holds_back(&self, activator: &Activator) -> bool {
        let mut state = self.0.borrow_mut();
        let hold = state.queued > limit();
        if hold {
            state.waiting = Some(activator.clone());
        }
        hold
    }

    /// Called by the distinct at the end of each scheduling with what it can still apply now.
    pub(super) fn report(&self, queued: usize) {
        let mut state = self.0.borrow_mut();
        state.queued = queued;
        if queued <= limit() {
            if let Some(pass) = state.waiting.take() {
                pass.activate();
            }
        }
    }
}
