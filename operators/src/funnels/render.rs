//! Rendering funnel state into PostHog's `results` shapes.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::query::breakdown::rank;
use crate::query::BREAKDOWN_OTHER;

use super::aggregate::{add_count, Multiset, StepsState};
use super::attempts::Order;
use super::config::FunnelConfig;
use super::person::NULL_VALUE;

/// A breakdown slot's display text.
pub fn value_text(cfg: &FunnelConfig, value: i64) -> String {
    let sym = u32::try_from(value).ok().filter(|_| value != NULL_VALUE);
    match &cfg.breakdown {
        Some(b) => b.text(sym),
        None => String::new(),
    }
}

/// Ranks breakdown values by `total` and folds those past the limit: returns the kept texts in
/// rank order plus Other, each with the slots it gathers.
fn fold_values(cfg: &FunnelConfig, totals: &BTreeMap<i64, f64>) -> Vec<(String, Vec<i64>)> {
    let limit = cfg.breakdown.as_ref().map_or(usize::MAX, |b| b.limit);
    let mut by_text: BTreeMap<String, (f64, Vec<i64>)> = BTreeMap::new();
    for (&value, &total) in totals {
        let entry = by_text.entry(value_text(cfg, value)).or_default();
        entry.0 += total;
        entry.1.push(value);
    }
    let ranked: Vec<(String, f64)> = by_text.iter().map(|(t, (n, _))| (t.clone(), *n)).collect();
    let (kept, folded) = rank(&ranked, limit);
    let mut out: Vec<(String, Vec<i64>)> = kept
        .into_iter()
        .map(|t| {
            let slots = by_text.get(&t).map(|e| e.1.clone()).unwrap_or_default();
            (t, slots)
        })
        .collect();
    if !folded.is_empty() {
        let slots = folded
            .iter()
            .filter_map(|t| by_text.get(t))
            .flat_map(|e| e.1.iter().copied())
            .collect();
        out.push((BREAKDOWN_OTHER.to_string(), slots));
    }
    out
}

fn seconds(ms: Option<f64>) -> Value {
    ms.map_or(Value::Null, |ms| json!(ms / 1000.0))
}

fn steps_list(cfg: &FunnelConfig, state: &StepsState, breakdown: Option<&str>) -> Vec<Value> {
    (0..cfg.steps.len())
        .map(|i| {
            let times = i.checked_sub(1).and_then(|k| state.times.get(k));
            let unordered = cfg.shape.order == Order::Unordered;
            let node = &cfg.steps[i];
            let name = if unordered {
                format!("Completed {} step{}", i + 1, if i == 0 { "" } else { "s" })
            } else {
                node.display_name()
            };
            let mut step = json!({
                "action_id": if unordered { None } else { node.event.clone() },
                "name": name,
                "custom_name": if unordered { None } else { node.custom_name.clone() },
                "order": i,
                "people": [],
                "count": state.reached(i),
                "type": "events",
                "average_conversion_time": seconds(times.and_then(Multiset::mean)),
                "median_conversion_time": seconds(times.and_then(Multiset::median)),
            });
            if let (Some(text), Some(obj)) = (breakdown, step.as_object_mut()) {
                obj.insert("breakdown".into(), json!([text]));
                obj.insert("breakdown_value".into(), json!([text]));
            }
            step
        })
        .collect()
}

/// Steps: a flat list, or one list per breakdown value ranked by their step-0 counts.
pub fn steps(cfg: &FunnelConfig, states: &BTreeMap<i64, StepsState>) -> Value {
    // Rendered after every round: borrow the states, because a clone or merge copies every
    // distinct conversion time (a fifth of a core at 10M events, perf, session 6).
    if cfg.breakdown.is_none() {
        let empty = StepsState::default();
        let state = states.get(&NULL_VALUE).unwrap_or(&empty);
        return Value::Array(steps_list(cfg, state, None));
    }
    let totals = states
        .iter()
        .map(|(&v, s)| (v, s.reached(0) as f64))
        .collect();
    let lists = fold_values(cfg, &totals)
        .into_iter()
        .map(|(text, slots)| {
            let state = match slots.as_slice() {
                [one] => states.get(one).map(Cow::Borrowed),
                _ => None,
            };
            let state = state.unwrap_or_else(|| {
                let mut merged = StepsState::default();
                for slot in &slots {
                    if let Some(s) = states.get(slot) {
                        merged.merge(s);
                    }
                }
                Cow::Owned(merged)
            });
            Value::Array(steps_list(cfg, &state, Some(&text)))
        })
        .collect();
    Value::Array(lists)
}

