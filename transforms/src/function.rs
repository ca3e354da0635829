//! A hog function definition as users send it, validated and compiled.
//!
//! Validation is pure: [`FunctionSpec::from_json`] checks the shape (unknown fields are errors
//! that name the field) and [`FunctionSpec::compile`] compiles the Hog source, the input
//! templates and the filters. Fields the server owns (`id`, `bytecode`, `status`, timestamps)
//! are ignored when sent back, so a client can PATCH what it read.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::filters::Filters;
use crate::inputs::Inputs;

/// Fields a client may send.
const FIELDS: &[&str] = &[
    "type",
    "name",
    "description",
    "hog",
    "inputs_schema",
    "inputs",
    "filters",
    "enabled",
    "execution_order",
    "template_id",
    "icon_url",
];

/// Fields the server owns: ignored on input.
const SERVER_FIELDS: &[&str] = &[
    "id",
    "bytecode",
    "status",
    "created_at",
    "updated_at",
    "created_by",
    "deleted",
    "version",
];

/// An invalid definition: which field, what is wrong, and where in the source for Hog errors.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{attr}: {message}")]
pub struct SpecError {
    /// The offending field, such as `hog` or `inputs.email`.
    pub attr: String,
    /// What is wrong.
    pub message: String,
    /// 1-based line of a Hog compile error.
    pub line: Option<usize>,
    /// 1-based column of a Hog compile error.
    pub column: Option<usize>,
}

impl SpecError {
    /// An error about a field.
    pub fn new(attr: impl Into<String>, message: impl Into<String>) -> Self {
        SpecError {
            attr: attr.into(),
            message: message.into(),
            line: None,
            column: None,
        }
    }

    /// A Hog compile error in a field.
    pub fn compile(attr: impl Into<String>, e: &quill_hog::CompileError) -> Self {
        SpecError {
            attr: attr.into(),
            message: format!("{} (line {}, column {})", e.message, e.line, e.column),
            line: Some(e.line),
            column: Some(e.column),
        }
    }
}

/// A hog function definition (PostHog's shape, transformations only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionSpec {
    /// Always `transformation` (destinations come later).
    #[serde(rename = "type")]
    pub kind: String,
    /// A name for people.
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: String,
    /// The Hog source.
    pub hog: String,
    /// The inputs it takes: `[{key, type, label, default, required, secret}]`.
    #[serde(default)]
    pub inputs_schema: Vec<Value>,
    /// Input values, `{key: {value}}`; string values may be Hog templates.
    #[serde(default)]
    pub inputs: Map<String, Value>,
    /// Which events it applies to: `{events: [{id}], properties: [...]}`.
    #[serde(default)]
    pub filters: Map<String, Value>,
    /// Whether it runs. PostHog's default is off.
    #[serde(default)]
    pub enabled: bool,
    /// Position in the chain (lower first; then by id).
    #[serde(default)]
    pub execution_order: Option<i64>,
    /// The built-in template it was made from.
    #[serde(default)]
    pub template_id: Option<String>,
    /// An icon for the UI.
    #[serde(default)]
    pub icon_url: Option<String>,
}

/// A definition, compiled and ready to run.
#[derive(Debug, Clone)]
pub struct CompiledFunction {
    /// The definition.
    pub spec: FunctionSpec,
    /// The Hog program's bytecode (`["_H", 1, ...]`).
    pub bytecode: Value,
    /// The inputs, resolved per event.
    pub inputs: Inputs,
    /// Which events it applies to.
    pub filters: Filters,
}

