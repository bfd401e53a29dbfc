//! The on-disk record of the buffer and the names of its files.
//!
//! Record: `magic: u16 LE | kind: u8 | check: u32 LE | len: u32 LE | payload_crc: u32 LE |
//! header_crc: u32 LE | payload[len]`. The header CRC32 covers the 15 bytes before it (the
//! payload CRC included), so a reader can tell a good header from garbage on its own: after a
//! corrupt region it slides forward byte by byte to the next position holding the magic and a
//! header whose CRC matches (and whose payload CRC matches too), and carries on from there. A
//! record whose header is good but whose payload is not is lost alone, with its kind and check
//! known. `check` indexes the segment's table of check ids, which the segment itself defines
//! with [`KIND_CHECK`] records before their first use: every segment can be read alone.

use std::path::Path;

/// A log: the payload is its wire JSON object.
pub const KIND_LOG: u8 = 0;
/// A persistent-cache write: `key_len: u32 LE | key | value` (the staging area's layout).
pub const KIND_CACHE: u8 = 1;
/// Defines check index `check` of this segment: the payload is the check id.
pub const KIND_CHECK: u8 = 2;
/// The first record of a segment: describes the segment before it (see [`SegmentIntro`]), so
/// that if that one is deleted or lost, recovery can still say how many logs of which check went
/// with it.
pub const KIND_INTRO: u8 = 3;
/// Filler written over a corrupt region found at recovery, so that later reads skip it without
/// counting it again.
pub const KIND_PAD: u8 = 4;
/// A reset of persistent-cache entries (`cairn cursors reset`): the payload lists the keys, each
/// `key_len: u32 LE | key` ([`crate::staging::encode_keys`]). One record, one checksum: replay
/// removes every key it names or, when the record is damaged, none.
pub const KIND_CACHE_RESET: u8 = 5;

const MAGIC: u16 = 0xCA1B;
const MAGIC_BYTES: [u8; 2] = MAGIC.to_le_bytes();

pub const HEADER_BYTES: usize = 19;

/// Largest payload the reader believes in. Hand-off refuses logs over a payload
/// (`batch_max_content_size`, capped well below this) and cache values over 1 MiB, so anything
/// past this is a corrupt length field.
pub const MAX_PAYLOAD_BYTES: usize = 64 << 20;

/// Suffix of segment files; the stem is the global offset of the segment's first byte.
const SEGMENT_SUFFIX: &str = ".seg";

/// One record read back from a segment, borrowed from the read buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRecord<'a> {
    pub kind: u8,
    pub check: u32,
    pub payload: &'a [u8],
}

fn put_header(out: &mut [u8], kind: u8, check: u32, len: u32, payload_crc: u32) {
    out[0..2].copy_from_slice(&MAGIC_BYTES);
    out[2] = kind;
    out[3..7].copy_from_slice(&check.to_le_bytes());
    out[7..11].copy_from_slice(&len.to_le_bytes());
    out[11..15].copy_from_slice(&payload_crc.to_le_bytes());
    let hcrc = crc32fast::hash(&out[..15]);
    out[15..19].copy_from_slice(&hcrc.to_le_bytes());
}

/// Appends one record to `out`.
pub fn encode(out: &mut Vec<u8>, kind: u8, check: u32, payload: &[u8]) {
    let at = out.len();
    out.resize(at + HEADER_BYTES, 0);
    put_header(
        &mut out[at..],
        kind,
        check,
        payload.len() as u32,
        crc32fast::hash(payload),
    );
    out.extend_from_slice(payload);
}

/// Appends one cache-write record without building its payload separately.
pub fn encode_cache(out: &mut Vec<u8>, check: u32, key: &str, value: &str) {
    let at = out.len();
    out.resize(at + HEADER_BYTES, 0);
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(value.as_bytes());
    let len = (out.len() - at - HEADER_BYTES) as u32;
    let pcrc = crc32fast::hash(&out[at + HEADER_BYTES..]);
    put_header(
        &mut out[at..at + HEADER_BYTES],
        KIND_CACHE,
        check,
        len,
        pcrc,
    );
}

/// A pad record of exactly `total` bytes (`total >= HEADER_BYTES`).
pub fn encode_pad(total: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(total);
    encode(&mut out, KIND_PAD, 0, &vec![0u8; total - HEADER_BYTES]);
    out
}

