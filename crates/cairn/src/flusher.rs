//! Every flush interval (15 s, as the Datadog Agent's check metrics): take what every check
//! committed, add the agent's own `datadog.agent.up` service check and `datadog.agent.running`
//! gauge, encode it (`cairn-metrics::wire`) and
//! hand it to the forwarder, which makes it durable and delivers it.

use std::time::{Duration, Instant};

use anyhow::Context;
use cairn_config::{AgentConfig, Secret};
use cairn_forwarder::{Encoding, Endpoint, Forwarder, ForwarderConfig, ForwarderSnapshot};
use cairn_logs::sender::Backoff;
use cairn_metrics::wire::{self, Compression, ServiceCheck};
use serde_json::{json, Value};

/// The Datadog Agent's flush interval for check metrics.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(15);

/// Where metrics go when nothing else says.
pub enum Destination {
    /// The embedded local intake: its URL and token.
    Local { url: String, token: Option<String> },
    /// `dd_url`, with the api_key.
    Datadog,
    /// Neither a local intake nor an api_key or explicit `dd_url`: nothing to ship to.
    Nowhere,
}

pub struct Flusher {
    forwarder: Option<Forwarder>,
    hostname: String,
    interval: Duration,
    last: Instant,
    /// Series too large for any payload, and items with no destination.
    series_too_big: u64,
    not_shipped: u64,
}

impl Flusher {
    pub fn start(
        agent: &AgentConfig,
        destination: Destination,
        interval: Duration,
    ) -> anyhow::Result<Flusher> {
        let (base_url, api_key) = match destination {
            Destination::Local { url, token } => (Some(url), token.and_then(Secret::new)),
            Destination::Datadog => (Some(agent.dd_url.clone()), agent.api_key.clone()),
            Destination::Nowhere => {
                tracing::warn!("no api_key, no dd_url and no local intake: metrics, service checks and events are aggregated but not shipped (counted as not shipped)");
                (None, None)
            }
        };
        let forwarder = match base_url {
            Some(base_url) => Some(
                Forwarder::start(ForwarderConfig {
                    base_url,
                    api_key,
                    spool_dir: agent.run_path.join("forwarder"),
                    max_spool_bytes: agent.forwarder_storage_max_size_in_bytes,
                    http_timeout: Duration::from_secs_f64(agent.logs.http_timeout_secs),
                    backoff: Backoff {
                        base: Duration::from_secs_f64(agent.logs.sender_backoff_base_secs),
                        factor: agent.logs.sender_backoff_factor,
                        max: Duration::from_secs_f64(agent.logs.sender_backoff_max_secs),
                    },
                    version: cairn_checks::VERSION.to_string(),
                })
                .context("starting the metrics forwarder")?,
            ),
            None => None,
        };
        Ok(Flusher {
            forwarder,
            hostname: agent.hostname.clone(),
            interval,
            last: Instant::now(),
            series_too_big: 0,
            not_shipped: 0,
        })
    }

    /// Flushes when the interval has passed.
    pub fn tick(&mut self) {
        if self.last.elapsed() >= self.interval {
            self.flush();
        }
    }

    pub fn flush(&mut self) {
        self.ship();
        release_freed_memory();
    }

