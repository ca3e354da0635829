//! `quill bench log`: in-process append throughput of the event log.

use std::time::Instant;

use clap::Args;
use quill_pipeline::event::{Record, StoredEvent};
use quill_pipeline::log::{AppendBatch, Log, LogOptions};

use super::events::{event, Rng};

#[derive(Debug, Args)]
pub struct LogBenchArgs {
    /// Events to append in all.
    #[arg(long, default_value_t = 2_000_000)]
    events: usize,
    /// Events per append call.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Appending threads.
    #[arg(long, default_value_t = 2)]
    producers: usize,
    /// Appends each producer keeps in flight (1 = wait for each before the next).
    #[arg(long, default_value_t = 8)]
    in_flight: usize,
}

pub fn run(args: LogBenchArgs) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("quill-bench-log-{}", std::process::id()));
    let log = Log::open(&dir, LogOptions::default())?;
    // Records are built before the clock starts; encoding is part of what is measured.
    let per_producer = args.events / args.producers.max(1);
    let mut work: Vec<Vec<Record>> = Vec::new();
    for p in 0..args.producers {
        let mut rng = Rng::new(p as u64 + 7);
        work.push(
            (0..per_producer)
                .map(|i| {
                    let v = event(&mut rng, 100_000, 1_700_000_000_000 + i as i64);
                    Record::Event(StoredEvent {
                        uuid: *uuid::Uuid::from_u64_pair(rng.next_u64(), rng.next_u64()).as_bytes(),
                        project: 1,
                        event: v["event"].as_str().unwrap_or("e").to_string(),
                        distinct_id: v["distinct_id"].as_str().unwrap_or("d").to_string(),
                        properties: v["properties"].to_string(),
                        timestamp_us: 1_700_000_000_000_000 + i as i64,
                        received_us: 0,
                    })
                })
                .collect(),
        );
    }
    let started = Instant::now();
    std::thread::scope(|scope| {
        for records in &work {
            let log = log.clone();
            let window = args.in_flight.max(1);
            scope.spawn(move || {
                let mut pending = std::collections::VecDeque::new();
                for chunk in records.chunks(args.batch.max(1)) {
                    let mut batch = AppendBatch::new();
                    for r in chunk {
                        if batch.push(r).is_err() {
                            return;
                        }
                    }
                    if pending.len() >= window {
                        if let Some(Err(e)) = pending
                            .pop_front()
                            .map(|t: quill_pipeline::log::AppendTicket| t.wait())
                        {
                            eprintln!("append failed: {e}");
                            return;
                        }
                    }
                    match log.submit_blocking(batch) {
                        Ok(ticket) => pending.push_back(ticket),
                        Err(e) => {
                            eprintln!("append failed: {e}");
                            return;
                        }
                    }
                }
                for ticket in pending {
                    if let Err(e) = ticket.wait() {
                        eprintln!("append failed: {e}");
                    }
                }
            });
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let total = per_producer * args.producers;
    let bytes = log.disk_bytes();
    log.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "log append: {total} events in {elapsed:.2}s = {:.0} events/s ({:.1} MB/s, {:.0} bytes/event on disk; batch {}, producers {}, in flight {})",
        total as f64 / elapsed,
        bytes as f64 / elapsed / 1e6,
        bytes as f64 / total as f64,
        args.batch,
        args.producers,
        args.in_flight
    );
    Ok(())
}
