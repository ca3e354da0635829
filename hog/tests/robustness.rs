//! Property test: random source text and random bytecode never panic, and every run ends within
//! its limits.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use quill_hog::{compile_source, run_bytecode, ExecOptions, Limits};
use serde_json::{json, Value};

fn options() -> ExecOptions {
    ExecOptions {
        limits: Limits {
            timeout: Duration::from_millis(50),
            memory_bytes: 1 << 20,
            ..Limits::default()
        },
        ..ExecOptions::default()
    }
}

fn check_run(bytecode: &Value) {
    let start = Instant::now();
    let _ = run_bytecode(bytecode, &options());
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "run took too long"
    );
}

fn operand() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0u8..60).prop_map(|x| json!(x)),
        (-20i64..20).prop_map(|x| json!(x)),
        "[a-z]{0,5}".prop_map(|s| json!(s)),
        Just(json!("print")),
        Just(json!("arrayMap")),
        Just(json!(true)),
        Just(json!(1.5)),
    ]
}

const SNIPPETS: [&str; 24] = [
    "let ",
    "x",
    " := ",
    "1",
    "'s'",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ";",
    "fun f(a) ",
    "return ",
    "while (true) ",
    "print(",
    "x -> x",
    "try ",
    "catch (e) ",
    "throw Error('e')",
    " + ",
    "?.",
    "f'{x}'",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_bytecode_never_panics(ops in proptest::collection::vec(operand(), 0..40)) {
        let mut code = vec![json!("_H"), json!(1)];
        code.extend(ops);
        check_run(&Value::Array(code));
    }

    #[test]
    fn random_source_never_panics(parts in proptest::collection::vec(0usize..SNIPPETS.len(), 0..30)) {
        let src: String = parts.iter().map(|i| SNIPPETS[*i]).collect();
        if let Ok(b) = compile_source(&src) {
            check_run(&b);
        }
    }

    #[test]
    fn arbitrary_text_never_panics(src in "\\PC{0,80}") {
        if let Ok(b) = compile_source(&src) {
            check_run(&b);
        }
    }
}
