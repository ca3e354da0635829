//! Funnels (`FunnelsQuery`): persons moving through ordered, strict or unordered steps within
//! a conversion window.
//!
//! **Input → output.** Per person, the history inside the resolved date range is reduced to
//! funnel events (timestamp, bitmask of matched steps, bitmask of matched exclusions) and the
//! attempts are computed ([`attempts`] states the semantics). The deciding attempt becomes one
//! contribution per person (per breakdown value for `all_events`, per interval for trends); the
//! aggregator counts persons per furthest step and keeps conversion times as multisets, then
//! renders PostHog's `results`.
//!
//! **Contribution layouts** (`value` is the interned breakdown string, `-1` for null or no
//! breakdown):
//! - `steps`: `[value, furthest_step, t1 - t0, t2 - t1, ...]` with one ms delta per step
//!   reached after the first.
//! - `trends`: `[value, interval_start_ms, furthest_step]`, one per interval of the attempt
//!   start in which the person started an attempt.
//! - `time_to_convert`: `[t_to - t_from]` in ms, for persons reaching `funnelToStep`.
//!
//! **State and cost.** The per-person pass is O(events × steps). The aggregator keeps counts
//! per (value, depth) and per-step multisets of conversion times (`BTreeMap` value → count), so
//! retractions (diff −1) undo additions exactly and medians stay exact.
//!
//! **Dates.** Only events inside the date range count, for every step: a step completed after
//! `date_to` is not counted, as in PostHog's query, which filters all funnel events by the range.

mod aggregate;
pub mod attempts;
mod config;
mod person;
mod render;

use std::collections::BTreeMap;
use std::sync::Arc;

use quill_pipeline::event::ProjectId;
use quill_pipeline::graph::{
    Aggregator, BuildContext, Contribution, EventRow, InsightOperator, Memo, PersonView,
};

use crate::query::Scope;
use crate::QueryError;

use aggregate::{add_count, Multiset, StepsState};
use config::{FunnelConfig, Viz};

/// Builds the operator for a `FunnelsQuery`.
pub fn build(
    query: &serde_json::Value,
    ctx: &BuildContext,
) -> Result<Arc<dyn InsightOperator>, QueryError> {
    let config = config::parse(query, ctx)?;
    let mut op = FunnelsOperator {
        config: Arc::new(config),
        project: ctx.project,
        reads_person: true,
    };
    op.reads_person = !op.keys(Scope::Person).is_empty();
    Ok(Arc::new(op))
}

/// The funnels operator.
struct FunnelsOperator {
    config: Arc<FunnelConfig>,
    project: ProjectId,
    /// Whether any filter reads person properties (then a row alone cannot say it is irrelevant).
    reads_person: bool,
}

impl FunnelsOperator {
    fn keys(&self, scope: Scope) -> Vec<String> {
        let cfg = &self.config;
        let mut keys: Vec<String> = cfg
            .steps
            .iter()
            .chain(&cfg.exclusions)
            .flat_map(|node| node.keys(scope))
            .chain(cfg.global.keys(scope))
            .chain(cfg.breakdown.iter().flat_map(|b| b.keys(scope)))
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }
}

impl InsightOperator for FunnelsOperator {
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
        person::pass(&self.config, person, out);
    }

    fn person_pass_memo(
        &self,
        person: &PersonView<'_>,
        out: &mut Vec<(Contribution, isize)>,
    ) -> Option<Memo> {
        Some(person::pass(&self.config, person, out))
    }

    fn resolved_bounds(&self) -> Option<Vec<i64>> {
        Some(self.config.range.resolved())
    }

    fn unaffected(&self, memo: &Memo, row: &EventRow) -> bool {
        person::unaffected(&self.config, memo, row, self.reads_person)
    }

    fn aggregator(&self) -> Box<dyn Aggregator> {
        Box::new(FunnelsAggregator {
            config: self.config.clone(),
            steps: BTreeMap::new(),
            trends: BTreeMap::new(),
            times: Multiset::default(),
        })
    }
}

/// Folds funnel contributions; which map fills depends on the visualization.
struct FunnelsAggregator {
    config: Arc<FunnelConfig>,
    steps: BTreeMap<i64, StepsState>,
    trends: BTreeMap<(i64, i64), BTreeMap<usize, i64>>,
    times: Multiset,
}

impl Aggregator for FunnelsAggregator {
    fn apply(&mut self, c: &[i64], diff: isize) {
        let diff = diff as i64;
        match self.config.viz {
            Viz::Steps => {
                let [value, depth, deltas @ ..] = c else {
                    return;
                };
                let state = self.steps.entry(*value).or_default();
                state.add(*depth as usize, deltas, diff);
                if state.is_empty() {
                    self.steps.remove(value);
                }
            }
            Viz::Trends { .. } => {
                let [value, bucket, depth] = c else { return };
                let cell = self.trends.entry((*value, *bucket)).or_default();
                add_count(cell, *depth as usize, diff);
                if cell.is_empty() {
                    self.trends.remove(&(*value, *bucket));
                }
            }
            Viz::TimeToConvert { .. } => {
                if let [ms] = c {
                    self.times.add(*ms, diff);
                }
            }
        }
    }

    fn render(&self) -> serde_json::Value {
        let cfg = &self.config;
        match cfg.viz {
            Viz::Steps => render::steps(cfg, &self.steps),
            Viz::Trends { from, to } => render::trends(cfg, &self.trends, from, to),
            Viz::TimeToConvert { bins, .. } => render::time_to_convert(&self.times, bins),
        }
    }
}
