//! Engine behaviour: order of evaluation, reasons, bucketing, dependencies, cohorts.
//!
//! Hash values used below come from the reference anchors or from
//! `tests/fixtures/hash_consistency.csv` (checked against posthog-python).

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use crate::{EvalContext, Flag, FlagDefinition, FlagSet, Properties, ReasonCode};

fn flag(v: Value) -> Flag {
    Flag::new(FlagDefinition::from_value(&v).unwrap()).unwrap()
}

fn set(flags: Vec<Value>) -> FlagSet {
    FlagSet::new(
        flags.into_iter().map(flag),
        [(0, "company".to_string())],
        [],
    )
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

/// (enabled, variant, reason code, condition index)
fn eval(
    set: &FlagSet,
    key: &str,
    id: &str,
    props: &Map<String, Value>,
) -> (bool, Option<String>, ReasonCode, Option<usize>) {
    let ctx = EvalContext::new(id).with_person_properties(Properties::request(props));
    let r = set.evaluate(key, &ctx).unwrap();
    (
        r.enabled,
        r.variant.map(str::to_string),
        r.reason.code,
        r.reason.condition_index,
    )
}

#[test]
fn rollout_uses_the_flag_hash() {
    // hash("simple-flag", "distinct_id_0") = 0.7836963764220432
    let s = set(vec![
        json!({"id": 1, "key": "simple-flag", "filters": {"groups": [{"rollout_percentage": 78}]}}),
    ]);
    let none = Map::new();
    assert_eq!(
        eval(&s, "simple-flag", "distinct_id_0", &none),
        (false, None, ReasonCode::OutOfRolloutBound, Some(0))
    );
    let s = set(vec![
        json!({"id": 1, "key": "simple-flag", "filters": {"groups": [{"rollout_percentage": 79}]}}),
    ]);
    assert_eq!(
        eval(&s, "simple-flag", "distinct_id_0", &none),
        (true, None, ReasonCode::ConditionMatch, Some(0))
    );
}

#[test]
fn no_conditions_means_off_and_empty_condition_means_on() {
    let s = set(vec![
        json!({"id": 1, "key": "empty"}),
        json!({"id": 2, "key": "all", "filters": {"groups": [{"properties": []}]}}),
    ]);
    let none = Map::new();
    assert_eq!(
        eval(&s, "empty", "u", &none),
        (false, None, ReasonCode::NoConditionMatch, None)
    );
    assert_eq!(
        eval(&s, "all", "u", &none),
        (true, None, ReasonCode::ConditionMatch, Some(0))
    );
}

#[test]
fn multivariate_variants_follow_the_consistency_table() {
    let s = set(vec![
        json!({"id": 2, "key": "multivariate-flag", "filters": {
        "groups": [{"properties": [], "rollout_percentage": 55}],
        "payloads": {"second-variant": {"color": "blue"}},
        "multivariate": {"variants": [
            {"key": "first-variant", "rollout_percentage": 50},
            {"key": "second-variant", "rollout_percentage": 20},
            {"key": "third-variant", "rollout_percentage": 20},
            {"key": "fourth-variant", "rollout_percentage": 5},
            {"key": "fifth-variant", "rollout_percentage": 5}]}}}),
    ]);
    let none = Map::new();
    // distinct_id_1 has variant hash 0.6473165157302697: the second variant covers [0.5, 0.7).
    let (enabled, variant, code, _) = eval(&s, "multivariate-flag", "distinct_id_1", &none);
    assert!(enabled);
    assert_eq!(variant.as_deref(), Some("second-variant"));
    assert_eq!(code, ReasonCode::ConditionMatch);
    let ctx = EvalContext::new("distinct_id_1");
    let r = s.evaluate("multivariate-flag", &ctx).unwrap();
    assert_eq!(r.payload(), Some(&json!({"color": "blue"})));
}

#[test]
fn condition_variant_overrides_the_hash() {
    let s = set(vec![json!({"id": 3, "key": "mv", "filters": {
        "groups": [{"properties": [{"key": "vip", "value": true}], "variant": "b"}, {}],
        "multivariate": {"variants": [
            {"key": "a", "rollout_percentage": 100}, {"key": "b", "rollout_percentage": 0}]}}})]);
    let vip = obj(json!({"vip": "true"}));
    assert_eq!(eval(&s, "mv", "u", &vip).1.as_deref(), Some("b"));
    let none = Map::new();
    assert_eq!(
        eval(&s, "mv", "u", &none),
        (true, Some("a".into()), ReasonCode::ConditionMatch, Some(1))
    );
}

#[test]
fn holdout_runs_before_conditions() {
    // holdout hash of "some_distinct_id" = 0.7270002403585725
    let def = |pct: f64| {
        json!({"id": 4, "key": "exp", "filters": {
            "holdout": {"id": 12, "exclusion_percentage": pct},
            "groups": [{"properties": [], "rollout_percentage": 100}],
            "payloads": {"true": "\"on\""}}})
    };
    let none = Map::new();
    let s = set(vec![def(73.0)]);
    assert_eq!(
        eval(&s, "exp", "some_distinct_id", &none),
        (
            true,
            Some("holdout-12".into()),
            ReasonCode::HoldoutConditionValue,
            None
        )
    );
    let s = set(vec![def(72.0)]);
    assert_eq!(
        eval(&s, "exp", "some_distinct_id", &none),
        (true, None, ReasonCode::ConditionMatch, Some(0))
    );
    let r = s
        .evaluate("exp", &EvalContext::new("some_distinct_id"))
        .unwrap();
    assert_eq!(r.payload(), Some(&json!("\"on\"")));
}

#[test]
fn inactive_flags_are_disabled() {
    let s = set(vec![
        json!({"id": 1, "key": "off", "active": false, "filters": {"groups": [{}]}}),
    ]);
    assert_eq!(
        eval(&s, "off", "u", &Map::new()),
        (false, None, ReasonCode::FlagDisabled, None)
    );
}

#[test]
fn group_flags_need_their_group_and_bucket_by_its_key() {
    let s = set(vec![json!({"id": 5, "key": "simple-flag", "filters": {
        "aggregation_group_type_index": 0,
        "groups": [{"properties": [{"key": "plan", "value": "pro", "type": "group",
            "group_type_index": 0}], "rollout_percentage": 79}]}})]);
    let none = Map::new();
    assert_eq!(
        eval(&s, "simple-flag", "u", &none),
        (false, None, ReasonCode::NoGroupType, None)
    );
    let groups = HashMap::from([("company".to_string(), "distinct_id_0".to_string())]);
    let pro = obj(json!({"plan": "pro"}));
    let gp = HashMap::from([("company".to_string(), Properties::request(&pro))]);
    let ctx = EvalContext::new("someone-else").with_groups(&groups, &gp);
    // The group key buckets: hash("simple-flag", "distinct_id_0") = 0.78 < 0.79.
    let r = s.evaluate("simple-flag", &ctx).unwrap();
    assert!(r.enabled);
    let free = obj(json!({"plan": "free"}));
    let gp = HashMap::from([("company".to_string(), Properties::request(&free))]);
    let ctx = EvalContext::new("someone-else").with_groups(&groups, &gp);
    let r = s.evaluate("simple-flag", &ctx).unwrap();
    assert_eq!(r.reason.code, ReasonCode::NoConditionMatch);
}

#[test]
fn feature_enrollment_and_super_conditions_decide_first() {
    let s = set(vec![json!({"id": 6, "key": "early", "filters": {
        "feature_enrollment": true,
        "super_groups": [{"properties": [{"key": "$feature_enrollment/early",
            "value": ["true"], "operator": "exact", "type": "person"}],
            "rollout_percentage": 100}],
        "groups": [{"properties": [{"key": "email", "value": "x", "operator": "icontains"}]}]}})]);
    let enrolled = obj(json!({"$feature_enrollment/early": true}));
    assert_eq!(
        eval(&s, "early", "u", &enrolled),
        (true, None, ReasonCode::SuperConditionValue, Some(0))
    );
    let opted_out = obj(json!({"$feature_enrollment/early": false, "email": "x@y"}));
    assert_eq!(
        eval(&s, "early", "u", &opted_out),
        (false, None, ReasonCode::SuperConditionValue, Some(0))
    );
    let unknown = obj(json!({"email": "x@y"}));
    assert_eq!(
        eval(&s, "early", "u", &unknown),
        (true, None, ReasonCode::ConditionMatch, Some(0))
    );
    // Super groups alone, without feature_enrollment.
    let s = set(vec![json!({"id": 7, "key": "sup", "filters": {
        "super_groups": [{"properties": [{"key": "beta", "value": "yes"}]}],
        "groups": [{}]}})]);
    let no = obj(json!({"beta": "no"}));
    assert_eq!(
        eval(&s, "sup", "u", &no),
        (false, None, ReasonCode::SuperConditionValue, Some(0))
    );
}

#[test]
fn out_of_rollout_outranks_no_match_and_early_exit_stops() {
    // hash("simple-flag", "distinct_id_0") = 0.78
    let def = |early: bool| {
        json!({"id": 1, "key": "simple-flag", "filters": {"early_exit": early, "groups": [
            {"properties": [{"key": "a", "value": "x"}]},
            {"properties": [], "rollout_percentage": 10},
            {"properties": [{"key": "b", "value": "y"}]},
            {"properties": [], "rollout_percentage": 100}]}})
    };
    let none = Map::new();
    let s = set(vec![def(false)]);
    assert_eq!(
        eval(&s, "simple-flag", "distinct_id_0", &none),
        (true, None, ReasonCode::ConditionMatch, Some(3))
    );
    let s = set(vec![def(true)]);
    assert_eq!(
        eval(&s, "simple-flag", "distinct_id_0", &none),
        (false, None, ReasonCode::OutOfRolloutBound, Some(1))
    );
    let s = set(vec![
        json!({"id": 1, "key": "simple-flag", "filters": {"groups": [
        {"properties": [{"key": "a", "value": "x"}]},
        {"rollout_percentage": 10},
        {"rollout_percentage": 20}]}}),
    ]);
    assert_eq!(
        eval(&s, "simple-flag", "distinct_id_0", &none),
        (false, None, ReasonCode::OutOfRolloutBound, Some(1))
    );
}

#[test]
fn experience_continuity_buckets_by_override_then_anonymous_id() {
    let s = set(vec![json!({"id": 1, "key": "simple-flag",
        "ensure_experience_continuity": true,
        "filters": {"groups": [{"rollout_percentage": 50}]}})]);
    // distinct_id_0 hashes to 0.78 (out), distinct_id_1 to 0.34 (in).
    let mut ctx = EvalContext::new("distinct_id_0");
    assert!(!s.evaluate("simple-flag", &ctx).unwrap().enabled);
    ctx.anon_distinct_id = Some("distinct_id_1");
    assert!(s.evaluate("simple-flag", &ctx).unwrap().enabled);
    let overrides = HashMap::from([("simple-flag".to_string(), "distinct_id_0".to_string())]);
    ctx.hash_key_overrides = Some(&overrides);
    assert!(!s.evaluate("simple-flag", &ctx).unwrap().enabled);
    let existing = HashMap::new();
    assert_eq!(
        s.continuity_overrides_to_write(&existing, "anon"),
        vec![("simple-flag", "anon")]
    );
}

#[test]
fn device_bucketing() {
    let s = set(vec![
        json!({"id": 1, "key": "simple-flag", "bucketing_identifier": "device_id",
        "filters": {"groups": [{"rollout_percentage": 50}]}}),
    ]);
    let mut ctx = EvalContext::new("distinct_id_1");
    ctx.device_id = Some("distinct_id_0");
    assert!(!s.evaluate("simple-flag", &ctx).unwrap().enabled);
}

fn dep(key: &str, value: Value) -> Value {
    json!({"key": key, "type": "flag", "value": value, "operator": "flag_evaluates_to"})
}

#[test]
fn flag_dependencies() {
    let s = set(vec![
        json!({"id": 1, "key": "on", "filters": {"groups": [{}]}}),
        json!({"id": 2, "key": "off", "filters": {"groups": [{"rollout_percentage": 0}]}}),
        json!({"id": 3, "key": "mv", "filters": {"groups": [{}],
            "multivariate": {"variants": [{"key": "blue", "rollout_percentage": 100}]}}}),
        json!({"id": 10, "key": "needs-on", "filters": {"groups": [{"properties": [dep("on", json!(true))]}]}}),
        json!({"id": 11, "key": "needs-off", "filters": {"groups": [{"properties": [dep("off", json!(false))]}]}}),
        json!({"id": 12, "key": "needs-blue", "filters": {"groups": [{"properties": [dep("mv", json!("blue"))]}]}}),
        json!({"id": 13, "key": "needs-mv-true", "filters": {"groups": [{"properties": [dep("mv", json!(true))]}]}}),
        json!({"id": 14, "key": "needs-red", "filters": {"groups": [{"properties": [dep("mv", json!("red"))]}]}}),
        json!({"id": 15, "key": "needs-id-1", "filters": {"groups": [{"properties": [dep("1", json!(true))]}]}}),
        json!({"id": 16, "key": "chain", "filters": {"groups": [{"properties": [dep("needs-blue", json!(true))]}]}}),
        json!({"id": 20, "key": "cyc-a", "filters": {"groups": [{"properties": [dep("cyc-b", json!(true))]}]}}),
        json!({"id": 21, "key": "cyc-b", "filters": {"groups": [{"properties": [dep("cyc-a", json!(true))]}]}}),
        json!({"id": 22, "key": "self", "filters": {"groups": [{"properties": [dep("self", json!(false))]}]}}),
        json!({"id": 23, "key": "missing", "filters": {"groups": [{"properties": [dep("nope", json!(true))]}, {"rollout_percentage": 0}]}}),
    ]);
    let none = Map::new();
    for key in [
        "needs-on",
        "needs-off",
        "needs-blue",
        "needs-mv-true",
        "needs-id-1",
        "chain",
    ] {
        assert!(eval(&s, key, "u", &none).0, "{key}");
    }
    assert!(!eval(&s, "needs-red", "u", &none).0);
    for key in ["cyc-a", "cyc-b", "self"] {
        assert_eq!(
            eval(&s, key, "u", &none),
            (false, None, ReasonCode::MissingDependency, None),
            "{key}"
        );
    }
    // A better reason wins over the dependency problem.
    assert_eq!(
        eval(&s, "missing", "u", &none).2,
        ReasonCode::OutOfRolloutBound
    );
    let all = s.evaluate_all(&EvalContext::new("u"), None);
    assert_eq!(all.len(), s.len());
    assert!(all.iter().find(|r| r.key() == "chain").unwrap().enabled);
}

#[test]
fn cohorts_use_definitions_then_membership() {
    let cohort = crate::PropertyGroup::from_value(&json!({"type": "OR", "values": [
        {"type": "AND", "values": [
            {"key": "plan", "value": "pro", "type": "person"},
            {"key": "churned", "value": true, "type": "person", "negation": true}]}]}))
    .unwrap();
    let s = FlagSet::new(
        [
            flag(
                json!({"id": 1, "key": "in-cohort", "filters": {"groups": [{"properties": [
                {"key": "id", "type": "cohort", "value": 7}]}]}}),
            ),
            flag(
                json!({"id": 2, "key": "not-in-cohort", "filters": {"groups": [{"properties": [
                {"key": "id", "type": "cohort", "value": 7, "operator": "not_in"}]}]}}),
            ),
            flag(
                json!({"id": 3, "key": "static", "filters": {"groups": [{"properties": [
                {"key": "id", "type": "cohort", "value": 99}]}]}}),
            ),
        ],
        [],
        [(7, cohort)],
    );
    let pro = obj(json!({"plan": "pro"}));
    let churned = obj(json!({"plan": "pro", "churned": true}));
    assert!(eval(&s, "in-cohort", "u", &pro).0);
    assert!(!eval(&s, "in-cohort", "u", &churned).0);
    assert!(eval(&s, "not-in-cohort", "u", &churned).0);
    assert!(!eval(&s, "static", "u", &pro).0);
    let member = |id: i64| Some(id == 99);
    let mut ctx = EvalContext::new("u");
    ctx.cohorts = Some(&member);
    assert!(s.evaluate("static", &ctx).unwrap().enabled);
}

#[test]
fn mixed_targeting_conditions_read_their_group() {
    let s = set(vec![
        json!({"id": 1, "key": "mixed", "filters": {"groups": [
        {"aggregation_group_type_index": 0,
         "properties": [{"key": "size", "value": 100, "operator": "gt", "type": "group"}]},
        {"properties": [{"key": "email", "value": "@corp", "operator": "icontains"}]}]}}),
    ]);
    let person = obj(json!({"email": "a@corp.com"}));
    assert_eq!(
        eval(&s, "mixed", "u", &person),
        (true, None, ReasonCode::ConditionMatch, Some(1))
    );
    let big = obj(json!({"size": 500}));
    let groups = HashMap::from([("company".to_string(), "acme".to_string())]);
    let gp = HashMap::from([("company".to_string(), Properties::request(&big))]);
    let ctx = EvalContext::new("u").with_groups(&groups, &gp);
    let r = s.evaluate("mixed", &ctx).unwrap();
    assert_eq!(r.reason.condition_index, Some(0));
}

#[test]
fn request_properties_override_stored_ones() {
    let s = set(vec![json!({"id": 1, "key": "pro", "filters": {"groups": [
        {"properties": [{"key": "plan", "value": "pro"}]}]}})]);
    let stored = obj(json!({"plan": "free"}));
    let request = obj(json!({"plan": "pro"}));
    let ctx = EvalContext::new("u").with_person_properties(Properties {
        request: Some(&request),
        stored: Some(&stored),
    });
    assert!(s.evaluate("pro", &ctx).unwrap().enabled);
    let ctx = EvalContext::new("u").with_person_properties(Properties {
        request: None,
        stored: Some(&stored),
    });
    assert!(!s.evaluate("pro", &ctx).unwrap().enabled);
}
