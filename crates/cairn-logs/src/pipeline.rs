//! The logs pipeline: durable buffer → batches → compression → HTTP intake, and its counters.
//!
//! Threads: check runners append to the [`Buffer`] (its [`RecordSink`]); the buffer's syncer
//! fsyncs and deletes delivered segments; one reader thread turns buffered records into
//! payloads; a small tokio runtime compresses (on blocking threads) and sends up to
//! [`MAX_IN_FLIGHT`] payloads at once. A payload's buffer range is acknowledged only after a
//! 2xx (or a drop by policy), so whatever is unacknowledged at a crash is sent again.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cairn_config::{AgentConfig, LogsConfig, Secret};
use tokio::sync::{watch, Semaphore};

use crate::batch::{Batch, BatchLimits};
use crate::buffer::record::KIND_LOG;
use crate::buffer::{Buffer, BufferOptions, ReadOutcome, Reader};
use crate::check_logs::LogCounters;
use crate::counters::{Counters, CountersSnapshot, LossReason};
use crate::encode::Encoding;
use crate::sender::{Backoff, Delivery, Sender, SenderConfig, SenderError};
use crate::sink::{RecordSink, SinkError};

/// Payloads being compressed or sent at once. Four keep a 2-core machine's link busy while
/// bounding memory to four payloads (plus their compressed copies).
pub const MAX_IN_FLIGHT: usize = 4;
/// How often the periodic counter line is logged.
const COUNTER_LOG_INTERVAL: Duration = Duration::from_secs(60);
/// How often the reader looks at the stop flag while idle.
const READER_TICK: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("logs buffer: {0}")]
    Buffer(#[from] SinkError),
    #[error(transparent)]
    Sender(#[from] SenderError),
    #[error("starting the logs pipeline threads: {0}")]
    Runtime(std::io::Error),
}

/// Everything the pipeline is built from.
#[derive(Clone)]
pub struct PipelineConfig {
    pub run_path: PathBuf,
    pub logs: LogsConfig,
    /// Base URL of the intake (`AgentConfig::logs_intake_url`, or the local intake's).
    pub base_url: String,
    pub api_key: Option<Secret>,
    pub version: String,
}

/// By hand so that `base_url`, which may hold a password, prints redacted.
impl std::fmt::Debug for PipelineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Destructured so that a new field cannot be forgotten here.
        let PipelineConfig {
            run_path,
            logs,
            base_url,
            api_key,
            version,
        } = self;
        f.debug_struct("PipelineConfig")
            .field("run_path", run_path)
            .field("logs", logs)
            .field("base_url", &cairn_config::redact_url(base_url))
            .field("api_key", api_key)
            .field("version", version)
            .finish()
    }
}

impl PipelineConfig {
    pub fn from_agent(agent: &AgentConfig, base_url: String, version: &str) -> Self {
        PipelineConfig {
            run_path: agent.run_path.clone(),
            logs: agent.logs.clone(),
            base_url,
            api_key: agent.api_key.clone(),
            version: version.to_string(),
        }
    }
}

fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or(Duration::from_secs(1))
}

pub struct Pipeline {
    buffer: Arc<Buffer>,
    counters: Arc<Counters>,
    runtime: Option<tokio::runtime::Runtime>,
    shutdown: watch::Sender<bool>,
    stop_reader: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
    in_flight: Arc<AtomicUsize>,
    permits: Arc<Semaphore>,
    /// Redacted ([`Sender::url`]): safe to print.
    url: String,
}

/// What the reader thread needs.
struct ReaderCtx {
    buffer: Arc<Buffer>,
    sender: Arc<Sender>,
    counters: Arc<Counters>,
    handle: tokio::runtime::Handle,
    permits: Arc<Semaphore>,
    in_flight: Arc<AtomicUsize>,
    shutdown: watch::Receiver<bool>,
    stop: Arc<AtomicBool>,
    limits: BatchLimits,
    batch_wait: Duration,
}

