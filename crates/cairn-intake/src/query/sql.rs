//! AST → SQL. Every piece of the user's text travels as a bound parameter; the SQL text is
//! assembled only from the fixed fragments in this file, so no query can change its shape.

use rusqlite::types::Value as SqlValue;

use cairn_query::{CmpOp, Field, Node, Piece, Value};

/// How free-text terms reach the full-text index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextMode {
    /// One index probe per candidate row: cheap when matches are common, so the first page
    /// fills after a few rows in time order.
    Correlated,
    /// All matching ids first: cheap when matches are rare.
    Materialized,
    /// All matching ids first, among the ids `lo..=hi` only (those of the rows the time range
    /// holds): a short range of a large store then reads a stretch of each term's list
    /// instead of every match (measured: 0.4 ms instead of 119 ms, bench/monitors).
    MaterializedWithin(i64, i64),
}

/// A SQL fragment and its parameters, numbered `?1`, `?2`, … in push order.
#[derive(Debug, Default, Clone)]
pub struct Sql {
    pub text: String,
    pub params: Vec<SqlValue>,
}

impl Sql {
    pub fn push(&mut self, fragment: &str) -> &mut Self {
        self.text.push_str(fragment);
        self
    }

    /// Binds `v` and writes its placeholder.
    pub fn bind(&mut self, v: impl Into<SqlValue>) -> &mut Self {
        let placeholder = self.placeholder(v);
        self.text.push_str(&placeholder);
        self
    }

    /// Binds `v` and returns its placeholder, for a value used more than once.
    pub fn placeholder(&mut self, v: impl Into<SqlValue>) -> String {
        self.params.push(v.into());
        format!("?{}", self.params.len())
    }
}

/// Appends a boolean SQL expression for `node` over the `logs` table (aliased `logs`). The
/// expression is never NULL, so `NOT` keeps logs that lack the field, as Datadog does.
pub fn to_sql(node: &Node, mode: TextMode, out: &mut Sql) {
    match node {
        Node::All => {
            out.push("1");
        }
        Node::And(items) | Node::Or(items) => {
            let joiner = if matches!(node, Node::And(_)) {
                " AND "
            } else {
                " OR "
            };
            out.push("(");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(joiner);
                }
                to_sql(item, mode, out);
            }
            out.push(")");
        }
        Node::Not(inner) => {
            out.push("NOT (");
            to_sql(inner, mode, out);
            out.push(")");
        }
        Node::Match { field, value, .. } => leaf(field, value, mode, out),
    }
}

/// Whether the rollup table (counts per minute, service, source, status) can answer
/// this predicate on its own.
pub fn only_reserved(node: &Node) -> bool {
    match node {
        Node::All => true,
        Node::And(items) | Node::Or(items) => items.iter().all(only_reserved),
        Node::Not(inner) => only_reserved(inner),
        Node::Match { field, .. } => field.in_rollup(),
    }
}

pub fn has_text(node: &Node) -> bool {
    match node {
        Node::All => false,
        Node::And(items) | Node::Or(items) => items.iter().any(has_text),
        Node::Not(inner) => has_text(inner),
        Node::Match { field, .. } => *field == Field::Text,
    }
}

fn leaf(field: &Field, value: &Value, mode: TextMode, out: &mut Sql) {
    match field {
        Field::Text => text_leaf(value, mode, out),
        Field::Service | Field::Source | Field::Status | Field::Host => {
            let column = field.column().expect("reserved fields have a column");
            match value {
                Value::Exact(s) | Value::Phrase(s) => out.push(column).push(" = ").bind(s.clone()),
                Value::Wildcard(pieces) => out.push(column).push(" GLOB ").bind(to_glob(pieces)),
                Value::Exists => out.push(column).push(" <> ''"),
                Value::Compare(..) | Value::Range { .. } => out.push("0"),
            };
        }
        Field::Tag(key) => {
            match value {
                Value::Exact(s) | Value::Phrase(s) => out
                    .push("instr(tags, ")
                    .bind(format!(",{key}:{s},"))
                    .push(") > 0"),
                Value::Wildcard(pieces) => out
                    .push("cairn_tag_glob(tags, ")
                    .bind(format!("{}:{}", glob_escape(key), to_glob(pieces)))
                    .push(")"),
                Value::Exists => out
                    .push("instr(tags, ")
                    .bind(format!(",{key}:"))
                    .push(") > 0"),
                Value::Compare(..) | Value::Range { .. } => out.push("0"),
            };
        }
        Field::Attr(path) => attr_leaf(&json_path(path), value, out),
    }
}

