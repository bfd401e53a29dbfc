//! The HTTP sender: `POST <base>/api/v2/logs` with the intake's headers, and the response
//! policy of SPEC §4. A payload is retried until it is delivered or the policy drops it; the
//! caller acknowledges its buffer range only then.

use std::error::Error as StdError;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use cairn_config::{redact_url, redact_urls_in, Secret};
use reqwest::header::{
    HeaderMap, HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER,
};
use reqwest::StatusCode;
use tokio::sync::watch;

use crate::batch::Payload;
use crate::counters::{Counters, LossReason};
use crate::encode::Encoding;

/// At most one warn line about retries per this interval; the rest go to debug.
const RETRY_WARN_INTERVAL: Duration = Duration::from_secs(10);
/// Longest body excerpt put in an error log.
const BODY_EXCERPT_BYTES: usize = 256;
/// What a secret found in a message prints as.
const MASK: &str = "********";
/// Secrets shorter than this are not searched for in messages: masking every `e` of a
/// one-letter password would make the message unreadable and protect nothing.
const MIN_SCRUBBED_SECRET: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    /// `url` is already redacted.
    #[error("logs intake url {url}: {message}")]
    Url { url: String, message: String },
    #[error("building the HTTP client: {0}")]
    Client(String),
}

#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// Base URL; the sender posts to `<base>/api/v2/logs`.
    pub base_url: String,
    pub api_key: Option<Secret>,
    pub encoding: Encoding,
    pub http_timeout: Duration,
    pub backoff: Backoff,
    /// Agent version for `User-Agent` and `DD-EVP-ORIGIN-VERSION`.
    pub version: String,
}

/// `base·factor^n`, capped at `max`, jittered down to half.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub factor: f64,
    pub max: Duration,
}

impl Backoff {
    /// The wait before retry `attempt` (0 for the first retry), before jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        let secs = self.base.as_secs_f64() * self.factor.powi(attempt.min(64) as i32);
        if !secs.is_finite() || secs >= self.max.as_secs_f64() {
            self.max
        } else {
            Duration::from_secs_f64(secs)
        }
    }

    /// [`delay`](Self::delay) with "equal jitter": uniform in `[d/2, d]`, so that senders that
    /// failed together do not retry together, and the wait still grows.
    pub fn jittered(&self, attempt: u32, rng: &mut u64) -> Duration {
        let d = self.delay(attempt).as_secs_f64();
        let u = next_unit(rng);
        Duration::from_secs_f64(d / 2.0 + d / 2.0 * u)
    }
}

/// A tiny xorshift: jitter needs spread, not cryptographic quality.
fn next_unit(state: &mut u64) -> f64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// What to do with a response status (SPEC §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// 400: drop the payload, count it, log the body.
    Drop,
    /// 413: split in halves and retry them; a single log is dropped.
    Split,
    /// 401/403: keep the data, wait the longest backoff, report the key as rejected.
    KeyRejected,
    /// 408, 429, 5xx and anything unexpected: retry with backoff. Unknown statuses keep data
    /// rather than lose it.
    Retry,
}

pub fn verdict(status: StatusCode) -> Verdict {
    match status.as_u16() {
        200..=299 => Verdict::Delivered,
        400 => Verdict::Drop,
        413 => Verdict::Split,
        401 | 403 => Verdict::KeyRejected,
        _ => Verdict::Retry,
    }
}

/// How a payload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Every log was delivered or dropped by policy: acknowledge its range.
    Done,
    /// Shutdown came first: the range stays in the buffer.
    Abandoned,
}

pub struct Sender {
    /// When a retry was last logged at warn level (ms since `created`): during an outage every
    /// payload retries, and one line per retry would drown the log.
    last_warn_ms: AtomicU64,
    created: Instant,
    client: reqwest::Client,
    /// Where payloads are posted. It may hold a `user:password@` (reqwest turns it into basic
    /// auth on each request): never print it, print `display_url`.
    endpoint: String,
    display_url: String,
    /// Values masked in every message the sender prints or stores: the API key and the URL
    /// password. reqwest's messages do not contain them, and this keeps it so.
    secrets: Vec<String>,
    headers: HeaderMap,
    cfg: SenderConfig,
    counters: Arc<Counters>,
}

