//! Built-in matchers: the regex each one stands for and how its text becomes a value.
//!
//! The `regex` crate has no lookaround, so boundaries that other grok engines write with
//! lookbehind are left to the rule's own text around the token (rules are anchored anyway).

use regex::Regex;
use serde_json::Value;

use super::date::DateFormat;
use super::filters::{parse_integer, parse_number, KeyValue};
use super::syntax::{Arg, Call};

const INTEGER: &str = "[+-]?[0-9]+";
const INTEGER_EXT: &str = "[+-]?[0-9]+(?:[eE]\\+?[0-9]+)?";
const NUMBER: &str = "[+-]?(?:[0-9]+(?:\\.[0-9]+)?|\\.[0-9]+)";
const NUMBER_EXT: &str = "[+-]?(?:[0-9]+(?:\\.[0-9]*)?|\\.[0-9]+)(?:[eE][+-]?[0-9]+)?";
const IPV4: &str = "(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";
const HOSTNAME: &str =
    "[0-9A-Za-z](?:[0-9A-Za-z_-]*[0-9A-Za-z])?(?:\\.[0-9A-Za-z](?:[0-9A-Za-z_-]*[0-9A-Za-z])?)*";
const UUID: &str = "[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}";
const MAC: &str = "(?:[0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}|(?:[0-9A-Fa-f]{2}-){5}[0-9A-Fa-f]{2}|(?:[0-9A-Fa-f]{4}\\.){2}[0-9A-Fa-f]{4}";
const DOUBLE_QUOTED: &str = r#""(?:[^"\\]|\\.)*""#;
const SINGLE_QUOTED: &str = r"'(?:[^'\\]|\\.)*'";

/// How the text a matcher matched becomes the attribute's value.
#[derive(Debug, Clone)]
pub(crate) enum Convert {
    Str,
    Integer,
    Number,
    Boolean { truthy: Option<Regex> },
    Date(Box<DateFormat>),
    Json,
    KeyValue(KeyValue),
}

impl Convert {
    pub(crate) fn apply(&self, text: &str) -> Option<Value> {
        match self {
            Convert::Str => Some(Value::String(text.to_string())),
            Convert::Integer => parse_integer(text),
            Convert::Number => parse_number(text),
            Convert::Boolean { truthy: None } => {
                Some(Value::Bool(text.eq_ignore_ascii_case("true")))
            }
            Convert::Boolean { truthy: Some(re) } => Some(Value::Bool(re.is_match(text))),
            Convert::Date(format) => format.parse(text).map(Value::from),
            Convert::Json => serde_json::from_str(text).ok(),
            Convert::KeyValue(kv) => Some(Value::Object(kv.parse(text))),
        }
    }
}

fn ipv6() -> String {
    let h = "[0-9A-Fa-f]{1,4}";
    [
        format!("(?:{h}:){{7}}{h}"),
        format!("(?:{h}:){{6}}{IPV4}"),
        format!("(?:{h}:){{1,5}}:{IPV4}"),
        format!("::(?:[fF]{{4}}(?::0{{1,4}})?:)?{IPV4}"),
        format!("(?:{h}:){{1,6}}:{h}"),
        format!("(?:{h}:){{1,5}}(?::{h}){{1,2}}"),
        format!("(?:{h}:){{1,4}}(?::{h}){{1,3}}"),
        format!("(?:{h}:){{1,3}}(?::{h}){{1,4}}"),
        format!("(?:{h}:){{1,2}}(?::{h}){{1,5}}"),
        format!("{h}:(?::{h}){{1,6}}"),
        format!("(?:{h}:){{1,7}}:"),
        format!(":(?::{h}){{1,7}}"),
        "::".to_string(),
    ]
    .join("|")
}

fn str_args(call: &Call, max: usize) -> Result<Vec<&str>, String> {
    if call.args.len() > max {
        return Err(format!(
            "matcher `{}` takes at most {max} argument(s), {} given",
            call.name,
            call.args.len()
        ));
    }
    call.args
        .iter()
        .enumerate()
        .map(|(i, a)| match a {
            Arg::Str(s) => Ok(s.as_str()),
            _ => Err(format!(
                "argument {} of `{}` must be a quoted string",
                i + 1,
                call.name
            )),
        })
        .collect()
}

