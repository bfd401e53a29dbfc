//! cairn-intake: Cairn's local logs intake and Log Explorer (SPEC §6).
//!
//! Owns: the receiving side of the Datadog HTTP logs intake protocol (`/api/v2/logs`,
//! `/v1/input`), the SQLite store those logs land in and its retention, Datadog's log search
//! syntax and its translation to SQL, the search, aggregate and tail APIs, the Explorer web
//! page, and a small client for `cairn logs`. Also the receiving side of metrics, service checks
//! and events (`/api/v2/series`, `/api/v1/series`, `/api/v1/check_run`, `/api/v1/events`),
//! their tables in the same store, and the read APIs behind `cairn metrics|events|checks`.
//!
//! Must not: know anything about checks, the sender's buffer or agent configuration files (it
//! is handed an [`IntakeConfig`]); listen anywhere but loopback unless told to; put any text
//! from a query into SQL other than as a bound parameter; render log data as HTML.

pub mod api;
mod auth;
pub mod client;
pub mod context;
mod error;
pub mod export;
mod http;
pub mod ingest;
mod limit;
pub mod metrics;
pub mod monitors;
pub mod patterns;
pub mod pipelines;
pub mod query;
pub mod store;
pub mod timefmt;
pub mod views;
pub mod wire;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use auth::{allowed_hosts, cookie_name, load_or_create_token, same_secret, MIN_TOKEN_LEN};
pub use error::IntakeError;
pub use http::{CONTENT_SECURITY_POLICY, ROUTES};
pub use limit::serve;
pub use limit::IntakeLimits;
pub use store::MaintenanceReport;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:10518";
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 86_400);
pub const DEFAULT_MAX_SIZE_BYTES: u64 = 2 << 30;
pub const PIPELINES_FILE: &str = "pipelines.yaml";
pub const MONITORS_FILE: &str = "monitors.yaml";
pub const DEFAULT_MONITOR_INTERVAL: Duration = Duration::from_secs(60);
const MAINTENANCE_EVERY: Duration = Duration::from_secs(60);
/// Requests in flight at shutdown get this long to finish; a stalled client cannot hold the
/// agent's exit.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(5);

/// How to run one intake.
#[derive(Debug, Clone)]
pub struct IntakeConfig {
    /// Where to listen; port 0 picks a free port (see [`RunningIntake::local_addr`]).
    pub listen: SocketAddr,
    /// Holds the SQLite store; created 0700 if missing.
    pub data_dir: PathBuf,
    /// Keys accepted besides the token, in `DD-API-KEY`, `Authorization: Bearer`,
    /// `?dd-api-key=` or `/v1/input/<key>` (SPEC §6).
    pub api_keys: Vec<String>,
    /// The session token every request must carry (as a cookie, `DD-API-KEY` or
    /// `Authorization: Bearer`) unless it is disabled.
    pub auth: IntakeAuth,
    /// Host names (or `name:port`) accepted in `Host` besides loopback names and the literal
    /// listen address(es), e.g. the machine's DNS name when listening beyond loopback.
    pub host_names: Vec<String>,
    /// Logs whose timestamp is older than this are deleted.
    pub retention: Duration,
    /// The oldest logs are deleted while the store uses more than this.
    pub max_size_bytes: u64,
    /// Connections, timeouts and memory for request bodies.
    pub limits: IntakeLimits,
    /// The pipelines applied to each log before it is stored (YAML or JSON, in the schema of
    /// Datadog's Logs Pipelines API); a missing file means no pipelines. Reloaded on change.
    pub pipelines_file: PathBuf,
    /// The log monitors and their webhooks; a missing file means none.
    pub monitors_file: PathBuf,
    /// How often the monitors are evaluated.
    pub monitor_interval: Duration,
}

