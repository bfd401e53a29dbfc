//! Wire encodings of what the sampler flushes, and payload packing within the Agent's limits.
//!
//! - Series: `POST <dd_url>/api/v2/series`, body a protobuf `MetricPayload`
//!   (`proto/metrics/agent_payload.proto` of DataDog/agent-payload), written the way the
//!   Agent's `pkg/serializer/internal/metrics/iterable_series.go` writes it: resources `host`
//!   (always) and `device` (from a `device:` tag, which leaves the tags), metric, tags, points
//!   (second timestamps), type, source_type_name, interval, metadata.origin.origin_product =
//!   10 (Agent). No unit.
//! - Service checks: `POST <dd_url>/api/v1/check_run`, body a JSON array of
//!   `{check, host_name, timestamp, status, message, tags}`.
//!
//! A payload holds whole items; `MetricPayload` is `repeated MetricSeries series = 1`, so a
//! payload is just encoded series laid end to end, and splitting needs no re-encoding.

use std::io::Write;
use std::ops::Range;

use serde::Serialize;

use crate::{Serie, SeriesKind};

// Field numbers of MetricPayload and its nested messages.
const PAYLOAD_SERIES: u32 = 1;
const SERIES_RESOURCES: u32 = 1;
const SERIES_METRIC: u32 = 2;
const SERIES_TAGS: u32 = 3;
const SERIES_POINTS: u32 = 4;
const SERIES_TYPE: u32 = 5;
const SERIES_SOURCE_TYPE_NAME: u32 = 7;
const SERIES_INTERVAL: u32 = 8;
const SERIES_METADATA: u32 = 9;
const RESOURCE_TYPE: u32 = 1;
const RESOURCE_NAME: u32 = 2;
const POINT_VALUE: u32 = 1;
const POINT_TIMESTAMP: u32 = 2;
const METADATA_ORIGIN: u32 = 1;
const ORIGIN_PRODUCT: u32 = 4;
/// `OriginProduct` "Agent", as the Agent's serializer sends it.
const ORIGIN_PRODUCT_AGENT: u64 = 10;

const WIRE_VARINT: u32 = 0;
const WIRE_FIXED64: u32 = 1;
const WIRE_LEN: u32 = 2;

/// The device tag the encoder turns into a `device` resource.
pub const DEVICE_TAG_PREFIX: &str = "device:";

/// `MetricPayload.MetricType` (current schema: UNSPECIFIED = 0, COUNT = 1, RATE = 2,
/// GAUGE = 3; the Agent's `SeriesAPIV2Enum`).
pub fn metric_type_code(kind: SeriesKind) -> u64 {
    match kind {
        SeriesKind::Count => 1,
        SeriesKind::Rate => 2,
        SeriesKind::Gauge => 3,
    }
}

/// The Agent's limits for `/api/v2/series`: `serializer_max_series_payload_size` (compressed),
/// `serializer_max_series_uncompressed_payload_size`, `serializer_max_series_points_per_payload`.
pub const SERIES_LIMITS: Limits = Limits {
    max_compressed_bytes: 512_000,
    max_uncompressed_bytes: 5_242_880,
    max_points: 10_000,
};

/// The Agent's limits for JSON payloads such as service checks: `serializer_max_payload_size`
/// (2.5 MiB compressed) and `serializer_max_uncompressed_payload_size` (4 MiB).
pub const SERVICE_CHECK_LIMITS: Limits = Limits {
    max_compressed_bytes: 2_621_440,
    max_uncompressed_bytes: 4_194_304,
    max_points: usize::MAX,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_compressed_bytes: usize,
    pub max_uncompressed_bytes: usize,
    /// Points per payload (a service check counts as one).
    pub max_points: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Zstd { level: i32 },
    Gzip { level: u32 },
}

