//! Helpers shared by the `cairn` integration tests: a throw-away config directory, running the
//! real `cairn` binary (with a timeout, never inheriting `DD_*` / `CAIRN_*` variables), and
//! reading what it printed.
//!
//! Every test gets its own temporary directory, so tests are hermetic and may run in parallel.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// The binary under test, built by cargo for these tests.
pub const CAIRN: &str = env!("CARGO_BIN_EXE_cairn");

/// Longest any single `cairn` invocation may take before the test fails (and the process is killed).
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// The hostname written into the default `datadog.yaml`.
pub const HOSTNAME: &str = "test-host";

/// The `datadog.yaml` of [`ConfigDir::new`].
pub const DEFAULT_DATADOG_YAML: &str = "logs_enabled: true\nhostname: test-host\n";

/// A temporary config directory laid out like the Datadog Agent's.
pub struct ConfigDir {
    tmp: tempfile::TempDir,
}

impl ConfigDir {
    /// `datadog.yaml` with `logs_enabled: true` and `hostname: test-host`; no checks.
    pub fn new() -> Self {
        let dir = Self::empty();
        dir.datadog_yaml(DEFAULT_DATADOG_YAML);
        dir
    }

    /// No files at all (not even `datadog.yaml`).
    pub fn empty() -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("cairn-test-")
            .tempdir()
            .expect("creating a temp dir");
        ConfigDir { tmp }
    }

    /// A copy of `src`, leaving out the top-level entries named in `skip` (e.g. a `run` dir).
    pub fn copy_of(src: &Path, skip: &[&str]) -> Self {
        let dir = Self::empty();
        for entry in
            std::fs::read_dir(src).unwrap_or_else(|e| panic!("reading {}: {e}", src.display()))
        {
            let entry = entry.expect("reading a dir entry");
            let name = entry.file_name();
            if skip.iter().any(|s| name == **s) {
                continue;
            }
            copy_tree(&entry.path(), &dir.path().join(&name));
        }
        dir
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// `<dir>/<rel>`.
    pub fn join(&self, rel: &str) -> PathBuf {
        self.path().join(rel)
    }

    pub fn datadog_yaml(&self, text: &str) -> &Self {
        self.write("datadog.yaml", text)
    }

    /// `conf.d/<name>.d/conf.yaml`.
    pub fn conf(&self, name: &str, yaml: &str) -> &Self {
        self.write(&format!("conf.d/{name}.d/conf.yaml"), yaml)
    }

    /// `checks.d/<name>.py`.
    pub fn check_py(&self, name: &str, source: &str) -> &Self {
        self.write(&format!("checks.d/{name}.py"), source)
    }

    /// Writes `text` to `<dir>/<rel>`, creating parent directories.
    pub fn write(&self, rel: &str, text: &str) -> &Self {
        let path = self.join(rel);
        std::fs::create_dir_all(path.parent().expect("a file has a parent"))
            .expect("creating dirs");
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        self
    }

    pub fn read(&self, rel: &str) -> String {
        let path = self.join(rel);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
    }

    /// Lines of `<dir>/<rel>`, or none when the file does not exist yet.
    pub fn lines(&self, rel: &str) -> Vec<String> {
        std::fs::read_to_string(self.join(rel))
            .map(|t| t.lines().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// `cairn -c <dir> <args...>`, ready to run.
    pub fn cairn(&self, args: &[&str]) -> Cairn {
        Cairn::new(self.path(), args)
    }

    /// `cairn -c <dir> check <name> --json <extra...>`: the process output and the parsed JSON.
    /// Panics (showing stderr) when stdout is not one JSON object.
    pub fn check_json(&self, name: &str, extra: &[&str]) -> (Output, Value) {
        let mut args = vec!["check", name, "--json"];
        args.extend_from_slice(extra);
        let out = self.cairn(&args).run();
        let json = out.json();
        (out, json)
    }
}

fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).expect("creating a dir");
        for entry in std::fs::read_dir(from).expect("reading a dir") {
            let entry = entry.expect("reading a dir entry");
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::copy(from, to).unwrap_or_else(|e| panic!("copying {}: {e}", from.display()));
    }
}

/// One invocation of the binary.
pub struct Cairn {
    cmd: Command,
    timeout: Duration,
    description: String,
}

