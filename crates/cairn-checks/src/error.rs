use std::path::PathBuf;

/// Why a check could not be loaded or the runtime could not start. Each names the check and
/// the file so that one line tells the user where to look.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("check {name}: no module found (looked for datadog_checks.{name}, {name}.py in {checks_d}, and python_env) for {config}")]
    NotFound {
        name: String,
        checks_d: PathBuf,
        config: PathBuf,
    },
    #[error("check {name}: {file}:{line}: syntax error: {message}")]
    Syntax {
        name: String,
        file: String,
        line: usize,
        message: String,
    },
    #[error("check {name}: importing {file} failed: {message}")]
    Import {
        name: String,
        file: String,
        message: String,
    },
    #[error("check {name}: {file} defines no AgentCheck subclass")]
    NoCheckClass { name: String, file: String },
    #[error("check {name}: {file}: {class}(...) raised {message}")]
    Construct {
        name: String,
        file: String,
        class: String,
        message: String,
    },
    #[error("check {name}: {message}")]
    State { name: String, message: String },
    #[error("python_env {path}: {message}")]
    PythonEnv { path: PathBuf, message: String },
    #[error("embedded python failed to start: {0}")]
    Runtime(String),
}
