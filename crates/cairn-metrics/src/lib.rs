//! Check metrics: the check sampler (aggregation with the Datadog Agent's check-sampler
//! semantics, one [`CheckSampler`] per check instance, committed once per run, flushed every
//! 15 s) and the wire encoding of what it flushes (`MetricPayload` protobuf for
//! `/api/v2/series`, the `/api/v1/check_run` JSON array, payload splitting and compression).
//!
//! It owns no I/O, no threads, no Python and no clock: callers pass every timestamp (seconds
//! since the epoch, `f64`) and send the bytes it returns. Semantics are documented on
//! [`MetricKind`] and in `sampler.rs`, with the Agent source file each rule comes from.
//!
//! The protobuf is written by hand (`wire.rs`) rather than with `prost`: the message is five
//! small types, a hand encoder writes straight from borrowed strings ([`SerieView`]: a
//! [`Serie`], or the sampler's intern tables in [`CheckSampler::flush_payloads`]) without
//! building an owned copy of every name and tag, it knows each series' encoded size exactly (needed to split payloads
//! at the Agent's limits), and it needs no derive or build-script dependency.

mod config;
mod intern;
mod metric;
mod sampler;
pub mod wire;

pub use config::{Aggregate, AggregatorConfig, ConfigError};
pub use sampler::{CheckSampler, MetricKind, Sample, SampleError, Serie, SeriesKind, Unsupported};
pub use wire::SerieView;

/// `source_type_name` the Agent puts on every series that comes from a check
/// (`checksSourceTypeName` in the Agent's `pkg/aggregator/check_sampler.go`).
pub const CHECKS_SOURCE_TYPE_NAME: &str = "System";
