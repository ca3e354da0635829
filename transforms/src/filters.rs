//! Which events a function applies to: PostHog's `filters` object.
//!
//! - `events: [{id: "$pageview", properties: [...]}]`: the event's name is one of these (an
//!   entry whose `id` is null matches every event), and that entry's properties match.
//! - `properties: [{key, value, operator, type: "event"}]`: every one matches.
//!
//! Operators: `exact` (the default; `value` may be a list), `is_not`, `icontains`,
//! `not_icontains`, `regex`, `not_regex`, `is_set`, `is_not_set`, `gt`, `gte`, `lt`, `lte`.
//! Only event properties can be filtered on: transformations run before persons are known.
//! Filters are matched in Rust, not in Hog, so a function that does not apply costs nothing.

use serde_json::{Map, Value};

use crate::function::SpecError;
use quill_pipeline::event::Event;

const KEYS: &[&str] = &[
    "events",
    "actions",
    "properties",
    "bytecode",
    "filter_test_accounts",
    "source",
];

/// Parsed filters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters {
    events: Vec<EventFilter>,
    properties: Vec<PropertyFilter>,
}

#[derive(Debug, Clone, PartialEq)]
struct EventFilter {
    id: Option<String>,
    properties: Vec<PropertyFilter>,
}

#[derive(Debug, Clone, PartialEq)]
struct PropertyFilter {
    key: String,
    op: Op,
}

#[derive(Debug, Clone)]
enum Op {
    Exact(Vec<Value>),
    IsNot(Vec<Value>),
    IContains(String),
    NotIContains(String),
    Regex(regex::Regex),
    NotRegex(regex::Regex),
    IsSet,
    IsNotSet,
    Compare(std::cmp::Ordering, bool, f64),
}

impl PartialEq for Op {
    fn eq(&self, other: &Self) -> bool {
        format!("{self:?}") == format!("{other:?}")
    }
}

impl Filters {
    /// Parses a `filters` object.
    pub fn parse(filters: &Map<String, Value>) -> Result<Filters, SpecError> {
        for key in filters.keys() {
            if !KEYS.contains(&key.as_str()) {
                return Err(SpecError::new(
                    format!("filters.{key}"),
                    format!("unknown filter `{key}`"),
                ));
            }
        }
        if let Some(actions) = filters.get("actions").and_then(Value::as_array) {
            if !actions.is_empty() {
                return Err(SpecError::new(
                    "filters.actions",
                    "action filters are not supported yet",
                ));
            }
        }
        let mut events = Vec::new();
        for (i, entry) in list(filters.get("events"), "filters.events")?
            .iter()
            .enumerate()
        {
            let attr = format!("filters.events.{i}");
            let id = match entry.get("id") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(_) => return Err(SpecError::new(attr, "`id` is an event name")),
            };
            let properties = property_filters(entry.get("properties"), &attr)?;
            events.push(EventFilter { id, properties });
        }
        let properties = property_filters(filters.get("properties"), "filters")?;
        Ok(Filters { events, properties })
    }

    /// Whether the function applies to `event`.
    pub fn matches(&self, event: &Event) -> bool {
        let props = &event.properties;
        if !self.events.is_empty()
            && !self.events.iter().any(|f| {
                f.id.as_deref().is_none_or(|id| id == event.event)
                    && f.properties.iter().all(|p| p.matches(props))
            })
        {
            return false;
        }
        self.properties.iter().all(|p| p.matches(props))
    }
}

fn list<'a>(value: Option<&'a Value>, attr: &str) -> Result<&'a [Value], SpecError> {
    match value {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(SpecError::new(attr, "expected a list")),
    }
}

