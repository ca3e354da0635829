//! The per-person pass of the insights that need whole histories, with the replay skipped
//! when it cannot change anything.
//!
//! Differential's `reduce` replays a touched person's whole history, and the most active
//! persons are touched in every round: at 50k events/s the few busiest persons' histories
//! were most of every round's work. This operator does the same job by hand. For each person
//! it remembers the contributions it last emitted and each insight's [`Memo`]. A round that
//! only *adds* events to a person, every one of which every insight calls
//! [`InsightOperator::unaffected`], skips the person. When a round only adds events, an
//! insight whose memo says all its pass depends on ([`InsightOperator::advance`]) is brought
//! up to date from the memo and those events. Anything else (a retraction, a merge, new person
//! properties, a person seen for the first time, an event an insight without such a memo
//! needs) replays the history from the shared arrangement and emits the difference.
//!
//! Correctness does not depend on the memos beyond their contract: a skipped person's
//! contributions are, by that contract, what a replay would have produced.
//!
//! The operator works in slices ([`super::sliced`]), keeping its place in the batch and the
//! batch's capability, so that a set installed over a long history catches up between the
//! rounds of the sets already publishing.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use differential_dataflow::consolidation::consolidate;
use differential_dataflow::operators::arrange::Arranged;
use differential_dataflow::trace::cursor::{Cursor, CursorList, Navigable};
use differential_dataflow::trace::{BatchReader, TraceReader};
use differential_dataflow::AsCollection;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::progress::Antichain;

use super::memory::{self, SlotMemory};
use super::operator::{Contribution, InsightOperator, Memo, PersonView};
use super::packed::Packer;
use super::row::{EventRow, PropValue, Sym};
use super::runtime::{
    InsightSlot, PersonArranged, PersonItem, PersonKey, PersonTrace, SlotCell, SlotUpdates, Time,
};
use super::sliced::PersonBatch;

/// What the operator remembers about one person, per replayed insight (in `which` order),
/// packed by [`memory::pack`].
type Remembered = Box<[u8]>;

/// Which of the replayed insights (bit k for `which[k]`) a person's changes affect.
type Affected = u64;

type Update = ((u32, SlotCell), Time, isize);

/// Runs the replayed insights over one person at a time, with buffers reused across persons.
struct SlotRunner {
    slots: Arc<[InsightSlot]>,
    which: Vec<u32>,
    /// One pass's contributions.
    buffer: Vec<(Contribution, isize)>,
    /// The changes to emit for one slot.
    changes: Vec<(Contribution, isize)>,
    /// The person being replayed, unpacked.
    memory: Vec<SlotMemory>,
    /// The memos of the person whose changes are being read.
    memos: Vec<Option<Memo>>,
    packer: Packer,
}

/// A cursor over every batch of the by-person arrangement, and the batches it reads.
type HistoryCursor = CursorList<<<PersonTrace as TraceReader>::Batch as Navigable>::Cursor>;
type HistoryStorage = Vec<PersonBatch>;
type PersonBatchCursor = <PersonBatch as Navigable>::Cursor;

/// A batch of the by-person arrangement the operator has received and not finished with.
struct Queued {
    /// Held until the batch is done, so that the set's frontier says it is not.
    cap: Capability<Time>,
    work: BatchWork,
}

/// What is left of one batch.
struct BatchWork {
    batch: PersonBatch,
    /// The persons it changes, once scanned.
    touched: Option<Vec<Touched>>,
    /// How many of them are done.
    done: usize,
}

