//! What a check instance submitted besides logs, between two flushes: its metric samples
//! aggregated by a [`CheckSampler`] (committed once per run), its service checks and events.
//!
//! The host functions add to it with the GIL held, so the lock is only ever held for a few
//! field updates; the flusher (no GIL) swaps the pending lists out, so it never keeps a check
//! waiting for long.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use cairn_metrics::wire::{self, Compression, Payload, ServiceCheck, WireError};
use cairn_metrics::{
    AggregatorConfig, CheckSampler, MetricKind, Sample, SampleError, Serie, Unsupported,
};
use serde::Serialize;

/// Different metric names refused for a non-finite value that are each warned about once;
/// past this a check's further offenders are counted only.
const MAX_WARNED_NAMES: usize = 64;

/// Tags (the sample's and the instance's) a borrowed sample passes on the stack.
const INLINE_TAGS: usize = 32;

/// Counters of one check instance, since the agent started.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct MetricCounters {
    /// Samples accepted by the sampler.
    pub metric_samples: u64,
    /// Samples refused: NaN or infinite values.
    pub metric_samples_rejected: u64,
    /// Series the flushes produced.
    pub series_flushed: u64,
    pub service_checks: u64,
    pub events: u64,
    /// `submit_histogram_bucket` calls, accepted and dropped (not shipped yet).
    pub histogram_buckets_dropped: u64,
    /// `submit_event_platform_event` calls, accepted and dropped.
    pub event_platform_events_dropped: u64,
}

/// A check with at least this many series pending has them encoded straight from its sampler
/// at the flush (no owned [`Serie`] each, whose ~400 bytes per series the allocator would keep
/// resident); fewer are handed out as series, so that the flusher packs many small checks into
/// shared payloads rather than one request each.
const ENCODE_IN_PLACE_MIN_SERIES: usize = 1_000;

/// What one flush took from a check.
#[derive(Debug, Default)]
pub struct Flushed {
    pub series: Vec<Serie>,
    /// Series already encoded into `/api/v2/series` payloads (zstd 1, the Agent's limits).
    pub series_payloads: Vec<Payload>,
    /// Series of `series_payloads` too large for any payload (dropped).
    pub series_dropped: usize,
    pub service_checks: Vec<ServiceCheck>,
    /// As the check submitted them (the Agent's event dict, as JSON).
    pub events: Vec<serde_json::Value>,
}

impl Flushed {
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
            && self.series_payloads.is_empty()
            && self.service_checks.is_empty()
            && self.events.is_empty()
    }

    pub fn append(&mut self, other: Flushed) {
        self.series.extend(other.series);
        self.series_payloads.extend(other.series_payloads);
        self.series_dropped += other.series_dropped;
        self.service_checks.extend(other.service_checks);
        self.events.extend(other.events);
    }
}

pub struct CheckMetrics {
    check_id: String,
    /// The instance's `tags`, added to every metric, service check and event, as the Agent's
    /// sender adds a check's custom tags.
    instance_tags: Vec<String>,
    scratch: Vec<String>,
    sampler: CheckSampler,
    service_checks: Vec<ServiceCheck>,
    events: Vec<serde_json::Value>,
    counters: MetricCounters,
    warned: HashSet<String>,
}

static AGGREGATOR_CONFIG: OnceLock<Arc<AggregatorConfig>> = OnceLock::new();

/// Sets how histograms aggregate for every check loaded after (once, at start).
pub fn set_aggregator_config(cfg: AggregatorConfig) {
    let _ = AGGREGATOR_CONFIG.set(Arc::new(cfg));
}

fn aggregator_config() -> Arc<AggregatorConfig> {
    AGGREGATOR_CONFIG
        .get_or_init(|| Arc::new(AggregatorConfig::default()))
        .clone()
}

