//! `cairn intake`: the local intake and Log Explorer as a standalone server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use cairn_intake::timefmt::{parse_duration, parse_size};
use cairn_intake::{IntakeAuth, IntakeConfig};

#[derive(Debug, clap::Args)]
pub struct IntakeArgs {
    /// Address to listen on; loopback unless you mean to share your logs.
    #[arg(long, default_value = cairn_intake::DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Directory that holds the store (created 0700).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Accept only requests carrying one of these keys in DD-API-KEY (repeatable, or
    /// comma-separated in the environment).
    #[arg(
        long = "api-key",
        env = "CAIRN_INTAKE_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_keys: Vec<String>,
    /// The session token every request must carry (cookie, DD-API-KEY or Authorization:
    /// Bearer). Default: generated into <data-dir>/auth_token (0600) and reused.
    #[arg(long, env = "CAIRN_INTAKE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// No token: anyone who can connect may read and write (only with --api-key beyond
    /// loopback).
    #[arg(long, conflicts_with = "token")]
    pub no_auth: bool,
    /// Also answer to this Host name (e.g. the machine's DNS name when listening on a LAN
    /// address); loopback names and the listen address are always accepted. Repeatable.
    #[arg(long = "host-name")]
    pub host_names: Vec<String>,
    /// Delete logs older than this (s, m, h, d, w).
    #[arg(long, default_value = "7d", value_parser = parse_duration)]
    pub retention: Duration,
    /// Delete the oldest logs while the store is larger than this (MiB, GiB, MB, GB).
    #[arg(long, default_value = "2GiB", value_parser = parse_size)]
    pub max_size: u64,
    /// Pipelines applied to each log before it is stored (YAML or JSON, Datadog's Logs
    /// Pipelines schema). Default: <data-dir>/pipelines.yaml. Reloaded on change.
    #[arg(long)]
    pub pipelines: Option<PathBuf>,
    /// Log monitors and their webhooks. Default: <data-dir>/monitors.yaml.
    #[arg(long)]
    pub monitors: Option<PathBuf>,
    /// How often the monitors are evaluated (s, m, h).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub monitor_interval: Duration,
}

pub fn run(args: IntakeArgs) -> anyhow::Result<()> {
    let auth = if args.no_auth {
        IntakeAuth::Disabled
    } else if let Some(t) = args.token {
        IntakeAuth::Token(t)
    } else {
        IntakeAuth::TokenFile(args.data_dir.join(crate::cmd_run::AUTH_TOKEN_FILE))
    };
    let pipelines_file = args
        .pipelines
        .unwrap_or_else(|| args.data_dir.join(cairn_intake::PIPELINES_FILE));
    let monitors_file = args
        .monitors
        .unwrap_or_else(|| args.data_dir.join(cairn_intake::MONITORS_FILE));
    let cfg = IntakeConfig {
        listen: args.listen,
        data_dir: args.data_dir,
        api_keys: args.api_keys,
        auth,
        host_names: args.host_names,
        retention: args.retention,
        max_size_bytes: args.max_size,
        pipelines_file,
        monitors_file,
        monitor_interval: args.monitor_interval,
        ..IntakeConfig::new(PathBuf::new())
    };
    let data_dir = cfg.data_dir.clone();
    cairn_intake::serve_until_signal(cfg, |running| {
        println!("cairn intake listening on {}", running.local_addr());
        // With the token in it, for the person who started the intake (as Jupyter does).
        println!("Log Explorer: {}", running.explorer_url());
    })
    .with_context(|| format!("local intake with data in {}", data_dir.display()))
}
