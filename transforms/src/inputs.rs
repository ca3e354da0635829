//! Input values, resolved per event.
//!
//! Inputs are stored as PostHog does, `{key: {value}}`; a missing key takes the schema's
//! `default`. A string value is a Hog template, as in PostHog: text with `{expression}`
//! placeholders (`"Hi {event.properties.name}"` is the f-string `f'Hi {...}'`), and a string
//! that is exactly one placeholder (`"{event.properties}"`) keeps the expression's type. Arrays
//! and objects are templated element by element.
//!
//! All templated inputs of a function compile into one Hog program returning the inputs object,
//! run once per event with the `event` and `project` globals. Inputs without any placeholder
//! are a constant and run nothing.

use serde_json::{Map, Value};

use crate::function::SpecError;

/// A function's inputs.
#[derive(Debug, Clone, PartialEq)]
pub enum Inputs {
    /// No templates: the same object for every event.
    Static(Value),
    /// A program returning the inputs object for an event.
    Templated(Value),
}

impl Inputs {
    /// Resolves defaults and compiles templates.
    pub fn compile(inputs: &Map<String, Value>, schema: &[Value]) -> Result<Inputs, SpecError> {
        let mut values: Vec<(String, Value)> = Vec::new();
        for (key, raw) in inputs {
            let value = match raw {
                Value::Object(o) if o.contains_key("value") => o["value"].clone(),
                Value::Object(o) if o.is_empty() => Value::Null,
                Value::Object(_) => {
                    return Err(SpecError::new(
                        format!("inputs.{key}"),
                        "an input is an object `{\"value\": ...}`",
                    ))
                }
                other => other.clone(),
            };
            values.push((key.clone(), value));
        }
        for (i, field) in schema.iter().enumerate() {
            let Some(key) = field.get("key").and_then(Value::as_str) else {
                return Err(SpecError::new(
                    format!("inputs_schema.{i}"),
                    "each input needs a string `key`",
                ));
            };
            if values.iter().any(|(k, _)| k == key) {
                continue;
            }
            match field.get("default") {
                Some(default) => values.push((key.to_string(), default.clone())),
                None if field.get("required") == Some(&Value::Bool(true)) => {
                    return Err(SpecError::new(
                        format!("inputs.{key}"),
                        "this input is required",
                    ))
                }
                None => {}
            }
        }
        let mut templated = false;
        let mut source = String::from("return {");
        for (n, (key, value)) in values.iter().enumerate() {
            let mut expr = String::new();
            templated |= to_hog(value, &mut expr);
            quill_hog::compile_source(&format!("return {expr}"))
                .map_err(|e| SpecError::compile(format!("inputs.{key}"), &e))?;
            if n > 0 {
                source.push_str(", ");
            }
            source.push_str(&hog_string(key));
            source.push_str(": ");
            source.push_str(&expr);
        }
        source.push('}');
        if !templated {
            let object: Map<String, Value> = values.into_iter().collect();
            return Ok(Inputs::Static(Value::Object(object)));
        }
        let bytecode =
            quill_hog::compile_source(&source).map_err(|e| SpecError::compile("inputs", &e))?;
        Ok(Inputs::Templated(bytecode))
    }
}

/// Writes `value` as a Hog expression; true when it contains a template.
fn to_hog(value: &Value, out: &mut String) -> bool {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match n.as_i64() {
            Some(i) => out.push_str(&i.to_string()),
            None => out.push_str(&format!("{:?}", n.as_f64().unwrap_or(0.0))),
        },
        Value::String(s) => return template(s, out),
        Value::Array(items) => {
            let mut any = false;
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                any |= to_hog(item, out);
            }
            out.push(']');
            return any;
        }
        Value::Object(fields) => {
            let mut any = false;
            out.push('{');
            for (i, (k, v)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&hog_string(k));
                out.push_str(": ");
                any |= to_hog(v, out);
            }
            out.push('}');
            return any;
        }
    }
    false
}

