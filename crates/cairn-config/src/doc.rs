//! A parsed YAML source (a file or a `DD_*` variable holding YAML/JSON) and the typed
//! readers every config section shares, so all of them word their errors the same way.

use std::path::PathBuf;

use saphyr::{LoadableYamlNode, MarkedYamlOwned, ScalarOwned, YamlDataOwned};
use serde_json::Value;

use crate::error::{ConfigError, Location};

pub(crate) type Node = MarkedYamlOwned;
type Data = YamlDataOwned<MarkedYamlOwned>;

/// Where a YAML text came from decides how its errors are worded: files get
/// `path:line:column`, environment variables get the variable's name.
#[derive(Debug, Clone)]
pub(crate) enum Origin {
    /// Path relative to the config directory.
    File(PathBuf),
    Env(String),
}

pub(crate) struct Doc {
    origin: Origin,
    src: String,
    /// `None` when the source holds no document at all (empty or only comments).
    pub(crate) root: Option<Node>,
}

impl Doc {
    pub(crate) fn parse(origin: Origin, src: String) -> Result<Doc, ConfigError> {
        let docs = match Node::load_from_str(&src) {
            Ok(docs) => docs,
            Err(e) => {
                let line = e.marker().line();
                let column = e.marker().col() + 1;
                return Err(match origin {
                    Origin::File(path) => ConfigError::Syntax {
                        location: Location { path, line, column },
                        message: e.info().to_string(),
                    },
                    Origin::Env(var) => ConfigError::Env {
                        var,
                        problem: format!("invalid YAML at column {column}: {}", e.info()),
                    },
                });
            }
        };
        let mut docs = docs.into_iter();
        let root = docs.next().filter(|n| !matches!(n.data, Data::BadValue));
        let doc = Doc {
            origin,
            src,
            root: None,
        };
        if let Some(extra) = docs.next() {
            // A second document is almost always a stray `---`; silently ignoring half of
            // the file would be worse than refusing it.
            return Err(match &doc.origin {
                Origin::File(path) => ConfigError::Syntax {
                    location: Location {
                        path: path.clone(),
                        line: extra.span.start.line(),
                        column: extra.span.start.col() + 1,
                    },
                    message: "a second YAML document; expected exactly one".to_string(),
                },
                Origin::Env(var) => ConfigError::Env {
                    var: var.clone(),
                    problem: "invalid YAML: more than one document".to_string(),
                },
            });
        }
        Ok(Doc { root, ..doc })
    }

    pub(crate) fn location(&self, node: &Node) -> Option<Location> {
        match &self.origin {
            Origin::File(path) => Some(Location {
                path: path.clone(),
                line: node.span.start.line(),
                column: node.span.start.col() + 1,
            }),
            Origin::Env(_) => None,
        }
    }

    /// The error for a value that is present but wrong.
    pub(crate) fn invalid(&self, node: &Node, key: &str, problem: String) -> ConfigError {
        match &self.origin {
            Origin::File(path) => ConfigError::Invalid {
                location: Location {
                    path: path.clone(),
                    line: node.span.start.line(),
                    column: node.span.start.col() + 1,
                },
                key: key.to_string(),
                problem,
            },
            Origin::Env(var) => ConfigError::Env {
                var: var.clone(),
                problem: format!("{key}: {problem}"),
            },
        }
    }

    /// Config files must be mappings at the top level; `None` when the document is empty.
    pub(crate) fn mapping_root(&self) -> Result<Option<&Node>, ConfigError> {
        let Some(root) = &self.root else {
            return Ok(None);
        };
        if as_mapping(root).is_some() {
            return Ok(Some(root));
        }
        Err(match &self.origin {
            Origin::File(path) => ConfigError::TopLevel {
                location: Location {
                    path: path.clone(),
                    line: root.span.start.line(),
                    column: root.span.start.col() + 1,
                },
                got: describe(root),
            },
            Origin::Env(var) => ConfigError::Env {
                var: var.clone(),
                problem: format!("expected a mapping, got {}", describe(root)),
            },
        })
    }

