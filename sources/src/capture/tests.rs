//! Robustness: arbitrary bytes and arbitrary JSON never panic capture, only refuse cleanly.

use std::sync::Arc;

use proptest::prelude::*;
use quill_pipeline::log::{Log, LogOptions};
use quill_pipeline::projects::{self, Registry};
use quill_pipeline::store::Store;
use quill_pipeline::transform::Transforms;
use serde_json::{json, Value};

use super::decode::{decode, Compression, RawPayload};
use super::{Capture, RequestInfo};

struct Fixture {
    capture: Capture,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("state.redb")).unwrap();
    projects::bootstrap(&store, Some("phc_test"), Some("phx_test")).unwrap();
    let registry = Arc::new(Registry::load(&store).unwrap());
    let log = Log::open(&dir.path().join("log"), LogOptions::default()).unwrap();
    Fixture {
        capture: Capture {
            log,
            registry,
            transforms: Arc::new(Transforms::default()),
        },
        _dir: dir,
    }
}

fn info() -> RequestInfo {
    RequestInfo {
        now_us: 1_700_000_000_000_000,
        ..RequestInfo::default()
    }
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        prop_oneof![
            Just("event".to_string()),
            Just("distinct_id".to_string()),
            Just("phc_test".to_string()),
            Just("2024-01-01T00:00:00Z".to_string()),
            ".{0,12}"
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let keys = prop_oneof![
            Just("event".to_string()),
            Just("distinct_id".to_string()),
            Just("$distinct_id".to_string()),
            Just("properties".to_string()),
            Just("token".to_string()),
            Just("api_key".to_string()),
            Just("batch".to_string()),
            Just("timestamp".to_string()),
            Just("offset".to_string()),
            Just("uuid".to_string()),
            Just("$set".to_string()),
            "[a-z$]{1,6}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(keys, inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in prop::collection::vec(any::<u8>(), 0..512), form in any::<bool>(), hint in 0u8..4) {
        let compression = match hint {
            0 => None,
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Lz64),
            _ => Some(Compression::Base64),
        };
        let raw = RawPayload {
            body: &bytes,
            content_type: form.then_some("application/x-www-form-urlencoded"),
            compression,
            legacy: true,
            ..RawPayload::default()
        };
        let _ = decode(&raw);
    }

    #[test]
    fn arbitrary_json_never_panics_prepare(value in arb_json()) {
        let f = fixture();
        let _ = f.capture.prepare(&value.to_string(), &info());
    }

    #[test]
    fn arbitrary_text_never_panics_prepare(text in ".{0,256}") {
        let f = fixture();
        let _ = f.capture.prepare(&text, &info());
    }
}

#[test]
fn one_bad_event_refuses_the_whole_request() {
    let f = fixture();
    let body = json!({"api_key": "phc_test", "batch": [
        {"event": "ok", "distinct_id": "a"},
        {"event": "bad"}
    ]});
    let err = f.capture.prepare(&body.to_string(), &info()).unwrap_err();
    assert_eq!(err.body()["index"], json!(1));
    assert_eq!(err.body()["attr"], json!("distinct_id"));
}

#[test]
fn unknown_tokens_are_refused() {
    let f = fixture();
    let body = json!({"event": "e", "distinct_id": "d", "token": "phc_nobody"});
    assert_eq!(
        f.capture
            .prepare(&body.to_string(), &info())
            .unwrap_err()
            .status(),
        401
    );
}
