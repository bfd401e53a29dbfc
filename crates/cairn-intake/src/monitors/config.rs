//! `monitors.yaml`: the monitors (Datadog's Monitors API shape) and the webhooks they notify.
//! YAML or JSON; written back as JSON (which is YAML too) when the API changes it.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::query::MonitorQuery;
use super::state::State;

pub const LOG_ALERT: &str = "log alert";

/// A bad monitors file or monitor, naming the file, the monitor and the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The I/O error is in the message, not a `source`: a chain printer (`{:#}`) would say it
    /// twice.
    #[error("{path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: is {kind}, not a regular file; the monitors file must be one")]
    NotAFile { path: PathBuf, kind: String },
    #[error("{path}: is {size} bytes, over the limit of {limit} bytes for a monitors file")]
    TooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    #[error("{path}: {reason}")]
    Syntax { path: PathBuf, reason: String },
    #[error("{path}: {monitor}: {field}: {reason}")]
    Monitor {
        path: PathBuf,
        monitor: String,
        field: String,
        reason: String,
    },
    #[error("{path}: {reason}")]
    Write { path: PathBuf, reason: String },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Thresholds {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical_recovery: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning_recovery: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Options {
    #[serde(default)]
    pub thresholds: Thresholds,
    #[serde(default)]
    pub notify_no_data: bool,
    /// Minutes without logs before a group is No Data; default twice the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_data_timeframe: Option<i64>,
    /// Minutes between re-notifications while a group stays Alert or No Data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renotify_interval: Option<i64>,
    /// Datadog's mute: scope (`*` or a group such as `host:web-1`) → end in epoch seconds,
    /// or null for until unmuted.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub silenced: BTreeMap<String, Option<i64>>,
    /// Datadog's newer choice for a group without logs in the window (it replaces
    /// `notify_no_data`/`no_data_timeframe` when given): see [`MissingData`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_missing_data: Option<String>,
    /// The states re-notified every `renotify_interval` (`alert`, `warn`, `no data`); default
    /// alert and no data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renotify_statuses: Option<Vec<String>>,
    /// At most this many re-notifications while a group stays in one state; default no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renotify_occurrences: Option<i64>,
    /// Added to the message of a re-notification (its `@webhook-NAME` handles notify too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation_message: Option<String>,
    /// Hours after which a group in Alert or Warn with no logs since is resolved to OK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_h: Option<i64>,
    /// Seconds the window ends before the evaluation, so logs that arrive late are counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation_delay: Option<i64>,
    /// Seconds a new group of a grouped monitor stays OK before it may warn or alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_group_delay: Option<i64>,
    /// Datadog's other options (`include_tags`, `notify_audit`, …): Cairn does not act
    /// on them, but keeps them, so a monitor imported from Datadog and written back through
    /// the API loses none of its settings. Loading names those that are set.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// What a group without logs in the window becomes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MissingData {
    /// A count is 0, other rollups keep their last state (`on_missing_data: default`, and
    /// what a monitor without either option does).
    Default,
    /// No Data once the group has been silent for `timeframe_ms`; `notify`: told like any
    /// transition (`show_and_notify_no_data`, or `notify_no_data: true`), else only shown
    /// (`show_no_data`).
    NoData { timeframe_ms: i64, notify: bool },
    /// OK (`resolve`).
    Resolve,
}

/// The values of `renotify_statuses`.
pub const RENOTIFY_STATUSES: [&str; 3] = ["alert", "warn", "no data"];

/// The values of `on_missing_data`.
pub const ON_MISSING_DATA: [&str; 4] = [
    "default",
    "show_no_data",
    "show_and_notify_no_data",
    "resolve",
];

/// The longest `evaluation_delay` and `new_group_delay`, in seconds: a day.
pub const MAX_DELAY_S: i64 = 86_400;

impl Options {
    /// The options Cairn keeps without acting on them and that say something (not null,
    /// false, 0 or empty, which is how Datadog exports an option left alone).
    pub fn unapplied(&self) -> Vec<&str> {
        self.other
            .iter()
            .filter(|(k, v)| {
                // Datadog's older name of new_group_delay, applied when that one is not set.
                k.as_str() != "new_host_delay"
                    && !matches!(v, Value::Null | Value::Bool(false))
                    && v.as_f64() != Some(0.0)
                    && v.as_str() != Some("")
                    && !v.as_array().is_some_and(Vec::is_empty)
                    && !v.as_object().is_some_and(serde_json::Map::is_empty)
            })
            .map(|(k, _)| k.as_str())
            .collect()
    }
}

/// One monitor as the file and the API hold it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MonitorSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    pub name: String,
    #[serde(rename = "type", default = "log_alert")]
    pub kind: String,
    pub query: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    #[serde(default)]
    pub options: Options,
}

