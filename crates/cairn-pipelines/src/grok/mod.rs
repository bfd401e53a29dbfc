//! Datadog's grok parser: rules `name %{matcher:attribute:filter} …`, helper rules, matchers
//! and filters, compiled to regular expressions.
//!
//! Each match rule becomes one anchored [`regex::Regex`] whose named groups are the tokens that
//! extract something; the text between tokens is the user's own regex. Parsing tries the rules
//! in order and converts the groups of the first one that matches. Each rule is also cut into
//! steps ([`plan`]) that find the same groups in one pass without the regex crate's capture
//! engine, which was most of a parse's cost; the whole regex reads the lines the steps cannot.

mod date;
mod filters;
mod matchers;
mod plan;
mod syntax;
mod xml;

use std::collections::HashMap;

use regex::Regex;
use serde_json::{Map, Value};

pub use filters::url_details;
use filters::Filter;
use matchers::Convert;
use syntax::{Piece, RuleLine, Token};

/// A compiled grok parser (match rules in order, with their helper rules).
#[derive(Debug, Clone)]
pub struct Grok {
    rules: Vec<Rule>,
}

/// A rule that cannot be compiled, naming the rule and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("grok rule {rule:?} (line {line}): {message}")]
pub struct GrokError {
    pub rule: String,
    /// 1-based, in the text the rule came from (match rules, or helper rules when the message
    /// says so).
    pub line: usize,
    pub message: String,
}

#[derive(Debug, Clone)]
struct Rule {
    name: String,
    regex: Regex,
    /// The same rule cut into steps, tried first; `None` when it cannot be cut.
    plan: Option<plan::Plan>,
    /// Grok captures the rule's tokens made (the length of a span list).
    spans: usize,
    captures: Vec<Capture>,
}

#[derive(Debug, Clone)]
struct Capture {
    /// The token's number, in the order the rule's text has them.
    index: usize,
    /// Its group in `Rule::regex`.
    group: usize,
    target: Target,
    convert: Convert,
    filter: Option<Filter>,
}

#[derive(Debug, Clone)]
enum Target {
    /// No attribute name (or `.`): an object value (`%{data::keyvalue}`) is merged into the
    /// root; anything else is dropped.
    Root,
    /// `a.b.c`, already split.
    Path(Vec<String>),
}

/// Regexes of many rules with IP matchers grow past the crate's default limit.
const REGEX_SIZE_LIMIT: usize = 64 << 20;
/// Helper rules that use each other twice over double at each level: 40 levels would be a
/// terabyte of pattern. Far past any real rule, and checked while expanding, so such rules
/// are refused at once instead of eating the intake's memory.
pub const MAX_EXPANDED_CHARS: usize = 256 << 10;

