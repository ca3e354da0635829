//! Semantics of the VM's operators: arithmetic, comparisons, `in`, `like`, and property access.
//!
//! These follow PostHog's production (TypeScript) VM: arithmetic converts operands with
//! JavaScript's `Number()`, comparisons first unify types (numbers with numeric strings, booleans
//! with `'true'`/`'false'`, dates as epoch seconds), `like` is an unanchored pattern match.
//! Equality of arrays and dicts is structural (PostHog's Python VM), not by reference.

use crate::bytecode::Cmp;
use crate::error::VmError;
use crate::stl::dates::{date_to_seconds, parse_date_like};
use crate::value::Value;

/// Nesting depth after which structural comparisons give up (and report "not equal").
const MAX_EQ_DEPTH: usize = 64;

/// A number as JavaScript's `Number()` would produce it.
#[derive(Debug, Clone, Copy)]
pub enum Num {
    /// An integer.
    I(i64),
    /// A float.
    F(f64),
}

impl Num {
    fn f(self) -> f64 {
        match self {
            Num::I(i) => i as f64,
            Num::F(f) => f,
        }
    }
    fn value(self) -> Value {
        match self {
            Num::I(i) => Value::Int(i),
            Num::F(f) => Value::Float(f),
        }
    }
}

/// JavaScript's `Number(v)`.
pub fn to_num(v: &Value) -> Num {
    match v {
        Value::Int(i) => Num::I(*i),
        Value::Float(f) => Num::F(*f),
        Value::Bool(b) => Num::I(*b as i64),
        Value::Null => Num::I(0),
        Value::Str(s) => parse_js_number(s),
        _ => Num::F(f64::NAN),
    }
}

/// Parses a string as JavaScript's `Number()` does (whitespace trimmed, empty is 0).
pub fn parse_js_number(s: &str) -> Num {
    let t = s.trim();
    if t.is_empty() {
        return Num::I(0);
    }
    if let Ok(i) = t.parse::<i64>() {
        return Num::I(i);
    }
    let lower = t.to_ascii_lowercase();
    if let Some(hex) = lower.strip_prefix("0x") {
        return i64::from_str_radix(hex, 16)
            .map(Num::I)
            .unwrap_or(Num::F(f64::NAN));
    }
    match lower.as_str() {
        "infinity" | "+infinity" => return Num::F(f64::INFINITY),
        "-infinity" => return Num::F(f64::NEG_INFINITY),
        "inf" | "-inf" | "+inf" | "nan" => return Num::F(f64::NAN),
        _ => {}
    }
    t.parse::<f64>().map(Num::F).unwrap_or(Num::F(f64::NAN))
}

/// Applies an arithmetic opcode: `a op b` (a is the left operand).
pub fn arith(a: &Value, b: &Value, op: char) -> Value {
    let (x, y) = (to_num(a), to_num(b));
    if let (Num::I(i), Num::I(j)) = (x, y) {
        let r = match op {
            '+' => i.checked_add(j),
            '-' => i.checked_sub(j),
            '*' => i.checked_mul(j),
            '%' => {
                if j == 0 {
                    return Value::Float(f64::NAN);
                }
                Some(i.wrapping_rem(j))
            }
            _ => None,
        };
        if let Some(r) = r {
            return Value::Int(r);
        }
    }
    let (f, g) = (x.f(), y.f());
    Value::Float(match op {
        '+' => f + g,
        '-' => f - g,
        '*' => f * g,
        '/' => f / g,
        _ => f % g,
    })
}

fn temporal_seconds(v: &Value) -> Option<f64> {
    match v {
        Value::DateTime { dt, .. } => Some(*dt),
        Value::Date { year, month, day } => Some(date_to_seconds(*year, *month, *day)),
        _ => None,
    }
}

