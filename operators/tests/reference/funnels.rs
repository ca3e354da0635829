//! Reference funnels, computed the slow and obvious way from raw events.
//!
//! Per person: keep the events inside the date range that pass the global filters; try every
//! possible start event as an attempt and walk forward event by event (ordered: the first later
//! event matching the next step; strict: the very next event, repeats of the current step
//! passed over; unordered: for each step the first matching event from the anchor on, sorted);
//! check every exclusion by scanning the events between the attempt's steps. The deepest
//! attempt decides; among equally deep ones the earliest to get there (ties: the later start)
//! that is not excluded; a person whose deepest attempts are all excluded is dropped.
//!
//! Supported inputs (what the tests generate): `dateRange` with `YYYY-MM-DD` bounds (whole
//! days), day intervals, step / exclusion / query `properties` as lists of event filters with
//! the `exact` operator and a scalar value, an event-property `breakdownFilter`, and every
//! `funnelsFilter` option.
// Index loops read closest to the definition: positions are what the chains hold.
#![allow(clippy::needless_range_loop)]

use std::collections::BTreeMap;

use chrono::{NaiveDate, TimeZone, Utc};
use serde_json::{json, Value};

use super::RefEvent;

const NULL_LABEL: &str = "$$_posthog_breakdown_null_$$";
const OTHER_LABEL: &str = "$$_posthog_breakdown_other_$$";
const DAY: i64 = 86_400_000;

/// A step or exclusion: an event name (None = any) and exact-match filters.
struct Matcher {
    event: Option<String>,
    filters: Vec<(String, String)>,
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => {
            let f = n.as_f64().unwrap();
            Some(if f.fract() == 0.0 && f.abs() < 1e15 {
                format!("{}", f as i64)
            } else {
                format!("{f}")
            })
        }
        other => Some(other.to_string()),
    }
}

fn filters(v: Option<&Value>) -> Vec<(String, String)> {
    v.and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|f| {
                    (
                        f["key"].as_str().unwrap().to_string(),
                        text(&f["value"]).unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn passes(e: &RefEvent, filters: &[(String, String)]) -> bool {
    filters
        .iter()
        .all(|(k, v)| e.properties.get(k).and_then(text).as_deref() == Some(v.as_str()))
}

impl Matcher {
    fn parse(node: &Value) -> Matcher {
        Matcher {
            event: node["event"].as_str().map(str::to_string),
            filters: filters(node.get("properties")),
        }
    }

    fn matches(&self, e: &RefEvent) -> bool {
        self.event.as_ref().is_none_or(|name| *name == e.event) && passes(e, &self.filters)
    }
}

struct Funnel {
    steps: Vec<Matcher>,
    exclusions: Vec<(Matcher, usize, usize)>,
    order: String,
    window: i64,
}

struct Attempt {
    start: usize,
    chain: Vec<usize>,
    excluded: bool,
}

fn attempt_from(f: &Funnel, ev: &[&RefEvent], i: usize) -> Option<Vec<usize>> {
    let n = f.steps.len();
    let in_window = |j: usize| ev[j].ts_ms - ev[i].ts_ms <= f.window;
    match f.order.as_str() {
        "unordered" => {
            let mut chain: Vec<usize> = (0..n)
                .filter_map(|s| (i..ev.len()).find(|&j| f.steps[s].matches(ev[j]) && in_window(j)))
                .collect();
            if chain.is_empty() || !(0..n).any(|s| f.steps[s].matches(ev[i])) {
                return None;
            }
            chain.sort();
            Some(chain)
        }
        "strict" => {
            if !f.steps[0].matches(ev[i]) {
                return None;
            }
            let mut chain = vec![i];
            for j in i + 1..ev.len() {
                let level = chain.len() - 1;
                if level == n - 1 || !in_window(j) {
                    break;
                }
                if f.steps[level + 1].matches(ev[j]) {
                    chain.push(j);
                } else if !f.steps[level].matches(ev[j]) {
                    break;
                }
            }
            Some(chain)
        }
        _ => {
            if !f.steps[0].matches(ev[i]) {
                return None;
            }
            let mut chain = vec![i];
            for j in i + 1..ev.len() {
                let level = chain.len() - 1;
                if level == n - 1 || !in_window(j) {
                    break;
                }
                if f.steps[level + 1].matches(ev[j]) {
                    chain.push(j);
                }
            }
            Some(chain)
        }
    }
}

fn excluded(f: &Funnel, ev: &[&RefEvent], chain: &[usize]) -> bool {
    let depth = chain.len() - 1;
    let start = chain[0];
    f.exclusions.iter().any(|(m, from, to)| {
        if depth < *from {
            return false;
        }
        (chain[*from] + 1..ev.len()).any(|j| {
            let inside = if depth >= *to {
                j < chain[*to]
            } else {
                ev[j].ts_ms - ev[start].ts_ms <= f.window
            };
            inside && m.matches(ev[j])
        })
    })
}

fn all_attempts(f: &Funnel, ev: &[&RefEvent]) -> Vec<Attempt> {
    (0..ev.len())
        .filter_map(|i| {
            attempt_from(f, ev, i).map(|chain| Attempt {
                start: i,
                excluded: excluded(f, ev, &chain),
                chain,
            })
        })
        .collect()
}

fn best<'a>(attempts: &[&'a Attempt]) -> Option<&'a Attempt> {
    let depth = attempts.iter().map(|a| a.chain.len()).max()?;
    let mut deepest: Vec<&Attempt> = attempts
        .iter()
        .copied()
        .filter(|a| a.chain.len() == depth)
        .collect();
    deepest.sort_by_key(|a| (*a.chain.last().unwrap(), std::cmp::Reverse(a.start)));
    deepest.into_iter().find(|a| !a.excluded)
}

