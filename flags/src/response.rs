//! Wire shapes of `/flags` and `/decide` responses.
//!
//! | shape | served for | `featureFlags` / `flags` |
//! |---|---|---|
//! | [`ResponseShape::Legacy`] | `/flags` with `v` missing or 1, `/decide?v=3` | `featureFlags: {key: false\|true\|"variant"}` plus `featureFlagPayloads` for enabled flags |
//! | [`ResponseShape::V2`] | `/flags?v>=2`, `/decide?v>=4` | `flags: {key: FlagDetails}` |
//! | [`ResponseShape::DecideV1`] | `/decide?v=1` | `featureFlags: [enabled keys]` |
//! | [`ResponseShape::DecideV2`] | `/decide?v=2` | `featureFlags: {enabled key: true\|"variant"}` |
//!
//! Every shape carries `errorsWhileComputingFlags`; the legacy and v2 shapes also carry
//! `requestId` and `evaluatedAt` (milliseconds since the epoch). The builders return a JSON
//! object so that the server can add its own keys (`config`, `sessionRecording`, ...).

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::engine::{FlagEvaluation, FlagValue};

/// Which response shape to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseShape {
    /// `featureFlags` map of values plus `featureFlagPayloads`.
    Legacy,
    /// `flags` map of [`FlagDetails`](flag_details).
    V2,
    /// `featureFlags` list of enabled keys.
    DecideV1,
    /// `featureFlags` map of enabled flags only.
    DecideV2,
}

impl ResponseShape {
    /// The shape for `/flags?v=...`.
    pub fn for_flags(version: Option<u32>) -> ResponseShape {
        match version {
            Some(v) if v >= 2 => ResponseShape::V2,
            _ => ResponseShape::Legacy,
        }
    }

    /// The shape for `/decide?v=...`.
    pub fn for_decide(version: Option<u32>) -> ResponseShape {
        match version {
            None | Some(0 | 1) => ResponseShape::DecideV1,
            Some(2) => ResponseShape::DecideV2,
            Some(3) => ResponseShape::Legacy,
            Some(_) => ResponseShape::V2,
        }
    }
}

/// Request-level fields of a response.
#[derive(Debug, Clone, Copy)]
pub struct ResponseMeta<'a> {
    /// Echoed as `requestId`.
    pub request_id: &'a str,
    /// Echoed as `evaluatedAt`, milliseconds since the epoch.
    pub evaluated_at_ms: i64,
    /// Whether some flags could not be computed (e.g. a store lookup failed).
    pub errors_while_computing_flags: bool,
}

/// A response body for `evaluations` in `shape`, serialized straight from the evaluations.
///
/// A `/flags` answer for 50 flags is ~11 KB of JSON. Building it as a `serde_json::Value`
/// first cost more than evaluating the flags, so the body borrows everything and writes once.
/// `extra` adds the server's own top-level keys (`config`, `sessionRecording`, ...).
#[derive(Debug, Clone, Copy)]
pub struct ResponseBody<'a> {
    /// Which shape to write.
    pub shape: ResponseShape,
    /// The flags, in order.
    pub evaluations: &'a [FlagEvaluation<'a>],
    /// Request-level fields.
    pub meta: &'a ResponseMeta<'a>,
    /// More top-level keys, written after the shape's own.
    pub extra: Option<&'a Map<String, Value>>,
}

impl ResponseBody<'_> {
    /// The body as JSON bytes; the v2 shape from pre-serialized pieces ([`crate::wire`]).
    pub fn to_vec(&self) -> serde_json::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(256 + 256 * self.evaluations.len());
        match self.shape {
            ResponseShape::V2 => {
                crate::wire::write_v2(&mut out, self.evaluations, self.meta, self.extra)?
            }
            _ => serde_json::to_writer(&mut out, self)?,
        }
        Ok(out)
    }
}

impl Serialize for ResponseBody<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let evaluations = self.evaluations;
        let mut body = serializer.serialize_map(None)?;
        body.serialize_entry(
            "errorsWhileComputingFlags",
            &self.meta.errors_while_computing_flags,
        )?;
        match self.shape {
            ResponseShape::Legacy => {
                body.serialize_entry("featureFlags", &Values(evaluations, false))?;
                body.serialize_entry("featureFlagPayloads", &Payloads(evaluations))?;
            }
            ResponseShape::V2 => body.serialize_entry("flags", &Details(evaluations))?,
            ResponseShape::DecideV1 => {
                body.serialize_entry("featureFlags", &EnabledKeys(evaluations))?
            }
            ResponseShape::DecideV2 => {
                body.serialize_entry("featureFlags", &Values(evaluations, true))?
            }
        }
        if matches!(self.shape, ResponseShape::Legacy | ResponseShape::V2) {
            body.serialize_entry("requestId", self.meta.request_id)?;
            body.serialize_entry("evaluatedAt", &self.meta.evaluated_at_ms)?;
        }
        for (key, value) in self.extra.into_iter().flatten() {
            body.serialize_entry(key, value)?;
        }
        body.end()
    }
}

