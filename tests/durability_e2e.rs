//! No acknowledged event is lost to kill -9, none is stored twice, and replay rebuilds
//! identical persons.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{all_events, all_persons, post, Server, TOKEN};
use serde_json::{json, Value};

const CLIENTS: usize = 8;

/// One client: batches of events with fresh uuids, identities and merges among them. Returns
/// the uuids the server acknowledged.
fn client(server_port: u16, id: usize, stop: Arc<AtomicBool>, acked: Arc<Mutex<Vec<String>>>) {
    let url = format!("http://127.0.0.1:{server_port}/batch/");
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let mut batch = Vec::new();
        for _ in 0..25 {
            n += 1;
            let anon = format!("anon-{id}-{}", n % 40);
            let user = format!("user-{id}-{}", n % 15);
            let uuid = uuid::Uuid::new_v4().to_string();
            let event = match n % 10 {
                0 => json!({"event": "$identify", "distinct_id": user, "uuid": uuid,
                            "properties": {"$anon_distinct_id": anon, "$set": {"email": format!("{user}@example.com"), "n": n}}}),
                1 => {
                    json!({"event": "$set", "distinct_id": user, "uuid": uuid, "$set_once": {"first": n}})
                }
                _ => {
                    json!({"event": "$pageview", "distinct_id": anon, "uuid": uuid, "properties": {"$current_url": format!("https://x.test/{n}")}})
                }
            };
            batch.push(event);
        }
        let body = json!({"api_key": TOKEN, "batch": batch}).to_string();
        let client = common::http::client();
        match client
            .post(&url)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
        {
            Ok(r) if r.status().as_u16() == 200 => {
                let mut acked = acked.lock().unwrap();
                acked.extend(
                    batch
                        .iter()
                        .map(|e| e["uuid"].as_str().unwrap().to_string()),
                );
            }
            // Refused or cut off by the kill: not acknowledged, so the client may not count it.
            _ => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

fn sorted_persons(server: &Server) -> Vec<Value> {
    let mut persons = all_persons(server);
    persons.sort_by_key(|p| p["id"].as_u64());
    persons
}

#[test]
fn kill_9_under_load_loses_no_acknowledged_event_and_replay_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let mut acked_total = 0;
    let mut previously_acked: Vec<String> = Vec::new();
    // Two rounds: the second restart also recovers a log that was already recovered once.
    for round in 0..2 {
        let server = Server::start(dir.path());
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let threads: Vec<_> = (0..CLIENTS)
            .map(|id| {
                let (stop, acked, port) = (stop.clone(), acked.clone(), server.port);
                std::thread::spawn(move || client(port, id + round * CLIENTS, stop, acked))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(1500 + 700 * round as u64));
        server.kill9();
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().unwrap();
        }
        let acked = acked.lock().unwrap().clone();
        assert!(
            acked.len() > 100,
            "round {round}: only {} events acknowledged before the kill",
            acked.len()
        );
        acked_total += acked.len();
        previously_acked.extend(acked);
    }

    let server = Server::start(dir.path());
    let events = all_events(&server);
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for e in &events {
        *counts.entry(e["uuid"].as_str().unwrap()).or_default() += 1;
    }
    let duplicated = counts.values().filter(|&&c| c > 1).count();
    assert_eq!(duplicated, 0, "{duplicated} uuids stored more than once");
    let missing: Vec<_> = previously_acked
        .iter()
        .filter(|u| !counts.contains_key(u.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {acked_total} acknowledged events lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );

    let before = sorted_persons(&server);
    assert!(!before.is_empty());
    assert!(
        before
            .iter()
            .any(|p| p["distinct_ids"].as_array().unwrap().len() > 1),
        "merges happened"
    );
    assert_eq!(
        server.terminate().code(),
        Some(0),
        "graceful shutdown exits 0"
    );

    let replay = std::process::Command::new(common::bin())
        .args(["replay", "--data-dir"])
        .arg(dir.path())
        .env("QUILL_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        replay.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&replay.stderr)
    );
    let server = Server::start(dir.path());
    let after = sorted_persons(&server);
    assert_eq!(before, after, "replay must rebuild identical persons");
    assert_eq!(all_events(&server).len(), events.len());
}

#[test]
fn deleting_a_person_with_events_removes_them_everywhere_and_survives_replay() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let batch = json!({"api_key": TOKEN, "batch": [
        {"event": "$pageview", "distinct_id": "anon-a"},
        {"event": "$identify", "distinct_id": "alice", "properties": {"$anon_distinct_id": "anon-a", "$set": {"plan": "pro"}}},
        {"event": "$pageview", "distinct_id": "bob"},
    ]});
    assert_eq!(
        post(
            &server,
            "/batch/",
            &[("Content-Type", "application/json")],
            batch.to_string().as_bytes()
        )
        .status,
        200
    );
    let alice =
        common::api_get(&server, "/api/projects/1/persons?distinct_id=alice")["results"][0].clone();
    assert_eq!(
        alice["distinct_ids"],
        json!(["anon-a", "alice"]),
        "ids in the order they joined"
    );
    let uuid = alice["uuid"].as_str().unwrap();
    let auth = format!("Bearer {}", common::KEY);
    let r = common::http::request(
        "DELETE",
        &server.url(&format!(
            "/api/projects/1/persons/{uuid}?delete_events=true"
        )),
        &[("Authorization", &auth)],
        &[],
    )
    .unwrap();
    assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));
    let check = |server: &Server| {
        assert_eq!(
            common::api_get(server, "/api/projects/1/persons?distinct_id=alice")["results"],
            json!([])
        );
        assert_eq!(
            common::api_get(server, "/api/projects/1/persons?distinct_id=anon-a")["results"],
            json!([])
        );
        let left: Vec<_> = all_events(server)
            .iter()
            .map(|e| e["distinct_id"].clone())
            .collect();
        assert_eq!(left, vec![json!("bob")]);
    };
    check(&server);
    assert_eq!(server.terminate().code(), Some(0));
    let status = std::process::Command::new(common::bin())
        .args(["replay", "--data-dir"])
        .arg(dir.path())
        .env("QUILL_LOG", "warn")
        .status()
        .unwrap();
    assert!(status.success());
    let server = Server::start(dir.path());
    check(&server);
}

