//! Retention: hand-worked cases, errors, a property test against the reference, and the
//! incremental contract (retract a person's old contributions, add the new ones).

mod reference;
use reference::ev;

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use quill_pipeline::graph::{BuildContext, EventRow, InsightOperator, Interner, PersonView};
use reference::{retention::retention, Projected, RefEvent};
use serde_json::{json, Map, Value};

fn ms(y: i32, mo: u32, d: u32, h: u32) -> i64 {
    Utc.with_ymd_and_hms(y, mo, d, h, 0, 0)
        .unwrap()
        .timestamp_millis()
}

fn pv(person: u64, ts_ms: i64) -> RefEvent {
    ev(person, ts_ms, "$pageview", json!({}))
}

fn build(query: &Value, now_ms: i64) -> (Arc<dyn InsightOperator>, Arc<Interner>) {
    let interner = Interner::new();
    let ctx = BuildContext {
        interner: interner.clone(),
        now_ms,
        project: 1,
    };
    (quill_operators::build(query, &ctx).unwrap(), interner)
}

/// Runs the operator and the reference and checks that they agree; returns the result.
fn run(query: Value, events: &[RefEvent], now_ms: i64) -> Value {
    let (op, interner) = build(&query, now_ms);
    let got = Projected::new(events, &*op, &interner).evaluate(&*op);
    assert_eq!(
        got,
        retention(events, &query, now_ms),
        "operator vs reference"
    );
    got
}

fn query(filter: Value) -> Value {
    json!({"kind": "RetentionQuery", "retentionFilter": filter})
}

/// The `values` counts of every row.
fn table(result: &Value) -> Vec<Vec<i64>> {
    result
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["count"].as_i64().unwrap())
                .collect()
        })
        .collect()
}

fn dates(result: &Value) -> Vec<&str> {
    result
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["date"].as_str().unwrap())
        .collect()
}

#[test]
fn three_days_in_full() {
    let now = ms(2024, 1, 3, 12);
    let events = [
        pv(1, ms(2024, 1, 1, 9)),
        pv(1, ms(2024, 1, 1, 10)),
        pv(1, ms(2024, 1, 3, 9)),
        pv(2, ms(2024, 1, 2, 9)),
        pv(2, ms(2024, 1, 3, 23)),
        // Before the range: not a cohort, not a return.
        pv(3, ms(2023, 12, 31, 23)),
    ];
    let got = run(query(json!({"totalIntervals": 3})), &events, now);
    let expected = json!([
        {"date": "2024-01-01T00:00:00Z", "label": "Day 0", "values": [
            {"count": 1, "label": "Day 0"}, {"count": 0, "label": "Day 1"}, {"count": 1, "label": "Day 2"}]},
        {"date": "2024-01-02T00:00:00Z", "label": "Day 1", "values": [
            {"count": 1, "label": "Day 0"}, {"count": 1, "label": "Day 1"}, {"count": 0, "label": "Day 2"}]},
        {"date": "2024-01-03T00:00:00Z", "label": "Day 2", "values": [
            {"count": 2, "label": "Day 0"}, {"count": 0, "label": "Day 1"}, {"count": 0, "label": "Day 2"}]},
    ]);
    assert_eq!(got, expected);
}

#[test]
fn defaults_are_seven_days_of_pageviews_ending_today() {
    let now = ms(2024, 1, 7, 12);
    let events = [
        pv(1, ms(2024, 1, 1, 0)),
        pv(1, ms(2024, 1, 2, 0)),
        pv(1, ms(2024, 1, 4, 0)),
        pv(2, ms(2024, 1, 2, 0)),
        pv(2, ms(2024, 1, 3, 0)),
        ev(2, ms(2024, 1, 5, 0), "other", json!({})),
        // After today: outside the range.
        pv(2, ms(2024, 1, 8, 0)),
    ];
    let got = run(json!({"kind": "RetentionQuery"}), &events, now);
    assert_eq!(dates(&got)[0], "2024-01-01T00:00:00Z");
    assert_eq!(dates(&got)[6], "2024-01-07T00:00:00Z");
    let mut expected = vec![vec![0; 7]; 7];
    expected[0] = vec![1, 1, 0, 1, 0, 0, 0];
    expected[1] = vec![2, 1, 1, 0, 0, 0, 0];
    expected[2] = vec![1, 0, 0, 0, 0, 0, 0];
    expected[3] = vec![1, 0, 0, 0, 0, 0, 0];
    assert_eq!(table(&got), expected);
    assert_eq!(got[6]["label"], "Day 6");
    assert_eq!(got[6]["values"][6]["label"], "Day 6");
}

