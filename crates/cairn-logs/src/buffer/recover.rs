//! Recovery at start: the snapshot, then every segment replayed, with anything unreadable
//! skipped, patched over and counted.
//!
//! What is kept: every record that reads whole, in every segment, whatever happened before or
//! between them (a flipped byte, a deleted segment, a torn tail). What is counted: the
//! undelivered logs that could not be read, in logs and bytes, per check when the check is
//! known (a record whose header survived, or a deleted segment that the next one's intro
//! describes), as an estimate from the bytes otherwise.
//!
//! One rule keeps "a cursor is never durable ahead of its logs": a damaged region at or past
//! the durable offset recorded in `head` is a torn write of data that was never promised
//! (a crash or power loss mid-write), so the cache writes after it are not applied: the checks
//! fall back to their earlier cursors and resend, rather than skip logs that are gone. A damaged
//! region below that offset is a disk fault in data that was durable with its cursors; later
//! cursors stay, and the loss is counted.

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::SystemTime;

use super::record::{
    self, SegmentIntro, HEADER_BYTES, KIND_CACHE, KIND_CACHE_RESET, KIND_INTRO, KIND_LOG,
};
use super::scan::{scan_segment, Item};
use super::{io_err, list_segments, HeadFile, Segment, Snapshot};
use crate::counters::{Counters, LossReason};
use crate::private_fs;
use crate::sink::SinkError;
use crate::state::CacheState;

/// What recovery found.
pub(super) struct Recovered {
    pub segments: VecDeque<Segment>,
    pub head: u64,
    /// End of the last readable byte: the new active segment starts here.
    pub tail: u64,
    pub durable_state: HashMap<String, CacheState>,
    pub undelivered_logs: u64,
    pub age_marks: VecDeque<(u64, SystemTime)>,
    pub snapshot_offset: u64,
    /// Logs of the last recovered segment per check, for the next segment's intro.
    pub last_logs: HashMap<Arc<str>, u64>,
}

/// Average encoded size of one log, for estimating how many logs an unreadable region held
/// when no header survived: the seed's structured log is ~300 bytes on the wire.
const DEFAULT_RECORD_BYTES: u64 = 320;

/// Losses found, per check (`None` = unknown), counted once recovery is done.
#[derive(Default)]
struct Losses {
    logs: HashMap<Option<Arc<str>>, u64>,
    bytes: u64,
    regions: u64,
}

impl Losses {
    fn add(&mut self, check: Option<Arc<str>>, logs: u64) {
        if logs > 0 {
            *self.logs.entry(check).or_default() += logs;
        }
    }

    fn total_logs(&self) -> u64 {
        self.logs.values().sum()
    }
}

/// An empty value removes the key (what a reset record leaves).
fn apply_cache(state: &mut HashMap<String, CacheState>, check: &str, key: &str, value: &str) {
    if value.is_empty() {
        if let Some(s) = state.get_mut(check) {
            s.remove(key);
        }
        return;
    }
    match state.get_mut(check) {
        Some(s) => {
            s.insert(key.to_string(), value.to_string());
        }
        None => {
            state.insert(
                check.to_string(),
                CacheState::from([(key.to_string(), value.to_string())]),
            );
        }
    }
}

/// Estimated logs in `bytes` of unreadable data (at least one): used only where no intro
/// tells the exact count, i.e. in the newest segment.
fn estimate(bytes: u64, avg: u64) -> u64 {
    let avg = avg.max(1);
    ((bytes + avg / 2) / avg).max(1)
}

/// Reads the snapshot, falling back to the previous one, then to nothing; says what it assumed.
pub(super) fn read_snapshot_with_fallback(dir: &Path) -> (Snapshot, Option<String>) {
    match Snapshot::read(&dir.join(super::SNAPSHOT_FILE)) {
        Ok(Some(s)) => (s, None),
        // Never written, or lost between the rename to .prev and the new one's arrival.
        Ok(None) => match Snapshot::read(&dir.join(super::SNAPSHOT_PREV_FILE)) {
            Ok(Some(s)) => (s, None),
            _ => (Snapshot::default(), None),
        },
        Err(why) => match Snapshot::read(&dir.join(super::SNAPSHOT_PREV_FILE)) {
            Ok(Some(prev)) => {
                let note = format!(
                    "state.snapshot is unreadable ({why}); rebuilt cursors from state.snapshot.prev (offset {}) and the segments: cursors written in segments already delivered and deleted since then are lost, so those checks resume from an earlier cursor and may resend some logs",
                    prev.offset
                );
                (prev, Some(note))
            }
            _ => (
                Snapshot::default(),
                Some(format!(
                    "state.snapshot is unreadable ({why}) and there is no usable previous one; rebuilt cursors from the segments alone: a check whose last cursor was in a delivered and deleted segment starts without a cursor and may resend logs"
                )),
            ),
        },
    }
}

