//! Every capture encoding and every error status, against the running binary.

mod common;

use common::{gzip, urlencode};

use base64::Engine;
use common::{all_events, post, Server, TOKEN};
use serde_json::{json, Value};

fn event(name: &str, did: &str) -> Value {
    json!({"event": name, "distinct_id": did, "properties": {"token": TOKEN, "n": 1}, "uuid": uuid::Uuid::new_v4().to_string()})
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

const JSON: (&str, &str) = ("Content-Type", "application/json");
const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

#[test]
fn every_encoding_is_stored_once_with_its_properties() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut expected = Vec::new();
    let mut send =
        |label: &str, path: &str, headers: &[(&str, &str)], body: Vec<u8>, events: Vec<Value>| {
            let r = post(&server, path, headers, &body);
            assert_eq!(
                r.status,
                200,
                "{label}: {}",
                String::from_utf8_lossy(&r.body)
            );
            assert_eq!(r.json(), json!({"status": 1}), "{label}");
            expected.extend(events.into_iter().map(|e| (label.to_string(), e)));
        };

    let e = event("plain", "u-plain");
    send(
        "plain single object",
        "/e/",
        &[JSON],
        e.to_string().into_bytes(),
        vec![e],
    );

    let batch = vec![event("array", "u-array"), event("array", "u-array2")];
    send(
        "array",
        "/i/v0/e/",
        &[JSON],
        Value::Array(batch.clone()).to_string().into_bytes(),
        batch,
    );

    let e = event("batch", "u-batch");
    let body = json!({"api_key": TOKEN, "batch": [e.clone()], "sent_at": "2030-01-01T00:00:00Z"});
    send(
        "batch shape",
        "/batch/",
        &[JSON],
        body.to_string().into_bytes(),
        vec![e],
    );

    let e = event("gzip-hinted", "u-gz");
    send(
        "gzip by query hint",
        "/e/?compression=gzip-js",
        &[("Content-Type", "text/plain")],
        gzip(e.to_string().as_bytes()),
        vec![e],
    );

    let e = event("gzip-header", "u-gz2");
    send(
        "gzip by Content-Encoding",
        "/batch",
        &[JSON, ("Content-Encoding", "gzip")],
        gzip(
            json!({"api_key": TOKEN, "batch": [e.clone()]})
                .to_string()
                .as_bytes(),
        ),
        vec![e],
    );

    let e = event("gzip-sniffed", "u-gz3");
    send(
        "gzip by magic bytes",
        "/capture",
        &[],
        gzip(e.to_string().as_bytes()),
        vec![e],
    );

    let e = event("base64-body", "u-b64");
    send(
        "whole-body base64",
        "/e",
        &[("Content-Type", "text/plain")],
        b64(e.to_string().as_bytes()).into_bytes(),
        vec![e],
    );

    let e = event("base64-form", "u-form");
    let form = format!(
        "data={}&compression=base64",
        urlencode(&b64(Value::Array(vec![e.clone()]).to_string().as_bytes()))
    );
    send(
        "form data= base64",
        "/e/",
        &[FORM],
        form.into_bytes(),
        vec![e],
    );

    // Form bodies that turned `+` into spaces are repaired.
    let e = json!({"event": "form-spaces", "distinct_id": "u-space???", "properties": {"token": TOKEN, "x": ">>>"}, "uuid": uuid::Uuid::new_v4().to_string()});
    let encoded = b64(e.to_string().as_bytes());
    assert!(
        encoded.contains('+') || encoded.contains('/'),
        "test data should exercise + or /: {encoded}"
    );
    let form = format!("data={}", encoded.replace('+', " ").replace('/', "%2F"));
    send(
        "form with spaces for +",
        "/track/",
        &[FORM],
        form.into_bytes(),
        vec![e],
    );

    let e = event("lz64-query", "u-lz");
    send(
        "lz64 by query",
        "/e/?compression=lz64",
        &[("Content-Type", "text/plain")],
        lz_str::compress_to_base64(&e.to_string()).into_bytes(),
        vec![e],
    );

    let e = event("lz64-form", "u-lz2");
    let form = format!(
        "data={}&compression=lz64",
        urlencode(&lz_str::compress_to_base64(&e.to_string()))
    );
    send(
        "lz64 by form",
        "/engage/",
        &[FORM],
        form.into_bytes(),
        vec![e],
    );

    // Legacy GET with data= in the query string.
    let e = event("get-data", "u-get");
    let url = server.url(&format!(
        "/e/?data={}",
        urlencode(&b64(e.to_string().as_bytes()))
    ));
    let r = common::http::request("GET", &url, &[], &[]).unwrap();
    assert_eq!(
        r.status,
        200,
        "GET data=: {}",
        String::from_utf8_lossy(&r.body)
    );
    expected.push(("GET data=".into(), e));

    // A retry of an acknowledged event is acknowledged again and stored once.
    let e = event("retry", "u-retry");
    for _ in 0..3 {
        let r = post(
            &server,
            "/batch/",
            &[JSON],
            json!({"api_key": TOKEN, "batch": [e.clone()]})
                .to_string()
                .as_bytes(),
        );
        assert_eq!(r.status, 200);
    }
    expected.push(("retried uuid".into(), e));

    let stored = all_events(&server);
    assert_eq!(stored.len(), expected.len(), "stored: {stored:#?}");
    for (label, sent) in &expected {
        let uuid = sent["uuid"].as_str().unwrap();
        let hits: Vec<_> = stored.iter().filter(|s| s["uuid"] == uuid).collect();
        assert_eq!(
            hits.len(),
            1,
            "{label}: uuid {uuid} stored {} times",
            hits.len()
        );
        assert_eq!(hits[0]["event"], sent["event"], "{label}");
        assert_eq!(hits[0]["distinct_id"], sent["distinct_id"], "{label}");
        assert_eq!(
            hits[0]["properties"]["x"], sent["properties"]["x"],
            "{label}"
        );
        assert_eq!(
            hits[0]["properties"]["n"], sent["properties"]["n"],
            "{label}"
        );
    }
    // sent_at in 2030 with no timestamp: the event time is now, not 2030.
    let batch_event = stored.iter().find(|s| s["event"] == "batch").unwrap();
    assert!(
        batch_event["timestamp"].as_str().unwrap() < "2030",
        "{batch_event}"
    );
    assert_eq!(server.terminate().code(), Some(0));
}

