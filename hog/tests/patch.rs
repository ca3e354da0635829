//! `patch::diff` applied to the original JSON must give exactly `value_to_json`: checked on
//! random JSON pairs and on programs that return cycles, dates, errors and functions.

use proptest::prelude::*;
use quill_hog::convert::{json_to_value, value_to_json};
use quill_hog::heap::Heap;
use quill_hog::patch::{diff, JsonPatch};
use quill_hog::{compile_source, ExecOptions, Outcome, Program};
use serde_json::{json, Value as Json};

/// Small alphabets, so that two random values often share keys and leaves.
fn leaf() -> impl Strategy<Value = Json> {
    prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        (-3i64..3).prop_map(|x| json!(x)),
        prop_oneof![Just(1.5), Just(2.0), Just(-0.0)].prop_map(|x| json!(x)),
        Just(json!(u64::MAX)),
        "[ab]{0,2}".prop_map(Json::String),
        Just(Json::String("a string longer than the inline limit".into())),
    ]
}

fn value() -> impl Strategy<Value = Json> {
    leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Json::Array),
            proptest::collection::btree_map("[abc]", inner, 0..4)
                .prop_map(|m| Json::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn patched_json_is_the_conversion(original in value(), returned in value()) {
        let mut heap = Heap::new(0);
        let v = json_to_value(&mut heap, &returned);
        let mut target = original.clone();
        diff(&v, &original).apply(&mut target);
        prop_assert_eq!(&target, &value_to_json(&v));
        // A value converted from the same JSON changes nothing, unless the conversion is lossy
        // (as for integers past `i64`).
        let same = json_to_value(&mut heap, &original);
        prop_assert_eq!(diff(&same, &original).is_keep(), value_to_json(&same) == original);
        heap.clear();
    }
}

/// Runs `src` with `event` as the `event` global both ways and compares.
fn check(src: &str, event: Json) -> JsonPatch {
    let options = ExecOptions {
        globals: Some(json!({ "event": event })),
        ..ExecOptions::default()
    };
    let program = Program::new(&compile_source(src).expect("compiles")).expect("decodes");
    let expected = match program.run(&options).expect("runs").outcome {
        Outcome::Finished(j) => j,
        other => panic!("{other:?}"),
    };
    let original = &options.globals.as_ref().expect("globals")["event"];
    let patch = match program
        .run_with(&options, |v| diff(v, original))
        .expect("runs")
        .outcome
    {
        Outcome::Finished(p) => p,
        other => panic!("{other:?}"),
    };
    let mut target = original.clone();
    patch.clone().apply(&mut target);
    assert_eq!(target, expected, "{src}");
    patch
}

#[test]
fn programs_returning_the_event() {
    let mut event = json!({"event": "$pageview", "properties": {"email": "a@b.c", "n": 1, "f": 1.5,
        "list": [1, {"x": "y"}], "$set": {"email": "a@b.c"}}});
    assert!(check("return event", event.clone()).is_keep());
    // Integers past `i64` convert to floats, so they do change.
    event["properties"]["big"] = json!(u64::MAX);
    assert!(!check("return event", event.clone()).is_keep());
    let p = check(
        "let e := event\ne.properties.email := 'x'\nreturn e",
        event.clone(),
    );
    let JsonPatch::Object { set, remove } = p else {
        panic!("{p:?}")
    };
    assert!(remove.is_empty());
    assert_eq!(set.len(), 1, "only `properties` changes: {set:?}");
    for src in [
        "let e := event\ne.properties.self := e\nreturn e",
        "let e := event\ne.properties := e\nreturn e",
        "let e := event\ne.properties.list[2].x := e.properties.list\nreturn e",
        "let e := event\ne.properties.d := toDate('2024-01-02')\ne.properties.t := toDateTime('2024-01-02T03:04:05Z')\nreturn e",
        "let e := event\ne.properties.err := Error('boom', {'a': 1})\nreturn e",
        "let e := event\ne.properties.f := (x) -> x\nreturn e",
        "let e := event\ne.properties.nan := 0 / 0\ne.properties.inf := 1 / 0\nreturn e",
        "let e := event\ne.properties[1] := 'one'\ne.properties['1'] := 'uno'\nreturn e",
        "let e := event\ne.properties := {'only': 1}\nreturn e",
        "let e := event\ne.properties.n := 1.0\ne.properties.f := 1\ne.properties.big := 2\nreturn e",
        "let e := event\ne.properties.list := (1, 2)\ne.properties.$set := [1]\nreturn e",
        "return null",
        "return 'text'",
        "return [event, event]",
    ] {
        check(src, event.clone());
    }
}

#[test]
fn deep_values_become_null_where_the_conversion_stops() {
    let mut deep = json!("leaf");
    for _ in 0..140 {
        deep = json!({ "a": deep });
    }
    check("return event", deep.clone());
    check("let e := event\ne.b := 1\nreturn e", deep);
}
