//! `GET /api/projects/{id}/events`: newest first, filtered, paginated through `next`.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::Json;
use quill_pipeline::event::{format_timestamp, ProjectId, Record};
use quill_pipeline::events_index::{self, EventQuery};
use quill_pipeline::identity::{person_uuid, PersonReader};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{parse_time_param, ApiError, AppState};

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 10_000;

#[derive(Debug, Deserialize, Default)]
pub struct EventsParams {
    distinct_id: Option<String>,
    person_id: Option<String>,
    event: Option<String>,
    after: Option<String>,
    before: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
    #[serde(rename = "personal_api_key")]
    _key: Option<String>,
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    Path(project): Path<String>,
    Query(params): Query<EventsParams>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let project = state.project(&project)?;
    state.wait_fresh().await;
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let persons = PersonReader::open(&state.store)?;
    let distinct_ids = match (&params.distinct_id, &params.person_id) {
        (Some(did), _) => Some(vec![did.clone()]),
        (None, Some(person)) => Some(person_distinct_ids(persons.as_ref(), project, person)?),
        (None, None) => None,
    };
    let cursor = params.cursor.as_deref().map(parse_cursor).transpose()?;
    let query = EventQuery {
        project,
        distinct_ids,
        event: params.event.clone().filter(|e| !e.is_empty()),
        after: parse_time_param("after", params.after.as_deref())?,
        before: parse_time_param("before", params.before.as_deref())?,
        cursor,
        limit,
    };
    let mut hits = events_index::query(&state.index, &query)?;
    let more = hits.len() > limit;
    hits.truncate(limit);
    let mut reader = state.log.reader();
    let mut results = Vec::with_capacity(hits.len());
    for hit in &hits {
        let record = reader
            .read_at(hit.offset)
            .map_err(|e| ApiError::unavailable(format!("reading the event log: {e}")))?;
        let Record::Event(event) = record else {
            continue;
        };
        // The index keys distinct ids by hash; a colliding id's event is not this one's.
        if let Some(dids) = &query.distinct_ids {
            if !dids.contains(&event.distinct_id) {
                continue;
            }
        }
        let person = match &persons {
            Some(p) => p
                .person_id(project, &event.distinct_id)?
                .map(|id| person_uuid(project, id).to_string()),
            None => None,
        };
        results.push(json!({
            "id": event.uuid().to_string(),
            "uuid": event.uuid().to_string(),
            "event": event.event,
            "distinct_id": event.distinct_id,
            "person_id": person,
            "properties": serde_json::from_str::<Value>(&event.properties).unwrap_or(Value::Null),
            "timestamp": format_timestamp(event.timestamp_us),
        }));
    }
    let next = match (more, hits.last()) {
        (true, Some(last)) => Some(next_url(
            &headers,
            project,
            &params,
            last.timestamp_us,
            last.offset,
        )),
        _ => None,
    };
    Ok(Json(json!({"results": results, "next": next})))
}

/// A person's distinct ids from its uuid (or numeric id). An unknown person has none.
fn person_distinct_ids(
    persons: Option<&PersonReader>,
    project: ProjectId,
    raw: &str,
) -> Result<Vec<String>, ApiError> {
    let Some(persons) = persons else {
        return Ok(Vec::new());
    };
    let person = match (Uuid::parse_str(raw), raw.parse::<u64>()) {
        (Ok(uuid), _) => persons.by_uuid(project, uuid)?,
        (_, Ok(id)) => persons.by_id(project, id)?,
        _ => {
            return Err(ApiError::invalid(
                "person_id",
                format!("`{raw}` is not a person uuid or id"),
            ))
        }
    };
    Ok(person.map(|p| p.distinct_ids).unwrap_or_default())
}

fn parse_cursor(raw: &str) -> Result<(i64, u64), ApiError> {
    let bad = || {
        ApiError::invalid(
            "cursor",
            "malformed page cursor; use the `next` URL as given",
        )
    };
    let (ts, offset) = raw.split_once('_').ok_or_else(bad)?;
    Ok((
        ts.parse().map_err(|_| bad())?,
        offset.parse().map_err(|_| bad())?,
    ))
}

fn next_url(
    headers: &HeaderMap,
    project: ProjectId,
    p: &EventsParams,
    ts: i64,
    offset: u64,
) -> String {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let mut pairs: Vec<(&str, String)> = Vec::new();
    for (k, v) in [
        ("distinct_id", &p.distinct_id),
        ("person_id", &p.person_id),
        ("event", &p.event),
        ("after", &p.after),
        ("before", &p.before),
    ] {
        if let Some(v) = v {
            pairs.push((k, v.clone()));
        }
    }
    if let Some(limit) = p.limit {
        pairs.push(("limit", limit.to_string()));
    }
    pairs.push(("cursor", format!("{ts}_{offset}")));
    let query = serde_urlencoded_pairs(&pairs);
    format!("http://{host}/api/projects/{project}/events?{query}")
}

fn serde_urlencoded_pairs(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}
