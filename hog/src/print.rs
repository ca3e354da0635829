//! Printing values the way PostHog's `print` does.
//!
//! A top-level string prints raw; everything else prints as Hog source would write it: strings
//! quoted with escapes, `[1, 2]`, `(1, 2)`, `{'a': 1}`, `fn<name(argc)>`, `Error('msg')`,
//! `DateTime(1.5, 'UTC')`, `Date(2024, 1, 2)`. A container that contains itself prints `null` at
//! the point of recursion. Numbers print as JavaScript prints them.

use std::fmt::Write;

use crate::value::{Callable, Value};

/// How deep printing descends before writing `...`.
pub const MAX_PRINT_DEPTH: usize = 64;

/// Formats a float as JavaScript's `Number.prototype.toString` does.
pub fn js_number(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if f == 0.0 {
        return "0".into();
    }
    // Shortest round-trip digits and exponent from Rust's formatter.
    let sci = format!("{:e}", f);
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let neg = mant.starts_with('-');
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    let k = digits.len() as i32;
    let n = exp + 1; // position of the decimal point
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if k <= n && n <= 21 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        out.push_str(&digits[..n as usize]);
        out.push('.');
        out.push_str(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(&digits);
    } else {
        out.push_str(&digits[..1]);
        if k > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let e = n - 1;
        let _ = write!(out, "e{}{}", if e >= 0 { "+" } else { "-" }, e.abs());
    }
    out
}

/// Quotes a string with Hog escapes: `'it\'s'`.
pub fn escape_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            '\u{b}' => out.push_str("\\v"),
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

fn escape_identifier(s: &str) -> String {
    let simple = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    if simple {
        return s.to_string();
    }
    let mut out = String::from("`");
    for c in s.chars() {
        match c {
            '`' => out.push_str("``"),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('`');
    out
}

/// Formats a number value.
pub fn number_string(v: &Value) -> Option<String> {
    match v {
        Value::Int(i) => Some(i.to_string()),
        Value::Float(f) => Some(js_number(*f)),
        _ => None,
    }
}

fn callable_string(c: &Callable) -> String {
    format!("fn<{}({})>", escape_identifier(&c.name), c.arg_count)
}

/// Prints a value as Hog source would write it (strings quoted).
pub fn print_value(v: &Value) -> String {
    let mut out = String::new();
    let mut marked: Vec<usize> = Vec::new();
    write_value(v, &mut out, &mut marked, 0);
    out
}

/// Prints a value for `print`: a top-level string raw, anything else via [`print_value`].
pub fn print_string_output(v: &Value) -> String {
    match v {
        Value::Str(s) => String::from(&**s),
        other => print_value(other),
    }
}

fn write_seq(
    items: &[Value],
    (open, close): (&str, &str),
    out: &mut String,
    marked: &mut Vec<usize>,
    depth: usize,
) {
    let depth = depth + 1;
    out.push_str(open);
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_value(item, out, marked, depth);
    }
    out.push_str(close);
}

fn write_value(v: &Value, out: &mut String, marked: &mut Vec<usize>, depth: usize) {
    if depth > MAX_PRINT_DEPTH {
        out.push_str("...");
        return;
    }
    let ptr = v.container_id();
    if let Some(p) = ptr {
        if marked.contains(&p) {
            out.push_str("null");
            return;
        }
        if marked.len() >= MAX_PRINT_DEPTH {
            out.push_str("...");
            return;
        }
        marked.push(p);
    }
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => out.push_str(&js_number(*f)),
        Value::Str(s) => out.push_str(&escape_string(s)),
        Value::Array(a) => write_seq(&a.0.borrow(), ("[", "]"), out, marked, depth),
        Value::Tuple(a) => {
            let items = a.0.borrow();
            if items.len() < 2 {
                write_seq(&items, ("tuple(", ")"), out, marked, depth)
            } else {
                write_seq(&items, ("(", ")"), out, marked, depth)
            }
        }
        Value::Dict(d) => {
            out.push('{');
            for (i, (k, val)) in d.borrow().iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(&k.to_value(), out, marked, depth + 1);
                out.push_str(": ");
                write_value(val, out, marked, depth + 1);
            }
            out.push('}');
        }
        Value::Date { year, month, day } => {
            let _ = write!(out, "Date({year}, {month}, {day})");
        }
        Value::DateTime { dt, zone } => {
            let s = js_number(*dt);
            let dot = if s.contains('.') { "" } else { ".0" };
            let _ = write!(out, "DateTime({s}{dot}, {})", escape_string(zone));
        }
        Value::Error(e) => {
            let _ = write!(out, "{}({}", e.kind, escape_string(&e.message));
            let payload = e.payload.borrow();
            if payload.truthy() {
                out.push_str(", ");
                write_value(&payload, out, marked, depth + 1);
            }
            out.push(')');
        }
        Value::Callable(c) => out.push_str(&callable_string(c)),
        Value::Closure(c) => out.push_str(&callable_string(&c.callable)),
    }
    if ptr.is_some() {
        marked.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_like_javascript() {
        assert_eq!(js_number(1.5), "1.5");
        assert_eq!(js_number(2.0), "2");
        assert_eq!(js_number(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(js_number(1e21), "1e+21");
        assert_eq!(js_number(1e-7), "1e-7");
        assert_eq!(js_number(123456789012.0), "123456789012");
        assert_eq!(js_number(-0.000001), "-0.000001");
    }

    #[test]
    fn prints_nested_values() {
        let v = Value::array_untracked(vec![Value::Int(1), Value::str("a'b"), Value::Null]);
        assert_eq!(print_value(&v), "[1, 'a\\'b', null]");
        assert_eq!(print_string_output(&Value::str("raw")), "raw");
    }

    #[test]
    fn prints_cycles_as_null() {
        let v = Value::array_untracked(vec![]);
        if let Value::Array(a) = &v {
            a.0.borrow_mut().push(v.clone());
        }
        assert_eq!(print_value(&v), "[null]");
        if let Value::Array(a) = &v {
            a.0.borrow_mut().clear();
        }
    }
}