impl Grok {
    /// Compiles `match_rules` (one `name pattern` per line) with `support_rules` (helper rules,
    /// same form, referenced as `%{name}`).
    pub fn compile(match_rules: &str, support_rules: &str) -> Result<Grok, GrokError> {
        let err = |(rule, line, message): (String, usize, String)| GrokError {
            rule,
            line,
            message,
        };
        let helper_err = |(rule, line, message): (String, usize, String)| GrokError {
            rule,
            line,
            message: format!("{message} (in the helper rules)"),
        };
        let helpers_lines = syntax::rule_lines(support_rules, true).map_err(helper_err)?;
        let match_lines = syntax::rule_lines(match_rules, false).map_err(err)?;

        let mut helpers: HashMap<&str, Source> = HashMap::new();
        for h in &helpers_lines {
            if helpers
                .insert(
                    h.name,
                    Source {
                        rule: *h,
                        helper: true,
                    },
                )
                .is_some()
            {
                return Err(helper_err((
                    h.name.to_string(),
                    h.line,
                    "a helper rule of that name is defined above".to_string(),
                )));
            }
        }
        // A helper that no rule uses is still checked, so a typo does not wait for the day a
        // rule starts to use it.
        for h in &helpers_lines {
            let mut b = Builder::new(&helpers);
            let mut re = String::new();
            b.expand(
                Source {
                    rule: *h,
                    helper: true,
                },
                &mut re,
            )?;
            build_regex(&re).map_err(|e| GrokError {
                rule: h.name.to_string(),
                line: h.line,
                message: format!(
                    "not a valid regular expression: {} (in the helper rules)",
                    regex_problem(&e)
                ),
            })?;
        }

        let mut rules = Vec::with_capacity(match_lines.len());
        let mut names: HashMap<&str, usize> = HashMap::new();
        for m in &match_lines {
            if names.insert(m.name, m.line).is_some() {
                return Err(err((
                    m.name.to_string(),
                    m.line,
                    "a match rule of that name is defined above".to_string(),
                )));
            }
            let mut b = Builder::new(&helpers);
            let mut body = String::new();
            b.expand(
                Source {
                    rule: *m,
                    helper: false,
                },
                &mut body,
            )?;
            let pattern = format!("\\A(?:{body})\\z");
            let regex = build_regex(&pattern).map_err(|e| GrokError {
                rule: m.name.to_string(),
                line: m.line,
                message: format!("not a valid regular expression: {}", regex_problem(&e)),
            })?;
            let mut groups = HashMap::new();
            for (i, name) in regex.capture_names().enumerate() {
                if let Some(n) = name.and_then(grok_group) {
                    groups.insert(n, i);
                }
            }
            let spans = b.captures.len();
            let captures = b
                .captures
                .into_iter()
                .enumerate()
                .filter_map(|(n, (target, convert, filter))| {
                    groups.get(&n).map(|&group| Capture {
                        index: n,
                        group,
                        target,
                        convert,
                        filter,
                    })
                })
                .collect();
            rules.push(Rule {
                name: m.name.to_string(),
                regex,
                plan: plan::Plan::new(&pattern, REGEX_SIZE_LIMIT).ok(),
                spans,
                captures,
            });
            // Datadog lets a rule use the match rules above it as helpers.
            helpers.entry(m.name).or_insert(Source {
                rule: *m,
                helper: false,
            });
        }
        Ok(Grok { rules })
    }

    /// The first match rule that matches the whole of `input`: its name and the extracted
    /// attributes (a dotted attribute name `a.b` makes nested objects).
    pub fn parse(&self, input: &str) -> Option<(&str, Map<String, Value>)> {
        self.parse_with(input, true)
    }

    /// [`Grok::parse`] with every rule read by its whole regex, never by its plan: the
    /// reference the plans are tested against.
    #[doc(hidden)]
    pub fn parse_by_regex(&self, input: &str) -> Option<(&str, Map<String, Value>)> {
        self.parse_with(input, false)
    }

    /// How many rules are read by a plan (for the tests: a rule of matchers and literals
    /// should be).
    #[doc(hidden)]
    pub fn planned_rules(&self) -> usize {
        self.rules.iter().filter(|r| r.plan.is_some()).count()
    }

    fn parse_with(&self, input: &str, plans: bool) -> Option<(&str, Map<String, Value>)> {
        let (rule, spans) = self
            .rules
            .iter()
            .find_map(|r| r.spans(input, plans).map(|s| (r, s)))?;
        let mut out = Map::new();
        for cap in &rule.captures {
            let Some((start, end)) = spans[cap.index] else {
                continue;
            };
            let value = cap.convert.apply(&input[start..end]);
            let value = match &cap.filter {
                Some(filter) => value.and_then(|v| filter.apply(v)),
                None => value,
            };
            if let Some(v) = value {
                store(&mut out, &cap.target, v);
            }
        }
        Some((&rule.name, out))
    }

    /// The match rules' names, in the order they are tried.
    pub fn rule_names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.name.as_str())
    }
}

/// Regex text written in a rule, in the dialect of Datadog's (Java-style) engine, as the
/// `regex` crate reads it. Atomic groups `(?>…)` and possessive quantifiers (`*+`, `++`, `?+`,
/// `{n}+`) only stop backtracking there; the `regex` crate never backtracks, so the plain group
/// and the greedy quantifier match the same inputs in the rules people write (Datadog's own
/// nginx pipeline uses them).
fn push_user_regex(text: &str, out: &mut String) {
    let mut chars = text.chars().peekable();
    let mut in_class = false;
    // Whether the last thing written can take a quantifier (so a `+` after `*` is possessive).
    let mut after_quantifier = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                out.push(c);
                if let Some(n) = chars.next() {
                    out.push(n);
                }
                after_quantifier = false;
                continue;
            }
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            '(' if !in_class => {
                out.push('(');
                let mut probe = chars.clone();
                if probe.next() == Some('?') && probe.next() == Some('>') {
                    chars.next();
                    chars.next();
                    out.push_str("?:");
                }
                after_quantifier = false;
                continue;
            }
            '+' if !in_class && after_quantifier => {
                after_quantifier = false;
                continue;
            }
            _ => {}
        }
        out.push(c);
        after_quantifier = !in_class && matches!(c, '*' | '+' | '?' | '}');
    }
}