impl Cairn {
    pub fn new(config_dir: &Path, args: &[&str]) -> Self {
        let mut cmd = Command::new(CAIRN);
        cmd.arg("-c").arg(config_dir).args(args);
        // Hermetic: whatever the developer's or CI's environment holds must not leak in.
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if k.starts_with("DD_") || k.starts_with("CAIRN_") || k.starts_with("PYTHON") {
                cmd.env_remove(&key);
            }
        }
        cmd.env("PYTHONDONTWRITEBYTECODE", "1");
        // `cairn run` ships logs: send them to this test's own sink on 127.0.0.1, never to a
        // shared default port where another agent or intake may be listening.
        cmd.env("DD_LOGS_CONFIG_LOGS_DD_URL", intake_url());
        // The local API too: parallel agents must not meet on the default 5001, and a
        // `cairn status` of this dir must reach this dir's agent.
        // A test that sets cmd_port itself (to a bad value, say) keeps it.
        let yaml = std::fs::read_to_string(config_dir.join("datadog.yaml")).unwrap_or_default();
        if !yaml.contains("cmd_port") {
            cmd.env("DD_CMD_PORT", cmd_port(config_dir).to_string());
        }
        cmd.current_dir(config_dir);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let description = format!("cairn -c {} {}", config_dir.display(), args.join(" "));
        Cairn {
            cmd,
            timeout: TIMEOUT,
            description,
        }
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.cmd.env(key, value);
        self.description = format!("{key}={value} {}", self.description);
        self
    }

    pub fn env_remove(mut self, key: &str) -> Self {
        self.cmd.env_remove(key);
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Runs to completion; panics if it takes longer than the timeout.
    pub fn run(self) -> Output {
        let started = Instant::now();
        let running = self.spawn();
        let deadline = started + running.timeout;
        running.wait_until(deadline)
    }

    /// Starts the process and returns at once (for `cairn run`).
    pub fn spawn(mut self) -> Running {
        let mut child = self
            .cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.description));
        let (stdout, stdout_seen) = reader(child.stdout.take().expect("stdout is piped"));
        let (stderr, stderr_seen) = reader(child.stderr.take().expect("stderr is piped"));
        Running {
            child: Some(child),
            stdout: Some(stdout),
            stderr: Some(stderr),
            stderr_seen,
            stdout_seen,
            started: Instant::now(),
            timeout: self.timeout,
            description: self.description,
        }
    }
}

/// Reads `pipe` to its end on a thread, keeping what arrived so far visible in `seen`.
fn reader(mut pipe: impl Read + Send + 'static) -> (JoinHandle<String>, Arc<Mutex<Vec<u8>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let handle = std::thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        loop {
            match pipe.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => sink
                    .lock()
                    .expect("reader lock")
                    .extend_from_slice(&chunk[..n]),
            }
        }
        let bytes = sink.lock().expect("reader lock");
        String::from_utf8_lossy(&bytes).into_owned()
    });
    (handle, seen)
}

/// A `cairn` process that is still running. Dropping it kills the process.
pub struct Running {
    child: Option<Child>,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
    stderr_seen: Arc<Mutex<Vec<u8>>>,
    stdout_seen: Arc<Mutex<Vec<u8>>>,
    started: Instant,
    timeout: Duration,
    description: String,
}

impl Running {
    /// What the process wrote to stderr so far.
    pub fn stderr_so_far(&self) -> String {
        String::from_utf8_lossy(&self.stderr_seen.lock().expect("reader lock")).into_owned()
    }

    /// What the process wrote to stdout so far.
    pub fn stdout_so_far(&self) -> String {
        String::from_utf8_lossy(&self.stdout_seen.lock().expect("reader lock")).into_owned()
    }

    /// The Log Explorer URL the process printed (with its `?token=`), waiting for it.
    #[track_caller]
    pub fn explorer_url(&self, within: Duration) -> String {
        let find = || {
            self.stdout_so_far().lines().find_map(|l| {
                l.strip_prefix("Log Explorer: ")
                    .map(|u| u.trim().to_owned())
            })
        };
        if !wait_for(within, || find().is_some()) {
            panic!(
                "{}: no Explorer URL printed\n--- stderr ---\n{}",
                self.description,
                self.stderr_so_far()
            );
        }
        find().expect("found above")
    }

