//! cairn-intake: Cairn's local logs intake and Log Explorer (SPEC §6).
//!
//! Owns: the receiving side of the Datadog HTTP logs intake protocol (`/api/v2/logs`,
//! `/v1/input`), the SQLite store those logs land in and its retention, Datadog's log search
//! syntax and its translation to SQL, the search, aggregate and tail APIs, the Explorer web
//! page, and a small client for `cairn logs`.
//!
//! Must not: know anything about checks, the sender's buffer or agent configuration files (it
//! is handed an [`IntakeConfig`]); listen anywhere but loopback unless told to; put any text
//! from a query into SQL other than as a bound parameter; render log data as HTML.

pub mod api;
pub mod client;
mod error;
mod http;
pub mod ingest;
mod limit;
pub mod query;
pub mod store;
pub mod timefmt;
pub mod wire;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use error::IntakeError;
pub use http::CONTENT_SECURITY_POLICY;
pub use store::MaintenanceReport;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:10518";
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 86_400);
pub const DEFAULT_MAX_SIZE_BYTES: u64 = 2 << 30;
const MAINTENANCE_EVERY: Duration = Duration::from_secs(60);

/// How to run one intake.
#[derive(Debug, Clone)]
pub struct IntakeConfig {
    /// Where to listen; port 0 picks a free port (see [`RunningIntake::local_addr`]).
    pub listen: SocketAddr,
    /// Holds the SQLite store; created 0700 if missing.
    pub data_dir: PathBuf,
    /// When not empty, every request must carry one of these in `DD-API-KEY` (403 otherwise).
    pub api_keys: Vec<String>,
    /// Logs whose timestamp is older than this are deleted.
    pub retention: Duration,
    /// The oldest logs are deleted while the store uses more than this.
    pub max_size_bytes: u64,
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
}

impl IntakeConfig {
    /// The defaults of SPEC §6: 127.0.0.1:10518, no keys, 7 days, 2 GiB.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        IntakeConfig {
            listen: DEFAULT_LISTEN
                .parse()
                .expect("the default address is valid"),
            data_dir: data_dir.into(),
            api_keys: Vec::new(),
            retention: DEFAULT_RETENTION,
            max_size_bytes: DEFAULT_MAX_SIZE_BYTES,
            max_connections: limit::DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// An intake serving in the background of the current tokio runtime.
pub struct RunningIntake {
    local_addr: SocketAddr,
    store: Arc<store::Store>,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
}

impl RunningIntake {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The base URL that senders ship to (`<url>/api/v2/logs`).
    pub fn url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// Where a person opens the Log Explorer.
    pub fn explorer_url(&self) -> String {
        format!("http://{}/", self.local_addr)
    }

    pub fn counters(&self) -> &store::StoreCounters {
        &self.store.counters
    }

    /// Applies retention now instead of at the next background pass.
    pub async fn enforce_retention(&self) -> Result<MaintenanceReport, IntakeError> {
        self.store.maintain().await
    }

    /// Stops accepting, lets requests in flight finish, then closes the store.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.server.await;
        let store = self.store;
        let _ = tokio::task::spawn_blocking(move || store.close()).await;
        tracing::info!("local intake stopped");
    }
}

/// Opens the store and starts serving. Must be called inside a multi-threaded tokio runtime.
pub async fn start(cfg: IntakeConfig) -> Result<RunningIntake, IntakeError> {
    let store_cfg = store::StoreConfig {
        data_dir: cfg.data_dir.clone(),
        retention: cfg.retention,
        max_size_bytes: cfg.max_size_bytes,
        maintenance_every: MAINTENANCE_EVERY,
    };
    let store = tokio::task::spawn_blocking(move || store::Store::open(store_cfg))
        .await
        .map_err(|e| IntakeError::BadRequest(format!("opening the store panicked: {e}")))??;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| IntakeError::Bind {
            addr: cfg.listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| IntakeError::Bind {
        addr: cfg.listen,
        source,
    })?;
    if !local_addr.ip().is_loopback() {
        tracing::warn!(%local_addr, "local intake listens beyond loopback; anyone who can reach it can read the logs unless api keys are set");
    }
    let app = http::router(store.clone(), cfg.api_keys.clone(), local_addr);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let max_connections = cfg.max_connections;
    let server = tokio::spawn(async move {
        let listener = limit::LimitedListener::new(listener, max_connections);
        let serve = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = stopped.await;
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "local intake server failed");
        }
    });
    tracing::info!(%local_addr, data_dir = %cfg.data_dir.display(), "local intake started");
    Ok(RunningIntake {
        local_addr,
        store,
        stop,
        server,
    })
}

/// Runs an intake on its own runtime until Ctrl-C or SIGTERM; `on_ready` sees it once it
/// listens. This is the whole of `cairn intake`.
pub fn serve_until_signal(
    cfg: IntakeConfig,
    on_ready: impl FnOnce(&RunningIntake),
) -> Result<(), IntakeError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(IntakeError::Runtime)?;
    rt.block_on(async move {
        let running = start(cfg).await?;
        on_ready(&running);
        wait_for_signal().await;
        running.shutdown().await;
        Ok(())
    })
}

async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
    }
}
