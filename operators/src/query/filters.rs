//! Property filters: PostHog's `properties` lists and `{type: AND|OR, values}` groups, parsed
//! once into a [`Filters`] tree and matched against projected rows and person properties.
//!
//! Comparison rules (PostHog's HogQL property expressions):
//! - `exact` / `is_not` compare string forms, case-sensitively; a list value means "any of" /
//!   "none of". Numbers compare in JSON form (`5`, `2.5`), booleans as `true` / `false`.
//! - `icontains` / `not_icontains` are case-insensitive substring tests; `regex` / `not_regex`
//!   search (unanchored) with the pattern compiled at build time.
//! - `gt`, `gte`, `lt`, `lte` parse both sides as numbers; a non-numeric side never matches.
//! - `is_date_before` / `is_date_after` parse both sides as dates (see [`super::dates`]).
//! - A missing (or null) property fails every positive test and passes the negative ones
//!   (`is_not`, `not_icontains`, `not_regex`), as PostHog's `ifNull(..., 1)` does; `is_set`
//!   / `is_not_set` test presence.
//! - Empty lists and groups match everything.

use std::sync::Arc;

use quill_pipeline::graph::row::lookup;
use quill_pipeline::graph::{EventRow, Interner, PropValue, Sym};
use regex::Regex;
use serde_json::Value;

use crate::QueryError;

use super::dates::parse_absolute;

/// Whose property a filter or breakdown reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The event's properties.
    Event,
    /// The person's properties.
    Person,
}

impl Scope {
    /// Parses PostHog's `type` (absent means `event`); other types are unsupported.
    pub fn parse(value: Option<&Value>, field: &str) -> Result<Self, QueryError> {
        match value.and_then(Value::as_str) {
            None | Some("event") => Ok(Scope::Event),
            Some("person") => Ok(Scope::Person),
            Some(other) => Err(QueryError::new(
                field,
                format!("unsupported property type {other:?}; expected event or person"),
            )),
        }
    }
}

/// A comparison operator.
#[derive(Debug, Clone)]
enum Op {
    Exact,
    IsNot,
    IContains,
    NotIContains,
    Regex(Vec<Regex>),
    NotRegex(Vec<Regex>),
    Gt,
    Gte,
    Lt,
    Lte,
    IsSet,
    IsNotSet,
    DateBefore,
    DateAfter,
}

/// One `{key, value, operator, type}` test.
#[derive(Debug, Clone)]
struct Leaf {
    scope: Scope,
    key: String,
    key_sym: Sym,
    op: Op,
    /// The value's string forms (lowercased for the `icontains` operators).
    texts: Vec<String>,
}

#[derive(Debug, Clone)]
enum Node {
    Leaf(Leaf),
    Group { all: bool, children: Vec<Node> },
}

/// A parsed filter tree, ready to match rows.
#[derive(Debug, Clone)]
pub struct Filters {
    root: Option<Node>,
    interner: Arc<Interner>,
}

impl Filters {
    /// No filter: matches everything.
    pub fn none(interner: &Arc<Interner>) -> Self {
        Filters {
            root: None,
            interner: interner.clone(),
        }
    }

    /// Parses a `properties` value: absent/null, a list (all must match) or a group.
    /// `field` is the path of the value itself, e.g. `series[0].properties`.
    pub fn parse(
        value: Option<&Value>,
        field: &str,
        interner: &Arc<Interner>,
    ) -> Result<Self, QueryError> {
        let root = match value {
            None | Some(Value::Null) => None,
            Some(v) => Some(parse_node(v, field, interner)?),
        };
        Ok(Filters {
            root,
            interner: interner.clone(),
        })
    }

    /// Both filters must match.
    pub fn and(self, other: Filters) -> Filters {
        let root = match (self.root, other.root) {
            (None, r) | (r, None) => r,
            (Some(a), Some(b)) => Some(Node::Group {
                all: true,
                children: vec![a, b],
            }),
        };
        Filters {
            root,
            interner: self.interner,
        }
    }

    /// Whether the filter is empty.
    pub fn is_empty(&self) -> bool {
        self.root.is_none()
    }

    /// Whether an event (with its person's properties) passes.
    pub fn matches(&self, row: &EventRow, person_props: &[(Sym, PropValue)]) -> bool {
        match &self.root {
            None => true,
            Some(node) => node_matches(node, row, person_props, &self.interner),
        }
    }

