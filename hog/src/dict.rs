//! [`DictData`]: the storage of a dict, which may be a lazy copy of a JSON object.
//!
//! Every read of a global gives the program a fresh copy (as PostHog's VM does). A
//! transformation reads `event` or `event.properties` and touches a property or two, so
//! converting the whole object on every read was most of a run's cost. A dict read from the
//! globals therefore starts *lazy*: it points at its JSON object and holds only the entries
//! converted or set so far (the *overrides*). Reading a key converts that entry alone (and keeps
//! it when it is a container, so that later reads see the same dict or array); setting a key
//! only records it. Anything else (iterating, counting, removing, printing, comparing) first
//! *forces* the dict: it becomes the ordinary dict it stands for, in the JSON's key order with the
//! overrides in place and new keys after, exactly what converting the object on read and then
//! making the same changes would have given.
//!
//! [`crate::patch::diff`] compares a lazy dict with the object it was read from by its
//! overrides alone, so an event returned with one property changed costs one comparison.
//!
//! # Safety
//!
//! A lazy dict points into the run's globals with a raw pointer, because [`crate::value::Value`]
//! has no lifetime. This is sound because lazy dicts are only made by
//! [`crate::heap::Registry::lazy_dict`], whose caller promises that the JSON outlives the
//! registry's next `clear`: the VM makes them from `ExecOptions::globals`, which it borrows for the
//! whole run, and its heap clears when the run ends. `clear` reaches every lazy dict (each is
//! registered when made) and drops the pointer, so no lazy dict survives the run.

use std::cell::{Ref, RefCell, RefMut};
use std::ptr::NonNull;
use std::rc::Rc;

use serde_json::{Map, Value as Json};

use crate::convert::{json_scalar, special_object, to_json_depth, MAX_JSON_DEPTH};
use crate::heap::{Registry, UNIT};
use crate::value::{Dict, Key, KeyRef, Value};

/// The storage of a dict (insertion ordered), possibly a lazy copy of a JSON object.
#[derive(Debug, Default)]
pub struct DictData(RefCell<Inner>);

#[derive(Debug, Default)]
struct Inner {
    /// The dict, or while lazy the entries converted or set so far.
    map: Dict,
    lazy: Option<Lazy>,
}

/// Most overrides a copy holds without allocating.
const FEW: usize = 4;

/// A copy of a lazy dict's overrides ([`DictData::lazy_parts`]), in order. A returned event
/// usually overrides one or two keys per dict, and the diff copies them once per run: a few are
/// copied in place rather than into a vector.
pub(crate) enum Overrides {
    Few([Option<(Key, Value)>; FEW]),
    Many(Vec<(Key, Value)>),
}

impl Overrides {
    /// The overrides, in the dict's order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &(Key, Value)> + '_ {
        let (few, many) = match self {
            Overrides::Few(few) => (&few[..], &[][..]),
            Overrides::Many(many) => (&[][..], &many[..]),
        };
        few.iter().flatten().chain(many)
    }

    /// How many there are.
    pub(crate) fn len(&self) -> usize {
        match self {
            Overrides::Few(few) => few.iter().flatten().count(),
            Overrides::Many(many) => many.len(),
        }
    }
}

/// Where a lazy dict's other entries come from.
#[derive(Debug)]
struct Lazy {
    /// The JSON object (see the module's safety section).
    source: NonNull<Map<String, Json>>,
    /// The object's depth below the global it was read from (its entries are one deeper).
    depth: usize,
    /// Registers the containers its entries convert into.
    registry: Rc<Registry>,
}

impl Lazy {
    fn source(&self) -> &Map<String, Json> {
        // SAFETY: see the module docs: the object outlives every `Lazy` pointing at it.
        unsafe { self.source.as_ref() }
    }
}

impl DictData {
    /// A dict holding `map`.
    pub fn new(map: Dict) -> DictData {
        DictData(RefCell::new(Inner { map, lazy: None }))
    }

    /// A lazy copy of `source` at `depth` (see the module docs).
    ///
    /// # Safety
    ///
    /// `source` must stay alive and unchanged until `registry` is cleared, and the dict must be
    /// registered in `registry`.
    pub(crate) unsafe fn lazy(
        source: &Map<String, Json>,
        depth: usize,
        registry: Rc<Registry>,
    ) -> DictData {
        DictData(RefCell::new(Inner {
            map: Dict::default(),
            lazy: Some(Lazy {
                source: NonNull::from(source),
                depth,
                registry,
            }),
        }))
    }