#[test]
fn a_return_in_the_cohort_interval_is_not_a_return() {
    let now = ms(2024, 1, 2, 0);
    let events = [pv(1, ms(2024, 1, 1, 1)), pv(1, ms(2024, 1, 1, 20))];
    let got = run(query(json!({"totalIntervals": 2})), &events, now);
    assert_eq!(table(&got), vec![vec![1, 0], vec![0, 0]]);
}

#[test]
fn target_and_returning_entities_differ() {
    let now = ms(2024, 1, 4, 0);
    let f = json!({"totalIntervals": 4,
        "targetEntity": {"id": "signup", "type": "events", "name": "signup"},
        "returningEntity": {"id": null, "type": "events"}});
    let events = [
        ev(1, ms(2024, 1, 1, 0), "signup", json!({})),
        ev(1, ms(2024, 1, 2, 0), "anything", json!({})),
        // A pageview is neither a target nor excluded from returning (any event returns).
        pv(2, ms(2024, 1, 1, 0)),
        ev(1, ms(2024, 1, 4, 0), "signup", json!({})),
    ];
    let got = run(query(f), &events, now);
    assert_eq!(table(&got)[0], vec![1, 1, 0, 1]);
    assert_eq!(table(&got)[3], vec![1, 0, 0, 0]);
}

#[test]
fn minimum_occurrences_and_cumulative() {
    let now = ms(2024, 1, 4, 0);
    let events = [
        pv(1, ms(2024, 1, 1, 0)),
        pv(1, ms(2024, 1, 2, 0)),
        pv(1, ms(2024, 1, 4, 0)),
        pv(1, ms(2024, 1, 4, 1)),
    ];
    let got = run(
        query(json!({"totalIntervals": 4, "minimumOccurrences": 2})),
        &events,
        now,
    );
    assert_eq!(table(&got)[0], vec![1, 0, 0, 1]);
    let got = run(
        query(json!({"totalIntervals": 4, "cumulative": true})),
        &events,
        now,
    );
    assert_eq!(table(&got)[0], vec![1, 1, 1, 1]);
    assert_eq!(table(&got)[1], vec![1, 1, 1, 0]);
}

#[test]
fn first_time_and_first_ever_occurrence() {
    let now = ms(2024, 1, 4, 0);
    let target = json!({"id": "buy", "type": "events",
        "properties": [{"key": "plan", "value": "pro", "operator": "exact", "type": "event"}]});
    let events = [
        // Person 1 first buys "free" on day 0, then "pro" on day 1, returns on day 2.
        ev(1, ms(2024, 1, 1, 0), "buy", json!({"plan": "free"})),
        ev(1, ms(2024, 1, 2, 0), "buy", json!({"plan": "pro"})),
        pv(1, ms(2024, 1, 3, 0)),
        // Person 2 first buys "pro" on day 2; their earlier pageviews are not cohorts.
        pv(2, ms(2024, 1, 1, 0)),
        ev(2, ms(2024, 1, 3, 0), "buy", json!({"plan": "pro"})),
        ev(2, ms(2024, 1, 4, 0), "buy", json!({"plan": "pro"})),
        pv(2, ms(2024, 1, 4, 0)),
        // Person 3 bought before the range: no cohort in either mode.
        ev(3, ms(2023, 12, 1, 0), "buy", json!({"plan": "pro"})),
        ev(3, ms(2024, 1, 2, 0), "buy", json!({"plan": "pro"})),
    ];
    let first_time = run(
        query(
            json!({"totalIntervals": 4, "retentionType": "retention_first_time", "targetEntity": target}),
        ),
        &events,
        now,
    );
    assert_eq!(
        table(&first_time),
        vec![vec![0; 4], vec![1, 1, 0, 0], vec![1, 1, 0, 0], vec![0; 4]]
    );
    let first_ever = run(
        query(
            json!({"totalIntervals": 4, "retentionType": "retention_first_ever_occurrence", "targetEntity": target}),
        ),
        &events,
        now,
    );
    // Person 1's first-ever "buy" was not "pro": no cohort.
    assert_eq!(
        table(&first_ever),
        vec![vec![0; 4], vec![0; 4], vec![1, 1, 0, 0], vec![0; 4]]
    );
}

