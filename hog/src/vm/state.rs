//! The serializable state of a suspended VM, and conversion to and from the live VM.
//!
//! Shared containers are copied by value (as PostHog's VM does when it serializes), while
//! upvalues keep their identity through numeric ids so closures still share captured variables
//! after a resume.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::lifecycle::{Frame, TryFrame, Vm};
use crate::error::VmError;
use crate::stl;
use crate::value::{
    Callable, CallableKind, ChunkRef, Closure, Dict, Str, Upvalue, UpvalueCell, Value,
};

const MAX_STATE_DEPTH: usize = 128;

/// A Hog value in serializable form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", content = "v")]
#[allow(missing_docs)]
pub enum StateValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Array(Vec<StateValue>),
    Tuple(Vec<StateValue>),
    Dict(Vec<(StateValue, StateValue)>),
    Date {
        year: i32,
        month: u32,
        day: u32,
    },
    DateTime {
        dt: f64,
        zone: String,
    },
    Error {
        kind: String,
        message: String,
        payload: Box<StateValue>,
    },
    Function {
        name: String,
        arg_count: usize,
        upvalue_count: usize,
        /// `local`, `stl` or `async`.
        kind: String,
        /// `root` or `stl/NAME`.
        chunk: String,
        ip: usize,
        /// Upvalue ids; `None` for a bare callable.
        upvalues: Option<Vec<usize>>,
    },
}

/// A suspended call frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameState {
    /// `root` or `stl/NAME`.
    pub chunk: String,
    /// Next instruction index.
    pub ip: usize,
    /// Where the frame's locals start on the stack.
    pub stack_start: usize,
    /// The running closure, if any.
    pub closure: Option<StateValue>,
}

/// A captured variable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpvalueState {
    /// Its id.
    pub id: usize,
    /// The stack slot while open.
    pub open: Option<usize>,
    /// The value once closed.
    pub value: StateValue,
}

/// Everything needed to resume a suspended VM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmState {
    /// The program.
    pub bytecode: Json,
    /// The value stack.
    pub stack: Vec<StateValue>,
    /// The call frames, outermost first.
    pub frames: Vec<FrameState>,
    /// Captured variables referenced by closures.
    pub upvalues: Vec<UpvalueState>,
    /// Active try blocks: (call depth, stack length, catch instruction).
    pub tries: Vec<(usize, usize, usize)>,
    /// Operations run so far.
    pub ops: u64,
    /// Async calls made so far.
    pub async_steps: usize,
    /// Wall-clock time used so far, in microseconds.
    pub elapsed_micros: u64,
}

struct Capture {
    ids: HashMap<usize, usize>,
    cells: Vec<Rc<UpvalueCell>>,
}

impl Capture {
    fn id(&mut self, cell: &Rc<UpvalueCell>) -> usize {
        let key = Rc::as_ptr(cell) as usize;
        if let Some(id) = self.ids.get(&key) {
            return *id;
        }
        let id = self.cells.len();
        self.ids.insert(key, id);
        self.cells.push(cell.clone());
        id
    }

    fn value(&mut self, v: &Value, depth: usize) -> StateValue {
        if depth > MAX_STATE_DEPTH {
            return StateValue::Null;
        }
        match v {
            Value::Null => StateValue::Null,
            Value::Bool(b) => StateValue::Bool(*b),
            Value::Int(i) => StateValue::Int(*i),
            Value::Float(f) => StateValue::Float(*f),
            Value::Str(s) => StateValue::Str(s.to_string()),
            Value::Array(a) => StateValue::Array(
                a.0.borrow()
                    .iter()
                    .map(|x| self.value(x, depth + 1))
                    .collect(),
            ),
            Value::Tuple(a) => StateValue::Tuple(
                a.0.borrow()
                    .iter()
                    .map(|x| self.value(x, depth + 1))
                    .collect(),
            ),
            Value::Dict(d) => StateValue::Dict(
                d.borrow()
                    .iter()
                    .map(|(k, x)| {
                        (
                            self.value(&k.to_value(), depth + 1),
                            self.value(x, depth + 1),
                        )
                    })
                    .collect(),
            ),
            Value::Date { year, month, day } => StateValue::Date {
                year: *year,
                month: *month,
                day: *day,
            },
            Value::DateTime { dt, zone } => StateValue::DateTime {
                dt: *dt,
                zone: zone.to_string(),
            },
            Value::Error(e) => StateValue::Error {
                kind: e.kind.to_string(),
                message: e.message.to_string(),
                payload: Box::new(self.value(&e.payload.borrow(), depth + 1)),
            },
            Value::Callable(c) => function_state(c, None),
            Value::Closure(c) => {
                let ids = c.upvalues.iter().map(|u| self.id(u)).collect();
                function_state(&c.callable, Some(ids))
            }
        }
    }
}

