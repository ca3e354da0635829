//! The local-evaluation payload served to server SDKs.
//!
//! `GET /api/feature_flag/local_evaluation` and `GET /flags/definitions` return
//! `{"flags": [...], "group_type_mapping": {"0": "company"}, "cohorts": {"<id>": {...}}}`.
//! Flags are served as defined, with one rewrite the SDKs rely on: every flag dependency
//! (`type: "flag"`) names its target by key and carries a `dependency_chain`, the keys to
//! evaluate first, ending with the target. A circular dependency gets an empty chain, which
//! the SDKs treat as inconclusive; a missing one keeps its key, which they cannot find.
//!
//! Cohorts are included (when asked for with `send_cohorts`) for every cohort a flag refers
//! to, directly or through other cohorts; otherwise `cohorts` is an empty object.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};
use sha1::{Digest, Sha1};

use crate::definition::{PropertyFilter, PropertyGroup, PropertyGroupEntry};
use crate::filter::{DepTarget, Test};
use crate::set::FlagSet;

/// Builds the payload for `set`; `send_cohorts` adds the `cohorts` object.
///
/// # Examples
/// ```
/// use quill_flags::{local_evaluation::payload, Flag, FlagDefinition, FlagSet};
/// let def = FlagDefinition::from_json(r#"{"id":1,"key":"a"}"#).unwrap();
/// let set = FlagSet::new(vec![Flag::new(def).unwrap()], [(0, "company".into())], []);
/// let body = payload(&set, true);
/// assert_eq!(body["flags"][0]["key"], "a");
/// assert_eq!(body["group_type_mapping"]["0"], "company");
/// assert!(body["cohorts"].is_object());
/// ```
pub fn payload(set: &FlagSet, send_cohorts: bool) -> Value {
    let mut cohort_ids = BTreeSet::new();
    let flags: Vec<Value> = (0..set.flags.len())
        .map(|i| flag_json(set, i, &mut cohort_ids))
        .collect();
    let mut mapping: Vec<(&i32, &String)> = set.group_types.iter().collect();
    mapping.sort();
    let group_type_mapping: Map<String, Value> = mapping
        .into_iter()
        .map(|(i, name)| (i.to_string(), Value::String(name.clone())))
        .collect();
    let mut body = json!({ "flags": flags, "group_type_mapping": group_type_mapping });
    // SDKs read `cohorts` unconditionally, so it is always present.
    body["cohorts"] = if send_cohorts {
        Value::Object(cohorts_json(set, cohort_ids))
    } else {
        Value::Object(Map::new())
    };
    body
}

/// A strong ETag for a serialized payload, quoted as HTTP wants it.
pub fn etag(body: &[u8]) -> String {
    let digest = Sha1::digest(body);
    let mut out = String::with_capacity(42);
    out.push('"');
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out.push('"');
    out
}

fn flag_json(set: &FlagSet, i: usize, cohort_ids: &mut BTreeSet<i64>) -> Value {
    let flag = &set.flags[i];
    let mut def = flag.definition.clone();
    // The compiled conditions hold the resolved targets, in the same order as the filters.
    let mut targets = Vec::new();
    let supers = flag.super_condition.iter().map(|(_, c)| c);
    for c in flag.conditions.iter().chain(supers) {
        for f in &c.filters {
            match &f.test {
                Test::Flag(r) => targets.push(r.target),
                Test::Cohort { id, .. } => {
                    cohort_ids.insert(*id);
                }
                _ => {}
            }
        }
    }
    let mut targets = targets.into_iter();
    let super_first = def
        .filters
        .super_groups
        .iter_mut()
        .flat_map(|g| g.iter_mut().take(1));
    for condition in def.filters.groups.iter_mut().chain(super_first) {
        for p in condition.properties.iter_mut() {
            if p.kind.as_deref() == Some("flag") && is_dependency(p) {
                let target = targets.next().unwrap_or(DepTarget::Missing);
                rewrite_dependency(set, p, target);
            }
        }
    }
    serde_json::to_value(&def).unwrap_or(Value::Null)
}

/// Mirrors the compile rules: only well-formed dependencies become [`Test::Flag`].
fn is_dependency(p: &PropertyFilter) -> bool {
    p.operator.as_deref() == Some("flag_evaluates_to")
        && matches!(p.value, Value::Bool(_) | Value::String(_))
}

