//! Applying the event a transformation returns.
//!
//! The returned event's `event`, `distinct_id`, `properties` and `timestamp` (when it is a valid
//! ISO 8601 time that differs from the one given) replace the event's; any invalid part leaves
//! the whole event unchanged.
//!
//! The stage gets the result as a [`JsonPatch`] against the `event` global it passed in, rather
//! than as JSON: a typical transformation changes one property, and converting the whole event
//! back to JSON (then dropping the old properties) cost more than the program itself. Applying
//! the patch gives the same event as applying the converted JSON.

use std::borrow::Cow;

use quill_hog::patch::JsonPatch;
use quill_pipeline::event::Event;
use serde_json::{Map, Value};

const NO_PROPERTIES: &str = "Invalid result: the returned event has no `properties` object";

/// Applies a returned event given as a patch against the `event` global, `global` (whose
/// `properties` are back in `event.properties`). `Err` names what is invalid and leaves the
/// event unchanged. `global` is not changed: the stage fills it again for the next event.
pub(crate) fn apply_patch(
    event: &mut Event,
    patch: JsonPatch,
    global: &Map<String, Value>,
    timestamp: &str,
) -> Result<(), String> {
    let (mut set, remove) = match patch {
        // Not an object with string keys, or not the event global's shape: converted whole.
        JsonPatch::Replace(returned) => return apply_result(event, returned, timestamp),
        JsonPatch::Keep => (Vec::new(), Vec::new()),
        JsonPatch::Object { set, remove } => (set, remove),
    };
    if remove.iter().any(|k| k == "properties") {
        return Err(NO_PROPERTIES.into());
    }
    let properties = match set.iter().position(|(k, _)| k.as_str() == "properties") {
        Some(i) => set.swap_remove(i).1,
        None => JsonPatch::Keep,
    };
    if matches!(&properties, JsonPatch::Replace(p) if !p.is_object()) {
        return Err(NO_PROPERTIES.into());
    }
    // The returned value of a field: removed, changed, or as it was in the global.
    let field = |name: &str| -> Option<Cow<'_, Value>> {
        if remove.iter().any(|k| k == name) {
            return None;
        }
        let old = global.get(name);
        match set.iter().find(|(k, _)| k.as_str() == name) {
            None => old.map(Cow::Borrowed),
            Some((_, JsonPatch::Replace(new))) => Some(Cow::Borrowed(new)),
            // A field the global does not hold as a string (never so for the three checked).
            Some((_, p)) => {
                let mut v = old.cloned().unwrap_or(Value::Null);
                p.clone().apply(&mut v);
                Some(Cow::Owned(v))
            }
        }
    };
    let (name, distinct_id, ts) = (field("event"), field("distinct_id"), field("timestamp"));
    let change = check_fields(
        name.as_deref(),
        distinct_id.as_deref(),
        ts.as_deref(),
        timestamp,
    )?;
    let mut props = Value::Object(std::mem::take(&mut event.properties));
    properties.apply(&mut props);
    if let Value::Object(p) = props {
        event.properties = p;
    }
    change.apply(event);
    Ok(())
}

/// Applies a returned event given as JSON; `Err` names what is invalid and leaves the event
/// unchanged.
pub(crate) fn apply_result(
    event: &mut Event,
    returned: Value,
    timestamp: &str,
) -> Result<(), String> {
    let Value::Object(mut fields) = returned else {
        return Err(format!(
            "Invalid result: a transformation returns an event or null, not {}",
            kind(&returned)
        ));
    };
    let Some(Value::Object(properties)) = fields.remove("properties") else {
        return Err(NO_PROPERTIES.into());
    };
    let change = check_fields(
        fields.get("event"),
        fields.get("distinct_id"),
        fields.get("timestamp"),
        timestamp,
    )?;
    event.properties = properties;
    change.apply(event);
    Ok(())
}

/// The changes a valid returned event makes besides its properties.
struct Change<'a> {
    name: Option<Cow<'a, str>>,
    distinct_id: Option<Cow<'a, str>>,
    timestamp_us: Option<i64>,
}

impl Change<'_> {
    fn apply(self, event: &mut Event) {
        if let Some(name) = self.name {
            set_string(&mut event.event, name);
        }
        if let Some(id) = self.distinct_id {
            set_string(&mut event.distinct_id, id);
        }
        if let Some(us) = self.timestamp_us {
            event.timestamp_us = us;
        }
    }
}

