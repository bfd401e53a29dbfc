//! `/status`: the agent's state laid out as `agent status` lays it out (agent, endpoints,
//! checks, logs agent, local intake), as JSON; [`render_text`] prints it for a person.

use std::fmt::Write as _;
use std::time::SystemTime;

use serde_json::{json, Value};

use super::AgentState;

fn rfc3339(t: SystemTime) -> String {
    let ms = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    cairn_intake::timefmt::format_rfc3339_ms(ms)
}

fn clock(t: SystemTime) -> String {
    // "2026-12-02T12:04:05.000Z" → "12:04:05 UTC"
    let s = rfc3339(t);
    s.get(11..19).map(|c| format!("{c} UTC")).unwrap_or(s)
}

pub fn checks(state: &AgentState) -> Vec<Value> {
    let board = state.board.lock().clone();
    let statuses = board.lock().clone();
    statuses
        .iter()
        .map(|s| {
            json!({
                "check": s.name,
                "check_id": s.check_id,
                "state": s.state(),
                "config_file": s.config_file,
                "check_file": s.check_file,
                "interval_secs": s.interval_secs,
                "running": s.running,
                "total_runs": s.runs,
                "total_errors": s.errors,
                "total_warning_runs": s.warning_runs,
                "last_run_at": s.last_run_at.map(rfc3339),
                "last_duration_ms": s.last_duration_ms,
                "average_duration_ms": s.average_duration_ms(),
                "last_run": s.last_run,
                "total": s.total,
                "last_error": s.last_error,
                "last_warnings": s.last_warnings,
                "metadata": s.metadata,
            })
        })
        .collect()
}

/// The intake's state in words, e.g. "API key rejected (403) since 12:04:05 UTC, retrying
/// every 120 s".
/// The local intake's monitors: counts by state, then each group that is not OK.
fn render_monitors(out: &mut String, m: &Value) {
    if m.is_null() {
        return;
    }
    header(out, "Monitors");
    let _ = writeln!(
        out,
        "  Monitors: {}  OK: {}  Warn: {}  Alert: {}  No Data: {}  Muted: {}",
        s(&m["monitors"]),
        s(&m["ok"]),
        s(&m["warn"]),
        s(&m["alert"]),
        s(&m["no_data"]),
        s(&m["muted"])
    );
    let _ = writeln!(
        out,
        "  Last round: {} ms  Webhook notifications sent: {}, lost: {}, dropped: {}",
        s(&m["last_round_ms"]),
        s(&m["notifications_sent"]),
        s(&m["notifications_failed"]),
        s(&m["notifications_dropped"])
    );
    for g in m["not_ok"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "    {:<8} {} ({}) {} value {}",
            s(&g["state"]),
            s(&g["name"]),
            s(&g["id"]),
            s(&g["group"]),
            s(&g["value"])
        );
    }
}

fn intake_state(state: &AgentState, logs: &cairn_logs::CountersSnapshot) -> String {
    let trouble = state.intake_trouble.lock();
    if let Some(problem) = &logs.buffer_problem {
        return format!("buffer unusable: {problem}");
    }
    if logs.buffer_disk_full {
        return "disk full under the buffer".into();
    }
    if logs.api_key_rejected {
        let since = trouble
            .rejected_since
            .map(|t| format!(" since {}", clock(t)))
            .unwrap_or_default();
        return format!(
            "API key rejected (401/403){since}, retrying every {} s; logs are kept",
            state.backoff_max_secs
        );
    }
    if let (Some(err), Some(since)) = (&logs.last_error, trouble.failing_since) {
        return format!(
            "failing since {} ({err}); retrying with backoff, logs are kept",
            clock(since)
        );
    }
    if logs.payloads_sent > 0 {
        "OK".into()
    } else {
        "OK (nothing sent yet)".into()
    }
}

