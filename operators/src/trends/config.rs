//! A `TrendsQuery` parsed and validated into [`TrendsConfig`].
//!
//! Fields read: `series`, `interval`, `dateRange`, `properties`, `filterTestAccounts`
//! (ignored), `breakdownFilter`, `trendsFilter {display, formulaNodes, formula, formulas}` and
//! `compareFilter` (only `compare: false`). Other fields PostHog clients send (`version`,
//! `modifiers`, display options) are accepted and ignored, so that saved PostHog queries load.

use std::sync::Arc;

use quill_pipeline::graph::Interner;
use serde_json::Value;

use crate::query::{global_filters, parse_series, Breakdown, DateRange, EventsNode, Interval};
use crate::QueryError;

use super::formula::Expr;
use super::math::Math;

/// Displays that show one aggregated number per series instead of a time series.
const TOTAL_VALUE_DISPLAYS: [&str; 5] = [
    "BoldNumber",
    "ActionsPie",
    "ActionsTable",
    "WorldMap",
    "ActionsBarValue",
];

/// One series: its matcher (global filters included) and math.
#[derive(Debug, Clone)]
pub struct Series {
    /// The node, with the query's global filters folded into its filters.
    pub node: EventsNode,
    /// The parsed math.
    pub math: Math,
}

/// One formula over the series.
#[derive(Debug, Clone)]
pub struct Formula {
    /// The text as given, for the label.
    pub text: String,
    /// The parsed expression.
    pub expr: Expr,
    /// `custom_name`, if given.
    pub custom_name: Option<String>,
}

/// A validated `TrendsQuery`.
#[derive(Debug, Clone)]
pub struct TrendsConfig {
    /// The series, in order (A, B, ...).
    pub series: Vec<Series>,
    /// The resolved date range and interval.
    pub range: DateRange,
    /// Whether the display aggregates the whole range into one value per series.
    pub total_value: bool,
    /// The breakdown, if any.
    pub breakdown: Option<Breakdown>,
    /// Formulas; when present, only their results are returned.
    pub formulas: Vec<Formula>,
}

impl TrendsConfig {
    /// Parses a `TrendsQuery`, resolving relative dates against `now_ms`.
    pub fn parse(query: &Value, interner: &Arc<Interner>, now_ms: i64) -> Result<Self, QueryError> {
        let global = global_filters(query, interner)?;
        let series = parse_series(query, interner)?
            .into_iter()
            .enumerate()
            .map(|(i, node)| {
                let math = Math::parse(
                    node.math.as_deref(),
                    node.math_property.as_deref(),
                    &format!("series[{i}]"),
                    interner,
                )?;
                Ok(Series {
                    node: node.with_global(&global),
                    math,
                })
            })
            .collect::<Result<Vec<_>, QueryError>>()?;
        let interval = Interval::parse(query.get("interval"), "interval")?;
        let range = DateRange::resolve(query.get("dateRange"), interval, now_ms)?;
        let breakdown = Breakdown::parse(query, interner)?;
        check_compare(query)?;
        let filter = match query.get("trendsFilter") {
            None | Some(Value::Null) => None,
            Some(f @ Value::Object(_)) => Some(f),
            Some(other) => {
                return Err(QueryError::new(
                    "trendsFilter",
                    format!("expected an object, got {other}"),
                ))
            }
        };
        let total_value = filter
            .and_then(|f| f.get("display"))
            .and_then(Value::as_str)
            .is_some_and(|d| TOTAL_VALUE_DISPLAYS.contains(&d));
        let formulas = match filter {
            Some(f) => parse_formulas(f, series.len())?,
            None => Vec::new(),
        };
        Ok(TrendsConfig {
            series,
            range,
            total_value,
            breakdown,
            formulas,
        })
    }
}

/// Rejects `compareFilter.compare: true`, which Quill does not compute.
fn check_compare(query: &Value) -> Result<(), QueryError> {
    let compare = query
        .get("compareFilter")
        .and_then(|c| c.get("compare"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if compare {
        return Err(QueryError::new(
            "compareFilter.compare",
            "comparing with the previous period is not supported",
        ));
    }
    Ok(())
}

/// `formulaNodes: [{formula, custom_name}]`, else `formulas: [..]`, else legacy `formula`.
fn parse_formulas(filter: &Value, series: usize) -> Result<Vec<Formula>, QueryError> {
    let one =
        |text: &str, custom_name: Option<String>, field: &str| -> Result<Formula, QueryError> {
            Ok(Formula {
                text: text.to_string(),
                expr: Expr::parse(text, series, field)?,
                custom_name,
            })
        };
    if let Some(nodes) = filter.get("formulaNodes").and_then(Value::as_array) {
        return nodes
            .iter()
            .enumerate()
            .filter_map(|(i, node)| {
                let field = format!("trendsFilter.formulaNodes[{i}].formula");
                let text = node.get("formula").and_then(Value::as_str).unwrap_or("");
                if text.trim().is_empty() {
                    return None;
                }
                let custom = node
                    .get("custom_name")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                Some(one(text, custom, &field))
            })
            .collect();
    }
    if let Some(list) = filter.get("formulas").and_then(Value::as_array) {
        return list
            .iter()
            .enumerate()
            .filter_map(|(i, f)| {
                let text = f.as_str().unwrap_or("");
                (!text.trim().is_empty())
                    .then(|| one(text, None, &format!("trendsFilter.formulas[{i}]")))
            })
            .collect();
    }
    match filter.get("formula").and_then(Value::as_str) {
        Some(text) if !text.trim().is_empty() => Ok(vec![one(text, None, "trendsFilter.formula")?]),
        _ => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_and_names_fields() {
        let interner = Interner::new();
        let q = json!({"kind": "TrendsQuery", "series": [{"event": "a"}, {"event": "b", "math": "dau"}],
            "trendsFilter": {"display": "BoldNumber", "formulaNodes": [{"formula": "A/B", "custom_name": "ratio"}]}});
        let c = TrendsConfig::parse(&q, &interner, 0).unwrap();
        assert!(c.total_value);
        assert_eq!(c.formulas[0].custom_name.as_deref(), Some("ratio"));
        assert_eq!(c.series[1].math, Math::Dau);
        let bad = json!({"series": [{"event": "a"}], "trendsFilter": {"formula": "A+B"}});
        assert_eq!(
            TrendsConfig::parse(&bad, &interner, 0).unwrap_err().field,
            "trendsFilter.formula"
        );
        let bad = json!({"series": [{"event": "a"}], "compareFilter": {"compare": true}});
        assert_eq!(
            TrendsConfig::parse(&bad, &interner, 0).unwrap_err().field,
            "compareFilter.compare"
        );
        let bad = json!({"series": [{"event": "a"}], "interval": "year"});
        assert_eq!(
            TrendsConfig::parse(&bad, &interner, 0).unwrap_err().field,
            "interval"
        );
    }
}