    /// The error for a required key that is absent from the whole document.
    pub(crate) fn missing(&self, key: &str, problem: &str) -> ConfigError {
        match &self.origin {
            Origin::File(path) => ConfigError::Missing {
                path: path.clone(),
                key: key.to_string(),
                problem: problem.to_string(),
            },
            Origin::Env(var) => ConfigError::Env {
                var: var.clone(),
                problem: format!("{key}: {problem}"),
            },
        }
    }

    /// The scalar exactly as written. Needed because YAML resolves `api_key: 1234e5` or
    /// `hostname: 007` to numbers, and re-printing the number would change the string.
    fn source_text(&self, node: &Node) -> String {
        let start = node.span.start.index();
        let len = node.span.end.index().saturating_sub(start);
        self.src.chars().skip(start).take(len).collect()
    }

    /// A string-typed value: quoted or not, as written. `Ok(None)` for null.
    pub(crate) fn string(&self, node: &Node) -> Result<Option<String>, String> {
        match data(node) {
            Data::Value(ScalarOwned::String(s)) => Ok(Some(s.clone())),
            Data::Value(ScalarOwned::Null) | Data::BadValue => Ok(None),
            Data::Value(_) => Ok(Some(self.source_text(node))),
            Data::Representation(s, _, _) => Ok(Some(s.clone())),
            _ => Err(format!("expected a string, got {}", describe(node))),
        }
    }

    /// Reads a scalar of the given kind. `Ok(Value::Null)` means "not set".
    pub(crate) fn scalar(&self, node: &Node, kind: &Kind) -> Result<Value, String> {
        if is_null(node) {
            return Ok(Value::Null);
        }
        let got = || describe(node);
        match kind {
            Kind::Str => {
                let s = self.string(node)?.unwrap_or_default();
                parse_text(&s, kind).map_err(|_| kind.expected(&got()))
            }
            Kind::LogsUrl => {
                let s = self.string(node)?.unwrap_or_default();
                match logs_url_problem(s.trim()) {
                    None => Ok(Value::String(s.trim().to_string())),
                    Some(UrlProblem::Shape) => Err(kind.expected(&describe_url(&s, got))),
                    Some(UrlProblem::Refused(why)) => Err(why.to_string()),
                }
            }
            Kind::Bool => match data(node) {
                Data::Value(ScalarOwned::Boolean(b)) => Ok(Value::Bool(*b)),
                Data::Value(ScalarOwned::Integer(0)) => Ok(Value::Bool(false)),
                Data::Value(ScalarOwned::Integer(1)) => Ok(Value::Bool(true)),
                Data::Value(ScalarOwned::String(s)) => {
                    parse_text(s, kind).map_err(|_| kind.expected(&got()))
                }
                _ => Err(kind.expected(&got())),
            },
            Kind::Int { .. } | Kind::Float { .. } => match data(node) {
                Data::Value(ScalarOwned::Integer(i)) => {
                    check_number(kind, *i as f64, Some(*i)).map_err(|_| kind.expected(&got()))
                }
                Data::Value(ScalarOwned::FloatingPoint(f)) => {
                    check_number(kind, f.into_inner(), None).map_err(|_| kind.expected(&got()))
                }
                Data::Value(ScalarOwned::String(s)) => {
                    parse_text(s, kind).map_err(|_| kind.expected(&got()))
                }
                _ => Err(kind.expected(&got())),
            },
            Kind::Enum(_) => match data(node) {
                Data::Value(ScalarOwned::String(s)) => {
                    parse_text(s, kind).map_err(|_| kind.expected(&got()))
                }
                _ => Err(kind.expected(&got())),
            },
        }
    }
}

/// The type of a scalar config key, with the range it must fall in.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Str,
    Bool,
    Int {
        min: i64,
        max: i64,
    },
    Float {
        min: f64,
        exclusive: bool,
    },
    Enum(&'static [&'static str]),
    /// `host:port` or an `http(s)://` URL.
    LogsUrl,
}

