//! Funnels: hand-worked cases, errors, a property test against the reference, and the
//! incremental contract (retract a person's old contributions, add the new ones).

mod reference;
use reference::ev;

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use quill_pipeline::graph::{BuildContext, EventRow, InsightOperator, Interner, PersonView};
use reference::{funnels::funnels, Projected, RefEvent};
use serde_json::{json, Map, Value};

const NULL: &str = "$$_posthog_breakdown_null_$$";
const OTHER: &str = "$$_posthog_breakdown_other_$$";

fn ms(d: u32, h: u32, m: u32) -> i64 {
    Utc.with_ymd_and_hms(2024, 1, d, h, m, 0)
        .unwrap()
        .timestamp_millis()
}

fn e(person: u64, ts_ms: i64, event: &str) -> RefEvent {
    ev(person, ts_ms, event, json!({}))
}

fn build(query: &Value) -> (Arc<dyn InsightOperator>, Arc<Interner>) {
    let interner = Interner::new();
    let ctx = BuildContext {
        interner: interner.clone(),
        now_ms: ms(20, 0, 0),
        project: 1,
    };
    (quill_operators::build(query, &ctx).unwrap(), interner)
}

/// Runs the operator and the reference, checks that they agree, returns the result.
fn run(query: &Value, events: &[RefEvent]) -> Value {
    let (op, interner) = build(query);
    let got = Projected::new(events, &*op, &interner).evaluate(&*op);
    assert_eq!(got, funnels(events, query), "operator vs reference");
    got
}

fn query(steps: &[&str], filter: Value) -> Value {
    let series: Vec<Value> = steps
        .iter()
        .map(|s| json!({"kind": "EventsNode", "event": s}))
        .collect();
    json!({"kind": "FunnelsQuery", "series": series, "funnelsFilter": filter,
        "dateRange": {"date_from": "2024-01-01", "date_to": "2024-01-05"}})
}

fn counts(steps: &Value) -> Vec<i64> {
    steps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["count"].as_i64().unwrap())
        .collect()
}

fn basic_events() -> Vec<RefEvent> {
    vec![
        // p1: all three steps, 10 minutes then an hour.
        e(1, ms(1, 10, 0), "signup"),
        e(1, ms(1, 10, 10), "view"),
        e(1, ms(1, 11, 10), "pay"),
        // p2: two steps, 30 minutes.
        e(2, ms(1, 12, 0), "signup"),
        e(2, ms(1, 12, 30), "view"),
        // p3: no step 0.
        e(3, ms(1, 12, 0), "view"),
        // p4: step 0 only.
        e(4, ms(2, 9, 0), "signup"),
        // p5: two steps in the same millisecond: counted, but not timed.
        e(5, ms(3, 9, 0), "signup"),
        e(5, ms(3, 9, 0), "view"),
    ]
}

#[test]
fn ordered_steps_counts_and_times() {
    let got = run(
        &query(&["signup", "view", "pay"], json!({})),
        &basic_events(),
    );
    assert_eq!(
        got,
        json!([
            {"action_id": "signup", "name": "signup", "custom_name": null, "order": 0, "people": [],
             "count": 4, "type": "events", "average_conversion_time": null, "median_conversion_time": null},
            {"action_id": "view", "name": "view", "custom_name": null, "order": 1, "people": [],
             "count": 3, "type": "events", "average_conversion_time": 1200.0, "median_conversion_time": 1200.0},
            {"action_id": "pay", "name": "pay", "custom_name": null, "order": 2, "people": [],
             "count": 1, "type": "events", "average_conversion_time": 3600.0, "median_conversion_time": 3600.0},
        ])
    );
}

#[test]
fn window_is_measured_from_step_zero() {
    let q = query(
        &["signup", "view", "pay"],
        json!({"funnelWindowInterval": 1, "funnelWindowIntervalUnit": "hour"}),
    );
    // p1's pay comes 70 minutes after signup.
    assert_eq!(counts(&run(&q, &basic_events())), vec![4, 3, 0]);
}