    /// Waits until stderr contains `needle` (e.g. `cairn started`, logged once signal handlers
    /// are installed); panics with the output so far if it does not within `within`.
    #[track_caller]
    pub fn wait_for_stderr(&mut self, needle: &str, within: Duration) {
        let found = wait_for(within, || self.stderr_so_far().contains(needle));
        if !found {
            panic!(
                "{}: {needle:?} not on stderr after {:?}\n--- stderr ---\n{}",
                self.description,
                within,
                self.stderr_so_far()
            );
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("not yet waited for").id()
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Whether the process has exited already.
    pub fn has_exited(&mut self) -> bool {
        matches!(
            self.child.as_mut().expect("not yet waited for").try_wait(),
            Ok(Some(_))
        )
    }

    /// Sends SIGTERM and waits for the process to exit (at most `within`).
    pub fn sigterm(mut self, within: Duration) -> Output {
        // SAFETY: kill(2) with a pid we spawned and have not reaped yet.
        let rc = unsafe { libc::kill(self.pid() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(
            rc,
            0,
            "kill(SIGTERM) failed: {}",
            std::io::Error::last_os_error()
        );
        let deadline = Instant::now() + within;
        self.wait_until_inner(deadline)
    }

    /// Waits for the process to exit on its own.
    pub fn wait(mut self) -> Output {
        let deadline = self.started + self.timeout;
        self.wait_until_inner(deadline)
    }

    fn wait_until(mut self, deadline: Instant) -> Output {
        self.wait_until_inner(deadline)
    }

    fn wait_until_inner(&mut self, deadline: Instant) -> Output {
        let mut child = self.child.take().expect("waited for once");
        let status = loop {
            match child.try_wait().expect("waiting for cairn") {
                Some(status) => break Some(status),
                None if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                None => std::thread::sleep(Duration::from_millis(10)),
            }
        };
        let stdout = self
            .stdout
            .take()
            .expect("read once")
            .join()
            .expect("stdout reader");
        let stderr = self
            .stderr
            .take()
            .expect("read once")
            .join()
            .expect("stderr reader");
        let Some(status) = status else {
            panic!(
                "{} did not finish in time (killed after {:?})\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
                self.description,
                self.started.elapsed()
            );
        };
        use std::os::unix::process::ExitStatusExt;
        Output {
            code: status.code(),
            signal: status.signal(),
            stdout,
            stderr,
            elapsed: self.started.elapsed(),
            description: self.description.clone(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What a finished `cairn` process left behind.
#[derive(Debug, Clone)]
pub struct Output {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    pub description: String,
}

impl Output {
    /// Everything, for assertion messages.
    pub fn dump(&self) -> String {
        format!(
            "{} -> exit {:?} (signal {:?}) after {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.description, self.code, self.signal, self.elapsed, self.stdout, self.stderr
        )
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "unexpected exit status\n{}",
            self.dump()
        );
        self
    }

    /// stdout as one JSON value.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{}", self.dump()))
    }

    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr.lines().collect()
    }

    /// Messages the agent logged at `level` (`ERROR`, `WARN`, `INFO`): the text after the
    /// timestamp and level of each tracing line.
    pub fn logged(&self, level: &str) -> Vec<String> {
        let marker = format!(" {level} ");
        self.stderr
            .lines()
            .filter_map(|l| {
                l.split_once(&marker)
                    .map(|(_, msg)| msg.trim_start().to_string())
            })
            .collect()
    }
}

/// A free port for the local API of the agent of `config_dir`, the same for every command run
/// on that dir by this test process.
pub fn cmd_port(config_dir: &Path) -> u16 {
    static PORTS: OnceLock<Mutex<std::collections::HashMap<PathBuf, u16>>> = OnceLock::new();
    let mut ports = PORTS
        .get_or_init(Default::default)
        .lock()
        .expect("ports lock");
    *ports.entry(config_dir.to_path_buf()).or_insert_with(|| {
        TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port")
    })
}

/// The URL of a minimal HTTP intake for this test process: it answers every request with
/// `202 {}` (and keeps nothing), so that `cairn run` delivers its logs at once and stops fast.
pub fn intake_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the test intake");
        let addr = listener.local_addr().expect("the test intake's address");
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                std::thread::spawn(move || serve_accepting(conn));
            }
        });
        format!("http://{addr}")
    })
}