    /// The property keys the filter reads in `scope`, deduplicated.
    pub fn keys(&self, scope: Scope) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(node) = &self.root {
            collect_keys(node, scope, &mut out);
        }
        out.sort();
        out.dedup();
        out
    }
}

fn collect_keys(node: &Node, scope: Scope, out: &mut Vec<String>) {
    match node {
        Node::Leaf(leaf) if leaf.scope == scope => out.push(leaf.key.clone()),
        Node::Leaf(_) => {}
        Node::Group { children, .. } => children.iter().for_each(|c| collect_keys(c, scope, out)),
    }
}

fn parse_node(value: &Value, field: &str, interner: &Interner) -> Result<Node, QueryError> {
    match value {
        Value::Array(items) => Ok(Node::Group {
            all: true,
            children: parse_children(items, field, interner)?,
        }),
        Value::Object(map) if map.contains_key("values") => {
            let all = match map.get("type").and_then(Value::as_str) {
                None | Some("AND") => true,
                Some("OR") => false,
                Some(other) => {
                    return Err(QueryError::new(
                        format!("{field}.type"),
                        format!("expected AND or OR, got {other:?}"),
                    ))
                }
            };
            let items = map.get("values").and_then(Value::as_array).ok_or_else(|| {
                QueryError::new(format!("{field}.values"), "expected a list of filters")
            })?;
            let field = format!("{field}.values");
            Ok(Node::Group {
                all,
                children: parse_children(items, &field, interner)?,
            })
        }
        Value::Object(_) => parse_leaf(value, field, interner).map(Node::Leaf),
        other => Err(QueryError::new(
            field,
            format!("expected a filter list or group, got {other}"),
        )),
    }
}

fn parse_children(
    items: &[Value],
    field: &str,
    interner: &Interner,
) -> Result<Vec<Node>, QueryError> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| parse_node(item, &format!("{field}[{i}]"), interner))
        .collect()
}

fn parse_leaf(value: &Value, field: &str, interner: &Interner) -> Result<Leaf, QueryError> {
    let sub = |name: &str| format!("{field}.{name}");
    let scope = Scope::parse(value.get("type"), &sub("type"))?;
    let key = value
        .get("key")
        .and_then(Value::as_str)
        .ok_or_else(|| QueryError::new(sub("key"), "expected a property name"))?
        .to_string();
    let raw = value.get("value").unwrap_or(&Value::Null);
    let mut texts: Vec<String> = match raw {
        Value::Null => Vec::new(),
        Value::Array(items) => items.iter().filter_map(text_of).collect(),
        other => text_of(other).into_iter().collect(),
    };
    let operator = value
        .get("operator")
        .and_then(Value::as_str)
        .unwrap_or("exact");
    let needs_value = !matches!(operator, "is_set" | "is_not_set");
    if needs_value && texts.is_empty() {
        return Err(QueryError::new(
            sub("value"),
            format!("operator {operator} needs a value"),
        ));
    }
    let compile = |texts: &[String]| -> Result<Vec<Regex>, QueryError> {
        texts
            .iter()
            .map(|t| {
                Regex::new(t)
                    .map_err(|e| QueryError::new(sub("value"), format!("invalid regex: {e}")))
            })
            .collect()
    };
    let numeric = |texts: &[String]| -> Result<(), QueryError> {
        match texts.first().map(|t| t.trim().parse::<f64>()) {
            Some(Ok(_)) => Ok(()),
            _ => Err(QueryError::new(
                sub("value"),
                format!("operator {operator} needs a number"),
            )),
        }
    };
    let op = match operator {
        "exact" => Op::Exact,
        "is_not" => Op::IsNot,
        "icontains" | "not_icontains" => {
            texts = texts.iter().map(|t| t.to_lowercase()).collect();
            if operator == "icontains" {
                Op::IContains
            } else {
                Op::NotIContains
            }
        }
        "regex" => Op::Regex(compile(&texts)?),
        "not_regex" => Op::NotRegex(compile(&texts)?),
        "gt" | "gte" | "lt" | "lte" => {
            numeric(&texts)?;
            match operator {
                "gt" => Op::Gt,
                "gte" => Op::Gte,
                "lt" => Op::Lt,
                _ => Op::Lte,
            }
        }
        "is_set" => Op::IsSet,
        "is_not_set" => Op::IsNotSet,
        "is_date_before" | "is_date_after" => {
            if parse_absolute(&texts[0]).is_none() {
                return Err(QueryError::new(sub("value"), "expected an absolute date"));
            }
            if operator == "is_date_before" {
                Op::DateBefore
            } else {
                Op::DateAfter
            }
        }
        other => {
            return Err(QueryError::new(
                sub("operator"),
                format!("unsupported operator {other:?}"),
            ))
        }
    };
    let key_sym = interner.intern(&key);
    Ok(Leaf {
        scope,
        key,
        key_sym,
        op,
        texts,
    })
}

