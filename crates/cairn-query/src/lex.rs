use crate::{QueryError, Span};

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// A run of word characters; each char carries whether it was backslash-escaped, because
    /// only unescaped `:`, `*`, `?`, `>` and `<` are syntax.
    Word(Vec<(char, bool)>),
    Phrase(String),
    LParen,
    RParen,
    /// `[` (inclusive) or `{` (exclusive).
    RangeOpen(bool),
    RangeClose(bool),
    And,
    Or,
    Not,
    /// `-` in front of a term.
    Minus,
    Eof,
}

#[derive(Debug, Clone)]
pub struct Token {
    pub tok: Tok,
    pub span: Span,
}

fn is_delimiter(c: char) -> bool {
    c.is_whitespace() || matches!(c, '(' | ')' | '[' | ']' | '{' | '}' | '"')
}

pub fn tokenise(query: &str) -> Result<Vec<Token>, QueryError> {
    let chars: Vec<char> = query.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let single = |tok| Token {
            tok,
            span: Span {
                start,
                end: start + 1,
            },
        };
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(single(Tok::LParen));
                i += 1;
            }
            ')' => {
                out.push(single(Tok::RParen));
                i += 1;
            }
            '[' | '{' => {
                out.push(single(Tok::RangeOpen(c == '[')));
                i += 1;
            }
            ']' | '}' => {
                out.push(single(Tok::RangeClose(c == ']')));
                i += 1;
            }
            '"' => {
                let mut text = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(QueryError {
                                column: start + 1,
                                message: "this quote is never closed".into(),
                            })
                        }
                        Some('"') => break,
                        Some('\\') if i + 1 < chars.len() => {
                            text.push(chars[i + 1]);
                            i += 2;
                        }
                        Some(&ch) => {
                            text.push(ch);
                            i += 1;
                        }
                    }
                }
                i += 1;
                out.push(Token {
                    tok: Tok::Phrase(text),
                    span: Span { start, end: i },
                });
            }
            '-' if chars
                .get(i + 1)
                .is_some_and(|n| !n.is_whitespace() && *n != ')') =>
            {
                out.push(single(Tok::Minus));
                i += 1;
            }
            _ => {
                let mut word = Vec::new();
                while i < chars.len() && !is_delimiter(chars[i]) {
                    if chars[i] == '\\' {
                        match chars.get(i + 1) {
                            Some(&next) => word.push((next, true)),
                            None => {
                                return Err(QueryError {
                                    column: i + 1,
                                    message:
                                        "a backslash must be followed by the character it escapes"
                                            .into(),
                                })
                            }
                        }
                        i += 2;
                    } else {
                        word.push((chars[i], false));
                        i += 1;
                    }
                }
                let plain: String = word.iter().map(|(c, _)| *c).collect();
                let escaped = word.iter().any(|(_, e)| *e);
                let tok = match plain.as_str() {
                    "AND" | "&&" if !escaped => Tok::And,
                    "OR" | "||" if !escaped => Tok::Or,
                    "NOT" if !escaped => Tok::Not,
                    _ => Tok::Word(word),
                };
                out.push(Token {
                    tok,
                    span: Span { start, end: i },
                });
            }
        }
    }
    out.push(Token {
        tok: Tok::Eof,
        span: Span {
            start: chars.len(),
            end: chars.len(),
        },
    });
    Ok(out)
}
