//! Compiler: syntax tree → HogVM v1 bytecode (`["_H", 1, ...]`), as a JSON array.
//!
//! Locals live on the VM stack: a `let` leaves its value in the next slot, and leaving a scope pops
//! the slots (or closes them with `CLOSE_UPVALUE` when a closure captured them). Functions and
//! lambdas compile inline as `CALLABLE` + body + `CLOSURE`, with upvalues resolved through the
//! enclosing compilers, so PostHog's own VM runs the output unchanged. Binary operators push the
//! right operand first. Jumps are relative to the element after their operand.

use serde_json::{json, Value as Json};

use crate::ast::{ArithOp, Catch, CmpOp, Expr, ExprKind, LambdaBody, Pos, Stmt, StmtKind};
use crate::bytecode::op;
use crate::error::CompileError;
use crate::parser::parse_program;

/// Compiles Hog source to bytecode JSON (`["_H", 1, ...]`).
pub fn compile_source(src: &str) -> Result<Json, CompileError> {
    let program = parse_program(src)?;
    compile_program(&program)
}

/// Compiles a parsed program to bytecode JSON.
pub fn compile_program(program: &[Stmt]) -> Result<Json, CompileError> {
    let mut fc = FnCompiler::default();
    let mut out: Vec<Json> = vec![json!("_H"), json!(1)];
    fc.start_scope();
    for s in program {
        fc.stmt(s, &mut out)?;
    }
    fc.end_scope(&mut out);
    Ok(Json::Array(out))
}

/// Compiles the body of a bytecode-level function whose arguments are already on the stack
/// (used for the standard library functions written in Hog). Returns the ops without a header.
pub(crate) fn compile_function_body(
    params: &[&str],
    body: &[Stmt],
) -> Result<Vec<Json>, CompileError> {
    let mut fc = FnCompiler::default();
    for p in params {
        fc.declare(p, Pos::default())?;
    }
    let mut out = Vec::new();
    let mut body = body.to_vec();
    if !matches!(body.last().map(|s| &s.kind), Some(StmtKind::Return(_))) {
        body.push(Stmt {
            kind: StmtKind::Return(None),
            pos: Pos::default(),
        });
    }
    fc.block(&body, &mut out)?;
    Ok(out)
}

#[derive(Debug, Clone)]
struct Local {
    name: String,
    depth: usize,
    captured: bool,
}

#[derive(Debug, Clone, PartialEq)]
struct Upvalue {
    index: usize,
    is_local: bool,
}

/// Compiler state for one function body (the program itself is one too).
#[derive(Default)]
struct FnCompiler {
    locals: Vec<Local>,
    upvalues: Vec<Upvalue>,
    depth: usize,
    enclosing: Vec<Frame>,
}

/// The locals and upvalues of an enclosing function while an inner one compiles.
struct Frame {
    locals: Vec<Local>,
    upvalues: Vec<Upvalue>,
}

fn err<T>(msg: impl Into<String>, pos: Pos) -> Result<T, CompileError> {
    Err(CompileError::new(msg, pos.line, pos.col))
}

impl FnCompiler {
    fn start_scope(&mut self) {
        self.depth += 1;
    }

    fn end_scope(&mut self, out: &mut Vec<Json>) {
        self.depth = self.depth.saturating_sub(1);
        while let Some(l) = self.locals.last() {
            if l.depth <= self.depth {
                break;
            }
            out.push(json!(if l.captured {
                op::CLOSE_UPVALUE
            } else {
                op::POP
            }));
            self.locals.pop();
        }
    }

    fn declare(&mut self, name: &str, pos: Pos) -> Result<usize, CompileError> {
        for l in self.locals.iter().rev() {
            if l.depth < self.depth {
                break;
            }
            if l.name == name {
                return err(
                    format!("Variable `{name}` already declared in this scope"),
                    pos,
                );
            }
        }
        self.locals.push(Local {
            name: name.to_string(),
            depth: self.depth,
            captured: false,
        });
        Ok(self.locals.len() - 1)
    }

    fn resolve_local(&self, name: &str) -> Option<usize> {
        self.locals.iter().rposition(|l| l.name == name)
    }

    /// Resolves `name` as an upvalue through the chain of enclosing functions.
    fn resolve_upvalue(&mut self, name: &str) -> Option<usize> {
        let n = self.enclosing.len();
        if n == 0 {
            return None;
        }
        resolve_in_chain(&mut self.enclosing, n - 1, name, &mut self.upvalues)
    }

