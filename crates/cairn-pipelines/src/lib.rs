//! cairn-pipelines: Datadog-style log processing pipelines, applied by the local intake to each
//! log before it is stored, and by `cairn pipelines test` without storing anything.
//!
//! Owns: the pipeline definitions in the schema of Datadog's Logs Pipelines API (read from
//! YAML or JSON), the grok parser, every processor, and the record of which pipeline and
//! processors touched a log.
//!
//! Must not: know about HTTP, SQLite or files other than the text it is handed; drop a log
//! (a processor that fails leaves the log as it arrived, with the error noted).

mod arith;
mod civil;
mod config;
mod date;
mod event;
pub mod grok;
mod processors;
mod url;
mod useragent;

use serde_json::{Map, Value};

use processors::{Kind, Pipeline, Run};

/// One log as the processors see it. Reserved attributes (`message`, `status`, `host`,
/// `service`, `source`, the date) are fields; everything else is in `attributes`.
///
/// Processors name the fields as Datadog does: `message`, `status`, `host` (or `hostname`),
/// `service`, `source` (or `ddsource`). Any other name is a dotted path into `attributes`
/// (`http.status_code`), falling back to a flat key holding the dots. An empty field reads
/// as absent; `status` is written folded by [`cairn_query::normalise_status`], as the store
/// keeps it.
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
    ///
    /// Every pipeline is checked (and compiled, then dropped), so a config that reads is one
    /// that [`Pipelines::compile`] accepts; Datadog's defaults are filled in.
    pub fn from_text(text: &str) -> Result<Config, ConfigError> {
        Config::from_value_list(config::parse_text(text)?)
    }

    /// The same from JSON already parsed: an API body holding a list, `{"pipelines": [...]}`
    /// or one pipeline.
    pub fn from_json(value: Value) -> Result<Config, ConfigError> {
        Config::from_value_list(config::root_list(value)?)
    }

    /// Fields the Logs Pipelines schema does not have (each worded `location: unknown field …`):
    /// they are ignored, so a misspelt one changes what runs without any error.
    pub fn warnings(&self) -> Vec<String> {
        config::unknown_fields(&self.pipelines)
    }

    fn from_value_list(mut pipelines: Vec<Value>) -> Result<Config, ConfigError> {
        for (i, p) in pipelines.iter_mut().enumerate() {
            config::pipeline(p, i)?;
        }
        Ok(Config { pipelines })
    }

    /// The pipelines as Datadog's API returns them (a JSON array), each with its `id` and
    /// the defaults filled in. Fields Cairn does not know (`description`, `tags`) are kept.
    pub fn to_json(&self) -> Value {
        Value::Array(
            self.pipelines
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let mut p = p.clone();
                    // A pipeline that does not check is shown as written.
                    let _ = config::pipeline(&mut p, i);
                    p
                })
                .collect(),
        )
    }
}

/// Compiled pipelines, ready to run on many logs from many threads: filters and category
/// queries are parsed, formulas, templates, lookup tables and grok rules compiled, once.
#[derive(Debug, Default)]
pub struct Pipelines {
    pipelines: Vec<Pipeline>,
}

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
        let mut pipelines = Vec::with_capacity(config.pipelines.len());
        for (i, p) in config.pipelines.iter().enumerate() {
            let mut p = p.clone();
            let compiled = config::pipeline(&mut p, i)?;
            if compiled.enabled {
                pipelines.push(compiled);
            }
        }
        if pipelines.iter().any(|p| has_user_agent(&p.processors)) {
            useragent::warm();
        }
        Ok(Pipelines { pipelines })
    }

    /// Whether no enabled pipeline exists, so the caller can skip [`Pipelines::process`].
    pub fn is_empty(&self) -> bool {
        self.pipelines.is_empty()
    }

    /// Runs every enabled pipeline whose filter matches, in order.
    ///
    /// The event is copied only once a filter matches (nothing is changed before), so logs
    /// that no pipeline selects cost a filter evaluation each and nothing more.
    pub fn process(&self, event: &mut Event) -> Trace {
        self.run(event, true)
    }

    /// [`Pipelines::process`] for a caller that keeps the log as it arrived itself and drops
    /// the event on an error (the intake keeps its row): the event is not copied first, and
    /// after an error it is left as the failing processor left it.
    pub fn process_discarding_on_error(&self, event: &mut Event) -> Trace {
        self.run(event, false)
    }

    fn run(&self, event: &mut Event, restore: bool) -> Trace {
        let mut trace = Trace::default();
        let mut run = Run::default();
        let mut arrived: Option<Event> = None;
        for p in &self.pipelines {
            if !filter_matches(p, event) {
                continue;
            }
            if restore && arrived.is_none() {
                arrived = Some(event.clone());
            }
            if let Err(e) = run_matched(p, event, &mut run, &mut trace) {
                if let Some(original) = arrived.take() {
                    *event = original;
                }
                trace.error = Some(e);
                break;
            }
        }
        trace
    }
}

fn has_user_agent(processors: &[processors::Processor]) -> bool {
    processors.iter().any(|p| match &p.kind {
        Kind::UserAgent { .. } => true,
        Kind::Pipeline(inner) => has_user_agent(&inner.processors),
        _ => false,
    })
}

fn filter_matches(p: &Pipeline, event: &Event) -> bool {
    p.filter
        .as_ref()
        .is_none_or(|f| cairn_query::eval::matches(f, event))
}

/// A nested pipeline as a processor: `Ok(true)` when its filter matched and one of its
/// processors changed the log.
pub(crate) fn run_pipeline(
    p: &Pipeline,
    event: &mut Event,
    run: &mut Run,
    trace: &mut Trace,
) -> Result<bool, String> {
    if !filter_matches(p, event) {
        return Ok(false);
    }
    run_matched(p, event, run, trace)
}

/// Runs the processors of a pipeline whose filter matched, recording its step. An error is
/// `pipeline › processor: message` (nested pipelines add their own `›`).
fn run_matched(
    p: &Pipeline,
    event: &mut Event,
    run: &mut Run,
    trace: &mut Trace,
) -> Result<bool, String> {
    let step = trace.steps.len();
    trace.steps.push(Step {
        pipeline: p.name.clone(),
        processors: Vec::new(),
    });
    let mut changed_any = false;
    for proc in &p.processors {
        match proc.apply(event, run, trace) {
            Ok(true) => {
                changed_any = true;
                trace.steps[step].processors.push(proc.label.clone());
            }
            Ok(false) => {}
            Err(e) if matches!(proc.kind, Kind::Pipeline(_)) => {
                return Err(format!("{} › {e}", p.name));
            }
            Err(e) => return Err(format!("{} › {}: {e}", p.name, proc.label)),
        }
    }
    Ok(changed_any)
}
