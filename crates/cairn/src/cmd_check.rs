//! `cairn check NAME`: run a check's instances in this process and show what they submitted,
//! logs exactly as they would be shipped.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use cairn_checks::RunReport;
use cairn_logs::{Buffer, BufferOptions, Counters, MemorySink, RecordSink, Staging};
use serde_json::{json, Value};

use crate::common;

#[derive(clap::Args)]
pub struct CheckArgs {
    /// The check's name (conf.d/NAME.d/ or conf.d/NAME.yaml).
    name: String,
    /// Print one JSON object: {"check", "runs": [...]}.
    #[arg(long)]
    json: bool,
    /// Output format: `full` (default) or `summary` (one line per run).
    #[arg(long, value_parser = ["full", "summary"], default_value = "full")]
    format: String,
    /// Run every instance this many times, in one process (cursors carry over).
    #[arg(short = 't', long, visible_alias = "check-times", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    times: u32,
    /// Milliseconds to wait between repeated runs.
    #[arg(long, default_value_t = 0)]
    pause: u64,
    /// Milliseconds to wait after the runs, before the aggregated flush and the exit (as
    /// `agent check --delay`).
    #[arg(short = 'd', long, default_value_t = 0)]
    delay: u64,
    /// Write cursors and the persistent cache to run_path (by default they stay in memory, so
    /// a running agent's cursors never move). The logs themselves are not shipped: the next
    /// `cairn run` starts after them. Refused while an agent runs on the same run_path.
    #[arg(long)]
    persist: bool,
    /// Also show what the agent would flush after these runs: metrics aggregated as the
    /// Datadog Agent's check sampler does (gauges' last values, counts summed, rates and
    /// monotonic counts from consecutive samples, histogram aggregates).
    #[arg(long)]
    aggregated: bool,
    /// Log level of this command and of the check's own logger (`self.log`), e.g. `debug`
    /// (as `agent check --log-level`); default: `log_level` of datadog.yaml for the check,
    /// `info` for Cairn.
    #[arg(short = 'l', long, value_parser = crate::common::LOG_LEVELS)]
    log_level: Option<String>,
    /// Show each run's metrics as an aligned table (name, type, value, tags, host) instead of
    /// one JSON object per line (as `agent check --table`).
    #[arg(long, conflicts_with = "json")]
    table: bool,
    /// Run every instance twice, a second apart, so that rates and monotonic counts get the
    /// second sample they need (as `agent check --check-rate`). Implies at least 2 `--times`.
    #[arg(short = 'r', long)]
    check_rate: bool,
    /// Stop in pdb at this line of the check's file (checks.d/NAME.py), with the terminal as
    /// pdb's console; `c` goes on with the run.
    #[arg(short = 'b', long, value_name = "LINE", value_parser = clap::value_parser!(u32).range(1..))]
    breakpoint: Option<u32>,
}

impl CheckArgs {
    pub fn log_level(&self) -> Option<&str> {
        self.log_level.as_deref()
    }
}

