//! The HogVM: executes v1 bytecode with limits, and suspends at async calls.
//!
//! [`run`] executes a program until it finishes, fails, or calls an async function (a host
//! function named in [`ExecOptions::async_functions`], or `sleep`). At an async call it returns
//! [`Outcome::Suspended`] with a serializable [`VmState`]; the host performs the call and passes
//! the result to [`resume`]. The wall-clock budget accumulates across resumes.

mod calls;
mod exec;
mod globals;
mod lifecycle;
pub mod ops;
mod stack;
mod state;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::error::VmError;

pub(crate) use calls::new_error;
pub use state::{FrameState, StateValue, UpvalueState, VmState};

/// A synchronous host function: JSON arguments in, JSON result out; `Err` stops the VM.
pub type HostFn = Arc<dyn Fn(&[Json]) -> Result<Json, String> + Send + Sync>;

/// Execution limits (PostHog's defaults).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Wall-clock budget, across resumes.
    pub timeout: Duration,
    /// Memory estimate cap in bytes (PostHog's cost model).
    pub memory_bytes: usize,
    /// Maximum call stack depth.
    pub max_call_depth: usize,
    /// Maximum number of arguments to one call.
    pub max_args: usize,
    /// Maximum number of async calls per run.
    pub max_async_steps: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(5),
            memory_bytes: 64 * 1024 * 1024,
            max_call_depth: 1000,
            max_args: 300,
            max_async_steps: 100,
        }
    }
}

/// Options for one run.
#[derive(Clone, Default)]
pub struct ExecOptions {
    /// The limits.
    pub limits: Limits,
    /// Global variables (a JSON object), such as `event`, `person` and `inputs`.
    pub globals: Option<Json>,
    /// Host functions that run synchronously.
    pub functions: HashMap<String, HostFn>,
    /// Names of host functions that suspend the VM (such as `fetch`).
    pub async_functions: HashSet<String>,
    /// Whether `print` output is also logged through `tracing` (at debug level).
    pub trace_print: bool,
}

impl std::fmt::Debug for ExecOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecOptions")
            .field("limits", &self.limits)
            .field("globals", &self.globals)
            .field("functions", &self.functions.keys().collect::<Vec<_>>())
            .field("async_functions", &self.async_functions)
            .finish()
    }
}

/// How a run ended (when it did not fail). `T` is the return value as the run hands it back: JSON,
/// or whatever [`Program::run_with`]'s `finish` made of it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<T = Json> {
    /// The program finished with this return value.
    Finished(T),
    /// The program called an async function and waits for its result.
    Suspended {
        /// The function's name.
        function: String,
        /// Its arguments.
        args: Vec<Json>,
        /// The VM state to pass to [`resume`].
        state: Box<VmState>,
    },
}

/// The result of a run: what was printed, and how it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecResult<T = Json> {
    /// Lines printed with `print`, in order.
    pub stdout: Vec<String>,
    /// How the run ended.
    pub outcome: Outcome<T>,
    /// Operations executed so far (across resumes).
    pub ops: u64,
    /// The largest memory estimate measured, in bytes.
    pub max_mem_used: usize,
}

/// A failed run: the error, and what was printed before it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{error}")]
pub struct ExecError {
    /// What stopped the VM.
    pub error: VmError,
    /// Lines printed before the error.
    pub stdout: Vec<String>,
}

/// Runs bytecode (`["_H", 1, ...]`) from the start.
pub fn run<'a>(bytecode: &'a Json, options: &'a ExecOptions) -> Result<ExecResult, ExecError> {
    lifecycle::Vm::start(bytecode, options).and_then(|vm| vm.execute())
}

/// Bytecode decoded once, to be run many times (a transformation runs the same bytecode for every
/// event). Running a `Program` skips decoding the JSON on each run; otherwise it is the same as
/// [`run`].
///
/// A program keeps the emptied buffers of its last run (stack, frames, heap registry) for the
/// next one; clones share them.
#[derive(Clone)]
pub struct Program {
    json: std::rc::Rc<Json>,
    root: std::rc::Rc<crate::bytecode::Chunk>,
    spare: std::rc::Rc<lifecycle::SpareSlot>,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program")
            .field("json", &self.json)
            .finish_non_exhaustive()
    }
}

impl Program {
    /// Decodes bytecode (`["_H", 1, ...]`).
    pub fn new(bytecode: &Json) -> Result<Program, VmError> {
        let root = crate::bytecode::decode_program(bytecode)?;
        Ok(Program {
            json: std::rc::Rc::new(bytecode.clone()),
            root: std::rc::Rc::new(root),
            spare: std::rc::Rc::default(),
        })
    }

    /// Runs the program.
    pub fn run(&self, options: &ExecOptions) -> Result<ExecResult, ExecError> {
        self.run_with(options, crate::convert::value_to_json)
    }

    /// Runs the program and hands its return value to `finish` instead of converting it to JSON.
    ///
    /// `finish` runs before the run's containers are emptied (which breaks reference cycles), so
    /// it sees the value whole, and it may borrow the globals. A host that gets the event back
    /// can compare it with the JSON it came from ([`crate::patch::diff`]) rather than convert all
    /// of it.
    pub fn run_with<T>(
        &self,
        options: &ExecOptions,
        finish: impl FnOnce(&crate::value::Value) -> T,
    ) -> Result<ExecResult<T>, ExecError> {
        let vm = lifecycle::Vm::start_decoded(
            lifecycle::Source::Shared(self.json.clone()),
            self.root.clone(),
            options,
            Some(&self.spare),
        );
        vm.execute_with(finish)
    }
}

/// Resumes a suspended run, pushing `result` as the async function's return value.
pub fn resume(
    state: VmState,
    result: Json,
    options: &ExecOptions,
) -> Result<ExecResult, ExecError> {
    lifecycle::Vm::restore(state, result, options).and_then(|vm| vm.execute())
}
