//! The on-disk record of the buffer and the names of its files.
//!
//! Record: `len: u32 LE | crc: u32 LE | kind: u8 | check: u32 LE | payload[len]`. The CRC32
//! covers `len`, `kind`, `check` and the payload, so a torn or corrupt record (a bad length
//! included) is detected. `check` indexes the segment's table of check ids, which the segment
//! itself defines with [`KIND_CHECK`] records before their first use: every segment can be read
//! alone, which is what lets the head be deleted segment by segment.

use std::path::Path;

/// A log: the payload is its wire JSON object.
pub const KIND_LOG: u8 = 0;
/// A persistent-cache write: `key_len: u32 LE | key | value` (the staging area's layout).
pub const KIND_CACHE: u8 = 1;
/// Defines check index `check` of this segment: the payload is the check id.
pub const KIND_CHECK: u8 = 2;

pub const HEADER_BYTES: usize = 13;

/// Suffix of segment files; the stem is the global offset of the segment's first byte.
const SEGMENT_SUFFIX: &str = ".seg";

/// One record read back from a segment, borrowed from the read buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRecord<'a> {
    pub kind: u8,
    pub check: u32,
    pub payload: &'a [u8],
}

/// Appends one record to `out`.
pub fn encode(out: &mut Vec<u8>, kind: u8, check: u32, payload: &[u8]) {
    let len = payload.len() as u32;
    let mut h = crc32fast::Hasher::new();
    h.update(&len.to_le_bytes());
    h.update(&[kind]);
    h.update(&check.to_le_bytes());
    h.update(payload);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&h.finalize().to_le_bytes());
    out.push(kind);
    out.extend_from_slice(&check.to_le_bytes());
    out.extend_from_slice(payload);
}

/// Appends one cache-write record without building its payload separately.
pub fn encode_cache(out: &mut Vec<u8>, check: u32, key: &str, value: &str) {
    let start = out.len();
    let klen = (key.len() as u32).to_le_bytes();
    let len = (4 + key.len() + value.len()) as u32;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.push(KIND_CACHE);
    out.extend_from_slice(&check.to_le_bytes());
    out.extend_from_slice(&klen);
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(value.as_bytes());
    let crc = crc_of(&out[start..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The CRC of an encoded record whose crc field is still to be filled.
fn crc_of(record: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&record[..4]);
    h.update(&record[8..]);
    h.finalize()
}

/// What [`decode`] found at the start of a byte slice.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A whole, valid record and its encoded size.
    Record(RawRecord<'a>, usize),
    /// The slice ends inside the record; `needed` bytes hold all of it (when the length is
    /// plausible: a torn length shows up as [`Decoded::Corrupt`] once enough bytes are there).
    Incomplete { needed: usize },
    /// The checksum does not match, or the kind is unknown.
    Corrupt,
}

/// Decodes the record at the start of `buf`. `max_len` bounds a plausible payload length, so a
/// corrupt length field does not make the reader wait for, or allocate, gigabytes.
pub fn decode(buf: &[u8], max_len: usize) -> Decoded<'_> {
    if buf.len() < HEADER_BYTES {
        return Decoded::Incomplete {
            needed: HEADER_BYTES,
        };
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len > max_len {
        return Decoded::Corrupt;
    }
    let total = HEADER_BYTES + len;
    if buf.len() < total {
        return Decoded::Incomplete { needed: total };
    }
    let stored = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let kind = buf[8];
    if stored != crc_of(&buf[..total]) || kind > KIND_CHECK {
        return Decoded::Corrupt;
    }
    let check = u32::from_le_bytes([buf[9], buf[10], buf[11], buf[12]]);
    Decoded::Record(
        RawRecord {
            kind,
            check,
            payload: &buf[HEADER_BYTES..total],
        },
        total,
    )
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
        let Decoded::Record(r, n) = decode(&buf, 1 << 20) else {
            panic!("first record")
        };
        assert_eq!(
            (r.kind, r.check, r.payload),
            (KIND_LOG, 7, &b"{\"message\":\"hi\"}"[..])
        );
        let Decoded::Record(c, m) = decode(&buf[n..], 1 << 20) else {
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
            assert!(
                !matches!(decode(&bad, 1 << 20), Decoded::Record(r2, _) if r2 == r),
                "flipping bit {bit} went unnoticed"
            );
        }
    }

    #[test]
    fn a_short_slice_is_incomplete_not_corrupt() {
        let mut buf = Vec::new();
        encode(&mut buf, KIND_LOG, 0, b"0123456789");
        for cut in 0..buf.len() {
            assert!(
                matches!(decode(&buf[..cut], 1 << 20), Decoded::Incomplete { .. }),
                "cut at {cut}"
            );
        }
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
