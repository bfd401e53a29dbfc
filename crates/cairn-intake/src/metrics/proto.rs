//! A protobuf reader for exactly what `/api/v2/series` carries: Datadog agent-payload's
//! `MetricPayload` (`proto/metrics/agent_payload.proto`). Written by hand rather than with
//! `prost`: five messages, and an independent decoder is what checks the agent's encoder.
//!
//! Refused, with the offset: truncated fields, varints over 10 bytes (or a 10th byte above 1),
//! groups (wire types 3 and 4), field number 0, a known field with the wrong wire type, text
//! that is not UTF-8. Unknown fields are skipped without being parsed, so nesting is bounded
//! by the schema (payload → series → resource/point/metadata) and costs no recursion.

use super::ingest::{MetricKind, NewSeries};

const WIRE_VARINT: u8 = 0;
const WIRE_FIXED64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_FIXED32: u8 = 5;

/// A decoding error with where it happened, for the 400's detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtoError(pub String);

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf[0]` in the whole body, so that errors point into what the client sent.
    base: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], base: usize) -> Self {
        Reader { buf, pos: 0, base }
    }

    fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn offset(&self) -> usize {
        self.base + self.pos
    }

    fn err(&self, what: impl std::fmt::Display) -> ProtoError {
        ProtoError(format!("protobuf: {what} at byte {}", self.offset()))
    }

    fn varint(&mut self) -> Result<u64, ProtoError> {
        let start = self.offset();
        let mut v: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(ProtoError(format!(
                    "protobuf: truncated varint at byte {start}"
                )));
            };
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err(ProtoError(format!(
                    "protobuf: varint overflows 64 bits at byte {start}"
                )));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(ProtoError(format!(
            "protobuf: varint longer than 10 bytes at byte {start}"
        )))
    }

    fn key(&mut self) -> Result<(u64, u8), ProtoError> {
        let k = self.varint()?;
        let field = k >> 3;
        let wire = (k & 7) as u8;
        if field == 0 {
            return Err(self.err("field number 0"));
        }
        Ok((field, wire))
    }

    fn bytes(&mut self) -> Result<(&'a [u8], usize), ProtoError> {
        let len = self.varint()?;
        let start = self.pos;
        let remaining = (self.buf.len() - start) as u64;
        if len > remaining {
            return Err(self.err(format_args!(
                "length {len} runs past the end of its message ({remaining} bytes left)"
            )));
        }
        self.pos += len as usize;
        Ok((&self.buf[start..self.pos], self.base + start))
    }

    fn fixed64(&mut self) -> Result<u64, ProtoError> {
        let Some(b) = self.buf.get(self.pos..self.pos + 8) else {
            return Err(self.err("truncated fixed64"));
        };
        self.pos += 8;
        Ok(u64::from_le_bytes(b.try_into().expect("slice of 8")))
    }

    fn string(&mut self, what: &str) -> Result<String, ProtoError> {
        let (b, at) = self.bytes()?;
        String::from_utf8(b.to_vec())
            .map_err(|_| ProtoError(format!("protobuf: {what} is not UTF-8 at byte {at}")))
    }

    fn skip(&mut self, wire: u8) -> Result<(), ProtoError> {
        match wire {
            WIRE_VARINT => self.varint().map(drop),
            WIRE_FIXED64 => self.fixed64().map(drop),
            WIRE_LEN => self.bytes().map(drop),
            WIRE_FIXED32 => {
                if self.buf.len() - self.pos < 4 {
                    return Err(self.err("truncated fixed32"));
                }
                self.pos += 4;
                Ok(())
            }
            3 | 4 => Err(self.err("groups (wire types 3 and 4) are not used by this schema")),
            w => Err(self.err(format_args!("unknown wire type {w}"))),
        }
    }

    /// The wire type a known field must have.
    fn expect(&self, wire: u8, want: u8, name: &str) -> Result<(), ProtoError> {
        if wire == want {
            Ok(())
        } else {
            Err(self.err(format_args!(
                "field {name} has wire type {wire}, expected {want}"
            )))
        }
    }
}

/// Decodes a `MetricPayload` into series; `index` in errors is the series' position.
pub fn decode_payload(body: &[u8]) -> Result<Vec<NewSeries>, ProtoError> {
    let mut r = Reader::new(body, 0);
    let mut out = Vec::new();
    while !r.at_end() {
        let (field, wire) = r.key()?;
        if field == 1 {
            let index = out.len();
            let in_series = |e: ProtoError| ProtoError(format!("series[{index}]: {}", e.0));
            r.expect(wire, WIRE_LEN, "MetricPayload.series")
                .map_err(in_series)?;
            let (b, at) = r.bytes().map_err(in_series)?;
            out.push(decode_series(b, at).map_err(in_series)?);
        } else {
            r.skip(wire)?;
        }
    }
    Ok(out)
}

fn decode_series(b: &[u8], base: usize) -> Result<NewSeries, ProtoError> {
    let mut r = Reader::new(b, base);
    let mut s = NewSeries::default();
    let mut kind = 0u64;
    while !r.at_end() {
        let (field, wire) = r.key()?;
        match field {
            1 => {
                r.expect(wire, WIRE_LEN, "resources")?;
                let (b, at) = r.bytes()?;
                let (kind, name) = decode_resource(b, at)?;
                match kind.as_str() {
                    "host" => s.host = name,
                    "device" => s.device = name,
                    // Other resource types (e.g. Kubernetes objects) are kept as tags so they
                    // can still be filtered on.
                    _ => s.tags.push(format!("{kind}:{name}")),
                }
            }
            2 => {
                r.expect(wire, WIRE_LEN, "metric")?;
                s.name = r.string("metric")?;
            }
            3 => {
                r.expect(wire, WIRE_LEN, "tags")?;
                let t = r.string("a tag")?;
                s.tags.push(t);
            }
            4 => {
                r.expect(wire, WIRE_LEN, "points")?;
                let (b, at) = r.bytes()?;
                let index = s.points.len();
                let p = decode_point(b, at)
                    .map_err(|e| ProtoError(format!("points[{index}]: {}", e.0)))?;
                s.points.push(p);
            }
            5 => {
                r.expect(wire, WIRE_VARINT, "type")?;
                kind = r.varint()?;
            }
            6 => {
                r.expect(wire, WIRE_LEN, "unit")?;
                s.unit = r.string("unit")?;
            }
            7 => {
                r.expect(wire, WIRE_LEN, "source_type_name")?;
                s.source_type_name = r.string("source_type_name")?;
            }
            8 => {
                r.expect(wire, WIRE_VARINT, "interval")?;
                s.interval_s = r.varint()? as i64;
            }
            _ => r.skip(wire)?,
        }
    }
    s.kind = match kind {
        0 => MetricKind::Unspecified,
        1 => MetricKind::Count,
        2 => MetricKind::Rate,
        3 => MetricKind::Gauge,
        k => {
            return Err(ProtoError(format!(
                "type {k} is not one of UNSPECIFIED=0, COUNT=1, RATE=2, GAUGE=3"
            )))
        }
    };
    Ok(s)
}

fn decode_resource(b: &[u8], base: usize) -> Result<(String, String), ProtoError> {
    let mut r = Reader::new(b, base);
    let (mut kind, mut name) = (String::new(), String::new());
    while !r.at_end() {
        let (field, wire) = r.key()?;
        match field {
            1 => {
                r.expect(wire, WIRE_LEN, "resource.type")?;
                kind = r.string("resource.type")?;
            }
            2 => {
                r.expect(wire, WIRE_LEN, "resource.name")?;
                name = r.string("resource.name")?;
            }
            _ => r.skip(wire)?,
        }
    }
    Ok((kind, name))
}

fn decode_point(b: &[u8], base: usize) -> Result<(i64, f64), ProtoError> {
    let mut r = Reader::new(b, base);
    let (mut ts, mut value) = (0i64, 0f64);
    while !r.at_end() {
        let (field, wire) = r.key()?;
        match field {
            1 => {
                r.expect(wire, WIRE_FIXED64, "point.value")?;
                value = f64::from_bits(r.fixed64()?);
            }
            // int64: negative values are ten-byte two's complement varints.
            2 => {
                r.expect(wire, WIRE_VARINT, "point.timestamp")?;
                ts = r.varint()? as i64;
            }
            _ => r.skip(wire)?,
        }
    }
    Ok((ts, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_that_overflow_or_run_on_are_refused() {
        // 10 bytes with the 10th above 1 overflows; 11 bytes is too long.
        let over = [
            0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
        ];
        assert!(decode_payload(&over).unwrap_err().0.contains("overflows"));
        let mut long = vec![0x0a];
        long.extend([0x80; 10]);
        long.push(0);
        assert!(decode_payload(&long).is_err());
        assert!(decode_payload(&[0x0a, 0x80])
            .unwrap_err()
            .0
            .contains("truncated"));
    }

    #[test]
    fn unknown_fields_are_skipped_and_groups_refused() {
        // field 15 varint, field 14 fixed32, field 13 bytes, then nothing.
        let body = [0x78, 0x01, 0x75, 1, 2, 3, 4, 0x6a, 0x01, 0x00];
        assert_eq!(decode_payload(&body).unwrap(), vec![]);
        assert!(decode_payload(&[0x7b]).unwrap_err().0.contains("groups"));
        assert!(decode_payload(&[0x00])
            .unwrap_err()
            .0
            .contains("field number 0"));
    }

    #[test]
    fn a_series_over_its_payload_is_truncation() {
        let body = [0x0a, 0x05, 0x12, 0x01];
        assert!(decode_payload(&body).unwrap_err().0.contains("runs past"));
    }
}
