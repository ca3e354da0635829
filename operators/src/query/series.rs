//! Series (`EventsNode`) and a query's global filters, parsed into matchers.
//!
//! An [`EventsNode`] matches an event when the event name is the node's (or the node has no
//! event: all events), and the node's filters and the query's global filters pass. Event names
//! are interned at build time even if no event carries them yet, so that events arriving later
//! under that name match.

use std::sync::Arc;

use quill_pipeline::graph::{EventRow, Interner, PropValue, Sym};
use serde_json::Value;

use crate::QueryError;

use super::filters::{Filters, Scope};

/// One parsed `EventsNode` (a trends series, a funnel step, a retention entity).
#[derive(Debug, Clone)]
pub struct EventsNode {
    /// The event name; `None` matches every event.
    pub event: Option<String>,
    event_sym: Option<Sym>,
    /// `name` as given (PostHog's display name).
    pub name: Option<String>,
    /// `custom_name` as given.
    pub custom_name: Option<String>,
    /// `math` as given (each operator validates the values it supports).
    pub math: Option<String>,
    /// `math_property` as given.
    pub math_property: Option<String>,
    /// The node's own `properties`.
    pub filters: Filters,
}

impl EventsNode {
    /// Parses a node at `field` (e.g. `series[0]`). Only `kind: "EventsNode"` (or no kind) is
    /// supported.
    pub fn parse(value: &Value, field: &str, interner: &Arc<Interner>) -> Result<Self, QueryError> {
        let sub = |name: &str| format!("{field}.{name}");
        if !value.is_object() {
            return Err(QueryError::new(field, "expected an EventsNode object"));
        }
        match value.get("kind").and_then(Value::as_str) {
            None | Some("EventsNode") => {}
            Some(other) => {
                return Err(QueryError::new(
                    sub("kind"),
                    format!("unsupported series kind {other:?}; expected EventsNode"),
                ))
            }
        }
        let string = |name: &str| -> Result<Option<String>, QueryError> {
            match value.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(QueryError::new(
                    sub(name),
                    format!("expected a string, got {other}"),
                )),
            }
        };
        let event = string("event")?;
        let event_sym = event.as_deref().map(|e| interner.intern(e));
        let filters = Filters::parse(value.get("properties"), &sub("properties"), interner)?;
        Ok(EventsNode {
            event,
            event_sym,
            name: string("name")?,
            custom_name: string("custom_name")?,
            math: string("math")?,
            math_property: string("math_property")?,
            filters,
        })
    }

    /// A node for one event name (or all events) with no filters, for defaults such as
    /// retention's `$pageview`.
    pub fn for_event(event: Option<&str>, interner: &Arc<Interner>) -> Self {
        EventsNode {
            event: event.map(str::to_string),
            event_sym: event.map(|e| interner.intern(e)),
            name: event.map(str::to_string),
            custom_name: None,
            math: None,
            math_property: None,
            filters: Filters::none(interner),
        }
    }

    /// Adds the query's global filters to this node's.
    pub fn with_global(mut self, global: &Filters) -> Self {
        self.filters = self.filters.and(global.clone());
        self
    }

    /// Whether the event matches the node's event name only (no property filters).
    pub fn matches_event(&self, row: &EventRow) -> bool {
        self.event_sym.is_none_or(|e| e == row.event())
    }

    /// Whether the event matches the node: event name and filters.
    pub fn matches(&self, row: &EventRow, person_props: &[(Sym, PropValue)]) -> bool {
        self.matches_event(row) && self.filters.matches(row, person_props)
    }

    /// The event name as PostHog labels the series: the event, or `All events`.
    pub fn label(&self) -> String {
        self.event
            .clone()
            .unwrap_or_else(|| "All events".to_string())
    }

    /// The display name: `name`, else the label.
    pub fn display_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.label())
    }

    /// The property keys the node's filters read in `scope`.
    pub fn keys(&self, scope: Scope) -> Vec<String> {
        self.filters.keys(scope)
    }
}

/// Parses a query's global `properties` (list or group); `filterTestAccounts` is accepted and
/// ignored, because Quill has no test-account filter configured.
pub fn global_filters(query: &Value, interner: &Arc<Interner>) -> Result<Filters, QueryError> {
    match query.get("filterTestAccounts") {
        None | Some(Value::Null) | Some(Value::Bool(_)) => {}
        Some(other) => {
            return Err(QueryError::new(
                "filterTestAccounts",
                format!("expected a boolean, got {other}"),
            ))
        }
    }
    Filters::parse(query.get("properties"), "properties", interner)
}

/// Parses a query's `series` list (at least one node).
pub fn parse_series(
    query: &Value,
    interner: &Arc<Interner>,
) -> Result<Vec<EventsNode>, QueryError> {
    let items = query
        .get("series")
        .and_then(Value::as_array)
        .ok_or_else(|| QueryError::new("series", "expected a list of EventsNode"))?;
    if items.is_empty() {
        return Err(QueryError::new("series", "needs at least one series"));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| EventsNode::parse(item, &format!("series[{i}]"), interner))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use quill_pipeline::graph::Props;
    use serde_json::json;

    #[test]
    fn matches_names_interned_before_any_event() {
        let interner = Interner::new();
        let node = EventsNode::parse(
            &json!({"kind": "EventsNode", "event": "signup", "properties": [{"key": "plan", "value": "pro"}]}),
            "series[0]",
            &interner,
        )
        .unwrap();
        let plan = interner.intern("plan");
        let pro = (plan, interner.value(&json!("pro")).unwrap());
        let row = EventRow {
            ts_ms: 0,
            offset: 0,
            props: Props::new(interner.intern("signup"), [pro]),
        };
        assert!(node.matches(&row, &[]));
        let other = EventRow {
            props: Props::new(interner.intern("login"), [pro]),
            ..row.clone()
        };
        assert!(!node.matches(&other, &[]));
        assert_eq!(node.label(), "signup");
        let all = EventsNode::for_event(None, &interner);
        assert!(all.matches(&other, &[]));
        assert_eq!(all.label(), "All events");
        let global = global_filters(
            &json!({"properties": [{"key": "plan", "value": "free"}]}),
            &interner,
        )
        .unwrap();
        assert!(!node.with_global(&global).matches(&row, &[]));
    }

    #[test]
    fn errors() {
        let interner = Interner::new();
        let err = parse_series(
            &json!({"series": [{"event": "a"}, {"kind": "ActionsNode", "id": 1}]}),
            &interner,
        )
        .unwrap_err();
        assert_eq!(err.field, "series[1].kind");
        let err = parse_series(&json!({"series": [{"event": 5}]}), &interner).unwrap_err();
        assert_eq!(err.field, "series[0].event");
    }
}
