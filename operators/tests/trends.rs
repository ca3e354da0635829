//! Trends: hand-worked cases with expected JSON, errors, a property test against the
//! reference, and the incremental contract (retract a person's old contributions, add the new
//! ones).

mod reference;
use reference::ev;

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use quill_pipeline::graph::{BuildContext, EventRow, InsightOperator, Interner, PersonView};
use reference::{trends::trends, Projected, RefEvent};
use serde_json::{json, Value};

fn ms(y: i32, mo: u32, d: u32, h: u32) -> i64 {
    Utc.with_ymd_and_hms(y, mo, d, h, 0, 0)
        .unwrap()
        .timestamp_millis()
}

const NOW: i64 = 1_706_745_600_000; // 2024-02-01T00:00:00Z

fn build(query: &Value) -> (Arc<dyn InsightOperator>, Arc<Interner>) {
    let interner = Interner::new();
    let ctx = BuildContext {
        interner: interner.clone(),
        now_ms: NOW,
        project: 1,
    };
    (quill_operators::build(query, &ctx).unwrap(), interner)
}

fn evaluate(query: &Value, events: &[RefEvent]) -> Value {
    let (op, interner) = build(query);
    Projected::new(events, &*op, &interner).evaluate(&*op)
}

/// Runs the operator, checks it against the reference, returns the result.
fn run(query: Value, events: &[RefEvent]) -> Value {
    let got = evaluate(&query, events);
    assert_eq!(
        got,
        trends(&query, events),
        "operator vs reference for {query}"
    );
    got
}

fn error_field(query: Value) -> String {
    let ctx = BuildContext {
        interner: Interner::new(),
        now_ms: NOW,
        project: 1,
    };
    match quill_operators::build(&query, &ctx) {
        Ok(_) => panic!("expected an error for {query}"),
        Err(e) => e.field,
    }
}

const LABELS3: [&str; 3] = ["1-Jan-2024", "2-Jan-2024", "3-Jan-2024"];
const DAYS3: [&str; 3] = ["2024-01-01", "2024-01-02", "2024-01-03"];

#[test]
fn total_per_day_with_filters() {
    let events = [
        ev(
            1,
            ms(2024, 1, 1, 10),
            "$pageview",
            json!({"browser": "Chrome"}),
        ),
        ev(
            1,
            ms(2024, 1, 1, 10),
            "$pageview",
            json!({"browser": "Chrome"}),
        ),
        ev(
            2,
            ms(2024, 1, 3, 23),
            "$pageview",
            json!({"browser": "Firefox"}),
        ),
        ev(
            2,
            ms(2024, 1, 3, 23),
            "$pageview",
            json!({"browser": "Safari"}),
        ),
        ev(2, ms(2024, 1, 4, 0), "$pageview", json!({})),
        ev(3, ms(2024, 1, 2, 5), "signup", json!({})),
    ];
    let query = json!({"kind": "TrendsQuery",
        "dateRange": {"date_from": "2024-01-01", "date_to": "2024-01-03"},
        "series": [{"kind": "EventsNode", "event": "$pageview", "name": "$pageview",
                    "properties": [{"key": "browser", "value": "Safari", "operator": "is_not"}]}]});
    let got = run(query, &events);
    assert_eq!(
        got,
        json!([{"data": [2, 0, 1], "labels": LABELS3, "days": DAYS3, "count": 3.0,
                "label": "$pageview", "order": 0,
                "action": {"id": "$pageview", "type": "events", "order": 0, "name": "$pageview",
                           "custom_name": null, "math": "total", "math_property": null}}])
    );
}

