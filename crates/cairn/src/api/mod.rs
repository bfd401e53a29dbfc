//! The agent's local API on `cmd_host:cmd_port` (Datadog's default localhost:5001): what
//! `cairn status`, `cairn reload`, `cairn stream-logs` and `cairn cursors` talk to.
//!
//! Every request carries `Authorization: Bearer <token>`, the token being
//! `<run_path>/auth_token` (0600, shared with the embedded intake), compared in constant
//! time. The `Host` must name a loopback address (no DNS rebinding) and a request a browser
//! made for another page (`Origin`, `Sec-Fetch-Site` other than `none`) is refused, so no web
//! page can reach it. Connections, head and body times are bounded as for the intake.

mod status;
mod telemetry;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use cairn_checks::StatusBoard;
use cairn_logs::tap::{LogTap, TapFilter};
use cairn_logs::CountersSnapshot;
use parking_lot::Mutex;
use serde_json::{json, Value};

pub use status::render_text;

/// A reload asked for through the API, answered on `reply`.
pub struct ReloadRequest {
    pub reply: tokio::sync::oneshot::Sender<Value>,
}

/// Where one check's logs come from, as status lists logs sources.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LogsSource {
    #[serde(rename = "type")]
    pub kind: String,
    pub source: Option<String>,
    pub service: Option<String>,
}

/// What the agent shows through its API; the main loop keeps it current.
pub struct AgentState {
    pub started_at: SystemTime,
    pub started: Instant,
    pub hostname: String,
    pub config_dir: PathBuf,
    pub run_path: PathBuf,
    pub python_version: String,
    pub python_env: Option<PathBuf>,
    /// `logs` / `metrics` URLs, passwords masked.
    pub endpoints: Mutex<Value>,
    /// The API key's last 5 characters, as `agent status` shows it.
    pub api_key_ending: Option<String>,
    /// The scheduler's statuses; replaced at each reload.
    pub board: Mutex<StatusBoard>,
    pub logs: Option<Arc<dyn Fn() -> CountersSnapshot + Send + Sync>>,
    /// The metrics flusher's counters (refreshed by the main loop every second).
    pub metrics: Mutex<Value>,
    /// Check name → its `type: integration` logs entry.
    pub logs_sources: Mutex<std::collections::BTreeMap<String, LogsSource>>,
    /// Checks that failed to load (text naming file and line).
    pub load_errors: Mutex<Vec<String>>,
    pub last_reload: Mutex<Option<Value>>,
    /// Since when the intake has refused the key / been failing, for status in words.
    pub intake_trouble: Mutex<IntakeTrouble>,
    pub local_intake: Option<LocalIntakeInfo>,
    pub tap: Arc<LogTap>,
    pub reload_tx: Mutex<mpsc::Sender<ReloadRequest>>,
    pub backoff_max_secs: f64,
    /// When the API last answered an authenticated request (ms since `started`, + 1; 0 =
    /// never): the main loop refreshes the snapshots often only while someone is looking.
    pub last_read_ms: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
pub struct IntakeTrouble {
    pub rejected_since: Option<SystemTime>,
    pub failing_since: Option<SystemTime>,
}

/// The embedded intake as status shows it.
pub struct LocalIntakeInfo {
    pub url: String,
    /// Refreshed by the main loop every few seconds.
    pub stats: Mutex<Option<cairn_intake::IntakeStats>>,
    /// Logs stored, truncated and deleted by retention since the start (every second).
    pub ingest: Mutex<[u64; 3]>,
    /// The monitors' states, refreshed with `stats`.
    pub monitors: Mutex<Option<cairn_intake::monitors::Summary>>,
    /// The pipelines file and whether what runs is what it holds, refreshed with `stats`.
    pub pipelines: Mutex<Option<cairn_intake::pipelines::PipelinesStatus>>,
}

impl AgentState {
    fn note_read(&self) {
        let ms = self.started.elapsed().as_millis() as u64 + 1;
        self.last_read_ms
            .store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the API was read within `within`.
    pub fn read_recently(&self, within: Duration) -> bool {
        let last = self.last_read_ms.load(std::sync::atomic::Ordering::Relaxed);
        last > 0
            && self.started.elapsed().as_millis() as u64 + 1 - last <= within.as_millis() as u64
    }

    /// Called by the main loop with a fresh snapshot: notes when trouble with the intake began.
    pub fn observe_logs(&self, snap: &CountersSnapshot) {
        let mut t = self.intake_trouble.lock();
        let now = SystemTime::now();
        if snap.api_key_rejected {
            t.rejected_since.get_or_insert(now);
        } else {
            t.rejected_since = None;
        }
        if snap.last_error.is_some() && snap.retry_count > 0 {
            t.failing_since.get_or_insert(now);
        } else {
            t.failing_since = None;
        }
    }
}

/// The running API server.
pub struct ApiServer {
    runtime: tokio::runtime::Runtime,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    pub local_addr: SocketAddr,
}

impl ApiServer {
    pub fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(h) = self.server.take() {
            let _ = self
                .runtime
                .block_on(async { tokio::time::timeout(Duration::from_secs(3), h).await });
        }
        self.runtime.shutdown_timeout(Duration::from_millis(200));
    }
}

struct Api {
    state: Arc<AgentState>,
    token: String,
    hosts: Vec<String>,
}

/// Binds `cmd_host:cmd_port` and serves the API in the background.
pub fn start(listen: &str, token: String, state: Arc<AgentState>) -> anyhow::Result<ApiServer> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(4)
        .thread_name("local-api")
        .enable_all()
        .build()
        .context("starting the local API's runtime")?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(listen))
        .with_context(|| {
            format!("cmd_host/cmd_port: cannot listen on {listen} for the local API (set cmd_port to a free port)")
        })?;
    let local_addr = listener.local_addr()?;
    let api = Arc::new(Api {
        state,
        token,
        hosts: cairn_intake::allowed_hosts(local_addr, &[]),
    });
    let app = Router::new()
        .route("/status", get(status_handler))
        .route("/checks", get(checks_handler))
        .route("/reload", post(reload_handler))
        .route("/stream-logs", get(stream_logs_handler))
        .route("/cursors", get(cursors_handler))
        .route("/cursors/reset", post(cursors_reset_handler))
        .route("/metrics", get(metrics_handler))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(api.clone(), guard))
        .with_state(api);
    let limits = cairn_intake::IntakeLimits {
        max_connections: 64,
        max_bodies: 8,
        max_body_bytes: 1 << 20,
        max_body_bytes_total: 8 << 20,
        ..Default::default()
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(async move {
        cairn_intake::serve(
            listener,
            app,
            &limits,
            async move {
                let _ = stop_rx.await;
            },
            Duration::from_secs(2),
        )
        .await
    });
    Ok(ApiServer {
        runtime,
        stop: Some(stop_tx),
        server: Some(server),
        local_addr,
    })
}

