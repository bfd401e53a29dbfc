//! The four examples of the seed page (`examples/seed`), run as real checks by the real binary:
//! what each one ships, and how the cursor example resumes within a process and across
//! processes. Each test works on a copy of `examples/seed` so that nothing is written to the repo.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::{json, Value};
use support::{assert_ms_between, now_ms, runs, without, ConfigDir};

fn seed_copy() -> ConfigDir {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/seed");
    // `run/` holds whatever a developer's own runs left behind; start clean.
    let dir = ConfigDir::copy_of(&src, &["run"]);
    assert!(
        dir.join("checks.d/basic_log.py").is_file(),
        "the seed examples were not copied"
    );
    dir
}

/// `datadog.yaml` of the example sets no hostname: logs carry the OS hostname.
fn os_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("reading the hostname")
        .trim()
        .to_string()
}

/// Runs `cairn check NAME --json` and returns the single run, checking the envelope and that
/// every log's timestamp is an integer number of milliseconds taken during the run.
#[track_caller]
fn single_run(dir: &ConfigDir, name: &str, expected_code: i32) -> Value {
    let before = now_ms();
    let (out, json) = dir.check_json(name, &[]);
    let after = now_ms();
    out.assert_code(expected_code);
    assert_eq!(json["check"], name);
    let runs = runs(&json);
    assert_eq!(runs.len(), 1, "one instance, one run: {json:#}");
    for log in runs[0]["logs"].as_array().expect("logs is a list") {
        assert_ms_between(&log["timestamp"], before - 1_000, after + 1_000);
    }
    runs[0].clone()
}

