//! Finding a check's class, building one object per instance, and giving each its check id.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use cairn_config::{AgentConfig, Instance, IntegrationConfig};
use cairn_logs::{CheckLogs, CheckLogsConfig, Processor, RecordSink};

use crate::context::{self, CheckContext};
use crate::error::CheckError;
use crate::pyjson;

/// One instance of a check, constructed and bound to the agent.
pub struct LoadedCheck {
    pub name: String,
    pub check_id: String,
    pub instance: Instance,
    pub ctx: Arc<CheckContext>,
    pub object: Py<PyAny>,
    /// The file the check's class came from.
    pub file: String,
    /// The conf.d file of the instance.
    pub config_file: String,
    /// When it was built: a check file modified since then has changed code.
    pub loaded_at: std::time::SystemTime,
}

impl Drop for LoadedCheck {
    fn drop(&mut self) {
        context::unregister(&self.check_id);
    }
}

/// FNV-1a, 64 bits: tiny, stable across releases and platforms, which is all a check id needs.
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Serializes with object keys sorted, whatever map order serde_json was built with.
fn canonical(v: &serde_json::Value, out: &mut String) {
    match v {
        serde_json::Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String((*k).clone()).to_string());
                out.push(':');
                canonical(&m[*k], out);
            }
            out.push('}');
        }
        serde_json::Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// `<name>:<16 hex>` or `<name>:<instance name>:<16 hex>`; the hex digests the instance and
/// init_config, so the same config keeps the same id (and its cursors) across restarts.
pub fn check_id(
    name: &str,
    instance: &serde_json::Value,
    init_config: &serde_json::Value,
) -> String {
    let mut text = String::new();
    canonical(instance, &mut text);
    text.push('\n');
    canonical(init_config, &mut text);
    let hash = fnv1a64(text.as_bytes());
    match instance
        .get("name")
        .and_then(|n| n.as_str())
        .filter(|n| !n.is_empty())
    {
        Some(inst) => format!("{name}:{inst}:{hash:016x}"),
        None => format!("{name}:{hash:016x}"),
    }
}

fn describe(py: Python<'_>, e: &PyErr) -> String {
    let helpers = py.import("_cairn_host");
    helpers
        .and_then(|h| h.call_method1("describe_exception", (e.value(py),)))
        .and_then(|s| s.extract::<String>())
        .unwrap_or_else(|_| e.to_string())
}

fn module_file(module: &Bound<'_, PyAny>) -> String {
    module
        .getattr("__file__")
        .and_then(|f| f.extract::<String>())
        .unwrap_or_else(|_| "<unknown file>".into())
}

/// Imports the check's module and builds one object per instance. Errors name the check and
/// the file; nothing here affects other checks.
pub fn load(
    py: Python<'_>,
    agent: &AgentConfig,
    integration: &IntegrationConfig,
    sink: &Arc<dyn RecordSink>,
) -> Result<Vec<LoadedCheck>, CheckError> {
    load_except(py, agent, integration, sink, &Default::default())
}

