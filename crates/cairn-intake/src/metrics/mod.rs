//! Metrics, service checks and events (issue 9): the receiving side of `/api/v2/series`,
//! `/api/v1/series`, `/api/v1/check_run` and `/api/v1/events`, and the read APIs over what is
//! stored (`/api/v1/query` with Datadog's metric query syntax, names, check status, events).

pub mod api;
pub mod client;
pub mod ingest;
pub mod proto;
pub mod query;
