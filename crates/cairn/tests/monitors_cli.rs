//! Issue 12 item 7 against the real binary: a `cairn intake` process evaluates a monitors
//! file every second, and `cairn monitors list|show|test` print the states, groups,
//! transitions and values per group, by id or by name.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn cairn() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
    for (k, _) in std::env::vars() {
        if k.starts_with("DD_") || k.starts_with("CAIRN_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

struct Intake {
    child: Child,
    base: String,
}

impl Drop for Intake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `cairn intake` on a free port and waits for the Explorer URL it prints.
fn start_intake(data: &std::path::Path) -> Intake {
    let child = cairn()
        .args([
            "intake",
            "--listen",
            "127.0.0.1:0",
            "--monitor-interval",
            "1s",
            "--data-dir",
        ])
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(data.join("stderr.log")).unwrap())
        .spawn()
        .unwrap();
    // Owned by the guard from here on, so a panic below still kills and reaps it.
    let mut intake = Intake {
        child,
        base: String::new(),
    };
    let (tx, rx) = mpsc::channel();
    let out = intake.child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("cairn intake printed no Explorer URL");
        if let Some(url) = line.strip_prefix("Log Explorer: ") {
            intake.base = url.trim().split("/?").next().unwrap().to_owned();
            return intake;
        }
    }
}

fn post(intake: &Intake, token: &str, path: &str, body: &str) {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
        .args(["-H", &format!("DD-API-KEY: {token}")])
        .args([
            "-H",
            "content-type: application/json",
            "--data-binary",
            body,
        ])
        .arg(format!("{}{path}", intake.base))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "202", "{path} {body}");
}

fn run(args: &[&str], intake: &Intake, token_file: &std::path::Path) -> (bool, String, String) {
    let out = cairn()
        .args(args)
        .args(["--url", &intake.base, "--token-file"])
        .arg(token_file)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn monitors_are_listed_shown_and_tested_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("intake");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("monitors.yaml"),
        "monitors:\n  - id: 4\n    name: web errors\n    query: 'logs(\"service:web status:error\").rollup(\"count\").by(\"host\").last(\"5m\") > 2'\n    message: '{{value}} errors on {{host.name}}'\n    options: {thresholds: {critical: 2, warning: 1}}\n  - id: 9\n    name: quiet\n    query: 'logs(\"service:none\").rollup(\"count\").last(\"5m\") > 100'\n    options: {evaluation_delay: 30, include_tags: true, notify_audit: false, escalation_message: again, on_missing_data: resolve}\n",
    )
    .unwrap();
    let intake = start_intake(&data);
    let token_file = data.join("auth_token");
    let token = std::fs::read_to_string(&token_file).unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let logs: Vec<String> = (0..5)
        .map(|i| format!(r#"{{"message":"boom","service":"web","status":"error","hostname":"{}","timestamp":{}}}"#, if i < 4 { "a" } else { "b" }, now - 10_000 + i))
        .collect();
    post(
        &intake,
        token.trim(),
        "/api/v2/logs",
        &format!("[{}]", logs.join(",")),
    );

    // The intake's own rounds (every second) turn host a to Alert.
    let deadline = Instant::now() + Duration::from_secs(20);
    let listed = loop {
        let (ok, out, err) = run(&["monitors", "list"], &intake, &token_file);
        assert!(ok, "{err}");
        if out
            .lines()
            .any(|l| l.starts_with("4 ") && l.contains("Alert"))
        {
            break out;
        }
        assert!(Instant::now() < deadline, "never alerted:\n{out}");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(listed.contains("web errors"), "{listed}");
    // The columns line up under their headers.
    let mut lines = listed.lines();
    let head = lines.next().unwrap();
    for col in ["STATE", "NOT OK", "NAME"] {
        let at = head.find(col).unwrap();
        for l in listed.lines().skip(1) {
            let b = l.as_bytes();
            assert!(
                b[at - 1] == b' ' && b[at] != b' ',
                "{col} misaligned:\n{listed}"
            );
        }
    }
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("9 ") && l.contains("OK") && l.ends_with("quiet")),
        "{listed}"
    );

    let (ok, out, err) = run(&["monitors", "show", "web errors"], &intake, &token_file);
    assert!(ok, "{err}");
    assert!(out.contains("Monitor 4 (web errors)"), "{out}");
    assert!(out.contains("State: Alert"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("Alert") && l.contains("host:a") && l.contains(" 4 ")),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.contains("host:a OK -> Alert")),
        "{out}"
    );

    // Datadog's options: the applied ones shown with their values, the kept ones named.
    let (ok, out, err) = run(&["monitors", "show", "quiet"], &intake, &token_file);
    assert!(ok, "{err}");
    assert!(
        out.contains("Evaluation delay: 30 s  New group delay: none"),
        "{out}"
    );
    assert!(out.contains("Kept, not applied: include_tags\n"), "{out}");
    assert!(
        out.contains("No data: on missing data resolve  Renotify: no"),
        "{out}"
    );

    let (ok, out, err) = run(&["monitors", "test", "4"], &intake, &token_file);
    assert!(ok, "{err}");
    let row = |g: &str| {
        out.lines()
            .find(|l| l.starts_with(g))
            .unwrap_or_else(|| panic!("{g} in {out}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(row("host:a"), ["host:a", "4", "Alert", "Alert"]);
    assert_eq!(row("host:b"), ["host:b", "1", "OK", "OK"]);

    let (ok, out, _) = run(&["monitors", "test", "4", "--json"], &intake, &token_file);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["monitor_id"], 4);

    // The agent log is told too, with the rendered message.
    let log = std::fs::read_to_string(data.join("stderr.log")).unwrap();
    assert!(
        log.lines().any(|l| l.contains("monitor alert")
            && l.contains("group=host:a")
            && l.contains("notification=\"4 errors on a\"")),
        "{log}"
    );

    let (ok, _, err) = run(&["monitors", "show", "nope"], &intake, &token_file);
    assert!(!ok);
    assert!(
        err.contains("no monitor with the id or name \"nope\""),
        "{err}"
    );
}
