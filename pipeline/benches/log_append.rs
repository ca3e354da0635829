//! In-process append throughput of the event log, with group commit and fsync.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use quill_pipeline::event::{Record, StoredEvent};
use quill_pipeline::log::{AppendBatch, Log, LogOptions};

fn event(n: u64) -> Record {
    let mut uuid = [0u8; 16];
    uuid[..8].copy_from_slice(&n.to_le_bytes());
    Record::Event(StoredEvent {
        uuid,
        project: 1,
        event: "$pageview".into(),
        distinct_id: format!("user-{}", n % 5000),
        properties: format!(
            r#"{{"$current_url":"https://example.com/products/{n}","$browser":"Chrome","$os":"Mac OS X","$session_id":"0190a1b2-{n:08}","$lib":"web","$referrer":"https://google.com/","plan":"pro","price":{}}}"#,
            n % 100
        ),
        timestamp_us: 1_700_000_000_000_000 + n as i64,
        received_us: 0,
    })
}

fn append(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogOptions::default()).unwrap();
    let mut next = 0u64;
    let mut group = c.benchmark_group("log");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("append_1000_events_fsync", |b| {
        b.iter(|| {
            let mut batch = AppendBatch::new();
            for _ in 0..1000 {
                batch.push(&event(next)).unwrap();
                next += 1;
            }
            log.append_blocking(batch).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, append);
criterion_main!(benches);
