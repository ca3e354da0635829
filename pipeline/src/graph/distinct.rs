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
//! Updates wait until their time is complete (the input frontier has passed it), then apply in
//! time order, so the output at every complete time is exactly the distinct input.

use std::collections::{BTreeMap, HashMap};

use differential_dataflow::consolidation::consolidate;
use differential_dataflow::{AsCollection, VecCollection};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;

use super::operator::Cell;
use super::packed::{Packer, Unpacker};
use super::runtime::{PersonKey, Time};

/// What is counted: an insight's slot and a person, then the cell, and whether the person's id
/// is appended to the cell on the way out ([`super::Combine::Actor`]).
pub(super) type Counted = ((u32, PersonKey), (Cell, bool));

/// Updates waiting for their time to complete, with a capability to emit at that time.
type Pending = BTreeMap<Time, (Capability<Time>, Vec<(Counted, isize)>)>;

/// One (slot, person)'s cells and their multiplicities, sorted by cell.
type Cells = Vec<((Cell, bool), isize)>;

/// The cells of `input` present with a positive multiplicity, each once per (slot, person), as
/// `(slot, cell)`.
///
/// Runs where its input is: callers must send every copy of a record to one worker (the
/// runtime's records arrive partitioned by person).
pub(super) fn distinct_cells<'s>(
    input: VecCollection<'s, Time, Counted, isize>,
) -> VecCollection<'s, Time, (u32, Cell), isize> {
    input
        .inner
        .unary_frontier::<CapacityContainerBuilder<Vec<((u32, Cell), Time, isize)>>, _, _, _>(
            Pipeline,
            "DistinctCells",
            |_, _| {
                let mut counts: HashMap<(u32, PersonKey), Box<[u8]>> = HashMap::new();
                let mut pending: Pending = BTreeMap::new();
                let mut cells: Cells = Vec::new();
                let mut packer = Packer::default();
                move |(input, frontier), output| {
                    input.for_each(|cap, data| {
                        for (d, t, r) in data.drain(..) {
                            pending
                                .entry(t)
                                .or_insert_with(|| (cap.delayed(&t, 0), Vec::new()))
                                .1
                                .push((d, r));
                        }
                    });
                    while let Some(entry) = pending.first_entry() {
                        let t = *entry.key();
                        if frontier.less_equal(&t) {
                            break;
                        }
                        let (cap, mut updates) = entry.remove();
                        // Sorted by (slot, person), so each one's cells unpack once.
                        consolidate(&mut updates);
                        let mut session = output.session(&cap);
                        let mut rest = &updates[..];
                        while let Some((((slot, person), _), _)) = rest.first() {
                            let key = (*slot, *person);
                            let n = rest.iter().take_while(|((k, _), _)| *k == key).count();
                            let (group, tail) = rest.split_at(n);
                            rest = tail;
                            cells.clear();
                            if let Some(packed) = counts.get(&key) {
                                unpack(packed, &mut cells);
                            }
                            for ((_, value), r) in group {
                                let (old, new) = apply(&mut cells, *value, *r);
                                let change = isize::from(new > 0) - isize::from(old > 0);
                                if change != 0 {
                                    let (cell, actor) = *value;
                                    let cell = if actor {
                                        cell.appended(person.1 as i64)
                                    } else {
                                        cell
                                    };
                                    session.give(((*slot, cell), t, change));
                                }
                            }
                            if cells.is_empty() {
                                counts.remove(&key);
                            } else {
                                counts.insert(key, pack(&cells, &mut packer));
                            }
                        }
                    }
                }
            },
        )
        .as_collection()
}

/// Adds `r` to a cell's multiplicity; returns the multiplicity before and after.
fn apply(cells: &mut Cells, value: (Cell, bool), r: isize) -> (isize, isize) {
    match cells.binary_search_by(|(v, _)| v.cmp(&value)) {
        Ok(i) => {
            let old = cells[i].1;
            cells[i].1 += r;
            if cells[i].1 == 0 {
                cells.remove(i);
            }
            (old, old + r)
        }
        Err(i) => {
            cells.insert(i, (value, r));
            (0, r)
        }
    }
}

/// Each cell as its length (doubled, plus one when the person is appended), its integers and
/// its multiplicity. Each integer is written as its difference from the one at the same place
/// in the cell before: cells are sorted, so a person's days of one insight differ only in
/// their bucket, by a multiple of a day (three bytes rather than five for the time itself).
fn pack(cells: &Cells, packer: &mut Packer) -> Box<[u8]> {
    let mut previous = [0i64; Cell::MAX];
    for ((cell, actor), count) in cells {
        let values = cell.as_slice();
        packer.count(values.len() * 2 + usize::from(*actor));
        for (v, p) in values.iter().zip(&mut previous) {
            packer.int(v.wrapping_sub(*p));
            *p = *v;
        }
        packer.int(*count as i64);
    }
    packer.finish()
}

fn unpack(bytes: &[u8], cells: &mut Cells) {
    let mut reader = Unpacker::new(bytes);
    let mut values = [0i64; Cell::MAX];
    while !reader.is_done() {
        let header = reader.count();
        let len = (header / 2).min(Cell::MAX);
        for v in &mut values[..len] {
            *v = v.wrapping_add(reader.int());
        }
        let count = reader.int() as isize;
        cells.push(((Cell::new(&values[..len]), header % 2 == 1), count));
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn cells_unpack_as_packed(
            raw in proptest::collection::btree_map(
                (proptest::collection::vec(any::<i64>(), 0..=Cell::MAX), any::<bool>()),
                any::<i32>().prop_filter("counted", |c| *c != 0),
                0..20,
            )
        ) {
            let cells: Cells = raw
                .into_iter()
                .map(|((values, actor), count)| ((Cell::new(&values), actor), count as isize))
                .collect();
            let mut packer = Packer::default();
            let packed = pack(&cells, &mut packer);
            let mut out = Vec::new();
            unpack(&packed, &mut out);
            prop_assert_eq!(out, cells);
        }
    }
}
