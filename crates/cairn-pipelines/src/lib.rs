//! cairn-pipelines: Datadog-style log processing pipelines, applied by the local intake to each
//! log before it is stored, and by `cairn pipelines test` without storing anything.
//!
//! Owns: the pipeline definitions in the schema of Datadog's Logs Pipelines API (read from
//! YAML or JSON), the grok parser, every processor, and the record of which pipeline and
//! processors touched a log.
//!
//! Must not: know about HTTP, SQLite or files other than the text it is handed; drop a log
//! (a processor that fails leaves the log as it arrived, with the error noted).

pub mod grok;