/// Unifies two values for comparison, as PostHog's `unifyComparisonTypes`.
fn unify(a: &Value, b: &Value) -> (Value, Value) {
    let (ta, tb) = (temporal_seconds(a), temporal_seconds(b));
    match (ta, tb, a, b) {
        (Some(x), Some(y), _, _) => return (Value::Float(x), Value::Float(y)),
        (Some(x), None, _, Value::Str(s)) => {
            if let Some(y) = parse_date_like(s, None) {
                return (Value::Float(x), Value::Float(y));
            }
        }
        (None, Some(y), Value::Str(s), _) => {
            if let Some(x) = parse_date_like(s, None) {
                return (Value::Float(x), Value::Float(y));
            }
        }
        _ => {}
    }
    match (a, b) {
        (Value::Int(_) | Value::Float(_), Value::Str(s)) => (a.clone(), parse_js_number(s).value()),
        (Value::Str(s), Value::Int(_) | Value::Float(_)) => (parse_js_number(s).value(), b.clone()),
        (Value::Bool(_), Value::Str(s)) => (a.clone(), Value::Bool(&**s == "true")),
        (Value::Str(s), Value::Bool(_)) => (Value::Bool(&**s == "true"), b.clone()),
        (Value::Bool(x), Value::Int(_) | Value::Float(_)) => (Value::Int(*x as i64), b.clone()),
        (Value::Int(_) | Value::Float(_), Value::Bool(y)) => (a.clone(), Value::Int(*y as i64)),
        _ => (a.clone(), b.clone()),
    }
}

/// Structural equality (numbers by value across integer and float).
pub fn values_equal(a: &Value, b: &Value) -> bool {
    eq_depth(a, b, 0)
}

fn eq_depth(a: &Value, b: &Value, depth: usize) -> bool {
    if depth > MAX_EQ_DEPTH {
        return false;
    }
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
            a.as_f64() == b.as_f64()
        }
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::Array(x), Value::Array(y)) | (Value::Tuple(x), Value::Tuple(y)) => {
            if std::rc::Rc::ptr_eq(x, y) {
                return true;
            }
            let (x, y) = (x.0.borrow(), y.0.borrow());
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|(p, q)| eq_depth(p, q, depth + 1))
        }
        (Value::Dict(x), Value::Dict(y)) => {
            if std::rc::Rc::ptr_eq(x, y) {
                return true;
            }
            let (x, y) = (x.borrow(), y.borrow());
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| eq_depth(v, w, depth + 1)))
        }
        (Value::Date { .. }, Value::Date { .. })
        | (Value::DateTime { .. }, Value::DateTime { .. }) => {
            temporal_seconds(a) == temporal_seconds(b)
        }
        (Value::Error(x), Value::Error(y)) => std::rc::Rc::ptr_eq(x, y),
        (Value::Closure(x), Value::Closure(y)) => std::rc::Rc::ptr_eq(x, y),
        (Value::Callable(x), Value::Callable(y)) => std::rc::Rc::ptr_eq(x, y),
        _ => false,
    }
}

fn ordering(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
            a.as_f64()?.partial_cmp(&b.as_f64()?)
        }
        (Value::Str(x), Value::Str(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Null, Value::Int(_) | Value::Float(_)) => 0f64.partial_cmp(&b.as_f64()?),
        (Value::Int(_) | Value::Float(_), Value::Null) => a.as_f64()?.partial_cmp(&0f64),
        (Value::Array(x), Value::Array(y)) => {
            let (x, y) = (x.0.borrow(), y.0.borrow());
            for (p, q) in x.iter().zip(y.iter()) {
                match ordering(p, q)? {
                    std::cmp::Ordering::Equal => continue,
                    o => return Some(o),
                }
            }
            Some(x.len().cmp(&y.len()))
        }
        _ => None,
    }
}

/// Evaluates a comparison opcode on `a cmp b`.
pub fn compare(a: &Value, b: &Value, cmp: Cmp) -> bool {
    // Numbers against numbers and strings against strings need no unifying (and no copies).
    let same_kind = matches!(
        (a, b),
        (
            Value::Int(_) | Value::Float(_),
            Value::Int(_) | Value::Float(_)
        ) | (Value::Str(_), Value::Str(_))
    );
    if same_kind {
        return compare_unified(a, b, cmp);
    }
    let (a, b) = unify(a, b);
    compare_unified(&a, &b, cmp)
}

fn compare_unified(a: &Value, b: &Value, cmp: Cmp) -> bool {
    match cmp {
        Cmp::Eq => values_equal(a, b),
        Cmp::NotEq => !values_equal(a, b),
        _ => match ordering(a, b) {
            None => false,
            Some(o) => match cmp {
                Cmp::Gt => o.is_gt(),
                Cmp::GtEq => o.is_ge(),
                Cmp::Lt => o.is_lt(),
                _ => o.is_le(),
            },
        },
    }
}