/// Seconds since the epoch, as the sampler takes them.
pub fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A sample's timestamp, from the kernel's coarse clock (the time of the last tick, a few
/// milliseconds old; no clock read): the clock is read once per sample, and a full read is a
/// tenth of a native `gauge` call's cost, while metrics are shipped at second resolution and
/// rates are taken over check runs seconds apart.
fn sample_secs() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec for the call to fill.
    if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut t) } != 0 {
        return now_secs();
    }
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

impl CheckMetrics {
    pub fn new(check_id: &str, instance_tags: Vec<String>) -> Self {
        CheckMetrics {
            check_id: check_id.to_string(),
            instance_tags,
            scratch: Vec::new(),
            sampler: CheckSampler::new(aggregator_config()),
            service_checks: Vec::new(),
            events: Vec::new(),
            counters: MetricCounters::default(),
            warned: HashSet::new(),
        }
    }

    /// One sample. A NaN or infinite value is refused with a warning naming the metric (once
    /// per metric name), counted, and nothing else changes.
    pub fn add(
        &mut self,
        name: &str,
        kind: MetricKind,
        value: f64,
        tags: &[String],
        host: &str,
        flush_first_value: bool,
    ) {
        let tags = if self.instance_tags.is_empty() {
            tags
        } else {
            self.scratch.clear();
            self.scratch.extend_from_slice(tags);
            self.scratch.extend_from_slice(&self.instance_tags);
            &self.scratch
        };
        let sample = Sample {
            name,
            kind,
            value,
            tags,
            host,
            device: None,
            flush_first_value,
        };
        match self.sampler.add(&sample, sample_secs()) {
            Ok(()) => self.counters.metric_samples += 1,
            Err(SampleError::NotFinite { metric, value }) => self.refused(metric, value),
        }
    }

    /// [`add`](Self::add) with borrowed tags (the native `AgentCheck.gauge` & co. borrow them
    /// from the Python strings): the sampler reads them where they are, so a repeat sample
    /// copies and allocates nothing (up to [`INLINE_TAGS`] tags with the instance's).
    #[allow(clippy::too_many_arguments)]
    pub fn add_borrowed(
        &mut self,
        name: &str,
        kind: MetricKind,
        value: f64,
        tags: &[&str],
        device: Option<&str>,
        host: &str,
        flush_first_value: bool,
    ) {
        // Filled only when the instance has tags: without, the sample's are passed as they are.
        let mut inline: [&str; INLINE_TAGS];
        let spill: Vec<&str>;
        let n = tags.len() + self.instance_tags.len();
        let all: &[&str] = if self.instance_tags.is_empty() {
            tags
        } else if n <= INLINE_TAGS {
            inline = [""; INLINE_TAGS];
            inline[..tags.len()].copy_from_slice(tags);
            for (slot, t) in inline[tags.len()..n].iter_mut().zip(&self.instance_tags) {
                *slot = t;
            }
            &inline[..n]
        } else {
            spill = tags
                .iter()
                .copied()
                .chain(self.instance_tags.iter().map(String::as_str))
                .collect();
            &spill
        };
        let sample = Sample {
            name,
            kind,
            value,
            tags: all,
            host,
            device,
            flush_first_value,
        };
        match self.sampler.add(&sample, sample_secs()) {
            Ok(()) => self.counters.metric_samples += 1,
            Err(SampleError::NotFinite { metric, value }) => self.refused(metric, value),
        }
    }

    fn refused(&mut self, metric: String, value: f64) {
        self.counters.metric_samples_rejected += 1;
        if self.warned.len() < MAX_WARNED_NAMES && self.warned.insert(metric.clone()) {
            tracing::warn!(check_id = %self.check_id, metric = %metric, value = %value, "metric sample refused: not a finite number (further ones of this metric are counted only)");
        }
    }

    pub fn service_check(&mut self, mut sc: ServiceCheck) {
        if !self.instance_tags.is_empty() {
            sc.tags.extend_from_slice(&self.instance_tags);
            sc.tags.sort();
            sc.tags.dedup();
        }
        self.counters.service_checks += 1;
        self.service_checks.push(sc);
    }

