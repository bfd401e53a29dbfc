//! Every processor: its fields and defaults as Datadog's API names them, compiled once, and
//! its effect on one log as Datadog documents it.
//!
//! "Cannot apply" (a missing source, a value of the wrong kind, a date that does not parse)
//! is a silent skip, as on Datadog. An error is kept for a write the log's shape refuses,
//! which leaves the log as it arrived.

use std::collections::HashMap;

use serde_json::Value;

use crate::arith::Expr;
use crate::config::{attribute_name, describe, Fields};
use crate::event::{self, names, text_of, SetError, Target};
use crate::grok::Grok;
use crate::{date, url, useragent, ConfigError, Event};

#[derive(Debug)]
pub(crate) struct Pipeline {
    pub(crate) name: String,
    pub(crate) enabled: bool,
    /// `None` matches every log.
    pub(crate) filter: Option<cairn_query::Node>,
    /// The enabled processors only.
    pub(crate) processors: Vec<Processor>,
}

#[derive(Debug)]
pub(crate) struct Processor {
    /// The name, or the type for an unnamed one: what a trace shows.
    pub(crate) label: String,
    pub(crate) kind: Kind,
}

#[derive(Debug)]
pub(crate) enum Kind {
    Grok {
        source: Target,
        grok: Grok,
    },
    Date {
        sources: Vec<Target>,
    },
    Status {
        sources: Vec<Target>,
    },
    /// Service, message, trace id and span id remappers: the first present source to a fixed
    /// place, as text.
    Remap {
        sources: Vec<Target>,
        target: Target,
    },
    Attribute(Box<AttributeRemapper>),
    Category {
        target: Target,
        categories: Vec<(Option<cairn_query::Node>, String)>,
    },
    Arithmetic {
        expr: Expr,
        target: Target,
        replace_missing: bool,
    },
    StringBuilder {
        template: Vec<Part>,
        target: Target,
        replace_missing: bool,
    },
    Url {
        sources: Vec<Target>,
        target: Target,
        normalize_ending_slashes: bool,
    },
    UserAgent {
        sources: Vec<Target>,
        target: Target,
        is_encoded: bool,
    },
    Lookup {
        source: Target,
        target: Target,
        table: HashMap<String, String>,
        default: Option<String>,
    },
    Pipeline(Box<Pipeline>),
}

#[derive(Debug)]
pub(crate) struct AttributeRemapper {
    sources: Vec<Source>,
    target: RemapTarget,
    preserve_source: bool,
    override_on_conflict: bool,
    format: Format,
}

#[derive(Debug)]
enum Source {
    Attr(Target),
    Tag(String),
}