    fn ship(&mut self) {
        self.last = Instant::now();
        let mut f = cairn_checks::flush_metrics_encoded();
        f.service_checks.push(ServiceCheck {
            check: "datadog.agent.up".into(),
            host_name: self.hostname.clone(),
            timestamp: cairn_checks::metrics::now_secs() as i64,
            status: 0,
            message: String::new(),
            tags: Vec::new(),
        });
        // As the Datadog Agent does at every flush: 1 per running agent, tagged with its version,
        // so that a host with no check metrics still shows as reporting.
        f.series.push(cairn_metrics::Serie {
            name: "datadog.agent.running".into(),
            host: self.hostname.clone(),
            tags: vec![concat!("version:", env!("CARGO_PKG_VERSION")).into()],
            kind: cairn_metrics::SeriesKind::Gauge,
            interval: 0,
            points: vec![(cairn_checks::metrics::now_secs() as i64, 1.0)],
            source_type_name: cairn_metrics::CHECKS_SOURCE_TYPE_NAME.into(),
        });
        let Some(fwd) = &self.forwarder else {
            let encoded: usize = f.series_payloads.iter().map(|p| p.items).sum();
            self.not_shipped +=
                (f.series.len() + encoded + f.service_checks.len() + f.events.len()) as u64;
            return;
        };
        let compression = Compression::Zstd { level: 1 };
        // Leftovers of unloaded checks and checks with few series come as series: packed
        // together here. Checks with many were encoded by their own flush.
        if !f.series.is_empty() {
            match wire::series_payloads(&f.series, compression, wire::SERIES_LIMITS) {
                Ok(p) => {
                    f.series_payloads.extend(p.payloads);
                    f.series_dropped += p.dropped;
                }
                Err(e) => {
                    tracing::error!(error = %e, series = f.series.len(), "encoding series failed; they are dropped")
                }
            }
        }
        for pl in std::mem::take(&mut f.series_payloads) {
            fwd.enqueue(Endpoint::Series, Encoding::Zstd, pl.items as u64, pl.body);
        }
        if f.series_dropped > 0 {
            self.series_too_big += f.series_dropped as u64;
            tracing::error!(
                series = f.series_dropped,
                "series too large for any payload were dropped"
            );
        }
        match wire::service_check_payloads(
            &f.service_checks,
            compression,
            wire::SERVICE_CHECK_LIMITS,
        ) {
            Ok(p) => {
                for pl in p.payloads {
                    fwd.enqueue(Endpoint::CheckRun, Encoding::Zstd, pl.items as u64, pl.body);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "encoding service checks failed; they are dropped")
            }
        }
        for e in &f.events {
            let body = cairn_checks::metrics::api_event(e, &self.hostname);
            match serde_json::to_vec(&body) {
                Ok(b) => fwd.enqueue(Endpoint::Events, Encoding::Identity, 1, b),
                Err(e) => tracing::error!(error = %e, "encoding an event failed; it is dropped"),
            }
        }
    }

    /// For the counters file: the forwarder's counters and every check's metric counters.
    pub fn snapshot(&self) -> Value {
        let forwarder = self.forwarder.as_ref().map(Forwarder::snapshot);
        self.snapshot_with(forwarder)
    }

    fn snapshot_with(&self, forwarder: Option<ForwarderSnapshot>) -> Value {
        let mut checks = serde_json::Map::new();
        for ctx in cairn_checks::context::all() {
            let c = ctx.metrics.lock().counters();
            checks.insert(ctx.check_id.clone(), json!(c));
        }
        json!({
            "forwarder": forwarder,
            "series_too_big": self.series_too_big,
            "not_shipped": self.not_shipped,
            "checks": checks,
        })
    }

    /// The last flush (what the checks committed until now), then delivery for at most
    /// `grace`; the rest stays in the spool for the next start.
    pub fn shutdown(mut self, grace: Duration) -> Value {
        self.flush();
        let forwarder = self.forwarder.take().map(|f| f.shutdown(grace));
        self.snapshot_with(forwarder)
    }
}

/// Hands the pages freed by this flush back to the kernel. A flush ends the cycle in which the
/// checks' runs held their transient memory (a run's histogram samples, the pending series,
/// the payload buffers: together several times what the live contexts hold between runs,
/// see BENCHMARKS.md issue 9); glibc returns only the top of its heap by itself, so without
/// this the agent's RSS stays at that peak for good. Once per flush interval (15 s) the
/// cost (a walk of the free lists and an madvise per free run of pages) is negligible.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: glibc's malloc_trim has no preconditions and is thread-safe (it locks each
    // arena in turn).
    unsafe {
        libc::malloc_trim(0);
    }
}
