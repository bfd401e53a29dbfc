//! The pipeline's counters (SPEC §5): shared atomics that each stage updates once per batch or
//! per run, never once per log, and a serializable snapshot for status.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use parking_lot::Mutex;
use serde::Serialize;

use crate::check_logs::{DropReason, LogCounters};

/// Why the pipeline dropped logs, the hand-off's reasons included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LossReason {
    /// `logs_enabled: false` (counted at hand-off).
    LogsDisabled,
    /// No `type: integration` logs entry (counted at hand-off).
    NoLogsConfig,
    /// A processing rule excluded the log (counted at hand-off).
    Excluded,
    /// The intake answered 400 for the batch.
    BadRequest,
    /// One log larger than a payload may be, or a single log refused with 413.
    TooLarge,
    /// `when_full: drop_oldest` made room by dropping undelivered records.
    BufferFull,
    /// A torn or corrupt region of the buffer was skipped at recovery or read.
    Corrupt,
    /// The disk under the buffer was full (ENOSPC/EDQUOT) with `when_full: drop_oldest`.
    DiskFull,
    /// The run's records could not be made durable (the run failed; its cursors were rewound).
    NotDurable,
}

impl LossReason {
    pub const ALL: [LossReason; 9] = [
        LossReason::LogsDisabled,
        LossReason::NoLogsConfig,
        LossReason::Excluded,
        LossReason::BadRequest,
        LossReason::TooLarge,
        LossReason::BufferFull,
        LossReason::Corrupt,
        LossReason::DiskFull,
        LossReason::NotDurable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LossReason::LogsDisabled => "logs_disabled",
            LossReason::NoLogsConfig => "no_logs_config",
            LossReason::Excluded => "excluded",
            LossReason::BadRequest => "bad_request",
            LossReason::TooLarge => "too_large",
            LossReason::BufferFull => "buffer_full",
            LossReason::Corrupt => "corrupt",
            LossReason::DiskFull => "disk_full",
            LossReason::NotDurable => "not_durable",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl From<DropReason> for LossReason {
    fn from(r: DropReason) -> Self {
        match r {
            DropReason::LogsDisabled => LossReason::LogsDisabled,
            DropReason::NoLogsConfig => LossReason::NoLogsConfig,
            DropReason::Excluded => LossReason::Excluded,
        }
    }
}

/// Per-check key of drops whose check is unknown (never a valid check id: those hold a `:`).
const UNATTRIBUTED: &str = "";

/// Upper bounds (seconds) of the send-latency histogram: how long the intake took to answer
/// one payload request (any answer).
pub const SEND_LATENCY_BUCKETS_SECS: [f64; 10] =
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// Live counters of one pipeline. Buffer gauges (bytes, records, age) are read from the buffer
/// when a snapshot is taken.
#[derive(Default)]
pub struct Counters {
    pub(crate) logs_processed: AtomicU64,
    pub(crate) logs_truncated: AtomicU64,
    pub(crate) logs_sent: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) encoded_bytes_sent: AtomicU64,
    pub(crate) payloads_sent: AtomicU64,
    pub(crate) retry_count: AtomicU64,
    pub(crate) retry_time_spent_us: AtomicU64,
    pub(crate) corrupt_bytes: AtomicU64,
    dropped: [AtomicU64; LossReason::ALL.len()],
    pub(crate) key_rejected: AtomicBool,
    buffer_disk_full: AtomicBool,
    buffer_problem: Mutex<Option<String>>,
    pub(crate) last_error: Mutex<Option<String>>,
    per_check: Mutex<HashMap<String, CheckLogCounters>>,
    /// Requests per [`SEND_LATENCY_BUCKETS_SECS`] bucket (not cumulative); the last is `+Inf`.
    send_latency: [AtomicU64; SEND_LATENCY_BUCKETS_SECS.len() + 1],
    send_latency_sum_us: AtomicU64,
}

/// What the pipeline knows per check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CheckLogCounters {
    pub logs_processed: u64,
    pub logs_truncated: u64,
    pub logs_sent: u64,
    /// Dropped logs of this check by reason; over all checks (plus
    /// [`CountersSnapshot::logs_dropped_unattributed`]) they add up to the pipeline's totals.
    pub logs_dropped: BTreeMap<&'static str, u64>,
}

