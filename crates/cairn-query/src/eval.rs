//! Evaluating a parsed query on one log in memory (pipeline filters, category processors).
//!
//! The meaning of every field and value is the one the intake's SQL translation gives it, so
//! that a pipeline filter selects exactly the logs a search with the same text would find:
//! free text is a case-insensitive match of whole words (in order, for a phrase) in the
//! message, reserved fields compare exactly, tags are `key:value`, and `@attributes` compare
//! as strings, numbers or booleans, with `*` for "present".

use serde_json::Value as Json;

use crate::ast::{CmpOp, Field, Node, Piece, Value};

/// What a query can see of one log. The caller's own log type implements it, so this crate
/// stays free of any pipeline or storage type.
pub trait Log {
    fn message(&self) -> &str;
    /// As stored: folded by [`crate::normalise_status`]. A status that is not folded is
    /// folded before comparing, at the cost of an allocation.
    fn status(&self) -> &str;
    fn host(&self) -> &str;
    fn service(&self) -> &str;
    fn source(&self) -> &str;
    /// `key:value` or bare tags.
    fn tags(&self) -> &[String];
    /// The attribute at `path` (each step one object key), if present.
    fn attribute(&self, path: &[String]) -> Option<&Json>;
}

/// Whether `log` matches `node`.
///
/// Recursion follows the AST, whose depth the parser bounds ([`crate::MAX_NESTING`]).
pub fn matches<L: Log + ?Sized>(node: &Node, log: &L) -> bool {
    match node {
        Node::All => true,
        Node::And(items) => items.iter().all(|n| matches(n, log)),
        Node::Or(items) => items.iter().any(|n| matches(n, log)),
        Node::Not(inner) => !matches(inner, log),
        Node::Match { field, value, .. } => leaf(field, value, log),
    }
}

fn leaf<L: Log + ?Sized>(field: &Field, value: &Value, log: &L) -> bool {
    match field {
        Field::Text => text(value, log.message()),
        Field::Service => reserved(value, log.service()),
        Field::Source => reserved(value, log.source()),
        Field::Host => reserved(value, log.host()),
        Field::Status => {
            let stored = log.status();
            if reserved(value, stored) {
                return true;
            }
            // Only a status that is not already folded can match once folded.
            let folded = crate::normalise_status(stored);
            folded != stored && reserved(value, &folded)
        }
        Field::Tag(key) => tag(key, value, log.tags()),
        Field::Attr(path) => log.attribute(path).is_some_and(|v| attr(value, v)),
    }
}

fn reserved(value: &Value, actual: &str) -> bool {
    match value {
        Value::Exact(s) | Value::Phrase(s) => actual == s,
        Value::Wildcard(pieces) => glob(pieces, actual, false),
        Value::Exists => !actual.is_empty(),
        Value::Compare(..) | Value::Range { .. } => false,
    }
}

fn tag(key: &str, value: &Value, tags: &[String]) -> bool {
    let tags = || {
        tags.iter()
            .filter_map(|t| t.strip_prefix(key)?.strip_prefix(':'))
    };
    match value {
        Value::Exact(s) | Value::Phrase(s) => tags().any(|v| v == s),
        Value::Wildcard(pieces) => tags().any(|v| glob(pieces, v, false)),
        Value::Exists => tags().next().is_some(),
        Value::Compare(..) | Value::Range { .. } => false,
    }
}

