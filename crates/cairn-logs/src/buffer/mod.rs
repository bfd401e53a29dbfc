//! The durable buffer: one ordered on-disk log of every check's logs, cursors and cache writes.
//!
//! Layout under `<run_path>/buffer/` (dir 0700, files 0600):
//! - `<20-digit offset>.seg`: segments of [`record`]s. Offsets are global byte offsets that
//!   only grow, across restarts too; a segment is named by the offset of its first byte.
//! - `head`: the first undelivered offset (rewritten after each acknowledged batch).
//! - `state.snapshot`: the cache state of every check as of a durable offset, written before
//!   segments are deleted so that the cursors they carried survive.
//! - `lock`: held by the running agent so that two agents never share a buffer.
//!
//! Invariants:
//! - Appends go to the last (active) segment, in order, under one lock: the on-disk order is
//!   the order of [`RecordSink::append`] calls, and a check's records keep its own order.
//! - Durability is a prefix: a sync makes everything up to the tail it saw durable, so a cursor
//!   is never durable without every record before it (its logs included).
//! - A segment is deleted only when it is sealed, fully acknowledged and durable, and only after
//!   a snapshot at an offset at or past its end has been written.
//! - Recovery = snapshot + replay of the records at or past its offset. A torn or corrupt tail
//!   is cut at the last good record (counted, logged); it never stops the agent.

pub mod record;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use cairn_config::WhenFull;
use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::counters::{Counters, LossReason};
use crate::sink::{RecordSink, SinkError};
use crate::staging::{Record, Staging};
use crate::state::{create_private_dir, CacheState, StateStore};
use record::{Decoded, HEADER_BYTES, KIND_CACHE, KIND_CHECK, KIND_LOG};

const HEAD_FILE: &str = "head";
const SNAPSHOT_FILE: &str = "state.snapshot";
const LOCK_FILE: &str = "lock";

/// Largest record the reader believes in. A log is at most `max_message_size_bytes` plus its
/// attributes, and the config caps a payload at `batch_max_content_size`; anything past this is
/// a corrupt length field.
const MAX_RECORD_BYTES: usize = 64 << 20;

/// How the buffer is sized and synced.
#[derive(Debug, Clone)]
pub struct BufferOptions {
    /// `<run_path>/buffer`.
    pub dir: PathBuf,
    /// Budget of undelivered bytes (`logs_config.buffer.max_size_bytes`).
    pub max_size_bytes: u64,
    pub when_full: WhenFull,
    /// Segments roll past this size; the head is deleted a segment at a time.
    pub segment_bytes: u64,
    /// Longest a written record waits for its fsync (group commit).
    pub sync_interval: Duration,
    /// Where the pre-pipeline agent kept per-check state; read for checks the buffer does not
    /// know yet, so upgrading keeps cursors.
    pub legacy_state: Option<PathBuf>,
}

impl BufferOptions {
    pub fn new(run_path: &Path, max_size_bytes: u64, when_full: WhenFull) -> Self {
        BufferOptions {
            dir: run_path.join("buffer"),
            max_size_bytes,
            when_full,
            // Eight segments per budget keep drop/delete granularity fine; 16 MiB caps the
            // cost of one deletion and of rescanning a partly delivered segment.
            segment_bytes: (max_size_bytes / 8).clamp(4 << 10, 16 << 20),
            sync_interval: Duration::from_millis(500),
            legacy_state: Some(run_path.to_path_buf()),
        }
    }
}

/// Gauges of the buffer for status.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BufferGauges {
    pub undelivered_bytes: u64,
    pub undelivered_logs: u64,
    pub oldest_unsent_age: Duration,
    pub segments: usize,
}

struct Segment {
    start: u64,
    end: u64,
    file: Arc<File>,
    /// Check index → id, as defined by this segment's [`KIND_CHECK`] records.
    checks: HashMap<u32, Arc<str>>,
}