/// Trends: per breakdown value, the conversion rate per interval of the attempt start.
/// `cells` maps (value, bucket start) to persons per depth.
pub fn trends(
    cfg: &FunnelConfig,
    cells: &BTreeMap<(i64, i64), BTreeMap<usize, i64>>,
    from: usize,
    to: usize,
) -> Value {
    let earliest = cells.keys().map(|&(_, bucket)| bucket).min();
    let bounds = cfg.range.bounds(earliest);
    let buckets = bounds.bucket_starts();
    let days: Vec<String> = buckets.iter().map(|&b| bounds.day_string(b)).collect();
    let labels: Vec<String> = buckets.iter().map(|&b| bounds.label(b)).collect();
    let reached = |depths: &BTreeMap<usize, i64>, step: usize| -> i64 {
        depths.range(step..).map(|(_, c)| c).sum()
    };
    let series = |slots: &[i64]| -> Vec<f64> {
        buckets
            .iter()
            .map(|&bucket| {
                let mut depths = BTreeMap::new();
                for &slot in slots {
                    for (&d, &c) in cells.get(&(slot, bucket)).into_iter().flatten() {
                        add_count(&mut depths, d, c);
                    }
                }
                let (f, t) = (reached(&depths, from), reached(&depths, to));
                if f > 0 {
                    let percent = t as f64 / f as f64 * 100.0;
                    (percent * 100.0).round() / 100.0
                } else {
                    0.0
                }
            })
            .collect()
    };
    let entry =
        |data: Vec<f64>| json!({"count": data.len(), "data": data, "days": days, "labels": labels});
    if cfg.breakdown.is_none() {
        return json!([entry(series(&[NULL_VALUE]))]);
    }
    let mut totals: BTreeMap<i64, f64> = BTreeMap::new();
    for (&(value, _), depths) in cells {
        *totals.entry(value).or_default() += reached(depths, from) as f64;
    }
    let out = fold_values(cfg, &totals)
        .into_iter()
        .map(|(text, slots)| {
            let mut e = entry(series(&slots));
            if let Some(obj) = e.as_object_mut() {
                obj.insert("breakdown_value".into(), json!([text]));
            }
            e
        })
        .collect();
    Value::Array(out)
}

/// Smallest `k ≥ 1` with `k³ ≥ n`.
fn cube_root_ceil(n: i64) -> i64 {
    let mut k = 1;
    while k * k * k < n {
        k += 1;
    }
    k
}

/// Time to convert: a histogram of conversion times (seconds) with `bins + 1` bin starts.
pub fn time_to_convert(times: &Multiset, bins: Option<i64>) -> Value {
    let (Some(min_ms), Some(max_ms), Some(mean_ms)) = (times.min(), times.max(), times.mean())
    else {
        return json!({"bins": [], "average_conversion_time": null});
    };
    let bins = bins.unwrap_or_else(|| cube_root_ceil(times.len()).min(60));
    let low = min_ms.div_euclid(1000);
    let high = -(-max_ms).div_euclid(1000);
    let width = match (high - low + bins - 1) / bins {
        0 => 60,
        w => w,
    };
    let mut counts = vec![0i64; (bins + 1) as usize];
    for (ms, count) in times.iter() {
        let index = ((ms - low * 1000) / (width * 1000)).clamp(0, bins) as usize;
        counts[index] += count;
    }
    let bins: Vec<Value> = counts
        .iter()
        .enumerate()
        .map(|(i, c)| json!([low + i as i64 * width, c]))
        .collect();
    json!({"bins": bins, "average_conversion_time": mean_ms / 1000.0})
}
