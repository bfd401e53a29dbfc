//! Shared by the `pipeline_*` tests: a test intake (a small HTTP/1.1 server on 127.0.0.1 that
//! records payloads and can be told to fail), a config directory with a numbered-log check, and
//! the real `cairn run` process.
//!
//! The numbered check: each run reads its cursor `{"n": k}` and sends logs `k .. k+per_run`,
//! each with cursor `{"n": i+1}`, until `total` (0 = forever). "Nothing lost" then means: every
//! number below the highest one received arrived at least once.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const CAIRN: &str = env!("CARGO_BIN_EXE_cairn");
pub const API_KEY: &str = "test-api-key-0123456789";

/// How the test intake answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// 202 `{}`.
    Accept,
    /// This status for every request.
    Status(u16),
    /// 429 with `Retry-After: secs`.
    TooManyRequests { retry_after_secs: u32 },
    /// Connections are refused (the listener is closed).
    Refuse,
    /// 400 for payloads holding this text, 202 otherwise.
    BadRequestIfContains(String),
    /// 413 for payloads with more than this many entries, or holding the text; 202 otherwise.
    TooLargeOver { max_entries: usize, text: String },
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    /// The request line's target (`/api/v2/logs`).
    pub path: String,
    pub headers: HashMap<String, String>,
    /// The body after undoing `Content-Encoding`.
    pub body: Vec<u8>,
    pub wire_bytes: usize,
    /// The status it was answered with.
    pub status: u16,
}

impl Received {
    pub fn logs(&self) -> Vec<Value> {
        serde_json::from_slice::<Vec<Value>>(&self.body).expect("payload is a JSON array")
    }
}

struct Shared {
    mode: Mutex<Mode>,
    requests: Mutex<Vec<Received>>,
    stop: AtomicBool,
}

