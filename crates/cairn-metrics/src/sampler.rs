//! The check sampler: one per check instance, the Agent's `pkg/aggregator/check_sampler.go`.
//!
//! - [`CheckSampler::add`] routes a sample to its context (name + host + sorted de-duplicated
//!   tags, `device_name` as a `device:` tag). The first sample of a context fixes its type,
//!   as in the Agent (the context key has no type in it).
//! - [`CheckSampler::commit`] ends a check run: every context's metric is flushed into series
//!   (held until the next [`CheckSampler::flush`]), then contexts not sampled for
//!   `expiry_commits` (2) commits expire. Stateless metrics go with their context; the state
//!   of a rate, monotonic_count or historate is kept `stateful_timeout_secs` (25 h) longer,
//!   and a sample in that time revives it with its state (`check_metrics.go`).
//! - [`CheckSampler::flush`] hands out the series of every commit since the last flush (one
//!   series per context, suffix and commit, as the Agent does).
//!
//! Keeping state across reloads of an unchanged instance is the caller's part: keep the
//! sampler of a check id that is still configured (the Agent re-uses the sampler of an id
//! that registers again).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use crate::config::AggregatorConfig;
use crate::metric::Metric;
use crate::CHECKS_SOURCE_TYPE_NAME;

/// A submission type, as in `aggregator.GAUGE..HISTORATE` (SPEC §3), flushed as:
///
/// | kind | flushed as | value | timestamp |
/// |---|---|---|---|
/// | `Gauge` | GAUGE | last value of the run | commit |
/// | `Count` | COUNT | sum of the run | commit |
/// | `Counter` (`increment`/`decrement`) | RATE | sum of the run (the check sampler's counter interval is 1) | commit |
/// | `Rate` | GAUGE | `(v2-v1)/(t2-t1)` of the last two samples, within or across runs; the first sample gives nothing; negative dropped | last sample |
/// | `MonotonicCount` | COUNT | sum of non-negative deltas between consecutive samples, within and across runs; a decrease is a reset (skipped); the first value counts only with `flush_first_value` | commit |
/// | `Histogram` | `.max .median .avg` GAUGE, `.count` RATE, `.95percentile` GAUGE (configurable) | over the run's samples | commit |
/// | `Historate` | as `Histogram` | over the rates between consecutive samples | commit |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Gauge,
    Rate,
    Count,
    MonotonicCount,
    Counter,
    Histogram,
    Historate,
}

impl MetricKind {
    /// From the `aggregator` module's constants (`GAUGE=0 .. HISTORATE=6`).
    pub fn from_aggregator_code(code: i64) -> Option<MetricKind> {
        Some(match code {
            0 => MetricKind::Gauge,
            1 => MetricKind::Rate,
            2 => MetricKind::Count,
            3 => MetricKind::MonotonicCount,
            4 => MetricKind::Counter,
            5 => MetricKind::Histogram,
            6 => MetricKind::Historate,
            _ => return None,
        })
    }
}

/// The type of a flushed series (`MetricPayload.MetricType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesKind {
    Count,
    Rate,
    Gauge,
}

/// One submission from a check.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    pub name: &'a str,
    pub kind: MetricKind,
    pub value: f64,
    pub tags: &'a [String],
    /// The resolved hostname (the caller applies the agent's default).
    pub host: &'a str,
    /// `device_name=`: becomes the tag `device:<name>`.
    pub device: Option<&'a str>,
    /// `monotonic_count(..., flush_first_value=True)`.
    pub flush_first_value: bool,
}

impl<'a> Sample<'a> {
    pub fn new(name: &'a str, kind: MetricKind, value: f64) -> Self {
        Sample {
            name,
            kind,
            value,
            tags: &[],
            host: "",
            device: None,
            flush_first_value: false,
        }
    }
}

