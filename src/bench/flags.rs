//! `quill bench flags`: `/flags?v=2` at a fixed request rate against a fresh server holding 50
//! flags over every kind of condition and persons with properties.
//!
//! The load is open loop: request `i` is due at `start + i / rate`, whatever happened to the
//! requests before it. Two latencies are reported: from sending to the whole answer, and from
//! when the request was due. The second includes waiting for a free connection and tokio's 1 ms
//! timer, so a server that falls behind shows its queueing there instead of slowing the load
//! down (coordinated omission).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Args;
use serde_json::{json, Value};

use super::events::Rng;
use super::ingest::{wait_materialized, wait_ready};
use super::server::{cpu_seconds, ChildServer, KEY, TOKEN};
use super::{p50_p99_max, peak_rss_kb, percentile};

#[derive(Debug, Args)]
pub struct FlagsBenchArgs {
    /// Requests per second to offer.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// Seconds of measured load (after one second of warm-up at the same rate).
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// Client connections.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Persons with properties; each request asks for a random one.
    #[arg(long, default_value_t = 10_000)]
    persons: usize,
    /// Seed an already running server at this URL (token `phc_bench_token`, personal key
    /// `phx_bench_key`) and exit, for driving it with another load generator such as wrk.
    #[arg(long)]
    seed_only: Option<String>,
}

pub async fn run(args: FlagsBenchArgs) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .build()?;
    if let Some(base) = &args.seed_only {
        return seed(&client, base, args.persons).await;
    }
    let server = ChildServer::start("flags", &[])?;
    let base = server.base();
    wait_ready(&client, &base).await?;
    seed(&client, &base, args.persons).await?;

    let url = format!("{base}/flags?v=2");
    let me = std::process::id();
    // The load runs on one thread of its own: on two cores shared with the server, a
    // multi-threaded client adds cross-thread wake-ups that show up as server latency.
    let (load, cpu_before, my_cpu_before) = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(async {
                    let client = reqwest::Client::builder()
                        .pool_max_idle_per_host(args.connections)
                        .build()?;
                    warm_up(&client, &url, &args).await?;
                    let server_cpu = cpu_seconds(server.pid()).unwrap_or(0.0);
                    let my_cpu = cpu_seconds(me).unwrap_or(0.0);
                    let load = offer(&client, &url, &args, args.seconds).await?;
                    anyhow::Ok((load, server_cpu, my_cpu))
                })
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the load thread panicked"))?
    })?;
    let cpu = cpu_seconds(server.pid()).unwrap_or(0.0) - cpu_before;
    let my_cpu = cpu_seconds(me).unwrap_or(0.0) - my_cpu_before;
    let (mut latencies, mut from_due): (Vec<f64>, Vec<f64>) = load.latencies_ms.into_iter().unzip();
    latencies.sort_by(f64::total_cmp);
    from_due.sort_by(f64::total_cmp);
    let done = latencies.len();
    println!(
        "/flags?v=2 at {} req/s offered for {} s ({} connections, 50 flags, {} persons)",
        args.rate, args.seconds, args.connections, args.persons
    );
    println!(
        "  served:   {:.0} req/s ({done} requests, {} errors)",
        done as f64 / load.elapsed_s,
        load.errors
    );
    println!(
        "  latency:  p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        percentile(&latencies, 50.0),
        percentile(&latencies, 90.0),
        percentile(&latencies, 99.0),
        percentile(&latencies, 99.9),
        latencies.last().copied().unwrap_or(0.0)
    );
    println!("  from due: {}", p50_p99_max(&from_due, 2));
    println!(
        "  server:   {:.0} µs CPU per request, {:.1} MiB peak RSS; the load generator used {:.0} µs CPU per request",
        cpu * 1e6 / done.max(1) as f64,
        peak_rss_kb(server.pid()).unwrap_or(0) as f64 / 1024.0,
        my_cpu * 1e6 / done.max(1) as f64,
    );
    Ok(())
}

async fn warm_up(client: &reqwest::Client, url: &str, args: &FlagsBenchArgs) -> anyhow::Result<()> {
    let load = offer(client, url, args, 1).await?;
    if load.errors > 0 {
        bail!("{} of the warm-up requests failed", load.errors);
    }
    Ok(())
}

struct Load {
    /// Per request: (from sending, from when it was due), in milliseconds.
    latencies_ms: Vec<(f64, f64)>,
    errors: usize,
    elapsed_s: f64,
}

