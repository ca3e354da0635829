//! Memory accounting for one VM run.
//!
//! Every container the VM creates is registered here (as a weak reference) and every allocation is
//! charged. When the charges since the last measurement could push the estimate past the cap, the
//! heap measures what is really alive: every registered container that still exists (including
//! ones kept alive only by reference cycles) plus the values on the stack. The estimate uses
//! PostHog's cost model: 8 per value, plus the length of each string.
//!
//! When the run ends the heap empties every container still alive, which breaks reference cycles
//! so nothing leaks past the run.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use serde_json::{Map, Value as Json};

use crate::error::VmError;
use crate::value::{ArrayData, Dict, DictData, Upvalue, UpvalueCell, Value};

/// Cost of one value in the estimate.
pub const UNIT: usize = 8;

enum Tracked {
    Array(Weak<ArrayData>),
    Dict(Weak<DictData>),
    Upvalue(Weak<UpvalueCell>),
}

/// The containers made in one run, as weak references. Shared (behind an `Rc`) with the lazy
/// dicts of the run, which register the containers their entries convert into.
#[derive(Default)]
pub struct Registry {
    tracked: RefCell<Vec<Tracked>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("tracked", &self.tracked.borrow().len())
            .finish()
    }
}

impl Registry {
    /// Registers a new array.
    pub fn array(&self, items: Vec<Value>) -> Value {
        let rc = Rc::new(ArrayData(RefCell::new(items)));
        self.tracked
            .borrow_mut()
            .push(Tracked::Array(Rc::downgrade(&rc)));
        Value::Array(rc)
    }

    /// Registers a new tuple.
    pub fn tuple(&self, items: Vec<Value>) -> Value {
        let rc = Rc::new(ArrayData(RefCell::new(items)));
        self.tracked
            .borrow_mut()
            .push(Tracked::Array(Rc::downgrade(&rc)));
        Value::Tuple(rc)
    }

    /// Registers a new dict.
    pub fn dict(&self, map: Dict) -> Value {
        self.register_dict(DictData::new(map))
    }

    /// Registers a new lazy copy of a JSON object read at `depth` (see [`crate::dict`]).
    ///
    /// # Safety
    ///
    /// `source` must stay alive and unchanged until this registry is cleared.
    pub(crate) unsafe fn lazy_dict(
        self: &Rc<Self>,
        source: &Map<String, Json>,
        depth: usize,
    ) -> Value {
        // SAFETY: the caller's promise, and the dict is registered just below.
        let data = unsafe { DictData::lazy(source, depth, self.clone()) };
        self.register_dict(data)
    }

    fn register_dict(&self, data: DictData) -> Value {
        let rc = Rc::new(data);
        self.tracked
            .borrow_mut()
            .push(Tracked::Dict(Rc::downgrade(&rc)));
        Value::Dict(rc)
    }

    /// Registers a new upvalue cell.
    pub fn upvalue(&self, up: Upvalue) -> Rc<UpvalueCell> {
        let rc = Rc::new(UpvalueCell(RefCell::new(up)));
        self.tracked
            .borrow_mut()
            .push(Tracked::Upvalue(Rc::downgrade(&rc)));
        rc
    }

    /// Empties every container still alive, breaking reference cycles (and taking every lazy
    /// dict's pointer into the globals).
    pub fn clear(&self) {
        // Taken out while the containers are emptied: emptying them drops values, which must not
        // find the list borrowed. Its buffer is put back for the next run (`Heap::reset`).
        let mut tracked = std::mem::take(&mut *self.tracked.borrow_mut());
        for t in tracked.drain(..) {
            match t {
                Tracked::Array(w) => {
                    if let Some(a) = w.upgrade() {
                        let items = std::mem::take(&mut *a.0.borrow_mut());
                        drop(items);
                    }
                }
                Tracked::Dict(w) => {
                    if let Some(d) = w.upgrade() {
                        drop(d.take());
                    }
                }
                Tracked::Upvalue(w) => {
                    if let Some(u) = w.upgrade() {
                        let old = std::mem::replace(&mut *u.0.borrow_mut(), Upvalue::Open(0));
                        drop(old);
                    }
                }
            }
        }
        let mut current = self.tracked.borrow_mut();
        if current.is_empty() {
            *current = tracked;
        }
    }
}

/// The allocation registry and memory estimate of one run.
pub struct Heap {
    registry: Rc<Registry>,
    limit: usize,
    last_live: usize,
    pending: usize,
    /// The largest estimate measured.
    pub max_seen: usize,
}

/// Shallow cost of a value held in a slot.
#[inline]
pub fn slot_cost(v: &Value) -> usize {
    match v {
        Value::Str(s) => UNIT + s.len(),
        Value::Error(e) => UNIT * 2 + e.message.len() + e.kind.len(),
        _ => UNIT,
    }
}