    fn emit_get(&mut self, name: &str, out: &mut Vec<Json>) -> bool {
        if let Some(i) = self.resolve_local(name) {
            out.extend([json!(op::GET_LOCAL), json!(i)]);
            return true;
        }
        if let Some(i) = self.resolve_upvalue(name) {
            out.extend([json!(op::GET_UPVALUE), json!(i)]);
            return true;
        }
        false
    }

    // ---- statements -------------------------------------------------------------------------

    fn block(&mut self, stmts: &[Stmt], out: &mut Vec<Json>) -> Result<(), CompileError> {
        self.start_scope();
        for s in stmts {
            self.stmt(s, out)?;
        }
        self.end_scope(out);
        Ok(())
    }

    fn stmt(&mut self, s: &Stmt, out: &mut Vec<Json>) -> Result<(), CompileError> {
        match &s.kind {
            StmtKind::Empty => {}
            StmtKind::Let(name, value) => {
                match value {
                    Some(e) => self.expr(e, out)?,
                    None => out.push(json!(op::NULL)),
                }
                self.declare(name, s.pos)?;
            }
            StmtKind::Assign(target, value) => self.assign(target, value, s.pos, out)?,
            StmtKind::Expr(e) => {
                self.expr(e, out)?;
                out.push(json!(op::POP));
            }
            StmtKind::Return(value) => {
                match value {
                    Some(e) => self.expr(e, out)?,
                    None => out.push(json!(op::NULL)),
                }
                out.push(json!(op::RETURN));
            }
            StmtKind::Throw(e) => {
                self.expr(e, out)?;
                out.push(json!(op::THROW));
            }
            StmtKind::Block(stmts) => self.block(stmts, out)?,
            StmtKind::If(cond, then, other) => {
                self.expr(cond, out)?;
                let mut then_ops = Vec::new();
                self.stmt(then, &mut then_ops)?;
                let mut else_ops = Vec::new();
                if let Some(o) = other {
                    self.stmt(o, &mut else_ops)?;
                }
                let has_else = other.is_some();
                out.extend([
                    json!(op::JUMP_IF_FALSE),
                    json!(then_ops.len() + if has_else { 2 } else { 0 }),
                ]);
                out.extend(then_ops);
                if has_else {
                    out.extend([json!(op::JUMP), json!(else_ops.len())]);
                    out.extend(else_ops);
                }
            }
            StmtKind::While(cond, body) => {
                let mut ops = Vec::new();
                self.expr(cond, &mut ops)?;
                let mut body_ops = Vec::new();
                self.stmt(body, &mut body_ops)?;
                ops.extend([json!(op::JUMP_IF_FALSE), json!(body_ops.len() + 2)]);
                ops.extend(body_ops);
                let back = -(ops.len() as i64) - 2;
                ops.extend([json!(op::JUMP), json!(back)]);
                out.extend(ops);
            }
            StmtKind::For {
                init,
                cond,
                step,
                body,
            } => self.for_loop(init.as_deref(), cond.as_ref(), step.as_deref(), body, out)?,
            StmtKind::ForIn {
                key,
                value,
                expr,
                body,
            } => self.for_in(key.as_deref(), value, expr, body, s.pos, out)?,
            StmtKind::Fun(name, params, body) => {
                self.declare(name, s.pos)?;
                self.function(name, params, body, s.pos, out)?;
            }
            StmtKind::Try(body, catches) => self.try_catch(body, catches, s.pos, out)?,
        }
        Ok(())
    }

    fn for_loop(
        &mut self,
        init: Option<&Stmt>,
        cond: Option<&Expr>,
        step: Option<&Stmt>,
        body: &Stmt,
        out: &mut Vec<Json>,
    ) -> Result<(), CompileError> {
        self.start_scope();
        if let Some(i) = init {
            self.stmt(i, out)?;
        }
        let mut cond_ops = Vec::new();
        match cond {
            Some(c) => self.expr(c, &mut cond_ops)?,
            None => cond_ops.push(json!(op::TRUE)),
        }
        let mut body_ops = Vec::new();
        self.stmt(body, &mut body_ops)?;
        let mut step_ops = Vec::new();
        if let Some(s) = step {
            self.stmt(s, &mut step_ops)?;
        }
        let skip = body_ops.len() + step_ops.len() + 2;
        let back = -((step_ops.len() + body_ops.len() + 2 + cond_ops.len() + 2) as i64);
        out.extend(cond_ops);
        out.extend([json!(op::JUMP_IF_FALSE), json!(skip)]);
        out.extend(body_ops);
        out.extend(step_ops);
        out.extend([json!(op::JUMP), json!(back)]);
        self.end_scope(out);
        Ok(())
    }

