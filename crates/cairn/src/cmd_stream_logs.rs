//! `cairn stream-logs`: follows, live, the logs the running agent ships (after processing
//! rules), like `agent stream-logs`. Lines the agent skipped because this reader was slow are
//! counted on stderr.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use serde_json::Value;

use crate::api_client::ApiClient;

#[derive(clap::Args)]
pub struct StreamLogsArgs {
    /// Only the logs of this check (its name, or a full check id).
    #[arg(long)]
    check: Option<String>,
    /// Only logs with this `ddsource`.
    #[arg(long)]
    source: Option<String>,
    /// Only logs with this service.
    #[arg(long)]
    service: Option<String>,
    /// One JSON object per line, `{"check_id": …, "log": {…}}`, as the agent ships the log.
    #[arg(long)]
    json: bool,
    /// Stop after this many logs.
    #[arg(long)]
    count: Option<u64>,
}

fn query(args: &StreamLogsArgs) -> String {
    let mut q = Vec::new();
    for (k, v) in [
        ("check", &args.check),
        ("source", &args.source),
        ("service", &args.service),
    ] {
        if let Some(v) = v {
            q.push(format!("{k}={}", percent_encode(v)));
        }
    }
    if q.is_empty() {
        "/stream-logs".into()
    } else {
        format!("/stream-logs?{}", q.join("&"))
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// Control characters from the data are shown, not obeyed by the terminal.
fn text(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    s.chars()
        .map(|c| {
            if c.is_control() || cairn_intake::client::is_bidi_control(c) {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

fn format_line(check_id: &str, log: &Value) -> String {
    format!(
        "Check: {} | Type: integration | Status: {} | Timestamp: {} | Hostname: {} | Service: {} | Source: {} | Tags: {} | Message: {}",
        text(&Value::String(check_id.to_owned())),
        text(&log["status"]),
        text(&log["timestamp"]),
        text(&log["hostname"]),
        text(&log["service"]),
        text(&log["ddsource"]),
        text(&log["ddtags"]),
        text(&log["message"]),
    )
}

pub fn run(config_dir: &Path, args: StreamLogsArgs) -> anyhow::Result<ExitCode> {
    let loaded = crate::common::load_config(config_dir)?;
    let client = ApiClient::new(&loaded.agent)?;
    eprintln!("streaming the logs the agent ships (Ctrl-C stops)…");
    let mut seen = 0u64;
    let mut out = std::io::stdout().lock();
    let mut failed: Option<std::io::Error> = None;
    client.stream_lines(&query(&args), |line| {
        if line.is_empty() {
            return true;
        }
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            return true;
        };
        if let Some(n) = v.get("skipped").and_then(Value::as_u64) {
            eprintln!("({n} logs skipped: this reader was slower than the agent)");
            return true;
        }
        let check_id = v["check_id"].as_str().unwrap_or("");
        let written = if args.json {
            writeln!(out, "{line}")
        } else {
            writeln!(out, "{}", format_line(check_id, &v["log"]))
        }
        .and_then(|()| out.flush());
        if let Err(e) = written {
            // A closed pipe (`| head`) ends the stream quietly.
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                failed = Some(e);
            }
            return false;
        }
        seen += 1;
        args.count.is_none_or(|c| seen < c)
    })?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    Ok(ExitCode::SUCCESS)
}
