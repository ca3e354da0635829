//! The checkpoint against the log: a feeder that loads it feeds the dataflow exactly what a
//! feeder reading the whole log feeds, and reads only the log the checkpoint does not cover.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use redb::{ReadableDatabase, ReadableTable};

use super::checkpoint::{self, Chunk, CHUNKS};
use super::feeder::{Bootstrap, Feeder, GraphBatch, Projection};
use super::tests::{wait_for, Tally};
use super::*;
use crate::event::{Record, StoredEvent};
use crate::log::{AppendBatch, Log, LogOptions};
use crate::materialize::Materializer;
use crate::store::Store;

/// One contribution per person: a hash of everything the dataflow holds of them, with the
/// strings resolved, so that feeders with different symbol numberings compare equal.
struct Digest(Arc<Interner>);

impl InsightOperator for Digest {
    fn project(&self) -> u32 {
        1
    }
    fn event_properties(&self) -> Vec<String> {
        vec!["plan".into(), "price".into()]
    }
    fn person_pass(&self, person: &PersonView<'_>, out: &mut Vec<(Contribution, isize)>) {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        person.person.hash(&mut h);
        for e in person.events {
            (e.ts_ms, e.offset).hash(&mut h);
            self.0.resolve(e.event()).hash(&mut h);
            for (key, value) in e.props.iter() {
                self.0.resolve(*key).hash(&mut h);
                value.to_text(&self.0).hash(&mut h);
            }
        }
        out.push((vec![h.finish() as i64], 1));
    }
    fn aggregator(&self) -> Box<dyn Aggregator> {
        Tally::boxed(|counts| serde_json::json!(counts.iter().collect::<Vec<_>>()))
    }
}

fn event(n: u64, did: &str, name: &str, props: serde_json::Value) -> Record {
    let mut uuid = [0u8; 16];
    uuid[..8].copy_from_slice(&n.to_le_bytes());
    Record::Event(StoredEvent {
        uuid,
        project: 1,
        event: name.into(),
        distinct_id: did.into(),
        properties: props.to_string(),
        // Out of order on purpose: later records are not always later in time.
        timestamp_us: 1_700_000_000_000_000 + ((n * 7919) % 1000) as i64 * 1_000_000,
        received_us: 0,
    })
}

/// A mix of plain events, a merge and a deletion tombstone.
fn records(from: u64, count: u64) -> Vec<Record> {
    let mut out = Vec::new();
    for n in from..from + count {
        let did = format!("user{}", n % 7);
        let plan = if n % 3 == 0 { "pro" } else { "free" };
        out.push(event(
            n,
            &did,
            "$pageview",
            serde_json::json!({"plan": plan, "price": n % 5, "ignored": n}),
        ));
        if n % 11 == 5 {
            out.push(event(
                n + 1_000_000,
                &did,
                "$identify",
                serde_json::json!({"$anon_distinct_id": format!("anon{n}")}),
            ));
            out.push(event(
                n + 2_000_000,
                &format!("anon{n}"),
                "signup",
                serde_json::json!({}),
            ));
        }
        if n % 17 == 16 {
            out.push(Record::EventsDeleted {
                project: 1,
                distinct_ids: vec![format!("user{}", n % 7)],
                before_offset: 3,
            });
        }
    }
    out
}

struct Setup {
    log: Log,
    store: Arc<Store>,
    materializer: Materializer,
    batches: std::sync::mpsc::Receiver<GraphBatch>,
}

impl Setup {
    fn open(dir: &Path) -> Self {
        let log = Log::open(&dir.join("log"), LogOptions::default()).unwrap();
        let store = Arc::new(Store::open(&dir.join("state.redb")).unwrap());
        let (tx, batches) = std::sync::mpsc::channel();
        let materializer = Materializer::new(store.clone(), log.reader())
            .unwrap()
            .with_observer(tx);
        Self {
            log,
            store,
            materializer,
            batches,
        }
    }

    /// Appends and materializes `records`; returns the batches the materializer sent.
    fn append(&mut self, records: &[Record]) -> Vec<GraphBatch> {
        for chunk in records.chunks(9) {
            let mut batch = AppendBatch::new();
            for r in chunk {
                batch.push(r).unwrap();
            }
            self.log.append_blocking(batch).unwrap();
        }
        self.materializer.catch_up().unwrap();
        self.batches.try_iter().collect()
    }

    fn cursor(&self) -> u64 {
        self.materializer.cursor()
    }
}

struct Loaded {
    feeder: Feeder,
    engine: Arc<Engine>,
    loaded: Bootstrap,
}

