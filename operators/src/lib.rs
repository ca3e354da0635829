//! Insight kinds as operators on Quill's dataflow runtime.
//!
//! Each kind turns one PostHog query definition (`TrendsQuery`, `FunnelsQuery`,
//! `RetentionQuery`) into an [`InsightOperator`]: a per-person pass that emits contributions and
//! an aggregator that renders PostHog's result shape. See `quill_pipeline::graph::operator` for
//! the contract.
#![deny(missing_docs)]

use std::sync::Arc;

use quill_pipeline::graph::{BuildContext, InsightOperator};

pub mod error;
pub mod funnels;
pub mod query;
pub mod retention;
pub mod trends;

pub use error::QueryError;

/// Builds the operator for a query definition. Accepts a bare query (`{"kind": "TrendsQuery",
/// ...}`) or PostHog's wrapper `{"kind": "InsightVizNode", "source": {...}}`.
pub fn build(
    query: &serde_json::Value,
    ctx: &BuildContext,
) -> Result<Arc<dyn InsightOperator>, QueryError> {
    let query = match query.get("kind").and_then(|k| k.as_str()) {
        Some("InsightVizNode") | Some("DataVisualizationNode") => query
            .get("source")
            .ok_or_else(|| QueryError::new("source", "InsightVizNode needs a source query"))?,
        _ => query,
    };
    match query.get("kind").and_then(|k| k.as_str()) {
        Some("TrendsQuery") => trends::build(query, ctx),
        Some("FunnelsQuery") => funnels::build(query, ctx),
        Some("RetentionQuery") => retention::build(query, ctx),
        Some(other) => Err(QueryError::new(
            "kind",
            format!("unsupported query kind {other:?}; expected TrendsQuery, FunnelsQuery or RetentionQuery"),
        )),
        None => Err(QueryError::new("kind", "missing query kind")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use quill_pipeline::graph::Interner;

    /// 2024-03-05T12:00:00Z.
    const NOON: i64 = 1_709_640_000_000;
    const HOUR: i64 = 3_600_000;

    fn bounds_at(query: &serde_json::Value, now_ms: i64) -> Option<Vec<i64>> {
        let ctx = BuildContext {
            interner: Interner::new(),
            now_ms,
            project: 1,
        };
        build(query, &ctx).map(|op| op.resolved_bounds()).ok()?
    }

    /// The hourly re-resolution keeps an insight whose bounds did not move: each kind's bounds
    /// move with its bucket, and only then.
    #[test]
    fn resolved_bounds_move_only_with_their_bucket() {
        let node = json!({"kind": "EventsNode", "event": "$pageview"});
        let daily = [
            json!({"kind": "TrendsQuery", "dateRange": {"date_from": "-30d"}, "interval": "day", "series": [node]}),
            json!({"kind": "FunnelsQuery", "dateRange": {"date_from": "-7d"}, "series": [node, node]}),
            json!({"kind": "RetentionQuery", "retentionFilter": {"period": "Day", "totalIntervals": 7}}),
        ];
        for query in &daily {
            let at_noon = bounds_at(query, NOON);
            assert!(at_noon.is_some(), "{query}");
            assert_eq!(at_noon, bounds_at(query, NOON + 5 * HOUR), "{query}");
            assert_ne!(at_noon, bounds_at(query, NOON + 13 * HOUR), "{query}");
        }
        let hourly = json!({"kind": "TrendsQuery", "dateRange": {"date_from": "-24h"}, "interval": "hour", "series": [node]});
        assert_ne!(bounds_at(&hourly, NOON), bounds_at(&hourly, NOON + HOUR));
        let fixed = json!({"kind": "TrendsQuery", "interval": "day", "series": [node],
            "dateRange": {"date_from": "2024-01-01", "date_to": "2024-02-01"}});
        assert_eq!(
            bounds_at(&fixed, NOON),
            bounds_at(&fixed, NOON + 40 * 24 * HOUR)
        );
    }
}
