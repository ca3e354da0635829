//! `POST /api/projects/{id}/query`: PostHog's query endpoint for insight kinds.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};

use super::insights::iso_us;
use super::{json_object_body, ApiError, AppState};

pub async fn run(
    State(state): State<Arc<AppState>>,
    Path(project): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let project = state.project(&project)?;
    let body = json_object_body(&body)?;
    let Some(query) = body.get("query").filter(|q| q.is_object()) else {
        return Err(ApiError::invalid("query", "the body needs a query object"));
    };
    let op = state.insights.build(project, query).map_err(|e| {
        let e = e.within("query");
        ApiError::invalid_at(e.field.clone(), e.to_string())
    })?;
    let answer = state.insights.query(op).await.map_err(|e| {
        tracing::warn!(error = %e, "a query failed");
        ApiError::unavailable(e.to_string())
    })?;
    let kind = query
        .get("source")
        .and_then(|s| s.get("kind"))
        .or_else(|| query.get("kind"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut response = json!({
        "results": *answer.result,
        "is_cached": false,
        "last_refresh": iso_us(answer.refreshed_at_us),
        "next_allowed_client_refresh": iso_us(answer.refreshed_at_us),
        "cache_key": format!("quill_{}_{}", project, answer.offset),
        "timezone": "UTC",
        "hogql": null,
        "error": null,
        "timings": [],
        "modifiers": {},
        "query_status": null,
        "log_offset": answer.offset,
    });
    if kind == "TrendsQuery" {
        response["hasMore"] = json!(false);
    }
    Ok(Json(response))
}