#[test]
fn weeks_start_on_sunday_and_months_on_the_first() {
    // Wednesday 10 January 2024.
    let now = ms(2024, 1, 10, 12);
    let events = [
        pv(1, ms(2023, 12, 31, 0)),
        pv(1, ms(2024, 1, 6, 23)),
        pv(1, ms(2024, 1, 7, 0)),
    ];
    let got = run(
        query(json!({"period": "Week", "totalIntervals": 3})),
        &events,
        now,
    );
    assert_eq!(
        dates(&got),
        vec![
            "2023-12-24T00:00:00Z",
            "2023-12-31T00:00:00Z",
            "2024-01-07T00:00:00Z"
        ]
    );
    assert_eq!(got[1]["label"], "Week 1");
    assert_eq!(table(&got)[1], vec![1, 1, 0]);

    let got = run(
        query(json!({"period": "Month", "totalIntervals": 3})),
        &events,
        now,
    );
    assert_eq!(
        dates(&got),
        vec![
            "2023-11-01T00:00:00Z",
            "2023-12-01T00:00:00Z",
            "2024-01-01T00:00:00Z"
        ]
    );
    assert_eq!(table(&got)[1], vec![1, 1, 0]);
    assert_eq!(got[0]["values"][2]["label"], "Month 2");
}

#[test]
fn hours_and_an_explicit_date_to() {
    let now = ms(2024, 3, 1, 0);
    let q = json!({"kind": "RetentionQuery", "dateRange": {"date_to": "2024-01-01T05:30:00Z"},
        "retentionFilter": {"period": "Hour", "totalIntervals": 3}});
    let events = [
        pv(1, ms(2024, 1, 1, 3)),
        pv(1, ms(2024, 1, 1, 5)),
        pv(1, ms(2024, 1, 1, 6)),
    ];
    let got = run(q, &events, now);
    assert_eq!(
        dates(&got),
        vec![
            "2024-01-01T03:00:00Z",
            "2024-01-01T04:00:00Z",
            "2024-01-01T05:00:00Z"
        ]
    );
    assert_eq!(table(&got), vec![vec![1, 0, 1], vec![0; 3], vec![1, 0, 0]]);

    let q = json!({"kind": "RetentionQuery", "dateRange": {"date_to": "2024-01-02"},
        "retentionFilter": {"totalIntervals": 2}});
    let events = [
        pv(1, ms(2024, 1, 1, 3)),
        pv(1, ms(2024, 1, 2, 23)),
        pv(1, ms(2024, 1, 3, 0)),
    ];
    assert_eq!(table(&run(q, &events, now)), vec![vec![1, 1], vec![1, 0]]);
}

#[test]
fn query_properties_filter_every_event() {
    let now = ms(2024, 1, 2, 0);
    let q = json!({"kind": "RetentionQuery", "retentionFilter": {"totalIntervals": 2},
        "properties": [{"key": "$browser", "value": ["Chrome"], "operator": "exact", "type": "event"}]});
    let events = [
        ev(
            1,
            ms(2024, 1, 1, 0),
            "$pageview",
            json!({"$browser": "Chrome"}),
        ),
        ev(
            1,
            ms(2024, 1, 2, 0),
            "$pageview",
            json!({"$browser": "Safari"}),
        ),
        ev(
            2,
            ms(2024, 1, 1, 0),
            "$pageview",
            json!({"$browser": "Safari"}),
        ),
    ];
    assert_eq!(table(&run(q, &events, now)), vec![vec![1, 0], vec![0, 0]]);
}