    /// The dict (forced first when lazy).
    #[inline]
    pub fn borrow(&self) -> Ref<'_, Dict> {
        self.force();
        Ref::map(self.0.borrow(), |i| &i.map)
    }

    /// The dict, mutably (forced first when lazy).
    #[inline]
    pub fn borrow_mut(&self) -> RefMut<'_, Dict> {
        self.force();
        RefMut::map(self.0.borrow_mut(), |i| &mut i.map)
    }

    /// The value at `key`, without forcing a lazy dict.
    pub fn get(&self, key: KeyRef<'_>) -> Option<Value> {
        let (v, key) = {
            let inner = self.0.borrow();
            if let Some(v) = inner.map.get(&key) {
                return Some(v.clone());
            }
            let (lazy, KeyRef::Str(k)) = (inner.lazy.as_ref()?, key) else {
                return None;
            };
            let (key, j) = lazy.source().get_key_value(k)?;
            // SAFETY: `j` is inside the source, which outlives the registry's next clear.
            let v = unsafe { lazy_value(&lazy.registry, j, lazy.depth + 1) };
            if v.container_id().is_none() {
                return Some(v);
            }
            (v, Key::Str(key.as_str().into()))
        };
        // Kept, so that reading the key again gives the same container.
        self.0.borrow_mut().map.insert(key, v.clone());
        Some(v)
    }

    /// Whether `key` is in the dict, without forcing a lazy dict.
    pub fn contains_key(&self, key: KeyRef<'_>) -> bool {
        let inner = self.0.borrow();
        inner.map.contains_key(&key)
            || matches!((&inner.lazy, key), (Some(l), KeyRef::Str(k)) if l.source().contains_key(k))
    }

    /// Sets `key`, without forcing a lazy dict.
    pub fn insert(&self, key: Key, value: Value) {
        let map = &mut self.0.borrow_mut().map;
        if map.capacity() == 0 {
            // `{}` filled key by key: skip the smallest sizes of table.
            map.reserve(8);
        }
        map.insert(key, value);
    }

    /// Empties the dict (a lazy one forgets its JSON), returning what it held.
    pub(crate) fn take(&self) -> Dict {
        let mut inner = self.0.borrow_mut();
        inner.lazy = None;
        std::mem::take(&mut inner.map)
    }

    /// Empties the dict in place when it is uniquely owned.
    pub(crate) fn take_mut(&mut self) -> Dict {
        let inner = self.0.get_mut();
        inner.lazy = None;
        std::mem::take(&mut inner.map)
    }

    /// The memory estimate of the dict as if it were forced: a lazy dict counts the JSON it has
    /// not converted as the containers and values it would convert into.
    pub(crate) fn cost(&self) -> usize {
        let inner = self.0.borrow();
        let mut total = UNIT
            + inner
                .map
                .iter()
                .map(|(k, v)| key_cost(k) + crate::heap::slot_cost(v))
                .sum::<usize>();
        if let Some(lazy) = &inner.lazy {
            for (k, j) in lazy.source() {
                if !inner.map.contains_key(&KeyRef::Str(k)) {
                    total += UNIT + k.len() + json_cost(j, lazy.depth + 1);
                }
            }
        }
        total
    }

    /// For a lazy copy of `source`: its overrides (the source's other entries are untouched), and
    /// the depth the source's entries were read at. `None` when the dict is not a lazy copy of
    /// `source`. The overrides are copied out (a few values, sharing their storage), so that a
    /// caller walking them may force this dict when it finds it again inside them.
    pub(crate) fn lazy_parts(&self, source: &Map<String, Json>) -> Option<(Overrides, usize)> {
        let inner = self.0.borrow();
        match &inner.lazy {
            Some(l) if std::ptr::eq(l.source.as_ptr(), source) => {
                let overrides = inner.map.iter().map(|(k, v)| (k.clone(), v.clone()));
                let copy = if inner.map.len() <= FEW {
                    let mut few: [Option<(Key, Value)>; FEW] = Default::default();
                    for (slot, entry) in few.iter_mut().zip(overrides) {
                        *slot = Some(entry);
                    }
                    Overrides::Few(few)
                } else {
                    Overrides::Many(overrides.collect())
                };
                Some((copy, l.depth + 1))
            }
            _ => None,
        }
    }

    /// Turns a lazy dict into the ordinary dict it stands for.
    fn force(&self) {
        if self.0.borrow().lazy.is_none() {
            return;
        }
        let mut inner = self.0.borrow_mut();
        let Some(lazy) = inner.lazy.take() else {
            return;
        };
        let mut set = std::mem::take(&mut inner.map);
        let source = lazy.source();
        let mut map = Dict::with_capacity_and_hasher(source.len() + set.len(), Default::default());
        for (k, j) in source {
            let v = match set.get_mut(&KeyRef::Str(k)) {
                Some(v) => std::mem::take(v),
                // SAFETY: `j` is inside the source, which outlives the registry's next clear.
                None => unsafe { lazy_value(&lazy.registry, j, lazy.depth + 1) },
            };
            map.insert(Key::Str(k.as_str().into()), v);
        }
        // Keys the JSON does not have were added, in this order, after its own.
        for (k, v) in set.drain(..) {
            if !matches!(&k, Key::Str(s) if source.contains_key(s.as_str())) {
                map.insert(k, v);
            }
        }
        inner.map = map;
    }
}

