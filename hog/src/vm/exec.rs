//! The interpreter loop.

use std::rc::Rc;
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use serde_json::Value as Json;

use super::ops::{arith, compare, contains, get_property, like_to_regex};
use super::state::{self, VmState};
use super::{ExecError, ExecOptions, ExecResult, Outcome};
use crate::bytecode::{decode_program, Chunk, Instr};
use crate::convert::{json_to_value, value_to_json};
use crate::error::VmError;
use crate::runtime::Runtime;
use crate::stl;
use crate::value::{
    Callable, CallableKind, ChunkRef, Closure, ErrorData, Upvalue, UpvalueCell, Value,
};

/// How often (in ops) the clock is checked.
const TIME_CHECK_MASK: u64 = 31;

pub(super) struct Frame {
    pub chunk: ChunkRef,
    pub code: Rc<Chunk>,
    pub ip: usize,
    pub stack_start: usize,
    pub closure: Option<Rc<Closure>>,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct TryFrame {
    pub call_depth: usize,
    pub stack_len: usize,
    pub catch_ip: usize,
}

pub(super) struct Vm<'o> {
    pub rt: Runtime,
    pub root_json: Rc<Json>,
    pub root: Rc<Chunk>,
    pub stack: Vec<Value>,
    pub frames: Vec<Frame>,
    pub open_ups: Vec<(usize, Rc<UpvalueCell>)>,
    pub tries: Vec<TryFrame>,
    pub opts: &'o ExecOptions,
    pub ops: u64,
    pub async_steps: usize,
    pub start: Instant,
    pub prior: Duration,
}

enum Step {
    Done(Value),
    Suspend(String, Vec<Value>),
}

fn fail(error: VmError) -> ExecError {
    ExecError {
        error,
        stdout: Vec::new(),
    }
}

impl<'o> Vm<'o> {
    pub fn start(bytecode: &Json, opts: &'o ExecOptions) -> Result<Self, ExecError> {
        let root = Rc::new(decode_program(bytecode).map_err(fail)?);
        Ok(Vm::start_decoded(Rc::new(bytecode.clone()), root, opts))
    }

    /// Starts a run of bytecode that is already decoded (see [`super::Program`]).
    pub fn start_decoded(root_json: Rc<Json>, root: Rc<Chunk>, opts: &'o ExecOptions) -> Self {
        let mut vm = Vm::empty(root_json, root.clone(), opts);
        vm.frames.push(Frame {
            chunk: ChunkRef::Root,
            code: root,
            ip: 0,
            stack_start: 0,
            closure: None,
        });
        vm
    }

    pub fn empty(root_json: Rc<Json>, root: Rc<Chunk>, opts: &'o ExecOptions) -> Self {
        Vm {
            rt: Runtime::new(opts.limits.memory_bytes, opts.trace_print),
            root_json,
            root,
            stack: Vec::new(),
            frames: Vec::new(),
            open_ups: Vec::new(),
            tries: Vec::new(),
            opts,
            ops: 0,
            async_steps: 0,
            start: Instant::now(),
            prior: Duration::ZERO,
        }
    }

    pub fn restore(state: VmState, result: Json, opts: &'o ExecOptions) -> Result<Self, ExecError> {
        let root = Rc::new(decode_program(&state.bytecode).map_err(fail)?);
        let mut vm = Vm::empty(Rc::new(state.bytecode.clone()), root, opts);
        state::restore_into(&mut vm, &state).map_err(fail)?;
        let v = json_to_value(&mut vm.rt.heap, &result);
        vm.stack.push(v);
        Ok(vm)
    }

