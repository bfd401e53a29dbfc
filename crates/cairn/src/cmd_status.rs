//! `cairn status [--json]`: the running agent's state, from its local API, laid out like
//! `agent status`.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use crate::api_client::ApiClient;

#[derive(clap::Args)]
pub struct StatusArgs {
    /// Print the status as JSON (the local API's `/status` answer).
    #[arg(long, short = 'j')]
    json: bool,
    /// With --json: indented.
    #[arg(long)]
    pretty_json: bool,
}

pub fn run(config_dir: &Path, args: StatusArgs) -> anyhow::Result<ExitCode> {
    let loaded = crate::common::load_config(config_dir)?;
    let client = ApiClient::new(&loaded.agent)?;
    let status = client.get("/status", Duration::from_secs(10))?;
    if args.json || args.pretty_json {
        let text = if args.pretty_json {
            serde_json::to_string_pretty(&status)?
        } else {
            serde_json::to_string(&status)?
        };
        println!("{text}");
    } else {
        print!("{}", crate::api::render_text(&status));
    }
    Ok(ExitCode::SUCCESS)
}
