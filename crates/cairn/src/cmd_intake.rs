//! `cairn intake`: the local intake and Log Explorer as a standalone server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use cairn_intake::timefmt::{parse_duration, parse_size};
use cairn_intake::IntakeConfig;

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
    /// Delete logs older than this (s, m, h, d, w).
    #[arg(long, default_value = "7d", value_parser = parse_duration)]
    pub retention: Duration,
    /// Delete the oldest logs while the store is larger than this (MiB, GiB, MB, GB).
    #[arg(long, default_value = "2GiB", value_parser = parse_size)]
    pub max_size: u64,
}

pub fn run(args: IntakeArgs) -> anyhow::Result<()> {
    let cfg = IntakeConfig {
        listen: args.listen,
        data_dir: args.data_dir,
        api_keys: args.api_keys,
        retention: args.retention,
        max_size_bytes: args.max_size,
        ..IntakeConfig::new(PathBuf::new())
    };
    let data_dir = cfg.data_dir.clone();
    cairn_intake::serve_until_signal(cfg, |running| {
        println!("cairn intake listening on {}", running.url());
        println!("Log Explorer: {}", running.explorer_url());
    })
    .with_context(|| format!("local intake with data in {}", data_dir.display()))
}
