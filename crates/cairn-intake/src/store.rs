//! The SQLite store: one writer thread fed by a channel, a small pool of read connections.
//!
//! Layout: `logs` holds the reserved fields as columns, tags as `,k:v,` text and the other
//! attributes as JSON; `logs_fts` is a contentless FTS5 index of `message`; `rollup` counts logs
//! per minute × service × source × status, kept exact by the same transactions that add and
//! remove logs, so facet counts and volume charts over those fields never scan logs. Host is
//! left out: it multiplies the rollup's rows by the number of hosts.
//!
//! Attributes (issue 11): `attr_paths` lists every leaf path seen with how many stored logs
//! hold it as a number, string, boolean or other (never a value), so that listing them is a
//! read of a small table. `attr_measure` keeps the JSON numbers of each path per minute ×
//! service × source × status: count, sum, min and max as columns and the values themselves as
//! a blob of little-endian f64 (split into parts of [`MEASURE_PART`] values so that a commit
//! rewrites at most one part per key). Measures, percentiles, `@path` range filters and facets
//! of numeric paths over whole minutes read those rows instead of parsing every log's JSON.
//! `attr_values` counts the short text values of each path per minute × service × source ×
//! status, for text facets (the host and each tag too, as the paths [`HOST_PATH`] and
//! [`TAGS_PATH`]), until a path passes [`MAX_PATH_VALUES`] distinct values or holds
//! a longer one (then its rows go and its facet scans). All three are kept exact by the
//! transactions that add and delete logs, like `rollup`.
//!
//! Metrics, service checks and events (issue 9) live in the same file and go through the same
//! writer: `metric_contexts` (one row per name × host × device × tag set) and `metric_points`
//! (clustered by context and time), `service_checks` (history) with `service_check_latest`
//! (one row per check × host × tag set, kept by the same transactions), and `events`.

/// The writer's maps see every leaf of every log: foldhash costs a fraction of SipHash on
/// these short keys, and is seeded per process, so values a sender picks cannot be made to
/// collide on purpose.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::functions::FunctionFlags;
use rusqlite::{params, Connection, OpenFlags};
use tokio::sync::oneshot;

use crate::ingest::{leaves_of, LeafKind, NewLog};
use crate::metrics::ingest::{NewEvent, NewSeries, NewServiceCheck};
use crate::query::glob_matches;
use crate::IntakeError;

pub const DB_FILE: &str = "intake.sqlite3";
pub const BUCKET_MS: i64 = 60_000;

/// Jobs are grouped into one transaction until they hold this many logs; one commit per group
/// is what makes a hundred small requests a second cheap.
const GROUP_COMMIT_LOGS: usize = 50_000;
/// Retention deletes in chunks so that ingestion waits at most one chunk.
const DELETE_CHUNK: usize = 20_000;
const IDLE_READERS: usize = 4;
/// Values per `attr_measure` row: a commit rewrites at most one part of 8 KiB per key.
pub const MEASURE_PART: usize = 1024;

/// What the store keeps, and for how long.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub data_dir: PathBuf,
    pub retention: Duration,
    pub max_size_bytes: u64,
    pub maintenance_every: Duration,
}

/// What one maintenance pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    pub deleted_by_age: u64,
    pub deleted_by_size: u64,
    /// Metric points, service checks and events deleted (by age or size).
    pub deleted_metric_rows: u64,
    pub used_bytes: u64,
}

/// Counters of the store, published once per group commit.
#[derive(Debug, Default)]
pub struct StoreCounters {
    pub logs_stored: AtomicU64,
    pub logs_truncated: AtomicU64,
    pub logs_deleted: AtomicU64,
}

enum Job {
    Append {
        logs: Vec<NewLog>,
        done: AppendDone,
    },
    Maintain {
        done: oneshot::Sender<MaintenanceReport>,
    },
    Metrics {
        batch: MetricsBatch,
        /// The id of the stored event, 0 for other batches.
        done: oneshot::Sender<Result<i64, String>>,
    },
}

/// What one metrics-side request stores.
pub enum MetricsBatch {
    Series(Vec<NewSeries>),
    ServiceChecks(Vec<NewServiceCheck>),
    Event(NewEvent),
}

impl MetricsBatch {
    /// Rows it adds, counted against a group commit like logs.
    fn rows(&self) -> usize {
        match self {
            MetricsBatch::Series(s) => s.iter().map(|s| s.points.len() + 1).sum(),
            MetricsBatch::ServiceChecks(c) => c.len(),
            MetricsBatch::Event(_) => 1,
        }
    }
}

pub struct Store {
    path: PathBuf,
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    readers: Mutex<Vec<Connection>>,
    pub counters: Arc<StoreCounters>,
}

/// Read-write, no symlinks (the database, its WAL and its shm file).
fn open_flags() -> rusqlite::OpenFlags {
    rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
        | rusqlite::OpenFlags::SQLITE_OPEN_CREATE
        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX
        | rusqlite::OpenFlags::SQLITE_OPEN_NOFOLLOW
}

