//! A [`Program`] run many times keeps the emptied buffers of its last run (stack, frames, heap
//! registry, runtime) for the next: every run must still give what a fresh run of the same
//! bytecode gives (printed lines, result or error, ops and memory estimate), whatever the earlier
//! runs did, failed on or left behind.

use proptest::prelude::*;
use quill_hog::{compile_source, run_bytecode, ExecOptions, ExecResult, Limits, Program};
use serde_json::{json, Value as Json};

/// Objects from few keys and sizes, so that layouts repeat, differ only in one key, or differ
/// only in order of insertion.
fn object(depth: u32) -> BoxedStrategy<Json> {
    let leaf = prop_oneof![
        (0i64..3).prop_map(|x| json!(x)),
        "[xy]{0,2}".prop_map(Json::String),
        Just(json!("a string longer than the inline limit")),
    ];
    let value = if depth == 0 {
        leaf.boxed()
    } else {
        prop_oneof![3 => leaf, 1 => object(depth - 1)].boxed()
    };
    proptest::collection::btree_map("[abc]", value, 0..4)
        .prop_map(|m| Json::Object(m.into_iter().collect()))
        .boxed()
}

const PROGRAMS: [&str; 3] = [
    "return event",
    "let p := event.properties\np.a := 1\nreturn [p, event, event.properties]",
    "let e := event\ne.properties.b := e.properties\nreturn e",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn runs_of_one_program_match_fresh_runs(events in proptest::collection::vec(object(2), 1..120)) {
        for src in PROGRAMS {
            let bytecode = compile_source(src).expect("compiles");
            let program = Program::new(&bytecode).expect("decodes");
            for properties in &events {
                let options = ExecOptions {
                    globals: Some(json!({"event": {"event": "e", "properties": properties}})),
                    ..ExecOptions::default()
                };
                let fresh = run_bytecode(&bytecode, &options).expect("runs");
                let reused = program.run(&options).expect("runs");
                prop_assert_eq!(reused.outcome, fresh.outcome, "{}", src);
            }
        }
    }
}

/// Programs that leave cycles, closures, open upvalues, try frames, prints and regexes behind,
/// fail part way (thrown, over the memory cap, bad index), or grow the stack deep.
const STATEFUL: [&str; 8] = [
    "let d := event.properties\nd.self := d\nlet a := [d]\nd.list := a\nprint(length(keys(d)))\nreturn d.a",
    "let n := 0\nlet f := (x) -> { n := n + x\n return n }\nfor (let k, v in event.properties) { f(1) }\nreturn [n, f(0)]",
    "try { if (event.properties.a == 1) { throw Error('one') }\n print('no throw') } catch (e) { print(e.message) }\nreturn event.properties.b",
    "let s := ''\nfor (let i := 0; i < 200; i := i + 1) { s := concat(s, 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx') }\nreturn length(s)",
    "print(match(event.properties.a ?? 'x', '^[xy]+$'), event.properties.a =~ 'y')\nreturn sha256Hex(toString(event.properties))",
    "fn deep(n) { if (n <= 0) { return 0 }\n return 1 + deep(n - 1) }\nreturn deep(length(keys(event.properties)) * 30)",
    "let a := event.properties\nif (a.c) { throw Error('c is set') }\nreturn a",
    "let i := 0\nlet a := [1]\nreturn a[length(keys(event.properties)) + 5]",
];

/// The parts of a run that must not depend on earlier runs of the program: the printed lines,
/// and the result, ops and memory estimate (or the error).
type Summary = (Vec<String>, Result<(Json, u64, usize), String>);

/// The parts of a run that must not depend on earlier runs of the program.
fn summary(r: Result<ExecResult, quill_hog::ExecError>) -> Summary {
    match r {
        Ok(r) => match r.outcome {
            quill_hog::Outcome::Finished(v) => (r.stdout, Ok((v, r.ops, r.max_mem_used))),
            other => (r.stdout, Err(format!("{other:?}"))),
        },
        Err(e) => (e.stdout, Err(quill_hog::format_error(&e.error))),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn reused_buffers_give_fresh_runs(
        runs in proptest::collection::vec((object(2), prop_oneof![Just(0usize), Just(600), Just(3000), Just(64 << 20)]), 1..40),
    ) {
        for src in STATEFUL {
            let bytecode = compile_source(src).expect("compiles");
            let program = Program::new(&bytecode).expect("decodes");
            // A clone shares the spare buffers.
            let clone = program.clone();
            for (n, (properties, memory)) in runs.iter().enumerate() {
                let options = ExecOptions {
                    globals: Some(json!({"event": {"event": "e", "properties": properties}})),
                    limits: Limits { memory_bytes: *memory, ..Limits::default() },
                    ..ExecOptions::default()
                };
                let fresh = summary(run_bytecode(&bytecode, &options));
                let reused = summary(if n % 2 == 0 { program.run(&options) } else { clone.run(&options) });
                prop_assert_eq!(reused, fresh, "{} (run {})", src, n);
            }
        }
    }
}

/// A run started while another run of the same program is still going (here from `finish`)
/// finds no spare buffers and makes its own; both give what fresh runs give.
#[test]
fn nested_runs_of_one_program() {
    let bytecode =
        compile_source("let d := event\nd.self := d\nreturn [d.a, event.a]").expect("compiles");
    let program = Program::new(&bytecode).expect("decodes");
    let options = ExecOptions {
        globals: Some(json!({"event": {"a": 1}})),
        ..ExecOptions::default()
    };
    let fresh = summary(run_bytecode(&bytecode, &options));
    for _ in 0..3 {
        let outer = program
            .run_with(&options, |v| {
                let inner = summary(program.run(&options));
                (quill_hog::convert::value_to_json(v), inner)
            })
            .expect("runs");
        let quill_hog::Outcome::Finished((outer_value, inner)) = outer.outcome else {
            panic!("suspended")
        };
        assert_eq!(inner, fresh);
        assert_eq!(Ok(&outer_value), fresh.1.as_ref().map(|(v, _, _)| v));
        assert_eq!(summary(program.run(&options)), fresh);
    }
}
