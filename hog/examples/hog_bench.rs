//! A criterion-free timing harness for Quill's Hog VM, used by `benches/hog_vs_hogvm.sh`.
//!
//! ```text
//! cargo run --release -p quill-hog --example hog_bench -- FILE.json ITER [--globals G.json] [--rounds N]
//! ```
//!
//! Runs the bytecode once to check it finishes (and prints its return value as JSON), then `N`
//! rounds (default 7) of `ITER` executions each, and prints the median time per execution two ways:
//!
//! - `median_us`: `quill_hog::run_bytecode` from the parsed bytecode JSON each time (it decodes
//!   the bytecode on every run), the same input `@posthog/hogvm`'s `exec` gets;
//! - `median_program_us`: a `quill_hog::Program` decoded once and run `ITER` times, as a host that
//!   runs one transformation on every event would.
//!
//! Both start from the globals JSON. `--program-only` skips the first (for profiling).

use std::hint::black_box;
use std::time::Instant;

use quill_hog::{run_bytecode, ExecOptions, Outcome, Program};

fn main() {
    let mut args = std::env::args().skip(1);
    let mut positional = Vec::new();
    let mut globals = None;
    let mut rounds: usize = 7;
    let mut program_only = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--globals" => {
                let path = args.next().expect("--globals needs a file");
                let text = std::fs::read_to_string(&path).expect("read globals");
                globals = Some(serde_json::from_str(&text).expect("globals are JSON"));
            }
            "--program-only" => program_only = true,
            "--rounds" => {
                rounds = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("--rounds needs a number");
            }
            _ => positional.push(a),
        }
    }
    let [file, iter] = positional.as_slice() else {
        eprintln!("usage: hog_bench FILE.json ITER [--globals G.json] [--rounds N]");
        std::process::exit(2);
    };
    let iter: u32 = iter.parse().expect("ITER is a number");
    let text = std::fs::read_to_string(file).expect("read bytecode");
    let bytecode: serde_json::Value = serde_json::from_str(&text).expect("bytecode is JSON");
    let options = ExecOptions {
        globals,
        ..ExecOptions::default()
    };

    match run_bytecode(&bytecode, &options) {
        Ok(r) => match r.outcome {
            Outcome::Finished(v) => {
                println!("result {v}");
                println!("ops {}", r.ops);
            }
            Outcome::Suspended { function, .. } => panic!("suspended on {function}"),
        },
        Err(e) => panic!("{}", quill_hog::format_error(&e.error)),
    }

    let program = Program::new(&bytecode).expect("bytecode decodes");
    let mut json_us = Vec::with_capacity(rounds);
    let mut program_us = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        for _ in 0..iter {
            if program_only {
                break;
            }
            black_box(run_bytecode(black_box(&bytecode), &options).is_ok());
        }
        json_us.push(start.elapsed().as_secs_f64() * 1e6 / f64::from(iter));
        let start = Instant::now();
        for _ in 0..iter {
            black_box(black_box(&program).run(&options).is_ok());
        }
        program_us.push(start.elapsed().as_secs_f64() * 1e6 / f64::from(iter));
    }
    report("", &mut json_us);
    report("_program", &mut program_us);
}

fn report(label: &str, times: &mut [f64]) {
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let all: Vec<String> = times.iter().map(|t| format!("{t:.2}")).collect();
    println!("median{label}_us {median:.3}");
    println!("rounds{label}_us {}", all.join(" "));
}
