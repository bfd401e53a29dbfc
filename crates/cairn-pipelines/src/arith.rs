//! The arithmetic processor's formulas: `+ - * / %`, parentheses, numbers and attribute
//! names. A `-` between names needs spaces around it, as Datadog documents, because
//! `start-time` is one attribute name.

use crate::event::Target;
use crate::Event;

/// Deepest nesting of parentheses and unary minus a formula may have: the parser and the
/// evaluator recurse per level.
const MAX_DEPTH: usize = 32;

#[derive(Debug)]
pub(crate) enum Expr {
    Num(f64),
    Attr(Target),
    Neg(Box<Expr>),
    Bin(Op, Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Name(String),
    Op(Op),
    Open,
    Close,
}

fn tokenise(s: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Tok::Open);
                i += 1;
            }
            ')' => {
                out.push(Tok::Close);
                i += 1;
            }
            '+' => {
                out.push(Tok::Op(Op::Add));
                i += 1;
            }
            '*' => {
                out.push(Tok::Op(Op::Mul));
                i += 1;
            }
            '/' => {
                out.push(Tok::Op(Op::Div));
                i += 1;
            }
            '%' => {
                out.push(Tok::Op(Op::Rem));
                i += 1;
            }
            '-' => {
                out.push(Tok::Op(Op::Sub));
                i += 1;
            }
            _ => {
                // A word runs to the next space, operator or parenthesis; `-` inside it is
                // part of the name.
                let start = i;
                while i < chars.len()
                    && !chars[i].is_whitespace()
                    && !matches!(chars[i], '(' | ')' | '+' | '*' | '/' | '%')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                match word.parse::<f64>() {
                    Ok(n) if n.is_finite() => out.push(Tok::Num(n)),
                    _ => {
                        if word.split('.').any(str::is_empty) {
                            return Err(format!("{word:?} is not an attribute name"));
                        }
                        out.push(Tok::Name(word))
                    }
                }
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
}

impl Expr {
    pub(crate) fn parse(s: &str) -> Result<Expr, String> {
        let toks = tokenise(s)?;
        if toks.is_empty() {
            return Err("empty formula".into());
        }
        let mut p = Parser {
            toks,
            pos: 0,
            depth: 0,
        };
        let e = p.sum()?;
        match p.toks.get(p.pos) {
            None => Ok(e),
            Some(Tok::Close) => Err("this ')' has no matching '('".into()),
            Some(t) => Err(format!("unexpected {}", describe(t))),
        }
    }

    /// The formula's value on `event`; `None` skips the processor (a missing or non-numeric
    /// attribute without `replace_missing`, a division by zero, a result that is no number).
    pub(crate) fn eval(&self, event: &Event, replace_missing: bool) -> Option<f64> {
        let n = match self {
            Expr::Num(n) => *n,
            Expr::Attr(t) => match t.get(event).as_deref().and_then(number_of) {
                Some(n) => n,
                None if replace_missing => 0.0,
                None => return None,
            },
            Expr::Neg(e) => -e.eval(event, replace_missing)?,
            Expr::Bin(op, a, b) => {
                let a = a.eval(event, replace_missing)?;
                let b = b.eval(event, replace_missing)?;
                match op {
                    Op::Add => a + b,
                    Op::Sub => a - b,
                    Op::Mul => a * b,
                    Op::Div if b == 0.0 => return None,
                    Op::Div => a / b,
                    Op::Rem if b == 0.0 => return None,
                    Op::Rem => a % b,
                }
            }
        };
        n.is_finite().then_some(n)
    }
}

/// A number, or text that is one (grok output is often text).
fn number_of(v: &serde_json::Value) -> Option<f64> {
    match v {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok().filter(|n| n.is_finite()),
        _ => None,
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Num(n) => format!("number {n}"),
        Tok::Name(n) => format!("{n:?}"),
        Tok::Op(_) => "an operator".into(),
        Tok::Open => "'('".into(),
        Tok::Close => "')'".into(),
    }
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn sum(&mut self) -> Result<Expr, String> {
        let mut left = self.product()?;
        while let Some(Tok::Op(op @ (Op::Add | Op::Sub))) = self.peek().cloned() {
            self.pos += 1;
            let right = self.product()?;
            left = Expr::Bin(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn product(&mut self) -> Result<Expr, String> {
        let mut left = self.unary()?;
        while let Some(Tok::Op(op @ (Op::Mul | Op::Div | Op::Rem))) = self.peek().cloned() {
            self.pos += 1;
            let right = self.unary()?;
            left = Expr::Bin(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn deeper(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("nested deeper than {MAX_DEPTH} levels"));
        }
        Ok(())
    }

    fn unary(&mut self) -> Result<Expr, String> {
        match self.peek().cloned() {
            Some(Tok::Op(Op::Sub)) => {
                self.pos += 1;
                self.deeper()?;
                let inner = self.unary()?;
                self.depth -= 1;
                Ok(Expr::Neg(Box::new(inner)))
            }
            Some(Tok::Open) => {
                self.pos += 1;
                self.deeper()?;
                let inner = self.sum()?;
                if self.peek() != Some(&Tok::Close) {
                    return Err("expected ')'".into());
                }
                self.pos += 1;
                self.depth -= 1;
                Ok(inner)
            }
            Some(Tok::Num(n)) => {
                self.pos += 1;
                Ok(Expr::Num(n))
            }
            Some(Tok::Name(name)) => {
                self.pos += 1;
                Ok(Expr::Attr(Target::parse(&name)))
            }
            Some(t) => Err(format!(
                "expected a number or an attribute, found {}",
                describe(&t)
            )),
            None => Err("expected a number or an attribute at the end".into()),
        }
    }
}
