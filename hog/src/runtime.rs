//! What the standard library may touch while the VM runs: the heap, the captured output and a
//! cache of compiled regexes.

use std::collections::HashMap;

use regex::Regex;

use crate::error::VmError;
use crate::heap::Heap;

/// Biggest compiled regex program accepted (bytes), so patterns can't exhaust memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// How many compiled regexes are cached per run.
const REGEX_CACHE: usize = 64;

/// Per-run state shared by the VM and the standard library.
pub struct Runtime {
    /// The allocation registry and memory estimate.
    pub heap: Heap,
    /// Lines printed so far.
    pub stdout: Vec<String>,
    /// Whether printed lines also go to `tracing`.
    pub trace_print: bool,
    stdout_bytes: usize,
    memory_limit: usize,
    regexes: HashMap<String, Regex>,
}

impl Runtime {
    /// A runtime with a memory cap.
    pub fn new(memory_limit: usize, trace_print: bool) -> Self {
        Runtime {
            heap: Heap::new(memory_limit),
            stdout: Vec::new(),
            trace_print,
            stdout_bytes: 0,
            memory_limit,
            regexes: HashMap::new(),
        }
    }

    /// Makes this runtime (of a finished run, whose heap was cleared) what `Runtime::new` would
    /// make, keeping its buffers.
    pub(crate) fn reset(&mut self, memory_limit: usize, trace_print: bool) {
        self.heap.reset(memory_limit);
        self.stdout.clear();
        self.trace_print = trace_print;
        self.stdout_bytes = 0;
        self.memory_limit = memory_limit;
        // Compiled regexes can be large (up to `REGEX_SIZE_LIMIT`), and a program is kept for a
        // long time: they are not kept past a run, as before.
        self.regexes.clear();
    }

    /// Charges an allocation against the memory cap.
    pub fn charge(&mut self, bytes: usize) -> Result<(), VmError> {
        self.heap.charge(bytes, &[])
    }

    /// Compiles (or fetches) a regex.
    pub fn regex(&mut self, pattern: &str) -> Result<&Regex, VmError> {
        if !self.regexes.contains_key(pattern) {
            let re = regex::RegexBuilder::new(pattern)
                .size_limit(REGEX_SIZE_LIMIT)
                .dfa_size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| VmError::exception(format!("Invalid regex '{pattern}': {e}")))?;
            if self.regexes.len() >= REGEX_CACHE {
                self.regexes.clear();
            }
            self.regexes.insert(pattern.to_string(), re);
        }
        self.regexes
            .get(pattern)
            .ok_or_else(|| VmError::exception("regex cache failure"))
    }

    /// Records a printed line.
    pub fn print(&mut self, line: String) -> Result<(), VmError> {
        self.stdout_bytes = self
            .stdout_bytes
            .saturating_add(line.len() + crate::heap::UNIT);
        if self.memory_limit > 0 && self.stdout_bytes > self.memory_limit {
            return Err(VmError::MemoryLimit {
                limit: self.memory_limit,
                used: self.stdout_bytes,
            });
        }
        if self.trace_print {
            tracing::debug!(target: "quill_hog::print", "{line}");
        }
        self.stdout.push(line);
        Ok(())
    }
}
