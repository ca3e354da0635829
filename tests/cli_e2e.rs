//! `quill ingest`, `quill project create` and project separation.

mod common;

use std::process::Command;

use common::{all_events, api_get, post, Server, TOKEN};
use serde_json::json;

#[test]
fn ingest_loads_valid_lines_and_reports_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.ndjson");
    let lines = [
        json!({"event": "$pageview", "distinct_id": "u1", "timestamp": "2024-01-01T10:00:00Z", "uuid": "0190a000-0000-7000-8000-000000000001", "properties": {"$current_url": "/a"}}).to_string(),
        "{not json".to_string(),
        json!({"event": "signup", "properties": {}}).to_string(),
        json!({"event": "$identify", "distinct_id": "u1-real", "properties": {"$anon_distinct_id": "u1", "$set": {"email": "u1@x.test"}}}).to_string(),
        String::new(),
        json!({"event": "$pageview", "distinct_id": "u1", "uuid": "0190a000-0000-7000-8000-000000000001"}).to_string(),
    ];
    std::fs::write(&file, lines.join("\n")).unwrap();
    let data = dir.path().join("data");
    let out = Command::new(common::bin())
        .args(["ingest", "--data-dir"])
        .arg(&data)
        .arg(&file)
        .env("QUILL_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("accepted 2, duplicates 1, dropped by transformations 0, rejected 2"),
        "{stdout}"
    );
    assert!(
        stderr.contains("line 2") && stderr.contains("line 3") && stderr.contains("distinct_id"),
        "{stderr}"
    );

    let server = Server::start(&data);
    let events = all_events(&server);
    assert_eq!(events.len(), 2);
    assert_eq!(
        events.iter().find(|e| e["event"] == "$pageview").unwrap()["timestamp"],
        "2024-01-01T10:00:00.000Z"
    );
    let person = &api_get(&server, "/api/projects/1/persons?distinct_id=u1")["results"][0];
    assert_eq!(person["properties"]["email"], "u1@x.test");
    assert_eq!(person["distinct_ids"], json!(["u1", "u1-real"]));
}

#[test]
fn projects_are_separate() {
    let dir = tempfile::tempdir().unwrap();
    // Project 1 exists once the server has started once.
    drop(Server::start(dir.path()));
    let out = Command::new(common::bin())
        .args(["project", "create", "--data-dir"])
        .arg(dir.path())
        .arg("Second")
        .env("QUILL_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let token = stdout
        .split_whitespace()
        .find(|w| w.starts_with("phc_"))
        .expect("a phc_ token")
        .to_string();
    assert!(stdout.contains("project 2"), "{stdout}");

    let server = Server::start(dir.path());
    // The running server refuses a second process on the same data directory.
    let locked = Command::new(common::bin())
        .args(["project", "list", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!locked.status.success());
    assert!(String::from_utf8_lossy(&locked.stderr).contains("in use"));

    for (tok, did) in [(TOKEN, "one"), (token.as_str(), "two")] {
        let body = json!({"event": "e", "distinct_id": did, "token": tok});
        assert_eq!(
            post(
                &server,
                "/e/",
                &[("Content-Type", "application/json")],
                body.to_string().as_bytes()
            )
            .status,
            200
        );
    }
    let p1: Vec<_> = all_events(&server)
        .iter()
        .map(|e| e["distinct_id"].clone())
        .collect();
    assert_eq!(p1, vec![json!("one")]);
    let p2 = api_get(&server, "/api/projects/2/events")["results"].clone();
    assert_eq!(p2.as_array().unwrap().len(), 1);
    assert_eq!(p2[0]["distinct_id"], "two");
    assert_eq!(
        api_get(&server, "/api/projects/2/persons?distinct_id=one")["results"],
        json!([])
    );
    assert_eq!(server.terminate().code(), Some(0));
}
