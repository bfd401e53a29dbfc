//! The watchdog: a thread that never needs the GIL and says, at error level, which check has
//! been running too long (and whether it freezes the others), and when the agent's memory
//! passes its limit, which checks were running and how much their last runs grew it.
//!
//! It reads [`RunTable`], which the scheduler's threads fill with atomics only: what each
//! runner runs and since when, which checks are due but wait for a runner. Whether Python is
//! frozen (a check holding the GIL in C code, `sum(range(10**12))`) is told by a probe thread
//! that takes the GIL once a second: when it has waited more than [`GIL_STUCK`], someone holds
//! it. A runner marks its run once the run has got the GIL: a run that never got it only waits
//! and is not reported on its own. Of the runs that got it, the one whose thread keeps using
//! CPU (`/proc/self/task/<tid>/stat`) holds it; the others sleep, waiting to get it back. The
//! probe may block forever; the watchdog only reads its timestamp.

use std::fmt::Write as _;
use std::sync::atomic::{
    fence, AtomicBool, AtomicI32, AtomicI64, AtomicU64, AtomicUsize, Ordering,
};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// What the watchdog watches, and how closely.
#[derive(Debug, Clone)]
pub struct WatchdogConfig {
    /// The floor of a check's overrun limit, which is `max(3 × interval, min_limit)`.
    /// 60 s; lowered only by tests (`CAIRN_WATCHDOG_MIN_SECS`).
    pub min_limit: Duration,
    /// Agent RSS above which the memory guard reports; 0 disables it (`memory_limit_bytes`).
    pub memory_limit_bytes: u64,
    /// How often it looks.
    pub tick: Duration,
}

impl Default for WatchdogConfig {
    fn default() -> Self {
        WatchdogConfig {
            min_limit: Duration::from_secs(60),
            memory_limit_bytes: 2 << 30,
            tick: Duration::from_secs(1),
        }
    }
}

/// A report about one overrunning run or one memory excursion is repeated at most this often.
const REPEAT: Duration = Duration::from_secs(300);
/// The memory guard also reports again when RSS grew by this factor since its last report.
const MEMORY_GROWTH_REPORT: f64 = 1.25;
/// Waiting this long for the GIL means someone holds it (the switch interval is 5 ms).
const GIL_STUCK: Duration = Duration::from_secs(2);
/// How often the probe takes the GIL.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// One runner's current run, published with a sequence lock: the runner is the only writer,
/// the watchdog reads without blocking it and retries on a torn read.
#[derive(Default)]
struct RunnerCell {
    /// Odd while the runner writes; the even value identifies one run.
    seq: AtomicU64,
    /// 1 + the index of the check it runs; 0 when idle.
    check: AtomicUsize,
    started_ms: AtomicU64,
    rss_before: AtomicU64,
    /// The `seq` of the run the watchdog reported as overrunning.
    reported_seq: AtomicU64,
    /// The `seq` of the run that got the GIL: a run that never did only waits for it.
    entered_seq: AtomicU64,
    /// The runner thread's kernel id, for its CPU time; 0 until it starts.
    tid: AtomicI32,
}

#[derive(Default)]
struct CheckCell {
    /// 1 + the table-time (ms) it was handed to the runners' queue; 0 when not waiting.
    queued_ms: AtomicU64,
    /// RSS after its last run minus before it (agent-wide, so concurrent runs blur it).
    last_run_rss_delta: AtomicI64,
    has_run: AtomicBool,
}

/// A consistent copy of one runner's cell.
#[derive(Debug, Clone, Copy)]
struct RunnerSnapshot {
    seq: u64,
    check: usize,
    started_ms: u64,
    rss_before: u64,
    /// The run has had the GIL (and may still hold it).
    entered: bool,
}

/// How a finished run compares with what the watchdog said about it.
pub(crate) struct RunEnd {
    pub elapsed: Duration,
    /// The watchdog reported this run as overrunning.
    pub was_reported: bool,
}

