//! The person counts of the event-local insights: a `distinct` that keeps, per (insight,
//! person), the cells that person emitted and how many times, packed.
//!
//! The insights that count persons (DAU, weekly and monthly active, unique sessions) send one
//! `(slot, person, cell)` per event and keep each cell a person emitted at least once.
//! Differential's `threshold_total` does that over an arrangement: every round it seeks each
//! new key through the spine and merges batches, and at 10M events that was a third of the
//! worker's time (perf, session 6). A multiplicity per key is all it needs to remember.
//!
//! A hash map entry per (slot, person, cell) then cost about 100 bytes, and with a person
//! active on 15 days in two such insights that was more than the person's events. So cells
//! are grouped per (slot, person) and packed ([`super::packed`]): a day's cell and its count
//! take a few bytes.
//!
//! Updates apply in time order, so the output at every complete time is exactly the distinct
//! input. Those of the frontier's own time apply as they arrive: no earlier one can follow
//! them, and the changes a time's updates emit add up to the same in any order and grouping
//! (each is a count crossing zero, and they telescope). A set installed over a long history
//! maps it in slices at one time; holding all of it until that time completed cost several
//! gigabytes at 10M events, and then one long scheduling to apply it. For the same reason it
//! applies at most a slice ([`super::sliced`]) per scheduling and keeps its place: a set
//! catching up finds many rounds complete at once.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use differential_dataflow::consolidation::consolidate;
use differential_dataflow::{AsCollection, VecCollection};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;

use super::backlog::Backlog;
use super::operator::Cell;
use super::packed::{Packer, Unpacker};
use super::runtime::{PersonKey, Time};
use super::sliced;

/// What is counted: an insight's slot and a person, then the cell, and whether the person's id
/// is appended to the cell on the way out ([`super::Combine::Actor`]).
pub(super) type Counted = ((u32, PersonKey), (Cell, bool));

/// The most updates sorted at once: a set catching up can receive millions at one time, and
/// sorting them took up to 90 ms in one scheduling.
const CHUNK: usize = 1 << 16;

/// Updates waiting to be applied, by time.
type Pending = BTreeMap<Time, TimeWork>;

/// A cell as counted: its integers, and whether the person's id is appended on the way out.
type Value = (Cell, bool);

/// The cells of `input` present with a positive multiplicity, each once per (slot, person), as
/// `(slot, cell)`.
///
/// Runs where its input is: callers must send every copy of a record to one worker (the
/// runtime's records arrive partitioned by person).
pub(super) fn distinct_cells<'s>(
    input: VecCollection<'s, Time, Counted, isize>,
    backlog: Backlog,
) -> VecCollection<'s, Time, (u32, Cell), isize> {
    let scope = input.inner.scope();
    input
        .inner
        .unary_frontier::<CapacityContainerBuilder<Vec<((u32, Cell), Time, isize)>>, _, _, _>(
            Pipeline,
            "DistinctCells",
            move |_, info| {
                let dataflow = info.address[0];
                let activator = scope.activator_for(info.address);
                let mut counts: HashMap<(u32, PersonKey), Box<[u8]>> = HashMap::new();
                let mut pending: Pending = BTreeMap::new();
                let mut packer = Packer::default();
                move |(input, frontier), output| {
                    input.for_each(|cap, data| {
                        for (d, t, r) in data.drain(..) {
                            pending
                                .entry(t)
                                .or_insert_with(|| TimeWork {
                                    cap: cap.delayed(&t, 0),
                                    incoming: Vec::new(),
                                    working: Vec::new(),
                                    at: 0,
                                })
                                .incoming
                                .push((d, r));
                        }
                    });
                    if pending.is_empty() {
                        backlog.report(0);
                        return;
                    }
                    if sliced::stand_aside(dataflow, &activator) {
                        return;
                    }
                    let (since, slice) = (Instant::now(), sliced::slice());
                    let mut applied = 0;
                    let mut out_of_time = false;
                    'times: while let Some(mut entry) = pending.first_entry() {
                        let t = *entry.key();
                        if frontier.frontier().iter().any(|f| *f < t) {
                            break;
                        }
                        // At the frontier itself more updates may come, but none of an earlier
                        // time: apply what is here now (see the module docs).
                        let complete = !frontier.less_equal(&t);
                        let work = entry.get_mut();
                        let mut session = output.session(&work.cap);
                        loop {
                            if work.at == work.working.len() {
                                if work.incoming.is_empty() {
                                    work.working = Vec::new();
                                    work.at = 0;
                                    break;
                                }
                                // From the end: cheap to split off, and the order of one
                                // time's updates does not matter.
                                work.working = match work.incoming.len().checked_sub(CHUNK) {
                                    Some(from) if from > 0 => work.incoming.split_off(from),
                                    _ => std::mem::take(&mut work.incoming),
                                };
                                // Sorted by (slot, person), so each one's cells are rewritten
                                // once per chunk.
                                consolidate(&mut work.working);
                                work.at = 0;
                            }
                            let rest = &work.working[work.at..];
                            let Some((((slot, person), _), _)) = rest.first() else {
                                continue;
                            };
                            // A set catching up may find many rounds complete at once, which
                            // took ~0.4 s in one scheduling at 10M events (session 14). The
                            // clock is read at every person: a busy one's history is thousands
                            // of updates, and 64 of them at a time made 30–50 ms slices.
                            if sliced::out_of_time(since, slice, applied, 1) {
                                out_of_time = true;
                                break 'times;
                            }
                            applied += 1;
                            let key = (*slot, *person);
                            let n = rest.iter().take_while(|((k, _), _)| *k == key).count();
                            apply(&mut counts, &mut packer, key, &rest[..n], |cell, change| {
                                session.give(((key.0, cell), t, change));
                            });
                            work.at += n;
                        }
                        drop(session);
                        if !complete {
                            break;
                        }
                        entry.remove();
                    }
                    if out_of_time {
                        activator.activate();
                        backlog.report(queued(&pending));
                    } else {
                        // What is left waits for the frontier, which the pass may be holding.
                        backlog.report(0);
                    }
                }
            },
        )
        .as_collection()
}

