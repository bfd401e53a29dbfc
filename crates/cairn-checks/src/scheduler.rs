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
use std::collections::BinaryHeap;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::{Condvar, Mutex};

use crate::crash_record;
use crate::loader::LoadedCheck;
use crate::run::{run_once, RunError, RunReport};
use crate::watchdog::{self, CheckInfo, RunTable, Watchdog, WatchdogConfig};

/// What the scheduler knows about one instance, for status.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CheckStatus {
    pub name: String,
    pub check_id: String,
    pub interval_secs: f64,
    pub runs: u64,
    pub errors: u64,
    pub running: bool,
    #[serde(skip)]
    pub last_run_at: Option<SystemTime>,
    pub last_duration_ms: Option<f64>,
    pub last_error: Option<RunError>,
    pub last_warnings: Vec<String>,
    pub logs_processed: u64,
}

struct Shared {
    checks: Vec<LoadedCheck>,
    status: Mutex<Vec<CheckStatus>>,
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
        let check_runners = check_runners.max(1);
        let status = checks
            .iter()
            .map(|c| CheckStatus {
                name: c.name.clone(),
                check_id: c.check_id.clone(),
                interval_secs: c.instance.min_collection_interval_secs,
                ..Default::default()
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
            status: Mutex::new(status),
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
        let still: Vec<String> = self
            .shared
            .status
            .lock()
            .iter()
            .filter(|s| s.running)
            .map(|s| s.check_id.clone())
            .collect();
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
        {
            let mut status = shared.status.lock();
            let s = &mut status[i];
            s.running = false;
            s.runs += 1;
            s.errors += report.error.is_some() as u64;
            s.last_run_at = Some(report.started_at);
            s.last_duration_ms = Some(report.duration.as_secs_f64() * 1000.0);
            s.last_error = report.error.clone();
            s.last_warnings = report.warnings.clone();
            s.logs_processed += report.logs.processed;
        }
        if let Some(e) = &report.error {
            tracing::warn!(check_id = %report.check_id, error = %e.message, "check run failed");
        }
        on_report(&report);
    }
}
