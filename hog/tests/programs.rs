//! Runs every `tests/programs/NAME.hog` through the compiler and the VM and compares what it
//! prints with `NAME.stdout`. An uncaught error adds its `Type('message')` line, as `quill hog run`
//! prints it. Set `HOG_BLESS=1` to rewrite the expected files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use quill_hog::{compile_source, run_bytecode, ExecOptions, Limits};
use serde_json::json;

/// The globals every test program sees.
pub fn test_globals() -> serde_json::Value {
    json!({
        "event": {
            "uuid": "0190-test",
            "event": "$pageview",
            "distinct_id": "user-1",
            "properties": {"price": 9.5, "$browser": "Firefox"},
            "timestamp": "2024-03-15T13:45:30Z"
        },
        "person": {"id": "p1", "properties": {"email": "a@example.com"}},
        "project": {"id": 1, "name": "Quill"}
    })
}

/// The options test programs run with (a short timeout keeps the limit tests quick).
pub fn test_options() -> ExecOptions {
    ExecOptions {
        limits: Limits {
            timeout: Duration::from_millis(1500),
            ..Limits::default()
        },
        globals: Some(test_globals()),
        ..ExecOptions::default()
    }
}

/// Compiles and runs a program, returning its output as `quill hog run` prints it.
pub fn run_program(src: &str) -> String {
    let bytecode = match compile_source(src) {
        Ok(b) => b,
        Err(e) => return format!("SyntaxError('{}')\n", e.to_string().replace('\'', "\\'")),
    };
    let (lines, err) = match run_bytecode(&bytecode, &test_options()) {
        Ok(r) => (r.stdout, None),
        Err(e) => (e.stdout, Some(e.error.to_hog_string())),
    };
    let mut out = String::new();
    for l in lines.iter().chain(err.iter()) {
        out.push_str(l);
        out.push('\n');
    }
    out
}

fn programs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs")
}

#[test]
fn every_program_prints_its_expected_output() {
    let bless = std::env::var("HOG_BLESS").is_ok();
    let mut names: Vec<PathBuf> = std::fs::read_dir(programs_dir())
        .expect("programs dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "hog"))
        .collect();
    names.sort();
    assert!(
        names.len() >= 40,
        "expected at least 40 programs, found {}",
        names.len()
    );
    let mut failures = Vec::new();
    for path in &names {
        let src = std::fs::read_to_string(path).expect("read program");
        let got = run_program(&src);
        let expected_path = path.with_extension("stdout");
        if bless {
            std::fs::write(&expected_path, &got).expect("write expected");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        // Timing-dependent numbers in limit messages are masked.
        let mask = |s: &str| {
            s.lines()
                .map(|l| match l.find("Performed ") {
                    Some(i) => l[..i].to_string(),
                    None => l.to_string(),
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        if mask(&got) != mask(&expected) {
            failures.push(format!(
                "{}:\n--- expected\n{expected}--- got\n{got}",
                path.display()
            ));
        }
    }
    println!("{} programs checked", names.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