/// `{key: false|true|"variant"}`, of enabled flags only when `.1`.
struct Values<'a>(&'a [FlagEvaluation<'a>], bool);

impl Serialize for Values<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for e in self.0.iter().filter(|e| e.enabled || !self.1) {
            match e.value() {
                FlagValue::Bool(b) => map.serialize_entry(e.key(), &b)?,
                FlagValue::Variant(v) => map.serialize_entry(e.key(), v)?,
            }
        }
        map.end()
    }
}

/// `{key: payload}` for the flags that have one.
struct Payloads<'a>(&'a [FlagEvaluation<'a>]);

impl Serialize for Payloads<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for e in self.0 {
            if let Some(payload) = e.payload() {
                map.serialize_entry(e.key(), payload)?;
            }
        }
        map.end()
    }
}

/// `[enabled key, ...]`.
struct EnabledKeys<'a>(&'a [FlagEvaluation<'a>]);

impl Serialize for EnabledKeys<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().filter(|e| e.enabled).map(|e| e.key()))
    }
}

/// `{key: FlagDetails}`.
struct Details<'a>(&'a [FlagEvaluation<'a>]);

impl Serialize for Details<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|e| (e.key(), FlagDetails::of(e))))
    }
}

/// `FlagDetails`: `{key, enabled, variant, reason: {code, condition_index, description},
/// metadata: {id, version, description, payload}}`.
#[derive(Serialize)]
struct FlagDetails<'a> {
    key: &'a str,
    enabled: bool,
    variant: Option<&'a str>,
    reason: ReasonJson,
    metadata: Metadata<'a>,
}

#[derive(Serialize)]
struct ReasonJson {
    code: &'static str,
    condition_index: Option<usize>,
    description: String,
}

#[derive(Serialize)]
struct Metadata<'a> {
    id: i64,
    version: i64,
    description: Option<&'a str>,
    payload: Option<&'a Value>,
}

impl<'a> FlagDetails<'a> {
    fn of(e: &FlagEvaluation<'a>) -> FlagDetails<'a> {
        let def = e.flag.definition();
        FlagDetails {
            key: e.key(),
            enabled: e.enabled,
            variant: e.variant,
            reason: ReasonJson {
                code: e.reason.code.as_str(),
                condition_index: e.reason.condition_index,
                description: e.reason.description(),
            },
            metadata: Metadata {
                id: def.id,
                version: def.version.unwrap_or(1),
                description: def.shown_description(),
                payload: e.payload(),
            },
        }
    }
}

/// Builds a response body for `evaluations` in `shape`, as a JSON value.
///
/// # Examples
/// ```
/// use quill_flags::response::{build, ResponseMeta, ResponseShape};
/// use quill_flags::{EvalContext, Flag, FlagDefinition, FlagSet};
/// let def = FlagDefinition::from_json(r#"{"id":1,"key":"on","filters":{"groups":[{}]}}"#)
///     .unwrap();
/// let set = FlagSet::new(vec![Flag::new(def).unwrap()], [], []);
/// let evals = set.evaluate_all(&EvalContext::new("u"), None);
/// let meta = ResponseMeta { request_id: "r1", evaluated_at_ms: 0, errors_while_computing_flags: false };
/// let body = build(ResponseShape::V2, &evals, &meta);
/// assert_eq!(body["flags"]["on"]["reason"]["code"], "condition_match");
/// ```
pub fn build(
    shape: ResponseShape,
    evaluations: &[FlagEvaluation<'_>],
    meta: &ResponseMeta<'_>,
) -> Value {
    let body = ResponseBody {
        shape,
        evaluations,
        meta,
        extra: None,
    };
    // Serializing borrowed strings, numbers and stored JSON values into a Value cannot fail.
    serde_json::to_value(body).unwrap_or(Value::Null)
}

/// `FlagDetails` of one evaluation, as a JSON value.
pub fn flag_details(e: &FlagEvaluation<'_>) -> Value {
    serde_json::to_value(FlagDetails::of(e)).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EvalContext, Flag, FlagDefinition, FlagSet};
    use serde_json::json;

    fn evaluations_of(set: &FlagSet) -> Vec<FlagEvaluation<'_>> {
        set.evaluate_all(&EvalContext::new("u"), None)
    }