#[test]
fn dau_breakdown_with_null_and_other() {
    let events = [
        ev(1, ms(2024, 1, 1, 1), "a", json!({"b": "x"})),
        ev(1, ms(2024, 1, 1, 2), "a", json!({"b": "x"})),
        ev(2, ms(2024, 1, 1, 3), "a", json!({"b": "x"})),
        ev(3, ms(2024, 1, 2, 3), "a", json!({"b": "y"})),
        ev(3, ms(2024, 1, 2, 4), "a", json!({"b": "z"})),
        ev(4, ms(2024, 1, 3, 4), "a", json!({"b": ""})),
        ev(5, ms(2024, 1, 3, 4), "a", json!({})),
    ];
    let query = json!({"kind": "TrendsQuery",
        "dateRange": {"date_from": "2024-01-01", "date_to": "2024-01-03"},
        "breakdownFilter": {"breakdown": "b", "breakdown_limit": 2},
        "series": [{"event": "a", "math": "dau"}]});
    let got = run(query, &events);
    let lines: Vec<(Value, Value)> = got
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["breakdown_value"].clone(), r["data"].clone()))
        .collect();
    // x: 2 persons; null: 2 persons ("" is null); y and z (1 each) fold into Other, summed.
    assert_eq!(
        lines,
        vec![
            (json!("x"), json!([2, 0, 0])),
            (json!("$$_posthog_breakdown_null_$$"), json!([0, 0, 2])),
            (json!("$$_posthog_breakdown_other_$$"), json!([0, 2, 0])),
        ]
    );
    assert_eq!(got[0]["label"], json!("x"));
}

#[test]
fn property_math_and_per_actor() {
    let events = [
        ev(1, ms(2024, 1, 1, 1), "buy", json!({"amount": 10})),
        ev(1, ms(2024, 1, 1, 2), "buy", json!({"amount": "30"})),
        ev(2, ms(2024, 1, 1, 3), "buy", json!({"amount": 20.5})),
        ev(2, ms(2024, 1, 1, 4), "buy", json!({"amount": "n/a"})),
        ev(2, ms(2024, 1, 2, 4), "buy", json!({})),
    ];
    let query = json!({"kind": "TrendsQuery",
        "dateRange": {"date_from": "2024-01-01", "date_to": "2024-01-03"},
        "series": [{"event": "buy", "math": "median", "math_property": "amount"},
                   {"event": "buy", "math": "avg", "math_property": "amount"},
                   {"event": "buy", "math": "max_count_per_actor"},
                   {"event": "buy", "math": "p90", "math_property": "amount"}]});
    let got = run(query, &events);
    assert_eq!(got[0]["data"], json!([20.5, 0, 0]));
    assert_eq!(got[1]["data"], json!([60.5 / 3.0, 0, 0]));
    assert_eq!(got[2]["data"], json!([2, 1, 0]));
    // 10, 20.5, 30: rank 1.8 → 20.5 + 0.8 * 9.5.
    let p90 = got[3]["data"][0].as_f64().unwrap();
    assert!((p90 - 28.1).abs() < 1e-9, "{p90}");
}

#[test]
fn weekly_active_counts_trailing_seven_days() {
    let events = [
        ev(1, ms(2023, 12, 27, 12), "a", json!({})),
        ev(2, ms(2024, 1, 2, 12), "a", json!({})),
    ];
    let query = json!({"kind": "TrendsQuery",
        "dateRange": {"date_from": "2024-01-01", "date_to": "2024-01-03"},
        "series": [{"event": "a", "math": "weekly_active"}]});
    let got = run(query, &events);
    // Person 1's Dec 27 event is in the windows ending Jan 1 and Jan 2 (Dec 27 – Jan 2).
    assert_eq!(got[0]["data"], json!([1, 2, 1]));
}

