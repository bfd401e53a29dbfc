//! The path of a log after the check hands it over: the wire encoding of one log, the processing
//! rules, the per-check staging area that keeps logs, cursors and cache writes in one order, and
//! the sinks that take staged records.
//!
//! This crate knows nothing of Python: `cairn-checks` turns Python objects into [`LogFields`]
//! and calls [`CheckLogs`]. It must never block while a caller could hold the GIL, except through
//! [`RecordSink::append`], which callers invoke with the GIL released.

pub mod batch;
pub mod buffer;
pub mod check_logs;
pub mod counters;
pub mod encode;
pub mod pipeline;
pub mod private_fs;
pub mod processing;
pub mod sender;
pub mod sink;
pub mod staging;
pub mod state;
pub mod tap;
pub mod wire;

pub use buffer::{read_all_states, read_state_snapshot, Buffer, BufferGauges, BufferOptions};
pub use check_logs::{
    CheckLogs, CheckLogsConfig, DropReason, HandoffError, LogCounters, MAX_CACHE_VALUE_BYTES,
};
pub use counters::{CheckLogCounters, Counters, CountersSnapshot, LossReason};
pub use pipeline::{Pipeline, PipelineConfig, PipelineError};
pub use processing::{Outcome, Processor};
pub use sink::{MemorySink, RecordSink, SinkError, StateLoader};
pub use staging::{Record, Staging};
pub use state::CacheState;
pub use wire::LogFields;