/// What is wrong with a rule's regex, without the compiled pattern the `regex` crate quotes
/// (the author never wrote it: it holds every expanded helper and our group names).
fn regex_problem(e: &regex::Error) -> String {
    let text = e.to_string();
    let problem = text
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .unwrap_or(text.trim())
        .to_owned();
    if problem.contains("look-around") || problem.contains("backreferences") {
        format!("{problem} (look-around and back-references are not supported)")
    } else {
        problem
    }
}

impl Rule {
    /// The spans of the rule's captures (by token number) when it matches the whole of
    /// `input`.
    fn spans(&self, input: &str, plans: bool) -> Option<Vec<Option<(usize, usize)>>> {
        let mut spans = vec![None; self.spans];
        if let Some(plan) = self.plan.as_ref().filter(|_| plans) {
            if plan.rejects(input) {
                return None;
            }
            if plan.spans(input, &mut spans) {
                return Some(spans);
            }
            spans.fill(None);
        }
        let mut locs = self.regex.capture_locations();
        self.regex.captures_read(&mut locs, input)?;
        for cap in &self.captures {
            spans[cap.index] = locs.get(cap.group);
        }
        Some(spans)
    }
}

/// The token number of one of our group names.
fn grok_group(name: &str) -> Option<usize> {
    name.strip_prefix(GROUP_PREFIX)?.parse().ok()
}

fn build_regex(re: &str) -> Result<Regex, regex::Error> {
    regex::RegexBuilder::new(re)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
}

const GROUP_PREFIX: &str = "__grok";

#[derive(Debug, Clone, Copy)]
struct Source<'a> {
    rule: RuleLine<'a>,
    helper: bool,
}

struct Builder<'h, 'a> {
    helpers: &'h HashMap<&'a str, Source<'a>>,
    captures: Vec<(Target, Convert, Option<Filter>)>,
    /// Helpers being expanded, to report a rule that reaches itself.
    stack: Vec<&'a str>,
}

impl<'h, 'a> Builder<'h, 'a> {
    fn new(helpers: &'h HashMap<&'a str, Source<'a>>) -> Self {
        Builder {
            helpers,
            captures: Vec::new(),
            stack: Vec::new(),
        }
    }

    fn expand(&mut self, src: Source<'a>, out: &mut String) -> Result<(), GrokError> {
        let fail = |message: String| GrokError {
            rule: src.rule.name.to_string(),
            line: src.rule.line,
            message: if src.helper {
                format!("{message} (in the helper rules)")
            } else {
                message
            },
        };
        self.stack.push(src.rule.name);
        let pieces = syntax::pieces(src.rule.pattern).map_err(fail)?;
        for piece in pieces {
            match piece {
                Piece::Regex(text) => push_user_regex(text, out),
                Piece::Token(token) => self.token(&token, out).map_err(|e| match e {
                    Expand::Here(message) => fail(message),
                    Expand::Inner(e) => e,
                })?,
            }
            if out.len() > MAX_EXPANDED_CHARS {
                return Err(fail(format!(
                    "expands to more than {MAX_EXPANDED_CHARS} characters of regular expression \
                     (helper rules that use each other several times nest too deeply)"
                )));
            }
        }
        self.stack.pop();
        Ok(())
    }

