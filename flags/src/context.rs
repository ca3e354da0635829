//! What an evaluation knows about the caller: ids, groups, properties, overrides.
//!
//! The engine reads everything through [`EvalContext`], which borrows from the caller. The
//! server fills it from its stores and the request: each [`Properties`] view layers the
//! request's properties over the stored ones, so request-supplied values win. Cohort
//! membership that cannot be computed from a definition (static cohorts, behavioural
//! cohorts) comes from a [`CohortMembership`] implementation.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// A property map: the request's properties over the stored ones.
#[derive(Debug, Clone, Copy, Default)]
pub struct Properties<'a> {
    /// Properties sent with the request; they win.
    pub request: Option<&'a Map<String, Value>>,
    /// Properties from the store (person or group).
    pub stored: Option<&'a Map<String, Value>>,
}

impl<'a> Properties<'a> {
    /// Only request-supplied properties.
    pub fn request(map: &'a Map<String, Value>) -> Self {
        Properties {
            request: Some(map),
            stored: None,
        }
    }

    /// The value of `key`, request first.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.request
            .and_then(|m| m.get(key))
            .or_else(|| self.stored.and_then(|m| m.get(key)))
    }

    /// Whether `key` is present in either layer.
    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }
}

/// Answers cohort membership the engine cannot compute from a definition.
pub trait CohortMembership {
    /// Whether the person being evaluated is in `cohort_id`; `None` when unknown (treated as
    /// not a member).
    fn is_member(&self, cohort_id: i64) -> Option<bool>;
}

impl<F: Fn(i64) -> Option<bool>> CohortMembership for F {
    fn is_member(&self, cohort_id: i64) -> Option<bool> {
        self(cohort_id)
    }
}

/// Everything one evaluation request supplies.
#[derive(Clone, Copy)]
pub struct EvalContext<'a> {
    /// The person's distinct id; the default bucketing id.
    pub distinct_id: &'a str,
    /// The device id, for flags bucketed by `device_id`.
    pub device_id: Option<&'a str>,
    /// The anonymous id before identify; buckets experience-continuity flags that have no
    /// stored override.
    pub anon_distinct_id: Option<&'a str>,
    /// Group type name → group key, e.g. `company → "acme"`.
    pub groups: Option<&'a HashMap<String, String>>,
    /// The person's properties.
    pub person_properties: Properties<'a>,
    /// Group type name → that group's properties.
    pub group_properties: Option<&'a HashMap<String, Properties<'a>>>,
    /// Flag key → stored hash-key override (experience continuity).
    pub hash_key_overrides: Option<&'a HashMap<String, String>>,
    /// Static and behavioural cohort membership.
    pub cohorts: Option<&'a dyn CohortMembership>,
    /// The evaluation time, for relative dates.
    pub now: DateTime<Utc>,
}

impl<'a> EvalContext<'a> {
    /// A context with only a distinct id, evaluated now.
    ///
    /// # Examples
    /// ```
    /// let ctx = quill_flags::EvalContext::new("user-1");
    /// assert_eq!(ctx.distinct_id, "user-1");
    /// ```
    pub fn new(distinct_id: &'a str) -> Self {
        EvalContext {
            distinct_id,
            device_id: None,
            anon_distinct_id: None,
            groups: None,
            person_properties: Properties::default(),
            group_properties: None,
            hash_key_overrides: None,
            cohorts: None,
            now: Utc::now(),
        }
    }

    /// Sets the person properties.
    pub fn with_person_properties(mut self, properties: Properties<'a>) -> Self {
        self.person_properties = properties;
        self
    }

    /// Sets the groups and their properties.
    pub fn with_groups(
        mut self,
        groups: &'a HashMap<String, String>,
        group_properties: &'a HashMap<String, Properties<'a>>,
    ) -> Self {
        self.groups = Some(groups);
        self.group_properties = Some(group_properties);
        self
    }

    pub(crate) fn group_key(&self, name: &str) -> Option<&'a str> {
        self.groups.and_then(|g| g.get(name)).map(String::as_str)
    }

    pub(crate) fn group_props(&self, name: &str) -> Properties<'a> {
        self.group_properties
            .and_then(|g| g.get(name))
            .copied()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn request_properties_win() {
        let request = json!({"plan": "pro"});
        let stored = json!({"plan": "free", "country": "FR"});
        let props = Properties {
            request: request.as_object(),
            stored: stored.as_object(),
        };
        assert_eq!(props.get("plan"), Some(&json!("pro")));
        assert_eq!(props.get("country"), Some(&json!("FR")));
        assert_eq!(props.get("missing"), None);
    }
}