/// What every runner runs, shared by the scheduler's threads and the watchdog; atomics only.
pub(crate) struct RunTable {
    epoch: Instant,
    runners: Vec<RunnerCell>,
    checks: Vec<CheckCell>,
    /// 1 + the table-time (ms) the GIL probe started waiting; 0 when not waiting.
    probe_waiting_ms: AtomicU64,
}

impl RunTable {
    pub fn new(runners: usize, checks: usize) -> RunTable {
        RunTable {
            epoch: Instant::now(),
            runners: (0..runners).map(|_| RunnerCell::default()).collect(),
            checks: (0..checks).map(|_| CheckCell::default()).collect(),
            probe_waiting_ms: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Called on `runner`'s own thread when it starts.
    pub fn runner_thread_started(&self, runner: usize) {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        self.runners[runner].tid.store(tid, Ordering::Relaxed);
    }

    /// The timer handed `check` to the runners.
    pub fn queued(&self, check: usize) {
        self.checks[check]
            .queued_ms
            .store(self.now_ms() + 1, Ordering::Relaxed);
    }

    /// A runner took `check` off the queue.
    pub fn dequeued(&self, check: usize) {
        self.checks[check].queued_ms.store(0, Ordering::Relaxed);
    }

    fn publish(&self, runner: usize, check: usize, started_ms: u64, rss_before: u64) -> u64 {
        let cell = &self.runners[runner];
        let seq = cell.seq.load(Ordering::Relaxed);
        cell.seq.store(seq + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        cell.check.store(check, Ordering::Relaxed);
        cell.started_ms.store(started_ms, Ordering::Relaxed);
        cell.rss_before.store(rss_before, Ordering::Relaxed);
        cell.seq.store(seq + 2, Ordering::Release);
        seq + 2
    }

    /// `runner` starts running `check`; `rss_before` is the agent's RSS now.
    pub fn run_started(&self, runner: usize, check: usize, rss_before: u64) {
        self.publish(runner, check + 1, self.now_ms(), rss_before);
    }

    /// `runner`'s current run got the GIL.
    pub fn entered_python(&self, runner: usize) {
        let cell = &self.runners[runner];
        cell.entered_seq
            .store(cell.seq.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// `runner`'s run ended; records the check's RSS growth over it.
    pub fn run_ended(&self, runner: usize, check: usize, rss_after: u64) -> RunEnd {
        let cell = &self.runners[runner];
        let seq = cell.seq.load(Ordering::Relaxed);
        let started_ms = cell.started_ms.load(Ordering::Relaxed);
        let rss_before = cell.rss_before.load(Ordering::Relaxed);
        let was_reported = cell.reported_seq.load(Ordering::Relaxed) == seq;
        self.publish(runner, 0, 0, 0);
        let c = &self.checks[check];
        c.last_run_rss_delta
            .store(rss_after as i64 - rss_before as i64, Ordering::Relaxed);
        c.has_run.store(true, Ordering::Relaxed);
        RunEnd {
            elapsed: Duration::from_millis(self.now_ms().saturating_sub(started_ms)),
            was_reported,
        }
    }

    fn snapshot(&self, runner: usize) -> Option<RunnerSnapshot> {
        let cell = &self.runners[runner];
        for _ in 0..4 {
            let s1 = cell.seq.load(Ordering::Acquire);
            if s1 % 2 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let check = cell.check.load(Ordering::Relaxed);
            let started_ms = cell.started_ms.load(Ordering::Relaxed);
            let rss_before = cell.rss_before.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if cell.seq.load(Ordering::Relaxed) != s1 {
                continue;
            }
            return (check > 0).then(|| RunnerSnapshot {
                seq: s1,
                check: check - 1,
                started_ms,
                rss_before,
                entered: cell.entered_seq.load(Ordering::Relaxed) == s1,
            });
        }
        // Still changing: it is certainly not stuck; look again next tick.
        None
    }
}

/// What the watchdog needs to know about a check.
#[derive(Debug, Clone)]
pub(crate) struct CheckInfo {
    pub check_id: String,
    pub interval: Duration,
}

/// The running watchdog and GIL probe. Dropping it does not stop them: call [`Watchdog::stop`].
pub(crate) struct Watchdog {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    pub fn start(
        table: Arc<RunTable>,
        checks: Vec<CheckInfo>,
        config: WatchdogConfig,
    ) -> std::io::Result<Watchdog> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        {
            let (table, stop) = (table.clone(), stop.clone());
            // Never joined: it may be blocked on a GIL that is never released. It holds no
            // lock while it waits, so the process can still exit around it.
            std::thread::Builder::new()
                .name("gil-probe".into())
                .spawn(move || gil_probe(&table, &stop))?;
        }
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("watchdog".into())
                .spawn(move || watch(&table, &checks, &config, &stop))?
        };
        Ok(Watchdog {
            stop,
            thread: Some(thread),
        })
    }

    pub fn stop(mut self) {
        *self.stop.0.lock() = true;
        self.stop.1.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn gil_probe(table: &RunTable, stop: &(Mutex<bool>, Condvar)) {
    loop {
        table
            .probe_waiting_ms
            .store(table.now_ms() + 1, Ordering::Relaxed);
        pyo3::Python::attach(|_| {});
        table.probe_waiting_ms.store(0, Ordering::Relaxed);
        let mut stopped = stop.0.lock();
        if !*stopped {
            stop.1.wait_for(&mut stopped, PROBE_EVERY);
        }
        if *stopped {
            return;
        }
    }
}

/// Per runner: the run last reported and when.
type Reported = Option<(u64, Instant)>;

/// A thread that used this share of a CPU since the last tick is computing (a C loop holding
/// the GIL), not waiting for the GIL (which costs no CPU).
const BURNING: f64 = 0.1;

/// The watchdog thread's own state, carried from tick to tick.
struct Watcher<'a> {
    table: &'a RunTable,
    checks: &'a [CheckInfo],
    config: &'a WatchdogConfig,
    reported: Vec<Reported>,
    /// The frozen-python episode (its start) reported without a run to blame, and when.
    gil_reported: Option<(u64, Instant)>,
    /// Per runner thread: CPU ticks used, when sampled.
    cpu: Vec<Option<(u64, Instant)>>,
    memory: MemoryGuard,
}

fn watch(
    table: &RunTable,
    checks: &[CheckInfo],
    config: &WatchdogConfig,
    stop: &(Mutex<bool>, Condvar),
) {
    let mut w = Watcher {
        table,
        checks,
        config,
        reported: vec![None; table.runners.len()],
        gil_reported: None,
        cpu: vec![None; table.runners.len()],
        memory: MemoryGuard::new(config.memory_limit_bytes),
    };
    loop {
        {
            let mut stopped = stop.0.lock();
            if !*stopped {
                stop.1.wait_for(&mut stopped, config.tick);
            }
            if *stopped {
                return;
            }
        }
        let now = table.now_ms();
        let runs: Vec<Option<RunnerSnapshot>> = (0..table.runners.len())
            .map(|r| table.snapshot(r))
            .collect();
        let burning = w.sample_cpu(&runs);
        w.overruns(now, &runs, &burning);
        if let Some(rss) = rss_bytes() {
            w.memory.observe(rss, table, checks, now, &runs);
        }
    }
}

impl Watcher<'_> {
    /// Which busy runner threads used CPU since the last tick.
    fn sample_cpu(&mut self, runs: &[Option<RunnerSnapshot>]) -> Vec<bool> {
        let mut burning = vec![false; runs.len()];
        for (runner, run) in runs.iter().enumerate() {
            let tid = self.table.runners[runner].tid.load(Ordering::Relaxed);
            let ticks = match run {
                Some(_) if tid > 0 => thread_cpu_ticks(tid),
                _ => None,
            };
            let now = Instant::now();
            if let (Some(ticks), Some((before, at))) = (ticks, self.cpu[runner]) {
                let secs = now.duration_since(at).as_secs_f64();
                let used = ticks.saturating_sub(before) as f64 / clock_ticks_per_sec();
                burning[runner] = secs > 0.0 && used / secs >= BURNING;
            }
            self.cpu[runner] = ticks.map(|t| (t, now));
        }
        burning
    }

    fn overruns(&mut self, now: u64, runs: &[Option<RunnerSnapshot>], burning: &[bool]) {
        let (table, checks) = (self.table, self.checks);
        let probe = table.probe_waiting_ms.load(Ordering::Relaxed);
        // When the probe has waited long, the GIL has been held since (at least) it began.
        let gil_stuck_since = (probe > 0)
            .then(|| probe - 1)
            .filter(|since| now.saturating_sub(*since) >= GIL_STUCK.as_millis() as u64);
        let waiting: Vec<&str> = table
            .checks
            .iter()
            .zip(checks)
            .filter(|(c, _)| c.queued_ms.load(Ordering::Relaxed) != 0)
            .map(|(_, info)| info.check_id.as_str())
            .collect();
        let busy = runs.iter().filter(|r| r.is_some()).count();
        // A run that had the GIL may hold it; one that is also computing does (the others
        // that had it sleep, waiting to get it back).
        let entered: Vec<bool> = runs.iter().map(|r| r.is_some_and(|r| r.entered)).collect();
        let a_run_may_hold_gil = entered.iter().any(|e| *e);
        let a_run_computes = (0..runs.len()).any(|r| entered[r] && burning[r]);
        for (runner, run) in runs.iter().enumerate() {
            let Some(run) = run else {
                self.reported[runner] = None;
                continue;
            };
            // Never got the GIL: it only waits for it, held by someone else (who is reported).
            if !run.entered {
                continue;
            }
            let info = &checks[run.check];
            let limit = (info.interval * 3).max(self.config.min_limit);
            let running = Duration::from_millis(now.saturating_sub(run.started_ms));
            if running < limit {
                continue;
            }
            let holds_gil = match gil_stuck_since {
                Some(_) if a_run_computes && !burning[runner] => continue,
                Some(_) => true,
                // The probe is waiting but not yet for GIL_STUCK: a run that idles while another
                // computes may only be waiting for the GIL back. Decide once the probe tells,
                // rather than blame the waiting run before the one that holds the GIL.
                None if probe > 0 && a_run_computes && !burning[runner] => continue,
                None => false,
            };
            let due = match self.reported[runner] {
                Some((seq, at)) if seq == run.seq => at.elapsed() >= REPEAT,
                _ => true,
            };
            if !due {
                continue;
            }
            self.reported[runner] = Some((run.seq, Instant::now()));
            table.runners[runner]
                .reported_seq
                .store(run.seq, Ordering::Relaxed);
            let running_secs = running.as_secs();
            let limit_secs = limit.as_secs_f64();
            let limit_text = secs_text(limit);
            let waiting_list = waiting.join(", ");
            let id = info.check_id.as_str();
            if holds_gil {
                let frozen_secs = gil_stuck_since.map_or(0, |s| now.saturating_sub(s) / 1000);
                // Every other run in progress is stuck too, and so is every queued check.
                let blocked: Vec<&str> = runs
                    .iter()
                    .enumerate()
                    .filter(|(r, _)| *r != runner)
                    .filter_map(|(_, other)| other.map(|o| checks[o.check].check_id.as_str()))
                    .chain(waiting.iter().copied())
                    .collect();
                tracing::error!(
                    check_id = %id,
                    running_secs,
                    limit_secs,
                    python_frozen_secs = frozen_secs,
                    blocked = %blocked.join(", "),
                    "check {id} has been running for {running_secs} s (limit {limit_text}) and python has been frozen for {frozen_secs} s: it holds the GIL, so every other check is blocked"
                );
            } else if !waiting.is_empty() {
                tracing::error!(
                    check_id = %id,
                    running_secs,
                    limit_secs,
                    waiting = %waiting_list,
                    "check {id} has been running for {running_secs} s (limit {limit_text}): other checks are blocked, {} due and waiting for a free runner ({busy} of {} runners busy)",
                    waiting.len(),
                    runs.len()
                );
            } else {
                tracing::error!(
                    check_id = %id,
                    running_secs,
                    limit_secs,
                    "check {id} has been running for {running_secs} s (limit {limit_text}); it holds one of {} runners ({busy} busy), the other checks still run",
                    runs.len()
                );
            }
        }
        // Frozen, but not by a check's run (a thread a check started, say): still say so.
        match gil_stuck_since {
            Some(since)
                if !a_run_may_hold_gil
                    && Duration::from_millis(now - since) >= self.config.min_limit =>
            {
                let due = match self.gil_reported {
                    Some((s, at)) if s == since => at.elapsed() >= REPEAT,
                    _ => true,
                };
                if due {
                    self.gil_reported = Some((since, Instant::now()));
                    let frozen_secs = (now - since) / 1000;
                    let running: Vec<&str> = runs
                        .iter()
                        .flatten()
                        .map(|r| checks[r.check].check_id.as_str())
                        .collect();
                    tracing::error!(
                        python_frozen_secs = frozen_secs,
                        running = %running.join(", "),
                        "python has been frozen for {frozen_secs} s: something other than a check's run holds the GIL (a thread a check started?); every check is blocked"
                    );
                }
            }
            Some(_) => {}
            None => self.gil_reported = None,
        }
    }
}

/// `60 s`, `1.5 s`.
fn secs_text(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{s:.1} s")
    }
}

/// CPU time (user + system, in clock ticks) of one of this process's threads.
fn thread_cpu_ticks(tid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    // The name (field 2) may hold spaces and parentheses: count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace().skip(11); // field 14 is utime
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// The agent-wide memory guard's state.
struct MemoryGuard {
    limit: u64,
    /// RSS and time of the last report while over the limit.
    over: Option<(u64, Instant)>,
}

impl MemoryGuard {
    fn new(limit: u64) -> MemoryGuard {
        MemoryGuard { limit, over: None }
    }

    fn observe(
        &mut self,
        rss: u64,
        table: &RunTable,
        checks: &[CheckInfo],
        now: u64,
        runs: &[Option<RunnerSnapshot>],
    ) {
        if self.limit == 0 {
            return;
        }
        if rss <= self.limit {
            if self.over.take().is_some() {
                tracing::info!(
                    rss_bytes = rss,
                    limit_bytes = self.limit,
                    "agent memory (RSS {}) is back under memory_limit_bytes ({})",
                    human(rss),
                    human(self.limit)
                );
            }
            return;
        }
        let due = match self.over {
            None => true,
            Some((last, at)) => {
                rss as f64 >= last as f64 * MEMORY_GROWTH_REPORT || at.elapsed() >= REPEAT
            }
        };
        if !due {
            return;
        }
        self.over = Some((rss, Instant::now()));
        let mut running = String::new();
        for run in runs.iter().flatten() {
            let _ = write!(
                running,
                "{}{} (running {} s, RSS {} since its run started)",
                if running.is_empty() { "" } else { ", " },
                checks[run.check].check_id,
                now.saturating_sub(run.started_ms) / 1000,
                signed_human(rss as i64 - run.rss_before as i64)
            );
        }
        if running.is_empty() {
            running.push_str("none");
        }
        let mut growth: Vec<(i64, &str)> = table
            .checks
            .iter()
            .zip(checks)
            .filter(|(c, _)| c.has_run.load(Ordering::Relaxed))
            .map(|(c, info)| {
                (
                    c.last_run_rss_delta.load(Ordering::Relaxed),
                    info.check_id.as_str(),
                )
            })
            .filter(|(d, _)| *d > 0)
            .collect();
        growth.sort_by_key(|g| std::cmp::Reverse(g.0));
        let growth = if growth.is_empty() {
            "none".to_string()
        } else {
            growth
                .iter()
                .take(3)
                .map(|(d, id)| format!("{id} {}", signed_human(*d)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        tracing::error!(
            rss_bytes = rss,
            limit_bytes = self.limit,
            running = %running,
            last_run_growth = %growth,
            "agent memory (RSS {}) is over memory_limit_bytes ({}); checks running now: {running}; largest growth over their last run: {growth}",
            human(rss),
            human(self.limit)
        );
    }
}

/// The agent's resident set size, from `/proc/self/statm` (a few µs; no allocation).
pub(crate) fn rss_bytes() -> Option<u64> {
    use std::io::Read;
    let mut buf = [0u8; 128];
    let mut f = std::fs::File::open("/proc/self/statm").ok()?;
    let n = f.read(&mut buf).ok()?;
    let text = std::str::from_utf8(&buf[..n]).ok()?;
    let pages: u64 = text.split_ascii_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size())
}

fn page_size() -> u64 {
    static PAGE: AtomicU64 = AtomicU64::new(0);
    let p = PAGE.load(Ordering::Relaxed);
    if p != 0 {
        return p;
    }
    // SAFETY: sysconf has no preconditions.
    let p = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
        .ok()
        .filter(|p| *p > 0)
        .unwrap_or(4096);
    PAGE.store(p, Ordering::Relaxed);
    p
}

fn human(bytes: u64) -> String {
    const MIB: f64 = (1 << 20) as f64;
    const GIB: f64 = (1 << 30) as f64;
    let b = bytes as f64;
    if b >= GIB {
        format!("{:.1} GiB", b / GIB)
    } else {
        format!("{:.1} MiB", b / MIB)
    }
}

fn signed_human(delta: i64) -> String {
    let sign = if delta < 0 { "-" } else { "+" };
    format!("{sign}{}", human(delta.unsigned_abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_is_read() {
        let rss = rss_bytes().expect("statm is readable on linux");
        assert!(rss > 1 << 20, "{rss}");
    }

    #[test]
    fn a_busy_thread_burns_cpu_ticks() {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        let before = thread_cpu_ticks(tid).unwrap();
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed() < Duration::from_millis(300) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(thread_cpu_ticks(tid).unwrap() > before);
        assert_eq!(secs_text(Duration::from_secs(60)), "60 s");
        assert_eq!(secs_text(Duration::from_millis(1500)), "1.5 s");
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human(3 << 30), "3.0 GiB");
        assert_eq!(signed_human(-(5 << 20)), "-5.0 MiB");
        assert_eq!(signed_human(40 << 20), "+40.0 MiB");
    }

    #[test]
    fn a_run_is_published_and_its_end_knows_whether_it_was_reported() {
        let t = RunTable::new(2, 3);
        assert!(t.snapshot(0).is_none());
        t.run_started(1, 2, 100);
        let s = t.snapshot(1).unwrap();
        assert_eq!((s.check, s.rss_before, s.entered), (2, 100, false));
        t.entered_python(1);
        assert!(t.snapshot(1).unwrap().entered);
        t.runners[1].reported_seq.store(s.seq, Ordering::Relaxed);
        let end = t.run_ended(1, 2, 150);
        assert!(end.was_reported);
        assert!(t.snapshot(1).is_none());
        assert_eq!(t.checks[2].last_run_rss_delta.load(Ordering::Relaxed), 50);
        t.run_started(1, 0, 0);
        assert!(!t.snapshot(1).unwrap().entered);
        assert!(!t.run_ended(1, 0, 0).was_reported);
    }
}
