//! `quill bench insights`: freshness of maintained insights under a steady stream of events.
//!
//! 1. Starts `quill serve` and registers ten insights (trends, funnels, retention).
//! 2. Loads `--events` generated events over HTTP, with timestamps spread over four weeks in
//!    random order, and waits until every insight reflects all of them.
//!    Then it waits for the events index to catch up, and reads the live heap once it settles.
//! 3. Streams new events at `--rate` for `--seconds`, following every insight's live stream.
//!    For each acknowledged request it reads the log's end, then finds when each insight first
//!    published a result covering that offset: that is the freshness latency.
//!
//! 4. Restarts the server after a clean stop, and times until every insight is fresh again:
//!    once loading the checkpoint, once (with `--no-insights-checkpoint`) the whole log.
//!
//! With `--dump FILE` it also writes the loaded events as CSV for the DuckDB peer
//! (`benches/insights_duckdb.py`).

use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Args;
use futures_util::StreamExt as _;
use serde_json::{json, Value};

use super::events::{event, Rng};
use super::ingest::{wait_caught_up, wait_materialized, wait_ready};
use super::server::{ChildServer, KEY, TOKEN};
use super::{current_rss_kb, p50_p99_max, peak_rss_kb};

#[derive(Debug, Args)]
pub struct InsightsBenchArgs {
    /// Events loaded before streaming.
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,
    /// Distinct persons (skewed activity).
    #[arg(long, default_value_t = 100_000)]
    persons: u64,
    /// Events per second while streaming.
    #[arg(long, default_value_t = 50_000)]
    rate: usize,
    /// Seconds of streaming.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// How many of the ten insights to register (0 measures the pipeline without them).
    #[arg(long, default_value_t = 10)]
    insights: usize,
    /// Timely worker threads of the server.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Register an eleventh insight halfway through the stream, and time until it is fresh:
    /// its set replays every person while the other ten keep publishing.
    #[arg(long)]
    register_during_stream: bool,
    /// Write the loaded events as CSV here (for the DuckDB peer).
    #[arg(long)]
    dump: Option<std::path::PathBuf>,
}

/// When each published result arrived, and the log offset it covered.
type Timeline = Vec<(Instant, u64)>;
const DAY_MS: i64 = 86_400_000;

/// The ten insights: the mix a product dashboard has.
pub fn queries() -> Vec<(&'static str, Value)> {
    let range = json!({"date_from": "-30d"});
    let steps = json!([
        {"kind": "EventsNode", "event": "$pageview"},
        {"kind": "EventsNode", "event": "signed_up"},
        {"kind": "EventsNode", "event": "purchase"}
    ]);
    vec![
        (
            "pageviews per day",
            json!({"kind": "TrendsQuery", "dateRange": range, "interval": "day",
            "series": [{"kind": "EventsNode", "event": "$pageview", "math": "total"}]}),
        ),
        (
            "daily active users",
            json!({"kind": "TrendsQuery", "dateRange": range, "interval": "day",
            "series": [{"kind": "EventsNode", "event": null, "math": "dau"}]}),
        ),
        (
            "weekly active users",
            json!({"kind": "TrendsQuery", "dateRange": range, "interval": "day",
            "series": [{"kind": "EventsNode", "event": null, "math": "weekly_active"}]}),
        ),
        (
            "pageviews by browser",
            json!({"kind": "TrendsQuery", "dateRange": range, "interval": "week",
            "series": [{"kind": "EventsNode", "event": "$pageview", "math": "total"}],
            "breakdownFilter": {"breakdown_type": "event", "breakdown": "$browser"}}),
        ),
        (
            "revenue",
            json!({"kind": "TrendsQuery", "dateRange": range, "interval": "day",
            "series": [{"kind": "EventsNode", "event": "purchase", "math": "sum", "math_property": "price"}]}),
        ),
        (
            "signup funnel",
            json!({"kind": "FunnelsQuery", "dateRange": range, "series": steps,
            "funnelsFilter": {"funnelWindowInterval": 14, "funnelWindowIntervalUnit": "day"}}),
        ),
        (
            "signup funnel by plan",
            json!({"kind": "FunnelsQuery", "dateRange": range, "series": steps,
            "breakdownFilter": {"breakdown_type": "event", "breakdown": "plan"},
            "funnelsFilter": {"breakdownAttributionType": "first_touch"}}),
        ),
        (
            "strict funnel",
            json!({"kind": "FunnelsQuery", "dateRange": range,
            "series": [{"kind": "EventsNode", "event": "$pageview"}, {"kind": "EventsNode", "event": "purchase"}],
            "funnelsFilter": {"funnelOrderType": "strict", "funnelWindowInterval": 1, "funnelWindowIntervalUnit": "hour"}}),
        ),
        (
            "retention",
            json!({"kind": "RetentionQuery", "retentionFilter": {"period": "Day", "totalIntervals": 14,
            "targetEntity": {"id": "$pageview", "type": "events"}, "returningEntity": {"id": "$pageview", "type": "events"}}}),
        ),
        (
            "weekly retention, first time",
            json!({"kind": "RetentionQuery", "retentionFilter": {"period": "Week",
            "totalIntervals": 4, "retentionType": "retention_first_time",
            "targetEntity": {"id": "signed_up", "type": "events"}, "returningEntity": {"id": "purchase", "type": "events"}}}),
        ),
    ]
}

