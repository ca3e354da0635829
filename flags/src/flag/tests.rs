//! Validation: what is rejected, and that the error names the field.

use serde_json::{json, Value};

use super::*;

fn check(v: Value) -> Result<Flag, ValidationError> {
    Flag::new(FlagDefinition::from_value(&v)?)
}

fn err(v: Value) -> String {
    check(v).unwrap_err().to_string()
}

#[test]
fn a_posthog_flag_validates() {
    let flag = check(json!({
        "id": 3, "key": "multi-variate", "name": "Multi", "active": true, "version": 4,
        "ensure_experience_continuity": false,
        "filters": {
            "groups": [{"properties": [{"key": "email", "type": "person",
                "value": "@example.com", "operator": "icontains"}], "rollout_percentage": 50,
                "variant": "second"}],
            "multivariate": {"variants": [
                {"key": "first", "name": "First", "rollout_percentage": 50},
                {"key": "second", "rollout_percentage": 25},
                {"key": "third", "rollout_percentage": 25}]},
            "payloads": {"first": "{\"a\": 1}"},
            "aggregation_group_type_index": null,
            "holdout": {"id": 9, "exclusion_percentage": 10},
            "early_exit": true
        }
    }))
    .unwrap();
    assert_eq!(flag.key(), "multi-variate");
    assert_eq!(flag.variants.len(), 3);
    assert_eq!(flag.variants[2].1, 1.0);
    assert_eq!(flag.conditions[0].variant.as_deref(), Some("second"));
    assert!(flag.early_exit);
    assert_eq!(flag.holdout.as_ref().unwrap().variant, "holdout-9");
}

#[test]
fn variant_percentages_must_sum_to_100() {
    assert_eq!(
        err(
            json!({"key": "k", "filters": {"multivariate": {"variants": [
            {"key": "a", "rollout_percentage": 50},
            {"key": "b", "rollout_percentage": 40}]}}})
        ),
        "filters.multivariate.variants: rollout percentages sum to 90, expected 100"
    );
    assert!(err(
        json!({"key": "k", "filters": {"multivariate": {"variants": [
        {"key": "a", "rollout_percentage": 50}, {"key": "a", "rollout_percentage": 50}]}}})
    )
    .starts_with("filters.multivariate.variants[1].key: duplicate"));
}

#[test]
fn percentages_are_bounded() {
    assert_eq!(
        err(json!({"key": "k", "filters": {"groups": [{}, {"rollout_percentage": 101}]}})),
        "filters.groups[1].rollout_percentage: must be between 0 and 100, got 101"
    );
    assert!(err(
        json!({"key": "k", "filters": {"holdout": {"id": 1, "exclusion_percentage": -1}}})
    )
    .starts_with("filters.holdout.exclusion_percentage"));
}

#[test]
fn operators_and_values_are_checked() {
    assert_eq!(
        err(json!({"key": "k", "filters": {"groups": [{"properties": [
            {"key": "a", "value": 1, "operator": "gt"},
            {"key": "b", "value": 1, "operator": "bigger"}]}]}})),
        "filters.groups[0].properties[1].operator: unknown operator \"bigger\""
    );
    assert!(
        err(json!({"key": "k", "filters": {"groups": [{"properties": [
        {"key": "a", "value": "[", "operator": "regex"}]}]}}))
        .starts_with("filters.groups[0].properties[0].value: invalid regex")
    );
    assert!(err(
        json!({"key": "k", "filters": {"super_groups": [{"properties": [
        {"key": "a", "value": "x", "operator": "semver_gt"}]}]}})
    )
    .starts_with("filters.super_groups[0].properties[0].value: invalid version"));
}

#[test]
fn unknown_fields_and_bad_keys_are_named() {
    assert_eq!(
        FlagDefinition::from_value(&json!({"key": "k", "filters": {"groupz": []}}))
            .unwrap_err()
            .path,
        "filters.groupz"
    );
    assert!(err(json!({"key": "has space"})).starts_with("key:"));
    assert!(err(json!({"key": ""})).starts_with("key:"));
    assert!(
        err(json!({"key": "k", "filters": {"groups": [{"variant": "nope"}]}}))
            .starts_with("filters.groups[0].variant: unknown variant")
    );
    assert!(
        err(json!({"key": "k", "bucketing_identifier": "ip"})).starts_with("bucketing_identifier")
    );
}

#[test]
fn lenient_mode_keeps_bad_filters_as_never_matching() {
    let def = FlagDefinition::from_value(&json!({"key": "k", "filters": {"groups": [
        {"properties": [{"key": "a", "value": "x", "operator": "whatever"}]}]}}))
    .unwrap();
    let flag = validate(def, Strictness::Lenient, chrono::Utc::now()).unwrap();
    assert!(matches!(
        flag.conditions[0].filters[0].test,
        crate::filter::Test::Never
    ));
}

#[test]
fn variant_table_uses_cumulative_bounds() {
    let flag = check(
        json!({"key": "k", "filters": {"multivariate": {"variants": [
        {"key": "a", "rollout_percentage": 20},
        {"key": "zero", "rollout_percentage": 0},
        {"key": "b", "rollout_percentage": 80}]}}}),
    )
    .unwrap();
    assert_eq!(flag.variant_for(0.0), Some("a"));
    assert_eq!(flag.variant_for(0.1999), Some("a"));
    assert_eq!(flag.variant_for(0.2), Some("b"));
    assert_eq!(flag.variant_for(0.9999), Some("b"));
    assert_eq!(flag.variant_for(1.0), None);
}
