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
    let mut child = cairn(dir)
        .arg("run")
        .env("DD_LOGS_CONFIG_INTAKE_LISTEN", "127.0.0.1:0")
        .env("DD_LOGS_CONFIG_BATCH_WAIT", BATCH_WAIT_SECS.to_string())
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
    let base = explorer.split("/?").next().unwrap().trim_end_matches('/');
    let out = cairn(dir)
        .args(["logs", "search", query, "--json", "--url", base])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "search failed: {}",
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
