//! `cairn run`: start the logs pipeline and the metrics forwarder, load every check, schedule
//! them, flush their metrics every 15 s, and stop cleanly on
//! SIGTERM or SIGINT: stop scheduling, let running checks finish (bounded), give payloads in
//! flight a moment, make the buffer durable, exit 0.
//!
//! It also keeps `<run_path>/running`, the crash record: at start it says which check the
//! previous agent died running (if it did not stop cleanly), and a clean stop marks it clean.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use cairn_config::{AgentConfig, Secret};
use cairn_logs::tap::{LogTap, TapSink};
use cairn_logs::{
    CacheState, Counters, CountersSnapshot, Pipeline, PipelineConfig, RecordSink, SinkError,
    Staging,
};

use crate::{api, common};

#[derive(clap::Args)]
pub struct RunArgs {
    /// Seconds to let running checks finish after a stop signal.
    #[arg(long, default_value_t = 10)]
    grace_secs: u64,
    /// Seconds to let payloads in flight be delivered after the checks stopped; what is not
    /// delivered by then stays in the buffer and is sent after a restart.
    #[arg(long, default_value_t = 2.0)]
    send_grace_secs: f64,
    /// Write the logs pipeline counters as JSON to this file every second and at exit (a
    /// stand-in for the status API, used by tests and benchmarks).
    #[arg(long, hide = true)]
    counters_file: Option<PathBuf>,
    /// Benchmark reference: discard logs at the hand-off instead of buffering and shipping them.
    #[arg(long, hide = true)]
    discard_logs: bool,
    /// Test only: the floor of the watchdog's overrun limit, `max(3 × interval, this)`, in
    /// seconds (default 60), so that tests see a runaway check reported within seconds.
    #[arg(long, hide = true, env = "CAIRN_WATCHDOG_MIN_SECS")]
    watchdog_min_secs: Option<f64>,
    /// Test only: seconds between metric flushes (default 15, as the Datadog Agent).
    #[arg(long, hide = true, env = "CAIRN_METRICS_FLUSH_SECS")]
    metrics_flush_secs: Option<f64>,
}

/// Marks the crash record clean when `run` returns, whatever it returns: an error it reports
/// is not a crash. A panic unwinding through it is one, and leaves the record as it is.
struct CleanExit;

impl Drop for CleanExit {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            cairn_checks::crash_record::mark_clean();
        }
    }
}

/// The embedded intake's token file under run_path (see `cairn logs`).
pub const AUTH_TOKEN_FILE: &str = "auth_token";

/// The embedded local intake, with the runtime that serves it. Started when neither an
/// api_key nor `logs_config.logs_dd_url` is set: logs then go to it over real HTTP on
/// 127.0.0.1, through the same sender as to Datadog.
struct LocalIntake {
    runtime: tokio::runtime::Runtime,
    running: cairn_intake::RunningIntake,
}

