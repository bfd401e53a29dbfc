//! cairn-forwarder: ships what checks submit besides logs (series, service checks, events) to
//! a Datadog-compatible intake, durably.
//!
//! Owns: the spool of encoded payloads on disk (`spool.rs`, its own byte budget), and the
//! thread that posts them with the response policy of SPEC §4 (2xx delivered; 400 dropped and
//! counted; 413 dropped and counted, since payloads are already cut to Datadog's limits;
//! 401/403 kept, retried at the longest backoff; 408, 429, 5xx, network errors retried with
//! jittered backoff, honouring `Retry-After`). A payload leaves the spool only when delivered
//! or dropped by that policy, so a crash or an outage loses nothing that was enqueued.
//!
//! Must not: know what is inside a payload (the caller encodes: `cairn-metrics::wire`), or
//! hold a lock across I/O that a check's thread could wait on.

mod spool;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use cairn_config::{redact_url, redact_urls_in, Secret};
use cairn_logs::sender::{classify, error_chain, retry_after, verdict, Backoff, Verdict};
use parking_lot::{Condvar, Mutex};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE};
use serde::Serialize;

use crate::spool::{Dropped, Spool};

/// Where a payload goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    /// `POST /api/v2/series`, protobuf `MetricPayload`.
    Series,
    /// `POST /api/v1/check_run`, JSON array of service checks.
    CheckRun,
    /// `POST /api/v1/events`, one JSON event.
    Events,
}

pub const ENDPOINTS: [Endpoint; 3] = [Endpoint::Series, Endpoint::CheckRun, Endpoint::Events];

impl Endpoint {
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Series => "/api/v2/series",
            Endpoint::CheckRun => "/api/v1/check_run",
            Endpoint::Events => "/api/v1/events",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Endpoint::Series => "application/x-protobuf",
            Endpoint::CheckRun | Endpoint::Events => "application/json",
        }
    }

    /// The name in counters and logs.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Series => "series",
            Endpoint::CheckRun => "service_checks",
            Endpoint::Events => "events",
        }
    }

    fn code(self) -> u8 {
        self as u8
    }

    fn from_code(c: u8) -> Option<Endpoint> {
        ENDPOINTS.get(usize::from(c)).copied()
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The body's `Content-Encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Zstd,
    Gzip,
}

impl Encoding {
    pub fn from_header(v: Option<&str>) -> Encoding {
        match v {
            Some("zstd") => Encoding::Zstd,
            Some("gzip") => Encoding::Gzip,
            _ => Encoding::Identity,
        }
    }

    fn header(self) -> Option<&'static str> {
        match self {
            Encoding::Identity => None,
            Encoding::Zstd => Some("zstd"),
            Encoding::Gzip => Some("gzip"),
        }
    }

    fn code(self) -> u8 {
        self as u8
    }

    fn from_code(c: u8) -> Option<Encoding> {
        [Encoding::Identity, Encoding::Zstd, Encoding::Gzip]
            .get(usize::from(c))
            .copied()
    }
}

