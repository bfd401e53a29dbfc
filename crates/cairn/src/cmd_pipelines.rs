//! `cairn pipelines test|check`: runs a pipelines file (the local intake's `pipelines.yaml`,
//! or a Datadog export) on sample logs without storing anything, so that authors can iterate
//! without ingesting. The logs go through the intake's own parsing and pipeline code, so what
//! is printed is what the intake would store.
//!
//! Exit codes: 0 fine, 1 a processor failed on some log (the log is printed as it arrived),
//! 2 the file cannot be used (the location of the problem is printed).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use cairn_intake::pipelines::{self, Loaded};
use serde_json::Value;

#[derive(clap::Args)]
pub struct PipelinesArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Process logs with FILE's pipelines and print each processed log and which pipelines
    /// and processors touched it.
    Test {
        /// The pipelines file (YAML or JSON, Datadog's Logs Pipelines schema).
        file: PathBuf,
        /// A log as JSON (`{"message": "..."}`, as sent to /api/v2/logs), `@FILE` to read
        /// logs from a file, or `-` for stdin; a file or stdin holds one JSON object, an
        /// array of them, or one object per line. Repeatable.
        #[arg(long = "log", required = true)]
        logs: Vec<String>,
        /// Print `{"log": ..., "trace": ...}` per log instead of the log and a trace summary.
        #[arg(long)]
        json: bool,
    },
    /// Validate FILE: compile every pipeline and processor, naming the first problem.
    Check { file: PathBuf },
}

pub fn run(args: PipelinesArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        Action::Test { file, logs, json } => test(&file, &logs, json),
        Action::Check { file } => {
            let loaded = match load(&file)? {
                Ok(l) => l,
                Err(code) => return Ok(code),
            };
            let n = loaded.definitions().len();
            println!(
                "{}: ok, {n} pipeline{}",
                file.display(),
                if n == 1 { "" } else { "s" }
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The compiled file, or exit code 2 after printing where it is wrong.
fn load(file: &Path) -> anyhow::Result<Result<Loaded, ExitCode>> {
    let text = match pipelines::read_text(file) {
        Ok(Some(text)) => text,
        Ok(None) => {
            eprintln!("error: {}: no such file", file.display());
            return Ok(Err(ExitCode::from(2)));
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(Err(ExitCode::from(2)));
        }
    };
    match pipelines::compile_text(&text) {
        Ok(l) => {
            for w in l.config.warnings() {
                eprintln!("warning: {}: {w}", file.display());
            }
            Ok(Ok(l))
        }
        Err(e) => {
            eprintln!("error: {}: {}: {}", file.display(), e.location, e.message);
            Ok(Err(ExitCode::from(2)))
        }
    }
}

fn test(file: &Path, inputs: &[String], json: bool) -> anyhow::Result<ExitCode> {
    let loaded = match load(file)? {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let mut logs = Vec::new();
    // Bad input is a usage error (2), as a bad FILE is; 1 stays "a processor failed".
    for input in inputs {
        match read_logs(input) {
            Ok(l) => logs.extend(l),
            Err(e) => {
                eprintln!("error: {e:#}");
                return Ok(ExitCode::from(2));
            }
        }
    }
    let now = cairn_intake::timefmt::now_ms();
    let results = match pipelines::preview(&loaded.compiled, &logs, now) {
        Ok(r) => r,
        Err(m) => {
            eprintln!("error: the logs cannot be read as the intake reads them: {m}");
            return Ok(ExitCode::from(2));
        }
    };
    let mut failed = false;
    for r in &results {
        failed |= r["trace"]["error"].is_string();
        if json {
            println!("{}", serde_json::to_string_pretty(r)?);
            continue;
        }
        println!("{}", serde_json::to_string_pretty(&r["log"])?);
        print_trace(&r["trace"]);
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The trace on stderr, so that stdout stays the logs' JSON (for `jq`).
fn print_trace(trace: &Value) {
    let steps = trace["steps"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    if steps.is_empty() && trace["error"].is_null() {
        eprintln!("# no pipeline matched");
    }
    for s in steps {
        let processors: Vec<&str> = s["processors"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        eprintln!(
            "# pipeline {}: {}",
            s["pipeline"].as_str().unwrap_or("?"),
            if processors.is_empty() {
                "matched, no processor changed the log".to_owned()
            } else {
                processors.join(", ")
            }
        );
    }
    if let Some(e) = trace["error"].as_str() {
        eprintln!("# error: {e} (the log is as it arrived)");
    }
}

/// `--log` values: inline JSON, `@FILE` or `-`.
fn read_logs(input: &str) -> anyhow::Result<Vec<Value>> {
    let (text, origin) = if input == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read stdin")?;
        (s, "stdin".to_owned())
    } else if let Some(path) = input.strip_prefix('@') {
        let s = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
        (s, path.to_owned())
    } else {
        (input.to_owned(), "--log".to_owned())
    };
    parse_logs_text(&text).with_context(|| format!("{origin}: not a JSON log"))
}

/// One object, an array of objects, or one object per line.
fn parse_logs_text(text: &str) -> anyhow::Result<Vec<Value>> {
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return match v {
            Value::Object(_) => Ok(vec![v]),
            Value::Array(a) if a.iter().all(Value::is_object) => Ok(a),
            _ => bail!("expected a JSON object or an array of objects"),
        };
    }
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(v @ Value::Object(_)) => out.push(v),
            Ok(_) => bail!("line {}: expected a JSON object", i + 1),
            Err(e) => bail!("line {}: {e}", i + 1),
        }
    }
    Ok(out)
}
