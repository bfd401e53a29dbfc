//! Datadog's metric query syntax, the subset the local intake answers:
//!
//! ```text
//! queries   := query (',' query)*
//! query     := agg ':' metric '{' scope '}' [ 'by' '{' key (',' key)* '}' ] modifier*
//! agg       := avg | sum | min | max
//! scope     := '*' | term (',' term)*          terms are ANDed
//! term      := ['!'] key ':' value | ['!'] tag   value and tag may hold '*' wildcards
//! modifier  := '.as_count()' | '.as_rate()' | '.rollup(' method [',' seconds] ')'
//! ```
//!
//! Errors carry the 1-based column (in characters) they point at, like the log query parser.

use crate::query::{glob_matches, QueryError};

/// Bounds on what one request may ask, so that a query string costs a bounded parse.
pub const MAX_QUERY_CHARS: usize = 4_096;
pub const MAX_QUERIES: usize = 16;
pub const MAX_SCOPE_TERMS: usize = 64;
pub const MAX_GROUP_KEYS: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agg {
    Avg,
    Sum,
    Min,
    Max,
}

impl Agg {
    pub fn name(self) -> &'static str {
        match self {
            Agg::Avg => "avg",
            Agg::Sum => "sum",
            Agg::Min => "min",
            Agg::Max => "max",
        }
    }

    fn parse(s: &str) -> Option<Agg> {
        match s {
            "avg" => Some(Agg::Avg),
            "sum" => Some(Agg::Sum),
            "min" => Some(Agg::Min),
            "max" => Some(Agg::Max),
            _ => None,
        }
    }

    /// Folds values; `None` for none.
    pub fn fold(self, values: impl Iterator<Item = f64>) -> Option<f64> {
        let mut n = 0usize;
        let mut acc = 0f64;
        for v in values {
            acc = if n == 0 {
                v
            } else {
                match self {
                    Agg::Avg | Agg::Sum => acc + v,
                    Agg::Min => acc.min(v),
                    Agg::Max => acc.max(v),
                }
            };
            n += 1;
        }
        match (n, self) {
            (0, _) => None,
            (n, Agg::Avg) => Some(acc / n as f64),
            _ => Some(acc),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsMode {
    Count,
    Rate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub negated: bool,
    /// `None` for a bare tag (`production`), matched against whole tags.
    pub key: Option<String>,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricQuery {
    /// This query's text, as written.
    pub text: String,
    pub agg: Agg,
    pub metric: String,
    pub scope: Vec<Term>,
    /// The scope as written (`*` when everything).
    pub scope_text: String,
    pub group_by: Vec<String>,
    pub as_mode: Option<AsMode>,
    pub rollup: Option<Agg>,
    pub rollup_secs: Option<i64>,
}

/// What a context offers a scope: its host, device and tags.
pub struct ContextTags<'a> {
    pub host: &'a str,
    pub device: &'a str,
    pub tags: &'a [String],
}

impl Term {
    fn matches(&self, c: &ContextTags) -> bool {
        let hit = match self.key.as_deref() {
            Some("host") => glob_matches(&self.value, c.host),
            Some("device") => glob_matches(&self.value, c.device),
            Some(key) => c.tags.iter().any(|t| {
                t.strip_prefix(key)
                    .and_then(|rest| rest.strip_prefix(':'))
                    .is_some_and(|v| glob_matches(&self.value, v))
            }),
            None => c.tags.iter().any(|t| glob_matches(&self.value, t)),
        };
        hit != self.negated
    }
}

impl MetricQuery {
    pub fn matches(&self, c: &ContextTags) -> bool {
        self.scope.iter().all(|t| t.matches(c))
    }
}

/// The values a context has for a group-by key: `host`, `device`, or every `key:` tag;
/// `N/A` when it has none, as Datadog shows it.
pub fn group_values(key: &str, c: &ContextTags) -> Vec<String> {
    let one = |v: &str| {
        vec![if v.is_empty() {
            "N/A".to_owned()
        } else {
            v.to_owned()
        }]
    };
    match key {
        "host" => one(c.host),
        "device" => one(c.device),
        _ => {
            let vals: Vec<String> = c
                .tags
                .iter()
                .filter_map(|t| t.strip_prefix(key)?.strip_prefix(':').map(str::to_owned))
                .collect();
            if vals.is_empty() {
                one("")
            } else {
                vals
            }
        }
    }
}

struct Parser<'a> {
    chars: Vec<(usize, char)>,
    text: &'a str,
    pos: usize,
}

fn err(column: usize, message: impl Into<String>) -> QueryError {
    QueryError {
        column,
        message: message.into(),
    }
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).map(|c| c.1)
    }

    /// 1-based column of the current character; the last one at the end.
    fn column(&self) -> usize {
        self.pos.min(self.chars.len().saturating_sub(1)) + 1
    }

    fn found(&self) -> String {
        match self.peek() {
            Some(c) => format!("found {c:?}"),
            None => "found end of query".into(),
        }
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char, after: &str) -> Result<(), QueryError> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(err(
                self.column(),
                format!("expected {c:?} {after}, {}", self.found()),
            ))
        }
    }

    fn byte_at(&self, pos: usize) -> usize {
        self.chars.get(pos).map_or(self.text.len(), |c| c.0)
    }

    fn word(&mut self, ok: impl Fn(char) -> bool) -> (usize, String) {
        self.skip_ws();
        let start = self.pos;
        while self.peek().is_some_and(&ok) {
            self.pos += 1;
        }
        let s = self.text[self.byte_at(start)..self.byte_at(self.pos)].to_owned();
        (start + 1, s)
    }

    fn query(&mut self) -> Result<MetricQuery, QueryError> {
        self.skip_ws();
        let begin = self.pos;
        let (col, agg) = self.word(|c| c.is_ascii_alphabetic());
        let agg = Agg::parse(&agg).ok_or_else(|| {
            err(
                col,
                format!(
                    "expected a space aggregator (avg, sum, min or max), {}",
                    if agg.is_empty() {
                        self.found()
                    } else {
                        format!("found {agg:?}")
                    }
                ),
            )
        })?;
        self.expect(':', "after the aggregator")?;
        let (col, metric) = self.word(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        if metric.is_empty() {
            return Err(err(
                col,
                format!("expected a metric name, {}", self.found()),
            ));
        }
        self.expect('{', "to open the scope")?;
        let (scope, scope_text) = self.scope()?;
        let mut q = MetricQuery {
            text: String::new(),
            agg,
            metric,
            scope,
            scope_text,
            group_by: Vec::new(),
            as_mode: None,
            rollup: None,
            rollup_secs: None,
        };
        self.skip_ws();
        let save = self.pos;
        let (_, by) = self.word(|c| c.is_ascii_alphabetic());
        if by == "by" {
            self.expect('{', "after 'by'")?;
            loop {
                let (col, key) = self.word(|c| !matches!(c, ',' | '}') && !c.is_whitespace());
                if key.is_empty() {
                    return Err(err(
                        col,
                        format!("expected a tag key to group by, {}", self.found()),
                    ));
                }
                if q.group_by.len() == MAX_GROUP_KEYS {
                    return Err(err(
                        col,
                        format!("more than {MAX_GROUP_KEYS} group-by keys"),
                    ));
                }
                q.group_by.push(key);
                if self.eat('}') {
                    break;
                }
                self.expect(',', "or '}' between group-by keys")?;
            }
        } else {
            self.pos = save;
        }
        while self.eat('.') {
            let (col, name) = self.word(|c| c.is_ascii_alphabetic() || c == '_');
            match name.as_str() {
                "as_count" | "as_rate" => {
                    self.expect('(', &format!("after {name}"))?;
                    self.expect(')', &format!("to close {name}("))?;
                    if q.as_mode.is_some() {
                        return Err(err(
                            col,
                            "only one of .as_count() and .as_rate() may be given",
                        ));
                    }
                    q.as_mode = Some(if name == "as_count" {
                        AsMode::Count
                    } else {
                        AsMode::Rate
                    });
                }
                "rollup" => {
                    self.expect('(', "after rollup")?;
                    let (col, m) = self.word(|c| c.is_ascii_alphabetic());
                    let m = Agg::parse(&m).ok_or_else(|| {
                        err(col, "expected a rollup method (avg, sum, min or max)")
                    })?;
                    if q.rollup.is_some() {
                        return Err(err(col, "only one .rollup() may be given"));
                    }
                    q.rollup = Some(m);
                    if self.eat(',') {
                        let (col, n) = self.word(|c| c.is_ascii_digit());
                        let secs: i64 = n
                            .parse()
                            .ok()
                            .filter(|&s| (1..=31_536_000).contains(&s))
                            .ok_or_else(|| {
                            err(
                                col,
                                "expected a rollup interval in whole seconds, 1 to 31536000",
                            )
                        })?;
                        q.rollup_secs = Some(secs);
                    }
                    self.expect(')', "to close rollup(")?;
                }
                _ => {
                    return Err(err(
                        col,
                        format!(
                            "unknown function {name:?}: expected as_count(), as_rate() or rollup()"
                        ),
                    ))
                }
            }
        }
        q.text = self.text[self.byte_at(begin)..self.byte_at(self.pos)]
            .trim()
            .to_owned();
        Ok(q)
    }

    fn scope(&mut self) -> Result<(Vec<Term>, String), QueryError> {
        let mut terms = Vec::new();
        let mut written = Vec::new();
        self.skip_ws();
        if self.eat('*') {
            self.expect('}', "after '*'")?;
            return Ok((terms, "*".into()));
        }
        loop {
            self.skip_ws();
            let col = self.column();
            let negated = self.eat('!');
            let (vcol, raw) = self.word(|c| !matches!(c, ',' | '}' | '{'));
            let raw = raw.trim_end().to_owned();
            if raw.is_empty() {
                return Err(err(
                    vcol,
                    format!(
                        "expected a tag such as env:prod or !host:db*, {}",
                        self.found()
                    ),
                ));
            }
            if terms.len() == MAX_SCOPE_TERMS {
                return Err(err(col, format!("more than {MAX_SCOPE_TERMS} scope terms")));
            }
            written.push(format!("{}{raw}", if negated { "!" } else { "" }));
            let (key, value) = match raw.split_once(':') {
                Some((k, v)) if !k.is_empty() => (Some(k.to_owned()), v.to_owned()),
                _ => (None, raw),
            };
            terms.push(Term {
                negated,
                key,
                value,
            });
            if self.eat('}') {
                break;
            }
            self.expect(',', "or '}' between scope terms")?;
        }
        Ok((terms, written.join(",")))
    }
}

