//! Hog transformations through the running binary: a PII-hashing and a drop-events
//! transformation change and drop captured events; faulty transformations (a runtime error and
//! an infinite loop hitting the timeout) leave events intact and log the error.

mod common;

use common::{all_events, api_get, http, post, Server, KEY, TOKEN};
use serde_json::{json, Value};

fn api(server: &Server, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let auth = format!("Bearer {KEY}");
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    let r = http::request(
        method,
        &server.url(path),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        &bytes,
    )
    .expect("api request");
    let value = if r.body.is_empty() {
        Value::Null
    } else {
        r.json()
    };
    (r.status, value)
}

fn capture(server: &Server, events: Vec<Value>) {
    let body = json!({"api_key": TOKEN, "batch": events});
    let r = post(
        server,
        "/batch/",
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

fn event(name: &str, marker: &str, props: Value) -> Value {
    let mut properties = props;
    properties["marker"] = json!(marker);
    json!({"event": name, "distinct_id": "user-1", "properties": properties})
}

fn with_marker(server: &Server, marker: &str) -> Vec<Value> {
    all_events(server)
        .into_iter()
        .filter(|e| e["properties"]["marker"] == json!(marker))
        .collect()
}

fn create(server: &Server, body: Value) -> u64 {
    let (status, made) = api(server, "POST", "/api/projects/1/hog_functions", Some(body));
    assert_eq!(status, 201, "{made}");
    made["id"].as_u64().expect("id")
}

#[test]
fn transformations_change_drop_and_survive_faults() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());

    // Templates are served.
    let templates = api_get(&server, "/api/hog_function_templates");
    let ids: Vec<&str> = templates["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["id"].as_str())
        .collect();
    assert!(ids.contains(&"template-pii-hashing"), "{ids:?}");

    // Validation: compile errors carry line and column; unknown fields are named.
    let (status, err) = api(
        &server,
        "POST",
        "/api/projects/1/hog_functions",
        Some(json!({"type": "transformation", "name": "bad", "hog": "let x := 1\nreturn (x +"})),
    );
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["attr"], json!("hog"));
    assert_eq!(err["line"], json!(2));
    let (status, err) = api(
        &server,
        "POST",
        "/api/projects/1/hog_functions",
        Some(
            json!({"type": "transformation", "name": "bad", "hog": "return event", "colour": "red"}),
        ),
    );
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["attr"], json!("colour"));

    // PII hashing from the template, with a templated salt; drop events by filter.
    let pii = create(
        &server,
        json!({
            "type": "transformation",
            "name": "hash emails",
            "template_id": "template-pii-hashing",
            "inputs": {"salt": {"value": "{'s3' || 'cr3t'}"}, "propertiesToHash": {"value": "email"}},
            "enabled": true,
            "execution_order": 1,
        }),
    );
    let drop = create(
        &server,
        json!({
            "type": "transformation",
            "name": "drop internal",
            "hog": "return null",
            "filters": {"events": [{"id": "internal_ping", "type": "events"}]},
            "enabled": true,
            "execution_order": 2,
        }),
    );
    capture(
        &server,
        vec![
            event("signup", "m1", json!({"email": "a@b.c", "plan": "pro"})),
            event("internal_ping", "m1", json!({})),
            event("$pageview", "m1", json!({"email": "a@b.c"})),
        ],
    );
    let stored = with_marker(&server, "m1");
    let names: Vec<&str> = stored.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(stored.len(), 2, "{names:?}");
    assert!(!names.contains(&"internal_ping"));
    let hashed = "b3608f431d4b5da7bf66575f1c86b9ccca01d4f2d723c41af882c33ede326a44";
    for e in &stored {
        assert_eq!(e["properties"]["email"], json!(hashed), "{e}");
    }
    let signup = stored
        .iter()
        .find(|e| e["event"] == json!("signup"))
        .unwrap();
    assert_eq!(signup["properties"]["plan"], json!("pro"));

    // Listed with bytecode and a healthy status.
    let listed = api_get(&server, "/api/projects/1/hog_functions");
    assert_eq!(listed["results"].as_array().unwrap().len(), 2);
    let one = api_get(&server, &format!("/api/projects/1/hog_functions/{pii}"));
    assert_eq!(one["bytecode"][0], json!("_H"));
    assert_eq!(one["status"]["state"], json!(1));

    // Disable both; faulty functions leave events intact and log why.
    for id in [pii, drop] {
        let (status, body) = api(
            &server,
            "PATCH",
            &format!("/api/projects/1/hog_functions/{id}"),
            Some(json!({"enabled": false})),
        );
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["enabled"], json!(false));
    }
    let throws = create(
        &server,
        json!({"type": "transformation", "name": "throws", "hog": "throw Error('boom')", "enabled": true}),
    );
    let spins = create(
        &server,
        json!({"type": "transformation", "name": "spins", "hog": "while (true) { let x := 1 }\nreturn null", "enabled": true}),
    );
    let invalid = create(
        &server,
        json!({"type": "transformation", "name": "invalid", "hog": "return 'not an event'", "enabled": true}),
    );
    capture(
        &server,
        vec![event("signup", "m2", json!({"email": "a@b.c"}))],
    );
    let stored = with_marker(&server, "m2");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["properties"]["email"], json!("a@b.c"));
    assert_eq!(stored[0]["event"], json!("signup"));

    for (id, needle) in [
        (throws, "boom"),
        (spins, "timed out"),
        (invalid, "Invalid result"),
    ] {
        let logs = api_get(&server, &format!("/api/projects/1/hog_functions/{id}/logs"));
        let entries = logs["results"].as_array().unwrap();
        assert!(
            entries.iter().any(|l| l["level"] == json!("error")
                && l["message"].as_str().unwrap_or("").contains(needle)
                && l["timestamp"].is_string()),
            "{id}: {logs}"
        );
    }

    // Delete: gone from the API and from the chain.
    for id in [throws, spins, invalid] {
        let (status, _) = api(
            &server,
            "DELETE",
            &format!("/api/projects/1/hog_functions/{id}"),
            None,
        );
        assert_eq!(status, 204);
    }
    let (status, _) = api(
        &server,
        "GET",
        &format!("/api/projects/1/hog_functions/{throws}"),
        None,
    );
    assert_eq!(status, 404);

    // Definitions persist across a restart: re-enable PII hashing and restart.
    api(
        &server,
        "PATCH",
        &format!("/api/projects/1/hog_functions/{pii}"),
        Some(json!({"enabled": true})),
    );
    server.terminate();
    let server = Server::start(dir.path());
    capture(
        &server,
        vec![event("signup", "m3", json!({"email": "a@b.c"}))],
    );
    let stored = with_marker(&server, "m3");
    assert_eq!(stored[0]["properties"]["email"], json!(hashed));
    let listed = api_get(&server, "/api/projects/1/hog_functions");
    assert_eq!(listed["results"].as_array().unwrap().len(), 2);
}
