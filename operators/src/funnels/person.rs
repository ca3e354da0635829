//! The per-person pass: reduce a person's history to funnel events, run the attempts once per
//! breakdown value the attribution asks for, and emit one small contribution per outcome.

use quill_pipeline::graph::{Contribution, EventRow, Memo, PersonView, PropValue, Sym};

use crate::query::Scope;

use super::attempts::{attempts, best_attempt, winner, Attempt, FunnelEvent, Order};
use super::config::{Attribution, FunnelConfig, Viz};

/// The breakdown slot of a contribution when the value is null or there is no breakdown.
pub const NULL_VALUE: i64 = -1;

fn encode(value: Option<Sym>) -> i64 {
    value.map_or(NULL_VALUE, i64::from)
}

/// A person's funnel events with each one's breakdown value and `(ts, offset)` key.
struct Reduced {
    events: Vec<FunnelEvent>,
    values: Vec<Option<Sym>>,
    keys: Vec<(i64, u64)>,
}

impl Reduced {
    fn subset(&self, keep: impl Fn(usize) -> bool) -> Reduced {
        let idx: Vec<usize> = (0..self.events.len()).filter(|&i| keep(i)).collect();
        Reduced {
            events: idx.iter().map(|&i| self.events[i]).collect(),
            values: idx.iter().map(|&i| self.values[i]).collect(),
            keys: idx.iter().map(|&i| self.keys[i]).collect(),
        }
    }
}

/// The row as a funnel event, or `None` when the funnel does not see it at all.
pub fn funnel_event(
    cfg: &FunnelConfig,
    row: &EventRow,
    props: &[(Sym, PropValue)],
) -> Option<FunnelEvent> {
    if !cfg.range.contains(row.ts_ms) {
        return None;
    }
    let mut steps = 0u64;
    for (i, node) in cfg.steps.iter().enumerate() {
        if node.matches(row, props) {
            steps |= 1 << i;
        }
    }
    let mut exclusions = 0u64;
    for (j, node) in cfg.exclusions.iter().enumerate() {
        if node.matches(row, props) {
            exclusions |= 1 << j;
        }
    }
    // Strict funnels see every event, because any event can break a sequence; the others
    // only need the events that match something.
    let keep = if cfg.shape.order == Order::Strict {
        cfg.global.matches(row, props)
    } else {
        steps != 0 || exclusions != 0
    };
    keep.then_some(FunnelEvent {
        ts: row.ts_ms,
        steps,
        exclusions,
    })
}

fn reduce(cfg: &FunnelConfig, person: &PersonView<'_>) -> Reduced {
    // Sized for the whole history up front: growing three vectors by doubling was a third of
    // the funnels' time in a replay (allocator calls).
    let n = person.events.len();
    let mut reduced = Reduced {
        events: Vec::with_capacity(n),
        values: Vec::with_capacity(n),
        keys: Vec::with_capacity(n),
    };
    for row in person.events.iter().copied() {
        if let Some(event) = funnel_event(cfg, row, person.props) {
            reduced.events.push(event);
            reduced.values.push(
                cfg.breakdown
                    .as_ref()
                    .and_then(|b| b.value(row, person.props)),
            );
            reduced.keys.push((row.ts_ms, row.offset));
        }
    }
    reduced
}

/// The memo of a person whose result any relevant event may change.
pub const NO_HORIZON: Memo = [i64::MAX, i64::MAX, i64::MAX, i64::MAX];

