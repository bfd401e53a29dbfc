//! From an HTTP body to rows: decoding under a byte cap, then parsing log objects.
//!
//! The cap is applied while decompressing, so a few kilobytes that would expand to gigabytes
//! cost at most the cap in memory and the time to produce it.

use std::cell::Cell;
use std::fmt;
use std::io::Read;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use cairn_wire::normalize;

use crate::wire;

/// Why a request body is refused; each maps to one HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reject {
    /// 400: the body is not what the protocol says.
    BadBody(String),
    /// 413: over the payload limits.
    TooLarge(String),
    /// 415: a `Content-Encoding` the intake does not speak.
    UnsupportedEncoding(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
    Deflate,
    Zstd,
}

impl Encoding {
    pub fn from_header(value: Option<&str>) -> Result<Self, Reject> {
        let Some(v) = value.map(str::trim) else {
            return Ok(Encoding::Identity);
        };
        match v.to_ascii_lowercase().as_str() {
            "" | "identity" => Ok(Encoding::Identity),
            "gzip" | "x-gzip" => Ok(Encoding::Gzip),
            "deflate" => Ok(Encoding::Deflate),
            "zstd" => Ok(Encoding::Zstd),
            _ => Err(Reject::UnsupportedEncoding(format!(
                "unsupported Content-Encoding {v:?}: use gzip, deflate, zstd or none"
            ))),
        }
    }
}

/// zstd frames name their own window size; a payload of at most 5 MB never needs more than
/// 8 MiB, and refusing larger windows keeps a hostile frame from reserving 128 MiB.
const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// Decodes `body` and returns at most `cap` bytes, or [`Reject::TooLarge`] as soon as the
/// output would pass `cap`.
pub fn decode_capped(encoding: Encoding, body: &[u8], cap: usize) -> Result<Vec<u8>, Reject> {
    if encoding == Encoding::Identity {
        if body.len() > cap {
            return Err(too_large(cap));
        }
        return Ok(body.to_vec());
    }
    let reader: Box<dyn Read + '_> = match encoding {
        Encoding::Identity => unreachable!("handled above"),
        Encoding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(body)),
        // HTTP's "deflate" is zlib-wrapped, but some senders emit raw deflate; the zlib header
        // is self-checking, so look before choosing.
        Encoding::Deflate if looks_like_zlib(body) => {
            Box::new(flate2::read::ZlibDecoder::new(body))
        }
        Encoding::Deflate => Box::new(flate2::read::DeflateDecoder::new(body)),
        Encoding::Zstd => {
            let mut d = zstd::stream::read::Decoder::with_buffer(body)
                .map_err(|e| Reject::BadBody(format!("zstd: {e}")))?;
            d.window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(|e| Reject::BadBody(format!("zstd: {e}")))?;
            Box::new(d)
        }
    };
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(cap + 1));
    reader
        .take(cap as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| Reject::BadBody(format!("cannot decompress the body: {e}")))?;
    if out.len() > cap {
        return Err(too_large(cap));
    }
    Ok(out)
}

fn too_large(cap: usize) -> Reject {
    Reject::TooLarge(format!("payload is over {cap} bytes once decompressed"))
}

fn looks_like_zlib(body: &[u8]) -> bool {
    matches!(body, [cmf, flg, ..] if cmf & 0x0f == 8 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0)
}

/// One log as the store wants it: reserved fields split out, the rest kept as JSON text.
#[derive(Debug, Clone, PartialEq)]
pub struct NewLog {
    pub timestamp_ms: i64,
    pub status: String,
    pub host: String,
    pub service: String,
    pub source: String,
    pub message: String,
    /// Tags in `,a:b,c,` form: one leading and one trailing comma so that a tag test is a
    /// substring test for `,tag,`.
    pub tags: String,
    /// A JSON object of the non-reserved keys, or `None` when there are none.
    pub attributes: Option<String>,
    pub truncated: bool,
    /// The attribute leaves, found here on the request's thread so that the single writer
    /// only has to count them (see [`leaves_of`]).
    pub leaves: Leaves,
}