/// Parses one or more comma-separated queries.
pub fn parse_queries(text: &str) -> Result<Vec<MetricQuery>, QueryError> {
    let n = text.chars().count();
    if n > MAX_QUERY_CHARS {
        return Err(err(
            MAX_QUERY_CHARS + 1,
            format!("the query is {n} characters, over the limit of {MAX_QUERY_CHARS}"),
        ));
    }
    let mut p = Parser {
        chars: text.char_indices().collect(),
        text,
        pos: 0,
    };
    let mut out = Vec::new();
    loop {
        if out.len() == MAX_QUERIES {
            return Err(err(p.column(), format!("more than {MAX_QUERIES} queries")));
        }
        out.push(p.query()?);
        if p.eat(',') {
            continue;
        }
        p.skip_ws();
        if p.peek().is_none() {
            return Ok(out);
        }
        return Err(err(
            p.column(),
            format!(
                "expected ',' before another query, 'by', or a function such as .as_count(), {}",
                p.found()
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_query_parses() {
        let q = parse_queries(
            "sum:a.b_c{env:prod, !host:db*,solo} by {host,env}.as_count().rollup(max, 60)",
        )
        .unwrap();
        assert_eq!(q.len(), 1);
        let q = &q[0];
        assert_eq!(q.agg, Agg::Sum);
        assert_eq!(q.metric, "a.b_c");
        assert_eq!(q.scope_text, "env:prod,!host:db*,solo");
        assert!(q.scope[1].negated);
        assert_eq!(q.scope[2].key, None);
        assert_eq!(q.group_by, ["host", "env"]);
        assert_eq!(q.as_mode, Some(AsMode::Count));
        assert_eq!((q.rollup, q.rollup_secs), (Some(Agg::Max), Some(60)));
    }

    #[test]
    fn errors_name_the_column() {
        for (q, col, needle) in [
            ("avgg:x{*}", 1, "space aggregator"),
            ("avg x{*}", 5, "':'"),
            ("avg:{*}", 5, "metric name"),
            ("avg:x{*", 7, "'}'"),
            ("avg:x{a:b,}", 11, "expected a tag"),
            ("avg:x{*} by host", 13, "'{'"),
            ("avg:x{*}.as_counts()", 10, "unknown function"),
            ("avg:x{*}.rollup(median)", 17, "rollup method"),
            ("avg:x{*} avg:y{*}", 10, "expected ','"),
            ("avg:x{*}.as_rate().as_count()", 20, "only one"),
        ] {
            let e = parse_queries(q).unwrap_err();
            assert_eq!(e.column, col, "{q}: {e}");
            assert!(e.message.contains(needle), "{q}: {e}");
        }
    }
}