#[derive(Debug)]
enum RemapTarget {
    Attr(Target),
    Tag(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Format {
    Auto,
    String,
    Integer,
    Double,
}

#[derive(Debug)]
pub(crate) enum Part {
    Lit(String),
    Attr(Target),
}

/// Longest string a string builder writes, as Datadog documents.
const MAX_TEMPLATE_CHARS: usize = 256;

/// Datadog processor types Cairn knows by name but does not run, so an export holding one
/// is refused with a message that says so rather than "unknown".
const NOT_YET: &[&str] = &[
    "geo-ip-parser",
    "array-processor",
    "decoder-processor",
    "reference-table-lookup",
    "schema-processor",
    "ocsf-processor",
];

/// Attributes the generic remapper may not write, with the processor Datadog points to.
const DEDICATED: &[(&str, &str)] = &[
    ("host", "the host cannot be remapped"),
    ("hostname", "the host cannot be remapped"),
    ("message", "use a message-remapper"),
    ("service", "use a service-remapper"),
    ("status", "use a status-remapper"),
    ("date", "use a date-remapper"),
    ("timestamp", "use a date-remapper"),
    ("trace_id", "use a trace-id-remapper"),
    ("dd.trace_id", "use a trace-id-remapper"),
    ("span_id", "use a span-id-remapper"),
    ("dd.span_id", "use a span-id-remapper"),
];

pub(crate) fn compile(kind: &str, f: &mut Fields<'_>) -> Result<Kind, ConfigError> {
    Ok(match kind {
        "grok-parser" => {
            let source = f.str_or("source", names::MESSAGE)?;
            let source = attribute_name(&source, f.loc, "source")?;
            f.str_list_or("samples", &[])?;
            let loc = f.loc;
            let grok = match f.map.get_mut("grok") {
                Some(Value::Object(g)) => g,
                None | Some(Value::Null) => return Err(loc.err("grok", "required, missing")),
                Some(other) => {
                    let got = describe(other);
                    return Err(loc.err("grok", format!("expected a mapping, got {got}")));
                }
            };
            let mut g = Fields { map: grok, loc };
            let match_rules = g
                .opt_str("match_rules")
                .map_err(|e| rename(e, "match_rules", "grok.match_rules"))?
                .ok_or_else(|| loc.err("grok.match_rules", "required, missing"))?;
            let support_rules = g
                .str_or("support_rules", "")
                .map_err(|e| rename(e, "support_rules", "grok.support_rules"))?;
            let grok = Grok::compile(&match_rules, &support_rules)
                .map_err(|e| loc.err("grok.match_rules", e.to_string()))?;
            Kind::Grok { source, grok }
        }
        "date-remapper" => Kind::Date {
            sources: f.sources(date::DEFAULT_SOURCES)?,
        },
        "status-remapper" => Kind::Status {
            sources: f.sources(&[])?,
        },
        "service-remapper" => Kind::Remap {
            sources: f.sources(&[])?,
            target: Target::Service,
        },
        "message-remapper" => Kind::Remap {
            sources: f.sources(&["msg"])?,
            target: Target::Message,
        },
        "trace-id-remapper" => Kind::Remap {
            sources: f.sources(&[names::TRACE_ID])?,
            target: Target::parse(names::TRACE_ID),
        },
        "span-id-remapper" => Kind::Remap {
            sources: f.sources(&[names::SPAN_ID])?,
            target: Target::parse(names::SPAN_ID),
        },
        "attribute-remapper" => Kind::Attribute(Box::new(attribute_remapper(f)?)),
        "category-processor" => {
            let target = f.req_str("target")?;
            let target = attribute_name(&target, f.loc, "target")?;
            let loc = f.loc;
            let list = match f.map.get_mut("categories") {
                Some(Value::Array(items)) => items,
                None | Some(Value::Null) => return Err(loc.err("categories", "required, missing")),
                Some(other) => {
                    let got = describe(other);
                    return Err(loc.err("categories", format!("expected a list, got {got}")));
                }
            };
            let mut categories = Vec::with_capacity(list.len());
            for (i, item) in list.iter_mut().enumerate() {
                let field = format!("categories[{i}]");
                let Value::Object(map) = item else {
                    let got = describe(item);
                    return Err(loc.err(&field, format!("expected a mapping, got {got}")));
                };
                let mut c = Fields { map, loc };
                let name = c
                    .req_str("name")
                    .map_err(|e| rename(e, "name", &format!("{field}.name")))?;
                let filter = c.query("filter", &format!("{field}.filter"))?;
                categories.push((filter, name));
            }
            Kind::Category { target, categories }
        }
        "arithmetic-processor" => {
            let expression = f.req_str("expression")?;
            let target = f.req_str("target")?;
            let target = attribute_name(&target, f.loc, "target")?;
            let expr = Expr::parse(&expression).map_err(|e| f.loc.err("expression", e))?;
            Kind::Arithmetic {
                expr,
                target,
                replace_missing: f.bool_or("is_replace_missing", false)?,
            }
        }
        "string-builder-processor" => {
            let template = f.req_str("template")?;
            let target = f.req_str("target")?;
            let target = attribute_name(&target, f.loc, "target")?;
            Kind::StringBuilder {
                template: parse_template(&template, f)?,
                target,
                replace_missing: f.bool_or("is_replace_missing", false)?,
            }
        }
        "url-parser" => Kind::Url {
            sources: f.sources(&["http.url"])?,
            target: {
                let t = f.str_or("target", "http.url_details")?;
                attribute_name(&t, f.loc, "target")?
            },
            normalize_ending_slashes: f.bool_or("normalize_ending_slashes", false)?,
        },
        "user-agent-parser" => Kind::UserAgent {
            sources: f.sources(&["http.useragent"])?,
            target: {
                let t = f.str_or("target", "http.useragent_details")?;
                attribute_name(&t, f.loc, "target")?
            },
            is_encoded: f.bool_or("is_encoded", false)?,
        },
        "lookup-processor" => {
            let source = f.req_str("source")?;
            let source = attribute_name(&source, f.loc, "source")?;
            let target = f.req_str("target")?;
            let target = attribute_name(&target, f.loc, "target")?;
            let lines = f
                .opt_str_list("lookup_table")?
                .ok_or_else(|| f.loc.err("lookup_table", "required, missing"))?;
            let mut table = HashMap::with_capacity(lines.len());
            for (i, line) in lines.iter().enumerate() {
                let Some((k, v)) = line.split_once(',') else {
                    return Err(f.loc.err(
                        &format!("lookup_table[{i}]"),
                        format!("expected `key,value`, got {line:?}"),
                    ));
                };
                // The first line for a key wins, as a reader of the table expects.
                table
                    .entry(k.trim().to_owned())
                    .or_insert_with(|| v.trim().to_owned());
            }
            Kind::Lookup {
                source,
                target,
                table,
                default: f.opt_str("default_lookup")?,
            }
        }
        other if NOT_YET.contains(&other) => {
            return Err(f.loc.err(
                "type",
                format!("Datadog's {other:?} processor is not supported by Cairn"),
            ))
        }
        other => {
            return Err(f
                .loc
                .err("type", format!("unknown processor type {other:?}")))
        }
    })
}

/// A nested field's error names its full path.
fn rename(mut e: ConfigError, short: &str, full: &str) -> ConfigError {
    if let Some(prefix) = e.location.strip_suffix(short) {
        e.location = format!("{prefix}{full}");
    }
    e
}

fn attribute_remapper(f: &mut Fields<'_>) -> Result<AttributeRemapper, ConfigError> {
    let source_type = f.str_or("source_type", "attribute")?;
    let target_type = f.str_or("target_type", "attribute")?;
    let names = f.req_str_list("sources")?;
    let target = f.req_str("target")?;
    let sources = names
        .iter()
        .enumerate()
        .map(|(i, s)| match source_type.as_str() {
            "attribute" => attribute_name(s, f.loc, &format!("sources[{i}]")).map(Source::Attr),
            "tag" => Ok(Source::Tag(s.clone())),
            other => Err(f.loc.err(
                "source_type",
                format!("expected \"attribute\" or \"tag\", got {other:?}"),
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if target.contains([':', ',']) {
        return Err(f
            .loc
            .err("target", "`:` and `,` are not allowed in a target name"));
    }
    let target = match target_type.as_str() {
        "attribute" => {
            if let Some((_, why)) = DEDICATED.iter().find(|(n, _)| *n == target) {
                return Err(f
                    .loc
                    .err("target", format!("{target:?} is reserved: {why}")));
            }
            RemapTarget::Attr(attribute_name(&target, f.loc, "target")?)
        }
        "tag" => RemapTarget::Tag(target),
        other => {
            return Err(f.loc.err(
                "target_type",
                format!("expected \"attribute\" or \"tag\", got {other:?}"),
            ))
        }
    };
    let format = match f.opt_str("target_format")?.as_deref() {
        None | Some("auto") => Format::Auto,
        Some("string") => Format::String,
        Some("integer") => Format::Integer,
        Some("double") => Format::Double,
        Some(other) => {
            return Err(f.loc.err(
                "target_format",
                format!("expected auto, string, integer or double, got {other:?}"),
            ))
        }
    };
    Ok(AttributeRemapper {
        sources,
        target,
        preserve_source: f.bool_or("preserve_source", false)?,
        override_on_conflict: f.bool_or("override_on_conflict", false)?,
        format,
    })
}

fn parse_template(template: &str, f: &Fields<'_>) -> Result<Vec<Part>, ConfigError> {
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("%{") {
        let Some(len) = rest[start + 2..].find('}') else {
            break;
        };
        if start > 0 {
            parts.push(Part::Lit(rest[..start].to_owned()));
        }
        let name = rest[start + 2..start + 2 + len].trim();
        parts.push(Part::Attr(attribute_name(name, f.loc, "template")?));
        rest = &rest[start + 2 + len + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Lit(rest.to_owned()));
    }
    Ok(parts)
}

/// State shared by all the processors that run on one log.
#[derive(Default)]
pub(crate) struct Run {
    /// Datadog applies only the first status remapper that applies to a log, across all the
    /// pipelines it goes through. (Its date remapper documents the opposite, the last one
    /// wins, which running each one in order gives.)
    pub(crate) status_done: bool,
}

impl Processor {
    /// Applies this processor; `Ok(true)` when it changed the log.
    pub(crate) fn apply(
        &self,
        event: &mut Event,
        run: &mut Run,
        trace: &mut crate::Trace,
    ) -> Result<bool, String> {
        let set_err = |e: SetError| e.to_string();
        match &self.kind {
            Kind::Grok { source, grok } => {
                let Some(input) = source.get_str(event) else {
                    return Ok(false);
                };
                let Some((_rule, extracted)) = grok.parse(input) else {
                    return Ok(false);
                };
                if extracted.is_empty() {
                    return Ok(false);
                }
                let mut extracted = extracted;
                let reserved: Vec<String> = extracted
                    .keys()
                    .filter(|k| Target::reserved(k).is_some())
                    .cloned()
                    .collect();
                for k in reserved {
                    let v = extracted.remove(&k).expect("a key listed above");
                    let target = Target::reserved(&k).expect("a reserved name");
                    target.set(event, v).map_err(set_err)?;
                }
                if event.attributes.is_empty() {
                    event.attributes = extracted;
                } else {
                    event::merge(&mut event.attributes, extracted, 0);
                }
                Ok(true)
            }
            Kind::Date { sources } => {
                let Some(ms) = sources
                    .iter()
                    .find_map(|s| date::parse(s.get(event)?.as_ref()))
                else {
                    return Ok(false);
                };
                let changed = event.timestamp_ms != ms;
                event.timestamp_ms = ms;
                Ok(changed)
            }
            Kind::Status { sources } => {
                if run.status_done {
                    return Ok(false);
                }
                let Some(status) = sources
                    .iter()
                    .find_map(|s| s.get(event).map(|v| status_of(&v)))
                else {
                    return Ok(false);
                };
                run.status_done = true;
                let changed = event.status != status;
                event.status = status.to_owned();
                Ok(changed)
            }
            Kind::Remap { sources, target } => {
                let Some(value) = sources.iter().find_map(|s| {
                    let v = s.get(event)?;
                    scalar_text(&v)
                }) else {
                    return Ok(false);
                };
                if target.get_str(event) == Some(value.as_str()) {
                    return Ok(false);
                }
                target.set(event, Value::String(value)).map_err(set_err)?;
                Ok(true)
            }
            Kind::Attribute(r) => r.apply(event).map_err(set_err),
            Kind::Category { target, categories } => {
                let Some((_, name)) = categories.iter().find(|(filter, _)| {
                    filter
                        .as_ref()
                        .is_none_or(|f| cairn_query::eval::matches(f, event))
                }) else {
                    return Ok(false);
                };
                set_if_changed(event, target, Value::String(name.clone())).map_err(set_err)
            }
            Kind::Arithmetic {
                expr,
                target,
                replace_missing,
            } => {
                let Some(n) = expr.eval(event, *replace_missing) else {
                    return Ok(false);
                };
                set_if_changed(event, target, number_value(n)).map_err(set_err)
            }
            Kind::StringBuilder {
                template,
                target,
                replace_missing,
            } => {
                let mut out = String::new();
                for part in template {
                    match part {
                        Part::Lit(s) => out.push_str(s),
                        Part::Attr(t) => match t.get(event).and_then(|v| template_text(&v)) {
                            Some(s) => out.push_str(&s),
                            None if *replace_missing => {}
                            None => return Ok(false),
                        },
                    }
                }
                if let Some((cut, _)) = out.char_indices().nth(MAX_TEMPLATE_CHARS) {
                    out.truncate(cut);
                }
                set_if_changed(event, target, Value::String(out)).map_err(set_err)
            }
            Kind::Url {
                sources,
                target,
                normalize_ending_slashes,
            } => {
                let Some(details) = sources
                    .iter()
                    .find_map(|s| url::details(s.get_str(event)?, *normalize_ending_slashes))
                else {
                    return Ok(false);
                };
                set_if_changed(event, target, details).map_err(set_err)
            }
            Kind::UserAgent {
                sources,
                target,
                is_encoded,
            } => {
                let Some(details) = sources
                    .iter()
                    .find_map(|s| useragent::details(s.get_str(event)?, *is_encoded))
                else {
                    return Ok(false);
                };
                set_if_changed(event, target, details).map_err(set_err)
            }
            Kind::Lookup {
                source,
                target,
                table,
                default,
            } => {
                let Some(key) = source.get(event).and_then(|v| scalar_text(&v)) else {
                    return Ok(false);
                };
                let Some(found) = table.get(key.as_str()).or(default.as_ref()) else {
                    return Ok(false);
                };
                set_if_changed(event, target, Value::String(found.clone())).map_err(set_err)
            }
            Kind::Pipeline(inner) => crate::run_pipeline(inner, event, run, trace),
        }
    }
}

fn set_if_changed(event: &mut Event, target: &Target, value: Value) -> Result<bool, SetError> {
    if target.get(event).as_deref() == Some(&value) {
        return Ok(false);
    }
    target.set(event, value)?;
    Ok(true)
}

/// Strings and numbers as text; nothing for objects, arrays and null.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A value in a template: scalars as text, an array of scalars joined with commas; an object
/// or an array holding one cannot be used.
fn template_text(v: &Value) -> Option<String> {
    match v {
        Value::Array(items) => {
            let parts: Option<Vec<String>> = items.iter().map(scalar_text).collect();
            parts.map(|p| p.join(","))
        }
        other => scalar_text(other),
    }
}

/// Integers stay integers (a count of 3 is not 3.0); the rest keeps 9 decimals as Datadog
/// rounds them.
pub(crate) fn number_value(n: f64) -> Value {
    let rounded = (n * 1e9).round() / 1e9;
    let n = if rounded.is_finite() { rounded } else { n };
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        return Value::from(n as i64);
    }
    serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
}

/// Datadog's status remapper: syslog severities 0–7, then prefixes of the text. The values
/// are the store's folded spellings, so `status:warn` finds what `warning` became.
pub(crate) fn status_of(v: &Value) -> &'static str {
    const SYSLOG: [&str; 8] = [
        "emerg", "alert", "critical", "error", "warn", "notice", "info", "debug",
    ];
    let text = match v {
        Value::Number(n) => {
            return n
                .as_u64()
                .and_then(|i| SYSLOG.get(i as usize))
                .copied()
                .unwrap_or("info")
        }
        Value::String(s) => s.trim(),
        _ => return "info",
    };
    if let Ok(i) = text.parse::<usize>() {
        return SYSLOG.get(i).copied().unwrap_or("info");
    }
    let lower = text.to_ascii_lowercase();
    let starts = |p: &str| lower.starts_with(p);
    if starts("emerg") || starts("f") {
        "emerg"
    } else if starts("a") {
        "alert"
    } else if starts("c") {
        "critical"
    } else if starts("e") {
        "error"
    } else if starts("w") {
        "warn"
    } else if starts("n") {
        "notice"
    } else if starts("i") {
        "info"
    } else if starts("d") || starts("t") || starts("v") {
        "debug"
    } else if starts("o") || starts("s") {
        "ok"
    } else {
        "info"
    }
}

impl AttributeRemapper {
    fn apply(&self, event: &mut Event) -> Result<bool, SetError> {
        let Some((index, value)) = self
            .sources
            .iter()
            .enumerate()
            .find_map(|(i, s)| Some((i, read_source(s, event)?)))
        else {
            return Ok(false);
        };
        let value = cast(value, self.format);
        let same_place = matches!(
            (&self.sources[index], &self.target),
            (Source::Attr(a), RemapTarget::Attr(b)) if a == b
        ) || matches!(
            (&self.sources[index], &self.target),
            (Source::Tag(a), RemapTarget::Tag(b)) if a == b
        );
        match &self.target {
            RemapTarget::Attr(target) => {
                if !same_place && target.exists(event) && !self.override_on_conflict {
                    return Ok(false);
                }
                target.set(event, value)?;
            }
            RemapTarget::Tag(key) => {
                let prefix = format!("{key}:");
                let existing = event.tags.iter().position(|t| t.starts_with(&prefix));
                let tag = format!("{key}:{}", text_of(value));
                match existing {
                    Some(i) if same_place || self.override_on_conflict => event.tags[i] = tag,
                    Some(_) => return Ok(false),
                    None => event.tags.push(tag),
                }
            }
        }
        if !self.preserve_source && !same_place {
            match &self.sources[index] {
                // A reserved field is read, never emptied: a log keeps its message, service
                // and status, which only their dedicated remappers change.
                Source::Attr(t @ Target::Attr { .. }) => {
                    t.remove(event);
                }
                Source::Attr(_) => {}
                Source::Tag(key) => {
                    let prefix = format!("{key}:");
                    if let Some(i) = event.tags.iter().position(|t| t.starts_with(&prefix)) {
                        event.tags.remove(i);
                    }
                }
            }
        }
        Ok(true)
    }
}

fn read_source(s: &Source, event: &Event) -> Option<Value> {
    match s {
        Source::Attr(t) => t.get(event).map(|v| v.into_owned()),
        Source::Tag(key) => event
            .tags
            .iter()
            .find_map(|t| t.strip_prefix(key.as_str())?.strip_prefix(':'))
            .map(|v| Value::String(v.to_owned())),
    }
}

/// Datadog keeps the value and its type when the cast fails.
fn cast(value: Value, format: Format) -> Value {
    match (format, &value) {
        (Format::Auto, _) => value,
        (Format::String, Value::String(_)) => value,
        (Format::String, Value::Number(_) | Value::Bool(_)) => Value::String(value.to_string()),
        (Format::Integer, Value::Number(n)) => match n.as_i64() {
            Some(_) => value,
            None => n
                .as_f64()
                .filter(|f| f.is_finite() && f.abs() < 9.2e18)
                .map_or(value.clone(), |f| Value::from(f.trunc() as i64)),
        },
        (Format::Integer, Value::String(s)) => {
            s.trim().parse::<i64>().map_or(value.clone(), Value::from)
        }
        (Format::Double, Value::Number(n)) => n
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map_or(value.clone(), Value::Number),
        (Format::Double, Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(value.clone(), Value::Number),
        _ => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_integers_and_nine_decimals() {
        assert_eq!(number_value(3.0), Value::from(3));
        assert_eq!(number_value(0.1234567891), serde_json::json!(0.123456789));
        assert_eq!(number_value(f64::INFINITY), Value::Null);
    }
}