/// The JSON type of one attribute leaf, as the attribute listing reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafKind {
    Number,
    String,
    Boolean,
    /// `null`, or an array (the listing calls such paths mixed).
    Other,
}

/// One leaf of a log's attributes: its path as the query language's JSON path (`$."a"."b"`),
/// the dotted name people type, its type, and its value when it is a JSON number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Leaf<'a> {
    pub json_path: &'a str,
    pub dotted: &'a str,
    pub kind: LeafKind,
    pub number: Option<f64>,
    /// Its value when it is a JSON string of at most [`MAX_VALUE_LEN`] bytes (the value a facet
    /// groups by); `None` for a longer string or another type.
    pub text: Option<&'a str>,
}

/// The leaves of one log, their texts in one buffer: a log has a dozen leaves of three texts
/// each, and one string per text was most of the cost of finding them (measured).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Leaves {
    texts: String,
    items: Vec<LeafItem>,
}

#[derive(Debug, Clone, PartialEq)]
struct LeafItem {
    /// Ends of the JSON path, of the dotted name and of the value in `texts`; each starts
    /// where the one before it ends.
    ends: [usize; 3],
    kind: LeafKind,
    number: Option<f64>,
    has_text: bool,
}

impl Leaves {
    /// Room for texts of `bytes` and a dozen leaves, so that a log's leaves do not grow the
    /// buffers step by step (the growing measured a third of the walk).
    fn with_capacity(bytes: usize) -> Leaves {
        Leaves {
            texts: String::with_capacity(bytes.clamp(256, 64 << 10)),
            items: Vec::with_capacity(16),
        }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = Leaf<'_>> + '_ {
        let mut start = 0;
        self.items.iter().map(move |item| {
            let [json_end, dotted_end, text_end] = item.ends;
            let leaf = Leaf {
                json_path: &self.texts[start..json_end],
                dotted: &self.texts[json_end..dotted_end],
                kind: item.kind,
                number: item.number,
                text: item.has_text.then(|| &self.texts[dotted_end..text_end]),
            };
            start = text_end;
            leaf
        })
    }

    /// Adds a leaf at `path`; `text` writes its value and says whether it did (writing
    /// nothing when it does not).
    fn push(
        &mut self,
        path: &PathBuf,
        kind: LeafKind,
        number: Option<f64>,
        text: impl FnOnce(&mut String) -> bool,
    ) {
        self.texts.push_str(&path.json_path);
        let json_end = self.texts.len();
        self.texts.push_str(&path.dotted);
        let dotted_end = self.texts.len();
        let has_text = text(&mut self.texts);
        self.items.push(LeafItem {
            ends: [json_end, dotted_end, self.texts.len()],
            kind,
            number: number.filter(|n| n.is_finite()),
            has_text,
        });
    }
}

/// Longer string values are not kept per minute: the path's text facet scans instead.
pub const MAX_VALUE_LEN: usize = 128;

/// Writes the decoded text of a raw JSON string when it is short enough to keep.
fn push_short_text(raw: &str, out: &mut String) -> bool {
    // An escaped character takes at most 6 bytes for one char of at most 4.
    if raw.len() > 6 * MAX_VALUE_LEN + 2 {
        return false;
    }
    if raw.contains('\\') {
        match serde_json::from_str::<String>(raw) {
            Ok(text) if text.len() <= MAX_VALUE_LEN => {
                out.push_str(&text);
                true
            }
            _ => false,
        }
    } else {
        match raw.get(1..raw.len().saturating_sub(1)) {
            Some(text) if text.len() <= MAX_VALUE_LEN => {
                out.push_str(text);
                true
            }
            _ => false,
        }
    }
}

/// Paths deeper than this are left out of the listing and the measure tables; the log keeps
/// them and queries still find them by scanning.
const MAX_LEAF_DEPTH: usize = 8;
/// A log with more leaves than this is listed by its first ones only.
const MAX_LEAVES: usize = 256;

/// The leaves of an attributes object (objects are walked, arrays and scalars are leaves).
pub fn leaves_of(attributes: &str) -> Leaves {
    // The paths and names of the leaves take about twice the text of their keys.
    let mut out = Leaves::with_capacity(2 * attributes.len());
    let mut path = PathBuf::new();
    // Borrowed first: no value is decoded or copied. A key with an escape cannot be borrowed;
    // such objects take the owned walk, which gives the same leaves.
    if walk_raw(attributes, &mut path, &mut out).is_some() {
        return out;
    }
    out = Leaves::default();
    let mut path = PathBuf::default();
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(attributes)
    else {
        return out;
    };
    walk(&map, &mut path, &mut out);
    out
}

/// [`leaves_of`] for attributes already parsed (a log a pipeline changed), without writing
/// and re-reading their JSON.
pub(crate) fn leaves_of_map(attributes: &serde_json::Map<String, serde_json::Value>) -> Leaves {
    let mut out = Leaves::with_capacity(1024);
    walk(attributes, &mut PathBuf::new(), &mut out);
    out
}

/// The path of the key being walked, in both spellings a [`Leaf`] holds, grown and cut back
/// one step at a time: a leaf copies two finished strings instead of rebuilding them from
/// every step (the same text as `query::json_path_of` and `query::dotted_path`).
#[derive(Default)]
struct PathBuf {
    json_path: String,
    dotted: String,
    depth: usize,
}

impl PathBuf {
    fn new() -> PathBuf {
        PathBuf {
            json_path: String::with_capacity(64),
            dotted: String::with_capacity(48),
            depth: 0,
        }
    }

