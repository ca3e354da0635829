//! Operator semantics, one test per operator family.

use chrono::TimeZone;
use serde_json::{json, Value};

use super::*;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 6, 15, 12, 0, 0).unwrap()
}

fn compile(filter: Value) -> Result<CompiledFilter, ValidationError> {
    let f: PropertyFilter = serde_json::from_value(filter).unwrap();
    compile_filter(&f, "p", Strictness::Strict, now())
}

/// Does a person with `props` match `{key:"k", operator, value}`?
fn m(operator: &str, value: Value, props: Value) -> bool {
    let f = compile(json!({"key": "k", "operator": operator, "value": value})).unwrap();
    match_property(&f.test, props.get("k"), now())
}

#[test]
fn exact_is_case_insensitive_and_reads_booleans() {
    assert!(m("exact", json!("Hello"), json!({"k": "hELLO"})));
    assert!(!m("exact", json!("Hello"), json!({"k": "hello!"})));
    assert!(m("exact", json!(["a", "B"]), json!({"k": "b"})));
    assert!(!m("exact", json!(["a", "B"]), json!({"k": "c"})));
    assert!(m("exact", json!("true"), json!({"k": true})));
    assert!(m("exact", json!(true), json!({"k": "TRUE"})));
    assert!(m("exact", json!("false"), json!({"k": false})));
    // "false" compares truthiness, and any non-true value reads as false.
    assert!(m("exact", json!("false"), json!({"k": "nope"})));
    assert!(m("exact", json!(["true"]), json!({"k": true})));
    assert!(m("exact", json!(5), json!({"k": "5"})));
    assert!(!m("exact", json!(5), json!({"k": 5.0})));
    assert!(m("exact", json!([1, 2]), json!({"k": 2})));
    assert!(m("exact", json!("null"), json!({"k": null})));
    assert!(m("exact", json!([]), json!({"k": true})));
    assert!(!m("exact", json!([]), json!({"k": "x"})));
    assert!(m("exact", json!("straße"), json!({"k": "STRAßE"})));
    assert!(!m("exact", json!("x"), json!({})));
}

#[test]
fn is_not_negates_and_holds_when_missing() {
    assert!(m("is_not", json!("a"), json!({"k": "b"})));
    assert!(!m("is_not", json!("a"), json!({"k": "A"})));
    assert!(!m("is_not", json!(["a", "b"]), json!({"k": "B"})));
    assert!(m("is_not", json!("a"), json!({})));
    assert!(m("is_not", json!("true"), json!({"k": false})));
}

#[test]
fn is_set_and_is_not_set() {
    assert!(m("is_set", json!("is_set"), json!({"k": null})));
    assert!(!m("is_set", json!("is_set"), json!({})));
    assert!(m("is_not_set", json!("is_not_set"), json!({})));
    assert!(!m("is_not_set", json!("is_not_set"), json!({"k": 1})));
}

#[test]
fn substring_operators_fold_ascii_only() {
    assert!(m("icontains", json!("OST"), json!({"k": "posthog"})));
    assert!(!m("icontains", json!("x"), json!({"k": "posthog"})));
    assert!(m("not_icontains", json!("x"), json!({"k": "posthog"})));
    assert!(!m("not_icontains", json!("OG"), json!({"k": "posthog"})));
    assert!(m("icontains", json!("ul"), json!({"k": null})));
    assert!(m("icontains", json!("2"), json!({"k": 123})));
    // Only ASCII letters fold.
    assert!(!m("icontains", json!("É"), json!({"k": "é"})));
    assert!(m("starts_with", json!("Pos"), json!({"k": "posthog"})));
    assert!(m("ends_with", json!("HOG"), json!({"k": "posthog"})));
    assert!(m("not_ends_with", json!("x"), json!({"k": "posthog"})));
    assert!(!m("icontains", json!("a"), json!({})));
    assert!(!m("not_icontains", json!("a"), json!({})));
}

#[test]
fn regex_operators() {
    assert!(m(
        "regex",
        json!(r"^\d+@x\.com$"),
        json!({"k": "123@x.com"})
    ));
    assert!(!m("regex", json!(r"^\d+$"), json!({"k": "12a"})));
    assert!(m("not_regex", json!(r"^\d+$"), json!({"k": "12a"})));
    assert!(m("regex", json!("Ab"), json!({"k": "xAbx"})));
    assert!(!m("regex", json!("ab"), json!({"k": "AB"})));
    assert!(m("regex", json!(""), json!({"k": "anything"})));
    assert!(!m("not_regex", json!(""), json!({"k": "anything"})));
    assert!(m("regex", json!("^nu"), json!({"k": null})));
    assert!(m("regex", json!(r"^1\.5$"), json!({"k": 1.5})));
    // Pathological for backtracking engines, linear here.
    let evil = "a".repeat(5000) + "!";
    assert!(!m("regex", json!("^(a+)+$"), json!({ "k": evil })));
}

#[test]
fn invalid_regex_is_rejected_strictly_and_matches_nothing_leniently() {
    let err = compile(json!({"key": "k", "operator": "regex", "value": "(unclosed"})).unwrap_err();
    assert_eq!(err.path, "p.value");
    assert!(err.message.starts_with("invalid regex"), "{err}");
    let f: PropertyFilter =
        serde_json::from_value(json!({"key": "k", "operator": "not_regex", "value": "(?<=a)b"}))
            .unwrap();
    let c = compile_filter(&f, "p", Strictness::Lenient, now()).unwrap();
    assert!(!match_property(&c.test, Some(&json!("ab")), now()));
    assert!(!match_property(&c.test, Some(&json!("zz")), now()));
}

