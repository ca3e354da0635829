//! Retention (`RetentionQuery`): of the persons who did the target event in an interval, how
//! many did the returning event 1, 2, ... intervals later.
//!
//! **Input → output.** Per person (and, with an event breakdown, per breakdown value: PostHog
//! groups by person and value, so a person's events with different values are retained
//! separately), the events are reduced to [`cohort::Mark`]s and [`cohort::cohorts`] yields one
//! cohort per start interval with the set of offsets at which the person counts. Each becomes
//! one contribution (see [`layout`]), which the [`aggregate::RetentionAggregator`] sums into a
//! `start × offset` table per breakdown value and renders as PostHog's rows.
//!
//! **State and cost.** The per-person output is one small tuple per cohort (at most
//! `totalIntervals` per person and breakdown value); a changed history costs one replay of
//! that person's events. The aggregator keeps `totalIntervals²` counters per breakdown value;
//! a retraction subtracts exactly what the addition added.
//!
//! **Semantics** (PostHog's retention runner):
//! - The range: `date_to` (default now) resolved like any `dateRange`, then its interval is
//!   the last of `totalIntervals` intervals; events count only inside those intervals.
//!   `date_from` is ignored.
//! - `retention_recurring`: every interval with a target event is a cohort.
//!   `retention_first_time`: the interval of the person's first target event that matches the
//!   target's property filters, over all history, if in range.
//!   `retention_first_ever_occurrence`: the interval of the person's first-ever event with the
//!   target's name (its property filters ignored), provided that event also matches the
//!   filters. The two first-time kinds differ only when the target entity has `properties`.
//! - Offset 0 is the cohort; offset k > 0 counts the person when interval `start + k` has at
//!   least `minimumOccurrences` returning events. `cumulative` counts a person at every offset
//!   up to their furthest.
//! - The query's `properties` apply to every event before anything else.

pub mod aggregate;
pub mod cohort;
pub mod config;
pub mod layout;

use std::collections::BTreeMap;
use std::sync::Arc;

use quill_pipeline::event::ProjectId;
use quill_pipeline::graph::{
    Aggregator, BuildContext, Contribution, EventRow, InsightOperator, Interner, Memo, PersonView,
    PropValue, Sym,
};
use serde_json::Value;

use crate::query::{dates, global_filters, Breakdown, DateRange, EventsNode, Filters, Scope};
use crate::QueryError;

use aggregate::{RetentionAggregator, Shape};
use cohort::{CohortRule, Grid, Mark, Rule};
use config::Options;
use layout::Key;

/// Top-level `RetentionQuery` keys that carry no semantics Quill must honour.
const IGNORED_KEYS: &[&str] = &[
    "kind",
    "modifiers",
    "response",
    "tags",
    "version",
    "dataColorTheme",
];

/// Builds the operator for a `RetentionQuery`.
pub fn build(
    query: &serde_json::Value,
    ctx: &BuildContext,
) -> Result<Arc<dyn InsightOperator>, QueryError> {
    check_top_level(query)?;
    let interner = &ctx.interner;
    let (options, target, returning) = config::options(query.get("retentionFilter"))?;
    let target = entity(target, "retentionFilter.targetEntity", interner)?;
    let returning = entity(returning, "retentionFilter.returningEntity", interner)?;
    let global = global_filters(query, interner)?;
    let breakdown = Breakdown::parse(&normalize_breakdowns(query)?, interner)?;
    let grid = grid(query, &options, ctx.now_ms)?;

    let n = options.total_intervals;
    let dates = (0..n)
        .map(|i| {
            let start = grid.start(i).unwrap_or_default();
            dates::to_datetime(start)
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string()
        })
        .collect();
    let shape = Arc::new(Shape {
        dates,
        unit: config::unit(options.period),
        cumulative: options.cumulative,
        breakdown_limit: breakdown.as_ref().map(|b| b.limit),
    });
    let mut op = Retention {
        project: ctx.project,
        interner: interner.clone(),
        rule: Rule {
            cohort: options.cohort,
            minimum_occurrences: options.minimum_occurrences,
        },
        grid,
        target,
        returning,
        global,
        breakdown,
        shape,
        memo: false,
    };
    // Interval sets fit one word; counts above one and breakdown groups are not in the memo;
    // person filters cannot be evaluated from a row.
    op.memo = op.breakdown.is_none()
        && op.grid.len() < 63
        && op.rule.minimum_occurrences <= 1
        && op.keys(Scope::Person).is_empty();
    Ok(Arc::new(op))
}