/// Sends `count` pageviews spread over 13 distinct ids.
fn pageviews(server: &Server, from: usize, count: usize) {
    let events: Vec<Value> = (from..from + count)
        .map(|n| json!({"event": "$pageview", "distinct_id": format!("user-{}", n % 13)}))
        .collect();
    let body = json!({"api_key": TOKEN, "batch": events}).to_string();
    let r = post(
        server,
        "/batch/",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200);
}

/// The registered trend's total, once it reflects everything acknowledged before the call.
fn trend_total(server: &Server, insight: u64) -> u64 {
    let doc = common::api_get(
        server,
        &format!("/api/projects/1/insights/{insight}?refresh=blocking"),
    );
    doc["result"][0]["count"]
        .as_f64()
        .unwrap_or_else(|| panic!("no count in {doc}")) as u64
}

#[test]
fn insights_survive_kill_9_and_a_restart_loads_their_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let auth = format!("Bearer {}", common::KEY);
    let query = json!({"name": "pageviews", "query": {
        "kind": "TrendsQuery",
        "series": [{"kind": "EventsNode", "event": "$pageview", "math": "total"}],
        "interval": "day",
        "dateRange": {"date_from": "-7d"},
    }});
    let r = common::http::request(
        "POST",
        &server.url("/api/projects/1/insights"),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        query.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let insight = r.json()["id"].as_u64().unwrap();
    pageviews(&server, 0, 300);
    assert_eq!(trend_total(&server, insight), 300);

    // A clean stop stores the checkpoint to the end: the restart reads no event from the log.
    assert_eq!(server.terminate().code(), Some(0));
    let server = Server::start(dir.path());
    assert_eq!(trend_total(&server, insight), 300);
    let status = common::api_get(&server, "/_status");
    assert_eq!(status["insights_loaded_log_events"], json!(0), "{status}");
    assert_eq!(
        status["insights_loaded_from_checkpoint_offset"], status["materialized_offset"],
        "{status}"
    );

    // kill -9 loses at most the open chunk, which the next start reads from the log.
    pageviews(&server, 300, 200);
    assert_eq!(trend_total(&server, insight), 500);
    server.kill9();
    let server = Server::start(dir.path());
    assert_eq!(trend_total(&server, insight), 500);
    let status = common::api_get(&server, "/_status");
    let from_log = status["insights_loaded_log_events"].as_u64().unwrap();
    assert!(from_log <= 200, "{status}");
}
