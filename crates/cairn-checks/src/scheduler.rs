//! Runs every instance each `min_collection_interval`, at most `check_runners` at a time.
//!
//! One timer thread decides what is due; a pool of runner threads runs checks. An instance
//! still running when it falls due again is skipped for that tick, so a slow check occupies one
//! runner and delays nobody else.
//!
//! Every run is also published, with atomics only, in the watchdog's [`RunTable`] (who runs
//! what since when, who waits for a runner) and in the crash record (`<run_path>/running`), so
//! that a check that overruns, eats memory or kills the process is named.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::{Condvar, Mutex};

use crate::crash_record;
use crate::loader::LoadedCheck;
use crate::run::{run_once, RunError, RunReport};
use crate::watchdog::{self, CheckInfo, RunTable, Watchdog, WatchdogConfig};

/// Upper bounds (seconds) of the run-duration histogram buckets, as Prometheus `le` values.
pub const DURATION_BUCKETS_SECS: [f64; 10] =
    [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 15.0, 60.0];

/// What one run or all runs submitted.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, PartialEq, Eq)]
pub struct SubmittedCounts {
    pub metric_samples: u64,
    pub events: u64,
    pub service_checks: u64,
    pub logs: u64,
}

/// What the scheduler knows about one instance, for status.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CheckStatus {
    pub name: String,
    pub check_id: String,
    /// The conf.d file the instance comes from.
    pub config_file: String,
    /// The Python file of the check's class.
    pub check_file: String,
    pub interval_secs: f64,
    pub runs: u64,
    pub errors: u64,
    /// Runs that ended with warnings (and no error).
    pub warning_runs: u64,
    pub running: bool,
    #[serde(skip)]
    pub last_run_at: Option<SystemTime>,
    pub last_duration_ms: Option<f64>,
    pub total_duration_ms: f64,
    pub last_error: Option<RunError>,
    pub last_warnings: Vec<String>,
    pub logs_processed: u64,
    pub last_run: SubmittedCounts,
    pub total: SubmittedCounts,
    /// What the check set with `set_metadata` (last value per name).
    pub metadata: BTreeMap<String, String>,
    /// Runs per [`DURATION_BUCKETS_SECS`] bucket (not cumulative); the last is `+Inf`.
    #[serde(skip)]
    pub duration_buckets: [u64; DURATION_BUCKETS_SECS.len() + 1],
}

impl CheckStatus {
    /// `OK`, `WARNING` or `ERROR`, from the last run, as `agent status` shows it.
    pub fn state(&self) -> &'static str {
        if self.last_error.is_some() {
            "ERROR"
        } else if !self.last_warnings.is_empty() {
            "WARNING"
        } else {
            "OK"
        }
    }

    pub fn average_duration_ms(&self) -> Option<f64> {
        (self.runs > 0).then(|| self.total_duration_ms / self.runs as f64)
    }
}

/// A scheduler stopped for a reload: its checks and their statuses.
pub type Stopped = (Vec<LoadedCheck>, Vec<CheckStatus>);
/// A reload that could not stop the scheduler: it runs on; the ids still running.
pub type StillRunning = (Scheduler, Vec<String>);

/// The statuses of the scheduled instances, readable while the scheduler runs.
pub type StatusBoard = Arc<Mutex<Vec<CheckStatus>>>;

struct Shared {
    checks: Vec<LoadedCheck>,
    status: StatusBoard,
    /// While set, the timer starts nothing (a reload waits for the running checks).
    paused: AtomicBool,
    stop: Mutex<bool>,
    wake: Condvar,
    table: Arc<RunTable>,
}

pub type ReportFn = dyn Fn(&RunReport) + Send + Sync;

pub struct Scheduler {
    shared: Arc<Shared>,
    timer: Option<JoinHandle<()>>,
    runners: Vec<JoinHandle<()>>,
    watchdog: Option<Watchdog>,
}

impl Scheduler {
    /// Starts scheduling `checks` right away (each runs once at start, then every interval),
    /// watched with the default [`WatchdogConfig`].
    pub fn start(
        checks: Vec<LoadedCheck>,
        check_runners: usize,
        on_report: Arc<ReportFn>,
    ) -> Scheduler {
        Self::start_watched(checks, check_runners, WatchdogConfig::default(), on_report)
    }

    /// [`Scheduler::start`] with the watchdog's limits given.
    pub fn start_watched(
        checks: Vec<LoadedCheck>,
        check_runners: usize,
        watchdog: WatchdogConfig,
        on_report: Arc<ReportFn>,
    ) -> Scheduler {
        Self::start_keeping(checks, check_runners, watchdog, on_report, Vec::new())
    }

