//! The timely/differential runtime that hosts insight operators.
//!
//! One base dataflow holds the inputs and the shared state:
//! - events keyed by distinct id, joined with the distinct id → person mapping, so that a merge
//!   (a mapping change) re-keys the merged person's past events and a deleted person's events
//!   drop out;
//! - persons' projected properties;
//! - the result, arranged by person: the one arrangement every insight reads.
//!
//! Insights are installed in *sets*. A set is a dataflow that imports the by-person arrangement
//! and runs every insight of the set that needs histories in one pass per touched person
//! ([`super::replay`]): the replay of a person's history is the expensive part, so insights
//! share it, and a person whose new events change nothing is not replayed at all. Registering an insight
//! installs a new set and retires the old one; the new set reads the arrangement, never the log.
//! Ad hoc queries are one-insight sets that are retired once answered.
//!
//! Every worker receives the same sequence of commands (that is how timely requires dataflows to
//! be built), with input data partitioned between workers.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use differential_dataflow::consolidation::consolidate;
use differential_dataflow::input::{Input, InputSession};
use differential_dataflow::operators::arrange::{Arranged, TraceAgent};
use differential_dataflow::trace::implementations::ValSpine;
use differential_dataflow::trace::TraceReader;
use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};
use timely::dataflow::operators::Probe;
use timely::dataflow::ProbeHandle;
use timely::progress::frontier::AntichainRef;

use crate::event::ProjectId;

use super::operator::{Cell, Contribution, InsightOperator};
use super::row::{EventRow, Props, NO_EVENT};

/// Logical time of the dataflow: the round number.
pub type Time = u64;

/// A person's key in the dataflow: the project and the person's numeric id.
pub type PersonKey = (ProjectId, u64);

/// Projected person properties, sorted by key.
pub type PersonProps = Props;

/// What the by-person arrangement holds for a person: their events, and their projected
/// properties as a row at the start of time, so that they come before the events in a
/// replay's input.
///
/// A struct rather than an enum of the two: the tag would add eight bytes to every event in
/// the arrangement. No event can sit at the properties' timestamp: event times are
/// microseconds divided by a thousand.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PersonItem(EventRow);

impl PersonItem {
    /// One of the person's events.
    pub fn event(row: EventRow) -> Self {
        PersonItem(row)
    }

    /// The person's projected properties (made by [`Props::person`]).
    pub fn props(props: PersonProps) -> Self {
        debug_assert_eq!(
            props.event(),
            NO_EVENT,
            "a person's properties name no event"
        );
        PersonItem(EventRow {
            ts_ms: i64::MIN,
            offset: 0,
            props,
        })
    }

    /// The event, unless this is the properties row.
    pub fn as_event(&self) -> Option<&EventRow> {
        (!self.is_props()).then_some(&self.0)
    }

    /// The properties, if this is the properties row.
    pub fn as_props(&self) -> Option<&PersonProps> {
        self.is_props().then_some(&self.0.props)
    }

    fn is_props(&self) -> bool {
        (self.0.ts_ms, self.0.event()) == (i64::MIN, NO_EVENT)
    }
}

/// Where a distinct id points: its person, and the first log offset whose events count (events
/// before it were deleted with a person's `delete_events`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Mapping {
    /// The owning person.
    pub person: PersonKey,
    /// Events at lower offsets are deleted.
    pub min_offset: u64,
}

/// One round of input changes. Keys of distinct ids are stable hashes of (project, id).
#[derive(Debug, Default, Clone)]
pub struct Round {
    /// Event rows by distinct-id key.
    pub events: Vec<(u64, EventRow, isize)>,
    /// Mapping changes (a move is a retraction plus an insertion).
    pub mappings: Vec<(u64, Mapping, isize)>,
    /// Person property changes.
    pub person_props: Vec<(PersonKey, PersonProps, isize)>,
}