fn chunk_name(c: &ChunkRef) -> String {
    match c {
        ChunkRef::Root => "root".into(),
        ChunkRef::Stl(n) => format!("stl/{n}"),
    }
}

fn function_state(c: &Callable, upvalues: Option<Vec<usize>>) -> StateValue {
    let (kind, chunk, ip) = match &c.kind {
        CallableKind::Local { chunk, ip, .. } => ("local", chunk_name(chunk), *ip),
        CallableKind::Stl => ("stl", String::new(), 0),
        CallableKind::Async => ("async", String::new(), 0),
    };
    StateValue::Function {
        name: c.name.to_string(),
        arg_count: c.arg_count,
        upvalue_count: c.upvalue_count,
        kind: kind.into(),
        chunk,
        ip,
        upvalues,
    }
}

pub(super) fn capture(vm: &Vm<'_>) -> VmState {
    let mut cap = Capture {
        ids: HashMap::new(),
        cells: Vec::new(),
    };
    let stack = vm.stack.iter().map(|v| cap.value(v, 0)).collect();
    let frames = vm
        .frames
        .iter()
        .map(|f| FrameState {
            chunk: chunk_name(&f.chunk),
            ip: f.ip,
            stack_start: f.stack_start,
            closure: f
                .closure
                .as_ref()
                .map(|c| cap.value(&Value::Closure(c.clone()), 0)),
        })
        .collect();
    for (_, cell) in &vm.open_ups {
        cap.id(cell);
    }
    let mut upvalues = Vec::new();
    let mut i = 0;
    while i < cap.cells.len() {
        let cell = cap.cells[i].clone();
        let state = match &*cell.0.borrow() {
            Upvalue::Open(loc) => UpvalueState {
                id: i,
                open: Some(*loc),
                value: StateValue::Null,
            },
            Upvalue::Closed(v) => UpvalueState {
                id: i,
                open: None,
                value: cap.value(v, 0),
            },
        };
        upvalues.push(state);
        i += 1;
    }
    VmState {
        bytecode: vm.root_json.json().clone(),
        stack,
        frames,
        upvalues,
        tries: vm
            .tries
            .iter()
            .map(|t| (t.call_depth, t.stack_len, t.catch_ip))
            .collect(),
        ops: vm.ops,
        async_steps: vm.async_steps,
        elapsed_micros: u64::try_from(vm.elapsed().as_micros()).unwrap_or(u64::MAX),
    }
}

struct Restore<'a, 'o> {
    vm: &'a mut Vm<'o>,
    cells: Vec<Rc<UpvalueCell>>,
}

impl Restore<'_, '_> {
    fn chunk(&self, name: &str) -> Result<(ChunkRef, Rc<crate::bytecode::Chunk>), VmError> {
        if name == "root" {
            return Ok((ChunkRef::Root, self.vm.root.clone()));
        }
        let stl_name = name
            .strip_prefix("stl/")
            .ok_or_else(|| VmError::exception(format!("Unknown chunk: {name}")))?;
        let (_, code) = stl::hog::lookup(stl_name)
            .ok_or_else(|| VmError::exception(format!("Unknown chunk: {name}")))?;
        Ok((ChunkRef::Stl(Str::from(stl_name)), code))
    }

