//! Globals are read as lazy dicts (`quill_hog::dict`): only the entries a program reaches are
//! converted. The straightforward way converts the whole object on every read; `jsonParse` of
//! the same JSON does exactly that inside the program. Random programs that read, change,
//! iterate, print and return the `event` global must print and return the same either way, and
//! the patch against the global must apply to the conversion of what they return.

use proptest::prelude::*;
use quill_hog::convert::value_to_json;
use quill_hog::patch::diff;
use quill_hog::{compile_source, ExecOptions, Outcome, Program};
use serde_json::{json, Value as Json};

/// Small alphabets, so that statements hit existing keys often.
fn leaf() -> impl Strategy<Value = Json> {
    prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        (-2i64..3).prop_map(|x| json!(x)),
        Just(json!(1.5)),
        Just(json!(u64::MAX)),
        "[ab]{0,2}".prop_map(Json::String),
        Just(json!("a string longer than the inline limit")),
    ]
}

fn value() -> impl Strategy<Value = Json> {
    leaf().prop_recursive(3, 20, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Json::Array),
            proptest::collection::btree_map("[abc]", inner, 0..3)
                .prop_map(|m| Json::Object(m.into_iter().collect())),
        ]
    })
}

fn event() -> impl Strategy<Value = Json> {
    proptest::collection::btree_map("[abc]", value(), 0..4)
        .prop_map(|props| json!({"event": "$pageview", "distinct_id": "d", "properties": props}))
}

/// Statements over `e` (the event read once) and `EVENT` (a fresh read of the global).
const STATEMENTS: &[&str] = &[
    "e.properties.a := 1",
    "e.properties.d := 'new'",
    "let p := e.properties\np.b := p.a",
    "print(e.properties.a, e.properties.b, e.properties.c)",
    "print(e.properties.a.b, e.properties.b.c)",
    "e.properties.a.c := [e.properties.b]",
    "print(keys(e.properties), length(e.properties))",
    "print(e)",
    "for (let k, v in e.properties) { print(k, v) }",
    "e.properties := EVENT.properties",
    "print(EVENT.properties.a, EVENT.properties)",
    "let f := EVENT\nf.properties.a := 'x'\nprint(f.properties.a, EVENT.properties.a)",
    "e.properties.self := e.properties",
    "e.properties[1] := 'one'",
    "print('a' in e.properties, 'z' in e.properties, has(keys(e.properties), 'b'))",
    "print(e.properties.c.a, typeof(e.properties.c))",
    "e.event := 'renamed'",
    "e.properties.c := null",
    "print(jsonStringify(e.properties))",
    "print(e.properties == EVENT.properties)",
];

/// A Hog string literal.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Runs `src` with `event` as the global; the printed lines, the JSON result, and the JSON the
/// patch against the global gives (the error twice, when the run fails).
fn run(src: &str, event: &Json) -> (Vec<String>, Json, Json) {
    let options = ExecOptions {
        globals: Some(json!({ "event": event })),
        ..ExecOptions::default()
    };
    let program = Program::new(&compile_source(src).expect("compiles")).expect("decodes");
    let original = &options.globals.as_ref().expect("globals")["event"];
    // The diff first: converting the value to JSON iterates (and so forces) its lazy dicts, and
    // the diff must also be checked on dicts still lazy.
    let result = match program.run_with(&options, |v| {
        let patch = diff(v, original);
        (value_to_json(v), patch)
    }) {
        Ok(r) => r,
        // Both ways must fail the same way, after printing the same.
        Err(e) => {
            let error = json!(quill_hog::format_error(&e.error));
            return (e.stdout, error.clone(), error);
        }
    };
    let Outcome::Finished((returned, patch)) = result.outcome else {
        panic!("suspended")
    };
    let mut patched = original.clone();
    patch.apply(&mut patched);
    (result.stdout, returned, patched)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn lazy_reads_behave_as_whole_conversions(
        event in event(),
        picks in proptest::collection::vec(0..STATEMENTS.len(), 1..6),
    ) {
        // Each in its own scope, so that their `let`s may repeat.
        let body: Vec<String> = picks
            .iter()
            .map(|&i| format!("if (true) {{\n{}\n}}", STATEMENTS[i]))
            .collect();
        let body = body.join("\n");
        let lazy = format!("let e := event\n{}\nreturn e", body.replace("EVENT", "event"));
        let parse = format!("jsonParse({})", literal(&event.to_string()));
        let whole = format!("let e := {parse}\n{}\nreturn e", body.replace("EVENT", &parse));
        let (out_lazy, ret_lazy, patched) = run(&lazy, &event);
        let (out_whole, ret_whole, _) = run(&whole, &event);
        prop_assert_eq!(&out_lazy, &out_whole, "{}", lazy);
        prop_assert_eq!(&ret_lazy, &ret_whole, "{}", lazy);
        prop_assert_eq!(&patched, &ret_lazy, "{}", lazy);
    }
}

#[test]
fn a_returned_event_with_one_change_patches_one_key() {
    let event = json!({"event": "e", "properties": {"a": 1, "b": {"c": 2}, "big": u64::MAX}});
    let (_, returned, patched) = run("let e := event\ne.properties.a := 2\nreturn e", &event);
    assert_eq!(patched, returned);
    // The big integer converts to a float (as a whole conversion would), the rest is kept.
    assert_eq!(returned["properties"]["b"], json!({"c": 2}));
    assert!(returned["properties"]["big"].is_f64());
}

/// Dicts still lazy when diffed, with few and many keys set (the diff copies up to four
/// overrides in place and more into a vector): the patch gives the conversion.
#[test]
fn lazy_dicts_with_many_overrides_patch_to_their_conversion() {
    let event = json!({"event": "e", "distinct_id": "d",
        "properties": {"a": 1, "b": "x", "c": {"d": 2}, "big": u64::MAX, "f": 1.5}});
    let keys = ["a", "n1", "b", "n2", "c", "n3", "f", "n4", "n5"];
    for n in 0..=keys.len() {
        let sets: Vec<String> = keys[..n]
            .iter()
            .enumerate()
            .map(|(i, k)| format!("e.properties.{k} := {i}"))
            .collect();
        let src = format!(
            "let e := event\n{}\ne.event := 'x{n}'\nreturn e",
            sets.join("\n")
        );
        let (_, returned, patched) = run(&src, &event);
        assert_eq!(patched, returned, "{src}");
        assert_eq!(returned["event"], json!(format!("x{n}")));
        let added = keys[..n].iter().filter(|k| k.starts_with('n')).count();
        assert_eq!(
            returned["properties"].as_object().map(|p| p.len()),
            Some(5 + added)
        );
    }
}
