//! `datadog.yaml`: the agent's own settings, with `DD_*` environment overrides.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::doc::{
    as_mapping, as_sequence, describe, describe_text, field, is_null, key_string, parse_text,
    text_problem, Doc, Kind, Node, Origin,
};
use crate::error::{ConfigError, ConfigWarning};
use crate::redact::redact_url;
use crate::rules::{parse_rules, ProcessingRule};

/// The API key. It prints as `********` so that no `{:?}` of a config, error or log line can
/// leak it; the one way to the value is [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// `None` for an empty (or all-blank) key, which Datadog treats as "no key".
    pub fn new(value: impl Into<String>) -> Option<Secret> {
        let value = value.into();
        let trimmed = value.trim();
        if trimmed.is_empty() {
            None
        } else {
            Some(Secret(trimmed.to_string()))
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("********")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("********")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressionKind {
    Zstd,
    Gzip,
}

impl CompressionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CompressionKind::Zstd => "zstd",
            CompressionKind::Gzip => "gzip",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    Block,
    DropOldest,
}

impl WhenFull {
    pub fn as_str(self) -> &'static str {
        match self {
            WhenFull::Block => "block",
            WhenFull::DropOldest => "drop_oldest",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct BufferConfig {
    pub max_size_bytes: u64,
    pub when_full: WhenFull,
}

/// `Debug` is written by hand: `logs_dd_url` may hold a password.
#[derive(Clone)]
pub struct LogsConfig {
    pub logs_dd_url: Option<String>,
    pub logs_no_ssl: bool,
    pub use_compression: bool,
    pub compression_kind: CompressionKind,
    pub zstd_compression_level: i32,
    pub compression_level: u32,
    pub batch_wait_secs: f64,
    pub batch_max_size: usize,
    pub batch_max_content_size: usize,
    pub max_message_size_bytes: usize,
    pub processing_rules: Vec<ProcessingRule>,
    pub sender_backoff_base_secs: f64,
    pub sender_backoff_factor: f64,
    pub sender_backoff_max_secs: f64,
    pub http_timeout_secs: f64,
    pub buffer: BufferConfig,
    /// Cairn's `logs_config.intake.listen`: where the embedded local intake listens.
    pub intake_listen: String,
    /// Cairn's `logs_config.intake.token`: the embedded intake's token. `None`: generated
    /// into `<run_path>/auth_token` and reused across restarts.
    pub intake_token: Option<Secret>,
    /// Cairn's `logs_config.intake.auth` (default true); false lets anyone who can connect
    /// read and write the embedded intake (warned about loudly; refused beyond loopback).
    pub intake_auth: bool,
    /// Cairn's `logs_config.intake.pipelines`: the embedded intake's pipelines file. `None`:
    /// `<run_path>/intake/pipelines.yaml`. Relative paths are relative to the config dir.
    pub intake_pipelines: Option<PathBuf>,
    /// Cairn's `logs_config.intake.monitors`: the embedded intake's monitors file. `None`:
    /// `<run_path>/intake/monitors.yaml`.
    pub intake_monitors: Option<PathBuf>,
    /// Cairn's `logs_config.intake.monitor_interval` (seconds, default 60): how often the
    /// embedded intake evaluates its monitors.
    pub intake_monitor_interval_secs: f64,
}

impl fmt::Debug for LogsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured so that a new field cannot be forgotten here.
        let LogsConfig {
            logs_dd_url,
            logs_no_ssl,
            use_compression,
            compression_kind,
            zstd_compression_level,
            compression_level,
            batch_wait_secs,
            batch_max_size,
            batch_max_content_size,
            max_message_size_bytes,
            processing_rules,
            sender_backoff_base_secs,
            sender_backoff_factor,
            sender_backoff_max_secs,
            http_timeout_secs,
            buffer,
            intake_listen,
            intake_token,
            intake_auth,
            intake_pipelines,
            intake_monitors,
            intake_monitor_interval_secs,
        } = self;
        f.debug_struct("LogsConfig")
            .field("logs_dd_url", &logs_dd_url.as_deref().map(redact_url))
            .field("logs_no_ssl", logs_no_ssl)
            .field("use_compression", use_compression)
            .field("compression_kind", compression_kind)
            .field("zstd_compression_level", zstd_compression_level)
            .field("compression_level", compression_level)
            .field("batch_wait_secs", batch_wait_secs)
            .field("batch_max_size", batch_max_size)
            .field("batch_max_content_size", batch_max_content_size)
            .field("max_message_size_bytes", max_message_size_bytes)
            .field("processing_rules", processing_rules)
            .field("sender_backoff_base_secs", sender_backoff_base_secs)
            .field("sender_backoff_factor", sender_backoff_factor)
            .field("sender_backoff_max_secs", sender_backoff_max_secs)
            .field("http_timeout_secs", http_timeout_secs)
            .field("buffer", buffer)
            .field("intake_listen", intake_listen)
            .field("intake_token", intake_token)
            .field("intake_auth", intake_auth)
            .field("intake_pipelines", intake_pipelines)
            .field("intake_monitors", intake_monitors)
            .field("intake_monitor_interval_secs", intake_monitor_interval_secs)
            .finish()
    }
}

impl Default for LogsConfig {
    fn default() -> Self {
        LogsConfig {
            logs_dd_url: None,
            logs_no_ssl: false,
            use_compression: true,
            compression_kind: CompressionKind::Zstd,
            zstd_compression_level: 1,
            compression_level: 6,
            batch_wait_secs: 5.0,
            batch_max_size: 1000,
            batch_max_content_size: 5_000_000,
            max_message_size_bytes: 900_000,
            processing_rules: Vec::new(),
            sender_backoff_base_secs: 1.0,
            sender_backoff_factor: 2.0,
            sender_backoff_max_secs: 120.0,
            http_timeout_secs: 10.0,
            buffer: BufferConfig {
                max_size_bytes: 1 << 30,
                when_full: WhenFull::Block,
            },
            intake_listen: "127.0.0.1:10518".to_string(),
            intake_token: None,
            intake_auth: true,
            intake_pipelines: None,
            intake_monitors: None,
            intake_monitor_interval_secs: 60.0,
        }
    }
}

/// The agent's own log, with the Datadog Agent's key names. `log_level` stays on
/// [`AgentConfig`]: the checks' Python loggers read it too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentLogConfig {
    /// `log_file`: default `<run_path>/logs/agent.log`; relative to the config dir otherwise.
    pub file: PathBuf,
    /// `log_file_max_size`: the file is rotated before a line would take it past this.
    /// Default 10 MiB, as the Datadog Agent's `10Mb`.
    pub max_size_bytes: u64,
    /// `log_file_max_rolls`: rotated files kept (`agent.log.1` is the newest). Default 1.
    pub max_rolls: u32,
    /// `disable_file_logging`: no file at all, stderr only. Default false.
    pub disable_file_logging: bool,
    /// `log_to_console`: whether `cairn run` keeps logging to stderr once its config is read.
    /// Default true.
    pub to_console: bool,
}

