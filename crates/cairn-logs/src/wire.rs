//! The JSON object that goes to the intake for one log. Field names are defined once here.

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

/// The fixed key prefixes of every log, encoded once.
pub struct Keys {
    /// `{"message":`
    pub open_message: Vec<u8>,
    /// `,"status":`
    pub status: Vec<u8>,
    /// `,"timestamp":`
    pub timestamp: Vec<u8>,
}

pub fn keys() -> &'static Keys {
    static KEYS: std::sync::OnceLock<Keys> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let key = |prefix: u8, k: &str| {
            let mut v = vec![prefix];
            write_key(&mut v, k);
            v
        };
        Keys {
            open_message: key(b'{', MESSAGE),
            status: key(b',', STATUS),
            timestamp: key(b',', TIMESTAMP),
        }
    })
}

/// Appends `s` as a JSON string literal.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    // Most log text needs no escaping: a word-at-a-time scan decides, then a single copy.
    // Anything else goes through serde_json's escaper, which handles every control character.
    if needs_escape(s.as_bytes()) {
        serde_json::to_writer(&mut *out, s).expect("writing a str to a Vec cannot fail");
    } else {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
}

/// Whether `b` holds a byte below 0x20, `"` or `\\`, eight bytes at a time with no byte loop:
/// the tail is read as the last eight bytes (overlapping), a short string padded with spaces.
fn needs_escape(b: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte of `x` is zero (or below `n`) <=> the matching byte of the result is set; bytes
    // >= 0x80 are masked out by `!x`, so UTF-8 never gives a false positive.
    let flags = |w: u64| {
        let below_space = w.wrapping_sub(ONES * 0x20) & !w;
        let q = w ^ (ONES * b'"' as u64);
        let bs = w ^ (ONES * b'\\' as u64);
        (below_space | (q.wrapping_sub(ONES) & !q) | (bs.wrapping_sub(ONES) & !bs)) & HIGH
    };
    let word = |c: &[u8]| u64::from_le_bytes(c.try_into().expect("an 8-byte slice"));
    if b.len() < 8 {
        let mut pad = [b' '; 8];
        pad[..b.len()].copy_from_slice(b);
        return flags(u64::from_le_bytes(pad)) != 0;
    }
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        if flags(word(c)) != 0 {
            return true;
        }
    }
    !chunks.remainder().is_empty() && flags(word(&b[b.len() - 8..])) != 0
}

pub fn write_key(out: &mut Vec<u8>, key: &str) {
    write_str(out, key);
    out.push(b':');
}

pub fn write_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// `,"key":"value"`, encoded once for values that repeat on every log of a check.
pub fn field(key: &str, value: &str) -> Vec<u8> {
    let mut out = vec![b','];
    write_key(&mut out, key);
    write_str(&mut out, value);
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_exactly_like_serde_json() {
        let cases = [
            "",
            "plain",
            "exactly8",
            "quote \" inside",
            "back\\slash",
            "tab\there",
            "nl\n",
            "\u{1}",
            "é unicode ✓ and more than eight bytes",
            "ends with quote\"",
            "0123456789abcdef\u{1f}",
            "\u{7f} del is fine",
            "<script>alert(1)</script>",
            "a\"",
            "1234567\\",
            "12345678\n",
            "123456789\"",
            "\"2345678",
            "x\u{1f}",
        ];
        for c in cases {
            let mut out = Vec::new();
            write_str(&mut out, c);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(c).unwrap(),
                "{c:?}"
            );
        }
    }
}