/// Rejects top-level fields Quill does not implement, naming them.
fn check_top_level(query: &Value) -> Result<(), QueryError> {
    let Some(map) = query.as_object() else {
        return Err(QueryError::new("", "expected a RetentionQuery object"));
    };
    for (key, value) in map {
        let ok = match key.as_str() {
            "dateRange" | "retentionFilter" | "properties" | "filterTestAccounts"
            | "breakdownFilter" => true,
            "aggregation_group_type_index" => value.is_null(),
            "samplingFactor" => value.is_null() || value.as_f64() == Some(1.0),
            k => IGNORED_KEYS.contains(&k),
        };
        if !ok {
            return Err(QueryError::new(
                key.as_str(),
                format!("unsupported RetentionQuery field {key:?} (value {value})"),
            ));
        }
    }
    Ok(())
}

/// PostHog's newer `breakdowns: [{property, type}]` form, with one element, rewritten into
/// the `breakdown` / `breakdown_type` form the shared parser reads.
fn normalize_breakdowns(query: &Value) -> Result<Value, QueryError> {
    let mut query = query.clone();
    let Some(filter) = query
        .get_mut("breakdownFilter")
        .and_then(Value::as_object_mut)
    else {
        return Ok(query);
    };
    let has_single = filter.get("breakdown").is_some_and(|b| !b.is_null());
    match filter.get("breakdowns").cloned() {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) if items.is_empty() => {}
        Some(Value::Array(items)) if items.len() == 1 && !has_single => {
            let item = &items[0];
            filter.insert(
                "breakdown".into(),
                item.get("property").cloned().unwrap_or(Value::Null),
            );
            filter.insert(
                "breakdown_type".into(),
                item.get("type").cloned().unwrap_or(Value::Null),
            );
        }
        Some(_) => {
            return Err(QueryError::new(
                "breakdownFilter.breakdowns",
                "only one breakdown property is supported",
            ))
        }
    }
    Ok(query)
}

/// Parses a retention entity (`{id, type, name, properties}`); absent means `$pageview`.
fn entity(
    value: Option<&Value>,
    field: &str,
    interner: &Arc<Interner>,
) -> Result<EventsNode, QueryError> {
    let Some(value) = value else {
        return Ok(EventsNode::for_event(Some("$pageview"), interner));
    };
    let sub = |name: &str| format!("{field}.{name}");
    if !value.is_object() {
        return Err(QueryError::new(field, "expected an entity object"));
    }
    match value.get("type").and_then(Value::as_str) {
        None | Some("events") => {}
        Some(other) => {
            return Err(QueryError::new(
                sub("type"),
                format!("unsupported entity type {other:?}; expected events"),
            ))
        }
    }
    match value.get("kind").and_then(Value::as_str) {
        None | Some("EventsNode") => {}
        Some(other) => {
            return Err(QueryError::new(
                sub("kind"),
                format!("unsupported entity kind {other:?}; expected EventsNode"),
            ))
        }
    }
    let event = match value.get("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(other) => {
            return Err(QueryError::new(
                sub("id"),
                format!("expected an event name or null, got {other}"),
            ))
        }
    };
    let mut node = EventsNode::for_event(event, interner);
    node.filters = Filters::parse(value.get("properties"), &sub("properties"), interner)?;
    Ok(node)
}

