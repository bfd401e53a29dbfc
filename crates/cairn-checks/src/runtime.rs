//! Starting the one embedded interpreter: native modules, `sys.path`, the bundled package,
//! `faulthandler`, and an `os._exit` that says which check called it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use cairn_config::AgentConfig;

use crate::error::CheckError;
use crate::{bundled, context, crash_record, host};

/// The Python version the binary embeds; a `python_env` must match it.
pub const PYTHON_MINOR: &str = "3.11";

static STARTED: OnceLock<Result<(), String>> = OnceLock::new();
/// The agent's pid: `os._exit` in a child a check forked (multiprocessing) is the child's own
/// business, and it must not log through locks another thread held at the fork.
static AGENT_PID: OnceLock<u32> = OnceLock::new();

/// Starts the interpreter once per process. `checks_d` goes first on `sys.path`, then the
/// site-packages of `python_env`; the bundled `datadog_checks` comes last of all.
pub fn start(agent: &AgentConfig) -> Result<(), CheckError> {
    let site = match &agent.python_env {
        Some(env) => Some(site_packages(env)?),
        None => None,
    };
    let checks_d = agent.config_dir.join("checks.d");
    host::set_agent_config(agent.clone());
    let result = STARTED.get_or_init(|| {
        pyo3::append_to_inittab!(datadog_agent_module);
        pyo3::append_to_inittab!(aggregator_module);
        pyo3::append_to_inittab!(cairn_module);
        let _ = AGENT_PID.set(std::process::id());
        Python::initialize();
        Python::attach(|py| setup(py, &checks_d, site.as_deref())).map_err(|e| e.to_string())
    });
    result.clone().map_err(CheckError::Runtime)
}

use host::{aggregator_module, cairn_module, datadog_agent_module};

fn setup(py: Python<'_>, checks_d: &Path, site: Option<&Path>) -> PyResult<()> {
    let sys = py.import("sys")?;
    // A check's print() must not corrupt `cairn check --json` on stdout.
    sys.setattr("stdout", sys.getattr("stderr")?)?;
    // A crash in C code prints every thread's Python stack into the agent log (stderr, fd 2,
    // whatever sys.stderr becomes), then chains to the handlers found at this point: the
    // crash record's, when `cairn run` installed them first.
    let kwargs = PyDict::new(py);
    kwargs.set_item("file", 2)?;
    kwargs.set_item("all_threads", true)?;
    py.import("faulthandler")?
        .call_method("enable", (), Some(&kwargs))?;
    // faulthandler just gave this thread a small alternate signal stack of its own; a crash
    // while loading a check is handled here, so give it room again.
    crate::crash_record::ensure_signal_stack();
    // `os._exit` skips every Rust and Python handler: say who called it while we can. Both
    // names, since `os._exit is posix._exit`.
    let exit = pyo3::wrap_pyfunction!(os_exit, py)?;
    for module in ["os", "posix"] {
        py.import(module)?.setattr("_exit", &exit)?;
    }
    let path = sys.getattr("path")?.cast_into::<PyList>()?;
    if let Some(site) = site {
        // addsitedir also runs the env's .pth files; then move what it added to the front so
        // the env wins over the system's packages.
        let before = path.len();
        py.import("site")?
            .call_method1("addsitedir", (site.to_string_lossy().as_ref(),))?;
        let added: Vec<Bound<'_, PyAny>> = path.iter().skip(before).collect();
        for _ in 0..added.len() {
            path.call_method1("pop", (before,))?;
        }
        for (i, p) in added.into_iter().enumerate() {
            path.insert(i, p)?;
        }
    }
    path.insert(0, checks_d.to_string_lossy().as_ref())?;
    let boot = pyo3::types::PyModule::from_code(
        py,
        &std::ffi::CString::new(bundled::BOOTSTRAP).expect("bootstrap has no NUL"),
        c"<cairn-bootstrap>",
        c"_cairn_bootstrap",
    )?;
    let modules = PyList::empty(py);
    for (name, pkg, file, src) in bundled::MODULES {
        modules.append(PyTuple::new(
            py,
            [
                name.into_pyobject(py)?.into_any(),
                pkg.into_pyobject(py)?.to_owned().into_any(),
                file.into_pyobject(py)?.into_any(),
                src.into_pyobject(py)?.into_any(),
            ],
        )?)?;
    }
    boot.call_method1("install", (modules,))?;
    sys.getattr("modules")?.set_item("_cairn_bootstrap", boot)?;
    let helpers = pyo3::types::PyModule::from_code(
        py,
        &std::ffi::CString::new(bundled::HELPERS).expect("helpers have no NUL"),
        c"<cairn-host>",
        c"_cairn_host",
    )?;
    sys.getattr("modules")?.set_item("_cairn_host", helpers)?;
    Ok(())
}

/// `os._exit(status)` for checks: logs at error level which check called it, writes it into the
/// crash record, then exits at once like the original (no cleanup, no flush).
#[pyfunction]
#[pyo3(name = "_exit")]
fn os_exit(py: Python<'_>, status: i32) {
    let check_id = context::current().map(|c| c.check_id.clone());
    // No I/O under the GIL, even on the way out.
    py.detach(move || {
        if AGENT_PID.get() == Some(&std::process::id()) {
            match &check_id {
                Some(id) => tracing::error!(
                    check_id = %id,
                    status,
                    "check {id} called os._exit({status}): the agent exits now"
                ),
                None => tracing::error!(
                    status,
                    "os._exit({status}) called outside any check's run (by a thread a check started?): the agent exits now"
                ),
            }
            crash_record::record_os_exit(status);
        }
        // SAFETY: _exit ends the process; what CPython's own os._exit does.
        unsafe { libc::_exit(status) }
    })
}

/// `<env>/lib/python3.11/site-packages`, with a clear error when the env is missing or built
/// for another Python.
pub fn site_packages(env: &Path) -> Result<PathBuf, CheckError> {
    let err = |message: String| CheckError::PythonEnv {
        path: env.to_path_buf(),
        message,
    };
    if !env.is_dir() {
        return Err(err("no such directory (expected a virtualenv)".into()));
    }
    let site = env
        .join("lib")
        .join(format!("python{PYTHON_MINOR}"))
        .join("site-packages");
    if site.is_dir() {
        return Ok(site);
    }
    let others: Vec<String> = std::fs::read_dir(env.join("lib"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("python"))
                .collect()
        })
        .unwrap_or_default();
    if others.is_empty() {
        Err(err(format!(
            "no lib/python{PYTHON_MINOR}/site-packages: is this a virtualenv?"
        )))
    } else {
        Err(err(format!(
            "built for {}, but cairn embeds Python {PYTHON_MINOR}; create it with python{PYTHON_MINOR} -m venv",
            others.join(", ")
        )))
    }
}