/// Serves HTTP/1.1 requests on one connection (keep-alive) until the peer closes it.
fn serve_accepting(mut conn: TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        // Headers.
        let header_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match conn.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..header_end]).to_ascii_lowercase();
        let content_length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok());
        let chunked = head
            .lines()
            .any(|l| l.starts_with("transfer-encoding:") && l.contains("chunked"));
        // Body.
        let body_end = loop {
            let end = match content_length {
                Some(n) => (buf.len() >= header_end + n).then_some(header_end + n),
                None if chunked => buf[header_end..]
                    .windows(5)
                    .position(|w| w == b"0\r\n\r\n")
                    .map(|i| header_end + i + 5),
                None => Some(header_end),
            };
            if let Some(end) = end {
                break end;
            }
            match conn.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        buf.drain(..body_end);
        let reply = b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        if conn.write_all(reply).is_err() {
            return;
        }
    }
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// `value` is a JSON number in `[lo, hi]`.
#[track_caller]
pub fn assert_ms_between(value: &Value, lo: i64, hi: i64) {
    let ms = value
        .as_i64()
        .unwrap_or_else(|| panic!("timestamp {value} is not an integer"));
    assert!(
        (lo..=hi).contains(&ms),
        "timestamp {ms} not within [{lo}, {hi}]"
    );
}

/// `value` without the keys in `drop` (to compare a log whose timestamp varies).
pub fn without(value: &Value, drop: &[&str]) -> Value {
    let mut v = value.clone();
    if let Some(map) = v.as_object_mut() {
        for k in drop {
            map.remove(*k);
        }
    }
    v
}

/// The `runs` array of a `cairn check --json` output.
#[track_caller]
pub fn runs(json: &Value) -> &Vec<Value> {
    json["runs"]
        .as_array()
        .unwrap_or_else(|| panic!("no runs array in {json}"))
}

/// The `message` of every log of a run.
pub fn messages(run: &Value) -> Vec<String> {
    run["logs"]
        .as_array()
        .map(|logs| {
            logs.iter()
                .map(|l| l["message"].as_str().unwrap_or("<no message>").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Starts `cairn run` in `dir` and returns once it has logged `cairn started` (its signal
/// handlers are in place, so a SIGTERM from the test is a clean stop).
pub fn start_agent(dir: &ConfigDir) -> Running {
    let mut agent = dir.cairn(&["run"]).spawn();
    agent.wait_for_stderr("cairn started", Duration::from_secs(30));
    agent
}

/// Waits until `<dir>/<rel>` has at least `n` lines; returns whether it got there in `within`.
pub fn wait_for_lines(dir: &ConfigDir, rel: &str, n: usize, within: Duration) -> bool {
    wait_for(within, || dir.lines(rel).len() >= n)
}

/// Polls `cond` every 20 ms until it holds or `within` has passed; returns whether it held.
pub fn wait_for(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A check that appends one line (`<unix time>`) to the file named by its instance's `out`
/// option on every run and sends one log. The conf for it is [`counting_conf`].
pub const COUNTING_CHECK: &str = r#"
import time
from datadog_checks.base import AgentCheck


class CountingCheck(AgentCheck):
    def check(self, instance):
        with open(instance['out'], 'a') as f:
            f.write('%.6f\n' % time.time())
        self.send_log({'message': 'counted'})
"#;

/// Conf of a [`COUNTING_CHECK`] that runs every `interval` seconds and appends to `out`.
pub fn counting_conf(out: &Path, interval: f64) -> String {
    format!(
        "instances:\n  - min_collection_interval: {interval}\n    out: {}\nlogs:\n  - type: integration\n    source: counting\n    service: counting\n",
        serde_json::to_string(&out.display().to_string()).expect("a string serializes")
    )
}

/// The times (seconds since the epoch) a counting check recorded in `<dir>/<rel>`.
pub fn run_times(dir: &ConfigDir, rel: &str) -> Vec<f64> {
    dir.lines(rel)
        .iter()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// A virtualenv of Debian's python3.11 (the interpreter the binary embeds) under the test
/// target dir, named `name`, with `packages` installed from PyPI once (kept across runs).
pub fn venv_with(tmpdir: &Path, name: &str, packages: &[&str]) -> PathBuf {
    let dir = tmpdir.join(name);
    let marker = dir.join(".installed");
    if !marker.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        let ok = Command::new("/usr/bin/python3.11")
            .args(["-m", "venv"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(ok.success(), "creating the virtualenv failed");
        let ok = Command::new(dir.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(packages)
            .status()
            .unwrap();
        assert!(
            ok.success(),
            "pip install {packages:?} failed (PyPI must be reachable)"
        );
        std::fs::write(&marker, "").unwrap();
    }
    dir
}