#[test]
fn event_breakdown_with_null_and_other() {
    let now = ms(2024, 1, 2, 0);
    let q = json!({"kind": "RetentionQuery", "retentionFilter": {"totalIntervals": 2},
        "breakdownFilter": {"breakdown_type": "event", "breakdown": "$browser", "breakdown_limit": 2}});
    let b = |p, d, v: Value| ev(p, ms(2024, 1, d, 0), "$pageview", json!({"$browser": v}));
    let events = [
        b(1, 1, json!("Chrome")),
        b(1, 2, json!("Chrome")),
        b(2, 1, json!("Chrome")),
        // Person 2's Safari day-2 event is a return only within the Safari bucket.
        b(2, 2, json!("Safari")),
        pv(3, ms(2024, 1, 1, 0)),
        pv(3, ms(2024, 1, 1, 5)),
        b(4, 1, json!(5)),
    ];
    let got = run(q, &events, now);
    let rows = got.as_array().unwrap();
    let values: Vec<&str> = rows
        .iter()
        .map(|r| r["breakdown_value"].as_str().unwrap())
        .collect();
    // Chrome (2 cohort persons) first; then the ties at 1 by value: "$$_posthog_breakdown_null_$$"
    // sorts before "5" and "Safari", which fold into Other.
    assert_eq!(
        values,
        vec![
            "Chrome",
            "Chrome",
            "$$_posthog_breakdown_null_$$",
            "$$_posthog_breakdown_null_$$",
            "$$_posthog_breakdown_other_$$",
            "$$_posthog_breakdown_other_$$"
        ]
    );
    assert_eq!(
        table(&got),
        vec![
            vec![2, 1],
            vec![1, 0],
            vec![1, 0],
            vec![0, 0],
            vec![1, 0],
            vec![1, 0]
        ]
    );
}

#[test]
fn errors_name_the_field() {
    let interner = Interner::new();
    let ctx = BuildContext {
        interner,
        now_ms: 0,
        project: 1,
    };
    let cases = [
        (json!({"period": "Fortnight"}), "retentionFilter.period"),
        (
            json!({"totalIntervals": -1}),
            "retentionFilter.totalIntervals",
        ),
        (
            json!({"targetEntity": {"id": 7, "type": "actions"}}),
            "retentionFilter.targetEntity.type",
        ),
        (
            json!({"returningEntity": {"id": 5, "type": "events"}}),
            "retentionFilter.returningEntity.id",
        ),
    ];
    for (filter, field) in cases {
        let err = quill_operators::build(&query(filter.clone()), &ctx)
            .err()
            .expect("an error");
        assert_eq!(err.field, field, "{filter}");
    }
    let top_level = [
        (
            json!({"aggregation_group_type_index": 0}),
            "aggregation_group_type_index",
        ),
        (json!({"bogus": 1}), "bogus"),
        (
            json!({"breakdownFilter": {"breakdown_type": "cohort", "breakdown": [3]}}),
            "breakdownFilter.breakdown",
        ),
        (
            json!({"breakdownFilter": {"breakdown_type": "group", "breakdown": "x"}}),
            "breakdownFilter.breakdown_type",
        ),
        (
            json!({"breakdownFilter": {"breakdowns": [{"property": "a"}, {"property": "b"}]}}),
            "breakdownFilter.breakdowns",
        ),
        (
            json!({"dateRange": {"date_to": "someday"}}),
            "dateRange.date_to",
        ),
        (
            json!({"properties": [{"key": "a", "operator": "nope", "value": 1}]}),
            "properties[0].operator",
        ),
    ];
    for (extra, field) in top_level {
        let mut q = json!({"kind": "RetentionQuery"});
        for (k, v) in extra.as_object().unwrap() {
            q[k] = v.clone();
        }
        let err = quill_operators::build(&q, &ctx).err().expect("an error");
        assert_eq!(err.field, field, "{q}");
    }
}

