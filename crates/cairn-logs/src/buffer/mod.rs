//! The durable buffer: one ordered on-disk log of every check's logs, cursors and cache writes.
//!
//! Layout under `<run_path>/buffer/` (dir 0700, files 0600, never opened through a symlink):
//! - `<20-digit offset>.seg`: segments of [`record`]s. Offsets are global byte offsets that
//!   only grow, across restarts too; a segment is named by the offset of its first byte, and
//!   starts with an intro record describing the segment before it.
//! - `head`: the first undelivered offset and the durable offset (rewritten after each
//!   acknowledged batch and each sync).
//! - `state.snapshot` (and `state.snapshot.prev`): the cache state of every check as of a
//!   durable offset, written before segments are deleted so that the cursors they carried
//!   survive.
//! - `reserve`: ballast, given up when the disk is full so that a snapshot can still be
//!   written and delivered segments deleted.
//! - `lock`: held by the running agent so that two agents never share a buffer.
//!
//! Invariants:
//! - Appends go to the last (active) segment, in order, under one lock: the on-disk order is
//!   the order of [`RecordSink::append`] calls, and a check's records keep its own order.
//! - Durability is a prefix: a sync makes everything up to the tail it saw durable, so a cursor
//!   is never durable without every record before it (its logs included).
//! - A segment is deleted only when it is sealed, fully acknowledged and durable, and only after
//!   a snapshot at an offset at or past its end has been written.
//! - Recovery = snapshot + replay of every readable record; unreadable regions are skipped,
//!   patched over and counted ([`recover`]). A full disk is a full buffer.

mod reader;
pub mod record;
mod recover;
mod scan;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use cairn_config::WhenFull;
use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::counters::{Counters, LossReason};
use crate::private_fs::{self, is_disk_full};
use crate::sink::{RecordSink, SinkError};
use crate::staging::{Record, Staging};
use crate::state::CacheState;
use record::{SegmentIntro, HEADER_BYTES, KIND_CACHE_RESET, KIND_CHECK, KIND_INTRO, KIND_LOG};
use scan::{scan_segment, Item};

pub use reader::{ReadOutcome, ReadRecord, Reader};

const HEAD_FILE: &str = "head";
const SNAPSHOT_FILE: &str = "state.snapshot";
const SNAPSHOT_PREV_FILE: &str = "state.snapshot.prev";
const LOCK_FILE: &str = "lock";
const RESERVE_FILE: &str = "reserve";
/// Ballast kept on disk for the moment the disk fills: enough for a snapshot of the usual size.
const RESERVE_BYTES: usize = 1 << 20;

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
}

impl BufferOptions {
    /// The buffer of the agent configured by `agent`: its run_path and
    /// `logs_config.buffer` settings.
    pub fn for_agent(agent: &cairn_config::AgentConfig) -> Self {
        Self::new(
            &agent.run_path,
            agent.logs.buffer.max_size_bytes,
            agent.logs.buffer.when_full,
        )
    }

    pub fn new(run_path: &Path, max_size_bytes: u64, when_full: WhenFull) -> Self {
        BufferOptions {
            dir: run_path.join("buffer"),
            max_size_bytes,
            when_full,
            // Eight segments per budget keep drop/delete granularity fine; 16 MiB caps the
            // cost of one deletion and of rescanning a partly delivered segment.
            segment_bytes: (max_size_bytes / 8).clamp(4 << 10, 16 << 20),
            sync_interval: Duration::from_millis(500),
        }
    }
}

/// Gauges of the buffer for status.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BufferGauges {
    pub undelivered_bytes: u64,
    pub undelivered_logs: u64,
    pub oldest_unsent_age: Duration,
    pub segments: usize,
    /// The disk is full (ENOSPC/EDQUOT): appends wait (`block`) or drop the oldest.
    pub disk_full: bool,
    /// Why the buffer cannot take records now (its directory vanished and could not be
    /// recreated), if so.
    pub problem: Option<String>,
}

struct Segment {
    start: u64,
    end: u64,
    file: Arc<File>,
    /// Check index → id, as defined by this segment's [`KIND_CHECK`] records.
    checks: HashMap<u32, Arc<str>>,
    /// Logs appended to this segment per check, for the next segment's intro.
    logs: HashMap<Arc<str>, u64>,
}