fn error(status: StatusCode, detail: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": detail.into() }))).into_response()
}

async fn not_found(req: Request) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!(
            "no such endpoint: {} {} (try /status, /checks, /reload, /stream-logs, /cursors, /metrics)",
            req.method(),
            req.uri().path()
        ),
    )
}

async fn guard(State(api): State<Arc<Api>>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !api.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
        return error(
            StatusCode::FORBIDDEN,
            format!("Host {host:?} is not served"),
        );
    }
    if headers.contains_key(header::ORIGIN)
        || headers
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes() != b"none")
    {
        return error(
            StatusCode::FORBIDDEN,
            "requests made by web pages are refused",
        );
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if given.is_empty() || !cairn_intake::same_secret(given.as_bytes(), api.token.as_bytes()) {
        let mut resp = error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong token: send Authorization: Bearer <the content of <run_path>/auth_token>",
        );
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return resp;
    }
    api.state.note_read();
    let mut resp = next.run(req).await;
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

async fn status_handler(State(api): State<Arc<Api>>) -> Response {
    axum::Json(status::build(&api.state).await).into_response()
}

async fn checks_handler(State(api): State<Arc<Api>>) -> Response {
    axum::Json(json!({ "checks": status::checks(&api.state) })).into_response()
}

async fn reload_handler(State(api): State<Arc<Api>>) -> Response {
    let (tx, rx) = tokio::sync::oneshot::channel();
    if api
        .state
        .reload_tx
        .lock()
        .send(ReloadRequest { reply: tx })
        .is_err()
    {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the agent is stopping");
    }
    match tokio::time::timeout(Duration::from_secs(300), rx).await {
        Ok(Ok(answer)) => {
            let ok = answer.get("ok").and_then(Value::as_bool).unwrap_or(false);
            let code = if ok {
                StatusCode::OK
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            (code, axum::Json(answer)).into_response()
        }
        Ok(Err(_)) => error(StatusCode::SERVICE_UNAVAILABLE, "the agent is stopping"),
        Err(_) => error(
            StatusCode::GATEWAY_TIMEOUT,
            "the reload did not finish within 300 s; see the agent log",
        ),
    }
}

#[derive(serde::Deserialize, Default)]
struct StreamQuery {
    check: Option<String>,
    source: Option<String>,
    service: Option<String>,
}

/// NDJSON, one `{"check_id": …, "log": <the wire object>}` per shipped log, a
/// `{"skipped": n}` line when this reader fell behind, and a blank line every 5 s so that a
/// reader that went away is noticed (and the connection is not taken as idle).
async fn stream_logs_handler(
    State(api): State<Arc<Api>>,
    Query(q): Query<StreamQuery>,
) -> Response {
    let mut sub = api.state.tap.subscribe(TapFilter {
        check: q.check.filter(|s| !s.is_empty()),
        source: q.source.filter(|s| !s.is_empty()),
        service: q.service.filter(|s| !s.is_empty()),
    });
    let stream = async_stream(move |tx| async move {
        let mut reported_skips = 0;
        let mut beat = tokio::time::interval(Duration::from_secs(5));
        beat.tick().await;
        loop {
            let chunk = tokio::select! {
                line = sub.lines.recv() => match line {
                    Some(line) => {
                        let mut out = Vec::with_capacity(line.json.len() + 64);
                        out.extend_from_slice(b"{\"check_id\":");
                        out.extend_from_slice(serde_json::to_string(&*line.check_id).unwrap_or_default().as_bytes());
                        out.extend_from_slice(b",\"log\":");
                        out.extend_from_slice(&line.json);
                        out.extend_from_slice(b"}\n");
                        let skipped = sub.skipped();
                        if skipped > reported_skips {
                            out.extend_from_slice(format!("{{\"skipped\":{}}}\n", skipped - reported_skips).as_bytes());
                            reported_skips = skipped;
                        }
                        out
                    }
                    None => return,
                },
                _ = beat.tick() => b"\n".to_vec(),
            };
            if tx.send(Ok(Bytes::from(chunk))).await.is_err() {
                return;
            }
        }
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "stream"))
}

type Chunk = Result<Bytes, std::io::Error>;

/// A stream fed by a task: the task ends when the reader goes away (send fails).
fn async_stream<F, Fut>(f: F) -> impl futures_core_stream::Stream<Item = Chunk>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Chunk>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<Chunk>(16);
    tokio::spawn(f(tx));
    futures_core_stream::ReceiverStream(rx)
}