    fn for_in(
        &mut self,
        key: Option<&str>,
        value: &str,
        expr: &Expr,
        body: &Stmt,
        pos: Pos,
        out: &mut Vec<Json>,
    ) -> Result<(), CompileError> {
        self.start_scope();
        self.expr(expr, out)?;
        let expr_local = self.declare("__H_expr_H__", pos)?;
        let keys_local = match key {
            Some(_) => {
                out.extend([
                    json!(op::GET_LOCAL),
                    json!(expr_local),
                    json!(op::CALL_GLOBAL),
                    json!("keys"),
                    json!(1),
                ]);
                Some(self.declare("__H_keys_H__", pos)?)
            }
            None => None,
        };
        out.extend([
            json!(op::GET_LOCAL),
            json!(expr_local),
            json!(op::CALL_GLOBAL),
            json!("values"),
            json!(1),
        ]);
        let values_local = self.declare("__H_values_H__", pos)?;
        out.extend([json!(op::INTEGER), json!(1)]);
        let index_local = self.declare("__H_index_H__", pos)?;
        out.extend([
            json!(op::GET_LOCAL),
            json!(values_local),
            json!(op::CALL_GLOBAL),
            json!("length"),
            json!(1),
        ]);
        let limit_local = self.declare("__H_limit_H__", pos)?;
        let key_local = match key {
            Some(k) => {
                out.push(json!(op::NULL));
                Some(self.declare(k, pos)?)
            }
            None => None,
        };
        out.push(json!(op::NULL));
        let value_local = self.declare(value, pos)?;

        let cond = [
            json!(op::GET_LOCAL),
            json!(limit_local),
            json!(op::GET_LOCAL),
            json!(index_local),
            json!(op::LT_EQ),
        ];
        let mut body_ops = Vec::new();
        if let (Some(kl), Some(kv)) = (keys_local, key_local) {
            body_ops.extend([
                json!(op::GET_LOCAL),
                json!(kl),
                json!(op::GET_LOCAL),
                json!(index_local),
                json!(op::GET_PROPERTY),
                json!(op::SET_LOCAL),
                json!(kv),
            ]);
        }
        body_ops.extend([
            json!(op::GET_LOCAL),
            json!(values_local),
            json!(op::GET_LOCAL),
            json!(index_local),
            json!(op::GET_PROPERTY),
            json!(op::SET_LOCAL),
            json!(value_local),
        ]);
        self.stmt(body, &mut body_ops)?;
        let step = [
            json!(op::GET_LOCAL),
            json!(index_local),
            json!(op::INTEGER),
            json!(1),
            json!(op::PLUS),
            json!(op::SET_LOCAL),
            json!(index_local),
        ];
        let skip = body_ops.len() + step.len() + 2;
        let back = -((step.len() + body_ops.len() + 2 + cond.len() + 2) as i64);
        out.extend(cond);
        out.extend([json!(op::JUMP_IF_FALSE), json!(skip)]);
        out.extend(body_ops);
        out.extend(step);
        out.extend([json!(op::JUMP), json!(back)]);
        self.end_scope(out);
        Ok(())
    }

