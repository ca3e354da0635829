//! Conversions between Hog values and JSON: for globals, host calls, results, `jsonParse` and
//! `jsonStringify`.
//!
//! Hog values that JSON can't express convert the way PostHog's VM does: dates become
//! `{"__hogDate__": true, ...}` / `{"__hogDateTime__": true, ...}` objects, errors become
//! `{"__hogError__": true, ...}`, functions become the string `fn<name(argc)>`. Objects keep their
//! key order when parsed.

use std::fmt::Write;

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{json, Map, Value as Json};

use crate::error::VmError;
use crate::heap::Heap;
use crate::print::{js_number, print_string_output};
use crate::value::{Dict, Key, Value};

/// Nesting depth past which conversions stop (deeper parts become `null`).
pub const MAX_JSON_DEPTH: usize = 128;

/// Converts JSON to a Hog value (registered on the heap).
pub fn json_to_value(heap: &mut Heap, j: &Json) -> Value {
    json_depth(heap, j, 0)
}

/// A JSON scalar as a Hog value: integers that fit `i64` stay integers, other numbers are
/// floats. Arrays and objects are the caller's to convert (eagerly here, lazily in
/// [`crate::dict`]); given one, this returns null.
pub(crate) fn json_scalar(j: &Json) -> Value {
    match j {
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::str(s),
        Json::Null | Json::Array(_) | Json::Object(_) => Value::Null,
    }
}

fn json_depth(heap: &mut Heap, j: &Json, depth: usize) -> Value {
    if depth > MAX_JSON_DEPTH {
        return Value::Null;
    }
    match j {
        Json::Array(a) => {
            let items = a.iter().map(|x| json_depth(heap, x, depth + 1)).collect();
            heap.array(items)
        }
        Json::Object(m) => {
            if let Some(v) = special_object(m) {
                return v;
            }
            let map = m
                .iter()
                .map(|(k, v)| (Key::Str(k.as_str().into()), json_depth(heap, v, depth + 1)))
                .collect();
            heap.dict(map)
        }
        scalar => json_scalar(scalar),
    }
}

/// Whether `serde_json::Map` iterates in key order (its default), rather than in insertion
/// order (its `preserve_order` feature, which any crate in the build can turn on).
fn maps_are_sorted() -> bool {
    static SORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SORTED.get_or_init(|| {
        let mut m = Map::new();
        m.insert("b".into(), Json::Null);
        m.insert("a".into(), Json::Null);
        m.keys().next().map(String::as_str) == Some("a")
    })
}

pub(crate) fn special_object(m: &Map<String, Json>) -> Option<Value> {
    // Both markers start with `_`. Scanning a small object's keys for one is cheaper than two
    // lookups (each a string comparison per key of the node searched); most objects have none.
    // In a sorted map the scan stops at the first key past `_` (lowercase names, which most are).
    if m.len() <= 16 {
        let sorted = maps_are_sorted();
        let mut marked = false;
        for k in m.keys() {
            match k.as_bytes().first() {
                Some(b'_') => {
                    marked = true;
                    break;
                }
                Some(&c) if sorted && c > b'_' => break,
                _ => {}
            }
        }
        if !marked {
            return None;
        }
    }
    if m.get("__hogDateTime__") == Some(&Json::Bool(true)) {
        return Some(Value::DateTime {
            dt: m.get("dt")?.as_f64()?,
            zone: m.get("zone").and_then(Json::as_str).unwrap_or("UTC").into(),
        });
    }
    if m.get("__hogDate__") == Some(&Json::Bool(true)) {
        return Some(Value::Date {
            year: i32::try_from(m.get("year")?.as_i64()?).ok()?,
            month: u32::try_from(m.get("month")?.as_i64()?).ok()?,
            day: u32::try_from(m.get("day")?.as_i64()?).ok()?,
        });
    }
    None
}

/// Converts a Hog value to JSON (cycles and over-deep parts become `null`).
pub fn value_to_json(v: &Value) -> Json {
    to_json_depth(v, &mut Vec::new())
}

pub(crate) fn to_json_depth(v: &Value, marked: &mut Vec<usize>) -> Json {
    if marked.len() > MAX_JSON_DEPTH {
        return Json::Null;
    }
    let ptr = match v {
        Value::Error(rc) => Some(std::rc::Rc::as_ptr(rc) as usize),
        other => other.container_id(),
    };
    if let Some(p) = ptr {
        if marked.contains(&p) {
            return Json::Null;
        }
        marked.push(p);
    }
    let out = match v {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => json!(i),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(Json::Number)
            .unwrap_or(Json::Null),
        Value::Str(s) => Json::String(String::from(&**s)),
        Value::Array(a) | Value::Tuple(a) => Json::Array(
            a.0.borrow()
                .iter()
                .map(|x| to_json_depth(x, marked))
                .collect(),
        ),
        Value::Dict(d) => {
            let mut m = Map::new();
            for (k, val) in d.borrow().iter() {
                let key = match k {
                    Key::Str(s) => String::from(&**s),
                    other => print_string_output(&other.to_value()),
                };
                m.insert(key, to_json_depth(val, marked));
            }
            Json::Object(m)
        }
        Value::Date { year, month, day } => {
            json!({"__hogDate__": true, "year": year, "month": month, "day": day})
        }
        Value::DateTime { dt, zone } => json!({"__hogDateTime__": true, "dt": dt, "zone": &**zone}),
        Value::Error(e) => json!({
            "__hogError__": true,
            "type": &*e.kind,
            "message": &*e.message,
            "payload": to_json_depth(&e.payload.borrow(), marked),
        }),
        Value::Callable(_) | Value::Closure(_) => Json::String(crate::print::print_value(v)),
    };
    if ptr.is_some() {
        marked.pop();
    }
    out
}

