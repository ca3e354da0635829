//! One raw event object → a validated [`Event`]: distinct id rules, timestamp resolution, uuid.

use chrono::{DateTime, Datelike, NaiveDateTime, Utc};
use quill_pipeline::event::{Event, ProjectId, StoredEvent};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::error::CaptureError;
use super::payload::ParsedEvent;

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

/// A validated event whose properties are still JSON text.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalized {
    /// The event's uuid (generated when the client sent none).
    pub uuid: Uuid,
    /// The event name.
    pub event: String,
    /// The normalized distinct id.
    pub distinct_id: String,
    /// The properties object as JSON text, with `$ip` and top-level `$set`/`$set_once` merged in.
    pub properties: String,
    /// The resolved timestamp, µs since the epoch.
    pub timestamp_us: i64,
}

impl Normalized {
    /// The stored form, for when no transformation needs the properties as a map.
    pub fn into_stored(self, ctx: &Context) -> StoredEvent {
        StoredEvent {
            uuid: *self.uuid.as_bytes(),
            project: ctx.project,
            event: self.event,
            distinct_id: self.distinct_id,
            properties: self.properties,
            timestamp_us: self.timestamp_us,
            received_us: ctx.now_us,
        }
    }

    /// The in-memory form transformations work on.
    pub fn into_event(self, ctx: &Context) -> Event {
        let properties = match serde_json::from_str::<Value>(&self.properties) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        Event {
            uuid: self.uuid,
            project: ctx.project,
            event: self.event,
            distinct_id: self.distinct_id,
            properties,
            timestamp_us: self.timestamp_us,
            received_us: ctx.now_us,
        }
    }
}

fn small_value(raw: Option<&RawValue>) -> Option<Value> {
    raw.and_then(|r| serde_json::from_str::<Value>(r.get()).ok())
        .filter(|v| !v.is_null())
}

