//! The "running now" record: `<run_path>/running`, which says which check each thread was
//! running, so that the start after a crash can name the check that killed the agent.
//!
//! A crash (a segfault in a C extension, `os._exit`, `SIGKILL`) runs no Rust code after it, so
//! the record is written *before*: each runner thread `pwrite`s its fixed-size slot at the start
//! and the end of every run. No fsync: the record only has to survive the death of the process,
//! and the page cache keeps it. The fatal-signal handlers write the signal number into the
//! header of the already-open file with one `pwrite` (async-signal-safe), print one line naming
//! the check on stderr (after faulthandler's tracebacks), then let the signal kill the process
//! as it would have. `os._exit` in the embedded interpreter is wrapped to write
//! its code and caller first (see [`os_exit`]).
//!
//! Layout (native endianness; only this machine reads it):
//!
//! ```text
//! header, 64 bytes:  0 magic "CAIRNRN1" | 8 slots u32 | 12 pid u32 | 16 started unix ms u64
//!                    24 clean u32 | 28 signal i32 | 32 signal slot i32
//!                    36 os._exit called u32 | 40 exit code i32 | 44 exit slot i32 | 48 reserved
//! slot i, 256 bytes at 64 + 256·i:
//!                    0 state u32 (0 idle, 1 running a check, 2 loading a check)
//!                    4 id length u32 | 8 started unix ms u64 | 16 check id (≤ 240 bytes)
//! ```
//!
//! Slot 0 is the main thread (loading checks); slot `1 + i` is `check-runner-i`.

use std::cell::Cell;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

/// The record's file name under `run_path`.
pub const FILE_NAME: &str = "running";

const MAGIC: &[u8; 8] = b"CAIRNRN1";
const HEADER_LEN: usize = 64;
const SLOT_LEN: usize = 256;
const SLOT_ID_MAX: usize = SLOT_LEN - 16;
/// More slots than this is not a record we wrote (and would be a silly allocation).
const MAX_SLOTS: usize = 4096;

const OFF_CLEAN: usize = 24;
const OFF_SIGNAL: usize = 28;
const OFF_EXIT: usize = 36;

const STATE_IDLE: u32 = 0;
const STATE_RUNNING: u32 = 1;
const STATE_LOADING: u32 = 2;

/// The record's fd, for the signal handler (which may use nothing but atomics). -1: none.
static FD: AtomicI32 = AtomicI32::new(-1);
/// The process that owns the record: a child forked by a check (multiprocessing) shares the fd
/// and must not write its own death into the agent's record.
static PID: AtomicI32 = AtomicI32::new(0);
static SLOTS: AtomicI32 = AtomicI32::new(0);
/// The first fatal signal wins: a crash while handling a crash must not overwrite it.
static SIGNAL_RECORDED: AtomicBool = AtomicBool::new(false);
/// Keeps the file open for the life of the process.
static FILE: Mutex<Option<File>> = Mutex::new(None);

thread_local! {
    /// This thread's slot, or -1. Const-initialised and without a destructor, so reading it is
    /// a plain TLS load: safe in a signal handler.
    static SLOT: Cell<i32> = const { Cell::new(-1) };
}

#[derive(Debug, thiserror::Error)]
pub enum CrashRecordError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a regular file (a symlink?); not used")]
    NotRegular { path: PathBuf },
    #[error("installing the handler for signal {signal}: {source}")]
    Signal { signal: i32, source: std::io::Error },
}

/// What a slot of the previous agent's record says.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotRecord {
    pub slot: usize,
    /// `true`: the check was being loaded (imported, constructed), not run.
    pub loading: bool,
    pub check_id: String,
    pub started: SystemTime,
}

/// The previous agent's record, as found at start.
#[derive(Debug, Clone, PartialEq)]
pub struct Previous {
    pub pid: u32,
    pub clean: bool,
    /// The fatal signal its handler recorded, and the slot of the thread that got it.
    pub signal: Option<(i32, Option<usize>)>,
    /// `os._exit(code)` called by a check, and the caller's slot.
    pub os_exit: Option<(i32, Option<usize>)>,
    /// Every slot that was busy.
    pub busy: Vec<SlotRecord>,
}