    pub fn execute(mut self) -> Result<ExecResult, ExecError> {
        match self.run_loop() {
            Ok(Step::Done(v)) => Ok(ExecResult {
                stdout: std::mem::take(&mut self.rt.stdout),
                outcome: Outcome::Finished(value_to_json(&v)),
                ops: self.ops,
                max_mem_used: self.rt.heap.max_seen,
            }),
            Ok(Step::Suspend(function, args)) => {
                let args = args.iter().map(value_to_json).collect();
                let st = state::capture(&self);
                Ok(ExecResult {
                    stdout: std::mem::take(&mut self.rt.stdout),
                    outcome: Outcome::Suspended {
                        function,
                        args,
                        state: Box::new(st),
                    },
                    ops: self.ops,
                    max_mem_used: self.rt.heap.max_seen,
                })
            }
            Err(error) => Err(ExecError {
                error,
                stdout: std::mem::take(&mut self.rt.stdout),
            }),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.prior + self.start.elapsed()
    }

    fn check_time(&self) -> Result<(), VmError> {
        if self.elapsed() > self.opts.limits.timeout {
            return Err(VmError::Timeout {
                seconds: self.opts.limits.timeout.as_secs_f64(),
                ops: self.ops,
            });
        }
        Ok(())
    }

    fn pop(&mut self) -> Result<Value, VmError> {
        self.stack.pop().ok_or_else(|| {
            VmError::exception("Invalid HogQL bytecode, stack is empty, can not pop")
        })
    }

    fn pop_n(&mut self, n: usize) -> Result<Vec<Value>, VmError> {
        if n > self.stack.len() {
            return Err(VmError::exception("Stack underflow"));
        }
        let at = self.stack.len() - n;
        self.close_upvalues(at);
        Ok(self.stack.split_off(at))
    }

    fn push(&mut self, v: Value) -> Result<(), VmError> {
        let cost = crate::heap::slot_cost(&v);
        self.stack.push(v);
        self.rt.heap.charge(cost, &self.stack)
    }

    fn charge(&mut self, bytes: usize) -> Result<(), VmError> {
        self.rt.heap.charge(bytes, &self.stack)
    }

    fn close_upvalues(&mut self, from: usize) {
        while let Some((loc, _)) = self.open_ups.last() {
            if *loc < from {
                break;
            }
            if let Some((loc, cell)) = self.open_ups.pop() {
                let v = self.stack.get(loc).cloned().unwrap_or(Value::Null);
                *cell.0.borrow_mut() = Upvalue::Closed(v);
            }
        }
    }

    fn capture_upvalue(&mut self, loc: usize) -> Result<Rc<UpvalueCell>, VmError> {
        if loc > self.stack.len() {
            return Err(VmError::exception(format!(
                "Invalid upvalue location: {loc}"
            )));
        }
        match self.open_ups.binary_search_by_key(&loc, |(l, _)| *l) {
            Ok(i) => Ok(self.open_ups[i].1.clone()),
            Err(i) => {
                let cell = self.rt.heap.upvalue(Upvalue::Open(loc));
                self.open_ups.insert(i, (loc, cell.clone()));
                Ok(cell)
            }
        }
    }

    fn upvalue_cell(&self, i: usize) -> Result<Rc<UpvalueCell>, VmError> {
        self.frames
            .last()
            .and_then(|f| f.closure.as_ref())
            .and_then(|c| c.upvalues.get(i))
            .cloned()
            .ok_or_else(|| VmError::exception(format!("Invalid upvalue index: {i}")))
    }

    fn global(&mut self, chain: &[Value]) -> Result<Value, VmError> {
        let name = chain.first().and_then(Value::as_str).unwrap_or("");
        if let Some(Json::Object(globals)) = &self.opts.globals {
            if let Some(mut cur) = globals.get(name) {
                for key in &chain[1..] {
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
                return Ok(json_to_value(&mut self.rt.heap, cur));
            }
        }
        if chain.len() == 1 {
            let callable = |kind, argc| {
                Value::Callable(Rc::new(Callable {
                    name: Rc::from(name),
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
                    chunk: ChunkRef::Stl(Rc::from(name)),
                    ip: 0,
                    code,
                };
                return Ok(to_closure(callable(kind, argc)));
            }
        }
        let names: Vec<String> = chain
            .iter()
            .map(crate::print::print_string_output)
            .collect();
        Err(VmError::exception(format!(
            "Global variable not found: {}",
            names.join(".")
        )))
    }

    /// Calls a native function by name with popped arguments. `None` if there is none.
    /// Calls a host function or a native standard library function. `spec` is `stl::spec(name)`
    /// when the caller has already looked it up.
    fn call_native(
        &mut self,
        name: &str,
        args: Vec<Value>,
        spec: Option<&'static stl::Spec>,
    ) -> Option<Result<Value, VmError>> {
        if let Some(f) = self.opts.functions.get(name) {
            let json_args: Vec<Json> = args.iter().map(value_to_json).collect();
            return Some(match f(&json_args) {
                Ok(r) => Ok(json_to_value(&mut self.rt.heap, &r)),
                Err(e) => Err(VmError::exception(e)),
            });
        }
        let spec = spec.or_else(|| stl::spec(name))?;
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
        Some((spec.func)(&mut self.rt, name, &args))
    }

    fn push_frame(&mut self, frame: Frame) -> Result<(), VmError> {
        self.frames.push(frame);
        if self.frames.len() > self.opts.limits.max_call_depth {
            return Err(VmError::exception(format!(
                "Call stack exceeded maximum length of {}",
                self.opts.limits.max_call_depth
            )));
        }
        Ok(())
    }

    fn suspend_check(&mut self) -> Result<(), VmError> {
        if self.async_steps >= self.opts.limits.max_async_steps {
            return Err(VmError::exception(format!(
                "Exceeded maximum number of async steps: {}",
                self.opts.limits.max_async_steps
            )));
        }
        self.async_steps += 1;
        Ok(())
    }

    fn run_loop(&mut self) -> Result<Step, VmError> {
        self.check_time()?;
        let (mut code, mut ip) = match self.frames.last() {
            Some(f) => (f.code.clone(), f.ip),
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
                    }
                    None => return Err(VmError::exception("No frame to run")),
                }
            };
        }
        loop {
            let cur = code.clone();
            let Some(instr) = cur.code.get(ip) else {
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
            };
            self.ops += 1;
            if self.ops & TIME_CHECK_MASK == 0 {
                self.check_time()?;
            }
            ip += 1;
            match instr {
                Instr::True => self.push(Value::Bool(true))?,
                Instr::False => self.push(Value::Bool(false))?,
                Instr::Null => self.push(Value::Null)?,
                Instr::Str(s) => self.push(Value::Str(s.clone()))?,
                Instr::Int(i) => self.push(Value::Int(*i))?,
                Instr::Float(f) => self.push(Value::Float(*f))?,
                Instr::Pop => {
                    self.pop()?;
                }
                Instr::Not => {
                    let v = self.pop()?;
                    self.push(Value::Bool(!v.truthy()))?
                }
                Instr::And(n) | Instr::Or(n) => {
                    let vals = self.pop_n(*n)?;
                    let r = if matches!(instr, Instr::And(_)) {
                        vals.iter().all(Value::truthy)
                    } else {
                        vals.iter().any(Value::truthy)
                    };
                    self.push(Value::Bool(r))?
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
                    let a = self.pop()?;
                    let b = self.pop()?;
                    self.push(Value::Bool(compare(&a, &b, *c)))?
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
                    self.push(Value::Bool(r != *negate))?
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
                    let mut chain = self.pop_n(*n)?;
                    chain.reverse();
                    let v = self.global(&chain)?;
                    self.push(v)?
                }
                Instr::GetLocal(i) => {
                    let start = self.frames.last().map(|f| f.stack_start).unwrap_or(0);
                    let v =
                        self.stack.get(start + i).cloned().ok_or_else(|| {
                            VmError::exception(format!("Invalid local index: {i}"))
                        })?;
                    self.push(v)?
                }
                Instr::SetLocal(i) => {
                    let v = self.pop()?;
                    let start = self.frames.last().map(|f| f.stack_start).unwrap_or(0);
                    let slot = self
                        .stack
                        .get_mut(start + i)
                        .ok_or_else(|| VmError::exception(format!("Invalid local index: {i}")))?;
                    *slot = v;
                }
                Instr::GetProperty { nullish: _ } => {
                    let key = self.pop()?;
                    let obj = self.pop()?;
                    let v = get_property(&obj, &key)?;
                    self.push(v)?
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
                    let vals = self.pop_n(n2)?;
                    let mut map = IndexMap::with_capacity(*n);
                    let mut it = vals.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        let key = k.to_key().ok_or_else(|| {
                            VmError::exception(format!(
                                "Invalid dict key of type {}",
                                k.type_name()
                            ))
                        })?;
                        map.insert(key, v);
                    }
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
                    load!();
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
                    let start = self.frames.last().map(|f| f.stack_start).unwrap_or(0);
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
                Instr::CallGlobal(name, argc) => {
                    let argc = *argc;
                    if argc > self.stack.len() {
                        return Err(VmError::exception("Not enough arguments on the stack"));
                    }
                    if argc > self.opts.limits.max_args {
                        return Err(VmError::exception("Too many arguments"));
                    }
                    let name: &str = name;
                    let spec = stl::spec(name);
                    if spec.is_some() || self.opts.functions.contains_key(name) {
                        let args = self.pop_n(argc)?;
                        if let Some(r) = self.call_native(name, args, spec) {
                            let v = r?;
                            self.push(v)?;
                            continue;
                        }
                    }
                    if self.opts.async_functions.contains(name) || name == "sleep" {
                        self.suspend_check()?;
                        let args = self.pop_n(argc)?;
                        save!();
                        return Ok(Step::Suspend(name.to_string(), args));
                    }
                    if let Some((n, stl_code)) = stl::hog::lookup(name) {
                        if n != argc {
                            return Err(VmError::exception(format!(
                                "Function {name} requires exactly {n} arguments"
                            )));
                        }
                        save!();
                        let start = self.stack.len() - argc;
                        self.push_frame(Frame {
                            chunk: ChunkRef::Stl(Rc::from(name)),
                            code: stl_code,
                            ip: 0,
                            stack_start: start,
                            closure: None,
                        })?;
                        load!();
                        continue;
                    }
                    return Err(VmError::exception(format!(
                        "Unsupported function call: {name}"
                    )));
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
                            load!();
                        }
                        CallableKind::Stl => {
                            let mut args = self.pop_n(argc)?;
                            if let Some(max) = stl::spec(&callable.name).and_then(|s| s.max) {
                                while args.len() < max {
                                    args.push(Value::Null);
                                }
                            }
                            let r = self
                                .call_native(&callable.name, args, None)
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
                    self.tries.push(super::exec::TryFrame {
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
                            load!();
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
        }
    }

    fn set_property(&mut self, obj: &Value, key: Value, value: Value) -> Result<(), VmError> {
        match obj {
            Value::Dict(d) => {
                let k = key.to_key().ok_or_else(|| {
                    VmError::exception(format!("Invalid dict key of type {}", key.type_name()))
                })?;
                let cost = crate::heap::slot_cost(&key.clone()) + crate::heap::slot_cost(&value);
                self.charge(cost)?;
                d.0.borrow_mut().insert(k, value);
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

fn to_closure(v: Value) -> Value {
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
        kind: Rc::from(kind),
        message: Rc::from(message),
        payload: std::cell::RefCell::new(payload),
    }))
}