/// A Hog string literal.
fn hog_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Splits a template into text and `{expression}` parts; `None` when it has no placeholder.
fn parts(s: &str) -> Option<Vec<(bool, &str)>> {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut text_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'{' {
            // Find the matching brace, skipping quoted strings inside the expression.
            let mut depth = 0usize;
            let mut j = i;
            let mut quote: Option<u8> = None;
            let mut end = None;
            while j < bytes.len() {
                let c = bytes[j];
                match quote {
                    Some(_) if c == b'\\' => j += 1,
                    Some(q) if c == q => quote = None,
                    Some(_) => {}
                    None if c == b'\'' || c == b'"' => quote = Some(c),
                    None if c == b'{' => depth += 1,
                    None if c == b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(j);
                            break;
                        }
                    }
                    None => {}
                }
                j += 1;
            }
            let Some(end) = end else { break };
            if i > text_start {
                out.push((false, &s[text_start..i]));
            }
            out.push((true, &s[i + 1..end]));
            i = end + 1;
            text_start = i;
            continue;
        }
        i += 1;
    }
    if !out.iter().any(|(expr, _)| *expr) {
        return None;
    }
    if text_start < s.len() {
        out.push((false, &s[text_start..]));
    }
    Some(out)
}

/// Writes a string input: a literal, one expression, or an f-string.
fn template(s: &str, out: &mut String) -> bool {
    let Some(parts) = parts(s) else {
        out.push_str(&hog_string(s));
        return false;
    };
    if let [(true, expr)] = parts.as_slice() {
        out.push('(');
        out.push_str(expr);
        out.push(')');
        return true;
    }
    out.push_str("concat(");
    for (i, (is_expr, text)) in parts.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        if *is_expr {
            out.push('(');
            out.push_str(text);
            out.push(')');
        } else {
            out.push_str(&hog_string(text));
        }
    }
    out.push(')');
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resolve(inputs: Value, globals: Value) -> Value {
        let compiled = Inputs::compile(inputs.as_object().unwrap(), &[]).unwrap();
        match compiled {
            Inputs::Static(v) => v,
            Inputs::Templated(bc) => {
                let opts = quill_hog::ExecOptions {
                    globals: Some(globals),
                    ..Default::default()
                };
                match quill_hog::run_bytecode(&bc, &opts).unwrap().outcome {
                    quill_hog::Outcome::Finished(v) => v,
                    other => panic!("{other:?}"),
                }
            }
        }
    }

    #[test]
    fn templates_resolve_per_event() {
        let globals =
            json!({"event": {"event": "$pageview", "properties": {"email": "a@b.c", "n": 3}}});
        let out = resolve(
            json!({
                "email": {"value": "{event.properties.email}"},
                "props": {"value": "{event.properties}"},
                "greeting": {"value": "hi {event.properties.email}, it's {event.event}"},
                "list": {"value": ["{event.properties.n}", "x"]},
                "plain": {"value": "no templates"},
                "n": {"value": 2},
            }),
            globals,
        );
        assert_eq!(out["email"], json!("a@b.c"));
        assert_eq!(out["props"], json!({"email": "a@b.c", "n": 3}));
        assert_eq!(out["greeting"], json!("hi a@b.c, it's $pageview"));
        assert_eq!(out["list"], json!([3, "x"]));
        assert_eq!(out["plain"], json!("no templates"));
        assert_eq!(out["n"], json!(2));
    }

    #[test]
    fn constants_need_no_program() {
        let compiled = Inputs::compile(
            json!({"salt": {"value": "s"}}).as_object().unwrap(),
            &[json!({"key": "other", "default": 5})],
        )
        .unwrap();
        assert_eq!(compiled, Inputs::Static(json!({"salt": "s", "other": 5})));
    }

    #[test]
    fn bad_templates_name_the_input() {
        let e = Inputs::compile(
            json!({"x": {"value": "{event.}"}}).as_object().unwrap(),
            &[],
        )
        .unwrap_err();
        assert_eq!(e.attr, "inputs.x");
        assert!(e.line.is_some());
    }

    #[test]
    fn required_inputs() {
        let e =
            Inputs::compile(&Map::new(), &[json!({"key": "salt", "required": true})]).unwrap_err();
        assert_eq!(e.attr, "inputs.salt");
    }
}