#[test]
fn steps_outside_the_date_range_do_not_count() {
    let events = vec![
        e(1, ms(5, 23, 0), "signup"),
        e(1, ms(6, 0, 30), "view"),
        e(2, ms(1, 0, 0) - 1, "signup"),
        e(2, ms(1, 1, 0), "view"),
    ];
    assert_eq!(
        counts(&run(&query(&["signup", "view"], json!({})), &events)),
        vec![1, 0]
    );
}

#[test]
fn the_latest_start_times_the_conversion() {
    let events = vec![
        e(1, ms(1, 10, 0), "signup"),
        e(1, ms(1, 10, 20), "signup"),
        e(1, ms(1, 10, 30), "view"),
    ];
    let got = run(&query(&["signup", "view"], json!({})), &events);
    assert_eq!(got[1]["average_conversion_time"], json!(600.0));
}

#[test]
fn strict_order_breaks_on_other_events_but_not_repeats() {
    let events = vec![
        e(1, ms(1, 10, 0), "signup"),
        e(1, ms(1, 10, 1), "view"),
        e(1, ms(1, 10, 2), "view"),
        e(1, ms(1, 10, 3), "pay"),
        e(2, ms(1, 10, 0), "signup"),
        e(2, ms(1, 10, 1), "view"),
        e(2, ms(1, 10, 2), "other"),
        e(2, ms(1, 10, 3), "pay"),
    ];
    let q = query(
        &["signup", "view", "pay"],
        json!({"funnelOrderType": "strict"}),
    );
    assert_eq!(counts(&run(&q, &events)), vec![2, 2, 1]);
    let q = query(&["signup", "view", "pay"], json!({}));
    assert_eq!(counts(&run(&q, &events)), vec![2, 2, 2]);
}

#[test]
fn unordered_names_steps_by_completion() {
    let events = vec![
        e(1, ms(1, 10, 0), "pay"),
        e(1, ms(1, 10, 5), "signup"),
        e(2, ms(1, 10, 0), "view"),
    ];
    let q = query(
        &["signup", "view", "pay"],
        json!({"funnelOrderType": "unordered"}),
    );
    let got = run(&q, &events);
    assert_eq!(counts(&got), vec![2, 1, 0]);
    assert_eq!(got[0]["name"], json!("Completed 1 step"));
    assert_eq!(got[1]["name"], json!("Completed 2 steps"));
    assert_eq!(got[1]["action_id"], Value::Null);
    assert_eq!(got[1]["average_conversion_time"], json!(300.0));
}

#[test]
fn exclusions_disqualify_the_person() {
    let events = vec![
        e(1, ms(1, 10, 0), "signup"),
        e(1, ms(1, 10, 5), "cancel"),
        e(1, ms(1, 10, 10), "view"),
        // The exclusion comes after the range it guards.
        e(2, ms(1, 10, 0), "signup"),
        e(2, ms(1, 10, 10), "view"),
        e(2, ms(1, 10, 15), "cancel"),
        // A later clean attempt rescues p3.
        e(3, ms(1, 10, 0), "signup"),
        e(3, ms(1, 10, 5), "cancel"),
        e(3, ms(1, 10, 10), "view"),
        e(3, ms(2, 10, 0), "signup"),
        e(3, ms(2, 10, 10), "view"),
    ];
    let q = query(
        &["signup", "view"],
        json!({"exclusions": [{"kind": "EventsNode", "event": "cancel", "funnelFromStep": 0, "funnelToStep": 1}]}),
    );
    assert_eq!(counts(&run(&q, &events)), vec![2, 2]);
}

