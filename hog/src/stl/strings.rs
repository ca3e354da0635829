//! String functions, pattern matching, URL and base64 coding, random values.

use base64::Engine;

use super::{arg, NativeFn};
use crate::error::VmError;
use crate::print::print_string_output;
use crate::runtime::Runtime;
use crate::value::Value;
use crate::vm::ops::like_to_regex;

type Reg<'a> = &'a mut dyn FnMut(&'static str, usize, Option<usize>, NativeFn);

fn s(v: &Value) -> Option<&str> {
    v.as_str()
}

fn text(rt: &mut Runtime, out: String) -> Result<Value, VmError> {
    rt.charge(out.len() + crate::heap::UNIT)?;
    Ok(Value::str(out))
}

pub(super) fn register(add: Reg<'_>) {
    add("concat", 1, None, |rt, _, a| {
        let size: usize = a.iter().map(|v| v.as_str().map_or(8, str::len)).sum();
        let mut out = String::with_capacity(size);
        for v in a {
            if !matches!(v, Value::Null) {
                super::core::write_string(v, &mut out);
            }
        }
        text(rt, out)
    });
    add("length", 1, Some(1), |_, _, a| {
        Ok(Value::Int(match arg(a, 0) {
            Value::Str(x) if x.is_ascii() => x.len() as i64,
            Value::Str(x) => x.encode_utf16().count() as i64,
            Value::Array(x) | Value::Tuple(x) => x.0.borrow().len() as i64,
            Value::Dict(d) => d.borrow().len() as i64,
            _ => 0,
        }))
    });
    add("empty", 1, Some(1), |_, _, a| {
        Ok(Value::Bool(is_empty(arg(a, 0))))
    });
    add("notEmpty", 1, Some(1), |_, _, a| {
        Ok(Value::Bool(!is_empty(arg(a, 0))))
    });
    add("lower", 1, Some(1), |_, _, a| {
        Ok(change_case(arg(a, 0), false))
    });
    add("upper", 1, Some(1), |_, _, a| {
        Ok(change_case(arg(a, 0), true))
    });
    add("reverse", 1, Some(1), |rt, _, a| match arg(a, 0) {
        Value::Str(x) => Ok(Value::str(x.chars().rev().collect::<String>())),
        Value::Array(x) => {
            let items = x.0.borrow().iter().rev().cloned().collect();
            Ok(rt.heap.array(items))
        }
        _ => Ok(Value::Null),
    });
    add("trim", 1, Some(2), |_, _, a| trim(a, true, true));
    add("trimLeft", 1, Some(2), |_, _, a| trim(a, true, false));
    add("trimRight", 1, Some(2), |_, _, a| trim(a, false, true));
    add("splitByString", 2, Some(3), |rt, _, a| {
        let (Some(sep), Some(x)) = (s(arg(a, 0)), s(arg(a, 1))) else {
            return Ok(Value::Null);
        };
        let mut parts: Vec<Value> = if sep.is_empty() {
            x.chars().map(|c| Value::str(c.to_string())).collect()
        } else {
            x.split(sep).map(Value::str).collect()
        };
        if let Some(max) = arg(a, 2).as_f64() {
            parts.truncate(max.max(0.0) as usize);
        }
        rt.charge(x.len() + parts.len() * crate::heap::UNIT)?;
        Ok(rt.heap.array(parts))
    });
    add("replaceOne", 3, Some(3), |rt, _, a| {
        let (Some(x), Some(n), Some(r)) = (s(arg(a, 0)), s(arg(a, 1)), s(arg(a, 2))) else {
            return Ok(arg(a, 0).clone());
        };
        let out = x.replacen(n, r, 1);
        text(rt, out)
    });
    add("replaceAll", 3, Some(3), |rt, _, a| {
        let (Some(x), Some(n), Some(r)) = (s(arg(a, 0)), s(arg(a, 1)), s(arg(a, 2))) else {
            return Ok(arg(a, 0).clone());
        };
        if n.is_empty() {
            return Ok(arg(a, 0).clone());
        }
        let count = x.matches(n).count();
        rt.charge(x.len() + count.saturating_mul(r.len()))?;
        text(rt, x.replace(n, r))
    });
    add("position", 2, Some(3), |_, _, a| Ok(position(a, false)));
    add("positionCaseInsensitive", 2, Some(3), |_, _, a| {
        Ok(position(a, true))
    });
    add("substring", 2, Some(3), |_, _, a| {
        let Some(x) = s(arg(a, 0)) else {
            return Ok(Value::str(""));
        };
        if x.is_ascii() {
            return Ok(Value::str(ascii_substring(x, arg(a, 1), arg(a, 2))));
        }
        let chars: Vec<char> = x.chars().collect();
        let start = arg(a, 1).as_f64().unwrap_or(1.0) as i64 - 1;
        let len = match arg(a, 2).as_f64() {
            Some(l) => l as i64,
            None => chars.len() as i64 - start,
        };
        if start < 0 || len < 0 || start >= chars.len() as i64 {
            return Ok(Value::str(""));
        }
        let end = (start + len).min(chars.len() as i64);
        Ok(Value::str(
            chars[start as usize..end as usize]
                .iter()
                .collect::<String>(),
        ))
    });
    add("startsWith", 2, Some(2), |_, _, a| {
        Ok(Value::Bool(
            matches!((s(arg(a, 0)), s(arg(a, 1))), (Some(x), Some(p)) if x.starts_with(p)),
        ))
    });
    add("like", 2, Some(2), |rt, _, a| like(rt, a, false, false));
    add("ilike", 2, Some(2), |rt, _, a| like(rt, a, true, false));
    add("notLike", 2, Some(2), |rt, _, a| like(rt, a, false, true));
    add("notILike", 2, Some(2), |rt, _, a| like(rt, a, true, true));
    add("match", 2, Some(2), |rt, _, a| {
        let (Some(x), Some(re)) = (s(arg(a, 0)), s(arg(a, 1))) else {
            return Ok(Value::Bool(false));
        };
        if x.is_empty() || re.is_empty() {
            return Ok(Value::Bool(false));
        }
        Ok(Value::Bool(rt.regex(re)?.is_match(x)))
    });
    add("extractRegex", 2, Some(2), |rt, _, a| {
        if matches!(arg(a, 0), Value::Null) || matches!(arg(a, 1), Value::Null) {
            return Ok(Value::str(""));
        }
        let x = print_string_output(arg(a, 0));
        let re = rt.regex(&print_string_output(arg(a, 1)))?;
        let out = match re.captures(&x) {
            Some(c) => c
                .get(1)
                .or_else(|| c.get(0))
                .map(|m| m.as_str().to_string())
                .unwrap_or_default(),
            None => String::new(),
        };
        Ok(Value::str(out))
    });
    add("multiSearchAnyCaseInsensitive", 2, Some(2), |_, _, a| {
        let (Some(h), Value::Array(needles)) = (s(arg(a, 0)), arg(a, 1)) else {
            return Ok(Value::Int(0));
        };
        let h = h.to_lowercase();
        let found = needles
            .0
            .borrow()
            .iter()
            .any(|n| h.contains(&print_string_output(n).to_lowercase()));
        Ok(Value::Int(found as i64))
    });
    add("encodeURLComponent", 1, Some(1), |rt, _, a| {
        let x = print_string_output(arg(a, 0));
        text(rt, encode_uri_component(&x))
    });
    add("decodeURLComponent", 1, Some(1), |_, _, a| {
        decode_uri_component(&print_string_output(arg(a, 0)))
            .map(Value::str)
            .ok_or_else(|| VmError::exception("URIError: URI malformed"))
    });
    add("tryDecodeURLComponent", 1, Some(1), |_, _, a| {
        Ok(decode_uri_component(&print_string_output(arg(a, 0)))
            .map(Value::str)
            .unwrap_or(Value::Null))
    });
    add("base64Encode", 1, Some(1), |rt, _, a| {
        let x = print_string_output(arg(a, 0));
        text(
            rt,
            base64::engine::general_purpose::STANDARD.encode(x.as_bytes()),
        )
    });
    add("base64Decode", 1, Some(1), |_, _, a| {
        Ok(Value::str(b64_decode(&print_string_output(arg(a, 0)))))
    });
    add("tryBase64Decode", 1, Some(1), |_, _, a| {
        Ok(Value::str(b64_decode(&print_string_output(arg(a, 0)))))
    });
    add("generateUUIDv4", 0, Some(0), |_, _, _| {
        let mut b: [u8; 16] = std::array::from_fn(|_| fastrand::u8(..));
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
        Ok(Value::str(format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )))
    });
    add("randomFloat", 0, Some(0), |_, _, _| {
        Ok(Value::Float(fastrand::f64()))
    });
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Str(x) => x.is_empty(),
        Value::Array(x) | Value::Tuple(x) => x.0.borrow().is_empty(),
        Value::Dict(d) => d.borrow().is_empty(),
        _ => false,
    }
}