/// What [`decode`] found at the start of a byte slice.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A whole, valid record and its encoded size.
    Record(RawRecord<'a>, usize),
    /// The slice ends inside the record; `needed` bytes hold all of it (when the header is
    /// good; a torn header shows up as [`Decoded::Corrupt`] once enough bytes are there).
    Incomplete { needed: usize },
    /// The header is good but the payload's checksum is not: this one record is lost, and its
    /// kind, check and size are known.
    BadPayload { kind: u8, check: u32, size: usize },
    /// No good header here: the reader must resynchronise ([`next_header`]).
    Corrupt,
}

/// A good header at the start of `buf`: (kind, check, payload len, payload crc).
fn header(buf: &[u8]) -> Option<(u8, u32, usize, u32)> {
    let h = buf.get(..HEADER_BYTES)?;
    if h[..2] != MAGIC_BYTES {
        return None;
    }
    let hcrc = u32::from_le_bytes([h[15], h[16], h[17], h[18]]);
    if crc32fast::hash(&h[..15]) != hcrc {
        return None;
    }
    let len = u32::from_le_bytes([h[7], h[8], h[9], h[10]]) as usize;
    if h[2] > KIND_CACHE_RESET || len > MAX_PAYLOAD_BYTES {
        return None;
    }
    let check = u32::from_le_bytes([h[3], h[4], h[5], h[6]]);
    let pcrc = u32::from_le_bytes([h[11], h[12], h[13], h[14]]);
    Some((h[2], check, len, pcrc))
}

/// Decodes the record at the start of `buf`.
pub fn decode(buf: &[u8]) -> Decoded<'_> {
    if buf.len() < HEADER_BYTES {
        return Decoded::Incomplete {
            needed: HEADER_BYTES,
        };
    }
    let Some((kind, check, len, pcrc)) = header(buf) else {
        return Decoded::Corrupt;
    };
    let total = HEADER_BYTES + len;
    if buf.len() < total {
        return Decoded::Incomplete { needed: total };
    }
    let payload = &buf[HEADER_BYTES..total];
    if crc32fast::hash(payload) != pcrc {
        return Decoded::BadPayload {
            kind,
            check,
            size: total,
        };
    }
    Decoded::Record(
        RawRecord {
            kind,
            check,
            payload,
        },
        total,
    )
}

/// The first position at or after `from` where a good header starts (its magic and header CRC
/// match); `None` if there is none whose 19 bytes lie inside `buf`. A good header is taken as a
/// record boundary: a false one needs a CRC32 collision on top of the magic.
pub fn next_header(buf: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while at + HEADER_BYTES <= buf.len() {
        let rel = buf[at..buf.len() - HEADER_BYTES + 2]
            .windows(2)
            .position(|w| w == MAGIC_BYTES)?;
        at += rel;
        if header(&buf[at..]).is_some() {
            return Some(at);
        }
        at += 1;
    }
    None
}

/// The payload of a [`KIND_INTRO`] record: the segment before this one, and the undelivered
/// logs it held per check index of *this* segment's table (the intro is written after the
/// definitions it needs).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SegmentIntro {
    pub prev_start: u64,
    pub prev_end: u64,
    /// (check id, logs) of the previous segment.
    pub prev_logs: Vec<(String, u64)>,
}

impl SegmentIntro {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.prev_start.to_le_bytes());
        out.extend_from_slice(&self.prev_end.to_le_bytes());
        for (id, n) in &self.prev_logs {
            out.extend_from_slice(&(id.len() as u32).to_le_bytes());
            out.extend_from_slice(id.as_bytes());
            out.extend_from_slice(&n.to_le_bytes());
        }
        out
    }

    pub fn decode(payload: &[u8]) -> Option<SegmentIntro> {
        let u64_at = |p: &[u8], at: usize| -> Option<u64> {
            Some(u64::from_le_bytes(p.get(at..at + 8)?.try_into().ok()?))
        };
        let mut intro = SegmentIntro {
            prev_start: u64_at(payload, 0)?,
            prev_end: u64_at(payload, 8)?,
            prev_logs: Vec::new(),
        };
        let mut at = 16;
        while at < payload.len() {
            let len = u32::from_le_bytes(payload.get(at..at + 4)?.try_into().ok()?) as usize;
            let id = std::str::from_utf8(payload.get(at + 4..at + 4 + len)?).ok()?;
            let n = u64_at(payload, at + 4 + len)?;
            intro.prev_logs.push((id.to_string(), n));
            at += 4 + len + 8;
        }
        Some(intro)
    }
}