impl Compression {
    /// The `Content-Encoding` header value, if any.
    pub fn content_encoding(self) -> Option<&'static str> {
        match self {
            Compression::None => None,
            Compression::Zstd { .. } => Some("zstd"),
            Compression::Gzip { .. } => Some("gzip"),
        }
    }

    fn compress(self, body: Vec<u8>) -> Result<Vec<u8>, WireError> {
        Ok(match self {
            Compression::None => body,
            Compression::Zstd { level } => {
                // Allocated at the compress bound (the input's size): a payload waiting in
                // the forwarder would hold ~12 times its bytes.
                let mut z = zstd::bulk::compress(&body, level)?;
                z.shrink_to_fit();
                z
            }
            Compression::Gzip { level } => {
                let mut e = flate2::write::GzEncoder::new(
                    Vec::with_capacity(body.len() / 4),
                    flate2::Compression::new(level.min(9)),
                );
                e.write_all(&body)?;
                e.finish()?
            }
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("compressing a payload: {0}")]
    Compress(#[from] std::io::Error),
}

/// One request body.
#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    /// Compressed as asked.
    pub body: Vec<u8>,
    pub uncompressed_bytes: usize,
    pub items: usize,
    pub points: usize,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Payloads {
    pub payloads: Vec<Payload>,
    /// Items that fit no payload even alone (the Agent drops them too: `ErrItemTooBig`).
    pub dropped: usize,
}

// ---- protobuf primitives ----

fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn put_key(buf: &mut Vec<u8>, field: u32, wire: u32) {
    put_varint(buf, u64::from(field << 3 | wire));
}

fn key_len(field: u32) -> usize {
    varint_len(u64::from(field << 3))
}

fn len_field_len(field: u32, len: usize) -> usize {
    key_len(field) + varint_len(len as u64) + len
}

fn put_len_prefix(buf: &mut Vec<u8>, field: u32, len: usize) {
    put_key(buf, field, WIRE_LEN);
    put_varint(buf, len as u64);
}

fn put_str(buf: &mut Vec<u8>, field: u32, s: &str) {
    put_len_prefix(buf, field, s.len());
    buf.extend_from_slice(s.as_bytes());
}

fn put_uint(buf: &mut Vec<u8>, field: u32, v: u64) {
    put_key(buf, field, WIRE_VARINT);
    put_varint(buf, v);
}

fn resource_len(kind: &str, name: &str) -> usize {
    len_field_len(RESOURCE_TYPE, kind.len()) + len_field_len(RESOURCE_NAME, name.len())
}

fn put_resource(buf: &mut Vec<u8>, kind: &str, name: &str) {
    put_len_prefix(buf, SERIES_RESOURCES, resource_len(kind, name));
    put_str(buf, RESOURCE_TYPE, kind);
    put_str(buf, RESOURCE_NAME, name);
}

fn point_len(ts: i64) -> usize {
    key_len(POINT_VALUE) + 8 + key_len(POINT_TIMESTAMP) + varint_len(ts as u64)
}

fn metadata_origin_len() -> usize {
    key_len(ORIGIN_PRODUCT) + varint_len(ORIGIN_PRODUCT_AGENT)
}

fn metadata_len() -> usize {
    len_field_len(METADATA_ORIGIN, metadata_origin_len())
}

/// A series as the encoder reads it, borrowing every string: from a [`Serie`], or straight
/// from a sampler's intern tables (no owned copy per series). The name is `name` + `suffix`.
#[derive(Clone)]
pub struct SerieView<'a, T> {
    pub name: &'a str,
    pub suffix: &'a str,
    pub host: &'a str,
    /// Sorted, de-duplicated; read three times (device, length, bytes), hence `Clone`.
    pub tags: T,
    pub kind: SeriesKind,
    pub interval: i64,
    pub points: &'a [(i64, f64)],
    pub source_type_name: &'a str,
}

impl Serie {
    pub fn view(&self) -> SerieView<'_, impl Iterator<Item = &str> + Clone> {
        SerieView {
            name: &self.name,
            suffix: "",
            host: &self.host,
            tags: self.tags.iter().map(String::as_str),
            kind: self.kind,
            interval: self.interval,
            points: &self.points,
            source_type_name: &self.source_type_name,
        }
    }
}

