//! Pipelines on the intake: the pipelines file (loaded at start, polled for changes, rewritten
//! by the API), applying the compiled pipelines to each log of an ingest batch, and the
//! `/api/v1/logs/config/pipelines` routes in the shape of Datadog's Logs Pipelines API.
//!
//! The processing itself is `cairn_pipelines`'s; this module only converts between the
//! store's [`NewLog`] and [`Event`] and records which pipelines touched a log (attributes
//! `_cairn.pipelines`, `_cairn.pipeline_error`).
//!
//! Invariants: a log is never dropped or refused because of a pipeline (a processor error or
//! panic stores it as it arrived, with the error noted); the compiled pipelines are an `Arc`
//! swapped whole, so a batch is processed by one version and no lock is held while processing;
//! with no pipelines the ingest path does no conversion at all.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use cairn_pipelines::{Config, ConfigError, Event, Pipelines, Trace};
use cairn_wire::normalize::MARKER_KEY;
use serde_json::{json, Map, Value};

use crate::http::AppState;
use crate::ingest::{self, NewLog};
use crate::timefmt::now_ms;
use crate::{wire, IntakeError};

/// How often the file's mtime and size are compared with what is loaded.
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);
/// Pipelines definitions larger than this are refused (413); Datadog exports of hundreds of
/// pipelines stay far below it.
pub const MAX_CONFIG_BYTES: usize = 4 << 20;
/// Attribute keys of the provenance, under [`MARKER_KEY`].
pub const PROVENANCE_KEY: &str = "pipelines";
pub const ERROR_KEY: &str = "pipeline_error";
/// The route prefix, Datadog's.
pub const BASE: &str = "/api/v1/logs/config/pipelines";
/// Datadog's pipeline order: `{"pipeline_ids": [...]}`, every pipeline once, in the order they
/// run.
pub const ORDER: &str = "/api/v1/logs/config/pipeline-order";

/// One version of the pipelines: the definitions (as served by GET) and their compiled form.
pub struct Loaded {
    pub config: Config,
    pub compiled: Pipelines,
}

impl Loaded {
    /// No pipelines: logs are stored as they arrive.
    pub fn empty() -> Loaded {
        let config = Config::default();
        let compiled = Pipelines::compile(&config).expect("no pipelines always compile");
        Loaded { config, compiled }
    }

    /// The pipelines in Datadog's GET shape (a JSON array).
    pub fn definitions(&self) -> Vec<Value> {
        match self.config.to_json() {
            Value::Array(a) => a,
            _ => Vec::new(),
        }
    }
}

/// What `GET .../pipelines/_status` and the intake's status report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PipelinesStatus {
    pub file: PathBuf,
    pub pipelines: usize,
    /// Why the file on disk is not what runs (the previous pipelines are kept), if it is not.
    pub error: Option<String>,
    pub loaded_at_ms: i64,
}

/// The file's identity as far as change detection goes: a rename gives a new inode, an edit
/// in place a new mtime or size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    len: u64,
    mtime_s: i64,
    mtime_ns: i64,
}

impl Stamp {
    fn of(m: &std::fs::Metadata) -> Stamp {
        Stamp {
            ino: m.ino(),
            len: m.len(),
            mtime_s: m.mtime(),
            mtime_ns: m.mtime_nsec(),
        }
    }
}

#[derive(Debug)]
struct FileState {
    /// What was last read (`None`: the file was missing).
    stamp: Option<Stamp>,
}

/// What the status reports; its own lock, held for a copy only, so a request never waits for
/// a write's I/O or compilation.
#[derive(Debug, Clone)]
struct Report {
    error: Option<String>,
    loaded_at_ms: i64,
}

/// The pipelines of one intake: the running version and the file it comes from.
pub struct PipelineState {
    path: PathBuf,
    current: RwLock<Arc<Loaded>>,
    /// Taken (on blocking threads only) by every read-modify-write of the file and by the
    /// poller, so two writers cannot lose each other's change.
    file: Mutex<FileState>,
    report: Mutex<Report>,
}

/// Reads and compiles a pipelines text, naming the location of the first problem.
pub fn compile_text(text: &str) -> Result<Loaded, ConfigError> {
    let config = Config::from_text(text)?;
    let compiled = Pipelines::compile(&config)?;
    Ok(Loaded { config, compiled })
}