impl Round {
    /// Whether the round changes nothing.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.mappings.is_empty() && self.person_props.is_empty()
    }

    fn split(self, workers: usize) -> Vec<Round> {
        let n = workers as u64;
        let mut parts: Vec<Round> = (0..workers).map(|_| Round::default()).collect();
        for (key, row, diff) in self.events {
            parts[(key % n) as usize].events.push((key, row, diff));
        }
        for (key, m, diff) in self.mappings {
            parts[(key % n) as usize].mappings.push((key, m, diff));
        }
        for (key, p, diff) in self.person_props {
            parts[(key.1 % n) as usize]
                .person_props
                .push((key, p, diff));
        }
        parts
    }
}

/// One insight of a set: its id (for the collector) and its operator.
#[derive(Clone)]
pub struct InsightSlot {
    /// The insight's id.
    pub id: u64,
    /// Its operator.
    pub op: Arc<dyn InsightOperator>,
}

/// What sets report to their collector.
#[derive(Debug)]
pub enum Output {
    /// Contribution changes of a set: `(slot index, contribution, diff)`.
    Updates {
        /// The set.
        set: u64,
        /// The changes.
        updates: Vec<(u32, Contribution, isize)>,
    },
    /// The set's output is complete through `round`, which covered the log up to `offset`.
    Complete {
        /// The set.
        set: u64,
        /// The last complete round.
        round: Time,
        /// The log offset that round reached.
        offset: u64,
    },
}

enum Command {
    Round {
        round: Time,
        offset: u64,
        data: Round,
    },
    Install {
        set: u64,
        slots: Arc<[InsightSlot]>,
        sink: Sender<Output>,
    },
    Retire {
        set: u64,
    },
}

/// Errors of the runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// Timely could not start its workers.
    #[error("cannot start the dataflow workers: {0}")]
    Start(String),
    /// The workers have stopped.
    #[error("the dataflow workers have stopped")]
    Stopped,
}

/// A running dataflow: feed it rounds, install insight sets.
pub struct Runtime {
    senders: Vec<Sender<Command>>,
    /// Every round below this one is complete in every dataflow but sets still catching up
    /// (set by worker 0).
    complete_below: Arc<AtomicU64>,
    next_round: Time,
    next_set: u64,
    guards: Option<timely::communication::initialize::WorkerGuards<()>>,
}

impl Runtime {
    /// Starts `workers` timely worker threads.
    pub fn start(workers: usize) -> Result<Self, RuntimeError> {
        let workers = workers.max(1);
        let mut senders = Vec::with_capacity(workers);
        let mut receivers = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (tx, rx) = mpsc::channel();
            senders.push(tx);
            receivers.push(Some(rx));
        }
        let receivers = Arc::new(Mutex::new(receivers));
        let complete_below = Arc::new(AtomicU64::new(0));
        let complete = complete_below.clone();
        let mut config = timely::Config::process(workers);
        finish_merges_when_idle(&mut config.worker);
        let guards = timely::execute(config, move |worker| {
            let rx = receivers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_mut(worker.index())
                .and_then(Option::take);
            if let Some(rx) = rx {
                run_worker(worker, rx, &complete);
            }
        })
        .map_err(RuntimeError::Start)?;
        Ok(Self {
            senders,
            complete_below,
            next_round: 0,
            next_set: 1,
            guards: Some(guards),
        })
    }

    /// Feeds one round of changes that brings the dataflow to log `offset`. Returns the round.
    pub fn push(&mut self, data: Round, offset: u64) -> Result<Time, RuntimeError> {
        let round = self.next_round;
        self.next_round += 1;
        let parts = data.split(self.senders.len());
        for (tx, data) in self.senders.iter().zip(parts) {
            tx.send(Command::Round {
                round,
                offset,
                data,
            })
            .map_err(|_| RuntimeError::Stopped)?;
        }
        Ok(round)
    }

    /// The number of the last round pushed, if any.
    pub fn last_round(&self) -> Option<Time> {
        self.next_round.checked_sub(1)
    }

    /// Rounds pushed that some dataflow has not completed yet, not counting sets that are
    /// still catching up.
    pub fn rounds_in_flight(&self) -> u64 {
        self.next_round
            .saturating_sub(self.complete_below.load(Ordering::Acquire))
    }

    /// Installs a set of insights; its output goes to `sink`. Returns the set's id.
    pub fn install(
        &mut self,
        slots: Vec<InsightSlot>,
        sink: Sender<Output>,
    ) -> Result<u64, RuntimeError> {
        let set = self.next_set;
        self.next_set += 1;
        let slots: Arc<[InsightSlot]> = slots.into();
        for tx in &self.senders {
            tx.send(Command::Install {
                set,
                slots: slots.clone(),
                sink: sink.clone(),
            })
            .map_err(|_| RuntimeError::Stopped)?;
        }
        Ok(set)
    }

    /// Drops a set's dataflow.
    pub fn retire(&mut self, set: u64) -> Result<(), RuntimeError> {
        for tx in &self.senders {
            tx.send(Command::Retire { set })
                .map_err(|_| RuntimeError::Stopped)?;
        }
        Ok(())
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Closing the channels ends the worker loops; joining waits for them.
        self.senders.clear();
        if let Some(guards) = self.guards.take() {
            drop(guards.join());
        }
    }
}

