//! Reading pipeline definitions in the schema of Datadog's Logs Pipelines API: the text (YAML
//! or JSON), the defaults Datadog fills in, and the checks that name the culprit.
//!
//! One pass does both the filling and the compiling, so the defaults `to_json` shows are the
//! ones the processors run with.

use saphyr::{LoadableYamlNode, MarkedYamlOwned, ScalarOwned, YamlDataOwned};
use serde_json::{Map, Value};

use crate::event::Target;
use crate::processors::{self, Pipeline, Processor};
use crate::ConfigError;

/// Datadog refuses nesting past one level: a pipeline processor holds no pipeline.
const MAX_PIPELINE_DEPTH: usize = 1;

/// The pipelines in `text`, as JSON values not yet checked.
pub(crate) fn parse_text(text: &str) -> Result<Vec<Value>, ConfigError> {
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    // JSON first when it looks like JSON: serde's numbers and errors are exact, and an export
    // from Datadog is JSON.
    let root = if trimmed.starts_with(['{', '[']) {
        match serde_json::from_str::<Value>(text) {
            Ok(v) => v,
            Err(json_err) => yaml_to_value(text).map_err(|_| ConfigError {
                location: format!("line {}", json_err.line()),
                message: format!("invalid JSON: {json_err}"),
            })?,
        }
    } else {
        yaml_to_value(text)?
    };
    root_list(root)
}

/// `pipelines: [...]`, a bare list, or one pipeline.
pub(crate) fn root_list(root: Value) -> Result<Vec<Value>, ConfigError> {
    match root {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => Ok(items),
        Value::Object(mut map) => {
            if let Some(list) = map.remove("pipelines") {
                return match list {
                    Value::Array(items) => Ok(items),
                    Value::Null => Ok(Vec::new()),
                    other => Err(ConfigError {
                        location: "pipelines".into(),
                        message: format!("expected a list of pipelines, got {}", describe(&other)),
                    }),
                };
            }
            if map.contains_key("processors") || map.contains_key("name") {
                return Ok(vec![Value::Object(map)]);
            }
            Err(ConfigError {
                location: "top level".into(),
                message: "expected `pipelines: [...]`, a list of pipelines or one pipeline".into(),
            })
        }
        other => Err(ConfigError {
            location: "top level".into(),
            message: format!(
                "expected `pipelines: [...]`, a list of pipelines or one pipeline, got {}",
                describe(&other)
            ),
        }),
    }
}

fn yaml_to_value(text: &str) -> Result<Value, ConfigError> {
    let docs = MarkedYamlOwned::load_from_str(text).map_err(|e| ConfigError {
        location: format!("line {}", e.marker().line()),
        message: format!("invalid YAML: {}", e.info()),
    })?;
    let mut docs = docs.into_iter();
    let root = docs.next();
    if let Some(extra) = docs.next() {
        // Half a file silently ignored after a stray `---` would be worse than refusing it.
        return Err(ConfigError {
            location: format!("line {}", extra.span.start.line()),
            message: "a second YAML document; expected exactly one".into(),
        });
    }
    Ok(root.map(|n| yaml_json(&n, 0)).unwrap_or(Value::Null))
}

fn yaml_json(node: &MarkedYamlOwned, depth: usize) -> Value {
    type Data = YamlDataOwned<MarkedYamlOwned>;
    if depth > crate::event::MAX_DEPTH {
        return Value::Null;
    }
    match &node.data {
        Data::Value(ScalarOwned::Null) | Data::BadValue | Data::Alias(_) => Value::Null,
        Data::Value(ScalarOwned::Boolean(b)) => Value::Bool(*b),
        Data::Value(ScalarOwned::Integer(i)) => Value::from(*i),
        Data::Value(ScalarOwned::FloatingPoint(f)) => {
            serde_json::Number::from_f64(f.into_inner()).map_or(Value::Null, Value::Number)
        }
        Data::Value(ScalarOwned::String(s)) | Data::Representation(s, _, _) => {
            Value::String(s.clone())
        }
        Data::Sequence(items) => {
            Value::Array(items.iter().map(|n| yaml_json(n, depth + 1)).collect())
        }
        Data::Mapping(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (key_text(k), yaml_json(v, depth + 1)))
                .collect(),
        ),
        Data::Tagged(_, inner) => yaml_json(inner, depth + 1),
    }
}

fn key_text(node: &MarkedYamlOwned) -> String {
    match yaml_json(node, 0) {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
        other => other.to_string(),
    }
}