pub async fn build(state: &AgentState) -> Value {
    let now = SystemTime::now();
    let checks = checks(state);
    let logs = state.logs.as_ref().map(|f| f());
    if let Some(l) = &logs {
        state.observe_logs(l);
    }
    let sources = state.logs_sources.lock().clone();
    let logs_agent = logs.as_ref().map(|l| {
        let per_check: Vec<Value> = l
            .checks
            .iter()
            .map(|(id, c)| {
                let name = id.split(':').next().unwrap_or("");
                let src = sources.get(name);
                json!({
                    "check_id": id,
                    "type": src.map(|s| s.kind.as_str()).unwrap_or("integration"),
                    "source": src.and_then(|s| s.source.clone()),
                    "service": src.and_then(|s| s.service.clone()),
                    "logs_processed": c.logs_processed,
                    "logs_sent": c.logs_sent,
                    "logs_truncated": c.logs_truncated,
                    "logs_dropped": c.logs_dropped,
                })
            })
            .collect();
        json!({
            "logs_processed": l.logs_processed,
            "logs_sent": l.logs_sent,
            "bytes_sent": l.bytes_sent,
            "encoded_bytes_sent": l.encoded_bytes_sent,
            "payloads_sent": l.payloads_sent,
            "retry_count": l.retry_count,
            "retry_time_spent_secs": l.retry_time_spent_secs,
            "logs_truncated": l.logs_truncated,
            "logs_dropped": l.logs_dropped,
            "logs_dropped_unattributed": l.logs_dropped_unattributed,
            "buffer": {
                "bytes": l.buffer_bytes,
                "records": l.buffer_records,
                "oldest_unsent_age_secs": l.buffer_oldest_unsent_age_secs,
                "corrupt_bytes": l.buffer_corrupt_bytes,
                "disk_full": l.buffer_disk_full,
            },
            "intake": {
                "url": state.endpoints.lock().get("logs").cloned().unwrap_or(Value::Null),
                "state": intake_state(state, l),
                "api_key_rejected": l.api_key_rejected,
                "last_error": l.last_error,
            },
            "sources": per_check,
        })
    });
    let local_intake = state.local_intake.as_ref().map(|i| {
        let stats = *i.stats.lock();
        let [received, truncated, deleted] = *i.ingest.lock();
        json!({
            "url": i.url,
            "logs_stored_since_start": received,
            "logs_truncated": truncated,
            "logs_deleted_by_retention": deleted,
            "stored_logs": stats.map(|s| s.stored_logs),
            "store_bytes": stats.map(|s| s.store_bytes),
            "monitors": i.monitors.lock().clone(),
            "pipelines": i.pipelines.lock().clone(),
        })
    });
    json!({
        "agent": {
            "version": cairn_checks::VERSION,
            "pid": std::process::id(),
            "started_at": rfc3339(state.started_at),
            "uptime_secs": state.started.elapsed().as_secs_f64().floor(),
            "hostname": state.hostname,
            "config_dir": state.config_dir.display().to_string(),
            "run_path": state.run_path.display().to_string(),
            "python_version": state.python_version,
            "python_env": state.python_env.as_ref().map(|p| p.display().to_string()),
            "now": rfc3339(now),
        },
        "endpoints": {
            "logs": state.endpoints.lock().get("logs").cloned().unwrap_or(Value::Null),
            "metrics": state.endpoints.lock().get("metrics").cloned().unwrap_or(Value::Null),
            "api_key": state.api_key_ending.as_ref().map(|e| format!("…{e}")),
        },
        "checks": checks,
        "check_load_errors": *state.load_errors.lock(),
        "logs_agent": logs_agent,
        "metrics": *state.metrics.lock(),
        "local_intake": local_intake,
        "last_reload": *state.last_reload.lock(),
    })
}

/// Control characters (terminal escapes, bidi overrides) from a check's text are shown, not
/// obeyed.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| {
            if (c.is_control() && c != '\n') || cairn_intake::client::is_bidi_control(c) {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => clean(s),
        Value::Null => "-".into(),
        other => clean(&other.to_string()),
    }
}

fn header(out: &mut String, title: &str) {
    let _ = writeln!(out, "\n{title}\n{}", "=".repeat(title.len()));
}