/// What one segment's scan left to settle once the next segment's intro is known.
struct Unsettled {
    start: u64,
    /// Logs read whole, per check (`None`: the check's definition was lost).
    read: HashMap<Option<Arc<str>>, u64>,
    /// Logs known lost (their header survived), already counted.
    known: HashMap<Option<Arc<str>>, u64>,
    /// Undelivered bytes of regions whose records cannot be told apart.
    unknown_bytes: u64,
    /// Average size of a log record in this segment, for an estimate.
    avg: u64,
}

impl Unsettled {
    /// Counts the logs of the unknown regions: exactly, from the intro that describes this
    /// segment, or as an estimate from their bytes.
    fn settle(self, intro: Option<&SegmentIntro>, losses: &mut Losses) {
        if self.unknown_bytes == 0 {
            return;
        }
        if let Some(intro) = intro.filter(|i| i.prev_start == self.start) {
            let had: u64 = intro.prev_logs.iter().map(|(_, n)| n).sum();
            let read: u64 = self.read.values().sum();
            let known: u64 = self.known.values().sum();
            let lost = had.saturating_sub(read + known);
            if self.read.contains_key(&None) || self.known.contains_key(&None) {
                losses.add(None, lost);
            } else {
                let mut attributed = 0;
                for (id, n) in &intro.prev_logs {
                    let key = Some(Arc::from(id.as_str()));
                    let seen = self.read.get(&key).copied().unwrap_or(0)
                        + self.known.get(&key).copied().unwrap_or(0);
                    let l = n.saturating_sub(seen);
                    attributed += l;
                    losses.add(key, l);
                }
                losses.add(None, lost.saturating_sub(attributed));
            }
            return;
        }
        losses.add(None, estimate(self.unknown_bytes, self.avg));
    }
}

