//! The JSON object that goes to the intake for one log. Field names are defined once here.

use std::io::Write;

pub const MESSAGE: &str = "message";
pub const STATUS: &str = "status";
pub const TIMESTAMP: &str = "timestamp";
pub const HOSTNAME: &str = "hostname";
pub const SERVICE: &str = "service";
pub const DDSOURCE: &str = "ddsource";
pub const DDTAGS: &str = "ddtags";
/// The key a check uses for the source; it becomes [`DDSOURCE`] on the wire.
pub const SOURCE: &str = "source";
pub const DEFAULT_STATUS: &str = "info";
pub const TRUNCATED_MARKER: &str = "...TRUNCATED...";

/// The reserved fields of one log, borrowed from wherever the hand-off found them. `None` means
/// "use the check's default" (hostname, service, source) or leave out.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogFields<'a> {
    pub message: &'a str,
    pub status: Option<&'a str>,
    pub timestamp_ms: i64,
    pub hostname: Option<&'a str>,
    pub service: Option<&'a str>,
    pub source: Option<&'a str>,
    /// The check's own `ddtags`, when it gave one; the logs entry's tags are merged in.
    pub ddtags: Option<&'a str>,
}

/// Appends `s` as a JSON string literal.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    // serde_json's escaper is table driven and already handles every control character.
    serde_json::to_writer(&mut *out, s).expect("writing a str to a Vec cannot fail");
}

pub fn write_key(out: &mut Vec<u8>, key: &str) {
    write_str(out, key);
    out.push(b':');
}

pub fn write_i64(out: &mut Vec<u8>, v: i64) {
    let _ = write!(out, "{v}");
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Splits a comma-separated tag string, trimming blanks and dropping empty parts.
pub fn split_tags(tags: &str) -> impl Iterator<Item = &str> {
    tags.split(',').map(str::trim).filter(|t| !t.is_empty())
}

/// Joins tags with `,`, keeping the first occurrence of each.
pub fn join_tags_dedup<'a>(tags: impl IntoIterator<Item = &'a str>) -> String {
    let mut seen = std::collections::HashSet::new();
    let mut out = String::new();
    for t in tags {
        if seen.insert(t) {
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(t);
        }
    }
    out
}
