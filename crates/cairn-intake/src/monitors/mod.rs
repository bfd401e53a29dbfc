//! Log monitors evaluated on the local store (issue 12): Datadog's Monitors API shape, a
//! `monitors.yaml` reloaded on change, states per group kept in the store, notifications to
//! the agent log and to webhooks.
//!
//! Evaluation runs on its own task, each round in `spawn_blocking` on a read connection of its
//! own (WAL readers never block the writer) and writes states and transitions through a
//! connection of its own with a busy timeout (as saved views do): a round writes a few rows a
//! minute, and the ingest writer's group commit knows only logs and metrics. Nothing here is
//! on the ingest path.

pub mod client;
pub mod config;
pub mod eval;
mod http;
pub mod notify;
pub mod query;
pub mod state;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use serde::Serialize;

pub use config::{ConfigError, Monitor, MonitorSpec, MonitorsFile, WebhookSpec};
pub use http::routes;
pub use state::State;

use crate::IntakeError;
use notify::{Notification, Notifier, TemplateCtx};
use state::GroupState;

/// How often the file's modification time is looked at.
const POLL_EVERY: Duration = Duration::from_secs(2);
const BUSY_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Default)]
pub struct MonitorCounters {
    pub rounds: AtomicU64,
    pub evaluations: AtomicU64,
    pub errors: AtomicU64,
    pub transitions: AtomicU64,
    pub last_round_ms: AtomicU64,
    pub reload_errors: AtomicU64,
}

/// How the monitors run; built from `IntakeConfig`.
#[derive(Debug, Clone)]
pub struct MonitorsConfig {
    pub file: PathBuf,
    pub db: PathBuf,
    pub interval: Duration,
    /// The first webhook retry waits this long, then twice as long each time.
    pub first_backoff: Duration,
}

/// The monitors of one intake.
pub struct Monitors {
    cfg: MonitorsConfig,
    file: RwLock<Arc<MonitorsFile>>,
    /// The modification time and length of the file last loaded.
    stamp: Mutex<Option<(SystemTime, u64)>>,
    /// Why the file on disk is not the monitors in effect (a reload refused it).
    load_error: Mutex<Option<String>>,
    /// API writes read, change and rewrite the file one at a time.
    write_lock: tokio::sync::Mutex<()>,
    /// The round's connections; one round at a time.
    engine: Mutex<Option<Engine>>,
    notifier: Notifier,
    pub counters: MonitorCounters,
    stop: tokio::sync::watch::Sender<bool>,
}

struct Engine {
    reader: Connection,
    writer: Connection,
}

/// One group as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct GroupView {
    pub name: String,
    pub status: State,
    pub value: Option<f64>,
    pub last_triggered_ts: Option<i64>,
    pub last_nodata_ts: Option<i64>,
    pub since_ts: i64,
    pub last_eval_ts: i64,
    pub muted: bool,
}

/// What one round did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RoundReport {
    pub now_ms: i64,
    pub monitors: usize,
    pub errors: usize,
    pub transitions: Vec<TransitionView>,
    pub notifications: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct TransitionView {
    pub monitor_id: i64,
    pub group: String,
    pub from: State,
    pub to: State,
    pub value: Option<f64>,
}

/// `cairn status`'s view: counts by state and each monitor group that is not OK.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct Summary {
    pub monitors: usize,
    pub ok: usize,
    pub warn: usize,
    pub alert: usize,
    pub no_data: usize,
    pub muted: usize,
    pub not_ok: Vec<NotOk>,
    pub last_round_ms: u64,
    pub notifications_sent: u64,
    pub notifications_failed: u64,
    pub notifications_dropped: u64,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct NotOk {
    pub id: i64,
    pub name: String,
    pub group: String,
    pub state: String,
    pub value: Option<f64>,
}

fn open_rw(db: &Path) -> Result<Connection, IntakeError> {
    let sqlite = |source| IntakeError::Sqlite {
        path: db.to_owned(),
        source,
    };
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW,
    )
    .map_err(sqlite)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite)?;
    Ok(conn)
}

fn file_stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