/// `agent status`-style text. Every value comes from the agent's own JSON.
pub fn render_text(st: &Value) -> String {
    let mut out = String::new();
    let a = &st["agent"];
    let title = format!("Cairn ({})", s(&a["version"]));
    let _ = writeln!(
        out,
        "{}\n{title}\n{}",
        "=".repeat(title.len()),
        "=".repeat(title.len())
    );
    let _ = writeln!(out, "\n  Status date: {}", s(&a["now"]));
    let _ = writeln!(
        out,
        "  Agent start: {} (uptime {} s)",
        s(&a["started_at"]),
        s(&a["uptime_secs"])
    );
    let _ = writeln!(out, "  Pid: {}", s(&a["pid"]));
    let _ = writeln!(out, "  Hostname: {}", s(&a["hostname"]));
    let _ = writeln!(out, "  Config dir: {}", s(&a["config_dir"]));
    let _ = writeln!(out, "  Run path: {}", s(&a["run_path"]));
    let _ = writeln!(out, "  Python version: {}", s(&a["python_version"]));
    let _ = writeln!(out, "  python_env: {}", s(&a["python_env"]));
    header(&mut out, "Endpoints");
    let e = &st["endpoints"];
    let key = match &e["api_key"] {
        Value::String(k) => format!(" - API key ending with {}", k.trim_start_matches('…')),
        _ => String::new(),
    };
    let _ = writeln!(out, "  logs: {}{key}", s(&e["logs"]));
    let _ = writeln!(out, "  metrics: {}{key}", s(&e["metrics"]));
    header(&mut out, "Collector");
    let _ = writeln!(out, "  Running Checks\n  ==============");
    let empty = Vec::new();
    let checks = st["checks"].as_array().unwrap_or(&empty);
    if checks.is_empty() {
        let _ = writeln!(out, "\n    No checks have run yet");
    }
    for c in checks {
        let name = s(&c["check"]);
        let _ = writeln!(out, "\n    {name}\n    {}", "-".repeat(name.len()));
        let _ = writeln!(
            out,
            "      Instance ID: {} [{}]",
            s(&c["check_id"]),
            s(&c["state"])
        );
        let _ = writeln!(out, "      Configuration Source: {}", s(&c["config_file"]));
        let _ = writeln!(out, "      Total Runs: {}", s(&c["total_runs"]));
        for (label, key) in [
            ("Metric Samples", "metric_samples"),
            ("Events", "events"),
            ("Service Checks", "service_checks"),
            ("Logs", "logs"),
        ] {
            let _ = writeln!(
                out,
                "      {label}: Last Run: {}, Total: {}",
                s(&c["last_run"][key]),
                s(&c["total"][key])
            );
        }
        let ms = |v: &Value| {
            v.as_f64()
                .map(|x| format!("{x:.0}ms"))
                .unwrap_or("-".into())
        };
        let _ = writeln!(
            out,
            "      Average Execution Time : {}\n      Last Execution Date : {}\n      Last Execution Time : {}",
            ms(&c["average_duration_ms"]),
            s(&c["last_run_at"]),
            ms(&c["last_duration_ms"])
        );
        if let Some(m) = c["metadata"].as_object().filter(|m| !m.is_empty()) {
            let _ = writeln!(out, "      metadata:");
            for (k, v) in m {
                let _ = writeln!(out, "        {k}: {}", s(v));
            }
        }
        if let Some(err) = c["last_error"].as_object() {
            let _ = writeln!(out, "      Error: {}", s(&err["message"]));
            if let Some(tb) = err
                .get("traceback")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
            {
                for line in clean(tb).lines() {
                    let _ = writeln!(out, "        {line}");
                }
            }
        }
        if let Some(w) = c["last_warnings"].as_array().filter(|w| !w.is_empty()) {
            let _ = writeln!(out, "      Warnings:");
            for x in w {
                let _ = writeln!(out, "        {}", s(x));
            }
        }
    }
    if let Some(errs) = st["check_load_errors"].as_array().filter(|e| !e.is_empty()) {
        let _ = writeln!(out, "\n  Loading Errors\n  ==============");
        for e in errs {
            let _ = writeln!(out, "    {}", s(e));
        }
    }
    header(&mut out, "Logs Agent");
    let l = &st["logs_agent"];
    if l.is_null() {
        let _ = writeln!(out, "  Logs are discarded (--discard-logs)");
    } else {
        let _ = writeln!(out, "  Intake: {}", s(&l["intake"]["url"]));
        let _ = writeln!(out, "  State: {}", s(&l["intake"]["state"]));
        for k in [
            "logs_processed",
            "logs_sent",
            "bytes_sent",
            "encoded_bytes_sent",
            "retry_count",
            "logs_truncated",
        ] {
            let _ = writeln!(out, "    {k}: {}", s(&l[k]));
        }
        let _ = writeln!(out, "    logs_dropped: {}", s(&l["logs_dropped"]));
        let b = &l["buffer"];
        let _ = writeln!(
            out,
            "  Buffer: {} bytes, {} logs unsent, oldest unsent {} s",
            s(&b["bytes"]),
            s(&b["records"]),
            s(&b["oldest_unsent_age_secs"])
        );
        for src in l["sources"].as_array().unwrap_or(&empty) {
            let _ = writeln!(out, "\n    {}", s(&src["check_id"]));
            let _ = writeln!(
                out,
                "      Type: {}, Source: {}, Service: {}",
                s(&src["type"]),
                s(&src["source"]),
                s(&src["service"])
            );
            let _ = writeln!(
                out,
                "      Logs sent: {}, dropped: {}",
                s(&src["logs_sent"]),
                s(&src["logs_dropped"])
            );
        }
    }
    if !st["local_intake"].is_null() {
        header(&mut out, "Local Intake");
        let i = &st["local_intake"];
        let _ = writeln!(out, "  URL: {}", s(&i["url"]));
        let _ = writeln!(out, "  Stored logs: {}", s(&i["stored_logs"]));
        let _ = writeln!(out, "  Store size: {} bytes", s(&i["store_bytes"]));
        if let Some(p) = i["pipelines"].as_object() {
            let _ = writeln!(
                out,
                "  Pipelines: {} from {}",
                s(&p["pipelines"]),
                s(&p["file"])
            );
            if let Some(e) = p.get("error").and_then(Value::as_str) {
                let _ = writeln!(
                    out,
                    "  Pipelines file not applied (the previous pipelines run): {e}"
                );
            }
        }
        render_monitors(&mut out, &i["monitors"]);
    }
    if let Some(r) = st["last_reload"].as_object() {
        header(&mut out, "Last Reload");
        let _ = writeln!(out, "  At: {}  OK: {}", s(&r["at"]), s(&r["ok"]));
        for e in r.get("errors").and_then(Value::as_array).unwrap_or(&empty) {
            let _ = writeln!(out, "    {}", s(e));
        }
    }
    out
}