impl<'a, T: Iterator<Item = &'a str> + Clone> SerieView<'a, T> {
    /// The device of a series: the value of its last `device:` tag, as the Agent's
    /// `PopulateDeviceField`.
    fn device(&self) -> Option<&'a str> {
        self.tags
            .clone()
            .filter_map(|t| t.strip_prefix(DEVICE_TAG_PREFIX))
            .last()
    }

    fn plain_tags(&self) -> impl Iterator<Item = &'a str> {
        self.tags
            .clone()
            .filter(|t| !t.starts_with(DEVICE_TAG_PREFIX))
    }

    fn body_len(&self, device: Option<&str>) -> usize {
        let mut n = len_field_len(SERIES_RESOURCES, resource_len("host", self.host));
        if let Some(d) = device {
            n += len_field_len(SERIES_RESOURCES, resource_len("device", d));
        }
        n += len_field_len(SERIES_METRIC, self.name.len() + self.suffix.len());
        n += self
            .plain_tags()
            .map(|t| len_field_len(SERIES_TAGS, t.len()))
            .sum::<usize>();
        n += self
            .points
            .iter()
            .map(|&(ts, _)| len_field_len(SERIES_POINTS, point_len(ts)))
            .sum::<usize>();
        n += key_len(SERIES_TYPE) + varint_len(metric_type_code(self.kind));
        n += len_field_len(SERIES_SOURCE_TYPE_NAME, self.source_type_name.len());
        n += key_len(SERIES_INTERVAL) + varint_len(self.interval as u64);
        n += len_field_len(SERIES_METADATA, metadata_len());
        n
    }

    /// Appends one `series` entry (field 1 of `MetricPayload`) to `buf`.
    pub fn encode(&self, buf: &mut Vec<u8>) {
        let device = self.device();
        let body = self.body_len(device);
        buf.reserve(body + 6);
        put_len_prefix(buf, PAYLOAD_SERIES, body);
        let start = buf.len();
        put_resource(buf, "host", self.host);
        if let Some(d) = device {
            put_resource(buf, "device", d);
        }
        put_len_prefix(buf, SERIES_METRIC, self.name.len() + self.suffix.len());
        buf.extend_from_slice(self.name.as_bytes());
        buf.extend_from_slice(self.suffix.as_bytes());
        for t in self.plain_tags() {
            put_str(buf, SERIES_TAGS, t);
        }
        for &(ts, v) in self.points {
            put_len_prefix(buf, SERIES_POINTS, point_len(ts));
            put_key(buf, POINT_VALUE, WIRE_FIXED64);
            buf.extend_from_slice(&v.to_le_bytes());
            put_uint(buf, POINT_TIMESTAMP, ts as u64);
        }
        put_uint(buf, SERIES_TYPE, metric_type_code(self.kind));
        put_str(buf, SERIES_SOURCE_TYPE_NAME, self.source_type_name);
        put_uint(buf, SERIES_INTERVAL, self.interval as u64);
        put_len_prefix(buf, SERIES_METADATA, metadata_len());
        put_len_prefix(buf, METADATA_ORIGIN, metadata_origin_len());
        put_uint(buf, ORIGIN_PRODUCT, ORIGIN_PRODUCT_AGENT);
        debug_assert_eq!(buf.len() - start, body, "series length computed = written");
    }
}

/// Appends one `series` entry (field 1 of `MetricPayload`) to `buf`.
pub fn encode_serie(buf: &mut Vec<u8>, s: &Serie) {
    s.view().encode(buf);
}

/// A whole `MetricPayload` holding every series (no splitting, no compression).
pub fn encode_series(series: &[Serie]) -> Vec<u8> {
    let mut buf = Vec::new();
    for s in series {
        encode_serie(&mut buf, s);
    }
    buf
}

/// Series packed into `/api/v2/series` bodies within `limits` (normally [`SERIES_LIMITS`]).
pub fn series_payloads(
    series: &[Serie],
    compression: Compression,
    limits: Limits,
) -> Result<Payloads, WireError> {
    views_payloads(series.iter().map(Serie::view), compression, limits)
}

/// [`series_payloads`] of borrowed series.
pub fn views_payloads<'a, T: Iterator<Item = &'a str> + Clone>(
    series: impl Iterator<Item = SerieView<'a, T>>,
    compression: Compression,
    limits: Limits,
) -> Result<Payloads, WireError> {
    let mut buf = Vec::new();
    let mut items = Vec::with_capacity(series.size_hint().0);
    for s in series {
        let start = buf.len();
        s.encode(&mut buf);
        items.push(Item {
            range: start..buf.len(),
            points: s.points.len(),
        });
    }
    pack(&buf, &items, Framing::CONCAT, compression, limits)
}

