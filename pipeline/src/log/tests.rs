use super::*;
use crate::event::StoredEvent;
use proptest::prelude::*;

fn event(project: u32, n: u8, props: &str) -> Record {
    Record::Event(StoredEvent {
        uuid: [n; 16],
        project,
        event: format!("e{n}"),
        distinct_id: format!("d{n}"),
        properties: props.to_string(),
        timestamp_us: i64::from(n),
        received_us: 0,
    })
}

fn batch_of(records: &[Record]) -> AppendBatch {
    let mut batch = AppendBatch::new();
    for r in records {
        batch.push(r).unwrap();
    }
    batch
}

fn read_all(log: &Log) -> Vec<Record> {
    let mut reader = log.reader();
    let mut from = 0;
    let mut out = Vec::new();
    loop {
        let batch = reader.read(from, 1000).unwrap();
        if batch.records.is_empty() {
            return out;
        }
        from = batch.next;
        out.extend(batch.records.into_iter().map(|(_, r)| r));
    }
}

fn small_segments() -> LogOptions {
    LogOptions {
        segment_bytes: 300,
        ..LogOptions::default()
    }
}

#[test]
fn appends_are_readable_and_deduplicated_per_project() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogOptions::default()).unwrap();
    let first = log
        .append_blocking(batch_of(&[event(1, 1, "{}"), event(1, 2, "{}")]))
        .unwrap();
    assert_eq!((first.stored, first.duplicates), (2, 0));
    // A retry of the same uuid, and the same uuid twice within one batch, store nothing new;
    // the same uuid in another project is a different event.
    let retry = log
        .append_blocking(batch_of(&[
            event(1, 2, "{}"),
            event(2, 2, "{}"),
            event(1, 3, "{}"),
            event(1, 3, "{}"),
        ]))
        .unwrap();
    assert_eq!((retry.stored, retry.duplicates), (2, 2));
    assert_eq!(retry.end_offset, log.end());
    let all = read_all(&log);
    assert_eq!(all.len(), 4);
    assert_eq!(all[2], event(2, 2, "{}"));
}

#[test]
fn recovery_truncates_a_torn_tail_and_keeps_dedup_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = Log::open(dir.path(), small_segments()).unwrap();
        for n in 0..10 {
            log.append_blocking(batch_of(&[event(1, n, r#"{"a":1}"#)]))
                .unwrap();
        }
        log.shutdown();
    }
    let segments = segment::list_segments(dir.path()).unwrap();
    assert!(segments.len() > 2, "segments: {segments:?}");
    let last = segment_path_for_test(dir.path(), *segments.last().unwrap());
    let mut bytes = std::fs::read(&last).unwrap();
    bytes.extend_from_slice(&[9, 0, 0, 0, 1, 2]); // half a frame, as a crash leaves it
    std::fs::write(&last, &bytes).unwrap();

    let log = Log::open(dir.path(), small_segments()).unwrap();
    assert_eq!(read_all(&log).len(), 10);
    let again = log
        .append_blocking(batch_of(&[event(1, 0, "{}"), event(1, 11, "{}")]))
        .unwrap();
    assert_eq!((again.stored, again.duplicates), (1, 1));
    assert_eq!(read_all(&log).len(), 11);
}

fn segment_path_for_test(dir: &std::path::Path, base: u64) -> std::path::PathBuf {
    segment::segment_path(dir, base)
}

#[test]
fn read_at_returns_the_record_at_an_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_segments()).unwrap();
    for n in 0..6 {
        log.append_blocking(batch_of(&[event(1, n, "{}")])).unwrap();
    }
    let mut reader = log.reader();
    let mut from = 0;
    let mut offsets = Vec::new();
    while let Some((offset, _)) = reader.read(from, 1).unwrap().records.first().cloned() {
        offsets.push(offset);
        from = reader.read(from, 1).unwrap().next;
    }
    assert_eq!(offsets.len(), 6);
    assert_eq!(reader.read_at(offsets[4]).unwrap(), event(1, 4, "{}"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Cutting the active segment anywhere loses only the records that were cut, never earlier
    /// ones, and never leaves a damaged record readable.
    #[test]
    fn a_cut_anywhere_recovers_a_prefix(sizes in prop::collection::vec(0usize..200, 1..20), cut in any::<prop::sample::Index>()) {
        let dir = tempfile::tempdir().unwrap();
        let records: Vec<Record> = sizes.iter().enumerate()
            .map(|(i, n)| event(1, i as u8, &format!("{{\"p\":\"{}\"}}", "x".repeat(*n))))
            .collect();
        {
            let log = Log::open(dir.path(), LogOptions::default()).unwrap();
            for r in &records {
                log.append_blocking(batch_of(std::slice::from_ref(r))).unwrap();
            }
            log.shutdown();
        }
        let path = segment_path_for_test(dir.path(), 0);
        let bytes = std::fs::read(&path).unwrap();
        let keep = cut.index(bytes.len() + 1);
        std::fs::write(&path, &bytes[..keep]).unwrap();
        let log = Log::open(dir.path(), LogOptions::default()).unwrap();
        let got = read_all(&log);
        prop_assert!(got.len() <= records.len());
        prop_assert_eq!(&got[..], &records[..got.len()]);
    }
}

#[test]
fn a_large_batch_spans_blocks_and_every_record_has_its_own_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogOptions::default()).unwrap();
    let records: Vec<Record> = (0..600u32)
        .map(|i| {
            let mut r = event(1, 0, &format!("{{\"i\":{i}}}"));
            if let Record::Event(e) = &mut r {
                e.uuid[..4].copy_from_slice(&i.to_le_bytes());
            }
            r
        })
        .collect();
    let appended = log.append_blocking(batch_of(&records)).unwrap();
    assert_eq!(appended.stored, 600);
    let mut reader = log.reader();
    let (mut from, mut seen) = (0, Vec::new());
    loop {
        let batch = reader.read(from, 1).unwrap();
        if batch.records.is_empty() {
            break;
        }
        from = batch.next;
        seen.extend(batch.records);
    }
    assert_eq!(seen.len(), 600);
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0));
    for i in [0, 255, 256, 300, 599] {
        assert_eq!(reader.read_at(seen[i].0).unwrap(), records[i]);
        // Reading from any record's offset starts at that record.
        let from_here = reader.read(seen[i].0, 1).unwrap();
        assert_eq!(from_here.records[0], seen[i]);
    }
    assert!(reader.read_at(seen[599].0 + 1).is_err());
}

#[test]
fn a_log_in_another_format_is_refused_not_truncated() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = Log::open(dir.path(), LogOptions::default()).unwrap();
        log.append_blocking(batch_of(&[event(1, 1, "{}")])).unwrap();
        log.shutdown();
    }
    std::fs::remove_file(dir.path().join("FORMAT")).unwrap();
    let before = std::fs::read(segment_path_for_test(dir.path(), 0)).unwrap();
    assert!(matches!(
        Log::open(dir.path(), LogOptions::default()),
        Err(LogError::Format(_))
    ));
    assert_eq!(
        std::fs::read(segment_path_for_test(dir.path(), 0)).unwrap(),
        before
    );
}
