//! Work in slices: operators that may face a whole history at once (a set installed over
//! the arrangement) do at most [`slice`] of it per scheduling, keep their place, and ask to be
//! scheduled again.
//!
//! A set installed over a long history sees every person at once: at 10M events that is a
//! minute and a half of replays, and a pass over ten million events for the event-local
//! insights. Done in one scheduling, it held up every other set on the worker, so registering
//! an insight, an ad hoc query, or the relative dates moving at midnight froze the results
//! everyone else was watching. In slices, the older sets keep publishing between them (the
//! collector retires them only once the new one has caught up).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use differential_dataflow::operators::arrange::Arranged;
use differential_dataflow::trace::cursor::{Cursor, Navigable};
use differential_dataflow::{AsCollection, VecCollection};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;

use super::runtime::{PersonArranged, PersonItem, PersonKey, PersonTrace, Time};

/// How long one scheduling works, in microseconds.
static SLICE_US: AtomicU64 = AtomicU64::new(10_000);

/// Sets how long the sliced operators work per scheduling (10 ms unless set). Results do not
/// depend on it; tests shorten it so that batches span several schedulings.
pub fn set_replay_slice(slice: Duration) {
    SLICE_US.store(slice.as_micros() as u64, Ordering::Relaxed);
}

/// The slice while a round fed is not yet complete in the sets already publishing.
const SLICE_WHILE_LIVE_WAITS: Duration = Duration::from_millis(1);

thread_local! {
    /// Whether the sets already publishing have a round to finish: set by the worker's loop
    /// before each step, read by the sliced operators, which run on the same thread inside it.
    static LIVE_WAITS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Tells this worker's sliced operators whether live sets are waiting for a round.
///
/// A round passes through several operators and takes several steps of the worker to complete,
/// and every step also ran each catching-up operator's slice: with 10 ms slices a live round
/// took most of a second, and the ten insights fell 1–5 s behind while an eleventh caught up.
pub(super) fn set_live_waits(waits: bool) {
    LIVE_WAITS.with(|w| w.set(waits));
}

/// The current slice: shorter while live sets wait for a round.
pub(super) fn slice() -> Duration {
    let slice = Duration::from_micros(SLICE_US.load(Ordering::Relaxed));
    if LIVE_WAITS.with(std::cell::Cell::get) {
        slice.min(SLICE_WHILE_LIVE_WAITS)
    } else {
        slice
    }
}

/// Whether a scheduling that began at `since` and has done `done` units of work (at least
/// one) should stop. The clock is read every `every` units, and after each one for a zero
/// slice, which then does exactly one.
pub(super) fn out_of_time(since: Instant, slice: Duration, done: usize, every: usize) -> bool {
    done > 0 && (slice.is_zero() || done.is_multiple_of(every)) && since.elapsed() >= slice
}

pub(super) type PersonBatch = <PersonTrace as differential_dataflow::trace::TraceReader>::Batch;

/// `flat_map_ref` of the by-person arrangement, in slices: `logic` pushes what one
/// (person, item) maps to, and each output record keeps the update's time and diff.
pub(super) fn flat_map<'s, D, L>(
    by_person: PersonArranged<'s>,
    mut logic: L,
) -> VecCollection<'s, Time, D, isize>
where
    D: Clone + 'static,
    L: FnMut(&PersonKey, &PersonItem, &mut Vec<D>) + 'static,
{
    let Arranged { stream, .. } = by_person;
    let scope = stream.scope();
    stream
        .unary::<CapacityContainerBuilder<Vec<(D, Time, isize)>>, _, _, _>(
            Pipeline,
            "EventPass",
            move |_, info| {
                let activator = scope.activator_for(info.address);
                // Each batch with its capability and the person to resume at.
                let mut queue: VecDeque<(Capability<Time>, PersonBatch, Option<PersonKey>)> =
                    VecDeque::new();
                let mut mapped = Vec::new();
                move |input, output| {
                    input.for_each(|cap, data| {
                        for batch in data.iter() {
                            queue.push_back((cap.retain(0), batch.clone(), None));
                        }
                    });
                    let (since, slice) = (Instant::now(), slice());
                    while let Some((cap, batch, resume)) = queue.front_mut() {
                        let mut session = output.session(&*cap);
                        let mut cursor = batch.cursor();
                        if let Some(person) = *resume {
                            cursor.seek_key(batch, &person);
                        }
                        let mut persons = 0;
                        *resume = None;
                        while let Some(person) = cursor.get_key(batch) {
                            if out_of_time(since, slice, persons, 64) {
                                *resume = Some(*person);
                                break;
                            }
                            persons += 1;
                            while let Some(item) = cursor.get_val(batch) {
                                logic(person, item, &mut mapped);
                                for datum in mapped.drain(..) {
                                    cursor.map_times(batch, |t, d| {
                                        session.give((datum.clone(), *t, *d));
                                    });
                                }
                                cursor.step_val(batch);
                            }
                            cursor.step_key(batch);
                        }
                        drop(session);
                        if resume.is_some() {
                            activator.activate();
                            break;
                        }
                        queue.pop_front();
                    }
                }
            },
        )
        .as_collection()
}
