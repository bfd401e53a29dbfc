//! With no api_key and no logs_dd_url, `cairn run` starts the embedded local intake, ships to
//! it over real HTTP on 127.0.0.1, prints the Explorer URL, and the bundled example's logs are
//! searchable by `source:` and `service:` within `batch_wait` + 1 s of the agent starting.
//! Also: `cairn check` sees the cursors `cairn run` made durable, and `--persist` refuses to
//! write while an agent owns the buffer.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

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
    started: Instant,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `cairn run` on a free port; returns once it printed the Explorer URL and said started.
fn start_agent(dir: &Path) -> Agent {
    start_agent_with(dir, &[])
}

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
    Agent {
        child,
        explorer,
        started: Instant::now(),
    }
}

/// `cairn logs search` against the agent of `dir`: the token comes from its run_path.
fn search(dir: &Path, explorer: &str, query: &str) -> Vec<Value> {
    read_json(dir, explorer, &["logs", "search", query])
}

/// A `cairn` read command (`logs search`, `metrics query`, …) with `--json` against the agent
/// of `dir`, whose token it finds in the agent's run_path.
fn read_json(dir: &Path, explorer: &str, args: &[&str]) -> Vec<Value> {
    let base = explorer.split("/?").next().unwrap().trim_end_matches('/');
    cli_json(dir, args, Some(base))
}