/// `needle in haystack`.
pub fn contains(haystack: &Value, needle: &Value) -> Result<bool, VmError> {
    match haystack {
        Value::Array(a) | Value::Tuple(a) => {
            Ok(a.0.borrow().iter().any(|x| values_equal(x, needle)))
        }
        Value::Dict(d) => Ok(needle.key_ref().is_some_and(|k| d.contains_key(k))),
        Value::Str(s) => Ok(s.contains(crate::print::print_string_output(needle).as_str())),
        other => Err(VmError::exception(format!(
            "Can not check membership in a value of type {}",
            other.type_name()
        ))),
    }
}

/// Turns a SQL `LIKE` pattern into a regex (unanchored, as PostHog's VM matches it).
pub fn like_to_regex(pattern: &str, case_insensitive: bool) -> String {
    let mut out = String::new();
    if case_insensitive {
        out.push_str("(?i)");
    }
    out.push_str("(?s)");
    for c in pattern.chars() {
        match c {
            '%' => out.push_str(".*"),
            '_' => out.push('.'),
            c => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    out
}

/// [`get_property`] into `out`. The interpreter reads every property this way: moving the value
/// out of a returned `Result` (whose tag is the value's own) was copied in overlapping pieces
/// that the next read stalled on (seen in profiles), while `out` is written and read whole.
pub(crate) fn get_property_into(obj: &Value, key: &Value, out: &mut Value) -> Result<(), VmError> {
    *out = get_property(obj, key)?;
    Ok(())
}

/// Reads `obj[key]` with 1-based (and negative) indexes for arrays and tuples.
#[inline]
pub fn get_property(obj: &Value, key: &Value) -> Result<Value, VmError> {
    Ok(match obj {
        Value::Dict(d) => match key.key_ref() {
            Some(k) => d.get(k).unwrap_or(Value::Null),
            None => Value::Null,
        },
        Value::Array(a) | Value::Tuple(a) => {
            let idx = match key {
                Value::Int(i) => *i,
                Value::Float(f) if f.fract() == 0.0 => *f as i64,
                _ => return Ok(Value::Null),
            };
            let items = a.0.borrow();
            let len = items.len() as i64;
            if idx == 0 {
                return Err(VmError::exception("Hog arrays start from index 1"));
            }
            let pos = if idx > 0 { idx - 1 } else { len + idx };
            if pos < 0 || pos >= len {
                Value::Null
            } else {
                items[pos as usize].clone()
            }
        }
        Value::Error(e) => match key.as_str() {
            Some("type") => Value::Str(e.kind.clone()),
            Some("message") => Value::Str(e.message.clone()),
            Some("payload") => e.payload.borrow().clone(),
            _ => Value::Null,
        },
        Value::DateTime { dt, zone } => match key.as_str() {
            Some("dt") => Value::Float(*dt),
            Some("zone") => Value::str(&**zone),
            _ => Value::Null,
        },
        Value::Date { year, month, day } => match key.as_str() {
            Some("year") => Value::Int(*year as i64),
            Some("month") => Value::Int(*month as i64),
            Some("day") => Value::Int(*day as i64),
            _ => Value::Null,
        },
        _ => Value::Null,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_follows_number_conversion() {
        assert!(matches!(
            arith(&Value::Int(2), &Value::Int(3), '+'),
            Value::Int(5)
        ));
        assert!(matches!(
            arith(&Value::str("2"), &Value::Int(3), '*'),
            Value::Int(6)
        ));
        assert!(matches!(
            arith(&Value::Int(i64::MAX), &Value::Int(1), '+'),
            Value::Float(_)
        ));
        assert!(
            matches!(arith(&Value::Int(1), &Value::Int(0), '%'), Value::Float(f) if f.is_nan())
        );
    }

    #[test]
    fn comparisons_unify_types() {
        assert!(compare(&Value::Int(1), &Value::str("1"), Cmp::Eq));
        assert!(compare(&Value::Bool(true), &Value::str("true"), Cmp::Eq));
        assert!(!compare(&Value::Int(1), &Value::Null, Cmp::Eq));
        assert!(compare(&Value::Int(2), &Value::Float(1.5), Cmp::Gt));
        assert!(!compare(&Value::str("a"), &Value::Int(1), Cmp::Gt));
    }

    #[test]
    fn like_patterns() {
        let re = regex::Regex::new(&like_to_regex("%b_c%", false)).unwrap();
        assert!(re.is_match("abxcd"));
    }
}
