//! Why a capture request was refused, and how that reads on the wire.

use axum::http::StatusCode;
use serde_json::{json, Value};

/// A refused capture request. Requests are atomic: any error means nothing was stored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CaptureError {
    /// No payload in the body or the `data` parameter.
    #[error("the request has no payload")]
    EmptyPayload,
    /// A `compression` value Quill does not know.
    #[error(
        "unsupported compression `{0}` (expected gzip, gzip-js, lz64, lz-string, base64 or b64)"
    )]
    UnknownCompression(String),
    /// The payload could not be decoded.
    #[error("could not decode the payload: {0}")]
    Undecodable(String),
    /// The body or the decompressed payload is over the limit.
    #[error("the payload is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// One event is over the per-event limit.
    #[error("event at index {index} is larger than {limit} bytes")]
    EventTooLarge {
        /// The event's index in the request.
        index: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// The payload is not JSON.
    #[error("the payload is not valid JSON: {0}")]
    InvalidJson(String),
    /// A batch with no events.
    #[error("the batch is empty")]
    EmptyBatch,
    /// The JSON is neither an event, an array of events, nor a batch.
    #[error("the payload is not an event, an array of events or a batch")]
    NotAnEventPayload,
    /// An event lacks a required field.
    #[error("event at index {index}: `{field}` is missing or empty")]
    MissingField {
        /// The event's index in the request.
        index: usize,
        /// The field.
        field: &'static str,
    },
    /// An event has a field of the wrong form.
    #[error("event at index {index}: `{field}` is invalid: {detail}")]
    InvalidField {
        /// The event's index in the request.
        index: usize,
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// No project token anywhere in the request.
    #[error("the request carries no project token")]
    MissingToken,
    /// A token of an impossible form.
    #[error("the project token is invalid: {0}")]
    InvalidToken(&'static str),
    /// Events of one request carry different tokens.
    #[error("the events in this request carry different project tokens")]
    TokenMismatch,
    /// A well-formed token of no project.
    #[error("no project has this token")]
    UnknownToken,
    /// The log could not store the events; the client should retry.
    #[error("the event log is unavailable: {0}")]
    Storage(String),
}

impl CaptureError {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        use CaptureError::*;
        match self {
            PayloadTooLarge { .. } | EventTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            MissingToken | InvalidToken(_) | TokenMismatch | UnknownToken => {
                StatusCode::UNAUTHORIZED
            }
            Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        use CaptureError::*;
        match self {
            EmptyPayload => "empty_payload",
            UnknownCompression(_) => "unsupported_compression",
            Undecodable(_) => "undecodable_payload",
            PayloadTooLarge { .. } => "payload_too_large",
            EventTooLarge { .. } => "event_too_large",
            InvalidJson(_) => "invalid_json",
            EmptyBatch => "empty_batch",
            NotAnEventPayload => "invalid_payload",
            MissingField { .. } => "missing_field",
            InvalidField { .. } => "invalid_field",
            MissingToken => "missing_token",
            InvalidToken(_) => "invalid_token",
            TokenMismatch => "token_mismatch",
            UnknownToken => "unknown_token",
            Storage(_) => "storage_unavailable",
        }
    }

    /// The JSON body: `{"type", "code", "detail"}`, plus `index` and `attr` naming the event
    /// and the field when the error is about one event.
    pub fn body(&self) -> Value {
        let kind = match self.status() {
            StatusCode::UNAUTHORIZED => "authentication_error",
            StatusCode::SERVICE_UNAVAILABLE => "server_error",
            _ => "validation_error",
        };
        let mut body = json!({"type": kind, "code": self.code(), "detail": self.to_string()});
        let (index, field) = match self {
            CaptureError::MissingField { index, field }
            | CaptureError::InvalidField { index, field, .. } => (Some(*index), Some(*field)),
            CaptureError::EventTooLarge { index, .. } => (Some(*index), None),
            _ => (None, None),
        };
        if let Some(index) = index {
            body["index"] = json!(index);
        }
        if let Some(field) = field {
            body["attr"] = json!(field);
        }
        body
    }
}
