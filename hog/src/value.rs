//! Runtime values of the Hog VM.
//!
//! Arrays, tuples and dicts are shared, mutable references (as in PostHog's VMs). Their `Drop`
//! impls unwind nested values with an explicit worklist, so dropping a deeply nested value can
//! not overflow the Rust stack.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use indexmap::IndexMap;

use crate::bytecode::Chunk;
use crate::fasthash::FastState;

pub use crate::dict::DictData;
pub use crate::string::Str;

/// A time zone name (kept as a plain shared string so [`Value`] stays 32 bytes).
pub type Zone = Rc<str>;

/// The map inside a dict.
pub type Dict = IndexMap<Key, Value, FastState>;

/// A dict key: dicts are keyed by primitives (integral floats count as integers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// `null`
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A non-integral float, by bits.
    Float(u64),
    /// A string.
    Str(Str),
}

/// A borrowed dict key, for lookups that should not clone a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRef<'a> {
    /// `null`
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A non-integral float, by bits.
    Float(u64),
    /// A string.
    Str(&'a str),
}

// `Key` hashes through `KeyRef` so the two agree, which borrowed lookups rely on.
impl std::hash::Hash for KeyRef<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        match self {
            KeyRef::Null => state.write_u8(0),
            KeyRef::Bool(b) => state.write_u8(2 + u8::from(*b)),
            KeyRef::Int(i) => {
                state.write_u8(4);
                state.write_u64(*i as u64);
            }
            KeyRef::Float(b) => {
                state.write_u8(5);
                state.write_u64(*b);
            }
            KeyRef::Str(s) => s.hash(state),
        }
    }
}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_ref().hash(state)
    }
}

impl indexmap::Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        *self == key.as_ref()
    }
}

impl Key {
    /// The key, borrowed.
    pub fn as_ref(&self) -> KeyRef<'_> {
        match self {
            Key::Null => KeyRef::Null,
            Key::Bool(b) => KeyRef::Bool(*b),
            Key::Int(i) => KeyRef::Int(*i),
            Key::Float(b) => KeyRef::Float(*b),
            Key::Str(s) => KeyRef::Str(s),
        }
    }

    /// The key as a value.
    pub fn to_value(&self) -> Value {
        match self {
            Key::Null => Value::Null,
            Key::Bool(b) => Value::Bool(*b),
            Key::Int(i) => Value::Int(*i),
            Key::Float(b) => Value::Float(f64::from_bits(*b)),
            Key::Str(s) => Value::Str(s.clone()),
        }
    }
}

/// The storage of an array or tuple.
#[derive(Debug, Default)]
pub struct ArrayData(pub RefCell<Vec<Value>>);

/// A Hog error value: `Error('message', payload)`.
#[derive(Debug)]
pub struct ErrorData {
    /// The error type (`Error`, `RetryError`, ...).
    pub kind: Str,
    /// The message.
    pub message: Str,
    /// The payload (`null` when absent).
    pub payload: RefCell<Value>,
}

/// Where a function's code lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkRef {
    /// The program being run.
    Root,
    /// A standard library function written in Hog, by name.
    Stl(Str),
}

/// What kind of function a callable is.
#[derive(Debug, Clone)]
pub enum CallableKind {
    /// Bytecode in a chunk, starting at an instruction index.
    Local {
        /// The chunk.
        chunk: ChunkRef,
        /// The first instruction.
        ip: usize,
        /// The decoded chunk, kept for speed (not serialized).
        code: Rc<Chunk>,
    },
    /// A native standard library function.
    Stl,
    /// A host or standard library function that suspends the VM.
    Async,
}

/// A function without captured variables.
#[derive(Debug, Clone)]
pub struct Callable {
    /// Its name (`lambda` for lambdas).
    pub name: Str,
    /// How many arguments it takes.
    pub arg_count: usize,
    /// How many upvalues its closures capture.
    pub upvalue_count: usize,
    /// Where its code lives.
    pub kind: CallableKind,
}

/// A captured variable: open while its stack slot lives, closed (holding the value) after.
#[derive(Debug)]
pub enum Upvalue {
    /// Still on the stack at this absolute index.
    Open(usize),
    /// Moved off the stack.
    Closed(Value),
}

/// A shared upvalue cell.
#[derive(Debug)]
pub struct UpvalueCell(pub RefCell<Upvalue>);

/// A function with its captured variables.
#[derive(Debug)]
pub struct Closure {
    /// The function.
    pub callable: Rc<Callable>,
    /// The captured variables.
    pub upvalues: Vec<Rc<UpvalueCell>>,
}

