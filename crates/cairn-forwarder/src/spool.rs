//! The spool: encoded payloads waiting to be delivered, one file each under
//! `<run_path>/forwarder/`, so that a crash or a restart during an outage loses none.
//!
//! A file is `header | body`. The header (32 bytes, little-endian) is `magic "CFW1" |
//! endpoint u8 | encoding u8 | 0u16 | items u64 | body_len u64 | body_crc u32 | header_crc
//! u32`. A file is written to a temporary name, fsynced, renamed and the directory fsynced
//! before `enqueue` returns, so what the spool holds after a crash is exactly what was
//! enqueued and not yet delivered. A file whose header or body fails its CRC is dropped and
//! counted as corrupt; it is never sent.
//!
//! When the disk refuses a write (full, read-only), the payload is kept in memory instead and
//! still sent; it is lost only if the agent stops before delivering it, and then counted.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use cairn_logs::private_fs;

use crate::{Encoding, Endpoint};

const MAGIC: &[u8; 4] = b"CFW1";
const HEADER_LEN: usize = 32;
const SUFFIX: &str = ".payload";

/// One payload waiting.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub endpoint: Endpoint,
    pub encoding: Encoding,
    pub items: u64,
    pub bytes: u64,
    /// `Some` when the disk refused it: the only copy.
    pub memory: Option<Vec<u8>>,
}

/// The next payload to send (its sequence number, entry and body), or the item count of a
/// damaged one that was dropped instead.
pub(crate) type Next = Result<(u64, Entry, Vec<u8>), u64>;

/// Items a spool dropped, by why.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dropped {
    pub corrupt: u64,
    pub spool_full: u64,
}

pub(crate) struct Spool {
    dir: PathBuf,
    entries: BTreeMap<u64, Entry>,
    next_seq: u64,
    bytes: u64,
    max_bytes: u64,
}

fn file_name(seq: u64) -> String {
    format!("{seq:016x}{SUFFIX}")
}

fn header(e: &Entry, body: &[u8]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..4].copy_from_slice(MAGIC);
    h[4] = e.endpoint.code();
    h[5] = e.encoding.code();
    h[8..16].copy_from_slice(&e.items.to_le_bytes());
    h[16..24].copy_from_slice(&(body.len() as u64).to_le_bytes());
    h[24..28].copy_from_slice(&crc32fast::hash(body).to_le_bytes());
    let crc = crc32fast::hash(&h[..28]);
    h[28..32].copy_from_slice(&crc.to_le_bytes());
    h
}

/// The entry a header describes, with its body CRC; `None` when it is not one of ours.
fn parse_header(h: &[u8]) -> Option<(Entry, u32)> {
    if h.len() < HEADER_LEN || &h[..4] != MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes(h[28..32].try_into().ok()?);
    if crc32fast::hash(&h[..28]) != crc {
        return None;
    }
    let endpoint = Endpoint::from_code(h[4])?;
    let encoding = Encoding::from_code(h[5])?;
    let items = u64::from_le_bytes(h[8..16].try_into().ok()?);
    let bytes = u64::from_le_bytes(h[16..24].try_into().ok()?);
    let body_crc = u32::from_le_bytes(h[24..28].try_into().ok()?);
    Some((
        Entry {
            endpoint,
            encoding,
            items,
            bytes,
            memory: None,
        },
        body_crc,
    ))
}

