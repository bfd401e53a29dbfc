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

/// Whether a key names a secret: any `_`/`-` separated part (or the whole key, plural
/// included) is one of the usual names, as Datadog's scrubber does.
fn is_secret_key(key: &str) -> bool {
    const SECRET_PARTS: [&str; 9] = [
        "password",
        "passwd",
        "pass",
        "pwd",
        "secret",
        "token",
        "apikey",
        "credential",
        "credentials",
    ];
    const SECRET_KEYS: [&str; 5] = [
        "api_key",
        "app_key",
        "private_key",
        "auth_token",
        "access_key",
    ];
    let k = key.to_ascii_lowercase();
    SECRET_KEYS.iter().any(|s| k.contains(s))
        || k.split(['_', '-', '.']).any(|part| {
            let singular = part.strip_suffix('s').unwrap_or(part);
            SECRET_PARTS.contains(&part) || SECRET_PARTS.contains(&singular)
        })
}

/// `scheme://user:password@host` keeps the user, hides the password.
fn redact_url_password(s: &str) -> Option<String> {
    static URL_USERINFO: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = URL_USERINFO.get_or_init(|| {
        regex::Regex::new(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):([^@/\s]+)@")
            .expect("a valid regex")
    });
    re.is_match(s)
        .then(|| re.replace_all(s, "$1:********@").into_owned())
}

pub fn redact(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| {
                    let x = if is_secret_key(k) && !x.is_null() {
                        Value::String("********".into())
                    } else {
                        redact(x)
                    };
                    (k.clone(), x)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(redact).collect()),
        Value::String(s) => redact_url_password(s)
            .map(Value::String)
            .unwrap_or_else(|| v.clone()),
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
                println!(
                    "instance {} ({}), every {}s:",
                    i["check_id"].as_str().unwrap_or_default(),
                    i["source"].as_str().unwrap_or_default(),
                    i["min_collection_interval"]
                );
                println!("  {}", i["config"]);
            }
            for l in c["logs"].as_array().into_iter().flatten() {
                println!(
                    "logs entry ({}): {}",
                    l["location"].as_str().unwrap_or_default(),
                    l
                );
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
    Ok(if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
