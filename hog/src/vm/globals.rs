//! Reading globals: `GET_GLOBAL` chains such as `event.properties.email`, and the functions that
//! are values when named without a call.
//!
//! Every read of a global gives the program a fresh copy (as PostHog's VM does), so changing it
//! does not change the globals. The first read of an object or array converts it from JSON
//! straight into the program's value. A node read again (a transformation typically reads
//! `event.properties` in a loop, or `event` after `event.properties`) is converted once more into
//! an immutable template (kept in [`Templates`]), and that read and later ones copy the
//! template: copying shares the strings and clones hash tables without rehashing, which is much
//! cheaper than converting again. Most programs read `event` once, and building a template for
//! it cost as much again as the read itself.

use std::cell::RefCell;
use std::rc::Rc;

use serde_json::Value as Json;

use super::calls::to_closure;
use super::exec::Vm;
use crate::convert::{json_to_value, special_object, MAX_JSON_DEPTH};
use crate::error::VmError;
use crate::heap::Heap;
use crate::stl;
use crate::value::{ArrayData, Callable, CallableKind, ChunkRef, Dict, DictData, Key, Str, Value};

/// Templates converted so far in this run, by the address of their JSON node (the globals are
/// borrowed for the whole run, so addresses are stable and unique), and the nodes converted
/// directly so far. Few nodes are read per run, so lists beat maps.
#[derive(Default)]
pub(super) struct Templates {
    templates: Vec<Template>,
    seen: Vec<usize>,
    /// Shared by the runs of one [`super::Program`].
    pub shapes: Rc<RefCell<Shapes>>,
}

/// The key layouts of objects near the top of the globals in earlier runs, as dicts of nulls.
///
/// Each event of a stream has an `event` global with the same keys, and mostly the same
/// property names. Cloning a dict of the same keys and filling in the values skips hashing and
/// inserting every key, the larger part of converting an object. Looking for a layout and
/// keeping a new one costs about as much as a hit saves, so each level keeps a credit: hits
/// raise it, misses lower it twice as fast, and at zero the level stops looking (but for an
/// occasional probe) until layouts repeat again.
#[derive(Debug)]
pub struct Shapes {
    dicts: Vec<Dict>,
    next: usize,
    credit: [u32; SHAPE_DEPTH + 1],
    skipped: [u32; SHAPE_DEPTH + 1],
}

impl Default for Shapes {
    fn default() -> Self {
        Shapes {
            dicts: Vec::new(),
            next: 0,
            credit: [START_CREDIT; SHAPE_DEPTH + 1],
            skipped: [0; SHAPE_DEPTH + 1],
        }
    }
}

/// Layouts kept: a few event types' property sets.
const MAX_SHAPES: usize = 8;

/// Levels of a global (0 is the global itself, such as `event`) whose objects use [`Shapes`];
/// deeper objects vary too much to be worth it.
const SHAPE_DEPTH: usize = 1;

/// Credit at the start (enough to fill the layouts), and its cap.
const START_CREDIT: u32 = 2 * MAX_SHAPES as u32;
const MAX_CREDIT: u32 = 64;

/// Objects skipped between probes while a level has no credit.
const PROBE_EVERY: u32 = 32;

impl Shapes {
    /// Whether to look for the layout of an object at `depth`.
    fn try_at(&mut self, depth: usize) -> bool {
        if depth > SHAPE_DEPTH {
            return false;
        }
        if self.credit[depth] > 0 {
            return true;
        }
        self.skipped[depth] += 1;
        if self.skipped[depth] >= PROBE_EVERY {
            self.skipped[depth] = 0;
            return true;
        }
        false
    }

    /// A dict of nulls with the keys of `m`, in its order, when one was kept.
    fn find(&mut self, m: &serde_json::Map<String, Json>, depth: usize) -> Option<Dict> {
        let found = self.dicts.iter().find(|d| {
            d.len() == m.len()
                && d.keys().zip(m.keys()).all(|(a, b)| match a {
                    Key::Str(a) => a.as_str() == b,
                    _ => false,
                })
        });
        let credit = &mut self.credit[depth];
        *credit = match found {
            Some(_) => (*credit + 1).min(MAX_CREDIT),
            None => credit.saturating_sub(2),
        };
        found.cloned()
    }

    /// Keeps the layout of `map` (replacing the oldest kept when full).
    fn keep(&mut self, map: &Dict) {
        let mut shape = map.clone();
        shape.values_mut().for_each(|v| *v = Value::Null);
        if self.dicts.len() < MAX_SHAPES {
            self.dicts.push(shape);
        } else {
            self.dicts[self.next] = shape;
            self.next = (self.next + 1) % MAX_SHAPES;
        }
    }
}

/// Most nodes remembered as converted directly: enough for an event's own containers, while a
/// global with thousands of nested objects does not make every later read scan them all.
const MAX_SEEN: usize = 64;

/// Levels below a directly read node whose containers are remembered: `event.properties` and
/// `event.properties.$set` are read after `event`.
const SEEN_DEPTH: usize = 2;

struct Template {
    node: usize,
    value: Value,
    /// Levels below the node; the template is only complete (reusable at any depth that still
    /// fits under [`MAX_JSON_DEPTH`]) when this is within the limit.
    height: usize,
}

