//! The narrow form of an event that the dataflow keeps: a timestamp, the log offset, an interned
//! event name and only the properties that registered insights read.
//!
//! Full property maps never enter an arrangement: state per event is what bounds how many events
//! one machine can keep live, so strings are interned and numbers stay inline.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

/// An interned string: event names, property keys and string property values.
pub type Sym = u32;

/// A projected property value. Null and missing values are simply absent.
///
/// Eight bytes: numbers are interned like strings (by their `f64` bits), because every event
/// row in two arrangements carries its projected values, and most numeric properties (prices,
/// counts, versions) repeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PropValue {
    /// A JSON boolean.
    Bool(bool),
    /// A JSON number, interned ([`Interner::number`]).
    Num(Sym),
    /// A JSON string, interned. Objects and arrays are interned as their JSON text.
    Str(Sym),
}

impl PropValue {
    /// The value as a number, the way PostHog's math reads it: numbers as they are, numeric
    /// strings parsed, anything else `None`.
    pub fn as_f64(&self, interner: &Interner) -> Option<f64> {
        match self {
            PropValue::Num(sym) => Some(interner.resolve_number(*sym)),
            PropValue::Str(sym) => interner.resolve(*sym).trim().parse().ok(),
            PropValue::Bool(_) => None,
        }
    }

    /// The value as PostHog's string comparisons see it: strings as they are, numbers in JSON
    /// form (`5`, `2.5`), booleans as `true`/`false`.
    pub fn to_text(&self, interner: &Interner) -> Arc<str> {
        match self {
            PropValue::Bool(b) => Arc::from(if *b { "true" } else { "false" }),
            PropValue::Num(sym) => Arc::from(format_number(interner.resolve_number(*sym)).as_str()),
            PropValue::Str(sym) => interner.resolve(*sym),
        }
    }
}

/// Formats a number as JSON would: integers without a fraction.
pub fn format_number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

/// The event name of properties that belong to no event: a person's.
pub const NO_EVENT: Sym = Sym::MAX;

/// An event's name and its projected properties, sorted by key. Shared: the feeder interns each
/// distinct set, so the two arrangements that hold a row, and every row of the same event with
/// the same values, point at one allocation instead of each owning a copy (that copy was most
/// of the state per event).
///
/// The name is kept here, as a first entry, rather than in the row: every row of both
/// arrangements is then 24 bytes rather than 32, and names repeat as much as values do.
/// A thin pointer (to a boxed slice) rather than `Arc<[_]>` for the same reason: the eight
/// bytes of a slice's length, in every row, cost more than the second allocation per set.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Props(Arc<Box<[(Sym, PropValue)]>>);

impl Props {
    /// An event's name and properties (sorted by key).
    pub fn new(event: Sym, props: impl IntoIterator<Item = (Sym, PropValue)>) -> Self {
        Self::from_layout(Self::layout(event, props))
    }

    /// A person's properties (sorted by key).
    pub fn person(props: impl IntoIterator<Item = (Sym, PropValue)>) -> Self {
        Self::new(NO_EVENT, props)
    }

    /// The entries a set is shared as: what [`Borrow`](std::borrow::Borrow) exposes, so that a
    /// table of shared sets can be searched before anything is allocated.
    pub fn layout(
        event: Sym,
        props: impl IntoIterator<Item = (Sym, PropValue)>,
    ) -> Vec<(Sym, PropValue)> {
        // The name's entry carries no value; `Bool(false)` is just the smallest.
        std::iter::once((event, PropValue::Bool(false)))
            .chain(props)
            .collect()
    }

    /// The set of [`Props::layout`]'s entries.
    pub fn from_layout(layout: Vec<(Sym, PropValue)>) -> Self {
        debug_assert!(!layout.is_empty(), "a layout starts with the event's name");
        Props(Arc::new(layout.into_boxed_slice()))
    }

    /// The event's interned name ([`NO_EVENT`] for a person's properties).
    pub fn event(&self) -> Sym {
        self.0.first().map_or(NO_EVENT, |(event, _)| *event)
    }
}

impl Default for Props {
    fn default() -> Self {
        Self::person([])
    }
}

/// The properties, without the name's entry.
impl std::ops::Deref for Props {
    type Target = [(Sym, PropValue)];