#[test]
fn breakdown_attribution_and_other() {
    let events = vec![
        ev(1, ms(1, 10, 0), "signup", json!({"$browser": "Chrome"})),
        ev(1, ms(1, 10, 10), "view", json!({"$browser": "Safari"})),
        ev(2, ms(1, 10, 0), "signup", json!({"$browser": "Chrome"})),
        ev(3, ms(1, 10, 0), "signup", json!({})),
        ev(3, ms(1, 10, 10), "view", json!({"$browser": "Firefox"})),
    ];
    let mut q = query(&["signup", "view"], json!({}));
    q["breakdownFilter"] = json!({"breakdown": "$browser", "breakdown_type": "event"});
    let got = run(&q, &events);
    let labels: Vec<&Value> = got
        .as_array()
        .unwrap()
        .iter()
        .map(|l| &l[0]["breakdown_value"])
        .collect();
    assert_eq!(labels, vec![&json!(["Chrome"]), &json!(["Firefox"])]);
    assert_eq!(counts(&got[0]), vec![2, 1]);

    q["funnelsFilter"] =
        json!({"breakdownAttributionType": "step", "breakdownAttributionValue": 1});
    let got = run(&q, &events);
    let labels: Vec<&Value> = got
        .as_array()
        .unwrap()
        .iter()
        .map(|l| &l[0]["breakdown"])
        .collect();
    assert_eq!(
        labels,
        vec![&json!([NULL]), &json!(["Firefox"]), &json!(["Safari"])]
    );

    q["funnelsFilter"] = json!({"breakdownAttributionType": "all_events"});
    q["breakdownFilter"]["breakdown_limit"] = json!(1);
    let got = run(&q, &events);
    assert_eq!(got[0][0]["breakdown_value"], json!(["Chrome"]));
    assert_eq!(counts(&got[0]), vec![2, 0]);
    assert_eq!(got[1][0]["breakdown_value"], json!([OTHER]));
    assert_eq!(counts(&got[1]), vec![1, 0]);
}

#[test]
fn trends_count_a_person_once_per_interval_entered() {
    let events = vec![
        e(1, ms(1, 10, 0), "signup"),
        e(1, ms(1, 11, 0), "signup"),
        e(1, ms(1, 12, 0), "view"),
        e(2, ms(1, 10, 0), "signup"),
        e(2, ms(3, 10, 0), "signup"),
        e(2, ms(3, 10, 5), "view"),
    ];
    let q = query(
        &["signup", "view"],
        json!({"funnelVizType": "trends", "funnelWindowInterval": 1}),
    );
    let got = run(&q, &events);
    assert_eq!(
        got,
        json!([{"count": 5, "data": [50.0, 0.0, 100.0, 0.0, 0.0],
            "days": ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"],
            "labels": ["1-Jan-2024", "2-Jan-2024", "3-Jan-2024", "4-Jan-2024", "5-Jan-2024"]}])
    );
}

#[test]
fn time_to_convert_histogram() {
    let mut events = Vec::new();
    for (p, secs) in [(1u64, 10i64), (2, 20), (3, 95)] {
        events.push(e(p, ms(1, 10, 0), "signup"));
        events.push(e(p, ms(1, 10, 0) + secs * 1000 + 500, "view"));
    }
    let q = query(
        &["signup", "view"],
        json!({"funnelVizType": "time_to_convert"}),
    );
    // 3 persons: 2 bins of ceil((96 - 10) / 2) = 43 seconds, plus the closing bin.
    assert_eq!(
        run(&q, &events),
        json!({"bins": [[10, 2], [53, 1], [96, 0]], "average_conversion_time": 42.166666666666664})
    );
    let q = query(
        &["signup", "view"],
        json!({"funnelVizType": "time_to_convert", "binCount": 1}),
    );
    assert_eq!(run(&q, &events)["bins"], json!([[10, 3], [96, 0]]));
}

#[test]
fn person_breakdown_reads_person_properties() {
    let mut q = query(&["signup", "view"], json!({}));
    q["breakdownFilter"] = json!({"breakdown": "plan", "breakdown_type": "person"});
    let (op, interner) = build(&q);
    assert_eq!(op.person_properties(), vec!["plan".to_string()]);
    let events = [
        e(1, ms(1, 10, 0), "signup"),
        e(1, ms(1, 10, 1), "view"),
        e(2, ms(1, 10, 0), "signup"),
    ];
    let projected = Projected::new(&events, &*op, &interner);
    let plan = interner.intern("plan");
    let props = vec![(plan, interner.value(&json!("pro")).unwrap())];
    let refs: Vec<Vec<&EventRow>> = projected
        .persons
        .iter()
        .map(|(_, r)| r.iter().collect())
        .collect();
    let views: Vec<PersonView<'_>> = projected
        .persons
        .iter()
        .zip(&refs)
        .map(|((p, _), events)| PersonView {
            person: *p,
            events,
            props: if *p == 1 { &props } else { &[] },
        })
        .collect();
    let got = quill_pipeline::graph::evaluate(&*op, &views);
    // Equal step-0 counts rank by value.
    assert_eq!(got[0][0]["breakdown_value"], json!([NULL]));
    assert_eq!(counts(&got[0]), vec![1, 0]);
    assert_eq!(got[1][0]["breakdown_value"], json!(["pro"]));
    assert_eq!(counts(&got[1]), vec![1, 1]);
}