mod futures_core_stream {
    pub use futures_core::Stream;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    pub struct ReceiverStream<T>(pub tokio::sync::mpsc::Receiver<T>);

    impl<T> Stream for ReceiverStream<T> {
        type Item = T;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
            self.0.poll_recv(cx)
        }
    }
}

#[derive(serde::Deserialize, Default)]
struct CursorQuery {
    check: Option<String>,
}

async fn cursors_handler(Query(q): Query<CursorQuery>) -> Response {
    let answer = tokio::task::spawn_blocking(move || {
        crate::cmd_cursors::live_list(q.check.as_deref().filter(|c| !c.is_empty()))
    })
    .await;
    blocking_answer(answer)
}

#[derive(serde::Deserialize)]
struct ResetBody {
    check: String,
    stream: Option<String>,
}

async fn cursors_reset_handler(body: Bytes) -> Response {
    let req: ResetBody = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"check\": NAME, \"stream\": optional}}: {e}"),
            )
        }
    };
    // It waits for the check's current run and for the disk: off the async workers.
    let answer = tokio::task::spawn_blocking(move || {
        crate::cmd_cursors::live_reset(&req.check, req.stream.as_deref())
    })
    .await;
    blocking_answer(answer)
}

fn blocking_answer(answer: Result<anyhow::Result<Value>, tokio::task::JoinError>) -> Response {
    match answer {
        Ok(Ok(v)) => axum::Json(v).into_response(),
        Ok(Err(e)) => error(StatusCode::BAD_REQUEST, format!("{e:#}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn metrics_handler(State(api): State<Arc<Api>>) -> Response {
    let text = telemetry::render(&api.state).await;
    Response::builder()
        .header(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )
        .body(Body::from(text))
        .unwrap_or_else(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "metrics"))
}
