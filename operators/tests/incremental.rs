//! The whole incremental path against the from-scratch references.
//!
//! Random streams of events (with out-of-order timestamps), identity merges and person
//! deletions go through the real feeder and dataflow in many small batches. After every batch
//! the maintained result of each insight must equal its reference computed from scratch over
//! the model's current events.

mod reference;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use quill_pipeline::event::{Record, StoredEvent};
use quill_pipeline::graph::feeder::{Feeder, GraphBatch, IdentityChanges, Projection};
use quill_pipeline::graph::{BuildContext, Engine, InsightOperator, Interner};
use reference::RefEvent;
use serde_json::{json, Map, Value};

/// 2024-01-15T12:00:00Z.
const NOW_MS: i64 = 1_705_320_000_000;
const DAY_MS: i64 = 86_400_000;

type Reference = fn(&[RefEvent], &Value, i64) -> Value;

fn insights() -> Vec<(Value, Reference)> {
    let range = json!({"date_from": "2024-01-05", "date_to": "2024-01-15"});
    vec![
        (
            json!({"kind": "TrendsQuery", "dateRange": range, "interval": "day",
                   "series": [{"kind": "EventsNode", "event": "$pageview", "math": "total"},
                              {"kind": "EventsNode", "event": "signup", "math": "dau"}]}),
            (|e, q, _| reference::trends::trends(q, e)) as Reference,
        ),
        (
            json!({"kind": "TrendsQuery", "dateRange": range, "interval": "day",
                   "series": [{"kind": "EventsNode", "event": null, "math": "weekly_active"}],
                   "breakdownFilter": {"breakdown_type": "event", "breakdown": "plan"}}),
            (|e, q, _| reference::trends::trends(q, e)) as Reference,
        ),
        (
            // Event-local property math and sessions: mapped per event, never replayed.
            json!({"kind": "TrendsQuery", "dateRange": range, "interval": "day",
                   "series": [{"kind": "EventsNode", "event": null, "math": "sum", "math_property": "price"},
                              {"kind": "EventsNode", "event": "$pageview", "math": "median", "math_property": "price"},
                              {"kind": "EventsNode", "event": null, "math": "unique_session"}]}),
            (|e, q, _| reference::trends::trends(q, e)) as Reference,
        ),
        (
            // A per-actor math needs each person's count: replayed per person.
            json!({"kind": "TrendsQuery", "dateRange": range, "interval": "day",
                   "series": [{"kind": "EventsNode", "event": null, "math": "avg_count_per_actor"}]}),
            (|e, q, _| reference::trends::trends(q, e)) as Reference,
        ),
        (
            json!({"kind": "FunnelsQuery", "dateRange": range,
                   "series": [{"kind": "EventsNode", "event": "$pageview"},
                              {"kind": "EventsNode", "event": "signup"},
                              {"kind": "EventsNode", "event": "purchase"}],
                   "funnelsFilter": {"funnelWindowInterval": 2, "funnelWindowIntervalUnit": "day"}}),
            (|e, q, _| reference::funnels::funnels(e, q)) as Reference,
        ),
        (
            json!({"kind": "FunnelsQuery", "dateRange": range,
                   "series": [{"kind": "EventsNode", "event": "$pageview"},
                              {"kind": "EventsNode", "event": "purchase"}],
                   "breakdownFilter": {"breakdown_type": "event", "breakdown": "plan"},
                   "funnelsFilter": {"breakdownAttributionType": "first_touch"}}),
            (|e, q, _| reference::funnels::funnels(e, q)) as Reference,
        ),
        (
            json!({"kind": "RetentionQuery", "dateRange": {"date_to": "2024-01-15"},
                   "retentionFilter": {"period": "Day", "totalIntervals": 7,
                                       "targetEntity": {"id": "$pageview", "type": "events"},
                                       "returningEntity": {"id": "purchase", "type": "events"}}}),
            reference::retention::retention as Reference,
        ),
        (
            json!({"kind": "RetentionQuery", "dateRange": {"date_to": "2024-01-15"},
                   "retentionFilter": {"period": "Day", "totalIntervals": 5,
                                       "retentionType": "retention_first_time", "cumulative": true}}),
            reference::retention::retention as Reference,
        ),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    /// An event of distinct id `did` at `ts` (ms before now), named by index, with a plan.
    Event {
        did: usize,
        ago_ms: i64,
        event: usize,
        plan: Option<usize>,
    },
    /// Every distinct id of `from`'s person moves to `into`'s person.
    Merge { from: usize, into: usize },
    /// The person of `did` is deleted with their events.
    Delete { did: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..6usize, 0..12 * DAY_MS, 0..4usize, proptest::option::of(0..3usize))
            .prop_map(|(did, ago_ms, event, plan)| Op::Event { did, ago_ms, event, plan }),
        1 => (0..6usize, 0..6usize).prop_map(|(from, into)| Op::Merge { from, into }),
        1 => (0..6usize).prop_map(|did| Op::Delete { did }),
    ]
}