fn attr(value: &Value, actual: &Json) -> bool {
    match value {
        Value::Exact(s) | Value::Phrase(s) => {
            let number = s.parse::<f64>().ok().filter(|n| n.is_finite());
            let scalar = |v: &Json| match v {
                Json::String(text) => text == s,
                Json::Number(n) => number.is_some_and(|want| n.as_f64() == Some(want)),
                Json::Bool(b) => s == if *b { "true" } else { "false" },
                _ => false,
            };
            match actual {
                // Datadog matches an array attribute when any element matches.
                Json::Array(items) => items.iter().any(scalar),
                other => scalar(other),
            }
        }
        Value::Wildcard(pieces) => match actual {
            Json::String(text) => glob(pieces, text, false),
            // SQLite's GLOB reads a number as its text.
            Json::Number(n) => glob(pieces, &n.to_string(), false),
            _ => false,
        },
        // Present, even as null, as `json_type(...) IS NOT NULL` says.
        Value::Exists => true,
        Value::Compare(op, want) => number_of(actual).is_some_and(|n| match op {
            CmpOp::Gt => n > *want,
            CmpOp::Ge => n >= *want,
            CmpOp::Lt => n < *want,
            CmpOp::Le => n <= *want,
        }),
        Value::Range { low, high } => number_of(actual).is_some_and(|n| {
            let above = low.is_none_or(|(lo, inclusive)| if inclusive { n >= lo } else { n > lo });
            let below = high.is_none_or(|(hi, inclusive)| if inclusive { n <= hi } else { n < hi });
            above && below
        }),
    }
}

/// Comparisons see numbers only: a numeric string is text to the SQL side too.
fn number_of(v: &Json) -> Option<f64> {
    match v {
        Json::Number(n) => n.as_f64(),
        _ => None,
    }
}

fn text(value: &Value, message: &str) -> bool {
    match value {
        Value::Exact(s) | Value::Phrase(s) => {
            if s.chars().any(char::is_alphanumeric) {
                phrase_in(s, message)
            } else {
                // No word to look for: the SQL side falls back to a substring test.
                contains_ignore_case(message, s)
            }
        }
        Value::Wildcard(pieces) => match pieces.as_slice() {
            // A word prefix is a full-text prefix query: some word starts with it.
            [Piece::Lit(prefix), Piece::AnyRun] if prefix.chars().all(char::is_alphanumeric) => {
                words(message).any(|w| starts_with_ignore_case(w, prefix))
            }
            // Anything else is `LIKE '%…%'`: a substring, ASCII case folded as SQLite does.
            _ => {
                let mut wrapped = Vec::with_capacity(pieces.len() + 2);
                wrapped.push(Piece::AnyRun);
                wrapped.extend(pieces.iter().cloned());
                wrapped.push(Piece::AnyRun);
                glob(&wrapped, message, true)
            }
        },
        Value::Exists => true,
        Value::Compare(..) | Value::Range { .. } => false,
    }
}

/// The words of `s` as the full-text tokenizer (unicode61) cuts them: runs of letters and
/// digits.
fn words(s: &str) -> impl Iterator<Item = &str> + Clone {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
}

/// Whether the words of `query` appear consecutively, in order, among the words of `message`.
fn phrase_in(query: &str, message: &str) -> bool {
    let wanted: Vec<&str> = words(query).collect();
    let Some(first) = wanted.first() else {
        return false;
    };
    let mut rest = words(message);
    loop {
        let Some(w) = rest.next() else {
            return false;
        };
        if !eq_ignore_case(w, first) {
            continue;
        }
        // Compare the following words without consuming `rest`, so an overlapping start
        // (`a a b` for `a b`) is still found.
        let mut after = rest.clone();
        if wanted[1..]
            .iter()
            .all(|q| after.next().is_some_and(|w| eq_ignore_case(w, q)))
        {
            return true;
        }
    }
}

/// Lower case without the common Latin diacritics, as the full-text tokenizer
/// (`unicode61 remove_diacritics 2`) compares words: `café` finds `CAFE`.
fn fold(c: char) -> impl Iterator<Item = char> {
    c.to_lowercase().map(strip_diacritic)
}