/// The insights in `which` that replay histories, evaluated together per touched person.
pub(super) fn replay_pass<'s>(
    by_person: PersonArranged<'s>,
    slots: Arc<[InsightSlot]>,
    which: Vec<u32>,
) -> SlotUpdates<'s> {
    let Arranged { stream, mut trace } = by_person;
    let scope = stream.scope();
    // The arrangement had been compacted to this frontier when the set imported it: updates
    // of the batches it already held sit at their times advanced to it, past the upper of
    // their own batch, where a history read up to that upper would miss them.
    let floor = trace
        .get_logical_compaction()
        .first()
        .map_or(Time::MAX, |since| since + 1);
    stream
        .unary::<CapacityContainerBuilder<Vec<Update>>, _, _, _>(
            Pipeline,
            "InsightReplay",
            move |_, info| {
                let dataflow = info.address[0];
                let activator = scope.activator_for(info.address);
                let mut persons: HashMap<PersonKey, Remembered> = HashMap::new();
                let mut queue: VecDeque<Queued> = VecDeque::new();
                let mut runner = SlotRunner {
                    slots,
                    which,
                    buffer: Vec::new(),
                    changes: Vec::new(),
                    memory: Vec::new(),
                    memos: Vec::new(),
                    packer: Packer::default(),
                };
                move |input, output| {
                    input.for_each(|cap, data| {
                        for batch in data.iter() {
                            queue.push_back(Queued {
                                cap: cap.retain(0),
                                work: BatchWork {
                                    batch: batch.clone(),
                                    touched: None,
                                    done: 0,
                                },
                            });
                        }
                    });
                    if queue.is_empty() || super::sliced::stand_aside(dataflow, &activator) {
                        return;
                    }
                    let slice = super::sliced::slice();
                    let started = std::time::Instant::now();
                    let mut seen_upper: Option<Antichain<Time>> = None;
                    while let Some(Queued { cap, work }) = queue.front_mut() {
                        let stamp = work
                            .batch
                            .lower()
                            .first()
                            .copied()
                            .unwrap_or(*cap.time())
                            .max(*cap.time());
                        let finished = {
                            let mut session = output.session(&*cap);
                            let mut emit = |index: u32, c: Contribution, d: isize| {
                                session.give(((index, SlotCell::Replayed(c)), stamp, d));
                            };
                            runner.work_on(
                                work,
                                &mut persons,
                                &mut trace,
                                floor,
                                (started, slice),
                                &mut emit,
                            )
                        };
                        if !finished {
                            activator.activate();
                            break;
                        }
                        seen_upper = Some(work.batch.upper().clone());
                        queue.pop_front();
                    }
                    // Everything before the last batch finished has been read: let the shared
                    // arrangement merge it.
                    if let Some(upper) = seen_upper {
                        trace.set_logical_compaction(upper.borrow());
                        trace.set_physical_compaction(upper.borrow());
                    }
                }
            },
        )
        .as_collection()
}

/// The persons `batch` changes and which replayed insights each change may affect.
/// `may_advance: false` marks every person for a replay.
fn scan(
    runner: &mut SlotRunner,
    persons: &HashMap<PersonKey, Remembered>,
    batch: &PersonBatch,
    may_advance: bool,
) -> Vec<Touched> {
    let mut touched = Vec::new();
    let mut cursor = batch.cursor();
    while let Some(person) = cursor.get_key(batch) {
        let known = persons.get(person).map(|bytes| {
            memory::unpack_memos(bytes, &mut runner.memos);
            &runner.memos[..]
        });
        let mut affected: Affected = 0;
        let mut only_additions = may_advance && known.is_some();
        while let Some(item) = cursor.get_val(batch) {
            let mut diff = 0;
            cursor.map_times(batch, |_, d| diff += *d);
            if diff != 0 {
                affected |= affects(&runner.slots, &runner.which, person, item, diff, known);
                if diff != 1 || item.as_event().is_none() {
                    only_additions = false;
                }
            }
            cursor.step_val(batch);
        }
        if affected != 0 {
            touched.push(Touched {
                person: *person,
                affected,
                only_additions,
            });
        }
        cursor.step_key(batch);
    }
    touched
}

/// The events `batch` adds to `person` (the batch holds nothing else for them: see
/// [`Touched::only_additions`]).
fn added_rows<'a>(
    cursor: &mut PersonBatchCursor,
    batch: &'a PersonBatch,
    person: &PersonKey,
    rows: &mut Vec<&'a EventRow>,
) {
    rows.clear();
    cursor.seek_key(batch, person);
    if cursor.get_key(batch) != Some(person) {
        return;
    }
    while let Some(item) = cursor.get_val(batch) {
        let mut diff = 0;
        cursor.map_times(batch, |_, d| diff += *d);
        if let (1, Some(row)) = (diff, item.as_event()) {
            rows.push(row);
        }
        cursor.step_val(batch);
    }
}

