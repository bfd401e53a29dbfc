//! Issue 12 item 6 against the real agent: `cairn run` evaluates `logs_config.intake.monitors`
//! on its embedded intake, `cairn status` shows the monitors section (counts by state, each
//! group not OK), and `cairn monitors list` finds the intake the config names.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BATCH_WAIT_SECS: f64 = 1.0;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_name() == "run" {
            continue;
        }
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

fn seed_copy() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/seed"),
        tmp.path(),
    );
    tmp
}

fn cairn(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
    cmd.arg("-c").arg(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("DD_") || k.starts_with("CAIRN_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

struct Agent {
    child: Child,
    explorer: String,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `cairn run` on a free port; returns once it printed the Explorer URL and said started.
fn start_agent_with(dir: &Path, env: &[(&str, &str)]) -> Agent {
    let mut cmd = cairn(dir);
    cmd.arg("run")
        .env("DD_LOGS_CONFIG_INTAKE_LISTEN", "127.0.0.1:0")
        .env("DD_LOGS_CONFIG_BATCH_WAIT", BATCH_WAIT_SECS.to_string());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    let err = child.stderr.take().unwrap();
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx2.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut explorer = None;
    let mut seen = Vec::new();
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("agent did not start:\n{}", seen.join("\n")));
        if let Some(url) = line.strip_prefix("Log Explorer: ") {
            explorer = Some(url.trim().to_string());
        }
        let started = line.contains("cairn started");
        seen.push(line);
        if started {
            break;
        }
    }
    std::thread::spawn(move || while rx.recv().is_ok() {});
    let explorer =
        explorer.unwrap_or_else(|| panic!("no Explorer URL printed:\n{}", seen.join("\n")));
    Agent { child, explorer }
}

fn status_text(dir: &Path) -> String {
    let out = cairn(dir).arg("status").output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn cairn_status_shows_the_monitors_of_the_embedded_intake() {
    let dir = seed_copy();
    let file = dir.path().join("monitors.yaml");
    std::fs::write(
        &file,
        "monitors:\n  - id: 11\n    name: any log\n    query: 'logs(\"*\").rollup(\"count\").last(\"5m\") > 0'\n  - id: 12\n    name: never\n    query: 'logs(\"service:nothing-logs-this\").rollup(\"count\").last(\"5m\") > 0'\n",
    )
    .unwrap();
    let file_s = file.display().to_string();
    let agent = start_agent_with(
        dir.path(),
        &[
            ("DD_LOGS_CONFIG_INTAKE_MONITORS", file_s.as_str()),
            ("DD_LOGS_CONFIG_INTAKE_MONITOR_INTERVAL", "1"),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let text = loop {
        let text = status_text(dir.path());
        if text.contains("Alert: 1") {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no alerting monitor in status:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(text.contains("Monitors\n========"), "{text}");
    assert!(
        text.contains("Monitors: 2  OK: 1  Warn: 0  Alert: 1  No Data: 0"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("Alert") && l.contains("any log (11) *")),
        "{text}"
    );

    let base = agent
        .explorer
        .split("/?")
        .next()
        .unwrap()
        .trim_end_matches('/');
    let out = cairn(dir.path())
        .args(["monitors", "list", "--url", base])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(
        list.lines()
            .any(|l| l.starts_with("11 ") && l.contains("Alert")),
        "{list}"
    );
}