    fn value(&mut self, s: &StateValue, depth: usize) -> Result<Value, VmError> {
        if depth > MAX_STATE_DEPTH {
            return Ok(Value::Null);
        }
        Ok(match s {
            StateValue::Null => Value::Null,
            StateValue::Bool(b) => Value::Bool(*b),
            StateValue::Int(i) => Value::Int(*i),
            StateValue::Float(f) => Value::Float(*f),
            StateValue::Str(x) => Value::str(x),
            StateValue::Array(items) | StateValue::Tuple(items) => {
                let vals = items
                    .iter()
                    .map(|x| self.value(x, depth + 1))
                    .collect::<Result<Vec<_>, _>>()?;
                if matches!(s, StateValue::Array(_)) {
                    self.vm.rt.heap.array(vals)
                } else {
                    self.vm.rt.heap.tuple(vals)
                }
            }
            StateValue::Dict(pairs) => {
                let mut map = Dict::default();
                for (k, x) in pairs {
                    let key = self.value(k, depth + 1)?;
                    let key = key
                        .to_key()
                        .ok_or_else(|| VmError::exception("Invalid dict key in state"))?;
                    map.insert(key, self.value(x, depth + 1)?);
                }
                self.vm.rt.heap.dict(map)
            }
            StateValue::Date { year, month, day } => Value::Date {
                year: *year,
                month: *month,
                day: *day,
            },
            StateValue::DateTime { dt, zone } => Value::DateTime {
                dt: *dt,
                zone: zone.as_str().into(),
            },
            StateValue::Error {
                kind,
                message,
                payload,
            } => {
                let p = self.value(payload, depth + 1)?;
                super::calls::new_error(kind, message, p)
            }
            StateValue::Function {
                name,
                arg_count,
                upvalue_count,
                kind,
                chunk,
                ip,
                upvalues,
            } => {
                let kind = match kind.as_str() {
                    "local" => {
                        let (chunk, code) = self.chunk(chunk)?;
                        if *ip > code.code.len() {
                            return Err(VmError::exception("Invalid function address in state"));
                        }
                        CallableKind::Local {
                            chunk,
                            ip: *ip,
                            code,
                        }
                    }
                    "stl" => CallableKind::Stl,
                    "async" => CallableKind::Async,
                    other => {
                        return Err(VmError::exception(format!(
                            "Unknown function kind: {other}"
                        )))
                    }
                };
                let callable = Rc::new(Callable {
                    name: name.as_str().into(),
                    arg_count: *arg_count,
                    upvalue_count: *upvalue_count,
                    kind,
                });
                match upvalues {
                    None => Value::Callable(callable),
                    Some(ids) => {
                        let cells = ids
                            .iter()
                            .map(|id| {
                                self.cells.get(*id).cloned().ok_or_else(|| {
                                    VmError::exception("Invalid upvalue id in state")
                                })
                            })
                            .collect::<Result<Vec<_>, _>>()?;
                        Value::Closure(Rc::new(Closure {
                            callable,
                            upvalues: cells,
                        }))
                    }
                }
            }
        })
    }
}

pub(super) fn restore_into(vm: &mut Vm<'_>, st: &VmState) -> Result<(), VmError> {
    let mut cells = Vec::with_capacity(st.upvalues.len());
    for (i, u) in st.upvalues.iter().enumerate() {
        if u.id != i {
            return Err(VmError::exception("Upvalue ids must be sequential"));
        }
        let cell = match u.open {
            Some(loc) => vm.rt.heap.upvalue(Upvalue::Open(loc)),
            None => vm.rt.heap.upvalue(Upvalue::Closed(Value::Null)),
        };
        cells.push(cell);
    }
    let mut r = Restore { vm, cells };
    for (i, u) in st.upvalues.iter().enumerate() {
        if u.open.is_none() {
            let v = r.value(&u.value, 0)?;
            *r.cells[i].0.borrow_mut() = Upvalue::Closed(v);
        }
    }
    let mut stack = Vec::with_capacity(st.stack.len());
    for s in &st.stack {
        stack.push(r.value(s, 0)?);
    }
    let mut frames = Vec::new();
    for f in &st.frames {
        let (chunk, code) = r.chunk(&f.chunk)?;
        if f.ip > code.code.len() || f.stack_start > stack.len() {
            return Err(VmError::exception("Invalid frame in state"));
        }
        let closure = match &f.closure {
            Some(c) => match r.value(c, 0)? {
                Value::Closure(c) => Some(c),
                _ => return Err(VmError::exception("Invalid frame closure in state")),
            },
            None => None,
        };
        frames.push(Frame {
            chunk,
            code,
            ip: f.ip,
            stack_start: f.stack_start,
            closure,
        });
    }
    if frames.is_empty() {
        return Err(VmError::exception("State has no frames"));
    }
    let mut open: Vec<(usize, Rc<UpvalueCell>)> = st
        .upvalues
        .iter()
        .zip(r.cells.iter())
        .filter_map(|(u, c)| u.open.map(|loc| (loc, c.clone())))
        .filter(|(loc, _)| *loc < stack.len())
        .collect();
    open.sort_by_key(|(l, _)| *l);
    open.dedup_by_key(|(l, _)| *l);
    let vm = r.vm;
    vm.stack = stack;
    vm.frames = frames;
    vm.open_ups = open;
    vm.tries = st
        .tries
        .iter()
        .map(|(d, s, c)| TryFrame {
            call_depth: *d,
            stack_len: *s,
            catch_ip: *c,
        })
        .collect();
    vm.ops = st.ops;
    vm.async_steps = st.async_steps;
    vm.prior = Duration::from_micros(st.elapsed_micros);
    Ok(())
}
