//! Reference retention, computed the obvious way: per person, the set of intervals with a
//! target event and the number of returning events per interval, then a count per
//! (cohort start, offset).
//!
//! Supported inputs (what the tests generate): `dateRange.date_to` as null (now), `YYYY-MM-DD`
//! or an RFC 3339 time; every `retentionFilter` option; entity and query-level `properties`
//! given as a list of event filters with the operators `exact` (scalar or list), `is_not`
//! (scalar), `is_set` and `is_not_set`; an event-property `breakdownFilter`. Weeks start on
//! Sunday, PostHog's default.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, TimeZone, Timelike, Utc};
use serde_json::{json, Value};

use super::RefEvent;

const NULL_LABEL: &str = "$$_posthog_breakdown_null_$$";
const OTHER_LABEL: &str = "$$_posthog_breakdown_other_$$";

#[derive(Clone, Copy, PartialEq)]
enum Period {
    Hour,
    Day,
    Week,
    Month,
}

fn truncate(t: DateTime<Utc>, p: Period) -> DateTime<Utc> {
    let day = Utc
        .with_ymd_and_hms(t.year(), t.month(), t.day(), 0, 0, 0)
        .unwrap();
    match p {
        Period::Hour => day + Duration::hours(t.hour() as i64),
        Period::Day => day,
        Period::Week => day - Duration::days(t.weekday().num_days_from_sunday() as i64),
        Period::Month => Utc
            .with_ymd_and_hms(t.year(), t.month(), 1, 0, 0, 0)
            .unwrap(),
    }
}

fn add(t: DateTime<Utc>, p: Period, n: i64) -> DateTime<Utc> {
    match p {
        Period::Hour => t + Duration::hours(n),
        Period::Day => t + Duration::days(n),
        Period::Week => t + Duration::weeks(n),
        Period::Month if n >= 0 => t + Months::new(n as u32),
        Period::Month => t - Months::new((-n) as u32),
    }
}

fn parse_date_to(v: Option<&Value>, now_ms: i64) -> DateTime<Utc> {
    match v.and_then(|v| v.as_str()) {
        None => Utc.timestamp_millis_opt(now_ms).unwrap(),
        Some(s) => {
            if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap())
            } else {
                DateTime::parse_from_rfc3339(s)
                    .expect("reference: date_to")
                    .with_timezone(&Utc)
            }
        }
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
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

fn filter_matches(f: &Value, e: &RefEvent) -> bool {
    let key = f["key"].as_str().unwrap();
    let actual = e.properties.get(key).and_then(text);
    let op = f["operator"].as_str().unwrap_or("exact");
    let wanted: Vec<String> = match &f["value"] {
        Value::Array(vs) => vs.iter().filter_map(text).collect(),
        v => text(v).into_iter().collect(),
    };
    match op {
        "exact" => actual.is_some_and(|a| wanted.contains(&a)),
        "is_not" => actual.is_none_or(|a| !wanted.contains(&a)),
        "is_set" => actual.is_some(),
        "is_not_set" => actual.is_none(),
        other => panic!("reference: operator {other}"),
    }
}

fn all_match(filters: &Value, e: &RefEvent) -> bool {
    match filters {
        Value::Array(fs) => fs.iter().all(|f| filter_matches(f, e)),
        Value::Null => true,
        other => panic!("reference: properties {other}"),
    }
}

struct Entity {
    event: Option<String>,
    properties: Value,
}

impl Entity {
    fn parse(v: &Value) -> Self {
        if v.is_null() {
            return Entity {
                event: Some("$pageview".into()),
                properties: Value::Null,
            };
        }
        Entity {
            event: v["id"].as_str().map(String::from),
            properties: v.get("properties").cloned().unwrap_or(Value::Null),
        }
    }
    fn named(&self, e: &RefEvent) -> bool {
        self.event.as_ref().is_none_or(|n| *n == e.event)
    }
    fn matches(&self, e: &RefEvent) -> bool {
        self.named(e) && all_match(&self.properties, e)
    }
}

