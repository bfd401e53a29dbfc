use std::path::PathBuf;

/// Everything that can stop the intake from starting or storing.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot prepare data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("store {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("store query failed: {0}")]
    Query(#[from] rusqlite::Error),
    #[error("the query failed inside the intake (a bug, please report it): {0}")]
    QueryPanicked(String),
    #[error("store writer has stopped")]
    WriterGone,
    #[error("{0}")]
    Syntax(#[from] crate::query::QueryError),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("token file {path}: {source}")]
    TokenFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("bad token: {0}")]
    BadToken(String),
    #[error(
        "refusing to listen on {addr} without a token or an API key: anyone who can reach it \
         could read and forge every log; keep the token on (the default), set one, or give \
         API keys, or listen on 127.0.0.1"
    )]
    OpenBeyondLoopback { addr: std::net::SocketAddr },
    /// The pipelines file cannot be used; `location` names the pipeline, processor and field
    /// (or the line) as `cairn_pipelines::ConfigError` does.
    #[error("pipelines file {path}: {location}: {message}")]
    Pipelines {
        path: PathBuf,
        location: String,
        message: String,
    },
    #[error("pipelines file {path}: {source}")]
    PipelinesFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{url}: {reason}")]
    Client { url: String, reason: String },
    /// Transparent: the monitors error already names the file, monitor and field; a chain
    /// printer must not say it twice.
    #[error(transparent)]
    Monitors(#[from] crate::monitors::ConfigError),
}