    fn try_catch(
        &mut self,
        body: &[Stmt],
        catches: &[Catch],
        pos: Pos,
        out: &mut Vec<Json>,
    ) -> Result<(), CompileError> {
        let mut try_ops = Vec::new();
        self.block(body, &mut try_ops)?;
        out.extend([json!(op::TRY), json!(try_ops.len() + 4)]); // counted from the operand
        out.extend(try_ops);
        out.push(json!(op::POP_TRY));

        // The thrown error sits in a hidden local `e`, its type in a hidden local `type`.
        let mut c_ops: Vec<Json> = Vec::new();
        let mut end_jumps = Vec::new();
        self.start_scope();
        let e_local = self.declare("e", pos)?;
        c_ops.extend([
            json!(op::GET_LOCAL),
            json!(e_local),
            json!(op::STRING),
            json!("type"),
            json!(op::GET_PROPERTY),
        ]);
        let type_local = self.declare("type", pos)?;
        for c in catches {
            let var = c.var.as_deref().unwrap_or("e");
            let kind = c.kind.as_deref().unwrap_or("Error");
            self.start_scope();
            let mut handler = Vec::new();
            if var != "e" {
                self.declare(var, pos)?;
                handler.extend([json!(op::GET_LOCAL), json!(e_local)]);
            }
            self.block(&c.body, &mut handler)?;
            let mut end = Vec::new();
            self.end_scope(&mut end);
            handler.extend(end.iter().cloned());
            if kind == "Error" {
                c_ops.extend(handler);
                c_ops.extend([json!(op::JUMP), Json::Null]);
                end_jumps.push((c_ops.len() - 1, end.len()));
            } else {
                c_ops.extend([
                    json!(op::STRING),
                    json!(kind),
                    json!(op::GET_LOCAL),
                    json!(type_local),
                    json!(op::EQ),
                    json!(op::JUMP_IF_FALSE),
                    json!(handler.len() + 2),
                ]);
                c_ops.extend(handler);
                c_ops.extend([json!(op::JUMP), Json::Null]);
                end_jumps.push((c_ops.len() - 1, end.len()));
            }
        }
        // nothing matched: re-throw
        c_ops.extend([json!(op::POP), json!(op::THROW)]);
        let mut end = Vec::new();
        self.end_scope(&mut end);
        c_ops.extend(end.iter().cloned());
        let total = c_ops.len();
        for (at, _) in end_jumps {
            c_ops[at] = json!(total - at - end.len() - 1);
        }
        out.extend([json!(op::JUMP), json!(c_ops.len())]);
        out.extend(c_ops);
        Ok(())
    }

    fn function(
        &mut self,
        name: &str,
        params: &[String],
        body: &[Stmt],
        pos: Pos,
        out: &mut Vec<Json>,
    ) -> Result<(), CompileError> {
        let mut body = body.to_vec();
        if !matches!(body.last().map(|s| &s.kind), Some(StmtKind::Return(_))) {
            body.push(Stmt {
                kind: StmtKind::Return(None),
                pos,
            });
        }
        let block = Stmt {
            kind: StmtKind::Block(body),
            pos,
        };
        self.callable(name, params, &block, pos, out)
    }

    /// Compiles `body` as a separate function and emits `CALLABLE ... CLOSURE`.
    fn callable(
        &mut self,
        name: &str,
        params: &[String],
        body: &Stmt,
        pos: Pos,
        out: &mut Vec<Json>,
    ) -> Result<(), CompileError> {
        let mut inner = FnCompiler::default();
        for p in params {
            inner.declare(p, pos)?;
        }
        // Move our frames (and ourselves) into the inner compiler's enclosing chain.
        inner.enclosing = std::mem::take(&mut self.enclosing);
        inner.enclosing.push(Frame {
            locals: std::mem::take(&mut self.locals),
            upvalues: std::mem::take(&mut self.upvalues),
        });
        let mut body_ops = Vec::new();
        let result = inner.stmt(body, &mut body_ops);
        // Take our state back, whatever happened.
        let mine = inner.enclosing.pop();
        if let Some(f) = mine {
            self.locals = f.locals;
            self.upvalues = f.upvalues;
        }
        self.enclosing = std::mem::take(&mut inner.enclosing);
        result?;
        out.extend([
            json!(op::CALLABLE),
            json!(name),
            json!(params.len()),
            json!(inner.upvalues.len()),
            json!(body_ops.len()),
        ]);
        out.extend(body_ops);
        out.extend([json!(op::CLOSURE), json!(inner.upvalues.len())]);
        for u in &inner.upvalues {
            out.extend([json!(u.is_local), json!(u.index)]);
        }
        Ok(())
    }

