//! `/flags?v=2` bodies written from pre-serialized pieces.
//!
//! A v2 answer for 50 flags is ~11 KB of JSON and nearly all of it is the same for every
//! request: keys, ids, versions, descriptions and payloads. Each [`Flag`] keeps those pieces
//! escaped once ([`WireParts`]), so a request writes mostly copies and escapes only what it
//! decided: variants and the request id.

use std::io::Write;

use serde_json::{Map, Value};

use crate::definition::FlagDefinition;
use crate::engine::FlagEvaluation;
use crate::response::ResponseMeta;

/// A flag's constant pieces of JSON.
#[derive(Debug, Clone, Default)]
pub(crate) struct WireParts {
    /// The key as a JSON string, quotes included.
    key: String,
    /// `"metadata":{"id":..,"version":..,"description":..,"payload":` without the payload.
    metadata_head: String,
    /// Each payload's JSON text, by the value it belongs to (`"true"` or a variant key).
    payloads: Vec<(String, String)>,
}

impl WireParts {
    pub(crate) fn of(def: &FlagDefinition) -> WireParts {
        WireParts {
            key: json_text(&def.key),
            metadata_head: format!(
                r#""metadata":{{"id":{},"version":{},"description":{},"payload":"#,
                def.id,
                def.version.unwrap_or(1),
                json_text(&def.shown_description()),
            ),
            payloads: def
                .filters
                .payloads
                .iter()
                .map(|(k, v)| (k.clone(), json_text(v)))
                .collect(),
        }
    }

    fn payload(&self, enabled: bool, variant: Option<&str>) -> &str {
        let wanted = variant.unwrap_or("true");
        match enabled {
            true => self
                .payloads
                .iter()
                .find(|(k, _)| k == wanted)
                .map_or("null", |(_, v)| v.as_str()),
            false => "null",
        }
    }
}

fn json_text<T: serde::Serialize + ?Sized>(value: &T) -> String {
    // Strings, numbers and JSON values always serialize.
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

/// Writes the v2 body: `{errorsWhileComputingFlags, flags: {key: FlagDetails}, requestId,
/// evaluatedAt, ...extra}`.
pub fn write_v2(
    out: &mut Vec<u8>,
    evaluations: &[FlagEvaluation<'_>],
    meta: &ResponseMeta<'_>,
    extra: Option<&Map<String, Value>>,
) -> serde_json::Result<()> {
    write!(
        out,
        r#"{{"errorsWhileComputingFlags":{},"flags":{{"#,
        meta.errors_while_computing_flags
    )
    .map_err(serde_json::Error::io)?;
    for (i, e) in evaluations.iter().enumerate() {
        let parts = &e.flag.wire;
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(parts.key.as_bytes());
        out.extend_from_slice(br#":{"key":"#);
        out.extend_from_slice(parts.key.as_bytes());
        out.extend_from_slice(if e.enabled {
            br#","enabled":true,"variant":"#
        } else {
            br#","enabled":false,"variant":"#
        });
        serde_json::to_writer(&mut *out, &e.variant)?;
        write!(
            out,
            r#","reason":{{"code":"{}","condition_index":"#,
            e.reason.code.as_str()
        )
        .map_err(serde_json::Error::io)?;
        serde_json::to_writer(&mut *out, &e.reason.condition_index)?;
        out.extend_from_slice(br#","description":"#);
        serde_json::to_writer(&mut *out, &e.reason.description())?;
        out.extend_from_slice(b"},");
        out.extend_from_slice(parts.metadata_head.as_bytes());
        out.extend_from_slice(parts.payload(e.enabled, e.variant).as_bytes());
        out.extend_from_slice(b"}}");
    }
    out.extend_from_slice(br#"},"requestId":"#);
    serde_json::to_writer(&mut *out, meta.request_id)?;
    write!(out, r#","evaluatedAt":{}"#, meta.evaluated_at_ms).map_err(serde_json::Error::io)?;
    for (key, value) in extra.into_iter().flatten() {
        out.push(b',');
        serde_json::to_writer(&mut *out, key)?;
        out.push(b':');
        serde_json::to_writer(&mut *out, value)?;
    }
    out.push(b'}');
    Ok(())
}
