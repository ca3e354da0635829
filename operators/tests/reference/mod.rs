//! From-scratch reference computations, one file per insight kind, and the input they share.
//!
//! A reference reads raw events (JSON properties, string event names) and computes PostHog's
//! result directly, the obvious way. It shares no code with the operators, so that a bug in an
//! operator cannot hide behind the same bug in its check.
#![allow(dead_code)]

use std::sync::Arc;

use quill_pipeline::graph::{
    Contribution, EventRow, InsightOperator, Interner, Memo, PersonView, PropValue, Props, Sym,
};
use serde_json::{Map, Value};

pub mod funnels;
pub mod retention;
pub mod trends;

/// One event as the references see it: already resolved to its person.
#[derive(Debug, Clone, PartialEq)]
pub struct RefEvent {
    /// The person the event's distinct id resolves to now.
    pub person: u64,
    /// Event time, ms since the epoch.
    pub ts_ms: i64,
    /// Unique per event; breaks timestamp ties (the log offset in the real pipeline).
    pub offset: u64,
    /// The event name.
    pub event: String,
    /// Event properties.
    pub properties: Map<String, Value>,
}

/// A reference event with the next unique offset (offsets order ties as the log would).
pub fn ev(person: u64, ts_ms: i64, event: &str, props: Value) -> RefEvent {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    RefEvent {
        person,
        ts_ms,
        offset: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        event: event.to_string(),
        properties: props.as_object().cloned().unwrap_or_default(),
    }
}

/// Projects reference events into the rows the dataflow keeps, grouped per person and sorted
/// the way the runtime sorts them, for feeding an operator directly.
pub struct Projected {
    pub persons: Vec<(u64, Vec<EventRow>)>,
}

impl Projected {
    pub fn new(events: &[RefEvent], op: &dyn InsightOperator, interner: &Arc<Interner>) -> Self {
        let keys: Vec<(String, Sym)> = op
            .event_properties()
            .into_iter()
            .map(|k| {
                let sym = interner.intern(&k);
                (k, sym)
            })
            .collect();
        let mut by_person: std::collections::BTreeMap<u64, Vec<EventRow>> = Default::default();
        for e in events {
            let mut props: Vec<(Sym, PropValue)> = keys
                .iter()
                .filter_map(|(k, sym)| {
                    e.properties
                        .get(k)
                        .and_then(|v| interner.value(v))
                        .map(|v| (*sym, v))
                })
                .collect();
            props.sort_by_key(|(k, _)| *k);
            by_person.entry(e.person).or_default().push(EventRow {
                ts_ms: e.ts_ms,
                offset: e.offset,
                props: Props::new(interner.intern(&e.event), props),
            });
        }
        let persons = by_person
            .into_iter()
            .map(|(p, mut rows)| {
                rows.sort();
                (p, rows)
            })
            .collect();
        Self { persons }
    }

    /// Runs the operator over every person with `quill_pipeline::graph::evaluate`.
    pub fn evaluate(&self, op: &dyn InsightOperator) -> Value {
        let refs: Vec<(u64, Vec<&EventRow>)> = self
            .persons
            .iter()
            .map(|(p, rows)| (*p, rows.iter().collect()))
            .collect();
        let views: Vec<PersonView<'_>> = refs
            .iter()
            .map(|(p, rows)| PersonView {
                person: *p,
                events: rows,
                props: &[],
            })
            .collect();
        quill_pipeline::graph::evaluate(op, &views)
    }
}

/// Checks the memo contract ([`check_memo`], [`check_advance`]) for every person of `history`
/// and every event of `extra`, which come later in the log (at any time), one at a time and
/// all together.
pub fn check_memos(
    op: &dyn InsightOperator,
    interner: &Arc<Interner>,
    history: &[RefEvent],
    extra: &[RefEvent],
) -> Result<(), String> {
    let projected = Projected::new(history, op, interner);
    let mut extra = extra.to_vec();
    for (i, e) in extra.iter_mut().enumerate() {
        e.offset = 10_000 + i as u64;
    }
    let extra = Projected::new(&extra, op, interner);
    let all_extra: Vec<&EventRow> = extra.persons.iter().flat_map(|(_, rows)| rows).collect();
    for (person, rows) in &projected.persons {
        for row in &all_extra {
            check_memo(op, *person, rows, row)?;
            check_advance(op, *person, rows, &[row])?;
        }
        check_advance(op, *person, rows, &all_extra)?;
    }
    Ok(())
}

/// One person's pass over `rows` (sorted), with its memo when `memo` asks for it; the
/// contributions sorted.
fn pass_over(
    op: &dyn InsightOperator,
    person: u64,
    rows: &[&EventRow],
    memo: bool,
) -> (Vec<(Contribution, isize)>, Option<Memo>) {
    let view = PersonView {
        person,
        events: rows,
        props: &[],
    };
    let mut out = Vec::new();
    let m = if memo {
        op.person_pass_memo(&view, &mut out)
    } else {
        op.person_pass(&view, &mut out);
        None
    };
    out.sort();
    (out, m)
}

/// Checks [`InsightOperator::advance`] for one person's `rows` (sorted) and new rows `extra`:
/// when it answers, its contributions and memo are those of a pass over everything.
pub fn check_advance(
    op: &dyn InsightOperator,
    person: u64,
    rows: &[EventRow],
    extra: &[&EventRow],
) -> Result<(), String> {
    let before: Vec<&EventRow> = rows.iter().collect();
    let Some(memo) = pass_over(op, person, &before, true).1 else {
        return Ok(());
    };
    let mut advanced = Vec::new();
    let Some(next) = op.advance(&memo, extra, &mut advanced) else {
        return Ok(());
    };
    advanced.sort();
    let mut after = before;
    after.extend(extra.iter().copied());
    after.sort();
    let (expected, expected_memo) = pass_over(op, person, &after, true);
    if (&advanced, Some(next)) != (&expected, expected_memo) {
        return Err(format!(
            "advancing memo {memo:?} by {extra:?} gave {advanced:?} and memo {next:?}, a pass {expected:?} and memo {expected_memo:?}"
        ));
    }
    Ok(())
}

/// Checks the memo contract for one person's `rows` (sorted) and one new row: the memo pass
/// emits what the plain pass emits, and when the operator calls `extra` unaffected, adding it
/// leaves the person's contributions unchanged. Returns the failure, if any.
pub fn check_memo(
    op: &dyn InsightOperator,
    person: u64,
    rows: &[EventRow],
    extra: &EventRow,
) -> Result<(), String> {
    let pass = |rows: &[&EventRow], memo: bool| pass_over(op, person, rows, memo);
    let before: Vec<&EventRow> = rows.iter().collect();
    let (plain, _) = pass(&before, false);
    let (with_memo, memo) = pass(&before, true);
    if plain != with_memo {
        return Err(format!("memo pass {with_memo:?} != pass {plain:?}"));
    }
    let Some(memo) = memo else { return Ok(()) };
    if !op.unaffected(&memo, extra) {
        return Ok(());
    }
    let mut after = before.clone();
    after.push(extra);
    after.sort();
    let (changed, _) = pass(&after, false);
    if changed != plain {
        return Err(format!(
            "{extra:?} called unaffected by memo {memo:?}, but {plain:?} became {changed:?}"
        ));
    }
    Ok(())
}
