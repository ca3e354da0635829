//! Validated flags: a [`FlagDefinition`] checked and precompiled for evaluation.
//!
//! [`validate`] is pure: it never touches a store. It checks what PostHog's API checks (a
//! well-formed key, percentages within 0–100, variant percentages summing to 100, known
//! operators with readable values, compilable regexes) and names the offending field in the
//! error, e.g. `filters.multivariate.variants: rollout percentages sum to 90, expected 100`.
//! The resulting [`Flag`] keeps the definition it came from, for serving it back.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::definition::{Condition, FlagDefinition};
use crate::error::ValidationError;
use crate::filter::{compile_filter, CompiledFilter, Strictness};
use crate::wire::WireParts;

/// A validated, precompiled flag.
#[derive(Debug, Clone)]
pub struct Flag {
    pub(crate) definition: FlagDefinition,
    pub(crate) conditions: Vec<CompiledCondition>,
    /// The super condition and the property key whose presence activates it.
    pub(crate) super_condition: Option<(String, CompiledCondition)>,
    /// `(variant key, cumulative upper bound)` in stored order.
    pub(crate) variants: Vec<(String, f64)>,
    pub(crate) holdout: Option<CompiledHoldout>,
    /// `$feature_enrollment/{key}` when feature enrollment is on.
    pub(crate) enrollment_key: Option<String>,
    pub(crate) early_exit: bool,
    pub(crate) aggregation: Option<i32>,
    pub(crate) bucket_by_device: bool,
    /// The constant parts of the flag's `/flags?v=2` details, escaped once.
    pub(crate) wire: WireParts,
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledCondition {
    pub(crate) filters: Vec<CompiledFilter>,
    pub(crate) rollout: Option<f64>,
    /// A valid forced variant.
    pub(crate) variant: Option<String>,
    /// `None`: inherit the flag's; `Some(x)`: explicitly set (possibly to null).
    pub(crate) aggregation: Option<Option<i32>>,
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledHoldout {
    pub(crate) fraction: f64,
    pub(crate) variant: String,
}

impl Flag {
    /// Validates `definition` strictly (see [`validate`]).
    pub fn new(definition: FlagDefinition) -> Result<Flag, ValidationError> {
        validate(definition, Strictness::Strict, Utc::now())
    }

    /// The flag key.
    pub fn key(&self) -> &str {
        &self.definition.key
    }

    /// The flag id.
    pub fn id(&self) -> i64 {
        self.definition.id
    }

    /// Whether the flag is active.
    pub fn active(&self) -> bool {
        self.definition.active
    }

    /// The definition this flag was built from.
    pub fn definition(&self) -> &FlagDefinition {
        &self.definition
    }

    /// Whether the flag buckets by a hash-key override (experience continuity).
    pub fn ensures_experience_continuity(&self) -> bool {
        self.definition.ensure_experience_continuity
    }

    /// The payload for a value: `"true"` for a plain `true`, the variant key otherwise.
    pub fn payload(&self, enabled: bool, variant: Option<&str>) -> Option<&Value> {
        if !enabled {
            return None;
        }
        self.definition
            .filters
            .payloads
            .get(variant.unwrap_or("true"))
    }

    /// The variant for a hash in `[0, 1]`: the first whose cumulative bound exceeds it.
    pub(crate) fn variant_for(&self, hash: f64) -> Option<&str> {
        let mut lower = 0.0;
        for (key, upper) in &self.variants {
            if hash >= lower && hash < *upper {
                return Some(key);
            }
            lower = *upper;
        }
        None
    }
}

/// Checks `definition` and compiles it. `now` resolves filter values that depend on today
/// (used only for checking; relative dates are resolved at evaluation time).
pub fn validate(
    definition: FlagDefinition,
    strictness: Strictness,
    now: DateTime<Utc>,
) -> Result<Flag, ValidationError> {
    let strict = strictness == Strictness::Strict;
    let def = &definition;
    if def.key.is_empty() {
        return Err(ValidationError::new("key", "must not be empty"));
    }
    if strict
        && !def
            .key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ValidationError::new(
            "key",
            "only letters, numbers, hyphens and underscores are allowed",
        ));
    }
    let filters = &def.filters;
    let variants = compile_variants(def, strict)?;
    let variant_keys: Vec<&str> = variants.iter().map(|(k, _)| k.as_str()).collect();
    let mut conditions = Vec::with_capacity(filters.groups.len());
    for (i, c) in filters.groups.iter().enumerate() {
        let path = format!("filters.groups[{i}]");
        conditions.push(compile_condition(c, &path, &variant_keys, strictness, now)?);
    }
    let super_condition = match filters.super_groups.as_deref() {
        Some([first, ..]) => {
            let compiled = compile_condition(
                first,
                "filters.super_groups[0]",
                &variant_keys,
                strictness,
                now,
            )?;
            first.properties.first().map(|p| (p.key.clone(), compiled))
        }
        _ => None,
    };
    let holdout = match &filters.holdout {
        Some(h) => {
            let pct = h.exclusion_percentage;
            if strict && !(0.0..=100.0).contains(&pct) {
                return Err(ValidationError::new(
                    "filters.holdout.exclusion_percentage",
                    format!("must be between 0 and 100, got {}", show(pct)),
                ));
            }
            Some(CompiledHoldout {
                fraction: pct.clamp(0.0, 100.0) / 100.0,
                variant: format!("holdout-{}", h.id),
            })
        }
        None => None,
    };
    if let Some(index) = filters.aggregation_group_type_index {
        if strict && index < 0 {
            return Err(ValidationError::new(
                "filters.aggregation_group_type_index",
                "must not be negative",
            ));
        }
    }
    let bucketing = def
        .bucketing_identifier
        .as_deref()
        .or(filters.bucketing_identifier.as_deref());
    if strict && !matches!(bucketing, None | Some("distinct_id" | "device_id")) {
        return Err(ValidationError::new(
            "bucketing_identifier",
            "expected \"distinct_id\" or \"device_id\"",
        ));
    }
    Ok(Flag {
        enrollment_key: (filters.feature_enrollment == Some(true))
            .then(|| format!("$feature_enrollment/{}", def.key)),
        early_exit: filters.early_exit == Some(true),
        aggregation: filters.aggregation_group_type_index,
        bucket_by_device: bucketing == Some("device_id"),
        conditions,
        super_condition,
        variants,
        holdout,
        wire: WireParts::of(&definition),
        definition,
    })
}