impl Store {
    pub fn open(cfg: StoreConfig) -> Result<Arc<Store>, IntakeError> {
        let dir_err = |source| IntakeError::DataDir {
            path: cfg.data_dir.clone(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&cfg.data_dir)
            .map_err(dir_err)?;
        // Through a descriptor opened without following a symlink, and only if it is ours: a
        // planted link must not make a root agent chmod someone else's directory.
        let dir = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&cfg.data_dir)
            .map_err(dir_err)?;
        let meta = dir.metadata().map_err(dir_err)?;
        // SAFETY: geteuid has no preconditions.
        if std::os::unix::fs::MetadataExt::uid(&meta) != unsafe { libc::geteuid() } {
            return Err(dir_err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "owned by another user; refusing to keep the logs there",
            )));
        }
        if meta.permissions().mode() & 0o777 != 0o700 {
            dir.set_permissions(std::fs::Permissions::from_mode(0o700))
                .map_err(dir_err)?;
        }
        let path = cfg.data_dir.join(DB_FILE);
        // SQLite gives its -wal and -shm files the mode of the database file, so creating that
        // file 0600 first keeps all three private. Never through a symlink.
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|source| IntakeError::DataDir {
                path: path.clone(),
                source,
            })?;
        let sqlite_err = |source| IntakeError::Sqlite {
            path: path.clone(),
            source,
        };
        let conn = Connection::open_with_flags(&path, open_flags()).map_err(sqlite_err)?;
        init_schema(&conn).map_err(sqlite_err)?;
        // Checkpoints copy the WAL into the database and fsync it; done on the writer they
        // would stall every commit behind the disk, so a checkpointer thread does them.
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0;")
            .map_err(sqlite_err)?;
        conn.busy_timeout(Duration::from_secs(30))
            .map_err(sqlite_err)?;
        let checkpointer = Connection::open_with_flags(&path, open_flags()).map_err(sqlite_err)?;
        checkpointer
            .busy_timeout(Duration::from_secs(30))
            .map_err(sqlite_err)?;
        let counters = Arc::new(StoreCounters::default());
        let (tx, rx) = mpsc::channel();
        let (checkpoint_tx, checkpoint_rx) = mpsc::channel::<()>();
        let wal_path = cfg.data_dir.join(format!("{DB_FILE}-wal"));
        std::thread::Builder::new()
            .name("intake-checkpoint".into())
            .spawn(move || checkpoint_loop(checkpointer, wal_path, checkpoint_rx))
            .map_err(|e| IntakeError::DataDir {
                path: path.clone(),
                source: e,
            })?;
        let writer_counters = counters.clone();
        let writer = std::thread::Builder::new()
            .name("intake-writer".into())
            .spawn(move || writer_loop(conn, rx, cfg, writer_counters, checkpoint_tx))
            .map_err(|e| IntakeError::DataDir {
                path: path.clone(),
                source: e,
            })?;
        Ok(Arc::new(Store {
            path,
            jobs: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            readers: Mutex::new(Vec::new()),
            counters,
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn send(&self, job: Job) -> Result<(), IntakeError> {
        let jobs = self
            .jobs
            .lock()
            .expect("jobs lock is never held across a panic");
        jobs.as_ref()
            .ok_or(IntakeError::WriterGone)?
            .send(job)
            .map_err(|_| IntakeError::WriterGone)
    }

    /// Stores `logs` in one transaction; returns once they are committed.
    pub async fn append(&self, logs: Vec<NewLog>) -> Result<(), IntakeError> {
        let (done, wait) = oneshot::channel();
        self.send(Job::Append { logs, done })?;
        match wait.await {
            // The logs are dropped here, on the caller's thread.
            Ok((Ok(()), _logs)) => Ok(()),
            Ok((Err(reason), _logs)) => Err(IntakeError::BadRequest(reason)),
            Err(_) => Err(IntakeError::WriterGone),
        }
    }

    /// Stores series, service checks or an event in one transaction; returns once committed,
    /// with the event's id (0 otherwise).
    pub async fn append_metrics(&self, batch: MetricsBatch) -> Result<i64, IntakeError> {
        let (done, wait) = oneshot::channel();
        self.send(Job::Metrics { batch, done })?;
        match wait.await {
            Ok(Ok(id)) => Ok(id),
            Ok(Err(reason)) => Err(IntakeError::BadRequest(reason)),
            Err(_) => Err(IntakeError::WriterGone),
        }
    }

    /// Runs retention now rather than at the next tick.
    pub async fn maintain(&self) -> Result<MaintenanceReport, IntakeError> {
        let (done, wait) = oneshot::channel();
        self.send(Job::Maintain { done })?;
        wait.await.map_err(|_| IntakeError::WriterGone)
    }

    /// Stops the writer after the jobs already queued; later appends fail.
    pub fn close(&self) {
        drop(self.jobs.lock().expect("jobs lock").take());
        if let Some(handle) = self.writer.lock().expect("writer lock").take() {
            let _ = handle.join();
        }
    }

    /// Runs `f` on a read connection, off the async runtime.
    pub async fn read<T, F>(self: &Arc<Self>, f: F) -> Result<T, IntakeError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, IntakeError> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = store.take_reader()?;
            let out = f(&conn);
            let mut idle = store.readers.lock().expect("readers lock");
            if idle.len() < IDLE_READERS {
                idle.push(conn);
            }
            out
        })
        .await
        .map_err(|e| IntakeError::QueryPanicked(e.to_string()))?
    }

    fn take_reader(&self) -> Result<Connection, IntakeError> {
        if let Some(conn) = self.readers.lock().expect("readers lock").pop() {
            return Ok(conn);
        }
        open_reader(&self.path).map_err(|source| IntakeError::Sqlite {
            path: self.path.clone(),
            source,
        })
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.close();
    }
}

fn init_schema(conn: &Connection) -> rusqlite::Result<()> {
    create_tables(conn)?;
    Ok(())
}

