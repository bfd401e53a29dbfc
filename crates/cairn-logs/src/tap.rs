//! A live view of what the pipeline ships, for `cairn stream-logs`: a [`TapSink`] in front of
//! the durable buffer copies each log's final wire JSON (after processing rules) to the
//! readers subscribed at that moment.
//!
//! With no reader the cost is one relaxed atomic load per append. A reader that does not keep
//! up loses lines (counted per reader, and told); the pipeline never waits for it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::sink::{RecordSink, SinkError};
use crate::staging::{Record, Staging};
use crate::state::CacheState;
use crate::wire;

/// Lines a reader may have queued before further ones are skipped.
pub const READER_QUEUE: usize = 4096;

/// Which logs a reader wants; `None` matches anything.
#[derive(Debug, Clone, Default)]
pub struct TapFilter {
    /// A check name (the part of the check id before the first `:`) or a full check id.
    pub check: Option<String>,
    pub source: Option<String>,
    pub service: Option<String>,
}

/// One log as shipped.
#[derive(Debug, Clone)]
pub struct TapLine {
    pub check_id: Arc<str>,
    /// The log's wire JSON object.
    pub json: Arc<[u8]>,
}

struct Reader {
    id: u64,
    filter: TapFilter,
    tx: tokio::sync::mpsc::Sender<TapLine>,
    skipped: Arc<AtomicU64>,
}

/// The readers of the live stream.
#[derive(Default)]
pub struct LogTap {
    active: AtomicUsize,
    next_id: AtomicU64,
    readers: Mutex<Vec<Reader>>,
}

/// A subscription; dropping it unsubscribes.
pub struct Subscription {
    tap: Arc<LogTap>,
    id: u64,
    pub lines: tokio::sync::mpsc::Receiver<TapLine>,
    skipped: Arc<AtomicU64>,
}

impl Subscription {
    /// Lines not delivered because this reader's queue was full, since it subscribed.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut readers = self.tap.readers.lock();
        readers.retain(|r| r.id != self.id);
        self.tap.active.store(readers.len(), Ordering::Relaxed);
    }
}

impl LogTap {
    pub fn new() -> Arc<LogTap> {
        Arc::new(LogTap::default())
    }

    pub fn subscribe(self: &Arc<Self>, filter: TapFilter) -> Subscription {
        let (tx, rx) = tokio::sync::mpsc::channel(READER_QUEUE);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let skipped = Arc::new(AtomicU64::new(0));
        let mut readers = self.readers.lock();
        readers.push(Reader {
            id,
            filter,
            tx,
            skipped: skipped.clone(),
        });
        self.active.store(readers.len(), Ordering::Relaxed);
        Subscription {
            tap: self.clone(),
            id,
            lines: rx,
            skipped,
        }
    }