    fn token(&mut self, token: &Token, out: &mut String) -> Result<(), Expand> {
        let filter = token
            .filter
            .as_ref()
            .map(Filter::from_call)
            .transpose()
            .map_err(Expand::Here)?;
        let target = match token.attr.as_deref() {
            None | Some(".") => Target::Root,
            Some(path) => {
                let parts: Vec<String> = path
                    .split('.')
                    .filter(|p| !p.is_empty())
                    .map(str::to_string)
                    .collect();
                if parts.is_empty() {
                    Target::Root
                } else {
                    Target::Path(parts)
                }
            }
        };
        let extracts = token.attr.is_some() || filter.is_some();
        let name = token.matcher.name.as_str();
        let helper = (!token.matcher.has_parens)
            .then(|| self.helpers.get(name))
            .flatten()
            .copied();
        if let Some(helper) = helper {
            if let Some(at) = self.stack.iter().position(|n| *n == name) {
                let mut cycle: Vec<&str> = self.stack[at..].to_vec();
                cycle.push(name);
                return Err(Expand::Here(format!(
                    "helper rule `{name}` refers to itself ({})",
                    cycle.join(" → ")
                )));
            }
            let mut inner = String::new();
            self.expand(helper, &mut inner).map_err(Expand::Inner)?;
            // `%{helper:attr}` stores the whole text the helper matched, as a string.
            self.group(
                out,
                &inner,
                extracts.then_some((target, Convert::Str, filter)),
            );
            return Ok(());
        }
        match matchers::builtin(&token.matcher).map_err(Expand::Here)? {
            Some((re, convert)) => {
                self.group(out, &re, extracts.then_some((target, convert, filter)));
                Ok(())
            }
            None if token.matcher.has_parens => {
                Err(Expand::Here(format!("unknown matcher `{name}`")))
            }
            None => Err(Expand::Here(format!(
                "unknown matcher or undefined helper rule `{name}`"
            ))),
        }
    }

    fn group(
        &mut self,
        out: &mut String,
        re: &str,
        capture: Option<(Target, Convert, Option<Filter>)>,
    ) {
        match capture {
            Some(c) => {
                out.push_str(&format!("(?P<{GROUP_PREFIX}{}>", self.captures.len()));
                self.captures.push(c);
            }
            None => out.push_str("(?:"),
        }
        out.push_str(re);
        out.push(')');
    }
}

enum Expand {
    /// An error in the rule being expanded.
    Here(String),
    /// An error already attributed to a helper rule.
    Inner(GrokError),
}

/// Puts `value` where the token's attribute says. Datadog does not show null or empty values.
fn store(out: &mut Map<String, Value>, target: &Target, value: Value) {
    if is_blank(&value) {
        return;
    }
    match target {
        Target::Root => {
            if let Value::Object(fields) = value {
                for (k, v) in fields {
                    if !is_blank(&v) {
                        out.insert(k, v);
                    }
                }
            }
        }
        Target::Path(path) => {
            let Some((leaf, parents)) = path.split_last() else {
                return;
            };
            let mut node = out;
            for p in parents {
                // Looked up before inserting: the key is copied only when the object is new.
                if !matches!(node.get(p.as_str()), Some(Value::Object(_))) {
                    node.insert(p.clone(), Value::Object(Map::new()));
                }
                let Some(Value::Object(next)) = node.get_mut(p.as_str()) else {
                    return;
                };
                node = next;
            }
            // The same attribute extracted twice keeps both values, in order.
            match node.get_mut(leaf) {
                None => {
                    node.insert(leaf.clone(), value);
                }
                Some(Value::Array(items)) => items.push(value),
                Some(existing) => {
                    let first = existing.take();
                    *existing = Value::Array(vec![first, value]);
                }
            }
        }
    }
}

fn is_blank(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_only_regex_forms_become_their_plain_equivalents() {
        for (given, want) in [
            ("(?>a|b)c", "(?:a|b)c"),
            ("a*+b++c?+d{2}+", "a*b+c?d{2}"),
            (r"\++", r"\++"),
            ("[+*]+x", "[+*]+x"),
            ("(?:x)+", "(?:x)+"),
            (r"\(?>", r"\(?>"),
        ] {
            let mut out = String::new();
            push_user_regex(given, &mut out);
            assert_eq!(out, want, "{given}");
        }
    }

    #[test]
    fn grok_is_shareable_between_threads() {
        fn assert_traits<T: Send + Sync + Clone + std::fmt::Debug>() {}
        assert_traits::<Grok>();
    }
}
