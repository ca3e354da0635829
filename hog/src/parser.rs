//! Parser: tokens → [`Stmt`] list, by recursive descent with one function per precedence level.
//!
//! Precedence, loosest first: lambda, `c ? a : b`, `or`, `and`, `not`, `??`, `is [not] null`,
//! comparisons (`= == != <> < <= > >= in like ilike =~ !~ =~* !~* between`, with `not` forms),
//! `+ - ||`, `* / %`, unary `-`, then postfix calls, `[i]`, `.name`, `.1` and `?.`.
//! Nesting is capped (see [`MAX_NESTING`]) so hostile input cannot overflow the stack.

use crate::ast::{ArithOp, Catch, CmpOp, Expr, ExprKind, LambdaBody, Pos, Stmt, StmtKind};
use crate::error::CompileError;
use crate::lexer::{tokenize, tokenize_at, FPart, Tok, Token};

/// Deepest nesting of expressions and blocks the parser accepts.
pub const MAX_NESTING: usize = 40;

/// Parses a whole program.
pub fn parse_program(src: &str) -> Result<Vec<Stmt>, CompileError> {
    let mut p = Parser::new(tokenize(src)?);
    let mut out = Vec::new();
    while !p.at_eof() {
        out.push(p.statement()?);
    }
    Ok(out)
}

/// Parses a single expression (used for f-string parts and templates).
pub fn parse_expression(src: &str) -> Result<Expr, CompileError> {
    parse_expr_at(src, 1, 1, 0)
}

fn parse_expr_at(src: &str, line: usize, col: usize, depth: usize) -> Result<Expr, CompileError> {
    let mut p = Parser::new(tokenize_at(src, line, col)?);
    p.depth = depth;
    let e = p.expr()?;
    if !p.at_eof() {
        return p.unexpected();
    }
    Ok(e)
}

struct Parser {
    toks: Vec<Token>,
    pos: usize,
    depth: usize,
}

fn kw(tok: &Tok, word: &str) -> bool {
    matches!(tok, Tok::Ident { name, quoted: false } if name.eq_ignore_ascii_case(word))
}

impl Parser {
    fn new(toks: Vec<Token>) -> Self {
        Parser {
            toks,
            pos: 0,
            depth: 0,
        }
    }

    fn tok(&self, n: usize) -> &Tok {
        let i = (self.pos + n).min(self.toks.len().saturating_sub(1));
        self.toks.get(i).map(|t| &t.tok).unwrap_or(&Tok::Eof)
    }

    fn here(&self) -> Pos {
        let i = self.pos.min(self.toks.len().saturating_sub(1));
        self.toks
            .get(i)
            .map(|t| Pos {
                line: t.line,
                col: t.col,
            })
            .unwrap_or_default()
    }

    fn at_eof(&self) -> bool {
        matches!(self.tok(0), Tok::Eof)
    }

