//! Converting a Hog value back onto the JSON it came from, keeping what did not change.
//!
//! A transformation reads the event from its JSON globals, changes a property or two and returns
//! it. Converting the whole returned event with [`crate::convert::value_to_json`] allocates every key and string
//! again, and the host then drops the old JSON. [`diff`] instead compares the value with the
//! original JSON and records only what differs; [`JsonPatch::apply`] writes that into the
//! original. Applying `diff(v, &j)` to `j` always gives exactly `value_to_json(v)`: the same
//! conversions, and cycles and over-deep parts become `null` in the same places.
//!
//! The diff only borrows the JSON, so it can run in [`crate::Program::run_with`]'s `finish`
//! while the VM still borrows its globals; the host applies the patch after the run.
//!
//! Objects are compared as maps (serde_json's default `Map` is sorted, so key order is not part
//! of the result).
//!
//! ```
//! use quill_hog::{patch, ExecOptions, Outcome, Program};
//! use serde_json::json;
//!
//! let event = json!({"properties": {"email": "a@b.c", "plan": "pro"}});
//! let options = ExecOptions { globals: Some(json!({"event": event})), ..Default::default() };
//! let bytecode = quill_hog::compile_source(
//!     "let e := event\ne.properties.email := 'x'\nreturn e",
//! )
//! .unwrap();
//! let program = Program::new(&bytecode).unwrap();
//! let original = &options.globals.as_ref().unwrap()["event"];
//! let result = program.run_with(&options, |v| patch::diff(v, original)).unwrap();
//! let Outcome::Finished(p) = result.outcome else { panic!() };
//! let mut event = event;
//! p.apply(&mut event);
//! assert_eq!(event, json!({"properties": {"email": "x", "plan": "pro"}}));
//! ```

use serde_json::{Map, Number, Value as Json};

use crate::convert::{to_json_depth, MAX_JSON_DEPTH};
use crate::dict::round_trip;
use crate::print::print_value;
use crate::value::{DictData, Key, KeyRef, Str, Value};

/// What to change in a JSON value so that it equals a Hog value's conversion.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonPatch {
    /// Nothing: the JSON already is the conversion.
    Keep,
    /// Replace the JSON with this.
    Replace(Json),
    /// The JSON is an object and stays one: patch or add the keys in `set` (an added key's patch
    /// is always a `Replace`) and remove the keys in `remove`.
    Object {
        /// Keys whose values change, or that are new.
        set: Vec<(Str, JsonPatch)>,
        /// Keys that are gone.
        remove: Vec<String>,
    },
}

impl JsonPatch {
    /// Whether nothing changes.
    pub fn is_keep(&self) -> bool {
        matches!(self, JsonPatch::Keep)
    }

    /// Writes the patch into `target`, which must be the JSON it was computed from.
    pub fn apply(self, target: &mut Json) {
        match self {
            JsonPatch::Keep => {}
            JsonPatch::Replace(j) => *target = j,
            JsonPatch::Object { set, remove } => {
                let Json::Object(m) = target else {
                    debug_assert!(false, "an object patch applied to a non-object");
                    return;
                };
                for k in &remove {
                    m.remove(k);
                }
                for (k, p) in set {
                    match (m.get_mut(&*k), p) {
                        (Some(t), p) => p.apply(t),
                        (None, JsonPatch::Replace(j)) => {
                            m.insert(k.to_string(), j);
                        }
                        (None, _) => debug_assert!(false, "a nested patch for a missing key"),
                    }
                }
            }
        }
    }
}

