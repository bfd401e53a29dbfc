//! cairn-pipelines: Datadog-style log processing pipelines, applied by the local intake to each
//! log before it is stored, and by `cairn pipelines test` without storing anything.
//!
//! Owns: the pipeline definitions in the schema of Datadog's Logs Pipelines API (read from
//! YAML or JSON), the grok parser, every processor, and the record of which pipeline and
//! processors touched a log.
//!
//! Must not: know about HTTP, SQLite or files other than the text it is handed; drop a log
//! (a processor that fails leaves the log as it arrived, with the error noted).

pub mod grok;

use serde_json::{Map, Value};

/// One log as the processors see it. Reserved attributes (`message`, `status`, `host`,
/// `service`, `source`, the date) are fields; everything else is in `attributes`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Event {
    pub timestamp_ms: i64,
    pub status: String,
    pub host: String,
    pub service: String,
    pub source: String,
    pub message: String,
    /// `key:value` or bare tags, in arrival order.
    pub tags: Vec<String>,
    pub attributes: Map<String, Value>,
}

/// The pipelines file: `pipelines: [...]` (YAML or JSON), or a bare list as Datadog's
/// `GET /api/v1/logs/config/pipelines` returns it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    /// Each pipeline in Datadog's JSON shape (id, type, name, is_enabled, filter, processors).
    pub pipelines: Vec<Value>,
}

/// A definition that cannot be used, naming the pipeline, the processor and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct ConfigError {
    /// e.g. `pipeline "nginx" (#1) › processor "parse" (#2, grok-parser) › grok.match_rules`
    /// or `line 12` for text that is neither YAML nor JSON.
    pub location: String,
    pub message: String,
}

impl Config {
    /// Reads YAML or JSON text.
    pub fn from_text(text: &str) -> Result<Config, ConfigError> {
        let _ = text;
        Ok(Config::default())
    }

    /// The pipelines as Datadog's API returns them (a JSON array), each with its `id`.
    pub fn to_json(&self) -> Value {
        Value::Array(self.pipelines.clone())
    }
}

/// Compiled pipelines, ready to run on many logs from many threads.
#[derive(Debug, Default)]
pub struct Pipelines {}

/// Which pipelines and processors touched one log.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Trace {
    /// The pipelines whose filter matched, in order (nested pipelines included).
    pub steps: Vec<Step>,
    /// The first processor error, `pipeline › processor: message`; when set, the event was
    /// restored to how it arrived.
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Step {
    pub pipeline: String,
    /// Names (or types, for unnamed ones) of the processors that changed the log.
    pub processors: Vec<String>,
}

impl Pipelines {
    pub fn compile(config: &Config) -> Result<Pipelines, ConfigError> {
        let _ = config;
        Ok(Pipelines {})
    }

    pub fn is_empty(&self) -> bool {
        true
    }

    /// Runs every enabled pipeline whose filter matches, in order.
    pub fn process(&self, event: &mut Event) -> Trace {
        let _ = event;
        Trace::default()
    }
}