struct Inner {
    /// Oldest first; the last one is the active segment that appends go to.
    segments: VecDeque<Segment>,
    tail: u64,
    head: u64,
    /// Everything before this offset is on stable storage.
    durable: u64,
    /// Acknowledged ranges past `head`: start → (end, logs).
    acked: BTreeMap<u64, (u64, u64)>,
    /// End offset of the last append of each check, for [`RecordSink::commit`].
    last_append: HashMap<Arc<str>, u64>,
    /// Process-wide check indices (segments define the ones they use).
    check_ids: HashMap<Arc<str>, u32>,
    /// Cache state of each check as of `durable`.
    durable_state: HashMap<String, CacheState>,
    /// Cache writes appended but not yet durable: (record end, check, key, value).
    pending_cache: VecDeque<(u64, Arc<str>, String, String)>,
    /// Sealed segments not yet fsynced.
    unsynced: Vec<Arc<File>>,
    dir_dirty: bool,
    sync_requested: bool,
    undelivered_logs: u64,
    /// (offset, time) marks, at most one a second, to tell the age of the oldest unsent record.
    age_marks: VecDeque<(u64, SystemTime)>,
    snapshot_offset: u64,
    closed: bool,
    stop_syncer: bool,
    spare_buffers: Vec<Vec<u8>>,
}

pub struct Buffer {
    opts: BufferOptions,
    inner: Mutex<Inner>,
    /// Appenders waiting for room (`block`).
    space: Condvar,
    /// The reader waiting for data, or a jump of the head.
    readable: Condvar,
    /// Commits waiting for a sync.
    synced: Condvar,
    /// The syncer waiting for work.
    sync_wake: Condvar,
    head_file: Mutex<File>,
    legacy: Option<StateStore>,
    counters: Arc<Counters>,
    syncer: Mutex<Option<JoinHandle<()>>>,
    _lock: File,
}

fn io_err(path: &Path) -> impl Fn(io::Error) -> SinkError + '_ {
    move |source| SinkError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn open_segment(path: &Path, create: bool) -> io::Result<File> {
    fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(create)
        .mode(0o600)
        .open(path)
}

fn sync_dir(dir: &Path) -> Result<(), SinkError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// What a scan of one segment found.
struct ScanResult {
    checks: HashMap<u32, Arc<str>>,
    /// Offset (relative to the segment start) just past the last good record.
    valid_len: u64,
    /// Bytes after `valid_len` that could not be read as records.
    bad_bytes: u64,
}