fn text_leaf(value: &Value, mode: TextMode, out: &mut Sql) {
    let fts = |query: String, out: &mut Sql| {
        match mode {
            TextMode::Correlated => out
                .push("EXISTS (SELECT 1 FROM logs_fts WHERE logs_fts MATCH ")
                .bind(query)
                .push(" AND logs_fts.rowid = logs.id)"),
            TextMode::Materialized => out
                .push("logs.id IN (SELECT rowid FROM logs_fts WHERE logs_fts MATCH ")
                .bind(query)
                .push(")"),
            TextMode::MaterializedWithin(lo, hi) => out
                .push("logs.id IN (SELECT rowid FROM logs_fts WHERE logs_fts MATCH ")
                .bind(query)
                .push(" AND rowid BETWEEN ")
                .bind(lo)
                .push(" AND ")
                .bind(hi)
                .push(")"),
        };
    };
    match value {
        Value::Exact(s) | Value::Phrase(s) if has_token(s) => fts(fts_string(s), out),
        Value::Exact(s) | Value::Phrase(s) => {
            out.push("instr(lower(message), ")
                .bind(s.to_lowercase())
                .push(") > 0");
        }
        Value::Wildcard(pieces) => match pieces.as_slice() {
            [Piece::Lit(prefix), Piece::AnyRun] if prefix.chars().all(char::is_alphanumeric) => {
                fts(format!("{} *", fts_string(prefix)), out)
            }
            _ => {
                out.push("message LIKE ")
                    .bind(format!("%{}%", to_like(pieces)))
                    .push(" ESCAPE '\\'");
            }
        },
        Value::Exists => {
            out.push("1");
        }
        Value::Compare(..) | Value::Range { .. } => {
            out.push("0");
        }
    }
}

fn attr_leaf(path: &str, value: &Value, out: &mut Sql) {
    let p = out.placeholder(path.to_owned());
    let extract = format!("json_extract(attributes, {p})");
    out.push("ifnull(");
    match value {
        Value::Exact(s) | Value::Phrase(s) => {
            let text = out.placeholder(s.clone());
            out.push(&format!("({extract} = {text}"));
            let mut element_test = format!("value = {text}");
            if let Some(n) = s.parse::<f64>().ok().filter(|n| n.is_finite()) {
                let num = out.placeholder(n);
                out.push(&format!(" OR {extract} = {num}"));
                element_test.push_str(&format!(" OR value = {num}"));
            }
            if s == "true" || s == "false" {
                out.push(&format!(" OR json_type(attributes, {p}) = {text}"));
            }
            // Datadog matches an array attribute when any element matches.
            out.push(&format!(
                " OR (json_type(attributes, {p}) = 'array' AND EXISTS (SELECT 1 FROM json_each(attributes, {p}) WHERE {element_test})))"
            ));
        }
        Value::Wildcard(pieces) => {
            let glob = out.placeholder(to_glob(pieces));
            out.push(&format!("{extract} GLOB {glob}"));
        }
        Value::Exists => {
            out.push(&format!("json_type(attributes, {p}) IS NOT NULL"));
        }
        Value::Compare(op, n) => {
            let num = out.placeholder(*n);
            let sym = match op {
                CmpOp::Gt => ">",
                CmpOp::Ge => ">=",
                CmpOp::Lt => "<",
                CmpOp::Le => "<=",
            };
            // json_type, not typeof: json_extract turns true into 1, which is no number.
            out.push(&format!(
                "(json_type(attributes, {p}) IN ('integer', 'real') AND {extract} {sym} {num})"
            ));
        }
        Value::Range { low, high } => {
            out.push(&format!(
                "(json_type(attributes, {p}) IN ('integer', 'real')"
            ));
            if let Some((n, inclusive)) = low {
                let num = out.placeholder(*n);
                out.push(&format!(
                    " AND {extract} {} {num}",
                    if *inclusive { ">=" } else { ">" }
                ));
            }
            if let Some((n, inclusive)) = high {
                let num = out.placeholder(*n);
                out.push(&format!(
                    " AND {extract} {} {num}",
                    if *inclusive { "<=" } else { "<" }
                ));
            }
            out.push(")");
        }
    }
    out.push(", 0)");
}