impl AgentLogConfig {
    fn defaults(run_path: &Path) -> AgentLogConfig {
        AgentLogConfig {
            file: default_log_file(run_path),
            max_size_bytes: 10 << 20,
            max_rolls: 1,
            disable_file_logging: false,
            to_console: true,
        }
    }
}

fn default_log_file(run_path: &Path) -> PathBuf {
    run_path.join("logs").join("agent.log")
}

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub config_dir: PathBuf,
    pub api_key: Option<Secret>,
    pub site: String,
    pub dd_url: String,
    pub hostname: String,
    pub logs_enabled: bool,
    /// `enable_metadata_collection`: on by default, as in the Datadog Agent; the real
    /// library runs a check's `@metadata_entrypoint` methods only when it is on.
    pub enable_metadata_collection: bool,
    /// Absolute, or relative to the current directory when `config_dir` is.
    pub run_path: PathBuf,
    pub check_runners: usize,
    pub cmd_host: String,
    pub cmd_port: u16,
    pub python_env: Option<PathBuf>,
    pub log_level: String,
    /// `memory_limit_bytes`: agent RSS above which the watchdog reports, at error level, the
    /// checks running and their last runs' growth. Default 2 GiB; 0 disables.
    pub memory_limit_bytes: u64,
    /// `histogram_aggregates`: what a histogram flushes (`max`, `min`, `median`, `avg`, `sum`,
    /// `count`). Default `[max, median, avg, count]`, as the Datadog Agent.
    pub histogram_aggregates: Vec<String>,
    /// `histogram_percentiles`: each in (0, 1). Default `[0.95]`.
    pub histogram_percentiles: Vec<f64>,
    /// Whether `dd_url` was given (in `datadog.yaml` or `DD_DD_URL`) rather than derived from
    /// `site`: metrics then go there even without an api_key (a Vector or a proxy, say).
    pub dd_url_set: bool,
    /// `forwarder_storage_max_size_in_bytes`: the disk budget for metrics, service checks and
    /// events waiting to be delivered. Default 128 MiB (the Datadog Agent keeps none on disk
    /// by default; Cairn keeps them, so an outage loses nothing).
    pub forwarder_storage_max_size_in_bytes: u64,
    pub logs: LogsConfig,
    pub agent_log: AgentLogConfig,
    /// The whole `datadog.yaml` after env overrides, minus every key that names a secret.
    raw: RawTree,
}

/// The raw config tree. Its `Debug` masks URL passwords and query values, which may be in any
/// value (`logs_dd_url`, a proxy); [`AgentConfig::get`] answers with the values as written.
#[derive(Clone)]
struct RawTree(Value);

impl fmt::Debug for RawTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::redact::redact_urls_in(&self.0.to_string()))
    }
}

const POSITIVE: Kind = Kind::Float {
    min: 0.0,
    exclusive: true,
};