fn load(setup: &Setup, keys: &[&str], checkpointed: bool) -> Loaded {
    let interner = Interner::new();
    let engine = Engine::start(1).unwrap();
    engine
        .set_insights(vec![(1, Arc::new(Digest(interner.clone())))])
        .unwrap();
    let projection = Projection {
        event_keys: keys.iter().map(|k| k.to_string()).collect(),
        person_keys: Vec::new(),
    };
    let mut feeder = Feeder::new(engine.clone(), interner, &projection);
    if checkpointed {
        feeder = feeder.with_checkpoint(setup.store.clone()).unwrap();
    }
    let loaded = feeder
        .bootstrap(&setup.store, &mut setup.log.reader())
        .unwrap();
    Loaded {
        feeder,
        engine,
        loaded,
    }
}

fn result(l: &Loaded, offset: u64) -> serde_json::Value {
    wait_for(&l.engine, 1, offset)
}

fn events_in(records: &[Record]) -> u64 {
    records
        .iter()
        .filter(|r| matches!(r, Record::Event(_)))
        .count() as u64
}

fn chunk_starts(store: &Store) -> Vec<u64> {
    let txn = store.db().begin_read().unwrap();
    let Some(table) = checkpoint::open(&txn).unwrap() else {
        return Vec::new();
    };
    table
        .iter()
        .unwrap()
        .map(|e| e.unwrap().0.value())
        .collect()
}