pub(super) fn recover(dir: &Path, counters: &Counters) -> Result<Recovered, SinkError> {
    let (snapshot, note) = read_snapshot_with_fallback(dir);
    if let Some(note) = note {
        tracing::warn!(dir = %dir.display(), "buffer: {note}");
    }
    let stored = HeadFile::read(&dir.join(super::HEAD_FILE));
    let head_hint = stored.map(|h| h.head).unwrap_or(0);
    // Without a head file nothing is known to have been durable: treat every damaged region
    // as torn, so no cursor after it is trusted.
    let durable_hint = stored.map(|h| h.durable).unwrap_or(0);

    let mut durable_state = snapshot.checks;
    let mut segments: VecDeque<Segment> = VecDeque::new();
    let mut undelivered_logs = 0u64;
    let mut age_marks = VecDeque::new();
    let mut losses = Losses::default();
    let mut untrusted_from: Option<u64> = None;
    let mut skipped_cache = 0u64;
    let mut last_logs: HashMap<Arc<str>, u64> = HashMap::new();
    let mut unsettled: Option<Unsettled> = None;
    // End of the previous segment as it was on disk (before any cut), to tell gaps.
    let mut prev_end: Option<u64> = stored.map(|h| h.head);
    // End of the readable data of the newest segment, and its average log size.
    let mut data_end = 0u64;
    let mut last_avg = DEFAULT_RECORD_BYTES;
    // Log sizes over the whole buffer, for segments that hold no readable log of their own.
    let (mut all_log_bytes, mut all_logs) = (0u64, 0u64);
    let found = list_segments(dir)?;
    let last_index = found.len().saturating_sub(1);

    for (i, (start, path)) in found.iter().enumerate() {
        let start = *start;
        if prev_end.is_some_and(|pe| start < pe) && i > 0 {
            tracing::error!(segment = %path.display(), "buffer: segment overlaps the one before it; left untouched and not read");
            continue;
        }
        let file = private_fs::options()
            .read(true)
            .append(true)
            .open(path)
            .map_err(io_err(path))?;
        let mut seg = Unsettled {
            start,
            read: HashMap::new(),
            known: HashMap::new(),
            unknown_bytes: 0,
            avg: DEFAULT_RECORD_BYTES,
        };
        let (mut log_bytes, mut log_count) = (0u64, 0u64);
        let mut first_intro: Option<SegmentIntro> = None;
        let mut first = true;
        let mut lost_regions: Vec<(u64, u64)> = Vec::new();
        let mut torn: Option<(u64, u64)> = None;
        let (checks, len) = scan_segment(&file, |item, checks| {
            let is_first = std::mem::replace(&mut first, false);
            match item {
                Item::Record {
                    begin,
                    end,
                    record: r,
                } => {
                    let (begin, end) = (start + begin, start + end);
                    match r.kind {
                        KIND_LOG => {
                            log_bytes += end - begin;
                            log_count += 1;
                            *seg.read.entry(checks.get(&r.check).cloned()).or_default() += 1;
                            if begin >= head_hint {
                                undelivered_logs += 1;
                            }
                        }
                        KIND_CACHE if begin >= snapshot.offset => {
                            if untrusted_from.is_some_and(|u| begin >= u) {
                                skipped_cache += 1;
                            } else if let (Some(check), Some((k, v))) =
                                (checks.get(&r.check), record::split_cache(r.payload))
                            {
                                apply_cache(&mut durable_state, check, k, v);
                            }
                        }
                        KIND_CACHE_RESET if begin >= snapshot.offset => {
                            if untrusted_from.is_some_and(|u| begin >= u) {
                                skipped_cache += 1;
                            } else if let (Some(check), Some(keys)) =
                                (checks.get(&r.check), crate::staging::decode_keys(r.payload))
                            {
                                for k in keys {
                                    apply_cache(&mut durable_state, check, k, "");
                                }
                            }
                        }
                        KIND_INTRO if is_first => first_intro = SegmentIntro::decode(r.payload),
                        _ => {}
                    }
                }
                Item::Lost { begin, end, header } => {
                    let (gb, ge) = (start + begin, start + end);
                    lost_regions.push((begin, end));
                    if gb >= durable_hint {
                        untrusted_from.get_or_insert(gb);
                    }
                    let undelivered = ge > head_hint;
                    if undelivered {
                        losses.bytes += ge - gb.max(head_hint);
                        losses.regions += 1;
                    }
                    match header {
                        Some((KIND_LOG, idx)) => {
                            let id = checks.get(&idx).cloned();
                            *seg.known.entry(id.clone()).or_default() += 1;
                            if undelivered {
                                losses.add(id, 1);
                            }
                        }
                        Some(_) => {}
                        None if undelivered => seg.unknown_bytes += ge - gb.max(head_hint),
                        None => {}
                    }
                }
                Item::Torn { begin, end } => torn = Some((begin, end)),
            }
        })
        .map_err(io_err(path))?;
        all_log_bytes += log_bytes;
        all_logs += log_count;
        if let Some(avg) = log_bytes
            .checked_div(log_count)
            .or_else(|| all_log_bytes.checked_div(all_logs))
        {
            seg.avg = avg;
        }

        // The previous segment's unknown regions, settled by this segment's intro.
        if let Some(prev) = unsettled.take() {
            prev.settle(first_intro.as_ref(), &mut losses);
        }
        // A gap before this segment: a deleted or missing one, which this intro describes.
        if let Some(pe) = prev_end.filter(|pe| *pe < start) {
            let lo = pe.max(head_hint);
            if start > lo {
                let bytes = start - lo;
                losses.bytes += bytes;
                losses.regions += 1;
                if pe >= durable_hint {
                    untrusted_from.get_or_insert(pe);
                }
                match &first_intro {
                    Some(intro) if intro.prev_end == start && intro.prev_start >= lo => {
                        for (id, n) in &intro.prev_logs {
                            losses.add(Some(Arc::from(id.as_str())), *n);
                        }
                        if intro.prev_start > lo {
                            losses.add(None, estimate(intro.prev_start - lo, seg.avg));
                        }
                    }
                    _ => losses.add(None, estimate(bytes, seg.avg)),
                }
                tracing::error!(missing_from = pe, missing_to = start, bytes, "buffer: a segment is missing (deleted or lost); the undelivered logs it held are lost");
            }
        }

        // Patch what cannot be read, so that the reader (and the next recovery) skips it
        // without counting it again. Offsets stay: nothing moves.
        let mut end_on_disk = len;
        if !lost_regions.is_empty() || torn.is_some() {
            let patch = private_fs::options()
                .write(true)
                .open(path)
                .map_err(io_err(path))?;
            for (b, e) in &lost_regions {
                if e - b >= HEADER_BYTES as u64 {
                    patch
                        .write_all_at(&record::encode_pad((e - b) as usize), *b)
                        .map_err(io_err(path))?;
                }
            }
            if let Some((b, e)) = torn {
                let (gb, ge) = (start + b, start + e);
                // In the newest segment, data the head file knew durable past the cut is
                // counted once, below, as missing.
                let counted_below = i == last_index && durable_hint > gb;
                if ge > head_hint && !counted_below {
                    let bytes = ge - gb.max(head_hint);
                    losses.bytes += bytes;
                    losses.regions += 1;
                    seg.unknown_bytes += bytes;
                }
                if gb >= durable_hint {
                    untrusted_from.get_or_insert(gb);
                }
                if i == last_index || e - b < HEADER_BYTES as u64 {
                    // The usual torn tail of a crash mid-write: cut it. (A short tail in an
                    // older segment is cut too; the gap check uses the length it had.)
                    file.set_len(b).map_err(io_err(path))?;
                    end_on_disk = b;
                } else {
                    patch
                        .write_all_at(&record::encode_pad((e - b) as usize), b)
                        .map_err(io_err(path))?;
                }
            }
            tracing::error!(
                segment = %path.display(),
                regions = lost_regions.len() + usize::from(torn.is_some()),
                "buffer: unreadable records skipped and patched over; the records after them are kept"
            );
        }
        // Whatever survived a crash may still sit in the page cache only: make it durable
        // before handing its cursors to checks.
        file.sync_all().map_err(io_err(path))?;
        prev_end = Some(start + len);
        data_end = start + end_on_disk;
        last_avg = seg.avg;
        last_logs = seg
            .read
            .iter()
            .filter_map(|(k, v)| k.clone().map(|k| (k, *v)))
            .collect();
        unsettled = Some(seg);
        if end_on_disk == 0 {
            fs::remove_file(path).map_err(io_err(path))?;
            continue;
        }
        let mtime = file
            .metadata()
            .and_then(|m| m.modified())
            .unwrap_or_else(|_| SystemTime::now());
        age_marks.push_back((start, mtime));
        segments.push_back(Segment {
            start,
            end: start + end_on_disk,
            file: Arc::new(file),
            checks,
            logs: HashMap::new(),
        });
    }
    // The last segment has no successor to describe it: estimate.
    if let Some(last) = unsettled.take() {
        last.settle(None, &mut losses);
    }

    // The last segment itself may be missing: the head file knew of durable data past the end.
    let mut tail = data_end.max(snapshot.offset);
    if let Some(pe) = prev_end {
        tail = tail.max(pe);
    }
    let from = data_end.max(head_hint).max(snapshot.offset);
    if durable_hint > from {
        let bytes = durable_hint - from;
        losses.bytes += bytes;
        losses.regions += 1;
        losses.add(None, estimate(bytes, last_avg));
        tracing::error!(
            missing_from = tail,
            missing_to = durable_hint,
            bytes,
            "buffer: the newest segment is missing or cut short; the undelivered logs it held are lost"
        );
        tail = durable_hint;
    }

    if losses.regions > 0 {
        for (check, n) in &losses.logs {
            counters.add_dropped(check.as_deref(), LossReason::Corrupt, *n);
        }
        counters.corrupt_bytes.fetch_add(losses.bytes, Relaxed);
        tracing::error!(
            logs_lost = losses.total_logs(),
            bytes_lost = losses.bytes,
            regions = losses.regions,
            "buffer: recovery skipped unreadable or missing data; every readable record was kept"
        );
    }
    if skipped_cache > 0 {
        tracing::warn!(
            cursor_writes = skipped_cache,
            "buffer: cursor and cache writes after a torn region were not applied (they could be ahead of lost logs); those checks resume from their earlier cursor and may resend logs"
        );
    }

    let first = segments.front().map(|s| s.start).unwrap_or(tail);
    let head = match stored {
        Some(h) => h.head.clamp(first.min(tail), tail),
        None => {
            if !found.is_empty() {
                tracing::warn!(dir = %dir.display(), "buffer: no readable head; undelivered records are resent from the oldest segment");
            }
            first
        }
    };
    Ok(Recovered {
        segments,
        head,
        tail,
        durable_state,
        undelivered_logs,
        age_marks,
        snapshot_offset: snapshot.offset,
        last_logs,
    })
}

