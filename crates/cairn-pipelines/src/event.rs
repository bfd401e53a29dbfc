//! How processors address a log: Datadog's reserved attribute names reach the [`Event`]'s
//! fields, every other name is a dotted path into its attributes.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::Event;

/// The wire names of the reserved attributes, defined once.
pub(crate) mod names {
    pub const MESSAGE: &str = "message";
    pub const STATUS: &str = "status";
    pub const HOST: &str = "host";
    pub const HOSTNAME: &str = "hostname";
    pub const SERVICE: &str = "service";
    pub const SOURCE: &str = "source";
    pub const DDSOURCE: &str = "ddsource";
    pub const TRACE_ID: &str = "dd.trace_id";
    pub const SPAN_ID: &str = "dd.span_id";
}

/// Deepest object nesting a processor walks or builds: attribute paths come from the
/// configuration, grok output from its rules, but a merge must stay bounded whatever they say.
pub(crate) const MAX_DEPTH: usize = 64;

/// One place a processor reads or writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Message,
    Status,
    Host,
    Service,
    Source,
    /// `dotted` as written, and its steps.
    Attr {
        dotted: String,
        path: Vec<String>,
    },
}

/// A write that the log's shape refuses (`a.b` when `a` holds a string).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot set {path}: {problem}")]
pub(crate) struct SetError {
    pub path: String,
    pub problem: String,
}

impl Target {
    pub(crate) fn parse(name: &str) -> Target {
        Target::reserved(name).unwrap_or_else(|| Target::Attr {
            dotted: name.to_owned(),
            path: name.split('.').map(str::to_owned).collect(),
        })
    }

    /// The reserved field `name` stands for, if any (without building an attribute path).
    pub(crate) fn reserved(name: &str) -> Option<Target> {
        Some(match name {
            names::MESSAGE => Target::Message,
            names::STATUS => Target::Status,
            names::HOST | names::HOSTNAME => Target::Host,
            names::SERVICE => Target::Service,
            names::SOURCE | names::DDSOURCE => Target::Source,
            _ => return None,
        })
    }

    fn field<'e>(&self, event: &'e Event) -> Option<&'e String> {
        match self {
            Target::Message => Some(&event.message),
            Target::Status => Some(&event.status),
            Target::Host => Some(&event.host),
            Target::Service => Some(&event.service),
            Target::Source => Some(&event.source),
            Target::Attr { .. } => None,
        }
    }

    fn field_mut<'e>(&self, event: &'e mut Event) -> Option<&'e mut String> {
        match self {
            Target::Message => Some(&mut event.message),
            Target::Status => Some(&mut event.status),
            Target::Host => Some(&mut event.host),
            Target::Service => Some(&mut event.service),
            Target::Source => Some(&mut event.source),
            Target::Attr { .. } => None,
        }
    }

    /// The value here; an empty reserved field counts as absent, as it does for queries.
    pub(crate) fn get<'e>(&self, event: &'e Event) -> Option<Cow<'e, Value>> {
        if let Some(s) = self.field(event) {
            return (!s.is_empty()).then(|| Cow::Owned(Value::String(s.clone())));
        }
        self.get_attr(&event.attributes).map(Cow::Borrowed)
    }

    /// The text here without a copy, for the many processors that only read strings.
    pub(crate) fn get_str<'e>(&self, event: &'e Event) -> Option<&'e str> {
        if let Some(s) = self.field(event) {
            return (!s.is_empty()).then_some(s.as_str());
        }
        self.get_attr(&event.attributes)?.as_str()
    }

    fn get_attr<'e>(&self, attributes: &'e Map<String, Value>) -> Option<&'e Value> {
        let Target::Attr { dotted, path } = self else {
            return None;
        };
        cairn_query::eval::lookup(attributes, path).or_else(|| {
            // A sender may have written the dotted name as one flat key.
            (path.len() > 1).then(|| attributes.get(dotted)).flatten()
        })
    }

    pub(crate) fn exists(&self, event: &Event) -> bool {
        match self.field(event) {
            Some(s) => !s.is_empty(),
            None => self.get_attr(&event.attributes).is_some(),
        }
    }

    /// Writes `value` here. A reserved field takes text (a status is folded as the store
    /// keeps it); an attribute path makes the objects it needs.
    pub(crate) fn set(&self, event: &mut Event, value: Value) -> Result<(), SetError> {
        let is_status = *self == Target::Status;
        if let Some(field) = self.field_mut(event) {
            let text = text_of(value);
            *field = if is_status {
                cairn_query::normalise_status(&text)
            } else {
                text
            };
            return Ok(());
        }
        let Target::Attr { dotted, path } = self else {
            return Ok(());
        };
        set_path(&mut event.attributes, path, value).map_err(|problem| SetError {
            path: dotted.clone(),
            problem,
        })
    }

    /// Takes the value out; a reserved field is left empty.
    pub(crate) fn remove(&self, event: &mut Event) -> Option<Value> {
        if let Some(field) = self.field_mut(event) {
            let old = std::mem::take(field);
            return (!old.is_empty()).then_some(Value::String(old));
        }
        let Target::Attr { dotted, path } = self else {
            return None;
        };
        let (last, parents) = path.split_last()?;
        let mut current = &mut event.attributes;
        for step in parents {
            match current.get_mut(step).and_then(Value::as_object_mut) {
                Some(next) => current = next,
                None => return event.attributes.remove(dotted),
            }
        }
        current.remove(last)
    }
}

/// A value as text for a reserved field or a tag: strings as they are, the rest as JSON.
pub(crate) fn text_of(value: Value) -> String {
    match value {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub(crate) fn set_path(
    attributes: &mut Map<String, Value>,
    path: &[String],
    value: Value,
) -> Result<(), String> {
    let Some((last, parents)) = path.split_last() else {
        return Err("empty attribute name".into());
    };
    let mut current = attributes;
    for (i, step) in parents.iter().enumerate() {
        let slot = current
            .entry(step.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        current = match slot {
            Value::Object(next) => next,
            other => {
                return Err(format!(
                    "{} holds {}, not an object",
                    path[..=i].join("."),
                    kind_of(other)
                ))
            }
        };
    }
    current.insert(last.clone(), value);
    Ok(())
}

pub(crate) fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Merges `src` into `dst`: objects key by key, anything else replaces.
pub(crate) fn merge(dst: &mut Map<String, Value>, src: Map<String, Value>, depth: usize) {
    for (k, v) in src {
        match (dst.get_mut(&k), v) {
            (Some(Value::Object(d)), Value::Object(s)) if depth < MAX_DEPTH => {
                merge(d, s, depth + 1)
            }
            (_, v) => {
                dst.insert(k, v);
            }
        }
    }
}

impl cairn_query::eval::Log for Event {
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
    fn attribute(&self, path: &[String]) -> Option<&Value> {
        cairn_query::eval::lookup(&self.attributes, path)
    }
}