    fn deref(&self) -> &Self::Target {
        self.0.get(1..).unwrap_or_default()
    }
}

/// Lets the feeder's table of shared sets be searched with a [`Props::layout`]. `Hash` and
/// `Eq` agree, as `Borrow` requires: both are the whole layout's.
impl std::borrow::Borrow<[(Sym, PropValue)]> for Props {
    fn borrow(&self) -> &[(Sym, PropValue)] {
        &self.0
    }
}

/// One event as the dataflow keeps it. The derived order is (timestamp, offset), which is the
/// order in which insights replay a person's history; the offset makes it total.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EventRow {
    /// Event time in milliseconds since the epoch.
    pub ts_ms: i64,
    /// The record's log offset: unique, so it also identifies the event.
    pub offset: u64,
    /// The interned event name and the projected properties.
    pub props: Props,
}

// Two arrangements hold every row: a byte here is two bytes per event.
const _: () = assert!(std::mem::size_of::<EventRow>() == 24);

impl EventRow {
    /// The interned event name.
    pub fn event(&self) -> Sym {
        self.props.event()
    }

    /// The value of a projected property.
    pub fn prop(&self, key: Sym) -> Option<PropValue> {
        lookup(&self.props, key)
    }
}

/// Looks a key up in a sorted property slice.
pub fn lookup(props: &[(Sym, PropValue)], key: Sym) -> Option<PropValue> {
    props
        .binary_search_by_key(&key, |(k, _)| *k)
        .ok()
        .map(|i| props[i].1)
}

/// A string table shared by the feeder, the dataflow and the operators.
#[derive(Default, Debug)]
pub struct Interner {
    inner: RwLock<InternerInner>,
}

#[derive(Default, Debug)]
struct InternerInner {
    ids: HashMap<Arc<str>, Sym>,
    strings: Vec<Arc<str>>,
    /// Numbers by their bits, and back.
    number_ids: HashMap<u64, Sym>,
    numbers: Vec<f64>,
}

impl Interner {
    /// An empty table.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The symbol for `s`, adding it if it is new.
    pub fn intern(&self, s: &str) -> Sym {
        if let Some(sym) = self.get(s) {
            return sym;
        }
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if let Some(sym) = inner.ids.get(s) {
            return *sym;
        }
        let sym = inner.strings.len() as Sym;
        let s: Arc<str> = Arc::from(s);
        inner.strings.push(s.clone());
        inner.ids.insert(s, sym);
        sym
    }

    /// The symbol for `s`, if it was ever interned.
    pub fn get(&self, s: &str) -> Option<Sym> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner.ids.get(s).copied()
    }

    /// The string of a symbol (empty for a symbol this table never issued).
    pub fn resolve(&self, sym: Sym) -> Arc<str> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner
            .strings
            .get(sym as usize)
            .cloned()
            .unwrap_or_else(|| Arc::from(""))
    }

    /// The symbol of a number, adding it if it is new. Numbers compare by their bits, so `0.0`
    /// and `-0.0` are two values, as they were when rows kept the bits themselves.
    pub fn number(&self, value: f64) -> PropValue {
        let bits = value.to_bits();
        if let Some(sym) = self
            .inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .number_ids
            .get(&bits)
        {
            return PropValue::Num(*sym);
        }
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let next = inner.numbers.len() as Sym;
        let sym = *inner.number_ids.entry(bits).or_insert(next);
        if sym == next {
            inner.numbers.push(value);
        }
        PropValue::Num(sym)
    }

    /// The number of a symbol from [`Interner::number`] (NaN for one this table never issued).
    pub fn resolve_number(&self, sym: Sym) -> f64 {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner.numbers.get(sym as usize).copied().unwrap_or(f64::NAN)
    }

    /// How many strings the table holds.
    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .strings
            .len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Converts a JSON value into a projected value; `None` for null.
    pub fn value(&self, value: &serde_json::Value) -> Option<PropValue> {
        match value {
            serde_json::Value::Null => None,
            serde_json::Value::Bool(b) => Some(PropValue::Bool(*b)),
            serde_json::Value::Number(n) => n.as_f64().map(|v| self.number(v)),
            serde_json::Value::String(s) => Some(PropValue::Str(self.intern(s))),
            other => Some(PropValue::Str(self.intern(&other.to_string()))),
        }
    }
}
