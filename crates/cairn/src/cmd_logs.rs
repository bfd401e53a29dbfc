//! `cairn logs search` and `cairn logs tail`: read logs from a running intake.

use std::path::{Path, PathBuf};
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
    /// The intake to ask. Default: the address the agent in --config-dir gives its embedded
    /// intake (`logs_config.intake.listen`), else http://127.0.0.1:10518.
    #[arg(long)]
    pub url: Option<String>,
    /// Sent as DD-API-KEY when the intake checks keys.
    #[arg(long, env = "CAIRN_INTAKE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// The intake's token. Default: `logs_config.intake.token`, else the file
    /// <run_path>/auth_token of the agent in --config-dir.
    #[arg(long, env = "CAIRN_INTAKE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Read the token from this file (e.g. <data-dir>/auth_token of `cairn intake`).
    #[arg(long, conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
    /// One JSON object per line instead of text.
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

pub(crate) fn client_config(config_dir: &Path, t: &Target) -> anyhow::Result<ClientConfig> {
    // The agent's config is read once, quietly (its warnings belong to `cairn run`, not to a
    // search), and only when the flags leave something to take from it.
    let needed = t.url.is_none() || (t.token.is_none() && t.token_file.is_none());
    let agent = needed
        .then(|| cairn_config::load_from_process_env(config_dir).ok())
        .flatten()
        .map(|l| l.agent);
    Ok(ClientConfig {
        url: match &t.url {
            Some(u) => u.clone(),
            None => agent_intake_url(agent.as_ref()),
        },
        api_key: t.api_key.clone(),
        token: token(config_dir, agent.as_ref(), t)?,
        ..ClientConfig::default()
    })
}

/// Where the agent would listen: its `logs_config.intake.listen`, with an unspecified address
/// asked on loopback; a port of 0 (chosen at start) cannot be known from the config, so then
/// the default.
fn agent_intake_url(agent: Option<&cairn_config::AgentConfig>) -> String {
    let listen = agent.and_then(|a| a.logs.intake_listen.parse::<std::net::SocketAddr>().ok());
    match listen {
        Some(mut addr) if addr.port() != 0 => {
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            format!("http://{addr}")
        }
        _ => client::DEFAULT_URL.to_owned(),
    }
}

/// `--token`, `--token-file`, else the agent's: `logs_config.intake.token` or the token file
/// in its run_path. No token found is not an error here: an intake without auth needs none,
/// and one with auth answers 401 with what to do.
fn token(
    config_dir: &Path,
    agent: Option<&cairn_config::AgentConfig>,
    t: &Target,
) -> anyhow::Result<Option<String>> {
    if let Some(tok) = &t.token {
        return Ok(Some(tok.trim().to_owned()));
    }
    if let Some(path) = &t.token_file {
        return read_token_file(path).map(Some);
    }
    let run_path = match agent {
        Some(a) => {
            if let Some(tok) = &a.logs.intake_token {
                return Ok(Some(tok.expose().to_owned()));
            }
            a.run_path.clone()
        }
        None => config_dir.join("run"),
    };
    let path = run_path.join(crate::cmd_run::AUTH_TOKEN_FILE);
    match std::fs::symlink_metadata(&path) {
        Ok(_) => read_token_file(&path).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::Error::new(e).context(format!("token file {}", path.display()))),
    }
}

fn read_token_file(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "reading the intake's token from {} (pass --token if it is not yours)",
            path.display()
        )
    })?;
    let tok = text.trim();
    anyhow::ensure!(!tok.is_empty(), "token file {} is empty", path.display());
    Ok(tok.to_owned())
}

pub fn run(config_dir: &Path, args: LogsArgs) -> anyhow::Result<()> {
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
            let cfg = client_config(config_dir, &a.target)?;
            let url = cfg.url.clone();
            client::run_search(cfg, &opts, &mut out).with_context(|| format!("searching {url}"))?;
        }
        LogsCommand::Tail(a) => {
            let opts = TailOptions {
                query: a.query,
                json: a.target.json,
                poll_every: Duration::from_secs_f64(a.every.max(0.1)),
                stop_after: None,
            };
            let cfg = client_config(config_dir, &a.target)?;
            let url = cfg.url.clone();
            client::run_tail(cfg, &opts, &mut out).with_context(|| format!("tailing {url}"))?;
        }
    }
    Ok(())
}