struct Inner {
    /// Oldest first; the last one is the active segment that appends go to.
    segments: VecDeque<Segment>,
    tail: u64,
    head: u64,
    /// Everything before this offset is on stable storage.
    durable: u64,
    /// The head as last fsynced in the head file: segments are deleted only below it, so a
    /// power cut can never make a deleted segment look like a lost undelivered one.
    synced_head: u64,
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
    /// Cache writes became durable since the snapshot was written.
    state_dirty: bool,
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
    /// Since when appends meet a full disk.
    disk_full_since: Option<Instant>,
    /// The buffer directory vanished and could not be recreated: appends and commits fail.
    unusable: Option<String>,
    /// (dev, inode) of the buffer directory, to notice it being deleted or replaced.
    dir_id: (u64, u64),
    /// Last time a segment roll failed (other than a full disk), to log it once a minute.
    roll_failed_at: Option<Instant>,
}

impl Inner {
    /// A cache write that became durable joins the durable state.
    /// An empty value is a removal (a reset): the library reads an absent key as `''` anyway.
    fn apply_durable(&mut self, check: &str, key: String, value: String) {
        if value.is_empty() {
            if let Some(s) = self.durable_state.get_mut(check) {
                s.remove(&key);
            }
            return;
        }
        match self.durable_state.get_mut(check) {
            Some(s) => {
                s.insert(key, value);
            }
            None => {
                self.durable_state
                    .insert(check.to_string(), CacheState::from([(key, value)]));
            }
        }
    }
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
    counters: Arc<Counters>,
    syncer: Mutex<Option<JoinHandle<()>>>,
    lock: Mutex<File>,
    /// A descriptor kept open to be given back when the process runs out of them, so that a
    /// segment can still be opened (any local user can open connections to the intake).
    fd_reserve: Mutex<Option<File>>,
}

fn io_err(path: &Path) -> impl Fn(io::Error) -> SinkError + '_ {
    move |source| SinkError::Io {
        path: path.to_path_buf(),
        source,
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

fn dir_id(dir: &Path) -> io::Result<(u64, u64)> {
    let m = fs::symlink_metadata(dir)?;
    Ok((m.dev(), m.ino()))
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Snapshot {
    offset: u64,
    checks: HashMap<String, CacheState>,
}

const SNAPSHOT_MAGIC: &[u8; 4] = b"CSN1";

impl Snapshot {
    /// `Ok(None)` when there is no file; `Err` with the reason when it cannot be used.
    fn read(path: &Path) -> Result<Option<Snapshot>, String> {
        let bytes = match private_fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        if bytes.len() < 8 || &bytes[..4] != SNAPSHOT_MAGIC {
            return Err(format!("{} bytes, not a snapshot", bytes.len()));
        }
        let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
        if crc32fast::hash(&bytes[8..]) != crc {
            return Err("checksum mismatch (truncated or corrupt)".into());
        }
        serde_json::from_slice(&bytes[8..])
            .map(Some)
            .map_err(|e| e.to_string())
    }

    fn encode(&self) -> Vec<u8> {
        let json = serde_json::to_vec(self).expect("maps of strings always serialize");
        let mut out = Vec::with_capacity(json.len() + 8);
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&crc32fast::hash(&json).to_le_bytes());
        out.extend_from_slice(&json);
        out
    }
}

/// The head file: `head u64 | durable u64 | crc32`.
#[derive(Debug, Clone, Copy)]
struct HeadFile {
    head: u64,
    durable: u64,
}

impl HeadFile {
    fn read(path: &Path) -> Option<HeadFile> {
        let bytes = private_fs::read(path).ok()?;
        let b: [u8; 20] = bytes.get(..20)?.try_into().ok()?;
        let crc = u32::from_le_bytes(b[16..].try_into().ok()?);
        (crc32fast::hash(&b[..16]) == crc).then(|| HeadFile {
            head: u64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
            durable: u64::from_le_bytes(b[8..16].try_into().expect("8 bytes")),
        })
    }

    fn bytes(self) -> [u8; 20] {
        let mut b = [0u8; 20];
        b[..8].copy_from_slice(&self.head.to_le_bytes());
        b[8..16].copy_from_slice(&self.durable.to_le_bytes());
        let crc = crc32fast::hash(&b[..16]);
        b[16..].copy_from_slice(&crc.to_le_bytes());
        b
    }
}

fn open_lock(dir: &Path) -> Result<File, SinkError> {
    let lock_path = dir.join(LOCK_FILE);
    let lock = private_fs::options()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(io_err(&lock_path))?;
    lock.try_lock().map_err(|_| SinkError::Io {
        path: lock_path.clone(),
        source: io::Error::new(
            io::ErrorKind::WouldBlock,
            "another agent is using this buffer",
        ),
    })?;
    Ok(lock)
}

fn open_head_file(dir: &Path) -> Result<File, SinkError> {
    let path = dir.join(HEAD_FILE);
    private_fs::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_err(&path))
}

