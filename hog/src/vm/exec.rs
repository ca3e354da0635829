//! The interpreter loop: one instruction at a time until the program returns, fails or calls an
//! async function. Starting, finishing and recycling a run are in `lifecycle`.

use std::rc::Rc;

use super::calls::{call_native, host_fn};
use super::lifecycle::{Frame, Step, TryFrame, Vm};
use super::ops::{arith, compare, contains, get_property_into, like_to_regex};
use crate::bytecode::Instr;
use crate::convert::value_to_json;
use crate::error::VmError;
use crate::stl;
use crate::value::{Callable, CallableKind, ChunkRef, Closure, Dict, Str, Upvalue, Value};

/// How often (in ops) the clock is checked: every 256 ops keeps reading the clock (~25 ns) under
/// 1% of a run while a timeout is still noticed within microseconds of cheap ops.
const TIME_CHECK_MASK: u64 = 255;

impl Vm<'_> {
    pub(super) fn run_loop(&mut self) -> Result<Step, VmError> {
        // A resumed run may start with its budget spent. The clock was read when the run
        // started, so only the time used before counts here (a fresh run skips a clock read).
        if self.prior > self.opts.limits.timeout {
            self.check_time()?;
        }
        // The running frame's chunk, next instruction and first stack slot live in locals;
        // `reload` brings them back from the frame stack after a call, return or catch.
        let (mut code, mut ip, mut base) = match self.frames.last() {
            Some(f) => (f.code.clone(), f.ip, f.stack_start),
            None => return Err(VmError::exception("No frame to run")),
        };
        macro_rules! save {
            () => {
                if let Some(f) = self.frames.last_mut() {
                    f.ip = ip;
                }
            };
        }
        macro_rules! load {
            () => {
                match self.frames.last() {
                    Some(f) => {
                        code = f.code.clone();
                        ip = f.ip;
                        base = f.stack_start;
                    }
                    None => return Err(VmError::exception("No frame to run")),
                }
            };
        }
        loop {
            if ip >= code.code.len() {
                // Ran off the end of the chunk: return null from this frame.
                let Some(frame) = self.frames.pop() else {
                    return Err(VmError::exception("No frame to run"));
                };
                if self.frames.is_empty() {
                    let result = self.stack.pop().unwrap_or(Value::Null);
                    return Ok(Step::Done(result));
                }
                self.close_upvalues(frame.stack_start);
                self.stack.truncate(frame.stack_start);
                let depth = self.frames.len();
                self.tries.retain(|t| t.call_depth <= depth);
                self.push(Value::Null)?;
                load!();
                continue;
            }
            self.ops += 1;
            if self.ops & TIME_CHECK_MASK == 0 {
                self.check_time()?;
            }
            let instr = &code.code[ip];
            ip += 1;
            let mut reload = false;
            match instr {
                Instr::True => self.push_with(|| Value::Bool(true))?,
                Instr::False => self.push_with(|| Value::Bool(false))?,
                Instr::Null => self.push_with(|| Value::Null)?,
                Instr::Str(s) => self.push_with(|| Value::Str(s.clone()))?,
                Instr::Int(i) => self.push_with(|| Value::Int(*i))?,
                Instr::Float(f) => self.push_with(|| Value::Float(*f))?,
                Instr::Pop => {
                    self.pop()?;
                }
                Instr::Not => {
                    let r = !self.pop()?.truthy();
                    self.push_with(|| Value::Bool(r))?
                }
                Instr::And(n) | Instr::Or(n) => {
                    let at = self.split_point(*n)?;
                    let vals = &self.stack[at..];
                    let r = if matches!(instr, Instr::And(_)) {
                        vals.iter().all(Value::truthy)
                    } else {
                        vals.iter().any(Value::truthy)
                    };
                    self.stack.truncate(at);
                    self.push_with(|| Value::Bool(r))?
                }
                Instr::Plus | Instr::Minus | Instr::Mul | Instr::Div | Instr::Mod => {
                    let a = self.pop()?;
                    let b = self.pop()?;
                    let op = match instr {
                        Instr::Plus => '+',
                        Instr::Minus => '-',
                        Instr::Mul => '*',
                        Instr::Div => '/',
                        _ => '%',
                    };
                    self.push(arith(&a, &b, op))?
                }
                Instr::Compare(c) => {
                    let (b, a) = self.top_two()?;
                    let r = compare(a, b, *c);
                    self.replace_top_two(Value::Bool(r))?
                }
                Instr::Like { ci, negate } => {
                    let s = self.pop()?;
                    let pat = self.pop()?;
                    let r = match (&s, &pat) {
                        (Value::Str(s), p) if !matches!(p, Value::Null) => {
                            let pat = crate::print::print_string_output(p);
                            let re = self.rt.regex(&like_to_regex(&pat, *ci))?;
                            re.is_match(s)
                        }
                        _ => false,
                    };
                    self.push(Value::Bool(r != *negate))?
                }
                Instr::Regex { ci, negate } => {
                    let s = self.pop()?;
                    let pat = self.pop()?;
                    let r = match (&s, &pat) {
                        (Value::Str(s), Value::Str(p)) if !s.is_empty() && !p.is_empty() => {
                            let p = if *ci {
                                format!("(?i){p}")
                            } else {
                                p.to_string()
                            };
                            self.rt.regex(&p)?.is_match(s)
                        }
                        _ => false,
                    };
                    self.push(Value::Bool(r != *negate))?
                }
                Instr::In { negate } => {
                    let needle = self.pop()?;
                    let hay = self.pop()?;
                    let r = contains(&hay, &needle)?;
                    self.push_with(|| Value::Bool(r != *negate))?
                }
                Instr::InCohort => {
                    return Err(VmError::exception(
                        "Cohort membership is not available in this VM",
                    ))
                }
                Instr::GetGlobal(n) => {
                    if *n == 0 || *n > self.stack.len() {
                        return Err(VmError::exception("Invalid GET_GLOBAL chain length"));
                    }
                    // The chain is read where it lies on the stack (name on top), not moved into
                    // a vector: a transformation reads a global every few instructions.
                    let at = self.split_point(*n)?;
                    let mut v = Value::Null;
                    self.global_into(&self.stack[at..], &mut v)?;
                    self.stack.truncate(at);
                    self.push(v)?
                }
                Instr::GetLocal(i) => {
                    let at = base + i;
                    if at >= self.stack.len() {
                        return Err(VmError::exception(format!("Invalid local index: {i}")));
                    }
                    self.push_copy(at)?
                }
                Instr::SetLocal(i) => {
                    let v = self.pop()?;
                    let slot = self
                        .stack
                        .get_mut(base + i)
                        .ok_or_else(|| VmError::exception(format!("Invalid local index: {i}")))?;
                    *slot = v;
                }
                Instr::GetProperty { nullish: _ } => {
                    let (obj, key) = self.top_two()?;
                    let mut v = Value::Null;
                    get_property_into(obj, key, &mut v)?;
                    self.replace_top_two(v)?
                }
                Instr::SetProperty => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    let obj = self.pop()?;
                    self.set_property(&obj, key, value)?;
                }
                Instr::Dict(n) => {
                    let n2 = n
                        .checked_mul(2)
                        .ok_or_else(|| VmError::exception("Dict too large"))?;
                    let at = self.split_point(n2)?;
                    let mut map = Dict::with_capacity_and_hasher(*n, Default::default());
                    let mut it = self.stack.drain(at..);
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        let key = k.into_key().map_err(|k| {
                            VmError::exception(format!(
                                "Invalid dict key of type {}",
                                k.type_name()
                            ))
                        })?;
                        map.insert(key, v);
                    }
                    drop(it);
                    self.charge(crate::heap::UNIT * (1 + 2 * map.len()))?;
                    let d = self.rt.heap.dict(map);
                    self.push(d)?
                }
                Instr::Array(n) | Instr::Tuple(n) => {
                    let vals = self.pop_n(*n)?;
                    self.charge(crate::heap::UNIT * (1 + vals.len()))?;
                    let v = if matches!(instr, Instr::Array(_)) {
                        self.rt.heap.array(vals)
                    } else {
                        self.rt.heap.tuple(vals)
                    };
                    self.push(v)?
                }
                Instr::Jump(t) => ip = *t,
                Instr::JumpIfFalse(t) => {
                    if !self.pop()?.truthy() {
                        ip = *t;
                    }
                }
                Instr::JumpIfStackNotNull(t) => {
                    if self.stack.last().is_some_and(|v| !matches!(v, Value::Null)) {
                        ip = *t;
                    }
                }
                Instr::Return => {
                    let result = self.pop()?;
                    let Some(frame) = self.frames.pop() else {
                        return Err(VmError::exception("No frame to return from"));
                    };
                    if self.frames.is_empty() {
                        return Ok(Step::Done(result));
                    }
                    self.close_upvalues(frame.stack_start);
                    self.stack.truncate(frame.stack_start);
                    let depth = self.frames.len();
                    self.tries.retain(|t| t.call_depth <= depth);
                    self.push(result)?;
                    reload = true;
                }
                Instr::Callable {
                    name,
                    argc,
                    upvalues,
                    end,
                } => {
                    let chunk = self
                        .frames
                        .last()
                        .map(|f| f.chunk.clone())
                        .unwrap_or(ChunkRef::Root);
                    let c = Callable {
                        name: name.clone(),
                        arg_count: *argc,
                        upvalue_count: *upvalues,
                        kind: CallableKind::Local {
                            chunk,
                            ip,
                            code: code.clone(),
                        },
                    };
                    ip = *end;
                    self.push(Value::Callable(Rc::new(c)))?
                }
                Instr::Closure(ups) => {
                    let Value::Callable(callable) = self.pop()? else {
                        return Err(VmError::exception("Invalid callable for CLOSURE"));
                    };
                    if ups.len() != callable.upvalue_count {
                        return Err(VmError::exception(format!(
                            "Invalid upvalue count. Expected {}, got {}",
                            callable.upvalue_count,
                            ups.len()
                        )));
                    }
                    let start = base;
                    let mut cells = Vec::with_capacity(ups.len());
                    for (is_local, idx) in ups {
                        if *is_local {
                            cells.push(self.capture_upvalue(start + idx)?);
                        } else {
                            cells.push(self.upvalue_cell(*idx)?);
                        }
                    }
                    self.charge(crate::heap::UNIT * (1 + cells.len()))?;
                    self.push(Value::Closure(Rc::new(Closure {
                        callable,
                        upvalues: cells,
                    })))?
                }
                Instr::GetUpvalue(i) => {
                    let cell = self.upvalue_cell(*i)?;
                    let v = match &*cell.0.borrow() {
                        Upvalue::Open(loc) => self.stack.get(*loc).cloned().unwrap_or(Value::Null),
                        Upvalue::Closed(v) => v.clone(),
                    };
                    self.push(v)?
                }
                Instr::SetUpvalue(i) => {
                    let cell = self.upvalue_cell(*i)?;
                    let v = self.pop()?;
                    let mut b = cell.0.borrow_mut();
                    match &mut *b {
                        Upvalue::Open(loc) => {
                            if let Some(slot) = self.stack.get_mut(*loc) {
                                *slot = v;
                            }
                        }
                        Upvalue::Closed(c) => *c = v,
                    }
                }
                Instr::CloseUpvalue => {
                    if self.stack.is_empty() {
                        return Err(VmError::exception("Stack underflow"));
                    }
                    self.close_upvalues(self.stack.len() - 1);
                    self.pop()?;
                }
                Instr::CallGlobal(name, argc, spec) => {
                    let argc = *argc;
                    if argc > self.stack.len() {
                        return Err(VmError::exception("Not enough arguments on the stack"));
                    }
                    if argc > self.opts.limits.max_args {
                        return Err(VmError::exception("Too many arguments"));
                    }
                    let name: &str = name;
                    let opts = self.opts;
                    let host = host_fn(opts, self.host_lengths, name);
                    if host.is_some() || spec.is_some() {
                        // The arguments stay on the stack during the call (no vector per call).
                        let at = self.stack.len() - argc;
                        self.close_upvalues(at);
                        let r = call_native(&mut self.rt, host, name, &self.stack[at..], *spec);
                        self.stack.truncate(at);
                        if let Some(r) = r {
                            let v = r?;
                            self.push(v)?;
                        }
                    } else if self.opts.async_functions.contains(name) || name == "sleep" {
                        self.suspend_check()?;
                        let args = self.pop_n(argc)?;
                        save!();
                        return Ok(Step::Suspend(name.to_string(), args));
                    } else if let Some((n, stl_code)) = stl::hog::lookup(name) {
                        if n != argc {
                            return Err(VmError::exception(format!(
                                "Function {name} requires exactly {n} arguments"
                            )));
                        }
                        save!();
                        let start = self.stack.len() - argc;
                        self.push_frame(Frame {
                            chunk: ChunkRef::Stl(Str::from(name)),
                            code: stl_code,
                            ip: 0,
                            stack_start: start,
                            closure: None,
                        })?;
                        reload = true;
                    } else {
                        return Err(VmError::exception(format!(
                            "Unsupported function call: {name}"
                        )));
                    }
                }
                Instr::CallLocal(argc) => {
                    let argc = *argc;
                    let callee = self.pop()?;
                    let Value::Closure(closure) = callee else {
                        return Err(VmError::exception(format!(
                            "Can not call a value of type {}",
                            callee.type_name()
                        )));
                    };
                    if argc > self.stack.len() {
                        return Err(VmError::exception("Not enough arguments on the stack"));
                    }
                    if argc > self.opts.limits.max_args {
                        return Err(VmError::exception("Too many arguments"));
                    }
                    let callable = closure.callable.clone();
                    match &callable.kind {
                        CallableKind::Local {
                            chunk,
                            ip: fip,
                            code: fcode,
                        } => {
                            let want = callable.arg_count;
                            if argc > want {
                                return Err(VmError::exception(format!(
                                    "Too many arguments. Passed {argc}, expected {want}"
                                )));
                            }
                            for _ in argc..want {
                                self.push(Value::Null)?;
                            }
                            save!();
                            let start = self.stack.len() - want;
                            self.push_frame(Frame {
                                chunk: chunk.clone(),
                                code: fcode.clone(),
                                ip: *fip,
                                stack_start: start,
                                closure: Some(closure),
                            })?;
                            reload = true;
                        }
                        CallableKind::Stl => {
                            let mut args = self.pop_n(argc)?;
                            if let Some(max) = stl::spec(&callable.name).and_then(|s| s.max) {
                                while args.len() < max {
                                    args.push(Value::Null);
                                }
                            }
                            let host = host_fn(self.opts, self.host_lengths, &callable.name);
                            let spec = stl::spec(&callable.name);
                            let r = call_native(&mut self.rt, host, &callable.name, &args, spec)
                                .unwrap_or_else(|| {
                                    Err(VmError::exception(format!(
                                        "Unsupported function call: {}",
                                        callable.name
                                    )))
                                })?;
                            self.push(r)?
                        }
                        CallableKind::Async => {
                            self.suspend_check()?;
                            let args = self.pop_n(argc)?;
                            save!();
                            return Ok(Step::Suspend(callable.name.to_string(), args));
                        }
                    }
                }
                Instr::Try(t) => {
                    self.tries.push(TryFrame {
                        call_depth: self.frames.len(),
                        stack_len: self.stack.len(),
                        catch_ip: *t,
                    });
                }
                Instr::PopTry => {
                    if self.tries.pop().is_none() {
                        return Err(VmError::exception(
                            "Invalid operation POP_TRY: no try block to pop",
                        ));
                    }
                }
                Instr::Throw => {
                    let v = self.pop()?;
                    let Value::Error(err) = &v else {
                        return Err(VmError::exception(
                            "Can not throw: value is not of type Error",
                        ));
                    };
                    match self.tries.pop() {
                        Some(t)
                            if t.call_depth <= self.frames.len()
                                && t.stack_len <= self.stack.len() =>
                        {
                            self.close_upvalues(t.stack_len);
                            self.stack.truncate(t.stack_len);
                            self.frames.truncate(t.call_depth);
                            self.push(v.clone())?;
                            match self.frames.last_mut() {
                                Some(f) => f.ip = t.catch_ip,
                                None => return Err(VmError::exception("No frame to catch in")),
                            }
                            reload = true;
                        }
                        Some(_) => return Err(VmError::exception("Corrupt try stack")),
                        None => {
                            let payload = err.payload.borrow();
                            return Err(VmError::Uncaught {
                                kind: err.kind.to_string(),
                                message: err.message.to_string(),
                                payload: if matches!(&*payload, Value::Null) {
                                    None
                                } else {
                                    Some(value_to_json(&payload))
                                },
                            });
                        }
                    }
                }
            }
            if reload {
                load!();
            }
        }
    }
}