/// A filter value's string form (numbers in JSON form, booleans as words).
fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => n.as_f64().map(quill_pipeline::graph::row::format_number),
        Value::Bool(b) => Some(b.to_string()),
        other => Some(other.to_string()),
    }
}

fn node_matches(
    node: &Node,
    row: &EventRow,
    person: &[(Sym, PropValue)],
    interner: &Interner,
) -> bool {
    match node {
        Node::Leaf(leaf) => {
            let value = match leaf.scope {
                Scope::Event => row.prop(leaf.key_sym),
                Scope::Person => lookup(person, leaf.key_sym),
            };
            leaf_matches(leaf, value, interner)
        }
        Node::Group {
            all: true,
            children,
        } => children
            .iter()
            .all(|c| node_matches(c, row, person, interner)),
        Node::Group {
            all: false,
            children,
        } => {
            children.is_empty()
                || children
                    .iter()
                    .any(|c| node_matches(c, row, person, interner))
        }
    }
}

fn leaf_matches(leaf: &Leaf, value: Option<PropValue>, interner: &Interner) -> bool {
    let Some(value) = value else {
        return matches!(
            leaf.op,
            Op::IsNot | Op::NotIContains | Op::NotRegex(_) | Op::IsNotSet
        );
    };
    let number = |v: PropValue| v.as_f64(interner);
    let threshold = || {
        leaf.texts
            .first()
            .and_then(|t| t.trim().parse::<f64>().ok())
    };
    let compare = |test: fn(f64, f64) -> bool| match (number(value), threshold()) {
        (Some(a), Some(b)) => test(a, b),
        _ => false,
    };
    let date = || parse_absolute(&value.to_text(interner));
    let bound = || leaf.texts.first().and_then(|t| parse_absolute(t));
    match &leaf.op {
        Op::IsSet => true,
        Op::IsNotSet => false,
        Op::Exact => {
            let text = value.to_text(interner);
            leaf.texts.iter().any(|t| **t == *text)
        }
        Op::IsNot => {
            let text = value.to_text(interner);
            !leaf.texts.iter().any(|t| **t == *text)
        }
        Op::IContains | Op::NotIContains => {
            let text = value.to_text(interner).to_lowercase();
            let hit = leaf.texts.iter().any(|t| text.contains(t.as_str()));
            hit == matches!(leaf.op, Op::IContains)
        }
        Op::Regex(res) => {
            let text = value.to_text(interner);
            res.iter().any(|r| r.is_match(&text))
        }
        Op::NotRegex(res) => {
            let text = value.to_text(interner);
            !res.iter().any(|r| r.is_match(&text))
        }
        Op::Gt => compare(|a, b| a > b),
        Op::Gte => compare(|a, b| a >= b),
        Op::Lt => compare(|a, b| a < b),
        Op::Lte => compare(|a, b| a <= b),
        Op::DateBefore => matches!((date(), bound()), (Some(a), Some(b)) if a < b),
        Op::DateAfter => matches!((date(), bound()), (Some(a), Some(b)) if a > b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quill_pipeline::graph::Props;
    use serde_json::json;

    fn row(interner: &Interner, props: &[(&str, Value)]) -> EventRow {
        let mut props: Vec<(Sym, PropValue)> = props
            .iter()
            .filter_map(|(k, v)| interner.value(v).map(|pv| (interner.intern(k), pv)))
            .collect();
        props.sort_by_key(|(k, _)| *k);
        EventRow {
            ts_ms: 0,
            offset: 0,
            props: Props::new(interner.intern("e"), props),
        }
    }

    fn check(filter: Value, props: &[(&str, Value)]) -> bool {
        let interner = Interner::new();
        let f = Filters::parse(Some(&filter), "properties", &interner).unwrap();
        f.matches(&row(&interner, props), &[])
    }

    #[test]
    fn operators() {
        let b = json!("Chrome");
        assert!(check(
            json!([{"key": "b", "value": "Chrome"}]),
            &[("b", b.clone())]
        ));
        assert!(!check(
            json!([{"key": "b", "value": "chrome"}]),
            &[("b", b.clone())]
        ));
        assert!(check(
            json!([{"key": "b", "value": ["x", "Chrome"]}]),
            &[("b", b.clone())]
        ));
        assert!(check(
            json!([{"key": "b", "value": "HRO", "operator": "icontains"}]),
            &[("b", b.clone())]
        ));
        assert!(!check(
            json!([{"key": "b", "value": "hro", "operator": "not_icontains"}]),
            &[("b", b.clone())]
        ));
        assert!(check(
            json!([{"key": "b", "value": "^Ch", "operator": "regex"}]),
            &[("b", b.clone())]
        ));
        assert!(check(
            json!([{"key": "b", "value": "x", "operator": "is_not"}]),
            &[]
        ));
        assert!(!check(
            json!([{"key": "b", "value": "x", "operator": "exact"}]),
            &[]
        ));
        assert!(check(
            json!([{"key": "b", "operator": "is_set"}]),
            &[("b", b.clone())]
        ));
        assert!(check(json!([{"key": "b", "operator": "is_not_set"}]), &[]));
        assert!(check(
            json!([{"key": "n", "value": 5, "operator": "exact"}]),
            &[("n", json!(5))]
        ));
        assert!(check(
            json!([{"key": "n", "value": "4.5", "operator": "gt"}]),
            &[("n", json!("5"))]
        ));
        assert!(!check(
            json!([{"key": "n", "value": 4.5, "operator": "gt"}]),
            &[("n", json!("abc"))]
        ));
        assert!(check(
            json!([{"key": "n", "value": 5, "operator": "lte"}]),
            &[("n", json!(5))]
        ));
        assert!(check(
            json!([{"key": "f", "value": "true"}]),
            &[("f", json!(true))]
        ));
        assert!(check(
            json!([{"key": "d", "value": "2024-02-01", "operator": "is_date_before"}]),
            &[("d", json!("2024-01-05T10:00:00Z"))]
        ));
    }

    #[test]
    fn groups_and_keys() {
        let interner = Interner::new();
        let filter = json!({"type": "OR", "values": [
            {"type": "AND", "values": [{"key": "a", "value": "1"}, {"key": "p", "value": "x", "type": "person"}]},
            {"key": "b", "value": "2"}
        ]});
        let f = Filters::parse(Some(&filter), "properties", &interner).unwrap();
        assert_eq!(f.keys(Scope::Event), vec!["a", "b"]);
        assert_eq!(f.keys(Scope::Person), vec!["p"]);
        let r = row(&interner, &[("a", json!("1"))]);
        assert!(!f.matches(&r, &[]));
        let person = [(interner.intern("p"), interner.value(&json!("x")).unwrap())];
        assert!(f.matches(&r, &person));
        assert!(f.matches(&row(&interner, &[("b", json!(2))]), &[]));
    }

    #[test]
    fn errors_name_the_field() {
        let interner = Interner::new();
        let bad = json!({"type": "AND", "values": [{"key": "a"}, {"key": "b", "value": "(", "operator": "regex"}]});
        let err = Filters::parse(Some(&bad), "properties", &interner).unwrap_err();
        assert_eq!(err.field, "properties.values[0].value");
        let bad = json!([{"key": "b", "value": "(", "operator": "regex"}]);
        let err = Filters::parse(Some(&bad), "series[1].properties", &interner).unwrap_err();
        assert_eq!(err.field, "series[1].properties[0].value");
        let bad = json!([{"key": "b", "value": 1, "type": "cohort"}]);
        let err = Filters::parse(Some(&bad), "properties", &interner).unwrap_err();
        assert_eq!(err.field, "properties[0].type");
    }
}
