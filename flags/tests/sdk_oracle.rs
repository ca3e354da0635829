//! posthog-python as oracle: thousands of (flag, distinct_id, properties) cases answered by
//! the SDK's local evaluation (`fixtures/sdk_oracle.json`, written by
//! `generate_oracle_fixture.py`), replayed through quill-flags. Every answer, variants
//! included, must be the same.
//!
//! Cases the SDK cannot decide locally are left out, and so are cases where it skipped an
//! undecidable condition and answered from a later one: the server knows the person fully
//! and decides at the earlier condition, as PostHog's server does.
//!
//! The fixture records the generation time; evaluations here use it as "now", so relative
//! dates resolve as they did for the SDK.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use quill_flags::{
    validate, EvalContext, FlagDefinition, FlagSet, Properties, PropertyGroup, Strictness,
};
use serde_json::Value;

#[test]
fn quill_agrees_with_posthog_python() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/sdk_oracle.json"
    );
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let now: DateTime<Utc> = fixture["now"].as_str().unwrap().parse().unwrap();

    let flags = fixture["flags"].as_array().unwrap().iter().map(|f| {
        let def = FlagDefinition::from_value(f).unwrap();
        validate(def, Strictness::Lenient, now).unwrap()
    });
    let cohorts = fixture["cohorts"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(id, def)| {
            (
                id.parse::<i64>().unwrap(),
                PropertyGroup::from_value(def).unwrap(),
            )
        });
    let set = FlagSet::new(flags, [(0, "company".to_string())], cohorts);
    // For `check_local_evaluation_payload.py`: the payload Quill would serve for these flags.
    if let Some(out) = std::env::var_os("QUILL_LOCAL_EVAL_OUT") {
        let payload = quill_flags::local_evaluation::payload(&set, true);
        std::fs::write(out, serde_json::to_vec(&payload).unwrap()).unwrap();
    }

    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() > 2000, "{} cases", cases.len());
    let mut mismatches = Vec::new();
    for case in cases {
        let props = case["properties"].as_object().unwrap();
        let groups: HashMap<String, String> = case
            .get("groups")
            .and_then(Value::as_object)
            .map(|g| {
                g.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let group_properties: HashMap<String, Properties<'_>> = case
            .get("group_properties")
            .and_then(Value::as_object)
            .map(|g| {
                g.iter()
                    .map(|(k, v)| (k.clone(), Properties::request(v.as_object().unwrap())))
                    .collect()
            })
            .unwrap_or_default();
        let mut ctx = EvalContext::new(case["distinct_id"].as_str().unwrap())
            .with_person_properties(Properties::request(props))
            .with_groups(&groups, &group_properties);
        ctx.now = now;
        let key = case["flag"].as_str().unwrap();
        let result = set.evaluate(key, &ctx).unwrap();
        let got = match (result.enabled, result.variant) {
            (true, Some(v)) => Value::String(v.to_string()),
            (enabled, _) => Value::Bool(enabled),
        };
        if got != case["expected"] {
            mismatches.push(format!(
                "{key} for {} with {} / {:?}: quill {got}, sdk {} ({:?})",
                case["distinct_id"],
                case["properties"],
                case.get("group_properties"),
                case["expected"],
                result.reason.code
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} cases disagree:\n{}",
        mismatches.len(),
        cases.len(),
        mismatches[..mismatches.len().min(25)].join("\n")
    );
}
