//! `cairn status` (stub).

use std::path::Path;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct StatusArgs {}

pub fn run(_config_dir: &Path, _args: StatusArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}
