//! Trends (`TrendsQuery`): per series, a number per time bucket (or one number for the whole
//! range on total-value displays), optionally per breakdown value, optionally combined by
//! formulas.
//!
//! **Input → output.** A person's history → contributions; contributions across persons → one
//! result per series and breakdown value in PostHog's shape (see [`aggregate`]).
//!
//! **Contribution layout** `[series, bucket_s, breakdown, value?]`:
//! - `series`: the series index (A = 0);
//! - `bucket_s`: the bucket start in seconds since the epoch; 0 on total-value displays, where
//!   the whole range is one bucket;
//! - `breakdown`: the interned breakdown value, or -1 for null and when there is no breakdown;
//! - `value`, by math:
//!   - `total`: absent; diff = the person's matching events in the cell;
//!   - `dau`, and `weekly_active` / `monthly_active` on week and month intervals: absent;
//!     diff = 1 per person and cell;
//!   - `weekly_active` / `monthly_active` on trailing windows: `bucket_s` is a bucket the person
//!     was active in and `value` is the person's id; diff = 1. The aggregator counts the person
//!     in every bucket whose window holds one of their active buckets, so a person's event
//!     makes one contribution, not one per window;
//!   - `unique_session`: the interned `$session_id`; diff = 1 per person, cell and session;
//!   - property math: the value as an order-preserving key ([`math::ordered`]); diff = the
//!     person's events with that value in the cell;
//!   - for both, [`math::NO_VALUE`] stands for matching events without a (numeric) value:
//!     the fold ignores it, but it makes the breakdown value show up, as in PostHog;
//!   - `*_count_per_actor`: the person's event count in the cell; diff = 1.
//!
//! **State.** The aggregator keeps, per `(series, bucket, breakdown)` cell, a multiset of
//! values (value → multiplicity, a `BTreeMap`), so retractions are exact and quantiles can be
//! read off in order. Rendering folds each cell with the series' math, ranks breakdown values
//! and folds those beyond the limit into Other, then applies formulas.
//!
//! **Cost per update.** A person's pass is linear in their events per series; applying a
//! contribution is `O(log n)` (times the window length in buckets for weekly/monthly active,
//! whose aggregator also keeps each person's active buckets).
//!
//! **Semantics and judgment calls.**
//! - Property math ignores events whose property is missing, not numeric or not finite (as
//!   ClickHouse's aggregates skip nulls); a bucket with no values shows 0.
//! - Quantiles (`median`, `p75`…`p99`, and their per-actor forms) interpolate linearly between
//!   the closest ranks, as ClickHouse's `quantile` does on small inputs.
//! - `weekly_active` / `monthly_active` count the persons with an event in the 7 / 30 days
//!   ending at each bucket's end (events before `date_from` count; after `date_to` do not). On
//!   week and month intervals, and on total-value displays, they count distinct persons in the
//!   bucket, like `dau`.
//! - `unique_session` ignores events without `$session_id`.
//! - Other is the element-wise sum of the folded values' series, as PostHog's query sums them.
//! - `date_from: "all"` starts at the earliest matching event's day.

pub mod aggregate;
pub mod config;
pub mod formula;
pub mod math;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use quill_pipeline::event::ProjectId;
use quill_pipeline::graph::{
    Aggregator, BuildContext, Cell, Combine, Contribution, EventRow, InsightOperator, Interner,
    PersonView, PropValue, Sym,
};

use crate::query::{Interval, Scope};
use crate::QueryError;

use config::{Series, TrendsConfig};
use math::{ordered, Math, NO_VALUE, SESSION_KEY};

const DAY_MS: i64 = 86_400_000;

/// Builds the operator for a `TrendsQuery`.
pub fn build(
    query: &serde_json::Value,
    ctx: &BuildContext,
) -> Result<Arc<dyn InsightOperator>, QueryError> {
    let config = TrendsConfig::parse(query, &ctx.interner, ctx.now_ms)?;
    Ok(Arc::new(TrendsOperator {
        config: Arc::new(config),
        project: ctx.project,
        session_key: ctx.interner.intern(SESSION_KEY),
        interner: ctx.interner.clone(),
    }))
}

