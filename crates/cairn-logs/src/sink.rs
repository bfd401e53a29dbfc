//! Where staged records go. The durable pipeline implements [`RecordSink`]; `cairn check` uses
//! [`MemorySink`] so it can show the logs and leave a running agent's cursors alone.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::staging::{Record, Staging};
use crate::state::{CacheState, StateStore};

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: unreadable check state: {message}")]
    State { path: PathBuf, message: String },
    #[error("the logs pipeline is shut down")]
    Closed,
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

/// Keeps every record in memory. Reads stored state from `store` when given; writes it back
/// only when `persist` is set (`cairn check --persist`).
#[derive(Default)]
pub struct MemorySink {
    store: Option<StateStore>,
    persist: bool,
    /// False when only counts matter (`cairn check --format summary`): logs are not kept.
    keep_logs: bool,
    inner: Mutex<HashMap<String, CheckRecords>>,
}

#[derive(Default)]
struct CheckRecords {
    logs: Vec<Vec<u8>>,
    state: CacheState,
    dirty: bool,
}

impl MemorySink {
    pub fn new(store: Option<StateStore>, persist: bool, keep_logs: bool) -> Arc<Self> {
        Arc::new(MemorySink { store, persist, keep_logs, inner: Mutex::default() })
    }

    /// Removes and returns the logs collected for `check_id` so far, as wire JSON objects.
    pub fn take_logs(&self, check_id: &str) -> Vec<Vec<u8>> {
        self.inner.lock().get_mut(check_id).map(|c| std::mem::take(&mut c.logs)).unwrap_or_default()
    }
}

impl RecordSink for MemorySink {
    fn load_state(&self, check_id: &str) -> Result<CacheState, SinkError> {
        let state = match &self.store {
            Some(store) => store.load(check_id)?,
            None => CacheState::new(),
        };
        self.inner.lock().entry(check_id.to_string()).or_default().state = state.clone();
        Ok(state)
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
                    rec.state.insert(key.to_string(), value.to_string());
                    rec.dirty = true;
                }
            }
        }
        staging.clear();
        Ok(())
    }

    fn commit(&self, check_id: &str) -> Result<(), SinkError> {
        let (Some(store), true) = (&self.store, self.persist) else { return Ok(()) };
        let mut inner = self.inner.lock();
        if let Some(rec) = inner.get_mut(check_id).filter(|r| r.dirty) {
            store.save(check_id, &rec.state)?;
            rec.dirty = false;
        }
        Ok(())
    }
}

/// Persists cache state at each commit and discards logs after counting them. This is what
/// `cairn run` uses when no shipping pipeline is configured.
pub struct StateFileSink {
    memory: MemorySink,
}

impl StateFileSink {
    pub fn new(store: StateStore) -> Arc<Self> {
        Arc::new(StateFileSink {
            memory: MemorySink { store: Some(store), persist: true, keep_logs: false, inner: Mutex::default() },
        })
    }
}

impl RecordSink for StateFileSink {
    fn load_state(&self, check_id: &str) -> Result<CacheState, SinkError> {
        self.memory.load_state(check_id)
    }
    fn append(&self, check_id: &str, staging: &mut Staging) -> Result<(), SinkError> {
        self.memory.append(check_id, staging)
    }
    fn commit(&self, check_id: &str) -> Result<(), SinkError> {
        self.memory.commit(check_id)
    }
}