/// The query's intervals: `totalIntervals` of them, the last holding `date_to`.
fn grid(query: &Value, options: &Options, now_ms: i64) -> Result<Grid, QueryError> {
    let range = DateRange::resolve(query.get("dateRange"), options.period, now_ms)?;
    let last = options.period.truncate(range.to_ms);
    let n = options.total_intervals as i64;
    let boundaries = (0..=n)
        .map(|i| options.period.add(last, i - (n - 1)))
        .collect();
    Grid::new(boundaries).ok_or_else(|| QueryError::new("dateRange.date_to", "date out of range"))
}

/// The built operator.
struct Retention {
    project: ProjectId,
    interner: Arc<Interner>,
    rule: Rule,
    grid: Grid,
    target: EventsNode,
    returning: EventsNode,
    global: Filters,
    breakdown: Option<Breakdown>,
    shape: Arc<Shape>,
    /// Whether a [`Memo`] can decide that new events change nothing (see `person_pass_memo`).
    memo: bool,
}

/// The memo's layout: the first target event's time, the first event with the target's name,
/// the intervals with a target event (bit i), and those with a returning event.
const FIRST_TARGET: usize = 0;
const FIRST_NAME: usize = 1;
const TARGETS: usize = 2;
const RETURNS: usize = 3;

impl Retention {
    fn keys(&self, scope: Scope) -> Vec<String> {
        let mut keys = self.target.keys(scope);
        keys.extend(self.returning.keys(scope));
        keys.extend(self.global.keys(scope));
        if let Some(b) = &self.breakdown {
            keys.extend(b.keys(scope));
        }
        keys.sort();
        keys.dedup();
        keys
    }
}

impl Retention {
    /// The person pass; with `memo`, also fills it (layout at [`FIRST_TARGET`]).
    fn pass(
        &self,
        person: &PersonView<'_>,
        out: &mut Vec<(Contribution, isize)>,
        mut memo: Option<&mut Memo>,
    ) {
        // Events grouped by breakdown value; without a breakdown, one group.
        let mut groups: BTreeMap<Option<Option<Sym>>, Vec<Mark>> = BTreeMap::new();
        for row in person.events {
            let Some(mark) = self.mark(row, person.props) else {
                continue;
            };
            if let Some(memo) = memo.as_deref_mut() {
                remember(memo, &mark, self.grid.index(mark.ts_ms));
            }
            let key = self.breakdown.as_ref().map(|b| b.value(row, person.props));
            groups.entry(key).or_default().push(mark);
        }
        for (key, marks) in groups {
            let key = match key {
                None => Key::All,
                Some(None) => Key::Null,
                Some(Some(sym)) => Key::Value(sym),
            };
            for c in cohort::cohorts(&marks, &self.grid, &self.rule) {
                out.push((layout::encode(key, c.start, &c.offsets), 1));
            }
        }
    }

    /// The row's mark, or `None` when the pass ignores the row: it fails the query's filters,
    /// or is neither a target (by name) nor a return.
    fn mark(&self, row: &EventRow, props: &[(Sym, PropValue)]) -> Option<Mark> {
        if !self.global.matches(row, props) {
            return None;
        }
        let mark = Mark {
            ts_ms: row.ts_ms,
            target: self.target.matches(row, props),
            target_name: self.target.matches_event(row),
            returning: self.returning.matches(row, props),
        };
        (mark.target_name || mark.returning).then_some(mark)
    }

    /// A person's cohorts as [`cohort::cohorts`] computes them from the marks, here from the
    /// memo those marks left: with one breakdown group and returns counted once, the interval
    /// sets and the first times are all the cohorts depend on.
    fn cohorts_of(&self, memo: &Memo) -> Vec<cohort::Cohort> {
        let n = self.grid.len();
        let has = |mask: i64, i: usize| mask & (1 << i) != 0;
        let interval = |ts: i64| (ts != i64::MAX).then(|| self.grid.index(ts)).flatten();
        let starts: Vec<usize> = match self.rule.cohort {
            CohortRule::Recurring => (0..n).filter(|i| has(memo[TARGETS], *i)).collect(),
            CohortRule::FirstMatching => interval(memo[FIRST_TARGET]).into_iter().collect(),
            // Target events have the target's name, so the first of them is the first named
            // one exactly when that one (or one at its instant) matches.
            CohortRule::FirstEver => (memo[FIRST_NAME] == memo[FIRST_TARGET])
                .then(|| interval(memo[FIRST_NAME]))
                .flatten()
                .into_iter()
                .collect(),
        };
        let qualifies: Vec<bool> = (0..n).map(|i| has(memo[RETURNS], i)).collect();
        cohort::from_intervals(starts, &qualifies)
    }
}

