//! The operator seam: what an insight kind must provide for the runtime to maintain it.
//!
//! An insight is evaluated in two stages.
//! 1. **Per person**, inside the dataflow: [`InsightOperator::person_pass`] sees one person's
//!    whole (projected) history and emits *contributions*, small integer tuples such as
//!    `[series, bucket, breakdown, 1]`. Every registered insight runs in the same pass over a
//!    touched person, because replaying the history costs more than any insight's logic.
//!    When a person's history changes (a late event, a merge, a deletion), the dataflow retracts
//!    the person's old contributions and adds the new ones.
//! 2. **Across persons**, outside the dataflow: an [`Aggregator`] folds contributions with their
//!    multiplicities (negative for retractions) and renders PostHog's result JSON.
//!
//! The contract that makes results exact: after applying every emitted `(contribution, diff)`,
//! the aggregator's state depends only on the multiset of current contributions, never on the
//! order they arrived in.
//!
//! **Event-local insights** skip the replay. When every contribution depends on one event
//! alone (and on whose event it is, for counting persons), an operator says so with
//! [`InsightOperator::event_local`] and implements [`InsightOperator::event_pass`]. The runtime
//! then maps each event once as it arrives, and counts [`Combine::Distinct`] contributions once
//! per person with a `distinct` keyed by (person, contribution), whose state holds one count
//! per key instead of the history. A busy person's new event then costs one event's work,
//! not a replay of everything they ever did. `person_pass` must stay equal to that combination:
//! it is what ad hoc evaluation and the reference tests use.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::event::ProjectId;

use super::row::{EventRow, Interner, PropValue, Sym};

/// One person's contribution to an insight. Operators choose the layout (documented per
/// operator); floats travel as `f64::to_bits` cast to `i64`.
pub type Contribution = Vec<i64>;

/// One person's history as an insight sees it.
#[derive(Debug, Clone, Copy)]
pub struct PersonView<'a> {
    /// The person's numeric id.
    pub person: u64,
    /// Every event of the person, sorted by `(ts_ms, offset)`.
    pub events: &'a [&'a EventRow],
    /// The person's projected properties, sorted by key (empty when no insight reads any).
    pub props: &'a [(Sym, PropValue)],
}

impl PersonView<'_> {
    /// Whether nothing is left of the person: no events and no properties.
    pub fn is_gone(&self) -> bool {
        self.events.is_empty() && self.props.is_empty()
    }
}

/// What an operator is built with.
#[derive(Debug, Clone)]
pub struct BuildContext {
    /// The runtime's string table: operators intern their event names and keys at build time.
    pub interner: Arc<Interner>,
    /// "Now" in ms since the epoch, for resolving relative date ranges.
    pub now_ms: i64,
    /// The project the insight belongs to.
    pub project: ProjectId,
}

/// An insight kind, built from one query definition.
pub trait InsightOperator: Send + Sync + 'static {
    /// The project whose persons this insight reads.
    fn project(&self) -> ProjectId;

    /// Event property keys the insight reads; the feeder projects these into each row.
    fn event_properties(&self) -> Vec<String>;

    /// Person property keys the insight reads.
    fn person_properties(&self) -> Vec<String> {
        Vec::new()
    }

    /// Emits this person's contributions. Pushing the same contribution twice is the same as
    /// pushing it once with diff 2.
    fn person_pass(&self, person: &PersonView<'_>, out: &mut Vec<(Contribution, isize)>);

    /// A fresh aggregator for this insight's contributions.
    fn aggregator(&self) -> Box<dyn Aggregator>;

    /// Whether [`InsightOperator::event_pass`] computes this insight (see the module docs).
    fn event_local(&self) -> bool {
        false
    }

    /// One event's contributions, for an event-local insight. A person's `person_pass` equals
    /// the sum of their events' [`Combine::Sum`] contributions plus each distinct
    /// [`Combine::Distinct`] contribution once, plus each distinct [`Combine::Actor`]
    /// contribution once with the person's id appended.
    fn event_pass(&self, _row: &EventRow, _out: &mut Vec<(Cell, Combine)>) {}

    /// [`InsightOperator::person_pass`], also returning a [`Memo`] for
    /// [`InsightOperator::unaffected`]. The default keeps none, so every change to the person
    /// replays their history.
    fn person_pass_memo(
        &self,
        person: &PersonView<'_>,
        out: &mut Vec<(Contribution, isize)>,
    ) -> Option<Memo> {
        self.person_pass(person, out);
        None
    }

    /// Whether adding `row` to the history whose pass returned `memo` leaves the person's
    /// contributions exactly as they are. `false` is always safe; `true` must be certain,
    /// because the runtime then skips the replay.
    fn unaffected(&self, _memo: &Memo, _row: &EventRow) -> bool {
        false
    }

    /// The pass after adding `rows` (new events, in any order) to the history whose pass
    /// returned `memo`, computed from the memo alone: returns the new memo and pushes the
    /// person's contributions to `out`, exactly what [`InsightOperator::person_pass_memo`]
    /// over the history plus `rows` would. `None` (the default) says the memo does not
    /// determine them; the runtime then replays the history.
    ///
    /// A person's first event of a day changes a daily retention's cohorts, so `unaffected`
    /// cannot skip it, but the memo's interval sets already say everything the cohorts depend
    /// on: reading back a long history to learn them again was most of a round's replays.
    fn advance(
        &self,
        _memo: &Memo,
        _rows: &[&EventRow],
        _out: &mut Vec<(Contribution, isize)>,
    ) -> Option<Memo> {
        None
    }

    /// The absolute bounds (ms) the query's relative dates resolved to when it was built.
    /// Two builds of one query with equal bounds compute the same results, so re-resolving
    /// relative dates keeps a running insight unless its bounds moved: rebuilding one means
    /// replaying every person. `None` (the default) says the operator cannot tell, and it is
    /// rebuilt every time.
    fn resolved_bounds(&self) -> Option<Vec<i64>> {
        None
    }
}