fn strip_diacritic(c: char) -> char {
    match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => 'a',
        'ç' | 'ć' | 'ĉ' | 'ċ' | 'č' => 'c',
        'ď' => 'd',
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' => 'e',
        'ĝ' | 'ğ' | 'ġ' | 'ģ' => 'g',
        'ĥ' => 'h',
        'ì' | 'í' | 'î' | 'ï' | 'ĩ' | 'ī' | 'ĭ' | 'į' => 'i',
        'ĵ' => 'j',
        'ķ' => 'k',
        'ĺ' | 'ļ' | 'ľ' => 'l',
        'ñ' | 'ń' | 'ņ' | 'ň' => 'n',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ō' | 'ŏ' | 'ő' => 'o',
        'ŕ' | 'ŗ' | 'ř' => 'r',
        'ś' | 'ŝ' | 'ş' | 'š' => 's',
        'ţ' | 'ť' => 't',
        'ù' | 'ú' | 'û' | 'ü' | 'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' => 'u',
        'ŵ' => 'w',
        'ý' | 'ÿ' | 'ŷ' => 'y',
        'ź' | 'ż' | 'ž' => 'z',
        other => other,
    }
}

fn eq_ignore_case(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    a.chars().flat_map(fold).eq(b.chars().flat_map(fold))
}

fn starts_with_ignore_case(word: &str, prefix: &str) -> bool {
    let mut w = word.chars().flat_map(fold);
    prefix.chars().flat_map(fold).all(|p| w.next() == Some(p))
}

fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    haystack.to_lowercase().contains(&needle.to_lowercase())
}

/// Matches `text` in full against `pieces`; with `ascii_fold`, ASCII letters match either case.
fn glob(pieces: &[Piece], text: &str, ascii_fold: bool) -> bool {
    let mut pat = Vec::with_capacity(pieces.len() * 4);
    for p in pieces {
        match p {
            Piece::Lit(s) => pat.extend(s.chars().map(GlobPart::Lit)),
            Piece::AnyRun => pat.push(GlobPart::Run),
            Piece::AnyChar => pat.push(GlobPart::One),
        }
    }
    glob_match(&pat, text, ascii_fold)
}

/// One element of a wildcard pattern: a literal character, `*` (any run) or `?` (one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GlobPart {
    Lit(char),
    Run,
    One,
}

/// Whether `text` matches `pat` whole; `ascii_fold` compares ASCII letters without case.
/// Shared with the intake's SQL `GLOB` stand-in, so the two agree on every pattern.
pub fn glob_match(pat: &[GlobPart], text: &str, ascii_fold: bool) -> bool {
    let same =
        |a: char, b: char| a == b || (ascii_fold && a.is_ascii() && a.eq_ignore_ascii_case(&b));
    let text: Vec<char> = text.chars().collect();
    // One backtrack point: linear in practice, never exponential.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pat.get(p) {
            Some(GlobPart::Run) => {
                star = Some((p, t));
                p += 1;
            }
            Some(GlobPart::One) => {
                p += 1;
                t += 1;
            }
            Some(GlobPart::Lit(c)) if same(*c, text[t]) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pat[p..].iter().all(|x| *x == GlobPart::Run)
}

/// A log made of plain parts, for callers (and tests) that hold no log type of their own.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlainLog {
    pub message: String,
    pub status: String,
    pub host: String,
    pub service: String,
    pub source: String,
    pub tags: Vec<String>,
    pub attributes: serde_json::Map<String, Json>,
}

impl Log for PlainLog {
    fn message(&self) -> &str {
        &self.message
    }
    fn status(&self) -> &str {
        &self.status
    }
    fn host(&self) -> &str {
        &self.host
    }
    fn service(&self) -> &str {
        &self.service
    }
    fn source(&self) -> &str {
        &self.source
    }
    fn tags(&self) -> &[String] {
        &self.tags
    }
    fn attribute(&self, path: &[String]) -> Option<&Json> {
        lookup(&self.attributes, path)
    }
}

/// The value at `path` in nested objects.
pub fn lookup<'a, S: AsRef<str>>(
    attributes: &'a serde_json::Map<String, Json>,
    path: &[S],
) -> Option<&'a Json> {
    let (first, rest) = path.split_first()?;
    let mut current = attributes.get(first.as_ref())?;
    for step in rest {
        current = current.as_object()?.get(step.as_ref())?;
    }
    Some(current)
}
