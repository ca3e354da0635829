//! Applying one event to persons and groups.

use serde_json::{Map, Value};

use super::groups::GroupWriter;
use super::is_illegal_merge_id;
use super::persons::{Person, PersonWriter};
use crate::event::StoredEvent;
use crate::store::StoreError;

/// The only properties identity reads. Deserializing into this skips every other property
/// without allocating, which matters because the materializer sees every event.
#[derive(Debug, Default, serde::Deserialize)]
struct IdentityKeys {
    #[serde(rename = "$set")]
    set: Option<Value>,
    #[serde(rename = "$set_once")]
    set_once: Option<Value>,
    #[serde(rename = "$unset")]
    unset: Option<Value>,
    #[serde(rename = "$anon_distinct_id")]
    anon_distinct_id: Option<Value>,
    alias: Option<Value>,
    #[serde(rename = "$group_type")]
    group_type: Option<Value>,
    #[serde(rename = "$group_key")]
    group_key: Option<Value>,
    #[serde(rename = "$group_set")]
    group_set: Option<Value>,
    #[serde(rename = "$process_person_profile")]
    process_person_profile: Option<Value>,
}

/// Substrings one of which every identity key's JSON contains, quotes included.
const IDENTITY_KEY_MARKS: [&str; 6] = [
    "\"$set",
    "\"$unset\"",
    "\"$anon_distinct_id\"",
    "\"alias\"",
    "\"$group_",
    "\"$process_person_profile\"",
];

/// The identity-relevant properties of a stored event, as a map [`apply_event`] takes.
pub fn identity_properties(properties_json: &str) -> Map<String, Value> {
    // Most events carry none of these keys: a scan is cheaper than a parse. A key spelled with
    // escapes (`\u0024set`) would slip past the scan, so any escape means a parse.
    let may_have_keys = properties_json.contains('\\')
        || IDENTITY_KEY_MARKS
            .iter()
            .any(|m| properties_json.contains(m));
    if !may_have_keys {
        return Map::new();
    }
    let keys: IdentityKeys = serde_json::from_str(properties_json).unwrap_or_default();
    let mut map = Map::new();
    for (name, value) in [
        ("$set", keys.set),
        ("$set_once", keys.set_once),
        ("$unset", keys.unset),
        ("$anon_distinct_id", keys.anon_distinct_id),
        ("alias", keys.alias),
        ("$group_type", keys.group_type),
        ("$group_key", keys.group_key),
        ("$group_set", keys.group_set),
        ("$process_person_profile", keys.process_person_profile),
    ] {
        if let Some(value) = value {
            map.insert(name.to_string(), value);
        }
    }
    map
}

/// How two distinct ids are being linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// `$identify` or `$create_alias`: refuses to merge an already identified person.
    Identify,
    /// `$merge_dangerously`: merges whatever the persons are.
    Force,
}

/// Applies one event's identity and property effects.
pub fn apply_event(
    persons: &mut PersonWriter<'_>,
    groups: &mut GroupWriter<'_>,
    event: &StoredEvent,
    props: &Map<String, Value>,
) -> Result<(), StoreError> {
    let project = event.project;
    if event.event == "$groupidentify" {
        if let (Some(group_type), Some(group_key)) = (
            props.get("$group_type").and_then(Value::as_str),
            props.get("$group_key").map(json_key),
        ) {
            let set = props.get("$group_set").and_then(Value::as_object);
            groups.identify(project, group_type, &group_key, set, event.timestamp_us)?;
        }
    }
    if props.get("$process_person_profile") == Some(&Value::Bool(false)) {
        return Ok(());
    }
    let did = event.distinct_id.as_str();
    let link = match event.event.as_str() {
        "$identify" => props
            .get("$anon_distinct_id")
            .map(|v| (json_key(v), Link::Identify)),
        "$create_alias" => props.get("alias").map(|v| (json_key(v), Link::Identify)),
        "$merge_dangerously" => props.get("alias").map(|v| (json_key(v), Link::Force)),
        _ => None,
    };
    let identifies = matches!(
        event.event.as_str(),
        "$identify" | "$create_alias" | "$merge_dangerously"
    );
    let mut person = match link {
        Some((other, how)) => link_ids(persons, event, did, &other, how)?,
        None => None,
    };
    if person.is_none() {
        person = match persons.person_id(project, did)? {
            // Most events neither identify nor set anything: knowing the person exists is
            // enough, and loading its row would cost a lookup and a parse per event.
            Some(_) if !identifies && !changes_properties(props) => return Ok(()),
            Some(id) => persons.load(project, id)?,
            None => None,
        };
    }
    let (mut person, mut dirty) = match person {
        Some(p) => (p, false),
        None => (
            persons.create(project, vec![did.to_string()], event.timestamp_us)?,
            false,
        ),
    };
    if identifies && !person.is_identified {
        person.is_identified = true;
        dirty = true;
    }
    dirty |= update_properties(&mut person.properties, props);
    if dirty {
        persons.save(&person)?;
    }
    Ok(())
}

