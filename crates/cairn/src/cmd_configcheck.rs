//! `cairn configcheck`: what the agent would load, where each piece came from.

use std::path::Path;
use std::process::ExitCode;

use serde_json::Value;

use crate::common;

#[derive(clap::Args)]
pub struct ConfigcheckArgs {
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Keys whose values never get printed.
fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["password", "passwd", "pass", "secret", "token", "api_key", "apikey", "app_key", "private_key", "auth"]
        .iter()
        .any(|s| k == *s || k.ends_with(&format!("_{s}")) || k.starts_with(&format!("{s}_")))
}

pub fn redact(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| {
                    let x = if is_secret_key(k) && !x.is_null() { Value::String("********".into()) } else { redact(x) };
                    (k.clone(), x)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(redact).collect()),
        other => other.clone(),
    }
}

pub fn run(config_dir: &Path, args: ConfigcheckArgs) -> anyhow::Result<ExitCode> {
    let loaded = common::load_config(config_dir)?;
    let mut checks = Vec::new();
    for integ in &loaded.integrations {
        let instances: Vec<Value> = integ
            .instances
            .iter()
            .map(|i| {
                serde_json::json!({
                    "check_id": cairn_checks::check_id(&integ.name, &i.value, &integ.init_config),
                    "source": i.location.to_string(),
                    "min_collection_interval": i.min_collection_interval_secs,
                    "config": redact(&i.value),
                })
            })
            .collect();
        let logs: Vec<Value> = integ
            .logs
            .iter()
            .map(|l| {
                serde_json::json!({
                    "type": l.kind, "source": l.source, "service": l.service, "tags": l.tags,
                    "log_processing_rules": l.processing_rules.iter().map(|r| r.name.clone()).collect::<Vec<_>>(),
                    "location": l.location.to_string(),
                })
            })
            .collect();
        let mut warnings = Vec::new();
        if integ.integration_logs_entry().is_none() {
            warnings.push(format!(
                "{}: no logs entry with `type: integration`: this check's send_log logs will be dropped",
                integ.path.display()
            ));
        }
        checks.push(serde_json::json!({
            "name": integ.name,
            "file": integ.path.display().to_string(),
            "init_config": redact(&integ.init_config),
            "instances": instances,
            "logs": logs,
            "warnings": warnings,
        }));
    }
    let warnings: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
    let errors: Vec<String> = loaded.errors.iter().map(|e| e.to_string()).collect();
    if args.json {
        let out = serde_json::json!({"checks": checks, "warnings": warnings, "errors": errors});
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for c in &checks {
            println!("=== {} ===", c["name"].as_str().unwrap_or_default());
            println!("file: {}", c["file"].as_str().unwrap_or_default());
            println!("init_config: {}", c["init_config"]);
            for i in c["instances"].as_array().into_iter().flatten() {
                println!("instance {} ({}), every {}s:", i["check_id"].as_str().unwrap_or_default(), i["source"].as_str().unwrap_or_default(), i["min_collection_interval"]);
                println!("  {}", i["config"]);
            }
            for l in c["logs"].as_array().into_iter().flatten() {
                println!("logs entry ({}): {}", l["location"].as_str().unwrap_or_default(), l);
            }
            for w in c["warnings"].as_array().into_iter().flatten() {
                println!("warning: {}", w.as_str().unwrap_or_default());
            }
            println!();
        }
        for w in &warnings {
            println!("warning: {w}");
        }
        for e in &errors {
            println!("error: {e}");
        }
    }
    Ok(if errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
