//! PostHog's capture API: `/e`, `/i/v0/e`, `/batch`, `/capture`, `/track` and `/engage`.
//!
//! A request is decoded ([`decode`]), split into events ([`payload`]), each event validated and
//! normalized ([`normalize`]), run through the transformation chain, and appended to the log.
//! Only when the log has synced the events does the client get its 200. A request is atomic:
//! one invalid event refuses the whole request with a 400 naming the event's index and field.

pub mod decode;
pub mod error;
mod http;
pub mod normalize;
pub mod payload;

use std::sync::Arc;

use quill_pipeline::event::Record;
use quill_pipeline::log::{AppendBatch, Appended, Log};
use quill_pipeline::projects::Registry;
use quill_pipeline::transform::Transforms;

pub use error::CaptureError;
pub use http::{cors_headers, router};
use normalize::{normalize, Context, MAX_EVENT_BYTES};

/// What capture needs: where to store, whose tokens, which transformations.
pub struct Capture {
    /// The event log.
    pub log: Log,
    /// Projects by token.
    pub registry: Arc<Registry>,
    /// The transformation chain.
    pub transforms: Arc<Transforms>,
}

/// A request's events, validated, transformed and encoded, ready to append.
#[derive(Debug)]
pub struct Prepared {
    /// The encoded records.
    pub batch: AppendBatch,
    /// Events the request carried.
    pub received: usize,
}

/// Request-level facts that are not in the payload.
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    /// Receive time, µs since the epoch.
    pub now_us: i64,
    /// The `_` query parameter's send time, µs, when plausible.
    pub sent_at_us: Option<i64>,
    /// The client's IP address.
    pub ip: Option<String>,
    /// Whether this is the `/engage` route.
    pub engage: bool,
}

impl Capture {
    /// Validates and encodes every event of a decoded payload. Nothing is stored.
    pub fn prepare(&self, text: &str, info: &RequestInfo) -> Result<Prepared, CaptureError> {
        let payload = payload::parse(text)?;
        let project = self
            .registry
            .project_for_token(&payload.token)
            .ok_or(CaptureError::UnknownToken)?;
        let sent_at_us = payload
            .sent_at
            .as_deref()
            .and_then(normalize::parse_timestamp)
            .or(info.sent_at_us);
        let ctx = Context {
            project,
            now_us: info.now_us,
            sent_at_us,
            ip: info.ip.clone(),
            engage: info.engage,
        };
        let received = payload.events.len();
        let chain = self.transforms.current();
        let mut batch = AppendBatch::new();
        for (index, parsed) in payload.events.iter().enumerate() {
            let normalized = normalize(index, parsed, &ctx)?;
            // Without transformations the properties never become a map: they go to the log as
            // the client sent them (plus `$ip`).
            let stored = if chain.is_empty() {
                normalized.into_stored(&ctx)
            } else {
                match chain.apply(normalized.into_event(&ctx)) {
                    Some(event) => event.into_stored(),
                    None => continue,
                }
            };
            if stored.properties.len() + stored.event.len() + stored.distinct_id.len()
                > MAX_EVENT_BYTES
            {
                return Err(CaptureError::EventTooLarge {
                    index,
                    limit: MAX_EVENT_BYTES,
                });
            }
            batch
                .push(&Record::Event(stored))
                .map_err(|e| CaptureError::Undecodable(e.to_string()))?;
        }
        Ok(Prepared { batch, received })
    }

    /// Appends prepared events and waits until they are durable.
    pub async fn store(&self, prepared: Prepared) -> Result<Appended, CaptureError> {
        if prepared.batch.is_empty() {
            return Ok(Appended {
                stored: 0,
                duplicates: 0,
                end_offset: self.log.end(),
            });
        }
        self.log.append(prepared.batch).await.map_err(|e| {
            tracing::error!(error = %e, "capture could not append to the log");
            CaptureError::Storage(e.to_string())
        })
    }
}

#[cfg(test)]
mod tests;