/// `$."a"."b"`: quoting each step keeps dots and brackets in names literal. The parser refuses
/// names with `"`, the one character a quoted step cannot hold.
/// SQLite's JSON path for the steps: each step quoted, so dots and spaces in a key are part
/// of it; inside the quotes SQLite reads `\\` as one backslash.
pub fn json_path<S: AsRef<str>>(path: &[S]) -> String {
    let mut out = String::from("$");
    for part in path {
        out.push_str(".\"");
        for c in part.as_ref().chars() {
            if c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    out
}

/// The path as the query language writes it, `a\\.b.c` for the key `a.b` holding `c`, so
/// that a listed path pasted after `@` names the same attribute.
pub fn dotted_path<S: AsRef<str>>(path: &[S]) -> String {
    let mut out = String::new();
    for (i, part) in path.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        for c in part.as_ref().chars() {
            if matches!(c, '.' | '\\' | ' ' | ':' | '(' | ')' | '"' | '*' | '?') {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out
}

fn has_token(s: &str) -> bool {
    s.chars().any(char::is_alphanumeric)
}

/// An FTS5 string literal: the text is tokenised the same way as messages, and its tokens must
/// appear in order (a phrase).
///
/// FTS5 reads its query as a C string, so a NUL would end it inside the literal ("unterminated
/// string", a 500 the fuzz test found); the tokenizer splits on NUL anyway, so a space in its
/// place finds the same tokens.
fn fts_string(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\"").replace('\0', " "))
}

fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '*' => out.push_str("[*]"),
            '?' => out.push_str("[?]"),
            '[' => out.push_str("[[]"),
            c => out.push(c),
        }
    }
    out
}

fn to_glob(pieces: &[Piece]) -> String {
    pieces
        .iter()
        .map(|p| match p {
            Piece::Lit(s) => glob_escape(s),
            Piece::AnyRun => "*".into(),
            Piece::AnyChar => "?".into(),
        })
        .collect()
}

fn to_like(pieces: &[Piece]) -> String {
    let mut out = String::new();
    for p in pieces {
        match p {
            Piece::Lit(s) => {
                for c in s.chars() {
                    if matches!(c, '%' | '_' | '\\') {
                        out.push('\\');
                    }
                    out.push(c);
                }
            }
            Piece::AnyRun => out.push('%'),
            Piece::AnyChar => out.push('_'),
        }
    }
    out
}

/// Matches `text` against a pattern in the GLOB dialect that [`to_glob`] writes: `*`, `?`, and
/// `[c]` for one literal character.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    use cairn_query::eval::GlobPart;
    let mut pat = Vec::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => pat.push(GlobPart::Run),
            '?' => pat.push(GlobPart::One),
            '[' => {
                let lit = chars.next().unwrap_or('[');
                if chars.peek() == Some(&']') {
                    chars.next();
                }
                pat.push(GlobPart::Lit(lit));
            }
            c => pat.push(GlobPart::Lit(c)),
        }
    }
    cairn_query::eval::glob_match(&pat, text, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matching_follows_the_written_dialect() {
        for (pat, text, want) in [
            ("env:pro*", "env:prod", true),
            ("env:pro*", "env:pr", false),
            ("*bob*", "xxbobyy", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("a[*]", "a*", true),
            ("a[*]", "ab", false),
            ("*a*b*c", "aXbYc", true),
            ("*", "", true),
        ] {
            assert_eq!(glob_matches(pat, text), want, "{pat} vs {text}");
        }
    }
}