#[test]
fn formulas_and_total_value_display() {
    let events = [
        ev(1, ms(2024, 1, 1, 1), "a", json!({})),
        ev(1, ms(2024, 1, 1, 2), "a", json!({})),
        ev(2, ms(2024, 1, 2, 2), "a", json!({})),
        ev(2, ms(2024, 1, 1, 2), "b", json!({})),
    ];
    let query = json!({"kind": "TrendsQuery",
        "dateRange": {"date_from": "2024-01-01", "date_to": "2024-01-03"},
        "trendsFilter": {"formulaNodes": [{"formula": "A/B", "custom_name": "ratio"}]},
        "series": [{"event": "a"}, {"event": "b"}]});
    let got = run(query, &events);
    assert_eq!(
        got,
        json!([{"data": [2, 0, 0], "labels": LABELS3, "days": DAYS3, "count": 2.0,
                "label": "Formula (A/B)", "order": 0, "action": null, "custom_name": "ratio"}])
    );
    let query = json!({"kind": "TrendsQuery",
        "dateRange": {"date_from": "2024-01-01", "date_to": "2024-01-03"},
        "trendsFilter": {"display": "BoldNumber"},
        "series": [{"event": "a", "math": "dau"}]});
    let got = run(query, &events);
    assert_eq!(got[0]["aggregated_value"], json!(2));
    assert!(got[0].get("labels").is_none());
}

#[test]
fn week_and_month_labels() {
    let events = [ev(1, ms(2024, 1, 10, 1), "a", json!({}))];
    let query = json!({"kind": "TrendsQuery", "interval": "week",
        "dateRange": {"date_from": "2024-01-03", "date_to": "2024-01-20"},
        "series": [{"event": "a"}]});
    let got = run(query, &events);
    assert_eq!(
        got[0]["labels"],
        json!(["3–6 Jan", "7–13 Jan", "14–20 Jan"])
    );
    assert_eq!(
        got[0]["days"],
        json!(["2023-12-31", "2024-01-07", "2024-01-14"])
    );
    assert_eq!(got[0]["data"], json!([0, 1, 0]));
    let query = json!({"kind": "TrendsQuery", "interval": "month",
        "dateRange": {"date_from": "2023-12-15", "date_to": "2024-01-20"},
        "series": [{"event": "a"}]});
    let got = run(query, &events);
    assert_eq!(got[0]["labels"], json!(["Dec 2023", "Jan 2024"]));
}

#[test]
fn relative_and_all_ranges() {
    let events = [
        ev(1, ms(2024, 1, 20, 1), "a", json!({})),
        ev(1, ms(2024, 1, 31, 23), "a", json!({})),
    ];
    // Default -7d: Jan 25 through "today" Feb 1: 8 buckets.
    let got = evaluate(
        &json!({"kind": "TrendsQuery", "series": [{"event": "a"}]}),
        &events,
    );
    assert_eq!(got[0]["data"], json!([0, 0, 0, 0, 0, 0, 1, 0]));
    assert_eq!(got[0]["labels"][0], json!("25-Jan-2024"));
    let got = evaluate(
        &json!({"kind": "TrendsQuery", "dateRange": {"date_from": "all"}, "series": [{"event": "a"}]}),
        &events,
    );
    assert_eq!(got[0]["days"][0], json!("2024-01-20"));
    assert_eq!(got[0]["count"], json!(2.0));
    assert_eq!(got[0]["data"].as_array().unwrap().len(), 13);
}

#[test]
fn errors_name_fields() {
    let base = |series: Value| json!({"kind": "TrendsQuery", "series": series});
    assert_eq!(
        error_field(base(json!([{"event": "a", "math": "sum"}]))),
        "series[0].math_property"
    );
    assert_eq!(
        error_field(base(
            json!([{"event": "a"}, {"event": "a", "math": "nope"}])
        )),
        "series[1].math"
    );
    assert_eq!(
        error_field(base(
            json!([{"event": "a", "properties": [{"key": "k", "value": "(", "operator": "regex"}]}])
        )),
        "series[0].properties[0].value"
    );
    let mut q = base(json!([{"event": "a"}]));
    q["trendsFilter"] = json!({"formula": "A+B"});
    assert_eq!(error_field(q), "trendsFilter.formula");
    let mut q = base(json!([{"event": "a"}]));
    q["dateRange"] = json!({"date_from": "last tuesday"});
    assert_eq!(error_field(q), "dateRange.date_from");
    assert_eq!(error_field(json!({"kind": "TrendsQuery"})), "series");
}

