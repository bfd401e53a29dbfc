//! Batches: the JSON array payload built from buffered logs, within the payload limits.
//!
//! The buffered payloads are already the final JSON objects, so a payload is `[`, the objects
//! joined by `,`, and `]`: building one is a copy, never a re-encode.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

/// Payload limits (`batch_max_size`, `batch_max_content_size`).
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub max_entries: usize,
    /// Uncompressed bytes of the whole array, brackets and commas included.
    pub max_bytes: usize,
}

impl BatchLimits {
    /// Whether one log fits in a payload at all.
    pub fn admits(&self, json_len: usize) -> bool {
        json_len + 2 <= self.max_bytes
    }
}

/// One payload in the making, and the buffer range it will acknowledge.
#[derive(Debug)]
pub struct Batch {
    /// `[` + objects joined by `,` (the closing `]` is added by [`Batch::finish`]).
    json: Vec<u8>,
    /// Where each entry starts in `json` (after its separator).
    starts: Vec<u32>,
    /// Per entry, its slot in `checks`.
    entry_check: Vec<u16>,
    /// Check ids of the entries, each once.
    checks: Vec<Arc<str>>,
    /// Buffer range `[start, end)` that this payload acknowledges: its logs and any records
    /// between them (cursors, cache writes, dropped logs).
    pub start: u64,
    pub end: u64,
    /// When the first entry went in (`batch_wait` counts from here).
    pub opened_at: Option<Instant>,
}

impl Batch {
    pub fn new(start: u64) -> Self {
        Batch {
            json: Vec::new(),
            starts: Vec::new(),
            entry_check: Vec::new(),
            checks: Vec::new(),
            start,
            end: start,
            opened_at: None,
        }
    }

    pub fn entries(&self) -> usize {
        self.starts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// Uncompressed size once finished.
    pub fn payload_bytes(&self) -> usize {
        if self.json.is_empty() {
            2
        } else {
            self.json.len() + 1
        }
    }

    /// Whether one more log of `json_len` bytes stays within `limits`.
    pub fn fits(&self, json_len: usize, limits: &BatchLimits) -> bool {
        // Every entry but the first brings a `,`; `[]` is already counted.
        let separator = usize::from(!self.is_empty());
        self.entries() < limits.max_entries
            && self.payload_bytes() + separator + json_len <= limits.max_bytes
    }

    pub fn push(&mut self, check: &Arc<str>, json: &[u8]) {
        if self.json.is_empty() {
            self.json.reserve(64 << 10);
            self.json.push(b'[');
            self.opened_at = Some(Instant::now());
        } else {
            self.json.push(b',');
        }
        self.starts.push(self.json.len() as u32);
        self.json.extend_from_slice(json);
        // Consecutive logs mostly come from one check: look at the last slot first.
        let slot = match self
            .checks
            .iter()
            .rposition(|c| Arc::ptr_eq(c, check) || **c == **check)
        {
            Some(i) => i,
            None => {
                self.checks.push(check.clone());
                self.checks.len() - 1
            }
        };
        self.entry_check.push(slot as u16);
    }

    /// The finished payload.
    pub fn finish(self) -> Payload {
        let mut per_check: Vec<(Arc<str>, u64)> =
            self.checks.iter().map(|c| (c.clone(), 0)).collect();
        for &slot in &self.entry_check {
            per_check[slot as usize].1 += 1;
        }
        let mut json = self.json;
        if json.is_empty() {
            json.push(b'[');
        }
        json.push(b']');
        Payload {
            json: Bytes::from(json),
            starts: self.starts,
            entry_check: self.entry_check,
            checks: self.checks,
            per_check,
        }
    }
}

/// A finished JSON array, splittable for a 413.
#[derive(Debug, Clone)]
pub struct Payload {
    /// Shared, so that compression and retries never copy it.
    pub json: Bytes,
    starts: Vec<u32>,
    entry_check: Vec<u16>,
    checks: Vec<Arc<str>>,
    /// Logs per check in this payload.
    pub per_check: Vec<(Arc<str>, u64)>,
}

impl Payload {
    pub fn entries(&self) -> usize {
        self.starts.len()
    }

    /// Splits into two payloads of half the entries each. `None` for a single entry.
    pub fn split(&self) -> Option<(Payload, Payload)> {
        let n = self.entries();
        if n < 2 {
            return None;
        }
        let mid = n / 2;
        Some((self.sub(0, mid), self.sub(mid, n)))
    }

    fn entry(&self, i: usize) -> &[u8] {
        let start = self.starts[i] as usize;
        // Each entry ends at the separator before the next one, or before the closing `]`.
        let end = self
            .starts
            .get(i + 1)
            .map(|s| *s as usize - 1)
            .unwrap_or(self.json.len() - 1);
        &self.json[start..end]
    }

    fn sub(&self, from: usize, to: usize) -> Payload {
        let mut b = Batch::new(0);
        for i in from..to {
            let check = &self.checks[self.entry_check[i] as usize];
            b.push(check, self.entry(i));
        }
        b.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(p: &Payload) -> Vec<serde_json::Value> {
        serde_json::from_slice(&p.json).unwrap()
    }

    #[test]
    fn a_payload_is_the_objects_joined_into_a_json_array() {
        let c: Arc<str> = Arc::from("c:1");
        let mut b = Batch::new(10);
        assert_eq!(b.payload_bytes(), 2);
        b.push(&c, br#"{"message":"a"}"#);
        b.push(&c, br#"{"message":"b","n":[1,2]}"#);
        let expected = br#"[{"message":"a"},{"message":"b","n":[1,2]}]"#;
        assert_eq!(b.payload_bytes(), expected.len());
        let p = b.finish();
        assert_eq!(&p.json[..], expected);
        assert_eq!(p.per_check, vec![(c, 2)]);
    }

    #[test]
    fn limits_count_entries_and_uncompressed_bytes_exactly() {
        let c: Arc<str> = Arc::from("c:1");
        let limits = BatchLimits {
            max_entries: 3,
            max_bytes: 2 + 5 + 1 + 5,
        };
        let mut b = Batch::new(0);
        assert!(b.fits(5, &limits));
        b.push(&c, b"{\"a\"}");
        assert!(b.fits(5, &limits));
        assert!(!b.fits(6, &limits));
        b.push(&c, b"{\"b\"}");
        assert_eq!(b.payload_bytes(), limits.max_bytes);
        let roomy = BatchLimits {
            max_entries: 2,
            max_bytes: 1 << 20,
        };
        assert!(!b.fits(1, &roomy), "entry limit");
        assert!(limits.admits(11) && !limits.admits(12));
    }

    #[test]
    fn split_halves_keep_every_entry_and_its_check() {
        let a: Arc<str> = Arc::from("a:1");
        let z: Arc<str> = Arc::from("z:1");
        let mut b = Batch::new(0);
        for i in 0..5 {
            b.push(
                if i % 2 == 0 { &a } else { &z },
                format!("{{\"n\":{i}}}").as_bytes(),
            );
        }
        let p = b.finish();
        let (l, r) = p.split().unwrap();
        let all: Vec<_> = parse(&l).into_iter().chain(parse(&r)).collect();
        assert_eq!(all, parse(&p));
        assert_eq!((l.entries(), r.entries()), (2, 3));
        assert_eq!(l.per_check, vec![(a.clone(), 1), (z.clone(), 1)]);
        assert_eq!(r.per_check, vec![(a.clone(), 2), (z, 1)]);
        let (single, _) = l.split().unwrap();
        assert!(single.split().is_none());
    }
}