impl IntakeConfig {
    /// The defaults of SPEC §6: 127.0.0.1:10518, no keys, 7 days, 2 GiB.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir: PathBuf = data_dir.into();
        let token_file = auth::default_token_file(&data_dir);
        let pipelines_file = data_dir.join(PIPELINES_FILE);
        let monitors_file = data_dir.join(MONITORS_FILE);
        IntakeConfig {
            listen: DEFAULT_LISTEN
                .parse()
                .expect("the default address is valid"),
            data_dir,
            api_keys: Vec::new(),
            auth: IntakeAuth::TokenFile(token_file),
            host_names: Vec::new(),
            retention: DEFAULT_RETENTION,
            max_size_bytes: DEFAULT_MAX_SIZE_BYTES,
            limits: IntakeLimits::default(),
            pipelines_file,
            monitors_file,
            monitor_interval: DEFAULT_MONITOR_INTERVAL,
        }
    }
}

/// Where the session token comes from.
#[derive(Clone)]
pub enum IntakeAuth {
    /// Read from this file, or generated into it (32 random bytes as hex, 0600) when missing,
    /// so it survives restarts.
    TokenFile(PathBuf),
    /// This token (configured); nothing is written.
    Token(String),
    /// No token: anyone who can connect may read and write, unless `api_keys` are set.
    /// Refused beyond loopback without keys.
    Disabled,
}

impl std::fmt::Debug for IntakeAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IntakeAuth::TokenFile(p) => f.debug_tuple("TokenFile").field(p).finish(),
            IntakeAuth::Token(_) => f.write_str("Token(********)"),
            IntakeAuth::Disabled => f.write_str("Disabled"),
        }
    }
}

/// What the store holds.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct IntakeStats {
    pub stored_logs: u64,
    pub store_bytes: u64,
}

/// An intake serving in the background of the current tokio runtime.
pub struct RunningIntake {
    local_addr: SocketAddr,
    token: Option<String>,
    store: Arc<store::Store>,
    pipelines: Arc<pipelines::PipelineState>,
    pipelines_watch: tokio::task::JoinHandle<()>,
    monitors: Arc<monitors::Monitors>,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
}

impl RunningIntake {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The base URL that senders on this machine ship to (`<url>/api/v2/logs`): the listen
    /// address, or loopback when listening on every interface.
    pub fn url(&self) -> String {
        let addr = match self.local_addr.ip() {
            std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
                SocketAddr::from(([127, 0, 0, 1], self.local_addr.port()))
            }
            std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
                SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, self.local_addr.port()))
            }
            _ => self.local_addr,
        };
        format!("http://{addr}")
    }

    /// The session token requests must carry, `None` when auth is disabled. A secret: never
    /// log it.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Where a person opens the Log Explorer: an address they can reach (not `0.0.0.0`), with
    /// `?token=` when there is a token; the page trades it for a cookie and drops it from the
    /// address bar. Contains the token: print it for the user, never log it.
    pub fn explorer_url(&self) -> String {
        let host = auth::reachable_host(self.local_addr);
        match &self.token {
            Some(t) => format!("http://{host}/?token={t}"),
            None => format!("http://{host}/"),
        }
    }

    /// The log monitors (issue 12); `evaluate_at` runs a round at a chosen time.
    pub fn monitors(&self) -> &Arc<monitors::Monitors> {
        &self.monitors
    }

    pub fn counters(&self) -> &store::StoreCounters {
        &self.store.counters
    }

    /// Logs held and bytes used by the store, for the agent's status (the per-minute counts
    /// are summed, so this stays cheap on millions of logs).
    pub async fn stats(&self) -> Result<IntakeStats, IntakeError> {
        self.store
            .read(|conn| {
                let logs: i64 = conn
                    .query_row("SELECT coalesce(sum(count), 0) FROM rollup", [], |r| {
                        r.get(0)
                    })
                    .map_err(IntakeError::from)?;
                let bytes = store::used_bytes(conn).map_err(IntakeError::from)?;
                Ok(IntakeStats {
                    stored_logs: logs.max(0) as u64,
                    store_bytes: bytes,
                })
            })
            .await
    }

    /// Applies retention now instead of at the next background pass.
    pub async fn enforce_retention(&self) -> Result<MaintenanceReport, IntakeError> {
        self.store.maintain().await
    }

    /// The pipelines file, how many pipelines run and why a change to the file was refused.
    pub fn pipelines_status(&self) -> pipelines::PipelinesStatus {
        self.pipelines.status()
    }

    /// Stops accepting, lets requests in flight finish, then closes the store.
    pub async fn shutdown(self) {
        self.pipelines_watch.abort();
        let _ = self.stop.send(());
        let _ = self.server.await;
        self.monitors.stop();
        let store = self.store;
        let _ = tokio::task::spawn_blocking(move || store.close()).await;
        tracing::info!("local intake stopped");
    }
}