/// The largest `batch_max_content_size` (and `max_message_size_bytes`, since a longer message
/// could never be sent): 32 MiB. The durable buffer treats a record above 64 MiB as corruption,
/// so a log must stay well below that with its attributes and framing; and Datadog's intake
/// takes 5 MB.
pub const MAX_PAYLOAD_BYTES: i64 = 32 << 20;

/// Every key Cairn reads. Each one can be overridden by `DD_<PATH>` (see [`env_var_name`]).
const KEYS: &[(&str, Kind)] = &[
    ("api_key", Kind::Str),
    ("site", Kind::Str),
    ("dd_url", Kind::Str),
    ("hostname", Kind::Str),
    ("logs_enabled", Kind::Bool),
    ("enable_metadata_collection", Kind::Bool),
    ("run_path", Kind::Str),
    (
        "check_runners",
        Kind::Int {
            min: 1,
            max: i64::MAX,
        },
    ),
    ("cmd_host", Kind::Str),
    ("cmd_port", Kind::Int { min: 1, max: 65535 }),
    ("python_env", Kind::Str),
    (
        "log_level",
        Kind::Enum(&[
            "trace", "debug", "info", "warn", "warning", "error", "critical", "off",
        ]),
    ),
    (
        "memory_limit_bytes",
        Kind::Int {
            min: 0,
            max: i64::MAX,
        },
    ),
    (
        "forwarder_storage_max_size_in_bytes",
        Kind::Int {
            min: 1,
            max: i64::MAX,
        },
    ),
    ("log_file", Kind::Str),
    (
        "log_file_max_rolls",
        Kind::Int {
            min: 0,
            max: MAX_LOG_ROLLS,
        },
    ),
    ("disable_file_logging", Kind::Bool),
    ("log_to_console", Kind::Bool),
    ("logs_config.logs_dd_url", Kind::LogsUrl),
    ("logs_config.logs_no_ssl", Kind::Bool),
    ("logs_config.use_compression", Kind::Bool),
    (
        "logs_config.compression_kind",
        Kind::Enum(&["zstd", "gzip"]),
    ),
    (
        "logs_config.zstd_compression_level",
        Kind::Int { min: 1, max: 22 },
    ),
    (
        "logs_config.compression_level",
        Kind::Int { min: 0, max: 9 },
    ),
    ("logs_config.batch_wait", POSITIVE),
    (
        "logs_config.batch_max_size",
        Kind::Int {
            min: 1,
            max: i64::MAX,
        },
    ),
    (
        "logs_config.batch_max_content_size",
        Kind::Int {
            min: 1,
            max: MAX_PAYLOAD_BYTES,
        },
    ),
    (
        "logs_config.max_message_size_bytes",
        Kind::Int {
            min: 1,
            max: MAX_PAYLOAD_BYTES,
        },
    ),
    ("logs_config.sender_backoff_base", POSITIVE),
    (
        "logs_config.sender_backoff_factor",
        Kind::Float {
            min: 1.0,
            exclusive: false,
        },
    ),
    ("logs_config.sender_backoff_max", POSITIVE),
    ("logs_config.http_timeout", POSITIVE),
    (
        "logs_config.buffer.max_size_bytes",
        Kind::Int {
            min: 1,
            max: i64::MAX,
        },
    ),
    (
        "logs_config.buffer.when_full",
        Kind::Enum(&["block", "drop_oldest"]),
    ),
    ("logs_config.intake.listen", Kind::Str),
    ("logs_config.intake.token", Kind::Str),
    ("logs_config.intake.auth", Kind::Bool),
    ("logs_config.intake.pipelines", Kind::Str),
    ("logs_config.intake.monitors", Kind::Str),
    ("logs_config.intake.monitor_interval", POSITIVE),
];

/// Each rotation renames every kept file; a hundred is more history than a size cap needs.
const MAX_LOG_ROLLS: i64 = 100;

/// Read apart from [`KEYS`]: a size is an integer or a string with a unit, which no
/// [`Kind`] describes.
const LOG_FILE_MAX_SIZE_KEY: &str = "log_file_max_size";
const RULES_KEY: &str = "logs_config.processing_rules";
const HISTOGRAM_AGGREGATES_KEY: &str = "histogram_aggregates";
const HISTOGRAM_PERCENTILES_KEY: &str = "histogram_percentiles";
const DEFAULT_HISTOGRAM_AGGREGATES: [&str; 4] = ["max", "median", "avg", "count"];
const HISTOGRAM_AGGREGATE_NAMES: [&str; 6] = ["max", "min", "median", "avg", "sum", "count"];

/// Sections whose children are checked against the known keys.
const SECTIONS: &[&str] = &["logs_config", "logs_config.buffer", "logs_config.intake"];

