//! The per-check staging area: logs and cache writes in the order the check made them, framed
//! in one contiguous byte buffer so that the hand-off allocates nothing per log.
//!
//! Frame: `kind: u8 | len: u32 LE | payload`. A log's payload is its wire JSON object; a cache
//! write's payload is `key_len: u32 LE | key | value`.

const KIND_LOG: u8 = 0;
const KIND_CACHE: u8 = 1;
const KIND_RESET: u8 = 2;
const HEADER: usize = 5;

#[derive(Debug, Default, Clone)]
pub struct Staging {
    bytes: Vec<u8>,
    logs: usize,
    records: usize,
}

/// One staged record, borrowed from the staging buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record<'a> {
    /// A log, as its wire JSON object.
    Log(&'a [u8]),
    /// A persistent-cache write (cursors are cache writes under `log_cursor_<stream>`).
    Cache { key: &'a str, value: &'a str },
    /// A reset of cache entries: the keys as [`encode_keys`] lays them out (read them with
    /// [`decode_keys`]). Removes them all at once.
    Reset(&'a [u8]),
}

/// Lays out a list of cache keys as `key_len: u32 LE | key`, one after the other: the payload
/// of a staged reset and of the buffer's reset record.
pub fn encode_keys<'k>(out: &mut Vec<u8>, keys: impl IntoIterator<Item = &'k str>) {
    for key in keys {
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(key.as_bytes());
    }
}

/// The keys of an [`encode_keys`] payload, or `None` when it is malformed.
pub fn decode_keys(mut payload: &[u8]) -> Option<Vec<&str>> {
    let mut keys = Vec::new();
    while !payload.is_empty() {
        let len = u32::from_le_bytes(payload.get(..4)?.try_into().ok()?) as usize;
        keys.push(std::str::from_utf8(payload.get(4..4 + len)?).ok()?);
        payload = &payload[4 + len..];
    }
    Some(keys)
}

impl Staging {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a log whose JSON object `write` produces directly into the buffer.
    pub fn push_log_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.bytes.len();
        self.bytes.push(KIND_LOG);
        self.bytes.extend_from_slice(&[0; 4]);
        write(&mut self.bytes);
        let len = (self.bytes.len() - start - HEADER) as u32;
        self.bytes[start + 1..start + HEADER].copy_from_slice(&len.to_le_bytes());
        self.logs += 1;
        self.records += 1;
    }

    /// Like [`push_log_with`](Self::push_log_with), but `write` may refuse the log (it is given
    /// the buffer and where the log's JSON starts in it, so it can measure what it wrote): then
    /// nothing of the log stays staged. Refusing costs a truncate, never a copy.
    pub fn try_push_log_with<E>(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>, usize) -> Result<(), E>,
    ) -> Result<(), E> {
        let start = self.bytes.len();
        self.bytes.push(KIND_LOG);
        self.bytes.extend_from_slice(&[0; 4]);
        if let Err(e) = write(&mut self.bytes, start + HEADER) {
            self.bytes.truncate(start);
            return Err(e);
        }
        let len = (self.bytes.len() - start - HEADER) as u32;
        self.bytes[start + 1..start + HEADER].copy_from_slice(&len.to_le_bytes());
        self.logs += 1;
        self.records += 1;
        Ok(())
    }

    pub fn push_cache(&mut self, key: &str, value: &str) {
        self.bytes.push(KIND_CACHE);
        let len = (4 + key.len() + value.len()) as u32;
        self.bytes.extend_from_slice(&len.to_le_bytes());
        self.bytes
            .extend_from_slice(&(key.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(key.as_bytes());
        self.bytes.extend_from_slice(value.as_bytes());
        self.records += 1;
    }

    /// Stages the removal of `keys`, as one record: it is applied whole or not at all.
    pub fn push_reset(&mut self, keys: &[&str]) {
        let start = self.bytes.len();
        self.bytes.push(KIND_RESET);
        self.bytes.extend_from_slice(&[0; 4]);
        encode_keys(&mut self.bytes, keys.iter().copied());
        let len = (self.bytes.len() - start - HEADER) as u32;
        self.bytes[start + 1..start + HEADER].copy_from_slice(&len.to_le_bytes());
        self.records += 1;
    }

    pub fn len_bytes(&self) -> usize {
        self.bytes.len()
    }

    pub fn logs(&self) -> usize {
        self.logs
    }

    pub fn records(&self) -> usize {
        self.records
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Empties the buffer but keeps its allocation for the next run.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.logs = 0;
        self.records = 0;
    }

    pub fn iter(&self) -> RecordIter<'_> {
        RecordIter { rest: &self.bytes }
    }
}