/// Adds one mark (in any order) to a memo.
fn remember(memo: &mut Memo, mark: &Mark, slot: Option<usize>) {
    if mark.target {
        memo[FIRST_TARGET] = memo[FIRST_TARGET].min(mark.ts_ms);
    }
    if mark.target_name {
        memo[FIRST_NAME] = memo[FIRST_NAME].min(mark.ts_ms);
    }
    if let Some(i) = slot {
        if mark.target {
            memo[TARGETS] |= 1 << i;
        }
        if mark.returning {
            memo[RETURNS] |= 1 << i;
        }
    }
}

impl InsightOperator for Retention {
    fn project(&self) -> ProjectId {
        self.project
    }

    fn event_properties(&self) -> Vec<String> {
        self.keys(Scope::Event)
    }

    fn person_properties(&self) -> Vec<String> {
        self.keys(Scope::Person)
    }

    fn person_pass(&self, person: &PersonView<'_>, out: &mut Vec<(Contribution, isize)>) {
        self.pass(person, out, None);
    }

    fn person_pass_memo(
        &self,
        person: &PersonView<'_>,
        out: &mut Vec<(Contribution, isize)>,
    ) -> Option<Memo> {
        if !self.memo {
            self.person_pass(person, out);
            return None;
        }
        let mut memo = [i64::MAX, i64::MAX, 0, 0];
        self.pass(person, out, Some(&mut memo));
        Some(memo)
    }

    fn resolved_bounds(&self) -> Option<Vec<i64>> {
        Some(self.grid.boundaries().to_vec())
    }

    /// A person's cohorts depend on the intervals holding target and returning events (and,
    /// for the first-time kinds, on the first target event), so an event that adds neither a
    /// new interval nor an earlier first changes nothing.
    fn unaffected(&self, memo: &Memo, row: &EventRow) -> bool {
        if !self.global.matches(row, &[]) {
            return true;
        }
        let slot = self.grid.index(row.ts_ms);
        let known = |mask: i64| slot.is_none_or(|i| mask & (1 << i) != 0);
        let changes_cohort = match self.rule.cohort {
            CohortRule::Recurring => self.target.matches(row, &[]) && !known(memo[TARGETS]),
            CohortRule::FirstMatching => {
                self.target.matches(row, &[]) && row.ts_ms <= memo[FIRST_TARGET]
            }
            CohortRule::FirstEver => {
                self.target.matches_event(row) && row.ts_ms <= memo[FIRST_NAME]
            }
        };
        let changes_returns = self.returning.matches(row, &[]) && !known(memo[RETURNS]);
        !(changes_cohort || changes_returns)
    }

    fn advance(
        &self,
        memo: &Memo,
        rows: &[&EventRow],
        out: &mut Vec<(Contribution, isize)>,
    ) -> Option<Memo> {
        if !self.memo {
            return None;
        }
        let mut memo = *memo;
        // The memo is kept only for queries without person filters: no properties needed.
        for mark in rows.iter().filter_map(|row| self.mark(row, &[])) {
            remember(&mut memo, &mark, self.grid.index(mark.ts_ms));
        }
        for c in self.cohorts_of(&memo) {
            out.push((layout::encode(Key::All, c.start, &c.offsets), 1));
        }
        Some(memo)
    }

    fn aggregator(&self) -> Box<dyn Aggregator> {
        Box::new(RetentionAggregator::new(
            self.shape.clone(),
            self.interner.clone(),
        ))
    }
}
