//! Conversion, type, logic, arithmetic, error and output functions.

use super::{arg, NativeFn};
use crate::error::VmError;
use crate::print::{print_string_output, print_value};
use crate::runtime::Runtime;
use crate::value::Value;
use crate::vm::ops::{arith, compare, contains, parse_js_number, Num};

type Reg<'a> = &'a mut dyn FnMut(&'static str, usize, Option<usize>, NativeFn);

pub(super) fn register(add: Reg<'_>) {
    add("print", 0, None, print);
    add("typeof", 1, Some(1), |_, _, a| {
        Ok(Value::str(arg(a, 0).type_name()))
    });
    add("toString", 1, Some(2), |_, _, a| {
        Ok(Value::str(to_string(arg(a, 0))))
    });
    add("toUUID", 1, Some(1), |_, _, a| {
        Ok(Value::str(to_string(arg(a, 0))))
    });
    add("toInt", 1, Some(1), |_, _, a| Ok(to_int(arg(a, 0))));
    add("toFloat", 1, Some(1), |_, _, a| Ok(to_float(arg(a, 0))));
    add("tuple", 0, None, |rt, _, a| Ok(rt.heap.tuple(a.to_vec())));
    add("isNull", 1, Some(1), |_, _, a| {
        Ok(Value::Bool(matches!(arg(a, 0), Value::Null)))
    });
    add("isNotNull", 1, Some(1), |_, _, a| {
        Ok(Value::Bool(!matches!(arg(a, 0), Value::Null)))
    });
    add("ifNull", 2, Some(2), |_, _, a| {
        Ok(match arg(a, 0) {
            Value::Null => arg(a, 1).clone(),
            v => v.clone(),
        })
    });
    add("coalesce", 1, None, |_, _, a| {
        Ok(a.iter()
            .find(|v| !matches!(v, Value::Null))
            .cloned()
            .unwrap_or(Value::Null))
    });
    add("assumeNotNull", 1, Some(1), |_, _, a| match arg(a, 0) {
        Value::Null => Err(VmError::exception("Value is null in assumeNotNull")),
        v => Ok(v.clone()),
    });
    add("and", 1, None, |_, _, a| {
        Ok(Value::Bool(a.iter().all(Value::truthy)))
    });
    add("or", 1, None, |_, _, a| {
        Ok(Value::Bool(a.iter().any(Value::truthy)))
    });
    add("not", 1, Some(1), |_, _, a| {
        Ok(Value::Bool(!arg(a, 0).truthy()))
    });
    add("if", 3, Some(3), |_, _, a| {
        Ok(if arg(a, 0).truthy() {
            arg(a, 1)
        } else {
            arg(a, 2)
        }
        .clone())
    });
    add("multiIf", 3, None, |_, _, a| {
        let (last, pairs) = a.split_last().unwrap_or((&Value::Null, &[]));
        for p in pairs.chunks(2) {
            if p.len() == 2 && p[0].truthy() {
                return Ok(p[1].clone());
            }
        }
        Ok(last.clone())
    });
    add("in", 2, Some(2), |_, _, a| match arg(a, 1) {
        Value::Array(_) | Value::Tuple(_) => Ok(Value::Bool(contains(arg(a, 1), arg(a, 0))?)),
        _ => Ok(Value::Bool(false)),
    });
    add("equals", 2, Some(2), |_, _, a| {
        Ok(cmp(a, crate::bytecode::Cmp::Eq))
    });
    add("notEquals", 2, Some(2), |_, _, a| {
        Ok(cmp(a, crate::bytecode::Cmp::NotEq))
    });
    add("greater", 2, Some(2), |_, _, a| {
        Ok(cmp(a, crate::bytecode::Cmp::Gt))
    });
    add("greaterOrEquals", 2, Some(2), |_, _, a| {
        Ok(cmp(a, crate::bytecode::Cmp::GtEq))
    });
    add("less", 2, Some(2), |_, _, a| {
        Ok(cmp(a, crate::bytecode::Cmp::Lt))
    });
    add("lessOrEquals", 2, Some(2), |_, _, a| {
        Ok(cmp(a, crate::bytecode::Cmp::LtEq))
    });
    add("plus", 2, Some(2), |_, _, a| {
        Ok(arith(arg(a, 0), arg(a, 1), '+'))
    });
    add("minus", 2, Some(2), |_, _, a| {
        Ok(arith(arg(a, 0), arg(a, 1), '-'))
    });
    add("min2", 2, Some(2), |_, _, a| {
        Ok(if compare(arg(a, 0), arg(a, 1), crate::bytecode::Cmp::Lt) {
            arg(a, 0)
        } else {
            arg(a, 1)
        }
        .clone())
    });
    add("max2", 2, Some(2), |_, _, a| {
        Ok(if compare(arg(a, 0), arg(a, 1), crate::bytecode::Cmp::Gt) {
            arg(a, 0)
        } else {
            arg(a, 1)
        }
        .clone())
    });
    add("floor", 1, Some(2), |_, _, a| {
        Ok(int_if_whole(num(arg(a, 0)).floor()))
    });
    add("round", 1, Some(2), |_, _, a| {
        let f = num(arg(a, 0));
        let digits = arg(a, 1).as_f64().unwrap_or(0.0).clamp(0.0, 15.0) as i32;
        if digits == 0 {
            return Ok(int_if_whole((f + 0.5).floor()));
        }
        let p = 10f64.powi(digits);
        Ok(Value::Float((f * p + 0.5).floor() / p))
    });
    add("range", 1, Some(2), range);
    add("Error", 0, Some(2), make_error);
    add("RetryError", 0, Some(2), make_error);
    add("NotImplementedError", 0, Some(2), make_error);
    add("HogError", 1, Some(3), |_, _, a| {
        Ok(crate::vm_new_error(
            &print_string_output(arg(a, 0)),
            &message(arg(a, 1)),
            arg(a, 2).clone(),
        ))
    });
}

fn cmp(a: &[Value], c: crate::bytecode::Cmp) -> Value {
    Value::Bool(compare(arg(a, 0), arg(a, 1), c))
}

fn num(v: &Value) -> f64 {
    match crate::vm::ops::to_num(v) {
        Num::I(i) => i as f64,
        Num::F(f) => f,
    }
}

fn int_if_whole(f: f64) -> Value {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 {
        Value::Int(f as i64)
    } else {
        Value::Float(f)
    }
}

fn message(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        v => print_string_output(v),
    }
}

