//! Names of the intake protocol (SPEC §4) as the receiving side sees them. The intake is an
//! independent implementation of an external protocol, so it keeps its own copy of the names
//! rather than depending on the sending crate.

pub const MESSAGE: &str = "message";
pub const STATUS: &str = "status";
pub const TIMESTAMP: &str = "timestamp";
pub const HOSTNAME: &str = "hostname";
/// Datadog also accepts `host` for the hostname.
pub const HOST: &str = "host";
pub const SERVICE: &str = "service";
pub const DDSOURCE: &str = "ddsource";
/// Datadog also accepts `source` where `ddsource` is expected.
pub const SOURCE: &str = "source";
pub const DDTAGS: &str = "ddtags";
pub const DEFAULT_STATUS: &str = "info";
pub const TRUNCATED_MARKER: &str = "...TRUNCATED...";
pub const API_KEY_HEADER: &str = "dd-api-key";
/// The query parameter Datadog accepts as an alternative to the header.
pub const API_KEY_PARAM: &str = "dd-api-key";

/// Most decompressed bytes one request may carry.
pub const MAX_PAYLOAD_BYTES: usize = 5_000_000;
/// Most log entries one request may carry.
pub const MAX_ENTRIES: usize = 1_000;
/// A message longer than this is stored cut, ending with [`TRUNCATED_MARKER`].
pub const MAX_MESSAGE_BYTES: usize = 1_000_000;
