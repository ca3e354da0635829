//! A [`Program`] run many times keeps object layouts between runs (`globals::Shapes`): every run
//! must still give what a fresh run of the same bytecode gives, whatever the earlier runs saw.

use proptest::prelude::*;
use quill_hog::{compile_source, run_bytecode, ExecOptions, Program};
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
