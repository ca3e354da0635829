//! `GET/POST /api/projects`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use quill_pipeline::event::format_timestamp;
use quill_pipeline::projects::{self, Project};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiError, AppState};

fn render(p: &Project) -> Value {
    json!({"id": p.id, "name": p.name, "api_token": p.api_token, "created_at": format_timestamp(p.created_at_us)})
}

pub async fn list(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let all = projects::list(&state.store)?;
    Ok(Json(
        json!({"results": all.iter().map(render).collect::<Vec<_>>()}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    name: String,
}

pub async fn create(
    State(state): State<Arc<AppState>>,
    body: Result<Json<CreateProject>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(body) = body.map_err(|e| ApiError::invalid("name", e.body_text()))?;
    if body.name.trim().is_empty() {
        return Err(ApiError::invalid("name", "the project name is empty"));
    }
    let project = projects::create(&state.store, body.name.trim())?;
    state.registry.reload(&state.store)?;
    Ok((StatusCode::CREATED, Json(render(&project))))
}
