//! The log monitor query: `logs("<search>").index("*").rollup("count").by("host").last("5m") > 10`,
//! Datadog's shape. Parsed by hand so every error names its column (1-based, in characters).

use std::fmt;

use crate::query::Node;

/// A comparison of the rolled-up value with a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Op {
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
}

impl Op {
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Gt => value > threshold,
            Op::Ge => value >= threshold,
            Op::Lt => value < threshold,
            Op::Le => value <= threshold,
        }
    }

    /// Whether a bigger value is worse (`>`, `>=`): thresholds must then rise from the
    /// recovery ones to warning to critical.
    pub fn above(self) -> bool {
        matches!(self, Op::Gt | Op::Ge)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
        }
    }
}

/// What is computed over the window's logs.
#[derive(Debug, Clone, PartialEq)]
pub enum Rollup {
    Count,
    /// Distinct values of a facet (`@attr`, `host`, a tag key …).
    Cardinality(String),
    /// `avg`, `sum`, `min` or `max` of a numeric `@measure`.
    Measure(&'static str, String),
}

impl Rollup {
    /// The aggregation and metric of the Logs Aggregate API that computes it.
    pub fn compute(&self) -> (&'static str, Option<String>) {
        match self {
            Rollup::Count => ("count", None),
            Rollup::Cardinality(f) => ("cardinality", Some(f.clone())),
            Rollup::Measure(agg, m) => (agg, Some(m.clone())),
        }
    }
}

#[derive(Debug, Clone)]
pub struct MonitorQuery {
    /// The search query inside `logs("…")`, Datadog's log search syntax.
    pub search: String,
    pub node: Node,
    pub rollup: Rollup,
    /// Up to two facets; empty for a simple alert (one group, `*`).
    pub by: Vec<String>,
    pub window_ms: i64,
    pub op: Op,
    pub threshold: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct MonitorQueryError {
    pub column: usize,
    pub message: String,
}

pub const MAX_BY: usize = 2;
/// Datadog's log monitors look back at most two days.
pub const MAX_WINDOW_MS: i64 = 2 * 86_400_000;

struct Cursor<'a> {
    chars: Vec<char>,
    pos: usize,
    _text: &'a str,
}

impl Cursor<'_> {
    fn err<T>(&self, at: usize, message: impl Into<String>) -> Result<T, MonitorQueryError> {
        Err(MonitorQueryError {
            column: at + 1,
            message: message.into(),
        })
    }

    fn skip_ws(&mut self) {
        while self.chars.get(self.pos).is_some_and(|c| c.is_whitespace()) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn expect(&mut self, c: char) -> Result<(), MonitorQueryError> {
        self.skip_ws();
        match self.peek() {
            Some(got) if got == c => {
                self.pos += 1;
                Ok(())
            }
            Some(got) => self.err(self.pos, format!("expected {c:?}, found {got:?}")),
            None => self.err(self.pos, format!("expected {c:?}, found the end")),
        }
    }

    fn ident(&mut self) -> Result<(usize, String), MonitorQueryError> {
        self.skip_ws();
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            self.pos += 1;
        }
        if start == self.pos {
            return self.err(start, "expected a function name such as rollup or last");
        }
        Ok((start, self.chars[start..self.pos].iter().collect()))
    }

    /// A `"…"` or `'…'` string; a backslash escapes the next character.
    fn string(&mut self) -> Result<(usize, String), MonitorQueryError> {
        self.skip_ws();
        let start = self.pos;
        let quote = match self.peek() {
            Some(q @ ('"' | '\'')) => q,
            _ => return self.err(start, "expected a quoted string"),
        };
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return self.err(start, "this string is never closed"),
                Some('\\') => {
                    let next = self.chars.get(self.pos + 1).copied();
                    match next {
                        // Only the quote and the backslash itself are unescaped: the search
                        // syntax has escapes of its own (`\:`), which must reach its parser.
                        Some(c) if c == quote || c == '\\' => {
                            out.push(c);
                            self.pos += 2;
                        }
                        _ => {
                            out.push('\\');
                            self.pos += 1;
                        }
                    }
                }
                Some(c) if c == quote => {
                    self.pos += 1;
                    return Ok((start, out));
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    /// `( "a", "b" )`, at least one argument.
    fn args(&mut self) -> Result<Vec<(usize, String)>, MonitorQueryError> {
        self.expect('(')?;
        let mut out = vec![self.string()?];
        loop {
            self.skip_ws();
            match self.peek() {
                Some(',') => {
                    self.pos += 1;
                    out.push(self.string()?);
                }
                Some(')') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(c) => return self.err(self.pos, format!("expected ',' or ')', found {c:?}")),
                None => return self.err(self.pos, "expected ')', found the end"),
            }
        }
    }
}

/// `5m`, `1h`, `2d`: minutes, hours or days (seconds too), at most two days.
pub fn parse_window(s: &str) -> Result<i64, String> {
    let d = crate::timefmt::parse_duration(s)?;
    let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    if ms < 60_000 {
        return Err(format!("window {s:?} is shorter than one minute"));
    }
    if ms > MAX_WINDOW_MS {
        return Err(format!("window {s:?} is longer than two days"));
    }
    Ok(ms)
}

fn check_facet(name: &str) -> Result<(), String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("a facet name is empty".into());
    }
    if name == "tags" {
        return Err("group by a tag key (such as env), not by every tag".into());
    }
    if name.contains('"') || name.chars().any(char::is_whitespace) {
        return Err(format!("{name:?} is not a facet"));
    }
    if let Some(path) = name.strip_prefix('@') {
        if crate::query::split_path_text(path)
            .iter()
            .any(|p| p.is_empty())
        {
            return Err(format!("{name:?} is not an attribute path"));
        }
    }
    Ok(())
}

