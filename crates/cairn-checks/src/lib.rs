//! The embedded Python side of Cairn: one CPython interpreter (PyO3), the native host modules
//! the Datadog library calls (`datadog_agent`, `aggregator`), the bundled `datadog_checks`
//! package, the check loader and the scheduler.
//!
//! Python lives only here. The GIL is held only while touching Python objects: never across
//! the sink (I/O, back-pressure) nor while waiting for work.

mod bundled;
pub mod context;
pub mod crash_record;
mod error;
mod host;
pub mod loader;
pub mod metrics;
mod native;
mod pyjson;
pub mod run;
pub mod runtime;
pub mod scheduler;
pub mod watchdog;

pub use context::{Metric, ServiceCheck, Submissions};
pub use error::CheckError;
pub use host::VERSION;
pub use loader::{check_id, LoadedCheck};
pub use metrics::{Flushed, MetricCounters};
pub use run::{run_once, RunError, RunReport};
pub use scheduler::{CheckStatus, Scheduler, StatusBoard, SubmittedCounts, DURATION_BUCKETS_SECS};
pub use watchdog::WatchdogConfig;

use std::sync::Arc;

use cairn_config::{AgentConfig, IntegrationConfig};
use cairn_logs::RecordSink;

/// Takes what every check committed since the last flush (unloaded ones included).
pub fn flush_metrics() -> Flushed {
    flush_each(|m| Ok(m.flush()))
}

/// [`flush_metrics`] for shipping: the series of a check with many are encoded from its
/// sampler ([`metrics::CheckMetrics::flush_encoded`]). A check whose encoding fails loses its
/// series of this flush (logged); the others are unaffected.
pub fn flush_metrics_encoded() -> Flushed {
    flush_each(metrics::CheckMetrics::flush_encoded)
}

fn flush_each(
    flush: impl Fn(&mut metrics::CheckMetrics) -> Result<Flushed, cairn_metrics::wire::WireError>,
) -> Flushed {
    let mut out = context::take_unregistered();
    for ctx in context::all() {
        let flushed = flush(&mut ctx.metrics.lock());
        match flushed {
            Ok(f) => out.append(f),
            Err(e) => {
                tracing::error!(check_id = %ctx.check_id, error = %e, "encoding series failed; they are dropped")
            }
        }
    }
    out
}

/// Loads every integration's check; a check that fails to load is reported and skipped, the
/// others load. Starts the interpreter if needed. Each integration is marked in the crash
/// record while it loads (importing and constructing run the check's own code).
pub fn load_all(
    agent: &AgentConfig,
    integrations: &[IntegrationConfig],
    sink: &Arc<dyn RecordSink>,
) -> Result<(Vec<LoadedCheck>, Vec<CheckError>), CheckError> {
    match cairn_metrics::AggregatorConfig::new(
        &agent.histogram_aggregates,
        &agent.histogram_percentiles,
    ) {
        Ok(cfg) => metrics::set_aggregator_config(cfg),
        // The config loader checked both lists already.
        Err(e) => tracing::error!(error = %e, "histogram settings refused; using the defaults"),
    }
    runtime::start(agent)?;
    Ok(pyo3::Python::attach(|py| {
        let mut loaded = Vec::new();
        let mut errors = Vec::new();
        for integration in integrations {
            crash_record::slot_start(&integration.name, true);
            match loader::load(py, agent, integration, sink) {
                Ok(mut checks) => loaded.append(&mut checks),
                Err(e) => errors.push(e),
            }
            crash_record::slot_end();
        }
        (loaded, errors)
    }))
}

/// What a reload did, by check id.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ReloadSummary {
    pub kept: Vec<String>,
    pub started: Vec<String>,
    pub stopped: Vec<String>,
}