#[test]
fn errors_name_the_field() {
    let ctx = BuildContext {
        interner: Interner::new(),
        now_ms: 0,
        project: 1,
    };
    let err = |q: Value| quill_operators::build(&q, &ctx).err().unwrap().field;
    assert_eq!(err(query(&["a"], json!({}))), "series");
    assert_eq!(
        err(query(&["a", "b"], json!({"funnelOrderType": "random"}))),
        "funnelsFilter.funnelOrderType"
    );
    assert_eq!(
        err(query(
            &["a", "b"],
            json!({"funnelWindowIntervalUnit": "fortnight"})
        )),
        "funnelsFilter.funnelWindowIntervalUnit"
    );
    assert_eq!(
        err(query(
            &["a", "b"],
            json!({"exclusions": [{"event": "x", "funnelFromStep": 1, "funnelToStep": 1}]})
        )),
        "funnelsFilter.exclusions[0].funnelToStep"
    );
    assert_eq!(
        err(query(
            &["a", "b", "c"],
            json!({"funnelOrderType": "unordered",
            "exclusions": [{"event": "x", "funnelFromStep": 0, "funnelToStep": 1}]})
        )),
        "funnelsFilter.exclusions[0].funnelFromStep"
    );
    assert_eq!(
        err(query(
            &["a", "b"],
            json!({"funnelVizType": "trends", "funnelFromStep": 1, "funnelToStep": 1})
        )),
        "funnelsFilter.funnelToStep"
    );
    assert_eq!(
        err(query(&["a", "b"], json!({"bogus": 1}))),
        "funnelsFilter.bogus"
    );
}

// ---- property tests ----

const NAMES: [&str; 4] = ["a", "b", "c", "x"];
const START: i64 = 1_703_980_800_000; // 2023-12-31T00:00:00Z

fn to_events(raw: &[(u64, i64, usize, Option<u8>)]) -> Vec<RefEvent> {
    raw.iter()
        .enumerate()
        .map(|(i, (p, ts, name, b))| RefEvent {
            person: *p,
            ts_ms: *ts,
            offset: i as u64,
            event: NAMES[*name].to_string(),
            properties: match b {
                None => Map::new(),
                Some(0) => json!({"b": "one"}).as_object().cloned().unwrap(),
                Some(1) => json!({"b": "two"}).as_object().cloned().unwrap(),
                Some(2) => json!({"b": 3}).as_object().cloned().unwrap(),
                Some(_) => json!({"b": ""}).as_object().cloned().unwrap(),
            },
        })
        .collect()
}

fn arb_history() -> impl Strategy<Value = Vec<(u64, i64, usize, Option<u8>)>> {
    prop::collection::vec(
        (
            1u64..6,
            // Half-hour steps over seven days: ties and window edges are common.
            (0i64..7 * 48).prop_map(|h| START + h * 1_800_000),
            0usize..NAMES.len(),
            prop::option::of(0u8..4),
        ),
        0..40,
    )
}

fn arb_step() -> impl Strategy<Value = Value> {
    (prop::option::of(0usize..3), any::<bool>()).prop_map(|(name, filtered)| {
        let mut node = json!({"kind": "EventsNode", "event": name.map(|n| NAMES[n])});
        if filtered {
            node["properties"] =
                json!([{"key": "b", "value": "one", "operator": "exact", "type": "event"}]);
        }
        node
    })
}