/// [`load`], leaving out the instances whose check id is in `running` (a reload keeps them).
pub fn load_except(
    py: Python<'_>,
    agent: &AgentConfig,
    integration: &IntegrationConfig,
    sink: &Arc<dyn RecordSink>,
    running: &std::collections::HashSet<String>,
) -> Result<Vec<LoadedCheck>, CheckError> {
    let name = integration.name.as_str();
    let helpers = py
        .import("_cairn_host")
        .map_err(|e| CheckError::Runtime(e.to_string()))?;
    let module = match helpers.call_method1("import_check_module", (name,)) {
        Ok(m) if m.is_none() => {
            return Err(CheckError::NotFound {
                name: name.into(),
                checks_d: agent.config_dir.join("checks.d"),
                config: integration.path.clone(),
            })
        }
        Ok(m) => m,
        Err(e) => {
            let value = e.value(py);
            if e.is_instance_of::<pyo3::exceptions::PySyntaxError>(py) {
                let get = |a: &str| value.getattr(a).ok();
                return Err(CheckError::Syntax {
                    name: name.into(),
                    file: get("filename")
                        .and_then(|f| f.extract().ok())
                        .unwrap_or_default(),
                    line: get("lineno")
                        .and_then(|f| f.extract().ok())
                        .unwrap_or_default(),
                    message: get("msg")
                        .and_then(|f| f.extract().ok())
                        .unwrap_or_default(),
                });
            }
            let file = failing_file(py, &e).unwrap_or_else(|| format!("{name}.py"));
            return Err(CheckError::Import {
                name: name.into(),
                file,
                message: describe(py, &e),
            });
        }
    };
    let file = module_file(&module);
    let class = helpers
        .call_method1("find_check_class", (&module,))
        .map_err(|e| CheckError::Import {
            name: name.into(),
            file: file.clone(),
            message: describe(py, &e),
        })?;
    if class.is_none() {
        return Err(CheckError::NoCheckClass {
            name: name.into(),
            file,
        });
    }
    let class_name: String = class
        .getattr("__name__")
        .and_then(|n| n.extract())
        .unwrap_or_default();
    let init_config = pyjson::value_to_py(py, &init_config_or_empty(&integration.init_config))
        .map_err(|e| CheckError::Runtime(e.to_string()))?;
    let entry = integration.integration_logs_entry();
    let mut out = Vec::new();
    for instance in &integration.instances {
        let id = check_id(name, &instance.value, &integration.init_config);
        if running.contains(&id) {
            continue;
        }
        if context::lookup(&id).is_some() {
            // Two identical instances would share one id, one cursor and ship every log twice.
            tracing::warn!(check_id = %id, location = %instance.location, "instance skipped: it is identical to another instance of this check");
            continue;
        }
        let processor = Processor::new(
            &agent.logs.processing_rules,
            entry.map(|e| e.processing_rules.as_slice()).unwrap_or(&[]),
            agent.logs.max_message_size_bytes,
        );
        let logs = CheckLogs::new(
            CheckLogsConfig {
                check_id: id.clone(),
                hostname: agent.hostname.clone(),
                logs_enabled: agent.logs_enabled,
                has_logs_entry: entry.is_some(),
                source: entry.and_then(|e| e.source.clone()),
                service: entry.and_then(|e| e.service.clone()),
                entry_tags: entry.map(|e| e.tags.clone()).unwrap_or_default(),
                instance_tags: instance.tags.clone(),
                processor,
            },
            sink.clone(),
        )
        .map_err(|e| CheckError::State {
            name: name.into(),
            message: e.to_string(),
        })?
        .with_max_payload_bytes(agent.logs.batch_max_content_size);
        let ctx = Arc::new(CheckContext {
            name: name.to_string(),
            check_id: id.clone(),
            logs,
            submissions: Default::default(),
            metrics: parking_lot::Mutex::new(crate::metrics::CheckMetrics::new(
                &id,
                instance.tags.clone(),
            )),
            run_lock: Default::default(),
        });
        context::register(ctx.clone());
        let object = {
            let _current = context::enter(&ctx);
            construct(py, &class, name, &init_config, &instance.value, &id)
        };
        let object = match object {
            Ok(o) => o,
            Err(e) => {
                context::unregister(&id);
                return Err(CheckError::Construct {
                    name: name.into(),
                    file,
                    class: class_name,
                    message: describe(py, &e),
                });
            }
        };
        if let Some(cache_id) = cache_identity(py, object.bind(py), &id) {
            if let Some(other) = context::all()
                .iter()
                .find(|c| c.check_id != id && c.logs.cache_id() == cache_id)
            {
                tracing::warn!(check_id = %id, other = %other.check_id, cache_id = %cache_id, "two instances have the same persistent_cache_id(): they share one persistent cache and their cursors overwrite each other");
            }
            if let Err(e) = py.detach(|| ctx.logs.set_cache_id(&cache_id)) {
                context::unregister(&id);
                return Err(CheckError::State {
                    name: name.into(),
                    message: e.to_string(),
                });
            }
        }
        out.push(LoadedCheck {
            name: name.to_string(),
            check_id: id,
            instance: instance.clone(),
            ctx,
            object,
            file: file.clone(),
            config_file: std::path::absolute(&integration.path)
                .unwrap_or_else(|_| integration.path.clone())
                .display()
                .to_string(),
            loaded_at: std::time::SystemTime::now(),
        });
    }
    Ok(out)
}

/// The identity a check's persistent cache is stored under, as datadog-checks-base (≥ 37.20)
/// builds its key prefix: the check id with its last `:` part replaced by what the check's
/// `persistent_cache_id()` returns (by default that last part, so the check id itself).
/// `None` when it is the check id, or when the method is missing or fails (logged: the
/// check id is the safe side, a fresh cursor rather than another check's).
fn cache_identity(py: Python<'_>, object: &Bound<'_, PyAny>, check_id: &str) -> Option<String> {
    if !object.hasattr("persistent_cache_id").unwrap_or(false) {
        return None;
    }
    let custom = match object
        .call_method0("persistent_cache_id")
        .and_then(|v| v.str())
        .map(|v| v.to_string())
    {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(check_id = %check_id, error = %describe(py, &e), "persistent_cache_id() failed; the cache stays under the check id");
            return None;
        }
    };
    let namespace = check_id.rsplit_once(':').map_or("", |(ns, _)| ns);
    let identity = format!("{namespace}:{custom}");
    (identity != check_id).then_some(identity)
}

fn init_config_or_empty(v: &serde_json::Value) -> serde_json::Value {
    if v.is_null() {
        serde_json::Value::Object(Default::default())
    } else {
        v.clone()
    }
}

fn construct(
    py: Python<'_>,
    class: &Bound<'_, PyAny>,
    name: &str,
    init_config: &Bound<'_, PyAny>,
    instance: &serde_json::Value,
    id: &str,
) -> PyResult<Py<PyAny>> {
    let kwargs = PyDict::new(py);
    kwargs.set_item("name", name)?;
    kwargs.set_item("init_config", init_config)?;
    let instances = PyList::empty(py);
    instances.append(pyjson::value_to_py(py, instance)?)?;
    kwargs.set_item("instances", instances)?;
    let obj = class.call((), Some(&kwargs))?;
    obj.setattr("check_id", id)?;
    Ok(obj.unbind())
}

/// The file of the innermost traceback frame: where an import actually failed.
fn failing_file(py: Python<'_>, e: &PyErr) -> Option<String> {
    let mut tb = e.traceback(py)?;
    while let Ok(next) = tb.getattr("tb_next") {
        if next.is_none() {
            break;
        }
        tb = next.cast_into().ok()?;
    }
    let file: String = tb
        .getattr("tb_frame")
        .ok()?
        .getattr("f_code")
        .ok()?
        .getattr("co_filename")
        .ok()?
        .extract()
        .ok()?;
    let line: usize = tb.getattr("tb_lineno").ok()?.extract().ok()?;
    Some(format!("{file}:{line}"))
}