const EVENTS: [&str; 4] = ["$pageview", "signup", "purchase", "other"];
const PLANS: [&str; 3] = ["free", "pro", "team"];

#[derive(Default)]
struct Model {
    person_of: HashMap<usize, u64>,
    cutoff: HashMap<usize, u64>,
    events: Vec<(usize, RefEvent)>,
    next_person: u64,
    offset: u64,
}

impl Model {
    fn did(i: usize) -> String {
        format!("user-{i}")
    }

    fn person(&mut self, did: usize, identity: &mut IdentityChanges) -> u64 {
        if let Some(p) = self.person_of.get(&did) {
            return *p;
        }
        self.next_person += 1;
        let p = self.next_person;
        self.person_of.insert(did, p);
        identity.distinct_ids.push((1, Self::did(did), Some(p)));
        p
    }

    fn apply(&mut self, ops: &[Op]) -> GraphBatch {
        let start = self.offset;
        let mut records = Vec::new();
        let mut identity = IdentityChanges::default();
        for op in ops {
            self.offset += 10;
            match op {
                Op::Event {
                    did,
                    ago_ms,
                    event,
                    plan,
                } => {
                    self.person(*did, &mut identity);
                    let mut properties = Map::new();
                    if let Some(plan) = plan {
                        properties.insert("plan".into(), json!(PLANS[*plan]));
                    }
                    properties.insert("price".into(), json!(ago_ms % 97));
                    let session = format!("s{}", (ago_ms / DAY_MS) % 3);
                    properties.insert("$session_id".into(), json!(session));
                    let ts_ms = NOW_MS - ago_ms;
                    records.push((
                        self.offset,
                        Record::Event(StoredEvent {
                            uuid: [0; 16],
                            project: 1,
                            event: EVENTS[*event].into(),
                            distinct_id: Self::did(*did),
                            properties: Value::Object(properties.clone()).to_string(),
                            timestamp_us: ts_ms * 1000,
                            received_us: 0,
                        }),
                    ));
                    self.events.push((
                        *did,
                        RefEvent {
                            person: 0,
                            ts_ms,
                            offset: self.offset,
                            event: EVENTS[*event].into(),
                            properties,
                        },
                    ));
                }
                Op::Merge { from, into } => {
                    let (Some(a), Some(b)) = (
                        self.person_of.get(from).copied(),
                        self.person_of.get(into).copied(),
                    ) else {
                        continue;
                    };
                    if a == b {
                        continue;
                    }
                    for (did, p) in self.person_of.iter_mut() {
                        if *p == a {
                            *p = b;
                            identity.distinct_ids.push((1, Self::did(*did), Some(b)));
                        }
                    }
                }
                Op::Delete { did } => {
                    let Some(p) = self.person_of.get(did).copied() else {
                        continue;
                    };
                    let dids: Vec<usize> = self
                        .person_of
                        .iter()
                        .filter(|(_, q)| **q == p)
                        .map(|(d, _)| *d)
                        .collect();
                    for d in dids {
                        self.person_of.remove(&d);
                        self.cutoff.insert(d, self.offset + 1);
                        identity.cutoffs.push((1, Self::did(d), self.offset + 1));
                        identity.distinct_ids.push((1, Self::did(d), None));
                    }
                }
            }
        }
        // Identity reports each distinct id once per batch, as it is at the batch's end.
        let mut last: HashMap<String, Option<u64>> = HashMap::new();
        for (_, did, p) in identity.distinct_ids.drain(..) {
            last.insert(did, p);
        }
        identity.distinct_ids = last.into_iter().map(|(d, p)| (1, d, p)).collect();
        GraphBatch {
            start,
            next: self.offset + 1,
            records,
            identity,
        }
    }