/// A sample the sampler refused; nothing else of the run is affected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SampleError {
    #[error("metric `{metric}`: value {value} is not a finite number; sample dropped")]
    NotFinite { metric: String, value: f64 },
}

/// Submissions Cairn accepts but cannot ship yet; counted, one warning per check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsupported {
    /// `submit_histogram_bucket` (the Agent turns buckets into sketches).
    HistogramBucket,
    /// `submit_event_platform_event`.
    EventPlatformEvent,
}

/// One flushed series: a context, a suffix and the points of one commit.
#[derive(Debug, Clone, PartialEq)]
pub struct Serie {
    pub name: String,
    pub host: String,
    /// Sorted, de-duplicated; a `device:` tag is moved to a resource by the wire encoder.
    pub tags: Vec<String>,
    pub kind: SeriesKind,
    /// Seconds; 0 for check series, as the Agent sends them (only DogStatsD's time sampler
    /// sets an interval).
    pub interval: i64,
    /// (seconds since the epoch, value).
    pub points: Vec<(i64, f64)>,
    pub source_type_name: String,
}

struct Context {
    name: Box<str>,
    host: Box<str>,
    tags: Box<[Box<str>]>,
    metric: Metric,
    /// The commit count when last sampled.
    last_seen: u64,
    /// Set once the context expired while its metric keeps state: removed after this time.
    retain_until: Option<f64>,
}

impl Context {
    fn matches(&self, name: &str, host: &str, tags: &[&str]) -> bool {
        &*self.name == name
            && &*self.host == host
            && self.tags.len() == tags.len()
            && self.tags.iter().zip(tags).all(|(a, b)| &**a == *b)
    }
}

/// Keys are already hashes.
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 keys")
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Tags of one sample without allocating when there are few of them.
const INLINE_TAGS: usize = 32;

/// Aggregates the metrics of one check instance. See the module docs.
pub struct CheckSampler {
    cfg: Arc<AggregatorConfig>,
    contexts: HashMap<u64, Context, BuildHasherDefault<IdentityHasher>>,
    live: usize,
    commits: u64,
    pending: Vec<Serie>,
    unsupported: [u64; 2],
}

impl CheckSampler {
    pub fn new(cfg: Arc<AggregatorConfig>) -> Self {
        CheckSampler {
            cfg,
            contexts: HashMap::default(),
            live: 0,
            commits: 0,
            pending: Vec::new(),
            unsupported: [0; 2],
        }
    }

    /// Adds one sample submitted at `ts` (seconds). NaN and infinities are refused with an
    /// error naming the metric; the sampler is unchanged then.
    pub fn add(&mut self, s: &Sample<'_>, ts: f64) -> Result<(), SampleError> {
        if !s.value.is_finite() {
            return Err(SampleError::NotFinite {
                metric: s.name.to_string(),
                value: s.value,
            });
        }
        let device_tag;
        let mut inline: [&str; INLINE_TAGS] = [""; INLINE_TAGS];
        let mut heap: Vec<&str>;
        let n = s.tags.len() + usize::from(s.device.is_some());
        let tags: &mut [&str] = if n <= INLINE_TAGS {
            &mut inline[..n]
        } else {
            heap = vec![""; n];
            &mut heap[..]
        };
        for (slot, t) in tags.iter_mut().zip(s.tags) {
            *slot = t;
        }
        if let Some(d) = s.device {
            device_tag = format!("device:{d}");
            tags[n - 1] = &device_tag;
        }
        tags.sort_unstable();
        let len = dedup_sorted(tags);
        let tags = &tags[..len];

        let mut key = context_hash(s.name, s.host, tags);
        let commits = self.commits;
        loop {
            match self.contexts.get_mut(&key) {
                Some(c) if c.matches(s.name, s.host, tags) => {
                    c.last_seen = commits;
                    if c.retain_until.take().is_some() {
                        self.live += 1;
                    }
                    c.metric.add(s.value, ts, s.flush_first_value);
                    return Ok(());
                }
                // A 64-bit collision between two different contexts: probe the next key.
                Some(_) => key = key.wrapping_add(0x9e37_79b9_7f4a_7c15),
                None => break,
            }
        }
        let mut metric = Metric::new(s.kind);
        metric.add(s.value, ts, s.flush_first_value);
        self.contexts.insert(
            key,
            Context {
                name: s.name.into(),
                host: s.host.into(),
                tags: tags.iter().map(|t| Box::<str>::from(*t)).collect(),
                metric,
                last_seen: commits,
                retain_until: None,
            },
        );
        self.live += 1;
        Ok(())
    }

