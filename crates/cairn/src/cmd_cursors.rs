//! `cairn cursors` (stub).

use std::path::Path;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct CursorsArgs {}

pub fn run(_config_dir: &Path, _args: CursorsArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}