fn key_cost(k: &Key) -> usize {
    match k {
        Key::Str(s) => UNIT + s.len(),
        _ => UNIT,
    }
}

/// A JSON node read at `depth` as a fresh value: objects become lazy dicts, arrays are converted
/// (their objects lazy), as `json_to_value` would convert them.
///
/// # Safety
///
/// `j` must stay alive and unchanged until `registry` is cleared.
pub(crate) unsafe fn lazy_value(registry: &Rc<Registry>, j: &Json, depth: usize) -> Value {
    if depth > MAX_JSON_DEPTH {
        return Value::Null;
    }
    match j {
        Json::Array(a) => {
            let items = a
                .iter()
                // SAFETY: inside `j` (the caller's promise).
                .map(|x| unsafe { lazy_value(registry, x, depth + 1) })
                .collect();
            registry.array(items)
        }
        Json::Object(m) => {
            if let Some(v) = special_object(m) {
                return v;
            }
            // SAFETY: `m` is `j` (the caller's promise).
            unsafe { registry.lazy_dict(m, depth) }
        }
        scalar => json_scalar(scalar),
    }
}

/// The memory estimate of the containers and strings a JSON node read at `depth` converts into,
/// plus the slot holding it.
fn json_cost(j: &Json, depth: usize) -> usize {
    if depth > MAX_JSON_DEPTH {
        return UNIT;
    }
    match j {
        Json::String(s) => UNIT + s.len(),
        Json::Array(a) => UNIT + UNIT + a.iter().map(|x| json_cost(x, depth + 1)).sum::<usize>(),
        Json::Object(m) if special_object(m).is_none() => {
            UNIT + UNIT
                + m.iter()
                    .map(|(k, v)| UNIT + k.len() + json_cost(v, depth + 1))
                    .sum::<usize>()
        }
        _ => UNIT,
    }
}

/// What `value_to_json` gives for the value a JSON node converts into when read at
/// `read_depth` and converted back with `marked` above it; `None` when that is the node itself.
pub(crate) fn round_trip(j: &Json, read_depth: usize, marked: &mut Vec<usize>) -> Option<Json> {
    if marked.len() > MAX_JSON_DEPTH || read_depth > MAX_JSON_DEPTH {
        return (!j.is_null()).then_some(Json::Null);
    }
    match j {
        // Integers past `i64` become floats.
        Json::Number(n) if n.as_i64().is_none() && !n.is_f64() => Some(to_json_depth(
            &Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            marked,
        )),
        Json::Array(a) => {
            // A placeholder id: JSON has no cycles, only the depth matters.
            marked.push(0);
            let changed: Vec<Option<Json>> = a
                .iter()
                .map(|x| round_trip(x, read_depth + 1, marked))
                .collect();
            marked.pop();
            if changed.iter().all(Option::is_none) {
                return None;
            }
            Some(Json::Array(
                changed
                    .into_iter()
                    .zip(a)
                    .map(|(c, x)| c.unwrap_or_else(|| x.clone()))
                    .collect(),
            ))
        }
        Json::Object(m) => {
            if let Some(v) = special_object(m) {
                let back = to_json_depth(&v, marked);
                return (back != *j).then_some(back);
            }
            marked.push(0);
            let mut out: Option<Map<String, Json>> = None;
            for (k, x) in m {
                if let Some(c) = round_trip(x, read_depth + 1, marked) {
                    out.get_or_insert_with(|| m.clone()).insert(k.clone(), c);
                }
            }
            marked.pop();
            out.map(Json::Object)
        }
        _ => None,
    }
}
