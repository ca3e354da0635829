//! HTTP wiring of feature flags: `/flags` and `/decide` (public, token in the body), and the
//! local-evaluation payload (`/api/feature_flag/local_evaluation`, `/flags/definitions`, under
//! the personal key). Evaluation, request parsing and response shapes live in `quill-flags`.

use quill_sources::capture::cors_headers;
use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use quill_flags::request::FlagsRequest;
use quill_flags::response::{ResponseBody, ResponseMeta, ResponseShape};
use quill_flags::RequestError;
use quill_pipeline::definitions;
use quill_pipeline::event::ProjectId;
use quill_pipeline::identity::{get_group, PersonReader};
use quill_pipeline::store::StoreError;
use quill_sources::capture::decode::{self, Compression, RawPayload};
use serde_json::{json, Map, Value};

use crate::api::{ApiError, AppState};

/// `/flags` and `/decide`, with and without a trailing slash; public.
pub fn public_router(state: Arc<AppState>) -> Router {
    let flags = |s, q, m, h, b| handle(s, q, m, h, b, Endpoint::Flags);
    let decide = |s, q, m, h, b| handle(s, q, m, h, b, Endpoint::Decide);
    Router::new()
        .route("/flags", any(flags))
        .route("/flags/", any(flags))
        .route("/decide", any(decide))
        .route("/decide/", any(decide))
        .with_state(state)
}

/// The local-evaluation routes; the caller puts them behind the personal key.
pub fn local_evaluation_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/feature_flag/local_evaluation", get(local_evaluation))
        .route("/api/feature_flag/local_evaluation/", get(local_evaluation))
        .route("/flags/definitions", get(local_evaluation))
        .route("/flags/definitions/", get(local_evaluation))
}

#[derive(Clone, Copy)]
enum Endpoint {
    Flags,
    Decide,
}

/// A refused `/flags` request, in capture's error shape.
struct FlagsError {
    status: StatusCode,
    code: &'static str,
    detail: String,
}

impl FlagsError {
    fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        FlagsError {
            status,
            code,
            detail: detail.into(),
        }
    }
}

impl From<RequestError> for FlagsError {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::MissingToken => {
                FlagsError::new(StatusCode::UNAUTHORIZED, "no_token", e.to_string())
            }
            RequestError::MissingDistinctId => FlagsError::new(
                StatusCode::BAD_REQUEST,
                "missing_distinct_id",
                e.to_string(),
            ),
            RequestError::InvalidField { .. } => {
                FlagsError::new(StatusCode::BAD_REQUEST, "invalid_payload", e.to_string())
            }
        }
    }
}

impl From<StoreError> for FlagsError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "state store failed during a flags request");
        FlagsError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        )
    }
}

impl IntoResponse for FlagsError {
    fn into_response(self) -> Response {
        let kind = match self.status {
            StatusCode::UNAUTHORIZED => "authentication_error",
            StatusCode::BAD_REQUEST => "validation_error",
            _ => "server_error",
        };
        let body = json!({"type": kind, "code": self.code, "detail": self.detail});
        (self.status, Json(body)).into_response()
    }
}

async fn handle(
    State(state): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
    endpoint: Endpoint,
) -> Response {
    let cors = cors_headers(&headers);
    let mut response = match method {
        Method::OPTIONS => StatusCode::OK.into_response(),
        Method::GET | Method::POST => {
            // Answering reads redb's cached pages, which is quicker than a hop to the blocking
            // pool. Only a request that may record continuity overrides (a durable write) is
            // sent there; one whose body we cannot read cheaply goes too.
            let work = if may_write(&params, &headers, &body) {
                tokio::task::spawn_blocking(move || {
                    answer(&state, &params, &headers, &body, endpoint)
                })
                .await
            } else {
                Ok(answer(&state, &params, &headers, &body, endpoint))
            };
            match work {
                Ok(Ok(body)) => (
                    [(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    )],
                    body,
                )
                    .into_response(),
                Ok(Err(error)) => {
                    tracing::debug!(status = error.status.as_u16(), detail = %error.detail, "flags request refused");
                    error.into_response()
                }
                Err(join) => {
                    tracing::error!(error = %join, "a flags request panicked");
                    FlagsError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "server_error",
                        "internal error",
                    )
                    .into_response()
                }
            }
        }
        _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    };
    response.headers_mut().extend(cors);
    response
}

