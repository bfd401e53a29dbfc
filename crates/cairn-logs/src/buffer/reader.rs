//! Reading the buffer in order from the head, without taking the buffer lock per record.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Instant;

use super::record::{self, Decoded, HEADER_BYTES, KIND_CHECK, KIND_LOG};
use super::scan::find_next_header;
use super::{io_err, Buffer};
use crate::sink::SinkError;

/// One record handed out by [`Reader::next`].
#[derive(Debug)]
pub struct ReadRecord<'a> {
    pub kind: u8,
    /// The check that wrote it, as the segment defines it (`None` if undefined: corrupt).
    pub check: Option<&'a Arc<str>>,
    pub payload: &'a [u8],
    /// Global offsets of the record.
    pub start: u64,
    pub end: u64,
}

pub(super) struct ReaderSegment {
    start: u64,
    file: Arc<File>,
    checks: HashMap<u32, Arc<str>>,
}

/// Reads the buffer in order from the head, without taking the buffer lock per record.
pub struct Reader {
    pub(super) buffer: Arc<Buffer>,
    pub(super) pos: u64,
    pub(super) seg: Option<ReaderSegment>,
    pub(super) buf: Vec<u8>,
    /// Global offset of `buf[0]`.
    pub(super) buf_start: u64,
    pub(super) filled: usize,
    pub(super) consumed: usize,
}

/// What [`Reader::next`] returned.
pub enum ReadOutcome<'a> {
    Record(ReadRecord<'a>),
    /// Nothing new before the deadline.
    Idle,
    /// The head jumped past the reader (drop_oldest): it continues at `pos`, skipping `from..pos`.
    Skipped {
        from: u64,
        to: u64,
    },
    /// The buffer is closed and everything was read.
    Closed,
}