    fn advance(&mut self) -> Tok {
        let t = self.tok(0).clone();
        if self.pos < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    fn is_punct(&self, p: &str) -> bool {
        matches!(self.tok(0), Tok::Punct(q) if *q == p)
    }

    fn is_kw(&self, word: &str) -> bool {
        kw(self.tok(0), word)
    }

    fn eat_punct(&mut self, p: &str) -> bool {
        if self.is_punct(p) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn eat_kw(&mut self, word: &str) -> bool {
        if self.is_kw(word) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn err<T>(&self, msg: impl Into<String>) -> Result<T, CompileError> {
        let p = self.here();
        Err(CompileError::new(msg, p.line, p.col))
    }

    fn unexpected<T>(&self) -> Result<T, CompileError> {
        let what = match self.tok(0) {
            Tok::Eof => "end of input".to_string(),
            Tok::Ident { name, .. } => format!("'{name}'"),
            Tok::Str(s) => format!("string '{s}'"),
            Tok::FString(_) => "f-string".to_string(),
            Tok::Int(i) => format!("'{i}'"),
            Tok::Float(f) => format!("'{f}'"),
            Tok::Punct(p) => format!("'{p}'"),
        };
        self.err(format!("Unexpected {what}"))
    }

    fn expect_punct(&mut self, p: &str) -> Result<(), CompileError> {
        if self.eat_punct(p) {
            Ok(())
        } else {
            self.err(format!("Expected '{p}'"))
        }
    }

    fn ident(&mut self) -> Result<String, CompileError> {
        match self.tok(0) {
            Tok::Ident { name, .. } => {
                let n = name.clone();
                self.pos += 1;
                Ok(n)
            }
            _ => self.err("Expected an identifier"),
        }
    }

    fn enter(&mut self) -> Result<(), CompileError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return self.err("Program is nested too deeply");
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    // ---- statements -------------------------------------------------------------------------

    fn statement(&mut self) -> Result<Stmt, CompileError> {
        self.enter()?;
        let r = self.statement_inner();
        self.leave();
        r
    }

    fn statement_inner(&mut self) -> Result<Stmt, CompileError> {
        let pos = self.here();
        let mk = |kind| Ok(Stmt { kind, pos });
        if self.eat_punct(";") {
            return mk(StmtKind::Empty);
        }
        if self.is_punct("{") {
            return mk(StmtKind::Block(self.block()?));
        }
        if self.is_kw("let") {
            let s = self.let_decl()?;
            self.eat_punct(";");
            return Ok(s);
        }
        if self.is_kw("if") && matches!(self.tok(1), Tok::Punct("(")) {
            self.advance();
            self.expect_punct("(")?;
            let cond = self.expr()?;
            self.expect_punct(")")?;
            let then = Box::new(self.statement()?);
            let other = if self.eat_kw("else") {
                Some(Box::new(self.statement()?))
            } else {
                None
            };
            return mk(StmtKind::If(cond, then, other));
        }
        if self.is_kw("while") && matches!(self.tok(1), Tok::Punct("(")) {
            self.advance();
            self.expect_punct("(")?;
            let cond = self.expr()?;
            self.expect_punct(")")?;
            let body = Box::new(self.statement()?);
            return mk(StmtKind::While(cond, body));
        }
        if self.is_kw("for") && matches!(self.tok(1), Tok::Punct("(")) {
            return self.for_stmt(pos);
        }
        if (self.is_kw("fun") || self.is_kw("fn"))
            && matches!(self.tok(1), Tok::Ident { .. })
            && matches!(self.tok(2), Tok::Punct("("))
        {
            self.advance();
            let name = self.ident()?;
            let params = self.params()?;
            let body = self.block()?;
            return mk(StmtKind::Fun(name, params, body));
        }
        if self.is_kw("return") {
            self.advance();
            let value = if self.is_punct(";") || self.is_punct("}") || self.at_eof() {
                None
            } else {
                Some(self.expr()?)
            };
            self.eat_punct(";");
            return mk(StmtKind::Return(value));
        }
        if self.is_kw("throw") {
            self.advance();
            let value = self.expr()?;
            self.eat_punct(";");
            return mk(StmtKind::Throw(value));
        }
        if self.is_kw("try") && matches!(self.tok(1), Tok::Punct("{")) {
            return self.try_stmt(pos);
        }
        let s = self.simple_statement()?;
        self.eat_punct(";");
        Ok(s)
    }

    /// An assignment or an expression statement (no trailing `;`).
    fn simple_statement(&mut self) -> Result<Stmt, CompileError> {
        let pos = self.here();
        let e = self.expr()?;
        if self.eat_punct(":=") {
            let value = self.expr()?;
            return Ok(Stmt {
                kind: StmtKind::Assign(e, value),
                pos,
            });
        }
        Ok(Stmt {
            kind: StmtKind::Expr(e),
            pos,
        })
    }

    fn let_decl(&mut self) -> Result<Stmt, CompileError> {
        let pos = self.here();
        self.advance();
        let name = self.ident()?;
        let value = if self.eat_punct(":=") {
            Some(self.expr()?)
        } else {
            None
        };
        Ok(Stmt {
            kind: StmtKind::Let(name, value),
            pos,
        })
    }

    fn for_stmt(&mut self, pos: Pos) -> Result<Stmt, CompileError> {
        self.advance();
        self.expect_punct("(")?;
        let is_for_in = self.is_kw("let")
            && matches!(self.tok(1), Tok::Ident { .. })
            && (kw(self.tok(2), "in")
                || (matches!(self.tok(2), Tok::Punct(",")) && kw(self.tok(4), "in")));
        if is_for_in {
            self.advance();
            let first = self.ident()?;
            let (key, value) = if self.eat_punct(",") {
                (Some(first), self.ident()?)
            } else {
                (None, first)
            };
            if !self.eat_kw("in") {
                return self.err("Expected 'in'");
            }
            let expr = self.expr()?;
            self.expect_punct(")")?;
            let body = Box::new(self.statement()?);
            return Ok(Stmt {
                kind: StmtKind::ForIn {
                    key,
                    value,
                    expr,
                    body,
                },
                pos,
            });
        }
        let init = if self.is_punct(";") {
            None
        } else if self.is_kw("let") {
            Some(Box::new(self.let_decl()?))
        } else {
            Some(Box::new(self.simple_statement()?))
        };
        self.expect_punct(";")?;
        let cond = if self.is_punct(";") {
            None
        } else {
            Some(self.expr()?)
        };
        self.expect_punct(";")?;
        let step = if self.is_punct(")") {
            None
        } else if self.is_kw("let") {
            Some(Box::new(self.let_decl()?))
        } else {
            Some(Box::new(self.simple_statement()?))
        };
        self.expect_punct(")")?;
        let body = Box::new(self.statement()?);
        Ok(Stmt {
            kind: StmtKind::For {
                init,
                cond,
                step,
                body,
            },
            pos,
        })
    }

    fn try_stmt(&mut self, pos: Pos) -> Result<Stmt, CompileError> {
        self.advance();
        let body = self.block()?;
        let mut catches = Vec::new();
        while self.is_kw("catch") {
            self.advance();
            let (mut var, mut kind) = (None, None);
            if self.eat_punct("(") {
                var = Some(self.ident()?);
                if self.eat_punct(":") {
                    kind = Some(self.ident()?);
                }
                self.expect_punct(")")?;
            }
            let body = self.block()?;
            catches.push(Catch { var, kind, body });
        }
        if self.is_kw("finally") {
            return self.err("finally blocks are not supported");
        }
        if catches.is_empty() {
            return self.err("try statement must have at least one catch block");
        }
        Ok(Stmt {
            kind: StmtKind::Try(body, catches),
            pos,
        })
    }

    fn block(&mut self) -> Result<Vec<Stmt>, CompileError> {
        self.expect_punct("{")?;
        let mut out = Vec::new();
        while !self.is_punct("}") {
            if self.at_eof() {
                return self.err("Expected '}'");
            }
            out.push(self.statement()?);
        }
        self.advance();
        Ok(out)
    }

    fn params(&mut self) -> Result<Vec<String>, CompileError> {
        self.expect_punct("(")?;
        let mut params = Vec::new();
        while !self.is_punct(")") {
            params.push(self.ident()?);
            if !self.eat_punct(",") {
                break;
            }
        }
        self.expect_punct(")")?;
        Ok(params)
    }

    // ---- expressions ------------------------------------------------------------------------

    fn expr(&mut self) -> Result<Expr, CompileError> {
        self.enter()?;
        let r = self.ternary();
        self.leave();
        r
    }

    fn ternary(&mut self) -> Result<Expr, CompileError> {
        let pos = self.here();
        let cond = self.or_expr()?;
        if self.eat_punct("?") {
            let then = self.expr()?;
            self.expect_punct(":")?;
            let other = self.expr()?;
            return Ok(Expr {
                kind: ExprKind::Call {
                    name: "if".into(),
                    args: vec![cond, then, other],
                },
                pos,
            });
        }
        Ok(cond)
    }

    fn or_expr(&mut self) -> Result<Expr, CompileError> {
        let pos = self.here();
        let first = self.and_expr()?;
        let mut items = vec![first];
        while self.eat_kw("or") {
            items.push(self.and_expr()?);
        }
        Ok(flatten(items, pos, true))
    }

    fn and_expr(&mut self) -> Result<Expr, CompileError> {
        let pos = self.here();
        let first = self.not_expr()?;
        let mut items = vec![first];
        while self.eat_kw("and") {
            items.push(self.not_expr()?);
        }
        Ok(flatten(items, pos, false))
    }

    fn not_expr(&mut self) -> Result<Expr, CompileError> {
        let pos = self.here();
        if self.is_kw("not") && !matches!(self.tok(1), Tok::Punct("(" | ")" | "," | ";")) {
            self.advance();
            self.enter()?;
            let inner = self.not_expr();
            self.leave();
            return Ok(Expr {
                kind: ExprKind::Not(Box::new(inner?)),
                pos,
            });
        }
        self.nullish()
    }

    fn nullish(&mut self) -> Result<Expr, CompileError> {
        let pos = self.here();
        let mut left = self.is_null()?;
        while self.eat_punct("??") {
            let right = self.is_null()?;
            left = Expr {
                kind: ExprKind::Call {
                    name: "ifNull".into(),
                    args: vec![left, right],
                },
                pos,
            };
        }
        Ok(left)
    }

    fn is_null(&mut self) -> Result<Expr, CompileError> {
        let pos = self.here();
        let mut e = self.comparison()?;
        while self.is_kw("is") {
            self.advance();
            let negated = self.eat_kw("not");
            if !self.eat_kw("null") {
                return self.err("Expected 'null'");
            }
            let op = if negated { CmpOp::NotEq } else { CmpOp::Eq };
            e = Expr {
                kind: ExprKind::Compare(
                    op,
                    Box::new(e),
                    Box::new(Expr {
                        kind: ExprKind::Null,
                        pos,
                    }),
                ),
                pos,
            };
        }
        Ok(e)
    }

    fn comparison_op(&mut self) -> Option<Result<CmpOp, ()>> {
        let op = match self.tok(0) {
            Tok::Punct("=" | "==") => CmpOp::Eq,
            Tok::Punct("!=" | "<>") => CmpOp::NotEq,
            Tok::Punct("<") => CmpOp::Lt,
            Tok::Punct("<=") => CmpOp::LtEq,
            Tok::Punct(">") => CmpOp::Gt,
            Tok::Punct(">=") => CmpOp::GtEq,
            Tok::Punct("=~" | "~") => CmpOp::Regex,
            Tok::Punct("!~") => CmpOp::NotRegex,
            Tok::Punct("=~*" | "~*") => CmpOp::IRegex,
            Tok::Punct("!~*") => CmpOp::NotIRegex,
            t if kw(t, "in") => CmpOp::In,
            t if kw(t, "like") => CmpOp::Like,
            t if kw(t, "ilike") => CmpOp::ILike,
            t if kw(t, "not") => {
                let next = self.tok(1);
                let op = if kw(next, "in") {
                    CmpOp::NotIn
                } else if kw(next, "like") {
                    CmpOp::NotLike
                } else if kw(next, "ilike") {
                    CmpOp::NotILike
                } else {
                    return None;
                };
                self.pos += 2;
                return Some(Ok(op));
            }
            _ => return None,
        };
        self.pos += 1;
        Some(Ok(op))
    }

    fn comparison(&mut self) -> Result<Expr, CompileError> {
        let pos = self.here();
        let mut left = self.additive()?;
        loop {
            let negated_between = self.is_kw("not") && kw(self.tok(1), "between");
            if self.is_kw("between") || negated_between {
                self.pos += if negated_between { 2 } else { 1 };
                let low = self.additive()?;
                if !self.eat_kw("and") {
                    return self.err("Expected 'and' in between");
                }
                let high = self.additive()?;
                left = Expr {
                    kind: ExprKind::Between {
                        expr: Box::new(left),
                        low: Box::new(low),
                        high: Box::new(high),
                        negated: negated_between,
                    },
                    pos,
                };
                continue;
            }
            match self.comparison_op() {
                Some(Ok(op)) => {
                    let right = self.additive()?;
                    left = Expr {
                        kind: ExprKind::Compare(op, Box::new(left), Box::new(right)),
                        pos,
                    };
                }
                _ => return Ok(left),
            }
        }
    }

    fn additive(&mut self) -> Result<Expr, CompileError> {
        let pos = self.here();
        let mut left = self.multiplicative()?;
        loop {
            let kind = if self.eat_punct("+") {
                ExprKind::Arith(
                    ArithOp::Add,
                    Box::new(left),
                    Box::new(self.multiplicative()?),
                )
            } else if self.eat_punct("-") {
                ExprKind::Arith(
                    ArithOp::Sub,
                    Box::new(left),
                    Box::new(self.multiplicative()?),
                )
            } else if self.eat_punct("||") {
                ExprKind::Call {
                    name: "concat".into(),
                    args: vec![left, self.multiplicative()?],
                }
            } else {
                return Ok(left);
            };
            left = Expr { kind, pos };
        }
    }

    fn multiplicative(&mut self) -> Result<Expr, CompileError> {
        let pos = self.here();
        let mut left = self.unary()?;
        loop {
            let op = if self.eat_punct("*") {
                ArithOp::Mul
            } else if self.eat_punct("/") {
                ArithOp::Div
            } else if self.eat_punct("%") {
                ArithOp::Mod
            } else {
                return Ok(left);
            };
            let right = self.unary()?;
            left = Expr {
                kind: ExprKind::Arith(op, Box::new(left), Box::new(right)),
                pos,
            };
        }
    }

    fn unary(&mut self) -> Result<Expr, CompileError> {
        let pos = self.here();
        if self.eat_punct("-") {
            match self.tok(0).clone() {
                Tok::Int(i) if !self.postfix_follows(1) => {
                    self.advance();
                    return Ok(Expr {
                        kind: ExprKind::Int(-i),
                        pos,
                    });
                }
                Tok::Float(f) if !self.postfix_follows(1) => {
                    self.advance();
                    return Ok(Expr {
                        kind: ExprKind::Float(-f),
                        pos,
                    });
                }
                _ => {}
            }
            self.enter()?;
            let inner = self.unary();
            self.leave();
            return Ok(Expr {
                kind: ExprKind::Arith(
                    ArithOp::Sub,
                    Box::new(Expr {
                        kind: ExprKind::Int(0),
                        pos,
                    }),
                    Box::new(inner?),
                ),
                pos,
            });
        }
        self.postfix()
    }

    fn postfix_follows(&self, n: usize) -> bool {
        matches!(self.tok(n), Tok::Punct("." | "[" | "?." | "("))
    }

    fn postfix(&mut self) -> Result<Expr, CompileError> {
        let mut e = self.primary()?;
        loop {
            let pos = e.pos;
            if self.is_punct("(") {
                let args = self.args("(", ")")?;
                e = match e.kind {
                    ExprKind::Field(chain) if chain.len() == 1 => Expr {
                        kind: ExprKind::Call {
                            name: chain.into_iter().next().unwrap_or_default(),
                            args,
                        },
                        pos,
                    },
                    other => Expr {
                        kind: ExprKind::ExprCall {
                            callee: Box::new(Expr { kind: other, pos }),
                            args,
                        },
                        pos,
                    },
                };
            } else if self.eat_punct("[") {
                let key = self.expr()?;
                self.expect_punct("]")?;
                e = index(e, key, false, pos);
            } else if self.is_punct(".") || self.is_punct("?.") {
                let nullish = self.is_punct("?.");
                self.advance();
                if nullish && self.eat_punct("[") {
                    let key = self.expr()?;
                    self.expect_punct("]")?;
                    e = index(e, key, true, pos);
                    continue;
                }
                match self.advance() {
                    Tok::Int(i) => {
                        e = Expr {
                            kind: ExprKind::TupleIndex {
                                obj: Box::new(e),
                                index: i,
                                nullish,
                            },
                            pos,
                        }
                    }
                    Tok::Ident { name, .. } => {
                        e = match e.kind {
                            ExprKind::Field(mut chain) if !nullish => {
                                chain.push(name);
                                Expr {
                                    kind: ExprKind::Field(chain),
                                    pos,
                                }
                            }
                            other => {
                                let key = Expr {
                                    kind: ExprKind::Str(name),
                                    pos,
                                };
                                index(Expr { kind: other, pos }, key, nullish, pos)
                            }
                        }
                    }
                    _ => {
                        self.pos = self.pos.saturating_sub(1);
                        return self.err("Expected a property name after '.'");
                    }
                }
            } else {
                return Ok(e);
            }
        }
    }

    fn args(&mut self, open: &str, close: &str) -> Result<Vec<Expr>, CompileError> {
        self.expect_punct(open)?;
        let mut out = Vec::new();
        while !self.is_punct(close) {
            out.push(self.expr()?);
            if !self.eat_punct(",") {
                break;
            }
        }
        self.expect_punct(close)?;
        Ok(out)
    }

    /// Whether the tokens at the cursor start a parenthesised lambda: `() ->`, `(a, b) ->`.
    fn paren_lambda_ahead(&self) -> bool {
        let mut i = 1;
        loop {
            match self.tok(i) {
                Tok::Punct(")") => return matches!(self.tok(i + 1), Tok::Punct("->")),
                Tok::Ident { .. } => {
                    i += 1;
                    match self.tok(i) {
                        Tok::Punct(",") => i += 1,
                        Tok::Punct(")") => continue,
                        _ => return false,
                    }
                }
                _ => return false,
            }
        }
    }

    fn lambda_body(&mut self) -> Result<LambdaBody, CompileError> {
        if self.is_punct("{") {
            let save = self.pos;
            if let Ok(e) = self.expr() {
                if matches!(e.kind, ExprKind::Dict(_)) {
                    return Ok(LambdaBody::Expr(Box::new(e)));
                }
            }
            self.pos = save;
            return Ok(LambdaBody::Block(self.block()?));
        }
        Ok(LambdaBody::Expr(Box::new(self.expr()?)))
    }

    fn primary(&mut self) -> Result<Expr, CompileError> {
        let pos = self.here();
        let mk = |kind| Ok(Expr { kind, pos });
        match self.tok(0).clone() {
            Tok::Int(i) => {
                self.advance();
                mk(ExprKind::Int(i))
            }
            Tok::Float(f) => {
                self.advance();
                mk(ExprKind::Float(f))
            }
            Tok::Str(s) => {
                self.advance();
                mk(ExprKind::Str(s))
            }
            Tok::FString(parts) => {
                self.advance();
                let mut args = Vec::new();
                for part in parts {
                    match part {
                        FPart::Text(t) => args.push(Expr {
                            kind: ExprKind::Str(t),
                            pos,
                        }),
                        FPart::Expr(src, line, col) => {
                            args.push(parse_expr_at(&src, line, col, self.depth)?)
                        }
                    }
                }
                if args.is_empty() {
                    return mk(ExprKind::Str(String::new()));
                }
                mk(ExprKind::Call {
                    name: "concat".into(),
                    args,
                })
            }
            Tok::Ident { name, quoted } => {
                if !quoted {
                    if name.eq_ignore_ascii_case("true") {
                        self.advance();
                        return mk(ExprKind::Bool(true));
                    }
                    if name.eq_ignore_ascii_case("false") {
                        self.advance();
                        return mk(ExprKind::Bool(false));
                    }
                    if name.eq_ignore_ascii_case("null") {
                        self.advance();
                        return mk(ExprKind::Null);
                    }
                }
                self.advance();
                if self.eat_punct("->") {
                    let body = self.lambda_body()?;
                    return mk(ExprKind::Lambda {
                        params: vec![name],
                        body,
                    });
                }
                mk(ExprKind::Field(vec![name]))
            }
            Tok::Punct("(") => {
                if self.paren_lambda_ahead() {
                    let params = self.params()?;
                    self.expect_punct("->")?;
                    let body = self.lambda_body()?;
                    return mk(ExprKind::Lambda { params, body });
                }
                self.advance();
                let first = self.expr()?;
                if self.eat_punct(")") {
                    return Ok(first);
                }
                let mut items = vec![first];
                while self.eat_punct(",") {
                    if self.is_punct(")") {
                        break;
                    }
                    items.push(self.expr()?);
                }
                self.expect_punct(")")?;
                mk(ExprKind::Tuple(items))
            }
            Tok::Punct("[") => {
                let items = self.args("[", "]")?;
                mk(ExprKind::Array(items))
            }
            Tok::Punct("{") => {
                self.advance();
                let mut items = Vec::new();
                while !self.is_punct("}") {
                    let k = self.expr()?;
                    self.expect_punct(":")?;
                    let v = self.expr()?;
                    items.push((k, v));
                    if !self.eat_punct(",") {
                        break;
                    }
                }
                self.expect_punct("}")?;
                mk(ExprKind::Dict(items))
            }
            _ => self.unexpected(),
        }
    }
}

fn index(obj: Expr, key: Expr, nullish: bool, pos: Pos) -> Expr {
    Expr {
        kind: ExprKind::Index {
            obj: Box::new(obj),
            key: Box::new(key),
            nullish,
        },
        pos,
    }
}

fn flatten(items: Vec<Expr>, pos: Pos, is_or: bool) -> Expr {
    if items.len() == 1 {
        return items.into_iter().next().unwrap_or(Expr {
            kind: ExprKind::Null,
            pos,
        });
    }
    let mut flat = Vec::new();
    for e in items {
        match e.kind {
            ExprKind::Or(inner) if is_or => flat.extend(inner),
            ExprKind::And(inner) if !is_or => flat.extend(inner),
            kind => flat.push(Expr { kind, pos: e.pos }),
        }
    }
    Expr {
        kind: if is_or {
            ExprKind::Or(flat)
        } else {
            ExprKind::And(flat)
        },
        pos,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_precedence() {
        let e = parse_expression("1 + 2 * 3 = 7 and not x").unwrap();
        let ExprKind::And(items) = e.kind else {
            panic!("expected and")
        };
        assert!(matches!(items[0].kind, ExprKind::Compare(CmpOp::Eq, _, _)));
        assert!(matches!(items[1].kind, ExprKind::Not(_)));
    }

    #[test]
    fn parses_lambdas_tuples_and_chains() {
        assert!(matches!(
            parse_expression("(a, b) -> a + b").unwrap().kind,
            ExprKind::Lambda { .. }
        ));
        assert!(matches!(
            parse_expression("(1, 2)").unwrap().kind,
            ExprKind::Tuple(_)
        ));
        assert_eq!(
            parse_expression("event.properties.$browser").unwrap().kind,
            ExprKind::Field(vec!["event".into(), "properties".into(), "$browser".into()])
        );
        assert!(matches!(
            parse_expression("a?.b").unwrap().kind,
            ExprKind::Index { nullish: true, .. }
        ));
    }

    #[test]
    fn parses_statements() {
        let p = parse_program(
            "let x := 1; fun f(a) { return a } for (let i := 0; i < 3; i := i + 1) { x := x + i }
             for (let k, v in {'a': 1}) print(k) try { throw Error('x') } catch (e: RetryError) { }",
        )
        .unwrap();
        assert_eq!(p.len(), 5);
    }

    #[test]
    fn errors_carry_positions() {
        let e = parse_program("let x := 1\nlet y := (2").unwrap_err();
        assert_eq!(e.line, 2);
        let e = parse_program(&"(".repeat(1000)).unwrap_err();
        assert!(e.message.contains("nested"));
    }
}
