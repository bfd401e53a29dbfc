//! Reading a whole segment file, resynchronising after anything unreadable.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use super::record::{self, Decoded, RawRecord, HEADER_BYTES, KIND_CHECK};

/// What a scan meets, with offsets relative to the segment's start.
pub(crate) enum Item<'a> {
    Record {
        begin: u64,
        end: u64,
        record: RawRecord<'a>,
    },
    /// An unreadable region followed by a good record. `header` is the lost record's kind and
    /// check when only its payload was bad (then the region is exactly that record).
    Lost {
        begin: u64,
        end: u64,
        header: Option<(u8, u32)>,
    },
    /// From `begin` to the end of the file nothing is readable: a torn or corrupt tail.
    Torn { begin: u64, end: u64 },
}

/// The first good header at or after `from` in `file` (of length `len`).
pub(crate) fn find_next_header(file: &File, from: u64, len: u64) -> io::Result<Option<u64>> {
    let mut window = vec![0u8; 1 << 20];
    let mut pos = from;
    while pos + HEADER_BYTES as u64 <= len {
        let n = (window.len() as u64).min(len - pos) as usize;
        file.read_exact_at(&mut window[..n], pos)?;
        if let Some(i) = record::next_header(&window[..n], 0) {
            return Ok(Some(pos + i as u64));
        }
        if pos + n as u64 >= len {
            break;
        }
        // Overlap so that a header straddling two windows is seen.
        pos += (n - (HEADER_BYTES - 1)) as u64;
    }
    Ok(None)
}

/// Reads `file` from its start and calls `each` for every record and every unreadable region,
/// in order. Returns the segment's table of check ids and the file length it saw.
pub(crate) fn scan_segment(
    file: &File,
    mut each: impl FnMut(Item<'_>, &HashMap<u32, Arc<str>>),
) -> io::Result<(HashMap<u32, Arc<str>>, u64)> {
    let len = file.metadata()?.len();
    let mut checks = HashMap::new();
    let mut buf = vec![0u8; 1 << 20];
    let (mut filled, mut consumed, mut base) = (0usize, 0usize, 0u64);
    loop {
        let at = base + consumed as u64;
        if at >= len {
            return Ok((checks, len));
        }
        match record::decode(&buf[consumed..filled]) {
            Decoded::Record(r, n) => {
                if r.kind == KIND_CHECK {
                    if let Ok(id) = std::str::from_utf8(r.payload) {
                        checks.insert(r.check, Arc::from(id));
                    }
                }
                each(
                    Item::Record {
                        begin: at,
                        end: at + n as u64,
                        record: r,
                    },
                    &checks,
                );
                consumed += n;
            }
            Decoded::BadPayload { kind, check, size } => {
                each(
                    Item::Lost {
                        begin: at,
                        end: at + size as u64,
                        header: Some((kind, check)),
                    },
                    &checks,
                );
                consumed += size;
            }
            Decoded::Corrupt => match find_next_header(file, at + 1, len)? {
                Some(next) => {
                    each(
                        Item::Lost {
                            begin: at,
                            end: next,
                            header: None,
                        },
                        &checks,
                    );
                    (base, consumed, filled) = (next, 0, 0);
                }
                None => {
                    each(
                        Item::Torn {
                            begin: at,
                            end: len,
                        },
                        &checks,
                    );
                    return Ok((checks, len));
                }
            },
            Decoded::Incomplete { needed } => {
                if at + needed as u64 > len {
                    // A record cut by the end of the file (its header CRC vouches for its
                    // length), or fewer bytes left than a header: a torn tail.
                    each(
                        Item::Torn {
                            begin: at,
                            end: len,
                        },
                        &checks,
                    );
                    return Ok((checks, len));
                }
                buf.copy_within(consumed..filled, 0);
                filled -= consumed;
                base = at;
                consumed = 0;
                if buf.len() < needed {
                    buf.resize(needed, 0);
                }
                let want = (buf.len() - filled).min((len - base - filled as u64) as usize);
                file.read_exact_at(&mut buf[filled..filled + want], base + filled as u64)?;
                filled += want;
            }
        }
    }
}