    pub fn event(&mut self, mut event: serde_json::Value) {
        if !self.instance_tags.is_empty() {
            if let Some(obj) = event.as_object_mut() {
                let tags = obj
                    .entry("tags")
                    .or_insert_with(|| serde_json::Value::Array(Vec::new()));
                if !tags.is_array() {
                    *tags = serde_json::Value::Array(Vec::new());
                }
                if let Some(list) = tags.as_array_mut() {
                    list.extend(
                        self.instance_tags
                            .iter()
                            .cloned()
                            .map(serde_json::Value::from),
                    );
                }
            }
        }
        self.counters.events += 1;
        self.events.push(event);
    }

    /// Counts a submission Cairn does not ship yet; warns once per check.
    pub fn unsupported(&mut self, what: Unsupported) {
        match what {
            Unsupported::HistogramBucket => self.counters.histogram_buckets_dropped += 1,
            Unsupported::EventPlatformEvent => self.counters.event_platform_events_dropped += 1,
        }
        if self.sampler.drop_unsupported(what) {
            let what = match what {
                Unsupported::HistogramBucket => "histogram buckets (submit_histogram_bucket)",
                Unsupported::EventPlatformEvent => {
                    "event platform events (submit_event_platform_event)"
                }
            };
            tracing::warn!(check_id = %self.check_id, "this check submits {what}, which Cairn does not ship yet: they are counted and dropped");
        }
    }

    /// The end of one run: the samples of the run become series.
    pub fn commit(&mut self, ts: f64) {
        self.sampler.commit(ts);
    }

    /// Everything committed since the last flush.
    pub fn flush(&mut self) -> Flushed {
        let series = self.sampler.flush();
        self.counters.series_flushed += series.len() as u64;
        Flushed {
            series,
            service_checks: std::mem::take(&mut self.service_checks),
            events: std::mem::take(&mut self.events),
            ..Flushed::default()
        }
    }

    /// [`flush`](Self::flush) for shipping: a check with many series pending gets them
    /// encoded here, from its sampler's strings. That runs under the check's lock (a check
    /// submitting meanwhile waits for it, as for a commit, whose cost it is of the same order).
    pub fn flush_encoded(&mut self) -> Result<Flushed, WireError> {
        if self.sampler.pending_series() < ENCODE_IN_PLACE_MIN_SERIES {
            return Ok(self.flush());
        }
        self.counters.series_flushed += self.sampler.pending_series() as u64;
        let p = self
            .sampler
            .flush_payloads(Compression::Zstd { level: 1 }, wire::SERIES_LIMITS)?;
        Ok(Flushed {
            series: Vec::new(),
            series_payloads: p.payloads,
            series_dropped: p.dropped,
            service_checks: std::mem::take(&mut self.service_checks),
            events: std::mem::take(&mut self.events),
        })
    }

    pub fn counters(&self) -> MetricCounters {
        self.counters.clone()
    }

    /// Live contexts of the sampler.
    pub fn contexts(&self) -> usize {
        self.sampler.contexts()
    }
}

