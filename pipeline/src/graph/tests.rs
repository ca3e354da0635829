//! The runtime and engine against a toy operator: events per person, re-keyed by merges.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::*;

/// Contribution `[events]` per person; the result is `{"persons": n, "events": m}`.
struct Counting;

impl InsightOperator for Counting {
    fn project(&self) -> u32 {
        1
    }
    fn event_properties(&self) -> Vec<String> {
        Vec::new()
    }
    fn person_pass(&self, person: &PersonView<'_>, out: &mut Vec<(Contribution, isize)>) {
        out.push((vec![person.events.len() as i64], 1));
    }
    fn aggregator(&self) -> Box<dyn Aggregator> {
        Tally::boxed(|counts| {
            let persons: isize = counts.values().sum();
            let events: i64 = counts.iter().map(|(e, n)| e * *n as i64).sum();
            serde_json::json!({"persons": persons, "events": events})
        })
    }
}

/// The toy operators' aggregator: how many persons contributed each `[value]`, rendered by
/// the operator's own function.
pub(super) struct Tally {
    counts: BTreeMap<i64, isize>,
    render: fn(&BTreeMap<i64, isize>) -> serde_json::Value,
}

impl Tally {
    pub(super) fn boxed(render: fn(&BTreeMap<i64, isize>) -> serde_json::Value) -> Box<Self> {
        Box::new(Tally {
            counts: BTreeMap::new(),
            render,
        })
    }
}

impl Aggregator for Tally {
    fn apply(&mut self, c: &[i64], diff: isize) {
        *self.counts.entry(c[0]).or_default() += diff;
        self.counts.retain(|_, n| *n != 0);
    }
    fn render(&self) -> serde_json::Value {
        (self.render)(&self.counts)
    }
}

fn row(offset: u64) -> EventRow {
    EventRow {
        ts_ms: offset as i64 * 1000,
        offset,
        props: Props::new(0, []),
    }
}

fn mapping(person: u64) -> Mapping {
    Mapping {
        person: (1, person),
        min_offset: 0,
    }
}

pub(super) fn wait_for(engine: &Engine, id: u64, offset: u64) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(p) = engine.result(id) {
            if p.offset >= offset {
                return (*p.result).clone();
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no result at {offset}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn merges_rekey_and_deletions_retract() {
    for workers in [1, 2] {
        let engine = Engine::start(workers).unwrap();
        engine.set_insights(vec![(7, Arc::new(Counting))]).unwrap();
        // distinct ids 10 and 11 belong to persons 1 and 2.
        let mut round = Round::default();
        round.mappings.push((10, mapping(1), 1));
        round.mappings.push((11, mapping(2), 1));
        for o in 0..3 {
            round.events.push((10, row(o), 1));
        }
        round.events.push((11, row(3), 1));
        engine.feed(round, 100).unwrap();
        assert_eq!(
            wait_for(&engine, 7, 100),
            serde_json::json!({"persons": 2, "events": 4})
        );

        // 11 merges into person 1: its past event re-keys.
        let mut round = Round::default();
        round.mappings.push((11, mapping(2), -1));
        round.mappings.push((11, mapping(1), 1));
        engine.feed(round, 200).unwrap();
        assert_eq!(
            wait_for(&engine, 7, 200),
            serde_json::json!({"persons": 1, "events": 4})
        );

        // Deleting events of 10 before offset 2 keeps 2 of its events.
        let mut round = Round::default();
        round.mappings.push((10, mapping(1), -1));
        round.mappings.push((
            10,
            Mapping {
                person: (1, 1),
                min_offset: 2,
            },
            1,
        ));
        engine.feed(round, 300).unwrap();
        assert_eq!(
            wait_for(&engine, 7, 300),
            serde_json::json!({"persons": 1, "events": 2})
        );

        // An ad hoc query reads the same arrangement.
        let answer = engine
            .query(Arc::new(Counting), Duration::from_secs(20))
            .unwrap();
        assert_eq!(
            *answer.result,
            serde_json::json!({"persons": 1, "events": 2})
        );

        // A newly installed set starts from the arrangement, not from scratch.
        engine.set_insights(vec![(8, Arc::new(Counting))]).unwrap();
        engine.feed(Round::default(), 400).unwrap();
        assert_eq!(
            wait_for(&engine, 8, 400),
            serde_json::json!({"persons": 1, "events": 2})
        );
        assert!(
            engine.result(7).is_none(),
            "a removed insight stops being published"
        );
    }
}

#[test]
fn a_set_installed_over_history_agrees_with_the_old_one() {
    for attempt in 0..50 {
        let engine = Engine::start(1).unwrap();
        engine.set_insights(vec![(7, Arc::new(Counting))]).unwrap();
        let mut round = Round::default();
        round.mappings.push((10, mapping(1), 1));
        round.mappings.push((11, mapping(2), 1));
        engine.feed(round, 1).unwrap();
        for (o, did) in [(0, 10), (1, 10), (2, 11), (3, 11)] {
            let mut round = Round::default();
            round.events.push((did, row(o), 1));
            engine.feed(round, 10 + o).unwrap();
            wait_for(&engine, 7, 10 + o);
        }
        engine.set_insights(vec![(7, Arc::new(Counting))]).unwrap();
        let mut round = Round::default();
        round.events.push((11, row(4), 1));
        engine.feed(round, 100).unwrap();
        assert_eq!(
            wait_for(&engine, 7, 100),
            serde_json::json!({"persons": 2, "events": 5}),
            "attempt {attempt}"
        );
    }
}
