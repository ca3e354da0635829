//! Array, dict and JSON functions. Array functions return new arrays.

use super::{arg, NativeFn};
use crate::convert::{parse_json, stringify};
use crate::error::VmError;
use crate::print::print_string_output;
use crate::runtime::Runtime;
use crate::value::Value;
use crate::vm::ops::{get_property, values_equal};

type Reg<'a> = &'a mut dyn FnMut(&'static str, usize, Option<usize>, NativeFn);

fn items(v: &Value) -> Option<Vec<Value>> {
    match v {
        Value::Array(a) | Value::Tuple(a) => Some(a.0.borrow().clone()),
        _ => None,
    }
}

fn new_array(rt: &mut Runtime, v: Vec<Value>) -> Result<Value, VmError> {
    rt.charge(crate::heap::UNIT * (1 + v.len()))?;
    Ok(rt.heap.array(v))
}

pub(super) fn register(add: Reg<'_>) {
    add("keys", 1, Some(1), |rt, _, a| {
        let v = match arg(a, 0) {
            Value::Array(x) | Value::Tuple(x) => {
                (0..x.0.borrow().len() as i64).map(Value::Int).collect()
            }
            Value::Dict(d) => d.borrow().keys().map(|k| k.to_value()).collect(),
            _ => vec![],
        };
        new_array(rt, v)
    });
    add("values", 1, Some(1), |rt, _, a| {
        let v = match arg(a, 0) {
            Value::Array(x) | Value::Tuple(x) => x.0.borrow().clone(),
            Value::Dict(d) => d.borrow().values().cloned().collect(),
            _ => vec![],
        };
        new_array(rt, v)
    });
    add("has", 2, Some(2), |_, _, a| {
        Ok(Value::Bool(items(arg(a, 0)).is_some_and(|v| {
            v.iter().any(|x| values_equal(x, arg(a, 1)))
        })))
    });
    add("indexOf", 2, Some(2), |_, _, a| {
        Ok(Value::Int(
            items(arg(a, 0))
                .and_then(|v| v.iter().position(|x| values_equal(x, arg(a, 1))))
                .map(|p| p as i64 + 1)
                .unwrap_or(0),
        ))
    });
    add("arrayPushBack", 2, Some(2), |rt, _, a| {
        let mut v = items(arg(a, 0)).unwrap_or_default();
        v.push(arg(a, 1).clone());
        new_array(rt, v)
    });
    add("arrayPushFront", 2, Some(2), |rt, _, a| {
        let mut v = items(arg(a, 0)).unwrap_or_default();
        v.insert(0, arg(a, 1).clone());
        new_array(rt, v)
    });
    add("arrayPopBack", 1, Some(1), |rt, _, a| {
        let mut v = items(arg(a, 0)).unwrap_or_default();
        v.pop();
        new_array(rt, v)
    });
    add("arrayPopFront", 1, Some(1), |rt, _, a| {
        let mut v = items(arg(a, 0)).unwrap_or_default();
        if !v.is_empty() {
            v.remove(0);
        }
        new_array(rt, v)
    });
    add("arrayReverse", 1, Some(1), |rt, _, a| {
        let mut v = items(arg(a, 0)).unwrap_or_default();
        v.reverse();
        new_array(rt, v)
    });
    add("arraySort", 1, None, |rt, _, a| {
        let v = sorted(items(arg(a, 0)).unwrap_or_default());
        new_array(rt, v)
    });
    add("arrayReverseSort", 1, None, |rt, _, a| {
        let mut v = sorted(items(arg(a, 0)).unwrap_or_default());
        v.reverse();
        new_array(rt, v)
    });
    add("arrayStringConcat", 1, Some(2), |rt, _, a| {
        let Some(v) = items(arg(a, 0)) else {
            return Ok(Value::str(""));
        };
        let sep = match arg(a, 1) {
            Value::Null => String::new(),
            s => print_string_output(s),
        };
        let parts: Vec<String> = v
            .iter()
            .map(|x| match x {
                Value::Null => String::new(),
                x => print_string_output(x),
            })
            .collect();
        let out = parts.join(&sep);
        rt.charge(out.len())?;
        Ok(Value::str(out))
    });
    add("jsonParse", 1, Some(1), |rt, _, a| {
        let text = print_string_output(arg(a, 0));
        rt.charge(text.len() * 2)?;
        parse_json(&mut rt.heap, &text).map_err(|e| VmError::exception(format!("SyntaxError: {e}")))
    });
    add("jsonStringify", 1, Some(2), |rt, _, a| {
        let indent = arg(a, 1)
            .as_f64()
            .filter(|f| *f > 0.0)
            .unwrap_or(0.0)
            .min(10.0) as usize;
        let out = stringify(arg(a, 0), indent)?;
        rt.charge(out.len())?;
        Ok(Value::str(out))
    });
    add("isValidJSON", 1, Some(1), |_, _, a| {
        Ok(Value::Bool(match arg(a, 0) {
            Value::Str(s) => serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok(),
            _ => false,
        }))
    });
    add("JSONHas", 1, None, |rt, _, a| {
        let Some(obj) = json_root(rt, arg(a, 0)) else {
            return Ok(Value::Bool(false));
        };
        let mut cur = obj;
        for key in &a[1..] {
            let exists = match (&cur, key) {
                (Value::Dict(d), k) => k.key_ref().is_some_and(|k| d.borrow().contains_key(&k)),
                (Value::Array(x), Value::Int(i)) => {
                    let n = x.0.borrow().len() as i64;
                    *i != 0 && i.abs() <= n
                }
                _ => false,
            };
            if !exists {
                return Ok(Value::Bool(false));
            }
            cur = get_property(&cur, key)?;
        }
        Ok(Value::Bool(true))
    });
    add("JSONLength", 1, None, |rt, _, a| {
        let Some(v) = json_path(rt, a, a.len())? else {
            return Ok(Value::Int(0));
        };
        Ok(Value::Int(match v {
            Value::Array(x) => x.0.borrow().len() as i64,
            Value::Dict(d) => d.borrow().len() as i64,
            _ => 0,
        }))
    });
    add("JSONExtractBool", 1, None, |rt, _, a| {
        Ok(match json_path(rt, a, a.len())? {
            Some(Value::Bool(b)) => Value::Bool(b),
            _ => Value::Bool(false),
        })
    });
    add("JSONExtractInt", 1, None, |rt, _, a| {
        Ok(match json_path(rt, a, a.len())? {
            Some(Value::Int(i)) => Value::Int(i),
            Some(Value::Float(f)) if f.is_finite() => Value::Int(f.trunc() as i64),
            Some(Value::Str(s)) => s
                .trim()
                .parse::<i64>()
                .map(Value::Int)
                .unwrap_or(Value::Null),
            _ => Value::Null,
        })
    });
    add("JSONExtractFloat", 1, None, |rt, _, a| {
        Ok(match json_path(rt, a, a.len())? {
            Some(Value::Int(i)) => Value::Float(i as f64),
            Some(Value::Float(f)) => Value::Float(f),
            Some(Value::Str(s)) => s
                .trim()
                .parse::<f64>()
                .map(Value::Float)
                .unwrap_or(Value::Null),
            _ => Value::Null,
        })
    });
    add("JSONExtractString", 1, None, |rt, _, a| {
        Ok(match json_path(rt, a, a.len())? {
            None | Some(Value::Null) => Value::Null,
            Some(Value::Str(s)) => Value::Str(s),
            Some(other) => Value::str(crate::convert::stringify(&other, 0)?),
        })
    });
    add("JSONExtractArrayRaw", 1, None, |rt, _, a| {
        Ok(match json_path(rt, a, a.len())? {
            Some(v @ Value::Array(_)) => v,
            _ => Value::Null,
        })
    });
    add("JSONExtract", 2, None, |rt, _, a| {
        let end = if a.len() > 2 { a.len() - 1 } else { 1 };
        Ok(json_path(rt, a, end)?.unwrap_or(Value::Null))
    });
}

fn json_root(rt: &mut Runtime, v: &Value) -> Option<Value> {
    match v {
        Value::Str(s) => parse_json(&mut rt.heap, s).ok(),
        Value::Null => None,
        other => Some(other.clone()),
    }
}

/// Follows `a[1..end]` as a path into the JSON (string or value) in `a[0]`.
fn json_path(rt: &mut Runtime, a: &[Value], end: usize) -> Result<Option<Value>, VmError> {
    let Some(mut cur) = json_root(rt, arg(a, 0)) else {
        return Ok(None);
    };
    for key in a.get(1..end).unwrap_or(&[]) {
        if matches!(cur, Value::Null) {
            return Ok(None);
        }
        cur = get_property(&cur, key)?;
    }
    Ok(Some(cur))
}

fn sorted(mut v: Vec<Value>) -> Vec<Value> {
    if v.iter().all(Value::is_number) {
        v.sort_by(|a, b| {
            a.as_f64()
                .unwrap_or(0.0)
                .partial_cmp(&b.as_f64().unwrap_or(0.0))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
    } else {
        v.sort_by_cached_key(print_string_output);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_numbers_numerically_and_others_as_text() {
        let v = sorted(vec![Value::Int(10), Value::Float(9.5), Value::Int(1)]);
        assert_eq!(
            crate::print::print_value(&Value::array_untracked(v)),
            "[1, 9.5, 10]"
        );
        let v = sorted(vec![Value::str("b"), Value::str("a")]);
        assert_eq!(
            crate::print::print_value(&Value::array_untracked(v)),
            "['a', 'b']"
        );
    }
}
