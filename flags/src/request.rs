//! The `/flags` and `/decide` request body, from an already-decoded JSON value.
//!
//! Decoding the transport (gzip, base64, `data=` forms) is the server's job; this module reads
//! the fields and their aliases:
//!
//! | field | aliases | type |
//! |---|---|---|
//! | `token` | `$token`, `api_key` | string; missing → [`RequestError::MissingToken`] (401) |
//! | `distinct_id` | `$distinct_id` | string or number; missing → [`RequestError::MissingDistinctId`] (400) |
//! | `groups` | `$groups` | `{type: key}`, keys strings or numbers |
//! | `person_properties` | `$properties` | object |
//! | `group_properties` | | `{type: object}` |
//! | `anon_distinct_id` | `$anon_distinct_id` | string or number |
//! | `device_id` | `$device_id` | string |
//! | `flag_keys` | `flag_keys_to_evaluate` | list of strings |
//! | `geoip_disable`, `disable_flags` | | booleans |
//!
//! Unknown fields are ignored: SDKs send many more. `null` counts as absent.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::context::{EvalContext, Properties};
use crate::error::RequestError;
use crate::value::number_to_string;

/// A parsed `/flags` request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlagsRequest {
    /// The project token.
    pub token: String,
    /// The person's distinct id (numbers are turned into strings).
    pub distinct_id: String,
    /// Group type name → group key.
    pub groups: HashMap<String, String>,
    /// Person properties sent with the request; they override stored ones.
    pub person_properties: Map<String, Value>,
    /// Group type name → properties sent with the request.
    pub group_properties: HashMap<String, Map<String, Value>>,
    /// The anonymous id before identify (experience continuity).
    pub anon_distinct_id: Option<String>,
    /// The device id.
    pub device_id: Option<String>,
    /// Evaluate only these flags.
    pub flag_keys: Option<Vec<String>>,
    /// Skip GeoIP enrichment of person properties.
    pub geoip_disable: bool,
    /// Return no flags at all.
    pub disable_flags: bool,
}

impl FlagsRequest {
    /// Reads a request body.
    ///
    /// # Examples
    /// ```
    /// use quill_flags::request::FlagsRequest;
    /// let body = serde_json::json!({"api_key": "phc_x", "distinct_id": 42,
    ///     "$groups": {"company": 7}, "flag_keys_to_evaluate": ["a"]});
    /// let req = FlagsRequest::from_value(&body).unwrap();
    /// assert_eq!(req.distinct_id, "42");
    /// assert_eq!(req.groups["company"], "7");
    /// ```
    pub fn from_value(body: &Value) -> Result<FlagsRequest, RequestError> {
        let obj = body.as_object().ok_or_else(|| RequestError::InvalidField {
            field: "body".into(),
            message: "expected a JSON object".into(),
        })?;
        let get = |names: &[&'static str]| -> Option<(&'static str, &Value)> {
            names
                .iter()
                .find_map(|n| obj.get(*n).filter(|v| !v.is_null()).map(|v| (*n, v)))
        };
        let token = match get(&["token", "$token", "api_key"]) {
            None => return Err(RequestError::MissingToken),
            Some((_, Value::String(s))) if s.is_empty() => return Err(RequestError::MissingToken),
            Some((_, Value::String(s))) => s.clone(),
            Some((field, _)) => return Err(invalid(field, "expected a string")),
        };
        let distinct_id = match get(&["distinct_id", "$distinct_id"]) {
            None => return Err(RequestError::MissingDistinctId),
            Some((field, v)) => match id_string(v) {
                Some(s) if !s.is_empty() => s,
                Some(_) => return Err(RequestError::MissingDistinctId),
                None => return Err(invalid(field, "expected a string or a number")),
            },
        };
        let groups = match get(&["groups", "$groups"]) {
            None => HashMap::new(),
            Some((field, v)) => {
                let map = v
                    .as_object()
                    .ok_or_else(|| invalid(field, "expected an object"))?;
                let mut out = HashMap::with_capacity(map.len());
                for (name, key) in map {
                    if key.is_null() {
                        continue;
                    }
                    let key = id_string(key).ok_or_else(|| {
                        invalid(
                            field,
                            &format!("group `{name}`: expected a string or a number"),
                        )
                    })?;
                    out.insert(name.clone(), key);
                }
                out
            }
        };
        let person_properties = match get(&["person_properties", "$properties"]) {
            None => Map::new(),
            Some((field, v)) => v
                .as_object()
                .cloned()
                .ok_or_else(|| invalid(field, "expected an object"))?,
        };
        let group_properties = match get(&["group_properties"]) {
            None => HashMap::new(),
            Some((field, v)) => {
                let map = v
                    .as_object()
                    .ok_or_else(|| invalid(field, "expected an object"))?;
                let mut out = HashMap::with_capacity(map.len());
                for (name, props) in map {
                    match props {
                        Value::Null => {}
                        Value::Object(p) => {
                            out.insert(name.clone(), p.clone());
                        }
                        _ => {
                            return Err(invalid(
                                field,
                                &format!("group `{name}`: expected an object"),
                            ))
                        }
                    }
                }
                out
            }
        };
        let anon_distinct_id = match get(&["anon_distinct_id", "$anon_distinct_id"]) {
            None => None,
            Some((field, v)) => {
                Some(id_string(v).ok_or_else(|| invalid(field, "expected a string or a number"))?)
            }
        };
        let device_id = match get(&["device_id", "$device_id"]) {
            None => None,
            Some((field, v)) => {
                Some(id_string(v).ok_or_else(|| invalid(field, "expected a string or a number"))?)
            }
        };
        let flag_keys = match get(&["flag_keys", "flag_keys_to_evaluate"]) {
            None => None,
            Some((field, v)) => {
                let items = v
                    .as_array()
                    .ok_or_else(|| invalid(field, "expected a list"))?;
                let keys = items
                    .iter()
                    .map(|k| k.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| invalid(field, "expected a list of strings"))?;
                Some(keys)
            }
        };
        let flag = |name: &'static str| -> Result<bool, RequestError> {
            match get(&[name]) {
                None => Ok(false),
                Some((_, Value::Bool(b))) => Ok(*b),
                Some((field, _)) => Err(invalid(field, "expected a boolean")),
            }
        };
        Ok(FlagsRequest {
            token,
            distinct_id,
            groups,
            person_properties,
            group_properties,
            anon_distinct_id,
            device_id,
            flag_keys,
            geoip_disable: flag("geoip_disable")?,
            disable_flags: flag("disable_flags")?,
        })
    }

    /// Layers this request's group properties over stored ones: `stored(type, key)` returns
    /// the stored properties of a group. Build this once per request and pass it to
    /// [`FlagsRequest::context`].
    pub fn group_properties_view<'a>(
        &'a self,
        stored: impl Fn(&str, &str) -> Option<&'a Map<String, Value>>,
    ) -> HashMap<String, Properties<'a>> {
        self.groups
            .iter()
            .map(|(name, key)| {
                let view = Properties {
                    request: self.group_properties.get(name),
                    stored: stored(name, key),
                };
                (name.clone(), view)
            })
            .collect()
    }

    /// An evaluation context for this request, with the stored person properties (if the
    /// person exists) and the group view from [`FlagsRequest::group_properties_view`].
    /// Hash-key overrides and cohort membership can be set on the result.
    pub fn context<'a>(
        &'a self,
        stored_person: Option<&'a Map<String, Value>>,
        group_properties: &'a HashMap<String, Properties<'a>>,
    ) -> EvalContext<'a> {
        let mut ctx = EvalContext::new(&self.distinct_id)
            .with_person_properties(Properties {
                request: Some(&self.person_properties),
                stored: stored_person,
            })
            .with_groups(&self.groups, group_properties);
        ctx.anon_distinct_id = self.anon_distinct_id.as_deref();
        ctx.device_id = self.device_id.as_deref();
        ctx
    }
}