    fn assign(
        &mut self,
        target: &Expr,
        value: &Expr,
        pos: Pos,
        out: &mut Vec<Json>,
    ) -> Result<(), CompileError> {
        match &target.kind {
            ExprKind::TupleIndex { obj, index, .. } => {
                self.expr(obj, out)?;
                out.extend([json!(op::INTEGER), json!(index)]);
                self.expr(value, out)?;
                out.push(json!(op::SET_PROPERTY));
            }
            ExprKind::Index { obj, key, .. } => {
                self.expr(obj, out)?;
                self.expr(key, out)?;
                self.expr(value, out)?;
                out.push(json!(op::SET_PROPERTY));
            }
            ExprKind::Field(chain) => {
                let name = &chain[0];
                let (get, set, slot) = if let Some(i) = self.resolve_local(name) {
                    (op::GET_LOCAL, op::SET_LOCAL, i)
                } else if let Some(i) = self.resolve_upvalue(name) {
                    (op::GET_UPVALUE, op::SET_UPVALUE, i)
                } else {
                    return err(
                        format!("Variable \"{name}\" not declared in this scope. Can not assign to globals."),
                        target.pos,
                    );
                };
                if chain.len() == 1 {
                    self.expr(value, out)?;
                    out.extend([json!(set), json!(slot)]);
                    return Ok(());
                }
                out.extend([json!(get), json!(slot)]);
                for el in &chain[1..chain.len() - 1] {
                    out.extend([json!(op::STRING), json!(el), json!(op::GET_PROPERTY)]);
                }
                out.extend([json!(op::STRING), json!(chain[chain.len() - 1])]);
                self.expr(value, out)?;
                out.push(json!(op::SET_PROPERTY));
            }
            _ => return err("Can not assign to this type of expression", pos),
        }
        Ok(())
    }

    // ---- expressions ------------------------------------------------------------------------

    fn expr(&mut self, e: &Expr, out: &mut Vec<Json>) -> Result<(), CompileError> {
        match &e.kind {
            ExprKind::Null => out.push(json!(op::NULL)),
            ExprKind::Bool(true) => out.push(json!(op::TRUE)),
            ExprKind::Bool(false) => out.push(json!(op::FALSE)),
            ExprKind::Int(i) => out.extend([json!(op::INTEGER), json!(i)]),
            ExprKind::Float(f) => {
                if !f.is_finite() {
                    return err("Float literal out of range", e.pos);
                }
                out.extend([json!(op::FLOAT), json!(f)])
            }
            ExprKind::Str(s) => out.extend([json!(op::STRING), json!(s)]),
            ExprKind::Field(chain) => {
                if self.emit_get(&chain[0], out) {
                    for el in &chain[1..] {
                        out.extend([json!(op::STRING), json!(el), json!(op::GET_PROPERTY)]);
                    }
                } else {
                    for el in chain.iter().rev() {
                        out.extend([json!(op::STRING), json!(el)]);
                    }
                    out.extend([json!(op::GET_GLOBAL), json!(chain.len())]);
                }
            }
            ExprKind::Index { obj, key, nullish } => {
                if let ExprKind::Int(0) = key.kind {
                    return err("Array access starts from 1", key.pos);
                }
                self.expr(obj, out)?;
                self.expr(key, out)?;
                out.push(json!(if *nullish {
                    op::GET_PROPERTY_NULLISH
                } else {
                    op::GET_PROPERTY
                }));
            }
            ExprKind::TupleIndex {
                obj,
                index,
                nullish,
            } => {
                if *index == 0 {
                    return err("Array access starts from 1", e.pos);
                }
                self.expr(obj, out)?;
                out.extend([
                    json!(op::INTEGER),
                    json!(index),
                    json!(if *nullish {
                        op::GET_PROPERTY_NULLISH
                    } else {
                        op::GET_PROPERTY
                    }),
                ]);
            }
            ExprKind::Arith(a, l, r) => {
                self.expr(r, out)?;
                self.expr(l, out)?;
                out.push(json!(match a {
                    ArithOp::Add => op::PLUS,
                    ArithOp::Sub => op::MINUS,
                    ArithOp::Mul => op::MULTIPLY,
                    ArithOp::Div => op::DIVIDE,
                    ArithOp::Mod => op::MOD,
                }));
            }
            ExprKind::Compare(c, l, r) => {
                self.expr(r, out)?;
                self.expr(l, out)?;
                out.push(json!(cmp_opcode(*c)));
            }
            ExprKind::And(items) | ExprKind::Or(items) => {
                for i in items {
                    self.expr(i, out)?;
                }
                let code = if matches!(e.kind, ExprKind::And(_)) {
                    op::AND
                } else {
                    op::OR
                };
                out.extend([json!(code), json!(items.len())]);
            }
            ExprKind::Not(inner) => {
                self.expr(inner, out)?;
                out.push(json!(op::NOT));
            }
            ExprKind::Between {
                expr,
                low,
                high,
                negated,
            } => {
                let (lo_op, hi_op, join) = if *negated {
                    (op::LT, op::GT, op::OR)
                } else {
                    (op::GT_EQ, op::LT_EQ, op::AND)
                };
                self.expr(low, out)?;
                self.expr(expr, out)?;
                out.push(json!(lo_op));
                self.expr(high, out)?;
                self.expr(expr, out)?;
                out.push(json!(hi_op));
                out.extend([json!(join), json!(2)]);
            }
            ExprKind::Array(items) | ExprKind::Tuple(items) => {
                for i in items {
                    self.expr(i, out)?;
                }
                let code = if matches!(e.kind, ExprKind::Array(_)) {
                    op::ARRAY
                } else {
                    op::TUPLE
                };
                out.extend([json!(code), json!(items.len())]);
            }
            ExprKind::Dict(items) => {
                for (k, v) in items {
                    self.expr(k, out)?;
                    self.expr(v, out)?;
                }
                out.extend([json!(op::DICT), json!(items.len())]);
            }
            ExprKind::Lambda { params, body } => {
                let stmt = match body {
                    LambdaBody::Expr(x) => Stmt {
                        kind: StmtKind::Return(Some((**x).clone())),
                        pos: e.pos,
                    },
                    LambdaBody::Block(stmts) => {
                        let mut stmts = stmts.clone();
                        if !matches!(stmts.last().map(|s| &s.kind), Some(StmtKind::Return(_))) {
                            stmts.push(Stmt {
                                kind: StmtKind::Return(None),
                                pos: e.pos,
                            });
                        }
                        Stmt {
                            kind: StmtKind::Block(stmts),
                            pos: e.pos,
                        }
                    }
                };
                self.callable("lambda", params, &stmt, e.pos, out)?;
            }
            ExprKind::ExprCall { callee, args } => {
                for a in args {
                    self.expr(a, out)?;
                }
                self.expr(callee, out)?;
                out.extend([json!(op::CALL_LOCAL), json!(args.len())]);
            }
            ExprKind::Call { name, args } => self.call(name, args, e.pos, out)?,
        }
        Ok(())
    }