/// Links `other` into the person of `into`. Returns the resulting person when one was loaded
/// or changed, so the caller can apply properties without reading it again.
fn link_ids(
    persons: &mut PersonWriter<'_>,
    event: &StoredEvent,
    into: &str,
    other: &str,
    how: Link,
) -> Result<Option<Person>, StoreError> {
    if into == other || is_illegal_merge_id(into) || is_illegal_merge_id(other) {
        return Ok(None);
    }
    let project = event.project;
    let into_id = persons.person_id(project, into)?;
    let other_id = persons.person_id(project, other)?;
    let person = match (into_id, other_id) {
        (None, None) => persons.create(
            project,
            vec![into.to_string(), other.to_string()],
            event.timestamp_us,
        )?,
        (Some(id), None) | (None, Some(id)) => {
            let Some(mut person) = persons.load(project, id)? else {
                return Ok(None);
            };
            let missing = if into_id.is_none() { into } else { other };
            person.distinct_ids.push(missing.to_string());
            persons.save(&person)?;
            person
        }
        (Some(a), Some(b)) if a == b => return persons.load(project, a),
        (Some(a), Some(b)) => {
            let (Some(mut target), Some(source)) =
                (persons.load(project, a)?, persons.load(project, b)?)
            else {
                return Ok(None);
            };
            if source.is_identified && how != Link::Force {
                tracing::info!(
                    project,
                    into,
                    other,
                    "not merging two identified persons; use $merge_dangerously to force"
                );
                return Ok(Some(target));
            }
            merge(persons, &mut target, source)?;
            target
        }
    };
    Ok(Some(person))
}

/// Moves `source` into `target`: its distinct ids, and its properties where `target` has none.
fn merge(
    persons: &mut PersonWriter<'_>,
    target: &mut Person,
    source: Person,
) -> Result<(), StoreError> {
    persons.remove(&source)?;
    for (k, v) in source.properties {
        target.properties.entry(k).or_insert(v);
    }
    target.created_at_us = target.created_at_us.min(source.created_at_us);
    target.is_identified |= source.is_identified;
    for did in source.distinct_ids {
        if !target.distinct_ids.contains(&did) {
            target.distinct_ids.push(did);
        }
    }
    persons.save(target)
}

/// Whether `props` hold anything [`update_properties`] would apply.
fn changes_properties(props: &Map<String, Value>) -> bool {
    ["$set", "$set_once", "$unset"]
        .iter()
        .any(|key| props.contains_key(*key))
}

/// Applies `$set_once`, then `$set`, then `$unset`. Returns whether anything changed.
pub(crate) fn update_properties(
    properties: &mut Map<String, Value>,
    props: &Map<String, Value>,
) -> bool {
    let mut changed = false;
    if let Some(Value::Object(once)) = props.get("$set_once") {
        for (k, v) in once {
            if !properties.contains_key(k) {
                properties.insert(k.clone(), v.clone());
                changed = true;
            }
        }
    }
    if let Some(Value::Object(set)) = props.get("$set") {
        for (k, v) in set {
            if properties.get(k) != Some(v) {
                properties.insert(k.clone(), v.clone());
                changed = true;
            }
        }
    }
    match props.get("$unset") {
        Some(Value::Array(keys)) => {
            for key in keys.iter().filter_map(Value::as_str) {
                changed |= properties.remove(key).is_some();
            }
        }
        Some(Value::Object(keys)) => {
            for key in keys.keys() {
                changed |= properties.remove(key).is_some();
            }
        }
        _ => {}
    }
    changed
}

/// A JSON value used as an id: strings as they are, anything else as its JSON text.
fn json_key(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn identity_properties_keep_only_what_identity_reads() {
        let props = identity_properties(
            r#"{"$current_url":"x","$set":{"a":1},"alias":"b","$process_person_profile":false}"#,
        );
        assert_eq!(
            Value::Object(props),
            json!({"$set": {"a": 1}, "alias": "b", "$process_person_profile": false})
        );
        assert!(identity_properties("not json").is_empty());
        // Escaped key names are still found; unrelated keys are not.
        let escaped = identity_properties(r#"{"\u0024set":{"a":1},"$setx_other":2}"#);
        assert_eq!(Value::Object(escaped), json!({"$set": {"a": 1}}));
        assert!(identity_properties(r#"{"$current_url":"x","set":1,"aliased":2}"#).is_empty());
    }

    #[test]
    fn set_once_never_overwrites_and_unset_removes() {
        let mut props = Map::new();
        let update = json!({"$set_once": {"a": 1, "b": 2}, "$set": {"b": 3}, "$unset": ["c"]});
        props.insert("c".into(), json!(true));
        props.insert("a".into(), json!(0));
        assert!(update_properties(&mut props, update.as_object().unwrap()));
        assert_eq!(Value::Object(props), json!({"a": 0, "b": 3}));
    }
}