impl MonitorSpec {
    /// The texts whose `@webhook-NAME` handles notify: the message, and the escalation
    /// message of re-notifications.
    pub fn notified_text(&self) -> String {
        match &self.options.escalation_message {
            Some(e) => format!("{}\n{e}", self.message),
            None => self.message.clone(),
        }
    }
}

fn log_alert() -> String {
    LOG_ALERT.into()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WebhookSpec {
    pub name: String,
    /// May hold a secret (userinfo, a key in the query): printed only through `redact_url`.
    pub url: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

/// A monitor checked: its id is set and its query parsed.
#[derive(Debug, Clone)]
pub struct Monitor {
    pub id: i64,
    pub spec: MonitorSpec,
    pub query: MonitorQuery,
}

impl Monitor {
    pub fn critical(&self) -> f64 {
        self.spec
            .options
            .thresholds
            .critical
            .unwrap_or(self.query.threshold)
    }

    pub fn evaluation_delay_ms(&self) -> i64 {
        self.spec.options.evaluation_delay.unwrap_or(0) * 1000
    }

    /// `new_group_delay`, or Datadog's deprecated `new_host_delay` when only that is given.
    pub fn new_group_delay_ms(&self) -> i64 {
        let o = &self.spec.options;
        let legacy = || o.other.get("new_host_delay").and_then(Value::as_i64);
        o.new_group_delay
            .or_else(legacy)
            .unwrap_or(0)
            .clamp(0, MAX_DELAY_S)
            * 1000
    }

    /// Whether a group staying in `state` is re-notified.
    pub fn renotifies(&self, state: State) -> bool {
        let Some(list) = &self.spec.options.renotify_statuses else {
            return state.renotifies();
        };
        let name = match state {
            State::Alert => "alert",
            State::Warn => "warn",
            State::NoData => "no data",
            State::Ok => return false,
        };
        list.iter().any(|s| s == name)
    }

    /// `timeout_h` in milliseconds, when set (0 is never, as at Datadog).
    pub fn timeout_ms(&self) -> Option<i64> {
        self.spec
            .options
            .timeout_h
            .filter(|h| *h > 0)
            .map(|h| h * 3_600_000)
    }

    /// `on_missing_data` when given (its No Data comes after one window without logs, as
    /// Datadog's does), else the older `notify_no_data` with its `no_data_timeframe`.
    pub fn missing_data(&self) -> MissingData {
        let window_ms = self.query.window_ms;
        match self.spec.options.on_missing_data.as_deref() {
            Some("show_and_notify_no_data") => MissingData::NoData {
                timeframe_ms: window_ms,
                notify: true,
            },
            Some("show_no_data") => MissingData::NoData {
                timeframe_ms: window_ms,
                notify: false,
            },
            Some("resolve") => MissingData::Resolve,
            Some(_) => MissingData::Default,
            None if self.spec.options.notify_no_data => MissingData::NoData {
                timeframe_ms: self.no_data_ms(),
                notify: true,
            },
            None => MissingData::Default,
        }
    }

    pub fn no_data_ms(&self) -> i64 {
        match self.spec.options.no_data_timeframe {
            Some(m) => m * 60_000,
            None => self.query.window_ms * 2,
        }
    }

    /// Whether notifications for `group` are suppressed at `now_ms`.
    pub fn muted(&self, group: &str, now_ms: i64) -> bool {
        let live = |end: &Option<i64>| end.is_none_or(|s| s.saturating_mul(1000) > now_ms);
        ["*", group]
            .iter()
            .any(|scope| self.spec.options.silenced.get(*scope).is_some_and(live))
    }
}

#[derive(Debug, Clone, Default)]
pub struct MonitorsFile {
    pub monitors: Vec<Monitor>,
    pub webhooks: Vec<WebhookSpec>,
}

#[derive(Serialize)]
struct FileOut<'a> {
    monitors: Vec<&'a MonitorSpec>,
    webhooks: &'a [WebhookSpec],
}

/// A stable id for a monitor the file gives none: Datadog's ids are integers, and one derived
/// from the name survives restarts and reorderings (FNV-1a, folded into 9 digits).
pub fn id_of_name(name: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    100_000_000 + (h % 900_000_000) as i64
}

/// YAML (or JSON) text into JSON values: the monitor schema is serde's, one shape for the
/// file and the API.
pub fn yaml_to_json(text: &str) -> Result<Value, String> {
    use saphyr::LoadableYamlNode;
    let docs = saphyr::YamlOwned::load_from_str(text).map_err(|e| e.to_string())?;
    match docs.into_iter().next() {
        None => Ok(Value::Null),
        Some(doc) => convert(doc),
    }
}

fn convert(y: saphyr::YamlOwned) -> Result<Value, String> {
    use saphyr::{ScalarOwned, YamlOwned};
    Ok(match y {
        YamlOwned::Value(s) => match s {
            ScalarOwned::Null => Value::Null,
            ScalarOwned::Boolean(b) => Value::Bool(b),
            ScalarOwned::Integer(i) => Value::from(i),
            ScalarOwned::FloatingPoint(f) => serde_json::Number::from_f64(f.into_inner())
                .map(Value::Number)
                .unwrap_or(Value::Null),
            ScalarOwned::String(s) => Value::String(s),
        },
        YamlOwned::Representation(s, _, _) => Value::String(s),
        YamlOwned::Sequence(items) => {
            Value::Array(items.into_iter().map(convert).collect::<Result<_, _>>()?)
        }
        YamlOwned::Mapping(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                let key = match convert(k)? {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                out.insert(key, convert(v)?);
            }
            Value::Object(out)
        }
        YamlOwned::Tagged(_, inner) => convert(*inner)?,
        YamlOwned::Alias(_) => return Err("YAML aliases are not supported".into()),
        YamlOwned::BadValue => Value::Null,
    })
}

/// Checks one monitor; `label` names it in errors (`monitors[2] "High errors"`). Returns the
/// error as (field, reason).
pub fn check_spec(spec: &MonitorSpec) -> Result<MonitorQuery, (String, String)> {
    if spec.name.trim().is_empty() {
        return Err(("name".into(), "is required".into()));
    }
    if spec.kind != LOG_ALERT {
        return Err((
            "type".into(),
            format!("{:?} is not supported: only \"{LOG_ALERT}\"", spec.kind),
        ));
    }
    let q = MonitorQuery::parse(&spec.query).map_err(|e| ("query".into(), e.to_string()))?;
    let t = &spec.options.thresholds;
    let critical = match t.critical {
        Some(c) if c != q.threshold => {
            return Err((
                "options.thresholds.critical".into(),
                format!(
                    "{c} differs from the threshold in the query ({}); they must be equal",
                    q.threshold
                ),
            ))
        }
        _ => q.threshold,
    };
    // Thresholds must be ordered towards the alert, as Datadog requires: for `>` a warning
    // below the critical, recoveries below what they recover from.
    let worse = |a: f64, b: f64| if q.op.above() { a > b } else { a < b };
    let side = if q.op.above() { "below" } else { "above" };
    if let Some(w) = t.warning {
        if !worse(critical, w) {
            return Err((
                "options.thresholds.warning".into(),
                format!("{w} must be {side} the critical threshold {critical}"),
            ));
        }
    }
    if let Some(r) = t.critical_recovery {
        if !worse(critical, r) {
            return Err((
                "options.thresholds.critical_recovery".into(),
                format!("{r} must be {side} the critical threshold {critical}"),
            ));
        }
    }
    if let Some(r) = t.warning_recovery {
        let Some(w) = t.warning else {
            return Err((
                "options.thresholds.warning_recovery".into(),
                "needs options.thresholds.warning".into(),
            ));
        };
        if !worse(w, r) {
            return Err((
                "options.thresholds.warning_recovery".into(),
                format!("{r} must be {side} the warning threshold {w}"),
            ));
        }
    }
    if let Some(m) = spec.options.no_data_timeframe {
        if !(1..=2 * 24 * 60 * 7).contains(&m) {
            return Err((
                "options.no_data_timeframe".into(),
                format!("{m} minutes is out of range: 1 to 20160"),
            ));
        }
    }
    let on_missing = spec.options.on_missing_data.iter();
    let statuses = spec.options.renotify_statuses.iter().flatten();
    for (field, allowed, v) in on_missing
        .map(|v| ("options.on_missing_data", &ON_MISSING_DATA[..], v))
        .chain(statuses.map(|v| ("options.renotify_statuses", &RENOTIFY_STATUSES[..], v)))
    {
        if !allowed.contains(&v.as_str()) {
            return Err((
                field.into(),
                format!("{v:?} is not one of {}", allowed.join(", ")),
            ));
        }
    }
    if let Some(n) = spec.options.renotify_occurrences.filter(|n| *n < 1) {
        return Err((
            "options.renotify_occurrences".into(),
            format!("{n} must be at least 1"),
        ));
    }
    if let Some(h) = spec.options.timeout_h.filter(|h| !(0..=24).contains(h)) {
        return Err((
            "options.timeout_h".into(),
            format!("{h} hours is out of range: 0 to 24"),
        ));
    }
    for (field, v) in [
        ("options.evaluation_delay", spec.options.evaluation_delay),
        ("options.new_group_delay", spec.options.new_group_delay),
    ] {
        if let Some(v) = v.filter(|v| !(0..=MAX_DELAY_S).contains(v)) {
            return Err((
                field.into(),
                format!("{v} seconds is out of range: 0 to {MAX_DELAY_S}"),
            ));
        }
    }
    if let Some(m) = spec.options.renotify_interval {
        if m < 0 {
            return Err((
                "options.renotify_interval".into(),
                format!("{m} minutes is negative"),
            ));
        }
    }
    Ok(q)
}

/// A monitor from JSON (the API's body or a file entry), errors naming the field.
pub fn spec_from_json(v: Value) -> Result<MonitorSpec, (String, String)> {
    let obj = v
        .as_object()
        .ok_or_else(|| ("monitor".to_owned(), "must be an object".to_owned()))?;
    for (field, want) in [("name", "a string"), ("query", "a string")] {
        match obj.get(field) {
            Some(Value::String(_)) => {}
            None | Some(Value::Null) => return Err((field.into(), "is required".into())),
            Some(_) => return Err((field.into(), format!("must be {want}"))),
        }
    }
    // Datadog writes thresholds as numbers; a number in a string (as exported by some tools)
    // is read as the number.
    let mut v = v;
    if let Some(th) = v
        .pointer_mut("/options/thresholds")
        .and_then(Value::as_object_mut)
    {
        for (k, val) in th.iter_mut() {
            if let Value::String(s) = val {
                match s.trim().parse::<f64>() {
                    Ok(n) => *val = Value::from(n),
                    Err(_) => {
                        return Err((
                            format!("options.thresholds.{k}"),
                            format!("{s:?} is not a number"),
                        ))
                    }
                }
            }
        }
    }
    serde_json::from_value::<MonitorSpec>(v.clone()).map_err(|e| {
        // serde names the wrong type but not where; find the field it was about.
        let field = first_bad_field(&v).unwrap_or_else(|| "monitor".into());
        (field, e.to_string())
    })
}

fn first_bad_field(v: &Value) -> Option<String> {
    let probe =
        |ptr: &'static str, ok: fn(&Value) -> bool| v.pointer(ptr).filter(|x| !ok(x)).map(|_| ptr);
    type Check = (&'static str, fn(&Value) -> bool);
    let checks: [Check; 19] = [
        ("/id", |x| x.is_i64() || x.is_null()),
        ("/type", Value::is_string),
        ("/message", Value::is_string),
        ("/tags", Value::is_array),
        ("/priority", |x| x.is_i64() || x.is_null()),
        ("/options", Value::is_object),
        ("/options/notify_no_data", Value::is_boolean),
        ("/options/no_data_timeframe", |x| x.is_i64() || x.is_null()),
        ("/options/renotify_interval", |x| x.is_i64() || x.is_null()),
        ("/options/evaluation_delay", |x| x.is_i64() || x.is_null()),
        ("/options/on_missing_data", |x| x.is_string() || x.is_null()),
        ("/options/renotify_statuses", |x| {
            x.is_array() || x.is_null()
        }),
        ("/options/timeout_h", |x| x.is_i64() || x.is_null()),
        ("/options/renotify_occurrences", |x| {
            x.is_i64() || x.is_null()
        }),
        ("/options/escalation_message", |x| {
            x.is_string() || x.is_null()
        }),
        ("/options/new_group_delay", |x| x.is_i64() || x.is_null()),
        ("/options/thresholds", Value::is_object),
        ("/options/silenced", Value::is_object),
        ("/options/thresholds/critical", |x| {
            x.is_number() || x.is_null()
        }),
    ];
    checks
        .iter()
        .find_map(|(p, ok)| probe(p, *ok))
        .map(|p| p.trim_start_matches('/').replace('/', "."))
}

/// The largest monitors file read (the API's body cap): a bigger one, or one that never ends,
/// is refused before it is read whole.
pub const MAX_FILE_BYTES: u64 = 4 << 20;

fn kind_of(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a directory"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Reads the file; a missing file is no monitors. A symlink is followed, but what it leads to
/// must be a regular file of at most [`MAX_FILE_BYTES`] (`/dev/zero` would be read for ever).
pub fn load(path: &Path) -> Result<MonitorsFile, ConfigError> {
    let text = match read_capped(path, MAX_FILE_BYTES) {
        Ok(Some(t)) => t,
        Ok(None) => return Ok(MonitorsFile::default()),
        Err(e) => return Err(e),
    };
    parse(path, &text)
}

fn read_capped(path: &Path, cap: u64) -> Result<Option<String>, ConfigError> {
    use std::io::Read;
    let io = |error| ConfigError::Read {
        path: path.to_owned(),
        error,
    };
    let check = |m: &std::fs::Metadata| {
        if !m.file_type().is_file() {
            return Err(ConfigError::NotAFile {
                path: path.to_owned(),
                kind: kind_of(m.file_type()).into(),
            });
        }
        if m.len() > cap {
            return Err(ConfigError::TooLarge {
                path: path.to_owned(),
                size: m.len(),
                limit: cap,
            });
        }
        Ok(())
    };
    // Before opening: opening a FIFO would wait for a writer.
    match std::fs::metadata(path) {
        Ok(m) => check(&m)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    }
    let f = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    // The path may have been swapped between the two looks: what was opened is checked too.
    check(&f.metadata().map_err(io)?)?;
    let mut buf = Vec::new();
    f.take(cap + 1).read_to_end(&mut buf).map_err(io)?;
    if buf.len() as u64 > cap {
        return Err(ConfigError::TooLarge {
            path: path.to_owned(),
            size: buf.len() as u64,
            limit: cap,
        });
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            reason: format!("not UTF-8: {e}"),
        })
}

pub fn parse(path: &Path, text: &str) -> Result<MonitorsFile, ConfigError> {
    let syntax = |reason: String| ConfigError::Syntax {
        path: path.to_owned(),
        reason,
    };
    let root = yaml_to_json(text).map_err(syntax)?;
    let (monitors, webhooks) = match root {
        Value::Null => (Value::Null, Value::Null),
        Value::Array(a) => (Value::Array(a), Value::Null),
        Value::Object(mut o) => {
            if let Some(k) = o.keys().find(|k| *k != "monitors" && *k != "webhooks") {
                return Err(syntax(format!(
                    "unknown key {k:?}: the file holds monitors and webhooks"
                )));
            }
            (
                o.remove("monitors").unwrap_or(Value::Null),
                o.remove("webhooks").unwrap_or(Value::Null),
            )
        }
        _ => {
            return Err(syntax(
                "expected monitors: [...] and webhooks: [...]".into(),
            ))
        }
    };
    let monitors = match monitors {
        Value::Null => Vec::new(),
        Value::Array(a) => a,
        _ => return Err(syntax("monitors must be a list".into())),
    };
    let webhooks: Vec<WebhookSpec> = match webhooks {
        Value::Null => Vec::new(),
        w => serde_json::from_value(w).map_err(|e| syntax(format!("webhooks: {e}")))?,
    };
    let mut names = HashSet::new();
    for w in &webhooks {
        let url = reqwest::Url::parse(&w.url).map_err(|e| {
            syntax(format!(
                "webhooks {:?}: url {}: {e}",
                w.name,
                super::notify::redact_url(&w.url)
            ))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(syntax(format!(
                "webhooks {:?}: url must be http or https",
                w.name
            )));
        }
        if !names.insert(w.name.clone()) {
            return Err(syntax(format!("webhooks: {:?} is given twice", w.name)));
        }
    }
    let mut out = Vec::new();
    let mut ids = HashSet::new();
    for (i, m) in monitors.into_iter().enumerate() {
        let label = match m.get("name").and_then(Value::as_str) {
            Some(n) => format!("monitors[{i}] {n:?}"),
            None => format!("monitors[{i}]"),
        };
        let bad = |(field, reason): (String, String)| ConfigError::Monitor {
            path: path.to_owned(),
            monitor: label.clone(),
            field,
            reason,
        };
        let spec = spec_from_json(m).map_err(bad)?;
        let query = check_spec(&spec).map_err(bad)?;
        let id = spec.id.unwrap_or_else(|| id_of_name(&spec.name));
        if !ids.insert(id) {
            return Err(bad((
                "id".into(),
                format!("{id} is used by another monitor"),
            )));
        }
        // A handle without its webhook notifies nobody; the file is kept (a webhook may be
        // on its way), the API refuses it.
        for name in unknown_webhooks(&spec.notified_text(), &webhooks) {
            tracing::warn!(file = %path.display(), monitor = %label, webhook = %name,
                configured = %webhook_list(&webhooks),
                "monitor message names @webhook-{name}, which is not configured");
        }
        let unapplied = spec.options.unapplied();
        if !unapplied.is_empty() {
            tracing::warn!(file = %path.display(), monitor = %label,
                options = %unapplied.join(", "),
                "monitor options kept but not applied by cairn");
        }
        out.push(Monitor { id, spec, query });
    }
    Ok(MonitorsFile {
        monitors: out,
        webhooks,
    })
}

/// The `@webhook-<name>` handles of `message` without a webhook of that name.
pub fn unknown_webhooks(message: &str, webhooks: &[WebhookSpec]) -> Vec<String> {
    super::notify::webhook_names(message)
        .into_iter()
        .filter(|n| !webhooks.iter().any(|w| &w.name == n))
        .collect()
}

/// The configured webhook names, for messages (`ops, pager`, or `none`).
pub fn webhook_list(webhooks: &[WebhookSpec]) -> String {
    if webhooks.is_empty() {
        return "none".into();
    }
    webhooks
        .iter()
        .map(|w| w.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Replaces the file with `file`: a private temporary file, fsync'd, renamed over it, so a
/// crash leaves the old or the new file, never half of one.
pub fn write_atomic(path: &Path, file: &MonitorsFile) -> Result<(), ConfigError> {
    let fail = |reason: String| ConfigError::Write {
        path: path.to_owned(),
        reason,
    };
    let out = FileOut {
        monitors: file.monitors.iter().map(|m| &m.spec).collect(),
        webhooks: &file.webhooks,
    };
    let mut text = serde_json::to_string_pretty(&out).map_err(|e| fail(e.to_string()))?;
    text.push('\n');
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "monitors.yaml".into());
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .map_err(|e| fail(format!("creating {}: {e}", tmp.display())))?;
    let written = f
        .write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(e.to_string()));
    }
    // The rename is durable once the directory is.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_yaml_file_loads_and_bad_monitors_name_their_field() {
        let p = Path::new("/x/monitors.yaml");
        let ok = parse(
            p,
            r#"
monitors:
  - name: errors
    type: log alert
    query: 'logs("status:error").index("*").rollup("count").by("host").last("5m") > 10'
    message: "{{value}} errors @webhook-ops"
    options:
      thresholds: {critical: 10, warning: 5, critical_recovery: 8}
      notify_no_data: true
      no_data_timeframe: 10
webhooks:
  - name: ops
    url: http://127.0.0.1:9/hook
"#,
        )
        .unwrap();
        assert_eq!(ok.monitors.len(), 1);
        assert_eq!(ok.monitors[0].id, id_of_name("errors"));
        assert_eq!(ok.webhooks[0].name, "ops");

        for (text, needle) in [
            ("monitors: [{name: a}]", "monitors[0] \"a\": query: is required"),
            ("monitors: [{name: a, query: 'logs(\"x\").rollup(\"count\").last(\"5m\") > 1', options: {thresholds: {critical: 2}}}]", "options.thresholds.critical: 2 differs"),
            ("monitors: [{name: a, query: 'logs(\"x\").rollup(\"count\").last(\"5m\") > 10', options: {thresholds: {warning: 20}}}]", "options.thresholds.warning: 20 must be below"),
            ("monitors: [{name: a, query: 'logs(\"x\").rollup(\"count\").last(\"5m\") < 10', options: {thresholds: {critical_recovery: 5}}}]", "critical_recovery: 5 must be above"),
            ("monitors: [{name: a, query: 'logs(\"x\").rollup(\"count\").last(\"5m\") > 1', options: {notify_no_data: maybe}}]", "options.notify_no_data"),
            ("monitors: [{name: a, type: metric alert, query: 'x'}]", "type: \"metric alert\" is not supported"),
            ("monitors: [{name: a, query: 'logs(\"x\").rollup(\"count\").last(\"5m\") >'}]", "query: column"),
            ("monitor: []", "unknown key"),
        ] {
            let e = parse(p, text).unwrap_err().to_string();
            assert!(e.starts_with("/x/monitors.yaml: "), "{e}");
            assert!(e.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn only_a_regular_file_within_the_cap_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("monitors.yaml");
        std::fs::create_dir(&d).unwrap();
        let e = load(&d).unwrap_err().to_string();
        assert!(e.contains("is a directory, not a regular file"), "{e}");

        let fifo = dir.path().join("fifo.yaml");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // Refused from its metadata: opening it would wait for a writer.
        let e = load(&fifo).unwrap_err().to_string();
        assert!(e.contains("is a FIFO"), "{e}");

        let missing = dir.path().join("none.yaml");
        assert!(load(&missing).unwrap().monitors.is_empty());
        // A dangling symlink is a missing file.
        let link = dir.path().join("link.yaml");
        std::os::unix::fs::symlink(&missing, &link).unwrap();
        assert!(load(&link).unwrap().monitors.is_empty());

        let small = dir.path().join("small.yaml");
        std::fs::write(&small, "monitors: []\n# padding padding\n").unwrap();
        let e = read_capped(&small, 10).unwrap_err().to_string();
        assert!(e.contains("over the limit of 10 bytes"), "{e}");
        assert!(read_capped(&small, 100).unwrap().is_some());
    }
}