#[cfg(test)]
mod monitor_tests {
    use super::*;

    #[test]
    fn status_text_counts_monitors_by_state_and_lists_each_group_not_ok() {
        let st = json!({
            "agent": {"version": "x"},
            "checks": [],
            "local_intake": {
                "url": "http://127.0.0.1:10518",
                "monitors": {
                    "monitors": 3, "ok": 1, "warn": 0, "alert": 1, "no_data": 1, "muted": 0,
                    "last_round_ms": 12, "notifications_sent": 4, "notifications_failed": 1,
                    "notifications_dropped": 0,
                    "not_ok": [
                        {"id": 1, "name": "web errors", "group": "host:a", "state": "Alert", "value": 12.0},
                        {"id": 2, "name": "quiet\u{1b}[31m", "group": "*", "state": "No Data", "value": null}
                    ]
                }
            }
        });
        let text = render_text(&st);
        assert!(text.contains("Monitors\n========"), "{text}");
        assert!(
            text.contains("Monitors: 3  OK: 1  Warn: 0  Alert: 1  No Data: 1  Muted: 0"),
            "{text}"
        );
        assert!(text.contains("sent: 4, lost: 1, dropped: 0"), "{text}");
        assert!(
            text.contains("Alert    web errors (1) host:a value 12.0"),
            "{text}"
        );
        assert!(text.contains("No Data  quiet"), "{text}");
        assert!(
            !text.contains('\u{1b}'),
            "control characters from names are not printed"
        );
    }
}