impl Pipeline {
    /// Opens (and recovers) the buffer under `run_path` and starts shipping.
    pub fn start(cfg: PipelineConfig) -> Result<Pipeline, PipelineError> {
        let counters = Arc::new(Counters::default());
        let logs = &cfg.logs;
        let sender = Arc::new(Sender::new(
            SenderConfig {
                base_url: cfg.base_url.clone(),
                api_key: cfg.api_key.clone(),
                encoding: Encoding::from_config(logs),
                http_timeout: secs(logs.http_timeout_secs),
                backoff: Backoff {
                    base: secs(logs.sender_backoff_base_secs),
                    factor: logs.sender_backoff_factor,
                    max: secs(logs.sender_backoff_max_secs),
                },
                version: cfg.version.clone(),
            },
            counters.clone(),
        )?);
        let opts = BufferOptions::new(
            &cfg.run_path,
            logs.buffer.max_size_bytes,
            logs.buffer.when_full,
        );
        let buffer = Buffer::open(opts, counters.clone())?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(MAX_IN_FLIGHT)
            .thread_name("logs-sender")
            .enable_all()
            .build()
            .map_err(PipelineError::Runtime)?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let stop_reader = Arc::new(AtomicBool::new(false));
        let ctx = ReaderCtx {
            buffer: buffer.clone(),
            sender: sender.clone(),
            counters: counters.clone(),
            handle: runtime.handle().clone(),
            permits: permits.clone(),
            in_flight: in_flight.clone(),
            shutdown: shutdown_rx.clone(),
            stop: stop_reader.clone(),
            limits: BatchLimits {
                max_entries: logs.batch_max_size,
                max_bytes: logs.batch_max_content_size,
            },
            batch_wait: secs(logs.batch_wait_secs),
        };
        let reader = buffer.reader();
        let handle = std::thread::Builder::new()
            .name("logs-reader".into())
            .spawn(move || reader_loop(reader, ctx))
            .map_err(PipelineError::Runtime)?;
        let pipeline = Pipeline {
            buffer,
            counters,
            runtime: Some(runtime),
            shutdown,
            stop_reader,
            reader: Some(handle),
            in_flight,
            permits,
            url: sender.url().to_string(),
        };
        pipeline.spawn_counter_log(shutdown_rx);
        tracing::info!(url = %pipeline.url, "logs pipeline started");
        Ok(pipeline)
    }