fn compile_variants(
    def: &FlagDefinition,
    strict: bool,
) -> Result<Vec<(String, f64)>, ValidationError> {
    let Some(mv) = &def.filters.multivariate else {
        return Ok(Vec::new());
    };
    let mut out: Vec<(String, f64)> = Vec::with_capacity(mv.variants.len());
    let mut upper = 0.0;
    let mut sum = 0.0;
    for (i, v) in mv.variants.iter().enumerate() {
        let path = format!("filters.multivariate.variants[{i}]");
        if strict {
            if v.key.is_empty() {
                return Err(ValidationError::new(
                    format!("{path}.key"),
                    "must not be empty",
                ));
            }
            if out.iter().any(|(k, _)| *k == v.key) {
                return Err(ValidationError::new(
                    format!("{path}.key"),
                    format!("duplicate variant \"{}\"", v.key),
                ));
            }
            if !(0.0..=100.0).contains(&v.rollout_percentage) {
                return Err(ValidationError::new(
                    format!("{path}.rollout_percentage"),
                    format!(
                        "must be between 0 and 100, got {}",
                        show(v.rollout_percentage)
                    ),
                ));
            }
        }
        // Accumulate as value_min + pct / 100, step by step, as the SDKs do.
        upper += v.rollout_percentage / 100.0;
        sum += v.rollout_percentage;
        out.push((v.key.clone(), upper));
    }
    if strict && !out.is_empty() && (sum - 100.0).abs() > 1e-9 {
        return Err(ValidationError::new(
            "filters.multivariate.variants",
            format!("rollout percentages sum to {}, expected 100", show(sum)),
        ));
    }
    Ok(out)
}

fn compile_condition(
    c: &Condition,
    path: &str,
    variant_keys: &[&str],
    strictness: Strictness,
    now: DateTime<Utc>,
) -> Result<CompiledCondition, ValidationError> {
    let strict = strictness == Strictness::Strict;
    if let Some(pct) = c.rollout_percentage {
        if strict && !(0.0..=100.0).contains(&pct) {
            return Err(ValidationError::new(
                format!("{path}.rollout_percentage"),
                format!("must be between 0 and 100, got {}", show(pct)),
            ));
        }
    }
    let variant = match c.variant.as_deref() {
        Some(v) if variant_keys.contains(&v) => Some(v.to_string()),
        Some(v) if strict => {
            return Err(ValidationError::new(
                format!("{path}.variant"),
                format!("unknown variant \"{v}\""),
            ))
        }
        _ => None,
    };
    let mut filters = Vec::with_capacity(c.properties.len());
    for (i, p) in c.properties.iter().enumerate() {
        filters.push(compile_filter(
            p,
            &format!("{path}.properties[{i}]"),
            strictness,
            now,
        )?);
    }
    Ok(CompiledCondition {
        filters,
        rollout: c.rollout_percentage,
        variant,
        aggregation: c.aggregation_group_type_index,
    })
}

/// Prints a percentage without a needless `.0`.
fn show(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

#[cfg(test)]
mod tests;
