//! `quill bench ingest`: starts `quill serve` as a child process, then concurrent clients POST
//! `/batch` bodies of realistic events and wait for each acknowledgement.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;
use serde_json::json;

use super::events::{event, Rng};
use super::server::{ChildServer, TOKEN};
use super::{p50_p99_max, peak_rss_kb};

#[derive(Debug, Args)]
pub struct IngestBenchArgs {
    /// Events to send in all.
    #[arg(long, default_value_t = 500_000)]
    events: usize,
    /// Events per request.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Concurrent client connections.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Distinct persons the events are spread over (skewed).
    #[arg(long, default_value_t = 50_000)]
    persons: u64,
}

pub async fn run(args: IngestBenchArgs) -> anyhow::Result<()> {
    let server = ChildServer::start("ingest", &[])?;
    drive(&args, &server).await
}

async fn drive(args: &IngestBenchArgs, server: &ChildServer) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let base = server.base();
    wait_ready(&client, &base).await?;

    let requests = args.events.div_ceil(args.batch);
    let mut rng = Rng::new(42);
    let t0 = 1_700_000_000_000i64;
    let bodies: Vec<bytes::Bytes> = (0..requests)
        .map(|r| {
            let batch: Vec<_> = (0..args.batch)
                .map(|i| event(&mut rng, args.persons, t0 + (r * args.batch + i) as i64))
                .collect();
            bytes::Bytes::from(json!({"api_key": TOKEN, "batch": batch}).to_string())
        })
        .collect();
    let body_bytes: usize = bodies.iter().map(|b| b.len()).sum();
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (client, bodies, next, url) = (
            client.clone(),
            bodies.clone(),
            next.clone(),
            format!("{base}/batch/"),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else {
                    return Ok::<_, anyhow::Error>(latencies);
                };
                let sent = Instant::now();
                let response = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await?;
                if !response.status().is_success() {
                    bail!("request {i} failed: {}", response.status());
                }
                latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
            }
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let events = requests * args.batch;
    let disk: u64 = std::fs::read_dir(server.dir().join("log"))?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    let catch_up = wait_materialized(&client, &base).await;
    let rss_kb = peak_rss_kb(server.pid()).unwrap_or(0);
    println!(
        "ingest over HTTP: {events} events in {requests} requests of {} ({} clients)",
        args.batch, args.concurrency
    );
    println!(
        "  throughput:   {:.0} events/s ({:.1} MB/s of JSON)",
        events as f64 / elapsed,
        body_bytes as f64 / elapsed / 1e6
    );
    println!("  latency:      {}", p50_p99_max(&latencies, 2));
    println!(
        "  request size: {:.0} bytes/event of JSON",
        body_bytes as f64 / events as f64
    );
    println!(
        "  on disk:      {:.0} bytes/event in the log",
        disk as f64 / events as f64
    );
    match catch_up {
        Some(secs) => println!(
            "  derived state: persons + events index caught up {secs:.2} s after the last ack ({:.0} events/s end to end)",
            events as f64 / (elapsed + secs)
        ),
        None => println!("  derived state: still behind after 300 s"),
    }
    println!("  server RSS:   {:.1} MiB peak", rss_kb as f64 / 1024.0);
    Ok(())
}

pub(super) async fn wait_ready(client: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    for _ in 0..300 {
        if let Ok(r) = client.get(format!("{base}/_readiness")).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the server did not become ready within 30 s")
}

/// Seconds until the materializer has applied the whole log, from `/_status`.
pub(super) async fn wait_materialized(client: &reqwest::Client, base: &str) -> Option<f64> {
    wait_caught_up(
        client,
        base,
        "materializer_lag_bytes",
        Duration::from_secs(300),
    )
    .await
}

/// Seconds until `/_status` reports the follower's `lag_field` at zero; `None` past `limit`
/// or when the status cannot be read.
pub(super) async fn wait_caught_up(
    client: &reqwest::Client,
    base: &str,
    lag_field: &str,
    limit: Duration,
) -> Option<f64> {
    let started = Instant::now();
    while started.elapsed() < limit {
        let status = client
            .get(format!("{base}/_status"))
            .send()
            .await
            .ok()?
            .bytes()
            .await
            .ok()?;
        let status: serde_json::Value = serde_json::from_slice(&status).ok()?;
        if status[lag_field].as_u64() == Some(0) {
            return Some(started.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}
