//! Lexer: Hog source text → tokens with 1-based line and column.
//!
//! Words are all [`Tok::Ident`]; the parser decides (case-insensitively) which ones are keywords,
//! so that keywords stay usable as property names (`event.properties.select`). Strings use single
//! quotes only; `"x"` and `` `x` `` are quoted identifiers, never keywords. Comments are `//`,
//! `--` and `/* */`. An f-string `f'a {x} b'` becomes one [`Tok::FString`] whose expression parts
//! the parser lexes again.

use crate::error::CompileError;

/// One part of an f-string.
#[derive(Debug, Clone, PartialEq)]
pub enum FPart {
    /// Literal text, escapes already applied.
    Text(String),
    /// Source of an embedded expression, with the line and column where it starts.
    Expr(String, usize, usize),
}

/// A token.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// A word or a quoted identifier (`quoted` is true for `"x"` and `` `x` ``).
    Ident {
        /// The identifier text.
        name: String,
        /// Whether it was quoted (and so can never be a keyword).
        quoted: bool,
    },
    /// A single-quoted string literal.
    Str(String),
    /// An f-string.
    FString(Vec<FPart>),
    /// An integer literal.
    Int(i64),
    /// A float literal.
    Float(f64),
    /// An operator or punctuation mark.
    Punct(&'static str),
    /// End of input.
    Eof,
}

/// A token with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// The token.
    pub tok: Tok,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
}

const PUNCTS: [&str; 37] = [
    "=~*", "!~*", ":=", "->", "==", "!=", "<>", "<=", ">=", "=~", "!~", "~*", "??", "?.", "||",
    "=", "<", ">", "~", "+", "-", "*", "/", "%", "(", ")", "[", "]", "{", "}", ",", ";", ":", ".",
    "?", "!", "@",
];

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    line: usize,
    col: usize,
    _src: &'a str,
}

/// Splits source text into tokens, ending with [`Tok::Eof`].
pub fn tokenize(src: &str) -> Result<Vec<Token>, CompileError> {
    tokenize_at(src, 1, 1)
}

/// Like [`tokenize`], but positions start at the given line and column (for f-string parts).
pub fn tokenize_at(src: &str, line: usize, col: usize) -> Result<Vec<Token>, CompileError> {
    let mut lx = Lexer {
        chars: src.chars().collect(),
        pos: 0,
        line,
        col,
        _src: src,
    };
    let mut out = Vec::new();
    loop {
        lx.skip_trivia()?;
        let (line, col) = (lx.line, lx.col);
        let Some(c) = lx.peek(0) else {
            out.push(Token {
                tok: Tok::Eof,
                line,
                col,
            });
            return Ok(out);
        };
        let tok = lx.token(c)?;
        out.push(Token { tok, line, col });
    }
}