/// Validates and normalizes the event at `index`.
pub fn normalize(
    index: usize,
    parsed: &ParsedEvent<'_>,
    ctx: &Context,
) -> Result<Normalized, CaptureError> {
    let raw = &parsed.fields;
    let event = match small_value(raw.event) {
        Some(Value::String(name)) if !name.is_empty() => name,
        None if ctx.engage => "$identify".to_string(),
        None | Some(Value::String(_)) => {
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
    let properties_text = match raw.properties.filter(|p| p.get() != "null") {
        Some(p) if p.get().starts_with('{') => Some(p.get()),
        None => None,
        Some(_) => {
            return Err(CaptureError::InvalidField {
                index,
                field: "properties",
                detail: "must be an object".into(),
            })
        }
    };
    let full_properties = || -> Map<String, Value> {
        match properties_text.map(serde_json::from_str::<Value>) {
            Some(Ok(Value::Object(map))) => map,
            _ => Map::new(),
        }
    };
    let distinct_id = small_value(raw.distinct_id)
        .or_else(|| small_value(raw.legacy_distinct_id))
        .or_else(|| {
            if parsed.peek_failed {
                full_properties()
                    .get("distinct_id")
                    .filter(|v| !v.is_null())
                    .cloned()
            } else {
                small_value(parsed.peek.distinct_id)
            }
        })
        .and_then(|v| normalize_distinct_id(&v))
        .ok_or(CaptureError::MissingField {
            index,
            field: "distinct_id",
        })?;
    let uuid = match small_value(raw.uuid) {
        None => Uuid::now_v7(),
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
    let timestamp = match small_value(raw.timestamp) {
        None => None,
        Some(Value::String(s)) => {
            Some(
                parse_timestamp(&s).ok_or_else(|| CaptureError::InvalidField {
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
    let offset_ms = match small_value(raw.offset) {
        None => None,
        Some(v) => Some(v.as_i64().ok_or_else(|| CaptureError::InvalidField {
            index,
            field: "offset",
            detail: "must be an integer number of milliseconds".into(),
        })?),
    };
    let ignore_sent_at = if parsed.peek_failed {
        full_properties().get("$ignore_sent_at") == Some(&Value::Bool(true))
    } else {
        parsed
            .peek
            .ignore_sent_at
            .is_some_and(|v| v.get() == "true")
    };
    let timestamp_us = resolve_timestamp(
        ctx.now_us,
        timestamp,
        offset_ms,
        ctx.sent_at_us.filter(|_| !ignore_sent_at),
    );

    let top_level_updates = small_value(raw.set).is_some() || small_value(raw.set_once).is_some();
    let properties = if top_level_updates || parsed.peek_failed {
        let mut map = full_properties();
        // Top-level person updates are kept with the event's own, the top level winning.
        for (key, top) in [
            ("$set", small_value(raw.set)),
            ("$set_once", small_value(raw.set_once)),
        ] {
            if let Some(Value::Object(top)) = top {
                let slot = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(inner) = slot {
                    inner.extend(top);
                } else {
                    *slot = Value::Object(top);
                }
            }
        }
        if let Some(ip) = &ctx.ip {
            map.entry("$ip")
                .or_insert_with(|| Value::String(ip.clone()));
        }
        serde_json::to_string(&map).unwrap_or_else(|_| "{}".into())
    } else {
        with_ip(
            properties_text.unwrap_or("{}"),
            ctx.ip.as_deref().filter(|_| parsed.peek.ip.is_none()),
        )
    };
    Ok(Normalized {
        uuid,
        event,
        distinct_id,
        properties,
        timestamp_us,
    })
}

/// Adds `"$ip"` to an object's JSON text without parsing it. The text is a valid JSON object.
fn with_ip(object: &str, ip: Option<&str>) -> String {
    let Some(ip) = ip else {
        return object.to_string();
    };
    let ip = Value::String(ip.to_string()).to_string();
    let inner = object.trim()[1..].trim_start();
    if inner.starts_with('}') {
        format!("{{\"$ip\":{ip}}}")
    } else {
        format!("{{\"$ip\":{ip},{inner}")
    }
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

    /// Normalizes one event given as JSON.
    fn norm(index: usize, event: Value, ctx: &Context) -> Result<Normalized, CaptureError> {
        let text = format!(r#"{{"api_key":"phc_x","batch":[{event}]}}"#);
        let payload = super::super::payload::parse(&text).unwrap();
        normalize(index, &payload.events[0], ctx)
    }

    fn props_of(n: &Normalized) -> Value {
        serde_json::from_str(&n.properties).unwrap()
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
        let raw = json!({"event": "$identify", "distinct_id": "u", "$set": {"a": 1}, "properties": {"$set": {"a": 0, "b": 2}}});
        let e = norm(0, raw, &ctx()).unwrap().into_event(&ctx());
        assert_eq!(e.properties["$set"], json!({"a": 1, "b": 2}));
        assert_eq!(e.properties["$ip"], json!("127.0.0.1"));
    }

    #[test]
    fn the_fast_path_adds_ip_without_reparsing_and_keeps_an_existing_one() {
        let props = |v: Value| {
            props_of(
                &norm(
                    0,
                    json!({"event": "e", "distinct_id": "u", "properties": v}),
                    &ctx(),
                )
                .unwrap(),
            )
        };
        assert_eq!(props(json!({})), json!({"$ip": "127.0.0.1"}));
        assert_eq!(
            props(json!({"a": [1, {"b": null}]})),
            json!({"$ip": "127.0.0.1", "a": [1, {"b": null}]})
        );
        assert_eq!(
            props(json!({"$ip": "10.0.0.1"})),
            json!({"$ip": "10.0.0.1"})
        );
        let from_props = norm(
            0,
            json!({"event": "e", "properties": {"distinct_id": "p"}}),
            &ctx(),
        )
        .unwrap();
        assert_eq!(from_props.distinct_id, "p");
        // Duplicate keys defeat the peek; the full parse takes the last value, as JSON parsers do.
        let dup = r#"{"api_key":"phc_x","batch":[{"event":"e","properties":{"distinct_id":"a","distinct_id":"b"}}]}"#;
        let payload = super::super::payload::parse(dup).unwrap();
        assert_eq!(
            normalize(0, &payload.events[0], &ctx())
                .unwrap()
                .distinct_id,
            "b"
        );
    }

    #[test]
    fn errors_name_the_index_and_field() {
        let err = norm(3, json!({"event": "e"}), &ctx()).unwrap_err();
        assert_eq!(
            err,
            CaptureError::MissingField {
                index: 3,
                field: "distinct_id"
            }
        );
        let err = norm(
            1,
            json!({"event": "e", "distinct_id": "d", "timestamp": "yesterday"}),
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
        let err = norm(
            0,
            json!({"event": "e", "distinct_id": "d", "properties": [1]}),
            &ctx(),
        )
        .unwrap_err();
        assert!(matches!(
            err,
            CaptureError::InvalidField {
                field: "properties",
                ..
            }
        ));
        let engage = Context {
            engage: true,
            ..ctx()
        };
        assert_eq!(
            norm(0, json!({"$distinct_id": "d"}), &engage)
                .unwrap()
                .event,
            "$identify"
        );
    }
}
