//! Property filters, compiled once and matched many times.
//!
//! [`compile_filter`] checks a [`PropertyFilter`] against its operator and precomputes what
//! matching needs: lowercased strings, parsed numbers, dates and versions, compiled regexes.
//! [`match_property`] then answers for one property value without allocating in the common
//! cases (ASCII strings).
//!
//! Matching follows the server's rules: a missing property fails every operator except
//! `is_not` and `is_not_set`; a value the operator cannot read (a non-date string for a date
//! operator, a non-version for semver, a non-number for `gt`) fails the filter. `null` only
//! takes part in `exact`, `is_not`, the substring and the regex operators, where it reads as
//! `"null"`.
//!
//! Regexes run on the `regex` crate: linear time, no backtracking, with compiled size capped at
//! [`REGEX_SIZE_LIMIT`]. Patterns it rejects (look-around, back-references, oversize) are
//! validation errors in strict mode and match nothing in lenient mode.

use chrono::{DateTime, Utc};
use regex::{Regex, RegexBuilder};
use serde_json::Value;

use crate::dates::{self, DateValue};
use crate::definition::PropertyFilter;
use crate::error::ValidationError;
use crate::operator::Operator;
use crate::semver::{self, SemverFilter};
use crate::value::{
    contains_ascii_ci, eq_lowercase, is_truthy, is_truthy_or_falsy, parse_numeric, value_to_string,
};

/// Upper bound on a compiled regex's size, in bytes.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// How strictly definitions are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strictness {
    /// Reject anything that cannot match as written (the API's create and update).
    #[default]
    Strict,
    /// Accept it and let it never match (loading definitions written elsewhere).
    Lenient,
}

/// A compiled property filter.
#[derive(Debug, Clone)]
pub struct CompiledFilter {
    pub(crate) key: String,
    pub(crate) negation: bool,
    pub(crate) test: Test,
}

#[derive(Debug, Clone)]
pub(crate) enum Test {
    Exact(ExactValue),
    IsNot(ExactValue),
    IsSet,
    IsNotSet,
    Text {
        kind: TextKind,
        needle: String,
        negate: bool,
    },
    Regex {
        regex: Option<Box<Regex>>,
        negate: bool,
    },
    Numeric {
        op: Operator,
        value: f64,
    },
    Date {
        op: Operator,
        value: DateValue,
    },
    Semver(SemverFilter),
    Cohort {
        id: i64,
        negate: bool,
    },
    Flag(FlagRef),
    Never,
}