impl Sender {
    pub fn new(cfg: SenderConfig, counters: Arc<Counters>) -> Result<Sender, SenderError> {
        let base = cfg.base_url.trim_end_matches('/');
        let url = format!("{base}/api/v2/logs");
        let display_url = redact_url(&url);
        let refuse = |message: &str| SenderError::Url {
            url: display_url.clone(),
            message: message.to_string(),
        };
        // url's parse errors name the problem, never the input.
        let parsed = reqwest::Url::parse(&url).map_err(|e| refuse(&e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(refuse("expected http:// or https://"));
        }
        // The config refuses these already; a base URL from elsewhere gets the same rule, since
        // the path appended above would land inside the query or fragment.
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(refuse(
                "a query string or fragment is not supported in the base URL; give the API key \
                 as api_key (or DD_API_KEY)",
            ));
        }
        let mut secrets = Vec::new();
        if let Some(key) = &cfg.api_key {
            secrets.push(key.expose().to_string());
        }
        if let Some(password) = parsed.password() {
            secrets.push(password.to_string());
            if let Some(decoded) = percent_decode(password) {
                secrets.push(decoded);
            }
        }
        secrets.retain(|s| s.len() >= MIN_SCRUBBED_SECRET);
        // Longest first, so that a secret containing another is masked whole.
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        secrets.dedup();
        // ring is the provider we build with; a second install (tests, restarts) is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(enc) = cfg.encoding.content_encoding() {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static(enc));
        }
        headers.insert(
            HeaderName::from_static("dd-evp-origin"),
            HeaderValue::from_static("cairn"),
        );
        let version = HeaderValue::from_str(&cfg.version)
            .map_err(|e| SenderError::Client(format!("version header: {e}")))?;
        headers.insert(HeaderName::from_static("dd-evp-origin-version"), version);
        if let Some(key) = &cfg.api_key {
            let mut v = HeaderValue::from_str(key.expose())
                // Never echo the key: say only what is wrong with it.
                .map_err(|_| {
                    SenderError::Client("api_key holds characters not allowed in a header".into())
                })?;
            v.set_sensitive(true);
            headers.insert(HeaderName::from_static("dd-api-key"), v);
        }
        let client = reqwest::Client::builder()
            .user_agent(format!("cairn/{}", cfg.version))
            .timeout(cfg.http_timeout)
            .connect_timeout(cfg.http_timeout)
            // Under the local intake's 10 s idle timeout, so a pooled connection is dropped here
            // before the server closes it and a send never races the close.
            .pool_idle_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| SenderError::Client(e.to_string()))?;
        Ok(Sender {
            last_warn_ms: AtomicU64::new(0),
            created: Instant::now(),
            client,
            endpoint: url,
            display_url,
            secrets,
            headers,
            cfg,
            counters,
        })
    }

    /// Where payloads go, with any password masked: safe to print.
    pub fn url(&self) -> &str {
        &self.display_url
    }

    /// `text` with URL passwords, query values and this sender's secrets masked.
    fn scrub(&self, text: &str) -> String {
        let mut out = redact_urls_in(text);
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), MASK);
            }
        }
        out
    }

    /// Delivers `payload`, retrying per policy, until done or `shutdown` turns true.
    pub async fn deliver(
        &self,
        payload: Payload,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Delivery {
        // Halves of a 413 are delivered one after the other, depth first, so memory stays at
        // one payload.
        let mut stack = vec![payload];
        while let Some(p) = stack.pop() {
            match self.deliver_one(&p, shutdown).await {
                One::Done => {}
                One::Abandoned => return Delivery::Abandoned,
                One::Split => match p.split() {
                    Some((left, right)) => {
                        tracing::warn!(
                            entries = p.entries(),
                            "intake answered 413: payload split in halves"
                        );
                        stack.push(right);
                        stack.push(left);
                    }
                    None => {
                        self.count_drop(&p, LossReason::TooLarge);
                        tracing::error!(
                            bytes = p.json.len(),
                            "intake refused a single log as too large (413); dropped"
                        );
                    }
                },
            }
        }
        Delivery::Done
    }

    fn count_drop(&self, p: &Payload, reason: LossReason) {
        self.counters.add_dropped_per_check(reason, &p.per_check);
    }

    async fn deliver_one(&self, p: &Payload, shutdown: &mut watch::Receiver<bool>) -> One {
        let body = match self.cfg.encoding {
            Encoding::Identity => p.json.clone(),
            enc => {
                let json = p.json.clone();
                match tokio::task::spawn_blocking(move || enc.encode(&json)).await {
                    Ok(Ok(b)) => Bytes::from(b),
                    // Compressing into memory fails only on a panic or an allocation failure:
                    // there is nothing to retry.
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "payload compression failed; payload dropped");
                        self.count_drop(p, LossReason::BadRequest);
                        return One::Done;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "payload compression panicked; payload dropped");
                        self.count_drop(p, LossReason::BadRequest);
                        return One::Done;
                    }
                }
            }
        };
        let mut rng = (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64)
            ^ (p.json.len() as u64)
            ^ 0x9E37_79B9_7F4A_7C15;
        let mut attempt = 0u32;
        let mut first_failure: Option<Instant> = None;
        loop {
            if *shutdown.borrow() {
                return One::Abandoned;
            }
            let sent_at = Instant::now();
            let req = self
                .client
                .post(&self.endpoint)
                .headers(self.headers.clone())
                .body(body.clone());
            let result = tokio::select! {
                r = req.send() => r,
                _ = shutdown.changed() => return One::Abandoned,
            };
            let wait = match result {
                Ok(resp) => {
                    self.counters.observe_send(sent_at.elapsed());
                    let status = resp.status();
                    match verdict(status) {
                        Verdict::Delivered => {
                            self.record_delivery(p, body.len(), first_failure);
                            return One::Done;
                        }
                        Verdict::Drop => {
                            let excerpt = self.scrub(&body_excerpt(resp).await);
                            self.count_drop(p, LossReason::BadRequest);
                            self.counters
                                .set_error(Some(format!("intake answered {status}: {excerpt}")));
                            tracing::error!(status = status.as_u16(), entries = p.entries(), body = %excerpt, "intake rejected a payload (400); dropped");
                            return One::Done;
                        }
                        Verdict::Split => return One::Split,
                        Verdict::KeyRejected => {
                            self.counters.key_rejected.store(true, Relaxed);
                            self.counters.set_error(Some(format!(
                                "API key rejected by the intake ({status})"
                            )));
                            if self.warn_due() {
                                tracing::error!(status = status.as_u16(), retry_in_secs = self.cfg.backoff.max.as_secs_f64(), "intake rejected the API key; data kept, retrying at the longest backoff");
                            }
                            self.cfg.backoff.max
                        }
                        Verdict::Retry => {
                            // A 429's Retry-After replaces the backoff, but no single answer
                            // may stall delivery for longer than the longest backoff.
                            let retry_after = (status == StatusCode::TOO_MANY_REQUESTS)
                                .then(|| retry_after(resp.headers(), SystemTime::now()))
                                .flatten();
                            let wait = match retry_after {
                                Some(asked) => asked.min(self.cfg.backoff.max),
                                None => self.cfg.backoff.jittered(attempt, &mut rng),
                            };
                            let asked_secs = retry_after.map(|d| d.as_secs_f64());
                            self.counters
                                .set_error(Some(format!("intake answered {status}")));
                            if self.warn_due() {
                                tracing::warn!(
                                    status = status.as_u16(),
                                    attempt,
                                    retry_in_secs = wait.as_secs_f64(),
                                    retry_after_secs = asked_secs,
                                    "intake unavailable; payloads kept for retry"
                                );
                            } else {
                                tracing::debug!(
                                    status = status.as_u16(),
                                    attempt,
                                    retry_in_secs = wait.as_secs_f64(),
                                    retry_after_secs = asked_secs,
                                    "intake unavailable; payload kept for retry"
                                );
                            }
                            wait
                        }
                    }
                }
                Err(e) => {
                    let wait = self.cfg.backoff.jittered(attempt, &mut rng);
                    // The URL may hold a password: the log names it through `display_url`.
                    let e = e.without_url();
                    let kind = classify(&e);
                    let cause = self.scrub(&error_chain(&e));
                    self.counters.set_error(Some(format!(
                        "sending to the intake failed ({}): {cause}",
                        kind.describe()
                    )));
                    if self.warn_due() {
                        tracing::warn!(kind = kind.as_str(), error = %cause, url = %self.display_url, attempt, retry_in_secs = wait.as_secs_f64(), "sending to the intake failed; payloads kept for retry");
                    } else {
                        tracing::debug!(kind = kind.as_str(), error = %cause, url = %self.display_url, attempt, retry_in_secs = wait.as_secs_f64(), "sending to the intake failed; payload kept for retry");
                    }
                    wait
                }
            };
            first_failure.get_or_insert(sent_at);
            attempt = attempt.saturating_add(1);
            self.counters.retry_count.fetch_add(1, Relaxed);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return One::Abandoned,
            }
        }
    }

    /// Whether a retry may be logged at warn level now (at most once per interval).
    fn warn_due(&self) -> bool {
        let now = self.created.elapsed().as_millis() as u64;
        let last = self.last_warn_ms.load(Relaxed);
        (last == 0 || now.saturating_sub(last) >= RETRY_WARN_INTERVAL.as_millis() as u64)
            && self
                .last_warn_ms
                .compare_exchange(last, now.max(1), Relaxed, Relaxed)
                .is_ok()
    }

    fn record_delivery(&self, p: &Payload, encoded: usize, first_failure: Option<Instant>) {
        let c = &self.counters;
        c.logs_sent.fetch_add(p.entries() as u64, Relaxed);
        c.bytes_sent.fetch_add(p.json.len() as u64, Relaxed);
        c.encoded_bytes_sent.fetch_add(encoded as u64, Relaxed);
        c.payloads_sent.fetch_add(1, Relaxed);
        if let Some(t) = first_failure {
            c.retry_time_spent_us
                .fetch_add(t.elapsed().as_micros() as u64, Relaxed);
        }
        if c.key_rejected.swap(false, Relaxed) || first_failure.is_some() {
            c.set_error(None);
            tracing::info!("intake accepts payloads again");
        }
        c.add_check_sent(&p.per_check);
    }
}

