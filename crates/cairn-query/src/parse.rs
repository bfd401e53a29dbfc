use crate::ast::{CmpOp, Field, Node, Piece, Span, Value};
use crate::lex::{tokenise, Tok, Token};
use crate::QueryError;

/// Longest query accepted, in characters. Any web page can make the browser send a query (an
/// `<img>` or a link), so the parser's work must be bounded before it starts.
pub const MAX_QUERY_CHARS: usize = 16_384;
/// Deepest nesting of parentheses and `NOT`/`-` accepted: the parser, the SQL translation and
/// SQLite all recurse per level.
pub const MAX_NESTING: usize = 64;
/// Most terms (values, phrases, ranges) in one query: SQLite refuses an expression tree deeper
/// than 1,000, and a list of N terms is N deep.
pub const MAX_TERMS: usize = 500;

/// Parses a query in Datadog's log search syntax. An empty query matches everything.
///
/// Precedence, loosest first: `OR`, then `AND` (written or implied by juxtaposition), then
/// `NOT` / `-`. Only upper-case `AND`, `OR`, `NOT` are operators.
pub fn parse(query: &str) -> Result<Node, QueryError> {
    if query.chars().nth(MAX_QUERY_CHARS).is_some() {
        return Err(Parser::column_error(
            MAX_QUERY_CHARS + 1,
            format!("query longer than {MAX_QUERY_CHARS} characters"),
        ));
    }
    let mut p = Parser {
        toks: tokenise(query)?,
        pos: 0,
        len_chars: query.chars().count(),
        open_groups: Vec::new(),
        depth: 0,
        terms: 0,
    };
    if p.peek().tok == Tok::Eof {
        return Ok(Node::All);
    }
    let node = p.or(None)?;
    let t = p.peek().clone();
    match t.tok {
        Tok::Eof => Ok(node),
        Tok::RParen => Err(p.error_at(&t, "this ')' has no matching '('".into())),
        _ => Err(p.error_at(&t, format!("unexpected {}", describe(&t.tok)))),
    }
}

