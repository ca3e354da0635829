//! Breakdowns: `breakdownFilter {breakdown_type, breakdown, breakdown_limit}` parsed into a
//! [`Breakdown`] that reads a row's value, plus PostHog's null/Other markers and the ranking
//! that folds values beyond the limit into Other.
//!
//! A breakdown value is the property's string form (numbers in JSON form); a missing, null or
//! empty value is [`BREAKDOWN_NULL`], as in PostHog's `nullIf(toString(..), '')`.

use std::sync::Arc;

use quill_pipeline::graph::row::lookup;
use quill_pipeline::graph::{EventRow, Interner, PropValue, Sym};
use serde_json::Value;

use crate::QueryError;

use super::filters::Scope;

/// PostHog's marker for a missing breakdown value.
pub const BREAKDOWN_NULL: &str = "$$_posthog_breakdown_null_$$";
/// PostHog's marker for the values folded beyond the breakdown limit.
pub const BREAKDOWN_OTHER: &str = "$$_posthog_breakdown_other_$$";
/// PostHog's default `breakdown_limit`.
pub const DEFAULT_LIMIT: usize = 25;

/// A parsed breakdown by one event or person property.
#[derive(Debug, Clone)]
pub struct Breakdown {
    /// Whose property is read.
    pub scope: Scope,
    /// The property key.
    pub key: String,
    key_sym: Sym,
    /// How many values are kept before the rest fold into Other.
    pub limit: usize,
    interner: Arc<Interner>,
}

impl Breakdown {
    /// Parses `query.breakdownFilter`; `None` when absent or without a `breakdown`.
    pub fn parse(query: &Value, interner: &Arc<Interner>) -> Result<Option<Self>, QueryError> {
        let filter = match query.get("breakdownFilter") {
            None | Some(Value::Null) => return Ok(None),
            Some(f @ Value::Object(_)) => f,
            Some(other) => {
                return Err(QueryError::new(
                    "breakdownFilter",
                    format!("expected an object, got {other}"),
                ))
            }
        };
        let key = match filter.get("breakdown") {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(items)) if items.len() == 1 && items[0].is_string() => {
                items[0].as_str().unwrap_or_default().to_string()
            }
            Some(other) => {
                return Err(QueryError::new(
                    "breakdownFilter.breakdown",
                    format!("expected one property name, got {other}"),
                ))
            }
        };
        let scope = match filter.get("breakdown_type").and_then(Value::as_str) {
            None | Some("event") => Scope::Event,
            Some("person") => Scope::Person,
            Some(other) => {
                return Err(QueryError::new(
                    "breakdownFilter.breakdown_type",
                    format!("unsupported breakdown type {other:?}; expected event or person"),
                ))
            }
        };
        let limit = match filter.get("breakdown_limit") {
            None | Some(Value::Null) => DEFAULT_LIMIT,
            Some(v) => v
                .as_u64()
                .filter(|n| *n > 0)
                .map(|n| n as usize)
                .ok_or_else(|| {
                    QueryError::new(
                        "breakdownFilter.breakdown_limit",
                        "expected a positive integer",
                    )
                })?,
        };
        let key_sym = interner.intern(&key);
        Ok(Some(Breakdown {
            scope,
            key,
            key_sym,
            limit,
            interner: interner.clone(),
        }))
    }

    /// The row's breakdown value as an interned string, `None` for null/missing/empty.
    pub fn value(&self, row: &EventRow, person_props: &[(Sym, PropValue)]) -> Option<Sym> {
        let value = match self.scope {
            Scope::Event => row.prop(self.key_sym),
            Scope::Person => lookup(person_props, self.key_sym),
        }?;
        match value {
            PropValue::Str(sym) => (!self.interner.resolve(sym).is_empty()).then_some(sym),
            other => Some(self.interner.intern(&other.to_text(&self.interner))),
        }
    }

    /// The text of a value from [`Breakdown::value`], or [`BREAKDOWN_NULL`].
    pub fn text(&self, value: Option<Sym>) -> String {
        match value {
            Some(sym) => self.interner.resolve(sym).to_string(),
            None => BREAKDOWN_NULL.to_string(),
        }
    }

    /// The keys this breakdown reads, split by scope.
    pub fn keys(&self, scope: Scope) -> Vec<String> {
        if self.scope == scope {
            vec![self.key.clone()]
        } else {
            Vec::new()
        }
    }
}

/// Splits breakdown values into those kept and those folded into Other: values rank by
/// `total` descending (ties by value ascending) and the first `limit` are kept. Returns the
/// kept values in rank order and the folded ones.
pub fn rank<K: Ord + Clone>(totals: &[(K, f64)], limit: usize) -> (Vec<K>, Vec<K>) {
    let mut sorted: Vec<&(K, f64)> = totals.iter().collect();
    sorted.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let kept = sorted.iter().take(limit).map(|(k, _)| k.clone()).collect();
    let other = sorted.iter().skip(limit).map(|(k, _)| k.clone()).collect();
    (kept, other)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quill_pipeline::graph::Props;
    use serde_json::json;

    #[test]
    fn values_and_null() {
        let interner = Interner::new();
        let b = Breakdown::parse(
            &json!({"breakdownFilter": {"breakdown": "n", "breakdown_limit": 2}}),
            &interner,
        )
        .unwrap()
        .unwrap();
        assert_eq!(b.limit, 2);
        let n = interner.intern("n");
        let row = |v: Value| EventRow {
            ts_ms: 0,
            offset: 0,
            props: Props::new(0, interner.value(&v).map(|pv| (n, pv))),
        };
        assert_eq!(b.text(b.value(&row(json!(5)), &[])), "5");
        assert_eq!(b.text(b.value(&row(json!("")), &[])), BREAKDOWN_NULL);
        assert_eq!(b.text(b.value(&row(Value::Null), &[])), BREAKDOWN_NULL);
        assert!(Breakdown::parse(&json!({}), &interner).unwrap().is_none());
        let err = Breakdown::parse(
            &json!({"breakdownFilter": {"breakdown": "x", "breakdown_type": "cohort"}}),
            &interner,
        )
        .unwrap_err();
        assert_eq!(err.field, "breakdownFilter.breakdown_type");
    }

    #[test]
    fn ranks_and_folds() {
        let totals = vec![("a", 1.0), ("b", 5.0), ("c", 5.0), ("d", 3.0)];
        let (kept, other) = rank(&totals, 2);
        assert_eq!(kept, vec!["b", "c"]);
        assert_eq!(other, vec!["d", "a"]);
    }
}