/// Reads the previous record (if any), replaces it with a fresh one for this process with
/// `runner_slots` runner slots (plus the main thread's), and installs the fatal-signal handlers
/// that write into it. Call it before the interpreter starts: `faulthandler` (enabled there)
/// chains to the handlers it finds, so ours must already be in place.
///
/// Run it only once the buffer's lock is held, so a second agent refused on the same
/// `run_path` cannot wipe the record of the one that runs.
pub fn install(run_path: &Path, runner_slots: usize) -> Result<Option<Previous>, CrashRecordError> {
    let path = run_path.join(FILE_NAME);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CrashRecordError::Io { path, source }
    };
    // Normally there already (the buffer lives in it); private when it is not.
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(run_path)
        .map_err(io(run_path))?;
    // An unreadable record (not ours, a symlink planted there) is replaced, not followed.
    let previous = match read_previous(&path) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "the previous run record is unusable; starting a new one");
            None
        }
    };

    let slots = (runner_slots + 1).min(MAX_SLOTS);
    let mut image = vec![0u8; HEADER_LEN + SLOT_LEN * slots];
    image[..8].copy_from_slice(MAGIC);
    put_u32(&mut image, 8, slots as u32);
    put_u32(&mut image, 12, std::process::id());
    put_u64(&mut image, 16, unix_ms(SystemTime::now()));
    put_i32(&mut image, OFF_SIGNAL + 4, -1);
    put_i32(&mut image, OFF_EXIT + 8, -1);
    // A new file renamed over the old one: `rename` replaces a symlink instead of following
    // it, and O_EXCL|O_NOFOLLOW refuses whatever sits at the temporary name.
    let tmp = run_path.join(format!("{FILE_NAME}.tmp"));
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&tmp)(e)),
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .map_err(io(&tmp))?;
    std::os::unix::fs::FileExt::write_all_at(&file, &image, 0).map_err(io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io(&path))?;

    PID.store(std::process::id() as i32, Ordering::Relaxed);
    SLOTS.store(slots as i32, Ordering::Relaxed);
    SIGNAL_RECORDED.store(false, Ordering::Relaxed);
    FD.store(file.as_raw_fd(), Ordering::Release);
    // Replacing an earlier record (tests) closes its fd only after FD moved on.
    *FILE.lock() = Some(file);
    install_signal_handlers()?;
    set_thread_slot(0);
    Ok(previous)
}