impl Monitors {
    /// Loads the file (a bad one is refused, naming file, monitor and field), creates the
    /// state tables and starts the notifier, the evaluation loop and the file watcher on the
    /// current runtime.
    pub async fn start(cfg: MonitorsConfig) -> Result<Arc<Monitors>, IntakeError> {
        let c = cfg.clone();
        let (file, stamp, engine) = tokio::task::spawn_blocking(move || {
            let stamp = file_stamp(&c.file);
            let file = config::load(&c.file)?;
            let writer = open_rw(&c.db)?;
            state::init_schema(&writer).map_err(|source| IntakeError::Sqlite {
                path: c.db.clone(),
                source,
            })?;
            let reader =
                crate::store::open_reader(&c.db).map_err(|source| IntakeError::Sqlite {
                    path: c.db.clone(),
                    source,
                })?;
            Ok::<_, IntakeError>((file, stamp, Engine { reader, writer }))
        })
        .await
        .map_err(|e| IntakeError::QueryPanicked(e.to_string()))??;
        let (stop, _) = tokio::sync::watch::channel(false);
        let n = file.monitors.len();
        let m = Arc::new(Monitors {
            notifier: Notifier::start(cfg.first_backoff),
            cfg,
            file: RwLock::new(Arc::new(file)),
            stamp: Mutex::new(stamp),
            load_error: Mutex::new(None),
            write_lock: tokio::sync::Mutex::new(()),
            engine: Mutex::new(Some(engine)),
            counters: MonitorCounters::default(),
            stop,
        });
        tracing::info!(monitors = n, file = %m.cfg.file.display(), interval_secs = m.cfg.interval.as_secs(), "monitors loaded");
        m.clone().spawn_loops();
        Ok(m)
    }

