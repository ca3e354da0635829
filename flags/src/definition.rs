//! Flag definitions in PostHog's JSON shape, as stored and as served to SDKs.
//!
//! These types only describe the shape: every field the API accepts, with unknown fields
//! rejected by name. They carry no guarantees about the values; [`crate::validate`] turns a
//! [`FlagDefinition`] into a checked, precompiled [`crate::Flag`]. Nullable fields are
//! `Option`s so that a definition round-trips through serde as PostHog writes it.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::error::ValidationError;

/// One feature flag, as created through the API and served by local evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagDefinition {
    /// Numeric id, unique within the project; assigned by the store.
    #[serde(default)]
    pub id: i64,
    /// Project (team) id; informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_id: Option<i64>,
    /// The key SDKs ask for; also the first part of the bucketing hash.
    pub key: String,
    /// Human-readable name (PostHog uses it as the description).
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    /// A longer description, returned in `metadata.description` when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Inactive flags evaluate to false with reason `flag_disabled`.
    #[serde(default = "default_true")]
    pub active: bool,
    /// Deleted flags are kept in the store but never evaluated or served.
    #[serde(default)]
    pub deleted: bool,
    /// Targeting: conditions, variants, payloads, holdout and more.
    #[serde(default, deserialize_with = "null_as_default")]
    pub filters: Filters,
    /// Bucket by a hash-key override (the anonymous id) so a user keeps their value on login.
    #[serde(default, deserialize_with = "null_as_default")]
    pub ensure_experience_continuity: bool,
    /// Definition version, bumped by the store on every change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// `"device_id"` buckets by the request's `device_id`; anything else by `distinct_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucketing_identifier: Option<String>,
    /// Whether payloads are encrypted (remote config); informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_encrypted_payloads: Option<bool>,
    /// `"server"`, `"client"` or `"all"`; informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation_runtime: Option<String>,
    /// Free-form tags; informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
}

/// The `filters` object of a flag.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filters {
    /// Release conditions, ORed in order; the first match wins.
    #[serde(default, deserialize_with = "null_as_default")]
    pub groups: Vec<Condition>,
    /// Variants of a multivariate flag.
    #[serde(default)]
    pub multivariate: Option<Multivariate>,
    /// Payloads keyed by `"true"` (boolean flags) or by variant key.
    #[serde(default, deserialize_with = "null_as_default")]
    pub payloads: BTreeMap<String, Value>,
    /// Set for group flags: the group type index whose key buckets the flag.
    #[serde(default)]
    pub aggregation_group_type_index: Option<i32>,
    /// An experiment holdout that runs before the conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holdout: Option<Holdout>,
    /// Super conditions: when the first property's key is set on the person, they decide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub super_groups: Option<Vec<Condition>>,
    /// Early-access feature: `$feature_enrollment/{key}` on the person decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_enrollment: Option<bool>,
    /// Stop at the first condition whose properties match but whose rollout excludes the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_exit: Option<bool>,
    /// Same as the flag-level `bucketing_identifier`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucketing_identifier: Option<String>,
}

/// One release condition (a "condition set").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// Property filters, ANDed.
    #[serde(default, deserialize_with = "null_as_default")]
    pub properties: Vec<PropertyFilter>,
    /// Percentage (0–100) of matching users who get the flag; missing means 100.
    #[serde(default)]
    pub rollout_percentage: Option<f64>,
    /// Forces this variant for users matching the condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Per-condition aggregation for mixed person/group targeting. `Some(None)` is an
    /// explicit `null`, which differs from absence.
    #[serde(
        default,
        deserialize_with = "explicit_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub aggregation_group_type_index: Option<Option<i32>>,
    /// Free-form description shown in the UI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// UI ordering key; informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_key: Option<String>,
}