fn trim(a: &[Value], left: bool, right: bool) -> Result<Value, VmError> {
    let Some(x) = s(arg(a, 0)) else {
        return Ok(arg(a, 0).clone());
    };
    let c = match arg(a, 1) {
        Value::Null => ' ',
        Value::Str(c) if c.chars().count() == 1 => c.chars().next().unwrap_or(' '),
        _ => return Ok(Value::str("")),
    };
    let mut out = x;
    if left {
        out = out.trim_start_matches(c);
    }
    if right {
        out = out.trim_end_matches(c);
    }
    if out.len() == x.len() {
        // Nothing trimmed: share the string instead of copying it.
        return Ok(arg(a, 0).clone());
    }
    Ok(Value::str(out))
}

/// `lower` / `upper`. ASCII text (most property values) takes a byte-wise path, and text that
/// is already in the wanted case is shared rather than copied.
fn change_case(v: &Value, upper: bool) -> Value {
    let Value::Str(x) = v else {
        return Value::Null;
    };
    if x.is_ascii() {
        let unchanged = if upper {
            !x.bytes().any(|b| b.is_ascii_lowercase())
        } else {
            !x.bytes().any(|b| b.is_ascii_uppercase())
        };
        if unchanged {
            return v.clone();
        }
        return Value::str(if upper {
            x.to_ascii_uppercase()
        } else {
            x.to_ascii_lowercase()
        });
    }
    Value::str(if upper {
        x.to_uppercase()
    } else {
        x.to_lowercase()
    })
}