/// The insight `--register-during-stream` adds: the signup funnel with a week's window.
fn late_query() -> Value {
    let mut query = queries()
        .into_iter()
        .find(|(name, _)| *name == "signup funnel")
        .map(|(_, q)| q)
        .unwrap_or_default();
    query["funnelsFilter"]["funnelWindowInterval"] = json!(7);
    query
}

/// Registers an insight; returns its id.
async fn register(
    client: &reqwest::Client,
    base: &str,
    auth: &str,
    name: &str,
    query: Value,
) -> anyhow::Result<u64> {
    let r = client
        .post(format!("{base}/api/projects/1/insights"))
        .header("authorization", auth)
        .json(&json!({"name": name, "query": query}))
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("registering {name}: {}", r.text().await?);
    }
    let doc: Value = r.json().await?;
    doc["id"].as_u64().context("insight id")
}

pub async fn run(args: InsightsBenchArgs) -> anyhow::Result<()> {
    let workers = args.workers.to_string();
    let mut server = ChildServer::start("insights", &["--workers", &workers])?;
    let ids = drive(&args, &server).await?;
    if !ids.is_empty() {
        restarts(&args, &mut server, &ids).await?;
    }
    Ok(())
}

/// Restarts the server twice after a clean stop, and times until every insight is fresh
/// again: loading the checkpoint, then (for comparison) the whole log.
async fn restarts(
    args: &InsightsBenchArgs,
    server: &mut ChildServer,
    ids: &[u64],
) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let base = server.base();
    let auth = format!("Bearer {KEY}");
    let workers = args.workers.to_string();
    let state_file = server.dir().join("state.redb");
    for (from, extra) in [
        ("the checkpoint", None),
        ("the log alone", Some("--no-insights-checkpoint")),
    ] {
        let mut argv = vec!["--workers", workers.as_str()];
        argv.extend(extra);
        server.restart(&argv)?;
        let started = Instant::now();
        wait_ready(&client, &base).await?;
        let end = log_end(&client, &base).await?;
        wait_insights(&client, &base, &auth, ids, end).await?;
        let secs = started.elapsed().as_secs_f64();
        println!(
            "restart from {from}: all {} insights fresh {secs:.1} s after the server started; {:.0} MiB of checkpoint loaded, {} events read from the log; server RSS {:.0} MiB peak; state file {:.0} MiB",
            ids.len(),
            status_field(&client, &base, "insights_loaded_checkpoint_bytes").await? as f64
                / f64::from(1 << 20),
            status_field(&client, &base, "insights_loaded_log_events").await?,
            peak_rss_kb(server.pid()).unwrap_or(0) as f64 / 1024.0,
            std::fs::metadata(&state_file).map_or(0, |m| m.len()) as f64 / f64::from(1 << 20),
        );
    }
    Ok(())
}

