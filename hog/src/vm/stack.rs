//! The value stack, captured variables and the clock of a run.

use std::rc::Rc;
use std::time::Duration;

use super::lifecycle::Vm;
use crate::error::VmError;
use crate::heap::slot_cost;
use crate::value::{Upvalue, UpvalueCell, Value};

impl Vm<'_> {
    pub fn elapsed(&self) -> Duration {
        self.prior + self.start.elapsed()
    }

    pub(super) fn check_time(&self) -> Result<(), VmError> {
        if self.elapsed() > self.opts.limits.timeout {
            return Err(VmError::Timeout {
                seconds: self.opts.limits.timeout.as_secs_f64(),
                ops: self.ops,
            });
        }
        Ok(())
    }

    pub(super) fn pop(&mut self) -> Result<Value, VmError> {
        self.stack.pop().ok_or_else(|| {
            VmError::exception("Invalid HogQL bytecode, stack is empty, can not pop")
        })
    }

    /// The two values on top of the stack (the top one second), read where they lie: a binary
    /// instruction reads its operands in place rather than popping (moving) them first, and
    /// then puts its result where they were with [`Vm::replace_top_two`].
    #[inline(always)]
    pub(super) fn top_two(&self) -> Result<(&Value, &Value), VmError> {
        match self.stack.as_slice() {
            [.., below, top] => Ok((below, top)),
            _ => Err(VmError::exception(
                "Invalid HogQL bytecode, stack is empty, can not pop",
            )),
        }
    }

    /// Replaces the two values on top of the stack with `v`: the stack and the memory charge
    /// end as popping both and pushing `v` would leave them. The two old values are dropped
    /// after the charge, as popped operands were (a measurement still sees what they hold).
    #[inline(always)]
    pub(super) fn replace_top_two(&mut self, v: Value) -> Result<(), VmError> {
        let cost = slot_cost(&v);
        let top = self.stack.pop();
        let below = match self.stack.last_mut() {
            Some(slot) => Some(std::mem::replace(slot, v)),
            None => {
                self.stack.push(v);
                None
            }
        };
        let charged = self.rt.heap.charge(cost, &self.stack);
        drop((top, below));
        charged
    }

    pub(super) fn pop_n(&mut self, n: usize) -> Result<Vec<Value>, VmError> {
        let at = self.split_point(n)?;
        Ok(self.stack.split_off(at))
    }

    /// Where the top `n` values start, with upvalues pointing into them closed: the caller
    /// takes those values off the stack.
    pub(super) fn split_point(&mut self, n: usize) -> Result<usize, VmError> {
        if n > self.stack.len() {
            return Err(VmError::exception("Stack underflow"));
        }
        let at = self.stack.len() - n;
        self.close_upvalues(at);
        Ok(at)
    }

    // Always inlined: called out of line, the value goes through memory and the copy stalls
    // (seen in profiles of `cpu.hog`).
    #[inline(always)]
    pub(super) fn push(&mut self, v: Value) -> Result<(), VmError> {
        let cost = slot_cost(&v);
        self.stack.push(v);
        self.rt.heap.charge(cost, &self.stack)
    }

    /// Pushes the value `make` builds, making room first: `Vec::push` keeps the value in a
    /// temporary across its (rarely taken) growing call and copies it in afterwards, and that
    /// copy stalls on reading back a temporary written piece by piece.
    #[inline(always)]
    pub(super) fn push_with(&mut self, make: impl FnOnce() -> Value) -> Result<(), VmError> {
        if self.stack.len() == self.stack.capacity() {
            self.stack.reserve(1);
        }
        let v = make();
        let cost = slot_cost(&v);
        match self.stack.spare_capacity_mut().first_mut() {
            Some(slot) => {
                slot.write(v);
                let len = self.stack.len() + 1;
                // SAFETY: the slot at the old length was just written.
                unsafe { self.stack.set_len(len) }
            }
            None => self.stack.push(v),
        }
        self.rt.heap.charge(cost, &self.stack)
    }

    /// Pushes a copy of the value in slot `at` (below the stack's length), copied whole from
    /// slot to slot. `GET_LOCAL` is the commonest instruction: `Vec::extend_from_within` (used
    /// before) is an out-of-line call, and a clone into a local was written to a temporary piece
    /// by piece and read back in other pieces, which stalls (seen in profiles).
    #[inline(always)]
    pub(super) fn push_copy(&mut self, at: usize) -> Result<(), VmError> {
        let len = self.stack.len();
        let Some(v) = self.stack.get(at) else {
            return Err(VmError::exception("Invalid local index"));
        };
        v.retain_shares();
        if len == self.stack.capacity() {
            self.stack.reserve(1);
        }
        let base = self.stack.as_mut_ptr();
        // SAFETY: `at < len`, so the source slot is initialized; after the reserve the slot at
        // `len` is allocated and unused, so the two do not overlap. `retain_shares` raised the
        // counts the copy owns, so the bitwise copy is a clone, and the length grows only once
        // the new slot is written.
        unsafe {
            std::ptr::copy_nonoverlapping(base.add(at), base.add(len), 1);
            self.stack.set_len(len + 1);
        }
        let cost = self.stack.last().map_or(0, slot_cost);
        self.rt.heap.charge(cost, &self.stack)
    }

    pub(super) fn charge(&mut self, bytes: usize) -> Result<(), VmError> {
        self.rt.heap.charge(bytes, &self.stack)
    }

    pub(super) fn close_upvalues(&mut self, from: usize) {
        while let Some((loc, _)) = self.open_ups.last() {
            if *loc < from {
                break;
            }
            if let Some((loc, cell)) = self.open_ups.pop() {
                let v = self.stack.get(loc).cloned().unwrap_or(Value::Null);
                *cell.0.borrow_mut() = Upvalue::Closed(v);
            }
        }
    }

    pub(super) fn capture_upvalue(&mut self, loc: usize) -> Result<Rc<UpvalueCell>, VmError> {
        if loc > self.stack.len() {
            return Err(VmError::exception(format!(
                "Invalid upvalue location: {loc}"
            )));
        }
        match self.open_ups.binary_search_by_key(&loc, |(l, _)| *l) {
            Ok(i) => Ok(self.open_ups[i].1.clone()),
            Err(i) => {
                let cell = self.rt.heap.upvalue(Upvalue::Open(loc));
                self.open_ups.insert(i, (loc, cell.clone()));
                Ok(cell)
            }
        }
    }

    pub(super) fn upvalue_cell(&self, i: usize) -> Result<Rc<UpvalueCell>, VmError> {
        self.frames
            .last()
            .and_then(|f| f.closure.as_ref())
            .and_then(|c| c.upvalues.get(i))
            .cloned()
            .ok_or_else(|| VmError::exception(format!("Invalid upvalue index: {i}")))
    }
}