pub struct RecordIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Record<'a>;

    fn next(&mut self) -> Option<Record<'a>> {
        if self.rest.len() < HEADER {
            return None;
        }
        let kind = self.rest[0];
        let len = u32::from_le_bytes(self.rest[1..HEADER].try_into().ok()?) as usize;
        let payload = self.rest.get(HEADER..HEADER + len)?;
        self.rest = &self.rest[HEADER + len..];
        match kind {
            KIND_LOG => Some(Record::Log(payload)),
            KIND_CACHE => {
                let klen = u32::from_le_bytes(payload.get(..4)?.try_into().ok()?) as usize;
                let key = std::str::from_utf8(payload.get(4..4 + klen)?).ok()?;
                let value = std::str::from_utf8(payload.get(4 + klen..)?).ok()?;
                Some(Record::Cache { key, value })
            }
            KIND_RESET => Some(Record::Reset(payload)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_come_back_in_the_order_they_were_staged() {
        let mut s = Staging::new();
        s.push_log_with(|b| b.extend_from_slice(b"{\"message\":\"a\"}"));
        s.push_cache("log_cursor_default", "{\"position\":1}");
        s.push_log_with(|b| b.extend_from_slice(b"{}"));
        let got: Vec<_> = s.iter().collect();
        assert_eq!(
            got,
            vec![
                Record::Log(b"{\"message\":\"a\"}"),
                Record::Cache {
                    key: "log_cursor_default",
                    value: "{\"position\":1}"
                },
                Record::Log(b"{}"),
            ]
        );
        assert_eq!((s.logs(), s.records()), (2, 3));
        s.clear();
        assert!(s.is_empty() && s.iter().next().is_none());
    }

    #[test]
    fn a_refused_log_leaves_nothing_staged() {
        let mut s = Staging::new();
        s.push_log_with(|b| b.extend_from_slice(b"{\"message\":\"a\"}"));
        let before = s.as_bytes().to_vec();
        let refused = s.try_push_log_with(|b, start| {
            b.extend_from_slice(b"{\"message\":\"far too long\"");
            Err(b.len() - start)
        });
        assert_eq!(refused, Err(25));
        assert_eq!(s.as_bytes(), &before[..]);
        assert_eq!((s.logs(), s.records()), (1, 1));
        s.try_push_log_with(|b, _| {
            b.extend_from_slice(b"{}");
            Ok::<(), ()>(())
        })
        .unwrap();
        let got: Vec<_> = s.iter().collect();
        assert_eq!(
            got,
            vec![Record::Log(b"{\"message\":\"a\"}"), Record::Log(b"{}")]
        );
        s.clear();
        assert!(s.is_empty() && s.iter().next().is_none());
    }

    #[test]
    fn a_reset_is_one_record_listing_every_key() {
        let mut s = Staging::new();
        s.push_cache("log_cursor_a", "1");
        s.push_reset(&["log_cursor_a", "log_cursor_b"]);
        let got: Vec<_> = s.iter().collect();
        assert_eq!(got.len(), 2);
        let Record::Reset(payload) = got[1] else {
            panic!("expected a reset, got {:?}", got[1]);
        };
        assert_eq!(
            decode_keys(payload),
            Some(vec!["log_cursor_a", "log_cursor_b"])
        );
        assert_eq!((s.logs(), s.records()), (0, 2));
        assert_eq!(decode_keys(&[9, 0, 0, 0, b'x']), None);
    }
}