impl CheckLogCounters {
    pub fn dropped_total(&self) -> u64 {
        self.logs_dropped.values().sum()
    }
}

/// A point-in-time copy of the counters, for status and tests.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CountersSnapshot {
    pub logs_processed: u64,
    pub logs_sent: u64,
    /// Uncompressed payload bytes delivered.
    pub bytes_sent: u64,
    /// Bytes on the wire (compressed) delivered.
    pub encoded_bytes_sent: u64,
    pub payloads_sent: u64,
    pub retry_count: u64,
    pub retry_time_spent_secs: f64,
    pub logs_truncated: u64,
    /// Dropped logs by reason (`bad_request`, `too_large`, `buffer_full`, `corrupt`, and the
    /// hand-off's `logs_disabled`, `no_logs_config`, `excluded`). Zero reasons are left out.
    pub logs_dropped: BTreeMap<&'static str, u64>,
    /// Bytes of buffer regions lost to corruption or a torn tail.
    pub buffer_corrupt_bytes: u64,
    /// Undelivered bytes in the durable buffer.
    pub buffer_bytes: u64,
    /// Undelivered logs in the durable buffer.
    pub buffer_records: u64,
    /// Age of the oldest undelivered record (0 when all is delivered).
    pub buffer_oldest_unsent_age_secs: f64,
    /// The intake answered 401/403: the API key was rejected; data is kept.
    pub api_key_rejected: bool,
    /// The disk under the buffer is full: checks wait (`block`) or the oldest logs are dropped.
    pub buffer_disk_full: bool,
    /// Why the buffer cannot take records now, if so (its directory vanished for good).
    pub buffer_problem: Option<String>,
    pub last_error: Option<String>,
    /// Payload requests per [`SEND_LATENCY_BUCKETS_SECS`] bucket (last: `+Inf`).
    pub send_latency_buckets: Vec<u64>,
    pub send_latency_sum_secs: f64,
    pub checks: BTreeMap<String, CheckLogCounters>,
    /// Drops whose check could not be known (a corrupt record header, a deleted segment), by
    /// reason: with the per-check counts they add up to `logs_dropped`.
    pub logs_dropped_unattributed: BTreeMap<&'static str, u64>,
}

impl CountersSnapshot {
    pub fn dropped(&self, reason: LossReason) -> u64 {
        self.logs_dropped.get(reason.as_str()).copied().unwrap_or(0)
    }

    /// True when nothing has been counted yet (the periodic log stays quiet then).
    pub fn is_zero(&self) -> bool {
        self.logs_processed == 0
            && self.logs_sent == 0
            && self.logs_dropped.is_empty()
            && self.buffer_records == 0
            && self.retry_count == 0
    }
}

impl Counters {
    /// Counts `n` dropped logs of `check` (`None` when the check cannot be known) for `reason`:
    /// the one way to count a drop, so per-check and pipeline totals always agree.
    pub fn add_dropped(&self, check: Option<&str>, reason: LossReason, n: u64) {
        if n == 0 {
            return;
        }
        self.dropped[reason.index()].fetch_add(n, Relaxed);
        let mut per = self.per_check.lock();
        let key = check.unwrap_or(UNATTRIBUTED);
        let c = match per.get_mut(key) {
            Some(c) => c,
            None => per.entry(key.to_string()).or_default(),
        };
        *c.logs_dropped.entry(reason.as_str()).or_default() += n;
    }

    /// [`Counters::add_dropped`] for several checks at once (one lock).
    pub(crate) fn add_dropped_per_check(
        &self,
        reason: LossReason,
        per_check: &[(std::sync::Arc<str>, u64)],
    ) {
        let total: u64 = per_check.iter().map(|(_, n)| n).sum();
        if total == 0 {
            return;
        }
        self.dropped[reason.index()].fetch_add(total, Relaxed);
        let mut per = self.per_check.lock();
        for (id, n) in per_check.iter().filter(|(_, n)| *n > 0) {
            let c = match per.get_mut(&**id) {
                Some(c) => c,
                None => per.entry(id.to_string()).or_default(),
            };
            *c.logs_dropped.entry(reason.as_str()).or_default() += n;
        }
    }

