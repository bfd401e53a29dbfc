//! `cairn monitors list|show|test`: the log monitors of a running local intake. The intake
//! and its token are found as for `cairn logs`.

use std::path::Path;

use anyhow::Context;
use cairn_intake::monitors::client;

use crate::cmd_logs::{client_config, Target};

#[derive(Debug, clap::Args)]
pub struct MonitorsArgs {
    #[command(subcommand)]
    pub command: MonitorsCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum MonitorsCommand {
    /// One line per monitor: id, overall state, groups not OK, name.
    List(ListArgs),
    /// A monitor's query, thresholds, groups and last transitions.
    Show(OneArgs),
    /// Evaluate a monitor now: the value per group and the state each would be in (nothing
    /// is stored or notified).
    Test(OneArgs),
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, clap::Args)]
pub struct OneArgs {
    /// The monitor's id, or its exact name.
    pub monitor: String,
    #[command(flatten)]
    pub target: Target,
}

pub fn run(config_dir: &Path, args: MonitorsArgs) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match args.command {
        MonitorsCommand::List(a) => {
            let cfg = client_config(config_dir, &a.target)?;
            let url = cfg.url.clone();
            client::run_list(cfg, a.target.json, &mut out)
                .with_context(|| format!("listing the monitors of {url}"))?;
        }
        MonitorsCommand::Show(a) => {
            let cfg = client_config(config_dir, &a.target)?;
            let url = cfg.url.clone();
            client::run_show(cfg, &a.monitor, a.target.json, &mut out)
                .with_context(|| format!("showing monitor {:?} of {url}", a.monitor))?;
        }
        MonitorsCommand::Test(a) => {
            let cfg = client_config(config_dir, &a.target)?;
            let url = cfg.url.clone();
            client::run_test(cfg, &a.monitor, a.target.json, &mut out)
                .with_context(|| format!("evaluating monitor {:?} on {url}", a.monitor))?;
        }
    }
    Ok(())
}