/// Datadog keys Cairn accepts without using, so a config copied from a real agent does not
/// drown the operator in warnings. A trailing `*` matches a prefix.
const KNOWN_UNUSED: &[&str] = &[
    "app_key",
    "apm_config",
    "process_config",
    "tags",
    "extra_tags",
    "env",
    "proxy",
    "no_proxy_nonexact_match",
    "enable_gohai",
    "log_format_json",
    "log_to_syslog",
    "syslog_uri",
    "skip_ssl_validation",
    "min_tls_version",
    "integration_*",
    "dogstatsd_*",
    "use_dogstatsd",
    "bind_host",
    "confd_path",
    "additional_checksd",
    "expvar_port",
    "collect_ec2_tags",
    "collect_gce_tags",
    "cloud_provider_metadata",
    "hostname_fqdn",
    "hostname_file",
    "hostname_force_config_as_canonical",
    "inventories_*",
    "forwarder_*",
    "histogram_*",
    "jmx_*",
    "network_config",
    "system_probe_config",
    "runtime_security_config",
    "compliance_config",
    "security_agent",
    "remote_configuration",
    "inventories_configuration_enabled",
    "telemetry",
    "python_version",
    "GUI_port",
    "ipc_address",
    "secret_backend_*",
    "logs_config.container_collect_all",
    "logs_config.use_http",
    "logs_config.use_tcp",
    "logs_config.force_use_http",
    "logs_config.force_use_tcp",
    "logs_config.use_port_443",
    "logs_config.open_files_limit",
    "logs_config.auto_multi_line_*",
    "logs_config.frame_size",
    "logs_config.dev_mode_*",
    "logs_config.api_key",
    "logs_config.additional_endpoints",
    "logs_config.file_scan_period",
    "logs_config.sender_recovery_*",
    "logs_config.tagger_warmup_duration",
    "logs_config.k8s_container_use_file",
    "logs_config.docker_container_use_file",
    "logs_config.stop_grace_period",
    "logs_config.message_channel_size",
    "logs_config.payload_channel_size",
    "logs_config.run_path",
];

/// Each item of a list key with a way to build the error that points at it: from `DD_<KEY>`
/// (items separated by spaces or commas, as the Datadog Agent reads it) or from a YAML
/// sequence of scalars. `None` when the key is not set.
#[allow(clippy::type_complexity)]
fn list_key<'a>(
    root: Option<(&'a Doc, &'a Node)>,
    env: &dyn Fn(&str) -> Option<String>,
    key: &'static str,
) -> Result<Option<Vec<(String, Box<dyn Fn(String) -> ConfigError + 'a>)>>, ConfigError> {
    let var = env_var_name(key);
    if let Some(text) = env(&var).filter(|v| !v.trim().is_empty()) {
        let items = text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(|s| {
                let var = var.clone();
                let at: Box<dyn Fn(String) -> ConfigError> =
                    Box::new(move |problem| ConfigError::Env {
                        var: var.clone(),
                        problem,
                    });
                (s.to_string(), at)
            })
            .collect();
        return Ok(Some(items));
    }
    let Some((doc, root)) = root else {
        return Ok(None);
    };
    let Some(node) = lookup(root, key) else {
        return Ok(None);
    };
    if is_null(node) {
        return Ok(None);
    }
    let Some(seq) = as_sequence(node) else {
        return Err(doc.invalid(
            node,
            key,
            format!("expected a list, got {}", describe(node)),
        ));
    };
    let mut items = Vec::with_capacity(seq.len());
    for item in seq {
        let text = doc
            .string(item)
            .map_err(|problem| doc.invalid(item, key, problem))?
            .unwrap_or_default();
        let at: Box<dyn Fn(String) -> ConfigError + 'a> =
            Box::new(move |problem| doc.invalid(item, key, problem));
        items.push((text.trim().to_string(), at));
    }
    Ok(Some(items))
}

/// A size as the Datadog Agent reads `log_file_max_size`: bytes, or a number followed by `B`,
/// `KB`, `MB` or `GB` in any case, in powers of 1024 (`10Mb` is 10,485,760). Unlike the
/// Agent, which reads what it cannot parse as 0, anything else is refused, as is 0.
fn parse_size_bytes(text: &str) -> Option<u64> {
    let t = text.trim();
    let lower = t.to_ascii_lowercase();
    let (number, multiplier) = [
        ("kb", 1u64 << 10),
        ("mb", 1 << 20),
        ("gb", 1 << 30),
        ("b", 1),
    ]
    .iter()
    .find_map(|(unit, m)| lower.strip_suffix(unit).map(|n| (n.trim_end(), *m)))
    .unwrap_or((lower.as_str(), 1));
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    number
        .parse::<u64>()
        .ok()?
        .checked_mul(multiplier)
        .filter(|n| *n > 0)
}

fn size_problem(got: String) -> String {
    format!("expected a size in bytes (an integer >= 1, or with a unit: \"10MB\", \"512KB\"), got {got}")
}