/// One property filter inside a condition or a cohort.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PropertyFilter {
    /// Property name; for cohorts usually `"id"`; for flag dependencies the flag key or id.
    pub key: String,
    /// The value compared against; a list means membership for `exact`/`is_not`.
    #[serde(default)]
    pub value: Value,
    /// Operator name; missing means `exact`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// `person`, `group`, `cohort` or `flag`; missing means `person`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// For `type: "group"`: the group type index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_type_index: Option<i32>,
    /// Inverts the filter (honoured inside cohort definitions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub negation: Option<bool>,
    /// For `type: "flag"`: the evaluation order the SDKs need. Computed by
    /// [`crate::local_evaluation`]; ignored on input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependency_chain: Option<Vec<String>>,
    /// UI label; informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// The `multivariate` object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Multivariate {
    /// Variants in stored order; their percentages must sum to 100.
    #[serde(default, deserialize_with = "null_as_default")]
    pub variants: Vec<Variant>,
}

/// One variant of a multivariate flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// The value the flag takes.
    pub key: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Share of the condition's users, 0–100.
    pub rollout_percentage: f64,
}

/// An experiment holdout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Holdout {
    /// Holdout id; held-out users get variant `holdout-{id}`.
    pub id: i64,
    /// Percentage (0–100) of users held out.
    pub exclusion_percentage: f64,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A cohort definition as served to SDKs: `{"type": "AND"|"OR", "values": [...]}`, where each
/// value is a property filter or a nested group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PropertyGroup {
    /// `"AND"` or `"OR"`; missing only in the empty group `{}`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Entries; an empty group matches everyone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<PropertyGroupEntry>,
}

/// An entry of a [`PropertyGroup`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum PropertyGroupEntry {
    /// A nested `{type, values}` group.
    Group(PropertyGroup),
    /// A property filter.
    Filter(PropertyFilter),
}

impl<'de> Deserialize<'de> for PropertyGroupEntry {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        // Decide the variant the way the SDKs do, so errors name the real bad field.
        let value = Value::deserialize(de)?;
        let is_group = value.as_object().is_some_and(|o| {
            o.is_empty()
                || o.contains_key("values")
                || matches!(o.get("type").and_then(Value::as_str), Some("AND" | "OR"))
        });
        if is_group {
            serde_json::from_value(value)
                .map(PropertyGroupEntry::Group)
                .map_err(D::Error::custom)
        } else {
            serde_json::from_value(value)
                .map(PropertyGroupEntry::Filter)
                .map_err(D::Error::custom)
        }
    }
}

impl FlagDefinition {
    /// What `/flags?v=2` shows as `metadata.description`: the description, else the name,
    /// else nothing.
    pub fn shown_description(&self) -> Option<&str> {
        self.description
            .as_deref()
            .filter(|d| !d.is_empty())
            .or(Some(self.name.as_str()).filter(|n| !n.is_empty()))
    }

    /// Parses a definition from JSON, naming the offending field on error.
    ///
    /// # Examples
    /// ```
    /// let err = quill_flags::FlagDefinition::from_json(
    ///     r#"{"key":"a","filters":{"groups":[],"colour":1}}"#,
    /// )
    /// .unwrap_err();
    /// assert!(err.to_string().contains("colour"));
    /// ```
    pub fn from_json(text: &str) -> Result<Self, ValidationError> {
        let mut de = serde_json::Deserializer::from_str(text);
        parse_with_path(&mut de)
    }

    /// Parses a definition from an already-decoded JSON value.
    pub fn from_value(value: &Value) -> Result<Self, ValidationError> {
        parse_with_path(value)
    }

    /// Applies a `PATCH` body: each top-level field present replaces the stored one whole
    /// (so `filters` is replaced, not merged). `id` cannot change; unknown fields are rejected
    /// by name. Validate the result with [`crate::Flag::new`].
    ///
    /// # Examples
    /// ```
    /// use quill_flags::FlagDefinition;
    /// let def = FlagDefinition::from_json(r#"{"id":4,"key":"a","name":"A"}"#).unwrap();
    /// let patched = def.apply_patch(&serde_json::json!({"active": false})).unwrap();
    /// assert!(!patched.active);
    /// assert_eq!(patched.name, "A");
    /// ```
    pub fn apply_patch(&self, patch: &Value) -> Result<FlagDefinition, ValidationError> {
        let changes = patch
            .as_object()
            .ok_or_else(|| ValidationError::new("", "expected a JSON object"))?;
        if let Some(id) = changes.get("id") {
            if id.as_i64() != Some(self.id) {
                return Err(ValidationError::new("id", "cannot be changed"));
            }
        }
        let mut merged =
            serde_json::to_value(self).map_err(|e| ValidationError::new("", e.to_string()))?;
        if let Value::Object(fields) = &mut merged {
            for (k, v) in changes {
                fields.insert(k.clone(), v.clone());
            }
        }
        FlagDefinition::from_value(&merged)
    }
}