/// The trends operator built from one query.
pub struct TrendsOperator {
    config: Arc<TrendsConfig>,
    project: ProjectId,
    session_key: Sym,
    interner: Arc<Interner>,
}

impl InsightOperator for TrendsOperator {
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
        for (index, series) in self.config.series.iter().enumerate() {
            self.series_pass(index as i64, series, person, out);
        }
    }

    fn aggregator(&self) -> Box<dyn Aggregator> {
        Box::new(aggregate::TrendsAggregator::new(self.config.clone()))
    }

    fn resolved_bounds(&self) -> Option<Vec<i64>> {
        Some(self.config.range.resolved())
    }

    /// Per-actor maths need a person's event count per cell, and person properties are not on
    /// the event; every other trend is a function of single events.
    fn event_local(&self) -> bool {
        self.keys(Scope::Person).is_empty()
            && !self
                .config
                .series
                .iter()
                .any(|s| matches!(s.math, Math::PerActor(_)))
    }

    fn event_pass(&self, row: &EventRow, out: &mut Vec<(Cell, Combine)>) {
        for (index, series) in self.config.series.iter().enumerate() {
            let index = index as i64;
            self.row_cells(series, row, &[], |bucket, breakdown, value| {
                let emitted = match series.math {
                    Math::Total => (Cell::new(&[index, bucket, breakdown]), Combine::Sum),
                    Math::Property { .. } => {
                        (Cell::new(&[index, bucket, breakdown, value]), Combine::Sum)
                    }
                    Math::Active { .. } if self.window_days(series).is_some() => {
                        (Cell::new(&[index, bucket, breakdown]), Combine::Actor)
                    }
                    Math::Dau | Math::Active { .. } => {
                        (Cell::new(&[index, bucket, breakdown]), Combine::Distinct)
                    }
                    Math::UniqueSession => (
                        Cell::new(&[index, bucket, breakdown, value]),
                        Combine::Distinct,
                    ),
                    // Not event-local (see `event_local`).
                    Math::PerActor(_) => return,
                };
                out.push(emitted);
            });
        }
    }
}

impl TrendsOperator {
    fn keys(&self, scope: Scope) -> Vec<String> {
        let mut keys = BTreeSet::new();
        for series in &self.config.series {
            keys.extend(series.node.keys(scope));
            if scope == Scope::Event {
                keys.extend(series.math.property().map(str::to_string));
            }
        }
        if let Some(b) = &self.config.breakdown {
            keys.extend(b.keys(scope));
        }
        keys.into_iter().collect()
    }

    /// One series over one person: cells `(bucket_s, breakdown, value) → count`, then emitted
    /// in the layout documented above.
    fn series_pass(
        &self,
        index: i64,
        series: &Series,
        person: &PersonView<'_>,
        out: &mut Vec<(Contribution, isize)>,
    ) {
        let windowed = self.window_days(series).is_some();
        let mut cells: BTreeMap<(i64, i64, i64), i64> = BTreeMap::new();
        for row in person.events.iter().copied() {
            self.row_cells(series, row, person.props, |bucket, breakdown, value| {
                if windowed {
                    cells.insert((bucket, breakdown, value), 1);
                } else {
                    *cells.entry((bucket, breakdown, value)).or_insert(0) += 1;
                }
            });
        }
        for ((bucket, breakdown, value), count) in cells {
            let (contribution, diff) = match series.math {
                Math::Active { .. } if windowed => {
                    (vec![index, bucket, breakdown, person.person as i64], 1)
                }
                Math::Total => (vec![index, bucket, breakdown], count),
                Math::Dau | Math::Active { .. } => (vec![index, bucket, breakdown], 1),
                Math::UniqueSession => (vec![index, bucket, breakdown, value], 1),
                Math::Property { .. } => (vec![index, bucket, breakdown, value], count),
                Math::PerActor(_) => (vec![index, bucket, breakdown, count], 1),
            };
            out.push((contribution, diff as isize));
        }
    }

