//! Cohort definitions compiled for evaluation.
//!
//! A cohort is a tree of `AND`/`OR` groups whose leaves are property filters (possibly
//! referring to other cohorts or flags). An empty group matches everyone. `negation` on a leaf
//! inverts it; nested groups are never negated.

use chrono::{DateTime, Utc};

use crate::definition::{PropertyGroup, PropertyGroupEntry};
use crate::error::ValidationError;
use crate::filter::{compile_filter, CompiledFilter, Strictness};

/// A compiled cohort definition.
#[derive(Debug, Clone)]
pub struct CompiledGroup {
    pub(crate) and: bool,
    pub(crate) entries: Vec<GroupEntry>,
}

#[derive(Debug, Clone)]
pub(crate) enum GroupEntry {
    Group(CompiledGroup),
    Filter(CompiledFilter),
}

impl CompiledGroup {
    /// Compiles a cohort definition; `path` prefixes error paths.
    pub fn compile(
        group: &PropertyGroup,
        path: &str,
        strictness: Strictness,
        now: DateTime<Utc>,
    ) -> Result<CompiledGroup, ValidationError> {
        let and = match group.kind.as_deref() {
            Some("AND") => true,
            Some("OR") => false,
            None if group.values.is_empty() => true,
            other => {
                return Err(ValidationError::new(
                    format!("{path}.type"),
                    format!("expected \"AND\" or \"OR\", got {other:?}"),
                ))
            }
        };
        let mut entries = Vec::with_capacity(group.values.len());
        for (i, entry) in group.values.iter().enumerate() {
            let p = format!("{path}.values[{i}]");
            entries.push(match entry {
                PropertyGroupEntry::Group(g) => {
                    GroupEntry::Group(CompiledGroup::compile(g, &p, strictness, now)?)
                }
                PropertyGroupEntry::Filter(f) => {
                    GroupEntry::Filter(compile_filter(f, &p, strictness, now)?)
                }
            });
        }
        Ok(CompiledGroup { and, entries })
    }

    /// Evaluates the group, deciding each leaf filter with `leaf` (before negation).
    pub(crate) fn matches(&self, leaf: &mut dyn FnMut(&CompiledFilter) -> bool) -> bool {
        let mut entry_matches = |entry: &GroupEntry| match entry {
            GroupEntry::Group(g) => g.matches(leaf),
            GroupEntry::Filter(f) => leaf(f) != f.negation,
        };
        if self.and {
            self.entries.iter().all(&mut entry_matches)
        } else {
            self.entries.is_empty() || self.entries.iter().any(&mut entry_matches)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::match_property;
    use serde_json::json;

    fn group(v: serde_json::Value) -> CompiledGroup {
        let g = PropertyGroup::from_value(&v).unwrap();
        CompiledGroup::compile(&g, "cohort", Strictness::Strict, Utc::now()).unwrap()
    }

    fn eval(g: &CompiledGroup, props: serde_json::Value) -> bool {
        let now = Utc::now();
        g.matches(&mut |f| match_property(&f.test, props.get(f.key()), now))
    }

    #[test]
    fn and_or_nesting_and_negation() {
        let g = group(json!({"type": "OR", "values": [
            {"type": "AND", "values": [
                {"key": "plan", "value": "pro", "type": "person"},
                {"key": "country", "value": "FR", "type": "person", "negation": true}
            ]},
            {"type": "AND", "values": [{"key": "admin", "value": true, "type": "person"}]}
        ]}));
        assert!(eval(&g, json!({"plan": "pro", "country": "DE"})));
        assert!(!eval(&g, json!({"plan": "pro", "country": "fr"})));
        assert!(eval(&g, json!({"admin": "true"})));
        assert!(!eval(&g, json!({})));
    }

    #[test]
    fn empty_group_matches_everyone() {
        assert!(eval(&group(json!({})), json!({})));
        assert!(eval(&group(json!({"type": "OR", "values": []})), json!({})));
    }

    #[test]
    fn bad_type_is_named() {
        let g = PropertyGroup::from_value(&json!({"type": "XOR", "values": []})).unwrap();
        let err = CompiledGroup::compile(&g, "cohorts.4", Strictness::Strict, Utc::now());
        assert_eq!(err.unwrap_err().path, "cohorts.4.type");
    }
}
