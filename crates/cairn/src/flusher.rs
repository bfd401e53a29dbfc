//! Every flush interval (15 s, as the Datadog Agent's check metrics): take what every check
//! committed, add the agent's own `datadog.agent.up`, encode it (`cairn-metrics::wire`) and
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
        self.last = Instant::now();
        let mut f = cairn_checks::flush_metrics();
        f.service_checks.push(ServiceCheck {
            check: "datadog.agent.up".into(),
            host_name: self.hostname.clone(),
            timestamp: cairn_checks::metrics::now_secs() as i64,
            status: 0,
            message: String::new(),
            tags: Vec::new(),
        });
        let Some(fwd) = &self.forwarder else {
            self.not_shipped += (f.series.len() + f.service_checks.len() + f.events.len()) as u64;
            return;
        };
        let compression = Compression::Zstd { level: 1 };
        if !f.series.is_empty() {
            match wire::series_payloads(&f.series, compression, wire::SERIES_LIMITS) {
                Ok(p) => {
                    for pl in p.payloads {
                        fwd.enqueue(Endpoint::Series, Encoding::Zstd, pl.items as u64, pl.body);
                    }
                    if p.dropped > 0 {
                        self.series_too_big += p.dropped as u64;
                        tracing::error!(
                            series = p.dropped,
                            "series too large for any payload were dropped"
                        );
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, series = f.series.len(), "encoding series failed; they are dropped")
                }
            }
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
