//! The native modules the Datadog library imports: `datadog_agent` and `aggregator` (SPEC §3),
//! plus `_cairn`, which holds the bundled `AgentCheck`'s native base.

use std::sync::OnceLock;

use pyo3::exceptions::{PyNotImplementedError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use cairn_config::AgentConfig;
use cairn_logs::{wire, LogFields};

use cairn_metrics::wire::ServiceCheck as WireServiceCheck;
use cairn_metrics::{MetricKind, Unsupported};

use crate::context::{self, Metric, ServiceCheck};
use crate::native::refused;
use crate::pyjson;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

static AGENT: OnceLock<AgentConfig> = OnceLock::new();
static START: OnceLock<std::time::SystemTime> = OnceLock::new();

/// Sets the configuration the host modules answer from. The first call wins.
pub fn set_agent_config(cfg: AgentConfig) {
    let _ = AGENT.set(cfg);
    let _ = START.set(std::time::SystemTime::now());
}

fn agent() -> Option<&'static AgentConfig> {
    AGENT.get()
}

/// The agent's hostname, borrowed (for the per-sample path).
pub fn hostname_str() -> &'static str {
    agent().map(|a| a.hostname.as_str()).unwrap_or("localhost")
}

pub fn hostname() -> String {
    agent()
        .map(|a| a.hostname.clone())
        .unwrap_or_else(|| "localhost".into())
}

// ---- datadog_agent -------------------------------------------------------------------------

#[pyfunction]
fn get_config<'py>(py: Python<'py>, key: &str) -> PyResult<Bound<'py, PyAny>> {
    match agent().and_then(|a| a.get(key)) {
        Some(v) => pyjson::value_to_py(py, &v),
        None => Ok(py.None().into_bound(py)),
    }
}

#[pyfunction]
fn get_hostname() -> String {
    hostname()
}

#[pyfunction]
fn get_version() -> &'static str {
    VERSION
}

#[pyfunction]
fn get_clustername() -> &'static str {
    ""
}

#[pyfunction]
fn get_host_tags() -> String {
    let tags: Vec<String> = agent()
        .and_then(|a| a.get("tags"))
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    serde_json::json!({ "system": tags }).to_string()
}

#[pyfunction]
fn tracemalloc_enabled() -> bool {
    false
}