    fn spawn_counter_log(&self, mut shutdown: watch::Receiver<bool>) {
        let (counters, buffer) = (self.counters.clone(), self.buffer.clone());
        let Some(rt) = &self.runtime else { return };
        rt.spawn(async move {
            let mut tick = tokio::time::interval(COUNTER_LOG_INTERVAL);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = shutdown.changed() => return,
                }
                let s = snapshot(&counters, &buffer);
                if !s.is_zero() {
                    tracing::info!(
                        logs_processed = s.logs_processed,
                        logs_sent = s.logs_sent,
                        bytes_sent = s.bytes_sent,
                        encoded_bytes_sent = s.encoded_bytes_sent,
                        retry_count = s.retry_count,
                        logs_truncated = s.logs_truncated,
                        logs_dropped = ?s.logs_dropped,
                        buffer_bytes = s.buffer_bytes,
                        buffer_records = s.buffer_records,
                        oldest_unsent_age_secs = s.buffer_oldest_unsent_age_secs,
                        "logs pipeline counters"
                    );
                }
            }
        });
    }

    /// The sink that check runs write to.
    pub fn sink(&self) -> Arc<dyn RecordSink> {
        self.buffer.clone()
    }

    /// Where payloads go (`<base>/api/v2/logs`), with any URL password masked.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Adds one run's hand-off counts (processed, truncated, dropped at hand-off).
    pub fn record_run(&self, check_id: &str, run: &LogCounters) {
        self.counters.add_handoff(check_id, run);
    }

    /// The live counters, for callers that add the hand-off's counts after each run.
    pub fn counters_handle(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    pub fn counters(&self) -> CountersSnapshot {
        snapshot(&self.counters, &self.buffer)
    }

    /// [`Pipeline::counters`] for another thread (the local API), valid as long as the
    /// process lives; after shutdown it reports the last state.
    pub fn counters_source(&self) -> Arc<dyn Fn() -> CountersSnapshot + Send + Sync> {
        let (counters, buffer) = (self.counters.clone(), self.buffer.clone());
        Arc::new(move || snapshot(&counters, &buffer))
    }

    /// Stops reading, gives payloads in flight up to `grace` to be delivered, then makes the
    /// buffer durable and closes it. Whatever was not acknowledged is sent after a restart.
    pub fn shutdown(mut self, grace: Duration) -> Result<(), PipelineError> {
        self.stop_reader.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + grace;
        while self.in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let abandoned = self.in_flight.load(Ordering::SeqCst);
        let _ = self.shutdown.send(true);
        // Wakes the reader if it waits for a send slot.
        self.permits.close();
        if let Some(h) = self.reader.take() {
            let _ = h.join();
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
        self.buffer.close()?;
        let s = self.counters();
        tracing::info!(
            logs_sent = s.logs_sent,
            undelivered_logs = s.buffer_records,
            payloads_abandoned = abandoned,
            "logs pipeline stopped; undelivered logs stay in the buffer"
        );
        Ok(())
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        // `shutdown` is the orderly way; this keeps a dropped pipeline from leaking its threads.
        self.stop_reader.store(true, Ordering::SeqCst);
        let _ = self.shutdown.send(true);
        self.permits.close();
        if let Some(h) = self.reader.take() {
            let _ = h.join();
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
        let _ = self.buffer.close();
    }
}

fn snapshot(counters: &Counters, buffer: &Buffer) -> CountersSnapshot {
    let mut s = counters.snapshot();
    let g = buffer.gauges();
    s.buffer_bytes = g.undelivered_bytes;
    s.buffer_records = g.undelivered_logs;
    s.buffer_oldest_unsent_age_secs = g.oldest_unsent_age.as_secs_f64();
    s
}

fn reader_loop(mut reader: Reader, ctx: ReaderCtx) {
    let unknown: Arc<str> = Arc::from("unknown");
    let mut batch = Batch::new(reader.position());
    // Logs inside the batch's range that were dropped as too large: acknowledged with it.
    let mut dropped_in_range = 0u64;
    loop {
        if ctx.stop.load(Ordering::Relaxed) {
            if !batch.is_empty() {
                // One last payload if a slot is free; otherwise it stays in the buffer.
                if let Ok(permit) = ctx.permits.clone().try_acquire_owned() {
                    dispatch(&ctx, batch, dropped_in_range, permit);
                }
            }
            return;
        }
        let now = Instant::now();
        let deadline = match batch.opened_at {
            Some(t) => (t + ctx.batch_wait).min(now + READER_TICK),
            None => now + READER_TICK,
        };
        match reader.next(deadline) {
            Ok(ReadOutcome::Record(r)) => {
                if r.kind == KIND_LOG {
                    let check = r.check.unwrap_or(&unknown);
                    let len = r.payload.len();
                    if !ctx.limits.admits(len) {
                        ctx.counters
                            .add_dropped(r.check.map(|c| &**c), LossReason::TooLarge, 1);
                        tracing::error!(check_id = %check, bytes = len, limit = ctx.limits.max_bytes, "log larger than a payload may be; dropped");
                        dropped_in_range += 1;
                    } else {
                        // An empty batch always fits an admitted log, so no empty payload is sent.
                        if !batch.fits(len, &ctx.limits) {
                            let next = Batch::new(batch.end);
                            let full = std::mem::replace(&mut batch, next);
                            if !send(&ctx, full, std::mem::take(&mut dropped_in_range)) {
                                return;
                            }
                        }
                        batch.push(check, r.payload);
                    }
                }
                batch.end = r.end;
            }
            Ok(ReadOutcome::Idle) => {
                if batch.is_empty() && batch.end > batch.start {
                    // Only cursors, cache writes or dropped logs since the last payload: nothing
                    // to send, but the head must move past them.
                    ctx.buffer.ack(
                        batch.start,
                        batch.end,
                        std::mem::take(&mut dropped_in_range),
                    );
                    batch = Batch::new(batch.end);
                }
            }
            Ok(ReadOutcome::Skipped { from, to }) => {
                let next = Batch::new(to);
                let cur = std::mem::replace(&mut batch, next);
                if cur.is_empty() {
                    ctx.buffer
                        .ack(cur.start, to, std::mem::take(&mut dropped_in_range));
                } else {
                    if !send(&ctx, cur, std::mem::take(&mut dropped_in_range)) {
                        return;
                    }
                    ctx.buffer.ack(from, to, 0);
                }
            }
            Ok(ReadOutcome::Closed) => return,
            Err(e) => {
                tracing::error!(error = %e, "logs reader: buffer read failed; retrying");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        if batch
            .opened_at
            .is_some_and(|t| t.elapsed() >= ctx.batch_wait)
        {
            let next = Batch::new(batch.end);
            let due = std::mem::replace(&mut batch, next);
            if !send(&ctx, due, std::mem::take(&mut dropped_in_range)) {
                return;
            }
        }
    }
}

/// Waits for a send slot, then hands the payload to the runtime. False once shut down.
fn send(ctx: &ReaderCtx, batch: Batch, dropped_in_range: u64) -> bool {
    let permit = match ctx.handle.block_on(ctx.permits.clone().acquire_owned()) {
        Ok(p) => p,
        Err(_) => return false,
    };
    dispatch(ctx, batch, dropped_in_range, permit);
    true
}

fn dispatch(
    ctx: &ReaderCtx,
    batch: Batch,
    dropped_in_range: u64,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let (start, end) = (batch.start, batch.end);
    let payload = batch.finish();
    let logs = payload.entries() as u64 + dropped_in_range;
    let (sender, buffer, in_flight) = (
        ctx.sender.clone(),
        ctx.buffer.clone(),
        ctx.in_flight.clone(),
    );
    let mut shutdown = ctx.shutdown.clone();
    in_flight.fetch_add(1, Ordering::SeqCst);
    ctx.handle.spawn(async move {
        if sender.deliver(payload, &mut shutdown).await == Delivery::Done {
            buffer.ack(start, end, logs);
        }
        in_flight.fetch_sub(1, Ordering::SeqCst);
        drop(permit);
    });
}