/// The updates not yet applied, of every time.
fn queued(pending: &Pending) -> usize {
    pending
        .values()
        .map(|work| work.incoming.len() + work.working.len() - work.at)
        .sum()
}

/// The updates of one time, and a capability to emit at it. They are applied a chunk at a
/// time: a sorted one being worked through, while what arrives meanwhile waits in `incoming`.
/// Updates of one time may apply in any grouping (see the module docs), so the chunks are
/// never merged, and a slice never sorts again what an earlier one sorted.
struct TimeWork {
    cap: Capability<Time>,
    incoming: Vec<(Counted, isize)>,
    working: Vec<(Counted, isize)>,
    at: usize,
}

/// Applies one (slot, person)'s updates of a time (ascending by value) to its packed cells,
/// calling `emit(cell, change)` for each cell whose presence changed.
fn apply(
    counts: &mut HashMap<(u32, PersonKey), Box<[u8]>>,
    packer: &mut Packer,
    key: (u32, PersonKey),
    group: &[(Counted, isize)],
    mut emit: impl FnMut(Cell, isize),
) {
    let mut changed = |(cell, actor): Value, old: isize, new: isize| {
        let change = isize::from(new > 0) - isize::from(old > 0);
        if change != 0 {
            let cell = if actor {
                cell.appended(key.1 .1 as i64)
            } else {
                cell
            };
            emit(cell, change);
        }
    };
    let values = group.iter().map(|((_, value), r)| (*value, *r));
    match counts.get_mut(&key) {
        Some(packed) => {
            merge(packed, values, packer, &mut changed);
            if packer.is_empty() {
                counts.remove(&key);
            } else {
                packer.finish_into(packed);
            }
        }
        None => {
            merge(&[], values, packer, &mut changed);
            if !packer.is_empty() {
                counts.insert(key, packer.finish());
            }
        }
    }
}