impl Kind {
    pub(crate) fn expected(&self, got: &str) -> String {
        let what = match self {
            Kind::Str => "a string".to_string(),
            Kind::Bool => "a boolean (true/false/yes/no/1/0)".to_string(),
            Kind::Int { min, max } if *max == i64::MAX => format!("an integer >= {min}"),
            Kind::Int { min, max } => format!("an integer between {min} and {max}"),
            Kind::Float {
                min,
                exclusive: true,
            } if *min == 0.0 => "a positive number".to_string(),
            Kind::Float {
                min,
                exclusive: true,
            } => format!("a number > {min}"),
            Kind::Float { min, .. } => format!("a number >= {min}"),
            Kind::Enum(choices) => format!("one of {}", choices.join(", ")),
            Kind::LogsUrl => "host:port or an http:// or https:// URL".to_string(),
        };
        format!("expected {what}, got {got}")
    }
}

/// Parses a value written as text (an environment variable, or a quoted YAML scalar).
/// The error carries no message: callers word it with [`Kind::expected`].
pub(crate) fn parse_text(text: &str, kind: &Kind) -> Result<Value, ()> {
    let t = text.trim();
    match kind {
        Kind::Str => Ok(Value::String(text.to_string())),
        Kind::Bool => match t.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Ok(Value::Bool(true)),
            "false" | "no" | "0" => Ok(Value::Bool(false)),
            _ => Err(()),
        },
        Kind::Int { .. } => match t.parse::<i64>() {
            Ok(i) => check_number(kind, i as f64, Some(i)),
            Err(_) => Err(()),
        },
        Kind::Float { .. } => match t.parse::<f64>() {
            Ok(f) => check_number(kind, f, None),
            Err(_) => Err(()),
        },
        Kind::Enum(choices) => {
            let lower = t.to_ascii_lowercase();
            choices
                .iter()
                .find(|c| **c == lower)
                .map(|c| Value::String((*c).to_string()))
                .ok_or(())
        }
        Kind::LogsUrl => match logs_url_problem(t) {
            None => Ok(Value::String(t.to_string())),
            Some(_) => Err(()),
        },
    }
}

/// What is wrong with a text value of `kind`, worded for the operator: [`Kind::expected`],
/// or for a `logs_dd_url` the specific reason it is refused. For callers of [`parse_text`].
pub(crate) fn text_problem(text: &str, kind: &Kind) -> String {
    match kind {
        Kind::LogsUrl => match logs_url_problem(text.trim()) {
            Some(UrlProblem::Refused(why)) => why.to_string(),
            _ => kind.expected(&describe_url(text, || describe_text(text))),
        },
        _ => kind.expected(&describe_text(text)),
    }
}

/// A refused `logs_dd_url` as errors quote it: masked by `redact_url`, which also knows the
/// scheme-less `user:pass@host` form; `plain` when there is nothing to mask.
fn describe_url(text: &str, plain: impl FnOnce() -> String) -> String {
    let masked = crate::redact::redact_url(text);
    if masked == text {
        plain()
    } else {
        Value::String(masked).to_string()
    }
}

pub(crate) enum UrlProblem {
    /// Not `host:port` nor an `http(s)://` URL.
    Shape,
    /// Well-formed, but a part Cairn refuses; the message never repeats the value, which may
    /// hold a key.
    Refused(&'static str),
}

/// Cairn appends `/api/v2/logs` to the base URL, so a query string would end up in the path,
/// and a `?dd-api-key=` in it would not authenticate anything: refused, pointing at the key
/// that does.
const QUERY_REFUSED: &str = "a query string is not supported (Cairn appends /api/v2/logs to this \
     base URL); give the API key as api_key (or DD_API_KEY), not as ?dd-api-key=";
const FRAGMENT_REFUSED: &str =
    "a fragment (#...) is not supported in the base URL of the logs intake";

fn logs_url_problem(url: &str) -> Option<UrlProblem> {
    if url.contains('?') {
        return Some(UrlProblem::Refused(QUERY_REFUSED));
    }
    if url.contains('#') {
        return Some(UrlProblem::Refused(FRAGMENT_REFUSED));
    }
    if url.is_empty() || url.contains(char::is_whitespace) {
        return Some(UrlProblem::Shape);
    }
    let ok = match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority = rest.split('/').next().unwrap_or_default();
            // After the userinfo, if any (`user:pass@host` keeps working).
            let host = authority.rsplit('@').next().unwrap_or_default();
            matches!(scheme, "http" | "https") && !host.is_empty() && !host.starts_with(':')
        }
        None => match url.rsplit_once(':') {
            Some((host, port)) => {
                let host = host.rsplit('@').next().unwrap_or_default();
                !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
            }
            None => false,
        },
    };
    (!ok).then_some(UrlProblem::Shape)
}