#[pyfunction]
fn get_process_start_time() -> f64 {
    START
        .get()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Levels: 50 critical, 40 error, 30 warning, 20 info, 10 debug, 7 trace.
#[pyfunction]
#[pyo3(signature = (message, level=20))]
fn log(message: &str, level: i64) {
    let check_id = context::current()
        .map(|c| c.check_id.clone())
        .unwrap_or_default();
    match level {
        l if l >= 40 => tracing::error!(target: "check", check_id, "{message}"),
        l if l >= 30 => tracing::warn!(target: "check", check_id, "{message}"),
        l if l >= 20 => tracing::info!(target: "check", check_id, "{message}"),
        l if l >= 10 => tracing::debug!(target: "check", check_id, "{message}"),
        _ => tracing::trace!(target: "check", check_id, "{message}"),
    }
}

fn unknown_check(check_id: &str) -> PyErr {
    PyRuntimeError::new_err(format!("no check with id {check_id:?} is loaded"))
}

/// A log line serde_json refused for a value JSON readers cannot carry (`10**400`, a lone
/// surrogate escaped by `json.dumps`) or nested too deep to read back, made readable by the
/// rules the intake applies at ingest (`cairn_wire::normalize`), with the same marker. `None`
/// when the line is not a JSON object even so, or a key has no UTF-8 form.
fn normalized_object(line: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    use cairn_wire::normalize;
    let raw: std::collections::BTreeMap<String, Box<serde_json::value::RawValue>> =
        serde_json::from_str(line).ok()?;
    let mut changes = normalize::Changes::default();
    let mut map = serde_json::Map::new();
    let mut marker = None;
    for (k, v) in raw {
        let mut out = String::with_capacity(v.get().len());
        normalize::value(v.get(), &mut out, &mut changes);
        if k == normalize::MARKER_KEY {
            marker = Some(out);
            continue;
        }
        map.insert(k, serde_json::from_str(&out).ok()?);
    }
    if changes.any() || marker.is_some() {
        let m = if changes.any() {
            normalize::marker(marker.as_deref(), &changes)
        } else {
            marker.unwrap_or_default()
        };
        map.insert(normalize::MARKER_KEY.into(), serde_json::from_str(&m).ok()?);
    }
    Some(map)
}

/// The library's log path: a compact JSON object whose timestamp is already in milliseconds.
#[pyfunction]
fn send_log(py: Python<'_>, json_line: &Bound<'_, PyString>, check_id: &str) -> PyResult<()> {
    let ctx = context::resolve(check_id).ok_or_else(|| unknown_check(check_id))?;
    let json_line = pyjson::utf8_arg(json_line, || "send_log: the JSON line".to_string())?;
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(json_line)
        .or_else(|e| normalized_object(json_line).ok_or(e))
        .map_err(|e| {
            // Name the key, as the native path does (a lone surrogate, escaped by the
            // library's `json.dumps`, is the likely cause: it has no UTF-8 form).
            let at = match pyjson::json_error_place(json_line, "data") {
                Some((place, true)) => format!(", in a key of {place}"),
                Some((place, false)) if place != "data" => format!(", at {place}"),
                _ => String::new(),
            };
            PyValueError::new_err(format!("send_log: not a JSON object: {e}{at}"))
        })?;
    let text = |key: &str| -> PyResult<Option<&str>> {
        match map.get(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(PyTypeError::new_err(format!(
                "send_log: data['{key}'] must be a str, got {other}"
            ))),
        }
    };
    let message = text(wire::MESSAGE)?
        .ok_or_else(|| PyValueError::new_err("send_log: data must have a 'message' key"))?;
    let timestamp_ms = match map.get(wire::TIMESTAMP) {
        None | Some(serde_json::Value::Null) => wire::now_ms(),
        Some(serde_json::Value::Number(n)) => n
            .as_i64()
            .unwrap_or_else(|| n.as_f64().unwrap_or(0.0) as i64),
        Some(other) => {
            return Err(PyTypeError::new_err(format!(
                "send_log: data['timestamp'] must be a number, got {other}"
            )))
        }
    };
    let f = LogFields {
        message,
        status: text(wire::STATUS)?,
        timestamp_ms,
        hostname: text(wire::HOSTNAME)?,
        service: text(wire::SERVICE)?,
        source: match text(wire::SOURCE)? {
            Some(s) => Some(s),
            None => text(wire::DDSOURCE)?,
        },
        ddtags: text(wire::DDTAGS)?,
    };
    let mut attrs = Vec::new();
    for (k, v) in &map {
        if matches!(
            k.as_str(),
            wire::MESSAGE
                | wire::TIMESTAMP
                | wire::STATUS
                | wire::HOSTNAME
                | wire::SERVICE
                | wire::SOURCE
                | wire::DDSOURCE
                | wire::DDTAGS
        ) {
            continue;
        }
        attrs.push(b',');
        wire::write_key(&mut attrs, k);
        serde_json::to_writer(&mut attrs, v).expect("a JSON value always serializes");
    }
    if ctx
        .logs
        .push_log(&f, &attrs, None)
        .map_err(|e| refused("send_log", e))?
    {
        py.detach(|| ctx.logs.flush())
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    }
    Ok(())
}

/// Maps a library cache key to (check, key). The library prefixes keys with the check's cache
/// identity and `_`: `<name>[:<instance name>]:<persistent_cache_id()>_`, which is the check id
/// unless the check overrides `persistent_cache_id()` (datadog-checks-base ≥ 37.20). The prefix
/// is the identity the entry is stored under ([`cairn_logs::CheckLogs::cache_id`]), so it is
/// cut and the rest kept as is; the bundled base passes bare keys, so both meet under the same
/// (identity, key). A key without the prefix (the library's calls before its first run) is
/// kept whole.
fn cache_target(key: &str) -> Option<(std::sync::Arc<context::CheckContext>, String)> {
    if let Some(ctx) = context::current() {
        let bare = key
            .strip_prefix(ctx.logs.cache_id())
            .and_then(|k| k.strip_prefix('_'))
            .or_else(|| {
                key.strip_prefix(ctx.check_id.as_str())
                    .and_then(|k| k.strip_prefix('_'))
            });
        let bare = bare.unwrap_or(key).to_string();
        return Some((ctx, bare));
    }
    // Outside a run: the check whose identity prefixes the key.
    context::lookup_cache_owner(key)
}

#[pyfunction]
fn read_persistent_cache(key: &str) -> String {
    cache_target(key)
        .and_then(|(ctx, k)| ctx.logs.read_cache(&k))
        .unwrap_or_default()
}

/// The library's cursors come here too (`log_cursor_<stream>`, written after their log): key
/// and value together may be at most 1 MiB (`MAX_CACHE_VALUE_BYTES`); more is a `ValueError`.
#[pyfunction]
fn write_persistent_cache(
    py: Python<'_>,
    key: &Bound<'_, PyString>,
    value: &Bound<'_, PyString>,
) -> PyResult<()> {
    const API: &str = "write_persistent_cache";
    let key = pyjson::utf8_key(key, API)?;
    let value = pyjson::utf8_arg(value, || {
        format!("{API}: the value of key {}", pyjson::repr(key))
    })?;
    let Some((ctx, k)) = cache_target(key) else {
        return Err(PyRuntimeError::new_err(format!(
            "{API}: no running check owns key {}",
            pyjson::repr(key)
        )));
    };
    if ctx
        .logs
        .write_cache(&k, value)
        .map_err(|e| refused(API, e))?
    {
        py.detach(|| ctx.logs.flush())
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    }
    Ok(())
}

#[pyfunction]
fn set_check_metadata(check_id: &str, name: &str, value: &str) {
    if let Some(ctx) = context::resolve(check_id) {
        ctx.submissions
            .lock()
            .metadata
            .push((name.to_string(), value.to_string()));
    }
}

#[pyfunction]
fn set_external_tags(_tags: &Bound<'_, PyAny>) {}

#[pyfunction]
#[pyo3(signature = (*_args, **_kwargs))]
fn headers<'py>(
    py: Python<'py>,
    _args: &Bound<'py, pyo3::types::PyTuple>,
    _kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("User-Agent", format!("Datadog Agent/{VERSION} (cairn)"))?;
    d.set_item("Content-Type", "application/x-www-form-urlencoded")?;
    d.set_item("Accept", "text/html, */*")?;
    Ok(d)
}

#[pyfunction]
#[pyo3(signature = (_query, _options=None))]
fn obfuscate_sql(_query: &str, _options: Option<&str>) -> PyResult<String> {
    Err(PyNotImplementedError::new_err(
        "obfuscate_sql is not supported by cairn",
    ))
}

#[pymodule(name = "datadog_agent")]
pub fn datadog_agent_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(get_config, m)?)?;
    m.add_function(wrap_pyfunction!(get_hostname, m)?)?;
    m.add_function(wrap_pyfunction!(get_version, m)?)?;
    m.add_function(wrap_pyfunction!(get_clustername, m)?)?;
    m.add_function(wrap_pyfunction!(get_host_tags, m)?)?;
    m.add_function(wrap_pyfunction!(tracemalloc_enabled, m)?)?;
    m.add_function(wrap_pyfunction!(get_process_start_time, m)?)?;
    m.add_function(wrap_pyfunction!(log, m)?)?;
    m.add_function(wrap_pyfunction!(send_log, m)?)?;
    m.add_function(wrap_pyfunction!(read_persistent_cache, m)?)?;
    m.add_function(wrap_pyfunction!(write_persistent_cache, m)?)?;
    m.add_function(wrap_pyfunction!(set_check_metadata, m)?)?;
    m.add_function(wrap_pyfunction!(set_external_tags, m)?)?;
    m.add_function(wrap_pyfunction!(headers, m)?)?;
    m.add_function(wrap_pyfunction!(obfuscate_sql, m)?)?;
    Ok(())
}