/// The check's event dict (the Agent's names: `msg_title`, `msg_text`, `timestamp`, ...) as
/// the body of `POST /api/v1/events` (Datadog's public names: `title`, `text`,
/// `date_happened`, ...). Keys it does not know are left out; `host` defaults to the agent's.
pub fn api_event(event: &serde_json::Value, default_host: &str) -> serde_json::Value {
    use serde_json::{json, Map, Value};
    let get = |k: &str| event.get(k).filter(|v| !v.is_null());
    let text = |k: &str| {
        get(k).map(|v| match v {
            Value::String(s) => Value::String(s.clone()),
            other => Value::String(other.to_string()),
        })
    };
    let mut out = Map::new();
    out.insert(
        "title".into(),
        text("msg_title").unwrap_or_else(|| json!("")),
    );
    out.insert("text".into(), text("msg_text").unwrap_or_else(|| json!("")));
    if let Some(ts) = get("timestamp").and_then(Value::as_f64) {
        out.insert("date_happened".into(), json!(ts as i64));
    }
    for (from, to) in [
        ("priority", "priority"),
        ("alert_type", "alert_type"),
        ("aggregation_key", "aggregation_key"),
        ("source_type_name", "source_type_name"),
        ("event_type", "event_type"),
    ] {
        if let Some(v) = text(from) {
            out.insert(to.into(), v);
        }
    }
    let host = text("host")
        .filter(|h| h.as_str().is_some_and(|s| !s.is_empty()))
        .unwrap_or_else(|| json!(default_host));
    out.insert("host".into(), host);
    let tags: Vec<Value> = match get("tags") {
        Some(Value::Array(a)) => a
            .iter()
            .filter(|t| !t.is_null())
            .map(|t| match t {
                Value::String(s) => Value::String(s.clone()),
                other => Value::String(other.to_string()),
            })
            .collect(),
        _ => Vec::new(),
    };
    out.insert("tags".into(), Value::Array(tags));
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_agent_event_becomes_the_public_api_body() {
        let e = json!({"msg_title": "deploy", "msg_text": "v2 is out", "timestamp": 1700000000.5,
            "priority": "low", "alert_type": "info", "tags": ["env:prod", 3, null],
            "aggregation_key": "k", "source_type_name": "custom", "host": "", "unknown": 1});
        assert_eq!(
            api_event(&e, "h1"),
            json!({"title": "deploy", "text": "v2 is out", "date_happened": 1700000000,
                "priority": "low", "alert_type": "info", "aggregation_key": "k",
                "source_type_name": "custom", "host": "h1", "tags": ["env:prod", "3"]})
        );
    }

    #[test]
    fn a_non_finite_sample_is_counted_and_the_rest_kept() {
        let mut m = CheckMetrics::new("c:1", Vec::new());
        m.add("a", MetricKind::Gauge, f64::NAN, &[], "h", false);
        m.add("a", MetricKind::Gauge, f64::INFINITY, &[], "h", false);
        m.add("b", MetricKind::Gauge, 2.0, &[], "h", false);
        m.commit(now_secs());
        let f = m.flush();
        assert_eq!(f.series.len(), 1);
        assert_eq!(f.series[0].name, "b");
        let c = m.counters();
        assert_eq!((c.metric_samples, c.metric_samples_rejected), (1, 2));
        assert_eq!(c.series_flushed, 1);
    }

    #[test]
    fn a_check_with_many_series_ships_them_encoded_as_the_flush_would() {
        let fill = |m: &mut CheckMetrics, n: usize| {
            for i in 0..n {
                let tag = [format!("i:{i}")];
                m.add("g", MetricKind::Gauge, i as f64, &tag, "h", false);
            }
            m.commit(1_800_000_000.0);
        };
        let mut few = CheckMetrics::new("c:1", vec!["env:x".into()]);
        fill(&mut few, 10);
        let f = few.flush_encoded().unwrap();
        assert_eq!((f.series.len(), f.series_payloads.len()), (10, 0));

        let n = ENCODE_IN_PLACE_MIN_SERIES + 5;
        let (mut direct, mut owned) = (
            CheckMetrics::new("c:1", vec!["env:x".into()]),
            CheckMetrics::new("c:1", vec!["env:x".into()]),
        );
        fill(&mut direct, n);
        fill(&mut owned, n);
        let f = direct.flush_encoded().unwrap();
        assert!(f.series.is_empty());
        let expect = wire::series_payloads(
            &owned.flush().series,
            Compression::Zstd { level: 1 },
            wire::SERIES_LIMITS,
        )
        .unwrap();
        assert_eq!(f.series_payloads, expect.payloads);
        assert_eq!(direct.counters().series_flushed, n as u64);
    }
}