/// What a person's pass remembers about the history it saw, in the operator's own layout,
/// so that [`InsightOperator::unaffected`] can tell that a new event changes nothing.
///
/// This is what bounds the replay for very active persons: once a busy person has converted
/// through a funnel, or has been active in today's retention interval, their next events
/// cannot change those results, and a round that only adds such events skips the person.
pub type Memo = [i64; 4];

/// An event-local contribution: up to [`Cell::MAX`] integers kept inline, because the runtime
/// makes one per event and keys its person counts by them; a heap allocation each would cost
/// more than the insight's own work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Cell {
    len: u8,
    values: [i64; Cell::MAX],
}

impl Cell {
    /// The most integers a cell holds.
    pub const MAX: usize = 4;

    /// A cell of `values`; integers past [`Cell::MAX`] are a bug in the operator, and dropped.
    pub fn new(values: &[i64]) -> Self {
        debug_assert!(
            values.len() <= Self::MAX,
            "a cell holds {} integers",
            Self::MAX
        );
        let len = values.len().min(Self::MAX);
        let mut cell = Cell {
            len: len as u8,
            values: [0; Self::MAX],
        };
        cell.values[..len].copy_from_slice(&values[..len]);
        cell
    }

    /// The integers.
    pub fn as_slice(&self) -> &[i64] {
        &self.values[..usize::from(self.len)]
    }

    /// The cell with `value` appended; a full cell is returned unchanged (a bug in the
    /// operator that emitted it).
    pub fn appended(mut self, value: i64) -> Self {
        let len = usize::from(self.len);
        debug_assert!(len < Self::MAX, "a cell holds {} integers", Self::MAX);
        if len < Self::MAX {
            self.values[len] = value;
            self.len += 1;
        }
        self
    }
}

/// How an event-local contribution adds up over one person's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combine {
    /// Every event's copy counts.
    Sum,
    /// The person counts once, however many of their events emit it.
    Distinct,
    /// Like [`Combine::Distinct`], and the aggregator learns whose it is: the person's id is
    /// appended to the contribution. Weekly and monthly active users use it to count a person
    /// once per trailing window without emitting one contribution per window.
    Actor,
}

/// Folds contributions across persons and renders the result.
pub trait Aggregator: Send {
    /// Adds `diff` copies of a contribution (removes them when negative).
    fn apply(&mut self, contribution: &[i64], diff: isize);

    /// The result in PostHog's shape for this query kind (the `results` field).
    fn render(&self) -> serde_json::Value;
}

/// Evaluates an operator over whole histories without a dataflow: every person's pass, then one
/// aggregator. Tests and ad hoc queries over small inputs use it; the runtime must agree with it.
pub fn evaluate(op: &dyn InsightOperator, persons: &[PersonView<'_>]) -> serde_json::Value {
    let mut aggregator = op.aggregator();
    let mut out = Vec::new();
    for person in persons {
        out.clear();
        op.person_pass(person, &mut out);
        for (contribution, diff) in &out {
            aggregator.apply(contribution, *diff);
        }
    }
    aggregator.render()
}