    fn spawn_loops(self: Arc<Self>) {
        let me = self.clone();
        let mut stopped = self.stop.subscribe();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(me.cfg.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // The first tick is immediate; the first round waits one interval, so states are
            // not judged on a store still receiving the logs of the last minutes.
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => return,
                }
                if let Err(e) = me.evaluate_at(crate::timefmt::now_ms()).await {
                    tracing::warn!(error = %e, "monitor round failed");
                }
            }
        });
        let me = self;
        let mut stopped = me.stop.subscribe();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(POLL_EVERY);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => return,
                }
                let m = me.clone();
                let _ = tokio::task::spawn_blocking(move || m.reload_if_changed()).await;
            }
        });
    }

    /// Stops the loops (deliveries in flight are abandoned with the runtime).
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    pub fn file(&self) -> Arc<MonitorsFile> {
        self.file.read().expect("monitors lock").clone()
    }

    /// Why the file on disk could not be applied, while the previous monitors stay in effect.
    pub fn load_error(&self) -> Option<String> {
        self.load_error.lock().expect("load error lock").clone()
    }

    pub fn notify_counters(&self) -> &notify::NotifyCounters {
        &self.notifier.counters
    }

    /// Reloads the file when its time or length changed; a bad file keeps the monitors as
    /// they were (logged at error: the operator's change is not in effect).
    fn reload_if_changed(&self) {
        let now = file_stamp(&self.cfg.file);
        {
            let mut stamp = self.stamp.lock().expect("stamp lock");
            if *stamp == now {
                return;
            }
            *stamp = now;
        }
        match config::load(&self.cfg.file) {
            Ok(f) => {
                let n = f.monitors.len();
                *self.file.write().expect("monitors lock") = Arc::new(f);
                *self.load_error.lock().expect("load error lock") = None;
                tracing::info!(monitors = n, file = %self.cfg.file.display(), "monitors reloaded");
            }
            Err(e) => {
                self.counters.reload_errors.fetch_add(1, Ordering::Relaxed);
                *self.load_error.lock().expect("load error lock") = Some(e.to_string());
                tracing::error!(error = %e, "monitors file not reloaded; the previous monitors stay in effect");
            }
        }
    }

    /// One round at `now_ms`: every monitor evaluated, transitions stored and notified.
    pub async fn evaluate_at(self: &Arc<Self>, now_ms: i64) -> Result<RoundReport, IntakeError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.round(now_ms))
            .await
            .map_err(|e| IntakeError::QueryPanicked(e.to_string()))?
    }

    fn round(&self, now_ms: i64) -> Result<RoundReport, IntakeError> {
        let started = std::time::Instant::now();
        let file = self.file();
        let mut guard = self.engine.lock().expect("engine lock");
        let engine = guard.as_mut().ok_or(IntakeError::WriterGone)?;
        let db = self.cfg.db.clone();
        let sqlite = |source| IntakeError::Sqlite {
            path: db.clone(),
            source,
        };
        let mut known = state::load_all(&engine.writer).map_err(sqlite)?;
        let hooks: HashMap<String, WebhookSpec> = file
            .webhooks
            .iter()
            .map(|w| (w.name.clone(), w.clone()))
            .collect();
        let mut report = RoundReport {
            now_ms,
            monitors: file.monitors.len(),
            ..RoundReport::default()
        };
        // Decide every monitor on the reader first, then write all in one transaction.
        let mut decided = Vec::with_capacity(file.monitors.len());
        for m in &file.monitors {
            let groups = known.remove(&m.id).unwrap_or_default();
            match eval::evaluate(&engine.reader, m, &groups, now_ms) {
                Ok(outcomes) => decided.push((m, groups, outcomes)),
                Err(e) => {
                    report.errors += 1;
                    self.counters.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(monitor_id = m.id, monitor = %m.spec.name, error = %e, "monitor evaluation failed");
                }
            }
        }
        let mut notes: Vec<(Notification, Vec<WebhookSpec>)> = Vec::new();
        let tx = engine
            .writer
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite)?;
        for (m, groups, outcomes) in decided {
            for o in outcomes {
                let prev = groups.get(&o.group);
                let changed = o.from != o.to;
                let mut s = prev.cloned().unwrap_or(GroupState {
                    state: State::Ok,
                    value: None,
                    since_ms: now_ms,
                    last_notified_ms: None,
                    last_eval_ms: now_ms,
                    last_triggered_ms: None,
                    last_data_ms: None,
                    renotified: 0,
                });
                if o.has_data {
                    s.last_data_ms = Some(now_ms);
                }
                s.value = o
                    .value
                    .or(if o.to == State::NoData { None } else { s.value });
                s.last_eval_ms = now_ms;
                let muted = m.muted(&o.group, now_ms);
                let mut renotify = false;
                if changed {
                    state::record(&tx, m.id, &o.group, o.from, o.to, o.value, now_ms)
                        .map_err(sqlite)?;
                    s.state = o.to;
                    s.since_ms = now_ms;
                    s.last_notified_ms = Some(now_ms);
                    s.renotified = 0;
                    if o.to != State::Ok {
                        s.last_triggered_ms = Some(now_ms);
                    }
                    report.transitions.push(TransitionView {
                        monitor_id: m.id,
                        group: o.group.clone(),
                        from: o.from,
                        to: o.to,
                        value: o.value,
                    });
                    self.counters.transitions.fetch_add(1, Ordering::Relaxed);
                } else if let Some(every) = m.spec.options.renotify_interval.filter(|r| *r > 0) {
                    let due = s
                        .last_notified_ms
                        .is_none_or(|t| now_ms - t >= every * 60_000);
                    let more = m
                        .spec
                        .options
                        .renotify_occurrences
                        .is_none_or(|n| s.renotified < n);
                    if m.renotifies(s.state) && due && more {
                        renotify = true;
                        s.last_notified_ms = Some(now_ms);
                        s.renotified += 1;
                    }
                }
                // The placeholder group of a grouped monitor recovers like any group (so its
                // No Data is resolved and told), then is no longer tracked.
                if o.remove {
                    state::remove_group(&tx, m.id, &o.group).map_err(sqlite)?;
                } else {
                    state::upsert(&tx, m.id, &o.group, &s).map_err(sqlite)?;
                }
                // `show_no_data`: No Data is shown and kept in the history, but neither it
                // nor the way back to OK is sent anywhere.
                let unnotified = matches!(
                    m.missing_data(),
                    config::MissingData::NoData { notify: false, .. }
                ) && (o.to == State::NoData
                    || o.from == State::NoData && o.to == State::Ok);
                let told = (changed || renotify).then(|| notification(m, &o, &s, renotify, now_ms));
                if let Some(n) = told.as_ref() {
                    // The agent log is a notification target of its own, so it has the message.
                    log_transition(m, &o, renotify, muted, &n.message);
                }
                if let Some(n) = told.filter(|_| !unnotified) {
                    if muted {
                        self.notifier
                            .counters
                            .suppressed_muted
                            .fetch_add(1, Ordering::Relaxed);
                    } else {
                        // A re-notification also tells the escalation message's webhooks.
                        let names = if renotify {
                            notify::webhook_names(&m.spec.notified_text())
                        } else {
                            notify::webhook_names(&m.spec.message)
                        };
                        let targets = notify::resolve_hooks(&names, &hooks, m.id);
                        if !targets.is_empty() {
                            report.notifications += 1;
                            notes.push((n, targets));
                        }
                    }
                }
            }
        }
        // States of monitors that no longer exist.
        for id in known.keys() {
            state::forget(&tx, *id).map_err(sqlite)?;
        }
        state::trim_history(&tx, now_ms).map_err(sqlite)?;
        tx.commit().map_err(sqlite)?;
        drop(guard);
        // Queued only once the transitions are stored: a notification never tells of a state
        // the store does not hold.
        for (n, targets) in notes {
            self.notifier.send(n, targets);
        }
        self.counters.rounds.fetch_add(1, Ordering::Relaxed);
        self.counters
            .evaluations
            .fetch_add(report.monitors as u64, Ordering::Relaxed);
        self.counters
            .last_round_ms
            .store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        Ok(report)
    }

    /// The value per group of monitor `id` at `now_ms` and the state each would be in; no
    /// state is written.
    pub async fn preview(
        self: &Arc<Self>,
        id: i64,
        now_ms: i64,
    ) -> Result<serde_json::Value, IntakeError> {
        let m = self
            .find(id)
            .ok_or_else(|| IntakeError::NotFound(format!("no monitor {id}")))?;
        let db = self.cfg.db.clone();
        tokio::task::spawn_blocking(move || {
            let sqlite = |source| IntakeError::Sqlite {
                path: db.clone(),
                source,
            };
            let conn = crate::store::open_reader(&db).map_err(sqlite)?;
            let known = state::load_all(&conn)
                .map_err(sqlite)?
                .remove(&m.id)
                .unwrap_or_default();
            let outcomes = eval::evaluate(&conn, &m, &known, now_ms)?;
            let groups: Vec<serde_json::Value> = outcomes
                .iter()
                .filter(|o| !o.remove)
                .map(|o| {
                    serde_json::json!({
                        "group": o.group,
                        "value": o.value,
                        "state": o.to,
                        "current_state": o.from,
                    })
                })
                .collect();
            Ok(serde_json::json!({
                "monitor_id": m.id,
                "name": m.spec.name,
                "query": m.spec.query,
                "now_ms": now_ms,
                "threshold": m.critical(),
                "groups": groups,
            }))
        })
        .await
        .map_err(|e| IntakeError::QueryPanicked(e.to_string()))?
    }

    pub fn find(&self, id: i64) -> Option<Monitor> {
        self.file().monitors.iter().find(|m| m.id == id).cloned()
    }

    /// Group states of every monitor, read on a fresh reader.
    pub async fn states(
        self: &Arc<Self>,
    ) -> Result<HashMap<i64, HashMap<String, GroupState>>, IntakeError> {
        let db = self.cfg.db.clone();
        tokio::task::spawn_blocking(move || {
            let sqlite = |source| IntakeError::Sqlite {
                path: db.clone(),
                source,
            };
            let conn = crate::store::open_reader(&db).map_err(sqlite)?;
            state::load_all(&conn).map_err(sqlite)
        })
        .await
        .map_err(|e| IntakeError::QueryPanicked(e.to_string()))?
    }

    pub async fn history(
        self: &Arc<Self>,
        id: i64,
        limit: u32,
    ) -> Result<Vec<state::HistoryRow>, IntakeError> {
        if self.find(id).is_none() {
            return Err(IntakeError::NotFound(format!("no monitor {id}")));
        }
        let db = self.cfg.db.clone();
        tokio::task::spawn_blocking(move || {
            let sqlite = |source| IntakeError::Sqlite {
                path: db.clone(),
                source,
            };
            let conn = crate::store::open_reader(&db).map_err(sqlite)?;
            state::history(&conn, id, limit).map_err(sqlite)
        })
        .await
        .map_err(|e| IntakeError::QueryPanicked(e.to_string()))?
    }

    /// Changes the monitors with `change`, rewrites the file atomically and puts the result in
    /// effect; `change` returns what the caller answers.
    pub async fn modify<T: Send + 'static>(
        self: &Arc<Self>,
        change: impl FnOnce(&mut MonitorsFile) -> Result<T, IntakeError> + Send + 'static,
    ) -> Result<T, IntakeError> {
        let _one_writer = self.write_lock.lock().await;
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut file = (*me.file()).clone();
            let out = change(&mut file)?;
            config::write_atomic(&me.cfg.file, &file)
                .map_err(|e| IntakeError::BadRequest(e.to_string()))?;
            // The watcher must not reload what was just written (it would be the same).
            *me.stamp.lock().expect("stamp lock") = file_stamp(&me.cfg.file);
            *me.file.write().expect("monitors lock") = Arc::new(file);
            // The file on disk is now the monitors in effect.
            *me.load_error.lock().expect("load error lock") = None;
            Ok(out)
        })
        .await
        .map_err(|e| IntakeError::QueryPanicked(e.to_string()))?
    }

    /// Deletes the states and history of a deleted monitor.
    pub async fn forget(self: &Arc<Self>, id: i64) -> Result<(), IntakeError> {
        let db = self.cfg.db.clone();
        tokio::task::spawn_blocking(move || {
            let conn = open_rw(&db)?;
            state::forget(&conn, id).map_err(|source| IntakeError::Sqlite { path: db, source })
        })
        .await
        .map_err(|e| IntakeError::QueryPanicked(e.to_string()))?
    }

    pub async fn summary(self: &Arc<Self>) -> Result<Summary, IntakeError> {
        let file = self.file();
        let states = self.states().await?;
        let now = crate::timefmt::now_ms();
        let mut s = Summary {
            monitors: file.monitors.len(),
            last_round_ms: self.counters.last_round_ms.load(Ordering::Relaxed),
            notifications_sent: self.notifier.counters.sent.load(Ordering::Relaxed),
            notifications_failed: self.notifier.counters.failed.load(Ordering::Relaxed),
            notifications_dropped: self.notifier.counters.dropped.load(Ordering::Relaxed),
            ..Summary::default()
        };
        for m in &file.monitors {
            let groups = states.get(&m.id);
            let overall = overall_state(groups);
            match overall {
                State::Ok => s.ok += 1,
                State::Warn => s.warn += 1,
                State::Alert => s.alert += 1,
                State::NoData => s.no_data += 1,
            }
            if m.muted("*", now) {
                s.muted += 1;
            }
            let mut bad: Vec<(&String, &GroupState)> = groups
                .map(|g| g.iter().filter(|(_, st)| st.state != State::Ok).collect())
                .unwrap_or_default();
            bad.sort_by(|a, b| {
                b.1.state
                    .severity()
                    .cmp(&a.1.state.severity())
                    .then(a.0.cmp(b.0))
            });
            for (g, st) in bad {
                s.not_ok.push(NotOk {
                    id: m.id,
                    name: m.spec.name.clone(),
                    group: g.clone(),
                    state: st.state.as_str().into(),
                    value: st.value,
                });
            }
        }
        Ok(s)
    }
}