fn rewrite_dependency(set: &FlagSet, p: &mut PropertyFilter, target: DepTarget) {
    p.dependency_chain = Some(match target {
        DepTarget::Index(j) => {
            p.key = set.flags[j].key().to_string();
            set.dependency_chain(j)
        }
        DepTarget::Cyclic => Vec::new(),
        DepTarget::Missing | DepTarget::Unresolved => vec![p.key.clone()],
    });
}

fn cohorts_json(set: &FlagSet, mut pending: BTreeSet<i64>) -> Map<String, Value> {
    let mut out = Map::new();
    let mut done = BTreeSet::new();
    while let Some(id) = pending.pop_first() {
        if !done.insert(id) {
            continue;
        }
        let Some(def) = set.cohort_definitions.get(&id) else {
            continue;
        };
        collect_cohort_refs(def, &mut pending);
        out.insert(
            id.to_string(),
            serde_json::to_value(def).unwrap_or(Value::Null),
        );
    }
    out
}

fn collect_cohort_refs(group: &PropertyGroup, into: &mut BTreeSet<i64>) {
    for entry in &group.values {
        match entry {
            PropertyGroupEntry::Group(g) => collect_cohort_refs(g, into),
            PropertyGroupEntry::Filter(f) if f.kind.as_deref() == Some("cohort") => {
                let id = match &f.value {
                    Value::Number(n) => n.as_i64(),
                    Value::String(s) => s.trim().parse().ok(),
                    _ => None,
                };
                into.extend(id);
            }
            PropertyGroupEntry::Filter(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Flag, FlagDefinition};

    fn flag(v: Value) -> Flag {
        Flag::new(FlagDefinition::from_value(&v).unwrap()).unwrap()
    }

    fn dep(key: &str) -> Value {
        json!({"key": key, "type": "flag", "value": true, "operator": "flag_evaluates_to"})
    }

    #[test]
    fn dependencies_get_chains_keys_and_cycle_markers() {
        let set = FlagSet::new(
            vec![
                flag(json!({"id": 1, "key": "base"})),
                flag(json!({"id": 2, "key": "mid", "filters": {"groups": [
                    {"properties": [dep("base")]}]}})),
                // Refers to `mid` by id.
                flag(json!({"id": 3, "key": "top", "filters": {"groups": [
                    {"properties": [dep("2")]}]}})),
                flag(json!({"id": 4, "key": "loop-a", "filters": {"groups": [
                    {"properties": [dep("loop-b")]}]}})),
                flag(json!({"id": 5, "key": "loop-b", "filters": {"groups": [
                    {"properties": [dep("loop-a")]}]}})),
                flag(json!({"id": 6, "key": "orphan", "filters": {"groups": [
                    {"properties": [dep("gone")]}]}})),
            ],
            [],
            [],
        );
        let body = payload(&set, false);
        let prop = |i: usize| &body["flags"][i]["filters"]["groups"][0]["properties"][0];
        assert_eq!(prop(1)["dependency_chain"], json!(["base"]));
        assert_eq!(prop(2)["key"], "mid");
        assert_eq!(prop(2)["dependency_chain"], json!(["base", "mid"]));
        assert_eq!(prop(3)["dependency_chain"], json!([]));
        assert_eq!(prop(4)["dependency_chain"], json!([]));
        assert_eq!(prop(5)["dependency_chain"], json!(["gone"]));
        assert_eq!(body["cohorts"], json!({}));
    }

    #[test]
    fn referenced_cohorts_are_sent_transitively() {
        let cohort = |v: Value| PropertyGroup::from_value(&v).unwrap();
        let set = FlagSet::new(
            vec![flag(
                json!({"id": 1, "key": "c", "filters": {"groups": [{"properties": [
                {"key": "id", "type": "cohort", "value": 10}]}]}}),
            )],
            [],
            [
                (
                    10,
                    cohort(json!({"type": "OR", "values": [
                    {"key": "id", "type": "cohort", "value": "11"}]})),
                ),
                (
                    11,
                    cohort(json!({"type": "AND", "values": [
                    {"key": "plan", "type": "person", "value": "pro"}]})),
                ),
                (12, cohort(json!({"type": "AND", "values": []}))),
            ],
        );
        let body = payload(&set, true);
        let ids: Vec<&String> = body["cohorts"].as_object().unwrap().keys().collect();
        assert_eq!(ids, ["10", "11"]);
    }

    #[test]
    fn etag_is_quoted_sha1() {
        let tag = etag(b"{}");
        assert_eq!(tag.len(), 42);
        assert!(tag.starts_with('"') && tag.ends_with('"'));
        assert_eq!(tag, etag(b"{}"));
        assert_ne!(tag, etag(b"[]"));
    }
}
