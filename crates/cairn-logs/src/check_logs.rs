//! [`CheckLogs`]: everything one check instance needs to turn a hand-off into a staged record,
//! built once when the check is loaded so that the per-log work is a few copies.

use std::sync::Arc;

use parking_lot::Mutex;

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
    /// Logs accepted into the staging area.
    pub processed: u64,
    pub truncated: u64,
    pub dropped_logs_disabled: u64,
    pub dropped_no_logs_config: u64,
    pub dropped_excluded: u64,
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
    /// Holds the spare staging buffer, swapped in at each flush so no flush reallocates.
    flush_order: Mutex<Staging>,
}

struct State {
    staging: Staging,
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
                cache,
                counters: LogCounters::default(),
                warned_drop: false,
                lost: None,
            }),
            flush_order: Mutex::new(Staging::new()),
        })
    }

    pub fn check_id(&self) -> &str {
        &self.check_id
    }

    /// Stages one log (and its cursor). `attributes` is the JSON of the non-reserved keys, each
    /// as `,"key":value`. Returns true when the caller should [`flush`](Self::flush) (with the
    /// GIL released) because the staging area is large.
    ///
    /// A log dropped because logs are disabled or unconfigured does not move its cursor: the
    /// data is still there to be read once logs are turned on.
    pub fn push_log(
        &self,
        fields: &LogFields<'_>,
        attributes: &[u8],
        cursor: Option<(&str, &str)>,
    ) -> bool {
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
            return false;
        }
        let st = &mut *st;
        match self.processor.apply(fields.message) {
            Outcome::Excluded(_) => st.counters.count_drop(DropReason::Excluded),
            Outcome::Keep { message, truncated } => {
                st.counters.processed += 1;
                st.counters.truncated += truncated as u64;
                let before = st.staging.len_bytes();
                st.staging
                    .push_log_with(|out| self.encode(out, fields, &message, attributes));
                st.counters.bytes += (st.staging.len_bytes() - before - 5) as u64;
            }
        }
        if let Some((stream, value)) = cursor {
            let key = cursor_key(stream);
            st.staging.push_cache(&key, value);
            st.cache.insert(key, value.to_string());
        }
        st.staging.len_bytes() >= FLUSH_THRESHOLD_BYTES
    }

    fn encode(&self, out: &mut Vec<u8>, f: &LogFields<'_>, message: &str, attributes: &[u8]) {
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
        out.extend_from_slice(attributes);
        out.push(b'}');
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
    pub fn write_cache(&self, key: &str, value: &str) -> bool {
        if self.drop_reason.is_some() && key.starts_with(CURSOR_KEY_PREFIX) {
            return false;
        }
        let mut st = self.state.lock();
        st.staging.push_cache(key, value);
        st.cache.insert(key.to_string(), value.to_string());
        st.staging.len_bytes() >= FLUSH_THRESHOLD_BYTES
    }

    pub fn read_cache(&self, key: &str) -> Option<String> {
        self.state.lock().cache.get(key).cloned()
    }

    /// Moves staged records to the sink. May block: call it without the GIL.
    pub fn flush(&self) -> Result<(), SinkError> {
        let mut batch = self.flush_order.lock();
        std::mem::swap(&mut *batch, &mut self.state.lock().staging);
        if batch.is_empty() {
            return Ok(());
        }
        let result = self.sink.append(&self.check_id, &mut batch);
        batch.clear();
        if let Err(e) = &result {
            self.rewind(e);
        }
        result
    }

    /// After the sink lost staged records: anything staged since is dropped too, and the
    /// in-memory cache goes back to the sink's state, so no cursor stays ahead of lost logs.
    /// The check then re-reads from its last kept cursor.
    fn rewind(&self, e: &SinkError) {
        let restored = self.sink.load_state(&self.check_id);
        let mut st = self.state.lock();
        let dropped_after = st.staging.logs();
        st.staging.clear();
        match restored {
            Ok(state) => st.cache = state,
            // Without the durable state, forgetting every cursor is the safe side: logs may be
            // sent again, none is skipped.
            Err(_) => st.cache.clear(),
        }
        st.lost = Some(e.to_string());
        tracing::error!(check_id = %self.check_id, error = %e, dropped_after, "staged records lost; cursors rewound to their last kept state");
    }

    /// Flushes and waits until the run's records are durable. Call it without the GIL. Fails
    /// when records of this run were lost, even if the check caught the error.
    pub fn finish_run(&self) -> Result<(), SinkError> {
        self.flush()?;
        let _order = self.flush_order.lock();
        self.sink.commit(&self.check_id)?;
        match self.state.lock().lost.take() {
            Some(message) => Err(SinkError::Lost(message)),
            None => Ok(()),
        }
    }

    pub fn counters(&self) -> LogCounters {
        self.state.lock().counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        logs.push_log(&f, b"", Some(("s", "{\"n\":2}")));
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

    #[test]
    fn cursor_writes_are_ignored_while_logs_are_dropped_by_configuration() {
        let sink = Arc::new(FlakySink {
            broken: AtomicBool::new(false),
        });
        let logs = logs(sink, false);
        logs.write_cache(&cursor_key("s"), "{\"n\":9}");
        logs.write_cache("other", "v");
        assert_eq!(
            logs.read_cache(&cursor_key("s")).as_deref(),
            Some("{\"n\":1}")
        );
        assert_eq!(logs.read_cache("other").as_deref(), Some("v"));
    }
}