impl MonitorQuery {
    pub fn parse(text: &str) -> Result<MonitorQuery, MonitorQueryError> {
        let mut c = Cursor {
            chars: text.chars().collect(),
            pos: 0,
            _text: text,
        };
        let (at, name) = c.ident()?;
        if name != "logs" {
            return c.err(
                at,
                format!("a log monitor query starts with logs(\"…\"), not {name}"),
            );
        }
        let args = c.args()?;
        if args.len() != 1 {
            return c.err(at, "logs() takes one search query");
        }
        let (search_at, search) = args[0].clone();
        let node = crate::query::parse(&search).map_err(|e| MonitorQueryError {
            // The search's own column, shifted to where its text starts (after the quote).
            column: search_at + 1 + e.column,
            message: format!("in the search query: {}", e.message),
        })?;
        let mut rollup = None;
        let mut by = Vec::new();
        let mut window = None;
        loop {
            c.skip_ws();
            if c.peek() != Some('.') {
                break;
            }
            c.pos += 1;
            let (at, f) = c.ident()?;
            let args = c.args()?;
            match f.as_str() {
                "index" => {
                    // One local store: every index name means it.
                    if args.len() != 1 {
                        return c.err(at, "index() takes one name");
                    }
                }
                "rollup" => {
                    if rollup.is_some() {
                        return c.err(at, "rollup() is given twice");
                    }
                    let (kind_at, kind) = &args[0];
                    let arg = args.get(1).map(|a| a.1.trim().to_owned());
                    rollup = Some(match (kind.as_str(), arg) {
                        ("count", None) => Rollup::Count,
                        ("count", Some(_)) => return c.err(at, "rollup(\"count\") takes no facet"),
                        ("cardinality", Some(f)) => {
                            check_facet(&f).or_else(|m| c.err(args[1].0, m))?;
                            Rollup::Cardinality(f)
                        }
                        (agg @ ("avg" | "sum" | "min" | "max"), Some(m)) => {
                            if !m.starts_with('@') || m.len() < 2 {
                                return c.err(
                                    args[1].0,
                                    format!("{m:?} is not a measure: use a numeric @attribute"),
                                );
                            }
                            check_facet(&m).or_else(|e| c.err(args[1].0, e))?;
                            let agg: &'static str = match agg {
                                "avg" => "avg",
                                "sum" => "sum",
                                "min" => "min",
                                _ => "max",
                            };
                            Rollup::Measure(agg, m)
                        }
                        ("cardinality" | "avg" | "sum" | "min" | "max", None) => {
                            return c.err(
                                at,
                                format!("rollup(\"{kind}\") needs a second argument: the facet or @measure"),
                            )
                        }
                        (other, _) => {
                            return c.err(
                                *kind_at,
                                format!("{other:?} is not a rollup: use count, cardinality, avg, sum, min or max"),
                            )
                        }
                    });
                    if args.len() > 2 {
                        return c.err(at, "rollup() takes at most two arguments");
                    }
                }
                "by" => {
                    if !by.is_empty() {
                        return c.err(at, "by() is given twice");
                    }
                    if args.len() > MAX_BY {
                        return c.err(at, format!("by() takes at most {MAX_BY} facets"));
                    }
                    for (a_at, a) in args {
                        check_facet(&a).or_else(|m| c.err(a_at, m))?;
                        by.push(a.trim().to_owned());
                    }
                }
                "last" => {
                    if window.is_some() {
                        return c.err(at, "last() is given twice");
                    }
                    let (w_at, w) = &args[0];
                    window = Some(parse_window(w).or_else(|m| c.err(*w_at, m))?);
                }
                other => {
                    return c.err(
                        at,
                        format!("unknown function {other}(): use index, rollup, by or last"),
                    )
                }
            }
        }
        c.skip_ws();
        let op_at = c.pos;
        let op = match (c.peek(), c.chars.get(c.pos + 1).copied()) {
            (Some('>'), Some('=')) => Op::Ge,
            (Some('<'), Some('=')) => Op::Le,
            (Some('>'), _) => Op::Gt,
            (Some('<'), _) => Op::Lt,
            (Some(x), _) => {
                return c.err(
                    op_at,
                    format!("expected a comparison (>, >=, <, <=) and a threshold, found {x:?}"),
                )
            }
            (None, _) => {
                return c.err(
                    op_at,
                    "expected a comparison (>, >=, <, <=) and a threshold",
                )
            }
        };
        c.pos += if matches!(op, Op::Ge | Op::Le) { 2 } else { 1 };
        c.skip_ws();
        let num_at = c.pos;
        let rest: String = c.chars[c.pos..].iter().collect();
        let threshold: f64 = match rest.trim().parse::<f64>() {
            Ok(n) if n.is_finite() => n,
            _ => {
                return c.err(
                    num_at,
                    format!("the threshold {:?} is not a number", rest.trim()),
                )
            }
        };
        let Some(rollup) = rollup else {
            return c.err(
                0,
                "the query needs .rollup(\"count\") (or cardinality, avg, sum, min, max)",
            );
        };
        let Some(window_ms) = window else {
            return c.err(0, "the query needs .last(\"5m\") (the evaluation window)");
        };
        Ok(MonitorQuery {
            search,
            node,
            rollup,
            by,
            window_ms,
            op,
            threshold,
        })
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_queries_parse_into_their_parts() {
        let q = MonitorQuery::parse(
            r#"logs("service:web status:error").index("*").rollup("count").by("host").last("5m") > 10"#,
        )
        .unwrap();
        assert_eq!(q.search, "service:web status:error");
        assert_eq!(q.rollup, Rollup::Count);
        assert_eq!(q.by, vec!["host"]);
        assert_eq!(q.window_ms, 300_000);
        assert_eq!(q.op, Op::Gt);
        assert_eq!(q.threshold, 10.0);

        let q = MonitorQuery::parse(
            r#"logs("*").rollup("avg", "@duration").by("service","@http.method").last("1h") <= 2.5"#,
        )
        .unwrap();
        assert_eq!(q.rollup, Rollup::Measure("avg", "@duration".into()));
        assert_eq!(q.by.len(), 2);
        assert_eq!(q.op, Op::Le);

        let q = MonitorQuery::parse(
            r#"logs("msg:\"a b\"").rollup("cardinality","@user").last("2d")>=1"#,
        )
        .unwrap();
        assert_eq!(q.search, r#"msg:"a b""#);
        assert_eq!(q.rollup, Rollup::Cardinality("@user".into()));
    }

    #[test]
    fn bad_queries_name_the_column_and_the_problem() {
        for (text, column, needle) in [
            (
                r#"metrics("x").rollup("count").last("5m") > 1"#,
                1,
                "starts with logs",
            ),
            (
                r#"logs("x").rollup("median").last("5m") > 1"#,
                18,
                "not a rollup",
            ),
            (
                r#"logs("x").rollup("avg").last("5m") > 1"#,
                11,
                "second argument",
            ),
            (
                r#"logs("x").rollup("avg","duration").last("5m") > 1"#,
                24,
                "not a measure",
            ),
            (
                r#"logs("x").rollup("count").last("5x") > 1"#,
                32,
                "unknown unit",
            ),
            (
                r#"logs("x").rollup("count").last("5m") = 1"#,
                38,
                "comparison",
            ),
            (
                r#"logs("x").rollup("count").last("5m") > ten"#,
                40,
                "not a number",
            ),
            (r#"logs("x").rollup("count") > 1"#, 1, "last("),
            (r#"logs("x").last("5m") > 1"#, 1, "rollup("),
            (
                r#"logs("x").rollup("count").by("a","b","c").last("5m") > 1"#,
                27,
                "at most 2",
            ),
            (
                r#"logs("x").rollup("count").frobnicate("a").last("5m") > 1"#,
                27,
                "unknown function",
            ),
            (r#"logs("x).rollup("count").last("5m") > 1"#, 0, ""),
            (
                r#"logs("status:(error").rollup("count").last("5m") > 1"#,
                19,
                "search query",
            ),
        ] {
            let e = MonitorQuery::parse(text).unwrap_err();
            if column > 0 {
                assert_eq!(e.column, column, "{text}: {e}");
            }
            assert!(e.message.contains(needle), "{text}: {e}");
        }
    }
}
