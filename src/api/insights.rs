//! `/api/projects/{id}/insights`: maintained insights, their results and a live stream of them.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream::{self, Stream};
use quill_pipeline::definitions::Definition;
use quill_pipeline::event::ProjectId;
use quill_pipeline::graph::Published;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use super::{json_object_body, ApiError, AppState};
use crate::insights;

/// Longest a `refresh=blocking` read waits for the result to include earlier writes.
const BLOCKING_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Deserialize)]
pub struct ReadParams {
    refresh: Option<String>,
}

/// PostHog's `short_id`: a stable short string per insight.
fn short_id(project: ProjectId, id: u64) -> String {
    format!(
        "{:08x}",
        crate::insights::engine_key(project, id).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32
    )
}

pub fn iso_us(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
        .unwrap_or_default()
}

/// An insight as the API returns it. The result goes in as the text it was serialized to
/// once when published: copying and serializing the document per read made reads of large
/// results cost more than the 1 ms they are meant to take.
#[derive(Serialize)]
struct Document<'a> {
    id: u64,
    short_id: String,
    name: &'a Value,
    description: &'a Value,
    query: &'a Value,
    result: Option<&'a RawValue>,
    last_refresh: Option<String>,
    log_offset: Option<u64>,
    is_cached: bool,
    timezone: &'static str,
    created_at: String,
    last_modified_at: String,
    deleted: bool,
}

fn document<'a>(
    project: ProjectId,
    def: &'a Definition,
    published: Option<&'a Published>,
) -> Document<'a> {
    Document {
        id: def.id,
        short_id: short_id(project, def.id),
        name: def.body.get("name").unwrap_or(&Value::Null),
        description: def.body.get("description").unwrap_or(&Value::Null),
        query: insights::stored_query(&def.body),
        result: published.map(Published::result_json),
        last_refresh: published.map(|p| iso_us(p.refreshed_at_us)),
        log_offset: published.map(|p| p.offset),
        is_cached: false,
        timezone: "UTC",
        created_at: iso_us(def.created_at_us),
        last_modified_at: iso_us(def.updated_at_us),
        deleted: def.deleted,
    }
}

/// One frame of an insight's live stream.
#[derive(Serialize)]
struct StreamFrame<'a> {
    id: u64,
    result: &'a RawValue,
    last_refresh: String,
    log_offset: u64,
}

fn find(state: &AppState, project: ProjectId, id: &str) -> Result<Arc<Definition>, ApiError> {
    let id: u64 = id
        .parse()
        .map_err(|_| ApiError::invalid("id", format!("`{id}` is not an insight id")))?;
    state
        .insights
        .definition(project, id)
        .ok_or_else(|| ApiError::not_found(format!("insight {id}")))
}

pub async fn create(
    State(state): State<Arc<AppState>>,
    Path(project): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let project = state.project(&project)?;
    let mut body = json_object_body(&body)?;
    let Some(query) = body.get("query").filter(|q| q.is_object()) else {
        return Err(ApiError::invalid(
            "query",
            "an insight needs a query object",
        ));
    };
    let query = query.clone();
    if let Some(obj) = body.as_object_mut() {
        obj.insert("query".into(), query);
        obj.entry("name").or_insert(Value::Null);
    }
    let def = insights::create(&state.insights, project, body)?
        .map_err(|e| ApiError::invalid_at(e.field.clone(), e.to_string()))?;
    let published = state.insights.result(project, def.id);
    Ok((
        StatusCode::CREATED,
        Json(document(project, &def, published.as_ref())),
    )
        .into_response())
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    Path(project): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let project = state.project(&project)?;
    let defs = state.insights.definitions(project);
    let results: Vec<Value> = defs
        .iter()
        .map(|d| {
            let published = state.insights.result(project, d.id);
            serde_json::to_value(document(project, d, published.as_ref())).unwrap_or_default()
        })
        .collect();
    Ok(super::unpaginated(results))
}

pub async fn get_one(
    State(state): State<Arc<AppState>>,
    Path((project, id)): Path<(String, String)>,
    Query(params): Query<ReadParams>,
) -> Result<Response, ApiError> {
    let project = state.project(&project)?;
    let def = find(&state, project, &id)?;
    let blocking = params
        .refresh
        .as_deref()
        .is_some_and(|r| matches!(r, "blocking" | "force_blocking" | "true"));
    let published = if blocking {
        let target = state.log.end();
        state.insights.wait_fed(BLOCKING_WAIT).await;
        state
            .insights
            .result_at(project, def.id, target, BLOCKING_WAIT)
            .await
    } else {
        state.insights.result(project, def.id)
    };
    Ok(Json(document(project, &def, published.as_ref())).into_response())
}

pub async fn delete(
    State(state): State<Arc<AppState>>,
    Path((project, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let project = state.project(&project)?;
    let def = find(&state, project, &id)?;
    insights::delete(&state.insights, project, def.id)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Server-sent events: the current result, then a new one each time it changes.
pub async fn stream(
    State(state): State<Arc<AppState>>,
    Path((project, id)): Path<(String, String)>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let project = state.project(&project)?;
    let id = find(&state, project, &id)?.id;
    let changes = state.insights.subscribe();
    let closing = state.insights.closing();
    let start = (state, changes, closing, None::<(i64, u64)>);
    let events = stream::unfold(
        start,
        move |(state, mut changes, mut closing, last)| async move {
            loop {
                if *closing.borrow() {
                    return None;
                }
                let current = state.insights.result(project, id);
                let stamp = current.as_ref().map(|p| (p.refreshed_at_us, p.offset));
                if let Some(p) = current.filter(|_| stamp != last) {
                    let frame = StreamFrame {
                        id,
                        result: p.result_json(),
                        last_refresh: iso_us(p.refreshed_at_us),
                        log_offset: p.offset,
                    };
                    let data = serde_json::to_string(&frame).unwrap_or_default();
                    let event = Event::default().event("result").data(data);
                    return Some((Ok(event), (state, changes, closing, stamp)));
                }
                tokio::select! {
                    changed = changes.changed() => if changed.is_err() { return None },
                    _ = closing.changed() => return None,
                }
            }
        },
    );
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
