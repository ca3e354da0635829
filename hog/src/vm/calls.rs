//! What the interpreter loop delegates: native and host calls, property writes, frames and
//! async bookkeeping.

use std::rc::Rc;

use serde_json::Value as Json;

use super::lifecycle::{Frame, Vm};
use super::{ExecOptions, HostFn};
use crate::convert::{json_to_value, value_to_json};
use crate::error::VmError;
use crate::runtime::Runtime;
use crate::stl;
use crate::value::{Closure, ErrorData, Str, Value};

/// The lengths of the host functions' names, as bits (length modulo 64) for [`host_fn`].
pub(super) fn host_name_lengths(opts: &ExecOptions) -> u64 {
    opts.functions
        .keys()
        .fold(0, |bits, k| bits | 1u64 << (k.len() % 64))
}

/// The host function `name`, if the options have one. `lengths` is
/// [`host_name_lengths`] of the options.
#[inline]
pub(super) fn host_fn<'a>(opts: &'a ExecOptions, lengths: u64, name: &str) -> Option<&'a HostFn> {
    // This runs on every call by name, and most calls are to the standard library: a name of a
    // length no host function has is not one (without walking the map).
    if lengths & (1u64 << (name.len() % 64)) == 0 {
        return None;
    }
    let functions = &opts.functions;
    // Hosts pass a handful of functions: comparing a few names is cheaper than hashing the name
    // with SipHash.
    if functions.len() <= 8 {
        return functions
            .iter()
            .find(|(k, _)| k.as_str() == name)
            .map(|(_, f)| f);
    }
    functions.get(name)
}

/// Calls a host function (when there is one) or else the native standard library function
/// `spec`. `None` when there is neither.
pub(super) fn call_native(
    rt: &mut Runtime,
    host: Option<&HostFn>,
    name: &str,
    args: &[Value],
    spec: Option<&'static stl::Spec>,
) -> Option<Result<Value, VmError>> {
    if let Some(f) = host {
        let json_args: Vec<Json> = args.iter().map(value_to_json).collect();
        return Some(match f(&json_args) {
            Ok(r) => Ok(json_to_value(&mut rt.heap, &r)),
            Err(e) => Err(VmError::exception(e)),
        });
    }
    let spec = spec?;
    if args.len() < spec.min {
        return Some(Err(VmError::exception(format!(
            "Function {name} requires at least {} arguments",
            spec.min
        ))));
    }
    if let Some(max) = spec.max {
        if args.len() > max {
            return Some(Err(VmError::exception(format!(
                "Function {name} requires at most {max} arguments"
            ))));
        }
    }
    Some((spec.func)(rt, name, args))
}

impl Vm<'_> {
    pub(super) fn push_frame(&mut self, frame: Frame) -> Result<(), VmError> {
        self.frames.push(frame);
        if self.frames.len() > self.opts.limits.max_call_depth {
            return Err(VmError::exception(format!(
                "Call stack exceeded maximum length of {}",
                self.opts.limits.max_call_depth
            )));
        }
        Ok(())
    }

    pub(super) fn suspend_check(&mut self) -> Result<(), VmError> {
        if self.async_steps >= self.opts.limits.max_async_steps {
            return Err(VmError::exception(format!(
                "Exceeded maximum number of async steps: {}",
                self.opts.limits.max_async_steps
            )));
        }
        self.async_steps += 1;
        Ok(())
    }

    pub(super) fn set_property(
        &mut self,
        obj: &Value,
        key: Value,
        value: Value,
    ) -> Result<(), VmError> {
        match obj {
            Value::Dict(d) => {
                let cost = crate::heap::slot_cost(&key) + crate::heap::slot_cost(&value);
                let k = key.into_key().map_err(|key| {
                    VmError::exception(format!("Invalid dict key of type {}", key.type_name()))
                })?;
                self.charge(cost)?;
                d.insert(k, value);
                Ok(())
            }
            Value::Array(a) | Value::Tuple(a) => {
                let idx = match key {
                    Value::Int(i) => i,
                    Value::Float(f) if f.fract() == 0.0 && f.abs() < 9e15 => f as i64,
                    _ => {
                        return Err(VmError::exception(format!(
                            "Can not set property {} on an array",
                            crate::print::print_value(&key)
                        )))
                    }
                };
                if idx == 0 {
                    return Err(VmError::exception("Hog arrays start from index 1"));
                }
                let len = a.0.borrow().len() as i64;
                let pos = if idx > 0 { idx - 1 } else { len + idx };
                if pos < 0 {
                    return Err(VmError::exception(format!("Index {idx} out of range")));
                }
                if pos >= len {
                    let grow = (pos - len + 1) as usize;
                    self.charge(grow.saturating_mul(crate::heap::UNIT))?;
                    a.0.borrow_mut().resize(pos as usize + 1, Value::Null);
                }
                a.0.borrow_mut()[pos as usize] = value;
                Ok(())
            }
            other => Err(VmError::exception(format!(
                "Can not set property {} on a value of type {}",
                crate::print::print_value(&key),
                other.type_name()
            ))),
        }
    }
}

pub(super) fn to_closure(v: Value) -> Value {
    match v {
        Value::Callable(c) => Value::Closure(Rc::new(Closure {
            callable: c,
            upvalues: Vec::new(),
        })),
        other => other,
    }
}

/// Builds an error value (used by the standard library too).
pub fn new_error(kind: &str, message: &str, payload: Value) -> Value {
    Value::Error(Rc::new(ErrorData {
        kind: Str::from(kind),
        message: Str::from(message),
        payload: std::cell::RefCell::new(payload),
    }))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::super::{ExecOptions, Outcome, Program};

    /// Host functions are found whatever their names' lengths (including lengths 64 apart,
    /// which share a bit), alone or together, win over the standard library's, and leave other
    /// calls to it.
    #[test]
    fn host_functions_found_by_name() {
        let name = |len: usize| format!("h{}", "x".repeat(len - 1));
        let lengths = [1, 2, 6, 62, 63, 64, 65, 127, 128, 129];
        let mut all = ExecOptions::default();
        for len in lengths {
            let mut alone = ExecOptions::default();
            for options in [&mut alone, &mut all] {
                options.functions.insert(
                    name(len),
                    Arc::new(move |_args: &[serde_json::Value]| Ok(json!(len))),
                );
            }
            let src = format!("return [{}(), upper('a'), length('abc')]", name(len));
            let program = Program::new(&crate::compile_source(&src).unwrap()).unwrap();
            let r = program.run(&alone).unwrap();
            assert_eq!(r.outcome, Outcome::Finished(json!([len, "A", 3])), "{len}");
        }
        all.functions.insert(
            "concat".into(),
            Arc::new(|_args: &[serde_json::Value]| Ok(json!("host"))),
        );
        let calls: Vec<String> = lengths.iter().map(|l| format!("{}()", name(*l))).collect();
        let src = format!(
            "return [{}, concat('a', 'b'), upper('a')]",
            calls.join(", ")
        );
        let program = Program::new(&crate::compile_source(&src).unwrap()).unwrap();
        let mut want: Vec<serde_json::Value> = lengths.iter().map(|l| json!(l)).collect();
        want.extend([json!("host"), json!("A")]);
        for _ in 0..2 {
            let r = program.run(&all).unwrap();
            assert_eq!(r.outcome, Outcome::Finished(json!(want)));
        }
    }
}