fn batch_body(rng: &mut Rng, persons: u64, n: usize, ts: impl Fn(&mut Rng) -> i64) -> Vec<Value> {
    (0..n)
        .map(|_| {
            let t = ts(rng);
            event(rng, persons, t)
        })
        .collect()
}

/// Loads, streams and measures; returns the registered insights' ids.
async fn drive(args: &InsightsBenchArgs, server: &ChildServer) -> anyhow::Result<Vec<u64>> {
    let pid = server.pid();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let base = server.base();
    wait_ready(&client, &base).await?;
    let auth = format!("Bearer {KEY}");

    let mut ids = Vec::new();
    for (name, query) in queries().into_iter().take(args.insights) {
        ids.push(register(&client, &base, &auth, name, query).await?);
    }

    // Load: four weeks of history, sent in random time order.
    let now_ms = quill_pipeline::event::now_us() / 1000;
    let mut rng = Rng::new(7);
    let mut dump = match &args.dump {
        Some(path) => {
            let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
            writeln!(f, "ts_ms,distinct_id,event,browser,plan,price")?;
            Some(f)
        }
        None => None,
    };
    let per_request = 1000;
    let started = Instant::now();
    let mut inflight = futures_util::stream::FuturesUnordered::new();
    let mut sent = 0;
    while sent < args.events {
        let n = per_request.min(args.events - sent);
        let batch = batch_body(&mut rng, args.persons, n, |r| {
            now_ms - 1000 - r.below(28 * DAY_MS as u64) as i64
        });
        if let Some(f) = dump.as_mut() {
            for e in &batch {
                dump_row(f, e)?;
            }
        }
        sent += n;
        let body = json!({"api_key": TOKEN, "batch": batch}).to_string();
        inflight.push(client.post(format!("{base}/batch/")).body(body).send());
        if inflight.len() >= 8 {
            check(inflight.next().await)?;
        }
    }
    while let Some(r) = inflight.next().await {
        check(Some(r))?;
    }
    if let Some(mut f) = dump.take() {
        f.flush()?;
    }
    let load_secs = started.elapsed().as_secs_f64();
    let rss_loaded_before_catch_up = peak_rss_kb(pid).unwrap_or(0);
    let materialized = wait_materialized(&client, &base).await;
    let end = log_end(&client, &base).await?;
    wait_insights(&client, &base, &auth, &ids, end).await?;
    let total_load = started.elapsed().as_secs_f64();
    println!(
        "load: {} events over HTTP in {load_secs:.1} s; persons materialized {:.1} s later; all {} insights fresh {total_load:.1} s after the load began ({:.0} events/s end to end)",
        args.events,
        materialized.unwrap_or(f64::NAN),
        ids.len(),
        args.events as f64 / total_load
    );
    let rss_after_load = current_rss_kb(pid).unwrap_or(0);
    let heap_after_load = heap_bytes(&client, &base).await?;
    // The index's cache grows as it indexes: the heap compares between runs only once it is done.
    let indexed = wait_caught_up(
        &client,
        &base,
        "indexer_lag_bytes",
        Duration::from_secs(1800),
    )
    .await
    .context("the events index did not catch up within 30 minutes")?;
    let settled = settled_heap(&client, &base).await?;
    let mib = |bytes: f64| bytes / f64::from(1 << 20);
    let heap_line = format!(
        "server heap: {:.0} MiB live after the load; {:.0} MiB ({:.0} bytes/event) settled, once the events index caught up ({indexed:.1} s later) and merges were done; subtract a run with `--workers 0 --insights 0` for the dataflow's state",
        mib(heap_after_load as f64),
        mib(settled as f64),
        settled as f64 / args.events as f64,
    );
    if ids.is_empty() {
        println!(
            "  server RSS without insights: {:.0} MiB after the load ({:.0} bytes/event)",
            rss_after_load as f64 / 1024.0,
            rss_after_load as f64 * 1024.0 / args.events as f64,
        );
        println!("  {heap_line}");
        return Ok(ids);
    }

    // Stream: follow every insight, send at a steady rate.
    let updates: Arc<Mutex<Vec<Timeline>>> = Arc::new(Mutex::new(vec![Vec::new(); ids.len()]));
    let mut followers = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let response = client
            .get(format!("{base}/api/projects/1/insights/{id}/stream"))
            .header("authorization", &auth)
            .send()
            .await?;
        let updates = updates.clone();
        followers.push(tokio::spawn(async move {
            let mut body = response.bytes_stream();
            let mut pending = String::new();
            while let Some(Ok(chunk)) = body.next().await {
                let at = Instant::now();
                pending.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(cut) = pending.find("\n\n") {
                    let frame: String = pending.drain(..cut + 2).collect();
                    for line in frame.lines() {
                        if let Some(data) = line.strip_prefix("data:") {
                            if let Ok(v) = serde_json::from_str::<Value>(data.trim()) {
                                if let Some(o) = v["log_offset"].as_u64() {
                                    if let Ok(mut u) = updates.lock() {
                                        u[i].push((at, o));
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }));
    }
    // The requests are built before the clock starts: generating and serializing 50k events
    // a second took half a core of this 2-core machine, which the server under test then
    // lacked. Each event's time is its request's planned send time less up to a minute.
    let tick = Duration::from_millis(20);
    let per_tick = (args.rate as f64 * tick.as_secs_f64()).round().max(1.0) as usize;
    let ticks = (args.seconds * 1000 / tick.as_millis() as u64) as usize;
    let built = Instant::now();
    let planned_start_ms = quill_pipeline::event::now_us() / 1000;
    let bodies: Vec<String> = (0..ticks)
        .map(|i| {
            let send_ms = planned_start_ms + (i as u128 * tick.as_millis()) as i64;
            let batch = batch_body(&mut rng, args.persons, per_tick, |r| {
                send_ms - r.below(60_000) as i64
            });
            json!({"api_key": TOKEN, "batch": batch}).to_string()
        })
        .collect();
    println!(
        "stream: following {} insights; sending {} events/s for {} s ({} requests built in {:.1} s)",
        ids.len(),
        args.rate,
        args.seconds,
        bodies.len(),
        built.elapsed().as_secs_f64()
    );
    let acks: Arc<Mutex<Vec<(Instant, u64)>>> = Arc::default();
    // Reads while the stream runs: the server is busiest then, and a reader would not wait.
    let reads_streaming: Arc<Mutex<Vec<(f64, f64)>>> = Arc::default();
    let reading = {
        let (client, base, auth, ids) = (client.clone(), base.clone(), auth.clone(), ids.clone());
        let reads = reads_streaming.clone();
        tokio::spawn(async move {
            if ids.is_empty() {
                return;
            }
            let mut every = tokio::time::interval(Duration::from_millis(20));
            for i in 0.. {
                every.tick().await;
                let Ok(read) = timed_read(&client, &base, &auth, ids[i % ids.len()]).await else {
                    break;
                };
                if let Ok(mut reads) = reads.lock() {
                    reads.push(read);
                }
            }
        })
    };
    let stream_started = Instant::now();
    let mut ticker = tokio::time::interval(tick);
    let mut senders = Vec::new();
    let mut streamed = 0;
    let mut registering = None;
    for (i, body) in bodies.into_iter().enumerate() {
        ticker.tick().await;
        if args.register_during_stream && i == ticks / 2 {
            let (client, base, auth) = (client.clone(), base.clone(), auth.clone());
            registering = Some(tokio::spawn(async move {
                let registered = Instant::now();
                let id =
                    register(&client, &base, &auth, "weekly signup funnel", late_query()).await?;
                anyhow::Ok((id, registered))
            }));
        }
        streamed += per_tick;
        let (client, base, acks) = (client.clone(), base.clone(), acks.clone());
        senders.push(tokio::spawn(async move {
            let r = client
                .post(format!("{base}/batch/"))
                .body(body)
                .send()
                .await?;
            if !r.status().is_success() {
                bail!("stream request failed: {}", r.status());
            }
            let acked = Instant::now();
            let end = log_end(&client, &base).await?;
            if let Ok(mut a) = acks.lock() {
                a.push((acked, end));
            }
            Ok(())
        }));
    }
    for s in senders {
        s.await??;
    }
    let stream_secs = stream_started.elapsed().as_secs_f64();
    reading.abort();
    let reads_streaming = reads_streaming
        .lock()
        .map(|r| r.clone())
        .unwrap_or_default();
    let end = log_end(&client, &base).await?;
    wait_insights(&client, &base, &auth, &ids, end).await?;
    let late = match registering {
        Some(task) => {
            let (id, registered) = task.await??;
            wait_insights(&client, &base, &auth, &[id], end).await?;
            Some((id, registered.elapsed().as_secs_f64()))
        }
        None => None,
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    for f in &followers {
        f.abort();
    }

    let acks = acks.lock().map(|a| a.clone()).unwrap_or_default();
    let updates = updates.lock().map(|u| u.clone()).unwrap_or_default();
    let mut latencies = Vec::new();
    for (acked, offset) in &acks {
        for per_insight in &updates {
            if let Some((at, _)) = per_insight.iter().find(|(_, o)| o >= offset) {
                latencies.push(at.saturating_duration_since(*acked).as_secs_f64() * 1000.0);
            }
        }
    }
    latencies.sort_by(f64::total_cmp);
    if let Some(path) = std::env::var_os("QUILL_BENCH_TIMELINE") {
        write_timeline(&path, stream_started, &acks, &updates)?;
    }

    // Reading a maintained result over HTTP.
    let mut reads = Vec::new();
    for i in 0..1000 {
        reads.push(timed_read(&client, &base, &auth, ids[i % ids.len()]).await?);
    }

    println!(
        "stream: {streamed} events at a target {} events/s for {stream_secs:.1} s = {:.0} events/s acknowledged, {} insights followed",
        args.rate,
        streamed as f64 / stream_secs,
        ids.len()
    );
    println!(
        "  freshness (ack -> insight's new result): {} over {} (request, insight) pairs",
        p50_p99_max(&latencies, 0),
        latencies.len()
    );
    if let Some((id, secs)) = late {
        println!(
            "  the insight registered halfway through the stream (id {id}) was fresh {secs:.1} s after its registration (the freshness above covers the others meanwhile)"
        );
    }
    println!(
        "  reading a maintained result over HTTP: {} after the stream; {} over {} reads during it",
        read_summary(&reads),
        read_summary(&reads_streaming),
        reads_streaming.len()
    );
    println!(
        "  server RSS: {:.0} MiB after the load ({:.0} bytes/event for everything in the process), {:.0} MiB peak; {:.0} MiB before catch-up",
        rss_after_load as f64 / 1024.0,
        rss_after_load as f64 * 1024.0 / args.events as f64,
        peak_rss_kb(pid).unwrap_or(0) as f64 / 1024.0,
        rss_loaded_before_catch_up as f64 / 1024.0
    );
    let status: Value = client
        .get(format!("{base}/_status"))
        .send()
        .await?
        .json()
        .await?;
    if let Some(stats) = status.get("insights") {
        println!("  dataflow: {stats}");
    }
    println!("  {heap_line}");
    Ok(ids)
}

/// Milliseconds to GET one maintained insight, body included, and the part of them the
/// server says it spent (its `Server-Timing` header).
async fn timed_read(
    client: &reqwest::Client,
    base: &str,
    auth: &str,
    id: u64,
) -> anyhow::Result<(f64, f64)> {
    let t = Instant::now();
    let r = client
        .get(format!("{base}/api/projects/1/insights/{id}"))
        .header("authorization", auth)
        .send()
        .await?;
    let server_ms = r
        .headers()
        .get("server-timing")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("dur=").nth(1))
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(f64::NAN);
    let _ = r.bytes().await?;
    Ok((t.elapsed().as_secs_f64() * 1000.0, server_ms))
}

/// Percentiles of reads' totals, and of the server's part of them.
fn read_summary(reads: &[(f64, f64)]) -> String {
    let sorted = |pick: fn(&(f64, f64)) -> f64| {
        let mut v: Vec<f64> = reads.iter().map(pick).collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let (total, server) = (sorted(|r| r.0), sorted(|r| r.1));
    format!(
        "{} (in the server: {})",
        p50_p99_max(&total, 3),
        p50_p99_max(&server, 3)
    )
}

/// Writes every acknowledgement and every insight update of the stream as CSV
/// (`kind,insight,ms since the stream started,log offset`), for finding where freshness goes.
fn write_timeline(
    path: &std::ffi::OsStr,
    started: Instant,
    acks: &[(Instant, u64)],
    updates: &[Timeline],
) -> anyhow::Result<()> {
    use std::io::Write;
    let ms = |at: &Instant| at.saturating_duration_since(started).as_secs_f64() * 1000.0;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(f, "kind,insight,ms,offset")?;
    for (at, offset) in acks {
        writeln!(f, "ack,,{:.1},{offset}", ms(at))?;
    }
    for (insight, timeline) in updates.iter().enumerate() {
        for (at, offset) in timeline {
            writeln!(f, "update,{insight},{:.1},{offset}", ms(at))?;
        }
    }
    f.flush()?;
    Ok(())
}

/// The server's live heap bytes.
async fn heap_bytes(client: &reqwest::Client, base: &str) -> anyhow::Result<u64> {
    status_field(client, base, "heap_bytes").await
}

/// The live heap once nothing is being computed: the least of readings over three seconds.
/// A reading taken during a merge also counts the merge's half-built batch, which is not state.
async fn settled_heap(client: &reqwest::Client, base: &str) -> anyhow::Result<u64> {
    let mut least = u64::MAX;
    for _ in 0..15 {
        least = least.min(heap_bytes(client, base).await?);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(least)
}

fn check(r: Option<reqwest::Result<reqwest::Response>>) -> anyhow::Result<()> {
    match r {
        Some(Ok(r)) if r.status().is_success() => Ok(()),
        Some(Ok(r)) => bail!("load request failed: {}", r.status()),
        Some(Err(e)) => Err(e.into()),
        None => Ok(()),
    }
}

fn dump_row(f: &mut impl std::io::Write, e: &Value) -> anyhow::Result<()> {
    let ts = e["timestamp"].as_str().unwrap_or_default();
    let ts_ms = chrono::DateTime::parse_from_rfc3339(ts)
        .map(|t| t.timestamp_millis())
        .unwrap_or_default();
    let p = &e["properties"];
    writeln!(
        f,
        "{ts_ms},{},{},{},{},{}",
        e["distinct_id"].as_str().unwrap_or_default(),
        e["event"].as_str().unwrap_or_default(),
        p["$browser"].as_str().unwrap_or_default(),
        p["plan"].as_str().unwrap_or_default(),
        p["price"].as_u64().unwrap_or_default()
    )?;
    Ok(())
}

async fn log_end(client: &reqwest::Client, base: &str) -> anyhow::Result<u64> {
    status_field(client, base, "log_end_offset").await
}

/// One number from `/_status`.
async fn status_field(client: &reqwest::Client, base: &str, field: &str) -> anyhow::Result<u64> {
    let status: Value = client
        .get(format!("{base}/_status"))
        .send()
        .await?
        .json()
        .await?;
    status[field]
        .as_u64()
        .with_context(|| format!("/_status has no {field}"))
}

/// Seconds (since the load started) until every insight reflects the log up to `end`.
async fn wait_insights(
    client: &reqwest::Client,
    base: &str,
    auth: &str,
    ids: &[u64],
    end: u64,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    for id in ids {
        loop {
            let doc: Value = client
                .get(format!("{base}/api/projects/1/insights/{id}"))
                .header("authorization", auth)
                .send()
                .await?
                .json()
                .await?;
            if doc["log_offset"].as_u64().is_some_and(|o| o >= end) {
                break;
            }
            if started.elapsed() > Duration::from_secs(1800) {
                bail!("insight {id} did not catch up within 30 minutes");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(started.elapsed().as_secs_f64())
}