/// Parses JSON text into a Hog value, keeping object key order.
pub fn parse_json(heap: &mut Heap, text: &str) -> Result<Value, String> {
    let mut de = serde_json::Deserializer::from_str(text);
    let v = Seed { heap }
        .deserialize(&mut de)
        .map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    Ok(v)
}

struct Seed<'a> {
    heap: &'a mut Heap,
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v)
            .map(Value::Int)
            .unwrap_or(Value::Float(v as f64)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::str(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(Seed {
            heap: &mut *self.heap,
        })? {
            items.push(v);
        }
        Ok(self.heap.array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Dict::default();
        while let Some(k) = map.next_key::<String>()? {
            let v = map.next_value_seed(Seed {
                heap: &mut *self.heap,
            })?;
            out.insert(Key::Str(k.into()), v);
        }
        Ok(self.heap.dict(out))
    }
}

/// `JSON.stringify` with an optional indent, as PostHog's `jsonStringify`.
pub fn stringify(v: &Value, indent: usize) -> Result<String, VmError> {
    let mut out = String::new();
    write_json(v, indent, 0, &mut out, &mut Vec::new());
    Ok(out)
}

fn newline(out: &mut String, indent: usize, level: usize) {
    if indent > 0 {
        out.push('\n');
        out.extend(std::iter::repeat_n(' ', indent * level));
    }
}

fn write_json(v: &Value, indent: usize, level: usize, out: &mut String, marked: &mut Vec<usize>) {
    if level > MAX_JSON_DEPTH {
        out.push_str("null");
        return;
    }
    let ptr = v.container_id();
    if let Some(p) = ptr {
        if marked.contains(&p) {
            out.push_str("null");
            return;
        }
        marked.push(p);
    }
    let colon = if indent > 0 { ": " } else { ":" };
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => {
            if f.is_finite() {
                out.push_str(&js_number(*f))
            } else {
                out.push_str("null")
            }
        }
        Value::Str(s) => out.push_str(&Json::String(s.to_string()).to_string()),
        Value::Array(a) | Value::Tuple(a) => {
            let items = a.0.borrow();
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, indent, level + 1);
                write_json(item, indent, level + 1, out, marked);
            }
            if !items.is_empty() {
                newline(out, indent, level);
            }
            out.push(']');
        }
        Value::Dict(d) => {
            let map = d.borrow();
            out.push('{');
            for (i, (k, val)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, indent, level + 1);
                let key = print_string_output(&k.to_value());
                out.push_str(&Json::String(key).to_string());
                out.push_str(colon);
                write_json(val, indent, level + 1, out, marked);
            }
            if !map.is_empty() {
                newline(out, indent, level);
            }
            out.push('}');
        }
        other => {
            let j = value_to_json(other);
            let text = if indent > 0 {
                serde_json::to_string_pretty(&j).unwrap_or_default()
            } else {
                j.to_string()
            };
            out.push_str(&text);
        }
    }
    if ptr.is_some() {
        marked.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The early stop of the marker scan agrees with looking the markers up, whatever keys
    /// come before or after them (`$` and uppercase sort before `_`, lowercase after).
    #[test]
    fn special_objects_found_among_any_keys() {
        let date = json!({"__hogDate__": true, "year": 2024, "month": 1, "day": 2});
        let datetime = json!({"__hogDateTime__": true, "dt": 1.5, "zone": "UTC"});
        for extra in ["", "$set", "A", "Z", "^", "`", "a", "zz", "_", "__"] {
            for (marked, is_special) in [(&date, true), (&datetime, true), (&json!({}), false)] {
                let mut m = marked.as_object().unwrap().clone();
                if !extra.is_empty() {
                    m.insert(extra.into(), json!(1));
                }
                let slow = m.get("__hogDate__") == Some(&Json::Bool(true))
                    || m.get("__hogDateTime__") == Some(&Json::Bool(true));
                assert_eq!(slow, is_special, "{m:?}");
                assert_eq!(special_object(&m).is_some(), slow, "{m:?}");
            }
        }
    }

    #[test]
    fn parse_keeps_key_order_and_stringify_matches_js() {
        let mut heap = Heap::new(0);
        let v = parse_json(&mut heap, r#"{"b": 1, "a": [1.5, "x", null, true]}"#).unwrap();
        assert_eq!(
            stringify(&v, 0).unwrap(),
            r#"{"b":1,"a":[1.5,"x",null,true]}"#
        );
        assert_eq!(
            stringify(&v, 2).unwrap(),
            "{\n  \"b\": 1,\n  \"a\": [\n    1.5,\n    \"x\",\n    null,\n    true\n  ]\n}"
        );
        assert!(parse_json(&mut heap, "{").is_err());
    }
}
