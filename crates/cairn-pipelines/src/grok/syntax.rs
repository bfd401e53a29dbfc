//! The text of grok rules: `name pattern` lines and the `%{matcher(args):attr:filter(args)}`
//! tokens inside a pattern. Knows nothing of what a matcher or filter means.

/// One argument of a matcher or filter call.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg {
    Str(String),
    Num(f64),
    /// A bare word, e.g. the sub-filter of `array(",", integer)`.
    Ident(String),
}

impl Arg {
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Arg::Str(s) | Arg::Ident(s) => Some(s),
            Arg::Num(_) => None,
        }
    }
}

/// `name(args…)`: a matcher or a filter as written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Call {
    pub name: String,
    pub args: Vec<Arg>,
    /// Whether parentheses were written, so `%{user}` can mean a helper and `%{date("…")}` never does.
    pub has_parens: bool,
}

/// `%{matcher:attr:filter}`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub matcher: Call,
    /// `None` when left out or empty (`%{data::json}`).
    pub attr: Option<String>,
    pub filter: Option<Call>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Piece<'a> {
    /// Regular expression text written between tokens, used as it is.
    Regex(&'a str),
    Token(Token),
}

/// One `name pattern` line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RuleLine<'a> {
    pub name: &'a str,
    pub pattern: &'a str,
    /// 1-based, counting blank lines too, so the number is the one an editor shows.
    pub line: usize,
}

/// Splits rule text into lines; blank lines are skipped. Errors carry (rule, line, message).
/// Helper names may also start with `_`, as in Datadog's own integration pipelines
/// (`_client_ip`, `_auth`), although its docs ask match rule names to start with a letter or digit.
pub(crate) fn rule_lines(
    text: &str,
    helpers: bool,
) -> Result<Vec<RuleLine<'_>>, (String, usize, String)> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            continue;
        }
        let (name, pattern) = match trimmed.find(char::is_whitespace) {
            Some(at) => (&trimmed[..at], trimmed[at..].trim()),
            None => (trimmed, ""),
        };
        if !valid_rule_name(name.strip_prefix('_').filter(|_| helpers).unwrap_or(name)) {
            return Err((
                name.to_string(),
                line,
                "a rule name has only letters, digits, `_` and `.`, and starts with a letter or digit"
                    .to_string(),
            ));
        }
        if pattern.is_empty() {
            return Err((
                name.to_string(),
                line,
                "the rule has no pattern".to_string(),
            ));
        }
        out.push(RuleLine {
            name,
            pattern,
            line,
        });
    }
    Ok(out)
}

fn valid_rule_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// Splits a pattern into regex text and `%{…}` tokens.
pub(crate) fn pieces(pattern: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = pattern;
    while let Some(at) = rest.find("%{") {
        if at > 0 {
            out.push(Piece::Regex(&rest[..at]));
        }
        let mut cursor = Cursor {
            text: &rest[at + 2..],
            pos: 0,
        };
        let token = cursor.token()?;
        rest = &cursor.text[cursor.pos..];
        out.push(Piece::Token(token));
    }
    if !rest.is_empty() {
        out.push(Piece::Regex(rest));
    }
    Ok(out)
}

struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_spaces(&mut self) {
        while matches!(self.peek(), Some(c) if c == ' ' || c == '\t') {
            self.bump();
        }
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.bump();
            true
        } else {
            false
        }
    }

    /// After `%{`, up to and including `}`.
    fn token(&mut self) -> Result<Token, String> {
        let matcher = self.call()?;
        if matcher.name.is_empty() {
            return Err("`%{` is not followed by a matcher name".to_string());
        }
        let mut attr = None;
        let mut filter = None;
        if self.eat(':') {
            let start = self.pos;
            while matches!(self.peek(), Some(c) if c != ':' && c != '}') {
                self.bump();
            }
            let name = self.text[start..self.pos].trim();
            if !name.is_empty() {
                attr = Some(name.to_string());
            }
            if self.eat(':') {
                let f = self.call()?;
                if f.name.is_empty() {
                    return Err(format!(
                        "`%{{{}:…:}}` has an empty filter name",
                        matcher.name
                    ));
                }
                filter = Some(f);
            }
        }
        if !self.eat('}') {
            return Err(format!(
                "`%{{{}…` is not closed by `}}` where expected",
                matcher.name
            ));
        }
        Ok(Token {
            matcher,
            attr,
            filter,
        })
    }

    fn call(&mut self) -> Result<Call, String> {
        self.skip_spaces();
        let start = self.pos;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == '_' || c == '.') {
            self.bump();
        }
        let name = self.text[start..self.pos].to_string();
        self.skip_spaces();
        let mut args = Vec::new();
        let has_parens = self.eat('(');
        if has_parens {
            self.skip_spaces();
            if !self.eat(')') {
                loop {
                    args.push(self.arg(&name)?);
                    self.skip_spaces();
                    if self.eat(',') {
                        continue;
                    }
                    if self.eat(')') {
                        break;
                    }
                    return Err(format!("the arguments of `{name}(` are not closed by `)`"));
                }
            }
            self.skip_spaces();
        }
        Ok(Call {
            name,
            args,
            has_parens,
        })
    }

    fn arg(&mut self, call: &str) -> Result<Arg, String> {
        self.skip_spaces();
        match self.peek() {
            Some(q @ ('"' | '\'')) => {
                self.bump();
                let mut s = String::new();
                loop {
                    match self.bump() {
                        None => return Err(format!("an argument of `{call}(` has no closing {q}")),
                        Some(c) if c == q => break,
                        // Only the quote and the backslash are escapes, so `regex("\d+")` keeps
                        // its regex escape and `regex("\\d+")` (Datadog's examples) means the same.
                        Some('\\') => match self.peek() {
                            Some(n) if n == q || n == '\\' => {
                                s.push(n);
                                self.bump();
                            }
                            _ => s.push('\\'),
                        },
                        Some(c) => s.push(c),
                    }
                }
                Ok(Arg::Str(s))
            }
            Some(c) if c.is_ascii_digit() || c == '-' || c == '+' || c == '.' => {
                let start = self.pos;
                while matches!(self.peek(), Some(c) if c.is_ascii_digit() || "+-.eE".contains(c)) {
                    self.bump();
                }
                let text = &self.text[start..self.pos];
                text.parse::<f64>()
                    .map(Arg::Num)
                    .map_err(|_| format!("`{text}` is not a number (in `{call}(`)"))
            }
            Some(c) if c.is_ascii_alphabetic() => {
                let start = self.pos;
                while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == '_' || c == ':')
                {
                    self.bump();
                }
                Ok(Arg::Ident(self.text[start..self.pos].to_string()))
            }
            _ => Err(format!(
                "an argument of `{call}(` is neither a quoted string nor a number"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_with_quoted_arguments_keep_braces_and_escapes() {
        let p = pieces(r#"a %{regex("[a-z]{2}\\d"):x} b %{data::keyvalue(":", "/")}"#).unwrap();
        assert_eq!(p.len(), 4);
        let Piece::Token(t) = &p[1] else { panic!() };
        assert_eq!(t.matcher.args, vec![Arg::Str(r"[a-z]{2}\d".to_string())]);
        assert_eq!(t.attr.as_deref(), Some("x"));
        let Piece::Token(t) = &p[3] else { panic!() };
        assert_eq!(t.attr, None);
        let f = t.filter.as_ref().unwrap();
        assert_eq!(f.name, "keyvalue");
        assert_eq!(f.args.len(), 2);
    }

    #[test]
    fn unclosed_token_is_an_error() {
        assert!(pieces("%{word:x").is_err());
        assert!(pieces(r#"%{regex("abc):x}"#).is_err());
    }
}