/// Whether a request may carry `$anon_distinct_id`, and so write hash-key overrides.
fn may_write(params: &HashMap<String, String>, headers: &HeaderMap, body: &[u8]) -> bool {
    const MARK: &[u8] = b"anon_distinct_id";
    let opaque = headers.contains_key(header::CONTENT_ENCODING)
        || params.contains_key("compression")
        || params.contains_key("data");
    opaque || body.windows(MARK.len()).any(|w| w == MARK)
}

fn answer(
    state: &AppState,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
    endpoint: Endpoint,
) -> Result<Vec<u8>, FlagsError> {
    let bad = |detail: String| FlagsError::new(StatusCode::BAD_REQUEST, "invalid_payload", detail);
    let compression = match params.get("compression") {
        Some(v) => Compression::parse(v).map_err(|e| bad(e.to_string()))?,
        None => None,
    };
    let header_str = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let raw = RawPayload {
        data_param: params.get("data").map(String::as_str),
        body,
        content_type: header_str(header::CONTENT_TYPE),
        content_encoding: header_str(header::CONTENT_ENCODING),
        compression,
        legacy: matches!(endpoint, Endpoint::Decide),
    };
    let text = decode::decode(&raw).map_err(|e| bad(e.to_string()))?;
    let json: Value = serde_json::from_str(&text)
        .map_err(|e| bad(format!("the payload is not valid JSON: {e}")))?;
    let req = FlagsRequest::from_value(&json)?;
    let project = state
        .registry
        .project_for_token(&req.token)
        .ok_or_else(|| {
            FlagsError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the project token is not valid",
            )
        })?;
    let version = params.get("v").and_then(|v| v.parse::<u32>().ok());
    let shape = match endpoint {
        Endpoint::Flags => ResponseShape::for_flags(version),
        Endpoint::Decide => ResponseShape::for_decide(version),
    };
    let compiled = state.flags.get(&state.store, project)?;
    let set = &compiled.set;

    let mut errors = false;
    let mut note = |what: &str, e: StoreError| {
        tracing::warn!(error = %e, what, "flag evaluation without stored data");
        errors = true;
    };
    let needs_lookups = !req.disable_flags && !set.is_empty();
    let person = if needs_lookups {
        match PersonReader::open(&state.store).and_then(|r| {
            r.map(|r| r.by_distinct_id(project, &req.distinct_id))
                .transpose()
        }) {
            Ok(p) => p.flatten(),
            Err(e) => {
                note("person", e);
                None
            }
        }
    } else {
        None
    };
    let mut stored_groups: HashMap<String, Map<String, Value>> = HashMap::new();
    if needs_lookups {
        for (group_type, key) in &req.groups {
            match get_group(&state.store, project, group_type, key) {
                Ok(Some(g)) => {
                    stored_groups.insert(group_type.clone(), g.properties);
                }
                Ok(None) => {}
                Err(e) => note("group", e),
            }
        }
    }
    let overrides = if needs_lookups && compiled.has_continuity {
        match continuity_overrides(state, project, &req, person.as_ref().map(|p| p.id), set) {
            Ok(o) => o,
            Err(e) => {
                note("hash key overrides", e);
                HashMap::new()
            }
        }
    } else {
        HashMap::new()
    };

    let groups = req.group_properties_view(|group_type, _key| stored_groups.get(group_type));
    let mut ctx = req.context(person.as_ref().map(|p| &p.properties), &groups);
    if !overrides.is_empty() {
        ctx.hash_key_overrides = Some(&overrides);
    }
    let evaluations = if req.disable_flags {
        Vec::new()
    } else {
        set.evaluate_all(&ctx, req.flag_keys.as_deref())
    };
    let request_id = uuid::Uuid::new_v4().to_string();
    let meta = ResponseMeta {
        request_id: &request_id,
        evaluated_at_ms: chrono::Utc::now().timestamp_millis(),
        errors_while_computing_flags: errors,
    };
    let wants_config = matches!(endpoint, Endpoint::Decide)
        || params
            .get("config")
            .is_some_and(|v| v == "true" || v == "1");
    let config = wants_config.then(remote_config);
    let body = ResponseBody {
        shape,
        evaluations: &evaluations,
        meta: &meta,
        extra: config,
    };
    body.to_vec().map_err(|e| {
        FlagsError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            format!("could not write the response: {e}"),
        )
    })
}