enum One {
    Done,
    Abandoned,
    Split,
}

/// Why a request got no response, as far as the error chain tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// `http_timeout` (or the connect timeout) ran out.
    Timeout,
    ConnectionRefused,
    /// The peer reset or aborted the connection, or it broke while writing.
    ConnectionReset,
    /// The intake closed the connection before answering.
    ConnectionClosed,
    Dns,
    Tls,
    /// Connecting failed for another reason (unreachable network, …).
    Connect,
    /// Sending the body failed.
    Body,
    Request,
}

impl FailureKind {
    /// The `kind` field of the log line.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Timeout => "timeout",
            FailureKind::ConnectionRefused => "connection_refused",
            FailureKind::ConnectionReset => "connection_reset",
            FailureKind::ConnectionClosed => "connection_closed",
            FailureKind::Dns => "dns",
            FailureKind::Tls => "tls",
            FailureKind::Connect => "connect",
            FailureKind::Body => "body",
            FailureKind::Request => "request",
        }
    }

    /// In words, for `last_error`.
    pub fn describe(self) -> &'static str {
        match self {
            FailureKind::Timeout => "timed out",
            FailureKind::ConnectionRefused => "connection refused",
            FailureKind::ConnectionReset => "connection reset",
            FailureKind::ConnectionClosed => "connection closed by the intake",
            FailureKind::Dns => "DNS lookup failed",
            FailureKind::Tls => "TLS error",
            FailureKind::Connect => "could not connect",
            FailureKind::Body => "sending the body failed",
            FailureKind::Request => "request failed",
        }
    }
}

