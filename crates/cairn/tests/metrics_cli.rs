//! Issue 9 item 4 against the real binary: a `cairn intake` process receives series, service
//! checks and events over HTTP, and `cairn metrics query`, `cairn events list` and
//! `cairn checks status` print them (tables for people, a JSON object per line with --json),
//! with the intake's token from --token-file, and direction controls shown as markers.

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
        .args(["intake", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
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
fn metrics_events_and_checks_are_read_back_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("intake");
    let intake = start_intake(&data);
    let token_file = data.join("auth_token");
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let t = now - 600;
    post(
        &intake,
        &token,
        "/api/v1/series",
        &format!(
            r#"{{"series":[
              {{"metric":"apache.net.hits","type":"gauge","host":"web1","tags":["env:prod"],"points":[[{t},1],[{},3]]}},
              {{"metric":"apache.net.hits","type":"gauge","host":"web2\u202e","tags":["env:prod"],"points":[[{t},10]]}}
            ]}}"#,
            t + 60
        ),
    );
    post(
        &intake,
        &token,
        "/api/v1/check_run",
        &format!(
            r#"[{{"check":"apache.can_connect","host_name":"web1","timestamp":{t},"status":0,"tags":["port:80"]}},
               {{"check":"apache.can_connect","host_name":"web1","timestamp":{},"status":2,"message":"refused","tags":["port:80"]}},
               {{"check":"disk.ok","host_name":"web1","timestamp":{t},"status":1}}]"#,
            t + 30
        ),
    );
    post(
        &intake,
        &token,
        "/api/v1/events",
        &format!(
            r#"{{"title":"Deploy","text":"v2","date_happened":{t},"tags":["env:prod"],"source_type_name":"jenkins"}}"#
        ),
    );
    post(
        &intake,
        &token,
        "/api/v1/events",
        &format!(
            r#"{{"title":"Rollback","alert_type":"warning","date_happened":{},"tags":["env:dev"]}}"#,
            t + 5
        ),
    );

    // metrics query: a table row per group with points, last, min, max, avg.
    let (ok, out, err) = run(
        &[
            "metrics",
            "query",
            "avg:apache.net.hits{*} by {host}",
            "--from",
            "1h",
        ],
        &intake,
        &token_file,
    );
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let cells = |l: &str| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(
        cells(lines[0]),
        ["SERIES", "POINTS", "LAST", "MIN", "MAX", "AVG", "INTERVAL"]
    );
    assert_eq!(
        cells(lines[1]),
        ["host:web1", "2", "3", "1", "3", "2", "15s"]
    );
    // The right-to-left override in the host name is shown, not obeyed.
    assert_eq!(cells(lines[2])[0], "host:web2<U+202E>");
    assert!(!out.contains('\u{202e}'));
    // --json: one series per line, in the API's shape; the control character escaped.
    let (ok, out, err) = run(
        &[
            "metrics",
            "query",
            "sum:apache.net.hits{env:prod}",
            "--from",
            "1h",
            "--to",
            "now",
            "--json",
        ],
        &intake,
        &token_file,
    );
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    let s: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(s["expression"], "sum:apache.net.hits{env:prod}");
    assert_eq!(s["pointlist"][0][1], 11.0);
    // A syntax error says where.
    let (ok, _, err) = run(
        &["metrics", "query", "avg:apache.net.hits{*"],
        &intake,
        &token_file,
    );
    assert!(!ok);
    assert!(err.contains("400") && err.contains("column 21"), "{err}");

    // events list: newest first; --tags filters.
    let (ok, out, err) = run(&["events", "list", "--from", "1h"], &intake, &token_file);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].contains("warning") && lines[0].contains("Rollback"),
        "{out}"
    );
    assert!(
        lines[1].contains("jenkins") && lines[1].contains("Deploy: v2"),
        "{out}"
    );
    let (ok, out, _) = run(
        &["events", "list", "--tags", "env:prod", "--json"],
        &intake,
        &token_file,
    );
    assert!(ok);
    let ev: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(ev["title"], "Deploy");

    // checks status: the latest status per check and tag set.
    let (ok, out, err) = run(&["checks", "status"], &intake, &token_file);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("STATUS"), "{out}");
    assert!(
        lines[1].starts_with("CRITICAL")
            && lines[1].contains("apache.can_connect")
            && lines[1].contains("port:80")
            && lines[1].contains("refused"),
        "{out}"
    );
    assert!(
        lines[2].starts_with("WARNING") && lines[2].contains("disk.ok"),
        "{out}"
    );
    let (ok, out, _) = run(
        &["checks", "status", "--check", "disk.*", "--json"],
        &intake,
        &token_file,
    );
    assert!(ok);
    let c: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (c["check"].as_str(), c["status"].as_i64()),
        (Some("disk.ok"), Some(1))
    );

    // Without the token the CLI is told the intake refused it.
    let out = cairn()
        .args(["checks", "status", "--url", &intake.base, "-c"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
}