/// `substring` of ASCII text, where characters are bytes: the same arithmetic as the general
/// case in `substring`, without collecting characters.
fn ascii_substring<'a>(x: &'a str, from: &Value, len: &Value) -> &'a str {
    let n = x.len() as i64;
    let start = from.as_f64().unwrap_or(1.0) as i64 - 1;
    let len = match len.as_f64() {
        Some(l) => l as i64,
        None => n - start,
    };
    if start < 0 || len < 0 || start >= n {
        return "";
    }
    let end = (start + len).min(n);
    x.get(start as usize..end as usize).unwrap_or("")
}

fn position(a: &[Value], ci: bool) -> Value {
    let Some(h) = s(arg(a, 0)) else {
        return Value::Int(0);
    };
    let n = print_string_output(arg(a, 1));
    let found = |h: &str, n: &str| match h.find(n) {
        Some(byte) => h[..byte].chars().count() as i64 + 1,
        None => 0,
    };
    Value::Int(if ci {
        found(&h.to_lowercase(), &n.to_lowercase())
    } else {
        found(h, &n)
    })
}

fn like(rt: &mut Runtime, a: &[Value], ci: bool, negate: bool) -> Result<Value, VmError> {
    let r = match (arg(a, 0), arg(a, 1)) {
        (Value::Str(x), p) if !matches!(p, Value::Null) => {
            let re = rt.regex(&like_to_regex(&print_string_output(p), ci))?;
            re.is_match(x)
        }
        _ => false,
    };
    Ok(Value::Bool(r != negate))
}

/// JavaScript's `encodeURIComponent`.
pub fn encode_uri_component(x: &str) -> String {
    let mut out = String::with_capacity(x.len());
    for b in x.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// JavaScript's `decodeURIComponent`; `None` for malformed input.
pub fn decode_uri_component(x: &str) -> Option<String> {
    let bytes = x.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = x.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn b64_decode(x: &str) -> String {
    let cleaned: String = x
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '=')
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    let valid = cleaned.len() - usize::from(cleaned.len() % 4 == 1);
    let cleaned = cleaned.get(..valid).unwrap_or("");
    match base64::engine::general_purpose::STANDARD_NO_PAD.decode(cleaned) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_coding_matches_javascript() {
        assert_eq!(encode_uri_component("a b&c/é"), "a%20b%26c%2F%C3%A9");
        assert_eq!(decode_uri_component("a%20b%C3%A9").as_deref(), Some("a bé"));
        assert_eq!(decode_uri_component("%E0%A4%A"), None);
    }

    #[test]
    fn base64_is_lenient() {
        assert_eq!(b64_decode("aGVsbG8="), "hello");
        assert_eq!(b64_decode("aGVsbG8"), "hello");
    }
}