/// A size key from `DD_<KEY>` or `datadog.yaml`; `None` when not set.
fn size_key(
    root: Option<(&Doc, &Node)>,
    env: &dyn Fn(&str) -> Option<String>,
    key: &str,
) -> Result<Option<u64>, ConfigError> {
    let var = env_var_name(key);
    if let Some(text) = env(&var).filter(|v| !v.trim().is_empty()) {
        return match parse_size_bytes(&text) {
            Some(n) => Ok(Some(n)),
            None => Err(ConfigError::Env {
                problem: size_problem(describe_text(&text)),
                var,
            }),
        };
    }
    let Some((doc, node)) = root.and_then(|(doc, root)| lookup(root, key).map(|n| (doc, n))) else {
        return Ok(None);
    };
    let text = match doc.string(node) {
        Ok(Some(text)) => text,
        Ok(None) => return Ok(None),
        Err(_) => return Err(doc.invalid(node, key, size_problem(describe(node)))),
    };
    match parse_size_bytes(&text) {
        Some(n) => Ok(Some(n)),
        None => Err(doc.invalid(node, key, size_problem(describe(node)))),
    }
}

/// `DD_` + the key path upper-cased, dots become underscores.
pub fn env_var_name(key: &str) -> String {
    format!("DD_{}", key.replace('.', "_").to_ascii_uppercase())
}

fn kind_of(key: &str) -> Option<&'static Kind> {
    KEYS.iter().find(|(k, _)| *k == key).map(|(_, kind)| kind)
}

fn is_known(path: &str) -> bool {
    path == RULES_KEY
        || path == LOG_FILE_MAX_SIZE_KEY
        || path == HISTOGRAM_AGGREGATES_KEY
        || path == HISTOGRAM_PERCENTILES_KEY
        || SECTIONS.contains(&path)
        || kind_of(path).is_some()
        || KNOWN_UNUSED
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => path.starts_with(prefix),
                None => *pattern == path,
            })
}

/// Keys whose values must never be handed out by [`AgentConfig::get`] or kept in the raw tree.
fn is_secret_key(segment: &str) -> bool {
    segment == "api_key"
        || segment == "token"
        || segment.ends_with("_token")
        || segment == "app_key"
        || segment.ends_with("_api_key")
        || segment.ends_with("_app_key")
}

fn os_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

fn lookup<'a>(root: &'a Node, path: &str) -> Option<&'a Node> {
    path.split('.')
        .try_fold(root, |node, segment| field(node, segment))
}

fn json_lookup<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(root, |v, segment| v.get(segment))
}

fn json_set(root: &mut Value, path: &str, value: Value) {
    let mut cur = root;
    let mut segments = path.split('.').peekable();
    while let Some(segment) = segments.next() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Value::Object(map) = cur else {
            return;
        };
        if segments.peek().is_none() {
            map.insert(segment.to_string(), value);
            return;
        }
        cur = map.entry(segment.to_string()).or_insert(Value::Null);
    }
}

fn strip_secrets(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|k, _| !is_secret_key(k));
            map.values_mut().for_each(strip_secrets);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_secrets),
        _ => {}
    }
}

/// Integer keys are range-checked by [`KEYS`], so these conversions cannot truncate; the
/// fallbacks only keep the types honest.
fn as_u64(v: &Value) -> u64 {
    v.as_u64().unwrap_or_default()
}

fn as_f64(v: &Value) -> f64 {
    v.as_f64().unwrap_or_default()
}

fn as_string(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn resolve_path(config_dir: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        config_dir.join(p)
    }
}

impl AgentConfig {
    /// The configuration used when `datadog.yaml` is absent and no `DD_*` variable is set.
    pub fn defaults(config_dir: &Path) -> AgentConfig {
        let site = "datadoghq.com".to_string();
        AgentConfig {
            config_dir: config_dir.to_path_buf(),
            api_key: None,
            dd_url: format!("https://app.{site}"),
            site,
            hostname: os_hostname(),
            logs_enabled: false,
            enable_metadata_collection: true,
            run_path: config_dir.join("run"),
            check_runners: 4,
            cmd_host: "localhost".to_string(),
            cmd_port: 5001,
            python_env: None,
            log_level: "info".to_string(),
            memory_limit_bytes: 2 << 30,
            histogram_aggregates: DEFAULT_HISTOGRAM_AGGREGATES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            histogram_percentiles: vec![0.95],
            dd_url_set: false,
            forwarder_storage_max_size_in_bytes: 128 << 20,
            logs: LogsConfig::default(),
            agent_log: AgentLogConfig::defaults(&config_dir.join("run")),
            raw: RawTree(Value::Object(Map::new())),
        }
    }