impl FunctionSpec {
    /// Reads a definition, ignoring server-owned fields; unknown fields are errors. A
    /// `template_id` without `hog` takes the template's source and inputs schema.
    pub fn from_json(body: &Value) -> Result<FunctionSpec, SpecError> {
        let Some(object) = body.as_object() else {
            return Err(SpecError::new("", "expected a JSON object"));
        };
        let mut clean = Map::new();
        for (key, value) in object {
            if SERVER_FIELDS.contains(&key.as_str()) {
                continue;
            }
            if !FIELDS.contains(&key.as_str()) {
                return Err(SpecError::new(key, format!("unknown field `{key}`")));
            }
            clean.insert(key.clone(), value.clone());
        }
        if let Some(template) = clean
            .get("template_id")
            .and_then(Value::as_str)
            .and_then(crate::templates::get)
        {
            clean
                .entry("hog")
                .or_insert_with(|| Value::String(template.hog.to_string()));
            clean
                .entry("inputs_schema")
                .or_insert_with(|| template.inputs_schema.clone());
            clean
                .entry("name")
                .or_insert_with(|| Value::String(template.name.to_string()));
            clean
                .entry("type")
                .or_insert_with(|| Value::String("transformation".into()));
        }
        for required in ["type", "name", "hog"] {
            if clean.get(required).is_none_or(Value::is_null) {
                return Err(SpecError::new(required, "this field is required"));
            }
        }
        let spec: FunctionSpec = serde_json::from_value(Value::Object(clean)).map_err(|e| {
            let text = e.to_string();
            let attr = FIELDS
                .iter()
                .find(|f| text.contains(&format!("`{f}`")))
                .copied()
                .unwrap_or("");
            SpecError::new(attr, text)
        })?;
        if spec.kind != "transformation" {
            return Err(SpecError::new(
                "type",
                format!(
                    "`{}` is not supported: only `transformation` functions run in Quill today",
                    spec.kind
                ),
            ));
        }
        if spec.name.trim().is_empty() {
            return Err(SpecError::new("name", "the name may not be blank"));
        }
        Ok(spec)
    }

    /// Compiles the source, the inputs and the filters.
    pub fn compile(self) -> Result<CompiledFunction, SpecError> {
        let bytecode =
            quill_hog::compile_source(&self.hog).map_err(|e| SpecError::compile("hog", &e))?;
        quill_hog::Program::new(&bytecode).map_err(|e| SpecError::new("hog", e.to_string()))?;
        let inputs = Inputs::compile(&self.inputs, &self.inputs_schema)?;
        let filters = Filters::parse(&self.filters)?;
        Ok(CompiledFunction {
            spec: self,
            bytecode,
            inputs,
            filters,
        })
    }

    /// The definition with `patch`'s fields replacing its own.
    pub fn patched(&self, patch: &Value) -> Result<FunctionSpec, SpecError> {
        let mut body = serde_json::to_value(self).unwrap_or_else(|_| Value::Object(Map::new()));
        let Some(fields) = patch.as_object() else {
            return Err(SpecError::new("", "expected a JSON object"));
        };
        if let Some(target) = body.as_object_mut() {
            for (key, value) in fields {
                target.insert(key.clone(), value.clone());
            }
        }
        FunctionSpec::from_json(&body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_named() {
        let e = FunctionSpec::from_json(
            &json!({"type": "transformation", "name": "a", "hog": "return event", "colour": 1}),
        )
        .unwrap_err();
        assert_eq!(e.attr, "colour");
    }

    #[test]
    fn compile_errors_carry_line_and_column() {
        let spec = FunctionSpec::from_json(
            &json!({"type": "transformation", "name": "a", "hog": "let x := 1\nreturn (x +"}),
        )
        .unwrap();
        let e = spec.compile().unwrap_err();
        assert_eq!(e.attr, "hog");
        assert_eq!(e.line, Some(2));
        assert!(e.column.is_some());
    }

    #[test]
    fn destinations_are_refused() {
        let e = FunctionSpec::from_json(&json!({"type": "destination", "name": "a", "hog": "1"}))
            .unwrap_err();
        assert_eq!(e.attr, "type");
    }

    #[test]
    fn server_fields_are_ignored_and_patches_apply() {
        let spec = FunctionSpec::from_json(&json!({"type": "transformation", "name": "a", "hog": "return event", "id": 3, "status": {}}))
            .unwrap();
        let patched = spec
            .patched(&json!({"enabled": true, "bytecode": []}))
            .unwrap();
        assert!(patched.enabled);
        assert_eq!(patched.name, "a");
    }
}
