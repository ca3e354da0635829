//! `GET /api/projects/{id}/persons`, `GET|DELETE /api/projects/{id}/persons/{uuid}`.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use quill_pipeline::event::{format_timestamp, Record};
use quill_pipeline::identity::{Person, PersonReader};
use quill_pipeline::log::AppendBatch;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{ApiError, AppState};

const DEFAULT_LIMIT: usize = 100;

fn render(p: &Person) -> Value {
    json!({
        "id": p.id,
        "uuid": p.uuid.to_string(),
        "distinct_ids": p.distinct_ids,
        "properties": p.properties,
        "created_at": format_timestamp(p.created_at_us),
        "is_identified": p.is_identified,
    })
}

#[derive(Debug, Deserialize)]
pub struct ListParams {
    distinct_id: Option<String>,
    limit: Option<usize>,
    /// Continue after this person id (the last one of the previous page).
    after_id: Option<u64>,
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    Path(project): Path<String>,
    Query(params): Query<ListParams>,
    headers: axum::http::HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let project = state.project(&project)?;
    state.wait_fresh().await;
    let Some(persons) = PersonReader::open(&state.store)? else {
        return Ok(Json(json!({"results": [], "next": null})));
    };
    if let Some(did) = &params.distinct_id {
        let found = persons.by_distinct_id(project, did)?;
        return Ok(Json(
            json!({"results": found.iter().map(render).collect::<Vec<_>>(), "next": null}),
        ));
    }
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, 10_000);
    let page = persons.list(project, params.after_id.unwrap_or(0), limit + 1)?;
    let next = (page.len() > limit).then(|| {
        let host = headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        format!(
            "http://{host}/api/projects/{project}/persons?limit={limit}&after_id={}",
            page[limit - 1].id
        )
    });
    let results: Vec<Value> = page.iter().take(limit).map(render).collect();
    Ok(Json(json!({"results": results, "next": next})))
}

/// A person by uuid, or 404.
fn find_person(
    state: &AppState,
    project: quill_pipeline::event::ProjectId,
    uuid: Uuid,
) -> Result<Person, ApiError> {
    PersonReader::open(&state.store)?
        .map(|p| p.by_uuid(project, uuid))
        .transpose()?
        .flatten()
        .ok_or_else(|| ApiError::not_found(format!("person {uuid}")))
}

fn parse_uuid(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw)
        .map_err(|_| ApiError::invalid("uuid", format!("`{raw}` is not a person uuid")))
}

pub async fn get_one(
    State(state): State<Arc<AppState>>,
    Path((project, uuid)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let project = state.project(&project)?;
    let uuid = parse_uuid(&uuid)?;
    state.wait_fresh().await;
    let person = find_person(&state, project, uuid)?;
    Ok(Json(render(&person)))
}

#[derive(Debug, Deserialize)]
pub struct DeleteParams {
    #[serde(default)]
    delete_events: bool,
}

/// Deletion is a log record, so every consumer (and every replay) applies it in order.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Path((project, uuid)): Path<(String, String)>,
    Query(params): Query<DeleteParams>,
) -> Result<StatusCode, ApiError> {
    let project = state.project(&project)?;
    let uuid = parse_uuid(&uuid)?;
    state.wait_fresh().await;
    let person = find_person(&state, project, uuid)?;
    let mut batch = AppendBatch::new();
    let push = |batch: &mut AppendBatch, record: Record| {
        batch
            .push(&record)
            .map_err(|e| ApiError::unavailable(format!("encoding the deletion: {e}")))
    };
    push(
        &mut batch,
        Record::PersonDeleted {
            project,
            person_uuid: *uuid.as_bytes(),
        },
    )?;
    if params.delete_events {
        let before_offset = state.log.end();
        push(
            &mut batch,
            Record::EventsDeleted {
                project,
                distinct_ids: person.distinct_ids.clone(),
                before_offset,
            },
        )?;
    }
    state
        .log
        .append(batch)
        .await
        .map_err(|e| ApiError::unavailable(format!("the event log is unavailable: {e}")))?;
    state.wait_fresh().await;
    tracing::info!(project, person = %uuid, delete_events = params.delete_events, "person deleted");
    Ok(StatusCode::NO_CONTENT)
}
