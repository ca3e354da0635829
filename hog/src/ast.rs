//! The Hog syntax tree produced by the parser and consumed by the compiler.

/// A 1-based source position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// Line.
    pub line: usize,
    /// Column.
    pub col: usize,
}

/// Arithmetic operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Mod,
}

/// Comparison operators (each maps to one opcode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `=` / `==`
    Eq,
    /// `!=` / `<>`
    NotEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `like`
    Like,
    /// `ilike`
    ILike,
    /// `not like`
    NotLike,
    /// `not ilike`
    NotILike,
    /// `in`
    In,
    /// `not in`
    NotIn,
    /// `=~`
    Regex,
    /// `!~`
    NotRegex,
    /// `=~*`
    IRegex,
    /// `!~*`
    NotIRegex,
}

/// An expression with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// What kind of expression.
    pub kind: ExprKind,
    /// Where it starts.
    pub pos: Pos,
}

/// The body of a lambda.
#[derive(Debug, Clone, PartialEq)]
pub enum LambdaBody {
    /// `x -> expr`
    Expr(Box<Expr>),
    /// `x -> { ... }`
    Block(Vec<Stmt>),
}

/// Expression kinds.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// An integer literal.
    Int(i64),
    /// A float literal.
    Float(f64),
    /// A string literal.
    Str(String),
    /// An identifier chain `a.b.c` (a local, an upvalue or a global).
    Field(Vec<String>),
    /// `obj[key]`, `obj.key` on a non-identifier, `obj?.[key]`, `obj?.key`.
    Index {
        /// The container.
        obj: Box<Expr>,
        /// The key or 1-based index.
        key: Box<Expr>,
        /// `?.` access.
        nullish: bool,
    },
    /// `t.2`
    TupleIndex {
        /// The container.
        obj: Box<Expr>,
        /// The 1-based index.
        index: i64,
        /// `?.` access.
        nullish: bool,
    },
    /// `name(args)`: a local, upvalue or global function.
    Call {
        /// The function name.
        name: String,
        /// The arguments.
        args: Vec<Expr>,
    },
    /// `expr(args)`: calling the value of an expression.
    ExprCall {
        /// What to call.
        callee: Box<Expr>,
        /// The arguments.
        args: Vec<Expr>,
    },
    /// Arithmetic.
    Arith(ArithOp, Box<Expr>, Box<Expr>),
    /// A comparison.
    Compare(CmpOp, Box<Expr>, Box<Expr>),
    /// `a and b and c` (not short-circuiting).
    And(Vec<Expr>),
    /// `a or b or c` (not short-circuiting).
    Or(Vec<Expr>),
    /// `not a`
    Not(Box<Expr>),
    /// `x [not] between low and high`
    Between {
        /// The tested value.
        expr: Box<Expr>,
        /// Lower bound.
        low: Box<Expr>,
        /// Upper bound.
        high: Box<Expr>,
        /// `not between`
        negated: bool,
    },
    /// `[a, b]`
    Array(Vec<Expr>),
    /// `(a, b)`
    Tuple(Vec<Expr>),
    /// `{k: v}`
    Dict(Vec<(Expr, Expr)>),
    /// A lambda.
    Lambda {
        /// Parameter names.
        params: Vec<String>,
        /// The body.
        body: LambdaBody,
    },
}

/// A catch clause: `catch (var: Type) { ... }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Catch {
    /// The variable the error is bound to (`e` if absent).
    pub var: Option<String>,
    /// The error type to match (`Error` catches everything).
    pub kind: Option<String>,
    /// The handler.
    pub body: Vec<Stmt>,
}

/// A statement with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Stmt {
    /// What kind of statement.
    pub kind: StmtKind,
    /// Where it starts.
    pub pos: Pos,
}

/// Statement kinds.
#[derive(Debug, Clone, PartialEq)]
pub enum StmtKind {
    /// `let name [:= expr]`
    Let(String, Option<Expr>),
    /// `target := value`
    Assign(Expr, Expr),
    /// An expression whose value is discarded.
    Expr(Expr),
    /// `return [expr]`
    Return(Option<Expr>),
    /// `throw expr`
    Throw(Expr),
    /// `if (cond) then [else other]`
    If(Expr, Box<Stmt>, Option<Box<Stmt>>),
    /// `while (cond) body`
    While(Expr, Box<Stmt>),
    /// `for (init; cond; step) body`
    For {
        /// Runs once before the loop.
        init: Option<Box<Stmt>>,
        /// Checked before each pass (absent means true).
        cond: Option<Expr>,
        /// Runs after each pass.
        step: Option<Box<Stmt>>,
        /// The loop body.
        body: Box<Stmt>,
    },
    /// `for (let [key,] value in expr) body`
    ForIn {
        /// The key variable, if any.
        key: Option<String>,
        /// The value variable.
        value: String,
        /// What to iterate.
        expr: Expr,
        /// The loop body.
        body: Box<Stmt>,
    },
    /// `fun name(params) { body }`
    Fun(String, Vec<String>, Vec<Stmt>),
    /// `{ ... }`
    Block(Vec<Stmt>),
    /// `try { } catch ...`
    Try(Vec<Stmt>, Vec<Catch>),
    /// A lone `;`.
    Empty,
}
