//! [`CheckLogs`]: everything one check instance needs to turn a hand-off into a staged record,
//! built once when the check is loaded so that the per-log work is a few copies.

use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use crate::batch::BatchLimits;
use crate::processing::{Outcome, Processor};
use crate::sink::{RecordSink, SinkError};
use crate::staging::Staging;
use crate::state::CacheState;
use crate::wire::{self, LogFields};

/// Staged bytes past which the hand-off moves records to the sink before the run ends, so a
/// check that sends millions of logs in one run does not hold them all in memory.
/// Small enough that the records are still in the CPU cache when the sink copies them.
pub const FLUSH_THRESHOLD_BYTES: usize = 64 << 10;

/// The cache key under which a stream's cursor is stored (the Datadog library's name).
pub fn cursor_key(stream: &str) -> String {
    format!("{CURSOR_KEY_PREFIX}{stream}")
}

const CURSOR_KEY_PREFIX: &str = "log_cursor_";

/// Largest persistent-cache entry a check may write, key and value together, in UTF-8 bytes:
/// a cursor (`send_log(cursor=...)`, stored under `log_cursor_<stream>`) or a
/// `write_persistent_cache` value. Every entry is kept in memory and in the buffer's state
/// snapshot, rewritten whenever it changes, and the buffer's reader takes a record past 64 MiB
/// for corruption; a cursor is a position, not data, and 1 MiB is far more than one needs.
pub const MAX_CACHE_VALUE_BYTES: usize = 1 << 20;

/// The payload limit a [`CheckLogs`] applies until told otherwise: `batch_max_content_size`'s
/// default, the Datadog intake's limit (SPEC §4).
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 5_000_000;

/// Why the hand-off refused a record. Nothing of a refused call is staged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandoffError {
    /// The log's final wire JSON object could never be sent: it does not fit in one payload.
    #[error("log is {size} bytes as JSON, over the {limit}-byte limit of one payload (logs_config.batch_max_content_size)")]
    LogTooLarge { size: usize, limit: usize },
    /// A cursor or cache entry over [`MAX_CACHE_VALUE_BYTES`].
    #[error("persistent-cache entry {key:?} is {size} bytes (key and value), over the {limit}-byte limit")]
    CacheTooLarge {
        key: String,
        size: usize,
        limit: usize,
    },
}