/// Merge work applied per scheduling, while idle, of an arrangement in the middle of a merge.
const IDLE_MERGE_EFFORT: usize = 20_000;

thread_local! {
    /// Whether this worker has nothing to compute: set by the worker's loop before each step,
    /// read by the arrangements' exertion logic, which runs on the same thread inside the step.
    static IDLE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Lets arrangements finish the merges they have begun while their worker is idle.
///
/// A spine merges its batches a little per batch inserted, so when the input pauses a merge
/// stays half done, holding its two inputs and the part of the output built so far: about half
/// as much again as the state itself, until the next rounds arrive and pay for the rest.
/// Finishing begun merges in idle moments is the same work done earlier.
/// - Only while idle: a busy worker's rounds are what freshness waits for. A merge pressed on
///   every step would run at once, in the middle of a round, rather than spread over rounds.
///   While busy the logic asks for no work but keeps the arrangement scheduled, so that it
///   sees the worker turn idle.
/// - Only merges begun: merging every batch into one would make every later round pay to merge
///   with the whole history.
fn finish_merges_when_idle(config: &mut timely::WorkerConfig) {
    let logic: differential_dataflow::trace::ExertionLogic = Arc::new(|layers| {
        let merging = layers.iter().any(|(_, count, _)| *count > 1);
        let idle = IDLE.with(std::cell::Cell::get);
        merging.then_some(if idle { IDLE_MERGE_EFFORT } else { 0 })
    });
    config.set("differential/default_exert_logic".to_string(), logic);
}

pub(super) type PersonTrace = TraceAgent<ValSpine<PersonKey, PersonItem, Time, isize>>;

struct Inputs {
    events: InputSession<Time, (u64, EventRow), isize>,
    mappings: InputSession<Time, (u64, Mapping), isize>,
    props: InputSession<Time, (PersonKey, PersonProps), isize>,
}

struct InstalledSet {
    dataflow: usize,
    probe: ProbeHandle<Time>,
    sink: Sender<Output>,
    reported: Option<Time>,
    /// Whether the set has once completed every round fed. Until then it is catching up: it
    /// neither reports (the sets before it keep publishing) nor holds back the feeding of new
    /// rounds. Completing the round current at its installation is not enough: the rounds fed
    /// while it caught up are still ahead of it, and holding the feeding back for those made
    /// rounds of 200k events, seconds behind, for the sets publishing.
    caught_up: bool,
}

fn run_worker(
    worker: &mut timely::worker::Worker,
    rx: Receiver<Command>,
    complete_below: &AtomicU64,
) {
    super::profile::install(worker);
    let base_probe = ProbeHandle::new();
    let (mut inputs, mut trace) = worker.dataflow::<Time, _, _>(|scope| {
        let (events_in, events) = scope.new_collection::<(u64, EventRow), isize>();
        let (mappings_in, mappings) = scope.new_collection::<(u64, Mapping), isize>();
        let (props_in, props) = scope.new_collection::<(PersonKey, PersonProps), isize>();
        let by_person = events
            .arrange_by_key()
            .join_core(
                mappings.arrange_by_key(),
                |_did, row: &EventRow, m: &Mapping| {
                    (row.offset >= m.min_offset).then(|| (m.person, PersonItem::event(row.clone())))
                },
            )
            .concat(props.map(|(person, p)| (person, PersonItem::props(p))))
            .arrange_by_key();
        by_person.stream.clone().probe_with(&base_probe);
        let inputs = Inputs {
            events: events_in,
            mappings: mappings_in,
            props: props_in,
        };
        (inputs, by_person.trace)
    });

    let mut sets: BTreeMap<u64, InstalledSet> = BTreeMap::new();
    let mut offsets: BTreeMap<Time, u64> = BTreeMap::new();
    let mut current: Option<Time> = None;
    let mut open = true;
    while open || busy(sets.values(), &base_probe, current) {
        // Take every command available; wait briefly only when there is nothing to compute.
        let mut received = false;
        while open {
            let next = if received || busy(sets.values(), &base_probe, current) {
                rx.try_recv().map_err(|e| match e {
                    mpsc::TryRecvError::Empty => RecvTimeoutError::Timeout,
                    mpsc::TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
                })
            } else {
                rx.recv_timeout(Duration::from_millis(2))
            };
            match next {
                Ok(Command::Round {
                    round,
                    offset,
                    data,
                }) => {
                    feed(&mut inputs, data, round);
                    offsets.insert(round, offset);
                    current = Some(round);
                    received = true;
                }
                Ok(Command::Install { set, slots, sink }) => {
                    let installed = install(worker, &mut trace, set, slots, sink, current);
                    sets.insert(set, installed);
                    received = true;
                }
                Ok(Command::Retire { set }) => {
                    if let Some(s) = sets.remove(&set) {
                        worker.drop_dataflow(s.dataflow);
                    }
                    received = true;
                }
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => open = false,
            }
        }
        IDLE.with(|idle| idle.set(!busy(sets.values(), &base_probe, current)));
        super::sliced::set_pace(
            busy(live(&sets), &base_probe, current),
            sets.values().filter(|s| !s.caught_up).map(|s| s.dataflow),
        );
        worker.step();
        if let Some(now) = current {
            for s in sets.values_mut() {
                s.caught_up |= !s.probe.less_equal(&now);
            }
            report(worker.index(), &mut sets, &offsets, now);
            // Times before every dataflow's frontier can be merged: nothing reads them apart.
            let frontier = earliest_open(sets.values(), &base_probe, now);
            if worker.index() == 0 {
                // A set catching up works through a backlog in slices between the rounds of
                // the others: new rounds wait for those, not for it.
                let live = earliest_open(live(&sets), &base_probe, now);
                complete_below.store(live, Ordering::Release);
            }
            // Not past the last round fed, though: a merge would move history to a round that
            // has not happened, and a set installed then would see it only after that round
            // (an ad hoc query would answer without it).
            let compact_to = frontier.min(now);
            trace.set_logical_compaction(AntichainRef::new(&[compact_to]));
            trace.set_physical_compaction(AntichainRef::new(&[compact_to]));
            offsets = offsets.split_off(&frontier.saturating_sub(1));
        }
    }
}

/// Whether any dataflow still has work at or below the current round.
fn busy<'a>(
    mut sets: impl Iterator<Item = &'a InstalledSet>,
    base: &ProbeHandle<Time>,
    current: Option<Time>,
) -> bool {
    match current {
        Some(now) => base.less_equal(&now) || sets.any(|s| s.probe.less_equal(&now)),
        None => false,
    }
}