/// Fields the schema does not have are ignored; said once per load so a typo is seen.
fn warn_unknown_fields(path: &Path, loaded: &Loaded) {
    for w in loaded.config.warnings() {
        tracing::warn!(file = %path.display(), "{w}");
    }
}

fn config_error(path: &Path, e: ConfigError) -> IntakeError {
    IntakeError::Pipelines {
        path: path.to_owned(),
        location: e.location,
        message: e.message,
    }
}

fn file_error(path: &Path, source: std::io::Error) -> IntakeError {
    IntakeError::PipelinesFile {
        path: path.to_owned(),
        source,
    }
}

/// The file's text and stamp, `None` when it does not exist. Only a regular file (a link to
/// one is followed: the file may live in a checkout) of at most [`MAX_CONFIG_BYTES`] is read,
/// and the read itself stops past the cap: a link to `/dev/zero` or a file that grows while it
/// is read must not take the intake's memory.
fn read_file(path: &Path) -> Result<Option<(String, Stamp)>, IntakeError> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(file_error(path, e)),
    };
    // The stamp is taken from the open file, so it describes the text read.
    let meta = file.metadata().map_err(|e| file_error(path, e))?;
    let refuse = |message: String| IntakeError::Pipelines {
        path: path.to_owned(),
        location: "file".into(),
        message,
    };
    if !meta.is_file() {
        return Err(refuse("not a regular file".into()));
    }
    if meta.len() > MAX_CONFIG_BYTES as u64 {
        return Err(refuse(format!(
            "{} bytes, more than the {MAX_CONFIG_BYTES} a pipelines file may hold",
            meta.len()
        )));
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(&file, MAX_CONFIG_BYTES as u64 + 1),
        &mut bytes,
    )
    .map_err(|e| file_error(path, e))?;
    if bytes.len() > MAX_CONFIG_BYTES {
        return Err(refuse(format!(
            "more than the {MAX_CONFIG_BYTES} bytes a pipelines file may hold"
        )));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        refuse(format!(
            "not UTF-8 text (byte {} is invalid)",
            e.utf8_error().valid_up_to()
        ))
    })?;
    Ok(Some((text, Stamp::of(&meta))))
}

/// A pipelines file's text, read as the intake reads it (regular file, size cap, UTF-8), for
/// `cairn pipelines`; `None` when it does not exist.
pub fn read_text(path: &Path) -> Result<Option<String>, IntakeError> {
    Ok(read_file(path)?.map(|(text, _)| text))
}

impl PipelineState {
    /// Loads `path` at start. A missing file means no pipelines; an unreadable or invalid one
    /// is an error, so that a typo is seen at once rather than as logs stored unparsed.
    pub fn load(path: &Path) -> Result<PipelineState, IntakeError> {
        let (loaded, stamp) = match read_file(path)? {
            None => {
                tracing::info!(file = %path.display(), "no pipelines file: logs are stored as they arrive");
                (Loaded::empty(), None)
            }
            Some((text, stamp)) => {
                let loaded = compile_text(&text).map_err(|e| config_error(path, e))?;
                warn_unknown_fields(path, &loaded);
                tracing::info!(file = %path.display(), pipelines = loaded.definitions().len(), "pipelines loaded");
                (loaded, Some(stamp))
            }
        };
        Ok(PipelineState {
            path: path.to_owned(),
            current: RwLock::new(Arc::new(loaded)),
            file: Mutex::new(FileState { stamp }),
            report: Mutex::new(Report {
                error: None,
                loaded_at_ms: now_ms(),
            }),
        })
    }

    /// The running version; the caller keeps it for a whole batch.
    pub fn current(&self) -> Arc<Loaded> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn status(&self) -> PipelinesStatus {
        let report = self.report().clone();
        PipelinesStatus {
            file: self.path.clone(),
            pipelines: self.current().definitions().len(),
            error: report.error,
            loaded_at_ms: report.loaded_at_ms,
        }
    }

    fn report(&self) -> std::sync::MutexGuard<'_, Report> {
        self.report.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_error(&self, error: String) {
        self.report().error = Some(error);
    }

    fn mark_loaded(&self) {
        *self.report() = Report {
            error: None,
            loaded_at_ms: now_ms(),
        };
    }

