//! `cairn reload`: asks the running agent to re-read `datadog.yaml` and `conf.d/` (as SIGHUP
//! does) and prints what changed; a refused reload prints why (file:line) and exits 1.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

use crate::api_client::{ApiClient, ApiError};

#[derive(clap::Args)]
pub struct ReloadArgs {
    /// Print the agent's answer as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(config_dir: &Path, args: ReloadArgs) -> anyhow::Result<ExitCode> {
    let loaded = crate::common::load_config(config_dir)?;
    let client = ApiClient::new(&loaded.agent)?;
    let answer = match client.post("/reload", &serde_json::json!({}), Duration::from_secs(320)) {
        Ok(v) => v,
        Err(e) => match e.downcast::<ApiError>() {
            Ok(api) if api.status == 422 => api.body,
            Ok(api) => return Err(api.into()),
            Err(e) => return Err(e),
        },
    };
    let ok = answer.get("ok").and_then(Value::as_bool).unwrap_or(false);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let list = |key: &str| -> Vec<String> {
        answer
            .get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let errors = list("errors");
    if answer.get("kept").is_none() {
        println!("reload refused: the running config is kept");
        for e in &errors {
            println!("  error: {e}");
        }
        return Ok(ExitCode::FAILURE);
    }
    println!(
        "reloaded: {} kept, {} started, {} stopped",
        list("kept").len(),
        list("started").len(),
        list("stopped").len()
    );
    for id in list("started") {
        println!("  started: {id}");
    }
    for id in list("stopped") {
        println!("  stopped: {id}");
    }
    for w in list("warnings") {
        println!("  warning: {w}");
    }
    for e in &errors {
        println!("  error: {e}");
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