/// The regex and conversion of a built-in matcher, or `None` when `call` names no built-in.
pub(crate) fn builtin(call: &Call) -> Result<Option<(String, Convert)>, String> {
    let plain = |re: &str, convert: Convert| -> Result<Option<(String, Convert)>, String> {
        if !call.args.is_empty() {
            return Err(format!("matcher `{}` takes no arguments", call.name));
        }
        Ok(Some((re.to_string(), convert)))
    };
    match call.name.as_str() {
        "notSpace" => plain("\\S+", Convert::Str),
        // `data` spans newlines; lazy, so `%{data:a} %{data:b}` splits at the first space.
        "data" => plain("(?s:.*?)", Convert::Str),
        // ASCII word boundaries: Datadog's `word` is [a-zA-Z0-9_], and the ASCII form keeps
        // the fast regex engines usable on non-ASCII lines.
        "word" => plain("(?-u:\\b)[0-9A-Za-z_]+(?-u:\\b)", Convert::Str),
        "integer" => plain(INTEGER, Convert::Integer),
        "integerStr" => plain(INTEGER, Convert::Str),
        "integerExt" => plain(INTEGER_EXT, Convert::Integer),
        "integerExtStr" => plain(INTEGER_EXT, Convert::Str),
        "number" => plain(NUMBER, Convert::Number),
        "numberStr" => plain(NUMBER, Convert::Str),
        "numberExt" => plain(NUMBER_EXT, Convert::Number),
        "numberExtStr" => plain(NUMBER_EXT, Convert::Str),
        "doubleQuotedString" => plain(DOUBLE_QUOTED, Convert::Str),
        "singleQuotedString" => plain(SINGLE_QUOTED, Convert::Str),
        "quotedString" => plain(&format!("{DOUBLE_QUOTED}|{SINGLE_QUOTED}"), Convert::Str),
        "uuid" => plain(UUID, Convert::Str),
        "mac" => plain(MAC, Convert::Str),
        "ipv4" => plain(IPV4, Convert::Str),
        "ipv6" => plain(&ipv6(), Convert::Str),
        "ip" => plain(&format!("{IPV4}|{}", ipv6()), Convert::Str),
        "hostname" => plain(HOSTNAME, Convert::Str),
        // An address first, so `10.0.0.1` is not read as a name that stops early.
        "ipOrHost" => plain(&format!("{IPV4}|{}|{HOSTNAME}", ipv6()), Convert::Str),
        "port" => plain("[0-9]{1,5}", Convert::Integer),
        "json" => plain("(?s:\\{.*\\})", Convert::Json),
        "keyvalue" => Ok(Some((
            "(?s:.*?)".to_string(),
            Convert::KeyValue(KeyValue::from_args(call)?),
        ))),
        "regex" => {
            let args = str_args(call, 1)?;
            let re = args
                .first()
                .ok_or("matcher `regex` needs a pattern, e.g. regex(\"[a-z]+\")")?;
            Regex::new(re)
                .map_err(|e| format!("regex({re:?}) is not a valid regular expression: {e}"))?;
            Ok(Some((re.to_string(), Convert::Str)))
        }
        "boolean" => {
            let args = str_args(call, 2)?;
            match args.as_slice() {
                [] => Ok(Some((
                    "(?i:true|false)".to_string(),
                    Convert::Boolean { truthy: None },
                ))),
                [t, f] => {
                    let truthy = Regex::new(&format!("\\A(?:{t})\\z")).map_err(|e| {
                        format!("boolean true pattern {t:?} is not a valid regex: {e}")
                    })?;
                    Regex::new(f).map_err(|e| {
                        format!("boolean false pattern {f:?} is not a valid regex: {e}")
                    })?;
                    Ok(Some((
                        format!("(?:{t})|(?:{f})"),
                        Convert::Boolean {
                            truthy: Some(truthy),
                        },
                    )))
                }
                _ => Err(
                    "matcher `boolean` takes no arguments or both a true and a false pattern"
                        .to_string(),
                ),
            }
        }
        "date" => {
            let args = str_args(call, 3)?;
            let pattern = args
                .first()
                .ok_or("matcher `date` needs a pattern, e.g. date(\"yyyy-MM-dd HH:mm:ss\")")?;
            // The locale (third argument) decides the month and day names read.
            let format = DateFormat::new(pattern, args.get(1).copied(), args.get(2).copied())?;
            Ok(Some((format.regex(), Convert::Date(Box::new(format)))))
        }
        _ => Ok(None),
    }
}
