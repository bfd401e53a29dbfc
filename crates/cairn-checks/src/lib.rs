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
pub use scheduler::{CheckStatus, Scheduler};
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
