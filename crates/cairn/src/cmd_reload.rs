//! `cairn reload` (stub).

use std::path::Path;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct ReloadArgs {}

pub fn run(_config_dir: &Path, _args: ReloadArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}
