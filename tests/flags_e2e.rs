//! Feature flags against the running binary: CRUD and its validation errors, auth, `/flags` and
//! `/decide` versions and encodings, stored persons, experience continuity, ETag / 304, and
//! definitions surviving a restart.

mod common;

use common::{gzip, urlencode};

use std::time::{Duration, Instant};

use base64::Engine;
use common::{http, Server, KEY, TOKEN};
use serde_json::{json, Value};

fn auth() -> String {
    format!("Bearer {KEY}")
}

fn api(server: &Server, method: &str, path: &str, body: &Value) -> http::Reply {
    let auth = auth();
    let bytes = if body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(body).unwrap()
    };
    http::request(
        method,
        &server.url(path),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        &bytes,
    )
    .expect("api request")
}

fn create(server: &Server, flag: Value) -> Value {
    let r = api(server, "POST", "/api/projects/1/feature_flags", &flag);
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

fn flags(server: &Server, query: &str, body: &Value) -> http::Reply {
    let bytes = serde_json::to_vec(body).unwrap();
    http::request(
        "POST",
        &server.url(&format!("/flags{query}")),
        &[("Content-Type", "application/json")],
        &bytes,
    )
    .expect("flags request")
}

fn pro_flag() -> Value {
    json!({"key": "pro", "name": "Pro only", "active": true, "filters": {
        "groups": [{"properties": [{"key": "plan", "value": "pro", "operator": "exact", "type": "person"}],
                    "rollout_percentage": 100}],
        "payloads": {"true": "{\"limit\": 10}"}}})
}

#[test]
fn crud_round_trip_and_validation_errors_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let made = create(&server, pro_flag());
    assert_eq!(made["id"], 1);
    assert_eq!(made["version"], 1);
    assert_eq!(made["key"], "pro");

    let cases = [
        (
            json!({"key": "mv", "filters": {"groups": [{}], "multivariate": {"variants": [
                {"key": "a", "rollout_percentage": 30}, {"key": "b", "rollout_percentage": 30}]}}}),
            "filters.multivariate.variants",
        ),
        (
            json!({"key": "op", "filters": {"groups": [{"properties": [
                {"key": "plan", "value": "x", "operator": "sounds_like", "type": "person"}]}]}}),
            "filters.groups[0].properties[0].operator",
        ),
        (
            json!({"key": "re", "filters": {"groups": [{"properties": [
                {"key": "plan", "value": "(unclosed", "operator": "regex", "type": "person"}]}]}}),
            "filters.groups[0].properties[0].value",
        ),
        (
            json!({"key": "ro", "filters": {"groups": [{"rollout_percentage": 150}]}}),
            "filters.groups[0].rollout_percentage",
        ),
        (json!({"key": "x", "colour": "red"}), "colour"),
        (json!({"key": "pro", "filters": {"groups": [{}]}}), "key"),
    ];
    for (body, attr) in cases {
        let r = api(&server, "POST", "/api/projects/1/feature_flags", &body);
        assert_eq!(
            r.status,
            400,
            "{body}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let err = r.json();
        assert_eq!(err["attr"], attr, "{body}: {err}");
        assert_eq!(err["type"], "validation_error");
    }

    // PATCH replaces fields, bumps the version, and validates too.
    let r = api(
        &server,
        "PATCH",
        "/api/projects/1/feature_flags/1",
        &json!({"active": false}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["version"], 2);
    assert_eq!(r.json()["active"], false);
    let r = api(
        &server,
        "PATCH",
        "/api/projects/1/feature_flags/1",
        &json!({"filters": {"groups": [{"rollout_percentage": -1}]}}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["attr"], "filters.groups[0].rollout_percentage");

    let other = create(
        &server,
        json!({"key": "other", "filters": {"groups": [{}]}}),
    );
    let r = api(
        &server,
        "PATCH",
        &format!("/api/projects/1/feature_flags/{}", other["id"]),
        &json!({"key": "pro"}),
    );
    assert_eq!(r.status, 400, "renaming onto a taken key");
    assert_eq!(r.json()["attr"], "key");

    let list = api(
        &server,
        "GET",
        "/api/projects/1/feature_flags",
        &Value::Null,
    )
    .json();
    assert_eq!(list["results"].as_array().unwrap().len(), 2);
    let r = api(
        &server,
        "DELETE",
        "/api/projects/1/feature_flags/1",
        &Value::Null,
    );
    assert_eq!(r.status, 204);
    let r = api(
        &server,
        "GET",
        "/api/projects/1/feature_flags/1",
        &Value::Null,
    );
    assert_eq!(r.status, 404);
    let list = api(
        &server,
        "GET",
        "/api/projects/1/feature_flags",
        &Value::Null,
    )
    .json();
    assert_eq!(list["results"].as_array().unwrap().len(), 1);
    // The key is free again after deletion.
    create(&server, pro_flag());

    // Without the personal key: 401.
    let r = http::request(
        "GET",
        &server.url("/api/projects/1/feature_flags"),
        &[],
        &[],
    )
    .unwrap();
    assert_eq!(r.status, 401);
    let r = http::request(
        "POST",
        &server.url("/api/projects/1/feature_flags"),
        &[("Authorization", "Bearer phx_wrong")],
        br#"{"key":"k"}"#,
    )
    .unwrap();
    assert_eq!(r.status, 401);

    // Definitions survive a restart, with their versions.
    let status = server.terminate();
    assert!(status.success());
    let server = Server::start(dir.path());
    let list = api(
        &server,
        "GET",
        "/api/projects/1/feature_flags",
        &Value::Null,
    )
    .json();
    let keys: Vec<&str> = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["other", "pro"]);
    let r = flags(
        &server,
        "?v=2",
        &json!({"token": TOKEN, "distinct_id": "u", "person_properties": {"plan": "pro"}}),
    );
    assert_eq!(r.json()["flags"]["pro"]["enabled"], true);
}

#[test]
fn flags_and_decide_versions_encodings_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    create(&server, pro_flag());
    create(
        &server,
        json!({"key": "split", "filters": {"groups": [{"rollout_percentage": 100}],
            "multivariate": {"variants": [{"key": "control", "rollout_percentage": 50},
                                          {"key": "test", "rollout_percentage": 50}]}}}),
    );
    let body =
        json!({"token": TOKEN, "distinct_id": "user-1", "person_properties": {"plan": "pro"}});

    let v2 = flags(&server, "?v=2", &body).json();
    assert_eq!(v2["errorsWhileComputingFlags"], false);
    assert_eq!(v2["flags"]["pro"]["enabled"], true);
    assert_eq!(v2["flags"]["pro"]["reason"]["code"], "condition_match");
    assert_eq!(v2["flags"]["pro"]["metadata"]["payload"], "{\"limit\": 10}");
    let variant = v2["flags"]["split"]["variant"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(v2["requestId"].is_string() && v2["evaluatedAt"].is_i64());

    let legacy = flags(&server, "", &body).json();
    assert_eq!(
        legacy["featureFlags"],
        json!({"pro": true, "split": variant})
    );
    assert_eq!(legacy["featureFlagPayloads"]["pro"], "{\"limit\": 10}");

    let decide = |v: u32, body: &Value| {
        http::request(
            "POST",
            &server.url(&format!("/decide/?v={v}")),
            &[],
            &serde_json::to_vec(body).unwrap(),
        )
        .unwrap()
        .json()
    };
    let free =
        json!({"token": TOKEN, "distinct_id": "user-1", "person_properties": {"plan": "free"}});
    assert_eq!(decide(1, &free)["featureFlags"], json!(["split"]));
    assert_eq!(decide(2, &free)["featureFlags"], json!({"split": variant}));
    assert_eq!(
        decide(3, &free)["featureFlags"],
        json!({"pro": false, "split": variant})
    );
    assert_eq!(decide(4, &free)["flags"]["pro"]["enabled"], false);
    assert!(decide(4, &free)["config"].is_object());

    // Every body encoding the SDKs use gives the same answer.
    let raw = serde_json::to_vec(&body).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&raw);
    let form_b64 = format!("data={}", b64.replace('+', "%2B").replace('=', "%3D"));
    let encodings: Vec<Encoded> = vec![
        (
            "/flags?v=2".into(),
            vec![("Content-Encoding", "gzip")],
            gzip(&raw),
        ),
        ("/flags?v=2".into(), vec![], gzip(&raw)),
        ("/flags?v=2&compression=gzip-js".into(), vec![], gzip(&raw)),
        (
            "/flags?v=2&compression=base64".into(),
            vec![],
            b64.clone().into_bytes(),
        ),
        (
            "/flags?v=2".into(),
            vec![("Content-Type", "application/x-www-form-urlencoded")],
            form_b64.into_bytes(),
        ),
        (
            "/decide?v=4".into(),
            vec![("Content-Type", "application/x-www-form-urlencoded")],
            format!(
                "data={}",
                urlencode(&String::from_utf8(raw.clone()).unwrap())
            )
            .into_bytes(),
        ),
    ];
    for (path, headers, bytes) in encodings {
        let r = http::request("POST", &server.url(&path), &headers, &bytes).unwrap();
        assert_eq!(
            r.status,
            200,
            "{path} {headers:?}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let j = r.json();
        assert_eq!(j["flags"]["pro"]["enabled"], true, "{path} {headers:?}");
        assert_eq!(j["flags"]["split"]["variant"], variant.as_str());
    }

    // Errors: 401 for a missing or unknown token, 400 without distinct_id or for garbage.
    let cases = [
        (json!({"distinct_id": "u"}), 401),
        (json!({"token": "phc_nope", "distinct_id": "u"}), 401),
        (json!({"token": TOKEN}), 400),
        (json!({"api_key": TOKEN, "$distinct_id": 42}), 200),
    ];
    for (body, status) in cases {
        assert_eq!(flags(&server, "?v=2", &body).status, status, "{body}");
    }
    let r = http::request("POST", &server.url("/flags?v=2"), &[], b"{not json").unwrap();
    assert_eq!(r.status, 400);

    // CORS like capture, and OPTIONS preflight.
    let r = http::request(
        "OPTIONS",
        &server.url("/flags"),
        &[("Origin", "https://app.example")],
        &[],
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
}

/// A path, headers and body.
type Encoded = (String, Vec<(&'static str, &'static str)>, Vec<u8>);

#[test]
fn stored_persons_and_groups_decide_and_request_properties_override() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    create(&server, pro_flag());
    create(
        &server,
        json!({"key": "big", "filters": {"aggregation_group_type_index": 0, "groups": [
            {"properties": [{"key": "size", "value": 100, "operator": "gte", "type": "group",
                             "group_type_index": 0}], "rollout_percentage": 100}]}}),
    );
    let events = json!({"api_key": TOKEN, "batch": [
        {"event": "$set", "distinct_id": "stored-user", "properties": {"$set": {"plan": "pro"}}},
        {"event": "$groupidentify", "distinct_id": "stored-user", "properties": {
            "$group_type": "company", "$group_key": "acme", "$group_set": {"size": 500}}},
    ]});
    let r = common::post(
        &server,
        "/batch",
        &[],
        &serde_json::to_vec(&events).unwrap(),
    );
    assert_eq!(r.status, 200);
    // Reads are read-your-writes: this waits for the materializer.
    let persons = common::api_get(&server, "/api/projects/1/persons?distinct_id=stored-user");
    assert_eq!(persons["results"].as_array().unwrap().len(), 1);

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v2 = flags(
            &server,
            "?v=2",
            &json!({"token": TOKEN, "distinct_id": "stored-user", "groups": {"company": "acme"}}),
        )
        .json();
        if v2["flags"]["pro"]["enabled"] == true && v2["flags"]["big"]["enabled"] == true {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "stored properties never applied: {v2}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let v2 = flags(
        &server,
        "?v=2",
        &json!({"token": TOKEN, "distinct_id": "stored-user", "person_properties": {"plan": "free"},
                "groups": {"company": "acme"}, "group_properties": {"company": {"size": 3}}}),
    )
    .json();
    assert_eq!(v2["flags"]["pro"]["enabled"], false);
    assert_eq!(v2["flags"]["big"]["enabled"], false);
    let v2 = flags(
        &server,
        "?v=2",
        &json!({"token": TOKEN, "distinct_id": "stored-user"}),
    )
    .json();
    assert_eq!(v2["flags"]["big"]["reason"]["code"], "no_group_type");
}

#[test]
fn experience_continuity_keeps_the_anonymous_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    create(
        &server,
        json!({"key": "cont", "ensure_experience_continuity": true,
               "filters": {"groups": [{"rollout_percentage": 50}]}}),
    );
    let value =
        |body: Value| flags(&server, "?v=2", &body).json()["flags"]["cont"]["enabled"].clone();
    let own = value(json!({"token": TOKEN, "distinct_id": "user-x"}));
    let anon = (0..200)
        .map(|i| format!("anon-{i}"))
        .find(|a| value(json!({"token": TOKEN, "distinct_id": a})) != own)
        .expect("some anonymous id falls in the other bucket");
    let expected = value(json!({"token": TOKEN, "distinct_id": anon}));
    // The first request after identify carries the anonymous id and records the override...
    assert_eq!(
        value(json!({"token": TOKEN, "distinct_id": "user-x", "$anon_distinct_id": anon})),
        expected
    );
    // ...which later requests keep using, also after a restart.
    assert_eq!(
        value(json!({"token": TOKEN, "distinct_id": "user-x"})),
        expected
    );
    assert!(server.terminate().success());
    let server = Server::start(dir.path());
    let r = flags(
        &server,
        "?v=2",
        &json!({"token": TOKEN, "distinct_id": "user-x"}),
    );
    assert_eq!(r.json()["flags"]["cont"]["enabled"], expected);
}

#[test]
fn local_evaluation_needs_the_personal_key_and_answers_304_on_etag() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    create(&server, pro_flag());
    let auth = auth();
    for path in ["/api/feature_flag/local_evaluation", "/flags/definitions"] {
        let url = server.url(&format!("{path}?token={TOKEN}&send_cohorts"));
        let r = http::request("GET", &url, &[], &[]).unwrap();
        assert_eq!(r.status, 401, "{path} without a key");
        let bad = server.url(&format!("{path}?token=phc_unknown"));
        let r = http::request("GET", &bad, &[("Authorization", &auth)], &[]).unwrap();
        assert_eq!(r.status, 401, "{path} with an unknown token");

        let r = http::request("GET", &url, &[("Authorization", &auth)], &[]).unwrap();
        assert_eq!(r.status, 200);
        let body = r.json();
        assert_eq!(body["flags"][0]["key"], "pro");
        assert!(body["group_type_mapping"].is_object() && body["cohorts"].is_object());
        let etag = r.header("etag").expect("an ETag").to_string();
        let r = http::request(
            "GET",
            &url,
            &[("Authorization", &auth), ("If-None-Match", &etag)],
            &[],
        )
        .unwrap();
        assert_eq!(r.status, 304, "{path}");
        assert!(r.body.is_empty());
    }
    // A change gives a new ETag.
    let url = server.url(&format!("/flags/definitions?token={TOKEN}"));
    let before = http::request("GET", &url, &[("Authorization", &auth)], &[]).unwrap();
    let before = before.header("etag").unwrap().to_string();
    api(
        &server,
        "PATCH",
        "/api/projects/1/feature_flags/1",
        &json!({"name": "renamed"}),
    );
    let r = http::request(
        "GET",
        &url,
        &[("Authorization", &auth), ("If-None-Match", &before)],
        &[],
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_ne!(r.header("etag").unwrap(), before);
    assert_eq!(r.json()["flags"][0]["name"], "renamed");
}