#[derive(Debug, Clone)]
pub struct ForwarderConfig {
    /// `dd_url`, or the embedded intake's URL; endpoints' paths are appended.
    pub base_url: String,
    pub api_key: Option<Secret>,
    /// `<run_path>/forwarder`.
    pub spool_dir: PathBuf,
    /// Bytes the spool may hold; the oldest payloads are dropped (and counted) beyond.
    pub max_spool_bytes: u64,
    pub http_timeout: Duration,
    pub backoff: Backoff,
    pub version: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ForwarderError {
    #[error("forwarder url {url}: {message}")]
    Url { url: String, message: String },
    #[error("forwarder spool {path}: {source}")]
    Spool {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("building the forwarder's HTTP client: {0}")]
    Client(String),
}

/// Counters of one endpoint. `*_items` count what the payloads hold (series, service checks,
/// events).
#[derive(Debug, Default)]
struct EndpointCounters {
    payloads_sent: AtomicU64,
    items_sent: AtomicU64,
    bytes_sent: AtomicU64,
    retries: AtomicU64,
    dropped_rejected: AtomicU64,
    dropped_too_large: AtomicU64,
    dropped_spool_full: AtomicU64,
    dropped_corrupt: AtomicU64,
    dropped_not_durable: AtomicU64,
    not_durable_payloads: AtomicU64,
}

/// A snapshot of one endpoint's counters, for status and the counters file.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct EndpointSnapshot {
    pub payloads_sent: u64,
    pub items_sent: u64,
    pub bytes_sent: u64,
    pub retries: u64,
    /// Items dropped, by why: `rejected` (400), `too_large` (413), `spool_full`, `corrupt`,
    /// `not_durable` (kept in memory after a disk error, and the agent stopped first).
    pub items_dropped: std::collections::BTreeMap<&'static str, u64>,
    pub payloads_queued: u64,
    pub bytes_queued: u64,
    /// Payloads the disk refused, kept in memory instead.
    pub not_durable_payloads: u64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ForwarderSnapshot {
    pub series: EndpointSnapshot,
    pub service_checks: EndpointSnapshot,
    pub events: EndpointSnapshot,
    /// The intake refused the API key (401/403): data is kept and retried slowly.
    pub key_rejected: bool,
    /// The last delivery failure, secrets masked.
    pub last_error: Option<String>,
}

struct Shared {
    spool: Mutex<Spool>,
    wake: Condvar,
    stop: AtomicBool,
    /// Set by `shutdown`: deliver what is queued until then, no longer.
    deadline: Mutex<Option<Instant>>,
    counters: [EndpointCounters; 3],
    key_rejected: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl Shared {
    fn count_dropped(&self, endpoint: Endpoint, d: Dropped) {
        let c = &self.counters[endpoint.index()];
        c.dropped_corrupt.fetch_add(d.corrupt, Relaxed);
        c.dropped_spool_full.fetch_add(d.spool_full, Relaxed);
    }
}

pub struct Forwarder {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    display_url: String,
}

impl Forwarder {
    /// Opens the spool (taking up what a previous agent left) and starts delivering.
    pub fn start(cfg: ForwarderConfig) -> Result<Forwarder, ForwarderError> {
        let base = cfg.base_url.trim_end_matches('/').to_string();
        let display_url = redact_url(&base);
        let parsed = reqwest::Url::parse(&base).map_err(|e| ForwarderError::Url {
            url: display_url.clone(),
            message: e.to_string(),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ForwarderError::Url {
                url: display_url,
                message: "expected http:// or https://".into(),
            });
        }
        let (spool, dropped) =
            Spool::open(&cfg.spool_dir, cfg.max_spool_bytes).map_err(|source| {
                ForwarderError::Spool {
                    path: cfg.spool_dir.clone(),
                    source,
                }
            })?;
        if spool.len() > 0 {
            tracing::info!(
                payloads = spool.len(),
                bytes = spool.bytes(),
                "forwarder: payloads left by the previous run will be delivered"
            );
        }
        let shared = Arc::new(Shared {
            spool: Mutex::new(spool),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
            deadline: Mutex::new(None),
            counters: Default::default(),
            key_rejected: AtomicBool::new(false),
            last_error: Mutex::new(None),
        });
        // Damage found at open is attributed to series: the header that would say otherwise
        // may be the damaged part.
        shared.count_dropped(Endpoint::Series, dropped);
        let client = Client::new(&cfg, &base)?;
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("forwarder".into())
                .spawn(move || deliver_loop(&shared, &client, cfg.backoff))
                .map_err(|e| ForwarderError::Client(format!("spawning its thread: {e}")))?
        };
        tracing::info!(url = %display_url, "forwarder started");
        Ok(Forwarder {
            shared,
            thread: Some(thread),
            display_url,
        })
    }

    /// Where payloads go, password masked.
    pub fn url(&self) -> &str {
        &self.display_url
    }

    /// Hands over one payload of `items` items; durable (on disk) when this returns, unless
    /// the disk refused it, which is logged and counted, and the payload kept in memory.
    pub fn enqueue(&self, endpoint: Endpoint, encoding: Encoding, items: u64, body: Vec<u8>) {
        let (dropped, failed) = self
            .shared
            .spool
            .lock()
            .push(endpoint, encoding, items, body);
        self.shared.count_dropped(endpoint, dropped);
        if dropped.spool_full > 0 {
            tracing::error!(
                endpoint = endpoint.name(),
                items = dropped.spool_full,
                "forwarder spool full: the oldest payloads were dropped"
            );
        }
        if let Some(e) = failed {
            self.shared.counters[endpoint.index()]
                .not_durable_payloads
                .fetch_add(1, Relaxed);
            tracing::error!(endpoint = endpoint.name(), error = %e, "forwarder spool: the payload could not be written to disk; it is kept in memory and lost if the agent stops before delivering it");
        }
        self.shared.wake.notify_all();
    }