    fn call(
        &mut self,
        name: &str,
        args: &[Expr],
        pos: Pos,
        out: &mut Vec<Json>,
    ) -> Result<(), CompileError> {
        let is_local = self.resolve_local(name).is_some();
        match (name, args.len()) {
            ("not", 1) if !is_local => {
                self.expr(&args[0], out)?;
                out.push(json!(op::NOT));
                return Ok(());
            }
            ("and" | "or", n) if n > 1 && !is_local => {
                for a in args {
                    self.expr(a, out)?;
                }
                out.extend([
                    json!(if name == "and" { op::AND } else { op::OR }),
                    json!(n),
                ]);
                return Ok(());
            }
            ("if", 2 | 3) if !is_local => {
                self.expr(&args[0], out)?;
                let mut then = Vec::new();
                self.expr(&args[1], &mut then)?;
                let mut other = Vec::new();
                match args.get(2) {
                    Some(a) => self.expr(a, &mut other)?,
                    None => other.push(json!(op::NULL)),
                }
                out.extend([json!(op::JUMP_IF_FALSE), json!(then.len() + 2)]);
                out.extend(then);
                out.extend([json!(op::JUMP), json!(other.len())]);
                out.extend(other);
                return Ok(());
            }
            ("multiIf", n) if n >= 3 && !is_local => {
                // cond1, val1, cond2, val2, ..., else
                let mut tail = Vec::new();
                if n % 2 == 1 {
                    self.expr(&args[n - 1], &mut tail)?;
                } else {
                    tail.push(json!(op::NULL));
                }
                let mut i = (n - 1) / 2;
                while i > 0 {
                    i -= 1;
                    let mut ops = Vec::new();
                    self.expr(&args[2 * i], &mut ops)?;
                    let mut then = Vec::new();
                    self.expr(&args[2 * i + 1], &mut then)?;
                    ops.extend([json!(op::JUMP_IF_FALSE), json!(then.len() + 2)]);
                    ops.extend(then);
                    ops.extend([json!(op::JUMP), json!(tail.len())]);
                    ops.extend(tail);
                    tail = ops;
                }
                out.extend(tail);
                return Ok(());
            }
            ("ifNull", 2) if !is_local => {
                self.expr(&args[0], out)?;
                let mut fallback = Vec::new();
                self.expr(&args[1], &mut fallback)?;
                out.extend([json!(op::JUMP_IF_STACK_NOT_NULL), json!(fallback.len() + 1)]);
                out.push(json!(op::POP));
                out.extend(fallback);
                return Ok(());
            }
            _ => {}
        }
        let _ = pos;
        for a in args {
            self.expr(a, out)?;
        }
        if self.emit_get(name, out) {
            out.extend([json!(op::CALL_LOCAL), json!(args.len())]);
        } else {
            out.extend([json!(op::CALL_GLOBAL), json!(name), json!(args.len())]);
        }
        Ok(())
    }
}