    /// Enters `key`; returns the lengths to [`PathBuf::pop`] back to.
    fn push(&mut self, key: &str) -> (usize, usize) {
        let mark = (self.json_path.len(), self.dotted.len());
        if self.json_path.is_empty() {
            self.json_path.push('$');
        }
        self.json_path.push_str(".\"");
        if key.contains('\\') {
            for c in key.chars() {
                if c == '\\' {
                    self.json_path.push('\\');
                }
                self.json_path.push(c);
            }
        } else {
            self.json_path.push_str(key);
        }
        self.json_path.push('"');
        if self.depth > 0 {
            self.dotted.push('.');
        }
        let special = |c: char| matches!(c, '.' | '\\' | ' ' | ':' | '(' | ')' | '"' | '*' | '?');
        if key.contains(special) {
            for c in key.chars() {
                if special(c) {
                    self.dotted.push('\\');
                }
                self.dotted.push(c);
            }
        } else {
            self.dotted.push_str(key);
        }
        self.depth += 1;
        mark
    }

    fn pop(&mut self, (json_len, dotted_len): (usize, usize)) {
        self.json_path.truncate(json_len);
        self.dotted.truncate(dotted_len);
        self.depth -= 1;
    }
}

fn walk_raw(object: &str, path: &mut PathBuf, out: &mut Leaves) -> Option<()> {
    let map: std::collections::BTreeMap<&str, &RawValue> = serde_json::from_str(object).ok()?;
    for (k, v) in map {
        if out.len() >= MAX_LEAVES {
            return Some(());
        }
        if (path.depth == 0 && k == normalize::MARKER_KEY) || k.is_empty() || k.contains('"') {
            continue;
        }
        let text = v.get();
        let mark = path.push(k);
        match text.as_bytes().first() {
            Some(b'{') => {
                if path.depth < MAX_LEAF_DEPTH {
                    walk_raw(text, path, out)?;
                }
            }
            Some(b'"') => out.push(path, LeafKind::String, None, |o| push_short_text(text, o)),
            Some(b't' | b'f') => out.push(path, LeafKind::Boolean, None, |_| false),
            Some(b'n' | b'[') | None => out.push(path, LeafKind::Other, None, |_| false),
            Some(_) => out.push(path, LeafKind::Number, text.parse::<f64>().ok(), |_| false),
        }
        path.pop(mark);
    }
    Some(())
}

fn walk(map: &serde_json::Map<String, serde_json::Value>, path: &mut PathBuf, out: &mut Leaves) {
    for (k, v) in map {
        if out.len() >= MAX_LEAVES {
            return;
        }
        // The marker object is the intake's own note, not the sender's data.
        if path.depth == 0 && k == normalize::MARKER_KEY {
            continue;
        }
        // A key with a quote cannot be a quoted JSON path step (the parser refuses it too).
        if k.is_empty() || k.contains('"') {
            continue;
        }
        let mark = path.push(k);
        match v {
            serde_json::Value::Object(inner) => {
                if path.depth < MAX_LEAF_DEPTH {
                    walk(inner, path, out);
                }
            }
            serde_json::Value::Number(n) => out.push(path, LeafKind::Number, n.as_f64(), |_| false),
            serde_json::Value::String(t) => out.push(path, LeafKind::String, None, |o| {
                let keep = t.len() <= MAX_VALUE_LEN;
                if keep {
                    o.push_str(t);
                }
                keep
            }),
            serde_json::Value::Bool(_) => out.push(path, LeafKind::Boolean, None, |_| false),
            _ => out.push(path, LeafKind::Other, None, |_| false),
        }
        path.pop(mark);
    }
}

/// Parses a body (a JSON array of log objects, or one object) into rows.
pub fn parse_logs(body: &[u8], now_ms: i64) -> Result<Vec<NewLog>, Reject> {
    let too_many = Cell::new(false);
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = Body {
        now_ms,
        too_many: &too_many,
    }
    .deserialize(&mut de)
    .and_then(|logs| de.end().map(|()| logs));
    match parsed {
        Ok(logs) => Ok(logs),
        Err(_) if too_many.get() => Err(Reject::TooLarge(format!(
            "payload has more than {} entries",
            wire::MAX_ENTRIES
        ))),
        Err(e) => Err(Reject::BadBody(format!("invalid JSON: {e}"))),
    }
}

struct Body<'c> {
    now_ms: i64,
    too_many: &'c Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for Body<'_> {
    type Value = Vec<NewLog>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Body<'_> {
    type Value = Vec<NewLog>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array of log objects, or one log object")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut logs = Vec::with_capacity(seq.size_hint().unwrap_or(64).min(wire::MAX_ENTRIES));
        while let Some(log) = seq.next_element_seed(LogSeed {
            now_ms: self.now_ms,
        })? {
            if logs.len() == wire::MAX_ENTRIES {
                self.too_many.set(true);
                return Err(de::Error::custom("too many entries"));
            }
            logs.push(log);
        }
        Ok(logs)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Ok(vec![LogSeed {
            now_ms: self.now_ms,
        }
        .visit_map(map)?])
    }
}

