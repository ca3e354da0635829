//! `/api/projects/{id}/hog_functions`: transformation CRUD in PostHog's shape, each function's
//! logs, and `/api/hog_function_templates`. The logic lives in `quill-transforms`
//! ([`HogFunctions`]); these handlers map requests and errors.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use quill_transforms::{HogFunctions, RegistryError};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiError, AppState};

/// Handlers' view of the hog functions.
pub type Functions = Arc<HogFunctions>;

/// A failed hog function request.
#[derive(Debug)]
pub enum HogApiError {
    /// The shared API failures.
    Api(ApiError),
    /// From the registry.
    Registry(RegistryError),
}

impl From<ApiError> for HogApiError {
    fn from(e: ApiError) -> Self {
        HogApiError::Api(e)
    }
}

impl From<RegistryError> for HogApiError {
    fn from(e: RegistryError) -> Self {
        HogApiError::Registry(e)
    }
}

impl IntoResponse for HogApiError {
    fn into_response(self) -> Response {
        match self {
            HogApiError::Api(e) => e.into_response(),
            HogApiError::Registry(RegistryError::Invalid(e)) => {
                let body = json!({
                    "type": "validation_error",
                    "code": "invalid_input",
                    "detail": e.message,
                    "attr": if e.attr.is_empty() { Value::Null } else { Value::String(e.attr) },
                    "line": e.line,
                    "column": e.column,
                });
                (StatusCode::BAD_REQUEST, Json(body)).into_response()
            }
            HogApiError::Registry(RegistryError::NotFound(id)) => {
                ApiError::not_found(format!("hog function {id}")).into_response()
            }
            HogApiError::Registry(RegistryError::Store(e)) => ApiError::from(e).into_response(),
        }
    }
}

fn json_body(bytes: &[u8]) -> Result<Value, HogApiError> {
    Ok(super::json_object_body(bytes)?)
}

fn function_id(raw: &str) -> Result<u64, HogApiError> {
    raw.parse().map_err(|_| {
        HogApiError::Api(ApiError::invalid(
            "id",
            format!("`{raw}` is not a hog function id"),
        ))
    })
}

/// `GET /api/projects/{id}/hog_functions`
pub async fn list(
    State(state): State<Arc<AppState>>,
    Path(project): Path<String>,
) -> Result<Json<Value>, HogApiError> {
    let project = state.project(&project)?;
    let results = state.hog_functions.list(project)?;
    Ok(super::unpaginated(results))
}

/// `POST /api/projects/{id}/hog_functions`
pub async fn create(
    State(state): State<Arc<AppState>>,
    Path(project): Path<String>,
    body: Bytes,
) -> Result<Response, HogApiError> {
    let project = state.project(&project)?;
    let body = json_body(&body)?;
    let made = state.hog_functions.create(project, &body)?;
    Ok((StatusCode::CREATED, Json(made)).into_response())
}

/// `GET /api/projects/{id}/hog_functions/{function_id}`
pub async fn get_one(
    State(state): State<Arc<AppState>>,
    Path((project, id)): Path<(String, String)>,
) -> Result<Json<Value>, HogApiError> {
    let project = state.project(&project)?;
    Ok(Json(state.hog_functions.get(project, function_id(&id)?)?))
}

/// `PATCH /api/projects/{id}/hog_functions/{function_id}`: each field sent replaces the
/// stored one; `{"deleted": true}` deletes.
pub async fn update(
    State(state): State<Arc<AppState>>,
    Path((project, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, HogApiError> {
    let project = state.project(&project)?;
    let id = function_id(&id)?;
    let patch = json_body(&body)?;
    Ok(Json(state.hog_functions.update(project, id, &patch)?))
}

/// `DELETE /api/projects/{id}/hog_functions/{function_id}`: a soft delete, 204.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Path((project, id)): Path<(String, String)>,
) -> Result<StatusCode, HogApiError> {
    let project = state.project(&project)?;
    state.hog_functions.delete(project, function_id(&id)?)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Query of the logs endpoint.
#[derive(Debug, Deserialize)]
pub struct LogsQuery {
    limit: Option<usize>,
}

/// `GET /api/projects/{id}/hog_functions/{function_id}/logs`: newest first.
pub async fn logs(
    State(state): State<Arc<AppState>>,
    Path((project, id)): Path<(String, String)>,
    Query(query): Query<LogsQuery>,
) -> Result<Json<Value>, HogApiError> {
    let project = state.project(&project)?;
    let limit = query.limit.unwrap_or(100).clamp(1, 500);
    let results = state
        .hog_functions
        .logs(project, function_id(&id)?, limit)?;
    Ok(Json(json!({"results": results})))
}

/// `GET /api/hog_function_templates`
pub async fn templates() -> Json<Value> {
    let results: Vec<Value> = quill_transforms::templates::all()
        .iter()
        .map(|t| t.to_json())
        .collect();
    super::unpaginated(results)
}