/// What the error chain says, gathered once so that [`classify_facts`] is testable without a
/// real `reqwest::Error`.
#[derive(Debug, Default, Clone, Copy)]
struct Facts {
    io_kind: Option<std::io::ErrorKind>,
    tls: bool,
    dns: bool,
    closed: bool,
    timeout: bool,
    connect: bool,
    body: bool,
}

fn chain_facts(top: &(dyn StdError + 'static)) -> Facts {
    let mut f = Facts::default();
    let mut cur = Some(top);
    while let Some(err) = cur {
        if err.is::<rustls::Error>() {
            f.tls = true;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            // tokio-rustls reports TLS failures as an io::Error wrapping the rustls one, and
            // io::Error's `source` skips the wrapped error: look inside.
            if io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>())
            {
                f.tls = true;
            }
            // The innermost kind that says something wins: outer io errors are wrappers.
            if io.kind() != std::io::ErrorKind::Other || f.io_kind.is_none() {
                f.io_kind = Some(io.kind());
            }
        }
        let msg = err.to_string();
        // hyper-util names its resolver failures "dns error"; hyper's IncompleteMessage says
        // "connection closed before message completed".
        f.dns |= msg == "dns error";
        f.closed |= msg.starts_with("connection closed");
        cur = err.source();
    }
    f
}