/// Per person, the contributions of one history.
fn contributions(
    op: &dyn InsightOperator,
    person: u64,
    rows: &[EventRow],
) -> Vec<(Vec<i64>, isize)> {
    let refs: Vec<&EventRow> = rows.iter().collect();
    let view = PersonView {
        person,
        events: &refs,
        props: &[],
    };
    let mut out = Vec::new();
    op.person_pass(&view, &mut out);
    out
}

fn arb_event() -> impl Strategy<Value = RefEvent> {
    let start = ms(2023, 12, 24, 0);
    (
        0u64..4,
        prop_oneof![
            (0i64..30 * 24).prop_map(move |h| start + h * 3_600_000),
            0i64..30 * 86_400_000,
        ],
        prop::sample::select(vec!["a", "b", "c"]),
        prop::option::of(prop::sample::select(vec!["x", "y", "z", ""])),
        prop::option::of(prop_oneof![
            (0i64..20).prop_map(|n| json!(n)),
            Just(json!(2.5)),
            Just(json!("7")),
            Just(json!("abc")),
        ]),
        prop::option::of(prop::sample::select(vec!["s1", "s2", "s3"])),
    )
        .prop_map(move |(person, t, event, b, amount, session)| {
            let ts = if t >= start { t } else { start + t };
            let mut props = serde_json::Map::new();
            if let Some(b) = b {
                props.insert("b".into(), json!(b));
            }
            if let Some(a) = amount {
                props.insert("amount".into(), a);
            }
            if let Some(s) = session {
                props.insert("$session_id".into(), json!(s));
            }
            ev(person, ts, event, Value::Object(props))
        })
}

const MATHS: [&str; 18] = [
    "total",
    "dau",
    "weekly_active",
    "monthly_active",
    "weekly_active",
    "monthly_active",
    "unique_session",
    "sum",
    "avg",
    "min",
    "max",
    "median",
    "p75",
    "p99",
    "avg_count_per_actor",
    "min_count_per_actor",
    "median_count_per_actor",
    "p95_count_per_actor",
];

fn arb_series() -> impl Strategy<Value = Value> {
    (
        prop::option::of(prop::sample::select(vec!["a", "b"])),
        prop::sample::select(MATHS.to_vec()),
        prop::option::of(prop::sample::select(vec!["x", "y"])),
    )
        .prop_map(|(event, math, filter)| {
            let mut s = json!({"kind": "EventsNode", "event": event, "math": math});
            if ![
                "total",
                "dau",
                "weekly_active",
                "monthly_active",
                "unique_session",
            ]
            .contains(&math)
                && !math.ends_with("_count_per_actor")
            {
                s["math_property"] = json!("amount");
            }
            if let Some(f) = filter {
                s["properties"] = json!([{"key": "b", "value": f, "operator": "is_not"}]);
            }
            s
        })
}

fn arb_query() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(arb_series(), 1..3),
        prop::sample::select(vec!["day", "week", "month", "hour"]),
        prop::option::of(1u64..4),
        any::<bool>(),
        prop::option::of(prop::sample::select(vec!["A+B", "A/B", "(A-B)*2", "A*0.5"])),
        any::<bool>(),
    )
        .prop_map(|(series, interval, breakdown, bold, formula, global)| {
            let (from, to) = if interval == "hour" {
                ("2024-01-05T06:00:00Z", "2024-01-07T18:00:00Z")
            } else {
                ("2024-01-01", "2024-01-17")
            };
            let n = series.len();
            let mut q = json!({"kind": "TrendsQuery", "series": series, "interval": interval,
                "dateRange": {"date_from": from, "date_to": to}});
            if let Some(limit) = breakdown {
                q["breakdownFilter"] = json!({"breakdown": "b", "breakdown_limit": limit});
            }
            let mut filter = json!({});
            if bold {
                filter["display"] = json!("ActionsPie");
            }
            if let Some(f) = formula {
                if n == 2 || !f.contains('B') {
                    filter["formula"] = json!(f);
                }
            }
            q["trendsFilter"] = filter;
            if global {
                q["properties"] = json!([{"key": "amount", "value": 3, "operator": "gt"}]);
            }
            q
        })
}

