//! The state of a run and its life: starting (fresh, decoded or restored), finishing, and
//! handing its emptied buffers to the next run of the same [`super::Program`].
//!
//! A transformation runs the same program once per event, and a run of a small program spent
//! about 8% of its time allocating and freeing its stack, frame list, heap registry and runtime.
//! A [`Spare`] keeps those buffers, emptied, between runs: each is reset to exactly what a new one
//! holds (the tests in `hog/tests/program_reuse.rs` compare reused runs with fresh ones).

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use super::state::{self, VmState};
use super::{ExecError, ExecOptions, ExecResult, Outcome};
use crate::bytecode::{decode_program, Chunk};
use crate::convert::{json_to_value, value_to_json};
use crate::error::VmError;
use crate::runtime::Runtime;
use crate::value::{ChunkRef, Closure, UpvalueCell, Value};

pub(super) struct Frame {
    pub chunk: ChunkRef,
    pub code: Rc<Chunk>,
    pub ip: usize,
    pub stack_start: usize,
    pub closure: Option<Rc<Closure>>,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct TryFrame {
    pub call_depth: usize,
    pub stack_len: usize,
    pub catch_ip: usize,
}

/// The bytecode JSON, kept only to be saved in the state of a suspended run.
pub(super) enum Source<'o> {
    Borrowed(&'o Json),
    Shared(Rc<Json>),
}

impl Source<'_> {
    pub fn json(&self) -> &Json {
        match self {
            Source::Borrowed(j) => j,
            Source::Shared(j) => j,
        }
    }
}

/// Initial stack capacity: most programs stay below it, so runs don't regrow the stack.
const STACK_CAPACITY: usize = 64;

/// A stack kept for the next run is cut back to this capacity (in values), so one deep run does
/// not keep a large buffer alive for the life of the program.
const MAX_SPARE_STACK: usize = 4096;

/// The buffers of a finished run, emptied, for the next run of the same program.
pub(super) struct Spare {
    rt: Runtime,
    stack: Vec<Value>,
    frames: Vec<Frame>,
    open_ups: Vec<(usize, Rc<UpvalueCell>)>,
    tries: Vec<TryFrame>,
}

/// Where a program keeps its [`Spare`] between runs. A `Cell`: a run takes the spare (a run
/// started while another run of the same program is still going finds none and allocates).
pub(super) type SpareSlot = Cell<Option<Spare>>;

pub(super) struct Vm<'o> {
    pub rt: Runtime,
    pub root_json: Source<'o>,
    pub root: Rc<Chunk>,
    pub stack: Vec<Value>,
    pub frames: Vec<Frame>,
    pub open_ups: Vec<(usize, Rc<UpvalueCell>)>,
    pub tries: Vec<TryFrame>,
    pub opts: &'o ExecOptions,
    pub ops: u64,
    pub async_steps: usize,
    pub start: Instant,
    pub prior: Duration,
    /// The lengths of the host functions' names (`calls::host_fn`).
    pub host_lengths: u64,
    /// Where the buffers go when the run ends (runs of a [`super::Program`]).
    home: Option<&'o SpareSlot>,
}

pub(super) enum Step {
    Done(Value),
    Suspend(String, Vec<Value>),
}

fn fail(error: VmError) -> ExecError {
    ExecError {
        error,
        stdout: Vec::new(),
    }
}

impl<'o> Vm<'o> {
    pub fn start(bytecode: &'o Json, opts: &'o ExecOptions) -> Result<Self, ExecError> {
        let root = Rc::new(decode_program(bytecode).map_err(fail)?);
        Ok(Vm::start_decoded(
            Source::Borrowed(bytecode),
            root,
            opts,
            None,
        ))
    }

    /// Starts a run of bytecode that is already decoded (see [`super::Program`]), with the
    /// buffers left in `home` by an earlier run, if any, and leaving them there when it ends.
    pub fn start_decoded(
        root_json: Source<'o>,
        root: Rc<Chunk>,
        opts: &'o ExecOptions,
        home: Option<&'o SpareSlot>,
    ) -> Self {
        let mut vm = Vm::empty(root_json, root.clone(), opts, home);
        vm.frames.push(Frame {
            chunk: ChunkRef::Root,
            code: root,
            ip: 0,
            stack_start: 0,
            closure: None,
        });
        vm
    }