    fn swap(&self, loaded: Loaded) -> Arc<Loaded> {
        let loaded = Arc::new(loaded);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = loaded.clone();
        loaded
    }

    /// Reloads the file if it changed since it was last read. Blocking (file I/O, compiling).
    /// An invalid file keeps the running pipelines and is reported once per change.
    pub fn reload_if_changed(&self) {
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        let now_stamp = match std::fs::metadata(&self.path) {
            Ok(m) => Some(Stamp::of(&m)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                let text = e.to_string();
                if self.report().error.as_deref() != Some(text.as_str()) {
                    tracing::warn!(file = %self.path.display(), error = %e, "cannot read the pipelines file; the running pipelines are kept");
                    self.set_error(text);
                }
                return;
            }
        };
        if now_stamp == file.stamp {
            return;
        }
        match read_file(&self.path) {
            Ok(None) => {
                self.swap(Loaded::empty());
                file.stamp = None;
                self.mark_loaded();
                tracing::info!(file = %self.path.display(), "pipelines file removed: logs are stored as they arrive");
            }
            Ok(Some((text, stamp))) => {
                file.stamp = Some(stamp);
                match compile_text(&text) {
                    Ok(loaded) => {
                        warn_unknown_fields(&self.path, &loaded);
                        if text.trim().is_empty() && !self.current().definitions().is_empty() {
                            tracing::warn!(file = %self.path.display(), "pipelines file is empty: no pipelines run now");
                        }
                        let n = loaded.definitions().len();
                        self.swap(loaded);
                        self.mark_loaded();
                        tracing::info!(file = %self.path.display(), pipelines = n, "pipelines reloaded");
                    }
                    Err(e) => {
                        tracing::warn!(file = %self.path.display(), location = %e.location, error = %e.message, "invalid pipelines file; the running pipelines are kept");
                        self.set_error(e.to_string());
                    }
                }
            }
            Err(e) => {
                // Warned once per change of the file, not every poll.
                file.stamp = now_stamp;
                tracing::warn!(error = %e, "cannot read the pipelines file; the running pipelines are kept");
                self.set_error(e.to_string());
            }
        }
    }

    /// Changes the definitions with `edit` (given the running ones in GET shape), validates
    /// and compiles the result, writes it to the file atomically, then runs it. Blocking.
    /// Nothing changes (file or running pipelines) when any step fails.
    pub fn modify<R>(
        &self,
        edit: impl FnOnce(Vec<Value>) -> Result<(Vec<Value>, R), IntakeError>,
    ) -> Result<(Arc<Loaded>, R), IntakeError> {
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        let (pipelines, extra) = edit(self.current().definitions())?;
        let text = serde_json::to_string(&json!({ "pipelines": pipelines }))
            .expect("JSON values serialise");
        let loaded = compile_text(&text).map_err(|e| config_error(&self.path, e))?;
        // Written in the GET shape, so generated ids are kept from now on. JSON is YAML too,
        // so the file keeps its name and stays readable by either parser.
        let mut out = serde_json::to_vec_pretty(&json!({ "pipelines": loaded.config.to_json() }))
            .expect("JSON values serialise");
        out.push(b'\n');
        let stamp = write_atomically(&self.path, &out)?;
        file.stamp = Some(stamp);
        let loaded = self.swap(loaded);
        self.mark_loaded();
        tracing::info!(file = %self.path.display(), pipelines = loaded.definitions().len(), "pipelines replaced through the API");
        Ok((loaded, extra))
    }
}

/// Polls the file every [`RELOAD_EVERY`] until aborted; the stat and read run on a blocking
/// thread so a slow disk never stalls the async workers.
pub fn watch(state: Arc<PipelineState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(RELOAD_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let s = state.clone();
            let _ = tokio::task::spawn_blocking(move || s.reload_if_changed()).await;
        }
    })
}

/// temp file (0600, same directory) + fsync + rename + directory fsync: a reader (or a
/// crash) sees the old file or the new one, never half of one.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<Stamp, IntakeError> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| file_error(path, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "pipelines".into());
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        let meta = std::fs::metadata(path)?;
        std::fs::File::open(&dir)?.sync_all()?;
        Ok(Stamp::of(&meta))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| file_error(path, e))
}