/// Emits the person's contributions (layout in the module docs of `funnels`) and returns the
/// memo: `[horizon ts, horizon offset, tail ts, tail offset]`.
///
/// The *horizon* is the `(ts, offset)` key of the last event the result depends on, when later
/// events cannot change it. That holds when the deciding attempt reached the last step and the
/// breakdown value cannot move: a later attempt reaches the last step later, an exclusion only
/// counts between the deciding attempt's own steps, and the first touch (or a step's value) is
/// already fixed.
///
/// The *tail* is the key of the person's last funnel event, when the person has a deciding
/// attempt and its breakdown value cannot move. An event after the tail that matches no step
/// but the first (and no exclusion) only starts a new attempt of depth zero, or breaks a strict
/// attempt that has already reached its depth: the deciding attempt stays. Unordered funnels,
/// where a first-step event can complete any attempt, keep no tail.
///
/// A last-touch or all-events breakdown, or funnel trends, keep neither.
pub fn pass(
    cfg: &FunnelConfig,
    person: &PersonView<'_>,
    out: &mut Vec<(Contribution, isize)>,
) -> Memo {
    let reduced = reduce(cfg, person);
    if reduced.events.is_empty() {
        return NO_HORIZON;
    }
    let full = |best: &Option<Attempt>| {
        best.as_ref()
            .filter(|a| a.depth() + 1 == cfg.shape.steps)
            .map(|a| reduced.keys[a.reached_at()])
    };
    let tail = |best: &Option<Attempt>| {
        best.as_ref()
            .filter(|_| cfg.shape.order != Order::Unordered)
            .and_then(|_| reduced.keys.last().copied())
    };
    let memo = |horizon: Option<(i64, u64)>, tail: Option<(i64, u64)>| {
        let [h_ts, h_off] = horizon.map_or([i64::MAX; 2], |(ts, o)| [ts, o as i64]);
        let [t_ts, t_off] = tail.map_or([i64::MAX; 2], |(ts, o)| [ts, o as i64]);
        [h_ts, h_off, t_ts, t_off]
    };
    let Some(breakdown) = &cfg.breakdown else {
        let best = emit(cfg, &reduced, |_| NULL_VALUE, out);
        return memo(full(&best), tail(&best));
    };
    if breakdown.scope == Scope::Person {
        // Every row carries the same person value.
        let value = reduced.values[0];
        let best = emit(cfg, &reduced, |_| encode(value), out);
        return memo(full(&best), tail(&best));
    }
    let touched = || {
        (0..reduced.events.len())
            .filter(|&i| reduced.events[i].steps != 0)
            .filter(|&i| reduced.values[i].is_some())
    };
    match cfg.attribution {
        Attribution::FirstTouch => {
            let first = touched().next();
            let value = first.and_then(|i| reduced.values[i]);
            let best = emit(cfg, &reduced, |_| encode(value), out);
            // Until some step event carries a value, a later one would become the first.
            let first_key = first.map(|i| reduced.keys[i]);
            let tail = tail(&best).filter(|_| first_key.is_some());
            memo(full(&best).zip(first_key).map(|(a, b)| a.max(b)), tail)
        }
        Attribution::LastTouch => {
            let value = touched().next_back().and_then(|i| reduced.values[i]);
            emit(cfg, &reduced, |_| encode(value), out);
            NO_HORIZON
        }
        Attribution::Step(step) => {
            let best = emit(
                cfg,
                &reduced,
                |a: &Attempt| {
                    a.positions
                        .get(step)
                        .map_or(NULL_VALUE, |&p| encode(reduced.values[p]))
                },
                out,
            );
            memo(full(&best), tail(&best))
        }
        Attribution::AllEvents => {
            let mut distinct: Vec<Option<Sym>> = reduced.values.clone();
            distinct.sort_unstable();
            distinct.dedup();
            for value in distinct {
                let subset = reduced.subset(|i| reduced.values[i] == value);
                emit(cfg, &subset, |_| encode(value), out);
            }
            NO_HORIZON
        }
    }
}

/// Whether adding `row` to a history whose [`pass`] returned `memo` changes nothing.
/// `reads_person` says whether the funnel's filters read person properties, which the row
/// alone cannot answer.
pub fn unaffected(cfg: &FunnelConfig, memo: &Memo, row: &EventRow, reads_person: bool) -> bool {
    let key = (row.ts_ms, row.offset as i64);
    if key > (memo[0], memo[1]) {
        return true;
    }
    if reads_person {
        return false;
    }
    match funnel_event(cfg, row, &[]) {
        None => true,
        Some(e) => key > (memo[2], memo[3]) && e.exclusions == 0 && e.steps & !1 == 0,
    }
}

/// Runs the attempts over `reduced` and emits per the visualization; `value_of` gives the
/// breakdown slot for the deciding attempt, which is returned (none for funnel trends).
fn emit(
    cfg: &FunnelConfig,
    reduced: &Reduced,
    value_of: impl Fn(&Attempt) -> i64,
    out: &mut Vec<(Contribution, isize)>,
) -> Option<Attempt> {
    let events = &reduced.events;
    match cfg.viz {
        Viz::Steps => {
            let best = best_attempt(events, &cfg.shape)?;
            let times = best.times(events);
            let mut c = Vec::with_capacity(times.len() + 1);
            c.push(value_of(&best));
            c.push(best.depth() as i64);
            c.extend(times.windows(2).map(|w| w[1] - w[0]));
            out.push((c, 1));
            Some(best)
        }
        Viz::TimeToConvert { from, to, .. } => {
            let best = best_attempt(events, &cfg.shape)?;
            if best.depth() >= to {
                let times = best.times(events);
                out.push((vec![times[to] - times[from]], 1));
            }
            Some(best)
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
            None
        }
    }
}