struct Parser {
    toks: Vec<Token>,
    pos: usize,
    len_chars: usize,
    /// Columns of the '(' still open, innermost last, for messages about the missing ')'.
    open_groups: Vec<usize>,
    /// Current nesting of groups and negations.
    depth: usize,
    /// Terms seen so far.
    terms: usize,
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Word(w) => format!("'{}'", w.iter().map(|(c, _)| *c).collect::<String>()),
        Tok::Phrase(_) => "a quoted phrase".into(),
        Tok::LParen => "'('".into(),
        Tok::RParen => "')'".into(),
        Tok::RangeOpen(true) => "'['".into(),
        Tok::RangeOpen(false) => "'{'".into(),
        Tok::RangeClose(true) => "']'".into(),
        Tok::RangeClose(false) => "'}'".into(),
        Tok::And => "'AND'".into(),
        Tok::Or => "'OR'".into(),
        Tok::Not => "'NOT'".into(),
        Tok::Minus => "'-'".into(),
        Tok::Eof => "end of query".into(),
    }
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.toks[self.pos]
    }

    fn next(&mut self) -> Token {
        let t = self.toks[self.pos].clone();
        if t.tok != Tok::Eof {
            self.pos += 1;
        }
        t
    }

    /// Errors at end of query point at the last character, where the reader's eye already is.
    fn error_at(&self, t: &Token, message: String) -> QueryError {
        let column = if t.tok == Tok::Eof {
            self.len_chars.max(1)
        } else {
            t.span.start + 1
        };
        QueryError { column, message }
    }

    fn column_error(column: usize, message: String) -> QueryError {
        QueryError { column, message }
    }

    fn missing_operand(&self, after: &str) -> QueryError {
        let t = self.peek();
        let wanted = if self.open_groups.is_empty() {
            "a value"
        } else {
            "')' or a value"
        };
        self.error_at(
            t,
            format!(
                "expected {wanted} after {after}, found {}",
                describe(&t.tok)
            ),
        )
    }

    fn starts_operand(tok: &Tok) -> bool {
        matches!(
            tok,
            Tok::Word(_) | Tok::Phrase(_) | Tok::LParen | Tok::Not | Tok::Minus | Tok::RangeOpen(_)
        )
    }

    fn or(&mut self, ctx: Option<&Field>) -> Result<Node, QueryError> {
        let mut items = vec![self.and(ctx)?];
        while self.peek().tok == Tok::Or {
            self.next();
            if !Self::starts_operand(&self.peek().tok) {
                return Err(self.missing_operand("'OR'"));
            }
            items.push(self.and(ctx)?);
        }
        Ok(if items.len() == 1 {
            items.pop().expect("one item")
        } else {
            Node::Or(items)
        })
    }

    fn and(&mut self, ctx: Option<&Field>) -> Result<Node, QueryError> {
        let mut items = vec![self.unary(ctx)?];
        loop {
            if self.peek().tok == Tok::And {
                self.next();
                if !Self::starts_operand(&self.peek().tok) {
                    return Err(self.missing_operand("'AND'"));
                }
            } else if !Self::starts_operand(&self.peek().tok) {
                break;
            }
            items.push(self.unary(ctx)?);
        }
        Ok(if items.len() == 1 {
            items.pop().expect("one item")
        } else {
            Node::And(items)
        })
    }

    /// Enters one level of nesting at `t`, refusing past [`MAX_NESTING`].
    fn deeper(&mut self, t: &Token) -> Result<(), QueryError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(self.error_at(
                t,
                format!("nesting deeper than {MAX_NESTING} levels of parentheses and NOT"),
            ));
        }
        Ok(())
    }

    fn unary(&mut self, ctx: Option<&Field>) -> Result<Node, QueryError> {
        match self.peek().tok {
            Tok::Not | Tok::Minus => {
                let op = self.next();
                if !Self::starts_operand(&self.peek().tok) {
                    return Err(self.missing_operand(&describe(&op.tok)));
                }
                self.deeper(&op)?;
                let inner = self.unary(ctx)?;
                self.depth -= 1;
                Ok(Node::Not(Box::new(inner)))
            }
            _ => {
                let t = self.peek().clone();
                if matches!(t.tok, Tok::Word(_) | Tok::Phrase(_)) {
                    self.terms += 1;
                    if self.terms > MAX_TERMS {
                        return Err(
                            self.error_at(&t, format!("more than {MAX_TERMS} terms in one query"))
                        );
                    }
                }
                self.primary(ctx)
            }
        }
    }

    fn primary(&mut self, ctx: Option<&Field>) -> Result<Node, QueryError> {
        let t = self.next();
        match t.tok {
            Tok::LParen => self.group(&t, ctx),
            Tok::Phrase(text) => Ok(Node::Match {
                field: ctx.cloned().unwrap_or(Field::Text),
                value: Value::Phrase(fold_status(ctx, text)),
                span: t.span,
            }),
            Tok::Word(w) => self.word(w, t.span, ctx),
            Tok::RangeOpen(_) => match ctx {
                Some(f) => self.range(f.clone(), &t),
                None => Err(self.error_at(
                    &t,
                    "a range needs an attribute in front, e.g. @duration_ms:[10 TO 20]".into(),
                )),
            },
            _ => {
                let wanted = if self.open_groups.is_empty() {
                    "a value"
                } else {
                    "')' or a value"
                };
                Err(self.error_at(&t, format!("expected {wanted}, found {}", describe(&t.tok))))
            }
        }
    }

    fn group(&mut self, open: &Token, ctx: Option<&Field>) -> Result<Node, QueryError> {
        self.deeper(open)?;
        self.open_groups.push(open.span.start + 1);
        if self.peek().tok == Tok::RParen {
            let t = self.peek().clone();
            return Err(self.error_at(&t, "expected a value inside '( )'".into()));
        }
        let inner = self.or(ctx)?;
        let t = self.next();
        if t.tok != Tok::RParen {
            return Err(self.error_at(
                &t,
                format!(
                    "expected ')' to close the '(' at column {}, found {}",
                    open.span.start + 1,
                    describe(&t.tok)
                ),
            ));
        }
        self.open_groups.pop();
        self.depth -= 1;
        Ok(inner)
    }

    fn word(
        &mut self,
        w: Vec<(char, bool)>,
        span: Span,
        ctx: Option<&Field>,
    ) -> Result<Node, QueryError> {
        let colon = w.iter().position(|&(c, esc)| c == ':' && !esc);
        let Some(colon) = colon.filter(|&i| i > 0) else {
            if colon == Some(0) {
                return Err(Self::column_error(
                    span.start + 1,
                    "expected a field name before ':'".into(),
                ));
            }
            let field = ctx.cloned().unwrap_or(Field::Text);
            let value = value_of(&w, &field, span.start)?;
            return Ok(match (&field, value) {
                (Field::Text, Value::Exists) => Node::All,
                (_, value) => Node::Match { field, value, span },
            });
        };
        if ctx.is_some() {
            return Err(Self::column_error(
                span.start + 1,
                "a field cannot be used inside another field's '( )'".into(),
            ));
        }
        let field = field_of(&w[..colon], span.start)?;
        let rest = &w[colon + 1..];
        if !rest.is_empty() {
            let value = value_of(rest, &field, span.start + colon + 1)?;
            return Ok(Node::Match { field, value, span });
        }
        let next = self.peek().clone();
        let adjacent = next.span.start == span.end;
        match next.tok {
            Tok::LParen if adjacent => {
                self.next();
                self.group(&next, Some(&field))
            }
            Tok::Phrase(text) if adjacent => {
                self.next();
                Ok(Node::Match {
                    value: Value::Phrase(fold_status(Some(&field), text)),
                    field,
                    span: Span {
                        start: span.start,
                        end: next.span.end,
                    },
                })
            }
            Tok::RangeOpen(_) if adjacent => {
                self.next();
                self.range(field, &next)
            }
            _ => {
                let name: String = w[..=colon].iter().map(|(c, _)| *c).collect();
                Err(Self::column_error(
                    (span.end + 1).min(self.len_chars.max(1)),
                    format!("expected a value right after '{name}'"),
                ))
            }
        }
    }

    fn range(&mut self, field: Field, open: &Token) -> Result<Node, QueryError> {
        if !matches!(field, Field::Attr(_)) {
            return Err(self.error_at(
                open,
                "ranges apply to @attributes, e.g. @duration_ms:[10 TO 20]".into(),
            ));
        }
        let Tok::RangeOpen(low_inclusive) = open.tok else {
            unreachable!("range() is only called on '[' or '{{'")
        };
        let low = self.bound()?;
        let to = self.next();
        if !matches!(&to.tok, Tok::Word(w) if w.iter().map(|(c, _)| *c).eq("TO".chars())) {
            return Err(self.error_at(
                &to,
                format!("expected 'TO' in the range, found {}", describe(&to.tok)),
            ));
        }
        let high = self.bound()?;
        let close = self.next();
        let Tok::RangeClose(high_inclusive) = close.tok else {
            return Err(self.error_at(
                &close,
                format!(
                    "expected ']' or '}}' to close the range, found {}",
                    describe(&close.tok)
                ),
            ));
        };
        Ok(Node::Match {
            field,
            value: Value::Range {
                low: low.map(|n| (n, low_inclusive)),
                high: high.map(|n| (n, high_inclusive)),
            },
            span: Span {
                start: open.span.start,
                end: close.span.end,
            },
        })
    }

    fn bound(&mut self) -> Result<Option<f64>, QueryError> {
        let t = self.next();
        let (negative, word_tok) = if t.tok == Tok::Minus {
            (true, self.next())
        } else {
            (false, t.clone())
        };
        if let Tok::Word(w) = &word_tok.tok {
            let text: String = w.iter().map(|(c, _)| *c).collect();
            if text == "*" && !negative {
                return Ok(None);
            }
            if let Some(n) = parse_number(&text) {
                return Ok(Some(if negative { -n } else { n }));
            }
        }
        Err(self.error_at(
            &t,
            format!(
                "expected a number or '*' in the range, found {}",
                describe(&word_tok.tok)
            ),
        ))
    }
}