fn id_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(number_to_string(n)),
        _ => None,
    }
}

fn invalid(field: &str, message: &str) -> RequestError {
    RequestError::InvalidField {
        field: field.to_string(),
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_fields_and_aliases() {
        let req = FlagsRequest::from_value(&json!({
            "$token": "phc_1", "$distinct_id": "u1",
            "groups": {"company": "acme", "team": 5, "none": null},
            "$properties": {"plan": "pro"},
            "group_properties": {"company": {"size": 10}},
            "$anon_distinct_id": "anon", "device_id": "dev",
            "flag_keys": ["a", "b"], "geoip_disable": true, "unknown": 1
        }))
        .unwrap();
        assert_eq!(req.token, "phc_1");
        assert_eq!(req.distinct_id, "u1");
        assert_eq!(req.groups.len(), 2);
        assert_eq!(req.groups["team"], "5");
        assert_eq!(req.person_properties["plan"], "pro");
        assert_eq!(req.group_properties["company"]["size"], 10);
        assert_eq!(req.anon_distinct_id.as_deref(), Some("anon"));
        assert_eq!(req.device_id.as_deref(), Some("dev"));
        assert_eq!(req.flag_keys, Some(vec!["a".into(), "b".into()]));
        assert!(req.geoip_disable && !req.disable_flags);
    }

    #[test]
    fn errors_map_to_statuses() {
        let e = FlagsRequest::from_value(&json!({"distinct_id": "u"})).unwrap_err();
        assert_eq!(
            (e.clone(), e.http_status()),
            (RequestError::MissingToken, 401)
        );
        let e = FlagsRequest::from_value(&json!({"token": "", "distinct_id": "u"})).unwrap_err();
        assert_eq!(e, RequestError::MissingToken);
        let e = FlagsRequest::from_value(&json!({"token": "t"})).unwrap_err();
        assert_eq!(
            (e.clone(), e.http_status()),
            (RequestError::MissingDistinctId, 400)
        );
        let e = FlagsRequest::from_value(&json!({"token": "t", "distinct_id": null})).unwrap_err();
        assert_eq!(e, RequestError::MissingDistinctId);
        let e = FlagsRequest::from_value(&json!({"token": "t", "distinct_id": "u", "groups": []}))
            .unwrap_err();
        assert_eq!(e.http_status(), 400);
        assert!(e.to_string().starts_with("groups:"));
        let e = FlagsRequest::from_value(&json!([1])).unwrap_err();
        assert_eq!(e.http_status(), 400);
    }

    #[test]
    fn context_layers_request_over_stored() {
        let req = FlagsRequest::from_value(&json!({"token": "t", "distinct_id": "u",
            "person_properties": {"plan": "pro"}, "groups": {"company": "acme"},
            "group_properties": {"company": {"size": 5}}}))
        .unwrap();
        let stored_person = json!({"plan": "free", "country": "FR"});
        let stored_group = json!({"size": 1, "industry": "tech"});
        let view = req.group_properties_view(|name, key| {
            (name == "company" && key == "acme").then(|| stored_group.as_object().unwrap())
        });
        let ctx = req.context(stored_person.as_object(), &view);
        assert_eq!(ctx.person_properties.get("plan"), Some(&json!("pro")));
        assert_eq!(ctx.person_properties.get("country"), Some(&json!("FR")));
        let company = ctx.group_properties.unwrap()["company"];
        assert_eq!(company.get("size"), Some(&json!(5)));
        assert_eq!(company.get("industry"), Some(&json!("tech")));
    }
}