    pub fn dropped(&self, reason: LossReason) -> u64 {
        self.dropped[reason.index()].load(Relaxed)
    }

    /// Adds what the hand-off counted during one run of `check_id`.
    pub fn add_handoff(&self, check_id: &str, run: &LogCounters) {
        self.logs_processed.fetch_add(run.processed, Relaxed);
        self.logs_truncated.fetch_add(run.truncated, Relaxed);
        let mut any = run.processed + run.truncated > 0;
        for r in DropReason::ALL {
            let n = run.dropped(r);
            if n > 0 {
                any = true;
                self.add_dropped(Some(check_id), r.into(), n);
            }
        }
        if run.dropped_not_durable > 0 {
            any = true;
            self.add_dropped(
                Some(check_id),
                LossReason::NotDurable,
                run.dropped_not_durable,
            );
        }
        if !any {
            return;
        }
        let mut per = self.per_check.lock();
        let c = per.entry(check_id.to_string()).or_default();
        c.logs_processed += run.processed;
        c.logs_truncated += run.truncated;
    }

    pub(crate) fn add_check_sent(&self, per_check: &[(std::sync::Arc<str>, u64)]) {
        let mut per = self.per_check.lock();
        for (id, n) in per_check {
            match per.get_mut(&**id) {
                Some(c) => c.logs_sent += n,
                None => {
                    per.insert(
                        id.to_string(),
                        CheckLogCounters {
                            logs_sent: *n,
                            ..Default::default()
                        },
                    );
                }
            }
        }
    }

    /// One payload request answered after `took`.
    pub(crate) fn observe_send(&self, took: std::time::Duration) {
        let secs = took.as_secs_f64();
        let i = SEND_LATENCY_BUCKETS_SECS
            .iter()
            .position(|le| secs <= *le)
            .unwrap_or(SEND_LATENCY_BUCKETS_SECS.len());
        self.send_latency[i].fetch_add(1, Relaxed);
        self.send_latency_sum_us
            .fetch_add(took.as_micros() as u64, Relaxed);
    }

    pub(crate) fn set_disk_full(&self, full: bool) {
        self.buffer_disk_full.store(full, Relaxed);
    }

    pub(crate) fn set_buffer_problem(&self, problem: Option<String>) {
        *self.buffer_problem.lock() = problem;
    }

    pub(crate) fn set_error(&self, message: Option<String>) {
        *self.last_error.lock() = message;
    }

    /// Copies the counters; the buffer gauges are left at zero (a pipeline fills them in).
    pub fn snapshot(&self) -> CountersSnapshot {
        let per = self.per_check.lock();
        CountersSnapshot {
            logs_processed: self.logs_processed.load(Relaxed),
            logs_sent: self.logs_sent.load(Relaxed),
            bytes_sent: self.bytes_sent.load(Relaxed),
            encoded_bytes_sent: self.encoded_bytes_sent.load(Relaxed),
            payloads_sent: self.payloads_sent.load(Relaxed),
            retry_count: self.retry_count.load(Relaxed),
            retry_time_spent_secs: self.retry_time_spent_us.load(Relaxed) as f64 / 1e6,
            logs_truncated: self.logs_truncated.load(Relaxed),
            logs_dropped: LossReason::ALL
                .iter()
                .map(|r| (r.as_str(), self.dropped(*r)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            buffer_corrupt_bytes: self.corrupt_bytes.load(Relaxed),
            api_key_rejected: self.key_rejected.load(Relaxed),
            buffer_disk_full: self.buffer_disk_full.load(Relaxed),
            buffer_problem: self.buffer_problem.lock().clone(),
            last_error: self.last_error.lock().clone(),
            send_latency_buckets: self.send_latency.iter().map(|b| b.load(Relaxed)).collect(),
            send_latency_sum_secs: self.send_latency_sum_us.load(Relaxed) as f64 / 1e6,
            checks: per
                .iter()
                .filter(|(k, _)| k.as_str() != UNATTRIBUTED)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            logs_dropped_unattributed: per
                .get(UNATTRIBUTED)
                .map(|c| c.logs_dropped.clone())
                .unwrap_or_default(),
            ..Default::default()
        }
    }
}