struct LogSeed {
    now_ms: i64,
}

impl<'de> DeserializeSeed<'de> for LogSeed {
    type Value = NewLog;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for LogSeed {
    type Value = NewLog;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a log object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NewLog, A::Error> {
        let mut message = None;
        let mut status = None;
        let mut timestamp_ms = None;
        let mut host = None;
        let mut service = None;
        let mut source = None;
        let mut tags = String::from(",");
        let mut attributes = String::new();
        let mut changes = normalize::Changes::default();
        // The sender's own marker object, held back so that ours can be merged into it.
        let mut marker: Option<String> = None;
        // Keys are read raw: a lone surrogate in a key is normalised, not a refused batch.
        while let Some(raw_key) = map.next_key::<&'de RawValue>()? {
            let raw_key = raw_key.get();
            // A key without a backslash is its own text between the quotes, already valid
            // JSON as written: no copy, no decode.
            let plain_key = raw_key.len() >= 2 && !raw_key.contains('\\');
            let key: std::borrow::Cow<'de, str> = if plain_key {
                std::borrow::Cow::Borrowed(&raw_key[1..raw_key.len() - 1])
            } else {
                match normalize::string(raw_key, &mut changes) {
                    Some(k) => std::borrow::Cow::Owned(k),
                    None => return Err(de::Error::custom("an object key must be a string")),
                }
            };
            let raw: &'de RawValue = map.next_value()?;
            let text = raw.get();
            // Only a JSON string fills a reserved field; anything else under a reserved name is
            // kept as an attribute so that nothing a sender wrote is lost.
            let mut as_str = || normalize::string(text, &mut changes);
            let reserved = match key.as_ref() {
                wire::MESSAGE => as_str().map(|s| message = Some(s)),
                wire::STATUS => as_str().map(|s| status = Some(normalise_status(&s))),
                wire::HOSTNAME | wire::HOST => as_str().map(|s| host = Some(s)),
                wire::SERVICE => as_str().map(|s| service = Some(s)),
                wire::DDSOURCE | wire::SOURCE => as_str().map(|s| source = Some(s)),
                wire::DDTAGS => as_str().map(|s| append_tags(&mut tags, &s)),
                wire::TIMESTAMP => parse_timestamp(text).map(|t| timestamp_ms = Some(t)),
                _ => None,
            };
            if reserved.is_some() {
                continue;
            }
            if key == normalize::MARKER_KEY {
                let mut value = String::with_capacity(text.len());
                normalize::value(text, &mut value, &mut changes);
                marker = Some(value);
                continue;
            }
            attributes.push(if attributes.is_empty() { '{' } else { ',' });
            if plain_key {
                attributes.push_str(raw_key);
            } else {
                normalize::push_json_str(&mut attributes, &key);
            }
            attributes.push(':');
            normalize::value(text, &mut attributes, &mut changes);
        }
        if changes.any() {
            let m = normalize::marker(marker.as_deref(), &changes);
            push_attribute(&mut attributes, normalize::MARKER_KEY, &m);
        } else if let Some(m) = marker {
            push_attribute(&mut attributes, normalize::MARKER_KEY, &m);
        }
        let (message, truncated) = truncate_message(message.unwrap_or_default());
        let attributes = (!attributes.is_empty()).then(|| attributes + "}");
        Ok(NewLog {
            leaves: attributes.as_deref().map(leaves_of).unwrap_or_default(),
            timestamp_ms: timestamp_ms.unwrap_or(self.now_ms),
            status: status.unwrap_or_else(|| wire::DEFAULT_STATUS.to_owned()),
            host: host.unwrap_or_default(),
            service: service.unwrap_or_default(),
            source: source.unwrap_or_default(),
            message,
            tags: if tags.len() == 1 { String::new() } else { tags },
            attributes,
            truncated,
        })
    }
}