/// Stored hash-key overrides of the person (or, before the person exists, of the distinct
/// id), after recording new ones when the request carries `anon_distinct_id`.
fn continuity_overrides(
    state: &AppState,
    project: ProjectId,
    req: &FlagsRequest,
    person_id: Option<u64>,
    set: &quill_flags::FlagSet,
) -> Result<HashMap<String, String>, StoreError> {
    let by_id = format!("d:{}", req.distinct_id);
    let by_person = person_id.map(|id| format!("p:{id}"));
    let mut existing = definitions::hash_key_overrides(&state.store, project, &by_id)?;
    if let Some(p) = &by_person {
        existing.extend(definitions::hash_key_overrides(&state.store, project, p)?);
    }
    if let Some(anon) = req.anon_distinct_id.as_deref() {
        let to_write: Vec<(&str, &str)> = set.continuity_overrides_to_write(&existing, anon);
        if !to_write.is_empty() {
            let subject = by_person.as_deref().unwrap_or(&by_id);
            definitions::write_hash_key_overrides(&state.store, project, subject, &to_write)?;
            // Under the distinct id too, so the answer holds before the person exists.
            if by_person.is_some() {
                definitions::write_hash_key_overrides(&state.store, project, &by_id, &to_write)?;
            }
            for (flag, key) in to_write {
                existing.insert(flag.to_string(), key.to_string());
            }
        }
    }
    Ok(existing)
}

/// The remote-config keys browsers read next to the flags: everything off. Built once.
fn remote_config() -> &'static Map<String, Value> {
    static CONFIG: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    CONFIG.get_or_init(|| {
        let value = json!({
            "config": {"enable_collect_everything": true},
            "supportedCompression": ["gzip", "gzip-js"],
            "sessionRecording": false,
            "toolbarParams": {},
            "isAuthenticated": false,
            "siteApps": [],
            "capturePerformance": false,
            "autocapture_opt_out": false,
            "autocaptureExceptions": false,
            "heatmaps": false,
            "surveys": false,
            "defaultIdentifiedOnly": true,
        });
        match value {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    })
}

/// `GET /api/feature_flag/local_evaluation?token=...&send_cohorts` and `GET
/// /flags/definitions?token=...`: the payload, with a strong ETag and 304 on `If-None-Match`.
async fn local_evaluation(
    State(state): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let token = params
        .get("token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::invalid("token", "send the project token: ?token=phc_..."))?;
    let project = state
        .registry
        .project_for_token(token)
        .ok_or_else(|| ApiError::unauthorized("the project token is not valid"))?;
    let send_cohorts = params.contains_key("send_cohorts");
    let compiled = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || state.flags.get(&state.store, project))
            .await
            .map_err(|e| ApiError::unavailable(e.to_string()))??
    };
    let (body, etag) = compiled.local_evaluation(send_cohorts);
    let etag_header =
        HeaderValue::from_str(etag).map_err(|e| ApiError::unavailable(e.to_string()))?;
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if matches {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag_header)]).into_response());
    }
    Ok((
        StatusCode::OK,
        [
            (header::ETAG, etag_header),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
        ],
        body.clone(),
    )
        .into_response())
}