pub fn run(config_dir: &Path, args: CheckArgs) -> anyhow::Result<ExitCode> {
    let mut loaded = common::load_config(config_dir)?;
    if let Some(level) = &args.log_level {
        // The check's logger takes its level from the agent's `log_level`.
        loaded.agent.log_level = level.clone();
    }
    let Some(integration) = loaded.integrations.iter().find(|i| i.name == args.name) else {
        if let Some(err) = loaded
            .errors
            .iter()
            .find(|e| e.to_string().contains(&format!("conf.d/{}", args.name)))
        {
            bail!("check {}: {err}", args.name);
        }
        bail!(
            "check {}: no config found (expected {}/conf.d/{}.d/conf.yaml or conf.d/{}.yaml)",
            args.name,
            config_dir.display(),
            args.name,
            args.name
        );
    };
    let run_path = loaded.agent.run_path.clone();
    if let Some(pid) = common::running_agent(&run_path) {
        tracing::warn!(
            pid,
            run_path = %run_path.display(),
            "an agent is running on this run_path: it runs these checks too (this run reads its cursors and does not move them)"
        );
    }
    let (times, pause) = if args.check_rate {
        (args.times.max(2), args.pause.max(1000))
    } else {
        (args.times, args.pause)
    };
    let summary_only = args.format == "summary" && !args.json;
    // The summary counts samples instead of keeping each one (a check may submit a million).
    cairn_checks::context::keep_raw_submissions(!summary_only);
    // Cursors as the agent last made them durable, read without disturbing a running agent.
    let loader: cairn_logs::StateLoader =
        Box::new(move |check_id: &str| cairn_logs::read_state_snapshot(&run_path, check_id));
    let memory = MemorySink::new(Some(loader), !summary_only);
    let sink: Arc<dyn RecordSink> = memory.clone();
    let (checks, errors) =
        cairn_checks::load_all(&loaded.agent, std::slice::from_ref(integration), &sink)?;
    if let Some(e) = errors.first() {
        eprintln!("error: {e}");
        return Ok(ExitCode::FAILURE);
    }
    cairn_checks::run::set_breakpoint(args.breakpoint);
    let mut runs = Vec::new();
    let mut failed = false;
    for round in 0..times {
        if round > 0 && pause > 0 {
            std::thread::sleep(Duration::from_millis(pause));
        }
        for check in &checks {
            let before = check.ctx.metrics.lock().counters();
            let report = cairn_checks::run_once(check);
            let after = check.ctx.metrics.lock().counters();
            let submitted = [
                after.metric_samples - before.metric_samples,
                after.service_checks - before.service_checks,
                after.events - before.events,
            ];
            failed |= report.error.is_some();
            let raw_logs = memory.take_logs(&check.check_id);
            let shown_logs = if summary_only {
                report.logs.processed as usize
            } else {
                raw_logs.len()
            };
            let logs: Vec<Value> = raw_logs
                .iter()
                .map(|l| serde_json::from_slice(l).unwrap_or(Value::Null))
                .collect();
            let run = run_json(&report, logs);
            if !args.json {
                if args.format == "summary" {
                    println!("{}", summary_line(&report, shown_logs, submitted));
                } else {
                    print_full(&report, &run, &raw_logs, args.table);
                }
            }
            runs.push(run);
        }
    }
    if args.delay > 0 {
        std::thread::sleep(Duration::from_millis(args.delay));
    }
    let aggregated = args
        .aggregated
        .then(|| aggregated_json(&cairn_checks::flush_metrics()));
    if args.json {
        let mut out = json!({"check": args.name, "runs": runs});
        if let Some(a) = &aggregated {
            out["aggregated"] = a.clone();
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else if let Some(a) = &aggregated {
        let series = a["series"].as_array().cloned().unwrap_or_default();
        println!("aggregated series ({}):", series.len());
        for s in series {
            println!("  {s}");
        }
        let checks = a["service_checks"].as_array().cloned().unwrap_or_default();
        println!("aggregated service checks ({}):", checks.len());
        for c in checks {
            println!("  {c}");
        }
    }
    if args.persist {
        // A check that overrides persistent_cache_id() keeps its cache under that identity.
        let mut ids: Vec<&str> = checks
            .iter()
            .flat_map(|c| [c.check_id.as_str(), c.ctx.logs.cache_id()])
            .collect();
        ids.dedup();
        persist(&loaded.agent, &memory, &ids)?;
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Columns padded to their widest cell (counted in characters), the last one left ragged.
fn print_metric_table(metrics: &[cairn_checks::context::Metric]) {
    println!("metrics ({}):", metrics.len());
    if metrics.is_empty() {
        return;
    }
    let rows: Vec<[String; 5]> =
        std::iter::once(["NAME", "TYPE", "VALUE", "TAGS", "HOST"].map(String::from))
            .chain(metrics.iter().map(|m| {
                [
                    m.name.clone(),
                    m.kind.to_string(),
                    m.value.to_string(),
                    if m.tags.is_empty() {
                        "-".into()
                    } else {
                        m.tags.join(",")
                    },
                    m.hostname.clone(),
                ]
            }))
            .collect();
    let mut widths = [0usize; 5];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in &rows {
        let mut line = String::from(" ");
        for (i, cell) in row.iter().enumerate() {
            line.push(' ');
            line.push_str(cell);
            if i + 1 < row.len() {
                line.extend(std::iter::repeat_n(' ', widths[i] - cell.chars().count()));
            }
        }
        println!("{}", line.trim_end());
    }
}

fn run_json(r: &RunReport, logs: Vec<Value>) -> Value {
    json!({
        "check_id": r.check_id,
        "instance": crate::cmd_configcheck::redact(&r.instance),
        "duration_ms": (r.duration.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
        "error": r.error,
        "warnings": r.warnings,
        "metrics": r.submissions.metrics,
        "service_checks": r.submissions.service_checks,
        "events": r.submissions.events,
        // As `agent check` shows it: name → value, the last value of a name winning.
        "metadata": r.submissions.metadata.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect::<serde_json::Map<String, Value>>(),
        "logs": logs,
    })
}

/// What a flush after these runs would send: series as `/api/v2/series` carries them (type
/// names instead of the enum), service checks as `/api/v1/check_run` does.
fn aggregated_json(f: &cairn_checks::Flushed) -> Value {
    let series: Vec<Value> = f
        .series
        .iter()
        .map(|s| {
            json!({
                "metric": s.name,
                "type": match s.kind {
                    cairn_metrics::SeriesKind::Count => "count",
                    cairn_metrics::SeriesKind::Rate => "rate",
                    cairn_metrics::SeriesKind::Gauge => "gauge",
                },
                "host": s.host,
                "tags": s.tags,
                "interval": s.interval,
                "points": s.points.iter().map(|(t, v)| json!([t, v])).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({"series": series, "service_checks": f.service_checks, "events": f.events})
}

/// `submitted`: the run's metric samples, service checks and events, counted (the summary does
/// not keep them).
fn summary_line(r: &RunReport, logs: usize, submitted: [u64; 3]) -> String {
    format!(
        "{} {:.1}ms metrics={} service_checks={} events={} logs={} warnings={} error={}",
        r.check_id,
        r.duration.as_secs_f64() * 1000.0,
        submitted[0],
        submitted[1],
        submitted[2],
        logs,
        r.warnings.len(),
        r.error.as_ref().map(|e| e.message.as_str()).unwrap_or("-")
    )
}

/// Logs are printed byte for byte as they would go on the wire.
fn print_full(r: &RunReport, run: &Value, raw_logs: &[Vec<u8>], table: bool) {
    println!(
        "=== {} ({:.1} ms) ===",
        r.check_id,
        r.duration.as_secs_f64() * 1000.0
    );
    let section = |title: &str, key: &str| {
        let items = run[key].as_array().cloned().unwrap_or_default();
        println!("{title} ({}):", items.len());
        for i in items {
            println!("  {i}");
        }
    };
    if table {
        print_metric_table(&r.submissions.metrics);
    } else {
        section("metrics", "metrics");
    }
    section("service checks", "service_checks");
    section("events", "events");
    if let Some(meta) = run["metadata"].as_object().filter(|m| !m.is_empty()) {
        println!("metadata ({}):", meta.len());
        for (k, v) in meta {
            println!("  {k}: {}", v.as_str().unwrap_or_default());
        }
    }
    println!("logs ({}):", raw_logs.len());
    for l in raw_logs {
        println!("  {}", String::from_utf8_lossy(l));
    }
    if !r.warnings.is_empty() {
        println!("warnings ({}):", r.warnings.len());
        for w in &r.warnings {
            println!("  {w}");
        }
    }
    if let Some(e) = &r.error {
        println!("error: {}", e.message);
        for line in e.traceback.lines() {
            println!("  {line}");
        }
    }
    println!();
}

/// `--persist`: the cursors and cache writes of this process enter the agent's buffer like a
/// run's would (the logs do not: `cairn check` never ships). The buffer allows one writer, so
/// this fails clearly while an agent runs on the same run_path.
fn persist(
    agent: &cairn_config::AgentConfig,
    memory: &MemorySink,
    check_ids: &[&str],
) -> anyhow::Result<()> {
    let opts = BufferOptions::for_agent(agent);
    let buffer = Buffer::open(opts, Arc::new(Counters::default())).with_context(|| {
        format!(
            "--persist: cannot open the buffer in {} (is `cairn run` running on it? stop it first)",
            agent.run_path.display()
        )
    })?;
    for id in check_ids {
        let written = memory.written_state(id);
        if written.is_empty() {
            continue;
        }
        let mut staging = Staging::new();
        let mut keys: Vec<_> = written.iter().collect();
        keys.sort();
        for (k, v) in keys {
            staging.push_cache(k, v);
        }
        buffer
            .append(id, &mut staging)
            .context("--persist: writing cursors")?;
        buffer.commit(id).context("--persist: syncing cursors")?;
    }
    buffer.close().context("--persist: closing the buffer")?;
    Ok(())
}
