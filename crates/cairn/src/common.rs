//! Pieces the subcommands share: logging setup and config loading with reporting.

use std::path::Path;

use anyhow::Context;
use cairn_config::LoadedConfig;

/// The Datadog Agent's log levels, as `-l/--log-level` takes them.
pub const LOG_LEVELS: [&str; 8] = [
    "trace", "debug", "info", "warn", "warning", "error", "critical", "off",
];

/// Logs go to stderr so that stdout stays for command output (`cairn check --json`).
/// A command's `--log-level` (one of [`LOG_LEVELS`]) wins; else `CAIRN_LOG` (an env-filter)
/// overrides the default `info`. `cairn run` later applies its config's `log_level` and log
/// file ([`crate::agent_log::start_agent_log`]); `CAIRN_LOG` still wins there.
pub fn init_tracing(level: Option<&str>) {
    crate::agent_log::install(level);
}

/// Loads the config dir; warnings are logged, a fatal problem is an error naming the file.
pub fn load_config(config_dir: &Path) -> anyhow::Result<LoadedConfig> {
    let loaded = cairn_config::load_from_process_env(config_dir)
        .with_context(|| format!("loading config from {}", config_dir.display()))?;
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    Ok(loaded)
}

/// Raises the soft limit on open files to the hard limit. The embedded intake accepts
/// connections from any local user, and the buffer must still be able to open segments: the
/// default soft limit of 1,024 is too close for comfort. Failing to raise it is not fatal.
pub fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 || lim.rlim_cur >= lim.rlim_max {
            return;
        }
        let before = lim.rlim_cur;
        lim.rlim_cur = lim.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
            tracing::debug!(
                from = before,
                to = lim.rlim_cur,
                "raised the open-files limit"
            );
        }
    }
}

/// `<run_path>/cairn.pid`: the pid of the `cairn run` using this run_path, so that other
/// commands can tell that an agent runs there without touching its buffer lock (probing that
/// lock would hold it for an instant, and an agent starting just then would refuse to start).
pub const PID_FILE: &str = "cairn.pid";

/// Written once the agent holds its run_path; a failure only costs the warning of
/// `cairn check`, so it is logged, not fatal.
pub fn write_pid_file(run_path: &Path) {
    let pid = format!("{}\n", std::process::id());
    if let Err(e) = cairn_logs::private_fs::write_atomic(run_path, PID_FILE, pid.as_bytes()) {
        tracing::warn!(error = %e, path = %run_path.join(PID_FILE).display(), "cannot write the pid file");
    }
}

pub fn remove_pid_file(run_path: &Path) {
    let _ = std::fs::remove_file(run_path.join(PID_FILE));
}

/// The pid of a live `cairn` process that wrote `run_path`'s pid file, if any. A file left by
/// a `kill -9` names a dead process (or, rarely, a reused pid of another program): ignored.
pub fn running_agent(run_path: &Path) -> Option<u32> {
    let bytes = cairn_logs::private_fs::read(&run_path.join(PID_FILE)).ok()?;
    let pid: u32 = std::str::from_utf8(&bytes).ok()?.trim().parse().ok()?;
    if pid == std::process::id() {
        return None;
    }
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    (comm.trim() == "cairn").then_some(pid)
}