    pub fn snapshot(&self) -> ForwarderSnapshot {
        let spool = self.shared.spool.lock();
        let endpoint = |e: Endpoint| {
            let c = &self.shared.counters[e.index()];
            let (payloads_queued, bytes_queued) = spool.queued(e);
            let mut items_dropped = std::collections::BTreeMap::new();
            for (reason, n) in [
                ("rejected", &c.dropped_rejected),
                ("too_large", &c.dropped_too_large),
                ("spool_full", &c.dropped_spool_full),
                ("corrupt", &c.dropped_corrupt),
                ("not_durable", &c.dropped_not_durable),
            ] {
                let n = n.load(Relaxed);
                if n > 0 {
                    items_dropped.insert(reason, n);
                }
            }
            EndpointSnapshot {
                payloads_sent: c.payloads_sent.load(Relaxed),
                items_sent: c.items_sent.load(Relaxed),
                bytes_sent: c.bytes_sent.load(Relaxed),
                retries: c.retries.load(Relaxed),
                items_dropped,
                payloads_queued,
                bytes_queued,
                not_durable_payloads: c.not_durable_payloads.load(Relaxed),
            }
        };
        ForwarderSnapshot {
            series: endpoint(Endpoint::Series),
            service_checks: endpoint(Endpoint::CheckRun),
            events: endpoint(Endpoint::Events),
            key_rejected: self.shared.key_rejected.load(Relaxed),
            last_error: self.shared.last_error.lock().clone(),
        }
    }

    /// Delivers what is queued for at most `grace`, then stops. What is left stays in the
    /// spool and is delivered after a restart (payloads only in memory are counted as lost).
    pub fn shutdown(mut self, grace: Duration) -> ForwarderSnapshot {
        *self.shared.deadline.lock() = Some(Instant::now() + grace);
        self.shared.stop.store(true, Relaxed);
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            // A request in flight may take up to http_timeout; past the grace (and a second
            // for the last answer) the thread is left behind. Its payload is still in the
            // spool, so nothing is lost by not waiting.
            let until = Instant::now() + grace + Duration::from_secs(1);
            while !t.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
        let spool = self.shared.spool.lock();
        let lost = spool.memory_items();
        if lost > 0 {
            tracing::error!(items = lost, "forwarder: payloads the disk had refused were not delivered before the stop and are lost");
            self.shared.counters[Endpoint::Series.index()]
                .dropped_not_durable
                .fetch_add(lost, Relaxed);
        }
        drop(spool);
        self.snapshot()
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        if self.thread.take().is_some() {
            *self.shared.deadline.lock() = Some(Instant::now());
            self.shared.stop.store(true, Relaxed);
            self.shared.wake.notify_all();
        }
    }
}

struct Client {
    http: reqwest::Client,
    base: String,
    headers: HeaderMap,
    secrets: Vec<String>,
    runtime: tokio::runtime::Runtime,
}

impl Client {
    fn new(cfg: &ForwarderConfig, base: &str) -> Result<Client, ForwarderError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut headers = HeaderMap::new();
        let version = HeaderValue::from_str(&cfg.version)
            .map_err(|e| ForwarderError::Client(format!("version header: {e}")))?;
        headers.insert(HeaderName::from_static("dd-agent-version"), version);
        let mut secrets = Vec::new();
        if let Some(key) = &cfg.api_key {
            let mut v = HeaderValue::from_str(key.expose()).map_err(|_| {
                ForwarderError::Client("api_key holds characters not allowed in a header".into())
            })?;
            v.set_sensitive(true);
            headers.insert(HeaderName::from_static("dd-api-key"), v);
            secrets.push(key.expose().to_string());
        }
        if let Ok(url) = reqwest::Url::parse(base) {
            if let Some(p) = url.password() {
                secrets.push(p.to_string());
            }
        }
        secrets.retain(|s| s.len() >= 4);
        let http = reqwest::Client::builder()
            .user_agent(format!("cairn/{}", cfg.version))
            .timeout(cfg.http_timeout)
            .connect_timeout(cfg.http_timeout)
            .pool_idle_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| ForwarderError::Client(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ForwarderError::Client(format!("its runtime: {e}")))?;
        Ok(Client {
            http,
            base: base.to_string(),
            headers,
            secrets,
            runtime,
        })
    }

    fn scrub(&self, text: &str) -> String {
        let mut out = redact_urls_in(text);
        for s in &self.secrets {
            out = out.replace(s.as_str(), "********");
        }
        out
    }

    /// One attempt: the answer's status and headers and a body excerpt, or why there was none.
    fn post(
        &self,
        endpoint: Endpoint,
        encoding: Encoding,
        body: Vec<u8>,
    ) -> Result<(reqwest::StatusCode, HeaderMap, String), String> {
        let mut req = self
            .http
            .post(format!("{}{}", self.base, endpoint.path()))
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, endpoint.content_type());
        if let Some(enc) = encoding.header() {
            req = req.header(CONTENT_ENCODING, enc);
        }
        self.runtime.block_on(async {
            match req.body(body).send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    let text = resp.text().await.unwrap_or_default();
                    let excerpt: String = text.chars().take(256).collect();
                    Ok((status, headers, excerpt))
                }
                Err(e) => Err(format!("{} ({})", error_chain(&e), classify(&e).as_str())),
            }
        })
    }
}

