//! Reference trends, computed the obvious way: filter the raw events per series, group them
//! by (breakdown value, bucket), compute the math on each group, rank breakdown values and sum
//! the ones past the limit into Other, then apply formulas.
//!
//! Supported inputs (what the tests use): `dateRange` with absolute `YYYY-MM-DD` or RFC 3339
//! bounds and `explicitDate`; intervals hour/day/week/month; every math except
//! `first_time_for_user`/groups; event filters `exact`, `is_not`, `icontains`, `gt`, `lt`,
//! `is_set`, `is_not_set` (series and global); event breakdowns with a limit; formulas with
//! `+ - * /` and parentheses; total-value displays.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, TimeZone, Utc};
use serde_json::{json, Map, Value};

use super::RefEvent;

const NULL_LABEL: &str = "$$_posthog_breakdown_null_$$";
const OTHER_LABEL: &str = "$$_posthog_breakdown_other_$$";

fn utc(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).unwrap()
}

fn day_start(t: DateTime<Utc>) -> DateTime<Utc> {
    Utc.from_utc_datetime(&t.date_naive().and_hms_opt(0, 0, 0).unwrap())
}

fn trunc(t: DateTime<Utc>, interval: &str) -> DateTime<Utc> {
    match interval {
        "hour" => Utc
            .timestamp_opt(t.timestamp() - t.timestamp().rem_euclid(3600), 0)
            .unwrap(),
        "day" => day_start(t),
        "week" => day_start(t) - Duration::days(t.weekday().num_days_from_sunday() as i64),
        "month" => Utc
            .with_ymd_and_hms(t.year(), t.month(), 1, 0, 0, 0)
            .unwrap(),
        other => panic!("reference: interval {other}"),
    }
}

fn step(t: DateTime<Utc>, interval: &str) -> DateTime<Utc> {
    match interval {
        "hour" => t + Duration::hours(1),
        "day" => t + Duration::days(1),
        "week" => t + Duration::days(7),
        _ => t.checked_add_months(Months::new(1)).unwrap(),
    }
}

fn parse_bound(s: &str) -> DateTime<Utc> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap());
    }
    DateTime::parse_from_rfc3339(s)
        .expect("reference: absolute dates only")
        .with_timezone(&Utc)
}

/// The property's text the way breakdowns and `exact` see it.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => {
            let f = n.as_f64().unwrap();
            Some(if f.fract() == 0.0 {
                format!("{}", f as i64)
            } else {
                format!("{f}")
            })
        }
        other => Some(other.to_string()),
    }
}

fn number_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|x: &f64| x.is_finite())
}

fn filter_ok(f: &Value, e: &RefEvent) -> bool {
    let prop = e
        .properties
        .get(f["key"].as_str().unwrap())
        .filter(|v| !v.is_null());
    let op = f["operator"].as_str().unwrap_or("exact");
    let values: Vec<String> = match &f["value"] {
        Value::Array(a) => a.iter().filter_map(text).collect(),
        v => text(v).into_iter().collect(),
    };
    let t = prop.and_then(text);
    match op {
        "exact" => t.is_some_and(|t| values.contains(&t)),
        "is_not" => !t.is_some_and(|t| values.contains(&t)),
        "icontains" => t.is_some_and(|t| t.to_lowercase().contains(&values[0].to_lowercase())),
        "gt" | "lt" => {
            let bound: f64 = values[0].parse().unwrap();
            match prop.and_then(number_of) {
                Some(x) if op == "gt" => x > bound,
                Some(x) => x < bound,
                None => false,
            }
        }
        "is_set" => prop.is_some(),
        "is_not_set" => prop.is_none(),
        other => panic!("reference: operator {other}"),
    }
}

fn filters_ok(list: &Value, e: &RefEvent) -> bool {
    list.as_array()
        .is_none_or(|fs| fs.iter().all(|f| filter_ok(f, e)))
}