impl Spool {
    /// Opens (creating, 0700) `dir` and takes up what an earlier agent left in it. Leftover
    /// temporary files were never enqueued and are removed; damaged files are removed and
    /// their items (when the header tells) counted as corrupt.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<(Spool, Dropped)> {
        private_fs::private_dir(dir).map_err(io::Error::other)?;
        let mut spool = Spool {
            dir: dir.to_path_buf(),
            entries: BTreeMap::new(),
            next_seq: 0,
            bytes: 0,
            max_bytes,
        };
        let mut dropped = Dropped::default();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let path = entry.path();
            if name.ends_with(".tmp") {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let Some(seq) = name
                .strip_suffix(SUFFIX)
                .and_then(|s| u64::from_str_radix(s, 16).ok())
            else {
                continue;
            };
            let bytes = match private_fs::read(&path) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "forwarder spool: a payload file cannot be read; it is skipped");
                    continue;
                }
            };
            match parse_header(&bytes) {
                Some((e, body_crc))
                    if bytes.len() - HEADER_LEN == e.bytes as usize
                        && crc32fast::hash(&bytes[HEADER_LEN..]) == body_crc =>
                {
                    spool.bytes += e.bytes;
                    spool.entries.insert(seq, e);
                }
                parsed => {
                    let items = parsed.map(|(e, _)| e.items).unwrap_or(1);
                    dropped.corrupt += items;
                    tracing::error!(path = %path.display(), items, "forwarder spool: a damaged payload file was dropped");
                    let _ = std::fs::remove_file(&path);
                }
            }
            spool.next_seq = spool.next_seq.max(seq + 1);
        }
        Ok((spool, dropped))
    }

    /// Adds a payload, durably when the disk allows. Oldest payloads make room when the spool
    /// would pass its budget; a payload larger than the whole budget is kept alone.
    pub fn push(
        &mut self,
        endpoint: Endpoint,
        encoding: Encoding,
        items: u64,
        body: Vec<u8>,
    ) -> (Dropped, Option<io::Error>) {
        let mut dropped = Dropped::default();
        let len = body.len() as u64;
        while self.bytes + len > self.max_bytes && !self.entries.is_empty() {
            if let Some((&seq, _)) = self.entries.iter().next() {
                if let Some(e) = self.remove(seq) {
                    dropped.spool_full += e.items;
                }
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut entry = Entry {
            endpoint,
            encoding,
            items,
            bytes: len,
            memory: None,
        };
        let mut file = Vec::with_capacity(HEADER_LEN + body.len());
        file.extend_from_slice(&header(&entry, &body));
        file.extend_from_slice(&body);
        let failed = private_fs::write_atomic(&self.dir, &file_name(seq), &file).err();
        if failed.is_some() {
            entry.memory = Some(body);
        }
        self.bytes += len;
        self.entries.insert(seq, entry);
        (dropped, failed)
    }

    /// The oldest payload of an endpoint allowed now, with its body. A body that no longer
    /// matches its CRC is dropped (returned in `Err` with its item count).
    pub fn oldest(&mut self, allowed: impl Fn(Endpoint) -> bool) -> Option<Next> {
        let (&seq, e) = self.entries.iter().find(|(_, e)| allowed(e.endpoint))?;
        let e = e.clone();
        if let Some(body) = &e.memory {
            let body = body.clone();
            return Some(Ok((seq, e, body)));
        }
        let path = self.dir.join(file_name(seq));
        let good = private_fs::read(&path).ok().and_then(|bytes| {
            let (parsed, crc) = parse_header(&bytes)?;
            let body = bytes.get(HEADER_LEN..)?;
            (parsed.bytes as usize == body.len() && crc32fast::hash(body) == crc)
                .then(|| body.to_vec())
        });
        match good {
            Some(body) => Some(Ok((seq, e, body))),
            None => {
                tracing::error!(path = %path.display(), items = e.items, "forwarder spool: a payload file was damaged before it was sent; dropped");
                self.remove(seq);
                Some(Err(e.items))
            }
        }
    }

    pub fn remove(&mut self, seq: u64) -> Option<Entry> {
        let e = self.entries.remove(&seq)?;
        self.bytes -= e.bytes;
        if e.memory.is_none() {
            let _ = std::fs::remove_file(self.dir.join(file_name(seq)));
        }
        Some(e)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Items only in memory: lost if the agent stops now.
    pub fn memory_items(&self) -> u64 {
        self.entries
            .values()
            .filter(|e| e.memory.is_some())
            .map(|e| e.items)
            .sum()
    }

    pub fn queued(&self, endpoint: Endpoint) -> (u64, u64) {
        self.entries
            .values()
            .filter(|e| e.endpoint == endpoint)
            .fold((0, 0), |(n, b), e| (n + 1, b + e.bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_survive_a_reopen_and_damage_is_dropped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let spool_dir = dir.path().join("forwarder");
        let (mut s, d) = Spool::open(&spool_dir, 1 << 20).unwrap();
        assert_eq!(d, Dropped::default());
        for i in 0..3u8 {
            let (d, e) = s.push(Endpoint::Series, Encoding::Zstd, 10, vec![i; 100]);
            assert!(e.is_none() && d == Dropped::default());
        }
        drop(s);
        // Damage the middle one's body; leave a stray temporary file.
        let mut names: Vec<_> = std::fs::read_dir(&spool_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        let mut bytes = std::fs::read(&names[1]).unwrap();
        bytes[HEADER_LEN + 5] ^= 0xff;
        std::fs::write(&names[1], bytes).unwrap();
        std::fs::write(spool_dir.join("x.payload.tmp"), b"half").unwrap();
        let (mut s, d) = Spool::open(&spool_dir, 1 << 20).unwrap();
        assert_eq!(d.corrupt, 10);
        assert_eq!(s.len(), 2);
        let Some(Ok((seq, e, body))) = s.oldest(|_| true) else {
            panic!()
        };
        assert_eq!((e.items, body), (10, vec![0u8; 100]));
        s.remove(seq);
        let Some(Ok((_, _, body))) = s.oldest(|_| true) else {
            panic!()
        };
        assert_eq!(body, vec![2u8; 100]);
        // A new payload does not reuse a name.
        s.push(Endpoint::Events, Encoding::Identity, 1, vec![9; 10]);
        assert_eq!(s.len(), 2);
        assert!(!spool_dir.join("x.payload.tmp").exists());
    }

    #[test]
    fn the_oldest_payloads_make_room_and_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(dir.path(), 250).unwrap();
        s.push(Endpoint::Series, Encoding::Zstd, 4, vec![1; 100]);
        s.push(Endpoint::CheckRun, Encoding::Zstd, 2, vec![2; 100]);
        let (d, _) = s.push(Endpoint::Series, Encoding::Zstd, 3, vec![3; 100]);
        assert_eq!(d.spool_full, 4);
        assert_eq!((s.len(), s.bytes()), (2, 200));
        assert_eq!(s.queued(Endpoint::Series), (1, 100));
    }
}