/// A Hog value.
#[derive(Debug, Default)]
pub enum Value {
    /// `null`
    #[default]
    Null,
    /// `true` / `false`
    Bool(bool),
    /// A 64-bit integer.
    Int(i64),
    /// A 64-bit float.
    Float(f64),
    /// A string.
    Str(Str),
    /// An array (shared, mutable).
    Array(Rc<ArrayData>),
    /// A tuple (shared, mutable like arrays, printed with parentheses).
    Tuple(Rc<ArrayData>),
    /// A dict (shared, mutable, insertion ordered).
    Dict(Rc<DictData>),
    /// A calendar date.
    Date {
        /// Year.
        year: i32,
        /// Month 1-12.
        month: u32,
        /// Day 1-31.
        day: u32,
    },
    /// A point in time: epoch seconds and a time zone name.
    DateTime {
        /// Seconds since the epoch.
        dt: f64,
        /// IANA zone name.
        zone: Zone,
    },
    /// An error value.
    Error(Rc<ErrorData>),
    /// A function value without captures (only seen between `CALLABLE` and `CLOSURE`).
    Callable(Rc<Callable>),
    /// A function value.
    Closure(Rc<Closure>),
}

// Cloning a local onto the stack is the interpreter's most common step. The derived clone is an
// out-of-line call that fills a temporary field by field, which the push then reads back whole:
// a stalled load (store forwarding fails), seen as the hottest spot of the loop in profiles.
// This one raises the reference count of whatever the value shares and copies the 32 bytes at
// once.
impl Value {
    /// Raises the reference counts a copy of this value holds, without making the copy: after
    /// this, a bitwise copy of the value owns its share exactly as a clone would (the VM copies
    /// stack slots this way, straight from slot to slot).
    #[inline(always)]
    pub(crate) fn retain_shares(&self) {
        // Exhaustive on purpose: a new variant must say what it shares.
        match self {
            Value::Null | Value::Bool(_) | Value::Int(_) | Value::Float(_) | Value::Date { .. } => {
            }
            Value::Str(s) => std::mem::forget(s.clone()),
            Value::Array(a) | Value::Tuple(a) => std::mem::forget(Rc::clone(a)),
            Value::Dict(d) => std::mem::forget(Rc::clone(d)),
            Value::DateTime { zone, .. } => std::mem::forget(Rc::clone(zone)),
            Value::Error(e) => std::mem::forget(Rc::clone(e)),
            Value::Callable(c) => std::mem::forget(Rc::clone(c)),
            Value::Closure(c) => std::mem::forget(Rc::clone(c)),
        }
    }
}

impl Clone for Value {
    #[inline(always)]
    fn clone(&self) -> Value {
        self.retain_shares();
        // SAFETY: every field of every variant is plain data or an `Rc` (a `Str` is inline bytes
        // or an `Rc<str>`), and `retain_shares` just raised the count of each `Rc` (by a clone
        // that was forgotten), so the copy owns its share exactly as a field-by-field clone would.
        unsafe { std::ptr::read(self) }
    }
}

impl Value {
    /// The identity of a shared array, tuple or dict (its allocation), for cycle detection
    /// while walking values; `None` for everything else.
    pub fn container_id(&self) -> Option<usize> {
        match self {
            Value::Array(rc) | Value::Tuple(rc) => Some(Rc::as_ptr(rc) as usize),
            Value::Dict(rc) => Some(Rc::as_ptr(rc) as usize),
            _ => None,
        }
    }

    /// A string value.
    pub fn str(s: impl AsRef<str>) -> Value {
        Value::Str(Str::new(s.as_ref()))
    }

    /// A fresh array (not tracked by a heap; prefer `Heap::array` inside the VM).
    pub fn array_untracked(items: Vec<Value>) -> Value {
        Value::Array(Rc::new(ArrayData(RefCell::new(items))))
    }