/// The same, asking `url`, or with no `--url` the intake the agent's config names.
fn cli_json(dir: &Path, args: &[&str], url: Option<&str>) -> Vec<Value> {
    let mut cmd = cairn(dir);
    cmd.args(args).arg("--json");
    if let Some(url) = url {
        cmd.args(["--url", url]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn the_bundled_example_is_searchable_in_the_local_intake_within_batch_wait_plus_one_second() {
    let dir = seed_copy();
    let agent = start_agent(dir.path());
    assert!(
        agent.explorer.starts_with("http://127.0.0.1:"),
        "{}",
        agent.explorer
    );
    let limit = Duration::from_secs_f64(BATCH_WAIT_SECS + 1.0);
    for query in [
        "source:cursor_log",
        "service:example-app",
        "source:custom_check service:my-custom-integration",
        "source:basic_log",
    ] {
        let found = loop {
            let logs = search(dir.path(), &agent.explorer, query);
            if !logs.is_empty() {
                break logs;
            }
            assert!(
                agent.started.elapsed() <= limit,
                "{query}: nothing after {:?}",
                agent.started.elapsed()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(
            agent.started.elapsed() <= limit,
            "{query}: found only after {:?}",
            agent.started.elapsed()
        );
        let text = serde_json::to_string(&found).unwrap();
        assert!(
            !text.contains("token=abc"),
            "mask_sequences applied before shipping: {text}"
        );
    }
    // The Explorer page itself is served: the printed URL trades its token for a cookie and
    // redirects to the page (curl's cookie engine, `-b ""`, carries the cookie across).
    let page = Command::new("curl")
        .args(["-sfL", "-b", "", &agent.explorer])
        .output();
    if let Ok(page) = page {
        assert!(
            String::from_utf8_lossy(&page.stdout).contains("<html"),
            "Explorer page served"
        );
    }
}

#[test]
fn cairn_check_reads_the_cursors_cairn_run_made_durable_and_persist_waits_for_the_agent() {
    let dir = seed_copy();
    let agent = start_agent(dir.path());
    // The first run of cursor_log ships rows 1..3 and commits cursor 3 before it is reported.
    let deadline = Instant::now() + Duration::from_secs(10);
    while search(dir.path(), &agent.explorer, "source:cursor_log").len() < 3 {
        assert!(Instant::now() < deadline, "cursor_log logs never arrived");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = cairn(dir.path())
        .args(["check", "cursor_log", "--json"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("an agent is running on this run_path"),
        "cairn check warns that the agent runs these checks too: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let first = v["runs"][0]["logs"][0]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(
        first, "request 1 served token=[REDACTED]",
        "cairn check must resume after the agent's cursor"
    );

    let out = cairn(dir.path())
        .args(["check", "cursor_log", "--persist", "--format", "summary"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--persist: cannot open the buffer") && stderr.contains("stop it first"),
        "{stderr}"
    );
    drop(agent);
}

const METRICS_CHECK: &str = r#"
from datadog_checks.base import AgentCheck


class E2eCheck(AgentCheck):
    runs = 0

    def check(self, instance):
        E2eCheck.runs += 1
        self.gauge('e2e.temperature', 21.5, tags=['room:lab'])
        self.count('e2e.jobs', 2)
        self.monotonic_count('e2e.bytes', E2eCheck.runs * 100)
        self.service_check('e2e.can_connect', AgentCheck.CRITICAL if E2eCheck.runs == 1 else AgentCheck.OK,
                           message='refused' if E2eCheck.runs == 1 else '')
        if E2eCheck.runs == 1:
            self.event({'msg_title': 'e2e started', 'msg_text': 'hello', 'alert_type': 'success',
                        'tags': ['phase:start']})
        self.send_log({'message': 'e2e tick %d' % E2eCheck.runs})
"#;

/// Issue 9: with no Datadog account, what a check submits besides logs reaches the embedded
/// intake through the flusher and the forwarder, and the CLI reads it back: gauges, counts and
/// monotonic counts with the instance's tags and the agent's hostname, the latest service-check
/// status, the event, and the agent's own `datadog.agent.up`.
#[test]
fn metrics_checks_and_events_reach_the_embedded_intake_and_read_back_through_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("datadog.yaml"),
        "logs_enabled: true\nhostname: e2e-host\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("conf.d/e2e.d")).unwrap();
    std::fs::write(
        dir.join("conf.d/e2e.d/conf.yaml"),
        "init_config: {}\ninstances:\n  - min_collection_interval: 1\n    tags: [env:e2e]\nlogs:\n  - type: integration\n    source: e2e\n    service: e2e-app\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("checks.d")).unwrap();
    std::fs::write(dir.join("checks.d/e2e.py"), METRICS_CHECK).unwrap();
    let agent = start_agent_with(dir, &[("CAIRN_METRICS_FLUSH_SECS", "1")]);

    let query = |q: &str| {
        read_json(
            dir,
            &agent.explorer,
            &["metrics", "query", q, "--from", "15m"],
        )
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    // Until the monotonic count has its second sample, three runs and a flush after them.
    let bytes = loop {
        let rows = query("sum:e2e.bytes{*}.as_count()");
        let total: f64 = rows
            .iter()
            .flat_map(|r| r["pointlist"].as_array().cloned().unwrap_or_default())
            .filter_map(|p| p[1].as_f64())
            .sum();
        if total >= 200.0 {
            break rows;
        }
        assert!(
            Instant::now() < deadline,
            "e2e.bytes never reached 200: {rows:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    // Each run adds 100 bytes: every delta is 100, none is lost or doubled.
    for p in bytes[0]["pointlist"].as_array().unwrap() {
        let v = p[1].as_f64().unwrap();
        assert!(v % 100.0 == 0.0 && v > 0.0, "a delta of {v}: {bytes:?}");
    }

    let temp = query("avg:e2e.temperature{env:e2e,room:lab} by {host}");
    assert_eq!(temp.len(), 1, "{temp:?}");
    assert_eq!(temp[0]["tag_set"], serde_json::json!(["host:e2e-host"]));
    let values: Vec<f64> = temp[0]["pointlist"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p[1].as_f64())
        .collect();
    assert!(
        !values.is_empty() && values.iter().all(|v| *v == 21.5),
        "{values:?}"
    );
    let jobs = query("sum:e2e.jobs{env:e2e}.as_count()");
    let jobs_total: f64 = jobs[0]["pointlist"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p[1].as_f64())
        .sum();
    assert!(jobs_total >= 4.0 && jobs_total % 2.0 == 0.0, "{jobs:?}");

    let running = query("avg:datadog.agent.running{*} by {host,version}");
    assert_eq!(running.len(), 1, "{running:?}");
    assert_eq!(
        running[0]["tag_set"],
        serde_json::json!([
            "host:e2e-host",
            concat!("version:", env!("CARGO_PKG_VERSION"))
        ])
    );

    let checks = read_json(dir, &agent.explorer, &["checks", "status"]);
    let can_connect = checks
        .iter()
        .find(|c| c["check"] == "e2e.can_connect")
        .unwrap_or_else(|| panic!("no e2e.can_connect in {checks:?}"));
    assert_eq!(
        can_connect["status_name"], "OK",
        "the latest status wins: {checks:?}"
    );
    assert_eq!(can_connect["host_name"], "e2e-host");
    assert!(
        can_connect["tags"]
            .as_array()
            .unwrap()
            .contains(&"env:e2e".into()),
        "{can_connect}"
    );
    assert!(
        checks
            .iter()
            .any(|c| c["check"] == "datadog.agent.up" && c["status_name"] == "OK"),
        "{checks:?}"
    );

    let events = read_json(dir, &agent.explorer, &["events", "list", "--from", "15m"]);
    assert_eq!(events.len(), 1, "one event, sent once: {events:?}");
    assert_eq!(events[0]["title"], "e2e started");
    assert_eq!(events[0]["host"], "e2e-host");
    let tags = events[0]["tags"].as_array().unwrap();
    assert!(
        tags.contains(&"phase:start".into()) && tags.contains(&"env:e2e".into()),
        "{tags:?}"
    );

    // And the check's logs went the same way.
    assert!(!search(dir, &agent.explorer, "source:e2e service:e2e-app tick").is_empty());
}

/// The read commands find the agent's intake from its config: no `--url` needed when
/// `logs_config.intake.listen` is not the default.
#[test]
fn read_commands_ask_the_intake_the_config_names() {
    let dir = seed_copy();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let yaml = std::fs::read_to_string(dir.path().join("datadog.yaml")).unwrap();
    std::fs::write(
        dir.path().join("datadog.yaml"),
        format!("{yaml}\nlogs_config:\n  intake:\n    listen: {listen}\n"),
    )
    .unwrap();
    let agent = start_agent_with(dir.path(), &[("DD_LOGS_CONFIG_INTAKE_LISTEN", &listen)]);
    assert!(agent.explorer.contains(&listen), "{}", agent.explorer);
    let deadline = Instant::now() + Duration::from_secs(20);
    while cli_json(dir.path(), &["logs", "search", "source:cursor_log"], None).is_empty() {
        assert!(Instant::now() < deadline, "no logs found without --url");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Answered by the same intake (empty: the first 15 s flush has not happened yet).
    cli_json(dir.path(), &["checks", "status"], None);
}