/// The earliest round the base dataflow or any of `sets` has not completed (`now + 1` when
/// all are done).
fn earliest_open<'a>(
    sets: impl Iterator<Item = &'a InstalledSet>,
    base: &ProbeHandle<Time>,
    now: Time,
) -> Time {
    let first = |probe: &ProbeHandle<Time>| probe.with_frontier(|f| f.first().copied());
    sets.filter_map(|s| first(&s.probe))
        .chain(first(base))
        .min()
        .unwrap_or(now + 1)
}

/// The sets that have caught up: those the rounds fed wait for.
fn live(sets: &BTreeMap<u64, InstalledSet>) -> impl Iterator<Item = &InstalledSet> {
    sets.values().filter(|s| s.caught_up)
}

fn feed(inputs: &mut Inputs, data: Round, round: Time) {
    for (key, row, diff) in data.events {
        inputs.events.update((key, row), diff);
    }
    for (key, mapping, diff) in data.mappings {
        inputs.mappings.update((key, mapping), diff);
    }
    for (key, props, diff) in data.person_props {
        inputs.props.update((key, props), diff);
    }
    inputs.events.advance_to(round + 1);
    inputs.mappings.advance_to(round + 1);
    inputs.props.advance_to(round + 1);
    inputs.events.flush();
    inputs.mappings.flush();
    inputs.props.flush();
}