    /// The events that count now, each resolved to its current person.
    fn current(&self) -> Vec<RefEvent> {
        self.events
            .iter()
            .filter(|(did, e)| e.offset >= self.cutoff.get(did).copied().unwrap_or(0))
            .filter_map(|(did, e)| {
                self.person_of.get(did).map(|p| RefEvent {
                    person: *p,
                    ..e.clone()
                })
            })
            .collect()
    }
}

fn wait_for(engine: &Engine, key: u64, offset: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(p) = engine.result(key) {
            if p.offset >= offset {
                return (*p.result).clone();
            }
        }
        assert!(Instant::now() < deadline, "no result for {key} at {offset}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn run(batches: Vec<Vec<Op>>, workers: usize) -> Result<(), TestCaseError> {
    let interner = Interner::new();
    let ctx = BuildContext {
        interner: interner.clone(),
        now_ms: NOW_MS,
        project: 1,
    };
    let queries = insights();
    let ops: Vec<Arc<dyn InsightOperator>> = queries
        .iter()
        .map(|(q, _)| quill_operators::build(q, &ctx).expect("the test queries build"))
        .collect();
    let projection = ops.iter().fold(Projection::default(), |p, op| {
        p.union(&Projection {
            event_keys: op.event_properties(),
            person_keys: op.person_properties(),
        })
    });
    // One person per scheduling of the replay: every batch of more than one person, and the
    // catching up of the set installed halfway, span several schedulings.
    quill_pipeline::graph::set_replay_slice(Duration::ZERO);
    // And the event pass waits whenever the distinct behind it has anything left to apply.
    quill_pipeline::graph::set_backlog_limit(0);
    let engine = Engine::start(workers).expect("engine");
    let install = || {
        engine
            .set_insights(
                ops.iter()
                    .cloned()
                    .enumerate()
                    .map(|(i, op)| (i as u64, op))
                    .collect(),
            )
            .expect("install")
    };
    install();
    let mut feeder = Feeder::new(engine.clone(), interner, &projection);
    let mut model = Model::default();
    for (n, ops_batch) in batches.iter().enumerate() {
        // A new set over the history so far (as when an insight is registered or the dates
        // move): the old one publishes until it has caught up.
        if n == batches.len() / 2 && n > 0 {
            install();
        }
        let batch = model.apply(ops_batch);
        feeder.apply(&batch).expect("apply");
        feeder.flush(batch.next).expect("flush");
        let events = model.current();
        for (i, (query, reference)) in queries.iter().enumerate() {
            let got = wait_for(&engine, i as u64, batch.next);
            let want = reference(&events, query, NOW_MS);
            prop_assert_eq!(got, want, "insight {} after {} events", i, events.len());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn maintained_results_equal_the_references(
        batches in proptest::collection::vec(proptest::collection::vec(op(), 1..8), 1..10),
        workers in 1..3usize,
    ) {
        run(batches, workers)?;
    }
}