impl LocalIntake {
    fn start(agent: &AgentConfig) -> anyhow::Result<LocalIntake> {
        let listen = agent.logs.intake_listen.parse().with_context(|| {
            format!(
                "logs_config.intake.listen: expected host:port, got {:?}",
                agent.logs.intake_listen
            )
        })?;
        let mut cfg = cairn_intake::IntakeConfig::new(agent.run_path.join("intake"));
        cfg.listen = listen;
        if let Some(p) = &agent.logs.intake_pipelines {
            cfg.pipelines_file = p.clone();
        }
        if let Some(p) = &agent.logs.intake_monitors {
            cfg.monitors_file = p.clone();
        }
        cfg.monitor_interval = Duration::from_secs_f64(agent.logs.intake_monitor_interval_secs);
        cfg.auth = if !agent.logs.intake_auth {
            cairn_intake::IntakeAuth::Disabled
        } else if let Some(t) = &agent.logs.intake_token {
            cairn_intake::IntakeAuth::Token(t.expose().to_owned())
        } else {
            // Beside the buffer, so that `cairn logs` (and issue 10's local API) find it.
            cairn_intake::IntakeAuth::TokenFile(agent.run_path.join(AUTH_TOKEN_FILE))
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("local-intake")
            .enable_all()
            .build()
            .context("starting the local intake's runtime")?;
        let running = runtime
            .block_on(cairn_intake::start(cfg))
            .with_context(|| format!("starting the local intake on {listen}"))?;
        Ok(LocalIntake { runtime, running })
    }

    fn stop(self) {
        self.runtime.block_on(self.running.shutdown());
    }
}

pub fn run(config_dir: &Path, args: RunArgs) -> anyhow::Result<ExitCode> {
    // First of all: a stop signal during startup (loading checks can take a while) must lead to
    // the orderly stop below, not to the default action that kills the process.
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }
    // SIGHUP reloads, as `cairn reload` does (systemd's ExecReload sends it).
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())
        .context("installing signal handlers")?;
    let loaded = common::load_config(config_dir)?;
    for e in &loaded.errors {
        tracing::error!("{e}");
    }
    let agent = &loaded.agent;
    let _agent_log = crate::agent_log::start_agent_log(agent)?;
    let started_at = SystemTime::now();
    let mut local_intake = None;
    let tap = LogTap::new();
    let (pipeline, sink, counters): (Option<Pipeline>, Arc<dyn RecordSink>, Arc<Counters>) = if args
        .discard_logs
    {
        tracing::warn!("--discard-logs: logs are dropped at the hand-off (benchmark reference)");
        (None, Arc::new(DiscardSink), Arc::new(Counters::default()))
    } else {
        let base_url = match agent.logs_intake_url() {
            Some(url) => url,
            None => {
                let intake = LocalIntake::start(agent)?;
                let url = intake.running.url();
                // stdout, for the person who started the agent; the URL holds the token, so
                // the log line below names the address only.
                println!("Log Explorer: {}", intake.running.explorer_url());
                tracing::info!(url = %url, "no api_key and no logs_dd_url: logs go to the embedded local intake");
                local_intake = Some(intake);
                url
            }
        };
        let mut pipeline_cfg = PipelineConfig::from_agent(agent, base_url, cairn_checks::VERSION);
        if let Some(token) = local_intake.as_ref().and_then(|i| i.running.token()) {
            // The agent's own sender authenticates to its embedded intake like any other
            // client: the token is its DD-API-KEY.
            pipeline_cfg.api_key = Secret::new(token);
        }
        let pipeline = Pipeline::start(pipeline_cfg).with_context(|| {
            format!("starting the logs pipeline in {}", agent.run_path.display())
        })?;
        let sink: Arc<dyn RecordSink> = Arc::new(TapSink::new(pipeline.sink(), tap.clone()));
        let counters = pipeline.counters_handle();
        (Some(pipeline), sink, counters)
    };
    let snapshot = |pipeline: &Option<Pipeline>| match pipeline {
        Some(p) => p.counters(),
        None => counters.snapshot(),
    };
    let destination = match &local_intake {
        Some(i) => crate::flusher::Destination::Local {
            url: i.running.url(),
            token: i.running.token().map(str::to_owned),
        },
        None if agent.api_key.is_some() || agent.dd_url_set => crate::flusher::Destination::Datadog,
        None => crate::flusher::Destination::Nowhere,
    };
    let metrics_url = match &destination {
        crate::flusher::Destination::Local { url, .. } => Some(url.clone()),
        crate::flusher::Destination::Datadog => Some(cairn_config::redact_url(&agent.dd_url)),
        crate::flusher::Destination::Nowhere => None,
    };
    let flush_interval = match args.metrics_flush_secs {
        Some(secs) => Duration::try_from_secs_f64(secs)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                anyhow::anyhow!("--metrics-flush-secs: expected seconds > 0, got {secs}")
            })?,
        None => crate::flusher::DEFAULT_FLUSH_INTERVAL,
    };
    let mut flusher = crate::flusher::Flusher::start(agent, destination, flush_interval)?;

    // After the pipeline took the buffer's lock (a second agent on this run_path has been
    // refused by now, so it cannot wipe the running one's record), and before the interpreter
    // starts (faulthandler chains to the signal handlers installed here).
    let _clean_exit = match cairn_checks::crash_record::install(
        &agent.run_path,
        agent.check_runners,
    ) {
        Ok(previous) => {
            if let Some(previous) = previous {
                cairn_checks::crash_record::report_previous(&previous);
            }
            Some(CleanExit)
        }
        Err(e) => {
            tracing::error!(error = %e, "no crash record: a check that kills the agent will not be named at the next start");
            None
        }
    };
    let watchdog = cairn_checks::WatchdogConfig {
        min_limit: match args.watchdog_min_secs {
            Some(secs) => Duration::try_from_secs_f64(secs).map_err(|_| {
                anyhow::anyhow!("--watchdog-min-secs: expected seconds >= 0, got {secs}")
            })?,
            None => cairn_checks::WatchdogConfig::default().min_limit,
        },
        memory_limit_bytes: agent.memory_limit_bytes,
        ..Default::default()
    };

    let (checks, errors) = cairn_checks::load_all(agent, &loaded.integrations, &sink)?;
    for e in &errors {
        tracing::error!("{e}");
    }
    let (reload_tx, reload_rx) = std::sync::mpsc::channel::<api::ReloadRequest>();
    let state = Arc::new(api::AgentState {
        started_at,
        started: Instant::now(),
        hostname: agent.hostname.clone(),
        config_dir: std::fs::canonicalize(config_dir).unwrap_or_else(|_| config_dir.to_owned()),
        run_path: agent.run_path.clone(),
        python_version: cairn_checks::python_version(),
        python_env: agent.python_env.clone(),
        endpoints: parking_lot::Mutex::new(serde_json::json!({
            "logs": pipeline.as_ref().map(|p| p.url().to_owned()),
            "metrics": metrics_url,
        })),
        api_key_ending: agent.api_key.as_ref().map(|k| {
            let k = k.expose();
            k.chars()
                .skip(k.chars().count().saturating_sub(5))
                .collect()
        }),
        board: Default::default(),
        logs: pipeline.as_ref().map(Pipeline::counters_source),
        metrics: Default::default(),
        logs_sources: parking_lot::Mutex::new(logs_sources(&loaded.integrations)),
        load_errors: parking_lot::Mutex::new(errors.iter().map(|e| e.to_string()).collect()),
        last_reload: Default::default(),
        intake_trouble: Default::default(),
        local_intake: local_intake.as_ref().map(|i| api::LocalIntakeInfo {
            url: i.running.url(),
            stats: Default::default(),
            ingest: Default::default(),
            monitors: Default::default(),
            pipelines: Default::default(),
        }),
        tap: tap.clone(),
        reload_tx: parking_lot::Mutex::new(reload_tx),
        backoff_max_secs: agent.logs.sender_backoff_max_secs,
        last_read_ms: Default::default(),
    });
    let api_server = start_api(agent, state.clone());
    common::write_pid_file(&agent.run_path);
    tracing::info!(
        checks = checks.len(),
        version = cairn_checks::VERSION,
        "cairn started"
    );
    let on_report: Arc<cairn_checks::scheduler::ReportFn> = {
        let counters = counters.clone();
        Arc::new(move |report: &cairn_checks::RunReport| {
            counters.add_handoff(&report.check_id, &report.logs)
        })
    };
    let mut scheduler = cairn_checks::Scheduler::start_watched(
        checks,
        agent.check_runners,
        watchdog.clone(),
        on_report.clone(),
    );
    *state.board.lock() = scheduler.status_board();
    let mut reloader = Reloader {
        config_dir: config_dir.to_owned(),
        datadog_yaml: std::fs::read(config_dir.join("datadog.yaml")).ok(),
        check_runners: agent.check_runners,
        watchdog,
        on_report,
        sink: sink.clone(),
    };
    let mut last_write = Instant::now();
    let mut last_state = Instant::now() - Duration::from_secs(10);
    let mut last_intake_stats = Instant::now() - Duration::from_secs(10);
    let mut replies = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        // Each wake-up of this loop costs CPU on an idle agent; a reload asked through the
        // API wakes it at once, a signal within MAIN_LOOP_TICK.
        if let Ok(req) = reload_rx.recv_timeout(MAIN_LOOP_TICK) {
            replies.push(req.reply);
        }
        flusher.tick();
        // Every second while someone reads the API, else rarely: an idle agent stays idle.
        let watched = state.read_recently(Duration::from_secs(60));
        let (state_every, stats_every) = if watched {
            (Duration::from_secs(1), Duration::from_secs(5))
        } else {
            (Duration::from_secs(30), Duration::from_secs(60))
        };
        if last_state.elapsed() >= state_every {
            last_state = Instant::now();
            *state.metrics.lock() = flusher.snapshot();
            state.observe_logs(&snapshot(&pipeline));
            if let (Some(intake), Some(info)) = (&local_intake, &state.local_intake) {
                let c = intake.running.counters();
                *info.ingest.lock() = [
                    c.logs_stored.load(Ordering::Relaxed),
                    c.logs_truncated.load(Ordering::Relaxed),
                    c.logs_deleted.load(Ordering::Relaxed),
                ];
            }
        }
        if let (Some(intake), Some(info)) = (&local_intake, &state.local_intake) {
            if last_intake_stats.elapsed() >= stats_every {
                last_intake_stats = Instant::now();
                let stats = intake.runtime.block_on(async {
                    tokio::time::timeout(Duration::from_secs(2), intake.running.stats()).await
                });
                if let Ok(Ok(stats)) = stats {
                    *info.stats.lock() = Some(stats);
                }
                let monitors = intake.runtime.block_on(async {
                    tokio::time::timeout(
                        Duration::from_secs(2),
                        intake.running.monitors().summary(),
                    )
                    .await
                });
                if let Ok(Ok(summary)) = monitors {
                    *info.monitors.lock() = Some(summary);
                }
                *info.pipelines.lock() = Some(intake.running.pipelines_status());
            }
        }
        while let Ok(req) = reload_rx.try_recv() {
            replies.push(req.reply);
        }
        if hup.swap(false, Ordering::Relaxed) || !replies.is_empty() {
            let (next, answer) = reloader.reload(scheduler, &state);
            scheduler = next;
            *state.last_reload.lock() = Some(answer.clone());
            for reply in replies.drain(..) {
                let _ = reply.send(answer.clone());
            }
        }
        if let Some(path) = &args.counters_file {
            if last_write.elapsed() >= Duration::from_secs(1) {
                last_write = Instant::now();
                write_counters(path, &snapshot(&pipeline), &flusher.snapshot());
            }
        }
    }
    tracing::info!("stopping: waiting for running checks");
    if let Some(server) = api_server {
        server.stop();
    }
    let still = scheduler.stop(Duration::from_secs(args.grace_secs));
    if !still.is_empty() {
        tracing::warn!(checks = ?still, "checks still running at exit: what they staged but did not commit is not durable");
    }
    let grace = Duration::try_from_secs_f64(args.send_grace_secs).unwrap_or(Duration::ZERO);
    // Metrics first: their last flush goes to the spool at once, and the logs pipeline's own
    // grace then runs while the forwarder's last payloads are delivered.
    let metrics = flusher.shutdown(grace);
    if let Some(path) = &args.counters_file {
        write_counters(path, &snapshot(&pipeline), &metrics);
    }
    if let Some(p) = pipeline {
        p.shutdown(grace).context("stopping the logs pipeline")?;
    }
    // After the pipeline: its last sends go to this intake.
    if let Some(intake) = local_intake {
        intake.stop();
    }
    common::remove_pid_file(&agent.run_path);
    tracing::info!("cairn stopped");
    Ok(ExitCode::SUCCESS)
}