// ---- applying at ingest ----

/// Runs `pipelines` on every log of a batch, in place. Returns how many logs hit an error.
/// With no pipelines this returns at once: no log is converted.
pub fn apply(pipelines: &Pipelines, logs: &mut [NewLog]) -> usize {
    if pipelines.is_empty() {
        return 0;
    }
    let mut errors = 0;
    let mut first_error = None;
    for log in logs.iter_mut() {
        let trace = apply_one(pipelines, log);
        if let Some(e) = trace.error {
            errors += 1;
            first_error.get_or_insert(e);
        }
    }
    if let Some(e) = first_error {
        warn_errors(errors, &e);
    }
    errors
}

/// At most one warning a minute: a broken processor fails on every log, and the logs carry
/// the error themselves.
fn warn_errors(errors: usize, first: &str) {
    static LAST_MS: AtomicI64 = AtomicI64::new(i64::MIN);
    let now = now_ms();
    let last = LAST_MS.load(Ordering::Relaxed);
    if now.saturating_sub(last) >= 60_000
        && LAST_MS
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(errors, first = %first, "pipeline errors: those logs were stored as they arrived, with _cairn.pipeline_error");
    }
}

/// Processes one log and writes the result (and its provenance) back into it.
pub fn apply_one(pipelines: &Pipelines, log: &mut NewLog) -> Trace {
    let mut event = to_event(log);
    let trace = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // On an error the event is dropped and `log` (the log as it arrived) noted instead,
        // so the pipelines need not copy the event to restore it.
        pipelines.process_discarding_on_error(&mut event)
    })) {
        Ok(t) => t,
        // A processor bug must not cost the batch: the log is kept as it arrived.
        Err(_) => Trace {
            steps: Vec::new(),
            error: Some("a processor panicked (a bug in cairn, please report it)".into()),
        },
    };
    if let Some(e) = &trace.error {
        // The log as it arrived is still `log` itself; the event is dropped.
        note_error(log, e);
    } else if !trace.steps.is_empty() {
        from_event(event, &trace, log);
    }
    trace
}

/// The store's row as the processors see it.
pub fn to_event(log: &NewLog) -> Event {
    let attributes = log
        .attributes
        .as_deref()
        .and_then(|t| serde_json::from_str::<Map<String, Value>>(t).ok())
        .unwrap_or_default();
    Event {
        timestamp_ms: log.timestamp_ms,
        status: log.status.clone(),
        host: log.host.clone(),
        service: log.service.clone(),
        source: log.source.clone(),
        message: log.message.clone(),
        tags: crate::store::split_tags(&log.tags)
            .map(str::to_owned)
            .collect(),
        attributes,
    }
}

/// The marker object under which the intake notes what it did, created if needed. A sender's
/// `_cairn` that is not an object is kept under `value`.
fn marker(attributes: &mut Map<String, Value>) -> &mut Map<String, Value> {
    let slot = attributes
        .entry(MARKER_KEY)
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        let old = slot.take();
        *slot = json!({ "value": old });
    }
    slot.as_object_mut().expect("made an object above")
}

fn note_error(log: &mut NewLog, error: &str) {
    let mut attributes = log
        .attributes
        .as_deref()
        .and_then(|t| serde_json::from_str::<Map<String, Value>>(t).ok())
        .unwrap_or_default();
    marker(&mut attributes).insert(ERROR_KEY.into(), Value::String(error.to_owned()));
    // The leaves do not change: the marker object is left out of them.
    log.attributes = Some(Value::Object(attributes).to_string());
}

/// Writes a processed event back as a row, with the same folding as ingest (status, tags,
/// message length) and `_cairn.pipelines`.
fn from_event(event: Event, trace: &Trace, log: &mut NewLog) {
    let Event {
        timestamp_ms,
        status,
        host,
        service,
        source,
        message,
        tags,
        mut attributes,
    } = event;
    let steps: Vec<Value> = trace
        .steps
        .iter()
        .map(|s| json!({ "pipeline": s.pipeline, "processors": s.processors }))
        .collect();
    marker(&mut attributes).insert(PROVENANCE_KEY.into(), Value::Array(steps));
    log.timestamp_ms = timestamp_ms;
    let status = ingest::normalise_status(&status);
    log.status = if status.is_empty() {
        wire::DEFAULT_STATUS.to_owned()
    } else {
        status
    };
    log.host = host;
    log.service = service;
    log.source = source;
    let (message, cut) = ingest::truncate_message(message);
    log.message = message;
    log.truncated |= cut;
    log.tags = tags_text(&tags);
    log.leaves = ingest::leaves_of_map(&attributes);
    // The same compact text as `Value`'s Display, written straight into the string rather
    // than through a `fmt::Write` adapter (measured a third cheaper).
    log.attributes = Some(serde_json::to_string(&attributes).expect("JSON values serialise"));
}

