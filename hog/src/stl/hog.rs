//! Standard library functions written in Hog itself (the higher-order array functions), compiled
//! once per thread. They run as ordinary VM frames, so limits and async calls apply inside them.

use std::collections::HashMap;
use std::rc::Rc;

use crate::bytecode::{decode_ops, Chunk};
use crate::compiler::compile_function_body;
use crate::parser::parse_program;

const SOURCES: [(&str, &[&str], &str); 5] = [
    (
        "arrayMap",
        &["func", "arr"],
        "let result := []; for (let x in arr) { result := arrayPushBack(result, func(x)) } return result",
    ),
    (
        "arrayFilter",
        &["func", "arr"],
        "let result := []; for (let x in arr) { if (func(x)) { result := arrayPushBack(result, x) } } return result",
    ),
    (
        "arrayExists",
        &["func", "arr"],
        "for (let x in arr) { if (func(x)) { return true } } return false",
    ),
    (
        "arrayCount",
        &["func", "arr"],
        "let count := 0; for (let x in arr) { if (func(x)) { count := count + 1 } } return count",
    ),
    (
        "arrayReduce",
        &["func", "arr", "initial"],
        "let acc := initial; for (let x in arr) { acc := func(acc, x) } return acc",
    ),
];

thread_local! {
    static CHUNKS: HashMap<&'static str, (usize, Rc<Chunk>)> = build();
}

fn build() -> HashMap<&'static str, (usize, Rc<Chunk>)> {
    let mut out = HashMap::new();
    for (name, params, src) in SOURCES {
        let chunk = parse_program(src)
            .ok()
            .and_then(|body| compile_function_body(params, &body).ok())
            .and_then(|ops| decode_ops(&ops).ok());
        match chunk {
            Some(c) => {
                out.insert(name, (params.len(), Rc::new(c)));
            }
            None => tracing::error!(function = name, "built-in Hog function failed to compile"),
        }
    }
    out
}

/// The argument count and code of a Hog-written standard library function.
pub fn lookup(name: &str) -> Option<(usize, Rc<Chunk>)> {
    CHUNKS.with(|c| c.get(name).cloned())
}

/// Names of the Hog-written functions.
pub fn names() -> impl Iterator<Item = &'static str> {
    SOURCES.iter().map(|(n, _, _)| *n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_builtin_hog_functions_compile() {
        for n in names() {
            assert!(lookup(n).is_some(), "{n}");
        }
    }
}