#[test]
fn numeric_operators() {
    assert!(m("gt", json!(5), json!({"k": 6})));
    assert!(m("gt", json!("5"), json!({"k": "6.5"})));
    assert!(!m("gt", json!(5), json!({"k": 5})));
    assert!(m("gte", json!(5), json!({"k": 5})));
    assert!(m("lt", json!("1e3"), json!({"k": 999})));
    assert!(m("lte", json!(-1), json!({"k": "-1"})));
    assert!(!m("gt", json!(5), json!({"k": "six"})));
    assert!(!m("gt", json!(5), json!({"k": true})));
    assert!(!m("lt", json!(5), json!({"k": null})));
    assert!(!m("lt", json!(5), json!({})));
    let err = compile(json!({"key": "k", "operator": "gt", "value": "abc"})).unwrap_err();
    assert_eq!(err.path, "p.value");
}

#[test]
fn date_operators() {
    assert!(m(
        "is_date_before",
        json!("2024-01-01"),
        json!({"k": "2023-12-31"})
    ));
    assert!(!m(
        "is_date_before",
        json!("2024-01-01"),
        json!({"k": "2024-01-01T00:00:01Z"})
    ));
    assert!(m(
        "is_date_after",
        json!("2024-01-01T00:00:00+01:00"),
        json!({"k": "2024-01-01"})
    ));
    assert!(m(
        "is_date_exact",
        json!("2024-01-01"),
        json!({"k": "2024-01-01T00:00:00Z"})
    ));
    // Relative: now is 2024-06-15T12:00Z.
    assert!(m("is_date_after", json!("-7d"), json!({"k": "2024-06-10"})));
    assert!(!m(
        "is_date_after",
        json!("-7d"),
        json!({"k": "2024-06-01"})
    ));
    assert!(m(
        "is_date_before",
        json!("-1y"),
        json!({"k": "2023-06-15T11:00:00Z"})
    ));
    assert!(m(
        "is_date_after",
        json!("2h"),
        json!({"k": "2024-06-15T11:00:00Z"})
    ));
    assert!(m(
        "is_date_before",
        json!("-1m"),
        json!({"k": "2024-05-14"})
    ));
    assert!(!m(
        "is_date_before",
        json!("2024-01-01"),
        json!({"k": "garbage"})
    ));
    assert!(!m(
        "is_date_before",
        json!("2024-01-01"),
        json!({"k": 1_700_000_000})
    ));
    let err = compile(json!({"key": "k", "operator": "is_date_after", "value": "soon"}));
    assert!(err.is_err());
}

#[test]
fn semver_operators() {
    assert!(m("semver_eq", json!("1.2.3"), json!({"k": "v1.2.3"})));
    assert!(m("semver_neq", json!("1.2.3"), json!({"k": "1.2.4"})));
    assert!(m("semver_gt", json!("1.2.3"), json!({"k": "1.10.0"})));
    assert!(m("semver_gte", json!("1.2"), json!({"k": "1.2.0"})));
    assert!(m("semver_lt", json!("2.0.0"), json!({"k": "1.99.99"})));
    assert!(m("semver_lte", json!("2.0.0"), json!({"k": "2.0.0-rc.1"})));
    assert!(m("semver_tilde", json!("1.2.3"), json!({"k": "1.2.10"})));
    assert!(m("semver_caret", json!("0.2.3"), json!({"k": "0.2.5"})));
    assert!(!m("semver_caret", json!("0.2.3"), json!({"k": "0.3.0"})));
    assert!(m("semver_wildcard", json!("1.*"), json!({"k": "1.5.0"})));
    assert!(m("semver_eq", json!("1.2"), json!({"k": 1.2})));
    assert!(!m("semver_eq", json!("1.2.3"), json!({"k": "01.2.3"})));
    assert!(!m("semver_gt", json!("1.0.0"), json!({"k": null})));
    assert!(compile(json!({"key": "k", "operator": "semver_gt", "value": "x"})).is_err());
}

#[test]
fn unknown_operator_is_named() {
    let err = compile(json!({"key": "k", "operator": "resembles", "value": 1})).unwrap_err();
    assert_eq!(
        err.to_string(),
        "p.operator: unknown operator \"resembles\""
    );
}

#[test]
fn cohort_and_flag_filters_compile() {
    let c = compile(json!({"key": "id", "type": "cohort", "value": "12", "operator": "not_in"}))
        .unwrap();
    assert!(matches!(
        c.test,
        Test::Cohort {
            id: 12,
            negate: true
        }
    ));
    let c = compile(json!({"key": "id", "type": "cohort", "value": 3})).unwrap();
    assert!(matches!(
        c.test,
        Test::Cohort {
            id: 3,
            negate: false
        }
    ));
    assert!(compile(json!({"key": "id", "type": "cohort", "value": 3, "operator": "gt"})).is_err());
    let f = compile(
        json!({"key": "other", "type": "flag", "value": true, "operator": "flag_evaluates_to"}),
    )
    .unwrap();
    assert!(matches!(f.test, Test::Flag(_)));
    let err = compile(json!({"key": "other", "type": "flag", "value": true, "operator": "exact"}))
        .unwrap_err();
    assert_eq!(err.path, "p.operator");
    assert!(compile(json!({"key": "k", "operator": "in", "value": 1})).is_err());
}