const MAX_ID_CHARS: usize = 100;

/// A stable id for a pipeline written without one: the same position and name give the same
/// id on every reload, so links and provenance stay valid.
fn generated_id(index: usize, name: &str) -> String {
    // FNV-1a: tiny, stable across builds and platforms (std's hasher is neither promised).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in index.to_le_bytes().iter().chain(name.as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("cairn-{h:016x}")
}

/// Where a problem is, worded as the error shows it.
#[derive(Clone)]
pub(crate) struct Loc(String);

impl Loc {
    fn pipeline(name: &str, number: usize) -> Loc {
        Loc(format!("pipeline {name:?} (#{number})"))
    }

    fn processor(&self, name: &str, number: usize, kind: &str) -> Loc {
        let who = if name.is_empty() {
            format!("processor #{number} ({kind})")
        } else {
            format!("processor {name:?} (#{number}, {kind})")
        };
        Loc(format!("{} › {who}", self.0))
    }

    pub(crate) fn err(&self, field: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            location: if field.is_empty() {
                self.0.clone()
            } else {
                format!("{} › {field}", self.0)
            },
            message: message.into(),
        }
    }
}

/// Typed reads of one object's fields, each error naming the field.
pub(crate) struct Fields<'a> {
    pub(crate) map: &'a mut Map<String, Value>,
    pub(crate) loc: &'a Loc,
}

impl Fields<'_> {
    fn present(&self, key: &str) -> Option<&Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub(crate) fn opt_str(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.present(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self
                .loc
                .err(key, format!("expected a string, got {}", describe(other)))),
        }
    }

    pub(crate) fn req_str(&self, key: &str) -> Result<String, ConfigError> {
        self.opt_str(key)?
            .ok_or_else(|| self.loc.err(key, "required, missing"))
    }

    /// A string, `default` when absent; the default is written back for `to_json`.
    pub(crate) fn str_or(&mut self, key: &str, default: &str) -> Result<String, ConfigError> {
        let s = self.opt_str(key)?.unwrap_or_else(|| default.to_owned());
        self.map.insert(key.into(), Value::String(s.clone()));
        Ok(s)
    }

    pub(crate) fn bool_or(&mut self, key: &str, default: bool) -> Result<bool, ConfigError> {
        let b = match self.present(key) {
            None => default,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(self.loc.err(
                    key,
                    format!("expected true or false, got {}", describe(other)),
                ))
            }
        };
        self.map.insert(key.into(), Value::Bool(b));
        Ok(b)
    }

    pub(crate) fn opt_str_list(&self, key: &str) -> Result<Option<Vec<String>>, ConfigError> {
        let Some(v) = self.present(key) else {
            return Ok(None);
        };
        let wrong = || {
            self.loc.err(
                key,
                format!("expected a list of strings, got {}", describe(v)),
            )
        };
        let Value::Array(items) = v else {
            return Err(wrong());
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s.clone()),
                other => Err(self.loc.err(
                    &format!("{key}[{i}]"),
                    format!("expected a string, got {}", describe(other)),
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    pub(crate) fn str_list_or(
        &mut self,
        key: &str,
        default: &[&str],
    ) -> Result<Vec<String>, ConfigError> {
        let list = match self.opt_str_list(key)? {
            Some(list) => list,
            None => default.iter().map(|s| (*s).to_owned()).collect(),
        };
        self.map.insert(
            key.into(),
            Value::Array(list.iter().cloned().map(Value::String).collect()),
        );
        Ok(list)
    }

    pub(crate) fn req_str_list(&self, key: &str) -> Result<Vec<String>, ConfigError> {
        let list = self
            .opt_str_list(key)?
            .ok_or_else(|| self.loc.err(key, "required, missing"))?;
        if list.is_empty() {
            return Err(self.loc.err(key, "needs at least one entry"));
        }
        Ok(list)
    }

    pub(crate) fn sources(&mut self, default: &[&str]) -> Result<Vec<Target>, ConfigError> {
        let list = if default.is_empty() {
            self.req_str_list("sources")?
        } else {
            self.str_list_or("sources", default)?
        };
        list.iter()
            .enumerate()
            .map(|(i, s)| attribute_name(s, self.loc, &format!("sources[{i}]")))
            .collect()
    }

    /// A query field (`filter.query` and the like); absent or empty matches everything.
    pub(crate) fn query(
        &mut self,
        key: &str,
        field_name: &str,
    ) -> Result<Option<cairn_query::Node>, ConfigError> {
        let filter = match self.map.get_mut(key) {
            None | Some(Value::Null) => {
                let mut m = Map::new();
                m.insert("query".into(), Value::String(String::new()));
                self.map.insert(key.into(), Value::Object(m));
                return Ok(None);
            }
            Some(Value::Object(m)) => m,
            Some(other) => {
                let got = describe(other);
                return Err(self.loc.err(
                    field_name,
                    format!("expected a mapping with `query`, got {got}"),
                ));
            }
        };
        let query = match filter.get("query") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(self.loc.err(
                    &format!("{field_name}.query"),
                    format!("expected a string, got {}", describe(other)),
                ))
            }
        };
        filter.insert("query".into(), Value::String(query.clone()));
        parse_query(&query, self.loc, &format!("{field_name}.query"))
    }
}