/// Reads a whole segment and calls `each(relative_offset_end, record, checks)` for every good
/// record. Stops at the first bad or incomplete one.
fn scan_segment(
    file: &File,
    mut each: impl FnMut(u64, &record::RawRecord<'_>, &HashMap<u32, Arc<str>>),
) -> io::Result<ScanResult> {
    let len = file.metadata()?.len();
    let mut checks = HashMap::new();
    let mut buf = vec![0u8; 1 << 20];
    let (mut filled, mut consumed, mut base) = (0usize, 0usize, 0u64);
    loop {
        match record::decode(&buf[consumed..filled], MAX_RECORD_BYTES) {
            Decoded::Record(r, n) => {
                let end = base + (consumed + n) as u64;
                if r.kind == KIND_CHECK {
                    if let Ok(id) = std::str::from_utf8(r.payload) {
                        checks.insert(r.check, Arc::from(id));
                    }
                }
                each(end, &r, &checks);
                consumed += n;
            }
            Decoded::Incomplete { needed } => {
                let at = base + consumed as u64;
                if at + needed as u64 > len {
                    return Ok(ScanResult {
                        checks,
                        valid_len: at,
                        bad_bytes: len - at,
                    });
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
            Decoded::Corrupt => {
                let at = base + consumed as u64;
                return Ok(ScanResult {
                    checks,
                    valid_len: at,
                    bad_bytes: len - at,
                });
            }
        }
    }
}

fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, SinkError> {
    let mut segs = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let path = entry.map_err(io_err(dir))?.path();
        if let Some(start) = record::parse_segment_file_name(&path) {
            segs.push((start, path));
        }
    }
    segs.sort_unstable();
    Ok(segs)
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Snapshot {
    offset: u64,
    checks: HashMap<String, CacheState>,
}

fn read_snapshot(dir: &Path) -> Result<Snapshot, SinkError> {
    let path = dir.join(SNAPSHOT_FILE);
    match fs::read(&path) {
        // A snapshot that cannot be read is an error, not an empty state: starting over would
        // silently rewind cursors.
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| SinkError::State {
            path: path.clone(),
            message: e.to_string(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Snapshot::default()),
        Err(e) => Err(SinkError::Io { path, source: e }),
    }
}

fn write_snapshot(dir: &Path, snap: &Snapshot) -> Result<(), SinkError> {
    let path = dir.join(SNAPSHOT_FILE);
    let tmp = dir.join("state.snapshot.tmp");
    let bytes = serde_json::to_vec(snap).expect("maps of strings always serialize");
    let mut f = crate::state::private_file(&tmp).map_err(io_err(&tmp))?;
    f.write_all(&bytes).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    sync_dir(dir)
}

fn read_head(path: &Path) -> Option<u64> {
    let mut bytes = [0u8; 12];
    File::open(path).ok()?.read_exact(&mut bytes).ok()?;
    let offset = u64::from_le_bytes(bytes[..8].try_into().ok()?);
    let crc = u32::from_le_bytes(bytes[8..].try_into().ok()?);
    (crc32fast::hash(&bytes[..8]) == crc).then_some(offset)
}

fn head_bytes(offset: u64) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[..8].copy_from_slice(&offset.to_le_bytes());
    b[8..].copy_from_slice(&crc32fast::hash(&offset.to_le_bytes()).to_le_bytes());
    b
}

fn apply_cache(state: &mut HashMap<String, CacheState>, check: &str, key: &str, value: &str) {
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

impl Buffer {
    /// Opens (or creates) the buffer, recovers it and starts the syncer thread.
    pub fn open(opts: BufferOptions, counters: Arc<Counters>) -> Result<Arc<Buffer>, SinkError> {
        let dir = opts.dir.clone();
        create_private_dir(&dir)?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        lock.try_lock().map_err(|_| SinkError::Io {
            path: lock_path.clone(),
            source: io::Error::new(
                io::ErrorKind::WouldBlock,
                "another agent is using this buffer",
            ),
        })?;

        let snapshot = read_snapshot(&dir)?;
        let mut durable_state = snapshot.checks;
        let head_path = dir.join(HEAD_FILE);
        let stored_head = read_head(&head_path);

        let mut segments = VecDeque::new();
        let mut undelivered_logs = 0u64;
        let mut age_marks = VecDeque::new();
        let found = list_segments(&dir)?;
        let mut ends_at = snapshot.offset;
        // Durability is a prefix: past a cut (or a gap between segments) nothing can have
        // been durable, even if a later segment reached the disk first, so it is discarded
        // rather than allowed to hand out cursors whose logs are gone.
        let mut cut_at: Option<u64> = None;
        for (start, path) in &found {
            let gap = segments.back().is_some_and(|s: &Segment| s.end != *start);
            if cut_at.is_some() || gap {
                let bytes = fs::metadata(path).map(|m| m.len()).unwrap_or(0);
                counters.add_dropped(LossReason::Corrupt, 1);
                counters.corrupt_bytes.fetch_add(bytes, Relaxed);
                tracing::error!(segment = %path.display(), bytes_lost = bytes, "buffer: segment after a torn or missing one discarded; the logs it held are lost");
                fs::remove_file(path).map_err(io_err(path))?;
                cut_at.get_or_insert(*start);
                continue;
            }
            let file = open_segment(path, false).map_err(io_err(path))?;
            let head_hint = stored_head.unwrap_or(0);
            let scan = scan_segment(&file, |end, r, checks| {
                let at = start + end;
                let begin = at - (HEADER_BYTES + r.payload.len()) as u64;
                match r.kind {
                    KIND_LOG if begin >= head_hint => undelivered_logs += 1,
                    KIND_CACHE if begin >= snapshot.offset => {
                        if let (Some(check), Some((k, v))) =
                            (checks.get(&r.check), record::split_cache(r.payload))
                        {
                            apply_cache(&mut durable_state, check, k, v);
                        }
                    }
                    _ => {}
                }
            })
            .map_err(io_err(path))?;
            if scan.bad_bytes > 0 {
                counters.add_dropped(LossReason::Corrupt, 1);
                counters.corrupt_bytes.fetch_add(scan.bad_bytes, Relaxed);
                tracing::error!(
                    segment = %path.display(),
                    offset = start + scan.valid_len,
                    bytes_lost = scan.bad_bytes,
                    "buffer: torn or corrupt records skipped; the logs they held are lost"
                );
                file.set_len(scan.valid_len).map_err(io_err(path))?;
                cut_at = Some(start + scan.valid_len);
            }
            // Whatever survived a crash may still sit in the page cache only: make it durable
            // before handing its cursors to checks.
            file.sync_all().map_err(io_err(path))?;
            if scan.valid_len == 0 {
                ends_at = ends_at.max(*start);
                fs::remove_file(path).map_err(io_err(path))?;
                continue;
            }
            ends_at = ends_at.max(*start);
            let mtime = file
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or_else(|_| SystemTime::now());
            age_marks.push_back((*start, mtime));
            ends_at = ends_at.max(start + scan.valid_len);
            segments.push_back(Segment {
                start: *start,
                end: start + scan.valid_len,
                file: Arc::new(file),
                checks: scan.checks,
            });
        }
        let first = segments.front().map(|s| s.start).unwrap_or(ends_at);
        let mut head = stored_head.unwrap_or(first).clamp(first, ends_at);
        if stored_head.is_none() && !found.is_empty() {
            tracing::warn!(path = %head_path.display(), "buffer: no readable head; undelivered records are resent from the oldest segment");
            head = first;
        }
        // A new active segment: the recovered ones stay sealed, untouched.
        let tail = ends_at.max(head);
        let active_path = dir.join(record::segment_file_name(tail));
        let active = open_segment(&active_path, true).map_err(io_err(&active_path))?;
        segments.push_back(Segment {
            start: tail,
            end: tail,
            file: Arc::new(active),
            checks: HashMap::new(),
        });
        sync_dir(&dir)?;
        let head_file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&head_path)
            .map_err(io_err(&head_path))?;
        head_file
            .write_all_at(&head_bytes(head), 0)
            .map_err(io_err(&head_path))?;
        if undelivered_logs > 0 {
            tracing::info!(
                undelivered_logs,
                segments = segments.len() - 1,
                "buffer recovered"
            );
        }
        let legacy = match &opts.legacy_state {
            Some(run_path) => Some(StateStore::open(run_path)?),
            None => None,
        };
        let buffer = Arc::new(Buffer {
            inner: Mutex::new(Inner {
                segments,
                tail,
                head,
                durable: tail,
                acked: BTreeMap::new(),
                last_append: HashMap::new(),
                check_ids: HashMap::new(),
                durable_state,
                pending_cache: VecDeque::new(),
                unsynced: Vec::new(),
                dir_dirty: false,
                sync_requested: false,
                undelivered_logs,
                age_marks,
                snapshot_offset: snapshot.offset,
                closed: false,
                stop_syncer: false,
                spare_buffers: Vec::new(),
            }),
            opts,
            space: Condvar::new(),
            readable: Condvar::new(),
            synced: Condvar::new(),
            sync_wake: Condvar::new(),
            head_file: Mutex::new(head_file),
            legacy,
            counters,
            syncer: Mutex::new(None),
            _lock: lock,
        });
        let b = buffer.clone();
        let handle = std::thread::Builder::new()
            .name("buffer-sync".into())
            .spawn(move || b.syncer_loop())
            .map_err(io_err(&dir))?;
        *buffer.syncer.lock() = Some(handle);
        Ok(buffer)
    }

    pub fn dir(&self) -> &Path {
        &self.opts.dir
    }

    pub fn gauges(&self) -> BufferGauges {
        let inner = self.inner.lock();
        let oldest = if inner.head < inner.tail {
            inner
                .age_marks
                .front()
                .and_then(|(_, t)| SystemTime::now().duration_since(*t).ok())
                .unwrap_or_default()
        } else {
            Duration::ZERO
        };
        BufferGauges {
            undelivered_bytes: inner.tail - inner.head,
            undelivered_logs: inner.undelivered_logs,
            oldest_unsent_age: oldest,
            segments: inner.segments.len(),
        }
    }

    /// Offset of the first undelivered record.
    pub fn head(&self) -> u64 {
        self.inner.lock().head
    }

    /// Makes everything written so far durable, stops the syncer, and refuses further appends.
    pub fn close(&self) -> Result<(), SinkError> {
        {
            let mut inner = self.inner.lock();
            inner.closed = true;
            inner.stop_syncer = true;
        }
        self.space.notify_all();
        self.readable.notify_all();
        self.sync_wake.notify_all();
        if let Some(h) = self.syncer.lock().take() {
            let _ = h.join();
        }
        // The syncer's last round synced everything; one more in case it ended early on error.
        self.sync_once()?;
        self.synced.notify_all();
        Ok(())
    }

    fn check_index(inner: &mut Inner, check_id: &str) -> (u32, Arc<str>) {
        if let Some((k, v)) = inner.check_ids.get_key_value(check_id) {
            return (*v, k.clone());
        }
        let idx = inner.check_ids.len() as u32;
        let id: Arc<str> = Arc::from(check_id);
        inner.check_ids.insert(id.clone(), idx);
        (idx, id)
    }

    /// Waits (block) or drops the oldest records (drop_oldest) until `add` more bytes fit.
    fn make_room<'a>(
        &'a self,
        mut inner: MutexGuard<'a, Inner>,
        add: u64,
    ) -> Result<MutexGuard<'a, Inner>, SinkError> {
        let max = self.opts.max_size_bytes;
        // A single append larger than the whole budget gets in once the buffer is empty: the
        // alternative is waiting forever.
        while inner.tail - inner.head + add > max && inner.head < inner.tail {
            if inner.closed {
                return Err(SinkError::Closed);
            }
            match self.opts.when_full {
                WhenFull::Block => {
                    self.space.wait(&mut inner);
                }
                WhenFull::DropOldest => self.drop_oldest_segment(&mut inner)?,
            }
        }
        Ok(inner)
    }

    /// Moves the head past the end of the segment it is in, counting the logs skipped.
    fn drop_oldest_segment(&self, inner: &mut Inner) -> Result<(), SinkError> {
        let head = inner.head;
        if inner.segments.back().is_some_and(|s| s.start <= head) {
            // Everything undelivered is in the active segment: seal it so it can go.
            self.roll(inner)?;
        }
        let Some(seg) = inner.segments.iter().find(|s| s.end > head) else {
            return Ok(());
        };
        let (seg_start, seg_end, file) = (seg.start, seg.end, seg.file.clone());
        // Count the logs skipped: the undelivered ones, minus batches acknowledged out of order.
        let mut logs = 0u64;
        let skipped: Vec<(u64, (u64, u64))> = inner
            .acked
            .range(head..seg_end)
            .map(|(k, v)| (*k, *v))
            .collect();
        scan_segment(&file, |end, r, _| {
            let begin = seg_start + end - (HEADER_BYTES + r.payload.len()) as u64;
            if r.kind == KIND_LOG
                && begin >= head
                && !skipped.iter().any(|(s, (e, _))| begin >= *s && begin < *e)
            {
                logs += 1;
            }
        })
        .map_err(io_err(&self.opts.dir))?;
        self.counters.add_dropped(LossReason::BufferFull, logs);
        inner.undelivered_logs = inner.undelivered_logs.saturating_sub(logs);
        tracing::error!(
            dropped = logs,
            bytes = seg_end - head,
            "buffer full (when_full: drop_oldest): oldest undelivered logs dropped"
        );
        inner.head = seg_end;
        self.advance_head(inner);
        self.readable.notify_all();
        Ok(())
    }

    /// Seals the active segment and starts a new one at the tail.
    fn roll(&self, inner: &mut Inner) -> Result<(), SinkError> {
        let path = self.opts.dir.join(record::segment_file_name(inner.tail));
        let file = open_segment(&path, true).map_err(io_err(&path))?;
        if let Some(old) = inner.segments.back() {
            inner.unsynced.push(old.file.clone());
        }
        inner.segments.push_back(Segment {
            start: inner.tail,
            end: inner.tail,
            file: Arc::new(file),
            checks: HashMap::new(),
        });
        inner.dir_dirty = true;
        Ok(())
    }

    /// Folds acknowledged ranges that now touch the head into it, and persists the head.
    fn advance_head(&self, inner: &mut Inner) {
        let before = inner.head;
        while let Some((&start, &(end, _))) = inner.acked.range(..=inner.head).next() {
            inner.acked.remove(&start);
            inner.head = inner.head.max(end);
        }
        if inner.head == before {
            return;
        }
        while inner.age_marks.len() > 1 && inner.age_marks[1].0 <= inner.head {
            inner.age_marks.pop_front();
        }
        // Written on every move (no fsync: a kill leaves it in the page cache; the syncer
        // fsyncs it with the segments). A head that is a little behind only resends.
        if let Err(e) = self
            .head_file
            .lock()
            .write_all_at(&head_bytes(inner.head), 0)
        {
            tracing::warn!(error = %e, "buffer: head not persisted; delivered logs may be resent after a restart");
        }
        self.space.notify_all();
        if inner.segments.len() > 1 && inner.segments[0].end <= inner.head {
            self.sync_wake.notify_one();
        }
    }

    /// Records that the intake took (or the pipeline dropped) the records in `[start, end)`,
    /// which held `logs` logs.
    pub fn ack(&self, start: u64, end: u64, logs: u64) {
        let mut inner = self.inner.lock();
        if end <= inner.head {
            // Already past: dropped by drop_oldest while the batch was in flight.
            return;
        }
        inner.undelivered_logs = inner.undelivered_logs.saturating_sub(logs);
        inner.acked.insert(start, (end, logs));
        self.advance_head(&mut inner);
    }

    /// Fsyncs what is written and updates the durable offset. Returns whether it synced.
    fn sync_once(&self) -> Result<bool, SinkError> {
        let (files, target, dir_dirty) = {
            let mut inner = self.inner.lock();
            inner.sync_requested = false;
            if inner.durable == inner.tail && inner.unsynced.is_empty() && !inner.dir_dirty {
                return Ok(false);
            }
            let mut files = std::mem::take(&mut inner.unsynced);
            if let Some(active) = inner.segments.back() {
                files.push(active.file.clone());
            }
            let dirty = std::mem::replace(&mut inner.dir_dirty, false);
            (files, inner.tail, dirty)
        };
        let synced = files
            .iter()
            .try_for_each(|f| f.sync_data().map_err(io_err(&self.opts.dir)))
            .and_then(|()| {
                if dir_dirty {
                    sync_dir(&self.opts.dir)
                } else {
                    Ok(())
                }
            });
        if let Err(e) = synced {
            // Nothing is declared durable; the same files are synced again next round.
            let mut inner = self.inner.lock();
            inner.unsynced.extend(files);
            inner.dir_dirty |= dir_dirty;
            return Err(e);
        }
        let _ = self.head_file.lock().sync_data();
        let mut inner = self.inner.lock();
        if target > inner.durable {
            inner.durable = target;
            let inner = &mut *inner;
            while inner
                .pending_cache
                .front()
                .is_some_and(|(end, ..)| *end <= target)
            {
                let (_, check, key, value) =
                    inner.pending_cache.pop_front().expect("front checked");
                match inner.durable_state.get_mut(&*check) {
                    Some(s) => {
                        s.insert(key, value);
                    }
                    None => {
                        inner
                            .durable_state
                            .insert(check.to_string(), CacheState::from([(key, value)]));
                    }
                }
            }
        }
        drop(inner);
        self.synced.notify_all();
        Ok(true)
    }

    /// Deletes sealed segments that are delivered and durable, after snapshotting the cache
    /// state they carried.
    fn delete_delivered(&self) -> Result<(), SinkError> {
        let (snapshot, doomed) = {
            let inner = self.inner.lock();
            let limit = inner.head.min(inner.durable);
            let n = inner
                .segments
                .iter()
                .take(inner.segments.len() - 1)
                .take_while(|s| s.end <= limit)
                .count();
            if n == 0 {
                return Ok(());
            }
            let doomed: Vec<u64> = inner.segments.iter().take(n).map(|s| s.start).collect();
            let snapshot = (inner.durable > inner.snapshot_offset).then(|| Snapshot {
                offset: inner.durable,
                checks: inner.durable_state.clone(),
            });
            (snapshot, doomed)
        };
        if let Some(snap) = &snapshot {
            write_snapshot(&self.opts.dir, snap)?;
        }
        for start in &doomed {
            let path = self.opts.dir.join(record::segment_file_name(*start));
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(SinkError::Io { path, source: e }),
            }
        }
        sync_dir(&self.opts.dir)?;
        let mut inner = self.inner.lock();
        if let Some(snap) = snapshot {
            inner.snapshot_offset = inner.snapshot_offset.max(snap.offset);
        }
        inner.segments.retain(|s| !doomed.contains(&s.start));
        Ok(())
    }

    fn syncer_loop(&self) {
        let mut last_sync = Instant::now();
        loop {
            {
                let mut inner = self.inner.lock();
                let deadline = last_sync + self.opts.sync_interval;
                loop {
                    let deletable = inner.segments.len() > 1
                        && inner.segments[0].end <= inner.head.min(inner.durable);
                    if inner.stop_syncer
                        || inner.sync_requested
                        || deletable
                        || Instant::now() >= deadline
                    {
                        break;
                    }
                    self.sync_wake.wait_until(&mut inner, deadline);
                }
                if inner.stop_syncer {
                    drop(inner);
                    if let Err(e) = self.sync_once() {
                        tracing::error!(error = %e, "buffer: final sync failed");
                    }
                    return;
                }
            }
            last_sync = Instant::now();
            if let Err(e) = self.sync_once() {
                tracing::error!(error = %e, "buffer: sync failed; commits wait for the next try");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            if let Err(e) = self.delete_delivered() {
                tracing::error!(error = %e, "buffer: delivered segments not deleted");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// A reader positioned at the head.
    pub fn reader(self: &Arc<Self>) -> Reader {
        let head = self.head();
        Reader {
            buffer: self.clone(),
            pos: head,
            seg: None,
            buf: vec![0; 1 << 20],
            buf_start: head,
            filled: 0,
            consumed: 0,
        }
    }
}

impl RecordSink for Buffer {
    fn load_state(&self, check_id: &str) -> Result<CacheState, SinkError> {
        let inner = self.inner.lock();
        let mut state = match inner.durable_state.get(check_id) {
            Some(s) => s.clone(),
            None => match &self.legacy {
                Some(store) => store.load(check_id)?,
                None => CacheState::new(),
            },
        };
        for (_, check, k, v) in &inner.pending_cache {
            if &**check == check_id {
                state.insert(k.clone(), v.clone());
            }
        }
        Ok(state)
    }

    fn append(&self, check_id: &str, staging: &mut Staging) -> Result<(), SinkError> {
        if staging.is_empty() {
            return Ok(());
        }
        let (idx, id, mut out) = {
            let mut inner = self.inner.lock();
            if inner.closed {
                return Err(SinkError::Closed);
            }
            let (idx, id) = Self::check_index(&mut inner, check_id);
            (idx, id, inner.spare_buffers.pop().unwrap_or_default())
        };
        // Encode outside the lock: checksums and copies of one check never delay another.
        out.clear();
        out.reserve(staging.len_bytes() + staging.records() * (HEADER_BYTES - 5));
        let mut cache_at: Vec<(usize, &str, &str)> = Vec::new();
        for r in staging.iter() {
            match r {
                Record::Log(json) => record::encode(&mut out, KIND_LOG, idx, json),
                Record::Cache { key, value } => {
                    record::encode_cache(&mut out, idx, key, value);
                    cache_at.push((out.len(), key, value));
                }
            }
        }
        let logs = staging.logs() as u64;
        let mut inner = self.inner.lock();
        if inner.closed {
            return Err(SinkError::Closed);
        }
        inner = self.make_room(inner, out.len() as u64)?;
        let inner = &mut *inner;
        let active = inner
            .segments
            .back()
            .expect("there is always an active segment");
        if active.end - active.start >= self.opts.segment_bytes {
            self.roll(inner)?;
        }
        let tail = inner.tail;
        let active = inner
            .segments
            .back_mut()
            .expect("there is always an active segment");
        let mut def = Vec::new();
        if !active.checks.contains_key(&idx) {
            record::encode(&mut def, KIND_CHECK, idx, check_id.as_bytes());
        }
        let written = (|| {
            let mut f = &*active.file;
            if !def.is_empty() {
                f.write_all(&def)?;
            }
            f.write_all(&out)
        })();
        if let Err(e) = written {
            // Cut a partial write so that the next append starts on a record boundary.
            let _ = active.file.set_len(active.end - active.start);
            let path = self.opts.dir.join(record::segment_file_name(active.start));
            return Err(SinkError::Io { path, source: e });
        }
        if !def.is_empty() {
            active.checks.insert(idx, id.clone());
        }
        let base = tail + def.len() as u64;
        active.end = base + out.len() as u64;
        inner.tail = active.end;
        for (end, key, value) in cache_at {
            inner.pending_cache.push_back((
                base + end as u64,
                id.clone(),
                key.to_string(),
                value.to_string(),
            ));
        }
        inner.undelivered_logs += logs;
        inner.last_append.insert(id, inner.tail);
        let now = SystemTime::now();
        let mark_due = inner.age_marks.back().is_none_or(|(_, t)| {
            now.duration_since(*t).unwrap_or_default() >= Duration::from_secs(1)
        });
        if mark_due {
            inner.age_marks.push_back((base, now));
        }
        if inner.spare_buffers.len() < 4 && out.capacity() <= 4 << 20 {
            inner.spare_buffers.push(out);
        }
        staging.clear();
        self.readable.notify_all();
        Ok(())
    }

    fn commit(&self, check_id: &str) -> Result<(), SinkError> {
        let mut inner = self.inner.lock();
        let Some(&target) = inner.last_append.get(check_id) else {
            return Ok(());
        };
        while inner.durable < target {
            if inner.stop_syncer && inner.closed {
                drop(inner);
                // The syncer is gone; sync here.
                self.sync_once()?;
                inner = self.inner.lock();
                if inner.durable < target {
                    return Err(SinkError::Closed);
                }
                break;
            }
            inner.sync_requested = true;
            self.sync_wake.notify_one();
            self.synced.wait(&mut inner);
        }
        Ok(())
    }
}

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

struct ReaderSegment {
    start: u64,
    file: Arc<File>,
    checks: HashMap<u32, Arc<str>>,
}

/// Reads the buffer in order from the head, without taking the buffer lock per record.
pub struct Reader {
    buffer: Arc<Buffer>,
    pos: u64,
    seg: Option<ReaderSegment>,
    buf: Vec<u8>,
    /// Global offset of `buf[0]`.
    buf_start: u64,
    filled: usize,
    consumed: usize,
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
                match record::decode(&self.buf[self.consumed..self.filled], MAX_RECORD_BYTES) {
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
                    Decoded::Corrupt => {
                        // Only a disk fault gets here: the writer never leaves a bad record.
                        let end = self.segment_end()?;
                        let lost = end.saturating_sub(self.pos);
                        self.buffer.counters.add_dropped(LossReason::Corrupt, 1);
                        self.buffer.counters.corrupt_bytes.fetch_add(lost, Relaxed);
                        tracing::error!(
                            offset = self.pos,
                            bytes_lost = lost,
                            "buffer: corrupt record read; rest of segment skipped"
                        );
                        let from = self.pos;
                        self.jump(end);
                        return Ok(ReadOutcome::Skipped { from, to: end });
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

    fn segment_end(&self) -> Result<u64, SinkError> {
        let inner = self.buffer.inner.lock();
        Ok(inner
            .segments
            .iter()
            .find(|s| s.end > self.pos)
            .map(|s| s.end)
            .unwrap_or(inner.tail))
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
            self.buffer.counters.add_dropped(LossReason::Corrupt, 1);
            tracing::error!(
                offset = self.pos,
                "buffer: partial record at a segment end; skipped"
            );
            let from = self.pos;
            self.jump(seg_end);
            return Ok(Fill::Skipped(from, seg_end));
        }
        if let Decoded::Incomplete { needed } =
            record::decode(&self.buf[..self.filled], MAX_RECORD_BYTES)
        {
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

enum Fill {
    Data,
    Idle,
    Closed,
    Skipped(u64, u64),
}

/// The cache state of `check_id` as a running agent would give it now, read without disturbing
/// it: the snapshot plus a read-only replay of the buffer. Used by `cairn check`.
pub fn read_state_snapshot(run_path: &Path, check_id: &str) -> Result<CacheState, SinkError> {
    let dir = run_path.join("buffer");
    // A running agent may delete segments between our reads; a newer snapshot then covers
    // them, so start over.
    for _ in 0..5 {
        let snap = read_snapshot(&dir)?;
        let mut state = snap.checks.get(check_id).cloned();
        let segments = match list_segments(&dir) {
            Ok(s) => s,
            Err(SinkError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                Vec::new()
            }
            Err(e) => return Err(e),
        };
        let mut vanished = false;
        for (start, path) in segments {
            let file = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    vanished = true;
                    break;
                }
                Err(e) => return Err(SinkError::Io { path, source: e }),
            };
            scan_segment(&file, |end, r, checks| {
                let begin = start + end - (HEADER_BYTES + r.payload.len()) as u64;
                if r.kind == KIND_CACHE
                    && begin >= snap.offset
                    && checks.get(&r.check).is_some_and(|c| &**c == check_id)
                {
                    if let Some((k, v)) = record::split_cache(r.payload) {
                        state
                            .get_or_insert_with(CacheState::new)
                            .insert(k.to_string(), v.to_string());
                    }
                }
            })
            .map_err(io_err(&path))?;
        }
        if vanished {
            continue;
        }
        return match state {
            Some(s) => Ok(s),
            // Never create anything here: read the pre-pipeline state only if it exists.
            None if run_path.join("state").is_dir() => StateStore::open(run_path)?.load(check_id),
            None => Ok(CacheState::new()),
        };
    }
    Err(SinkError::State {
        path: dir,
        message: "the buffer kept changing while it was read".into(),
    })
}

#[cfg(test)]
mod tests;
