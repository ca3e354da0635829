//! `quill hog run|compile|exec`.

use anyhow::{bail, Context as _};
use quill_hog::{ExecOptions, HogError};

use crate::cli::HogCommand;

pub fn run(command: &HogCommand) -> anyhow::Result<()> {
    let read = |path: &std::path::Path| {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
    };
    match command {
        HogCommand::Compile { file } => {
            let bytecode = quill_hog::compile_source(&read(file)?)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            println!("{bytecode}");
            Ok(())
        }
        HogCommand::Run { file } => match quill_hog::compile_source(&read(file)?) {
            Ok(bytecode) => execute(&bytecode),
            Err(e) => {
                println!("{}", HogError::Compile(e).to_hog_string());
                bail!("{} does not compile", file.display())
            }
        },
        HogCommand::Exec { file } => {
            let bytecode: serde_json::Value = serde_json::from_str(&read(file)?)
                .with_context(|| format!("{} is not JSON", file.display()))?;
            execute(&bytecode)
        }
    }
}

fn execute(bytecode: &serde_json::Value) -> anyhow::Result<()> {
    match quill_hog::run_bytecode(bytecode, &ExecOptions::default()) {
        Ok(result) => {
            for line in result.stdout {
                println!("{line}");
            }
            Ok(())
        }
        Err(e) => {
            for line in e.stdout {
                println!("{line}");
            }
            println!("{}", quill_hog::format_error(&e.error));
            // The program's error is already printed in Hog's form; exit non-zero quietly.
            std::process::exit(1);
        }
    }
}
