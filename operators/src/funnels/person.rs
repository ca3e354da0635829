//! The per-person pass: reduce a person's history to funnel events, run the attempts once per
//! breakdown value the attribution asks for, and emit one small contribution per outcome.

use quill_pipeline::graph::{Contribution, PersonView, Sym};

use crate::query::Scope;

use super::attempts::{attempts, best_attempt, winner, Attempt, FunnelEvent, Order};
use super::config::{Attribution, FunnelConfig, Viz};

/// The breakdown slot of a contribution when the value is null or there is no breakdown.
pub const NULL_VALUE: i64 = -1;

fn encode(value: Option<Sym>) -> i64 {
    value.map_or(NULL_VALUE, i64::from)
}

/// A person's funnel events with each one's breakdown value.
struct Reduced {
    events: Vec<FunnelEvent>,
    values: Vec<Option<Sym>>,
}

impl Reduced {
    fn subset(&self, keep: impl Fn(usize) -> bool) -> Reduced {
        let idx: Vec<usize> = (0..self.events.len()).filter(|&i| keep(i)).collect();
        Reduced {
            events: idx.iter().map(|&i| self.events[i]).collect(),
            values: idx.iter().map(|&i| self.values[i]).collect(),
        }
    }
}

fn reduce(cfg: &FunnelConfig, person: &PersonView<'_>) -> Reduced {
    let mut events = Vec::new();
    let mut values = Vec::new();
    for row in person.events.iter().copied() {
        if !cfg.range.contains(row.ts_ms) {
            continue;
        }
        let mut steps = 0u64;
        for (i, node) in cfg.steps.iter().enumerate() {
            if node.matches(row, person.props) {
                steps |= 1 << i;
            }
        }
        let mut exclusions = 0u64;
        for (j, node) in cfg.exclusions.iter().enumerate() {
            if node.matches(row, person.props) {
                exclusions |= 1 << j;
            }
        }
        // Strict funnels see every event, because any event can break a sequence; the others
        // only need the events that match something.
        let keep = if cfg.shape.order == Order::Strict {
            cfg.global.matches(row, person.props)
        } else {
            steps != 0 || exclusions != 0
        };
        if keep {
            events.push(FunnelEvent {
                ts: row.ts_ms,
                steps,
                exclusions,
            });
            values.push(
                cfg.breakdown
                    .as_ref()
                    .and_then(|b| b.value(row, person.props)),
            );
        }
    }
    Reduced { events, values }
}

/// Emits the person's contributions (layout in the module docs of `funnels`).
pub fn pass(cfg: &FunnelConfig, person: &PersonView<'_>, out: &mut Vec<(Contribution, isize)>) {
    let reduced = reduce(cfg, person);
    if reduced.events.is_empty() {
        return;
    }
    let Some(breakdown) = &cfg.breakdown else {
        emit(cfg, &reduced, |_| NULL_VALUE, out);
        return;
    };
    if breakdown.scope == Scope::Person {
        // Every row carries the same person value.
        let value = reduced.values[0];
        emit(cfg, &reduced, |_| encode(value), out);
        return;
    }
    let touched = || {
        (0..reduced.events.len())
            .filter(|&i| reduced.events[i].steps != 0)
            .filter_map(|i| reduced.values[i])
    };
    match cfg.attribution {
        Attribution::FirstTouch => {
            let value = touched().next();
            emit(cfg, &reduced, |_| encode(value), out);
        }
        Attribution::LastTouch => {
            let value = touched().next_back();
            emit(cfg, &reduced, |_| encode(value), out);
        }
        Attribution::Step(step) => {
            emit(
                cfg,
                &reduced,
                |a: &Attempt| {
                    a.positions
                        .get(step)
                        .map_or(NULL_VALUE, |&p| encode(reduced.values[p]))
                },
                out,
            );
        }
        Attribution::AllEvents => {
            let mut distinct: Vec<Option<Sym>> = reduced.values.clone();
            distinct.sort_unstable();
            distinct.dedup();
            for value in distinct {
                let subset = reduced.subset(|i| reduced.values[i] == value);
                emit(cfg, &subset, |_| encode(value), out);
            }
        }
    }
}

/// Runs the attempts over `reduced` and emits per the visualization; `value_of` gives the
/// breakdown slot for the deciding attempt.
fn emit(
    cfg: &FunnelConfig,
    reduced: &Reduced,
    value_of: impl Fn(&Attempt) -> i64,
    out: &mut Vec<(Contribution, isize)>,
) {
    let events = &reduced.events;
    match cfg.viz {
        Viz::Steps => {
            if let Some(best) = best_attempt(events, &cfg.shape) {
                let times = best.times(events);
                let mut c = Vec::with_capacity(times.len() + 1);
                c.push(value_of(&best));
                c.push(best.depth() as i64);
                c.extend(times.windows(2).map(|w| w[1] - w[0]));
                out.push((c, 1));
            }
        }
        Viz::TimeToConvert { from, to, .. } => {
            if let Some(best) = best_attempt(events, &cfg.shape).filter(|a| a.depth() >= to) {
                let times = best.times(events);
                out.push((vec![times[to] - times[from]], 1));
            }
        }
        Viz::Trends { .. } => {
            // One outcome per interval in which the person started an attempt.
            let all = attempts(events, &cfg.shape);
            let interval = cfg.range.interval;
            let mut buckets: Vec<i64> = all
                .iter()
                .map(|a| interval.truncate(events[a.start].ts))
                .collect();
            buckets.dedup();
            for bucket in buckets {
                let in_bucket = all
                    .iter()
                    .filter(|a| interval.truncate(events[a.start].ts) == bucket);
                if let Some(best) = winner(in_bucket) {
                    out.push((vec![value_of(best), bucket, best.depth() as i64], 1));
                }
            }
        }
    }
}