/// Reads `person`'s history through `upper` (exclusive) into `rows`, in `(ts, offset)` order;
/// returns the person's properties.
fn read_history<'a>(
    history: &mut HistoryCursor,
    storage: &'a HistoryStorage,
    person: &PersonKey,
    upper: &Antichain<Time>,
    rows: &mut Vec<&'a EventRow>,
) -> &'a [(Sym, PropValue)] {
    let mut props: &[(Sym, PropValue)] = &[];
    rows.clear();
    history.seek_key(storage, person);
    if history.get_key(storage) != Some(person) {
        return props;
    }
    while let Some(item) = history.get_val(storage) {
        let mut diff = 0;
        history.map_times(storage, |t, d| {
            if !upper.less_equal(t) {
                diff += *d;
            }
        });
        if diff > 0 {
            match item.as_event() {
                Some(row) => rows.push(row),
                None => props = item.as_props().map_or(props, |p| &p[..]),
            }
        }
        history.step_val(storage);
    }
    props
}

impl SlotRunner {
    /// Works on `work` until it is finished (returns `true`) or the time `(since, slice)`
    /// has run out (`false`; the next call resumes where this one stopped). At least one
    /// person is done per call; a zero slice does exactly one.
    fn work_on(
        &mut self,
        work: &mut BatchWork,
        persons: &mut HashMap<PersonKey, Remembered>,
        trace: &mut PersonTrace,
        floor: Time,
        (since, slice): (std::time::Instant, std::time::Duration),
        emit: &mut impl FnMut(u32, Contribution, isize),
    ) -> bool {
        let batch = &work.batch;
        // A batch below the import's compaction frontier is read through that frontier (see
        // `floor` in `replay_pass`). Its persons' histories then already hold the later
        // batches' updates below it, so none of them is advanced from a memo: each replays.
        let (upper, compacted) = match batch.upper().first() {
            Some(u) if *u < floor => (Antichain::from_elem(floor), true),
            _ => (batch.upper().clone(), false),
        };
        let touched = work
            .touched
            .get_or_insert_with(|| scan(self, persons, batch, !compacted));
        if work.done == touched.len() {
            return true;
        }
        let Some((mut history, storage)) = trace.cursor_through(Antichain::new().borrow()) else {
            tracing::error!("the by-person arrangement has no cursor");
            return true;
        };
        let started = std::time::Instant::now();
        let (from, mut replayed, mut replayed_rows) = (work.done, 0usize, 0usize);
        // Reused across persons: allocating them per person showed in profiles.
        let (mut rows, mut added): (Vec<&EventRow>, Vec<&EventRow>) = (Vec::new(), Vec::new());
        let mut in_batch = batch.cursor();
        for t in &touched[from..] {
            // The clock is read every few persons: a person's replay takes microseconds.
            if super::sliced::out_of_time(since, slice, work.done - from, 16) {
                break;
            }
            work.done += 1;
            let remembered = persons.remove(&t.person);
            self.load(remembered.as_deref());
            let left = if t.only_additions {
                added_rows(&mut in_batch, batch, &t.person, &mut added);
                self.advance(t.affected, &added, emit)
            } else {
                t.affected
            };
            let mut gone = false;
            if left != 0 {
                let props = read_history(&mut history, &storage, &t.person, &upper, &mut rows);
                let view = PersonView {
                    person: t.person.1,
                    events: &rows,
                    props,
                };
                gone = view.is_gone();
                self.replay(left, &t.person, &view, emit);
                replayed += 1;
                replayed_rows += rows.len();
            }
            // A person with nothing left is forgotten, as a key with no input has no state
            // in a `reduce`.
            if !gone {
                persons.insert(t.person, self.store());
            }
        }
        tracing::debug!(
            persons = work.done - from,
            left = touched.len() - work.done,
            replayed,
            rows = replayed_rows,
            ms = started.elapsed().as_millis() as u64,
            "replayed part of a batch"
        );
        work.done == touched.len()
    }

    /// Unpacks what was remembered about a person (`None`: nothing yet).
    fn load(&mut self, remembered: Option<&[u8]>) {
        match remembered {
            Some(bytes) => memory::unpack(bytes, &mut self.memory),
            None => {
                self.memory.clear();
                self.memory
                    .resize_with(self.which.len(), SlotMemory::default);
            }
        }
    }