fn node_id(j: &Json) -> usize {
    j as *const Json as usize
}

impl Templates {
    fn find(&self, j: &Json, depth: usize) -> Option<(Value, usize)> {
        let id = node_id(j);
        self.templates
            .iter()
            .find(|t| t.node == id && depth + t.height <= MAX_JSON_DEPTH)
            .map(|t| (t.value.clone(), t.height))
    }

    /// The template of a JSON node at `depth`, and its height. Containers become untracked,
    /// shared values that are never handed to the program; primitives convert directly.
    fn build(&self, j: &Json, depth: usize) -> (Value, usize) {
        if depth > MAX_JSON_DEPTH {
            return (Value::Null, 0);
        }
        match j {
            Json::Object(m) => {
                if let Some(v) = special_object(m) {
                    return (v, 0);
                }
                if let Some(found) = self.find(j, depth) {
                    return found;
                }
                let mut height = 0;
                let mut map = Dict::with_capacity_and_hasher(m.len(), Default::default());
                for (k, v) in m {
                    let (v, h) = self.build(v, depth + 1);
                    height = height.max(h + 1);
                    map.insert(Key::Str(k.as_str().into()), v);
                }
                (Value::Dict(Rc::new(DictData(map.into()))), height)
            }
            Json::Array(a) => {
                if let Some(found) = self.find(j, depth) {
                    return found;
                }
                let mut height = 0;
                let items: Vec<Value> = a
                    .iter()
                    .map(|x| {
                        let (v, h) = self.build(x, depth + 1);
                        height = height.max(h + 1);
                        v
                    })
                    .collect();
                (Value::Array(Rc::new(ArrayData(items.into()))), height)
            }
            other => (json_to_value_primitive(other), 0),
        }
    }

    /// The value of a global's JSON node as a fresh copy for the program.
    fn read(&mut self, heap: &mut Heap, j: &Json) -> Value {
        if !matches!(j, Json::Object(_) | Json::Array(_)) {
            return json_to_value(heap, j);
        }
        if !self.seen.contains(&node_id(j)) && self.find(j, 0).is_none() {
            return self.direct(heap, j, 0);
        }
        let (template, height) = self.build(j, 0);
        if height <= MAX_JSON_DEPTH && self.find(j, 0).is_none() {
            self.templates.push(Template {
                node: node_id(j),
                value: template.clone(),
                height,
            });
        }
        copy(heap, &template)
    }
}

impl Templates {
    /// Converts a node straight into a fresh value (as `json_to_value` does), remembering it
    /// and its containers near the top as seen.
    fn direct(&mut self, heap: &mut Heap, j: &Json, depth: usize) -> Value {
        if depth > MAX_JSON_DEPTH {
            return Value::Null;
        }
        let remember = |seen: &mut Vec<usize>| {
            if depth <= SEEN_DEPTH && seen.len() < MAX_SEEN {
                seen.push(node_id(j));
            }
        };
        match j {
            Json::Object(m) => {
                if let Some(v) = special_object(m) {
                    return v;
                }
                remember(&mut self.seen);
                let shaped = self.shapes.borrow_mut().try_at(depth);
                let shape = if shaped {
                    self.shapes.borrow_mut().find(m, depth)
                } else {
                    None
                };
                if let Some(mut map) = shape {
                    for (slot, v) in map.values_mut().zip(m.values()) {
                        *slot = self.direct(heap, v, depth + 1);
                    }
                    return heap.dict(map);
                }
                let mut map = Dict::with_capacity_and_hasher(m.len(), Default::default());
                for (k, v) in m {
                    map.insert(Key::Str(k.as_str().into()), self.direct(heap, v, depth + 1));
                }
                if shaped {
                    self.shapes.borrow_mut().keep(&map);
                }
                heap.dict(map)
            }
            Json::Array(a) => {
                remember(&mut self.seen);
                let items = a.iter().map(|x| self.direct(heap, x, depth + 1)).collect();
                heap.array(items)
            }
            other => json_to_value_primitive(other),
        }
    }
}

fn json_to_value_primitive(j: &Json) -> Value {
    match j {
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::str(s),
        _ => Value::Null,
    }
}

/// A fresh, tracked copy of a template: new containers all the way down, shared strings.
fn copy(heap: &mut Heap, t: &Value) -> Value {
    match t {
        Value::Dict(d) => {
            let mut map = d.0.borrow().clone();
            for v in map.values_mut() {
                if matches!(v, Value::Dict(_) | Value::Array(_)) {
                    *v = copy(heap, v);
                }
            }
            heap.dict(map)
        }
        Value::Array(a) => {
            let items = a.0.borrow().iter().map(|v| copy(heap, v)).collect();
            heap.array(items)
        }
        other => other.clone(),
    }
}

impl Vm<'_> {
    fn global_value(&mut self, j: &Json) -> Value {
        self.templates.read(&mut self.rt.heap, j)
    }

    pub(super) fn global(&mut self, chain: &[Value]) -> Result<Value, VmError> {
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
                return Ok(self.global_value(cur));
            }
        }
        if chain.len() == 1 {
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
        let names: Vec<String> = chain
            .iter()
            .map(crate::print::print_string_output)
            .collect();
        Err(VmError::exception(format!(
            "Global variable not found: {}",
            names.join(".")
        )))
    }
}
