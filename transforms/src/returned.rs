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

use quill_hog::patch::JsonPatch;
use quill_pipeline::event::Event;
use serde_json::{Map, Value};

const NO_PROPERTIES: &str = "Invalid result: the returned event has no `properties` object";

/// Applies a returned event given as a patch against the `event` global, `global` (without its
/// `properties`, which are back in `event.properties`). `Err` names what is invalid and leaves
/// the event unchanged.
pub(crate) fn apply_patch(
    event: &mut Event,
    patch: JsonPatch,
    global: Map<String, Value>,
    timestamp: &str,
) -> Result<(), String> {
    let mut fields = Value::Object(global);
    let properties = match patch {
        // Not an object with string keys, or not the event global's shape: converted whole.
        JsonPatch::Replace(returned) => return apply_result(event, returned, timestamp),
        JsonPatch::Keep => JsonPatch::Keep,
        JsonPatch::Object { mut set, remove } => {
            if remove.iter().any(|k| k == "properties") {
                return Err(NO_PROPERTIES.into());
            }
            let properties = match set.iter().position(|(k, _)| k.as_str() == "properties") {
                Some(i) => set.swap_remove(i).1,
                None => JsonPatch::Keep,
            };
            // Only the other fields: the properties change once the rest is known to be valid.
            JsonPatch::Object { set, remove }.apply(&mut fields);
            properties
        }
    };
    if matches!(&properties, JsonPatch::Replace(p) if !p.is_object()) {
        return Err(NO_PROPERTIES.into());
    }
    let Value::Object(fields) = fields else {
        return Err(NO_PROPERTIES.into());
    };
    let change = check_fields(&fields, timestamp)?;
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
    let change = check_fields(&fields, timestamp)?;
    event.properties = properties;
    change.apply(event);
    Ok(())
}

/// The changes a valid returned event makes besides its properties.
struct Change {
    name: Option<String>,
    distinct_id: Option<String>,
    timestamp_us: Option<i64>,
}

impl Change {
    fn apply(self, event: &mut Event) {
        if let Some(name) = self.name {
            event.event = name;
        }
        if let Some(id) = self.distinct_id {
            event.distinct_id = id;
        }
        if let Some(us) = self.timestamp_us {
            event.timestamp_us = us;
        }
    }
}

/// Checks the returned `event`, `distinct_id` and `timestamp` (`timestamp` is the one given).
fn check_fields(fields: &Map<String, Value>, timestamp: &str) -> Result<Change, String> {
    let name = match fields.get("event") {
        None => None,
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(_) => return Err("Invalid result: `event` must be a non-empty string".into()),
    };
    let distinct_id = match fields.get("distinct_id") {
        None => None,
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.chars().take(200).collect()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => return Err("Invalid result: `distinct_id` must be a non-empty string".into()),
    };
    let mut timestamp_us = None;
    if let Some(Value::String(ts)) = fields.get("timestamp") {
        if ts != timestamp {
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
