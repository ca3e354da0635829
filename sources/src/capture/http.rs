//! The HTTP face of capture: routes, body limits, CORS, and status codes.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use http_body_util::BodyExt;
use serde_json::json;

use super::decode::{self, Compression, RawPayload};
use super::{Capture, CaptureError, RequestInfo};

/// Body limit of the single-event routes.
pub const EVENT_ROUTE_LIMIT: usize = 2 * 1024 * 1024;
/// Body limit of `/batch`.
pub const BATCH_ROUTE_LIMIT: usize = 20 * 1024 * 1024;
/// Payloads up to this size are decoded on the async worker that received them.
const INLINE_PAYLOAD_BYTES: usize = 16 * 1024;
/// `_` values before 2021 are stale client clocks, not send times.
const MIN_PLAUSIBLE_SENT_AT_MS: i64 = 1_609_459_200_000;

#[derive(Clone, Copy)]
struct RouteKind {
    limit: usize,
    legacy: bool,
    engage: bool,
}

/// The capture routes, each with and without a trailing slash, for GET, POST and OPTIONS.
pub fn router(capture: Arc<Capture>) -> Router {
    let routes = [
        (
            "/e",
            RouteKind {
                limit: EVENT_ROUTE_LIMIT,
                legacy: true,
                engage: false,
            },
        ),
        (
            "/i/v0/e",
            RouteKind {
                limit: EVENT_ROUTE_LIMIT,
                legacy: false,
                engage: false,
            },
        ),
        (
            "/capture",
            RouteKind {
                limit: EVENT_ROUTE_LIMIT,
                legacy: true,
                engage: false,
            },
        ),
        (
            "/track",
            RouteKind {
                limit: EVENT_ROUTE_LIMIT,
                legacy: true,
                engage: false,
            },
        ),
        (
            "/engage",
            RouteKind {
                limit: EVENT_ROUTE_LIMIT,
                legacy: true,
                engage: true,
            },
        ),
        (
            "/batch",
            RouteKind {
                limit: BATCH_ROUTE_LIMIT,
                legacy: true,
                engage: false,
            },
        ),
    ];
    let mut router = Router::new();
    for (path, kind) in routes {
        let handler =
            move |state: State<Arc<Capture>>, request: Request| handle(state, request, kind);
        router = router
            .route(path, any(handler))
            .route(&format!("{path}/"), any(handler));
    }
    router.with_state(capture)
}

async fn handle(
    State(capture): State<Arc<Capture>>,
    request: Request,
    kind: RouteKind,
) -> Response {
    let (parts, body) = request.into_parts();
    let cors = cors_headers(&parts.headers);
    let mut response = match parts.method {
        Method::OPTIONS => StatusCode::OK.into_response(),
        Method::GET | Method::POST => {
            let ip = client_ip(
                &parts.headers,
                parts.extensions.get::<ConnectInfo<SocketAddr>>(),
            );
            match receive(&capture, &parts.headers, parts.uri.query(), body, kind, ip).await {
                Ok(beacon) if beacon => StatusCode::NO_CONTENT.into_response(),
                Ok(_) => Json(json!({"status": 1})).into_response(),
                Err(error) => {
                    tracing::warn!(
                        code = error.code(),
                        status = error.status().as_u16(),
                        detail = %error,
                        path = parts.uri.path(),
                        "capture request refused"
                    );
                    (error.status(), Json(error.body())).into_response()
                }
            }
        }
        _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    };
    response.headers_mut().extend(cors);
    response
}

/// Reads, decodes, validates and stores one request. Returns whether it was a beacon.
async fn receive(
    capture: &Arc<Capture>,
    headers: &HeaderMap,
    query: Option<&str>,
    body: Body,
    kind: RouteKind,
    ip: Option<String>,
) -> Result<bool, CaptureError> {
    let params: Vec<(String, String)> =
        serde_urlencoded::from_str(query.unwrap_or("")).unwrap_or_default();
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let compression = match param("compression") {
        Some(value) => Compression::parse(value)?,
        None => None,
    };
    let beacon = param("beacon") == Some("1");
    let sent_at_us = param("_")
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|ms| *ms >= MIN_PLAUSIBLE_SENT_AT_MS)
        .map(|ms| ms * 1000);

    let bytes = http_body_util::Limited::new(body, kind.limit)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                CaptureError::PayloadTooLarge { limit: kind.limit }
            } else {
                CaptureError::Undecodable(format!("could not read the body: {e}"))
            }
        })?
        .to_bytes();
    let header_str = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let data_param = param("data").map(str::to_owned);
    let payload_len = bytes.len() + data_param.as_ref().map_or(0, String::len);
    let content_type = header_str(header::CONTENT_TYPE);
    let content_encoding = header_str(header::CONTENT_ENCODING);
    let info = RequestInfo {
        now_us: quill_pipeline::event::now_us(),
        sent_at_us,
        ip,
        engage: kind.engage,
    };
    let preparing = Arc::clone(capture);
    let prepare = move || {
        let raw = RawPayload {
            data_param: data_param.as_deref(),
            body: &bytes,
            content_type: content_type.as_deref(),
            content_encoding: content_encoding.as_deref(),
            compression,
            legacy: kind.legacy,
        };
        let text = decode::decode(&raw)?;
        preparing.prepare(&text, &info)
    };
    // Decoding and validating a batch of a thousand events takes milliseconds of CPU. On an
    // async worker that would hold up every other connection the worker serves, reads of
    // insights included, so large payloads go to the blocking pool. Small ones, what browsers
    // send, are cheaper to decode than to hand over.
    let prepared = if payload_len > INLINE_PAYLOAD_BYTES {
        tokio::task::spawn_blocking(prepare)
            .await
            .map_err(|e| CaptureError::Storage(format!("capture stopped before storing: {e}")))??
    } else {
        prepare()?
    };
    capture.store(prepared).await?;
    Ok(beacon)
}

fn client_ip(headers: &HeaderMap, peer: Option<&ConnectInfo<SocketAddr>>) -> Option<String> {
    headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .or_else(|| peer.map(|ConnectInfo(addr)| addr.ip().to_string()))
}

/// CORS that lets a browser on any site send: the request's origin and headers are mirrored.
pub fn cors_headers(request: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    let origin = request.get(header::ORIGIN).cloned();
    match origin {
        Some(origin) => {
            out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            out.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        None => {
            out.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
        }
    }
    out.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    let allow_headers = request
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_static("content-type, content-encoding, authorization")
        });
    out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, allow_headers);
    out.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    out.insert(header::VARY, HeaderValue::from_static("Origin"));
    out
}
