//! `cairn stream_logs` (stub).

use std::path::Path;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct StreamLogsArgs {}

pub fn run(_config_dir: &Path, _args: StreamLogsArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}
