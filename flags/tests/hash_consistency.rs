//! The consistency table: 1,000 distinct ids, their hashes and the resulting rollout and
//! variant decisions, pinned in `fixtures/hash_consistency.csv`.
//!
//! The fixture was generated from the hashing rule (`QUILL_REGENERATE_FIXTURES=1 cargo test
//! -p quill-flags --test hash_consistency` rewrites it) and cross-checked against the
//! posthog-python SDK's own `_hash` by `tests/check_hash_fixture.py`. Any change to hashing,
//! rollout or variant selection shows up here as a diff.

use quill_flags::hash::{flag_hash, holdout_hash, VARIANT_SALT};
use quill_flags::{EvalContext, Flag, FlagDefinition, FlagSet};
use serde_json::json;

const FIXTURE: &str = "tests/fixtures/hash_consistency.csv";
const HEADER: &str =
    "distinct_id,simple_flag_hash,variant_hash,holdout_hash,simple_flag_45,multivariate_variant";

fn flags() -> FlagSet {
    let simple = json!({"id": 1, "key": "simple-flag",
        "filters": {"groups": [{"properties": [], "rollout_percentage": 45}]}});
    let multi = json!({"id": 2, "key": "multivariate-flag", "filters": {
        "groups": [{"properties": [], "rollout_percentage": 55}],
        "multivariate": {"variants": [
            {"key": "first-variant", "rollout_percentage": 50},
            {"key": "second-variant", "rollout_percentage": 20},
            {"key": "third-variant", "rollout_percentage": 20},
            {"key": "fourth-variant", "rollout_percentage": 5},
            {"key": "fifth-variant", "rollout_percentage": 5}]}}});
    let parse = |v| Flag::new(FlagDefinition::from_value(&v).unwrap()).unwrap();
    FlagSet::new([parse(simple), parse(multi)], [], [])
}

fn rows() -> Vec<String> {
    let set = flags();
    (0..1000)
        .map(|i| {
            let id = format!("distinct_id_{i}");
            let ctx = EvalContext::new(&id);
            let simple = set.evaluate("simple-flag", &ctx).unwrap();
            let multi = set.evaluate("multivariate-flag", &ctx).unwrap();
            let variant = match (multi.enabled, multi.variant) {
                (true, Some(v)) => v.to_string(),
                _ => "false".to_string(),
            };
            format!(
                "{id},{:?},{:?},{:?},{},{variant}",
                flag_hash("simple-flag", &id, ""),
                flag_hash("multivariate-flag", &id, VARIANT_SALT),
                holdout_hash(&id),
                simple.enabled,
            )
        })
        .collect()
}

#[test]
fn consistency_table_matches_fixture() {
    let mut expected = vec![HEADER.to_string()];
    expected.extend(rows());
    let expected = expected.join("\n") + "\n";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE);
    if std::env::var_os("QUILL_REGENERATE_FIXTURES").is_some() {
        std::fs::write(&path, &expected).unwrap();
    }
    let stored = std::fs::read_to_string(&path).unwrap();
    for (line, (a, b)) in stored.lines().zip(expected.lines()).enumerate() {
        assert_eq!(a, b, "fixture line {}", line + 1);
    }
    assert_eq!(stored.lines().count(), 1001);
}

#[test]
fn table_is_not_degenerate() {
    let rows = rows();
    let on = rows.iter().filter(|r| r.contains(",true,")).count();
    // 45% rollout over 1,000 ids.
    assert!((400..500).contains(&on), "{on}");
    let firsts = rows
        .iter()
        .filter(|r| r.ends_with(",first-variant"))
        .count();
    assert!(firsts > 200, "{firsts}");
}