impl Heap {
    /// A heap with a cap in bytes (0 means no cap).
    pub fn new(limit: usize) -> Self {
        Heap {
            registry: Rc::new(Registry {
                tracked: RefCell::new(Vec::with_capacity(16)),
            }),
            limit,
            last_live: 0,
            pending: 0,
            max_seen: 0,
        }
    }

    /// Makes this heap, once cleared, what `Heap::new(limit)` would make, keeping the
    /// registry's buffer.
    pub(crate) fn reset(&mut self, limit: usize) {
        self.clear();
        // Containers that outlived the run (a `finish` may keep values) still point at the
        // registry; a new run gets a registry of its own rather than share it with them.
        if Rc::strong_count(&self.registry) != 1 || Rc::weak_count(&self.registry) != 0 {
            self.registry = Rc::new(Registry {
                tracked: RefCell::new(Vec::with_capacity(16)),
            });
        }
        self.limit = limit;
        self.last_live = 0;
        self.pending = 0;
        self.max_seen = 0;
    }

    /// The registry, for lazy dicts.
    pub(crate) fn registry(&self) -> &Rc<Registry> {
        &self.registry
    }

    /// Charges `bytes` that are about to be allocated. `roots` yields the values on the stack.
    #[inline]
    pub fn charge(&mut self, bytes: usize, roots: &[Value]) -> Result<(), VmError> {
        self.pending = self.pending.saturating_add(bytes);
        if self.limit == 0 || self.last_live.saturating_add(self.pending) <= self.limit {
            return Ok(());
        }
        self.charge_measured(bytes, roots)
    }

    #[cold]
    fn charge_measured(&mut self, bytes: usize, roots: &[Value]) -> Result<(), VmError> {
        let live = self.measure(roots.iter());
        let used = live.saturating_add(bytes);
        if used > self.limit {
            return Err(VmError::MemoryLimit {
                limit: self.limit,
                used,
            });
        }
        self.last_live = live;
        self.pending = bytes;
        Ok(())
    }

    /// Measures the live estimate, forgetting containers that no longer exist.
    pub fn measure<'a>(&mut self, roots: impl Iterator<Item = &'a Value>) -> usize {
        let mut total: usize = roots.map(slot_cost).sum();
        self.registry.tracked.borrow_mut().retain(|t| match t {
            Tracked::Array(w) => match w.upgrade() {
                Some(a) => {
                    total += UNIT + a.0.borrow().iter().map(slot_cost).sum::<usize>();
                    true
                }
                None => false,
            },
            Tracked::Dict(w) => match w.upgrade() {
                Some(d) => {
                    total += d.cost();
                    true
                }
                None => false,
            },
            Tracked::Upvalue(w) => match w.upgrade() {
                Some(u) => {
                    if let Upvalue::Closed(v) = &*u.0.borrow() {
                        total += slot_cost(v);
                    }
                    true
                }
                None => false,
            },
        });
        self.max_seen = self.max_seen.max(total);
        total
    }

    /// Registers a new array.
    pub fn array(&mut self, items: Vec<Value>) -> Value {
        self.registry.array(items)
    }

    /// Registers a new tuple.
    pub fn tuple(&mut self, items: Vec<Value>) -> Value {
        self.registry.tuple(items)
    }

    /// Registers a new dict.
    pub fn dict(&mut self, map: Dict) -> Value {
        self.registry.dict(map)
    }

    /// Registers a new upvalue cell.
    pub fn upvalue(&mut self, up: Upvalue) -> Rc<UpvalueCell> {
        self.registry.upvalue(up)
    }

    /// Empties every container still alive, breaking reference cycles.
    pub fn clear(&mut self) {
        self.registry.clear();
    }
}

impl Drop for Heap {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Key;

    #[test]
    fn charges_up_to_the_limit() {
        let mut heap = Heap::new(1000);
        let roots: Vec<Value> = vec![];
        assert!(heap.charge(500, &roots).is_ok());
        let big = heap.array(vec![Value::str("x".repeat(900))]);
        let roots = [big];
        assert!(heap.charge(600, &roots).is_err());
    }

    #[test]
    fn clear_breaks_cycles() {
        let mut heap = Heap::new(0);
        let d = heap.dict(Dict::default());
        let weak = match &d {
            Value::Dict(rc) => {
                rc.insert(Key::Int(1), d.clone());
                Rc::downgrade(rc)
            }
            _ => unreachable!(),
        };
        drop(d);
        assert!(weak.upgrade().is_some());
        heap.clear();
        assert!(weak.upgrade().is_none());
    }
}
