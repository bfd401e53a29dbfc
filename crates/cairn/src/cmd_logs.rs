//! `cairn logs search` and `cairn logs tail`: read logs from a running intake.

use std::time::Duration;

use anyhow::Context;
use cairn_intake::client::{self, ClientConfig, SearchOptions, TailOptions};

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    #[command(subcommand)]
    pub command: LogsCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum LogsCommand {
    /// Print logs matching a query (Datadog search syntax), newest first.
    Search(SearchArgs),
    /// Print the last matching logs, then new ones as they arrive.
    Tail(TailArgs),
}

#[derive(Debug, clap::Args)]
pub struct Target {
    /// The intake to ask.
    #[arg(long, default_value = client::DEFAULT_URL)]
    pub url: String,
    /// Sent as DD-API-KEY when the intake checks keys.
    #[arg(long, env = "CAIRN_INTAKE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// One JSON object per line instead of one text line per log.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct SearchArgs {
    /// e.g. `service:web status:error`, `@duration_ms:>100 -host:db*`.
    #[arg(default_value = "*")]
    pub query: String,
    /// How far back (`15m`, `2h`, `7d`), or `now-1h`, ISO-8601, epoch ms.
    #[arg(long, default_value = "15m")]
    pub from: String,
    /// End of the range (default: now).
    #[arg(long)]
    pub to: Option<String>,
    /// Most logs to print.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, clap::Args)]
pub struct TailArgs {
    #[arg(default_value = "*")]
    pub query: String,
    /// Seconds between polls.
    #[arg(long, default_value_t = 1.0)]
    pub every: f64,
    #[command(flatten)]
    pub target: Target,
}

fn client_config(t: &Target) -> ClientConfig {
    ClientConfig {
        url: t.url.clone(),
        api_key: t.api_key.clone(),
        ..ClientConfig::default()
    }
}

pub fn run(args: LogsArgs) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match args.command {
        LogsCommand::Search(a) => {
            let opts = SearchOptions {
                query: a.query,
                from: a.from,
                to: a.to,
                limit: a.limit,
                json: a.target.json,
            };
            client::run_search(client_config(&a.target), &opts, &mut out)
                .with_context(|| format!("searching {}", a.target.url))?;
        }
        LogsCommand::Tail(a) => {
            let opts = TailOptions {
                query: a.query,
                json: a.target.json,
                poll_every: Duration::from_secs_f64(a.every.max(0.1)),
                stop_after: None,
            };
            client::run_tail(client_config(&a.target), &opts, &mut out)
                .with_context(|| format!("tailing {}", a.target.url))?;
        }
    }
    Ok(())
}