fn create_tables(conn: &Connection) -> rusqlite::Result<()> {
    // page_size and auto_vacuum only take effect before the first table exists. Pages of
    // 16 KiB quarter the number of WAL frames (one write each) that a commit of full-text
    // segments produces; incremental vacuum lets retention hand freed pages back to the file
    // system.
    conn.execute_batch(
        "PRAGMA page_size = 16384;
         PRAGMA auto_vacuum = INCREMENTAL;
         PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA journal_size_limit = 67108864;
         PRAGMA cache_size = -65536;
         PRAGMA temp_store = MEMORY;
         CREATE TABLE IF NOT EXISTS logs (
             id INTEGER PRIMARY KEY,
             timestamp_ms INTEGER NOT NULL,
             status TEXT NOT NULL,
             host TEXT NOT NULL,
             service TEXT NOT NULL,
             source TEXT NOT NULL,
             message TEXT NOT NULL,
             tags TEXT NOT NULL,
             attributes TEXT
         );
         CREATE INDEX IF NOT EXISTS logs_by_time ON logs (timestamp_ms);
         CREATE INDEX IF NOT EXISTS logs_by_service ON logs (service, timestamp_ms);
         CREATE VIRTUAL TABLE IF NOT EXISTS logs_fts USING fts5 (
             message, content = '', contentless_delete = 1,
             tokenize = 'unicode61 remove_diacritics 2'
         );
         -- Each commit adds a small segment; merging them a few at a time on every commit (the
         -- default) made the index cost three times its insert. Left alone, FTS5 still merges a
         -- level once it holds 16 segments, in larger and cheaper steps.
         INSERT INTO logs_fts (logs_fts, rank) VALUES ('automerge', 0);
         CREATE TABLE IF NOT EXISTS rollup (
             bucket_ms INTEGER NOT NULL,
             service TEXT NOT NULL,
             source TEXT NOT NULL,
             status TEXT NOT NULL,
             count INTEGER NOT NULL,
             PRIMARY KEY (bucket_ms, service, source, status)
         ) WITHOUT ROWID;
         CREATE TABLE IF NOT EXISTS attr_paths (
             id INTEGER PRIMARY KEY,
             json_path TEXT NOT NULL UNIQUE,
             dotted TEXT NOT NULL,
             n_number INTEGER NOT NULL DEFAULT 0,
             n_string INTEGER NOT NULL DEFAULT 0,
             n_boolean INTEGER NOT NULL DEFAULT 0,
             n_other INTEGER NOT NULL DEFAULT 0,
             -- 1 once the path has had more than MAX_PATH_VALUES distinct text values or a
             -- longer one than ingest::MAX_VALUE_LEN: attr_values no longer holds it.
             values_capped INTEGER NOT NULL DEFAULT 0
         );
         -- Text values of each path per minute × service × source × status: a text facet's
         -- top values over whole minutes read these rows instead of every log's JSON.
         CREATE TABLE IF NOT EXISTS attr_values (
             path_id INTEGER NOT NULL,
             bucket_ms INTEGER NOT NULL,
             service TEXT NOT NULL,
             source TEXT NOT NULL,
             status TEXT NOT NULL,
             value TEXT NOT NULL,
             n INTEGER NOT NULL,
             PRIMARY KEY (path_id, bucket_ms, service, source, status, value)
         ) WITHOUT ROWID;
         -- A rowid table with a separate key: the value blobs (up to 8 KiB) would crowd the
         -- interior pages of a WITHOUT ROWID tree, which hold whole rows.
         CREATE TABLE IF NOT EXISTS attr_measure (
             path_id INTEGER NOT NULL,
             bucket_ms INTEGER NOT NULL,
             service TEXT NOT NULL,
             source TEXT NOT NULL,
             status TEXT NOT NULL,
             part INTEGER NOT NULL,
             n INTEGER NOT NULL,
             sum REAL NOT NULL,
             min REAL NOT NULL,
             max REAL NOT NULL,
             vals BLOB NOT NULL
         );
         CREATE UNIQUE INDEX IF NOT EXISTS attr_measure_key
             ON attr_measure (path_id, bucket_ms, service, source, status, part);
         -- A check may send 10,000 contexts every 15 s: a context is looked up once per series
         -- through its unique index, and its points are clustered by (context, time), so a
         -- query reads each matching context's range without touching other contexts.
         CREATE TABLE IF NOT EXISTS metric_contexts (
             id INTEGER PRIMARY KEY,
             name TEXT NOT NULL,
             type INTEGER NOT NULL,
             host TEXT NOT NULL,
             device TEXT NOT NULL,
             tags TEXT NOT NULL,
             unit TEXT NOT NULL,
             interval_s INTEGER NOT NULL,
             first_ts INTEGER NOT NULL,
             last_ts INTEGER NOT NULL,
             UNIQUE (name, host, device, tags)
         );
         CREATE INDEX IF NOT EXISTS metric_contexts_by_first ON metric_contexts (first_ts);
         CREATE INDEX IF NOT EXISTS metric_contexts_by_last ON metric_contexts (last_ts);
         CREATE TABLE IF NOT EXISTS metric_points (
             context_id INTEGER NOT NULL,
             ts_s INTEGER NOT NULL,
             value REAL NOT NULL,
             PRIMARY KEY (context_id, ts_s)
         ) WITHOUT ROWID;
         CREATE TABLE IF NOT EXISTS service_checks (
             id INTEGER PRIMARY KEY,
             check_name TEXT NOT NULL,
             host TEXT NOT NULL,
             tags TEXT NOT NULL,
             status INTEGER NOT NULL,
             message TEXT NOT NULL,
             ts_s INTEGER NOT NULL
         );
         CREATE INDEX IF NOT EXISTS service_checks_by_time ON service_checks (ts_s);
         CREATE TABLE IF NOT EXISTS service_check_latest (
             check_name TEXT NOT NULL,
             host TEXT NOT NULL,
             tags TEXT NOT NULL,
             status INTEGER NOT NULL,
             message TEXT NOT NULL,
             ts_s INTEGER NOT NULL,
             PRIMARY KEY (check_name, host, tags)
         ) WITHOUT ROWID;
         CREATE INDEX IF NOT EXISTS service_check_latest_by_time ON service_check_latest (ts_s);
         CREATE TABLE IF NOT EXISTS events (
             id INTEGER PRIMARY KEY,
             ts_s INTEGER NOT NULL,
             title TEXT NOT NULL,
             text TEXT NOT NULL,
             priority TEXT NOT NULL,
             host TEXT NOT NULL,
             tags TEXT NOT NULL,
             alert_type TEXT NOT NULL,
             aggregation_key TEXT NOT NULL,
             source_type_name TEXT NOT NULL
         );
         CREATE INDEX IF NOT EXISTS events_by_time ON events (ts_s);",
    )?;
    crate::views::init_schema(conn)
}

pub fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW,
    )?;
    conn.execute_batch(
        "PRAGMA cache_size = -32768; PRAGMA temp_store = MEMORY; PRAGMA mmap_size = 1073741824;",
    )?;
    register_functions(&conn)?;
    Ok(conn)
}

/// SQL functions over the `,k:v,` tag text, used by the query translation.
pub fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function("cairn_tag_glob", 2, flags, |ctx| {
        let tags = ctx.get_raw(0).as_str().unwrap_or("");
        let pattern = ctx.get_raw(1).as_str().unwrap_or("");
        Ok(split_tags(tags).any(|t| glob_matches(pattern, t)))
    })?;
    conn.create_scalar_function("cairn_tag_value", 2, flags, |ctx| {
        let tags = ctx.get_raw(0).as_str().unwrap_or("");
        let key = ctx.get_raw(1).as_str().unwrap_or("");
        Ok(split_tags(tags).find_map(|t| {
            t.strip_prefix(key)
                .and_then(|rest| rest.strip_prefix(':'))
                .map(str::to_owned)
        }))
    })?;
    Ok(())
}

pub fn split_tags(tags: &str) -> impl Iterator<Item = &str> {
    tags.split(',').filter(|t| !t.is_empty())
}

type RollupKey = (i64, String, String, String);
/// Logs of one request and where to say whether they were committed.
type Append = (Vec<NewLog>, AppendDone);
/// The outcome of an append, with its logs handed back: freeing a batch (every string and
/// leaf of every log) is a tenth of the writer's work per log, and the writer is the one
/// thread every log waits for.
type AppendDone = oneshot::Sender<(Result<(), String>, Vec<NewLog>)>;

/// How often the checkpointer copies committed WAL frames into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// Above this, the checkpointer makes the writer wait for one checkpoint that resets the WAL.
const WAL_RESET_BYTES: u64 = 128 << 20;

/// PASSIVE checkpoints never block the writer or readers. The WAL only starts again from its
/// beginning after a checkpoint that caught up with the writer, which a steady stream of
/// commits can keep from happening; past [`WAL_RESET_BYTES`] a TRUNCATE checkpoint holds the
/// writer (it waits in its busy handler) for the moment it takes to copy the rest and reset.
/// Ends when the writer drops its end of the channel, after one last checkpoint.
fn checkpoint_loop(conn: Connection, wal_path: PathBuf, writer_gone: mpsc::Receiver<()>) {
    loop {
        let stop = !matches!(
            writer_gone.recv_timeout(CHECKPOINT_EVERY),
            Err(mpsc::RecvTimeoutError::Timeout)
        );
        let wal_bytes = std::fs::metadata(&wal_path).map(|m| m.len()).unwrap_or(0);
        let mode = if wal_bytes > WAL_RESET_BYTES {
            "PRAGMA wal_checkpoint(TRUNCATE)"
        } else {
            "PRAGMA wal_checkpoint(PASSIVE)"
        };
        if let Err(e) = conn.query_row(mode, [], |_| Ok(())) {
            tracing::warn!(error = %e, wal_bytes, "intake checkpoint failed; will retry");
        }
        if stop {
            return;
        }
    }
}