    /// Reads `datadog.yaml` (already parsed; `None` when absent) and applies `DD_*` overrides.
    pub(crate) fn build(
        config_dir: &Path,
        doc: Option<&Doc>,
        env: &dyn Fn(&str) -> Option<String>,
        warnings: &mut Vec<ConfigWarning>,
    ) -> Result<AgentConfig, ConfigError> {
        let root = match doc {
            Some(d) => d.mapping_root()?.map(|r| (d, r)),
            None => None,
        };
        if let Some((doc, root)) = root {
            for section in SECTIONS {
                if let Some(node) = lookup(root, section) {
                    if as_mapping(node).is_none() {
                        return Err(doc.invalid(
                            node,
                            section,
                            format!("expected a mapping, got {}", describe(node)),
                        ));
                    }
                }
            }
            warn_unknown(doc, root, "", warnings);
        }

        let mut set: BTreeMap<&'static str, Value> = BTreeMap::new();
        for (key, kind) in KEYS {
            let var = env_var_name(key);
            let from_env = env(&var).filter(|v| !v.is_empty());
            let value = match (from_env, root) {
                (Some(text), _) => parse_text(&text, kind).map_err(|()| ConfigError::Env {
                    problem: text_problem(&text, kind),
                    var,
                })?,
                (None, Some((doc, root))) => match lookup(root, key) {
                    Some(node) => doc
                        .scalar(node, kind)
                        .map_err(|problem| doc.invalid(node, key, problem))?,
                    None => Value::Null,
                },
                (None, None) => Value::Null,
            };
            if !value.is_null() {
                set.insert(key, value);
            }
        }

        let mut raw = match root {
            Some((_, root)) => crate::doc::to_json(root),
            None => Value::Object(Map::new()),
        };
        let rules_var = env_var_name(RULES_KEY);
        let processing_rules = match env(&rules_var).filter(|v| !v.trim().is_empty()) {
            // Datadog takes this override as JSON, which is also YAML.
            Some(text) => {
                let env_doc = Doc::parse(Origin::Env(rules_var), text)?;
                match &env_doc.root {
                    Some(node) => {
                        json_set(&mut raw, RULES_KEY, crate::doc::to_json(node));
                        parse_rules(&env_doc, node, RULES_KEY)?
                    }
                    None => Vec::new(),
                }
            }
            None => match root.and_then(|(doc, root)| lookup(root, RULES_KEY).map(|n| (doc, n))) {
                Some((doc, node)) => parse_rules(doc, node, RULES_KEY)?,
                None => Vec::new(),
            },
        };

        for (key, value) in &set {
            json_set(&mut raw, key, value.clone());
        }
        strip_secrets(&mut raw);

        let explicit_dd_url = set
            .get("dd_url")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.trim().is_empty());
        let explicit_log_file = set
            .get("log_file")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.trim().is_empty());
        let mut cfg = AgentConfig::defaults(config_dir);
        cfg.logs.processing_rules = processing_rules;
        if let Some(items) = list_key(root, env, HISTOGRAM_AGGREGATES_KEY)? {
            cfg.histogram_aggregates = items
                .into_iter()
                .map(|(item, at)| {
                    if HISTOGRAM_AGGREGATE_NAMES.contains(&item.as_str()) {
                        Ok(item)
                    } else {
                        Err(at(format!(
                            "unknown aggregate {item:?} (expected {})",
                            HISTOGRAM_AGGREGATE_NAMES.join(", ")
                        )))
                    }
                })
                .collect::<Result<_, _>>()?;
            json_set(
                &mut raw,
                HISTOGRAM_AGGREGATES_KEY,
                Value::from(cfg.histogram_aggregates.clone()),
            );
        }
        if let Some(items) = list_key(root, env, HISTOGRAM_PERCENTILES_KEY)? {
            cfg.histogram_percentiles = items
                .into_iter()
                .map(|(item, at)| match item.parse::<f64>() {
                    Ok(p) if p > 0.0 && p < 1.0 => Ok(p),
                    _ => Err(at(format!(
                        "expected a number between 0 and 1 (0.95 for the 95th percentile), got {item:?}"
                    ))),
                })
                .collect::<Result<_, _>>()?;
            json_set(
                &mut raw,
                HISTOGRAM_PERCENTILES_KEY,
                Value::from(cfg.histogram_percentiles.clone()),
            );
        }
        if let Some(n) = size_key(root, env, LOG_FILE_MAX_SIZE_KEY)? {
            cfg.agent_log.max_size_bytes = n;
            json_set(&mut raw, LOG_FILE_MAX_SIZE_KEY, Value::from(n));
        }
        for (key, value) in set {
            cfg.apply(key, value);
        }
        if !explicit_log_file {
            // Under run_path, wherever run_path ended up.
            cfg.agent_log.file = default_log_file(&cfg.run_path);
        }
        if !explicit_dd_url {
            // `dd_url` follows `site` unless it was given.
            cfg.dd_url = format!("https://app.{}", cfg.site);
        }
        cfg.dd_url_set = explicit_dd_url;
        cfg.raw = RawTree(raw);
        Ok(cfg)
    }

    fn apply(&mut self, key: &str, v: Value) {
        let logs = &mut self.logs;
        match key {
            "api_key" => self.api_key = Secret::new(as_string(&v)),
            "site" => {
                let site = as_string(&v).trim().to_string();
                if !site.is_empty() {
                    self.site = site;
                }
            }
            "dd_url" => self.dd_url = as_string(&v).trim().to_string(),
            "hostname" => {
                let hostname = as_string(&v).trim().to_string();
                if !hostname.is_empty() {
                    self.hostname = hostname;
                }
            }
            "logs_enabled" => self.logs_enabled = v.as_bool().unwrap_or(false),
            "enable_metadata_collection" => {
                self.enable_metadata_collection = v.as_bool().unwrap_or(true)
            }
            "run_path" => self.run_path = resolve_path(&self.config_dir, &as_string(&v)),
            "check_runners" => self.check_runners = as_u64(&v) as usize,
            "cmd_host" => self.cmd_host = as_string(&v),
            "cmd_port" => self.cmd_port = u16::try_from(as_u64(&v)).unwrap_or(5001),
            "python_env" => {
                let p = as_string(&v);
                self.python_env =
                    (!p.trim().is_empty()).then(|| resolve_path(&self.config_dir, &p));
            }
            "log_level" => self.log_level = as_string(&v),
            "log_file" => {
                let p = as_string(&v);
                if !p.trim().is_empty() {
                    self.agent_log.file = resolve_path(&self.config_dir, p.trim());
                }
            }
            "log_file_max_rolls" => {
                self.agent_log.max_rolls = u32::try_from(as_u64(&v)).unwrap_or(1)
            }
            "disable_file_logging" => {
                self.agent_log.disable_file_logging = v.as_bool().unwrap_or(false)
            }
            "log_to_console" => self.agent_log.to_console = v.as_bool().unwrap_or(true),
            "memory_limit_bytes" => self.memory_limit_bytes = as_u64(&v),
            "forwarder_storage_max_size_in_bytes" => {
                self.forwarder_storage_max_size_in_bytes = as_u64(&v)
            }
            "logs_config.logs_dd_url" => {
                logs.logs_dd_url = Some(as_string(&v)).filter(|u| !u.is_empty())
            }
            "logs_config.logs_no_ssl" => logs.logs_no_ssl = v.as_bool().unwrap_or(false),
            "logs_config.use_compression" => logs.use_compression = v.as_bool().unwrap_or(true),
            "logs_config.compression_kind" => {
                logs.compression_kind = if v == "gzip" {
                    CompressionKind::Gzip
                } else {
                    CompressionKind::Zstd
                }
            }
            "logs_config.zstd_compression_level" => {
                logs.zstd_compression_level = v.as_i64().unwrap_or(1) as i32
            }
            "logs_config.compression_level" => logs.compression_level = as_u64(&v) as u32,
            "logs_config.batch_wait" => logs.batch_wait_secs = as_f64(&v),
            "logs_config.batch_max_size" => logs.batch_max_size = as_u64(&v) as usize,
            "logs_config.batch_max_content_size" => {
                logs.batch_max_content_size = as_u64(&v) as usize
            }
            "logs_config.max_message_size_bytes" => {
                logs.max_message_size_bytes = as_u64(&v) as usize
            }
            "logs_config.sender_backoff_base" => logs.sender_backoff_base_secs = as_f64(&v),
            "logs_config.sender_backoff_factor" => logs.sender_backoff_factor = as_f64(&v),
            "logs_config.sender_backoff_max" => logs.sender_backoff_max_secs = as_f64(&v),
            "logs_config.http_timeout" => logs.http_timeout_secs = as_f64(&v),
            "logs_config.buffer.max_size_bytes" => logs.buffer.max_size_bytes = as_u64(&v),
            "logs_config.buffer.when_full" => {
                logs.buffer.when_full = if v == "drop_oldest" {
                    WhenFull::DropOldest
                } else {
                    WhenFull::Block
                }
            }
            "logs_config.intake.listen" => logs.intake_listen = as_string(&v),
            "logs_config.intake.token" => logs.intake_token = Secret::new(as_string(&v)),
            "logs_config.intake.auth" => logs.intake_auth = v.as_bool().unwrap_or(true),
            "logs_config.intake.pipelines" => {
                let p = as_string(&v);
                logs.intake_pipelines =
                    (!p.trim().is_empty()).then(|| resolve_path(&self.config_dir, p.trim()));
            }
            "logs_config.intake.monitors" => {
                let p = as_string(&v);
                logs.intake_monitors =
                    (!p.trim().is_empty()).then(|| resolve_path(&self.config_dir, p.trim()));
            }
            "logs_config.intake.monitor_interval" => logs.intake_monitor_interval_secs = as_f64(&v),
            _ => {}
        }
    }

    /// Looks a dotted key up (`"logs_config.batch_wait"`). Keys Cairn knows answer with their
    /// effective value (default included); other keys answer from `datadog.yaml` as written.
    /// Secrets (`api_key` and the like) always answer `None`.
    pub fn get(&self, key: &str) -> Option<Value> {
        if key.is_empty() || key.split('.').any(is_secret_key) {
            return None;
        }
        if let Some(v) = self.effective(key) {
            return v;
        }
        json_lookup(&self.raw.0, key).cloned()
    }

    /// `Some(answer)` for keys Cairn owns, `None` for keys it does not.
    fn effective(&self, key: &str) -> Option<Option<Value>> {
        let logs = &self.logs;
        let v = match key {
            "site" => Value::from(self.site.as_str()),
            "dd_url" => Value::from(self.dd_url.as_str()),
            "hostname" => Value::from(self.hostname.as_str()),
            "logs_enabled" => Value::from(self.logs_enabled),
            "enable_metadata_collection" => Value::from(self.enable_metadata_collection),
            "run_path" => Value::from(self.run_path.display().to_string()),
            "check_runners" => Value::from(self.check_runners),
            "cmd_host" => Value::from(self.cmd_host.as_str()),
            "cmd_port" => Value::from(self.cmd_port),
            "python_env" => {
                return Some(
                    self.python_env
                        .as_ref()
                        .map(|p| Value::from(p.display().to_string())),
                )
            }
            "log_level" => Value::from(self.log_level.as_str()),
            "log_file" => Value::from(self.agent_log.file.display().to_string()),
            LOG_FILE_MAX_SIZE_KEY => Value::from(self.agent_log.max_size_bytes),
            "log_file_max_rolls" => Value::from(self.agent_log.max_rolls),
            "disable_file_logging" => Value::from(self.agent_log.disable_file_logging),
            "log_to_console" => Value::from(self.agent_log.to_console),
            "memory_limit_bytes" => Value::from(self.memory_limit_bytes),
            "logs_config.logs_dd_url" => return Some(logs.logs_dd_url.clone().map(Value::from)),
            "logs_config.logs_no_ssl" => Value::from(logs.logs_no_ssl),
            "logs_config.use_compression" => Value::from(logs.use_compression),
            "logs_config.compression_kind" => Value::from(logs.compression_kind.as_str()),
            "logs_config.zstd_compression_level" => Value::from(logs.zstd_compression_level),
            "logs_config.compression_level" => Value::from(logs.compression_level),
            "logs_config.batch_wait" => Value::from(logs.batch_wait_secs),
            "logs_config.batch_max_size" => Value::from(logs.batch_max_size),
            "logs_config.batch_max_content_size" => Value::from(logs.batch_max_content_size),
            "logs_config.max_message_size_bytes" => Value::from(logs.max_message_size_bytes),
            "logs_config.sender_backoff_base" => Value::from(logs.sender_backoff_base_secs),
            "logs_config.sender_backoff_factor" => Value::from(logs.sender_backoff_factor),
            "logs_config.sender_backoff_max" => Value::from(logs.sender_backoff_max_secs),
            "logs_config.http_timeout" => Value::from(logs.http_timeout_secs),
            "logs_config.buffer.max_size_bytes" => Value::from(logs.buffer.max_size_bytes),
            "logs_config.buffer.when_full" => Value::from(logs.buffer.when_full.as_str()),
            "logs_config.intake.listen" => Value::from(logs.intake_listen.as_str()),
            "logs_config.intake.auth" => Value::from(logs.intake_auth),
            "logs_config.intake.pipelines" => {
                return Some(
                    logs.intake_pipelines
                        .as_ref()
                        .map(|p| Value::from(p.display().to_string())),
                )
            }
            "logs_config.intake.monitors" => {
                return Some(
                    logs.intake_monitors
                        .as_ref()
                        .map(|p| Value::from(p.display().to_string())),
                )
            }
            "logs_config.intake.monitor_interval" => Value::from(logs.intake_monitor_interval_secs),
            RULES_KEY => json_lookup(&self.raw.0, key)
                .cloned()
                .unwrap_or(Value::Array(Vec::new())),
            _ => return None,
        };
        Some(Some(v))
    }

    /// Base URL of the logs intake (Cairn appends `/api/v2/logs`). `logs_dd_url` wins:
    /// `host:port` becomes `https://host:port` (`http://` with `logs_no_ssl`), a full URL
    /// is kept. Without it, an API key means Datadog's intake for `site`, and no API key
    /// means `None`: ship to the embedded local intake.
    pub fn logs_intake_url(&self) -> Option<String> {
        if let Some(url) = &self.logs.logs_dd_url {
            let url = url.trim().trim_end_matches('/');
            if url.contains("://") {
                return Some(url.to_string());
            }
            let scheme = if self.logs.logs_no_ssl {
                "http"
            } else {
                "https"
            };
            return Some(format!("{scheme}://{url}"));
        }
        self.api_key.as_ref()?;
        Some(format!("https://http-intake.logs.{}", self.site))
    }
}

fn warn_unknown(doc: &Doc, node: &Node, prefix: &str, warnings: &mut Vec<ConfigWarning>) {
    let Some(map) = as_mapping(node) else {
        return;
    };
    for (k, v) in map {
        let path = format!("{prefix}{}", key_string(k));
        if SECTIONS.contains(&path.as_str()) {
            warn_unknown(doc, v, &format!("{path}."), warnings);
        } else if !is_known(&path) {
            warnings.push(ConfigWarning {
                location: doc.location(k),
                message: format!("unknown key \"{path}\" (ignored)"),
            });
        }
    }
}