/// The local API on `cmd_host:cmd_port`. An agent that cannot bind it still runs (its
/// checks matter more than its status), and says so at error level.
fn start_api(agent: &AgentConfig, state: Arc<api::AgentState>) -> Option<api::ApiServer> {
    let token_path = agent.run_path.join(AUTH_TOKEN_FILE);
    let token = match cairn_intake::load_or_create_token(&token_path) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "local API not started: no token; cairn status and cairn reload cannot reach this agent");
            return None;
        }
    };
    let listen = crate::api_client::api_authority(agent);
    match api::start(&listen, token, state) {
        Ok(server) => {
            tracing::info!(address = %server.local_addr, "local API listening");
            Some(server)
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "local API not started: cairn status and cairn reload cannot reach this agent (SIGHUP still reloads)");
            None
        }
    }
}

fn logs_sources(
    integrations: &[cairn_config::IntegrationConfig],
) -> std::collections::BTreeMap<String, api::LogsSource> {
    integrations
        .iter()
        .filter_map(|i| {
            let e = i.integration_logs_entry()?;
            Some((
                i.name.clone(),
                api::LogsSource {
                    kind: e.kind.clone(),
                    source: e.source.clone(),
                    service: e.service.clone(),
                },
            ))
        })
        .collect()
}

/// What a reload needs that does not change with it.
struct Reloader {
    config_dir: PathBuf,
    datadog_yaml: Option<Vec<u8>>,
    check_runners: usize,
    watchdog: cairn_checks::WatchdogConfig,
    on_report: Arc<cairn_checks::scheduler::ReportFn>,
    sink: Arc<dyn RecordSink>,
}