/// Opens the store and starts serving. Must be called inside a multi-threaded tokio runtime.
pub async fn start(cfg: IntakeConfig) -> Result<RunningIntake, IntakeError> {
    let token = resolve_token(&cfg).await?;
    let store_cfg = store::StoreConfig {
        data_dir: cfg.data_dir.clone(),
        retention: cfg.retention,
        max_size_bytes: cfg.max_size_bytes,
        maintenance_every: MAINTENANCE_EVERY,
    };
    let store = tokio::task::spawn_blocking(move || store::Store::open(store_cfg))
        .await
        .map_err(|e| IntakeError::BadRequest(format!("opening the store panicked: {e}")))??;
    // Before binding: an invalid pipelines file stops the start, naming the file and where.
    let pipelines_file = cfg.pipelines_file.clone();
    let pipelines =
        tokio::task::spawn_blocking(move || pipelines::PipelineState::load(&pipelines_file))
            .await
            .map_err(|e| {
                IntakeError::BadRequest(format!("loading the pipelines panicked: {e}"))
            })??;
    let pipelines = Arc::new(pipelines);
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
    // After the bind, so an intake that cannot listen leaves no evaluation loop behind.
    let monitors = monitors::Monitors::start(monitors::MonitorsConfig {
        file: cfg.monitors_file.clone(),
        db: store.path().to_owned(),
        interval: cfg.monitor_interval,
        first_backoff: Duration::from_secs(1),
    })
    .await?;
    let access = http::Access {
        token,
        api_keys: cfg.api_keys.clone(),
        allowed_hosts: auth::allowed_hosts(local_addr, &cfg.host_names),
        cookie: auth::cookie_name(local_addr.port()),
    };
    let token = access.token.clone();
    let app = http::router(
        store.clone(),
        monitors.clone(),
        access,
        &cfg.limits,
        pipelines.clone(),
    );
    let pipelines_watch = pipelines::watch(pipelines.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let limits = cfg.limits.clone();
    let server = tokio::spawn(async move {
        let stopped = async {
            let _ = stopped.await;
        };
        limit::serve(listener, app, &limits, stopped, SHUTDOWN_DRAIN).await;
    });
    tracing::info!(%local_addr, data_dir = %cfg.data_dir.display(), "local intake started");
    Ok(RunningIntake {
        local_addr,
        token,
        store,
        pipelines,
        pipelines_watch,
        monitors,
        stop,
        server,
    })
}

/// The token of `cfg.auth`, checked before anything binds: listening beyond loopback with no
/// token and no key is refused.
async fn resolve_token(cfg: &IntakeConfig) -> Result<Option<String>, IntakeError> {
    let token = match &cfg.auth {
        IntakeAuth::Disabled => None,
        IntakeAuth::Token(t) => {
            let t = t.trim();
            auth::check_token(t).map_err(IntakeError::BadToken)?;
            Some(t.to_owned())
        }
        IntakeAuth::TokenFile(path) => {
            let path = path.clone();
            let t = tokio::task::spawn_blocking(move || auth::load_or_create_token(&path))
                .await
                .map_err(|e| IntakeError::BadToken(format!("reading the token panicked: {e}")))??;
            Some(t)
        }
    };
    let keys = cfg.api_keys.iter().any(|k| !k.trim().is_empty());
    if token.is_none() && !keys {
        if !cfg.listen.ip().is_loopback() {
            return Err(IntakeError::OpenBeyondLoopback { addr: cfg.listen });
        }
        tracing::warn!(listen = %cfg.listen, "LOCAL INTAKE AUTH IS DISABLED: every local user and any process on this machine can read and forge these logs");
    } else if !cfg.listen.ip().is_loopback() {
        tracing::warn!(listen = %cfg.listen, "local intake listens beyond loopback: whoever has the token or a key can read and write these logs over plain http");
    }
    Ok(token)
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
