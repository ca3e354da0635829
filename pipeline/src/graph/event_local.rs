//! The insights computed from each event alone ([`InsightOperator::event_local`]): every
//! event is mapped once, as it arrives, and nothing is replayed.
//!
//! [`InsightOperator::event_local`]: super::operator::InsightOperator::event_local

use std::sync::Arc;

use super::backlog::Backlog;
use super::operator::{Cell, Combine};
use super::runtime::{InsightSlot, PersonArranged, SlotCell, SlotUpdates};

/// The event-local insights in `which`: each event is mapped once as it arrives, and
/// contributions that count persons go through a `distinct` on (person, contribution). An
/// [`Combine::Actor`] contribution leaves the `distinct` with its person's id appended.
pub(super) fn event_pass<'s>(
    by_person: PersonArranged<'s>,
    slots: Arc<[InsightSlot]>,
    which: Vec<u32>,
) -> SlotUpdates<'s> {
    let mut buffer: Vec<(Cell, Combine)> = Vec::new();
    let backlog = Backlog::default();
    let mapped =
        super::sliced::flat_map(by_person, backlog.clone(), move |person, item, emitted| {
            if let Some(row) = item.as_event() {
                for index in &which {
                    let op = &slots[*index as usize].op;
                    if op.project() != person.0 {
                        continue;
                    }
                    op.event_pass(row, &mut buffer);
                    emitted.extend(buffer.drain(..).map(|(c, how)| match how {
                        Combine::Sum => (*index, None, (c, false)),
                        Combine::Distinct => (*index, Some(*person), (c, false)),
                        Combine::Actor => (*index, Some(*person), (c, true)),
                    }));
                }
            }
        });
    let summed = mapped
        .clone()
        .filter(|(_, counted_for, _)| counted_for.is_none())
        .map(|(index, _, (c, _))| (index, SlotCell::Local(c)));
    // An actor's id is appended by the distinct, which keeps its counts per person anyway.
    let persons = super::distinct::distinct_cells(
        mapped.flat_map(|(index, counted_for, value)| {
            counted_for.map(|person| ((index, person), value))
        }),
        backlog,
    )
    .map(|(index, c)| (index, SlotCell::Local(c)));
    summed.concat(persons)
}