impl Reader {
    /// Offset of the next record to read.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The next record, waiting until `deadline` for one.
    pub fn next(&mut self, deadline: Instant) -> Result<ReadOutcome<'_>, SinkError> {
        loop {
            // Decode from what is buffered first: no lock, no syscall.
            if self.seg.is_some() {
                match record::decode(&self.buf[self.consumed..self.filled]) {
                    Decoded::Record(r, n) => {
                        let start = self.buf_start + self.consumed as u64;
                        let (from, to) = (self.consumed, self.consumed + n);
                        self.consumed = to;
                        self.pos = start + n as u64;
                        let kind = r.kind;
                        let check_idx = r.check;
                        let seg = self.seg.as_mut().expect("checked above");
                        if kind == KIND_CHECK {
                            if let Ok(id) = std::str::from_utf8(&self.buf[from + HEADER_BYTES..to])
                            {
                                seg.checks.insert(check_idx, Arc::from(id));
                            }
                        }
                        let seg = self.seg.as_ref().expect("checked above");
                        return Ok(ReadOutcome::Record(ReadRecord {
                            kind,
                            check: seg.checks.get(&check_idx),
                            payload: &self.buf[from + HEADER_BYTES..to],
                            start,
                            end: start + n as u64,
                        }));
                    }
                    Decoded::BadPayload { kind, check, size } => {
                        // Only a disk fault gets here (the writer never leaves a bad record, and
                        // recovery patches what it found): this one record is lost.
                        let from = self.pos;
                        let to = from + size as u64;
                        let seg = self.seg.as_ref().expect("checked above");
                        if kind == KIND_LOG {
                            let id = seg.checks.get(&check).cloned();
                            self.buffer.lost_at_read(id.as_deref(), 1, size as u64);
                        }
                        tracing::error!(
                            offset = from,
                            bytes_lost = size,
                            "buffer: corrupt record read; skipped"
                        );
                        self.jump(to);
                        return Ok(ReadOutcome::Skipped { from, to });
                    }
                    Decoded::Corrupt => {
                        let from = self.pos;
                        let to = self.resync()?;
                        let lost = to - from;
                        self.buffer
                            .lost_at_read(None, lost.div_ceil(320).max(1), lost);
                        tracing::error!(
                            offset = from,
                            bytes_lost = lost,
                            "buffer: unreadable region read; skipped to the next good record"
                        );
                        self.jump(to);
                        return Ok(ReadOutcome::Skipped { from, to });
                    }
                    Decoded::Incomplete { .. } => {}
                }
            }
            match self.fill(deadline)? {
                Fill::Data => {}
                Fill::Idle => return Ok(ReadOutcome::Idle),
                Fill::Closed => return Ok(ReadOutcome::Closed),
                Fill::Skipped(from, to) => return Ok(ReadOutcome::Skipped { from, to }),
            }
        }
    }

    /// The next good record after an unreadable one at `pos`, in the same segment, or the
    /// segment's end.
    fn resync(&self) -> Result<u64, SinkError> {
        let (seg_start, seg_end, file) = {
            let inner = self.buffer.inner.lock();
            match inner.segments.iter().find(|s| s.end > self.pos) {
                Some(s) => (s.start, s.end, s.file.clone()),
                None => return Ok(inner.tail),
            }
        };
        let rel = self.pos - seg_start;
        let len = seg_end - seg_start;
        Ok(find_next_header(&file, rel + 1, len)
            .map_err(io_err(&self.buffer.opts.dir))?
            .map(|r| seg_start + r)
            .unwrap_or(seg_end))
    }

    fn jump(&mut self, to: u64) {
        self.pos = to;
        self.seg = None;
        self.buf_start = to;
        self.filled = 0;
        self.consumed = 0;
    }

    /// Reads more bytes at `pos`, moving to the next segment or waiting as needed.
    fn fill(&mut self, deadline: Instant) -> Result<Fill, SinkError> {
        let buffer = self.buffer.clone();
        let (seg_start, seg_end, new_checks) = {
            let mut inner = buffer.inner.lock();
            loop {
                if self.pos < inner.head {
                    let (from, to) = (self.pos, inner.head);
                    drop(inner);
                    self.jump(to);
                    return Ok(Fill::Skipped(from, to));
                }
                // The segment holding `pos`, or the next one (past a cut corrupt region).
                if let Some(s) = inner.segments.iter().find(|s| s.end > self.pos) {
                    if s.start > self.pos {
                        let to = s.start;
                        self.jump(to);
                    }
                    let new_checks = match &self.seg {
                        Some(cur) if cur.start == s.start => None,
                        _ => Some((s.file.clone(), s.checks.clone())),
                    };
                    break (s.start, s.end, new_checks);
                }
                if inner.closed {
                    return Ok(Fill::Closed);
                }
                if buffer.readable.wait_until(&mut inner, deadline).timed_out() {
                    return Ok(Fill::Idle);
                }
            }
        };
        if let Some((file, checks)) = new_checks {
            self.seg = Some(ReaderSegment {
                start: seg_start,
                file,
                checks,
            });
            self.buf_start = self.pos;
            self.filled = 0;
            self.consumed = 0;
        }
        // Keep the unread partial record at the front, then read as much as fits.
        if self.consumed > 0 {
            self.buf.copy_within(self.consumed..self.filled, 0);
            self.filled -= self.consumed;
            self.buf_start += self.consumed as u64;
            self.consumed = 0;
        }
        let have_to = self.buf_start + self.filled as u64;
        if have_to >= seg_end {
            // Segments end on record boundaries, so only a disk fault leaves a partial record
            // here: skip the rest of the segment.
            let from = self.pos;
            self.buffer
                .lost_at_read(None, 1, seg_end.saturating_sub(from));
            tracing::error!(
                offset = from,
                "buffer: partial record at a segment end; skipped"
            );
            self.jump(seg_end);
            return Ok(Fill::Skipped(from, seg_end));
        }
        if let Decoded::Incomplete { needed } = record::decode(&self.buf[..self.filled]) {
            if needed > self.buf.len() {
                self.buf.resize(needed, 0);
            }
        }
        let want = ((seg_end - have_to) as usize).min(self.buf.len() - self.filled);
        let seg = self.seg.as_ref().expect("set above");
        seg.file
            .read_exact_at(
                &mut self.buf[self.filled..self.filled + want],
                have_to - seg.start,
            )
            .map_err(io_err(&self.buffer.opts.dir))?;
        self.filled += want;
        Ok(Fill::Data)
    }
}

pub(super) enum Fill {
    Data,
    Idle,
    Closed,
    Skipped(u64, u64),
}
