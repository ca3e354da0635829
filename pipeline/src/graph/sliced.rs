//! Work in slices: operators that may face a whole history at once (a set installed over
//! the arrangement) do at most [`slice`] of it per scheduling, keep their place, and ask to be
//! scheduled again.
//!
//! A set installed over a long history sees every person at once: at 10M events that is a
//! minute and a half of replays, and a pass over ten million events for the event-local
//! insights. Done in one scheduling, it held up every other set on the worker, so registering
//! an insight, an ad hoc query, or the relative dates moving at midnight froze the results
//! everyone else was watching. In slices, the older sets keep publishing between them (the
//! collector retires them only once the new one has caught up), and a set catching up works
//! only while those have no round to finish ([`set_pace`]).

use std::cell::RefCell;
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
use timely::scheduling::Activator;

use super::backlog::Backlog;
use super::runtime::{PersonArranged, PersonItem, PersonKey, PersonTrace, Time};

/// How long one scheduling works, in microseconds.
static SLICE_US: AtomicU64 = AtomicU64::new(10_000);

/// Sets how long the sliced operators work per scheduling (10 ms unless set). Results do not
/// depend on it; tests shorten it so that batches span several schedulings.
pub fn set_replay_slice(slice: Duration) {
    SLICE_US.store(slice.as_micros() as u64, Ordering::Relaxed);
}

/// The longest a catching-up set stands aside while the live sets are busy: it then works one
/// slice regardless, so that it catches up even under a stream that never lets the worker idle.
const MAX_STAND_ASIDE: Duration = Duration::from_millis(200);

/// Who works when, on this worker: set by the worker's loop before each step, read by the
/// sliced operators, which run on the same thread inside it.
#[derive(Default)]
struct Pace {
    /// Whether the sets already publishing have a round to finish.
    live_waits: bool,
    /// The dataflows of the sets still catching up.
    catching_up: Vec<usize>,
    /// Whether this step lets them work even so.
    grace: bool,
    /// The operators of those sets standing aside, to be woken once the live sets have
    /// finished their round, and since when the first has stood aside.
    paused: Vec<Activator>,
    paused_since: Option<Instant>,
}

thread_local! {
    static PACE: RefCell<Pace> = RefCell::default();
}

/// Tells this worker's sliced operators whether live sets have a round to finish, and which
/// dataflows are catching up. Wakes the operators that stood aside once the live sets are done,
/// or once they have stood aside for [`MAX_STAND_ASIDE`].
///
/// A round passes through several operators and takes several steps of the worker to complete.
/// When every step also ran a slice of each catching-up operator (1 ms each while live sets
/// waited), the ten live insights of the freshness bench fell 1–6 s behind for the minute an
/// eleventh took to catch up: the rounds grew while they waited, and took longer.
pub(super) fn set_pace(live_waits: bool, catching_up: impl Iterator<Item = usize>) {
    PACE.with(|pace| {
        let mut pace = pace.borrow_mut();
        pace.live_waits = live_waits;
        pace.catching_up.clear();
        pace.catching_up.extend(catching_up);
        pace.grace = pace
            .paused_since
            .is_some_and(|since| since.elapsed() >= MAX_STAND_ASIDE);
        if !live_waits || pace.grace {
            pace.paused_since = None;
            for activator in pace.paused.drain(..) {
                activator.activate();
            }
        }
    });
}

/// Whether an operator of `dataflow` should do nothing this scheduling: its set is catching up
/// and the live sets have a round to finish. It is woken (through `activator`) when it may go
/// on. Results do not depend on it: the operator keeps its input and capabilities meanwhile.
pub(super) fn stand_aside(dataflow: usize, activator: &Activator) -> bool {
    PACE.with(|pace| {
        let mut pace = pace.borrow_mut();
        let aside = pace.live_waits && !pace.grace && pace.catching_up.contains(&dataflow);
        if aside {
            pace.paused.push(activator.clone());
            pace.paused_since.get_or_insert_with(Instant::now);
        }
        aside
    })
}

/// How long one scheduling of a sliced operator works.
pub(super) fn slice() -> Duration {
    Duration::from_micros(SLICE_US.load(Ordering::Relaxed))
}

/// Whether a scheduling that began at `since` and has done `done` units of work (at least
/// one) should stop. The clock is read every `every` units, and after each one for a zero
/// slice, which then does exactly one.
pub(super) fn out_of_time(since: Instant, slice: Duration, done: usize, every: usize) -> bool {
    done > 0 && (slice.is_zero() || done.is_multiple_of(every)) && since.elapsed() >= slice
}

pub(super) type PersonBatch = <PersonTrace as differential_dataflow::trace::TraceReader>::Batch;

/// `flat_map_ref` of the by-person arrangement, in slices: `logic` pushes what one
/// (person, item) maps to, and each output record keeps the update's time and diff. It maps
/// nothing while `backlog` says the operator behind it has too much to do.
pub(super) fn flat_map<'s, D, L>(
    by_person: PersonArranged<'s>,
    backlog: Backlog,
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
                let dataflow = info.address[0];
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
                    if queue.is_empty()
                        || stand_aside(dataflow, &activator)
                        || backlog.holds_back(&activator)
                    {
                        return;
                    }
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
