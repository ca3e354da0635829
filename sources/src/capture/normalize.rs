//! One raw event object → a validated [`Event`]: distinct id rules, timestamp resolution, uuid.

use chrono::{DateTime, Datelike, NaiveDateTime, Utc};
use quill_pipeline::event::{Event, ProjectId};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::error::CaptureError;

/// A single event over this size is refused.
pub const MAX_EVENT_BYTES: usize = 1_000_000;
/// Distinct ids are truncated to this many characters.
const MAX_DISTINCT_ID_CHARS: usize = 200;
/// Timestamps further in the future than this are clamped to now.
const MAX_FUTURE_US: i64 = 23 * 3600 * 1_000_000;

/// What the request tells about all its events.
#[derive(Debug, Clone)]
pub struct Context {
    /// The project the token resolved to.
    pub project: ProjectId,
    /// Server receive time, µs since the epoch.
    pub now_us: i64,
    /// The client's send time, when known (batch `sent_at`, or the `_` parameter).
    pub sent_at_us: Option<i64>,
    /// The client's address, recorded as `$ip` unless the event has one.
    pub ip: Option<String>,
    /// `/engage` requests may omit the event name; it is then `$identify`.
    pub engage: bool,
}

/// Validates and normalizes the event at `index`.
pub fn normalize(
    index: usize,
    mut raw: Map<String, Value>,
    ctx: &Context,
) -> Result<Event, CaptureError> {
    let event = match raw.remove("event") {
        Some(Value::String(name)) if !name.is_empty() => name,
        None | Some(Value::Null) if ctx.engage => "$identify".to_string(),
        None | Some(Value::Null) => {
            return Err(CaptureError::MissingField {
                index,
                field: "event",
            })
        }
        Some(Value::String(_)) => {
            return Err(CaptureError::MissingField {
                index,
                field: "event",
            })
        }
        Some(_) => {
            return Err(CaptureError::InvalidField {
                index,
                field: "event",
                detail: "must be a string".into(),
            })
        }
    };
    let mut properties = match raw.remove("properties") {
        Some(Value::Object(map)) => map,
        None | Some(Value::Null) => Map::new(),
        Some(_) => {
            return Err(CaptureError::InvalidField {
                index,
                field: "properties",
                detail: "must be an object".into(),
            })
        }
    };
    let distinct_id = raw
        .remove("distinct_id")
        .or_else(|| raw.remove("$distinct_id"))
        .filter(|v| !v.is_null())
        .or_else(|| {
            properties
                .get("distinct_id")
                .filter(|v| !v.is_null())
                .cloned()
        })
        .and_then(|v| normalize_distinct_id(&v))
        .ok_or(CaptureError::MissingField {
            index,
            field: "distinct_id",
        })?;
    let uuid = match raw.remove("uuid") {
        None | Some(Value::Null) => Uuid::now_v7(),
        Some(Value::String(s)) if s.is_empty() => Uuid::now_v7(),
        Some(Value::String(s)) => Uuid::parse_str(&s).map_err(|e| CaptureError::InvalidField {
            index,
            field: "uuid",
            detail: e.to_string(),
        })?,
        Some(_) => {
            return Err(CaptureError::InvalidField {
                index,
                field: "uuid",
                detail: "must be a string".into(),
            })
        }
    };
    let timestamp = match raw.get("timestamp") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            Some(
                parse_timestamp(s).ok_or_else(|| CaptureError::InvalidField {
                    index,
                    field: "timestamp",
                    detail: format!(
                        "`{}` is not an ISO 8601 timestamp",
                        s.chars().take(64).collect::<String>()
                    ),
                })?,
            )
        }
        Some(_) => {
            return Err(CaptureError::InvalidField {
                index,
                field: "timestamp",
                detail: "must be an ISO 8601 string".into(),
            })
        }
    };
    let offset_ms = match raw.get("offset") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_i64().ok_or_else(|| CaptureError::InvalidField {
            index,
            field: "offset",
            detail: "must be an integer number of milliseconds".into(),
        })?),
    };
    let ignore_sent_at = properties.get("$ignore_sent_at") == Some(&Value::Bool(true));
    let timestamp_us = resolve_timestamp(
        ctx.now_us,
        timestamp,
        offset_ms,
        ctx.sent_at_us.filter(|_| !ignore_sent_at),
    );

    // Top-level person updates are kept with the event's own, the top level winning.
    for key in ["$set", "$set_once"] {
        if let Some(Value::Object(top)) = raw.remove(key) {
            let slot = properties
                .entry(key)
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(inner) = slot {
                inner.extend(top);
            } else {
                *slot = Value::Object(top);
            }
        }
    }
    if let Some(ip) = &ctx.ip {
        properties
            .entry("$ip")
            .or_insert_with(|| Value::String(ip.clone()));
    }
    Ok(Event {
        uuid,
        project: ctx.project,
        event,
        distinct_id,
        properties,
        timestamp_us,
        received_us: ctx.now_us,
    })
}