#[derive(Debug, Clone)]
pub(crate) enum ExactValue {
    EmptyList,
    Truthy(bool),
    List(Vec<String>),
    Single(String),
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum TextKind {
    Contains,
    StartsWith,
    EndsWith,
}

/// A flag dependency: `type: "flag"`, `operator: "flag_evaluates_to"`.
#[derive(Debug, Clone)]
pub(crate) struct FlagRef {
    /// The key as written: a flag key or a flag id.
    pub(crate) key: String,
    /// `true`, `false` or a variant key.
    pub(crate) expected: Value,
    /// Filled in by [`crate::FlagSet`].
    pub(crate) target: DepTarget,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DepTarget {
    Unresolved,
    Index(usize),
    Missing,
    Cyclic,
}

impl CompiledFilter {
    /// The property key the filter reads.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// Compiles `filter`, whose JSON path is `path`, for evaluation at or after `now`.
pub fn compile_filter(
    filter: &PropertyFilter,
    path: &str,
    strictness: Strictness,
    now: DateTime<Utc>,
) -> Result<CompiledFilter, ValidationError> {
    let strict = strictness == Strictness::Strict;
    let op_name = filter.operator.as_deref().unwrap_or("exact");
    let operator = match Operator::parse(op_name) {
        Some(op) => Some(op),
        None if strict => {
            return Err(ValidationError::new(
                format!("{path}.operator"),
                format!("unknown operator \"{op_name}\""),
            ))
        }
        None => None,
    };
    let invalid = |message: String| -> Result<Test, ValidationError> {
        if strict {
            Err(ValidationError::new(format!("{path}.value"), message))
        } else {
            Ok(Test::Never)
        }
    };
    if strict && filter.key.is_empty() {
        return Err(ValidationError::new(
            format!("{path}.key"),
            "must not be empty",
        ));
    }
    let test = match (filter.kind.as_deref(), operator) {
        (_, None) => Test::Never,
        (Some("cohort"), Some(op)) => compile_cohort(filter, op, path, strict)?,
        (Some("flag"), Some(op)) => compile_flag(filter, op, path, strict)?,
        (None | Some("person") | Some("group"), Some(op)) => {
            compile_property(&filter.value, op, now, invalid, path, strict)?
        }
        (Some(other), Some(op)) => {
            if strict {
                return Err(ValidationError::new(
                    format!("{path}.type"),
                    format!("unsupported filter type \"{other}\""),
                ));
            }
            compile_property(&filter.value, op, now, invalid, path, strict)?
        }
    };
    Ok(CompiledFilter {
        key: filter.key.clone(),
        negation: filter.negation.unwrap_or(false),
        test,
    })
}

fn compile_property(
    value: &Value,
    op: Operator,
    now: DateTime<Utc>,
    invalid: impl Fn(String) -> Result<Test, ValidationError>,
    path: &str,
    strict: bool,
) -> Result<Test, ValidationError> {
    use Operator::*;
    let text = |kind, negate| Test::Text {
        kind,
        needle: value_to_string(value).to_ascii_lowercase(),
        negate,
    };
    Ok(match op {
        Exact => Test::Exact(exact_value(value)),
        IsNot => Test::IsNot(exact_value(value)),
        IsSet => Test::IsSet,
        IsNotSet => Test::IsNotSet,
        IContains => text(TextKind::Contains, false),
        NotIContains => text(TextKind::Contains, true),
        StartsWith => text(TextKind::StartsWith, false),
        NotStartsWith => text(TextKind::StartsWith, true),
        EndsWith => text(TextKind::EndsWith, false),
        NotEndsWith => text(TextKind::EndsWith, true),
        Regex | NotRegex => {
            let pattern = value_to_string(value);
            let compiled = RegexBuilder::new(&pattern)
                .size_limit(REGEX_SIZE_LIMIT)
                .dfa_size_limit(REGEX_SIZE_LIMIT)
                .build();
            match compiled {
                Ok(regex) => Test::Regex {
                    regex: Some(Box::new(regex)),
                    negate: op == NotRegex,
                },
                Err(err) if strict => return invalid(format!("invalid regex: {err}")),
                Err(_) => Test::Regex {
                    regex: None,
                    negate: op == NotRegex,
                },
            }
        }
        Gt | Gte | Lt | Lte => match parse_numeric(value) {
            Some(n) => Test::Numeric { op, value: n },
            None => return invalid(format!("expected a number, got {value}")),
        },
        IsDateBefore | IsDateAfter | IsDateExact => {
            match DateValue::compile(&value_to_string(value), now) {
                Some(d) => Test::Date { op, value: d },
                None => {
                    return invalid(format!(
                        "expected an ISO date or a relative date like -7d, got {value}"
                    ))
                }
            }
        }
        Semver(sop) => match SemverFilter::compile(sop, &value_to_string(value)) {
            Some(f) => Test::Semver(f),
            None => return invalid(format!("invalid version {value}")),
        },
        In | NotIn | FlagEvaluatesTo => {
            if strict {
                return Err(ValidationError::new(
                    format!("{path}.operator"),
                    "this operator only applies to cohort or flag filters",
                ));
            }
            Test::Never
        }
    })
}

fn compile_cohort(
    filter: &PropertyFilter,
    op: Operator,
    path: &str,
    strict: bool,
) -> Result<Test, ValidationError> {
    let negate = match op {
        Operator::Exact | Operator::In => false,
        Operator::NotIn => true,
        _ if strict => {
            return Err(ValidationError::new(
                format!("{path}.operator"),
                "cohort filters take `in` or `not_in`",
            ))
        }
        _ => return Ok(Test::Never),
    };
    let id = match &filter.value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    match id {
        Some(id) => Ok(Test::Cohort { id, negate }),
        None if strict => Err(ValidationError::new(
            format!("{path}.value"),
            "expected a cohort id",
        )),
        None => Ok(Test::Never),
    }
}

fn compile_flag(
    filter: &PropertyFilter,
    op: Operator,
    path: &str,
    strict: bool,
) -> Result<Test, ValidationError> {
    let fail = |field: &str, message: &str| {
        if strict {
            Err(ValidationError::new(format!("{path}.{field}"), message))
        } else {
            Ok(Test::Never)
        }
    };
    if op != Operator::FlagEvaluatesTo {
        return fail("operator", "flag dependencies take `flag_evaluates_to`");
    }
    if !matches!(filter.value, Value::Bool(_) | Value::String(_)) {
        return fail("value", "expected true, false or a variant key");
    }
    Ok(Test::Flag(FlagRef {
        key: filter.key.clone(),
        expected: filter.value.clone(),
        target: DepTarget::Unresolved,
    }))
}

fn exact_value(value: &Value) -> ExactValue {
    match value {
        Value::Array(items) if items.is_empty() => ExactValue::EmptyList,
        v if is_truthy_or_falsy(v) => ExactValue::Truthy(is_truthy(v)),
        Value::Array(items) => ExactValue::List(
            items
                .iter()
                .map(|i| value_to_string(i).to_lowercase())
                .collect(),
        ),
        v => ExactValue::Single(value_to_string(v).to_lowercase()),
    }
}

fn exact_matches(expected: &ExactValue, actual: &Value) -> bool {
    match expected {
        ExactValue::EmptyList => is_truthy(actual),
        ExactValue::Truthy(b) => *b == is_truthy(actual),
        ExactValue::List(items) => {
            let s = value_to_string(actual);
            items.iter().any(|i| eq_lowercase(i, &s))
        }
        ExactValue::Single(want) => eq_lowercase(want, &value_to_string(actual)),
    }
}

/// Matches a property test against the property's value (`None` when the key is missing).
/// Cohort and flag tests are decided by the engine and are `false` here.
pub(crate) fn match_property(test: &Test, actual: Option<&Value>, now: DateTime<Utc>) -> bool {
    let Some(actual) = actual else {
        return matches!(test, Test::IsNot(_) | Test::IsNotSet);
    };
    match test {
        Test::IsSet => true,
        Test::IsNotSet => false,
        Test::Exact(e) => exact_matches(e, actual),
        Test::IsNot(e) => !exact_matches(e, actual),
        Test::Text {
            kind,
            needle,
            negate,
        } => {
            let hay = value_to_string(actual);
            let (h, n) = (hay.as_bytes(), needle.as_bytes());
            let found = match kind {
                TextKind::Contains => contains_ascii_ci(&hay, needle),
                TextKind::StartsWith => h.len() >= n.len() && h[..n.len()].eq_ignore_ascii_case(n),
                TextKind::EndsWith => {
                    h.len() >= n.len() && h[h.len() - n.len()..].eq_ignore_ascii_case(n)
                }
            };
            found != *negate
        }
        Test::Numeric { op, value } => match parse_numeric(actual) {
            Some(x) => match op {
                Operator::Gt => x > *value,
                Operator::Gte => x >= *value,
                Operator::Lt => x < *value,
                _ => x <= *value,
            },
            None => false,
        },
        Test::Regex { regex, negate } => match regex {
            Some(re) => re.is_match(&value_to_string(actual)) != *negate,
            None => false,
        },
        _ if actual.is_null() => false,
        Test::Date { op, value } => {
            let (Value::String(s), Some(filter)) = (actual, value.resolve(now)) else {
                return false;
            };
            match dates::parse_datetime(s, now) {
                Some(d) => match op {
                    Operator::IsDateBefore => d < filter,
                    Operator::IsDateAfter => d > filter,
                    _ => d == filter,
                },
                None => false,
            }
        }
        Test::Semver(f) => match semver::parse(&value_to_string(actual)) {
            Some(v) => f.matches(v),
            None => false,
        },
        Test::Cohort { .. } | Test::Flag(_) | Test::Never => false,
    }
}

#[cfg(test)]
mod tests;
