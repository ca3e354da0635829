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