/// Reconciles the running checks with a new config: an instance whose check id is unchanged
/// (same config), whose code did not change and `restart_all` is false keeps running as it is
/// (its cursors, metric state and status); the others are stopped (`cancel()` called) and
/// what the config now names is loaded. A check file modified since its instances were built
/// is imported afresh. Load errors are returned; the other checks are unaffected.
pub fn reload(
    agent: &AgentConfig,
    integrations: &[IntegrationConfig],
    sink: &Arc<dyn RecordSink>,
    running: Vec<LoadedCheck>,
    restart_all: bool,
) -> (Vec<LoadedCheck>, Vec<CheckError>, ReloadSummary) {
    use pyo3::prelude::*;
    use std::collections::HashSet;
    let wanted: HashSet<String> = integrations
        .iter()
        .flat_map(|i| {
            i.instances
                .iter()
                .map(|inst| check_id(&i.name, &inst.value, &i.init_config))
        })
        .collect();
    let code_changed: HashSet<String> = running
        .iter()
        .filter(|c| {
            std::fs::metadata(&c.file)
                .and_then(|m| m.modified())
                .is_ok_and(|m| m > c.loaded_at)
        })
        .map(|c| c.name.clone())
        .collect();
    let mut summary = ReloadSummary::default();
    let (keep, stop): (Vec<LoadedCheck>, Vec<LoadedCheck>) = running.into_iter().partition(|c| {
        !restart_all && wanted.contains(&c.check_id) && !code_changed.contains(&c.name)
    });
    pyo3::Python::attach(|py| {
        for c in &stop {
            let obj = c.object.bind(py);
            if obj.hasattr("cancel").unwrap_or(false) {
                let _current = context::enter(&c.ctx);
                if let Err(e) = obj.call_method0("cancel") {
                    tracing::warn!(check_id = %c.check_id, error = %e, "cancel() of a stopped check failed");
                }
            }
        }
    });
    summary.stopped = stop.iter().map(|c| c.check_id.clone()).collect();
    // Unregistered here, so that a restarted instance (same id) can register again.
    drop(stop);
    summary.kept = keep.iter().map(|c| c.check_id.clone()).collect();
    let kept_ids: HashSet<String> = summary.kept.iter().cloned().collect();
    let kept_names: HashSet<String> = keep.iter().map(|c| c.name.clone()).collect();
    let mut out = keep;
    let mut errors = Vec::new();
    pyo3::Python::attach(|py| {
        for integration in integrations {
            let name = integration.name.as_str();
            let all_kept = integration.instances.iter().all(|inst| {
                kept_ids.contains(&check_id(name, &inst.value, &integration.init_config))
            });
            if all_kept {
                continue;
            }
            if !kept_names.contains(name) {
                // No instance still uses the module: the next import reads the file again.
                let forget = py.run(
                    &std::ffi::CString::new(format!(
                        "import sys\nfor _m in ({name:?}, 'datadog_checks.' + {name:?}):\n    sys.modules.pop(_m, None)\n"
                    ))
                    .unwrap_or_default(),
                    None,
                    None,
                );
                if let Err(e) = forget {
                    tracing::debug!(check = name, error = %e, "could not forget the check's module");
                }
            }
            crash_record::slot_start(name, true);
            match loader::load_except(py, agent, integration, sink, &kept_ids) {
                Ok(mut checks) => {
                    summary
                        .started
                        .extend(checks.iter().map(|c| c.check_id.clone()));
                    out.append(&mut checks);
                }
                Err(e) => errors.push(e),
            }
            crash_record::slot_end();
        }
    });
    (out, errors, summary)
}

/// The embedded interpreter's version (`3.11.2`). It does not start the interpreter:
/// call after [`load_all`].
pub fn python_version() -> String {
    pyo3::Python::attach(|_py| {
        pyo3::Python::version_str()
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string()
    })
}

/// Compiles each file (a reload's pre-flight): a check file with a syntax error refuses the
/// reload before anything is stopped. Errors name file:line.
pub fn compile_check_files(files: &[String]) -> Vec<String> {
    use pyo3::prelude::*;
    pyo3::Python::attach(|py| {
        let mut errors = Vec::new();
        let Ok(builtins) = py.import("builtins") else {
            return errors;
        };
        for file in files {
            let Ok(source) = std::fs::read_to_string(file) else {
                continue;
            };
            if let Err(e) = builtins.call_method1("compile", (source, file.as_str(), "exec")) {
                let v = e.value(py);
                let line: usize = v.getattr("lineno").and_then(|l| l.extract()).unwrap_or(0);
                let msg: String = v
                    .getattr("msg")
                    .and_then(|m| m.extract())
                    .unwrap_or_else(|_| e.to_string());
                errors.push(format!("{file}:{line}: {msg}"));
            }
        }
        errors
    })
}