/// Offers `rate × seconds` requests on schedule over `connections` connections.
async fn offer(
    client: &reqwest::Client,
    url: &str,
    args: &FlagsBenchArgs,
    seconds: u64,
) -> anyhow::Result<Load> {
    let total = (args.rate * seconds) as usize;
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    let next = Arc::new(AtomicUsize::new(0));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let errors = Arc::new(AtomicUsize::new(0));
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for c in 0..args.connections {
        let (client, url) = (client.clone(), url.to_string());
        let (next, latencies, errors) = (next.clone(), latencies.clone(), errors.clone());
        let persons = args.persons as u64;
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng::new(c as u64 + 1);
            let mut mine = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let due = start + interval * i as u32;
                tokio::time::sleep_until(due).await;
                let sent = Instant::now();
                let body =
                    json!({"token": TOKEN, "distinct_id": format!("user-{}", rng.below(persons))});
                let ok = match client.post(&url).json(&body).send().await {
                    Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                    _ => false,
                };
                if ok {
                    let ms = |d: Duration| d.as_secs_f64() * 1e3;
                    mine.push((ms(sent.elapsed()), ms(due.elapsed())));
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            if let Ok(mut all) = latencies.lock() {
                all.extend(mine);
            }
        }));
    }
    for task in tasks {
        task.await.context("a load task failed")?;
    }
    let elapsed_s = start.elapsed().as_secs_f64();
    let latencies_ms =
        std::mem::take(&mut *latencies.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    Ok(Load {
        latencies_ms,
        errors: errors.load(Ordering::Relaxed),
        elapsed_s,
    })
}

/// 50 flags through the API, then persons through `/batch`, then waits for the materializer.
async fn seed(client: &reqwest::Client, base: &str, persons: usize) -> anyhow::Result<()> {
    for i in 0..50 {
        let r = client
            .post(format!("{base}/api/projects/1/feature_flags"))
            .bearer_auth(KEY)
            .json(&flag(i))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("creating flag {i}: {} {}", r.status(), r.text().await?);
        }
    }
    let mut rng = Rng::new(7);
    let now = chrono::Utc::now();
    let people: Vec<Value> = (0..persons)
        .map(|n| {
            let signup = now - chrono::Duration::days(rng.below(200) as i64);
            let domain = ["example.com", "acme.io", "mail.test"][rng.below(3) as usize];
            let plan = ["free", "pro", "enterprise"][rng.below(3) as usize];
            let country = ["FR", "US", "DE", "JP"][rng.below(4) as usize];
            json!({"event": "$set", "distinct_id": format!("user-{n}"), "properties": {"$set": {
                "email": format!("user-{n}@{domain}"),
                "plan": plan,
                "age": 18 + rng.below(53),
                "app_version": format!("1.{}.{}", rng.below(10), rng.below(10)),
                "country": country,
                "signup_date": signup.to_rfc3339(),
            }}})
        })
        .collect();
    for chunk in people.chunks(500) {
        let r = client
            .post(format!("{base}/batch/"))
            .json(&json!({"api_key": TOKEN, "batch": chunk}))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("sending persons: {}", r.status());
        }
    }
    wait_materialized(client, base)
        .await
        .context("the persons were not materialized in time")?;
    println!("seeded 50 flags and {persons} persons");
    Ok(())
}

/// Flag `i`: one to three conditions, the operator cycling through the kinds a project uses,
/// rollouts of 10/50/100 %, every third flag multivariate, payloads.
fn flag(i: usize) -> Value {
    let conditions = [
        json!({"key": "plan", "value": ["pro", "enterprise"], "operator": "exact"}),
        json!({"key": "email", "value": "example.com", "operator": "icontains"}),
        json!({"key": "age", "value": 30, "operator": "gte"}),
        json!({"key": "app_version", "value": "1.4.0", "operator": "semver_gte"}),
        json!({"key": "country", "value": ["FR"], "operator": "is_not"}),
        json!({"key": "email", "value": "^user-\\d*7@", "operator": "regex"}),
        json!({"key": "signup_date", "value": "-90d", "operator": "is_date_after"}),
        json!({"key": "plan", "operator": "is_set"}),
    ];
    let groups: Vec<Value> = (0..1 + i % 3)
        .map(|c| {
            let mut filter = conditions[(i + c) % conditions.len()].clone();
            filter["type"] = json!("person");
            let rollout = [10, 50, 100][(i + c) % 3];
            json!({"properties": [filter], "rollout_percentage": rollout})
        })
        .collect();
    let mut filters = json!({"groups": groups});
    if i.is_multiple_of(3) {
        filters["multivariate"] = json!({"variants": [
            {"key": "control", "rollout_percentage": 50},
            {"key": "test", "rollout_percentage": 50},
        ]});
        filters["payloads"] = json!({"test": json!({"color": "blue", "n": i}).to_string()});
    } else {
        filters["payloads"] = json!({"true": json!({"flag": i}).to_string()});
    }
    json!({"key": format!("bench-flag-{i}"), "name": format!("Bench flag {i}"), "active": true, "filters": filters})
}
