//! How property values are read, the way PostHog's SDKs read them.
//!
//! Property values are arbitrary JSON, while operators compare strings, numbers or booleans.
//! The conversions here fix the exact rules: a non-string value is compared through a compact
//! JSON rendering in which floats print like Python's `repr` (`1.0`, `1e+16`), truthiness
//! accepts `true`/`false` and the strings `"true"`/`"false"` in any case, and a string counts
//! as a number only when it is a plain decimal literal (no whitespace, no `inf`).

use std::borrow::Cow;
use std::fmt::Write;

use serde_json::Value;

/// Renders a value as the string operators compare: strings as they are, everything else as
/// compact JSON with sorted object keys and Python-style floats.
pub fn value_to_string(value: &Value) -> Cow<'_, str> {
    match value {
        Value::String(s) => Cow::Borrowed(s.as_str()),
        other => {
            let mut out = String::new();
            write_json(other, &mut out);
            Cow::Owned(out)
        }
    }
}

fn write_json(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => out.push_str(&number_to_string(n)),
        Value::String(s) => write_json_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(key, out);
                out.push(':');
                if let Some(v) = map.get(key) {
                    write_json(v, out);
                }
            }
            out.push('}');
        }
    }
}

fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Renders a JSON number: integers as integers, floats like Python's `repr`.
pub fn number_to_string(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    n.as_f64().map(float_to_string).unwrap_or_default()
}

/// Formats a float as Python's `repr` does, except that exponents lose their zero padding
/// (`1e-07` becomes `1e-7`) and `1e-05` prints as `0.00001`.
pub fn float_to_string(f: f64) -> String {
    let sci = format!("{f:e}");
    let (mantissa, exp) = match sci.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (sci.as_str(), 0),
    };
    if f == 0.0 || (-5..16).contains(&exp) {
        let mut fixed = format!("{f}");
        if !fixed.contains('.') {
            fixed.push_str(".0");
        }
        fixed
    } else if exp >= 0 {
        format!("{mantissa}e+{exp}")
    } else {
        format!("{mantissa}e{exp}")
    }
}

/// Whether a value reads as a boolean: a bool, `"true"`/`"false"` in any case, or a list
/// whose items all do.
pub fn is_truthy_or_falsy(value: &Value) -> bool {
    match value {
        Value::Bool(_) => true,
        Value::String(s) => s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false"),
        Value::Array(items) => items.iter().all(is_truthy_or_falsy),
        _ => false,
    }
}

/// The boolean a value reads as: `true`, `"true"` in any case, or a list of such.
pub fn is_truthy(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::String(s) => s.eq_ignore_ascii_case("true"),
        Value::Array(items) => items.iter().all(is_truthy),
        _ => false,
    }
}

/// Reads a value as a finite number: JSON numbers, or strings that are plain decimal
/// literals (`-1`, `2.5`, `.5`, `1e3`). Booleans are not numbers.
pub fn parse_numeric(value: &Value) -> Option<f64> {
    let parsed = match value {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) if is_decimal_literal(s) => s.parse::<f64>().ok()?,
        _ => return None,
    };
    parsed.is_finite().then_some(parsed)
}

/// `[+-]?(digits(.digits?)?|.digits)([eE][+-]?digits)?`, whole string.
fn is_decimal_literal(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - int_start;
    let mut frac_digits = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let frac_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = i - frac_start;
    }
    if int_digits == 0 && frac_digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let exp_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == exp_start {
            return false;
        }
    }
    i == b.len()
}

/// ASCII-case-insensitive substring test; `needle` must already be ASCII-lowercase.
pub fn contains_ascii_ci(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    if n.is_empty() {
        return true;
    }
    if n.len() > h.len() {
        return false;
    }
    h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

/// Unicode-lowercase equality, without allocating when `other` is ASCII. `lowered` must
/// already be lowercase.
pub fn eq_lowercase(lowered: &str, other: &str) -> bool {
    if other.is_ascii() {
        lowered.eq_ignore_ascii_case(other)
    } else {
        lowered == other.to_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn floats_print_like_python() {
        assert_eq!(float_to_string(1.0), "1.0");
        assert_eq!(float_to_string(100.0), "100.0");
        assert_eq!(float_to_string(-0.0), "-0.0");
        assert_eq!(float_to_string(0.0001), "0.0001");
        assert_eq!(float_to_string(1.5e-5), "0.000015");
        assert_eq!(float_to_string(1e-7), "1e-7");
        assert_eq!(float_to_string(1e16), "1e+16");
        assert_eq!(float_to_string(1.5e16), "1.5e+16");
        assert_eq!(float_to_string(123456789012345.6), "123456789012345.6");
    }

    #[test]
    fn non_strings_render_as_compact_json() {
        assert_eq!(value_to_string(&json!(null)), "null");
        assert_eq!(value_to_string(&json!(true)), "true");
        assert_eq!(value_to_string(&json!(5)), "5");
        assert_eq!(value_to_string(&json!(5.0)), "5.0");
        assert_eq!(value_to_string(&json!([1, "a"])), r#"[1,"a"]"#);
        assert_eq!(
            value_to_string(&json!({"b": 1, "a": "x"})),
            r#"{"a":"x","b":1}"#
        );
    }

    #[test]
    fn truthiness() {
        assert!(is_truthy_or_falsy(&json!("TRUE")));
        assert!(is_truthy_or_falsy(&json!(["true", false])));
        assert!(!is_truthy_or_falsy(&json!(1)));
        assert!(is_truthy(&json!("True")));
        assert!(!is_truthy(&json!(1)));
        assert!(!is_truthy(&json!(["true", false])));
    }

    #[test]
    fn numeric_strings() {
        assert_eq!(parse_numeric(&json!("1.5")), Some(1.5));
        assert_eq!(parse_numeric(&json!(".5")), Some(0.5));
        assert_eq!(parse_numeric(&json!("1.")), Some(1.0));
        assert_eq!(parse_numeric(&json!("-2e3")), Some(-2000.0));
        assert_eq!(parse_numeric(&json!(" 1")), None);
        assert_eq!(parse_numeric(&json!("inf")), None);
        assert_eq!(parse_numeric(&json!("1e400")), None);
        assert_eq!(parse_numeric(&json!("e5")), None);
        assert_eq!(parse_numeric(&json!(true)), None);
        assert_eq!(parse_numeric(&json!(3)), Some(3.0));
    }

    #[test]
    fn case_insensitive_helpers() {
        assert!(contains_ascii_ci("Hello World", "o w"));
        assert!(!contains_ascii_ci("Hello", "hello!"));
        assert!(eq_lowercase("straße", "STRAßE"));
        assert!(eq_lowercase("abc", "AbC"));
    }
}
