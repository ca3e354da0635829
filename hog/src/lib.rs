//! # quill-hog: the Hog language
//!
//! Hog is PostHog's small language for transformations and destinations. This crate compiles Hog
//! source to HogVM v1 bytecode (`["_H", 1, ...]`) that PostHog's own VM runs unchanged, and runs
//! bytecode (whoever compiled it) in a VM with limits: wall-clock time, a memory estimate, call
//! depth, argument count and async calls. Async host functions suspend the VM into a serializable
//! [`VmState`] that the host resumes with the call's result.
//!
//! It depends on no other Quill crate.
//!
//! ```
//! let bytecode = quill_hog::compile_source("print(f'hello {1 + 1}')").unwrap();
//! let result = quill_hog::run_bytecode(&bytecode, &quill_hog::ExecOptions::default()).unwrap();
//! assert_eq!(result.stdout, vec!["hello 2".to_string()]);
//! ```
#![deny(missing_docs)]

pub mod ast;
pub mod bytecode;
pub mod compiler;
pub mod convert;
pub mod dict;
pub mod error;
pub mod fasthash;
pub mod heap;
pub mod lexer;
pub mod parser;
pub mod patch;
pub mod print;
pub mod runtime;
pub mod stl;
pub mod string;
pub mod value;
pub mod vm;

pub use compiler::compile_source;
pub use error::{CompileError, HogError, VmError};
pub use vm::{
    resume, run as run_bytecode, ExecError, ExecOptions, ExecResult, HostFn, Limits, Outcome,
    Program, VmState,
};

pub(crate) use vm::new_error as vm_new_error;

/// Compiles and runs Hog source. Printed lines are in the result's `stdout` (or in the error's).
pub fn run_source(src: &str, options: &ExecOptions) -> Result<ExecResult, ExecError> {
    let bytecode = compile_source(src).map_err(|e| ExecError {
        error: VmError::Exception(format!("Syntax error: {e}")),
        stdout: Vec::new(),
    })?;
    run_bytecode(&bytecode, options)
}

/// Formats an error as PostHog prints an uncaught one: `Type('message')`.
pub fn format_error(error: &VmError) -> String {
    error.to_hog_string()
}