/// One service check, as `/api/v1/check_run` takes it. Field names are the wire names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceCheck {
    pub check: String,
    pub host_name: String,
    /// Seconds since the epoch.
    pub timestamp: i64,
    /// 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    pub status: u8,
    pub message: String,
    pub tags: Vec<String>,
}

/// Service checks packed into JSON-array bodies within `limits` (normally
/// [`SERVICE_CHECK_LIMITS`]).
pub fn service_check_payloads(
    checks: &[ServiceCheck],
    compression: Compression,
    limits: Limits,
) -> Result<Payloads, WireError> {
    let mut buf = Vec::new();
    let mut items = Vec::with_capacity(checks.len());
    for c in checks {
        let start = buf.len();
        serde_json::to_writer(&mut buf, c).expect("a ServiceCheck always serializes");
        items.push(Item {
            range: start..buf.len(),
            points: 1,
        });
    }
    pack(&buf, &items, Framing::JSON_ARRAY, compression, limits)
}

// ---- packing ----

struct Item {
    range: Range<usize>,
    points: usize,
}

#[derive(Clone, Copy)]
struct Framing {
    open: &'static [u8],
    sep: &'static [u8],
    close: &'static [u8],
}

impl Framing {
    const CONCAT: Framing = Framing {
        open: b"",
        sep: b"",
        close: b"",
    };
    const JSON_ARRAY: Framing = Framing {
        open: b"[",
        sep: b",",
        close: b"]",
    };

    fn size(self, items: &[Item]) -> usize {
        self.open.len()
            + self.close.len()
            + items.iter().map(|i| i.range.len()).sum::<usize>()
            + self.sep.len() * items.len().saturating_sub(1)
    }
}

/// Greedy grouping by uncompressed size and points, then compression; a group whose
/// compressed body is over the limit is halved until it fits (a single item that does not
/// fit is dropped and counted).
fn pack(
    buf: &[u8],
    items: &[Item],
    framing: Framing,
    compression: Compression,
    limits: Limits,
) -> Result<Payloads, WireError> {
    let mut out = Payloads::default();
    let mut start = 0;
    let mut size = 0;
    let mut points = 0;
    let fixed = framing.open.len() + framing.close.len();
    for (i, item) in items.iter().enumerate() {
        let alone = fixed + item.range.len();
        if alone > limits.max_uncompressed_bytes || item.points > limits.max_points {
            emit_group(
                buf,
                &items[start..i],
                framing,
                compression,
                limits,
                &mut out,
            )?;
            out.dropped += 1;
            start = i + 1;
            size = 0;
            points = 0;
            continue;
        }
        let added = item.range.len() + if i > start { framing.sep.len() } else { 0 };
        if i > start
            && (fixed + size + added > limits.max_uncompressed_bytes
                || points + item.points > limits.max_points)
        {
            emit_group(
                buf,
                &items[start..i],
                framing,
                compression,
                limits,
                &mut out,
            )?;
            start = i;
            size = item.range.len();
            points = item.points;
        } else {
            size += added;
            points += item.points;
        }
    }
    emit_group(buf, &items[start..], framing, compression, limits, &mut out)?;
    Ok(out)
}

fn emit_group(
    buf: &[u8],
    group: &[Item],
    framing: Framing,
    compression: Compression,
    limits: Limits,
    out: &mut Payloads,
) -> Result<(), WireError> {
    if group.is_empty() {
        return Ok(());
    }
    let mut body = Vec::with_capacity(framing.size(group));
    body.extend_from_slice(framing.open);
    for (i, item) in group.iter().enumerate() {
        if i > 0 {
            body.extend_from_slice(framing.sep);
        }
        body.extend_from_slice(&buf[item.range.clone()]);
    }
    body.extend_from_slice(framing.close);
    let uncompressed_bytes = body.len();
    let compressed = compression.compress(body)?;
    if compressed.len() > limits.max_compressed_bytes {
        if group.len() == 1 {
            out.dropped += 1;
            return Ok(());
        }
        let (a, b) = group.split_at(group.len() / 2);
        emit_group(buf, a, framing, compression, limits, out)?;
        return emit_group(buf, b, framing, compression, limits, out);
    }
    out.payloads.push(Payload {
        body: compressed,
        uncompressed_bytes,
        items: group.len(),
        points: group.iter().map(|i| i.points).sum(),
    });
    Ok(())
}