pub fn overall_state(groups: Option<&HashMap<String, GroupState>>) -> State {
    groups
        .into_iter()
        .flat_map(|g| g.values())
        .map(|s| s.state)
        .max_by_key(|s| s.severity())
        .unwrap_or(State::Ok)
}

fn transition_name(o: &eval::Outcome, renotify: bool) -> &'static str {
    if renotify {
        return "Renotify";
    }
    match o.to {
        State::Alert => "Triggered",
        State::Warn => "Warn",
        State::NoData => "No Data",
        State::Ok => "Recovered",
    }
}

fn log_transition(m: &Monitor, o: &eval::Outcome, renotify: bool, muted: bool, message: &str) {
    let value = o.value.map(eval::number_text).unwrap_or_default();
    let what = transition_name(o, renotify);
    let message = message.trim();
    if o.to == State::Alert && !muted {
        tracing::warn!(monitor_id = m.id, monitor = %m.spec.name, group = %o.group, from = %o.from, to = %o.to, value = %value, transition = what, notification = message, "monitor alert");
    } else {
        tracing::info!(monitor_id = m.id, monitor = %m.spec.name, group = %o.group, from = %o.from, to = %o.to, value = %value, transition = what, muted, notification = message, "monitor state changed");
    }
}

fn notification(
    m: &Monitor,
    o: &eval::Outcome,
    s: &GroupState,
    renotify: bool,
    now_ms: i64,
) -> Notification {
    let t = &m.spec.options.thresholds;
    let ctx = TemplateCtx {
        value: o.value,
        threshold: m.critical(),
        warn_threshold: t.warning,
        group: &o.group,
        group_values: &o.values,
        query: &m.spec.query,
        monitor_name: &m.spec.name,
        monitor_id: m.id,
        from: o.from,
        to: o.to,
        renotify,
        priority: m.spec.priority,
    };
    Notification {
        monitor_id: m.id,
        monitor_name: m.spec.name.clone(),
        group: o.group.clone(),
        transition: transition_name(o, renotify).into(),
        from: o.from,
        to: o.to,
        value: o.value,
        threshold: m.critical(),
        warning_threshold: t.warning,
        query: m.spec.query.clone(),
        message: match m.spec.options.escalation_message.as_deref() {
            Some(e) if renotify && !e.trim().is_empty() => format!(
                "{}\n\n{}",
                notify::render(&m.spec.message, &ctx),
                notify::render(e, &ctx)
            ),
            _ => notify::render(&m.spec.message, &ctx),
        },
        priority: m.spec.priority,
        tags: m.spec.tags.clone(),
        date_ms: now_ms,
        date: crate::timefmt::format_rfc3339_ms(now_ms),
        since_ms: s.since_ms,
        is_renotify: renotify,
        muted: false,
    }
}