fn new_segment_file(path: &Path) -> io::Result<File> {
    private_fs::options()
        .read(true)
        .append(true)
        .create_new(true)
        .open(path)
}

fn write_reserve(dir: &Path) -> io::Result<()> {
    let path = dir.join(RESERVE_FILE);
    if fs::symlink_metadata(&path).is_ok_and(|m| m.len() == RESERVE_BYTES as u64) {
        return Ok(());
    }
    let mut f = private_fs::create_new(&path)?;
    let written = f
        .write_all(&vec![0u8; RESERVE_BYTES])
        .and_then(|()| f.sync_all());
    if written.is_err() {
        let _ = fs::remove_file(&path);
    }
    written
}

fn too_many_files(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

impl Buffer {
    /// Opens (or creates) the buffer, recovers it and starts the syncer thread.
    pub fn open(opts: BufferOptions, counters: Arc<Counters>) -> Result<Arc<Buffer>, SinkError> {
        let dir = opts.dir.clone();
        if let Some(run_path) = dir.parent() {
            private_fs::prepare_run_path(run_path)?;
        }
        private_fs::private_dir(&dir)?;
        let lock = open_lock(&dir)?;
        let rec = recover::recover(&dir, &counters)?;
        let mut segments = rec.segments;
        let tail = rec.tail.max(rec.head);
        // A new active segment: the recovered ones stay sealed, untouched.
        let active_path = dir.join(record::segment_file_name(tail));
        // A leftover file at the tail holds nothing readable (recovery cut or removed it).
        if fs::symlink_metadata(&active_path).is_ok() {
            fs::remove_file(&active_path).map_err(io_err(&active_path))?;
            segments.retain(|s| s.start != tail);
        }
        let active = new_segment_file(&active_path).map_err(io_err(&active_path))?;
        let mut active_seg = Segment {
            start: tail,
            end: tail,
            file: Arc::new(active),
            checks: HashMap::new(),
            logs: HashMap::new(),
        };
        let prev = segments.back().map(|s| (s.start, s.end));
        let intro_len =
            write_intro(&mut active_seg, prev, &rec.last_logs).map_err(io_err(&active_path))?;
        segments.push_back(active_seg);
        let tail = tail + intro_len;
        private_fs::sync_dir(&dir).map_err(io_err(&dir))?;
        let head_file = open_head_file(&dir)?;
        head_file
            .write_all_at(
                &HeadFile {
                    head: rec.head,
                    durable: rec.tail,
                }
                .bytes(),
                0,
            )
            .map_err(io_err(&dir.join(HEAD_FILE)))?;
        if let Err(e) = write_reserve(&dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "buffer: no disk reserve written; a full disk may delay deleting delivered data");
        }
        if rec.undelivered_logs > 0 {
            tracing::info!(
                undelivered_logs = rec.undelivered_logs,
                segments = segments.len() - 1,
                "buffer recovered"
            );
        }
        let id = dir_id(&dir).map_err(io_err(&dir))?;
        let buffer = Arc::new(Buffer {
            inner: Mutex::new(Inner {
                segments,
                tail,
                head: rec.head,
                durable: rec.tail,
                synced_head: rec.head,
                acked: BTreeMap::new(),
                last_append: HashMap::new(),
                check_ids: HashMap::new(),
                durable_state: rec.durable_state,
                pending_cache: VecDeque::new(),
                state_dirty: false,
                unsynced: Vec::new(),
                dir_dirty: false,
                sync_requested: false,
                undelivered_logs: rec.undelivered_logs,
                age_marks: rec.age_marks,
                snapshot_offset: rec.snapshot_offset,
                closed: false,
                stop_syncer: false,
                spare_buffers: Vec::new(),
                disk_full_since: None,
                unusable: None,
                dir_id: id,
                roll_failed_at: None,
            }),
            opts,
            space: Condvar::new(),
            readable: Condvar::new(),
            synced: Condvar::new(),
            sync_wake: Condvar::new(),
            head_file: Mutex::new(head_file),
            counters,
            syncer: Mutex::new(None),
            lock: Mutex::new(lock),
            fd_reserve: Mutex::new(File::open("/dev/null").ok()),
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
            disk_full: inner.disk_full_since.is_some(),
            problem: inner.unusable.clone(),
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
                WhenFull::DropOldest => {
                    self.drop_oldest_segment(&mut inner, LossReason::BufferFull)?
                }
            }
        }
        Ok(inner)
    }

    /// Moves the head past the end of the segment it is in, counting the logs skipped.
    fn drop_oldest_segment(&self, inner: &mut Inner, reason: LossReason) -> Result<(), SinkError> {
        let head = inner.head;
        if inner.segments.back().is_some_and(|s| s.start <= head) {
            // Everything undelivered is in the active segment: seal it so it can go.
            self.roll(inner)?;
        }
        let Some(seg) = inner.segments.iter().find(|s| s.end > head) else {
            return Ok(());
        };
        let (seg_start, seg_end, file) = (seg.start, seg.end, seg.file.clone());
        // Count the logs skipped, per check: the undelivered ones, minus batches acknowledged
        // out of order.
        let skipped: Vec<(u64, u64)> = inner
            .acked
            .range(head..seg_end)
            .map(|(k, (e, _))| (*k, *e))
            .collect();
        let mut per_check: HashMap<Option<Arc<str>>, u64> = HashMap::new();
        scan_segment(&file, |item, checks| {
            if let Item::Record { begin, record, .. } = item {
                let begin = seg_start + begin;
                if record.kind == KIND_LOG
                    && begin >= head
                    && !skipped.iter().any(|(s, e)| begin >= *s && begin < *e)
                {
                    *per_check
                        .entry(checks.get(&record.check).cloned())
                        .or_default() += 1;
                }
            }
        })
        .map_err(io_err(&self.opts.dir))?;
        let logs: u64 = per_check.values().sum();
        for (check, n) in &per_check {
            self.counters.add_dropped(check.as_deref(), reason, *n);
        }
        inner.undelivered_logs = inner.undelivered_logs.saturating_sub(logs);
        let why = match reason {
            LossReason::DiskFull => "disk full (when_full: drop_oldest)",
            _ => "buffer full (when_full: drop_oldest)",
        };
        tracing::error!(
            dropped = logs,
            bytes = seg_end - head,
            reason = reason.as_str(),
            "{why}: oldest undelivered logs dropped"
        );
        inner.head = seg_end;
        self.advance_head(inner);
        self.readable.notify_all();
        Ok(())
    }

    /// Seals the active segment and starts a new one at the tail, introduced by a record that
    /// describes the sealed one.
    fn roll(&self, inner: &mut Inner) -> Result<(), SinkError> {
        let path = self.opts.dir.join(record::segment_file_name(inner.tail));
        let file = match new_segment_file(&path) {
            Ok(f) => f,
            Err(e) if too_many_files(&e) => {
                // Give back the reserved descriptor for this open, then take one again.
                let spare = self.fd_reserve.lock().take();
                drop(spare);
                let f = new_segment_file(&path).map_err(io_err(&path))?;
                *self.fd_reserve.lock() = File::open("/dev/null").ok();
                f
            }
            Err(e) => return Err(SinkError::Io { path, source: e }),
        };
        let mut seg = Segment {
            start: inner.tail,
            end: inner.tail,
            file: Arc::new(file),
            checks: HashMap::new(),
            logs: HashMap::new(),
        };
        let prev = inner
            .segments
            .back()
            .map(|s| ((s.start, s.end), s.logs.clone()));
        let intro_len = match &prev {
            Some((range, logs)) => write_intro(&mut seg, Some(*range), logs),
            None => write_intro(&mut seg, None, &HashMap::new()),
        };
        match intro_len {
            Ok(n) => inner.tail += n,
            // The intro only helps count a later loss: a segment without one is still whole.
            Err(e) if is_disk_full(&e) => {
                let _ = seg.file.set_len(0);
            }
            Err(e) => {
                let _ = fs::remove_file(&path);
                return Err(SinkError::Io { path, source: e });
            }
        }
        if let Some(old) = inner.segments.back() {
            inner.unsynced.push(old.file.clone());
        }
        inner.segments.push_back(seg);
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
        let hf = HeadFile {
            head: inner.head,
            durable: inner.durable,
        };
        if let Err(e) = self.head_file.lock().write_all_at(&hf.bytes(), 0) {
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

    /// Counts logs the reader found unreadable (a disk fault after recovery).
    fn lost_at_read(&self, check: Option<&str>, logs: u64, bytes: u64) {
        self.counters.add_dropped(check, LossReason::Corrupt, logs);
        self.counters.corrupt_bytes.fetch_add(bytes, Relaxed);
        let mut inner = self.inner.lock();
        inner.undelivered_logs = inner.undelivered_logs.saturating_sub(logs);
    }

    /// Notices the buffer directory being deleted or replaced, and recreates it with every
    /// undelivered record (still readable through the open descriptors). Returns false when
    /// the buffer cannot be made durable now.
    fn ensure_dir(&self, inner: &mut Inner) -> bool {
        let dir = &self.opts.dir;
        let unlinked = inner
            .segments
            .back()
            .and_then(|s| s.file.metadata().ok())
            .is_some_and(|m| m.nlink() == 0);
        let moved = match dir_id(dir) {
            Ok(id) => id != inner.dir_id,
            Err(e) if e.kind() == io::ErrorKind::NotFound => true,
            // Unreadable (permissions changed): the open files are still on disk.
            Err(_) => false,
        };
        if !unlinked && !moved {
            return inner.unusable.is_none();
        }
        if inner.unusable.is_none() {
            tracing::error!(dir = %dir.display(), "buffer: the buffer directory was deleted or replaced while running; recreating it and rewriting the undelivered records");
        }
        match self.relocate(inner) {
            Ok(()) => {
                if inner.unusable.take().is_some() {
                    self.counters.set_buffer_problem(None);
                }
                tracing::warn!(dir = %dir.display(), segments = inner.segments.len(), "buffer: directory recreated; nothing was lost");
                true
            }
            Err(e) => {
                let msg = format!("the buffer directory {} is gone and cannot be recreated ({e}); checks fail their runs until it can be", dir.display());
                if inner.unusable.as_deref() != Some(msg.as_str()) {
                    tracing::error!("buffer: {msg}");
                }
                self.counters.set_buffer_problem(Some(msg.clone()));
                inner.unusable = Some(msg);
                false
            }
        }
    }

    fn relocate(&self, inner: &mut Inner) -> Result<(), SinkError> {
        let dir = &self.opts.dir;
        private_fs::private_dir(dir)?;
        let lock = open_lock(dir)?;
        let mut copy = vec![0u8; 1 << 20];
        let mut files = Vec::with_capacity(inner.segments.len());
        for seg in inner.segments.iter() {
            let path = dir.join(record::segment_file_name(seg.start));
            let mut f = new_segment_file(&path).map_err(io_err(&path))?;
            let len = seg.end - seg.start;
            let mut at = 0u64;
            while at < len {
                let n = (copy.len() as u64).min(len - at) as usize;
                seg.file
                    .read_exact_at(&mut copy[..n], at)
                    .map_err(io_err(&path))?;
                f.write_all(&copy[..n]).map_err(io_err(&path))?;
                at += n as u64;
            }
            f.sync_data().map_err(io_err(&path))?;
            files.push(Arc::new(f));
        }
        for (seg, f) in inner.segments.iter_mut().zip(files) {
            seg.file = f;
        }
        inner.unsynced.clear();
        inner.durable = inner.tail;
        // Everything copied is fsynced: the pending cache writes are durable now, and the new
        // snapshot holds them.
        while let Some((_, check, key, value)) = inner.pending_cache.pop_front() {
            inner.apply_durable(&check, key, value);
        }
        let snap = Snapshot {
            offset: inner.durable,
            checks: inner.durable_state.clone(),
        };
        private_fs::write_atomic(dir, SNAPSHOT_FILE, &snap.encode())
            .map_err(io_err(&dir.join(SNAPSHOT_FILE)))?;
        inner.snapshot_offset = snap.offset;
        inner.state_dirty = false;
        let head_file = open_head_file(dir)?;
        let hf = HeadFile {
            head: inner.head,
            durable: inner.durable,
        };
        head_file
            .write_all_at(&hf.bytes(), 0)
            .and_then(|()| head_file.sync_data())
            .map_err(io_err(&dir.join(HEAD_FILE)))?;
        private_fs::sync_dir(dir).map_err(io_err(dir))?;
        *self.head_file.lock() = head_file;
        *self.lock.lock() = lock;
        inner.synced_head = inner.head;
        inner.dir_id = dir_id(dir).map_err(io_err(dir))?;
        inner.dir_dirty = false;
        let _ = write_reserve(dir);
        self.synced.notify_all();
        Ok(())
    }

    /// Fsyncs what is written and updates the durable offset. Returns whether it synced.
    fn sync_once(&self) -> Result<bool, SinkError> {
        let (files, target, dir_dirty, head) = {
            let mut inner = self.inner.lock();
            inner.sync_requested = false;
            if !self.ensure_dir(&mut inner) {
                return Err(SinkError::Unusable(
                    inner.unusable.clone().unwrap_or_default(),
                ));
            }
            if inner.durable == inner.tail
                && inner.unsynced.is_empty()
                && !inner.dir_dirty
                && inner.synced_head >= inner.head
            {
                return Ok(false);
            }
            let mut files = std::mem::take(&mut inner.unsynced);
            if let Some(active) = inner.segments.back() {
                files.push(active.file.clone());
            }
            let dirty = std::mem::replace(&mut inner.dir_dirty, false);
            (files, inner.tail, dirty, inner.head)
        };
        let synced = files
            .iter()
            .try_for_each(|f| f.sync_data().map_err(io_err(&self.opts.dir)))
            .and_then(|()| {
                if dir_dirty {
                    private_fs::sync_dir(&self.opts.dir).map_err(io_err(&self.opts.dir))
                } else {
                    Ok(())
                }
            });
        // Files unlinked under us are not durable, whatever fsync said.
        let unlinked = files
            .last()
            .and_then(|f| f.metadata().ok())
            .is_some_and(|m| m.nlink() == 0);
        if synced.is_err() || unlinked {
            // Nothing is declared durable; the same files are synced again next round.
            let mut inner = self.inner.lock();
            let n = files.len().saturating_sub(1);
            inner.unsynced.extend(files.into_iter().take(n));
            inner.dir_dirty |= dir_dirty;
            synced?;
            return Ok(false);
        }
        {
            let hf = HeadFile {
                head,
                durable: target,
            };
            let head_file = self.head_file.lock();
            if head_file
                .write_all_at(&hf.bytes(), 0)
                .and_then(|()| head_file.sync_data())
                .is_err()
            {
                tracing::debug!("buffer: head file not synced this round");
            }
        }
        let mut inner = self.inner.lock();
        inner.synced_head = inner.synced_head.max(head);
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
                inner.state_dirty = true;
                inner.apply_durable(&check, key, value);
            }
        }
        drop(inner);
        self.synced.notify_all();
        Ok(true)
    }

    /// Writes the snapshot, keeping the previous one; on a full disk gives up the reserve once.
    fn write_snapshot(&self, snap: &Snapshot) -> Result<(), SinkError> {
        let dir = &self.opts.dir;
        let bytes = snap.encode();
        let prev = dir.join(SNAPSHOT_PREV_FILE);
        let cur = dir.join(SNAPSHOT_FILE);
        if fs::symlink_metadata(&cur).is_ok() {
            fs::rename(&cur, &prev).map_err(io_err(&prev))?;
        }
        match private_fs::write_atomic(dir, SNAPSHOT_FILE, &bytes) {
            Ok(()) => Ok(()),
            Err(e) if is_disk_full(&e) => {
                let _ = fs::remove_file(dir.join(RESERVE_FILE));
                private_fs::write_atomic(dir, SNAPSHOT_FILE, &bytes).map_err(io_err(&cur))
            }
            Err(e) => Err(SinkError::Io {
                path: cur,
                source: e,
            }),
        }
    }

    /// Deletes sealed segments that are delivered and durable, after snapshotting the cache
    /// state they carried. Returns how many were deleted.
    fn delete_delivered(&self) -> Result<usize, SinkError> {
        let (snapshot, doomed) = {
            let inner = self.inner.lock();
            let limit = inner.synced_head.min(inner.head).min(inner.durable);
            let n = inner
                .segments
                .iter()
                .take(inner.segments.len() - 1)
                .take_while(|s| s.end <= limit)
                .count();
            if n == 0 {
                return Ok(0);
            }
            let doomed: Vec<u64> = inner.segments.iter().take(n).map(|s| s.start).collect();
            // A snapshot is needed only if cache writes became durable since the last one: the
            // old one, replayed from its offset over the segments that remain, is still right.
            let snapshot =
                (inner.state_dirty && inner.durable > inner.snapshot_offset).then(|| Snapshot {
                    offset: inner.durable,
                    checks: inner.durable_state.clone(),
                });
            (snapshot, doomed)
        };
        if let Some(snap) = &snapshot {
            self.write_snapshot(snap)?;
        }
        for start in &doomed {
            let path = self.opts.dir.join(record::segment_file_name(*start));
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(SinkError::Io { path, source: e }),
            }
        }
        private_fs::sync_dir(&self.opts.dir).map_err(io_err(&self.opts.dir))?;
        let mut inner = self.inner.lock();
        if let Some(snap) = snapshot {
            if snap.offset > inner.snapshot_offset {
                inner.snapshot_offset = snap.offset;
                // Writes that became durable after the snapshot was taken keep it dirty.
                inner.state_dirty = inner.durable > snap.offset;
            }
        }
        inner.segments.retain(|s| !doomed.contains(&s.start));
        drop(inner);
        self.space.notify_all();
        Ok(doomed.len())
    }

    fn syncer_loop(&self) {
        let mut last_sync = Instant::now();
        let mut reserve_checked = Instant::now();
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
            match self.sync_once() {
                Ok(_) => {}
                Err(SinkError::Unusable(_)) => {
                    // Reported by ensure_dir; commits fail meanwhile.
                    self.synced.notify_all();
                    std::thread::sleep(Duration::from_millis(500));
                    continue;
                }
                Err(e) => {
                    tracing::error!(error = %e, "buffer: sync failed; commits wait for the next try");
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            }
            match self.delete_delivered() {
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "buffer: delivered segments not deleted");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            if reserve_checked.elapsed() >= Duration::from_secs(10) {
                reserve_checked = Instant::now();
                if self.inner.lock().disk_full_since.is_none() {
                    let _ = write_reserve(&self.opts.dir);
                }
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

    /// Writes one append (and the check's definition if this segment lacks it) at the tail;
    /// rolls first if the active segment is full. Returns the offset where `out` starts.
    fn write_append(
        &self,
        inner: &mut Inner,
        idx: u32,
        id: &Arc<str>,
        out: &[u8],
    ) -> io::Result<u64> {
        let active = inner
            .segments
            .back()
            .expect("there is always an active segment");
        if active.end - active.start >= self.opts.segment_bytes {
            match self.roll(inner) {
                Ok(()) => {}
                Err(SinkError::Io { source, .. }) if is_disk_full(&source) => return Err(source),
                Err(e) => {
                    // Segment size is a soft limit: keep appending to the active segment,
                    // which is still on disk and durable, and say so.
                    let due = inner
                        .roll_failed_at
                        .is_none_or(|t| t.elapsed() >= Duration::from_secs(60));
                    if due {
                        inner.roll_failed_at = Some(Instant::now());
                        tracing::error!(error = %e, "buffer: a new segment could not be created; appending to the current one");
                    }
                }
            }
        }
        let tail = inner.tail;
        let active = inner
            .segments
            .back_mut()
            .expect("there is always an active segment");
        let mut def = Vec::new();
        if !active.checks.contains_key(&idx) {
            record::encode(&mut def, KIND_CHECK, idx, id.as_bytes());
        }
        let written = (|| {
            let mut f = &*active.file;
            if !def.is_empty() {
                f.write_all(&def)?;
            }
            f.write_all(out)
        })();
        if let Err(e) = written {
            // Cut a partial write so that the next append starts on a record boundary.
            let _ = active.file.set_len(active.end - active.start);
            return Err(e);
        }
        if !def.is_empty() {
            active.checks.insert(idx, id.clone());
        }
        Ok(tail + def.len() as u64)
    }

    /// The disk is full: wait for room (`block`) or drop the oldest (`drop_oldest`). Returns
    /// `None` when this append itself is dropped (drop_oldest with nothing older to drop).
    fn on_disk_full<'a>(
        &'a self,
        mut inner: MutexGuard<'a, Inner>,
        check_id: &str,
        logs: u64,
    ) -> Result<Option<MutexGuard<'a, Inner>>, SinkError> {
        if inner.disk_full_since.is_none() {
            inner.disk_full_since = Some(Instant::now());
            self.counters.set_disk_full(true);
            let mode = match self.opts.when_full {
                WhenFull::Block => "checks wait until space returns (when_full: block)",
                WhenFull::DropOldest => {
                    "the oldest undelivered logs are dropped (when_full: drop_oldest)"
                }
            };
            tracing::error!(dir = %self.opts.dir.display(), "buffer: the disk is full; {mode}");
        }
        // Whatever is delivered can go at once: seal a fully delivered active segment so that
        // the syncer may delete it.
        if inner.head == inner.tail && inner.segments.back().is_some_and(|s| s.end > s.start) {
            let _ = self.roll(&mut inner);
        }
        match self.opts.when_full {
            WhenFull::Block => {
                self.sync_wake.notify_one();
                if inner.closed {
                    return Err(SinkError::Closed);
                }
                self.space.wait_for(&mut inner, Duration::from_millis(500));
                Ok(Some(inner))
            }
            WhenFull::DropOldest => {
                let mut had_undelivered = inner.head < inner.tail;
                // Dropping what sits in the active segment needs a new one; on a disk too full
                // even for an empty file, this append is the one dropped (below).
                if had_undelivered
                    && self
                        .drop_oldest_segment(&mut inner, LossReason::DiskFull)
                        .is_err()
                {
                    had_undelivered = false;
                }
                drop(inner);
                let _ = self.sync_once();
                let freed = self.delete_delivered().unwrap_or(0);
                let inner = self.inner.lock();
                if had_undelivered || freed > 0 {
                    return Ok(Some(inner));
                }
                drop(inner);
                self.counters
                    .add_dropped(Some(check_id), LossReason::DiskFull, logs);
                tracing::error!(check_id, dropped = logs, "disk full (when_full: drop_oldest) and nothing older to drop: this run's records dropped");
                Ok(None)
            }
        }
    }
}