    /// The trailing window of weekly/monthly active users, when this series has one.
    fn window_days(&self, series: &Series) -> Option<i64> {
        window_days(&self.config, series)
    }

    /// The cell `(bucket_s, breakdown, value)` one event counts in for one series, if any: none
    /// when it is out of range or filtered out. For weekly and monthly active users, `bucket_s`
    /// is the event's own bucket, and the aggregator spreads it over the trailing windows.
    fn row_cells(
        &self,
        series: &Series,
        row: &EventRow,
        props: &[(Sym, PropValue)],
        mut cell: impl FnMut(i64, i64, i64),
    ) {
        let config = &self.config;
        let range = &config.range;
        let interval = range.interval;
        let windowed = self.window_days(series);
        let in_range = match windowed {
            Some(days) => {
                row.ts_ms <= range.to_ms
                    && range
                        .from_ms
                        .is_none_or(|f| row.ts_ms + days * DAY_MS >= interval.truncate(f))
            }
            None => range.contains(row.ts_ms),
        };
        if !in_range || !series.node.matches(row, props) {
            return;
        }
        let breakdown = config
            .breakdown
            .as_ref()
            .and_then(|b| b.value(row, props))
            .map_or(-1, i64::from);
        if windowed.is_some() {
            cell(interval.truncate(row.ts_ms) / 1000, breakdown, 0);
            return;
        }
        let value = match &series.math {
            Math::Property { key_sym, .. } => {
                match row.prop(*key_sym).and_then(|v| v.as_f64(&self.interner)) {
                    Some(v) if v.is_finite() => ordered(v),
                    _ => NO_VALUE,
                }
            }
            Math::UniqueSession => self.session(row).map_or(NO_VALUE, i64::from),
            _ => 0,
        };
        let bucket = if config.total_value {
            0
        } else {
            interval.truncate(row.ts_ms) / 1000
        };
        cell(bucket, breakdown, value);
    }

    /// The event's `$session_id` as a symbol.
    fn session(&self, row: &EventRow) -> Option<Sym> {
        match row.prop(self.session_key)? {
            PropValue::Str(sym) if self.interner.resolve(sym).is_empty() => None,
            PropValue::Str(sym) => Some(sym),
            other => Some(self.interner.intern(&other.to_text(&self.interner))),
        }
    }
}

/// Whether weekly/monthly active use a trailing window on this interval (day and shorter).
fn interval_windows(interval: Interval) -> bool {
    matches!(interval, Interval::Minute | Interval::Hour | Interval::Day)
}

/// The trailing window in days of a weekly/monthly active series, when it has one.
pub(crate) fn window_days(config: &TrendsConfig, series: &Series) -> Option<i64> {
    match series.math {
        Math::Active { days } if !config.total_value && interval_windows(config.range.interval) => {
            Some(days)
        }
        _ => None,
    }
}

/// The in-range bucket starts (ms) whose trailing `days`-day window, ending at the bucket's
/// end, holds `ts_ms`. Windows are whole days and the interval divides a day, so an event's
/// bucket start gives the same buckets as its exact time.
pub(crate) fn window_buckets(
    ts_ms: i64,
    days: i64,
    range: &crate::query::DateRange,
) -> impl Iterator<Item = i64> + '_ {
    let interval = range.interval;
    let first = range.from_ms.map(|f| interval.truncate(f));
    let last = interval.truncate(range.to_ms);
    let mut bucket = interval.truncate(ts_ms);
    if let Some(first) = first {
        // Skip straight to the range: buckets before it are never shown.
        bucket = bucket.max(first);
    }
    std::iter::from_fn(move || {
        let end = interval.add(bucket, 1);
        if bucket > last || end > ts_ms + days * DAY_MS {
            return None;
        }
        let current = bucket;
        bucket = end;
        Some(current)
    })
}
