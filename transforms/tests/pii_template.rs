//! The PII hashing template was rewritten to read the incoming properties once instead of once
//! per name and bag. Its behaviour must not change: the current template and the first version
//! (`fixtures/pii_hashing_v1.hog`) run on random events and inputs and must agree exactly,
//! including on odd inputs (repeated and blank names, `$set` that is not an object, non-string
//! values, empty strings).

use proptest::prelude::*;
use quill_pipeline::event::Event;
use quill_pipeline::transform::{Outcome, Transform};
use quill_transforms::{FunctionSpec, HogTransformation, Runtime};
use serde_json::{json, Map, Value};

const V1: &str = include_str!("fixtures/pii_hashing_v1.hog");

fn stage(hog: Option<&str>, inputs: &Value, runtime: &Runtime) -> HogTransformation {
    let mut wrapped = Map::new();
    for (k, v) in inputs.as_object().expect("inputs object") {
        wrapped.insert(k.clone(), json!({ "value": v }));
    }
    let mut body =
        json!({"template_id": "template-pii-hashing", "inputs": wrapped, "enabled": true});
    if let Some(hog) = hog {
        body["hog"] = json!(hog);
    }
    let spec = FunctionSpec::from_json(&body).expect("valid");
    HogTransformation::new(1, 1, spec.compile().expect("compiles"), runtime.clone())
}

/// The outcome and the function's logs.
fn run(hog: Option<&str>, inputs: &Value, event: &Event) -> (Option<Event>, Vec<String>) {
    let runtime = Runtime::default();
    let out = match stage(hog, inputs, &runtime).apply(event.clone()) {
        Outcome::Keep(e) => Some(e),
        Outcome::Drop => None,
    };
    let logs = runtime
        .logs
        .recent((1, 1), 10)
        .into_iter()
        .map(|l| format!("{} {}", l.level, l.message))
        .collect();
    (out, logs)
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        Just(json!("")),
        Just(json!("a@b.c")),
        Just(json!("a string longer than the inline limit")),
        (-2i64..3).prop_map(|n| json!(n)),
        Just(json!(1.5)),
        any::<bool>().prop_map(Value::Bool),
        Just(json!([1, "x"])),
        Just(json!({"nested": "v"})),
    ]
}

fn bag() -> impl Strategy<Value = Value> {
    prop_oneof![
        proptest::collection::btree_map("email|name|other", leaf(), 0..3)
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        leaf(),
    ]
}

fn properties() -> impl Strategy<Value = Map<String, Value>> {
    (
        proptest::collection::btree_map("email|name|\\$ip|plan", leaf(), 0..4),
        proptest::option::of(bag()),
        proptest::option::of(bag()),
    )
        .prop_map(|(props, set, set_once)| {
            let mut m: Map<String, Value> = props.into_iter().collect();
            if let Some(s) = set {
                m.insert("$set".into(), s);
            }
            if let Some(s) = set_once {
                m.insert("$set_once".into(), s);
            }
            m
        })
}

fn inputs() -> impl Strategy<Value = Value> {
    (
        prop_oneof![Just(json!("s3cr3t")), Just(json!("")), Just(Value::Null)],
        prop_oneof![
            "(email|name|\\$ip|\\$set| email |)(,(email|name|\\$ip|plan|  ))*".prop_map(Value::String),
            Just(Value::Null),
            Just(json!(3)),
        ],
        prop_oneof![Just(json!(true)), Just(json!(false)), Just(Value::Null)],
    )
        .prop_map(|(salt, names, hash_id)| {
            json!({"salt": salt, "propertiesToHash": names, "hashDistinctId": hash_id})
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn rewritten_template_behaves_as_the_first_version(props in properties(), inputs in inputs()) {
        let event = Event {
            uuid: Default::default(),
            project: 1,
            event: "$pageview".into(),
            distinct_id: "user-1".into(),
            properties: props,
            timestamp_us: 1_700_000_000_000_000,
            received_us: 0,
        };
        let current = run(None, &inputs, &event);
        let first = run(Some(V1), &inputs, &event);
        prop_assert_eq!(current, first);
    }
}