    fn sample() -> FlagSet {
        let defs = [
            json!({"id": 1, "key": "on", "name": "On flag", "version": 3, "filters": {
                "groups": [{}], "payloads": {"true": "{\"a\":1}"}}}),
            json!({"id": 2, "key": "off", "filters": {"groups": [{"rollout_percentage": 0}]}}),
            json!({"id": 3, "key": "mv", "filters": {"groups": [{}],
                "multivariate": {"variants": [{"key": "blue", "rollout_percentage": 100}]},
                "payloads": {"blue": 7}}}),
        ];
        FlagSet::new(
            defs.into_iter()
                .map(|d| Flag::new(FlagDefinition::from_value(&d).unwrap()).unwrap()),
            [],
            [],
        )
    }

    const META: ResponseMeta<'static> = ResponseMeta {
        request_id: "req",
        evaluated_at_ms: 1_700_000_000_000,
        errors_while_computing_flags: false,
    };

    #[test]
    fn shapes_by_version() {
        assert_eq!(ResponseShape::for_flags(None), ResponseShape::Legacy);
        assert_eq!(ResponseShape::for_flags(Some(1)), ResponseShape::Legacy);
        assert_eq!(ResponseShape::for_flags(Some(2)), ResponseShape::V2);
        assert_eq!(ResponseShape::for_decide(Some(1)), ResponseShape::DecideV1);
        assert_eq!(ResponseShape::for_decide(Some(2)), ResponseShape::DecideV2);
        assert_eq!(ResponseShape::for_decide(Some(3)), ResponseShape::Legacy);
        assert_eq!(ResponseShape::for_decide(Some(4)), ResponseShape::V2);
    }

    #[test]
    fn legacy_shape() {
        let set = sample();
        let body = build(ResponseShape::Legacy, &evaluations_of(&set), &META);
        assert_eq!(
            body,
            json!({
                "errorsWhileComputingFlags": false,
                "featureFlags": {"on": true, "off": false, "mv": "blue"},
                "featureFlagPayloads": {"on": "{\"a\":1}", "mv": 7},
                "requestId": "req",
                "evaluatedAt": 1_700_000_000_000i64,
            })
        );
    }

    #[test]
    fn v2_shape() {
        let set = sample();
        let body = build(ResponseShape::V2, &evaluations_of(&set), &META);
        assert_eq!(
            body["flags"]["on"],
            json!({"key": "on", "enabled": true, "variant": null,
                "reason": {"code": "condition_match", "condition_index": 0,
                    "description": "Matched condition set 1"},
                "metadata": {"id": 1, "version": 3, "description": "On flag",
                    "payload": "{\"a\":1}"}})
        );
        assert_eq!(
            body["flags"]["off"]["reason"]["code"],
            "out_of_rollout_bound"
        );
        assert_eq!(body["flags"]["off"]["metadata"]["payload"], Value::Null);
        assert_eq!(body["flags"]["mv"]["variant"], "blue");
        assert_eq!(body["requestId"], "req");
    }

    #[test]
    fn the_written_v2_body_equals_the_serialized_one() {
        let set = sample();
        let evals = evaluations_of(&set);
        let mut extra = Map::new();
        extra.insert("sessionRecording".into(), json!(false));
        extra.insert("config".into(), json!({"a": "\"quoted\""}));
        let body = ResponseBody {
            shape: ResponseShape::V2,
            evaluations: &evals,
            meta: &META,
            extra: Some(&extra),
        };
        let written: Value = serde_json::from_slice(&body.to_vec().unwrap()).unwrap();
        assert_eq!(written, serde_json::to_value(body).unwrap());
        assert_eq!(written["flags"]["mv"]["metadata"]["payload"], 7);
        assert_eq!(written["config"]["a"], "\"quoted\"");
    }

    #[test]
    fn decide_shapes() {
        let set = sample();
        let evals = evaluations_of(&set);
        let v1 = build(ResponseShape::DecideV1, &evals, &META);
        assert_eq!(v1["featureFlags"], json!(["on", "mv"]));
        let v2 = build(ResponseShape::DecideV2, &evals, &META);
        assert_eq!(v2["featureFlags"], json!({"on": true, "mv": "blue"}));
        assert!(v2.get("requestId").is_none());
    }
}
