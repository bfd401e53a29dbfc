//! Runs every instance each `min_collection_interval`, at most `check_runners` at a time.
//!
//! One timer thread decides what is due; a pool of runner threads runs checks. An instance
//! still running when it falls due again is skipped for that tick, so a slow check occupies one
//! runner and delays nobody else.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::{Condvar, Mutex};

use crate::loader::LoadedCheck;
use crate::run::{run_once, RunError, RunReport};

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
}

pub type ReportFn = dyn Fn(&RunReport) + Send + Sync;

pub struct Scheduler {
    shared: Arc<Shared>,
    timer: Option<JoinHandle<()>>,
    runners: Vec<JoinHandle<()>>,
}

impl Scheduler {
    /// Starts scheduling `checks` right away (each runs once at start, then every interval).
    pub fn start(
        checks: Vec<LoadedCheck>,
        check_runners: usize,
        on_report: Arc<ReportFn>,
    ) -> Scheduler {
        let status = checks
            .iter()
            .map(|c| CheckStatus {
                name: c.name.clone(),
                check_id: c.check_id.clone(),
                interval_secs: c.instance.min_collection_interval_secs,
                ..Default::default()
            })
            .collect();
        let shared = Arc::new(Shared {
            checks,
            status: Mutex::new(status),
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        let (tx, rx) = mpsc::channel::<usize>();
        let rx = Arc::new(Mutex::new(rx));
        let runners = (0..check_runners.max(1))
            .map(|i| {
                let shared = shared.clone();
                let rx = rx.clone();
                let on_report = on_report.clone();
                std::thread::Builder::new()
                    .name(format!("check-runner-{i}"))
                    .spawn(move || runner_loop(&shared, &rx, &*on_report))
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
        Scheduler {
            shared,
            timer: Some(timer),
            runners,
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
        if tx.send(i).is_err() {
            break;
        }
    }
}

fn runner_loop(shared: &Shared, rx: &Mutex<mpsc::Receiver<usize>>, on_report: &ReportFn) {
    loop {
        let job = rx.lock().recv();
        let Ok(i) = job else { return };
        if *shared.stop.lock() {
            // Queued before the stop: not started, so nothing to finish.
            shared.status.lock()[i].running = false;
            continue;
        }
        let report = run_once(&shared.checks[i]);
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