/// Splits a cache-write payload into key and value.
pub fn split_cache(payload: &[u8]) -> Option<(&str, &str)> {
    let klen = u32::from_le_bytes(payload.get(..4)?.try_into().ok()?) as usize;
    let key = std::str::from_utf8(payload.get(4..4 + klen)?).ok()?;
    let value = std::str::from_utf8(payload.get(4 + klen..)?).ok()?;
    Some((key, value))
}

pub fn segment_file_name(start: u64) -> String {
    format!("{start:020}{SEGMENT_SUFFIX}")
}

/// The start offset named by a segment file name, or `None` for other files.
pub fn parse_segment_file_name(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(SEGMENT_SUFFIX)?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_any_flipped_bit_is_detected() {
        let mut buf = Vec::new();
        encode(&mut buf, KIND_LOG, 7, b"{\"message\":\"hi\"}");
        encode_cache(&mut buf, 7, "log_cursor_default", "{\"n\":1}");
        let Decoded::Record(r, n) = decode(&buf) else {
            panic!("first record")
        };
        assert_eq!(
            (r.kind, r.check, r.payload),
            (KIND_LOG, 7, &b"{\"message\":\"hi\"}"[..])
        );
        let Decoded::Record(c, m) = decode(&buf[n..]) else {
            panic!("second record")
        };
        assert_eq!(c.kind, KIND_CACHE);
        assert_eq!(
            split_cache(c.payload),
            Some(("log_cursor_default", "{\"n\":1}"))
        );
        assert_eq!(n + m, buf.len());
        for bit in 0..(n * 8) {
            let mut bad = buf.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            match decode(&bad) {
                Decoded::Record(r2, _) => assert_ne!(r2, r, "flipping bit {bit} went unnoticed"),
                // A flip in the payload keeps the header: the record is known to be lost.
                Decoded::BadPayload { kind, check, size } if bit >= HEADER_BYTES * 8 => {
                    assert_eq!((kind, check, size), (KIND_LOG, 7, n))
                }
                Decoded::BadPayload { .. } => panic!("header flip {bit} taken for a payload one"),
                // Any flip in the header: the next record is found again.
                Decoded::Corrupt | Decoded::Incomplete { .. } => {
                    assert_eq!(next_header(&bad, 1), Some(n), "bit {bit}")
                }
            }
        }
    }

    #[test]
    fn a_short_slice_is_incomplete_not_corrupt() {
        let mut buf = Vec::new();
        encode(&mut buf, KIND_LOG, 0, b"0123456789");
        for cut in 0..buf.len() {
            assert!(
                matches!(decode(&buf[..cut]), Decoded::Incomplete { .. }),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn resync_skips_garbage_of_any_length() {
        let mut good = Vec::new();
        encode(&mut good, KIND_LOG, 1, b"{\"message\":\"after\"}");
        for junk in [0usize, 1, 5, 18, 19, 20, 1000] {
            let mut buf: Vec<u8> = (0..junk).map(|i| (i * 31 + 7) as u8).collect();
            buf.extend_from_slice(&good);
            assert_eq!(next_header(&buf, 0), Some(junk));
        }
        let mut padded = encode_pad(40);
        assert_eq!(padded.len(), 40);
        padded.extend_from_slice(&good);
        assert!(matches!(
            decode(&padded),
            Decoded::Record(RawRecord { kind: KIND_PAD, .. }, 40)
        ));
    }

    #[test]
    fn intro_round_trips() {
        let i = SegmentIntro {
            prev_start: 5,
            prev_end: 9000,
            prev_logs: vec![("a:1".into(), 3), ("b:2".into(), 0)],
        };
        assert_eq!(SegmentIntro::decode(&i.encode()), Some(i));
        assert_eq!(SegmentIntro::decode(b"short"), None);
    }

    #[test]
    fn segment_names_sort_by_offset_and_parse_back() {
        let a = segment_file_name(5);
        let b = segment_file_name(40_000_000_000);
        assert!(a < b);
        assert_eq!(parse_segment_file_name(Path::new(&b)), Some(40_000_000_000));
        assert_eq!(parse_segment_file_name(Path::new("head")), None);
        assert_eq!(
            parse_segment_file_name(Path::new("0000000000000000000x.seg")),
            None
        );
    }
}