/// Looks `name` up in `frames[at]` (as a local) or further out, recording upvalues on the way.
fn resolve_in_chain(
    frames: &mut [Frame],
    at: usize,
    name: &str,
    upvalues: &mut Vec<Upvalue>,
) -> Option<usize> {
    if let Some(i) = frames[at].locals.iter().rposition(|l| l.name == name) {
        frames[at].locals[i].captured = true;
        return Some(add_upvalue(upvalues, i, true));
    }
    if at == 0 {
        return None;
    }
    let (outer, rest) = frames.split_at_mut(at);
    let frame = &mut rest[0];
    let idx = resolve_in_chain(outer, at - 1, name, &mut frame.upvalues)?;
    Some(add_upvalue(upvalues, idx, false))
}

fn add_upvalue(upvalues: &mut Vec<Upvalue>, index: usize, is_local: bool) -> usize {
    let u = Upvalue { index, is_local };
    if let Some(i) = upvalues.iter().position(|x| *x == u) {
        return i;
    }
    upvalues.push(u);
    upvalues.len() - 1
}

fn cmp_opcode(c: CmpOp) -> u8 {
    match c {
        CmpOp::Eq => op::EQ,
        CmpOp::NotEq => op::NOT_EQ,
        CmpOp::Gt => op::GT,
        CmpOp::GtEq => op::GT_EQ,
        CmpOp::Lt => op::LT,
        CmpOp::LtEq => op::LT_EQ,
        CmpOp::Like => op::LIKE,
        CmpOp::ILike => op::ILIKE,
        CmpOp::NotLike => op::NOT_LIKE,
        CmpOp::NotILike => op::NOT_ILIKE,
        CmpOp::In => op::IN,
        CmpOp::NotIn => op::NOT_IN,
        CmpOp::Regex => op::REGEX,
        CmpOp::NotRegex => op::NOT_REGEX,
        CmpOp::IRegex => op::IREGEX,
        CmpOp::NotIRegex => op::NOT_IREGEX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_arithmetic_right_operand_first() {
        let b = compile_source("return 1 + 2").unwrap();
        assert_eq!(b, json!(["_H", 1, 33, 2, 33, 1, 6, 38]));
    }

    #[test]
    fn compiles_locals_and_globals() {
        let b = compile_source("let a := 1; print(a, event.x)").unwrap();
        assert_eq!(
            b,
            json!(["_H", 1, 33, 1, 36, 0, 32, "x", 32, "event", 1, 2, 2, "print", 2, 35, 35])
        );
    }

    #[test]
    fn rejects_assigning_globals_and_redeclaring() {
        let e = compile_source("x := 1").unwrap_err();
        assert!(e.message.contains("Can not assign to globals"));
        let e = compile_source("let a := 1\nlet a := 2").unwrap_err();
        assert_eq!((e.line, e.column), (2, 1));
    }

    #[test]
    fn compiles_closures_with_upvalues() {
        let b = compile_source("let x := 1; let f := () -> x; return f()").unwrap();
        assert_eq!(
            b,
            json!([
                "_H", 1, 33, 1, 52, "lambda", 0, 1, 3, 55, 0, 38, 53, 1, true, 0, 36, 1, 54, 0, 38,
                35, 57
            ])
        );
    }
}