fn check_number(kind: &Kind, f: f64, int: Option<i64>) -> Result<Value, ()> {
    match *kind {
        Kind::Int { min, max } => match int {
            Some(i) if i >= min && i <= max => Ok(Value::from(i)),
            _ => Err(()),
        },
        Kind::Float { min, exclusive } => {
            let ok = f.is_finite() && if exclusive { f > min } else { f >= min };
            if !ok {
                return Err(());
            }
            Ok(int.map_or_else(|| Value::from(f), Value::from))
        }
        _ => Err(()),
    }
}

/// The node's data, looking through custom tags (`!foo {…}`) which carry no meaning here.
pub(crate) fn data(node: &Node) -> &Data {
    match &node.data {
        Data::Tagged(_, inner) => data(inner),
        other => other,
    }
}

pub(crate) fn is_null(node: &Node) -> bool {
    matches!(data(node), Data::Value(ScalarOwned::Null) | Data::BadValue)
}

pub(crate) fn as_mapping(node: &Node) -> Option<&saphyr::AnnotatedMappingOwned<Node>> {
    match data(node) {
        Data::Mapping(m) => Some(m),
        _ => None,
    }
}

pub(crate) fn as_sequence(node: &Node) -> Option<&[Node]> {
    match data(node) {
        Data::Sequence(s) => Some(s),
        _ => None,
    }
}

/// A mapping's value for `key`, treating an explicit null the same as absence.
pub(crate) fn field<'a>(map: &'a Node, key: &str) -> Option<&'a Node> {
    as_mapping(map)?
        .iter()
        .find(|(k, _)| key_string(k) == key)
        .map(|(_, v)| v)
        .filter(|v| !is_null(v))
}

pub(crate) fn key_string(node: &Node) -> String {
    match data(node) {
        Data::Value(ScalarOwned::String(s)) => s.clone(),
        Data::Value(ScalarOwned::Integer(i)) => i.to_string(),
        Data::Value(ScalarOwned::FloatingPoint(f)) => f.to_string(),
        Data::Value(ScalarOwned::Boolean(b)) => b.to_string(),
        Data::Representation(s, _, _) => s.clone(),
        _ => "null".to_string(),
    }
}

/// How a value is named after "got" in errors: scalars as JSON, collections by shape, so a
/// long mapping does not flood the message.
pub(crate) fn describe(node: &Node) -> String {
    match data(node) {
        Data::Sequence(_) => "a list".to_string(),
        Data::Mapping(_) => "a mapping".to_string(),
        Data::Value(ScalarOwned::FloatingPoint(f)) => f.to_string(),
        Data::Value(ScalarOwned::String(s)) | Data::Representation(s, _, _) => describe_text(s),
        _ => to_json(node).to_string(),
    }
}

/// A text value as errors quote it: JSON, with any URL password or query value masked, since
/// a value refused for its shape may still carry a secret.
pub(crate) fn describe_text(text: &str) -> String {
    Value::String(crate::redact::redact_urls_in(text)).to_string()
}

pub(crate) fn to_json(node: &Node) -> Value {
    match data(node) {
        Data::Value(ScalarOwned::Null) | Data::BadValue | Data::Alias(_) => Value::Null,
        Data::Value(ScalarOwned::Boolean(b)) => Value::Bool(*b),
        Data::Value(ScalarOwned::Integer(i)) => Value::from(*i),
        Data::Value(ScalarOwned::FloatingPoint(f)) => {
            // JSON has no NaN or infinity; null is what Python's json would refuse less loudly.
            serde_json::Number::from_f64(f.into_inner()).map_or(Value::Null, Value::Number)
        }
        Data::Value(ScalarOwned::String(s)) | Data::Representation(s, _, _) => {
            Value::String(s.clone())
        }
        Data::Sequence(items) => Value::Array(items.iter().map(to_json).collect()),
        Data::Mapping(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (key_string(k), to_json(v)))
                .collect(),
        ),
        Data::Tagged(_, inner) => to_json(inner),
    }
}