/// Tags in the store's `,a:b,c,` form (empty when there are none).
fn tags_text(tags: &[String]) -> String {
    let mut out = String::from(",");
    for t in tags.iter().map(|t| t.trim()).filter(|t| !t.is_empty()) {
        // A comma inside a tag would split it in the store; Datadog's ddtags has the same rule.
        for part in t.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            out.push_str(part);
            out.push(',');
        }
    }
    if out.len() == 1 {
        String::new()
    } else {
        out
    }
}

/// A log as the search API returns its `attributes` (timestamp as RFC 3339, the source as a
/// `source:` tag first).
pub fn log_json(log: &NewLog) -> Value {
    let mut tags: Vec<String> = crate::store::split_tags(&log.tags)
        .map(str::to_owned)
        .collect();
    if !log.source.is_empty() {
        tags.insert(0, format!("source:{}", log.source));
    }
    let attributes = log
        .attributes
        .as_deref()
        .and_then(|t| serde_json::from_str::<Map<String, Value>>(t).ok())
        .unwrap_or_default();
    let e = crate::api::EventAttributes {
        timestamp: crate::timefmt::format_rfc3339_ms(log.timestamp_ms),
        status: log.status.clone(),
        service: log.service.clone(),
        host: log.host.clone(),
        message: log.message.clone(),
        tags,
        attributes,
    };
    serde_json::to_value(e).expect("a log serialises")
}

pub fn trace_json(trace: &Trace) -> Value {
    json!({
        "steps": trace.steps.iter().map(|s| json!({"pipeline": s.pipeline, "processors": s.processors})).collect::<Vec<_>>(),
        "error": trace.error,
    })
}

/// Runs `pipelines` on logs given as ingest-shaped JSON objects (parsed exactly as
/// `/api/v2/logs` parses them) and returns `[{"log": ..., "trace": ...}]`. Used by the preview
/// route and `cairn pipelines test`.
pub fn preview(pipelines: &Pipelines, logs: &[Value], now_ms: i64) -> Result<Vec<Value>, String> {
    let body = serde_json::to_vec(logs).expect("JSON values serialise");
    let mut parsed = ingest::parse_logs(&body, now_ms).map_err(|r| match r {
        ingest::Reject::BadBody(m)
        | ingest::Reject::TooLarge(m)
        | ingest::Reject::UnsupportedEncoding(m) => m,
    })?;
    Ok(parsed
        .iter_mut()
        .map(|log| {
            let trace = if pipelines.is_empty() {
                Trace::default()
            } else {
                apply_one(pipelines, log)
            };
            json!({ "log": log_json(log), "trace": trace_json(&trace) })
        })
        .collect())
}

// ---- HTTP ----

/// The pipelines routes; merged into the intake's router inside its guard and body limits.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(BASE, get(list).put(replace_all).post(create))
        .route(&format!("{BASE}/preview"), post(preview_handler))
        .route(&format!("{BASE}/_status"), get(status_handler))
        .route(ORDER, get(order_get).put(order_put))
        .route(
            &format!("{BASE}/{{id}}"),
            get(get_one).put(replace_one).delete(delete_one),
        )
}

/// Datadog's v1 error shape.
fn v1_error(status: StatusCode, detail: String) -> Response {
    (status, axum::Json(json!({ "errors": [detail] }))).into_response()
}

fn error_response(e: IntakeError) -> Response {
    match e {
        IntakeError::Pipelines {
            location, message, ..
        } => v1_error(StatusCode::BAD_REQUEST, format!("{location}: {message}")),
        IntakeError::BadRequest(m) => v1_error(StatusCode::BAD_REQUEST, m),
        IntakeError::NotFound(m) => v1_error(StatusCode::NOT_FOUND, m),
        other => {
            tracing::warn!(error = %other, "pipelines request failed");
            v1_error(StatusCode::INTERNAL_SERVER_ERROR, other.to_string())
        }
    }
}