/// Writes the intro record of a new segment: the previous segment's range and the logs it held
/// per check. Returns its size.
fn write_intro(
    seg: &mut Segment,
    prev: Option<(u64, u64)>,
    logs: &HashMap<Arc<str>, u64>,
) -> io::Result<u64> {
    let (prev_start, prev_end) = prev.unwrap_or((seg.start, seg.start));
    let intro = SegmentIntro {
        prev_start,
        prev_end,
        prev_logs: logs.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
    };
    let mut out = Vec::new();
    record::encode(&mut out, KIND_INTRO, 0, &intro.encode());
    (&*seg.file).write_all(&out)?;
    seg.end += out.len() as u64;
    Ok(out.len() as u64)
}

impl RecordSink for Buffer {
    fn load_state(&self, check_id: &str) -> Result<CacheState, SinkError> {
        let inner = self.inner.lock();
        let mut state = inner
            .durable_state
            .get(check_id)
            .cloned()
            .unwrap_or_default();
        for (_, check, k, v) in &inner.pending_cache {
            if &**check == check_id {
                if v.is_empty() {
                    state.remove(k);
                } else {
                    state.insert(k.clone(), v.clone());
                }
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
        out.reserve(staging.len_bytes() + staging.records() * HEADER_BYTES);
        let mut cache_at: Vec<(usize, &str, &str)> = Vec::new();
        for r in staging.iter() {
            match r {
                Record::Log(json) => record::encode(&mut out, KIND_LOG, idx, json),
                Record::Cache { key, value } => {
                    record::encode_cache(&mut out, idx, key, value);
                    cache_at.push((out.len(), key, value));
                }
                Record::Reset(keys) => {
                    record::encode(&mut out, KIND_CACHE_RESET, idx, keys);
                    // Every key ends at the record's end: they become durable together.
                    let end = out.len();
                    for key in crate::staging::decode_keys(keys).unwrap_or_default() {
                        cache_at.push((end, key, ""));
                    }
                }
            }
        }
        let logs = staging.logs() as u64;
        let mut inner = self.inner.lock();
        let base = loop {
            if inner.closed {
                return Err(SinkError::Closed);
            }
            if let Some(why) = &inner.unusable {
                return Err(SinkError::Unusable(why.clone()));
            }
            inner = self.make_room(inner, out.len() as u64)?;
            match self.write_append(&mut inner, idx, &id, &out) {
                Ok(base) => break base,
                Err(e) if is_disk_full(&e) => match self.on_disk_full(inner, check_id, logs)? {
                    Some(g) => inner = g,
                    None => {
                        staging.clear();
                        return Ok(());
                    }
                },
                Err(e) => {
                    let path = self.opts.dir.clone();
                    return Err(SinkError::Io { path, source: e });
                }
            }
        };
        let inner = &mut *inner;
        if let Some(since) = inner.disk_full_since.take() {
            self.counters.set_disk_full(false);
            tracing::warn!(
                waited_secs = since.elapsed().as_secs_f64(),
                "buffer: disk space is back; appends resumed"
            );
        }
        let active = inner
            .segments
            .back_mut()
            .expect("there is always an active segment");
        active.end = base + out.len() as u64;
        *active.logs.entry(id.clone()).or_default() += logs;
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
            if let Some(why) = &inner.unusable {
                return Err(SinkError::Unusable(why.clone()));
            }
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

/// The cache state of `check_id` as a running agent would give it now, read without disturbing
/// it: the snapshot plus a read-only replay of the buffer. Used by `cairn check`.
pub fn read_state_snapshot(run_path: &Path, check_id: &str) -> Result<CacheState, SinkError> {
    let mut all = read_all_states(run_path)?;
    Ok(all.remove(check_id).unwrap_or_default())
}

/// The cache state of every check (by the id its records were written under), read like
/// [`read_state_snapshot`]. Checks whose every entry was reset are left out. Used by
/// `cairn cursors`.
pub fn read_all_states(run_path: &Path) -> Result<HashMap<String, CacheState>, SinkError> {
    let dir = run_path.join("buffer");
    // A running agent may delete segments between our reads; a newer snapshot then covers
    // them, so start over.
    for _ in 0..5 {
        if let Some(mut states) = recover::replay_states(&dir)? {
            states.retain(|_, s| !s.is_empty());
            return Ok(states);
        }
    }
    Err(SinkError::State {
        path: dir,
        message: "the buffer kept changing while it was read".into(),
    })
}

#[cfg(test)]
mod tests;