fn read_previous(path: &Path) -> Result<Option<Previous>, CrashRecordError> {
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path);
    let mut file = match opened {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(CrashRecordError::NotRegular {
                path: path.to_path_buf(),
            })
        }
        Err(source) => {
            return Err(CrashRecordError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let meta = file.metadata().map_err(|source| CrashRecordError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let ft = meta.file_type();
    if !ft.is_file() || ft.is_fifo() {
        return Err(CrashRecordError::NotRegular {
            path: path.to_path_buf(),
        });
    }
    let mut bytes = Vec::new();
    let limit = (HEADER_LEN + SLOT_LEN * MAX_SLOTS) as u64;
    (&mut file)
        .take(limit)
        .read_to_end(&mut bytes)
        .map_err(|source| CrashRecordError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(parse(&bytes))
}

/// Decodes a record; `None` when it is not one (empty, foreign, cut short before its header).
pub fn parse(bytes: &[u8]) -> Option<Previous> {
    if bytes.len() < HEADER_LEN || &bytes[..8] != MAGIC {
        return None;
    }
    let slots = (get_u32(bytes, 8) as usize).min(MAX_SLOTS);
    let slot_of = |v: i32| usize::try_from(v).ok();
    let signal = get_i32(bytes, OFF_SIGNAL);
    let mut busy = Vec::new();
    for slot in 0..slots {
        let at = HEADER_LEN + slot * SLOT_LEN;
        let Some(s) = bytes.get(at..at + SLOT_LEN) else {
            break;
        };
        let state = get_u32(s, 0);
        if state != STATE_RUNNING && state != STATE_LOADING {
            continue;
        }
        let len = (get_u32(s, 4) as usize).min(SLOT_ID_MAX);
        busy.push(SlotRecord {
            slot,
            loading: state == STATE_LOADING,
            check_id: String::from_utf8_lossy(&s[16..16 + len]).into_owned(),
            started: UNIX_EPOCH + Duration::from_millis(get_u64(s, 8)),
        });
    }
    Some(Previous {
        pid: get_u32(bytes, 12),
        clean: get_u32(bytes, OFF_CLEAN) == 1,
        signal: (signal > 0).then(|| (signal, slot_of(get_i32(bytes, OFF_SIGNAL + 4)))),
        os_exit: (get_u32(bytes, OFF_EXIT) == 1).then(|| {
            (
                get_i32(bytes, OFF_EXIT + 4),
                slot_of(get_i32(bytes, OFF_EXIT + 8)),
            )
        }),
        busy,
    })
}

/// Says, at error level, which check the previous agent died running, if it did not stop
/// cleanly. One line per check that was running, so each names its check.
pub fn report_previous(prev: &Previous) {
    if prev.clean {
        return;
    }
    let cause = match (prev.os_exit, prev.signal) {
        (Some((code, _)), _) => format!("os._exit({code})"),
        (None, Some((sig, _))) => format!("signal {sig}, {}", signal_name(sig)),
        (None, None) => {
            "killed or crashed without a signal it could record, e.g. SIGKILL".to_string()
        }
    };
    // The thread that called os._exit or took the signal, when it was one of ours.
    let culprit = prev
        .os_exit
        .and_then(|(_, slot)| slot)
        .or_else(|| prev.signal.and_then(|(_, slot)| slot));
    let culprit = culprit.and_then(|slot| prev.busy.iter().find(|b| b.slot == slot));
    let ago = |b: &SlotRecord| {
        SystemTime::now()
            .duration_since(b.started)
            .unwrap_or_default()
            .as_secs()
    };
    let what = |b: &SlotRecord| {
        if b.loading {
            format!("loading check {}", b.check_id)
        } else {
            format!("running check {}", b.check_id)
        }
    };
    match culprit {
        Some(c) => {
            tracing::error!(
                check_id = %c.check_id,
                previous_pid = prev.pid,
                started_secs_ago = ago(c),
                "the agent died while {} ({cause})",
                what(c)
            );
            for b in prev.busy.iter().filter(|b| b.slot != c.slot) {
                tracing::warn!(
                    check_id = %b.check_id,
                    previous_pid = prev.pid,
                    started_secs_ago = ago(b),
                    "check {} was also {} when the agent died ({cause}, caused by check {})",
                    b.check_id,
                    if b.loading { "loading" } else { "running" },
                    c.check_id
                );
            }
        }
        // Not attributable to one thread (SIGKILL, a signal on another thread): every check
        // that was running is a suspect, and each is named.
        None if !prev.busy.is_empty() => {
            for b in &prev.busy {
                tracing::error!(
                    check_id = %b.check_id,
                    previous_pid = prev.pid,
                    started_secs_ago = ago(b),
                    "the agent died while {} ({cause})",
                    what(b)
                );
            }
        }
        None => tracing::warn!(
            previous_pid = prev.pid,
            "the previous agent did not stop cleanly while no check was running ({cause})"
        ),
    }
}

/// Marks this process's record as a clean stop: the next start has nothing to report.
pub fn mark_clean() {
    write_at(OFF_CLEAN, &1u32.to_ne_bytes());
}

/// Makes this thread's runs go into slot `slot` (0: main thread, 1 + i: runner i).
pub fn set_thread_slot(slot: usize) {
    let slot = i32::try_from(slot).unwrap_or(-1);
    SLOT.with(|s| s.set(slot));
    ensure_signal_stack();
}

/// Size of the alternate signal stack each thread that runs checks gets.
const SIGNAL_STACK_BYTES: usize = 256 * 1024;

/// Gives this thread an alternate signal stack big enough for a crash's whole handling. The
/// handlers run on it (`SA_ONSTACK`), nested: faulthandler dumps every thread's traceback, then
/// re-raises into ours while its own frame is still there, each frame with the CPU's saved
/// state (several KiB with AVX-512). The stack Rust gives its threads (`SIGSTKSZ`) or the one
/// faulthandler gives the main thread is too small for that in a debug build, and the
/// handler then dies on the guard page before saying which check crashed. Mapped lazily, so
/// untouched pages cost nothing; kept for the life of the thread (checks run on long-lived
/// threads), since a thread's alternate stack cannot safely be unmapped while it may be used.
pub fn ensure_signal_stack() {
    // SAFETY: sigaltstack reads this thread's setting into a zeroed stack_t; then a fresh
    // private anonymous mapping is handed to sigaltstack for this thread only, never unmapped.
    unsafe {
        let mut current: libc::stack_t = std::mem::zeroed();
        if libc::sigaltstack(std::ptr::null(), &mut current) == 0
            && current.ss_flags & libc::SS_DISABLE == 0
            && current.ss_size >= SIGNAL_STACK_BYTES
        {
            return;
        }
        let mem = libc::mmap(
            std::ptr::null_mut(),
            SIGNAL_STACK_BYTES,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
            -1,
            0,
        );
        if mem == libc::MAP_FAILED {
            return;
        }
        let stack = libc::stack_t {
            ss_sp: mem,
            ss_flags: 0,
            ss_size: SIGNAL_STACK_BYTES,
        };
        if libc::sigaltstack(&stack, std::ptr::null_mut()) != 0 {
            libc::munmap(mem, SIGNAL_STACK_BYTES);
        }
    }
}

/// Records that this thread started running (`loading == false`) or loading `check_id`.
pub fn slot_start(check_id: &str, loading: bool) {
    let Some(slot) = this_slot() else { return };
    let mut buf = [0u8; SLOT_LEN];
    let id = truncate(check_id, SLOT_ID_MAX);
    put_u32(
        &mut buf,
        0,
        if loading {
            STATE_LOADING
        } else {
            STATE_RUNNING
        },
    );
    put_u32(&mut buf, 4, id.len() as u32);
    put_u64(&mut buf, 8, unix_ms(SystemTime::now()));
    buf[16..16 + id.len()].copy_from_slice(id.as_bytes());
    // One pwrite for the whole slot: a death between two writes cannot leave a torn id.
    write_at(HEADER_LEN + slot * SLOT_LEN, &buf);
}

/// Records that this thread's run (or load) ended.
pub fn slot_end() {
    let Some(slot) = this_slot() else { return };
    write_at(HEADER_LEN + slot * SLOT_LEN, &STATE_IDLE.to_ne_bytes());
}

/// Records that this thread called `os._exit(code)`. Only for this process.
pub(crate) fn record_os_exit(code: i32) {
    let mut buf = [0u8; 12];
    put_u32(&mut buf, 0, 1);
    put_i32(&mut buf, 4, code);
    put_i32(&mut buf, 8, SLOT.with(Cell::get));
    write_at(OFF_EXIT, &buf);
}

/// Whether this is the process that installed the record (not a child a check forked).
pub(crate) fn is_owner() -> bool {
    PID.load(Ordering::Relaxed) == std::process::id() as i32
}

fn this_slot() -> Option<usize> {
    let slot = usize::try_from(SLOT.with(Cell::get)).ok()?;
    (slot < SLOTS.load(Ordering::Relaxed) as usize).then_some(slot)
}

/// Best effort, and silent: the record is a diagnostic, a failed write must never stop a run.
fn write_at(offset: usize, bytes: &[u8]) {
    let fd = FD.load(Ordering::Acquire);
    if fd < 0 || !is_owner() {
        return;
    }
    // SAFETY: pwrite on an fd this module keeps open for the life of the process, from a
    // buffer valid for its length.
    unsafe {
        libc::pwrite(
            fd,
            bytes.as_ptr().cast(),
            bytes.len(),
            offset as libc::off_t,
        );
    }
}

const FATAL_SIGNALS: [libc::c_int; 5] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGFPE,
    libc::SIGILL,
    libc::SIGABRT,
];

fn install_signal_handlers() -> Result<(), CrashRecordError> {
    for sig in FATAL_SIGNALS {
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; the handler only
        // does async-signal-safe work (atomics, a TLS load, pwrite, sigaction, raise).
        let rc = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_fatal_signal as extern "C" fn(libc::c_int) as usize;
            // SA_NODEFER: the re-raise below is delivered at once, to the default action.
            // SA_ONSTACK: faulthandler's alternate stack, for a stack overflow.
            action.sa_flags = libc::SA_NODEFER | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(CrashRecordError::Signal {
                signal: sig,
                source: std::io::Error::last_os_error(),
            });
        }
    }
    Ok(())
}

/// Runs after faulthandler has dumped the tracebacks (it restores the handler it found, ours,
/// and re-raises). Records the signal, says on stderr which check this thread was running (read
/// back from the record: no allocation, no lock), then dies of it with the default action.
extern "C" fn on_fatal_signal(sig: libc::c_int) {
    let fd = FD.load(Ordering::Acquire);
    // SAFETY: getpid, pwrite, pread, write, sigaction and raise are async-signal-safe; every
    // buffer is on this stack and valid for the lengths given.
    unsafe {
        if fd >= 0
            && libc::getpid() == PID.load(Ordering::Relaxed)
            && !SIGNAL_RECORDED.swap(true, Ordering::Relaxed)
        {
            let slot = SLOT.try_with(Cell::get).unwrap_or(-1);
            let mut buf = [0u8; 8];
            buf[..4].copy_from_slice(&sig.to_ne_bytes());
            buf[4..].copy_from_slice(&slot.to_ne_bytes());
            libc::pwrite(fd, buf.as_ptr().cast(), 8, OFF_SIGNAL as libc::off_t);

            let mut record = [0u8; SLOT_LEN];
            let read = match usize::try_from(slot) {
                Ok(slot) if slot < SLOTS.load(Ordering::Relaxed) as usize => libc::pread(
                    fd,
                    record.as_mut_ptr().cast(),
                    SLOT_LEN,
                    (HEADER_LEN + slot * SLOT_LEN) as libc::off_t,
                ),
                _ => -1,
            };
            let mut line = Line::default();
            line.push(b"cairn: fatal signal ");
            line.push_int(sig as u64);
            line.push(b" (");
            line.push(signal_name(sig).as_bytes());
            let state = get_u32(&record, 0);
            if read == SLOT_LEN as isize && (state == STATE_RUNNING || state == STATE_LOADING) {
                let len = (get_u32(&record, 4) as usize).min(SLOT_ID_MAX);
                line.push(if state == STATE_LOADING {
                    b") while loading check "
                } else {
                    b") while running check "
                });
                line.push(&record[16..16 + len]);
            } else {
                line.push(b") outside any check's run");
            }
            line.push(b"\n");
            libc::write(2, line.buf.as_ptr().cast(), line.len);
        }
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(sig, &dfl, std::ptr::null_mut());
        libc::raise(sig);
    }
}

/// A line built on the stack, for the signal handler. Too long is cut, never an error.
struct Line {
    buf: [u8; 384],
    len: usize,
}

impl Default for Line {
    fn default() -> Self {
        Line {
            buf: [0; 384],
            len: 0,
        }
    }
}

impl Line {
    fn push(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
    }

    fn push_int(&mut self, mut v: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.push(&digits[i..]);
    }
}

/// `SIGSEGV` for 11, and so on.
pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        _ => "unknown signal",
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}
fn put_i32(b: &mut [u8], at: usize, v: i32) {
    b[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}
fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_ne_bytes());
}
fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn get_i32(b: &[u8], at: usize) -> i32 {
    get_u32(b, at) as i32
}
fn get_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_ne_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_on_a_char_boundary() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("aé", 2), "a");
    }

    #[test]
    fn a_stack_line_formats_and_cuts() {
        let mut l = Line::default();
        l.push(b"signal ");
        l.push_int(11);
        l.push_int(0);
        assert_eq!(&l.buf[..l.len], b"signal 110");
        l.push(&[b'x'; 1000]);
        assert_eq!(l.len, 384);
    }

    #[test]
    fn parse_rejects_foreign_bytes() {
        assert_eq!(parse(b""), None);
        assert_eq!(parse(&[0u8; 200]), None);
    }

    #[test]
    fn a_record_round_trips_and_a_symlink_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(install(dir.path(), 2).unwrap(), None);
        slot_start("mycheck:0123456789abcdef", false);
        set_thread_slot(2);
        slot_start("other:fedcba9876543210", false);
        slot_end();
        set_thread_slot(0);
        record_os_exit(3);
        let prev = install(dir.path(), 2).unwrap().unwrap();
        assert!(!prev.clean);
        assert_eq!(prev.os_exit, Some((3, Some(0))));
        assert_eq!(prev.signal, None);
        assert_eq!(prev.busy.len(), 1);
        assert_eq!(prev.busy[0].check_id, "mycheck:0123456789abcdef");
        mark_clean();
        let prev = install(dir.path(), 2).unwrap().unwrap();
        assert!(prev.clean);
        assert!(prev.busy.is_empty());

        let target = dir.path().join("target");
        std::fs::write(&target, b"precious").unwrap();
        let link = dir.path().join(FILE_NAME);
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert_eq!(install(dir.path(), 2).unwrap(), None);
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
        let meta = std::fs::symlink_metadata(&link).unwrap();
        assert!(meta.file_type().is_file());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
}
