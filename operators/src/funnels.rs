//! Placeholder: being written.

use std::sync::Arc;

use quill_pipeline::graph::{BuildContext, InsightOperator};

use crate::QueryError;

/// Builds the operator for this query kind.
pub fn build(
    _query: &serde_json::Value,
    _ctx: &BuildContext,
) -> Result<Arc<dyn InsightOperator>, QueryError> {
    Err(QueryError::new("kind", "not implemented yet"))
}