/// The cache state of every check from a read-only replay: the snapshot, then the cache writes
/// and resets of every readable record at or past its offset. No lock, no writes. `None` when a
/// segment was deleted under the replay (a newer snapshot covers it: start over).
pub(super) fn replay_states(dir: &Path) -> Result<Option<HashMap<String, CacheState>>, SinkError> {
    let (snap, _) = read_snapshot_with_fallback(dir);
    let mut states = snap.checks.clone();
    let segments = match list_segments(dir) {
        Ok(s) => s,
        Err(SinkError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    for (start, path) in segments {
        let file = match private_fs::options().read(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(SinkError::Io { path, source: e }),
        };
        scan_segment(&file, |item, checks| {
            let Item::Record {
                begin, record: r, ..
            } = item
            else {
                return;
            };
            if start + begin < snap.offset {
                return;
            }
            let Some(check) = checks.get(&r.check) else {
                return;
            };
            match r.kind {
                KIND_CACHE => {
                    if let Some((k, v)) = record::split_cache(r.payload) {
                        apply_cache(&mut states, check, k, v);
                    }
                }
                KIND_CACHE_RESET => {
                    for k in crate::staging::decode_keys(r.payload).unwrap_or_default() {
                        apply_cache(&mut states, check, k, "");
                    }
                }
                _ => {}
            }
        })
        .map_err(io_err(&path))?;
    }
    Ok(Some(states))
}