/// Worker 0 tells each set's collector when the set has caught up with a newer round.
fn report(
    worker: usize,
    sets: &mut BTreeMap<u64, InstalledSet>,
    offsets: &BTreeMap<Time, u64>,
    now: Time,
) {
    if worker != 0 {
        return;
    }
    for (id, s) in sets.iter_mut() {
        // The newest round below the set's frontier is complete.
        let done = s.probe.with_frontier(|f| match f.first() {
            None => Some(now),
            Some(0) => None,
            Some(t) => Some((t - 1).min(now)),
        });
        // A set has nothing to say until it has caught up.
        let Some(done) = done.filter(|_| s.caught_up) else {
            continue;
        };
        if s.reported.is_some_and(|r| r >= done) {
            continue;
        }
        let offset = offsets.range(..=done).next_back().map_or(0, |(_, o)| *o);
        s.reported = Some(done);
        drop(s.sink.send(Output::Complete {
            set: *id,
            round: done,
            offset,
        }));
    }
}

fn install(
    worker: &mut timely::worker::Worker,
    trace: &mut PersonTrace,
    set: u64,
    slots: Arc<[InsightSlot]>,
    sink: Sender<Output>,
    installed_at: Option<Time>,
) -> InstalledSet {
    let dataflow = worker.next_dataflow_index();
    let probe = ProbeHandle::new();
    let out = sink.clone();
    // Slot indices of the insights that need each person's whole history, and of the rest.
    let (local, replayed): (Vec<u32>, Vec<u32>) =
        (0..slots.len() as u32).partition(|i| slots[*i as usize].op.event_local());
    worker.dataflow::<Time, _, _>(|scope| {
        let by_person = trace.import(scope);
        let mut parts = Vec::new();
        if !replayed.is_empty() {
            parts.push(super::replay::replay_pass(
                by_person.clone(),
                slots.clone(),
                replayed,
            ));
        }
        if !local.is_empty() {
            parts.push(super::event_local::event_pass(by_person, slots, local));
        }
        let mut parts = parts.into_iter();
        let Some(first) = parts.next() else { return };
        first
            .concatenate(parts)
            .inspect_batch(move |_, data| {
                let mut updates: Vec<((u32, SlotCell), isize)> = data
                    .iter()
                    .map(|(update, _, diff)| (update.clone(), *diff))
                    .collect();
                consolidate(&mut updates);
                if updates.is_empty() {
                    return;
                }
                let updates = updates
                    .into_iter()
                    .map(|((slot, c), diff)| (slot, c.into_contribution(), diff))
                    .collect();
                drop(out.send(Output::Updates { set, updates }));
            })
            .probe_with(&probe);
    });
    InstalledSet {
        dataflow,
        probe,
        sink,
        reported: None,
        caught_up: installed_at.is_none(),
    }
}

pub(super) type PersonArranged<'s> = Arranged<'s, PersonTrace>;
pub(super) type SlotUpdates<'s> = VecCollection<'s, Time, (u32, SlotCell), isize>;

/// A contribution on its way to the collector: replayed insights emit vectors, event-local ones
/// inline cells.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(super) enum SlotCell {
    Replayed(Contribution),
    Local(Cell),
}

impl SlotCell {
    fn into_contribution(self) -> Contribution {
        match self {
            SlotCell::Replayed(c) => c,
            SlotCell::Local(cell) => cell.as_slice().to_vec(),
        }
    }
}