// ---- aggregator ----------------------------------------------------------------------------

const METRIC_TYPES: [&str; 7] = [
    "gauge",
    "rate",
    "count",
    "monotonic_count",
    "counter",
    "histogram",
    "historate",
];

fn tag_list(tags: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<String>> {
    let Some(tags) = tags.filter(|t| !t.is_none()) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for t in tags.try_iter()? {
        let t = t?;
        if t.is_none() {
            continue;
        }
        out.push(t.str()?.to_string());
    }
    Ok(out)
}

fn host_or_default(hostname: Option<&str>) -> String {
    match hostname {
        Some(h) if !h.is_empty() => h.to_string(),
        _ => self::hostname(),
    }
}

#[pyfunction]
#[pyo3(signature = (_check, check_id, mtype, name, value, tags=None, hostname=None, flush_first_value=false))]
#[allow(clippy::too_many_arguments)]
fn submit_metric(
    _check: &Bound<'_, PyAny>,
    check_id: &str,
    mtype: usize,
    name: &str,
    value: f64,
    tags: Option<&Bound<'_, PyAny>>,
    hostname: Option<&str>,
    flush_first_value: bool,
) -> PyResult<()> {
    let kind = *METRIC_TYPES.get(mtype).ok_or_else(|| {
        PyValueError::new_err(format!("submit_metric: unknown metric type {mtype}"))
    })?;
    let metric_kind = MetricKind::from_aggregator_code(mtype as i64)
        .expect("METRIC_TYPES and the aggregator codes agree");
    // Tags are read (which may run Python code) before any lock is taken.
    let tags = tag_list(tags)?;
    if let Some(ctx) = context::resolve(check_id) {
        // Borrowed: no allocation per sample for the agent's own hostname.
        let host = hostname.filter(|h| !h.is_empty()).unwrap_or(hostname_str());
        ctx.metrics
            .lock()
            .add(name, metric_kind, value, &tags, host, flush_first_value);
        if context::keeps_raw_submissions() {
            ctx.submissions.lock().metrics.push(Metric {
                name: name.to_string(),
                kind,
                value,
                tags,
                hostname: host.to_string(),
            });
        }
    }
    Ok(())
}

#[pyfunction]
#[pyo3(signature = (_check, check_id, name, status, tags=None, hostname=None, message=None))]
#[allow(clippy::too_many_arguments)]
fn submit_service_check(
    _check: &Bound<'_, PyAny>,
    check_id: &str,
    name: &str,
    status: i64,
    tags: Option<&Bound<'_, PyAny>>,
    hostname: Option<&str>,
    message: Option<&str>,
) -> PyResult<()> {
    // The bundled base refuses other statuses; the real library passes them on, and the
    // intake knows only these four, so anything else is reported as UNKNOWN.
    let wire_status = u8::try_from(status).ok().filter(|s| *s <= 3).unwrap_or(3);
    let tags = tag_list(tags)?;
    if let Some(ctx) = context::resolve(check_id) {
        let host = host_or_default(hostname);
        let message = message.unwrap_or_default().to_string();
        let mut sorted = tags.clone();
        sorted.sort();
        sorted.dedup();
        ctx.metrics.lock().service_check(WireServiceCheck {
            check: name.to_string(),
            host_name: host.clone(),
            timestamp: crate::metrics::now_secs() as i64,
            status: wire_status,
            message: message.clone(),
            tags: sorted,
        });
        if context::keeps_raw_submissions() {
            ctx.submissions.lock().service_checks.push(ServiceCheck {
                name: name.to_string(),
                status,
                tags,
                hostname: host,
                message,
            });
        }
    }
    Ok(())
}

#[pyfunction]
fn submit_event(
    _check: &Bound<'_, PyAny>,
    check_id: &str,
    event: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let mut buf = Vec::new();
    pyjson::write_value(&mut buf, event, 0).map_err(|e| e.into_pyerr("event", ""))?;
    let v: serde_json::Value = serde_json::from_slice(&buf).unwrap_or(serde_json::Value::Null);
    if let Some(ctx) = context::resolve(check_id) {
        if context::keeps_raw_submissions() {
            ctx.submissions.lock().events.push(v.clone());
        }
        ctx.metrics.lock().event(v);
    }
    Ok(())
}

#[pyfunction]
#[pyo3(signature = (_check, check_id, name, value, lower, upper, monotonic, hostname, tags=None, _flush_first_value=false))]
#[allow(clippy::too_many_arguments)]
fn submit_histogram_bucket(
    _check: &Bound<'_, PyAny>,
    check_id: &str,
    name: &str,
    value: f64,
    lower: f64,
    upper: f64,
    monotonic: bool,
    hostname: Option<&str>,
    tags: Option<&Bound<'_, PyAny>>,
    _flush_first_value: bool,
) -> PyResult<()> {
    if let Some(ctx) = context::resolve(check_id) {
        ctx.metrics.lock().unsupported(Unsupported::HistogramBucket);
        if context::keeps_raw_submissions() {
            let mut t = tag_list(tags)?;
            t.push(format!("lower_bound:{lower}"));
            t.push(format!("upper_bound:{upper}"));
            ctx.submissions.lock().metrics.push(Metric {
                name: name.to_string(),
                kind: if monotonic {
                    "monotonic_count"
                } else {
                    "count"
                },
                value,
                tags: t,
                hostname: host_or_default(hostname),
            });
        }
    }
    Ok(())
}

#[pyfunction]
fn submit_event_platform_event(
    _check: &Bound<'_, PyAny>,
    check_id: &str,
    _raw: &Bound<'_, PyAny>,
    _track: &str,
) {
    if let Some(ctx) = context::resolve(check_id) {
        ctx.metrics
            .lock()
            .unsupported(Unsupported::EventPlatformEvent);
    }
}

#[pymodule(name = "aggregator")]
pub fn aggregator_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    for (i, name) in [
        "GAUGE",
        "RATE",
        "COUNT",
        "MONOTONIC_COUNT",
        "COUNTER",
        "HISTOGRAM",
        "HISTORATE",
    ]
    .iter()
    .enumerate()
    {
        m.add(*name, i)?;
    }
    m.add_function(wrap_pyfunction!(submit_metric, m)?)?;
    m.add_function(wrap_pyfunction!(submit_service_check, m)?)?;
    m.add_function(wrap_pyfunction!(submit_event, m)?)?;
    m.add_function(wrap_pyfunction!(submit_histogram_bucket, m)?)?;
    m.add_function(wrap_pyfunction!(submit_event_platform_event, m)?)?;
    Ok(())
}

#[pymodule(name = "_cairn")]
pub fn cairn_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    crate::native::register(m)?;
    m.add("__version__", VERSION)?;
    Ok(())
}