/// Sets `to` to `s` without writing when it is already equal (as it is for most events).
fn set_string(to: &mut String, s: Cow<'_, str>) {
    if *to != *s {
        *to = s.into_owned();
    }
}

/// Checks the returned `event`, `distinct_id` and `timestamp` (`given` is the timestamp the
/// function got).
fn check_fields<'a>(
    name: Option<&'a Value>,
    distinct_id: Option<&'a Value>,
    timestamp: Option<&Value>,
    given: &str,
) -> Result<Change<'a>, String> {
    let name = match name {
        None => None,
        Some(Value::String(s)) if !s.is_empty() => Some(Cow::Borrowed(s.as_str())),
        Some(_) => return Err("Invalid result: `event` must be a non-empty string".into()),
    };
    let distinct_id = match distinct_id {
        None => None,
        Some(Value::String(s)) if !s.trim().is_empty() => Some(match s.char_indices().nth(200) {
            Some((end, _)) => Cow::Borrowed(&s[..end]),
            None => Cow::Borrowed(s.as_str()),
        }),
        Some(Value::Number(n)) => Some(Cow::Owned(n.to_string())),
        Some(_) => return Err("Invalid result: `distinct_id` must be a non-empty string".into()),
    };
    let mut timestamp_us = None;
    if let Some(Value::String(ts)) = timestamp {
        if ts != given {
            match chrono::DateTime::parse_from_rfc3339(ts) {
                Ok(t) => timestamp_us = Some(t.timestamp_micros()),
                Err(_) => {
                    return Err(format!(
                        "Invalid result: `timestamp` `{ts}` is not an ISO 8601 time"
                    ))
                }
            }
        }
    }
    Ok(Change {
        name,
        distinct_id,
        timestamp_us,
    })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use quill_pipeline::transform::Transform;
    use serde_json::json;

    use crate::transformation::event_global;
    use crate::transformation::tests::{kept, stage};

    use super::*;

    fn event(n: u32, properties: Value) -> Event {
        Event {
            uuid: Default::default(),
            project: 1,
            event: format!("event {n}"),
            distinct_id: format!("user {n}"),
            properties: properties.as_object().cloned().unwrap_or_default(),
            timestamp_us: 1_700_000_000_000_000 + i64::from(n),
            received_us: 0,
        }
    }

    #[test]
    fn each_event_sees_its_own_global() {
        // The stage reuses one `event` global between events: nothing of one may leak into
        // the next. The result also drops every field but `event` and `properties`.
        let (s, _) = stage(
            "return {'event': event.event, 'properties': {'g': event}}",
            json!({}),
        );
        let events = [
            json!({"n": 1, "$current_url": "https://a.io/", "$elements_chain": "a:nth-child=1"}),
            json!({"n": 2, "$current_url": {"not": "a string"}}),
            json!({"n": 3}),
            json!({"n": 4, "$current_url": "https://b.io/"}),
        ];
        for (n, properties) in (1..).zip(events) {
            let mut ev = event(n, properties);
            ev.uuid = uuid::Uuid::new_v4();
            let out = kept(s.apply(ev.clone()));
            assert_eq!(
                Value::Object(out.properties),
                json!({"g": event_global(&ev)})
            );
            assert_eq!((out.event, out.distinct_id), (ev.event, ev.distinct_id));
        }
    }

    #[test]
    fn fields_apply_only_when_all_are_valid() {
        let (s, runtime) = stage(
            "let e := event\ne.properties.x := 1\ne.event := ''\nreturn e",
            json!({}),
        );
        let ev = event(1, json!({"a": "b"}));
        assert_eq!(kept(s.apply(ev.clone())), ev);
        let logs = runtime.logs.recent((1, 7), 1);
        assert!(logs[0].message.contains("`event` must be"), "{logs:?}");

        let (s, _) = stage(
            "let e := event\ne.distinct_id := e.properties.id\nreturn e",
            json!({}),
        );
        let long = "é".repeat(250);
        let out = kept(s.apply(event(1, json!({"id": long}))));
        assert_eq!(out.distinct_id, "é".repeat(200));
        let out = kept(s.apply(event(1, json!({"id": 42}))));
        assert_eq!(out.distinct_id, "42");

        // A distinct id longer than 200 characters is cut even when the function keeps it.
        let (s, _) = stage("return event", json!({}));
        let mut ev = event(1, json!({}));
        ev.distinct_id = "x".repeat(201);
        assert_eq!(kept(s.apply(ev)).distinct_id.len(), 200);
    }
}
