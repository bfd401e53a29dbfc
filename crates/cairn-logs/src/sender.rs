//! The HTTP sender: `POST <base>/api/v2/logs` with the intake's headers, and the response
//! policy of SPEC §4. A payload is retried until it is delivered or the policy drops it; the
//! caller acknowledges its buffer range only then.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_config::Secret;
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
/// The longest wait a `Retry-After` may ask for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
pub enum SenderError {
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
    url: String,
    headers: HeaderMap,
    cfg: SenderConfig,
    counters: Arc<Counters>,
}

impl Sender {
    pub fn new(cfg: SenderConfig, counters: Arc<Counters>) -> Result<Sender, SenderError> {
        let base = cfg.base_url.trim_end_matches('/');
        let url = format!("{base}/api/v2/logs");
        let parsed = reqwest::Url::parse(&url).map_err(|e| SenderError::Url {
            url: url.clone(),
            message: e.to_string(),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(SenderError::Url {
                url,
                message: "expected http:// or https://".into(),
            });
        }
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
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| SenderError::Client(e.to_string()))?;
        Ok(Sender {
            last_warn_ms: AtomicU64::new(0),
            created: Instant::now(),
            client,
            url,
            headers,
            cfg,
            counters,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
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
        self.counters.add_dropped(reason, p.entries() as u64);
        self.counters.add_check_dropped(&p.per_check);
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
                .post(&self.url)
                .headers(self.headers.clone())
                .body(body.clone());
            let result = tokio::select! {
                r = req.send() => r,
                _ = shutdown.changed() => return One::Abandoned,
            };
            let wait = match result {
                Ok(resp) => {
                    let status = resp.status();
                    match verdict(status) {
                        Verdict::Delivered => {
                            self.record_delivery(p, body.len(), first_failure);
                            return One::Done;
                        }
                        Verdict::Drop => {
                            let excerpt = body_excerpt(resp).await;
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
                            let retry_after = (status == StatusCode::TOO_MANY_REQUESTS)
                                .then(|| retry_after(resp.headers()))
                                .flatten();
                            let wait = retry_after
                                .unwrap_or_else(|| self.cfg.backoff.jittered(attempt, &mut rng));
                            self.counters
                                .set_error(Some(format!("intake answered {status}")));
                            if self.warn_due() {
                                tracing::warn!(
                                    status = status.as_u16(),
                                    attempt,
                                    retry_in_secs = wait.as_secs_f64(),
                                    "intake unavailable; payloads kept for retry"
                                );
                            } else {
                                tracing::debug!(
                                    status = status.as_u16(),
                                    attempt,
                                    retry_in_secs = wait.as_secs_f64(),
                                    "intake unavailable; payload kept for retry"
                                );
                            }
                            wait
                        }
                    }
                }
                Err(e) => {
                    let wait = self.cfg.backoff.jittered(attempt, &mut rng);
                    // reqwest's error text names the URL, never the headers: no key in it.
                    let what = if e.is_timeout() {
                        "timeout"
                    } else if e.is_connect() {
                        "connect"
                    } else {
                        "request"
                    };
                    self.counters
                        .set_error(Some(format!("sending to the intake failed ({what}): {e}")));
                    if self.warn_due() {
                        tracing::warn!(kind = what, error = %e, attempt, retry_in_secs = wait.as_secs_f64(), "sending to the intake failed; payloads kept for retry");
                    } else {
                        tracing::debug!(kind = what, error = %e, attempt, retry_in_secs = wait.as_secs_f64(), "sending to the intake failed; payload kept for retry");
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

/// `Retry-After` as delta-seconds. (An HTTP date is rare from intakes; it falls back to the
/// backoff.)
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let secs: f64 = v.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs).min(MAX_RETRY_AFTER))
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

    #[test]
    fn retry_after_reads_seconds_and_ignores_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), None);
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
