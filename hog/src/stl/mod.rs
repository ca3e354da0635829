//! The standard library: every function PostHog's VM provides, with its arity.
//!
//! Native functions live in one file per family ([`core`], [`strings`], [`collections`],
//! [`dates`], [`crypto`]); the higher-order array functions are written in Hog ([`hog`]).

pub mod collections;
pub mod core;
pub mod crypto;
pub mod dates;
pub mod hog;
pub mod strings;

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::error::VmError;
use crate::runtime::Runtime;
use crate::value::Value;

/// A native function: runtime, its own name, arguments.
pub type NativeFn = fn(&mut Runtime, &str, &[Value]) -> Result<Value, VmError>;

/// A native function with its arity.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// Fewest arguments.
    pub min: usize,
    /// Most arguments (`None`: any number).
    pub max: Option<usize>,
    /// The implementation.
    pub func: NativeFn,
}

/// FNV-1a: function names are short, and this lookup runs on every native call, where SipHash
/// showed up in profiles.
#[derive(Default, Clone, Copy)]
struct NameHasher(u64);

impl std::hash::Hasher for NameHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

type NameMap = HashMap<&'static str, Spec, std::hash::BuildHasherDefault<NameHasher>>;

fn table() -> &'static NameMap {
    static TABLE: OnceLock<NameMap> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut m = NameMap::default();
        let mut add = |name: &'static str, min: usize, max: Option<usize>, func: NativeFn| {
            m.insert(name, Spec { min, max, func });
        };
        core::register(&mut add);
        strings::register(&mut add);
        collections::register(&mut add);
        dates::register(&mut add);
        crypto::register(&mut add);
        m
    })
}

/// Looks up a native function.
pub fn spec(name: &str) -> Option<&'static Spec> {
    table().get(name)
}

/// Every function name the VM knows (native and Hog-written), sorted.
pub fn function_names() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = table().keys().copied().chain(hog::names()).collect();
    v.push("sleep");
    v.sort_unstable();
    v
}

/// The `i`th argument, or `null`.
pub fn arg(args: &[Value], i: usize) -> &Value {
    const NULL: Value = Value::Null;
    args.get(i).unwrap_or(&NULL)
}

/// A type error naming the function.
pub fn type_err(name: &str, what: &str) -> VmError {
    VmError::exception(format!("{name}: {what}"))
}