#[test]
fn every_error_status_with_a_body_that_names_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let check = |label: &str,
                 path: &str,
                 headers: &[(&str, &str)],
                 body: Vec<u8>,
                 status: u16,
                 code: &str| {
        let r = post(&server, path, headers, &body);
        assert_eq!(
            r.status,
            status,
            "{label}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let json = r.json();
        assert_eq!(json["code"], code, "{label}: {json}");
        assert!(
            json["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{label}: {json}"
        );
        json
    };
    check("empty body", "/e/", &[JSON], vec![], 400, "empty_payload");
    check(
        "unknown compression",
        "/e/?compression=brotli",
        &[JSON],
        b"{}".to_vec(),
        400,
        "unsupported_compression",
    );
    check(
        "not json",
        "/e/",
        &[JSON],
        b"{not json".to_vec(),
        400,
        "invalid_json",
    );
    check(
        "broken gzip",
        "/e/?compression=gzip",
        &[],
        vec![0x1f, 0x8b, 0, 1, 2, 3],
        400,
        "undecodable_payload",
    );
    check(
        "empty batch",
        "/batch/",
        &[JSON],
        json!({"api_key": TOKEN, "batch": []})
            .to_string()
            .into_bytes(),
        400,
        "empty_batch",
    );
    let missing = check(
        "missing distinct_id at index 1",
        "/batch/",
        &[JSON],
        json!({"api_key": TOKEN, "batch": [event("ok", "a"), {"event": "bad"}]})
            .to_string()
            .into_bytes(),
        400,
        "missing_field",
    );
    assert_eq!(
        (missing["index"].clone(), missing["attr"].clone()),
        (json!(1), json!("distinct_id"))
    );
    let bad_ts = check(
        "invalid timestamp",
        "/batch/",
        &[JSON],
        json!({"api_key": TOKEN, "batch": [{"event": "e", "distinct_id": "d", "timestamp": "not a time"}]}).to_string().into_bytes(),
        400,
        "invalid_field",
    );
    assert_eq!(bad_ts["attr"], "timestamp");
    check(
        "missing event",
        "/e/",
        &[JSON],
        json!({"distinct_id": "d", "token": TOKEN})
            .to_string()
            .into_bytes(),
        400,
        "missing_field",
    );
    check(
        "no token",
        "/e/",
        &[JSON],
        json!({"event": "e", "distinct_id": "d"})
            .to_string()
            .into_bytes(),
        401,
        "missing_token",
    );
    check(
        "personal key as token",
        "/e/",
        &[JSON],
        json!({"event": "e", "distinct_id": "d", "token": "phx_oops"})
            .to_string()
            .into_bytes(),
        401,
        "invalid_token",
    );
    check(
        "unknown token",
        "/e/",
        &[JSON],
        json!({"event": "e", "distinct_id": "d", "token": "phc_nobody"})
            .to_string()
            .into_bytes(),
        401,
        "unknown_token",
    );
    check(
        "tokens disagree",
        "/e/",
        &[JSON],
        json!([{"event": "e", "distinct_id": "d", "token": TOKEN}, {"event": "e", "distinct_id": "d", "token": "phc_other"}]).to_string().into_bytes(),
        401,
        "token_mismatch",
    );
    let big = json!({"event": "e", "distinct_id": "d", "token": TOKEN, "properties": {"blob": "x".repeat(3 << 20)}});
    check(
        "body over the route limit",
        "/e/",
        &[JSON],
        big.to_string().into_bytes(),
        413,
        "payload_too_large",
    );
    let one_big = json!({"api_key": TOKEN, "batch": [{"event": "e", "distinct_id": "d", "properties": {"blob": "x".repeat(1_100_000)}}]});
    check(
        "event over 1 MB",
        "/batch/",
        &[JSON],
        one_big.to_string().into_bytes(),
        413,
        "event_too_large",
    );

    // Nothing of the refused requests was stored.
    assert!(all_events(&server).is_empty());

    // beacon=1 answers 204; OPTIONS answers CORS mirroring the origin and requested headers.
    let r = post(
        &server,
        "/e/?beacon=1",
        &[JSON],
        event("beacon", "b").to_string().as_bytes(),
    );
    assert_eq!(r.status, 204);
    let r = common::http::request(
        "OPTIONS",
        &server.url("/i/v0/e/"),
        &[
            ("Origin", "https://shop.example"),
            ("Access-Control-Request-Headers", "content-type,x-custom"),
        ],
        &[],
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://shop.example")
    );
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("content-type,x-custom")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));

    // The read API wants the personal key.
    let r = common::http::request("GET", &server.url("/api/projects/1/events"), &[], &[]).unwrap();
    assert_eq!(r.status, 401);
    let r = common::http::request(
        "GET",
        &server.url("/api/projects/1/events"),
        &[("Authorization", "Bearer phx_wrong")],
        &[],
    )
    .unwrap();
    assert_eq!(r.status, 401);
    for path in ["/", "/_readiness", "/_liveness"] {
        assert_eq!(
            common::http::request("GET", &server.url(path), &[], &[])
                .unwrap()
                .status,
            200,
            "{path}"
        );
    }
    assert_eq!(server.terminate().code(), Some(0));
}