/// Stringifies a distinct id, replaces NULs and truncates it; empty means missing.
pub fn normalize_distinct_id(value: &Value) -> Option<String> {
    let text = match value {
        Value::Null => return None,
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let cleaned: String = text
        .chars()
        .map(|c| if c == '\0' { '\u{FFFD}' } else { c })
        .take(MAX_DISTINCT_ID_CHARS)
        .collect();
    if cleaned.trim().is_empty() {
        None
    } else {
        Some(cleaned)
    }
}

/// Parses an ISO 8601 timestamp; one without a zone is UTC. Returns µs since the epoch.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc).timestamp_micros());
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f%#z",
        "%Y-%m-%d %H:%M:%S%.f%#z",
    ] {
        if let Ok(t) = DateTime::parse_from_str(text, format) {
            return Some(t.with_timezone(&Utc).timestamp_micros());
        }
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc().timestamp_micros());
        }
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_micros())
}

/// PostHog's server-side rule: `offset` first, then clock-skew correction by `sent_at`, then the
/// timestamp as sent, then now; clamped to no more than 23 hours ahead.
pub fn resolve_timestamp(
    now_us: i64,
    timestamp_us: Option<i64>,
    offset_ms: Option<i64>,
    sent_at_us: Option<i64>,
) -> i64 {
    let resolved = match (offset_ms, timestamp_us, sent_at_us) {
        (Some(offset), _, _) => now_us.saturating_sub(offset.saturating_mul(1000)),
        (None, Some(ts), Some(sent)) => now_us.saturating_add(ts.saturating_sub(sent)),
        (None, Some(ts), None) => ts,
        (None, None, _) => now_us,
    };
    if resolved.saturating_sub(now_us) > MAX_FUTURE_US {
        return now_us;
    }
    match DateTime::from_timestamp_micros(resolved) {
        Some(t) if (0..=9999).contains(&t.year()) => resolved,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> Context {
        Context {
            project: 1,
            now_us: 1_700_000_000_000_000,
            sent_at_us: None,
            ip: Some("127.0.0.1".into()),
            engage: false,
        }
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn distinct_ids_are_stringified_cleaned_and_truncated() {
        assert_eq!(normalize_distinct_id(&json!(42)).as_deref(), Some("42"));
        assert_eq!(
            normalize_distinct_id(&json!("a\u{0}b")).as_deref(),
            Some("a\u{FFFD}b")
        );
        assert_eq!(
            normalize_distinct_id(&json!("x".repeat(300)))
                .unwrap()
                .len(),
            200
        );
        assert_eq!(normalize_distinct_id(&json!("")), None);
        assert_eq!(normalize_distinct_id(&json!(null)), None);
    }

    #[test]
    fn timestamps_follow_offset_then_sent_at_then_timestamp() {
        let now = 1_700_000_000_000_000;
        assert_eq!(
            resolve_timestamp(now, Some(5), Some(1000), Some(9)),
            now - 1_000_000
        );
        // The client clock is 10 s fast: its timestamp is corrected by the same 10 s.
        assert_eq!(
            resolve_timestamp(now, Some(now), None, Some(now + 10_000_000)),
            now - 10_000_000
        );
        assert_eq!(resolve_timestamp(now, Some(now - 7), None, None), now - 7);
        assert_eq!(resolve_timestamp(now, None, None, None), now);
        assert_eq!(
            resolve_timestamp(now, Some(now + 24 * 3_600_000_000), None, None),
            now
        );
    }

    #[test]
    fn top_level_set_merges_into_properties_and_ip_is_recorded() {
        let raw = obj(
            json!({"event": "$identify", "distinct_id": "u", "$set": {"a": 1}, "properties": {"$set": {"a": 0, "b": 2}}}),
        );
        let e = normalize(0, raw, &ctx()).unwrap();
        assert_eq!(e.properties["$set"], json!({"a": 1, "b": 2}));
        assert_eq!(e.properties["$ip"], json!("127.0.0.1"));
    }

    #[test]
    fn errors_name_the_index_and_field() {
        let err = normalize(3, obj(json!({"event": "e"})), &ctx()).unwrap_err();
        assert_eq!(
            err,
            CaptureError::MissingField {
                index: 3,
                field: "distinct_id"
            }
        );
        let err = normalize(
            1,
            obj(json!({"event": "e", "distinct_id": "d", "timestamp": "yesterday"})),
            &ctx(),
        )
        .unwrap_err();
        assert!(matches!(
            err,
            CaptureError::InvalidField {
                index: 1,
                field: "timestamp",
                ..
            }
        ));
        let engage = Context {
            engage: true,
            ..ctx()
        };
        assert_eq!(
            normalize(0, obj(json!({"$distinct_id": "d"})), &engage)
                .unwrap()
                .event,
            "$identify"
        );
    }
}