fn classify_facts(f: Facts) -> FailureKind {
    use std::io::ErrorKind as K;
    if f.tls {
        return FailureKind::Tls;
    }
    match f.io_kind {
        Some(K::ConnectionRefused) => return FailureKind::ConnectionRefused,
        Some(K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe) => {
            return FailureKind::ConnectionReset
        }
        Some(K::TimedOut) => return FailureKind::Timeout,
        Some(K::UnexpectedEof) => return FailureKind::ConnectionClosed,
        _ => {}
    }
    if f.timeout {
        FailureKind::Timeout
    } else if f.dns {
        FailureKind::Dns
    } else if f.closed {
        FailureKind::ConnectionClosed
    } else if f.connect {
        FailureKind::Connect
    } else if f.body {
        FailureKind::Body
    } else {
        FailureKind::Request
    }
}

/// Names a failed request by what actually went wrong: reqwest's `is_timeout` only for real
/// timeouts; refused, reset, DNS and TLS by the errors inside.
pub fn classify(e: &reqwest::Error) -> FailureKind {
    let mut f = chain_facts(e);
    f.timeout = e.is_timeout();
    f.dns |= e.is_dns();
    f.connect = e.is_connect();
    f.body = e.is_body();
    classify_facts(f)
}

/// The error and its sources joined by `: `, each distinct message once: wrappers often
/// repeat their cause's text (a resolver error displays its inner error and also returns it
/// as its source), and the repeat says nothing new.
pub fn error_chain(top: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(top);
    while let Some(err) = cur {
        let msg = err.to_string();
        let msg = msg.trim();
        if !msg.is_empty() && !parts.iter().any(|p| p.contains(msg)) {
            // An inner message that repeats an outer one whole makes the outer one redundant.
            parts.retain(|p| !msg.contains(p.as_str()));
            parts.push(msg.to_string());
        }
        cur = err.source();
    }
    parts.join(": ")
}