fn property_filters(value: Option<&Value>, parent: &str) -> Result<Vec<PropertyFilter>, SpecError> {
    let attr = format!("{parent}.properties");
    let mut out = Vec::new();
    for (i, p) in list(value, &attr)?.iter().enumerate() {
        let attr = format!("{attr}.{i}");
        let key = p
            .get("key")
            .and_then(Value::as_str)
            .ok_or_else(|| SpecError::new(&attr, "a property filter needs a string `key`"))?;
        match p.get("type").and_then(Value::as_str) {
            None | Some("event") => {}
            Some(other) => {
                return Err(SpecError::new(
                    attr,
                    format!("`{other}` property filters are not supported in transformations"),
                ))
            }
        }
        let value = p.get("value").cloned().unwrap_or(Value::Null);
        let values = match &value {
            Value::Array(items) => items.clone(),
            Value::Null => Vec::new(),
            v => vec![v.clone()],
        };
        let text = values.first().map(text_of).unwrap_or_default();
        let regex = || {
            regex::Regex::new(&text)
                .map_err(|e| SpecError::new(&attr, format!("invalid regex: {e}")))
        };
        let number = || {
            text.parse::<f64>()
                .map_err(|_| SpecError::new(&attr, "expected a number"))
        };
        use std::cmp::Ordering::*;
        let op = match p.get("operator").and_then(Value::as_str).unwrap_or("exact") {
            "exact" => Op::Exact(values),
            "is_not" => Op::IsNot(values),
            "icontains" => Op::IContains(text.to_lowercase()),
            "not_icontains" => Op::NotIContains(text.to_lowercase()),
            "regex" => Op::Regex(regex()?),
            "not_regex" => Op::NotRegex(regex()?),
            "is_set" => Op::IsSet,
            "is_not_set" => Op::IsNotSet,
            "gt" => Op::Compare(Greater, false, number()?),
            "gte" => Op::Compare(Greater, true, number()?),
            "lt" => Op::Compare(Less, false, number()?),
            "lte" => Op::Compare(Less, true, number()?),
            other => {
                return Err(SpecError::new(
                    attr,
                    format!("unsupported operator `{other}`"),
                ))
            }
        };
        out.push(PropertyFilter {
            key: key.to_string(),
            op,
        });
    }
    Ok(out)
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl PropertyFilter {
    fn matches(&self, props: &Map<String, Value>) -> bool {
        let value = props.get(&self.key).filter(|v| !v.is_null());
        let text = || value.map(text_of).unwrap_or_default();
        match &self.op {
            Op::IsSet => value.is_some(),
            Op::IsNotSet => value.is_none(),
            Op::Exact(values) => value.is_some() && values.iter().any(|v| text_of(v) == text()),
            Op::IsNot(values) => !values
                .iter()
                .any(|v| value.is_some() && text_of(v) == text()),
            Op::IContains(needle) => value.is_some() && text().to_lowercase().contains(needle),
            Op::NotIContains(needle) => !text().to_lowercase().contains(needle.as_str()),
            Op::Regex(re) => value.is_some() && re.is_match(&text()),
            Op::NotRegex(re) => !re.is_match(&text()),
            Op::Compare(ord, or_equal, bound) => match text().parse::<f64>() {
                Ok(n) => n
                    .partial_cmp(bound)
                    .is_some_and(|o| o == *ord || (*or_equal && o.is_eq())),
                Err(_) => false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(name: &str, props: Value) -> Event {
        Event {
            uuid: Default::default(),
            project: 1,
            event: name.into(),
            distinct_id: "d".into(),
            properties: props.as_object().cloned().unwrap_or_default(),
            timestamp_us: 0,
            received_us: 0,
        }
    }

    fn parse(v: Value) -> Filters {
        Filters::parse(v.as_object().unwrap()).unwrap()
    }

    #[test]
    fn event_names() {
        let f = parse(json!({"events": [{"id": "$pageview", "type": "events"}]}));
        assert!(f.matches(&event("$pageview", json!({}))));
        assert!(!f.matches(&event("$autocapture", json!({}))));
        assert!(parse(json!({})).matches(&event("x", json!({}))));
        assert!(parse(json!({"events": [{"id": null}]})).matches(&event("x", json!({}))));
    }

    #[test]
    fn properties() {
        let f = parse(json!({"properties": [
            {"key": "plan", "value": ["pro", "team"], "operator": "exact", "type": "event"},
            {"key": "n", "value": 3, "operator": "gt"},
            {"key": "email", "operator": "is_set"},
        ]}));
        assert!(f.matches(&event("x", json!({"plan": "pro", "n": 4, "email": "a"}))));
        assert!(!f.matches(&event("x", json!({"plan": "free", "n": 4, "email": "a"}))));
        assert!(!f.matches(&event("x", json!({"plan": "pro", "n": 3, "email": "a"}))));
        assert!(!f.matches(&event("x", json!({"plan": "pro", "n": 4}))));
    }

    #[test]
    fn unknown_keys_and_operators_are_errors() {
        let e = Filters::parse(json!({"colour": 1}).as_object().unwrap()).unwrap_err();
        assert_eq!(e.attr, "filters.colour");
        let e = Filters::parse(
            json!({"properties": [{"key": "a", "operator": "fuzzy"}]})
                .as_object()
                .unwrap(),
        )
        .unwrap_err();
        assert_eq!(e.attr, "filters.properties.0");
    }
}
