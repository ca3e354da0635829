//! In-process evaluation speed: single-flag evaluations per second.
//!
//! `cargo bench -p quill-flags --bench evaluate`. Each iteration evaluates one flag for one
//! distinct id (cycling through 1,024 ids) with a handful of person properties.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use quill_flags::{EvalContext, Flag, FlagDefinition, FlagSet, Properties};
use serde_json::{json, Map, Value};

fn flag(v: Value) -> Flag {
    Flag::new(FlagDefinition::from_value(&v).expect("valid json")).expect("valid flag")
}

fn flag_set() -> FlagSet {
    let mut flags = vec![
        flag(json!({"id": 1, "key": "rollout", "filters": {"groups": [
            {"properties": [], "rollout_percentage": 50}]}})),
        flag(json!({"id": 2, "key": "targeted", "filters": {"groups": [
            {"properties": [
                {"key": "email", "value": "@example.com", "operator": "icontains", "type": "person"},
                {"key": "plan", "value": ["pro", "enterprise"], "operator": "exact", "type": "person"}],
             "rollout_percentage": 80}]}})),
        flag(json!({"id": 3, "key": "multivariate", "filters": {
            "groups": [{"properties": [
                {"key": "app_version", "value": "1.2.0", "operator": "semver_gte", "type": "person"},
                {"key": "email", "value": "^[a-z0-9.]+@example\\.com$", "operator": "regex", "type": "person"}],
                "rollout_percentage": 90}],
            "multivariate": {"variants": [
                {"key": "control", "rollout_percentage": 34},
                {"key": "test-a", "rollout_percentage": 33},
                {"key": "test-b", "rollout_percentage": 33}]},
            "holdout": {"id": 4, "exclusion_percentage": 10}}})),
    ];
    for i in 0..47 {
        flags.push(flag(
            json!({"id": 100 + i, "key": format!("filler-{i}"), "filters": {
            "groups": [{"properties": [
                {"key": "age", "value": 18 + i, "operator": "gte", "type": "person"}],
                "rollout_percentage": 50}]}}),
        ));
    }
    FlagSet::new(flags, [(0, "company".to_string())], [])
}

fn person() -> Map<String, Value> {
    json!({"email": "someone@example.com", "plan": "Pro", "app_version": "1.4.2", "age": 40})
        .as_object()
        .cloned()
        .unwrap_or_default()
}

fn single_flag(c: &mut Criterion) {
    let set = flag_set();
    let props = person();
    let ids: Vec<String> = (0..1024).map(|i| format!("user-{i}")).collect();
    let mut group = c.benchmark_group("single_flag");
    group.throughput(Throughput::Elements(1));
    for key in ["rollout", "targeted", "multivariate"] {
        let index = set.index_of(key).expect("flag exists");
        let mut n = 0usize;
        group.bench_function(key, |b| {
            b.iter(|| {
                n = (n + 1) & 1023;
                let ctx =
                    EvalContext::new(&ids[n]).with_person_properties(Properties::request(&props));
                black_box(set.evaluate_index(black_box(index), &ctx).enabled)
            })
        });
    }
    group.finish();
}

fn all_flags(c: &mut Criterion) {
    let set = flag_set();
    let props = person();
    let mut group = c.benchmark_group("all_flags");
    group.throughput(Throughput::Elements(set.len() as u64));
    group.bench_function("50_flags", |b| {
        let ctx = EvalContext::new("user-1").with_person_properties(Properties::request(&props));
        b.iter(|| black_box(set.evaluate_all(&ctx, None).len()))
    });
    group.finish();
}

criterion_group!(benches, single_flag, all_flags);
criterion_main!(benches);
