//! The HTTP API under `/api`, authenticated with a personal API key (`Bearer phx_...`).

mod events;
pub mod feature_flags;
pub mod hog_functions;
pub mod insights;
mod persons;
mod projects;
mod query;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use quill_pipeline::event::ProjectId;
use quill_pipeline::log::Log;
use quill_pipeline::projects::Registry;
use quill_pipeline::store::{Store, StoreError};
use serde_json::json;
use tokio::sync::watch;

/// What API handlers share.
pub struct AppState {
    pub store: Arc<Store>,
    /// The events index (its own file; see `DataDir::index_file`).
    pub index: Arc<Store>,
    pub registry: Arc<Registry>,
    pub log: Log,
    /// The materializer's cursor: persons reflect the log below it.
    pub progress: watch::Receiver<u64>,
    /// The indexer's cursor: the events index reflects the log below it.
    pub indexed: watch::Receiver<u64>,
    /// Each project's compiled feature flags.
    pub flags: Arc<feature_flags::FlagCache>,
    /// Hog transformations: definitions, logs, and the live chain capture runs.
    pub hog_functions: hog_functions::Functions,
    /// Maintained insights and ad hoc queries.
    pub insights: Arc<crate::insights::Insights>,
}

/// Longest a read waits for derived state to reflect what was acknowledged before it.
const FRESHNESS_WAIT: Duration = Duration::from_secs(10);

impl AppState {
    /// Waits until persons and the events index include every event acknowledged before this
    /// call, so that a client reads its own writes. Gives up quietly after a bound.
    pub async fn wait_fresh(&self) {
        let target = self.log.end();
        let (mut progress, mut indexed) = (self.progress.clone(), self.indexed.clone());
        let reached = tokio::time::timeout(FRESHNESS_WAIT, async {
            let persons = progress.wait_for(|&cursor| cursor >= target).await.is_ok();
            let index = indexed.wait_for(|&cursor| cursor >= target).await.is_ok();
            persons && index
        })
        .await;
        if reached.is_err() {
            tracing::warn!(
                target,
                "derived state is lagging; answering with what it has"
            );
        }
    }

    /// The project a path names (`1`, or `@current` for project 1).
    pub fn project(&self, raw: &str) -> Result<ProjectId, ApiError> {
        let id = if raw == "@current" {
            1
        } else {
            raw.parse::<ProjectId>().map_err(|_| {
                ApiError::invalid("project_id", format!("`{raw}` is not a project id"))
            })?
        };
        self.registry
            .project(id)
            .map(|p| p.id)
            .ok_or_else(|| ApiError::not_found(format!("project {id}")))
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/api/projects", get(projects::list).post(projects::create))
        .route("/api/projects/{project}/events", get(events::list))
        .route("/api/projects/{project}/persons", get(persons::list))
        .route(
            "/api/projects/{project}/persons/{uuid}",
            get(persons::get_one).delete(persons::delete),
        )
        .route(
            "/api/projects/{project}/feature_flags",
            get(feature_flags::list).post(feature_flags::create),
        )
        .route(
            "/api/projects/{project}/feature_flags/{id}",
            get(feature_flags::get_one)
                .patch(feature_flags::update)
                .delete(feature_flags::delete),
        )
        .route(
            "/api/projects/{project}/hog_functions",
            get(hog_functions::list).post(hog_functions::create),
        )
        .route(
            "/api/projects/{project}/hog_functions/{id}",
            get(hog_functions::get_one)
                .patch(hog_functions::update)
                .delete(hog_functions::delete),
        )
        .route(
            "/api/projects/{project}/hog_functions/{id}/logs",
            get(hog_functions::logs),
        )
        .route("/api/hog_function_templates", get(hog_functions::templates))
        .route("/api/projects/{project}/query", post(query::run))
        .route(
            "/api/projects/{project}/insights",
            get(insights::list).post(insights::create),
        )
        .route(
            "/api/projects/{project}/insights/{id}",
            get(insights::get_one).delete(insights::delete),
        )
        .route(
            "/api/projects/{project}/insights/{id}/stream",
            get(insights::stream),
        )
        .merge(crate::flags_http::local_evaluation_routes())
        .layer(middleware::from_fn_with_state(
            state.clone(),
            require_personal_key,
        ))
        .layer(middleware::from_fn(server_timing))
        .with_state(state)
}

/// Says in a `Server-Timing` header how long Quill spent on the request, from routing to the
/// response's head. What a client measures beyond that is the network and, on a busy machine,
/// the wait for a core: the two differ by milliseconds when streaming saturates two cores.
async fn server_timing(request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let mut response = next.run(request).await;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if let Ok(value) = header::HeaderValue::from_str(&format!("app;dur={ms:.3}")) {
        response
            .headers_mut()
            .insert(header::HeaderName::from_static("server-timing"), value);
    }
    response
}

async fn require_personal_key(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let from_header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let from_query = request.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|pair| pair.strip_prefix("personal_api_key="))
    });
    match from_header.or(from_query) {
        Some(key) if state.registry.is_personal_key(key) => next.run(request).await,
        Some(_) => ApiError::unauthorized("the personal API key is invalid").into_response(),
        None => ApiError::unauthorized("send a personal API key: Authorization: Bearer phx_...")
            .into_response(),
    }
}

/// An API failure, answered as PostHog does: `{"type", "code", "detail", "attr"}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    detail: String,
    attr: Option<std::borrow::Cow<'static, str>>,
}

impl ApiError {
    pub fn invalid(attr: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_input",
            detail: detail.into(),
            attr: Some(attr.into()),
        }
    }

    /// A 400 naming a field only known at run time (such as `series[1].math`).
    pub fn invalid_at(attr: String, detail: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_input",
            detail: detail.into(),
            attr: Some(attr.into()),
        }
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            detail: format!("{} not found", what.into()),
            attr: None,
        }
    }

    pub fn unauthorized(detail: &str) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            code: "not_authenticated",
            detail: detail.into(),
            attr: None,
        }
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "unavailable",
            detail: detail.into(),
            attr: None,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "state store failed during an API request");
        match e {
            StoreError::NotFound(what) => ApiError::not_found(what),
            other => Self {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                code: "server_error",
                detail: other.to_string(),
                attr: None,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let kind = match self.status {
            StatusCode::UNAUTHORIZED => "authentication_error",
            StatusCode::BAD_REQUEST => "validation_error",
            StatusCode::NOT_FOUND => "invalid_request",
            _ => "server_error",
        };
        let body =
            json!({"type": kind, "code": self.code, "detail": self.detail, "attr": self.attr});
        (self.status, Json(body)).into_response()
    }
}

/// A whole list in PostHog's paginated envelope: `{count, next: null, previous: null, results}`.
pub fn unpaginated(results: Vec<serde_json::Value>) -> Json<serde_json::Value> {
    Json(json!({"count": results.len(), "next": null, "previous": null, "results": results}))
}

/// A request body that must be a JSON object.
pub fn json_object_body(bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(v) if v.is_object() => Ok(v),
        Ok(_) => Err(ApiError::invalid("body", "expected a JSON object")),
        Err(e) => Err(ApiError::invalid(
            "body",
            format!("the body is not valid JSON: {e}"),
        )),
    }
}

/// Parses an ISO timestamp query parameter into µs.
pub fn parse_time_param(name: &'static str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    match value {
        None | Some("") => Ok(None),
        Some(text) => quill_sources::capture::normalize::parse_timestamp(text)
            .map(Some)
            .ok_or_else(|| {
                ApiError::invalid(name, format!("`{text}` is not an ISO 8601 timestamp"))
            }),
    }
}