    /// What to remember about the loaded person, packed.
    fn store(&mut self) -> Remembered {
        memory::pack(&self.memory, &mut self.packer)
    }

    /// Brings the `affected` slots whose operator can [`InsightOperator::advance`] from its
    /// memo up to date with the new events `added`, and emits their changes. Returns the
    /// slots left to replay.
    fn advance(
        &mut self,
        affected: Affected,
        added: &[&EventRow],
        emit: &mut impl FnMut(u32, Contribution, isize),
    ) -> Affected {
        // Past 64 slots the bits are shared (see `affects`): replay them all.
        if self.which.len() > 64 {
            return affected;
        }
        let mut left = 0;
        for (k, index) in self.which.iter().enumerate() {
            if affected & (1 << k) == 0 {
                continue;
            }
            let op = &self.slots[*index as usize].op;
            let slot = &mut self.memory[k];
            self.buffer.clear();
            let next = slot
                .memo
                .as_ref()
                .and_then(|memo| op.advance(memo, added, &mut self.buffer));
            match next {
                Some(memo) => {
                    slot.memo = Some(memo);
                    emit_changes(*index, slot, &mut self.buffer, &mut self.changes, emit);
                }
                None => left |= 1 << k,
            }
        }
        left
    }

    /// Runs the `affected` slots over one person's history and emits, per slot, the
    /// difference from what it emitted last.
    fn replay(
        &mut self,
        affected: Affected,
        person: &PersonKey,
        view: &PersonView<'_>,
        emit: &mut impl FnMut(u32, Contribution, isize),
    ) {
        // A person with nothing left has no contributions, as a key with no input has no
        // output in a `reduce`.
        let gone = view.is_gone();
        for (k, index) in self.which.iter().enumerate() {
            if k < 64 && affected & (1 << k) == 0 {
                continue;
            }
            let op = &self.slots[*index as usize].op;
            let slot = &mut self.memory[k];
            self.buffer.clear();
            slot.memo = if op.project() == person.0 && !gone {
                op.person_pass_memo(view, &mut self.buffer)
            } else {
                None
            };
            emit_changes(*index, slot, &mut self.buffer, &mut self.changes, emit);
        }
    }
}

/// Emits the difference between what `slot` emitted last and the pass in `buffer`, which
/// becomes what it emitted last. `changes` is scratch space.
fn emit_changes(
    index: u32,
    slot: &mut SlotMemory,
    buffer: &mut Vec<(Contribution, isize)>,
    changes: &mut Vec<(Contribution, isize)>,
    emit: &mut impl FnMut(u32, Contribution, isize),
) {
    changes.clear();
    changes.extend(slot.emitted.drain(..).map(|(c, d)| (c, -d)));
    changes.extend(buffer.iter().cloned());
    slot.emitted.append(buffer);
    consolidate(changes);
    for (c, d) in changes.drain(..) {
        emit(index, c, d);
    }
}

/// A person the batch changes, and how.
struct Touched {
    person: PersonKey,
    /// The replayed insights the changes may affect.
    affected: Affected,
    /// Whether every change adds an event to a person already seen. Only then can memos be
    /// advanced without a replay.
    only_additions: bool,
}

/// Which replayed insights one change to `person` may affect: all of them for anything but a
/// new event of a person already seen; for a new event, those whose memo cannot rule it out.
fn affects(
    slots: &[InsightSlot],
    which: &[u32],
    person: &PersonKey,
    item: &PersonItem,
    diff: isize,
    known: Option<&[Option<Memo>]>,
) -> Affected {
    let mut affected = 0;
    for (k, index) in which.iter().enumerate() {
        let op: &dyn InsightOperator = slots[*index as usize].op.as_ref();
        if op.project() != person.0 {
            continue;
        }
        let unaffected = match (known, item.as_event()) {
            (Some(memos), Some(row)) if diff > 0 => memos
                .get(k)
                .and_then(Option::as_ref)
                .is_some_and(|memo| op.unaffected(memo, row)),
            _ => false,
        };
        if !unaffected {
            affected |= 1u64.checked_shl(k as u32).unwrap_or(!0);
        }
    }
    affected
}