    /// PostHog's `typeof` name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Int(_) => "integer",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::Array(_) => "array",
            Value::Tuple(_) => "tuple",
            Value::Dict(_) => "object",
            Value::Date { .. } => "date",
            Value::DateTime { .. } => "datetime",
            Value::Error(_) => "error",
            Value::Callable(_) | Value::Closure(_) => "function",
        }
    }

    /// JavaScript-style truthiness, as PostHog's production VM uses.
    pub fn truthy(&self) -> bool {
        match self {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0 && !f.is_nan(),
            Value::Str(s) => !s.is_empty(),
            _ => true,
        }
    }

    /// The value as a dict key, if it is a primitive.
    pub fn to_key(&self) -> Option<Key> {
        Some(match self {
            Value::Null => Key::Null,
            Value::Bool(b) => Key::Bool(*b),
            Value::Int(i) => Key::Int(*i),
            Value::Float(f) => {
                if f.fract() == 0.0 && f.abs() < 9.0e15 {
                    Key::Int(*f as i64)
                } else {
                    Key::Float(f.to_bits())
                }
            }
            Value::Str(s) => Key::Str(s.clone()),
            _ => return None,
        })
    }

    /// The value as a borrowed dict key, if it is a primitive (as [`Value::to_key`]).
    pub fn key_ref(&self) -> Option<KeyRef<'_>> {
        Some(match self {
            Value::Null => KeyRef::Null,
            Value::Bool(b) => KeyRef::Bool(*b),
            Value::Int(i) => KeyRef::Int(*i),
            Value::Float(f) => {
                if f.fract() == 0.0 && f.abs() < 9.0e15 {
                    KeyRef::Int(*f as i64)
                } else {
                    KeyRef::Float(f.to_bits())
                }
            }
            Value::Str(s) => KeyRef::Str(s),
            _ => return None,
        })
    }

    /// The value as a dict key (as [`Value::to_key`]), without cloning a string; the value back
    /// if it is not a primitive.
    pub fn into_key(self) -> Result<Key, Value> {
        match self {
            Value::Str(s) => Ok(Key::Str(s)),
            other => other.to_key().ok_or(other),
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Whether the value is a number (integer or float).
    pub fn is_number(&self) -> bool {
        matches!(self, Value::Int(_) | Value::Float(_))
    }

    /// The value as a float, if it is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// Moves the children of a uniquely owned container into `work` so they drop iteratively.
    fn take_children(self, work: &mut Vec<Value>) {
        match self {
            Value::Array(rc) | Value::Tuple(rc) => {
                if let Ok(data) = Rc::try_unwrap(rc) {
                    work.append(&mut data.0.borrow_mut());
                }
            }
            Value::Dict(rc) => {
                if let Ok(mut data) = Rc::try_unwrap(rc) {
                    work.extend(data.take_mut().into_values());
                }
            }
            Value::Error(rc) => {
                if let Ok(data) = Rc::try_unwrap(rc) {
                    work.push(std::mem::take(&mut *data.payload.borrow_mut()));
                }
            }
            Value::Closure(rc) => {
                if let Ok(c) = Rc::try_unwrap(rc) {
                    for u in c.upvalues {
                        if let Ok(cell) = Rc::try_unwrap(u) {
                            let old =
                                std::mem::replace(&mut *cell.0.borrow_mut(), Upvalue::Open(0));
                            if let Upvalue::Closed(v) = old {
                                work.push(v);
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn is_container(&self) -> bool {
        matches!(
            self,
            Value::Array(_)
                | Value::Tuple(_)
                | Value::Dict(_)
                | Value::Error(_)
                | Value::Closure(_)
        )
    }
}

fn drop_iteratively(work: Vec<Value>) {
    if !work.iter().any(Value::is_container) {
        return;
    }
    let mut work = work;
    while let Some(v) = work.pop() {
        v.take_children(&mut work);
    }
}

/// Containers nested up to this depth drop recursively, in place (the common case: no
/// worklist to allocate); deeper ones go through [`drop_iteratively`], so even a very deep
/// value can't overflow the Rust stack.
const RECURSIVE_DROP_DEPTH: u32 = 32;

thread_local! {
    static DROP_DEPTH: Cell<u32> = const { Cell::new(0) };
}

fn drop_children<T>(children: T, into_vec: fn(T) -> Vec<Value>) {
    let depth = DROP_DEPTH.with(Cell::get);
    if depth < RECURSIVE_DROP_DEPTH {
        DROP_DEPTH.with(|d| d.set(depth + 1));
        drop(children);
        DROP_DEPTH.with(|d| d.set(depth));
    } else {
        drop_iteratively(into_vec(children));
    }
}

impl Drop for ArrayData {
    fn drop(&mut self) {
        drop_children(std::mem::take(self.0.get_mut()), |v| v);
    }
}

impl Drop for DictData {
    fn drop(&mut self) {
        drop_children(self.take_mut(), |map| map.into_values().collect());
    }
}

impl Drop for ErrorData {
    fn drop(&mut self) {
        drop_iteratively(vec![std::mem::take(self.payload.get_mut())]);
    }
}

impl Drop for UpvalueCell {
    fn drop(&mut self) {
        if let Upvalue::Closed(v) = self.0.get_mut() {
            drop_iteratively(vec![std::mem::take(v)]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_nesting_drops_without_overflow() {
        let mut v = Value::Null;
        for _ in 0..200_000 {
            v = Value::array_untracked(vec![v]);
        }
        drop(v);
    }

    #[test]
    fn truthiness_follows_javascript() {
        assert!(!Value::str("").truthy());
        assert!(Value::array_untracked(vec![]).truthy());
        assert!(!Value::Float(f64::NAN).truthy());
        assert!(Value::Int(-1).truthy());
    }

    #[test]
    fn float_keys_normalize() {
        assert_eq!(Value::Float(2.0).to_key(), Some(Key::Int(2)));
    }
}