    /// [`Scheduler::start_watched`], carrying on the status (runs, errors, totals) of the
    /// instances in `previous` that are scheduled again: a reload keeps their history.
    pub fn start_keeping(
        checks: Vec<LoadedCheck>,
        check_runners: usize,
        watchdog: WatchdogConfig,
        on_report: Arc<ReportFn>,
        previous: Vec<CheckStatus>,
    ) -> Scheduler {
        let check_runners = check_runners.max(1);
        let mut previous: std::collections::HashMap<String, CheckStatus> = previous
            .into_iter()
            .map(|s| (s.check_id.clone(), s))
            .collect();
        let status = checks
            .iter()
            .map(|c| {
                let mut s = previous.remove(&c.check_id).unwrap_or_default();
                s.name = c.name.clone();
                s.check_id = c.check_id.clone();
                s.config_file = c.config_file.clone();
                s.check_file = c.file.clone();
                s.interval_secs = c.instance.min_collection_interval_secs;
                s.running = false;
                s
            })
            .collect();
        let table = Arc::new(RunTable::new(check_runners, checks.len()));
        let infos = checks
            .iter()
            .map(|c| CheckInfo {
                check_id: c.check_id.clone(),
                interval: Duration::try_from_secs_f64(c.instance.min_collection_interval_secs)
                    .unwrap_or(Duration::ZERO),
            })
            .collect();
        let shared = Arc::new(Shared {
            checks,
            status: Arc::new(Mutex::new(status)),
            paused: AtomicBool::new(false),
            stop: Mutex::new(false),
            wake: Condvar::new(),
            table: table.clone(),
        });
        let (tx, rx) = mpsc::channel::<usize>();
        let rx = Arc::new(Mutex::new(rx));
        let runners = (0..check_runners)
            .map(|i| {
                let shared = shared.clone();
                let rx = rx.clone();
                let on_report = on_report.clone();
                std::thread::Builder::new()
                    .name(format!("check-runner-{i}"))
                    .spawn(move || runner_loop(i, &shared, &rx, &*on_report))
                    .expect("spawning a runner thread")
            })
            .collect();
        let timer = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("check-timer".into())
                .spawn(move || timer_loop(&shared, tx))
                .expect("spawning the timer thread")
        };
        // The agent runs on without it: it only reports.
        let watchdog = Watchdog::start(table, infos, watchdog)
            .inspect_err(|e| tracing::error!(error = %e, "the watchdog could not start"))
            .ok();
        Scheduler {
            shared,
            timer: Some(timer),
            runners,
            watchdog,
        }
    }

    pub fn statuses(&self) -> Vec<CheckStatus> {
        self.shared.status.lock().clone()
    }

    /// The ids of the instances running or queued to run.
    fn running_ids(&self) -> Vec<String> {
        let status = self.shared.status.lock();
        status
            .iter()
            .filter(|s| s.running)
            .map(|s| s.check_id.clone())
            .collect()
    }

    /// The live statuses, for readers on other threads (the local API).
    pub fn status_board(&self) -> StatusBoard {
        self.shared.status.clone()
    }

    /// Stops for a reload without abandoning a run: starts nothing new, waits up to `wait` for
    /// the running (and queued) checks, then stops and hands back every check with its
    /// status. When some check is still running after `wait`, scheduling resumes and the
    /// scheduler comes back as the error, with the ids of the checks still running.
    pub fn stop_for_reload(mut self, wait: Duration) -> Result<Stopped, StillRunning> {
        self.shared.paused.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + wait;
        loop {
            let running = self.running_ids();
            if running.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                self.shared.paused.store(false, Ordering::SeqCst);
                self.shared.wake.notify_all();
                return Err((self, running));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        *self.shared.stop.lock() = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.timer.take() {
            let _ = t.join();
        }
        for r in self.runners.drain(..) {
            let _ = r.join();
        }
        if let Some(w) = self.watchdog.take() {
            w.stop();
        }
        let shared = std::mem::replace(&mut self.shared, Arc::new(Shared::empty()));
        match Arc::try_unwrap(shared) {
            Ok(shared) => {
                let status = shared.status.lock().clone();
                Ok((shared.checks, status))
            }
            // Every thread holding it has been joined.
            Err(_) => unreachable!("scheduler threads joined"),
        }
    }

    /// Stops scheduling and waits up to `grace` for running checks to finish. Returns the ids
    /// of checks still running after that.
    pub fn stop(mut self, grace: Duration) -> Vec<String> {
        *self.shared.stop.lock() = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.timer.take() {
            let _ = t.join();
        }
        // Watching on through the grace period: a check that will not stop is still named.
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline && self.shared.status.lock().iter().any(|s| s.running) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let still = self.running_ids();
        if still.is_empty() {
            for r in self.runners.drain(..) {
                let _ = r.join();
            }
        }
        if let Some(w) = self.watchdog.take() {
            w.stop();
        }
        still
    }
}

