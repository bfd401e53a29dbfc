//! `cairn run`: load every check, schedule them, stop cleanly on SIGTERM or SIGINT.

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cairn_logs::{RecordSink, StateFileSink, StateStore};

use crate::common;

#[derive(clap::Args)]
pub struct RunArgs {
    /// Seconds to let running checks finish after a stop signal.
    #[arg(long, default_value_t = 10)]
    grace_secs: u64,
}

pub fn run(config_dir: &Path, args: RunArgs) -> anyhow::Result<ExitCode> {
    let loaded = common::load_config(config_dir)?;
    for e in &loaded.errors {
        tracing::error!("{e}");
    }
    let store = StateStore::open(&loaded.agent.run_path)
        .with_context(|| format!("opening run_path {}", loaded.agent.run_path.display()))?;
    let sink: Arc<dyn RecordSink> = StateFileSink::new(store);
    let (checks, errors) = cairn_checks::load_all(&loaded.agent, &loaded.integrations, &sink)?;
    for e in &errors {
        tracing::error!("{e}");
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }
    tracing::info!(checks = checks.len(), version = cairn_checks::VERSION, "cairn started");
    let scheduler = cairn_checks::Scheduler::start(checks, loaded.agent.check_runners, Arc::new(|_| {}));
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
    tracing::info!("stopping: waiting for running checks");
    let still = scheduler.stop(Duration::from_secs(args.grace_secs));
    if !still.is_empty() {
        tracing::warn!(checks = ?still, "checks still running at exit; their uncommitted records are lost only if not yet staged");
    }
    tracing::info!("cairn stopped");
    Ok(ExitCode::SUCCESS)
}