fn writer_loop(
    mut conn: Connection,
    jobs: mpsc::Receiver<Job>,
    cfg: StoreConfig,
    counters: Arc<StoreCounters>,
    _checkpointer: mpsc::Sender<()>,
) {
    let mut next_maintenance = Instant::now() + cfg.maintenance_every.min(Duration::from_secs(5));
    let mut attr = match AttrState::load(&conn) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "intake cannot read its attribute paths; starting empty");
            AttrState::default()
        }
    };
    // Whether the full-text index may have segments left to merge (it gains one per commit).
    let mut merge_pending = true;
    loop {
        let mut wait = next_maintenance.saturating_duration_since(Instant::now());
        if merge_pending {
            wait = wait.min(IDLE_BEFORE_MERGE);
        }
        let first = match jobs.recv_timeout(wait) {
            Ok(job) => job,
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < next_maintenance => {
                // Idle: merge segments in small steps until a job arrives or nothing is left.
                // Fewer segments make every per-row full-text probe of a search cheaper.
                let first = loop {
                    match merge_step(&conn) {
                        Ok(true) => {}
                        Ok(false) => {
                            merge_pending = false;
                            break None;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "intake full-text merge failed");
                            merge_pending = false;
                            break None;
                        }
                    }
                    match jobs.try_recv() {
                        Ok(job) => break Some(job),
                        Err(mpsc::TryRecvError::Empty) => {}
                        Err(mpsc::TryRecvError::Disconnected) => break None,
                    }
                };
                match first {
                    Some(job) => job,
                    None => continue,
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let report = maintain(&mut conn, &cfg, &counters, &attr);
                log_report(&report);
                next_maintenance = Instant::now() + cfg.maintenance_every;
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let mut appends = Vec::new();
        let mut metrics = Vec::new();
        let mut maintenance_waiters = Vec::new();
        let mut queued_logs = 0;
        let mut take = |job: Job, queued_logs: &mut usize| match job {
            Job::Append { logs, done } => {
                *queued_logs += logs.len();
                appends.push((logs, done));
            }
            Job::Metrics { batch, done } => {
                *queued_logs += batch.rows();
                metrics.push((batch, done));
            }
            Job::Maintain { done } => maintenance_waiters.push(done),
        };
        take(first, &mut queued_logs);
        while queued_logs < GROUP_COMMIT_LOGS {
            match jobs.try_recv() {
                Ok(job) => take(job, &mut queued_logs),
                Err(_) => break,
            }
        }
        if !appends.is_empty() {
            merge_pending = true;
            let result = insert_group(&mut conn, &appends, &counters, &mut attr).map_err(|e| {
                tracing::error!(error = %e, logs = queued_logs, "intake store write failed; batch refused");
                format!("store write failed: {e}")
            });
            for (logs, done) in appends {
                let _ = done.send((result.clone(), logs));
            }
        }
        if !metrics.is_empty() {
            match insert_metrics(&mut conn, &metrics) {
                Ok(ids) => {
                    for ((_, done), id) in metrics.into_iter().zip(ids) {
                        let _ = done.send(Ok(id));
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "intake store write of metrics failed; batch refused");
                    for (_, done) in metrics {
                        let _ = done.send(Err(format!("store write failed: {e}")));
                    }
                }
            }
        }
        if !maintenance_waiters.is_empty() {
            let report = maintain(&mut conn, &cfg, &counters, &attr);
            for done in maintenance_waiters {
                let _ = done.send(report.clone());
            }
        }
    }
    // A clean checkpoint leaves a single file behind, which is what people expect to copy.
    let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
}

/// How long the writer waits without a job before it merges full-text segments.
const IDLE_BEFORE_MERGE: Duration = Duration::from_millis(100);
/// Leaf pages (of `pgsz`, 1,000 bytes) one merge step writes: a few tens of milliseconds, the
/// most an append arriving meanwhile waits.
const MERGE_STEP_PAGES: i64 = 2000;

/// One bounded FTS5 merge in its own transaction; false once there was nothing to merge (no
/// level holds `usermerge`, 4, segments).
fn merge_step(conn: &Connection) -> rusqlite::Result<bool> {
    let before = conn.total_changes();
    conn.execute(
        "INSERT INTO logs_fts (logs_fts, rank) VALUES ('merge', ?1)",
        [MERGE_STEP_PAGES],
    )?;
    // FTS5 documents this test: a merge that did no work changes fewer than 2 rows.
    Ok(conn.total_changes() - before >= 2)
}

fn log_report(report: &MaintenanceReport) {
    if report.deleted_by_age + report.deleted_by_size + report.deleted_metric_rows > 0 {
        tracing::info!(
            deleted_by_age = report.deleted_by_age,
            deleted_by_size = report.deleted_by_size,
            deleted_metric_rows = report.deleted_metric_rows,
            used_bytes = report.used_bytes,
            "intake retention applied"
        );
    }
}

/// Attribute path ids by JSON path, kept by the writer (the only one that adds paths).
type PathIds = HashMap<String, i64>;

/// What the writer knows of the attribute tables.
#[derive(Default)]
struct AttrState {
    paths: PathIds,
    /// The distinct text values each path has had in `attr_values` (never shrinks, so the
    /// cap errs towards scanning).
    values: HashMap<i64, HashSet<String>>,
    /// Paths whose text values are no longer kept (see `attr_paths.values_capped`).
    capped: HashSet<i64>,
}

/// Distinct text values a path may have before its facet is left to scans: request ids and
/// the like would make `attr_values` as big as the logs.
pub const MAX_PATH_VALUES: usize = 1_000;

impl AttrState {
    fn load(conn: &Connection) -> rusqlite::Result<AttrState> {
        let mut values: HashMap<i64, HashSet<String>> = HashMap::default();
        let mut stmt = conn.prepare("SELECT DISTINCT path_id, value FROM attr_values")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
        for row in rows {
            let (p, v) = row?;
            values.entry(p).or_default().insert(v);
        }
        let mut stmt = conn.prepare("SELECT id FROM attr_paths WHERE values_capped = 1")?;
        let capped = stmt
            .query_map([], |r| r.get::<_, i64>(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(AttrState {
            paths: load_paths(conn)?,
            values,
            capped,
        })
    }
}

/// The `attr_paths` row whose values are the logs' hosts. Attribute paths all start with `$`.
pub const HOST_PATH: &str = "host";
/// The `attr_paths` row whose values are the logs' tags (`k:v`), one value per tag.
pub const TAGS_PATH: &str = "tags";

/// Counts one text value of a path, or caps the path when it has too many or too long ones.
fn count_value<'a>(
    attr: &mut AttrState,
    newly_capped: &mut Vec<i64>,
    values: &mut HashMap<ValueKey<&'a str>, i64>,
    id: i64,
    key: (i64, &'a str, &'a str, &'a str),
    text: Option<&'a str>,
) {
    if attr.capped.contains(&id) || newly_capped.contains(&id) {
        return;
    }
    let known = attr.values.entry(id).or_default();
    match text {
        // An empty string is no group (as in a scan): nothing to keep.
        Some("") => {}
        Some(t)
            if t.len() <= crate::ingest::MAX_VALUE_LEN
                && (known.contains(t) || known.len() < MAX_PATH_VALUES) =>
        {
            if !known.contains(t) {
                known.insert(t.to_owned());
            }
            *values
                .entry((id, key.0, key.1, key.2, key.3, t))
                .or_insert(0) += 1;
        }
        _ => newly_capped.push(id),
    }
}

/// Key of an `attr_values` row: path, minute, service, source, status, value.
type ValueKey<S> = (i64, i64, S, S, S, S);

/// Adds (`sign` 1) or takes out (-1) text value counts; rows that reach 0 go.
fn apply_values<S: AsRef<str>>(
    tx: &rusqlite::Transaction,
    values: &HashMap<ValueKey<S>, i64>,
    sign: i64,
) -> rusqlite::Result<()> {
    let mut add = tx.prepare_cached(
        "INSERT INTO attr_values (path_id, bucket_ms, service, source, status, value, n)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (path_id, bucket_ms, service, source, status, value) DO UPDATE SET n = n + excluded.n",
    )?;
    let mut gone = tx.prepare_cached(
        "DELETE FROM attr_values WHERE path_id = ?1 AND bucket_ms = ?2 AND service = ?3
         AND source = ?4 AND status = ?5 AND value = ?6 AND n <= 0",
    )?;
    for ((p, b, service, source, status, value), n) in values {
        let k = params![
            p,
            b,
            service.as_ref(),
            source.as_ref(),
            status.as_ref(),
            value.as_ref()
        ];
        add.execute(params![
            p,
            b,
            service.as_ref(),
            source.as_ref(),
            status.as_ref(),
            value.as_ref(),
            sign * n
        ])?;
        if sign < 0 {
            gone.execute(k)?;
        }
    }
    Ok(())
}

fn load_paths(conn: &Connection) -> rusqlite::Result<PathIds> {
    let mut stmt = conn.prepare("SELECT json_path, id FROM attr_paths")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// Count deltas of one path: number, string, boolean, other.
type PathCounts = [i64; 4];

fn kind_index(kind: LeafKind) -> usize {
    match kind {
        LeafKind::Number => 0,
        LeafKind::String => 1,
        LeafKind::Boolean => 2,
        LeafKind::Other => 3,
    }
}

fn apply_path_counts(
    tx: &rusqlite::Transaction,
    counts: &HashMap<i64, PathCounts>,
    sign: i64,
) -> rusqlite::Result<()> {
    let mut update = tx.prepare_cached(
        "UPDATE attr_paths SET n_number = n_number + ?2, n_string = n_string + ?3,
             n_boolean = n_boolean + ?4, n_other = n_other + ?5 WHERE id = ?1",
    )?;
    for (id, c) in counts {
        update.execute(params![
            id,
            sign * c[0],
            sign * c[1],
            sign * c[2],
            sign * c[3]
        ])?;
    }
    Ok(())
}

/// Key of an `attr_measure` row without its part: path, minute, service, source, status.
type MeasureKey<S> = (i64, i64, S, S, S);

fn blob_of(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The values of an `attr_measure` blob.
pub fn values_of(blob: &[u8]) -> impl Iterator<Item = f64> + '_ {
    blob.chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("chunks of 8")))
}

fn stats(values: &[f64]) -> (i64, f64, f64, f64) {
    let mut sum = 0.0;
    let mut min = f64::INFINITY;
    let mut max = f64::NEG_INFINITY;
    for v in values {
        sum += v;
        min = min.min(*v);
        max = max.max(*v);
    }
    (values.len() as i64, sum, min, max)
}

/// Appends values to the last part of each key, starting new parts when it is full.
fn add_measures<S>(
    tx: &rusqlite::Transaction,
    measures: &HashMap<MeasureKey<S>, Vec<f64>>,
) -> rusqlite::Result<()>
where
    S: AsRef<str> + Eq + std::hash::Hash,
{
    let mut last = tx.prepare_cached(
        "SELECT rowid, part, vals FROM attr_measure
         WHERE path_id = ?1 AND bucket_ms = ?2 AND service = ?3 AND source = ?4 AND status = ?5
         ORDER BY part DESC LIMIT 1",
    )?;
    let mut update = tx.prepare_cached(
        "UPDATE attr_measure SET n = ?2, sum = ?3, min = ?4, max = ?5, vals = ?6 WHERE rowid = ?1",
    )?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO attr_measure (path_id, bucket_ms, service, source, status, part, n, sum, min, max, vals)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    for ((path, bucket, service, source, status), new) in measures {
        let (service, source, status) = (service.as_ref(), source.as_ref(), status.as_ref());
        let existing: Option<(i64, i64, Vec<u8>)> = last
            .query_row(params![path, bucket, service, source, status], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })?;
        let mut rest: &[f64] = new;
        let mut part = 0;
        if let Some((rowid, p, blob)) = existing {
            part = p + 1;
            let mut values: Vec<f64> = values_of(&blob).collect();
            if values.len() < MEASURE_PART {
                let take = (MEASURE_PART - values.len()).min(rest.len());
                values.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                let (n, sum, min, max) = stats(&values);
                update.execute(params![rowid, n, sum, min, max, blob_of(&values)])?;
            }
        }
        for chunk in rest.chunks(MEASURE_PART) {
            let (n, sum, min, max) = stats(chunk);
            insert.execute(params![
                path,
                bucket,
                service,
                source,
                status,
                part,
                n,
                sum,
                min,
                max,
                blob_of(chunk)
            ])?;
            part += 1;
        }
    }
    Ok(())
}

/// Takes values out of each key (one occurrence per value) and rewrites what is left.
fn remove_measures(
    tx: &rusqlite::Transaction,
    measures: HashMap<MeasureKey<String>, Vec<f64>>,
) -> rusqlite::Result<()> {
    let mut parts = tx.prepare_cached(
        "SELECT vals FROM attr_measure
         WHERE path_id = ?1 AND bucket_ms = ?2 AND service = ?3 AND source = ?4 AND status = ?5",
    )?;
    let mut delete = tx.prepare_cached(
        "DELETE FROM attr_measure
         WHERE path_id = ?1 AND bucket_ms = ?2 AND service = ?3 AND source = ?4 AND status = ?5",
    )?;
    let mut count = tx.prepare_cached(
        "SELECT ifnull(sum(n), 0) FROM attr_measure
         WHERE path_id = ?1 AND bucket_ms = ?2 AND service = ?3 AND source = ?4 AND status = ?5",
    )?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO attr_measure (path_id, bucket_ms, service, source, status, part, n, sum, min, max, vals)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    for ((path, bucket, service, source, status), mut gone) in measures {
        let key = params![path, bucket, service, source, status];
        let held: i64 = count.query_row(key, |r| r.get(0))?;
        // Retention takes whole minutes except at its edge: most keys go entirely.
        if held as usize <= gone.len() {
            delete.execute(key)?;
            continue;
        }
        let mut values: Vec<f64> = Vec::with_capacity(held as usize);
        {
            let mut rows = parts.query(key)?;
            while let Some(r) = rows.next()? {
                let blob: Vec<u8> = r.get(0)?;
                values.extend(values_of(&blob));
            }
        }
        // A multiset difference by merging two sorted lists: linear after the sorts.
        values.sort_unstable_by(f64::total_cmp);
        gone.sort_unstable_by(f64::total_cmp);
        let mut kept = Vec::with_capacity(values.len());
        let mut g = gone.iter().peekable();
        for v in values {
            while g.peek().is_some_and(|x| x.total_cmp(&v).is_lt()) {
                g.next();
            }
            if g.peek().is_some_and(|x| x.total_cmp(&v).is_eq()) {
                g.next();
            } else {
                kept.push(v);
            }
        }
        delete.execute(key)?;
        for (part, chunk) in kept.chunks(MEASURE_PART).enumerate() {
            let (n, sum, min, max) = stats(chunk);
            insert.execute(params![
                path,
                bucket,
                service,
                source,
                status,
                part as i64,
                n,
                sum,
                min,
                max,
                blob_of(chunk)
            ])?;
        }
    }
    Ok(())
}

/// The id of a path, adding it the first time it is seen.
fn path_id(
    tx: &rusqlite::Transaction,
    paths: &mut PathIds,
    added: &mut Vec<String>,
    json_path: &str,
    dotted: &str,
) -> rusqlite::Result<i64> {
    if let Some(id) = paths.get(json_path) {
        return Ok(*id);
    }
    let id: i64 = tx.query_row(
        "INSERT INTO attr_paths (json_path, dotted) VALUES (?1, ?2)
         ON CONFLICT (json_path) DO UPDATE SET dotted = dotted RETURNING id",
        params![json_path, dotted],
        |r| r.get(0),
    )?;
    paths.insert(json_path.to_owned(), id);
    added.push(json_path.to_owned());
    Ok(id)
}

fn insert_group(
    conn: &mut Connection,
    groups: &[Append],
    counters: &StoreCounters,
    attr: &mut AttrState,
) -> rusqlite::Result<()> {
    let mut added = Vec::new();
    let mut newly_capped = Vec::new();
    let result = insert_group_tx(conn, groups, counters, attr, &mut added, &mut newly_capped);
    match result {
        // A path is known to be capped only once the transaction that capped it committed.
        Ok(()) => attr.capped.extend(newly_capped),
        Err(_) => {
            // The paths added by a rolled-back transaction are gone from the table too.
            for p in added {
                attr.paths.remove(&p);
            }
        }
    }
    result
}

fn insert_group_tx(
    conn: &mut Connection,
    groups: &[Append],
    counters: &StoreCounters,
    attr: &mut AttrState,
    added: &mut Vec<String>,
    newly_capped: &mut Vec<i64>,
) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    let mut values: HashMap<ValueKey<&str>, i64> = HashMap::default();
    let mut path_counts: HashMap<i64, PathCounts> = HashMap::default();
    let mut measures: HashMap<MeasureKey<&str>, Vec<f64>> = HashMap::default();
    // Keys borrow from the logs: no allocation per log.
    let mut rollup: HashMap<(i64, &str, &str, &str), i64> = HashMap::default();
    let mut stored = 0u64;
    let mut truncated = 0u64;
    {
        let mut insert_log = tx.prepare_cached(
            "INSERT INTO logs (timestamp_ms, status, host, service, source, message, tags, attributes)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        let mut insert_fts =
            tx.prepare_cached("INSERT INTO logs_fts (rowid, message) VALUES (?1, ?2)")?;
        for log in groups.iter().flat_map(|(logs, _)| logs) {
            let timestamp_ms = crate::timefmt::clamp_ms(log.timestamp_ms);
            let id = insert_log.insert(params![
                timestamp_ms,
                log.status,
                log.host,
                log.service,
                log.source,
                log.message,
                log.tags,
                log.attributes,
            ])?;
            insert_fts.execute(params![id, log.message])?;
            let key = (
                timestamp_ms.div_euclid(BUCKET_MS) * BUCKET_MS,
                log.service.as_str(),
                log.source.as_str(),
                log.status.as_str(),
            );
            *rollup.entry(key).or_insert(0) += 1;
            for leaf in log.leaves.iter() {
                let id = path_id(&tx, &mut attr.paths, added, leaf.json_path, leaf.dotted)?;
                path_counts.entry(id).or_default()[kind_index(leaf.kind)] += 1;
                if let Some(v) = leaf.number {
                    measures
                        .entry((id, key.0, key.1, key.2, key.3))
                        .or_default()
                        .push(v);
                }
                if leaf.kind == LeafKind::String {
                    count_value(attr, newly_capped, &mut values, id, key, leaf.text);
                }
            }
            // The host, as a path of its own: the rollup leaves it out (it would multiply its
            // rows), but a host facet should not scan either.
            let host = path_id(&tx, &mut attr.paths, added, HOST_PATH, "host")?;
            count_value(attr, newly_capped, &mut values, host, key, Some(&log.host));
            // Each tag likewise, for the tags facet.
            let tags = path_id(&tx, &mut attr.paths, added, TAGS_PATH, "tags")?;
            for tag in split_tags(&log.tags) {
                count_value(attr, newly_capped, &mut values, tags, key, Some(tag));
            }
            stored += 1;
            truncated += u64::from(log.truncated);
        }
        apply_rollup(&tx, rollup.iter().map(|(k, n)| (k.0, k.1, k.2, k.3, *n)), 1)?;
        apply_path_counts(&tx, &path_counts, 1)?;
        add_measures(&tx, &measures)?;
        values.retain(|k, _| !newly_capped.contains(&k.0));
        apply_values(&tx, &values, 1)?;
        for p in newly_capped.iter() {
            tx.execute("UPDATE attr_paths SET values_capped = 1 WHERE id = ?1", [p])?;
            tx.execute("DELETE FROM attr_values WHERE path_id = ?1", [p])?;
        }
    }
    tx.commit()?;
    counters.logs_stored.fetch_add(stored, Ordering::Relaxed);
    counters
        .logs_truncated
        .fetch_add(truncated, Ordering::Relaxed);
    Ok(())
}

/// Metric, service-check and event requests of one group in one transaction; the ids are the
/// stored events' (0 for other requests), in order.
fn insert_metrics(
    conn: &mut Connection,
    batches: &[(MetricsBatch, oneshot::Sender<Result<i64, String>>)],
) -> rusqlite::Result<Vec<i64>> {
    let tx = conn.transaction()?;
    let mut ids = Vec::with_capacity(batches.len());
    {
        let mut context = tx.prepare_cached(
            "INSERT INTO metric_contexts (name, type, host, device, tags, unit, interval_s, first_ts, last_ts)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (name, host, device, tags) DO UPDATE SET
                 type = excluded.type,
                 unit = CASE WHEN excluded.unit = '' THEN unit ELSE excluded.unit END,
                 interval_s = excluded.interval_s,
                 first_ts = min(first_ts, excluded.first_ts),
                 last_ts = max(last_ts, excluded.last_ts)
             RETURNING id",
        )?;
        // The same context and second twice: the later value wins, as at Datadog.
        let mut point = tx.prepare_cached(
            "INSERT OR REPLACE INTO metric_points (context_id, ts_s, value) VALUES (?1, ?2, ?3)",
        )?;
        let mut check = tx.prepare_cached(
            "INSERT INTO service_checks (check_name, host, tags, status, message, ts_s)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        let mut latest = tx.prepare_cached(
            "INSERT INTO service_check_latest (check_name, host, tags, status, message, ts_s)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (check_name, host, tags) DO UPDATE SET
                 status = excluded.status, message = excluded.message, ts_s = excluded.ts_s
             WHERE excluded.ts_s >= service_check_latest.ts_s",
        )?;
        let mut event = tx.prepare_cached(
            "INSERT INTO events (ts_s, title, text, priority, host, tags, alert_type, aggregation_key, source_type_name)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        for (batch, _) in batches {
            match batch {
                MetricsBatch::Series(series) => {
                    for s in series {
                        if s.points.is_empty() {
                            continue;
                        }
                        let first = s.points.iter().map(|p| p.0).min().unwrap_or(0);
                        let last = s.points.iter().map(|p| p.0).max().unwrap_or(0);
                        let id: i64 = context.query_row(
                            params![
                                s.name,
                                s.kind as i64,
                                s.host,
                                s.device,
                                s.tags_text,
                                s.unit,
                                s.interval_s,
                                first,
                                last
                            ],
                            |r| r.get(0),
                        )?;
                        for (ts, v) in &s.points {
                            point.execute(params![id, ts, v])?;
                        }
                    }
                    ids.push(0);
                }
                MetricsBatch::ServiceChecks(checks) => {
                    for c in checks {
                        let p = params![c.check, c.host, c.tags_text, c.status, c.message, c.ts_s];
                        check.execute(p)?;
                        latest.execute(p)?;
                    }
                    ids.push(0);
                }
                MetricsBatch::Event(e) => {
                    ids.push(event.insert(params![
                        e.ts_s,
                        e.title,
                        e.text,
                        e.priority,
                        e.host,
                        e.tags_text,
                        e.alert_type,
                        e.aggregation_key,
                        e.source_type_name
                    ])?);
                }
            }
        }
    }
    tx.commit()?;
    Ok(ids)
}

/// Contexts whose points are deleted in one transaction, so an append waits at most one chunk.
const CONTEXT_CHUNK: usize = 2_000;

/// Deletes metric points, service checks and events older than `cutoff_s`, and the contexts
/// left without points. Returns the rows deleted.
fn delete_metrics_before(conn: &mut Connection, cutoff_s: i64) -> rusqlite::Result<u64> {
    let mut deleted = 0u64;
    loop {
        let tx = conn.transaction()?;
        let ids: Vec<i64> = {
            let mut stmt =
                tx.prepare_cached("SELECT id FROM metric_contexts WHERE first_ts < ?1 LIMIT ?2")?;
            let rows = stmt.query_map(params![cutoff_s, CONTEXT_CHUNK as i64], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        {
            let mut del =
                tx.prepare_cached("DELETE FROM metric_points WHERE context_id = ?1 AND ts_s < ?2")?;
            // A context whose points are all gone goes too; otherwise first_ts moves up to
            // its oldest remaining point, so the next pass skips it until then.
            let mut first = tx.prepare_cached(
                "UPDATE metric_contexts SET first_ts =
                     (SELECT min(ts_s) FROM metric_points WHERE context_id = ?1)
                 WHERE id = ?1 AND EXISTS (SELECT 1 FROM metric_points WHERE context_id = ?1)",
            )?;
            let mut gone = tx.prepare_cached(
                "DELETE FROM metric_contexts WHERE id = ?1
                 AND NOT EXISTS (SELECT 1 FROM metric_points WHERE context_id = ?1)",
            )?;
            for id in &ids {
                deleted += del.execute(params![id, cutoff_s])? as u64;
                first.execute([id])?;
                gone.execute([id])?;
            }
        }
        tx.commit()?;
        if ids.len() < CONTEXT_CHUNK {
            break;
        }
    }
    let tx = conn.transaction()?;
    for sql in [
        "DELETE FROM service_checks WHERE ts_s < ?1",
        "DELETE FROM service_check_latest WHERE ts_s < ?1",
        "DELETE FROM events WHERE ts_s < ?1",
    ] {
        deleted += tx.execute(sql, [cutoff_s])? as u64;
    }
    tx.commit()?;
    Ok(deleted)
}

/// The oldest second of any metric point, service check or event.
fn oldest_metric_ts(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    conn.query_row(
        "SELECT min(t) FROM (
             SELECT min(first_ts) AS t FROM metric_contexts
             UNION ALL SELECT min(ts_s) FROM service_checks
             UNION ALL SELECT min(ts_s) FROM events)",
        [],
        |r| r.get(0),
    )
}

fn apply_rollup<'a>(
    tx: &rusqlite::Transaction,
    rollup: impl Iterator<Item = (i64, &'a str, &'a str, &'a str, i64)>,
    sign: i64,
) -> rusqlite::Result<()> {
    let mut upsert = tx.prepare_cached(
        "INSERT INTO rollup (bucket_ms, service, source, status, count) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT DO UPDATE SET count = count + excluded.count",
    )?;
    for (bucket, service, source, status, n) in rollup {
        upsert.execute(params![bucket, service, source, status, sign * n])?;
    }
    if sign < 0 {
        tx.execute("DELETE FROM rollup WHERE count <= 0", [])?;
    }
    Ok(())
}

/// Bytes in use by the database: pages minus the free list, so that space already released by
/// retention is not counted twice.
pub fn used_bytes(conn: &Connection) -> rusqlite::Result<u64> {
    let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    Ok(((pages - free).max(0) * page_size) as u64)
}

fn maintain(
    conn: &mut Connection,
    cfg: &StoreConfig,
    counters: &StoreCounters,
    attr: &AttrState,
) -> MaintenanceReport {
    let mut report = MaintenanceReport::default();
    let result = (|| -> rusqlite::Result<()> {
        let retention_ms = i64::try_from(cfg.retention.as_millis()).unwrap_or(i64::MAX);
        let cutoff = crate::timefmt::now_ms().saturating_sub(retention_ms);
        loop {
            let n = delete_oldest(conn, attr, Some(cutoff), DELETE_CHUNK)?;
            report.deleted_by_age += n as u64;
            if n < DELETE_CHUNK {
                break;
            }
        }
        report.deleted_metric_rows += delete_metrics_before(conn, cutoff.div_euclid(1000))?;
        let used = used_bytes(conn)?;
        if used > cfg.max_size_bytes {
            // Aim a little under the budget so that the next few batches do not trigger
            // another pass straight away. Freed pages are measured at the next pass, so this
            // pass deletes one estimate's worth and does not loop on a stale figure.
            let rows: i64 = conn.query_row("SELECT count(*) FROM logs", [], |r| r.get(0))?;
            let target = cfg.max_size_bytes as f64 * 0.9;
            let fraction = ((used as f64 - target) / used as f64).clamp(0.0, 1.0);
            let mut remaining = ((rows as f64 * fraction).ceil() as usize).max(1);
            while remaining > 0 {
                let n = delete_oldest(conn, attr, None, remaining.min(DELETE_CHUNK))?;
                report.deleted_by_size += n as u64;
                if n == 0 {
                    break;
                }
                remaining = remaining.saturating_sub(n);
            }
            // Metrics have no row order to take a fraction of; the same fraction of the time
            // they span, oldest first, is deleted instead.
            if let Some(oldest) = oldest_metric_ts(conn)? {
                let now_s = crate::timefmt::now_ms() / 1000;
                let span = (now_s - oldest).max(0) as f64;
                let cut = oldest + (span * fraction).ceil() as i64;
                report.deleted_metric_rows += delete_metrics_before(conn, cut.max(oldest + 1))?;
            }
        }
        if report.deleted_by_age + report.deleted_by_size + report.deleted_metric_rows > 0 {
            conn.execute_batch("PRAGMA incremental_vacuum; PRAGMA wal_checkpoint(TRUNCATE);")?;
        }
        report.used_bytes = used_bytes(conn)?;
        Ok(())
    })();
    if let Err(e) = result {
        tracing::warn!(error = %e, "intake retention pass failed; will retry at the next pass");
    }
    counters.logs_deleted.fetch_add(
        report.deleted_by_age + report.deleted_by_size,
        Ordering::Relaxed,
    );
    report
}

/// Deletes up to `limit` of the oldest logs (older than `before` when given) with their index
/// entries and rollup counts, in one transaction. Returns how many went.
fn delete_oldest(
    conn: &mut Connection,
    attr: &AttrState,
    before: Option<i64>,
    limit: usize,
) -> rusqlite::Result<usize> {
    let tx = conn.transaction()?;
    let mut rollup: HashMap<RollupKey, i64> = HashMap::default();
    let mut path_counts: HashMap<i64, PathCounts> = HashMap::default();
    let mut measures: HashMap<MeasureKey<String>, Vec<f64>> = HashMap::default();
    let mut values: HashMap<ValueKey<String>, i64> = HashMap::default();
    let ids = {
        let mut stmt = tx.prepare_cached(
            "SELECT id, timestamp_ms, service, source, status, attributes, host, tags FROM logs
             WHERE timestamp_ms < ?1 ORDER BY timestamp_ms, id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![before.unwrap_or(i64::MAX), limit as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, String>(7)?,
            ))
        })?;
        let mut ids = Vec::new();
        for row in rows {
            let (id, ts, service, source, status, attributes, host, tags) = row?;
            let bucket = ts.div_euclid(BUCKET_MS) * BUCKET_MS;
            // The same leaves the writer found at ingest, so that the counts and values taken
            // out are exactly those put in. A path unknown here was never counted.
            let leaves = match attributes.as_deref() {
                Some(a) => leaves_of(a),
                _ => Default::default(),
            };
            for leaf in leaves.iter() {
                let Some(pid) = attr.paths.get(leaf.json_path) else {
                    continue;
                };
                path_counts.entry(*pid).or_default()[kind_index(leaf.kind)] += 1;
                if let Some(v) = leaf.number {
                    measures
                        .entry((
                            *pid,
                            bucket,
                            service.clone(),
                            source.clone(),
                            status.clone(),
                        ))
                        .or_default()
                        .push(v);
                }
                // A capped path's rows are gone; any other path's text was counted at ingest.
                if let (Some(t), false) = (leaf.text, attr.capped.contains(pid)) {
                    if !t.is_empty() && leaf.kind == LeafKind::String {
                        *values
                            .entry((
                                *pid,
                                bucket,
                                service.clone(),
                                source.clone(),
                                status.clone(),
                                t.to_owned(),
                            ))
                            .or_insert(0) += 1;
                    }
                }
            }
            let mut take_out = |path: &str, value: &str| {
                if let Some(pid) = attr.paths.get(path) {
                    if !value.is_empty() && !attr.capped.contains(pid) {
                        *values
                            .entry((
                                *pid,
                                bucket,
                                service.clone(),
                                source.clone(),
                                status.clone(),
                                value.to_owned(),
                            ))
                            .or_insert(0) += 1;
                    }
                }
            };
            take_out(HOST_PATH, &host);
            for tag in split_tags(&tags) {
                take_out(TAGS_PATH, tag);
            }
            *rollup.entry((bucket, service, source, status)).or_insert(0) += 1;
            ids.push(id);
        }
        ids
    };
    {
        let mut del_log = tx.prepare_cached("DELETE FROM logs WHERE id = ?1")?;
        let mut del_fts = tx.prepare_cached("DELETE FROM logs_fts WHERE rowid = ?1")?;
        for id in &ids {
            del_log.execute([id])?;
            del_fts.execute([id])?;
        }
        apply_rollup(
            &tx,
            rollup
                .iter()
                .map(|((b, svc, src, st), n)| (*b, svc.as_str(), src.as_str(), st.as_str(), *n)),
            -1,
        )?;
        apply_path_counts(&tx, &path_counts, -1)?;
        remove_measures(&tx, measures)?;
        apply_values(&tx, &values, -1)?;
    }
    tx.commit()?;
    Ok(ids.len())
}