    fn empty(
        root_json: Source<'o>,
        root: Rc<Chunk>,
        opts: &'o ExecOptions,
        home: Option<&'o SpareSlot>,
    ) -> Self {
        let spare = home.and_then(Cell::take);
        let (rt, stack, frames, open_ups, tries) = match spare {
            Some(s) => {
                let Spare {
                    mut rt,
                    stack,
                    frames,
                    open_ups,
                    tries,
                } = s;
                rt.reset(opts.limits.memory_bytes, opts.trace_print);
                (rt, stack, frames, open_ups, tries)
            }
            None => (
                Runtime::new(opts.limits.memory_bytes, opts.trace_print),
                Vec::with_capacity(STACK_CAPACITY),
                Vec::with_capacity(4),
                Vec::new(),
                Vec::new(),
            ),
        };
        Vm {
            rt,
            root_json,
            root,
            stack,
            frames,
            open_ups,
            tries,
            opts,
            ops: 0,
            async_steps: 0,
            start: Instant::now(),
            prior: Duration::ZERO,
            host_lengths: super::calls::host_name_lengths(opts),
            home,
        }
    }

    pub fn restore(
        mut state: VmState,
        result: Json,
        opts: &'o ExecOptions,
    ) -> Result<Self, ExecError> {
        let root = Rc::new(decode_program(&state.bytecode).map_err(fail)?);
        let bytecode = std::mem::take(&mut state.bytecode);
        let mut vm = Vm::empty(Source::Shared(Rc::new(bytecode)), root, opts, None);
        state::restore_into(&mut vm, &state).map_err(fail)?;
        let v = json_to_value(&mut vm.rt.heap, &result);
        vm.stack.push(v);
        Ok(vm)
    }

    pub fn execute(self) -> Result<ExecResult, ExecError> {
        self.execute_with(value_to_json)
    }

    /// Runs to the end; `finish` gets the return value while its containers are still whole.
    pub fn execute_with<T>(
        mut self,
        finish: impl FnOnce(&Value) -> T,
    ) -> Result<ExecResult<T>, ExecError> {
        let result = match self.run_loop() {
            Ok(Step::Done(v)) => Ok(ExecResult {
                stdout: std::mem::take(&mut self.rt.stdout),
                outcome: Outcome::Finished(finish(&v)),
                ops: self.ops,
                max_mem_used: self.rt.heap.max_seen,
            }),
            Ok(Step::Suspend(function, args)) => {
                let args = args.iter().map(value_to_json).collect();
                let st = state::capture(&self);
                Ok(ExecResult {
                    stdout: std::mem::take(&mut self.rt.stdout),
                    outcome: Outcome::Suspended {
                        function,
                        args,
                        state: Box::new(st),
                    },
                    ops: self.ops,
                    max_mem_used: self.rt.heap.max_seen,
                })
            }
            Err(error) => Err(ExecError {
                error,
                stdout: std::mem::take(&mut self.rt.stdout),
            }),
        };
        self.recycle();
        result
    }

    /// Ends the run: empties every container (breaking reference cycles, as dropping the heap
    /// would) and then the stack, and leaves the emptied buffers in the program's slot.
    fn recycle(self) {
        let Vm {
            mut rt,
            mut stack,
            mut frames,
            mut open_ups,
            mut tries,
            home,
            ..
        } = self;
        let Some(home) = home else { return };
        // The same order as dropping the VM: the heap's containers first, then the stack.
        rt.heap.clear();
        stack.clear();
        frames.clear();
        open_ups.clear();
        tries.clear();
        stack.shrink_to(MAX_SPARE_STACK);
        home.set(Some(Spare {
            rt,
            stack,
            frames,
            open_ups,
            tries,
        }));
    }
}