fn arb_query() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(arb_step(), 2..5),
        (0usize..3, 0usize..3, 1i64..6, 0usize..3),
        (0usize..5, 1u64..3, any::<bool>()),
        (0u8..3, prop::option::of(1i64..5)),
    )
        .prop_map(|(series, (order, unit, window, excl), (attr, limit, breakdown), (viz, bins))| {
            let n = series.len();
            let order = ["ordered", "strict", "unordered"][order];
            let unit = ["hour", "day", "minute"][unit];
            let mut f = json!({
                "funnelOrderType": order,
                "funnelWindowInterval": window,
                "funnelWindowIntervalUnit": unit,
            });
            if excl > 0 {
                let (from, to) = if order == "unordered" || excl == 1 { (0, n - 1) } else { (1.min(n - 2), n - 1) };
                f["exclusions"] = json!([{"kind": "EventsNode", "event": "x", "funnelFromStep": from, "funnelToStep": to}]);
            }
            match attr {
                0 => {}
                1 => f["breakdownAttributionType"] = json!("last_touch"),
                2 => f["breakdownAttributionType"] = json!("all_events"),
                _ => {
                    f["breakdownAttributionType"] = json!("step");
                    f["breakdownAttributionValue"] = json!(attr - 3);
                }
            }
            match viz {
                0 => {}
                1 => f["funnelVizType"] = json!("trends"),
                _ => {
                    f["funnelVizType"] = json!("time_to_convert");
                    if let Some(b) = bins {
                        f["binCount"] = json!(b);
                    }
                }
            }
            let mut q = json!({"kind": "FunnelsQuery", "series": series, "funnelsFilter": f,
                "dateRange": {"date_from": "2024-01-01", "date_to": "2024-01-05"}});
            if breakdown {
                q["breakdownFilter"] = json!({"breakdown": "b", "breakdown_type": "event", "breakdown_limit": limit});
            }
            q
        })
}

/// Applies a person's contributions for `rows` with `diff` into `agg`.
fn apply(
    op: &dyn InsightOperator,
    agg: &mut dyn quill_pipeline::graph::Aggregator,
    rows: &[EventRow],
    diff: isize,
) {
    let refs: Vec<&EventRow> = rows.iter().collect();
    let view = PersonView {
        person: 1,
        events: &refs,
        props: &[],
    };
    let mut out = Vec::new();
    op.person_pass(&view, &mut out);
    for (c, d) in out {
        agg.apply(&c, d * diff);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn operator_matches_reference(q in arb_query(), raw in arb_history()) {
        let events = to_events(&raw);
        let (op, interner) = build(&q);
        let got = Projected::new(&events, &*op, &interner).evaluate(&*op);
        prop_assert_eq!(got, funnels(&events, &q));
    }

    #[test]
    fn retracting_old_history_equals_fresh_evaluation(
        q in arb_query(),
        raw in arb_history(),
        old_len in 0usize..40,
    ) {
        let events = to_events(&raw);
        let (op, interner) = build(&q);
        let projected = Projected::new(&events, &*op, &interner);
        let mut agg = op.aggregator();
        for (_, rows) in &projected.persons {
            // An older history (a prefix in log order), then its retraction and the new one.
            let mut old: Vec<EventRow> = rows.iter().filter(|r| r.offset < old_len as u64).cloned().collect();
            old.sort();
            apply(&*op, &mut *agg, &old, 1);
            apply(&*op, &mut *agg, &old, -1);
            apply(&*op, &mut *agg, rows, 1);
        }
        prop_assert_eq!(agg.render(), projected.evaluate(&*op));
    }
}

proptest! {
    // Cheap per case, and the cases that matter (a memo, an event just inside it) are rare.
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn an_event_called_unaffected_changes_nothing(
        q in arb_query(),
        raw in arb_history(),
        extra in arb_history(),
    ) {
        let (op, interner) = build(&q);
        let checked = reference::check_memos(&*op, &interner, &to_events(&raw), &to_events(&extra));
        prop_assert!(checked.is_ok(), "{}", checked.unwrap_err());
    }
}