    pub fn readers(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    fn publish(&self, check_id: &str, staging: &Staging) {
        let readers = self.readers.lock();
        if readers.is_empty() {
            return;
        }
        let check_id: Arc<str> = Arc::from(check_id);
        let check_name = check_id.split(':').next().unwrap_or("");
        let wants_check = |f: &TapFilter| {
            f.check
                .as_deref()
                .is_none_or(|c| c == check_name || c == &*check_id)
        };
        let needs_fields = readers.iter().any(|r| {
            wants_check(&r.filter) && (r.filter.source.is_some() || r.filter.service.is_some())
        });
        for record in staging.iter() {
            let Record::Log(json) = record else { continue };
            let fields = needs_fields.then(|| LogKeys::read(json));
            let mut line: Option<TapLine> = None;
            for r in readers.iter() {
                let f = &r.filter;
                if !wants_check(f) {
                    continue;
                }
                if let Some(keys) = &fields {
                    if f.source
                        .as_ref()
                        .is_some_and(|s| keys.source.as_deref() != Some(s))
                    {
                        continue;
                    }
                    if f.service
                        .as_ref()
                        .is_some_and(|s| keys.service.as_deref() != Some(s))
                    {
                        continue;
                    }
                }
                let line = line.get_or_insert_with(|| TapLine {
                    check_id: check_id.clone(),
                    json: Arc::from(json),
                });
                if r.tx.try_send(line.clone()).is_err() {
                    r.skipped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// The two reserved attributes a filter can name.
#[derive(serde::Deserialize)]
struct LogKeys {
    #[serde(rename = "ddsource")]
    source: Option<String>,
    service: Option<String>,
}

impl LogKeys {
    fn read(json: &[u8]) -> LogKeys {
        debug_assert_eq!(wire::DDSOURCE, "ddsource");
        debug_assert_eq!(wire::SERVICE, "service");
        serde_json::from_slice(json).unwrap_or(LogKeys {
            source: None,
            service: None,
        })
    }
}

/// A [`RecordSink`] that shows each appended log to the tap's readers, then hands the records
/// to `inner` unchanged.
pub struct TapSink {
    inner: Arc<dyn RecordSink>,
    tap: Arc<LogTap>,
}

impl TapSink {
    pub fn new(inner: Arc<dyn RecordSink>, tap: Arc<LogTap>) -> TapSink {
        TapSink { inner, tap }
    }
}

impl RecordSink for TapSink {
    fn load_state(&self, check_id: &str) -> Result<CacheState, SinkError> {
        self.inner.load_state(check_id)
    }

    fn append(&self, check_id: &str, staging: &mut Staging) -> Result<(), SinkError> {
        if self.tap.readers() > 0 && staging.logs() > 0 {
            self.tap.publish(check_id, staging);
        }
        self.inner.append(check_id, staging)
    }

    fn commit(&self, check_id: &str) -> Result<(), SinkError> {
        self.inner.commit(check_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::MemorySink;

    fn staged(logs: &[&str]) -> Staging {
        let mut s = Staging::new();
        for l in logs {
            s.push_log_with(|out| out.extend_from_slice(l.as_bytes()));
        }
        s.push_cache("log_cursor_default", "{}");
        s
    }

    #[test]
    fn readers_get_matching_logs_only_and_the_sink_gets_everything() {
        let tap = LogTap::new();
        let inner: Arc<MemorySink> = Arc::new(MemorySink::default());
        let sink = TapSink::new(inner.clone(), tap.clone());
        let mut all = tap.subscribe(TapFilter::default());
        let mut web = tap.subscribe(TapFilter {
            service: Some("web".into()),
            ..Default::default()
        });
        let mut other_check = tap.subscribe(TapFilter {
            check: Some("other".into()),
            ..Default::default()
        });
        let mut s = staged(&[
            r#"{"message":"a","service":"web","ddsource":"x"}"#,
            r#"{"message":"b","service":"db"}"#,
        ]);
        sink.append("mycheck:0123", &mut s).unwrap();
        assert!(s.is_empty());
        let got: Vec<String> = std::iter::from_fn(|| all.lines.try_recv().ok())
            .map(|l| String::from_utf8(l.json.to_vec()).unwrap())
            .collect();
        assert_eq!(got.len(), 2);
        assert!(got[1].contains("\"b\""));
        let w = web.lines.try_recv().unwrap();
        assert_eq!(&*w.check_id, "mycheck:0123");
        assert!(web.lines.try_recv().is_err());
        assert!(other_check.lines.try_recv().is_err());
        drop(all);
        drop(web);
        drop(other_check);
        assert_eq!(tap.readers(), 0);
    }

    #[test]
    fn a_slow_reader_loses_lines_counted_and_never_blocks() {
        let tap = LogTap::new();
        let sink = TapSink::new(Arc::new(MemorySink::default()), tap.clone());
        let sub = tap.subscribe(TapFilter::default());
        let lines: Vec<String> = (0..READER_QUEUE + 10)
            .map(|i| format!(r#"{{"message":"{i}"}}"#))
            .collect();
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        sink.append("c:1", &mut staged(&refs)).unwrap();
        assert_eq!(sub.skipped(), 10);
    }
}