fn parse_number(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|n| n.is_finite())
}

fn field_of(name: &[(char, bool)], start: usize) -> Result<Field, QueryError> {
    if name.iter().any(|&(c, esc)| !esc && (c == '*' || c == '?')) {
        return Err(Parser::column_error(
            start + 1,
            "a field name cannot contain wildcards".into(),
        ));
    }
    if name.first() == Some(&('@', false)) {
        let parts = split_path(&name[1..]);
        let name: String = name.iter().map(|(c, _)| *c).collect();
        // SQLite's JSON paths can hold neither a double quote nor a NUL.
        if parts
            .iter()
            .any(|p| p.is_empty() || p.contains('"') || p.contains('\0'))
        {
            return Err(Parser::column_error(
                start + 1,
                format!("'{name}' is not an attribute path (use @name or @outer.inner)"),
            ));
        }
        return Ok(Field::Attr(parts));
    }
    let name: String = name.iter().map(|(c, _)| *c).collect();
    Ok(match name.as_str() {
        "service" => Field::Service,
        "source" => Field::Source,
        "status" => Field::Status,
        "host" => Field::Host,
        _ => Field::Tag(name),
    })
}

/// An attribute path split at its unescaped dots: `a\\.b.c` is the key `a.b`, then `c`.
fn split_path(path: &[(char, bool)]) -> Vec<String> {
    let mut parts = vec![String::new()];
    for &(c, escaped) in path {
        if c == '.' && !escaped {
            parts.push(String::new());
        } else {
            parts.last_mut().expect("never empty").push(c);
        }
    }
    parts
}