fn make_error(_: &mut Runtime, name: &str, a: &[Value]) -> Result<Value, VmError> {
    Ok(crate::vm_new_error(
        name,
        &message(arg(a, 0)),
        arg(a, 1).clone(),
    ))
}

fn print(rt: &mut Runtime, _: &str, a: &[Value]) -> Result<Value, VmError> {
    let line = a
        .iter()
        .map(print_string_output)
        .collect::<Vec<_>>()
        .join(" ");
    rt.print(line)?;
    Ok(Value::Null)
}

fn range(rt: &mut Runtime, _: &str, a: &[Value]) -> Result<Value, VmError> {
    let (start, end) = if a.len() >= 2 {
        (num(arg(a, 0)), num(arg(a, 1)))
    } else {
        (0.0, num(arg(a, 0)))
    };
    if !start.is_finite() || !end.is_finite() {
        return Err(VmError::exception(
            "range: arguments must be finite numbers",
        ));
    }
    let (start, end) = (start as i64, end as i64);
    let n = end.saturating_sub(start).max(0) as usize;
    rt.charge(n.saturating_mul(crate::heap::UNIT))?;
    let items = (0..n as i64).map(|i| Value::Int(start + i)).collect();
    Ok(rt.heap.array(items))
}

/// `toString`: dates as ISO text, everything else as `print` would show it.
/// Appends [`to_string`] of `v` to `out` (without an intermediate string for strings and
/// integers, the common cases of `concat` and f-strings).
pub fn write_string(v: &Value, out: &mut String) {
    match v {
        Value::Str(s) => out.push_str(s),
        Value::Int(i) => {
            use std::fmt::Write;
            let _ = write!(out, "{i}");
        }
        other => out.push_str(&to_string(other)),
    }
}

/// A value as `toString` and `concat` print it.
pub fn to_string(v: &Value) -> String {
    match v {
        Value::Date { year, month, day } => format!("{year:04}-{month:02}-{day:02}"),
        Value::DateTime { dt, zone } => crate::stl::dates::iso_string(*dt, zone),
        Value::Null => "null".into(),
        other => print_string_output(other),
    }
}

fn leading_number(s: &str, float: bool) -> Option<f64> {
    let t = s.trim_start();
    let mut end = 0;
    let b = t.as_bytes();
    if end < b.len() && (b[end] == b'-' || b[end] == b'+') {
        end += 1;
    }
    let digits_start = end;
    while end < b.len() && b[end].is_ascii_digit() {
        end += 1;
    }
    if float {
        if end < b.len() && b[end] == b'.' {
            end += 1;
            while end < b.len() && b[end].is_ascii_digit() {
                end += 1;
            }
        }
        if end > digits_start && end < b.len() && (b[end] == b'e' || b[end] == b'E') {
            let mut e = end + 1;
            if e < b.len() && (b[e] == b'-' || b[e] == b'+') {
                e += 1;
            }
            let ds = e;
            while e < b.len() && b[e].is_ascii_digit() {
                e += 1;
            }
            if e > ds {
                end = e;
            }
        }
    }
    t[..end].parse::<f64>().ok()
}

fn to_int(v: &Value) -> Value {
    match v {
        Value::Int(i) => Value::Int(*i),
        Value::Float(f) if f.is_finite() => Value::Int(f.trunc() as i64),
        Value::DateTime { dt, .. } => Value::Int(dt.floor() as i64),
        Value::Date { year, month, day } => {
            Value::Int((crate::stl::dates::date_to_seconds(*year, *month, *day) / 86400.0) as i64)
        }
        Value::Str(s) => match leading_number(s, false) {
            Some(f) if f.abs() < 9.2e18 => Value::Int(f as i64),
            _ => Value::Null,
        },
        _ => Value::Null,
    }
}

fn to_float(v: &Value) -> Value {
    match v {
        Value::Int(i) => Value::Float(*i as f64),
        Value::Float(f) => Value::Float(*f),
        Value::DateTime { dt, .. } => Value::Float(*dt),
        Value::Str(s) => match leading_number(s, true) {
            Some(f) => Value::Float(f),
            None => match parse_js_number(s) {
                Num::F(f) if f.is_infinite() => Value::Float(f),
                _ => Value::Null,
            },
        },
        _ => Value::Null,
    }
}

/// Used by `print_value` users that need a debug form.
pub fn debug(v: &Value) -> String {
    print_value(v)
}
