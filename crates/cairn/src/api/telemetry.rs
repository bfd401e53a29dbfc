//! `/metrics`: the agent's own telemetry in the Prometheus text format (0.0.4): the logs
//! pipeline's SPEC §5 counters, buffer gauges, per-check runs, errors and a run-duration
//! histogram, the metrics forwarder's counters and the local intake's store.

use std::fmt::Write as _;

use serde_json::Value;

use super::AgentState;

/// A label value escaped as the text format wants (`\`, `"`, newline).
fn label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }
    fn one(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.head(name, kind, help);
        let _ = writeln!(self.out, "{name} {value}");
    }
}

pub async fn render(state: &AgentState) -> String {
    let mut out = String::new();
    let mut f = Family { out: &mut out };
    f.one(
        "cairn_uptime_seconds",
        "gauge",
        "Seconds since the agent started.",
        state.started.elapsed().as_secs_f64(),
    );
    if let Some(logs) = state.logs.as_ref().map(|l| l()) {
        for (name, help, v) in [
            (
                "cairn_logs_processed_total",
                "Logs accepted from checks.",
                logs.logs_processed,
            ),
            (
                "cairn_logs_sent_total",
                "Logs delivered to the intake (2xx).",
                logs.logs_sent,
            ),
            (
                "cairn_logs_bytes_sent_total",
                "Uncompressed payload bytes delivered.",
                logs.bytes_sent,
            ),
            (
                "cairn_logs_encoded_bytes_sent_total",
                "Compressed payload bytes delivered.",
                logs.encoded_bytes_sent,
            ),
            (
                "cairn_logs_payloads_sent_total",
                "Payloads delivered.",
                logs.payloads_sent,
            ),
            (
                "cairn_logs_retry_total",
                "Payload send retries.",
                logs.retry_count,
            ),
            (
                "cairn_logs_truncated_total",
                "Logs truncated to max_message_size_bytes.",
                logs.logs_truncated,
            ),
        ] {
            f.one(name, "counter", help, v as f64);
        }
        f.one(
            "cairn_logs_retry_time_spent_seconds_total",
            "counter",
            "Time spent retrying payloads.",
            logs.retry_time_spent_secs,
        );
        f.head(
            "cairn_logs_dropped_total",
            "counter",
            "Logs dropped, by check and reason.",
        );
        for (check, c) in &logs.checks {
            for (reason, n) in &c.logs_dropped {
                let _ = writeln!(
                    f.out,
                    "cairn_logs_dropped_total{{check_id=\"{}\",reason=\"{}\"}} {n}",
                    label(check),
                    label(reason)
                );
            }
        }
        for (reason, n) in &logs.logs_dropped_unattributed {
            let _ = writeln!(
                f.out,
                "cairn_logs_dropped_total{{check_id=\"\",reason=\"{}\"}} {n}",
                label(reason)
            );
        }
        f.head(
            "cairn_check_logs_sent_total",
            "counter",
            "Logs delivered, by check.",
        );
        for (check, c) in &logs.checks {
            let _ = writeln!(
                f.out,
                "cairn_check_logs_sent_total{{check_id=\"{}\"}} {}",
                label(check),
                c.logs_sent
            );
        }
        f.one(
            "cairn_buffer_bytes",
            "gauge",
            "Undelivered bytes in the durable buffer.",
            logs.buffer_bytes as f64,
        );
        f.one(
            "cairn_buffer_records",
            "gauge",
            "Undelivered logs in the durable buffer.",
            logs.buffer_records as f64,
        );
        f.one(
            "cairn_buffer_oldest_unsent_age_seconds",
            "gauge",
            "Age of the oldest undelivered log.",
            logs.buffer_oldest_unsent_age_secs,
        );
        f.one(
            "cairn_buffer_corrupt_bytes_total",
            "counter",
            "Buffer bytes lost to corruption.",
            logs.buffer_corrupt_bytes as f64,
        );
        f.one(
            "cairn_logs_api_key_rejected",
            "gauge",
            "1 while the intake refuses the API key (401/403).",
            logs.api_key_rejected as u8 as f64,
        );
        f.one(
            "cairn_buffer_disk_full",
            "gauge",
            "1 while the disk under the buffer is full.",
            logs.buffer_disk_full as u8 as f64,
        );
    }
    let statuses = state.board.lock().clone().lock().clone();
    type Counter = fn(&cairn_checks::CheckStatus) -> u64;
    let per_check: [(&str, &str, Counter); 3] = [
        (
            "cairn_check_runs_total",
            "Check runs, by check instance.",
            |s| s.runs,
        ),
        (
            "cairn_check_errors_total",
            "Check runs that failed, by check instance.",
            |s| s.errors,
        ),
        (
            "cairn_check_metric_samples_total",
            "Metric samples submitted, by check instance.",
            |s| s.total.metric_samples,
        ),
    ];
    for (name, help, value) in per_check {
        f.head(name, "counter", help);
        for s in &statuses {
            let _ = writeln!(
                f.out,
                "{name}{{check=\"{}\",check_id=\"{}\"}} {}",
                label(&s.name),
                label(&s.check_id),
                value(s)
            );
        }
    }
    f.head(
        "cairn_check_run_duration_seconds",
        "histogram",
        "Duration of check runs.",
    );
    for s in &statuses {
        let (name, id) = (label(&s.name), label(&s.check_id));
        let mut cumulative = 0;
        for (i, le) in cairn_checks::DURATION_BUCKETS_SECS.iter().enumerate() {
            cumulative += s.duration_buckets[i];
            let _ = writeln!(f.out, "cairn_check_run_duration_seconds_bucket{{check=\"{name}\",check_id=\"{id}\",le=\"{le}\"}} {cumulative}");
        }
        cumulative += s.duration_buckets[cairn_checks::DURATION_BUCKETS_SECS.len()];
        let _ = writeln!(f.out, "cairn_check_run_duration_seconds_bucket{{check=\"{name}\",check_id=\"{id}\",le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(
            f.out,
            "cairn_check_run_duration_seconds_sum{{check=\"{name}\",check_id=\"{id}\"}} {}",
            s.total_duration_ms / 1000.0
        );
        let _ = writeln!(f.out, "cairn_check_run_duration_seconds_count{{check=\"{name}\",check_id=\"{id}\"}} {cumulative}");
    }
    let metrics = state.metrics.lock().clone();
    if let Some(fw) = metrics.get("forwarder").filter(|v| !v.is_null()) {
        numbers(&mut f, "cairn_forwarder", fw, &mut Vec::new());
    }
    if let Some(i) = &state.local_intake {
        let [stored, truncated, deleted] = *i.ingest.lock();
        f.one(
            "cairn_intake_logs_stored_total",
            "counter",
            "Logs the local intake stored since the start.",
            stored as f64,
        );
        f.one(
            "cairn_intake_logs_truncated_total",
            "counter",
            "Logs the local intake truncated.",
            truncated as f64,
        );
        f.one(
            "cairn_intake_logs_deleted_total",
            "counter",
            "Logs the local intake's retention deleted.",
            deleted as f64,
        );
        if let Some(stats) = *i.stats.lock() {
            f.one(
                "cairn_intake_stored_logs",
                "gauge",
                "Logs held by the local intake's store.",
                stats.stored_logs as f64,
            );
            f.one(
                "cairn_intake_store_bytes",
                "gauge",
                "Bytes used by the local intake's store.",
                stats.store_bytes as f64,
            );
        }
    }
    out
}

/// Every number in the forwarder's snapshot as an untyped sample named by its path; the
/// object keys of maps keyed by endpoint or reason become labels.
fn numbers(f: &mut Family<'_>, prefix: &str, v: &Value, labels: &mut Vec<(String, String)>) {
    let Value::Object(map) = v else { return };
    for (k, v) in map {
        let name: String = format!("{prefix}_{k}")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        match v {
            Value::Number(n) => {
                let ls: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", label(v)))
                    .collect();
                let ls = if ls.is_empty() {
                    String::new()
                } else {
                    format!("{{{}}}", ls.join(","))
                };
                let _ = writeln!(f.out, "# TYPE {name} untyped\n{name}{ls} {n}");
            }
            Value::Bool(b) => {
                let _ = writeln!(f.out, "# TYPE {name} gauge\n{name} {}", *b as u8);
            }
            Value::Object(_) => numbers(f, &name, v, labels),
            _ => {}
        }
    }
}
