//! Reading globals: `GET_GLOBAL` chains such as `event.properties.email`, and the functions that
//! are values when named without a call.
//!
//! Every read of a global gives the program a fresh copy (as PostHog's VM does), so changing it
//! does not change the globals. Objects are copied lazily (see [`crate::dict`]): a read costs
//! an allocation, and only the entries the program reaches are converted.

use std::rc::Rc;

use serde_json::Value as Json;

use super::calls::to_closure;
use super::lifecycle::Vm;
use crate::dict::lazy_value;
use crate::error::VmError;
use crate::stl;
use crate::value::{Callable, CallableKind, ChunkRef, Str, Value};

impl<'o> Vm<'o> {
    /// A fresh copy of a node of the globals.
    fn global_value(&self, j: &'o Json) -> Value {
        // SAFETY: the globals are borrowed (unchanged) for `'o`, longer than the VM, whose heap
        // clears every lazy dict when it drops.
        unsafe { lazy_value(self.rt.heap.registry(), j, 0) }
    }

    /// [`Vm::global`] into `out`: the interpreter reads globals this way, as it reads properties
    /// (see `ops::get_property_into`).
    pub(super) fn global_into(&self, stacked: &[Value], out: &mut Value) -> Result<(), VmError> {
        *out = self.global(stacked)?;
        Ok(())
    }

    /// The global named by `stacked`: the chain as it lies on the stack, the global's name on
    /// top (last) and the first key under it.
    #[inline]
    pub(super) fn global(&self, stacked: &[Value]) -> Result<Value, VmError> {
        let mut chain = stacked.iter().rev();
        let name = chain.next().and_then(Value::as_str).unwrap_or("");
        let opts: &'o super::ExecOptions = self.opts;
        if let Some(Json::Object(globals)) = &opts.globals {
            if let Some(mut cur) = globals.get(name) {
                for key in chain {
                    let next = match (cur, key) {
                        (Json::Object(m), Value::Str(k)) => m.get(&**k),
                        (Json::Array(a), Value::Int(i)) if *i > 0 => a.get((*i - 1) as usize),
                        (Json::Array(a), Value::Int(i)) if *i < 0 => {
                            let idx = a.len() as i64 + *i;
                            usize::try_from(idx).ok().and_then(|x| a.get(x))
                        }
                        _ => None,
                    };
                    match next {
                        Some(n) => cur = n,
                        None => return Ok(Value::Null),
                    }
                }
                return Ok(self.global_value(cur));
            }
        }
        if stacked.len() == 1 {
            let callable = |kind, argc| {
                Value::Callable(Rc::new(Callable {
                    name: Str::from(name),
                    arg_count: argc,
                    upvalue_count: 0,
                    kind,
                }))
            };
            if self.opts.async_functions.contains(name) || name == "sleep" {
                return Ok(to_closure(callable(CallableKind::Async, 1)));
            }
            if let Some(spec) = stl::spec(name) {
                return Ok(to_closure(callable(
                    CallableKind::Stl,
                    spec.max.unwrap_or(0),
                )));
            }
            if let Some((argc, code)) = stl::hog::lookup(name) {
                let kind = CallableKind::Local {
                    chunk: ChunkRef::Stl(Str::from(name)),
                    ip: 0,
                    code,
                };
                return Ok(to_closure(callable(kind, argc)));
            }
        }
        let names: Vec<String> = stacked
            .iter()
            .rev()
            .map(crate::print::print_string_output)
            .collect();
        Err(VmError::exception(format!(
            "Global variable not found: {}",
            names.join(".")
        )))
    }
}