/// What to change in `j` so that it equals `value_to_json(v)`.
pub fn diff(v: &Value, j: &Json) -> JsonPatch {
    thread_local! {
        // The containers being walked, kept between diffs: a transformation diffs once per
        // event, and allocating this list was one of the diff's few allocations.
        static MARKED: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    MARKED.with(|cell| match cell.try_borrow_mut() {
        Ok(mut marked) => {
            marked.clear();
            diff_in(v, j, &mut marked)
        }
        // Not expected (a diff calls no code that diffs), but a fresh list is always correct.
        Err(_) => diff_in(v, j, &mut Vec::new()),
    })
}

/// `marked` holds the containers being converted above `v`, as in `to_json_depth`.
fn diff_in(v: &Value, j: &Json, marked: &mut Vec<usize>) -> JsonPatch {
    if let (Value::Dict(d), Json::Object(m)) = (v, j) {
        let id = std::rc::Rc::as_ptr(d) as usize;
        if let Some(p) = diff_lazy(d, m, id, marked) {
            return p;
        }
        let dict = d.borrow();
        // The cases `to_json_depth` turns into `null`, and dicts whose non-string keys print as
        // strings (which could collide), go the general way below.
        if marked.len() <= MAX_JSON_DEPTH
            && !marked.contains(&id)
            && dict.keys().all(|k| matches!(k, Key::Str(_)))
        {
            marked.push(id);
            let mut set = Vec::new();
            let mut found = 0;
            // A dict converted from `m` has its keys in `m`'s order, so walking both together
            // finds most keys without a search.
            let mut next = m.iter().peekable();
            for (k, x) in dict.iter() {
                let Key::Str(k) = k else { continue };
                let same = match next.peek() {
                    Some((key, y)) if key.as_str() == k.as_str() => {
                        let y = *y;
                        next.next();
                        Some(y)
                    }
                    _ => m.get(&**k),
                };
                match same {
                    Some(y) => {
                        found += 1;
                        let p = diff_in(x, y, marked);
                        if !p.is_keep() {
                            set.push((k.clone(), p));
                        }
                    }
                    None => set.push((k.clone(), JsonPatch::Replace(to_json_depth(x, marked)))),
                }
            }
            // Every dict key found in `m` is a distinct key of `m`, so `m` has others only when
            // it is larger.
            let remove: Vec<String> = if found < m.len() {
                m.keys()
                    .filter(|k| !dict.contains_key(&KeyRef::Str(k)))
                    .cloned()
                    .collect()
            } else {
                Vec::new()
            };
            marked.pop();
            return if set.is_empty() && remove.is_empty() {
                JsonPatch::Keep
            } else {
                JsonPatch::Object { set, remove }
            };
        }
    }
    if equal(v, j, marked) {
        JsonPatch::Keep
    } else {
        JsonPatch::Replace(to_json_depth(v, marked))
    }
}

/// The diff of a lazy dict read from `m` itself: its overrides compared as usual, and the
/// entries it never converted kept (unless converting them would change them). `None` when `d`
/// is not a lazy copy of `m`, or when a case the general way handles arises.
fn diff_lazy(
    d: &DictData,
    m: &Map<String, Json>,
    id: usize,
    marked: &mut Vec<usize>,
) -> Option<JsonPatch> {
    let (overrides, read_depth) = d.lazy_parts(m)?;
    if marked.len() > MAX_JSON_DEPTH
        || marked.contains(&id)
        || !overrides.iter().all(|(k, _)| matches!(k, Key::Str(_)))
    {
        return None;
    }
    marked.push(id);
    let mut set = Vec::new();
    for (k, x) in overrides.iter() {
        let Key::Str(k) = k else { continue };
        match m.get(k.as_str()) {
            Some(y) => {
                let p = diff_in(x, y, marked);
                if !p.is_keep() {
                    set.push((k.clone(), p));
                }
            }
            None => set.push((k.clone(), JsonPatch::Replace(to_json_depth(x, marked)))),
        }
    }
    // Few keys are overridden (a search beats hashing), unless many were set.
    let names: Option<std::collections::HashSet<&str>> =
        (overrides.len() > 16).then(|| overrides.iter().filter_map(|(k, _)| k_str(k)).collect());
    let overridden = |k: &str| match &names {
        Some(set) => set.contains(k),
        None => overrides.iter().any(|(o, _)| k_str(o) == Some(k)),
    };
    // Above the depth limit, converting a scalar and back gives it unchanged.
    let shallow = marked.len() <= MAX_JSON_DEPTH && read_depth <= MAX_JSON_DEPTH;
    for (k, y) in m {
        // A scalar's round trip is cheaper than comparing its name with the overrides, and
        // almost always changes nothing; a container's may walk much more, so it goes second.
        let converted = match y {
            // What `round_trip` keeps, decided without the call (most entries).
            Json::Null | Json::Bool(_) | Json::String(_) if shallow => None,
            Json::Number(n) if shallow && (n.is_i64() || n.is_f64()) => None,
            Json::Object(_) | Json::Array(_) if overridden(k) => None,
            Json::Object(_) | Json::Array(_) => round_trip(y, read_depth, marked),
            _ => round_trip(y, read_depth, marked).filter(|_| !overridden(k)),
        };
        if let Some(converted) = converted {
            set.push((Str::from(k), JsonPatch::Replace(converted)));
        }
    }
    marked.pop();
    Some(if set.is_empty() {
        JsonPatch::Keep
    } else {
        JsonPatch::Object {
            set,
            remove: Vec::new(),
        }
    })
}

fn k_str(k: &Key) -> Option<&str> {
    match k {
        Key::Str(s) => Some(s.as_str()),
        _ => None,
    }
}

/// Whether `to_json_depth(v, marked) == *j`, without building the conversion where it can.
fn equal(v: &Value, j: &Json, marked: &mut Vec<usize>) -> bool {
    if marked.len() > MAX_JSON_DEPTH {
        return j.is_null();
    }
    let rare = match v {
        Value::Date { .. } | Value::DateTime { .. } | Value::Error(_) => true,
        Value::Dict(d) => d.borrow().keys().any(|k| !matches!(k, Key::Str(_))),
        _ => false,
    };
    if rare {
        return to_json_depth(v, marked) == *j;
    }
    let ptr = v.container_id();
    if let Some(p) = ptr {
        if marked.contains(&p) {
            return j.is_null();
        }
        marked.push(p);
    }
    let same = match (v, j) {
        (Value::Null, Json::Null) => true,
        (Value::Bool(a), Json::Bool(b)) => a == b,
        (Value::Int(i), Json::Number(n)) => *n == Number::from(*i),
        (Value::Float(f), j) => match Number::from_f64(*f) {
            Some(n) => matches!(j, Json::Number(m) if *m == n),
            None => j.is_null(),
        },
        (Value::Str(s), Json::String(t)) => s.as_str() == t,
        (Value::Array(a) | Value::Tuple(a), Json::Array(items)) => {
            let a = a.0.borrow();
            a.len() == items.len() && a.iter().zip(items).all(|(x, y)| equal(x, y, marked))
        }
        (Value::Dict(d), Json::Object(m)) => {
            let d = d.borrow();
            d.len() == m.len()
                && d.iter().all(|(k, x)| match k {
                    Key::Str(k) => m.get(&**k).is_some_and(|y| equal(x, y, marked)),
                    _ => false,
                })
        }
        (Value::Callable(_) | Value::Closure(_), Json::String(s)) => print_value(v) == *s,
        _ => false,
    };
    if ptr.is_some() {
        marked.pop();
    }
    same
}