#[test]
fn person_breakdown_reads_person_properties() {
    let now = ms(2024, 1, 2, 0);
    // PostHog's newer single-element `breakdowns` form.
    let q = json!({"kind": "RetentionQuery", "retentionFilter": {"totalIntervals": 2},
        "breakdownFilter": {"breakdowns": [{"property": "plan", "type": "person"}]}});
    let (op, interner) = build(&q, now);
    assert_eq!(op.person_properties(), vec!["plan".to_string()]);
    assert!(op.event_properties().is_empty());
    let events = [
        pv(1, ms(2024, 1, 1, 0)),
        pv(1, ms(2024, 1, 2, 0)),
        pv(2, ms(2024, 1, 2, 0)),
        pv(3, ms(2024, 1, 1, 0)),
    ];
    let projected = Projected::new(&events, &*op, &interner);
    let plan = interner.intern("plan");
    let props = |p: u64| match p {
        1 | 2 => vec![(plan, interner.value(&json!("pro")).unwrap())],
        _ => vec![],
    };
    let all_props: Vec<_> = projected.persons.iter().map(|(p, _)| props(*p)).collect();
    let refs: Vec<Vec<&EventRow>> = projected
        .persons
        .iter()
        .map(|(_, rows)| rows.iter().collect())
        .collect();
    let views: Vec<PersonView<'_>> = projected
        .persons
        .iter()
        .zip(&refs)
        .zip(&all_props)
        .map(|(((p, _), events), props)| PersonView {
            person: *p,
            events,
            props,
        })
        .collect();
    let got = quill_pipeline::graph::evaluate(&*op, &views);
    let labels: Vec<&str> = got
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["breakdown_value"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        vec![
            "pro",
            "pro",
            "$$_posthog_breakdown_null_$$",
            "$$_posthog_breakdown_null_$$"
        ]
    );
    assert_eq!(
        table(&got),
        vec![vec![1, 1], vec![2, 0], vec![1, 0], vec![0, 0]]
    );
}

/// Applies `history`'s contributions with `diff` into `agg`.
fn apply(
    op: &dyn InsightOperator,
    agg: &mut dyn quill_pipeline::graph::Aggregator,
    person: u64,
    rows: &[EventRow],
    diff: isize,
) {
    let refs: Vec<&EventRow> = rows.iter().collect();
    let view = PersonView {
        person,
        events: &refs,
        props: &[],
    };
    let mut out = Vec::new();
    op.person_pass(&view, &mut out);
    for (c, d) in out {
        agg.apply(&c, d * diff);
    }
}

// ---- property tests ----

const NAMES: [&str; 3] = ["$pageview", "signup", "buy"];

fn arb_event(span_ms: i64, start_ms: i64) -> impl Strategy<Value = (u64, i64, usize, Option<u8>)> {
    (
        1u64..5,
        // Coarse timestamps so that ties and shared intervals are common.
        (0..(span_ms / 3_600_000)).prop_map(move |h| start_ms + h * 3_600_000),
        0usize..NAMES.len(),
        prop::option::of(0u8..3),
    )
}

fn to_events(raw: &[(u64, i64, usize, Option<u8>)]) -> Vec<RefEvent> {
    raw.iter()
        .enumerate()
        .map(|(i, (p, ts, name, plan))| RefEvent {
            person: *p,
            ts_ms: *ts,
            offset: i as u64,
            event: NAMES[*name].to_string(),
            properties: match plan {
                None => Map::new(),
                Some(0) => json!({"plan": "free"}).as_object().cloned().unwrap(),
                Some(1) => json!({"plan": "pro"}).as_object().cloned().unwrap(),
                Some(_) => json!({"plan": 2}).as_object().cloned().unwrap(),
            },
        })
        .collect()
}

fn arb_entity() -> impl Strategy<Value = Value> {
    (prop::option::of(0usize..NAMES.len()), 0u8..4).prop_map(|(name, filter)| {
        let id = name.map(|n| Value::from(NAMES[n])).unwrap_or(Value::Null);
        let properties = match filter {
            0 => json!([]),
            1 => json!([{"key": "plan", "value": "pro", "operator": "exact", "type": "event"}]),
            2 => {
                json!([{"key": "plan", "value": ["free", 2], "operator": "exact", "type": "event"}])
            }
            _ => json!([{"key": "plan", "operator": "is_set", "type": "event"}]),
        };
        json!({"id": id, "type": "events", "properties": properties})
    })
}