#[test]
fn a_restart_loads_the_checkpoint_and_reads_only_the_log_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut setup = Setup::open(dir.path());
    let first = records(0, 60);
    setup.append(&first);

    // A feeder with nothing checkpointed reads the log, then follows the materializer.
    let mut a = load(&setup, &["plan", "price"], true);
    assert_eq!(a.loaded.checkpoint, 0);
    assert_eq!(a.loaded.log_events, events_in(&first));
    for batch in setup.append(&records(60, 40)) {
        a.feeder.apply(&batch).unwrap();
        a.feeder.flush(batch.next).unwrap();
    }
    let checkpointed = setup.cursor();
    let _ = result(&a, checkpointed);
    drop(a);

    // Events the feeder never saw: the next one reads just these from the log.
    let last = records(100, 30);
    setup.append(&last);
    let end = setup.cursor();
    let b = load(&setup, &["plan", "price"], true);
    assert_eq!(b.loaded.checkpoint, checkpointed);
    assert_eq!(b.loaded.log_events, events_in(&last));
    let from_log = load(&setup, &["plan", "price"], false);
    assert_eq!(from_log.loaded.checkpoint, 0);
    let want = result(&from_log, end);
    assert_eq!(result(&b, end), want);
    drop(b);

    // Its clean stop stored the rest: now nothing comes from the log.
    let c = load(&setup, &["plan", "price"], true);
    assert_eq!(c.loaded.checkpoint, end);
    assert_eq!(c.loaded.log_events, 0);
    assert_eq!(result(&c, end), want);
    drop(c);
    assert_eq!(chunk_starts(&setup.store), vec![0, checkpointed]);

    // A feeder that needs fewer keys adopts the checkpoint's.
    let narrow = load(&setup, &[], true);
    assert_eq!(narrow.loaded.log_events, 0);
    assert_eq!(narrow.feeder.event_keys(), vec!["plan", "price"]);
    assert_eq!(result(&narrow, end), want);
    drop(narrow);

    // A damaged chunk ends the checkpoint; the log covers the rest, and the chunk is rewritten.
    {
        let txn = setup.store.db().begin_write().unwrap();
        {
            let mut table = txn.open_table(CHUNKS).unwrap();
            let mut bytes = table.get(checkpointed).unwrap().unwrap().value().to_vec();
            bytes[3] ^= 0xff;
            table.insert(checkpointed, bytes.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let damaged = load(&setup, &["plan", "price"], true);
    assert_eq!(damaged.loaded.checkpoint, checkpointed);
    assert_eq!(damaged.loaded.log_events, events_in(&last));
    assert_eq!(result(&damaged, end), want);
    drop(damaged);
    assert_eq!(chunk_starts(&setup.store), vec![0, checkpointed]);

    // A feeder that projects a key the checkpoint lacks reads the whole log and starts over.
    let wider = load(&setup, &["plan", "price", "ignored"], true);
    assert_eq!(wider.loaded.checkpoint, 0);
    assert_eq!(
        wider.loaded.log_events,
        events_in(&first) + events_in(&records(60, 40)) + events_in(&last)
    );
    drop(wider);
    assert_eq!(chunk_starts(&setup.store), vec![0]);
}

/// A row as drawn: distinct key, timestamp, offset gap, `(key, value)` picks.
type RowSpec = (u64, i64, u64, Vec<(u8, u8)>);

fn chunk_strategy() -> impl Strategy<Value = Vec<RowSpec>> {
    proptest::collection::vec(
        (
            0..20u64,
            -5_000..5_000i64,
            0..4u64,
            proptest::collection::vec((0..4u8, 0..6u8), 0..4),
        ),
        0..60,
    )
}

/// A value of each kind, picked by `v`.
fn value(interner: &Interner, v: u8) -> PropValue {
    match v {
        0 => PropValue::Bool(true),
        1 => PropValue::Bool(false),
        2 => interner.number(f64::from(v) * 1.5),
        3 => interner.number(-0.0),
        4 => PropValue::Str(interner.intern("é \"quoted\"")),
        _ => PropValue::Str(interner.intern("")),
    }
}

proptest! {
    /// What is encoded in one process decodes in another (a fresh symbol table) to the same
    /// strings and numbers, and a damaged chunk is refused rather than misread.
    #[test]
    fn chunks_round_trip_across_symbol_tables(
        rows in chunk_strategy(),
        dids in proptest::collection::vec("[a-z0-9$]{0,12}", 0..5),
        cuts in proptest::collection::vec((any::<u64>(), any::<u64>()), 0..4),
        flip in any::<prop::sample::Index>(),
    ) {
        let writer = Interner::new();
        let reader = Interner::new();
        // Symbols of the reader's table come in another order.
        reader.intern("zzz");
        reader.intern("e2");
        let mut offset = 1000u64;
        let events: Vec<(u64, EventRow)> = rows
            .iter()
            .map(|(key, ts, gap, props)| {
                offset += gap;
                let mut props: Vec<(Sym, PropValue)> = props
                    .iter()
                    .map(|(k, v)| (writer.intern(&format!("k{k}")), value(&writer, *v)))
                    .collect();
                props.sort_by_key(|(k, _)| *k);
                props.dedup_by_key(|(k, _)| *k);
                let row = EventRow {
                    ts_ms: *ts,
                    offset,
                    props: Props::new(writer.intern(&format!("e{}", key % 3)), props),
                };
                (*key, row)
            })
            .collect();
        let chunk = Chunk {
            start: 1000,
            next: offset + 1,
            event_keys: vec!["k0".into(), "k1".into()],
            distinct_ids: dids.iter().map(|d| (1, d.clone())).collect(),
            events,
            cuts: cuts.clone(),
        };
        let bytes = checkpoint::encode(&chunk, &writer);
        let decoded = checkpoint::decode(1000, &bytes, &reader, Props::from_layout).unwrap();
        prop_assert_eq!(decoded.start, chunk.start);
        prop_assert_eq!(decoded.next, chunk.next);
        prop_assert_eq!(&decoded.event_keys, &chunk.event_keys);
        prop_assert_eq!(&decoded.distinct_ids, &chunk.distinct_ids);
        prop_assert_eq!(&decoded.cuts, &chunk.cuts);
        let text = |interner: &Interner, row: &EventRow| {
            let mut props: HashMap<String, String> = HashMap::new();
            for (k, v) in row.props.iter() {
                let v = match v {
                    PropValue::Num(sym) => format!("n{:x}", interner.resolve_number(*sym).to_bits()),
                    other => other.to_text(interner).to_string(),
                };
                props.insert(interner.resolve(*k).to_string(), v);
            }
            let sorted = row.props.windows(2).all(|w| w[0].0 < w[1].0);
            (row.ts_ms, row.offset, interner.resolve(row.event()).to_string(), props.into_iter().collect::<BTreeMap<_, _>>(), sorted)
        };
        let want: Vec<_> = chunk.events.iter().map(|(k, r)| (*k, text(&writer, r))).collect();
        let got: Vec<_> = decoded.events.iter().map(|(k, r)| (*k, text(&reader, r))).collect();
        prop_assert_eq!(got, want);

        let mut damaged = bytes.clone();
        let i = flip.index(damaged.len());
        damaged[i] ^= 0x5a;
        prop_assert!(checkpoint::decode(1000, &damaged, &reader, Props::from_layout).is_err());
        prop_assert!(checkpoint::decode(1000, &bytes[..bytes.len() - 1], &reader, Props::from_layout).is_err());
        prop_assert!(checkpoint::decode(999, &bytes, &reader, Props::from_layout).is_err());
    }
}