pub struct Intake {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Intake {
    pub fn start() -> Intake {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the test intake");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            mode: Mutex::new(Mode::Accept),
            requests: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let intake = Intake {
            addr,
            shared,
            acceptor: Mutex::new(None),
        };
        intake.spawn_acceptor(listener);
        intake
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn spawn_acceptor(&self, listener: TcpListener) {
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let shared = self.shared.clone();
        let h = std::thread::spawn(move || loop {
            if shared.stop.load(Ordering::SeqCst) || *shared.mode.lock().unwrap() == Mode::Refuse {
                return; // dropping the listener: new connections are refused
            }
            match listener.accept() {
                Ok((stream, _)) => {
                    let shared = shared.clone();
                    std::thread::spawn(move || serve(stream, &shared));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(_) => return,
            }
        });
        *self.acceptor.lock().unwrap() = Some(h);
    }

    pub fn set_mode(&self, mode: Mode) {
        let was_refusing = *self.shared.mode.lock().unwrap() == Mode::Refuse;
        *self.shared.mode.lock().unwrap() = mode.clone();
        if mode == Mode::Refuse {
            if let Some(h) = self.acceptor.lock().unwrap().take() {
                h.join().unwrap();
            }
        } else if was_refusing {
            // Bind the same port again (SO_REUSEADDR is on for std listeners on Unix).
            let deadline = Instant::now() + Duration::from_secs(5);
            let listener = loop {
                match TcpListener::bind(self.addr) {
                    Ok(l) => break l,
                    Err(e) if Instant::now() < deadline => {
                        let _ = e;
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    Err(e) => panic!("rebinding the test intake on {}: {e}", self.addr),
                }
            };
            self.spawn_acceptor(listener);
        }
    }

    pub fn requests(&self) -> Vec<Received> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Logs of the payloads answered 2xx.
    pub fn delivered_logs(&self) -> Vec<Value> {
        self.requests()
            .iter()
            .filter(|r| (200..300).contains(&r.status) && r.path.starts_with("/api/v2/logs"))
            .flat_map(|r| r.logs())
            .collect()
    }

    /// How many times each number arrived in a delivered payload.
    pub fn delivered_numbers(&self) -> BTreeMap<u64, u32> {
        let mut m = BTreeMap::new();
        for log in self.delivered_logs() {
            if let Some(n) = log["num"].as_u64() {
                *m.entry(n).or_insert(0) += 1;
            }
        }
        m
    }
}

impl Drop for Intake {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }
}

fn serve(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut writer = stream;
    loop {
        if shared.stop.load(Ordering::SeqCst) || *shared.mode.lock().unwrap() == Mode::Refuse {
            return;
        }
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => return,
        }
        let _ = reader
            .get_ref()
            .set_read_timeout(Some(Duration::from_secs(10)));
        let path = line.split(' ').nth(1).unwrap_or("").to_string();
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut raw = vec![0; len];
        if reader.read_exact(&mut raw).is_err() {
            return;
        }
        let _ = reader
            .get_ref()
            .set_read_timeout(Some(Duration::from_millis(200)));
        let body = match headers.get("content-encoding").map(String::as_str) {
            Some("zstd") => zstd::decode_all(&raw[..]).expect("valid zstd body"),
            Some("gzip") => {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(&raw[..])
                    .read_to_end(&mut out)
                    .expect("valid gzip body");
                out
            }
            None => raw.clone(),
            Some(other) => panic!("unexpected content-encoding {other}"),
        };
        let mode = shared.mode.lock().unwrap().clone();
        if mode == Mode::Refuse {
            return; // a request that raced the switch gets its connection closed, no answer
        }
        let entries = || {
            serde_json::from_slice::<Vec<Value>>(&body)
                .map(|v| v.len())
                .unwrap_or(0)
        };
        let contains = |t: &str| !t.is_empty() && body.windows(t.len()).any(|w| w == t.as_bytes());
        let (status, extra) = match &mode {
            Mode::Accept | Mode::Refuse => (202, String::new()),
            Mode::Status(s) => (*s, String::new()),
            Mode::TooManyRequests { retry_after_secs } => {
                (429, format!("Retry-After: {retry_after_secs}\r\n"))
            }
            Mode::BadRequestIfContains(t) if contains(t) => (400, String::new()),
            Mode::BadRequestIfContains(_) => (202, String::new()),
            Mode::TooLargeOver { max_entries, text }
                if entries() > *max_entries || contains(text) =>
            {
                (413, String::new())
            }
            Mode::TooLargeOver { .. } => (202, String::new()),
        };
        shared.requests.lock().unwrap().push(Received {
            at: Instant::now(),
            path,
            headers,
            body,
            wire_bytes: raw.len(),
            status,
        });
        let resp_body = if status == 400 {
            "{\"errors\":[\"bad payload\"]}"
        } else {
            "{}"
        };
        let resp = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}\r\n{resp_body}",
            resp_body.len()
        );
        if writer.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

/// The numbered-log check.
pub const NUMBERS_PY: &str = r#"
import os
from datadog_checks.base import AgentCheck

PAD = 'x' * 120

class NumbersCheck(AgentCheck):
    def check(self, instance):
        if os.path.exists(os.path.join(os.path.dirname(__file__), 'STOP')):
            return
        cur = self.get_log_cursor()
        start = cur['n'] if cur else 0
        total = int(instance.get('total', 0))
        end = start + int(instance.get('per_run', 100))
        if total:
            end = min(end, total)
        for i in range(start, end):
            data = {'message': 'number %d %s' % (i, PAD), 'num': i, 'nested': {'k': [1, 2]}}
            poison = instance.get('poison_at')
            if poison is not None and i == int(poison):
                data['message'] = 'poison %d' % i
            big = instance.get('big_at')
            if big is not None and i == int(big):
                data['message'] = 'big %d %s' % (i, 'y' * 2000)
            self.send_log(data, cursor={'n': i + 1})
"#;

pub struct Agent {
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    pub starts: u32,
}

impl Agent {
    /// A config dir: `datadog_extra` is appended under `logs_config:` (indented by the caller),
    /// `instance_extra` under the one instance.
    pub fn new(intake: &Intake, logs_config_extra: &str, instance_extra: &str) -> Agent {
        let dir = tempfile::Builder::new()
            .prefix("cairn-pipeline-")
            .tempdir()
            .expect("temp dir");
        let p = dir.path();
        std::fs::create_dir_all(p.join("conf.d/numbers.d")).unwrap();
        std::fs::create_dir_all(p.join("checks.d")).unwrap();
        std::fs::write(
            p.join("datadog.yaml"),
            format!(
                "logs_enabled: true\napi_key: {API_KEY}\nhostname: test-host\nlogs_config:\n  logs_dd_url: {}\n  batch_wait: 0.1\n  sender_backoff_base: 0.05\n  sender_backoff_max: 0.5\n  http_timeout: 2\n{logs_config_extra}",
                intake.url()
            ),
        )
        .unwrap();
        std::fs::write(
            p.join("conf.d/numbers.d/conf.yaml"),
            format!(
                "init_config:\ninstances:\n  - min_collection_interval: 0.1\n    tags: [\"env:test\", \"team:logs\", \"bare\"]\n{instance_extra}\nlogs:\n  - type: integration\n    source: numbers\n    service: numbers-svc\n    tags: [\"entry:tag\"]\n"
            ),
        )
        .unwrap();
        std::fs::write(p.join("checks.d/numbers.py"), NUMBERS_PY).unwrap();
        Agent {
            dir,
            child: None,
            starts: 0,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Makes the numbered check stop sending (it keeps running).
    pub fn stop_sending(&self) {
        std::fs::write(self.path().join("checks.d/STOP"), "").unwrap();
    }

    pub fn counters_path(&self) -> PathBuf {
        self.path().join("counters.json")
    }

    pub fn start(&mut self) {
        assert!(self.child.is_none(), "agent already running");
        self.starts += 1;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path().join("agent.log"))
            .expect("agent log file");
        let mut cmd = Command::new(CAIRN);
        cmd.arg("-c")
            .arg(self.path())
            .args(["run", "--grace-secs", "5", "--counters-file"])
            .arg(self.counters_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .env("CAIRN_LOG", "info");
        for (k, _) in std::env::vars() {
            if k.starts_with("DD_") || k.starts_with("CAIRN_") && k != "CAIRN_LOG" {
                cmd.env_remove(k);
            }
        }
        self.child = Some(cmd.spawn().expect("starting cairn run"));
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and waits up to `limit` for the exit.
    pub fn sigterm(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        let mut c = self.child.take().expect("agent running");
        let t = Instant::now();
        unsafe {
            libc::kill(c.id() as i32, libc::SIGTERM);
        }
        loop {
            if let Some(status) = c.try_wait().expect("waiting for cairn") {
                return (status, t.elapsed());
            }
            if t.elapsed() > limit {
                let _ = c.kill();
                let _ = c.wait();
                panic!(
                    "cairn did not exit within {limit:?} of SIGTERM; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path().join("agent.log")).unwrap_or_default()
    }

    /// The last counters the agent wrote (`{}` before the first write).
    pub fn counters(&self) -> Value {
        std::fs::read(self.counters_path())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Object(Default::default()))
    }

    pub fn counter(&self, key: &str) -> u64 {
        self.counters()[key].as_u64().unwrap_or(0)
    }

    pub fn dropped(&self, reason: &str) -> u64 {
        self.counters()["logs_dropped"][reason]
            .as_u64()
            .unwrap_or(0)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Polls `cond` every 50 ms until it holds or `limit` passes; panics with `what` and the log.
pub fn wait_for(agent: &Agent, limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        if t.elapsed() > limit {
            panic!(
                "timed out after {limit:?} waiting for {what}; agent log:\n{}",
                agent.log()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Numbers missing below the highest one received.
pub fn missing(numbers: &BTreeMap<u64, u32>) -> Vec<u64> {
    let Some(&max) = numbers.keys().next_back() else {
        return Vec::new();
    };
    (0..=max).filter(|n| !numbers.contains_key(n)).collect()
}
