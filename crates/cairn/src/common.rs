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
/// overrides the default `info`.
pub fn init_tracing(level: Option<&str>) {
    let filter = match level {
        Some(l) => tracing_subscriber::EnvFilter::new(match l {
            "warning" => "warn",
            "critical" => "error",
            other => other,
        }),
        None => tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
    };
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
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
