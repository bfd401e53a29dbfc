//! `cairn metrics query`, `cairn events list`, `cairn checks status`: read what checks sent
//! to a running local intake. The intake and its token are found as for `cairn logs`.

use std::path::Path;

use anyhow::Context;
use cairn_intake::metrics::client::{self, Range};

use crate::cmd_logs::{client_config, Target};

#[derive(Debug, clap::Args)]
pub struct MetricsArgs {
    #[command(subcommand)]
    pub command: MetricsCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum MetricsCommand {
    /// Print the series of a metric query (Datadog syntax), one row per group.
    Query(QueryArgs),
}

#[derive(Debug, clap::Args)]
pub struct RangeArgs {
    /// How far back (`15m`, `1h`, `7d`), or `now-1h`, ISO-8601, epoch ms.
    #[arg(long, default_value = "1h")]
    pub from: String,
    /// End of the range (default: now).
    #[arg(long)]
    pub to: Option<String>,
}

impl RangeArgs {
    fn range(&self) -> Range {
        Range {
            from: self.from.clone(),
            to: self.to.clone().filter(|t| t != "now"),
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// e.g. `avg:apache.net.hits{*} by {host}`, `sum:app.requests{env:prod}.as_rate()`.
    pub query: String,
    #[command(flatten)]
    pub range: RangeArgs,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    #[command(subcommand)]
    pub command: EventsCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum EventsCommand {
    /// Print events, newest first.
    List(EventsListArgs),
}

#[derive(Debug, clap::Args)]
pub struct EventsListArgs {
    #[command(flatten)]
    pub range: RangeArgs,
    /// Only events with every one of these tags (comma-separated, `*` wildcards).
    #[arg(long)]
    pub tags: Option<String>,
    /// Only events from these sources (`source_type_name`, comma-separated).
    #[arg(long)]
    pub sources: Option<String>,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, clap::Args)]
pub struct ChecksArgs {
    #[command(subcommand)]
    pub command: ChecksCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum ChecksCommand {
    /// The latest service-check status per check, host and tag set.
    Status(ChecksStatusArgs),
}

#[derive(Debug, clap::Args)]
pub struct ChecksStatusArgs {
    /// Only this check (`*` wildcards allowed).
    #[arg(long)]
    pub check: Option<String>,
    #[command(flatten)]
    pub target: Target,
}

pub fn run_metrics(config_dir: &Path, args: MetricsArgs) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match args.command {
        MetricsCommand::Query(a) => {
            let cfg = client_config(config_dir, &a.target)?;
            let url = cfg.url.clone();
            client::run_metrics_query(cfg, &a.query, &a.range.range(), a.target.json, &mut out)
                .with_context(|| format!("querying {url}"))?;
        }
    }
    Ok(())
}

pub fn run_events(config_dir: &Path, args: EventsArgs) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match args.command {
        EventsCommand::List(a) => {
            let cfg = client_config(config_dir, &a.target)?;
            let url = cfg.url.clone();
            client::run_events_list(
                cfg,
                &a.range.range(),
                a.tags.as_deref(),
                a.sources.as_deref(),
                a.target.json,
                &mut out,
            )
            .with_context(|| format!("listing events of {url}"))?;
        }
    }
    Ok(())
}

pub fn run_checks(config_dir: &Path, args: ChecksArgs) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match args.command {
        ChecksCommand::Status(a) => {
            let cfg = client_config(config_dir, &a.target)?;
            let url = cfg.url.clone();
            client::run_checks_status(cfg, a.check.as_deref(), a.target.json, &mut out)
                .with_context(|| format!("reading service checks of {url}"))?;
        }
    }
    Ok(())
}