/// How often the main loop looks at the stop and SIGHUP flags and the metrics flush clock.
const MAIN_LOOP_TICK: Duration = Duration::from_millis(200);

/// A running check must finish its run within this for a reload to proceed.
const RELOAD_WAIT: Duration = Duration::from_secs(60);

impl Reloader {
    /// Re-reads the config and reconciles the checks. A config with any error is refused
    /// whole (the running checks go on untouched) and the answer names file:line.
    fn reload(
        &mut self,
        scheduler: cairn_checks::Scheduler,
        state: &api::AgentState,
    ) -> (cairn_checks::Scheduler, serde_json::Value) {
        let at = cairn_intake::timefmt::format_rfc3339_ms(cairn_intake::timefmt::now_ms());
        let refuse = |scheduler, errors: Vec<String>| {
            for e in &errors {
                tracing::error!(error = %e, "reload refused; the running config is kept");
            }
            let answer = serde_json::json!({
                "ok": false, "at": at, "errors": errors,
                "message": "reload refused: the running config is kept",
            });
            (scheduler, answer)
        };
        tracing::info!("reloading the configuration");
        let loaded = match cairn_config::load_from_process_env(&self.config_dir) {
            Ok(l) => l,
            Err(e) => return refuse(scheduler, vec![e.to_string()]),
        };
        if !loaded.errors.is_empty() {
            return refuse(
                scheduler,
                loaded.errors.iter().map(|e| e.to_string()).collect(),
            );
        }
        let files: Vec<String> = {
            let mut f: Vec<String> = scheduler
                .statuses()
                .into_iter()
                .map(|s| s.check_file)
                .collect();
            f.sort();
            f.dedup();
            f
        };
        let syntax = cairn_checks::compile_check_files(&files);
        if !syntax.is_empty() {
            return refuse(scheduler, syntax);
        }
        let yaml = std::fs::read(self.config_dir.join("datadog.yaml")).ok();
        let yaml_changed = yaml != self.datadog_yaml;
        let (checks, statuses) = match scheduler.stop_for_reload(RELOAD_WAIT) {
            Ok(x) => x,
            Err((scheduler, running)) => {
                return refuse(
                    scheduler,
                    vec![format!(
                        "checks still running after {} s: {}; try again later",
                        RELOAD_WAIT.as_secs(),
                        running.join(", ")
                    )],
                )
            }
        };
        let (checks, errors, summary) = cairn_checks::reload(
            &loaded.agent,
            &loaded.integrations,
            &self.sink,
            checks,
            yaml_changed,
        );
        for e in &errors {
            tracing::error!("{e}");
        }
        let scheduler = cairn_checks::Scheduler::start_keeping(
            checks,
            self.check_runners,
            self.watchdog.clone(),
            self.on_report.clone(),
            statuses,
        );
        *state.board.lock() = scheduler.status_board();
        *state.logs_sources.lock() = logs_sources(&loaded.integrations);
        *state.load_errors.lock() = errors.iter().map(|e| e.to_string()).collect();
        let mut warnings = Vec::new();
        if yaml_changed {
            self.datadog_yaml = yaml;
            warnings.push(
                "datadog.yaml changed: every check was restarted with it; the logs pipeline, forwarder, local intake and local API keep their settings until the agent restarts".to_string(),
            );
        }
        tracing::info!(
            kept = summary.kept.len(),
            started = summary.started.len(),
            stopped = summary.stopped.len(),
            errors = errors.len(),
            "reloaded"
        );
        let answer = serde_json::json!({
            "ok": errors.is_empty(),
            "at": at,
            "kept": summary.kept,
            "started": summary.started,
            "stopped": summary.stopped,
            "errors": errors.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            "warnings": warnings,
        });
        (scheduler, answer)
    }
}

/// The logs pipeline's counters, with the metrics' under `"metrics"`.
fn write_counters(path: &Path, snapshot: &CountersSnapshot, metrics: &serde_json::Value) {
    let tmp = path.with_extension("tmp");
    let mut all = serde_json::to_value(snapshot).unwrap_or_default();
    if let Some(obj) = all.as_object_mut() {
        obj.insert("metrics".into(), metrics.clone());
    }
    let written = serde_json::to_vec_pretty(&all)
        .map_err(std::io::Error::other)
        .and_then(|bytes| std::fs::write(&tmp, bytes))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        tracing::warn!(path = %path.display(), error = %e, "counters file not written");
    }
}

/// The benchmark reference sink: takes records and forgets them.
struct DiscardSink;

impl RecordSink for DiscardSink {
    fn load_state(&self, _check_id: &str) -> Result<CacheState, SinkError> {
        Ok(CacheState::new())
    }
    fn append(&self, _check_id: &str, staging: &mut Staging) -> Result<(), SinkError> {
        staging.clear();
        Ok(())
    }
    fn commit(&self, _check_id: &str) -> Result<(), SinkError> {
        Ok(())
    }
}