pub(crate) fn parse_query(
    query: &str,
    loc: &Loc,
    field: &str,
) -> Result<Option<cairn_query::Node>, ConfigError> {
    match cairn_query::parse(query) {
        Ok(cairn_query::Node::All) => Ok(None),
        Ok(node) => Ok(Some(node)),
        Err(e) => Err(loc.err(field, e.to_string())),
    }
}

/// An attribute name from the configuration. Empty steps (`a..b`) name nothing.
pub(crate) fn attribute_name(name: &str, loc: &Loc, field: &str) -> Result<Target, ConfigError> {
    if name.is_empty() || name.split('.').any(str::is_empty) {
        return Err(loc.err(field, format!("{name:?} is not an attribute name")));
    }
    Ok(Target::parse(name))
}

/// Checks and compiles the top-level pipeline at `index` (0-based), filling Datadog's
/// defaults into `value`.
pub(crate) fn pipeline(value: &mut Value, index: usize) -> Result<Pipeline, ConfigError> {
    let number = index + 1;
    let name = value
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let loc = Loc::pipeline(&name, number);
    let Value::Object(map) = value else {
        return Err(loc.err("", format!("expected a mapping, got {}", describe(value))));
    };
    let mut f = Fields { map, loc: &loc };
    let name = f.req_str("name")?;
    match f.opt_str("id")? {
        None => {
            f.map
                .insert("id".into(), Value::String(generated_id(index, &name)));
        }
        // An id is a path segment of the API (`…/pipelines/{id}`): Datadog's ids are
        // letters, digits, `-` and `_`, and so must ours be.
        Some(id)
            if id.is_empty()
                || id.len() > MAX_ID_CHARS
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
        {
            return Err(loc.err(
                "id",
                format!("{id:?} is not an id: use 1 to {MAX_ID_CHARS} letters, digits, '-' or '_'"),
            ));
        }
        Some(_) => {}
    }
    f.str_or("type", "pipeline")
        .and_then(|t| match t.as_str() {
            "pipeline" => Ok(()),
            other => Err(loc.err("type", format!("expected \"pipeline\", got {other:?}"))),
        })?;
    f.bool_or("is_read_only", false)?;
    body(f, name, 0)
}

/// What a top-level and a nested pipeline share: enabled flag, filter, processors.
fn body(mut f: Fields<'_>, name: String, depth: usize) -> Result<Pipeline, ConfigError> {
    let enabled = f.bool_or("is_enabled", true)?;
    let filter = f.query("filter", "filter")?;
    let loc = f.loc.clone();
    let list = match f.map.get_mut("processors") {
        None | Some(Value::Null) => {
            f.map.insert("processors".into(), Value::Array(Vec::new()));
            Vec::new()
        }
        Some(Value::Array(items)) => {
            let mut compiled = Vec::with_capacity(items.len());
            for (i, item) in items.iter_mut().enumerate() {
                if let Some(p) = processor(item, i, &loc, depth)? {
                    compiled.push(p);
                }
            }
            compiled
        }
        Some(other) => {
            return Err(loc.err(
                "processors",
                format!("expected a list of processors, got {}", describe(other)),
            ))
        }
    };
    Ok(Pipeline {
        name,
        enabled,
        filter,
        processors: list,
    })
}