/// PostHog's retention `results` for `query` over `events`, as of `now_ms`.
pub fn retention(events: &[RefEvent], query: &Value, now_ms: i64) -> Value {
    let f = &query["retentionFilter"];
    let period = match f["period"].as_str().unwrap_or("Day") {
        "Hour" => Period::Hour,
        "Day" => Period::Day,
        "Week" => Period::Week,
        "Month" => Period::Month,
        other => panic!("reference: period {other}"),
    };
    let unit = f["period"].as_str().unwrap_or("Day");
    let n = f["totalIntervals"].as_u64().unwrap_or(7) as usize;
    let kind = f["retentionType"].as_str().unwrap_or("retention_recurring");
    let cumulative = f["cumulative"].as_bool().unwrap_or(false);
    let min_occ = f["minimumOccurrences"].as_u64().unwrap_or(1) as usize;
    let target = Entity::parse(&f["targetEntity"]);
    let returning = Entity::parse(&f["returningEntity"]);
    let global = query.get("properties").cloned().unwrap_or(Value::Null);
    let breakdown = query["breakdownFilter"]["breakdown"]
        .as_str()
        .map(String::from);
    let limit = query["breakdownFilter"]["breakdown_limit"]
        .as_u64()
        .unwrap_or(25) as usize;

    let date_to = parse_date_to(query["dateRange"].get("date_to"), now_ms);
    let last = truncate(date_to, period);
    let starts: Vec<DateTime<Utc>> = (0..n)
        .map(|i| add(last, period, i as i64 - (n as i64 - 1)))
        .collect();
    let end = add(last, period, 1);
    let interval_of = |ts_ms: i64| -> Option<usize> {
        let t = Utc.timestamp_millis_opt(ts_ms).unwrap();
        if t < starts[0] || t >= end {
            return None;
        }
        starts.iter().rposition(|s| *s <= t)
    };

    // Group events per (person, breakdown value), in time order.
    let mut groups: BTreeMap<(u64, Option<String>), Vec<&RefEvent>> = BTreeMap::new();
    for e in events.iter().filter(|e| all_match(&global, e)) {
        let value = breakdown
            .as_ref()
            .and_then(|b| e.properties.get(b).and_then(text))
            // PostHog's nullIf(toString(value), ''): an empty value is null.
            .filter(|v| !v.is_empty());
        groups.entry((e.person, value)).or_default().push(e);
    }
    // counts[breakdown value][start][offset]
    let mut counts: BTreeMap<Option<String>, Vec<Vec<i64>>> = BTreeMap::new();
    for ((_, value), mut evs) in groups {
        evs.sort_by_key(|e| (e.ts_ms, e.offset));
        let cohort_starts: BTreeSet<usize> = match kind {
            "retention_recurring" => evs
                .iter()
                .filter(|e| target.matches(e))
                .filter_map(|e| interval_of(e.ts_ms))
                .collect(),
            "retention_first_time" => evs
                .iter()
                .find(|e| target.matches(e))
                .and_then(|e| interval_of(e.ts_ms))
                .into_iter()
                .collect(),
            "retention_first_ever_occurrence" => {
                let first = evs.iter().find(|e| target.named(e)).map(|e| e.ts_ms);
                let first_matching = evs.iter().find(|e| target.matches(e)).map(|e| e.ts_ms);
                match (first, first_matching) {
                    (Some(a), Some(b)) if a == b => interval_of(a).into_iter().collect(),
                    _ => BTreeSet::new(),
                }
            }
            other => panic!("reference: retentionType {other}"),
        };
        let mut returns = vec![0usize; n];
        for e in evs.iter().filter(|e| returning.matches(e)) {
            if let Some(i) = interval_of(e.ts_ms) {
                returns[i] += 1;
            }
        }
        let table = counts
            .entry(if breakdown.is_some() { value } else { None })
            .or_insert_with(|| vec![vec![0; n]; n]);
        for s in cohort_starts {
            let active: Vec<usize> = (1..n - s).filter(|k| returns[s + k] >= min_occ).collect();
            if cumulative {
                let furthest = active.iter().copied().max().unwrap_or(0);
                for cell in &mut table[s][..=furthest] {
                    *cell += 1;
                }
            } else {
                table[s][0] += 1;
                for k in active {
                    table[s][k] += 1;
                }
            }
        }
    }

    let date = |i: usize| starts[i].format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let rows = |table: &Vec<Vec<i64>>, label: Option<&str>| -> Vec<Value> {
        (0..n)
            .map(|s| {
                let values: Vec<Value> = (0..n)
                    .map(|k| json!({"count": table[s][k], "label": format!("{unit} {k}")}))
                    .collect();
                let mut row =
                    json!({"date": date(s), "label": format!("{unit} {s}"), "values": values});
                if let Some(l) = label {
                    row["breakdown_value"] = json!(l);
                }
                row
            })
            .collect()
    };
    if breakdown.is_none() {
        let empty = vec![vec![0; n]; n];
        return Value::Array(rows(counts.get(&None).unwrap_or(&empty), None));
    }
    let mut ranked: Vec<(i64, String, Vec<Vec<i64>>)> = counts
        .into_iter()
        .map(|(v, t)| {
            let total = t.iter().map(|r| r[0]).sum();
            (total, v.unwrap_or_else(|| NULL_LABEL.to_string()), t)
        })
        .filter(|(total, _, _)| *total > 0)
        .collect();
    ranked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut out = Vec::new();
    for (_, label, t) in ranked.iter().take(limit) {
        out.extend(rows(t, Some(label)));
    }
    if ranked.len() > limit {
        let mut other = vec![vec![0; n]; n];
        for (_, _, t) in &ranked[limit..] {
            for s in 0..n {
                for k in 0..n {
                    other[s][k] += t[s][k];
                }
            }
        }
        out.extend(rows(&other, Some(OTHER_LABEL)));
    }
    Value::Array(out)
}