/// Applies `updates` (ascending by value, each value once) to the packed cells `packed`, writing
/// the new cells to `packer` and calling `changed(value, before, after)` with each updated
/// value's multiplicities.
///
/// Cells are packed in descending order (newest bucket first within a cell length), each
/// encoded against the one before it. Updates mostly touch the newest buckets, so the merge
/// decodes only the cells up to the last update and copies the remaining bytes as they are,
/// once the cell before them is encoded the same way in both. Decoding and re-encoding all of a
/// busy person's cells on every touch was about a fifth of the timely worker's samples at 50k
/// events/s (perf, session 12).
fn merge(
    packed: &[u8],
    updates: impl DoubleEndedIterator<Item = (Value, isize)>,
    packer: &mut Packer,
    changed: &mut impl FnMut(Value, isize, isize),
) {
    let mut input = CellReader::new(packed);
    let mut output = CellWriter::default();
    let mut next = input.next();
    for (value, r) in updates.rev() {
        while let Some((v, count)) = next.filter(|(v, _)| *v > value) {
            output.write(packer, v, count);
            next = input.next();
        }
        let before = match next {
            Some((v, count)) if v == value => {
                next = input.next();
                count
            }
            _ => 0,
        };
        let after = before + r;
        if after != 0 {
            output.write(packer, value, after);
        }
        changed(value, before, after);
    }
    // Cells sort by length first, so a cell reads only places the one before it wrote, and the
    // check holds after the first cell copied. It stays so that the copy never depends on that.
    while let Some((v, count)) = next {
        output.write(packer, v, count);
        if output.previous == input.previous {
            packer.raw(input.rest());
            return;
        }
        next = input.next();
    }
}

/// Reads packed cells in order, each against the one before it.
struct CellReader<'a> {
    reader: Unpacker<'a>,
    previous: [i64; Cell::MAX],
}

impl<'a> CellReader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self {
            reader: Unpacker::new(bytes),
            previous: [0; Cell::MAX],
        }
    }

    fn next(&mut self) -> Option<(Value, isize)> {
        if self.reader.is_done() {
            return None;
        }
        let header = self.reader.count();
        let len = (header / 2).min(Cell::MAX);
        for v in &mut self.previous[..len] {
            *v = v.wrapping_add(self.reader.int());
        }
        let count = self.reader.int() as isize;
        Some(((Cell::new(&self.previous[..len]), header % 2 == 1), count))
    }

    /// The bytes not read yet.
    fn rest(&self) -> &'a [u8] {
        self.reader.rest()
    }
}

/// Writes cells in order, each as its length (doubled, plus one when the person is appended),
/// its integers and its multiplicity. Each integer is written as its difference from the one at
/// the same place in the cell before: a person's days of one insight differ only in their
/// bucket, by a multiple of a day (three bytes rather than five for the time itself).
#[derive(Default)]
struct CellWriter {
    previous: [i64; Cell::MAX],
}

impl CellWriter {
    fn write(&mut self, packer: &mut Packer, (cell, actor): Value, count: isize) {
        let values = cell.as_slice();
        packer.count(values.len() * 2 + usize::from(actor));
        for (v, p) in values.iter().zip(&mut self.previous) {
            packer.int(v.wrapping_sub(*p));
            *p = *v;
        }
        packer.int(count as i64);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn value() -> impl Strategy<Value = Value> {
        // Few distinct values, so that updates often land on cells already there.
        (
            proptest::collection::vec(0i64..4, 0..=Cell::MAX),
            any::<bool>(),
        )
            .prop_map(|(values, actor)| (Cell::new(&values), actor))
    }

    fn decode(packed: &[u8]) -> Vec<(Value, isize)> {
        let mut reader = CellReader::new(packed);
        std::iter::from_fn(|| reader.next()).collect()
    }

    proptest! {
        /// Merging groups of updates one after another keeps exactly the nonzero multiplicities
        /// of a plain map, in descending order, and reports each update's before and after.
        #[test]
        fn merges_agree_with_a_map(
            groups in proptest::collection::vec(
                proptest::collection::btree_map(value(), -3isize..4, 1..8),
                1..12,
            )
        ) {
            let mut model: BTreeMap<Value, isize> = BTreeMap::new();
            let mut packed: Box<[u8]> = Box::default();
            let mut packer = Packer::default();
            for group in groups {
                let group: Vec<(Value, isize)> =
                    group.into_iter().filter(|(_, r)| *r != 0).collect();
                let mut reported = Vec::new();
                merge(&packed, group.iter().copied(), &mut packer, &mut |v, before, after| {
                    reported.push((v, before, after));
                });
                packer.finish_into(&mut packed);
                let mut expected = Vec::new();
                for (v, r) in &group {
                    let before = model.get(v).copied().unwrap_or(0);
                    let after = before + r;
                    if after == 0 {
                        model.remove(v);
                    } else {
                        model.insert(*v, after);
                    }
                    expected.push((*v, before, after));
                }
                reported.reverse();
                prop_assert_eq!(reported, expected);
                let cells: Vec<(Value, isize)> =
                    model.iter().rev().map(|(v, c)| (*v, *c)).collect();
                prop_assert_eq!(decode(&packed), cells);
            }
        }
    }
}