/// Per endpoint: when it may be tried again, and how many attempts failed in a row.
#[derive(Clone, Copy)]
struct Backlog {
    next: Instant,
    attempt: u32,
}

fn deliver_loop(shared: &Shared, client: &Client, backoff: Backoff) {
    let mut state = [Backlog {
        next: Instant::now(),
        attempt: 0,
    }; 3];
    let mut rng = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64 | 1)
        .unwrap_or(0x9E37_79B9_7F4A_7C15);
    let mut last_warn: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if shared.stop.load(Relaxed) {
            let deadline = *shared.deadline.lock();
            if deadline.is_none_or(|d| now >= d) {
                return;
            }
        }
        let next = {
            let mut spool = shared.spool.lock();
            match spool.oldest(|e| state[e.index()].next <= now) {
                Some(n) => n,
                None => {
                    // Sleep until an endpoint's backoff ends, something is enqueued, or the
                    // stop's deadline.
                    let mut until = state
                        .iter()
                        .map(|s| s.next)
                        .filter(|t| *t > now)
                        .min()
                        .unwrap_or(now + Duration::from_secs(1));
                    if shared.stop.load(Relaxed) {
                        if spool.len() == 0 {
                            return;
                        }
                        if let Some(d) = *shared.deadline.lock() {
                            until = until.min(d);
                        }
                    }
                    shared.wake.wait_until(&mut spool, until);
                    continue;
                }
            }
        };
        let (seq, entry, body) = match next {
            Ok(n) => n,
            Err(items) => {
                shared.counters[Endpoint::Series.index()]
                    .dropped_corrupt
                    .fetch_add(items, Relaxed);
                continue;
            }
        };
        let endpoint = entry.endpoint;
        let c = &shared.counters[endpoint.index()];
        let len = body.len() as u64;
        let outcome = client.post(endpoint, entry.encoding, body);
        let failure = match outcome {
            Ok((status, headers, excerpt)) => match verdict(status) {
                Verdict::Delivered => {
                    shared.spool.lock().remove(seq);
                    c.payloads_sent.fetch_add(1, Relaxed);
                    c.items_sent.fetch_add(entry.items, Relaxed);
                    c.bytes_sent.fetch_add(len, Relaxed);
                    state[endpoint.index()].attempt = 0;
                    shared.key_rejected.store(false, Relaxed);
                    continue;
                }
                Verdict::Drop | Verdict::Split => {
                    shared.spool.lock().remove(seq);
                    let counter = if status.as_u16() == 413 {
                        &c.dropped_too_large
                    } else {
                        &c.dropped_rejected
                    };
                    counter.fetch_add(entry.items, Relaxed);
                    let msg = client.scrub(&format!(
                        "{} refused a {} payload with {status}: {excerpt}",
                        redact_url(&client.base),
                        endpoint.name()
                    ));
                    tracing::error!(endpoint = endpoint.name(), items = entry.items, %status, body = %client.scrub(&excerpt), "intake refused a payload; its items are dropped");
                    *shared.last_error.lock() = Some(msg);
                    continue;
                }
                Verdict::KeyRejected => {
                    shared.key_rejected.store(true, Relaxed);
                    let wait = backoff.max;
                    state[endpoint.index()].next = Instant::now() + wait;
                    format!("the intake rejected the API key ({status}); data is kept")
                }
                Verdict::Retry => {
                    let b = &mut state[endpoint.index()];
                    let mut wait = backoff.jittered(b.attempt, &mut rng);
                    if let Some(ra) = retry_after(&headers, SystemTime::now()) {
                        wait = ra.min(backoff.max);
                    }
                    b.attempt = b.attempt.saturating_add(1);
                    b.next = Instant::now() + wait;
                    format!(
                        "intake answered {status}; retrying in {:.1} s",
                        wait.as_secs_f64()
                    )
                }
            },
            Err(why) => {
                let b = &mut state[endpoint.index()];
                let wait = backoff.jittered(b.attempt, &mut rng);
                b.attempt = b.attempt.saturating_add(1);
                b.next = Instant::now() + wait;
                format!("{why}; retrying in {:.1} s", wait.as_secs_f64())
            }
        };
        c.retries.fetch_add(1, Relaxed);
        let failure = client.scrub(&failure);
        if last_warn.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            last_warn = Some(Instant::now());
            tracing::warn!(endpoint = endpoint.name(), error = %failure, "forwarder: delivery failed; payloads kept for retry");
        } else {
            tracing::debug!(endpoint = endpoint.name(), error = %failure, "forwarder: delivery failed");
        }
        *shared.last_error.lock() = Some(failure);
    }
}