fn parse_body(body: &Bytes) -> Result<Value, Box<Response>> {
    if body.len() > MAX_CONFIG_BYTES {
        return Err(Box::new(v1_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a pipelines body is limited to {MAX_CONFIG_BYTES} bytes"),
        )));
    }
    serde_json::from_slice(body).map_err(|e| {
        Box::new(v1_error(
            StatusCode::BAD_REQUEST,
            format!("invalid JSON: {e}"),
        ))
    })
}

/// Runs a blocking change of the definitions and answers with `answer(loaded, extra)`.
async fn modify<R: Send + 'static>(
    st: &AppState,
    edit: impl FnOnce(Vec<Value>) -> Result<(Vec<Value>, R), IntakeError> + Send + 'static,
    answer: impl FnOnce(&Loaded, R) -> Response,
) -> Response {
    let state = st.pipelines.clone();
    match tokio::task::spawn_blocking(move || state.modify(edit)).await {
        Ok(Ok((loaded, extra))) => answer(&loaded, extra),
        Ok(Err(e)) => error_response(e),
        Err(e) => v1_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the pipelines task failed: {e}"),
        ),
    }
}

fn id_of(p: &Value) -> Option<&str> {
    p.get("id").and_then(Value::as_str)
}

/// An id for a pipeline created through the API: unique within this intake (time + sequence).
fn new_id() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    format!(
        "{:x}-{:x}",
        nanos >> 8,
        SEQ.fetch_add(1, Ordering::Relaxed) & 0xffff
    )
}

fn one_pipeline(v: Value) -> Result<Map<String, Value>, IntakeError> {
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(IntakeError::BadRequest(
            "the body must be one pipeline object".into(),
        )),
    }
}

fn find<'a>(loaded: &'a [Value], id: &str) -> Option<&'a Value> {
    loaded.iter().find(|p| id_of(p) == Some(id))
}

async fn list(State(st): State<Arc<AppState>>) -> Response {
    let mut resp = axum::Json(st.pipelines.current().config.to_json()).into_response();
    // The body keeps Datadog's shape; a file that failed to reload is told in a header too.
    if let Some(e) = st.pipelines.status().error {
        let clean: String = e
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .take(1000)
            .collect();
        if let Ok(v) = HeaderValue::from_str(&clean) {
            resp.headers_mut().insert("x-cairn-pipelines-error", v);
        }
    }
    resp
}

async fn status_handler(State(st): State<Arc<AppState>>) -> Response {
    axum::Json(st.pipelines.status()).into_response()
}

fn order_of(pipelines: &[Value]) -> Value {
    let ids: Vec<&str> = pipelines.iter().filter_map(id_of).collect();
    json!({ "pipeline_ids": ids })
}

async fn order_get(State(st): State<Arc<AppState>>) -> Response {
    axum::Json(order_of(&st.pipelines.current().definitions())).into_response()
}