fn push_attribute(attributes: &mut String, key: &str, value: &str) {
    attributes.push(if attributes.is_empty() { '{' } else { ',' });
    normalize::push_json_str(attributes, key);
    attributes.push(':');
    attributes.push_str(value);
}

fn append_tags(out: &mut String, ddtags: &str) {
    for tag in ddtags.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        out.push_str(tag);
        out.push(',');
    }
}

fn parse_timestamp(raw: &str) -> Option<i64> {
    if let Ok(ms) = raw.parse::<i64>() {
        return Some(ms);
    }
    if let Ok(f) = raw.parse::<f64>() {
        return f.is_finite().then_some(f.round() as i64);
    }
    let s: String = serde_json::from_str(raw).ok()?;
    crate::timefmt::parse_time(&s, 0).ok()
}

pub use cairn_query::normalise_status;

pub(crate) fn truncate_message(mut message: String) -> (String, bool) {
    if message.len() <= wire::MAX_MESSAGE_BYTES {
        return (message, false);
    }
    let mut cut = wire::MAX_MESSAGE_BYTES;
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    message.truncate(cut);
    message.push_str(wire::TRUNCATED_MARKER);
    (message, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_fields_are_split_and_the_rest_kept_as_attributes() {
        let body = br#"[{"message":"hi","status":"WARNING","timestamp":1700000000123,
            "hostname":"h1","service":"web","ddsource":"nginx","ddtags":"env:prod, team:db,,",
            "user":{"name":"bob"},"n":5,"service_extra":"x"}]"#;
        let logs = parse_logs(body, 0).unwrap();
        assert_eq!(logs.len(), 1);
        let l = &logs[0];
        assert_eq!((l.message.as_str(), l.status.as_str()), ("hi", "warn"));
        assert_eq!(l.timestamp_ms, 1_700_000_000_123);
        assert_eq!(
            (l.host.as_str(), l.service.as_str(), l.source.as_str()),
            ("h1", "web", "nginx")
        );
        assert_eq!(l.tags, ",env:prod,team:db,");
        let attrs: serde_json::Value =
            serde_json::from_str(l.attributes.as_deref().unwrap()).unwrap();
        assert_eq!(
            attrs,
            serde_json::json!({"user":{"name":"bob"},"n":5,"service_extra":"x"})
        );
    }

    #[test]
    fn one_object_is_a_batch_of_one_and_defaults_fill_in() {
        let logs = parse_logs(br#"{"message":"m"}"#, 42).unwrap();
        assert_eq!(logs[0].timestamp_ms, 42);
        assert_eq!(logs[0].status, "info");
        assert_eq!(logs[0].tags, "");
        assert_eq!(logs[0].attributes, None);
    }

    #[test]
    fn bad_bodies_are_refused_with_a_reason() {
        for body in [
            &b"[{"[..],
            b"\"just a string\"",
            b"[1]",
            b"{} trailing",
            b"",
        ] {
            assert!(
                matches!(parse_logs(body, 0), Err(Reject::BadBody(_))),
                "{body:?}"
            );
        }
    }

    #[test]
    fn more_than_the_entry_limit_is_too_large() {
        let body = format!(
            "[{}]",
            vec![r#"{"message":"x"}"#; wire::MAX_ENTRIES + 1].join(",")
        );
        assert!(matches!(
            parse_logs(body.as_bytes(), 0),
            Err(Reject::TooLarge(_))
        ));
        let body = format!(
            "[{}]",
            vec![r#"{"message":"x"}"#; wire::MAX_ENTRIES].join(",")
        );
        assert_eq!(
            parse_logs(body.as_bytes(), 0).unwrap().len(),
            wire::MAX_ENTRIES
        );
    }

    #[test]
    fn an_oversized_message_is_cut_at_a_char_boundary_with_the_marker() {
        let big = "é".repeat(wire::MAX_MESSAGE_BYTES);
        let (m, cut) = truncate_message(big);
        assert!(cut);
        assert!(m.ends_with(wire::TRUNCATED_MARKER));
        assert!(m.len() <= wire::MAX_MESSAGE_BYTES + wire::TRUNCATED_MARKER.len());
    }

    #[test]
    fn poisoned_values_are_stored_normalised_with_the_marker() {
        let deep = format!("{}1{}", "[".repeat(1001), "]".repeat(1001));
        let body = format!(
            r#"[{{"message":"m\ud800","service":"s\udc00","deep":{deep},"inf":1e999,
                "big":1{zeros},"\ud800k":"v\udbff","ok":[1,"x"]}}]"#,
            zeros = "0".repeat(400)
        );
        let logs = parse_logs(body.as_bytes(), 0).unwrap();
        let l = &logs[0];
        assert_eq!(
            (l.message.as_str(), l.service.as_str()),
            ("m\u{fffd}", "s\u{fffd}")
        );
        let attrs: serde_json::Value =
            serde_json::from_str(l.attributes.as_deref().unwrap()).unwrap();
        assert_eq!(attrs["inf"], "1e999");
        assert_eq!(attrs["big"], format!("1{}", "0".repeat(400)));
        assert_eq!(attrs["\u{fffd}k"], "v\u{fffd}");
        assert_eq!(attrs["ok"], serde_json::json!([1, "x"]));
        assert_eq!(
            attrs["_cairn"],
            serde_json::json!({"normalized": ["depth", "number", "surrogate"]})
        );
        let mut d = &attrs["deep"];
        for _ in 0..normalize::MAX_DEPTH {
            d = &d[0];
        }
        let tail = 1001 - normalize::MAX_DEPTH;
        assert_eq!(
            d,
            &serde_json::json!(format!("{}1{}", "[".repeat(tail), "]".repeat(tail)))
        );
    }

    #[test]
    fn a_clean_log_keeps_the_senders_marker_and_a_changed_one_merges_into_it() {
        let logs = parse_logs(
            br#"[{"message":"a","_cairn":{"normalized":["depth"]},"n":1},
                 {"message":"b","_cairn":{"normalized":["depth"],"by":"x"},"n":1e999}]"#,
            0,
        )
        .unwrap();
        let attrs = |i: usize| -> serde_json::Value {
            serde_json::from_str(logs[i].attributes.as_deref().unwrap()).unwrap()
        };
        assert_eq!(
            attrs(0),
            serde_json::json!({"n": 1, "_cairn": {"normalized": ["depth"]}})
        );
        assert_eq!(
            attrs(1),
            serde_json::json!({"n": "1e999", "_cairn": {"normalized": ["depth", "number"], "by": "x"}})
        );
        let plain = parse_logs(br#"{"message":"c","n":2}"#, 0).unwrap();
        assert_eq!(plain[0].attributes.as_deref(), Some(r#"{"n":2}"#));
    }

    #[test]
    fn decoding_stops_at_the_cap() {
        let zeros = vec![0u8; 1 << 20];
        let z = zstd::encode_all(&zeros[..], 3).unwrap();
        assert_eq!(
            decode_capped(Encoding::Zstd, &z, 1 << 20).unwrap().len(),
            1 << 20
        );
        assert!(matches!(
            decode_capped(Encoding::Zstd, &z, 1000),
            Err(Reject::TooLarge(_))
        ));
        assert!(matches!(
            Encoding::from_header(Some("br")),
            Err(Reject::UnsupportedEncoding(_))
        ));
    }

    #[test]
    fn leaf_paths_are_the_query_languages() {
        let text = r#"{"a.b":{"c\\d":{"sp ace":1,"x:(y)*?\"":2}},"é":{"k":"v"},"_cairn":{"n":1}}"#;
        let Ok(serde_json::Value::Object(map)) = serde_json::from_str(text) else {
            panic!("{text}");
        };
        for leaves in [leaves_of(text), leaves_of_map(&map)] {
            let got: Vec<(String, String)> = leaves
                .iter()
                .map(|l| (l.json_path.to_owned(), l.dotted.to_owned()))
                .collect();
            let want: Vec<(String, String)> = [vec!["a.b", "c\\d", "sp ace"], vec!["é", "k"]]
                .iter()
                .map(|p| (crate::query::json_path_of(p), crate::query::dotted_path(p)))
                .collect();
            assert_eq!(got, want);
        }
        // No escape in any key: the borrowed walk.
        let raw = leaves_of(r#"{"a.b":{"sp ace":{"x:(y)*?":1}}}"#);
        let p = ["a.b", "sp ace", "x:(y)*?"];
        let first = raw.iter().next().expect("a leaf");
        assert_eq!(first.json_path, crate::query::json_path_of(&p));
        assert_eq!(first.dotted, crate::query::dotted_path(&p));
    }

    #[test]
    fn borrowed_and_owned_leaf_walks_agree() {
        for text in [
            r#"{"a":1,"b":{"c":"x","d":[1,2],"e":null,"f":true},"g":-2.5e3,"_cairn":{"n":1}}"#,
            r#"{"k\u00e9y":{"z":3},"plain":false,"deep":{"a":{"b":{"c":7}}}}"#,
        ] {
            let fast = leaves_of(text);
            let Ok(serde_json::Value::Object(map)) = serde_json::from_str(text) else {
                panic!("{text}");
            };
            let mut slow = Leaves::default();
            walk(&map, &mut PathBuf::default(), &mut slow);
            let key = |l: &Leaf| l.json_path.to_owned();
            let (mut fast, mut slow): (Vec<Leaf>, Vec<Leaf>) =
                (fast.iter().collect(), slow.iter().collect());
            fast.sort_by_key(key);
            slow.sort_by_key(key);
            assert_eq!(fast, slow, "{text}");
            assert!(!fast.is_empty());
        }
    }
}