impl Lexer<'_> {
    fn peek(&self, n: usize) -> Option<char> {
        self.chars.get(self.pos + n).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.get(self.pos).copied()?;
        self.pos += 1;
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn err<T>(&self, msg: impl Into<String>) -> Result<T, CompileError> {
        Err(CompileError::new(msg, self.line, self.col))
    }

    fn skip_trivia(&mut self) -> Result<(), CompileError> {
        loop {
            match (self.peek(0), self.peek(1)) {
                (Some(c), _) if c.is_whitespace() => {
                    self.bump();
                }
                (Some('/'), Some('/')) | (Some('-'), Some('-')) => {
                    while let Some(c) = self.peek(0) {
                        if c == '\n' {
                            break;
                        }
                        self.bump();
                    }
                }
                (Some('/'), Some('*')) => {
                    let (line, col) = (self.line, self.col);
                    self.bump();
                    self.bump();
                    loop {
                        match (self.peek(0), self.peek(1)) {
                            (Some('*'), Some('/')) => {
                                self.bump();
                                self.bump();
                                break;
                            }
                            (Some(_), _) => {
                                self.bump();
                            }
                            (None, _) => {
                                return Err(CompileError::new("Unterminated comment", line, col))
                            }
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn token(&mut self, c: char) -> Result<Tok, CompileError> {
        if (c == 'f' || c == 'F') && self.peek(1) == Some('\'') {
            self.bump();
            return self.fstring();
        }
        if c.is_ascii_alphabetic() || c == '_' || c == '$' {
            let mut name = String::new();
            while let Some(c) = self.peek(0) {
                if c.is_ascii_alphanumeric() || c == '_' || c == '$' {
                    name.push(c);
                    self.bump();
                } else {
                    break;
                }
            }
            return Ok(Tok::Ident {
                name,
                quoted: false,
            });
        }
        if c.is_ascii_digit() {
            return self.number();
        }
        if c == '\'' {
            let (line, col) = (self.line, self.col);
            self.bump();
            let s = self
                .quoted('\'')
                .map_err(|e| CompileError::new(e.message, line, col))?;
            return Ok(Tok::Str(s));
        }
        if c == '"' || c == '`' {
            self.bump();
            return Ok(Tok::Ident {
                name: self.quoted(c)?,
                quoted: true,
            });
        }
        for p in PUNCTS {
            if p.chars()
                .enumerate()
                .all(|(i, pc)| self.peek(i) == Some(pc))
            {
                for _ in 0..p.chars().count() {
                    self.bump();
                }
                return Ok(Tok::Punct(p));
            }
        }
        self.err(format!("Unexpected character '{c}'"))
    }

    fn number(&mut self) -> Result<Tok, CompileError> {
        let (line, col) = (self.line, self.col);
        let radix = match (self.peek(0), self.peek(1)) {
            (Some('0'), Some('x' | 'X')) => 16,
            (Some('0'), Some('b' | 'B')) => 2,
            _ => 10,
        };
        if radix != 10 {
            self.bump();
            self.bump();
            let mut digits = String::new();
            while let Some(c) = self.peek(0) {
                if c.is_digit(radix) {
                    digits.push(c);
                    self.bump();
                } else {
                    break;
                }
            }
            return i64::from_str_radix(&digits, radix)
                .map(Tok::Int)
                .map_err(|_| CompileError::new("Invalid number literal", line, col));
        }
        let mut text = String::new();
        let mut is_float = false;
        while let Some(c) = self.peek(0) {
            if c.is_ascii_digit() {
                text.push(c);
                self.bump();
            } else if c == '.' && !is_float && self.peek(1).is_some_and(|d| d.is_ascii_digit()) {
                is_float = true;
                text.push(c);
                self.bump();
            } else if (c == 'e' || c == 'E')
                && (self.peek(1).is_some_and(|d| d.is_ascii_digit())
                    || (matches!(self.peek(1), Some('+' | '-'))
                        && self.peek(2).is_some_and(|d| d.is_ascii_digit())))
            {
                is_float = true;
                text.push('e');
                self.bump();
                if let Some(s @ ('+' | '-')) = self.peek(0) {
                    text.push(s);
                    self.bump();
                }
            } else {
                break;
            }
        }
        if is_float {
            text.parse::<f64>()
                .map(Tok::Float)
                .map_err(|_| CompileError::new("Invalid number literal", line, col))
        } else {
            match text.parse::<i64>() {
                Ok(i) => Ok(Tok::Int(i)),
                Err(_) => text
                    .parse::<f64>()
                    .map(Tok::Float)
                    .map_err(|_| CompileError::new("Invalid number literal", line, col)),
            }
        }
    }

    /// Reads an escape sequence after a backslash.
    fn escape(&mut self, out: &mut String) -> Result<(), CompileError> {
        let Some(c) = self.bump() else {
            return self.err("Unterminated string");
        };
        match c {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            '0' => out.push('\0'),
            'a' => out.push('\u{7}'),
            'v' => out.push('\u{b}'),
            'x' => {
                let hex: String = [self.peek(0), self.peek(1)].iter().flatten().collect();
                match u8::from_str_radix(&hex, 16) {
                    Ok(v) if hex.len() == 2 => {
                        self.bump();
                        self.bump();
                        out.push(char::from(v));
                    }
                    _ => out.push_str("\\x"),
                }
            }
            '\\' | '\'' | '"' | '`' | '{' | '}' => out.push(c),
            other => {
                out.push('\\');
                out.push(other);
            }
        }
        Ok(())
    }

    fn quoted(&mut self, quote: char) -> Result<String, CompileError> {
        let (line, col) = (self.line, self.col);
        let mut out = String::new();
        loop {
            match self.bump() {
                None => return Err(CompileError::new("Unterminated string", line, col)),
                Some('\\') => self.escape(&mut out)?,
                Some(c) if c == quote => {
                    if self.peek(0) == Some(quote) {
                        self.bump();
                        out.push(quote);
                    } else {
                        return Ok(out);
                    }
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn fstring(&mut self) -> Result<Tok, CompileError> {
        let (line, col) = (self.line, self.col);
        self.bump(); // opening quote
        let mut parts = Vec::new();
        let mut text = String::new();
        loop {
            match self.bump() {
                None => return Err(CompileError::new("Unterminated f-string", line, col)),
                Some('\\') => self.escape(&mut text)?,
                Some('\'') => {
                    if self.peek(0) == Some('\'') {
                        self.bump();
                        text.push('\'');
                    } else {
                        break;
                    }
                }
                Some('{') => {
                    if !text.is_empty() {
                        parts.push(FPart::Text(std::mem::take(&mut text)));
                    }
                    let (eline, ecol) = (self.line, self.col);
                    let mut depth = 0usize;
                    let mut src = String::new();
                    loop {
                        match self.bump() {
                            None => {
                                return Err(CompileError::new("Unterminated f-string", line, col))
                            }
                            Some('}') if depth == 0 => break,
                            Some(c) => {
                                if c == '{' {
                                    depth += 1;
                                } else if c == '}' {
                                    depth -= 1;
                                } else if c == '\'' {
                                    // copy a nested string literal verbatim
                                    src.push(c);
                                    loop {
                                        match self.bump() {
                                            None => break,
                                            Some('\\') => {
                                                src.push('\\');
                                                if let Some(n) = self.bump() {
                                                    src.push(n);
                                                }
                                                continue;
                                            }
                                            Some('\'') => break,
                                            Some(n) => src.push(n),
                                        }
                                    }
                                }
                                src.push(c);
                            }
                        }
                    }
                    parts.push(FPart::Expr(src, eline, ecol));
                }
                Some(c) => text.push(c),
            }
        }
        if !text.is_empty() {
            parts.push(FPart::Text(text));
        }
        Ok(Tok::FString(parts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok> {
        tokenize(src).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn lexes_operators_and_literals() {
        assert_eq!(
            toks("let x := 0x1F =~* 'a\\'b''c' -- comment\n 1.5e2"),
            vec![
                Tok::Ident {
                    name: "let".into(),
                    quoted: false
                },
                Tok::Ident {
                    name: "x".into(),
                    quoted: false
                },
                Tok::Punct(":="),
                Tok::Int(31),
                Tok::Punct("=~*"),
                Tok::Str("a'b'c".into()),
                Tok::Float(150.0),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn lexes_fstrings_and_positions() {
        let t = tokenize("\n  f'hi {name}!'").unwrap();
        assert_eq!((t[0].line, t[0].col), (2, 3));
        assert_eq!(
            t[0].tok,
            Tok::FString(vec![
                FPart::Text("hi ".into()),
                FPart::Expr("name".into(), 2, 9),
                FPart::Text("!".into())
            ])
        );
    }

    #[test]
    fn reports_unterminated_strings() {
        let e = tokenize("print('abc").unwrap_err();
        assert_eq!((e.line, e.column), (1, 7));
    }
}