/// One person's deciding outcome: breakdown label, chain times.
struct Outcome {
    label: String,
    times: Vec<i64>,
    /// Start-day bucket (trends only).
    bucket: i64,
}

fn median(v: &mut [i64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort();
    let n = v.len();
    Some((v[(n - 1) / 2] as f64 + v[n / 2] as f64) / 2.0)
}

fn day_start(s: &str) -> i64 {
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap())
        .timestamp_millis()
}

/// PostHog's `results` for a `FunnelsQuery` over `events`.
pub fn funnels(events: &[RefEvent], query: &Value) -> Value {
    let ff = &query["funnelsFilter"];
    let series = query["series"].as_array().unwrap();
    let n = series.len();
    let unit = ff["funnelWindowIntervalUnit"].as_str().unwrap_or("day");
    let unit_ms = match unit {
        "second" => 1_000,
        "minute" => 60_000,
        "hour" => 3_600_000,
        "day" => DAY,
        "week" => 7 * DAY,
        "month" => 31 * DAY,
        _ => panic!("unit"),
    };
    let f = Funnel {
        steps: series.iter().map(Matcher::parse).collect(),
        exclusions: ff["exclusions"]
            .as_array()
            .map(|xs| {
                xs.iter()
                    .map(|x| {
                        (
                            Matcher::parse(x),
                            x["funnelFromStep"].as_u64().unwrap() as usize,
                            x["funnelToStep"].as_u64().unwrap() as usize,
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
        order: ff["funnelOrderType"]
            .as_str()
            .unwrap_or("ordered")
            .to_string(),
        window: ff["funnelWindowInterval"].as_i64().unwrap_or(14) * unit_ms,
    };
    let global = filters(query.get("properties"));
    let from_ms = day_start(query["dateRange"]["date_from"].as_str().unwrap());
    let to_ms = day_start(query["dateRange"]["date_to"].as_str().unwrap()) + DAY - 1;
    let bd_key = query["breakdownFilter"]["breakdown"].as_str();
    let limit = query["breakdownFilter"]["breakdown_limit"]
        .as_u64()
        .unwrap_or(25) as usize;
    let attribution = ff["breakdownAttributionType"]
        .as_str()
        .unwrap_or("first_touch");
    let attr_step = ff["breakdownAttributionValue"].as_u64().unwrap_or(0) as usize;
    let viz = ff["funnelVizType"].as_str().unwrap_or("steps");
    let from_step = ff["funnelFromStep"].as_u64().unwrap_or(0) as usize;
    let to_step = ff["funnelToStep"].as_u64().map_or(n - 1, |v| v as usize);

    let label_of = |e: &RefEvent| -> Option<String> {
        bd_key
            .and_then(|k| e.properties.get(k))
            .and_then(text)
            .filter(|s| !s.is_empty())
    };
    let lbl = |v: Option<String>| v.unwrap_or_else(|| NULL_LABEL.to_string());

    let mut persons: BTreeMap<u64, Vec<&RefEvent>> = BTreeMap::new();
    for e in events {
        if e.ts_ms >= from_ms && e.ts_ms <= to_ms && passes(e, &global) {
            persons.entry(e.person).or_default().push(e);
        }
    }
    let mut outcomes: Vec<Outcome> = Vec::new();
    for evs in persons.values_mut() {
        evs.sort_by_key(|e| (e.ts_ms, e.offset));
        if f.order != "strict" {
            evs.retain(|e| {
                f.steps.iter().any(|m| m.matches(e)) || f.exclusions.iter().any(|x| x.0.matches(e))
            });
        }
        // The funnels to run: (events, fixed label or None when the step attribution decides).
        let mut runs: Vec<(Vec<&RefEvent>, Option<String>)> = Vec::new();
        let step_events: Vec<&RefEvent> = evs
            .iter()
            .copied()
            .filter(|e| f.steps.iter().any(|m| m.matches(e)))
            .collect();
        match (bd_key, attribution) {
            (None, _) => runs.push((evs.clone(), Some(String::new()))),
            (Some(_), "first_touch") => {
                let v = step_events.iter().find_map(|e| label_of(e));
                runs.push((evs.clone(), Some(lbl(v))));
            }
            (Some(_), "last_touch") => {
                let v = step_events.iter().rev().find_map(|e| label_of(e));
                runs.push((evs.clone(), Some(lbl(v))));
            }
            (Some(_), "all_events") => {
                let mut values: Vec<Option<String>> = evs.iter().map(|e| label_of(e)).collect();
                values.sort();
                values.dedup();
                for v in values {
                    let subset = evs.iter().copied().filter(|e| label_of(e) == v).collect();
                    runs.push((subset, Some(lbl(v))));
                }
            }
            (Some(_), _) => runs.push((evs.clone(), None)),
        }
        for (ev, fixed) in runs {
            let attempts = all_attempts(&f, &ev);
            let outcome = |a: &Attempt, bucket: i64| Outcome {
                label: fixed
                    .clone()
                    .unwrap_or_else(|| lbl(a.chain.get(attr_step).and_then(|&p| label_of(ev[p])))),
                times: a.chain.iter().map(|&p| ev[p].ts_ms).collect(),
                bucket,
            };
            if viz == "trends" {
                let mut days: Vec<i64> = attempts
                    .iter()
                    .map(|a| ev[a.start].ts_ms.div_euclid(DAY) * DAY)
                    .collect();
                days.dedup();
                for day in days {
                    let group: Vec<&Attempt> = attempts
                        .iter()
                        .filter(|a| ev[a.start].ts_ms.div_euclid(DAY) * DAY == day)
                        .collect();
                    if let Some(a) = best(&group) {
                        outcomes.push(outcome(a, day));
                    }
                }
            } else if let Some(a) = best(&attempts.iter().collect::<Vec<_>>()) {
                outcomes.push(outcome(a, 0));
            }
        }
    }

    match viz {
        "time_to_convert" => {
            time_to_convert(&outcomes, from_step, to_step, ff["binCount"].as_i64())
        }
        "trends" => trends(
            &outcomes,
            bd_key.is_some(),
            limit,
            from_ms,
            to_ms,
            from_step,
            to_step,
        ),
        _ => steps(&outcomes, &f, series, bd_key.is_some(), limit),
    }
}

/// Keeps the `limit` labels with the largest totals (ties by label) and the rest as Other.
fn top(totals: &BTreeMap<String, i64>, limit: usize) -> Vec<(String, Vec<String>)> {
    let mut order: Vec<(&String, &i64)> = totals.iter().collect();
    order.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let mut out: Vec<(String, Vec<String>)> = order
        .iter()
        .take(limit)
        .map(|(l, _)| ((*l).clone(), vec![(*l).clone()]))
        .collect();
    if order.len() > limit {
        out.push((
            OTHER_LABEL.to_string(),
            order[limit..].iter().map(|(l, _)| (*l).clone()).collect(),
        ));
    }
    out
}

fn steps(
    outcomes: &[Outcome],
    f: &Funnel,
    series: &[Value],
    breakdown: bool,
    limit: usize,
) -> Value {
    let n = f.steps.len();
    let list = |group: &[&Outcome], label: Option<&str>| -> Value {
        let mut out = Vec::new();
        for i in 0..n {
            let reached: Vec<&&Outcome> = group.iter().filter(|o| o.times.len() > i).collect();
            let (avg, med) = if i == 0 {
                (Value::Null, Value::Null)
            } else {
                let mut d: Vec<i64> = reached
                    .iter()
                    .map(|o| o.times[i] - o.times[i - 1])
                    .filter(|&d| d != 0)
                    .collect();
                if d.is_empty() {
                    (Value::Null, Value::Null)
                } else {
                    let avg = d.iter().sum::<i64>() as f64 / d.len() as f64 / 1000.0;
                    (json!(avg), json!(median(&mut d).unwrap() / 1000.0))
                }
            };
            let unordered = f.order == "unordered";
            let node = &series[i];
            let name = if unordered {
                if i == 0 {
                    "Completed 1 step".to_string()
                } else {
                    format!("Completed {} steps", i + 1)
                }
            } else {
                node["name"]
                    .as_str()
                    .or(node["event"].as_str())
                    .unwrap_or("All events")
                    .to_string()
            };
            let mut step = json!({
                "action_id": if unordered { Value::Null } else { node["event"].clone() },
                "name": name,
                "custom_name": if unordered { Value::Null } else { node.get("custom_name").cloned().unwrap_or(Value::Null) },
                "order": i,
                "people": [],
                "count": reached.len(),
                "type": "events",
                "average_conversion_time": avg,
                "median_conversion_time": med,
            });
            if let Some(l) = label {
                step["breakdown"] = json!([l]);
                step["breakdown_value"] = json!([l]);
            }
            out.push(step);
        }
        Value::Array(out)
    };
    if !breakdown {
        return list(&outcomes.iter().collect::<Vec<_>>(), None);
    }
    let mut totals: BTreeMap<String, i64> = BTreeMap::new();
    for o in outcomes {
        *totals.entry(o.label.clone()).or_default() += 1;
    }
    Value::Array(
        top(&totals, limit)
            .into_iter()
            .map(|(label, members)| {
                let group: Vec<&Outcome> = outcomes
                    .iter()
                    .filter(|o| members.contains(&o.label))
                    .collect();
                list(&group, Some(&label))
            })
            .collect(),
    )
}

fn trends(
    outcomes: &[Outcome],
    breakdown: bool,
    limit: usize,
    from_ms: i64,
    to_ms: i64,
    from_step: usize,
    to_step: usize,
) -> Value {
    let days: Vec<i64> = (from_ms / DAY..=to_ms / DAY).map(|d| d * DAY).collect();
    let entry = |group: &[&Outcome]| -> Value {
        let data: Vec<f64> = days
            .iter()
            .map(|&day| {
                let f = group
                    .iter()
                    .filter(|o| o.bucket == day && o.times.len() > from_step)
                    .count();
                let t = group
                    .iter()
                    .filter(|o| o.bucket == day && o.times.len() > to_step)
                    .count();
                if f == 0 {
                    0.0
                } else {
                    let percent = t as f64 / f as f64 * 100.0;
                    (percent * 100.0).round() / 100.0
                }
            })
            .collect();
        let fmt = |day: i64, pattern: &str| {
            Utc.timestamp_millis_opt(day)
                .unwrap()
                .format(pattern)
                .to_string()
        };
        json!({
            "count": days.len(),
            "data": data,
            "days": days.iter().map(|&d| fmt(d, "%Y-%m-%d")).collect::<Vec<_>>(),
            "labels": days.iter().map(|&d| fmt(d, "%-d-%b-%Y")).collect::<Vec<_>>(),
        })
    };
    if !breakdown {
        return json!([entry(&outcomes.iter().collect::<Vec<_>>())]);
    }
    let mut totals: BTreeMap<String, i64> = BTreeMap::new();
    for o in outcomes {
        *totals.entry(o.label.clone()).or_default() += (o.times.len() > from_step) as i64;
    }
    Value::Array(
        top(&totals, limit)
            .into_iter()
            .map(|(label, members)| {
                let group: Vec<&Outcome> = outcomes
                    .iter()
                    .filter(|o| members.contains(&o.label))
                    .collect();
                let mut e = entry(&group);
                e["breakdown_value"] = json!([label]);
                e
            })
            .collect(),
    )
}

fn time_to_convert(outcomes: &[Outcome], from: usize, to: usize, bin_count: Option<i64>) -> Value {
    let times: Vec<i64> = outcomes
        .iter()
        .filter(|o| o.times.len() > to)
        .map(|o| o.times[to] - o.times[from])
        .collect();
    if times.is_empty() {
        return json!({"bins": [], "average_conversion_time": null});
    }
    let secs: Vec<f64> = times.iter().map(|&t| t as f64 / 1000.0).collect();
    let bins = match bin_count {
        Some(b) => b.clamp(1, 90),
        None => {
            let mut k = 1i64;
            while k.pow(3) < times.len() as i64 {
                k += 1;
            }
            k.min(60)
        }
    };
    let lo = secs.iter().cloned().fold(f64::INFINITY, f64::min).floor() as i64;
    let hi = secs
        .iter()
        .cloned()
        .fold(f64::NEG_INFINITY, f64::max)
        .ceil() as i64;
    let mut width = ((hi - lo) as f64 / bins as f64).ceil() as i64;
    if width == 0 {
        width = 60;
    }
    let out: Vec<Value> = (0..=bins)
        .map(|i| {
            let start = lo + i * width;
            let count = secs
                .iter()
                .filter(|&&s| s >= start as f64 && (s < (start + width) as f64 || i == bins))
                .count();
            json!([start, count])
        })
        .collect();
    let avg = times.iter().sum::<i64>() as f64 / times.len() as f64 / 1000.0;
    json!({"bins": out, "average_conversion_time": avg})
}
