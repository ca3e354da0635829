//! Trends formulas such as `(A + B) / 2`: series letters (A = the first series), numbers,
//! `+ - * /`, unary minus and parentheses. Division by zero gives 0, as PostHog shows it.

use crate::QueryError;

/// A parsed formula.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A number literal.
    Num(f64),
    /// The value of series `n` (0-based).
    Series(usize),
    /// Negation.
    Neg(Box<Expr>),
    /// A binary operation: one of `+ - * /`.
    Bin(char, Box<Expr>, Box<Expr>),
}

impl Expr {
    /// Parses `text` for a query with `series` series; errors name `field`.
    pub fn parse(text: &str, series: usize, field: &str) -> Result<Self, QueryError> {
        let tokens = tokenize(text).map_err(|m| QueryError::new(field, m))?;
        let mut parser = Parser {
            tokens,
            pos: 0,
            series,
        };
        let expr = parser.sum().map_err(|m| QueryError::new(field, m))?;
        if parser.pos != parser.tokens.len() {
            return Err(QueryError::new(field, "unexpected text after the formula"));
        }
        Ok(expr)
    }

    /// Evaluates with `values[n]` as series `n`'s value.
    pub fn eval(&self, values: &[f64]) -> f64 {
        match self {
            Expr::Num(n) => *n,
            Expr::Series(i) => values.get(*i).copied().unwrap_or(0.0),
            Expr::Neg(e) => -e.eval(values),
            Expr::Bin(op, a, b) => {
                let (a, b) = (a.eval(values), b.eval(values));
                match op {
                    '+' => a + b,
                    '-' => a - b,
                    '*' => a * b,
                    _ if b == 0.0 => 0.0,
                    _ => a / b,
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Num(f64),
    Letter(char),
    Op(char),
    Open,
    Close,
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' => {}
            '+' | '-' | '*' | '/' => out.push(Token::Op(c)),
            '(' => out.push(Token::Open),
            ')' => out.push(Token::Close),
            c if c.is_ascii_alphabetic() => out.push(Token::Letter(c.to_ascii_uppercase())),
            c if c.is_ascii_digit() || c == '.' => {
                let start = i;
                while i + 1 < chars.len() && (chars[i + 1].is_ascii_digit() || chars[i + 1] == '.')
                {
                    i += 1;
                }
                let s: String = chars[start..=i].iter().collect();
                out.push(Token::Num(
                    s.parse().map_err(|_| format!("bad number {s:?}"))?,
                ));
            }
            other => return Err(format!("unexpected character {other:?}")),
        }
        i += 1;
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    series: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn sum(&mut self) -> Result<Expr, String> {
        let mut left = self.product()?;
        while let Some(Token::Op(op @ ('+' | '-'))) = self.peek().cloned() {
            self.pos += 1;
            left = Expr::Bin(op, Box::new(left), Box::new(self.product()?));
        }
        Ok(left)
    }

    fn product(&mut self) -> Result<Expr, String> {
        let mut left = self.unary()?;
        while let Some(Token::Op(op @ ('*' | '/'))) = self.peek().cloned() {
            self.pos += 1;
            left = Expr::Bin(op, Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        match self.peek().cloned() {
            Some(Token::Op('-')) => {
                self.pos += 1;
                Ok(Expr::Neg(Box::new(self.unary()?)))
            }
            Some(Token::Op('+')) => {
                self.pos += 1;
                self.unary()
            }
            _ => self.atom(),
        }
    }

    fn atom(&mut self) -> Result<Expr, String> {
        let token = self.peek().cloned();
        self.pos += 1;
        match token {
            Some(Token::Num(n)) => Ok(Expr::Num(n)),
            Some(Token::Letter(c)) => {
                let index = (c as u8 - b'A') as usize;
                if index < self.series {
                    Ok(Expr::Series(index))
                } else {
                    Err(format!("series {c} does not exist"))
                }
            }
            Some(Token::Open) => {
                let inner = self.sum()?;
                if self.peek() != Some(&Token::Close) {
                    return Err("missing closing parenthesis".to_string());
                }
                self.pos += 1;
                Ok(inner)
            }
            _ => Err("expected a number, a series letter or a parenthesis".to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(text: &str, values: &[f64]) -> f64 {
        Expr::parse(text, values.len(), "f").unwrap().eval(values)
    }

    #[test]
    fn precedence_parentheses_and_division_by_zero() {
        assert_eq!(eval("A+B*2", &[1.0, 3.0]), 7.0);
        assert_eq!(eval("(A+B)*2", &[1.0, 3.0]), 8.0);
        assert_eq!(eval("a / b", &[1.0, 0.0]), 0.0);
        assert_eq!(eval("-A - -2.5", &[1.0]), 1.5);
        assert_eq!(eval("A/B/2", &[8.0, 2.0]), 2.0);
    }

    #[test]
    fn errors() {
        assert!(Expr::parse("A+C", 2, "f").is_err());
        assert!(Expr::parse("(A", 1, "f").is_err());
        assert!(Expr::parse("A B", 2, "f").is_err());
        assert_eq!(
            Expr::parse("A$", 1, "x.formula").unwrap_err().field,
            "x.formula"
        );
    }
}