/// A formula over series values; division by zero is 0.
fn formula(text: &str, vals: &[f64]) -> f64 {
    let tokens: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).collect();
    fn expr(t: &[char], i: &mut usize, v: &[f64]) -> f64 {
        let mut acc = term(t, i, v);
        while *i < t.len() && (t[*i] == '+' || t[*i] == '-') {
            let op = t[*i];
            *i += 1;
            let r = term(t, i, v);
            acc = if op == '+' { acc + r } else { acc - r };
        }
        acc
    }
    fn term(t: &[char], i: &mut usize, v: &[f64]) -> f64 {
        let mut acc = factor(t, i, v);
        while *i < t.len() && (t[*i] == '*' || t[*i] == '/') {
            let op = t[*i];
            *i += 1;
            let r = factor(t, i, v);
            acc = if op == '*' {
                acc * r
            } else if r == 0.0 {
                0.0
            } else {
                acc / r
            };
        }
        acc
    }
    fn factor(t: &[char], i: &mut usize, v: &[f64]) -> f64 {
        let c = t[*i];
        *i += 1;
        if c == '(' {
            let x = expr(t, i, v);
            *i += 1;
            x
        } else if c == '-' {
            -factor(t, i, v)
        } else if c.is_ascii_alphabetic() {
            v[(c.to_ascii_uppercase() as u8 - b'A') as usize]
        } else {
            let mut s = c.to_string();
            while *i < t.len() && (t[*i].is_ascii_digit() || t[*i] == '.') {
                s.push(t[*i]);
                *i += 1;
            }
            s.parse().unwrap()
        }
    }
    let mut i = 0;
    expr(&tokens, &mut i, vals)
}

fn quantile(sorted: &[f64], p: f64) -> f64 {
    let pos = p * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Aggregates a list of numbers by a PostHog aggregate name; empty is 0.
fn agg(name: &str, mut xs: Vec<f64>) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    match name {
        "sum" => xs.iter().sum(),
        "avg" => xs.iter().sum::<f64>() / xs.len() as f64,
        "min" => xs[0],
        "max" => xs[xs.len() - 1],
        "median" => quantile(&xs, 0.5),
        "p75" => quantile(&xs, 0.75),
        "p90" => quantile(&xs, 0.9),
        "p95" => quantile(&xs, 0.95),
        "p99" => quantile(&xs, 0.99),
        other => panic!("reference: aggregate {other}"),
    }
}

/// One group's value for a math, from the group's events.
fn math_value(math: &str, prop: Option<&str>, events: &[&RefEvent]) -> f64 {
    match math {
        "total" => events.len() as f64,
        "dau" | "weekly_active" | "monthly_active" => events
            .iter()
            .map(|e| e.person)
            .collect::<BTreeSet<_>>()
            .len() as f64,
        "unique_session" => events
            .iter()
            .filter_map(|e| e.properties.get("$session_id").and_then(text))
            .filter(|s| !s.is_empty())
            .collect::<BTreeSet<_>>()
            .len() as f64,
        m if m.ends_with("_count_per_actor") => {
            let mut per: BTreeMap<u64, f64> = BTreeMap::new();
            for e in events {
                *per.entry(e.person).or_default() += 1.0;
            }
            agg(
                m.trim_end_matches("_count_per_actor"),
                per.into_values().collect(),
            )
        }
        m => agg(
            m,
            events
                .iter()
                .filter_map(|e| e.properties.get(prop.unwrap()).and_then(number_of))
                .collect(),
        ),
    }
}

fn num(v: f64) -> Value {
    if v.fract() == 0.0 {
        json!(v as i64)
    } else {
        json!(v)
    }
}

fn week_label(s: DateTime<Utc>, e: DateTime<Utc>) -> String {
    if s == e {
        s.format("%-d-%b-%Y").to_string()
    } else if s.year() != e.year() {
        format!("{} – {}", s.format("%-d-%b-%Y"), e.format("%-d-%b-%Y"))
    } else if s.month() != e.month() {
        format!("{} – {}", s.format("%-d-%b"), e.format("%-d-%b"))
    } else {
        format!("{}–{}", s.day(), e.format("%-d %b"))
    }
}