impl Shared {
    fn empty() -> Shared {
        Shared {
            checks: Vec::new(),
            status: Default::default(),
            paused: AtomicBool::new(false),
            stop: Mutex::new(true),
            wake: Condvar::new(),
            table: Arc::new(RunTable::new(0, 0)),
        }
    }
}

fn timer_loop(shared: &Shared, tx: mpsc::Sender<usize>) {
    let now = Instant::now();
    let mut due: BinaryHeap<Reverse<(Instant, usize)>> = (0..shared.checks.len())
        .map(|i| Reverse((now, i)))
        .collect();
    let mut stop = shared.stop.lock();
    while !*stop {
        let Some(Reverse((at, i))) = due.peek().copied() else {
            shared.wake.wait(&mut stop);
            continue;
        };
        let now = Instant::now();
        if at > now {
            shared.wake.wait_for(&mut stop, at - now);
            continue;
        }
        due.pop();
        let interval = Duration::from_secs_f64(
            shared.checks[i]
                .instance
                .min_collection_interval_secs
                .max(0.001),
        );
        // Next tick keeps the cadence; a late timer never queues a burst of catch-up runs.
        let mut next = at + interval;
        if next <= now {
            next = now + interval;
        }
        due.push(Reverse((next, i)));
        if shared.paused.load(Ordering::SeqCst) {
            continue;
        }
        let mut status = shared.status.lock();
        if status[i].running {
            tracing::debug!(check_id = %status[i].check_id, "still running; tick skipped");
            continue;
        }
        status[i].running = true;
        drop(status);
        shared.table.queued(i);
        if tx.send(i).is_err() {
            break;
        }
    }
}

fn runner_loop(
    runner: usize,
    shared: &Shared,
    rx: &Mutex<mpsc::Receiver<usize>>,
    on_report: &ReportFn,
) {
    crash_record::set_thread_slot(1 + runner);
    shared.table.runner_thread_started(runner);
    loop {
        let job = rx.lock().recv();
        let Ok(i) = job else { return };
        shared.table.dequeued(i);
        if *shared.stop.lock() {
            // Queued before the stop: not started, so nothing to finish.
            shared.status.lock()[i].running = false;
            continue;
        }
        let check = &shared.checks[i];
        // statm before and after: a few µs per run, for the memory guard's "grew by" figure.
        let rss_before = watchdog::rss_bytes().unwrap_or(0);
        shared.table.run_started(runner, i, rss_before);
        crash_record::slot_start(&check.check_id, false);
        // Taking the GIL once here, before the run takes it again, tells the watchdog that
        // this run got it: a run stuck before this point only waits for a GIL held elsewhere.
        let before = check.ctx.metrics.lock().counters();
        let report = pyo3::Python::attach(|py| {
            shared.table.entered_python(runner);
            py.detach(|| run_once(check))
        });
        crash_record::slot_end();
        let end = shared
            .table
            .run_ended(runner, i, watchdog::rss_bytes().unwrap_or(rss_before));
        if end.was_reported {
            tracing::warn!(
                check_id = %check.check_id,
                running_secs = end.elapsed.as_secs(),
                "check {} finished after {} s (it had been reported running past its limit)",
                check.check_id,
                end.elapsed.as_secs()
            );
        }
        let after = check.ctx.metrics.lock().counters();
        let last_run = SubmittedCounts {
            metric_samples: after.metric_samples.saturating_sub(before.metric_samples),
            events: after.events.saturating_sub(before.events),
            service_checks: after.service_checks.saturating_sub(before.service_checks),
            logs: report.logs.processed,
        };
        {
            let mut status = shared.status.lock();
            let s = &mut status[i];
            s.running = false;
            s.runs += 1;
            s.errors += report.error.is_some() as u64;
            s.warning_runs += (report.error.is_none() && !report.warnings.is_empty()) as u64;
            s.last_run_at = Some(report.started_at);
            let secs = report.duration.as_secs_f64();
            s.last_duration_ms = Some(secs * 1000.0);
            s.total_duration_ms += secs * 1000.0;
            let bucket = DURATION_BUCKETS_SECS
                .iter()
                .position(|le| secs <= *le)
                .unwrap_or(DURATION_BUCKETS_SECS.len());
            s.duration_buckets[bucket] += 1;
            s.last_error = report.error.clone();
            s.last_warnings = report.warnings.clone();
            s.logs_processed += report.logs.processed;
            s.last_run = last_run;
            s.total.metric_samples += last_run.metric_samples;
            s.total.events += last_run.events;
            s.total.service_checks += last_run.service_checks;
            s.total.logs += last_run.logs;
            for (k, v) in &report.submissions.metadata {
                s.metadata.insert(k.clone(), v.clone());
            }
        }
        if let Some(e) = &report.error {
            tracing::warn!(check_id = %report.check_id, error = %e.message, "check run failed");
        }
        on_report(&report);
    }
}