/// Reorders the pipelines. As Datadog's, the list must name every pipeline exactly once: an
/// order that forgets one would otherwise silently drop it.
async fn order_put(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    let body = match parse_body(&body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let Some(wanted) = body
        .get("pipeline_ids")
        .and_then(Value::as_array)
        .and_then(|a| {
            a.iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
        })
    else {
        return v1_error(
            StatusCode::BAD_REQUEST,
            "pipeline_ids: expected a list of pipeline ids".into(),
        );
    };
    modify(
        &st,
        move |all| {
            let mut rest: Vec<Option<Value>> = all.into_iter().map(Some).collect();
            let mut ordered = Vec::with_capacity(rest.len());
            for id in &wanted {
                let slot = rest
                    .iter_mut()
                    .find(|p| p.as_ref().and_then(|p| id_of(p)) == Some(id.as_str()));
                match slot.and_then(Option::take) {
                    Some(p) => ordered.push(p),
                    None => {
                        return Err(IntakeError::BadRequest(format!(
                        "pipeline_ids: {id:?} is not a pipeline of this intake, or is named twice"
                    )))
                    }
                }
            }
            let missing: Vec<String> = rest
                .iter()
                .flatten()
                .filter_map(|p| id_of(p).map(str::to_owned))
                .collect();
            if !missing.is_empty() {
                return Err(IntakeError::BadRequest(format!(
                    "pipeline_ids: every pipeline must be named once; missing {missing:?}"
                )));
            }
            Ok((ordered, ()))
        },
        |loaded, ()| axum::Json(order_of(&loaded.definitions())).into_response(),
    )
    .await
}

async fn replace_all(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    let body = match parse_body(&body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let pipelines = match body {
        Value::Array(a) => a,
        Value::Object(mut m) => match m.remove("pipelines") {
            Some(Value::Array(a)) => a,
            _ => {
                return v1_error(
                    StatusCode::BAD_REQUEST,
                    "the body must be an array of pipelines or {\"pipelines\": [...]}".into(),
                )
            }
        },
        _ => {
            return v1_error(
                StatusCode::BAD_REQUEST,
                "the body must be an array of pipelines or {\"pipelines\": [...]}".into(),
            )
        }
    };
    modify(
        &st,
        move |_| Ok((pipelines, ())),
        |loaded, ()| axum::Json(loaded.config.to_json()).into_response(),
    )
    .await
}

async fn create(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    let body = match parse_body(&body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    modify(
        &st,
        move |mut all| {
            let mut p = one_pipeline(body)?;
            let id = match p.get("id").and_then(Value::as_str) {
                Some(id) if find(&all, id).is_some() => {
                    return Err(IntakeError::BadRequest(format!(
                        "a pipeline with id {id:?} exists; PUT {BASE}/{id} replaces it"
                    )))
                }
                Some(id) => id.to_owned(),
                None => new_id(),
            };
            p.insert("id".into(), Value::String(id.clone()));
            all.push(Value::Object(p));
            Ok((all, id))
        },
        |loaded, id| match find(&loaded.definitions(), &id) {
            Some(p) => axum::Json(p.clone()).into_response(),
            None => v1_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("pipeline {id:?} was written but is not listed"),
            ),
        },
    )
    .await
}

async fn get_one(State(st): State<Arc<AppState>>, UrlPath(id): UrlPath<String>) -> Response {
    match find(&st.pipelines.current().definitions(), &id) {
        Some(p) => axum::Json(p.clone()).into_response(),
        None => v1_error(StatusCode::NOT_FOUND, format!("no pipeline with id {id:?}")),
    }
}

async fn replace_one(
    State(st): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> Response {
    let body = match parse_body(&body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let wanted = id.clone();
    modify(
        &st,
        move |mut all| {
            let mut p = one_pipeline(body)?;
            p.insert("id".into(), Value::String(wanted.clone()));
            let Some(slot) = all.iter_mut().find(|q| id_of(q) == Some(wanted.as_str())) else {
                return Err(IntakeError::NotFound(format!(
                    "no pipeline with id {wanted:?}"
                )));
            };
            *slot = Value::Object(p);
            Ok((all, ()))
        },
        move |loaded, ()| match find(&loaded.definitions(), &id) {
            Some(p) => axum::Json(p.clone()).into_response(),
            None => v1_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("pipeline {id:?} was written but is not listed"),
            ),
        },
    )
    .await
}

async fn delete_one(State(st): State<Arc<AppState>>, UrlPath(id): UrlPath<String>) -> Response {
    modify(
        &st,
        move |mut all| {
            let before = all.len();
            all.retain(|p| id_of(p) != Some(id.as_str()));
            if all.len() == before {
                return Err(IntakeError::NotFound(format!("no pipeline with id {id:?}")));
            }
            Ok((all, ()))
        },
        |_, ()| StatusCode::OK.into_response(),
    )
    .await
}

/// `{"pipelines"?: [...], "logs": [...]}`: the logs through the given pipelines (default: the
/// running ones), nothing stored.
async fn preview_handler(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    if body.len() > wire::MAX_PAYLOAD_BYTES {
        return v1_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "a preview body is limited to {} bytes",
                wire::MAX_PAYLOAD_BYTES
            ),
        );
    }
    let current = st.pipelines.current();
    let now = now_ms();
    // Every refusal here is the request's fault: 400 with the reason.
    let done = tokio::task::spawn_blocking(move || -> Result<Vec<Value>, String> {
        let mut req: Map<String, Value> = match serde_json::from_slice(&body) {
            Ok(Value::Object(m)) => m,
            Ok(_) => return Err("the body must be {\"logs\": [...], \"pipelines\"?: [...]}".into()),
            Err(e) => return Err(format!("invalid JSON: {e}")),
        };
        let logs = match req.remove("logs") {
            Some(Value::Array(a)) => a,
            Some(one @ Value::Object(_)) => vec![one],
            _ => return Err("\"logs\" must be an array of log objects".into()),
        };
        let given = match req.remove("pipelines") {
            None | Some(Value::Null) => None,
            Some(p) => {
                let text = serde_json::to_string(&json!({ "pipelines": p }))
                    .expect("JSON values serialise");
                Some(compile_text(&text).map_err(|e| format!("{}: {}", e.location, e.message))?)
            }
        };
        let pipelines = given.as_ref().map_or(&current.compiled, |l| &l.compiled);
        preview(pipelines, &logs, now)
    })
    .await;
    match done {
        Ok(Ok(v)) => axum::Json(v).into_response(),
        Ok(Err(m)) => v1_error(StatusCode::BAD_REQUEST, m),
        Err(e) => v1_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the preview task failed: {e}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip_through_the_event() {
        let logs = ingest::parse_logs(
            br#"{"message":"m","ddtags":"env:prod,team:db","a":{"b":1}}"#,
            0,
        )
        .unwrap();
        let e = to_event(&logs[0]);
        assert_eq!(e.tags, vec!["env:prod", "team:db"]);
        assert_eq!(e.attributes["a"], json!({"b": 1}));
        assert_eq!(tags_text(&e.tags), logs[0].tags);
        assert_eq!(tags_text(&[]), "");
    }

    #[test]
    fn from_event_folds_status_and_records_provenance() {
        let mut logs =
            ingest::parse_logs(br#"{"message":"m","_cairn":{"normalized":["depth"]}}"#, 0).unwrap();
        let mut e = to_event(&logs[0]);
        e.status = "WARNING".into();
        e.tags.push("parsed:yes".into());
        e.attributes.insert("n".into(), json!(3));
        let trace = Trace {
            steps: vec![cairn_pipelines::Step {
                pipeline: "p".into(),
                processors: vec!["grok".into()],
            }],
            error: None,
        };
        from_event(e, &trace, &mut logs[0]);
        let l = &logs[0];
        assert_eq!(l.status, "warn");
        assert_eq!(l.tags, ",parsed:yes,");
        let attrs: Value = serde_json::from_str(l.attributes.as_deref().unwrap()).unwrap();
        assert_eq!(
            attrs["_cairn"],
            json!({"normalized": ["depth"], "pipelines": [{"pipeline": "p", "processors": ["grok"]}]})
        );
        assert_eq!(l.leaves.len(), 1, "{:?}", l.leaves);
        assert_eq!(l.leaves.iter().next().map(|l| l.dotted), Some("n"));
    }

    #[test]
    fn an_error_keeps_the_log_and_notes_it() {
        let mut logs = ingest::parse_logs(br#"{"message":"m","k":"v"}"#, 0).unwrap();
        let before = logs[0].clone();
        note_error(&mut logs[0], "p › q: bad");
        let attrs: Value = serde_json::from_str(logs[0].attributes.as_deref().unwrap()).unwrap();
        assert_eq!(
            attrs,
            json!({"k": "v", "_cairn": {"pipeline_error": "p › q: bad"}})
        );
        assert_eq!(logs[0].message, before.message);
        assert_eq!(logs[0].leaves, before.leaves);
    }

    #[test]
    fn a_non_object_marker_is_kept() {
        let mut m = Map::new();
        m.insert(MARKER_KEY.into(), json!(5));
        marker(&mut m).insert("x".into(), json!(1));
        assert_eq!(Value::Object(m), json!({"_cairn": {"value": 5, "x": 1}}));
    }

    #[test]
    fn writes_are_atomic_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub").join("pipelines.yaml");
        write_atomically(&p, b"[]").unwrap();
        let meta = std::fs::metadata(&p).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert_eq!(std::fs::read(&p).unwrap(), b"[]");
        assert_eq!(std::fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
    }
}