impl PropertyGroup {
    /// Parses a cohort definition from an already-decoded JSON value.
    pub fn from_value(value: &Value) -> Result<Self, ValidationError> {
        parse_with_path(value)
    }
}

fn parse_with_path<'de, D, T>(de: D) -> Result<T, ValidationError>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let path = if path == "." { String::new() } else { path };
        ValidationError::new(path, err.into_inner().to_string())
    })
}

fn default_true() -> bool {
    true
}

/// Treats an explicit `null` like an absent field.
fn null_as_default<'de, D, T>(de: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(de)?.unwrap_or_default())
}

/// Keeps an explicit `null` apart from absence: absent is `None` (via `default`), `null` is
/// `Some(None)`.
fn explicit_option<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Some(Option::<T>::deserialize(de)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_posthog_shape() {
        let def = FlagDefinition::from_value(&json!({
            "id": 7, "key": "beta", "name": "Beta", "active": true,
            "ensure_experience_continuity": null,
            "filters": {
                "groups": [{"properties": [{"key": "email", "value": "@x.com",
                    "operator": "icontains", "type": "person"}], "rollout_percentage": 50}],
                "multivariate": null, "payloads": {}, "aggregation_group_type_index": null
            }
        }))
        .unwrap();
        assert_eq!(def.key, "beta");
        assert!(!def.ensure_experience_continuity);
        assert_eq!(def.filters.groups[0].rollout_percentage, Some(50.0));
        assert_eq!(def.filters.groups[0].aggregation_group_type_index, None);
    }

    #[test]
    fn explicit_null_aggregation_is_kept() {
        let c: Condition =
            serde_json::from_value(json!({"aggregation_group_type_index": null})).unwrap();
        assert_eq!(c.aggregation_group_type_index, Some(None));
        let back = serde_json::to_value(&c).unwrap();
        assert_eq!(back["aggregation_group_type_index"], Value::Null);
    }

    #[test]
    fn unknown_field_is_named_with_path() {
        let err = FlagDefinition::from_value(&json!({
            "key": "a", "filters": {"groups": [{"properties": [], "rolout": 5}]}
        }))
        .unwrap_err();
        assert_eq!(err.path, "filters.groups[0].rolout");
        assert!(err.message.contains("unknown field `rolout`"), "{err}");
    }

    #[test]
    fn patches_replace_top_level_fields() {
        let def = FlagDefinition::from_value(&json!({"id": 1, "key": "a",
            "filters": {"groups": [{"rollout_percentage": 5}], "early_exit": true}}))
        .unwrap();
        let p = def
            .apply_patch(&json!({"filters": {"groups": []}, "name": "x"}))
            .unwrap();
        assert_eq!(p.name, "x");
        assert!(p.filters.groups.is_empty());
        assert_eq!(p.filters.early_exit, None);
        assert_eq!(def.apply_patch(&json!({"id": 2})).unwrap_err().path, "id");
        assert_eq!(
            def.apply_patch(&json!({"colour": 1})).unwrap_err().path,
            "colour"
        );
    }

    #[test]
    fn cohort_group_parses_nested() {
        let g = PropertyGroup::from_value(&json!({"type": "OR", "values": [
            {"type": "AND", "values": [{"key": "a", "value": 1, "type": "person"}]}
        ]}))
        .unwrap();
        assert!(matches!(g.values[0], PropertyGroupEntry::Group(_)));
    }
}
