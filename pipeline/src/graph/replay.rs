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

use std::collections::HashMap;
use std::sync::Arc;

use differential_dataflow::consolidation::consolidate;
use differential_dataflow::operators::arrange::Arranged;
use differential_dataflow::trace::cursor::{Cursor, CursorList, Navigable};
use differential_dataflow::trace::{BatchReader, TraceReader};
use differential_dataflow::AsCollection;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::progress::Antichain;

use super::memory::{self, SlotMemory};
use super::operator::{Contribution, InsightOperator, Memo, PersonView};
use super::packed::Packer;
use super::row::{EventRow, PropValue, Sym};
use super::runtime::{
    InsightSlot, PersonArranged, PersonItem, PersonKey, PersonTrace, SlotCell, SlotUpdates, Time,
};

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
type HistoryStorage = Vec<<PersonTrace as TraceReader>::Batch>;

/// The insights in `which` that replay histories, evaluated together per touched person.
pub(super) fn replay_pass<'s>(
    by_person: PersonArranged<'s>,
    slots: Arc<[InsightSlot]>,
    which: Vec<u32>,
) -> SlotUpdates<'s> {
    let Arranged { stream, mut trace } = by_person;
    stream
        .unary::<CapacityContainerBuilder<Vec<Update>>, _, _, _>(
            Pipeline,
            "InsightReplay",
            move |_, _| {
                let mut persons: HashMap<PersonKey, Remembered> = HashMap::new();
                let mut touched: Vec<Touched> = Vec::new();
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
                    let mut seen_upper: Option<Antichain<Time>> = None;
                    input.for_each(|cap, data| {
                        let mut session = output.session(&cap);
                        for batch in data.iter() {
                            let upper = batch.upper().clone();
                            let stamp = batch
                                .lower()
                                .first()
                                .copied()
                                .unwrap_or(*cap.time())
                                .max(*cap.time());
                            touched.clear();
                            // Rows the batch adds, by touched person (`Touched::added`).
                            let mut added: Vec<&EventRow> = Vec::new();
                            let mut keys = 0usize;
                            let mut cursor = batch.cursor();
                            while let Some(person) = cursor.get_key(batch) {
                                keys += 1;
                                let known = persons.get(person).map(|bytes| {
                                    memory::unpack_memos(bytes, &mut runner.memos);
                                    &runner.memos[..]
                                });
                                let mut affected: Affected = 0;
                                let from = added.len();
                                let mut only_additions = known.is_some();
                                while let Some(item) = cursor.get_val(batch) {
                                    let mut diff = 0;
                                    cursor.map_times(batch, |_, d| diff += *d);
                                    if diff != 0 {
                                        affected |= affects(
                                            &runner.slots,
                                            &runner.which,
                                            person,
                                            item,
                                            diff,
                                            known,
                                        );
                                        match item.as_event() {
                                            Some(row) if diff == 1 => added.push(row),
                                            _ => only_additions = false,
                                        }
                                    }
                                    cursor.step_val(batch);
                                }
                                if affected != 0 {
                                    touched.push(Touched {
                                        person: *person,
                                        affected,
                                        added: only_additions.then_some((from, added.len())),
                                    });
                                } else {
                                    added.truncate(from);
                                }
                                cursor.step_key(batch);
                            }
                            if touched.is_empty() {
                                seen_upper = Some(upper);
                                continue;
                            }
                            let Some((mut history, storage)) =
                                trace.cursor_through(Antichain::new().borrow())
                            else {
                                tracing::error!("the by-person arrangement has no cursor");
                                continue;
                            };
                            let started = std::time::Instant::now();
                            let (mut replayed, mut replayed_rows) = (0usize, 0usize);
                            // Reused across persons: allocating it per person showed in profiles.
                            let mut rows: Vec<&EventRow> = Vec::new();
                            let mut emit = |index: u32, c: Contribution, d: isize| {
                                session.give(((index, SlotCell::Replayed(c)), stamp, d));
                            };
                            for t in &touched {
                                let remembered = persons.remove(&t.person);
                                runner.load(remembered.as_deref());
                                let left = match t.added {
                                    Some((from, to)) => {
                                        runner.advance(t.affected, &added[from..to], &mut emit)
                                    }
                                    None => t.affected,
                                };
                                let mut gone = false;
                                if left != 0 {
                                    let props = read_history(
                                        &mut history,
                                        &storage,
                                        &t.person,
                                        &upper,
                                        &mut rows,
                                    );
                                    let view = PersonView {
                                        person: t.person.1,
                                        events: &rows,
                                        props,
                                    };
                                    gone = view.is_gone();
                                    runner.replay(left, &t.person, &view, &mut emit);
                                    replayed += 1;
                                    replayed_rows += rows.len();
                                }
                                // A person with nothing left is forgotten, as a key with no
                                // input has no state in a `reduce`.
                                if !gone {
                                    persons.insert(t.person, runner.store());
                                }
                            }
                            tracing::debug!(
                                keys,
                                persons = touched.len(),
                                replayed,
                                rows = replayed_rows,
                                ms = started.elapsed().as_millis() as u64,
                                "replayed a batch"
                            );
                            seen_upper = Some(upper);
                        }
                    });
                    // Everything before the last batch seen has been read: let the shared
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
    /// When every change adds an event to a person already seen: where the added rows are
    /// (`from..to` in the batch's list). Only then can memos be advanced without a replay.
    added: Option<(usize, usize)>,
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
