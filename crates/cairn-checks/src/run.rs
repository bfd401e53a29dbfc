//! Running one instance once: `check.run()`, then its warnings, then making its records
//! durable before the run counts as finished.

use std::time::{Duration, Instant, SystemTime};

use pyo3::prelude::*;
use serde::Serialize;

use cairn_logs::{DropReason, LogCounters};

use crate::context::{self, Submissions};
use crate::loader::LoadedCheck;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunError {
    pub message: String,
    pub traceback: String,
}

/// What one run did.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub name: String,
    pub check_id: String,
    pub instance: serde_json::Value,
    pub started_at: SystemTime,
    pub duration: Duration,
    pub error: Option<RunError>,
    pub warnings: Vec<String>,
    pub submissions: Submissions,
    /// Log counters of this run (and of anything the check sent between runs, e.g. from
    /// `__init__`, since the previous report). Logs of a run whose records could not be made
    /// durable are in `dropped_not_durable`, not `processed`; logs sent before `check()`
    /// raised are shipped and stay `processed`.
    pub logs: LogCounters,
}

thread_local! {
    /// `cairn check -b N`: runs on this thread stop in pdb at line N of the check's file.
    static BREAKPOINT: std::cell::Cell<Option<u32>> = const { std::cell::Cell::new(None) };
}

/// Makes the runs of this thread stop in pdb at `line` of the check's file (`None`: never).
pub fn set_breakpoint(line: Option<u32>) {
    BREAKPOINT.with(|b| b.set(line));
}

/// `check.run()` under pdb, continuing at once to a breakpoint at `line` of the check's
/// file, so the person at the terminal lands there (as `agent check --breakpoint`).
fn run_at_breakpoint<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
    file: &str,
    line: u32,
) -> PyResult<Bound<'py, PyAny>> {
    let pdb = py.import("pdb")?.call_method0("Pdb")?;
    let refused = pdb.call_method1("set_break", (file, line))?;
    if !refused.is_none() {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "--breakpoint {line}: {refused}"
        )));
    }
    pdb.getattr("rcLines")?
        .call_method1("append", ("continue",))?;
    pdb.call_method1("runcall", (obj.getattr("run")?,))
}

/// Runs `check` once on this thread. Takes the GIL for the Python part only.
pub fn run_once(check: &LoadedCheck) -> RunReport {
    // Taken before the GIL: a holder waiting for it (a cursor reset) never holds the GIL.
    let _run = check.ctx.run_lock.lock();
    let started_at = SystemTime::now();
    let start = Instant::now();
    let (mut error, mut warnings) = Python::attach(|py| {
        let _current = context::enter(&check.ctx);
        let obj = check.object.bind(py);
        let result = match BREAKPOINT.with(|b| b.get()) {
            Some(line) => run_at_breakpoint(py, obj, &check.file, line),
            None => obj.call_method0("run"),
        };
        let error = match result {
            Ok(r) => parse_run_result(&r),
            Err(e) => Some(RunError {
                message: e.to_string(),
                traceback: format_traceback(py, &e),
            }),
        };
        let warnings = match obj.call_method0("get_warnings") {
            Ok(w) => w.extract::<Vec<String>>().unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        (error, warnings)
    });
    // The Agent commits a check's samples after every run, failed ones included.
    check.ctx.metrics.lock().commit(crate::metrics::now_secs());
    let committed = check.ctx.logs.finish_run();
    // Taken after `finish_run`: its flush may still lose records, which moves them from
    // processed to not durable.
    let logs = check.ctx.logs.take_counters();
    if let Err(e) = committed {
        tracing::error!(check_id = %check.check_id, error = %e, logs_lost = logs.dropped_not_durable, "run's logs could not be committed");
        error.get_or_insert(RunError {
            message: format!("logs could not be committed: {e}"),
            traceback: String::new(),
        });
    }
    if logs.dropped_not_durable > 0 {
        // Also when the check's own exception is the run's error (it may have caught ours).
        warnings.push(format!(
            "{} logs of this run were lost before they were durable; the check's cursors were rewound",
            logs.dropped_not_durable
        ));
    }
    for reason in [DropReason::LogsDisabled, DropReason::NoLogsConfig] {
        let n = logs.dropped(reason);
        if n > 0 {
            warnings.push(match reason {
                DropReason::LogsDisabled => format!("{n} logs dropped: logs_enabled is false in datadog.yaml"),
                _ => format!("{n} logs dropped: the check's config has no logs entry with `type: integration`"),
            });
        }
    }
    RunReport {
        name: check.name.clone(),
        check_id: check.check_id.clone(),
        instance: check.instance.value.clone(),
        started_at,
        duration: start.elapsed(),
        error,
        warnings,
        submissions: check.ctx.take_submissions(),
        logs,
    }
}

/// `run()` returns '' on success or a JSON list of {message, traceback}.
fn parse_run_result(r: &Bound<'_, PyAny>) -> Option<RunError> {
    let text: String = r.extract().unwrap_or_default();
    if text.is_empty() {
        return None;
    }
    #[derive(serde::Deserialize)]
    struct Reported {
        message: String,
        #[serde(default)]
        traceback: String,
    }
    match serde_json::from_str::<Vec<Reported>>(&text) {
        Ok(v) if !v.is_empty() => {
            let first = v.into_iter().next().expect("checked non-empty");
            Some(RunError {
                message: first.message,
                traceback: first.traceback,
            })
        }
        _ => Some(RunError {
            message: text,
            traceback: String::new(),
        }),
    }
}

fn format_traceback(py: Python<'_>, e: &PyErr) -> String {
    e.traceback(py)
        .and_then(|tb| tb.format().ok())
        .unwrap_or_default()
}