#[test]
fn basic_log_ships_the_seed_message_with_instance_tags_and_logs_entry_defaults() {
    let dir = seed_copy();
    let run = single_run(&dir, "basic_log", 0);
    assert_eq!(run["error"], Value::Null);
    let logs = run["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 1, "{run:#}");
    assert_eq!(
        without(&logs[0], &["timestamp"]),
        json!({
            "message": "Custom check executed successfully",
            "status": "info",
            "hostname": os_hostname(),
            "service": "basic-example",
            "ddsource": "basic_log",
            "ddtags": "env:dev,team:example",
        })
    );
}

#[test]
fn structured_log_keeps_numeric_attributes_and_its_own_service_and_source() {
    let dir = seed_copy();
    let run = single_run(&dir, "structured_log", 0);
    assert_eq!(run["error"], Value::Null);
    let logs = run["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 1, "{run:#}");
    assert_eq!(
        without(&logs[0], &["timestamp"]),
        json!({
            "message": "Database query completed",
            "status": "info",
            "hostname": os_hostname(),
            // The log's own service and source win over the logs entry's (`structured_log`).
            "service": "my-custom-integration",
            "ddsource": "custom_check",
            "ddtags": "env:dev",
            "query_duration_ms": 145,
            "rows_returned": 1024,
        })
    );
    assert!(
        logs[0]["query_duration_ms"].is_i64() && logs[0]["rows_returned"].is_i64(),
        "numbers stay numbers"
    );
}

#[test]
fn error_log_reports_the_error_with_traceback_exits_1_and_still_ships_its_log() {
    let dir = seed_copy();
    let run = single_run(&dir, "error_log", 1);
    let message = "[Errno 2] No such file or directory: '/nonexistent/cairn-example/status'";
    assert_eq!(run["error"]["message"], message, "{run:#}");
    let traceback = run["error"]["traceback"]
        .as_str()
        .expect("a traceback string");
    assert!(
        traceback.starts_with("Traceback (most recent call last):"),
        "{traceback}"
    );
    assert!(
        traceback.contains("checks.d/error_log.py\", line 10, in check"),
        "{traceback}"
    );
    assert!(
        traceback.ends_with(&format!("FileNotFoundError: {message}\n")),
        "{traceback}"
    );
    let logs = run["logs"].as_array().unwrap();
    assert_eq!(
        logs.len(),
        1,
        "the log sent before the raise is kept: {run:#}"
    );
    assert_eq!(
        without(&logs[0], &["timestamp"]),
        json!({
            "message": format!("Check failed: {message}"),
            "status": "error",
            "hostname": os_hostname(),
            "service": "my-custom-integration",
            "ddsource": "error_log",
            "error_type": "FileNotFoundError",
        }),
        "no instance tags and no entry tags: no ddtags at all"
    );
}

/// What the cursor example ships for application log row `n` (1-based).
fn cursor_log(n: u64) -> Value {
    let status = ["info", "info", "warning", "error"][((n - 1) % 4) as usize];
    json!({
        "message": format!("request {n} served token=[REDACTED]"),
        "status": status,
        "hostname": os_hostname(),
        "service": "example-app",
        "ddsource": "cursor_log",
        "ddtags": "app:example,env:dev",
    })
}

/// Every run's logs, timestamps checked and removed.
#[track_caller]
fn cursor_runs(dir: &ConfigDir, extra: &[&str], expected_runs: usize) -> Vec<Vec<Value>> {
    let before = now_ms();
    let (out, json) = dir.check_json("cursor_log", extra);
    let after = now_ms();
    out.assert_code(0);
    assert!(
        !out.stdout.contains("token=abc"),
        "mask_sequences must hide every token\n{}",
        out.dump()
    );
    let runs = runs(&json);
    assert_eq!(runs.len(), expected_runs, "{json:#}");
    runs.iter()
        .map(|run| {
            assert_eq!(run["error"], Value::Null, "{run:#}");
            assert!(
                run["check_id"]
                    .as_str()
                    .unwrap()
                    .starts_with("cursor_log:app:"),
                "{run:#}"
            );
            run["logs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|log| {
                    assert_ms_between(&log["timestamp"], before - 1_000, after + 1_000);
                    without(log, &["timestamp"])
                })
                .collect()
        })
        .collect()
}

fn expected(range: std::ops::RangeInclusive<u64>) -> Vec<Value> {
    range.map(cursor_log).collect()
}

/// The agent's buffer (where cursors live) as (file, size, content): empty when never written.
fn state_files(dir: &ConfigDir) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let Ok(rd) = std::fs::read_dir(dir.join("run/buffer")) else {
        return Vec::new();
    };
    let mut files: Vec<_> = rd
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap() != "lock")
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    files.sort();
    files
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn cursor_log_masks_tokens_and_continues_from_its_cursor_across_runs_of_one_process() {
    let dir = seed_copy();
    let runs = cursor_runs(&dir, &["--times", "3", "--pause", "10"], 3);
    // Each run appends 3 rows and reads after the last cursor: positions continue, none repeat.
    assert_eq!(runs[0], expected(1..=3));
    assert_eq!(runs[1], expected(4..=6));
    assert_eq!(runs[2], expected(7..=9));
    assert!(
        state_files(&dir).is_empty(),
        "without --persist nothing is written: {:?}",
        state_files(&dir)
    );
}

#[test]
fn cursor_log_resumes_across_processes_only_after_persist_and_keeps_state_private() {
    let dir = seed_copy();
    // First process, not persisted: rows 1..3.
    assert_eq!(cursor_runs(&dir, &[], 1)[0], expected(1..=3));
    assert!(
        state_files(&dir).is_empty(),
        "without --persist nothing is written"
    );
    // A second process starts again from the stored state, i.e. from nothing: all 6 rows.
    assert_eq!(cursor_runs(&dir, &[], 1)[0], expected(1..=6));
    assert!(
        state_files(&dir).is_empty(),
        "without --persist nothing is written"
    );

    // With --persist the cursor is stored after the run, in the agent's buffer...
    assert_eq!(cursor_runs(&dir, &["--persist"], 1)[0], expected(1..=9));
    let files = state_files(&dir);
    assert!(!files.is_empty(), "--persist writes the buffer");
    for (f, _) in &files {
        assert_eq!(mode(f), 0o600, "{} mode", f.display());
    }
    assert_eq!(mode(&dir.join("run/buffer")), 0o700, "buffer dir mode");
    assert_eq!(mode(&dir.join("run")), 0o700, "run_path mode");

    // ...so the next process continues right after it.
    assert_eq!(cursor_runs(&dir, &["--persist"], 1)[0], expected(10..=12));
    let stored = state_files(&dir);

    // A process without --persist reads the stored cursor but leaves it where it was.
    assert_eq!(cursor_runs(&dir, &[], 1)[0], expected(13..=15));
    assert_eq!(
        state_files(&dir),
        stored,
        "no --persist: the buffer is untouched"
    );
    assert_eq!(cursor_runs(&dir, &[], 1)[0], expected(13..=18));
}