/// The reference trends result for a query over raw events.
pub fn trends(query: &Value, events: &[RefEvent]) -> Value {
    let interval = query["interval"].as_str().unwrap_or("day");
    let range = &query["dateRange"];
    let explicit = range["explicitDate"].as_bool().unwrap_or(false);
    let mut from = parse_bound(range["date_from"].as_str().unwrap());
    let mut to = parse_bound(range["date_to"].as_str().unwrap());
    if !explicit {
        from = if interval == "hour" {
            trunc(from, "hour")
        } else {
            day_start(from)
        };
        if interval != "hour" {
            to = day_start(to) + Duration::days(1) - Duration::milliseconds(1);
        }
    }
    let (from_ms, to_ms) = (from.timestamp_millis(), to.timestamp_millis());
    let filter = query["trendsFilter"].clone();
    let total_mode = matches!(
        filter["display"].as_str(),
        Some("BoldNumber" | "ActionsPie" | "ActionsTable" | "WorldMap" | "ActionsBarValue")
    );
    let mut buckets = Vec::new();
    let mut b = trunc(from, interval);
    while b <= trunc(to, interval) {
        buckets.push(b);
        b = step(b, interval);
    }
    let bd = &query["breakdownFilter"];
    let bd_key = bd["breakdown"].as_str();
    let limit = bd["breakdown_limit"].as_u64().unwrap_or(25) as usize;
    let series: Vec<Value> = query["series"].as_array().unwrap().clone();

    // Per series: breakdown value (None without breakdown) → one number per bucket.
    let mut per_series: Vec<Vec<(Option<String>, Vec<f64>)>> = Vec::new();
    for s in &series {
        let math = s["math"].as_str().unwrap_or("total");
        let prop = s["math_property"].as_str();
        let windowed = matches!(math, "weekly_active" | "monthly_active")
            && !total_mode
            && matches!(interval, "hour" | "day");
        let days = if math == "weekly_active" { 7 } else { 30 };
        let matching: Vec<&RefEvent> = events
            .iter()
            .filter(|e| s["event"].as_str().is_none_or(|n| n == e.event))
            .filter(|e| filters_ok(&s["properties"], e) && filters_ok(&query["properties"], e))
            .collect();
        let bd_of = |e: &RefEvent| -> Option<String> {
            bd_key.map(|k| {
                e.properties
                    .get(k)
                    .and_then(text)
                    .filter(|t| !t.is_empty())
                    .unwrap_or_else(|| NULL_LABEL.to_string())
            })
        };
        let values: BTreeSet<Option<String>> = matching
            .iter()
            .filter(|e| e.ts_ms <= to_ms && (windowed || e.ts_ms >= from_ms))
            .map(|e| bd_of(e))
            .collect();
        let mut lines: Vec<(Option<String>, Vec<f64>)> = Vec::new();
        for value in values {
            let of_value: Vec<&RefEvent> = matching
                .iter()
                .copied()
                .filter(|e| bd_of(e) == value)
                .collect();
            let data: Vec<f64> = if total_mode {
                let in_range: Vec<&RefEvent> = of_value
                    .iter()
                    .copied()
                    .filter(|e| e.ts_ms >= from_ms && e.ts_ms <= to_ms)
                    .collect();
                vec![math_value(math, prop, &in_range)]
            } else {
                buckets
                    .iter()
                    .map(|b| {
                        let end = step(*b, interval).timestamp_millis();
                        let group: Vec<&RefEvent> = of_value
                            .iter()
                            .copied()
                            .filter(|e| {
                                if windowed {
                                    e.ts_ms <= to_ms
                                        && e.ts_ms < end
                                        && e.ts_ms >= end - days * 86_400_000
                                } else {
                                    e.ts_ms >= from_ms
                                        && e.ts_ms <= to_ms
                                        && e.ts_ms >= b.timestamp_millis()
                                        && e.ts_ms < end
                                }
                            })
                            .collect();
                        math_value(math, prop, &group)
                    })
                    .collect()
            };
            // A windowed line exists when some event falls in a shown window.
            if bd_key.is_none() || !windowed || data.iter().any(|v| *v != 0.0) {
                lines.push((value, data));
            }
        }
        if bd_key.is_none() && lines.is_empty() {
            lines.push((None, vec![0.0; if total_mode { 1 } else { buckets.len() }]));
        }
        if bd_key.is_some() {
            lines.sort_by(|a, b| {
                let (sa, sb): (f64, f64) = (a.1.iter().sum(), b.1.iter().sum());
                sb.partial_cmp(&sa).unwrap().then_with(|| a.0.cmp(&b.0))
            });
            let rest = if lines.len() > limit {
                lines.split_off(limit)
            } else {
                Vec::new()
            };
            let (nulls, mut kept): (Vec<_>, Vec<_>) = lines
                .into_iter()
                .partition(|l| l.0.as_deref() == Some(NULL_LABEL));
            kept.extend(nulls);
            if !rest.is_empty() {
                let mut sum = vec![0.0; rest[0].1.len()];
                for (_, d) in &rest {
                    for (s, v) in sum.iter_mut().zip(d) {
                        *s += v;
                    }
                }
                kept.push((Some(OTHER_LABEL.to_string()), sum));
            }
            lines = kept;
        }
        per_series.push(lines);
    }

    let labels: Vec<String> = buckets
        .iter()
        .map(|b| match interval {
            "hour" => b.format("%-d-%b %H:%M").to_string(),
            "month" => b.format("%b %Y").to_string(),
            "week" => {
                let s = (*b).max(day_start(from));
                let e = (*b + Duration::days(6)).min(day_start(to)).max(s);
                week_label(s, e)
            }
            _ => b.format("%-d-%b-%Y").to_string(),
        })
        .collect();
    let days: Vec<String> = buckets
        .iter()
        .map(|b| {
            if interval == "hour" {
                b.format("%Y-%m-%d %H:%M:%S").to_string()
            } else {
                b.format("%Y-%m-%d").to_string()
            }
        })
        .collect();
    let shape = |mut obj: Map<String, Value>, value: &Option<String>, data: &[f64]| -> Value {
        if total_mode {
            obj.insert("data".into(), json!([]));
            obj.insert("days".into(), json!([]));
            obj.insert("count".into(), json!(0));
            obj.insert("aggregated_value".into(), num(data[0]));
        } else {
            obj.insert(
                "data".into(),
                Value::Array(data.iter().map(|v| num(*v)).collect()),
            );
            obj.insert("labels".into(), json!(labels));
            obj.insert("days".into(), json!(days));
            obj.insert("count".into(), json!(data.iter().sum::<f64>()));
        }
        if let Some(v) = value {
            obj.insert("breakdown_value".into(), json!(v));
        }
        Value::Object(obj)
    };

    let formulas: Vec<(String, Option<String>)> = match filter["formulaNodes"].as_array() {
        Some(nodes) => nodes
            .iter()
            .map(|n| {
                (
                    n["formula"].as_str().unwrap().to_string(),
                    n["custom_name"].as_str().map(String::from),
                )
            })
            .collect(),
        None => filter["formula"]
            .as_str()
            .map(|f| (f.to_string(), None))
            .into_iter()
            .collect(),
    };
    let mut out = Vec::new();
    if !formulas.is_empty() {
        let mut values: Vec<Option<String>> = Vec::new();
        for (v, _) in per_series.iter().flatten() {
            if !values.contains(v) {
                values.push(v.clone());
            }
        }
        let width = if total_mode { 1 } else { buckets.len() };
        for (order, (text, custom)) in formulas.iter().enumerate() {
            for v in &values {
                let data: Vec<f64> = (0..width)
                    .map(|i| {
                        let vals: Vec<f64> = per_series
                            .iter()
                            .map(|lines| lines.iter().find(|l| &l.0 == v).map_or(0.0, |l| l.1[i]))
                            .collect();
                        formula(text, &vals)
                    })
                    .collect();
                let mut obj = Map::new();
                obj.insert("label".into(), json!(format!("Formula ({text})")));
                obj.insert("order".into(), json!(order));
                obj.insert("action".into(), Value::Null);
                if let Some(c) = custom {
                    obj.insert("custom_name".into(), json!(c));
                }
                out.push(shape(obj, v, &data));
            }
        }
        return Value::Array(out);
    }
    for (order, (s, lines)) in series.iter().zip(&per_series).enumerate() {
        let label = s["event"].as_str().unwrap_or("All events").to_string();
        let action = json!({
            "id": s["event"], "type": "events", "order": order,
            "name": s["name"].as_str().map(String::from).unwrap_or(label.clone()),
            "custom_name": s["custom_name"], "math": s["math"].as_str().unwrap_or("total"),
            "math_property": s["math_property"],
        });
        for (v, data) in lines {
            let mut obj = Map::new();
            let l = match v {
                None => label.clone(),
                Some(v) if series.len() > 1 => format!("{label} - {v}"),
                Some(v) => v.clone(),
            };
            obj.insert("label".into(), json!(l));
            obj.insert("order".into(), json!(order));
            obj.insert("action".into(), action.clone());
            out.push(shape(obj, v, data));
        }
    }
    Value::Array(out)
}