    /// Ends one check run at `ts` (seconds): flushes every metric into pending series, then
    /// expires contexts (see the module docs).
    pub fn commit(&mut self, ts: f64) {
        let cfg = &*self.cfg;
        let pending = &mut self.pending;
        let ts_secs = ts as i64;
        for c in self.contexts.values_mut() {
            let Context {
                name,
                host,
                tags,
                metric,
                ..
            } = c;
            metric.flush(ts, cfg, &mut |suffix, kind, pts, value| {
                let pts = if pts == ts { ts_secs } else { pts as i64 };
                pending.push(Serie {
                    name: format!("{name}{suffix}"),
                    host: host.to_string(),
                    tags: tags.iter().map(|t| t.to_string()).collect(),
                    kind,
                    interval: 0,
                    points: vec![(pts, value)],
                    source_type_name: CHECKS_SOURCE_TYPE_NAME.to_string(),
                });
            });
        }
        let expiry = cfg.expiry_commits;
        let timeout = cfg.stateful_timeout_secs;
        let commits = self.commits;
        let mut expired = 0;
        self.contexts.retain(|_, c| match c.retain_until {
            Some(deadline) => deadline >= ts,
            None if c.last_seen + expiry <= commits => {
                expired += 1;
                if c.metric.is_stateful() {
                    c.retain_until = Some(ts + timeout);
                    true
                } else {
                    false
                }
            }
            None => true,
        });
        self.live -= expired;
        self.commits += 1;
    }

    /// The series of every commit since the last flush.
    pub fn flush(&mut self) -> Vec<Serie> {
        std::mem::take(&mut self.pending)
    }

    /// Live contexts (sampled within the last `expiry_commits` commits).
    pub fn contexts(&self) -> usize {
        self.live
    }

    /// Expired contexts whose rate / monotonic_count / historate state is still kept.
    pub fn retained_stateful(&self) -> usize {
        self.contexts.len() - self.live
    }

    /// Counts a submission that is accepted but not shipped. Returns true for the first one
    /// of its kind in this sampler's life: the caller logs one warning per check then.
    pub fn drop_unsupported(&mut self, what: Unsupported) -> bool {
        let n = &mut self.unsupported[what as usize];
        *n += 1;
        *n == 1
    }

    /// How many submissions of this kind were dropped.
    pub fn unsupported_count(&self, what: Unsupported) -> u64 {
        self.unsupported[what as usize]
    }
}

fn dedup_sorted(tags: &mut [&str]) -> usize {
    if tags.is_empty() {
        return 0;
    }
    let mut w = 1;
    for r in 1..tags.len() {
        if tags[r] != tags[w - 1] {
            tags[w] = tags[r];
            w += 1;
        }
    }
    w
}

/// FNV-1a over name, host and tags, each followed by a 0xff separator (never in UTF-8).
fn context_hash(name: &str, host: &str, tags: &[&str]) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: &[u8]| {
        for &x in b {
            h ^= u64::from(x);
            h = h.wrapping_mul(PRIME);
        }
        h ^= 0xff;
        h = h.wrapping_mul(PRIME);
    };
    eat(name.as_bytes());
    eat(host.as_bytes());
    for t in tags {
        eat(t.as_bytes());
    }
    h
}