/// `%XX` sequences decoded; `None` when there are none or the result is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return None;
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// `Retry-After` as delta-seconds or an HTTP date (relative to `now`; a date in the past means
/// now). `None` for anything else, which falls back to the backoff. The caller caps it.
/// The `Retry-After` of an answer, in either form (delta-seconds or an HTTP date).
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return if secs >= 0.0 {
            // Infinity and NaN fail here; too large saturates, and is capped anyway.
            Duration::try_from_secs_f64(secs)
                .ok()
                .or((secs.is_finite()).then_some(Duration::MAX))
        } else {
            None
        };
    }
    let at = parse_http_date(v)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The three date forms HTTP recipients must accept (RFC 9110 §5.6.7):
/// `Sun, 06 Nov 1994 08:49:37 GMT`, `Sunday, 06-Nov-94 08:49:37 GMT` and
/// `Sun Nov  6 08:49:37 1994`. The weekday is not checked.
fn parse_http_date(s: &str) -> Option<SystemTime> {
    let tokens: Vec<&str> = s.split([' ', ',', '-']).filter(|t| !t.is_empty()).collect();
    let (day, month, year, time) = match tokens.as_slice() {
        [_, d, m, y, t, "GMT"] => (*d, *m, *y, *t),
        [_, m, d, t, y] => (*d, *m, *y, *t),
        _ => return None,
    };
    let all_digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(day) || !all_digits(year) || !matches!(year.len(), 2 | 4) {
        return None;
    }
    let day: u32 = day.parse().ok().filter(|d| (1..=31).contains(d))?;
    let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(month))? as u32 + 1;
    let mut year: i64 = year.parse().ok()?;
    if year < 100 {
        // RFC 850's two-digit years: a recipient reads them as the most recent past century.
        year += if year < 70 { 2000 } else { 1900 };
    }
    let mut hms = time.split(':');
    let mut field = |max: u64| -> Option<u64> {
        let t = hms.next()?;
        if t.len() != 2 || !all_digits(t) {
            return None;
        }
        t.parse().ok().filter(|v| *v <= max)
    };
    let (h, m, sec) = (field(23)?, field(59)?, field(60)?);
    if hms.next().is_some() {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = u64::try_from(days.checked_mul(86_400)?).ok()? + h * 3600 + m * 60 + sec;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let (m, d) = (i64::from(m), i64::from(d));
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

async fn body_excerpt(resp: reqwest::Response) -> String {
    let bytes = resp.bytes().await.unwrap_or_default();
    let cut = &bytes[..bytes.len().min(BODY_EXCERPT_BYTES)];
    let mut s = String::from_utf8_lossy(cut).into_owned();
    if bytes.len() > BODY_EXCERPT_BYTES {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_the_policy_of_the_spec() {
        let cases = [
            (200, Verdict::Delivered),
            (202, Verdict::Delivered),
            (400, Verdict::Drop),
            (401, Verdict::KeyRejected),
            (403, Verdict::KeyRejected),
            (404, Verdict::Retry),
            (408, Verdict::Retry),
            (413, Verdict::Split),
            (429, Verdict::Retry),
            (500, Verdict::Retry),
            (503, Verdict::Retry),
        ];
        for (code, want) in cases {
            assert_eq!(
                verdict(StatusCode::from_u16(code).unwrap()),
                want,
                "status {code}"
            );
        }
    }

    #[test]
    fn backoff_grows_by_the_factor_is_capped_and_jitter_stays_within_half() {
        let b = Backoff {
            base: Duration::from_secs(1),
            factor: 2.0,
            max: Duration::from_secs(120),
        };
        let d: Vec<u64> = (0..9).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(d, vec![1, 2, 4, 8, 16, 32, 64, 120, 120]);
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(120));
        let mut rng = 42;
        for n in 0..10 {
            let j = b.jittered(n, &mut rng);
            assert!(j >= b.delay(n) / 2 && j <= b.delay(n), "attempt {n}: {j:?}");
        }
    }

    fn header(v: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static(v));
        h
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates_and_refuses_garbage() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480); // 07:28:00
        assert_eq!(retry_after(&header("3"), now), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(&header(" 0 "), now), Some(Duration::ZERO));
        assert_eq!(
            retry_after(&header("1e30"), now),
            Some(Duration::MAX),
            "huge saturates; the caller caps it"
        );
        for form in [
            "Wed, 21 Oct 2015 07:28:30 GMT",
            "Wednesday, 21-Oct-15 07:28:30 GMT",
            "Wed Oct 21 07:28:30 2015",
        ] {
            assert_eq!(
                retry_after(&header(form), now),
                Some(Duration::from_secs(30)),
                "{form}"
            );
        }
        assert_eq!(
            retry_after(&header("Wed, 21 Oct 2015 07:00:00 GMT"), now),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        for garbage in [
            "soon",
            "-5",
            "inf",
            "NaN",
            "",
            "Wed, 32 Oct 2015 07:28:30 GMT",
            "Wed, 21 Foo 2015 07:28:30 GMT",
            "Wed, 21 Oct 2015 24:00:00 GMT",
            "Wed, 21 Oct 2015 07:28 GMT",
            "Wed, 21 Oct 2015 07:28:30 CET",
        ] {
            let mut h = HeaderMap::new();
            h.insert(RETRY_AFTER, HeaderValue::from_str(garbage).unwrap());
            assert_eq!(retry_after(&h, now), None, "{garbage:?}");
        }
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn civil_days_match_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2015, 10, 21), 16_729);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
    }

    /// An error with a message and an optional source, to build chains like reqwest's.
    #[derive(Debug)]
    struct E(&'static str, Option<Box<dyn StdError + Send + Sync>>);
    impl std::fmt::Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl StdError for E {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            self.1.as_deref().map(|e| e as &(dyn StdError + 'static))
        }
    }

    fn chain(msgs: &[&'static str], io: Option<std::io::Error>) -> E {
        let mut inner: Option<Box<dyn StdError + Send + Sync>> = io.map(|e| Box::new(e) as _);
        for m in msgs.iter().rev() {
            inner = Some(Box::new(E(m, inner)));
        }
        match inner {
            Some(b) => match b.downcast::<E>() {
                Ok(e) => *e,
                Err(_) => unreachable!("the outermost link is an E"),
            },
            None => E("empty", None),
        }
    }

    #[test]
    fn the_chain_is_printed_whole_and_each_message_once() {
        use std::io::{Error as IoError, ErrorKind};
        let refused = chain(
            &[
                "error sending request",
                "client error (Connect)",
                "tcp connect error",
            ],
            Some(IoError::from(ErrorKind::ConnectionRefused)),
        );
        let text = error_chain(&refused);
        assert!(
            text.starts_with("error sending request: client error (Connect): tcp connect error: "),
            "{text}"
        );
        assert!(text.to_lowercase().contains("refused"), "{text}");
        // A resolver error displays its inner error and returns it as its source too.
        let dns = chain(
            &[
                "error sending request",
                "client error (Connect)",
                "dns error",
                "failed to lookup address information: Name or service not known",
                "failed to lookup address information: Name or service not known",
            ],
            None,
        );
        assert_eq!(
            error_chain(&dns),
            "error sending request: client error (Connect): dns error: failed to lookup address \
             information: Name or service not known"
        );
        let wrapped = chain(&["a: b", "b"], None);
        assert_eq!(error_chain(&wrapped), "a: b");
        let repeats_outer = chain(&["x", "x (detail)"], None);
        assert_eq!(error_chain(&repeats_outer), "x (detail)");
    }

    #[test]
    fn failures_are_named_by_their_cause_not_as_timeouts() {
        use std::io::{Error as IoError, ErrorKind};
        let facts = |msgs: &[&'static str], io: Option<IoError>| chain_facts(&chain(msgs, io));
        let kind = |f: Facts| classify_facts(f);
        let io = |k| Some(IoError::from(k));
        assert_eq!(
            kind(facts(
                &["a", "tcp connect error"],
                io(ErrorKind::ConnectionRefused)
            )),
            FailureKind::ConnectionRefused
        );
        for k in [
            ErrorKind::ConnectionReset,
            ErrorKind::ConnectionAborted,
            ErrorKind::BrokenPipe,
        ] {
            // Even if reqwest were to call it a timeout, a reset is a reset.
            let mut f = facts(&["error sending request"], io(k));
            f.timeout = true;
            assert_eq!(kind(f), FailureKind::ConnectionReset, "{k:?}");
        }
        assert_eq!(
            kind(facts(&["a"], io(ErrorKind::TimedOut))),
            FailureKind::Timeout
        );
        let mut f = facts(&["operation timed out"], None);
        f.timeout = true;
        assert_eq!(kind(f), FailureKind::Timeout);
        assert_eq!(
            kind(facts(
                &["a", "client error (Connect)", "dns error", "nope"],
                None
            )),
            FailureKind::Dns
        );
        assert_eq!(
            kind(facts(
                &["a", "connection closed before message completed"],
                None
            )),
            FailureKind::ConnectionClosed
        );
        let tls = IoError::new(
            ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        assert_eq!(kind(facts(&["a", "b"], Some(tls))), FailureKind::Tls);
        let mut f = facts(&["a"], None);
        f.connect = true;
        assert_eq!(kind(f), FailureKind::Connect);
        let mut f = facts(&["a"], None);
        f.body = true;
        assert_eq!(kind(f), FailureKind::Body);
        assert_eq!(kind(facts(&["a"], None)), FailureKind::Request);
    }

    #[test]
    fn a_query_string_in_the_base_url_is_refused_and_not_echoed() {
        let mut cfg = test_config("http://127.0.0.1:9/?dd-api-key=KEY0123456789");
        cfg.api_key = None;
        let err = Sender::new(cfg, Arc::new(Counters::default()))
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("api_key") && !err.contains("KEY0123"), "{err}");
    }

    #[test]
    fn the_url_password_is_masked_in_the_url_and_in_messages() {
        let s = Sender::new(
            test_config("http://user:SECRET%2FPASS@127.0.0.1:9"),
            Arc::new(Counters::default()),
        )
        .expect("a URL with userinfo works");
        assert_eq!(s.url(), "http://user:********@127.0.0.1:9/api/v2/logs");
        let msg = s.scrub("got SECRET/PASS and SECRET%2FPASS and abcdef0123456789 at http://u:x@h");
        assert_eq!(
            msg,
            "got ******** and ******** and ******** at http://u:********@h"
        );
    }

    fn test_config(base_url: &str) -> SenderConfig {
        SenderConfig {
            base_url: base_url.into(),
            api_key: Secret::new("abcdef0123456789"),
            encoding: Encoding::Identity,
            http_timeout: Duration::from_secs(1),
            backoff: Backoff {
                base: Duration::from_secs(1),
                factor: 2.0,
                max: Duration::from_secs(2),
            },
            version: "0.1.0".into(),
        }
    }

    #[test]
    fn the_api_key_never_shows_in_the_sender_debug_or_errors() {
        let cfg = SenderConfig {
            base_url: "not a url".into(),
            api_key: Secret::new("abcdef0123456789"),
            encoding: Encoding::Identity,
            http_timeout: Duration::from_secs(1),
            backoff: Backoff {
                base: Duration::from_secs(1),
                factor: 2.0,
                max: Duration::from_secs(2),
            },
            version: "0.1.0".into(),
        };
        assert!(!format!("{cfg:?}").contains("abcdef"));
        let err = Sender::new(cfg, Arc::new(Counters::default()))
            .err()
            .unwrap()
            .to_string();
        assert!(!err.contains("abcdef"), "{err}");
    }
}