/// Compares results allowing float rounding (sums fold in different orders).
fn close(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| close(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| close(v, w)))
        }
        _ => a == b,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn matches_reference(events in prop::collection::vec(arb_event(), 0..40), query in arb_query()) {
        let got = evaluate(&query, &events);
        let want = trends(&query, &events);
        prop_assert!(close(&got, &want), "query {}\n got {}\nwant {}", query, got, want);
    }

    #[test]
    fn retractions_match_fresh_evaluation(
        events in prop::collection::vec(arb_event(), 1..30),
        extra in prop::collection::vec(arb_event(), 0..8),
        drop in prop::collection::vec(any::<bool>(), 30),
        query in arb_query(),
    ) {
        // Person 0's history changes: some events go, some arrive (late events, merges).
        let new: Vec<RefEvent> = events
            .iter()
            .zip(drop.iter().cycle())
            .filter(|(e, d)| e.person != 0 || !**d)
            .map(|(e, _)| e.clone())
            .chain(extra.into_iter().map(|mut e| { e.person = 0; e }))
            .collect();
        let (op, interner) = build(&query);
        let old_rows = Projected::new(&events, &*op, &interner);
        let new_rows = Projected::new(&new, &*op, &interner);
        let mut agg = op.aggregator();
        for (person, rows) in &old_rows.persons {
            for (c, d) in contributions(&*op, *person, rows) {
                agg.apply(&c, d);
            }
        }
        let history = |p: &Projected| p.persons.iter().find(|(q, _)| *q == 0).map(|(_, r)| r.clone()).unwrap_or_default();
        for (c, d) in contributions(&*op, 0, &history(&old_rows)) {
            agg.apply(&c, -d);
        }
        for (c, d) in contributions(&*op, 0, &history(&new_rows)) {
            agg.apply(&c, d);
        }
        let fresh = new_rows.evaluate(&*op);
        prop_assert_eq!(agg.render(), fresh);
    }
}

#[test]
fn person_property_breakdown_and_filter() {
    let query = json!({"kind": "TrendsQuery",
        "dateRange": {"date_from": "2024-01-01", "date_to": "2024-01-02"},
        "breakdownFilter": {"breakdown": "plan", "breakdown_type": "person"},
        "properties": [{"key": "plan", "value": "free", "operator": "is_not", "type": "person"}],
        "series": [{"event": "a"}]});
    let (op, interner) = build(&query);
    assert_eq!(op.person_properties(), vec!["plan".to_string()]);
    assert!(op.event_properties().is_empty());
    let events = [
        ev(1, ms(2024, 1, 1, 1), "a", json!({})),
        ev(2, ms(2024, 1, 2, 1), "a", json!({})),
        ev(3, ms(2024, 1, 2, 2), "a", json!({})),
    ];
    let projected = Projected::new(&events, &*op, &interner);
    let plan = interner.intern("plan");
    let props = |v: &str| vec![(plan, interner.value(&json!(v)).unwrap())];
    let person_props = [props("pro"), props("free"), Vec::new()];
    let refs: Vec<Vec<&EventRow>> = projected
        .persons
        .iter()
        .map(|(_, rows)| rows.iter().collect())
        .collect();
    let views: Vec<PersonView<'_>> = projected
        .persons
        .iter()
        .zip(&refs)
        .zip(&person_props)
        .map(|(((person, _), rows), props)| PersonView {
            person: *person,
            events: rows,
            props,
        })
        .collect();
    let got = quill_pipeline::graph::evaluate(&*op, &views);
    let lines: Vec<(Value, Value)> = got
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["breakdown_value"].clone(), r["data"].clone()))
        .collect();
    assert_eq!(
        lines,
        vec![
            (json!("pro"), json!([1, 0])),
            (json!("$$_posthog_breakdown_null_$$"), json!([0, 1])),
        ]
    );
}
