//! Reading only the projected properties out of an event's properties JSON.
//!
//! Events carry dozens of properties and insights read a handful. Parsing the whole object into
//! a map costs an allocation per key and value; this walks the JSON once, skips every key it was
//! not asked for without allocating, and parses only the values it keeps.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

/// The values of `keys` (sorted by `name`, unique) in the JSON object `json`, in the order of
/// `keys`. Anything but an object gives no values.
pub fn project<K>(json: &str, keys: &[K], name: fn(&K) -> &str) -> Vec<Option<Value>> {
    let mut de = serde_json::Deserializer::from_str(json);
    match de.deserialize_map(Projector { keys, name }) {
        Ok(values) => values,
        Err(_) => vec![None; keys.len()],
    }
}

struct Projector<'k, K> {
    keys: &'k [K],
    name: fn(&K) -> &str,
}

impl<'de, K> Visitor<'de> for Projector<'_, K> {
    type Value = Vec<Option<Value>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = vec![None; self.keys.len()];
        let seed = KeyIndex {
            keys: self.keys,
            name: self.name,
        };
        while let Some(wanted) = map.next_key_seed(seed)? {
            match wanted {
                // A repeated key keeps its last value, as a parse into a map would.
                Some(i) => out[i] = Some(map.next_value::<Value>()?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(out)
    }
}

/// Deserializes a key into its position among the wanted keys, without allocating.
struct KeyIndex<'k, K> {
    keys: &'k [K],
    name: fn(&K) -> &str,
}

impl<K> Clone for KeyIndex<'_, K> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K> Copy for KeyIndex<'_, K> {}

impl<'de, K> DeserializeSeed<'de> for KeyIndex<'_, K> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, K> Visitor<'de> for KeyIndex<'_, K> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a property name")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.keys.binary_search_by(|k| (self.name)(k).cmp(key)).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{json, Map};

    #[test]
    fn keeps_only_the_wanted_keys() {
        let json = r#"{"a":1,"b":{"x":[1,2]},"c\u0041":"esc","d":null,"a":2}"#;
        assert_eq!(
            project(json, &["a", "cA", "d", "z"], |k| k),
            vec![Some(json!(2)), Some(json!("esc")), Some(Value::Null), None]
        );
        assert_eq!(project("[1]", &["a"], |k| k), vec![None]);
        assert_eq!(project("not json", &["a"], |k| k), vec![None]);
    }

    proptest! {
        /// Equal to parsing the whole object and looking the keys up.
        #[test]
        fn agrees_with_a_full_parse(
            props in prop::collection::btree_map("[a-e]{1,2}", prop_oneof![
                any::<i32>().prop_map(|n| json!(n)),
                "[a-z\\\\\"]{0,4}".prop_map(|s| json!(s)),
                Just(Value::Null),
                any::<bool>().prop_map(|b| json!({"k": [b]})),
            ], 0..8),
            keys in prop::collection::btree_set("[a-e]{1,2}", 0..5),
        ) {
            let json = Value::Object(props.into_iter().collect::<Map<_, _>>()).to_string();
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let full: Map<String, Value> = serde_json::from_str(&json).unwrap();
            let expected: Vec<Option<Value>> = keys.iter().map(|k| full.get(*k).cloned()).collect();
            prop_assert_eq!(project(&json, &keys, |k| k), expected);
        }
    }
}