fn arb_query() -> impl Strategy<Value = Value> {
    (
        (0usize..3, 0usize..4, 1usize..9, any::<bool>(), 1u32..3),
        prop::option::of(arb_entity()),
        prop::option::of(arb_entity()),
        any::<bool>(),
        prop::option::of(1usize..4),
    )
        .prop_map(|((kind, period, n, cumulative, min), target, returning, global, breakdown)| {
            let kind = ["retention_recurring", "retention_first_time", "retention_first_ever_occurrence"][kind];
            let period = ["Hour", "Day", "Week", "Month"][period];
            let mut f = json!({"retentionType": kind, "period": period, "totalIntervals": n,
                "cumulative": cumulative, "minimumOccurrences": min});
            if let Some(t) = target {
                f["targetEntity"] = t;
            }
            if let Some(r) = returning {
                f["returningEntity"] = r;
            }
            let mut q = json!({"kind": "RetentionQuery", "retentionFilter": f,
                "dateRange": {"date_to": "2024-03-10T10:00:00Z"}});
            if global {
                q["properties"] = json!([{"key": "plan", "value": "free", "operator": "is_not", "type": "event"}]);
            }
            if let Some(limit) = breakdown {
                q["breakdownFilter"] = json!({"breakdown_type": "event", "breakdown": "plan", "breakdown_limit": limit});
            }
            q
        })
}

/// Events spread over the grid of every period the test may pick, and a little before it.
fn arb_history() -> impl Strategy<Value = Vec<(u64, i64, usize, Option<u8>)>> {
    prop_oneof![
        // Hours and days around the end of the range.
        prop::collection::vec(arb_event(12 * 86_400_000, ms(2024, 2, 28, 0)), 0..40),
        // Weeks and months.
        prop::collection::vec(arb_event(130 * 86_400_000, ms(2023, 11, 1, 0)), 0..40),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn operator_matches_reference(q in arb_query(), raw in arb_history()) {
        let events = to_events(&raw);
        let now = ms(2024, 3, 10, 12);
        let (op, interner) = build(&q, now);
        let got = Projected::new(&events, &*op, &interner).evaluate(&*op);
        prop_assert_eq!(got, retention(&events, &q, now));
    }

    #[test]
    fn retracting_old_history_equals_fresh_evaluation(
        q in arb_query(),
        raw in arb_history(),
        extra in arb_history(),
        drop in 0usize..5,
    ) {
        let now = ms(2024, 3, 10, 12);
        let (op, interner) = build(&q, now);
        let old = to_events(&raw);
        // The new history: some events of the old one removed, some added (late or merged).
        let mut new: Vec<RefEvent> = old.iter().enumerate().filter(|(i, _)| i % 5 != drop).map(|(_, e)| e.clone()).collect();
        for (i, mut e) in to_events(&extra).into_iter().enumerate() {
            e.offset = 10_000 + i as u64;
            new.push(e);
        }
        let old_rows = Projected::new(&old, &*op, &interner);
        let new_rows = Projected::new(&new, &*op, &interner);
        let mut agg = op.aggregator();
        for (p, rows) in &old_rows.persons {
            apply(&*op, &mut *agg, *p, rows, 1);
        }
        for (p, rows) in &old_rows.persons {
            apply(&*op, &mut *agg, *p, rows, -1);
        }
        for (p, rows) in &new_rows.persons {
            apply(&*op, &mut *agg, *p, rows, 1);
        }
        prop_assert_eq!(agg.render(), new_rows.evaluate(&*op));
        prop_assert_eq!(agg.render(), retention(&new, &q, now));
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
        let (op, interner) = build(&q, ms(2024, 3, 10, 12));
        let checked = reference::check_memos(&*op, &interner, &to_events(&raw), &to_events(&extra));
        prop_assert!(checked.is_ok(), "{}", checked.unwrap_err());
    }
}
