//! Where staged records go. The durable pipeline implements [`RecordSink`]; `cairn check` uses
//! [`MemorySink`] so it can show the logs and leave a running agent's cursors alone.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::staging::{Record, Staging};
use crate::state::CacheState;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: unreadable check state: {message}")]
    State { path: PathBuf, message: String },
    #[error("the logs pipeline is shut down")]
    Closed,
    #[error("records of this run were lost ({0}); cursors were rewound to their last kept state")]
    Lost(String),
    #[error("{0}")]
    Unusable(String),
    #[error(transparent)]
    Fs(#[from] crate::private_fs::PrivateFsError),
}

/// Takes the records of checks, in order.
pub trait RecordSink: Send + Sync {
    /// The persistent-cache state of `check_id` as of the last commit (cursors included).
    fn load_state(&self, check_id: &str) -> Result<CacheState, SinkError>;
    /// Moves the staged records of `check_id` into the sink, keeping their order; `staging`
    /// is left empty. May block on back-pressure: callers must not hold the GIL.
    fn append(&self, check_id: &str, staging: &mut Staging) -> Result<(), SinkError>;
    /// Returns once everything appended for `check_id` is durable.
    fn commit(&self, check_id: &str) -> Result<(), SinkError>;
}

/// Reads a check's stored state.
pub type StateLoader = Box<dyn Fn(&str) -> Result<CacheState, SinkError> + Send + Sync>;

/// Keeps every record in memory and writes nothing: `cairn check` uses it so that it can show
/// the logs and never move a running agent's cursors. Stored state comes from `loader`.
#[derive(Default)]
pub struct MemorySink {
    loader: Option<StateLoader>,
    /// False when only counts matter (`cairn check --format summary`): logs are not kept.
    keep_logs: bool,
    inner: Mutex<HashMap<String, CheckRecords>>,
}

#[derive(Default)]
struct CheckRecords {
    logs: Vec<Vec<u8>>,
    /// Cache writes made in this process, last value per key.
    written: CacheState,
}

impl MemorySink {
    pub fn new(loader: Option<StateLoader>, keep_logs: bool) -> Arc<Self> {
        Arc::new(MemorySink {
            loader,
            keep_logs,
            inner: Mutex::default(),
        })
    }

    /// Removes and returns the logs collected for `check_id` so far, as wire JSON objects.
    pub fn take_logs(&self, check_id: &str) -> Vec<Vec<u8>> {
        self.inner
            .lock()
            .get_mut(check_id)
            .map(|c| std::mem::take(&mut c.logs))
            .unwrap_or_default()
    }

    /// The cache entries (cursors included) `check_id` wrote in this process.
    pub fn written_state(&self, check_id: &str) -> CacheState {
        self.inner
            .lock()
            .get(check_id)
            .map(|c| c.written.clone())
            .unwrap_or_default()
    }
}

impl RecordSink for MemorySink {
    fn load_state(&self, check_id: &str) -> Result<CacheState, SinkError> {
        match &self.loader {
            Some(load) => load(check_id),
            None => Ok(CacheState::new()),
        }
    }

    fn append(&self, check_id: &str, staging: &mut Staging) -> Result<(), SinkError> {
        if !self.keep_logs && staging.records() == staging.logs() {
            // Nothing to keep: skip walking a buffer the CPU cache has likely lost by now.
            staging.clear();
            return Ok(());
        }
        let mut inner = self.inner.lock();
        let rec = inner.entry(check_id.to_string()).or_default();
        for r in staging.iter() {
            match r {
                Record::Log(json) if self.keep_logs => rec.logs.push(json.to_vec()),
                Record::Log(_) => {}
                Record::Cache { key, value } => {
                    rec.written.insert(key.to_string(), value.to_string());
                }
                Record::Reset(keys) => {
                    for key in crate::staging::decode_keys(keys).unwrap_or_default() {
                        rec.written.remove(key);
                    }
                }
            }
        }
        staging.clear();
        Ok(())
    }

    fn commit(&self, _check_id: &str) -> Result<(), SinkError> {
        Ok(())
    }
}