/// The same split for a path given as plain text (a `group_by` facet, a measure): a
/// backslash makes the next character part of the key.
pub fn split_path_text(path: &str) -> Vec<String> {
    let mut chars = Vec::with_capacity(path.len());
    let mut it = path.chars();
    while let Some(c) = it.next() {
        match c {
            '\\' => chars.push((it.next().unwrap_or('\\'), true)),
            c => chars.push((c, false)),
        }
    }
    split_path(&chars)
}

fn value_of(w: &[(char, bool)], field: &Field, start: usize) -> Result<Value, QueryError> {
    if w == [('*', false)] {
        return Ok(Value::Exists);
    }
    let text: String = w.iter().map(|(c, _)| *c).collect();
    // Free text has no numbers to compare, so `<img` or `>>>` there are just words.
    let op = match w {
        _ if *field == Field::Text => None,
        [('>', false), ('=', _), ..] => Some((CmpOp::Ge, 2)),
        [('<', false), ('=', _), ..] => Some((CmpOp::Le, 2)),
        [('>', false), ..] => Some((CmpOp::Gt, 1)),
        [('<', false), ..] => Some((CmpOp::Lt, 1)),
        _ => None,
    };
    if let Some((op, skip)) = op {
        if !matches!(field, Field::Attr(_)) {
            return Err(Parser::column_error(
                start + 1,
                "comparisons apply to @attributes, e.g. @duration_ms:>100".into(),
            ));
        }
        let number: String = text.chars().skip(skip).collect();
        // With nothing after the operator, the operator itself: a column past the end of the
        // query points at nothing.
        let column = start + skip + usize::from(!number.is_empty());
        return match parse_number(&number) {
            Some(n) => Ok(Value::Compare(op, n)),
            None => Err(Parser::column_error(
                column,
                format!(
                    "expected a number after '{}', found '{number}'",
                    &text[..skip]
                ),
            )),
        };
    }
    let fold = |s: String| fold_status(Some(field), s);
    if !w.iter().any(|&(c, esc)| !esc && (c == '*' || c == '?')) {
        return Ok(Value::Exact(fold(text)));
    }
    // Part of a status is not a status, so a wildcard's pieces are only lower-cased.
    let fold_lit = |s: String| {
        if *field == Field::Status {
            s.to_ascii_lowercase()
        } else {
            s
        }
    };
    let mut pieces = Vec::new();
    let mut lit = String::new();
    for &(c, esc) in w {
        match (c, esc) {
            ('*', false) | ('?', false) => {
                if !lit.is_empty() {
                    pieces.push(Piece::Lit(fold_lit(std::mem::take(&mut lit))));
                }
                let wildcard = if c == '*' {
                    Piece::AnyRun
                } else {
                    Piece::AnyChar
                };
                if !(wildcard == Piece::AnyRun && pieces.last() == Some(&Piece::AnyRun)) {
                    pieces.push(wildcard);
                }
            }
            _ => lit.push(c),
        }
    }
    if !lit.is_empty() {
        pieces.push(Piece::Lit(fold_lit(lit)));
    }
    Ok(Value::Wildcard(pieces))
}

/// Statuses are stored lower-case (see [`crate::normalise_status`]), so `status:ERROR` works.
fn fold_status(field: Option<&Field>, s: String) -> String {
    if field == Some(&Field::Status) {
        crate::normalise_status(&s)
    } else {
        s
    }
}