/// One processor; `None` when it is disabled (checked all the same, so a file that loads
/// keeps loading when it is switched on).
fn processor(
    value: &mut Value,
    index: usize,
    parent: &Loc,
    depth: usize,
) -> Result<Option<Processor>, ConfigError> {
    let number = index + 1;
    let name = value
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let kind = value
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_owned();
    let loc = parent.processor(&name, number, &kind);
    let Value::Object(map) = value else {
        return Err(loc.err("", format!("expected a mapping, got {}", describe(value))));
    };
    let mut f = Fields { map, loc: &loc };
    let kind = f.req_str("type")?;
    f.str_or("name", "")?;
    let label = if name.is_empty() {
        kind.clone()
    } else {
        name.clone()
    };
    let enabled = f.bool_or("is_enabled", true)?;
    let kind = if kind == "pipeline" {
        if depth >= MAX_PIPELINE_DEPTH {
            return Err(loc.err(
                "type",
                "a nested pipeline cannot hold another pipeline (Datadog allows one level)",
            ));
        }
        // An unnamed nested pipeline shows in traces by its type, as unnamed processors do.
        let inner = body(f, label.clone(), depth + 1)?;
        processors::Kind::Pipeline(Box::new(inner))
    } else {
        processors::compile(&kind, &mut f)?
    };
    Ok(enabled.then_some(Processor { label, kind }))
}

/// Fields every processor has besides its own.
const COMMON_FIELDS: &[&str] = &["type", "name", "is_enabled"];
const PIPELINE_FIELDS: &[&str] = &[
    "id",
    "type",
    "name",
    "is_enabled",
    "is_read_only",
    "filter",
    "processors",
    "description",
    "tags",
];

/// The fields of each processor type in Datadog's Logs Pipelines API, besides the common ones.
fn processor_fields(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "grok-parser" => &["source", "samples", "grok"],
        "date-remapper" | "status-remapper" | "service-remapper" | "message-remapper"
        | "trace-id-remapper" | "span-id-remapper" => &["sources"],
        "attribute-remapper" => &[
            "sources",
            "source_type",
            "target",
            "target_type",
            "target_format",
            "preserve_source",
            "override_on_conflict",
        ],
        "category-processor" => &["target", "categories"],
        "arithmetic-processor" => &["expression", "target", "is_replace_missing"],
        "string-builder-processor" => &["template", "target", "is_replace_missing"],
        "url-parser" => &["sources", "target", "normalize_ending_slashes"],
        "user-agent-parser" => &["sources", "target", "is_encoded"],
        "lookup-processor" => &["source", "target", "lookup_table", "default_lookup"],
        "pipeline" => &["filter", "processors", "is_read_only", "id"],
        _ => return None,
    })
}

/// Fields Datadog's schema does not have, worded as errors are: a misspelt `sourcee` is
/// otherwise silently a processor on `message`. Warnings, not errors, so that an export
/// from a newer Datadog with a field Cairn does not know still loads.
pub(crate) fn unknown_fields(pipelines: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, p) in pipelines.iter().enumerate() {
        let Some(map) = p.as_object() else { continue };
        let name = map.get("name").and_then(Value::as_str).unwrap_or_default();
        let loc = Loc::pipeline(name, i + 1);
        unknown_in(map, PIPELINE_FIELDS, &loc, &mut out);
        processors_unknown(map, &loc, &mut out);
    }
    out
}

fn processors_unknown(pipeline: &Map<String, Value>, loc: &Loc, out: &mut Vec<String>) {
    let Some(procs) = pipeline.get("processors").and_then(Value::as_array) else {
        return;
    };
    for (j, proc) in procs.iter().enumerate() {
        let Some(map) = proc.as_object() else {
            continue;
        };
        let kind = map.get("type").and_then(Value::as_str).unwrap_or_default();
        let name = map.get("name").and_then(Value::as_str).unwrap_or_default();
        let here = loc.processor(name, j + 1, kind);
        let Some(own) = processor_fields(kind) else {
            continue;
        };
        let known: Vec<&str> = COMMON_FIELDS.iter().chain(own).copied().collect();
        unknown_in(map, &known, &here, out);
        if kind == "grok-parser" {
            if let Some(g) = map.get("grok").and_then(Value::as_object) {
                let grok_loc = Loc(format!("{} › grok", here.0));
                unknown_in(g, &["support_rules", "match_rules"], &grok_loc, out);
            }
        }
        if kind == "pipeline" {
            processors_unknown(map, &here, out);
        }
    }
}

fn unknown_in(map: &Map<String, Value>, known: &[&str], loc: &Loc, out: &mut Vec<String>) {
    for key in map.keys() {
        if !known.contains(&key.as_str()) {
            out.push(format!(
                "{}: unknown field {key:?} (ignored; known: {})",
                loc.0,
                known.join(", ")
            ));
        }
    }
}