/// Refuses a cache entry over [`MAX_CACHE_VALUE_BYTES`]; O(1) on lengths already known.
fn check_cache_size(key: &str, value: &str) -> Result<(), HandoffError> {
    let size = key.len() + value.len();
    if size > MAX_CACHE_VALUE_BYTES {
        return Err(HandoffError::CacheTooLarge {
            key: key.to_string(),
            size,
            limit: MAX_CACHE_VALUE_BYTES,
        });
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// `logs_enabled: false` in datadog.yaml.
    LogsDisabled,
    /// The check's config has no `type: integration` logs entry.
    NoLogsConfig,
    /// A processing rule excluded the log.
    Excluded,
}

impl DropReason {
    pub const ALL: [DropReason; 3] = [
        DropReason::LogsDisabled,
        DropReason::NoLogsConfig,
        DropReason::Excluded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::LogsDisabled => "logs_disabled",
            DropReason::NoLogsConfig => "no_logs_config",
            DropReason::Excluded => "excluded",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogCounters {
    /// Logs accepted into the staging area and handed to the sink (a log staged, then lost
    /// before it reached the sink, moves to `dropped_not_durable`).
    pub processed: u64,
    pub truncated: u64,
    pub dropped_logs_disabled: u64,
    pub dropped_no_logs_config: u64,
    pub dropped_excluded: u64,
    /// Logs staged but lost before the sink took them (its `append` failed, or they were
    /// staged after a failed one): the run failed and its cursors were rewound. Pipeline
    /// counters: `logs_dropped{not_durable}` ([`crate::LossReason::NotDurable`]).
    pub dropped_not_durable: u64,
    /// Bytes of wire JSON staged.
    pub bytes: u64,
}

impl LogCounters {
    pub fn dropped(&self, reason: DropReason) -> u64 {
        match reason {
            DropReason::LogsDisabled => self.dropped_logs_disabled,
            DropReason::NoLogsConfig => self.dropped_no_logs_config,
            DropReason::Excluded => self.dropped_excluded,
        }
    }

    fn count_drop(&mut self, reason: DropReason) {
        match reason {
            DropReason::LogsDisabled => self.dropped_logs_disabled += 1,
            DropReason::NoLogsConfig => self.dropped_no_logs_config += 1,
            DropReason::Excluded => self.dropped_excluded += 1,
        }
    }
}

/// What a check's logs get by default, from datadog.yaml, the instance and the logs entry.
#[derive(Debug, Clone, Default)]
pub struct CheckLogsConfig {
    pub check_id: String,
    pub hostname: String,
    pub logs_enabled: bool,
    /// Whether the check's config has a `type: integration` logs entry.
    pub has_logs_entry: bool,
    pub source: Option<String>,
    pub service: Option<String>,
    /// The logs entry's tags.
    pub entry_tags: Vec<String>,
    /// The instance's `tags`.
    pub instance_tags: Vec<String>,
    pub processor: Processor,
}

pub struct CheckLogs {
    check_id: String,
    /// A log whose final JSON object does not fit in one payload is refused at hand-off: it
    /// could never be sent, and past 64 MiB the buffer's reader would take it for corruption.
    payload: BatchLimits,
    // The defaults every log of this check carries, each pre-encoded as `,"key":"value"`
    // (empty when there is no default) so the hand-off copies instead of escaping.
    hostname_field: Vec<u8>,
    source_field: Vec<u8>,
    service_field: Vec<u8>,
    /// Instance `key:value` tags (deduplicated, sorted) plus the entry's tags: the `ddtags`
    /// of a log that brings none.
    ddtags_field: Vec<u8>,
    entry_tags: Vec<String>,
    drop_reason: Option<DropReason>,
    processor: Processor,
    sink: Arc<dyn RecordSink>,
    state: Mutex<State>,
    /// Held while moving staged records to the sink so that two flushes keep their order.
    /// Holds the spare staging buffers (logs, owned cache), swapped in at each flush so no
    /// flush reallocates.
    flush_order: Mutex<(Staging, Staging)>,
    /// The identity the cache is stored under when it is not the check id (the check
    /// overrides `persistent_cache_id()`): `<name>[:<instance name>]:<persistent_cache_id>`.
    /// Set once, before the first run.
    cache_owner: OnceLock<String>,
}

struct State {
    staging: Staging,
    /// Whether the cache has an identity of its own ([`CheckLogs::set_cache_id`]).
    owned_cache: bool,
    /// Cache writes and resets for the cache's own identity, appended under it right after the logs
    /// staged with them (so a cursor is still never durable before its logs).
    owned: Staging,
    cache: CacheState,
    counters: LogCounters,
    warned_drop: bool,
    /// Set when staged records were lost to a sink error since the last finished run: the run
    /// must not be reported as durable.
    lost: Option<String>,
}

/// The instance tags as the Datadog library formats them: only `key:value` tags, de-duplicated
/// and sorted.
pub fn formatted_instance_tags(tags: &[String]) -> Vec<&str> {
    let mut v: Vec<&str> = tags
        .iter()
        .map(String::as_str)
        .filter(|t| t.contains(':'))
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

impl State {
    /// Where cache records go: with the logs, or apart under the cache owner.
    fn cache_staging(&mut self) -> &mut Staging {
        if self.owned_cache {
            &mut self.owned
        } else {
            &mut self.staging
        }
    }

    fn staged_bytes(&self) -> usize {
        self.staging.len_bytes() + self.owned.len_bytes()
    }
}

impl CheckLogs {
    /// Builds the context and loads the check's stored cache state from `sink`.
    pub fn new(cfg: CheckLogsConfig, sink: Arc<dyn RecordSink>) -> Result<Self, SinkError> {
        let cache = sink.load_state(&cfg.check_id)?;
        let default_ddtags = wire::join_tags_dedup(
            formatted_instance_tags(&cfg.instance_tags)
                .into_iter()
                .chain(cfg.entry_tags.iter().map(String::as_str)),
        );
        let drop_reason = if !cfg.logs_enabled {
            Some(DropReason::LogsDisabled)
        } else if !cfg.has_logs_entry {
            Some(DropReason::NoLogsConfig)
        } else {
            None
        };
        let opt_field = |key: &str, v: Option<&str>| match v {
            Some(v) if !v.is_empty() => wire::field(key, v),
            _ => Vec::new(),
        };
        Ok(CheckLogs {
            check_id: cfg.check_id,
            payload: BatchLimits {
                // Only the byte limit matters for one log.
                max_entries: 1,
                max_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            },
            hostname_field: wire::field(wire::HOSTNAME, &cfg.hostname),
            source_field: opt_field(wire::DDSOURCE, cfg.source.as_deref()),
            service_field: opt_field(wire::SERVICE, cfg.service.as_deref()),
            ddtags_field: opt_field(wire::DDTAGS, Some(&default_ddtags)),
            entry_tags: cfg.entry_tags,
            drop_reason,
            processor: cfg.processor,
            sink,
            state: Mutex::new(State {
                staging: Staging::new(),
                owned_cache: false,
                owned: Staging::new(),
                cache,
                counters: LogCounters::default(),
                warned_drop: false,
                lost: None,
            }),
            flush_order: Mutex::new((Staging::new(), Staging::new())),
            cache_owner: OnceLock::new(),
        })
    }

    /// Sets the payload limit (`logs_config.batch_max_content_size`) that a log must fit in.
    pub fn with_max_payload_bytes(mut self, max_bytes: usize) -> Self {
        self.payload.max_bytes = max_bytes;
        self
    }

    pub fn check_id(&self) -> &str {
        &self.check_id
    }

    /// The identity the check's cache (cursors included) is stored under: the check id, or
    /// what [`set_cache_id`](Self::set_cache_id) made it.
    pub fn cache_id(&self) -> &str {
        self.cache_owner.get().unwrap_or(&self.check_id)
    }

    /// Stores this check's cache under `cache_id` from now on and loads what is stored there
    /// (the library's `<name>[:<instance name>]:<persistent_cache_id()>`: a check that
    /// overrides `persistent_cache_id()` keeps its cursors when the rest of its config, and
    /// so its check id, changes). Call it once, after construction, before the first run (a
    /// second call is refused); anything written before goes on under the check id. May
    /// block: call it without the GIL.
    pub fn set_cache_id(&self, cache_id: &str) -> Result<(), SinkError> {
        if cache_id == self.check_id {
            return Ok(());
        }
        self.flush()?;
        let loaded = self.sink.load_state(cache_id)?;
        let _order = self.flush_order.lock();
        if self.cache_owner.set(cache_id.to_string()).is_err() {
            return Err(SinkError::State {
                path: cache_id.into(),
                message: format!(
                    "check {}: its cache identity is already {}",
                    self.check_id,
                    self.cache_id()
                ),
            });
        }
        let mut st = self.state.lock();
        st.owned_cache = true;
        st.cache = loaded;
        Ok(())
    }

    /// The largest log, as its final JSON object, that [`push_log`](Self::push_log) accepts.
    pub fn max_log_bytes(&self) -> usize {
        self.payload.max_bytes.saturating_sub(2)
    }

    /// Stages one log (and its cursor). `attributes` is the JSON of the non-reserved keys, each
    /// as `,"key":value`. Returns true when the caller should [`flush`](Self::flush) (with the
    /// GIL released) because the staging area is large.
    ///
    /// A log dropped because logs are disabled or unconfigured does not move its cursor: the
    /// data is still there to be read once logs are turned on.
    ///
    /// Refused, with nothing staged (neither the log nor its cursor): a cursor over
    /// [`MAX_CACHE_VALUE_BYTES`], and a log whose final JSON object (after the rules and
    /// truncation) does not fit in one payload.
    pub fn push_log(
        &self,
        fields: &LogFields<'_>,
        attributes: &[u8],
        cursor: Option<(&str, &str)>,
    ) -> Result<bool, HandoffError> {
        // The key is `log_cursor_<stream>`; measured without building it.
        let cursor_key_len = |stream: &str| CURSOR_KEY_PREFIX.len() + stream.len();
        if let Some((stream, value)) = cursor {
            if cursor_key_len(stream) + value.len() > MAX_CACHE_VALUE_BYTES {
                return Err(HandoffError::CacheTooLarge {
                    key: cursor_key(stream),
                    size: cursor_key_len(stream) + value.len(),
                    limit: MAX_CACHE_VALUE_BYTES,
                });
            }
        }
        let mut st = self.state.lock();
        if let Some(reason) = self.drop_reason {
            st.counters.count_drop(reason);
            if !st.warned_drop {
                st.warned_drop = true;
                let why = match reason {
                    DropReason::LogsDisabled => "logs_enabled is false in datadog.yaml",
                    _ => "its config has no logs entry with `type: integration`",
                };
                tracing::warn!(check_id = %self.check_id, reason = reason.as_str(), "logs of this check are dropped: {why}");
            }
            return Ok(false);
        }
        let st = &mut *st;
        match self.processor.apply(fields.message) {
            Outcome::Excluded(_) => st.counters.count_drop(DropReason::Excluded),
            Outcome::Keep { message, truncated } => {
                let before = st.staging.len_bytes();
                st.staging.try_push_log_with(|out, start| {
                    self.encode(out, start, fields, &message, attributes)
                })?;
                st.counters.processed += 1;
                st.counters.truncated += truncated as u64;
                st.counters.bytes += (st.staging.len_bytes() - before - 5) as u64;
            }
        }
        if let Some((stream, value)) = cursor {
            let key = cursor_key(stream);
            st.cache_staging().push_cache(&key, value);
            st.cache.insert(key, value.to_string());
        }
        Ok(st.staged_bytes() >= FLUSH_THRESHOLD_BYTES)
    }

    /// Writes the log's JSON object at the end of `out` (it starts at `start`), or refuses it
    /// when it would not fit in a payload. The attributes, the part that can be huge, are
    /// measured before they are copied.
    fn encode(
        &self,
        out: &mut Vec<u8>,
        start: usize,
        f: &LogFields<'_>,
        message: &str,
        attributes: &[u8],
    ) -> Result<(), HandoffError> {
        let keys = wire::keys();
        out.extend_from_slice(&keys.open_message);
        wire::write_str(out, message);
        out.extend_from_slice(&keys.status);
        wire::write_str(out, f.status.unwrap_or(wire::DEFAULT_STATUS));
        out.extend_from_slice(&keys.timestamp);
        wire::write_i64(out, f.timestamp_ms);
        Self::field_or_default(out, wire::HOSTNAME, f.hostname, &self.hostname_field);
        Self::field_or_default(out, wire::SERVICE, f.service, &self.service_field);
        Self::field_or_default(out, wire::DDSOURCE, f.source, &self.source_field);
        match f.ddtags {
            None => out.extend_from_slice(&self.ddtags_field),
            Some(own) => {
                // A check's own tags are normalised like the defaults: trimmed, de-duplicated,
                // then the logs entry's tags.
                let tags = wire::join_tags_dedup(
                    wire::split_tags(own).chain(self.entry_tags.iter().map(String::as_str)),
                );
                if !tags.is_empty() {
                    out.push(b',');
                    wire::write_key(out, wire::DDTAGS);
                    wire::write_str(out, &tags);
                }
            }
        }
        // The whole object: what is written so far, the attributes and the closing brace.
        let size = out.len() - start + attributes.len() + 1;
        if !self.payload.admits(size) {
            return Err(HandoffError::LogTooLarge {
                size,
                limit: self.payload.max_bytes,
            });
        }
        out.extend_from_slice(attributes);
        out.push(b'}');
        Ok(())
    }

    fn field_or_default(out: &mut Vec<u8>, key: &str, own: Option<&str>, default: &[u8]) {
        match own {
            Some(v) => {
                out.push(b',');
                wire::write_key(out, key);
                wire::write_str(out, v);
            }
            None => out.extend_from_slice(default),
        }
    }

    /// Writes a persistent-cache entry, ordered after every log staged before it.
    ///
    /// A cursor write (`log_cursor_*`, as the Datadog library makes it) is ignored while this
    /// check's logs are dropped by configuration, as on the native path: the cursor must not
    /// move past logs that were never kept.
    ///
    /// An entry over [`MAX_CACHE_VALUE_BYTES`] is refused; the stored value stays as it was.
    pub fn write_cache(&self, key: &str, value: &str) -> Result<bool, HandoffError> {
        check_cache_size(key, value)?;
        if self.drop_reason.is_some() && key.starts_with(CURSOR_KEY_PREFIX) {
            return Ok(false);
        }
        let mut st = self.state.lock();
        st.cache_staging().push_cache(key, value);
        st.cache.insert(key.to_string(), value.to_string());
        Ok(st.staged_bytes() >= FLUSH_THRESHOLD_BYTES)
    }

    pub fn read_cache(&self, key: &str) -> Option<String> {
        self.state.lock().cache.get(key).cloned()
    }

    /// The check's cache entries (cursors included) as they stand in memory, sorted by key.
    pub fn cache_entries(&self) -> Vec<(String, String)> {
        let mut v: Vec<_> = self
            .state
            .lock()
            .cache
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        v.sort();
        v
    }

    /// Removes `keys` from the cache as one staged record, ordered after everything staged
    /// before it: replay applies it whole or not at all. The next read of any of them sees
    /// nothing. Returns the keys that were there (only those are reset); stage nothing when
    /// none was. Follow it with [`finish_run`](Self::finish_run) to make it durable.
    pub fn reset_cache(&self, keys: &[&str]) -> Vec<String> {
        let mut st = self.state.lock();
        let present: Vec<&str> = keys
            .iter()
            .copied()
            .filter(|k| st.cache.contains_key(*k))
            .collect();
        if present.is_empty() {
            return Vec::new();
        }
        st.cache_staging().push_reset(&present);
        for k in &present {
            st.cache.remove(*k);
        }
        present.into_iter().map(str::to_string).collect()
    }

    /// Moves staged records to the sink. May block: call it without the GIL.
    pub fn flush(&self) -> Result<(), SinkError> {
        let mut spare = self.flush_order.lock();
        let (batch, owned) = &mut *spare;
        {
            let mut st = self.state.lock();
            std::mem::swap(batch, &mut st.staging);
            std::mem::swap(owned, &mut st.owned);
        }
        if batch.is_empty() && owned.is_empty() {
            return Ok(());
        }
        // Counted before the sink sees the batch: a failed append may have emptied it.
        let mut lost_logs = batch.logs();
        let mut result = self.sink.append(&self.check_id, batch);
        if result.is_ok() && !owned.is_empty() {
            // The logs are the sink's now; the cache records come after them, so they are
            // never durable before them.
            lost_logs = 0;
            result = self.sink.append(self.cache_id(), owned);
        }
        batch.clear();
        owned.clear();
        if let Err(e) = &result {
            self.rewind(e, lost_logs);
        }
        result
    }

    /// After the sink lost staged records (`lost_logs` of them logs): anything staged since is
    /// dropped too, and the in-memory cache goes back to the sink's state, so no cursor stays
    /// ahead of lost logs. The check then re-reads from its last kept cursor.
    ///
    /// The lost logs were counted as processed when staged; they become `dropped_not_durable`
    /// instead. Logs that an earlier flush of the same run did hand over stay processed: the
    /// sink has them, and either delivers them or counts their loss itself.
    fn rewind(&self, e: &SinkError, lost_logs: usize) {
        let restored = self.sink.load_state(self.cache_id());
        let mut st = self.state.lock();
        let dropped_after = st.staging.logs();
        st.staging.clear();
        st.owned.clear();
        let lost = (lost_logs + dropped_after) as u64;
        // Saturating: every lost log was counted when staged, but a caller may have taken the
        // counters in between (see `take_counters`).
        st.counters.processed = st.counters.processed.saturating_sub(lost);
        st.counters.dropped_not_durable += lost;
        match restored {
            Ok(state) => st.cache = state,
            // Without the durable state, forgetting every cursor is the safe side: logs may be
            // sent again, none is skipped.
            Err(_) => st.cache.clear(),
        }
        st.lost = Some(e.to_string());
        tracing::error!(check_id = %self.check_id, error = %e, logs_lost = lost, "staged records lost; cursors rewound to their last kept state");
    }

    /// Flushes and waits until the run's records are durable. Call it without the GIL. Fails
    /// when records of this run were lost, even if the check caught the error.
    pub fn finish_run(&self) -> Result<(), SinkError> {
        self.flush()?;
        let _order = self.flush_order.lock();
        self.sink.commit(&self.check_id)?;
        if let Some(owner) = self.cache_owner.get() {
            self.sink.commit(owner)?;
        }
        match self.state.lock().lost.take() {
            Some(message) => Err(SinkError::Lost(message)),
            None => Ok(()),
        }
    }

    /// The counters since the check was built or the last [`take_counters`](Self::take_counters).
    pub fn counters(&self) -> LogCounters {
        self.state.lock().counters
    }

    /// The counters since the last call, resetting them: a run's report takes what happened
    /// since the previous report, logs sent outside any run (from `__init__`, say) included.
    pub fn take_counters(&self) -> LogCounters {
        std::mem::take(&mut self.state.lock().counters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::staging::Record;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A sink that keeps one stored cursor and fails appends while `broken` is set.
    struct FlakySink {
        broken: AtomicBool,
    }

    impl RecordSink for FlakySink {
        fn load_state(&self, _: &str) -> Result<CacheState, SinkError> {
            Ok(CacheState::from([(
                cursor_key("s"),
                "{\"n\":1}".to_string(),
            )]))
        }
        fn append(&self, _: &str, staging: &mut Staging) -> Result<(), SinkError> {
            staging.clear();
            if self.broken.load(Ordering::SeqCst) {
                return Err(SinkError::Io {
                    path: "buffer".into(),
                    source: std::io::Error::other("disk full"),
                });
            }
            Ok(())
        }
        fn commit(&self, _: &str) -> Result<(), SinkError> {
            Ok(())
        }
    }

    fn logs(sink: Arc<FlakySink>, logs_enabled: bool) -> CheckLogs {
        let cfg = CheckLogsConfig {
            check_id: "c:1".into(),
            hostname: "h".into(),
            logs_enabled,
            has_logs_entry: true,
            ..Default::default()
        };
        CheckLogs::new(cfg, sink).unwrap()
    }

    #[test]
    fn a_lost_flush_rewinds_the_cursor_and_fails_the_run() {
        let sink = Arc::new(FlakySink {
            broken: AtomicBool::new(true),
        });
        let logs = logs(sink.clone(), true);
        let f = LogFields {
            message: "m",
            ..Default::default()
        };
        logs.push_log(&f, b"", Some(("s", "{\"n\":2}"))).unwrap();
        assert_eq!(
            logs.read_cache(&cursor_key("s")).as_deref(),
            Some("{\"n\":2}")
        );
        assert!(logs.flush().is_err());
        assert_eq!(
            logs.read_cache(&cursor_key("s")).as_deref(),
            Some("{\"n\":1}"),
            "cursor must not stay ahead of lost logs"
        );
        sink.broken.store(false, Ordering::SeqCst);
        assert!(
            matches!(logs.finish_run(), Err(SinkError::Lost(_))),
            "the run that lost records is not reported durable"
        );
        assert!(logs.finish_run().is_ok(), "the next run is fine again");
    }

    fn msg(message: &str) -> LogFields<'_> {
        LogFields {
            message,
            timestamp_ms: 1,
            ..Default::default()
        }
    }

    #[test]
    fn logs_lost_with_a_failed_append_are_counted_not_durable_instead_of_processed() {
        let sink = Arc::new(FlakySink {
            broken: AtomicBool::new(false),
        });
        let logs = logs(sink.clone(), true);
        logs.push_log(&msg("kept"), b"", None).unwrap();
        logs.flush().unwrap();
        sink.broken.store(true, Ordering::SeqCst);
        logs.push_log(&msg("lost 1"), b"", None).unwrap();
        logs.push_log(&msg("lost 2"), b"", None).unwrap();
        assert!(logs.flush().is_err());
        logs.push_log(&msg("staged after the loss"), b"", None)
            .unwrap();
        sink.broken.store(false, Ordering::SeqCst);
        assert!(logs.finish_run().is_err());
        let c = logs.take_counters();
        assert_eq!((c.processed, c.dropped_not_durable), (2, 2), "{c:?}");
        assert_eq!(logs.take_counters(), LogCounters::default());
    }

    #[test]
    fn a_log_must_fit_in_one_payload_exactly_as_the_batcher_counts_it() {
        let sink = Arc::new(FlakySink {
            broken: AtomicBool::new(false),
        });
        // `{"message":"<m>","status":"info","timestamp":1,"hostname":"h"}` is 58 bytes plus
        // the message; the payload adds `[` and `]`.
        let fixed = br#"{"message":"","status":"info","timestamp":1,"hostname":"h"}"#.len();
        let limit = 100;
        let logs = logs(sink, true).with_max_payload_bytes(limit);
        assert_eq!(logs.max_log_bytes(), limit - 2);
        let fits = "a".repeat(limit - 2 - fixed);
        logs.push_log(&msg(&fits), b"", Some(("s", "1"))).unwrap();
        let over = "a".repeat(limit - 1 - fixed);
        assert_eq!(
            logs.push_log(&msg(&over), b"", Some(("s", "2"))),
            Err(HandoffError::LogTooLarge {
                size: limit - 1,
                limit
            })
        );
        // The attributes are measured before they are copied.
        let attrs = format!(",\"blob\":\"{}\"", "b".repeat(10 << 20));
        assert_eq!(
            logs.push_log(&msg(""), attrs.as_bytes(), Some(("s", "3"))),
            Err(HandoffError::LogTooLarge {
                size: fixed + attrs.len(),
                limit
            })
        );
        assert_eq!(
            logs.read_cache(&cursor_key("s")).as_deref(),
            Some("1"),
            "a refused log does not move its cursor"
        );
        let c = logs.counters();
        assert_eq!((c.processed, c.bytes), (1, (limit - 2) as u64));
        let staged = logs.state.lock().staging.clone();
        let got: Vec<_> = staged.iter().collect();
        assert_eq!(got.len(), 2, "the log that fits and its cursor: {got:?}");
        assert_eq!(
            got[1],
            Record::Cache {
                key: "log_cursor_s",
                value: "1"
            }
        );
    }

    #[test]
    fn cursors_and_cache_entries_over_the_limit_are_refused_and_the_stored_value_kept() {
        let sink = Arc::new(FlakySink {
            broken: AtomicBool::new(false),
        });
        let logs = logs(sink, true);
        let key = cursor_key("s");
        let at_limit = "v".repeat(MAX_CACHE_VALUE_BYTES - key.len());
        logs.push_log(&msg("a"), b"", Some(("s", &at_limit)))
            .unwrap();
        let over = "v".repeat(MAX_CACHE_VALUE_BYTES - key.len() + 1);
        assert_eq!(
            logs.push_log(&msg("b"), b"", Some(("s", &over))),
            Err(HandoffError::CacheTooLarge {
                key: key.clone(),
                size: MAX_CACHE_VALUE_BYTES + 1,
                limit: MAX_CACHE_VALUE_BYTES
            })
        );
        assert_eq!(
            logs.counters().processed,
            1,
            "the log of a refused cursor is not recorded"
        );
        assert_eq!(logs.read_cache(&key).as_deref(), Some(at_limit.as_str()));

        logs.write_cache("k", "small").unwrap();
        let big = "v".repeat(MAX_CACHE_VALUE_BYTES);
        assert_eq!(
            logs.write_cache("k", &big),
            Err(HandoffError::CacheTooLarge {
                key: "k".into(),
                size: MAX_CACHE_VALUE_BYTES + 1,
                limit: MAX_CACHE_VALUE_BYTES
            })
        );
        assert_eq!(logs.read_cache("k").as_deref(), Some("small"));
        let records = logs.state.lock().staging.records();
        assert_eq!(records, 3, "log a, its cursor, the small cache write");
    }

    #[test]
    fn cursor_writes_are_ignored_while_logs_are_dropped_by_configuration() {
        let sink = Arc::new(FlakySink {
            broken: AtomicBool::new(false),
        });
        let logs = logs(sink, false);
        logs.write_cache(&cursor_key("s"), "{\"n\":9}").unwrap();
        logs.write_cache("other", "v").unwrap();
        assert_eq!(
            logs.read_cache(&cursor_key("s")).as_deref(),
            Some("{\"n\":1}")
        );
        assert_eq!(logs.read_cache("other").as_deref(), Some("v"));
    }

    fn buffer(dir: &std::path::Path) -> Arc<crate::Buffer> {
        let opts = crate::BufferOptions::new(dir, 1 << 20, cairn_config::WhenFull::Block);
        crate::Buffer::open(opts, Arc::new(crate::Counters::default())).unwrap()
    }

    fn check_logs(id: &str, sink: Arc<crate::Buffer>) -> CheckLogs {
        let cfg = CheckLogsConfig {
            check_id: id.into(),
            hostname: "h".into(),
            logs_enabled: true,
            has_logs_entry: true,
            ..Default::default()
        };
        CheckLogs::new(cfg, sink).unwrap()
    }

    #[test]
    fn a_cache_identity_keeps_cursors_across_check_ids_and_a_reset_removes_them() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let b = buffer(tmp.path());
            let logs = check_logs("c:1", b.clone());
            logs.set_cache_id("c:src-1").unwrap();
            assert_eq!(logs.cache_id(), "c:src-1");
            logs.push_log(&msg("a"), b"", Some(("default", "{\"n\":1}")))
                .unwrap();
            logs.write_cache("k", "v").unwrap();
            logs.finish_run().unwrap();
            assert!(
                b.load_state("c:1").unwrap().is_empty(),
                "nothing is stored under the check id"
            );
            b.close().unwrap();
        }
        {
            // Another check id (the config changed), the same identity: the cursor is there.
            let b = buffer(tmp.path());
            let logs = check_logs("c:2", b.clone());
            assert_eq!(logs.read_cache(&cursor_key("default")), None);
            logs.set_cache_id("c:src-1").unwrap();
            assert_eq!(
                logs.read_cache(&cursor_key("default")).as_deref(),
                Some("{\"n\":1}")
            );
            let gone = logs.reset_cache(&[&cursor_key("default"), &cursor_key("absent")]);
            assert_eq!(
                gone,
                vec![cursor_key("default")],
                "only present keys are reset"
            );
            assert_eq!(logs.read_cache(&cursor_key("default")), None);
            logs.finish_run().unwrap();
            assert!(logs.reset_cache(&[&cursor_key("default")]).is_empty());
            b.close().unwrap();
        }
        let states = crate::read_all_states(tmp.path()).unwrap();
        assert_eq!(
            states.get("c:src-1"),
            Some(&CacheState::from([("k".to_string(), "v".to_string())])),
            "the reset removed the cursor only: {states:?}"
        );
    }
}
