//! The running agent's local API and the commands on it: `cairn status`, `cairn reload` (and
//! SIGHUP), `cairn stream-logs`, `/metrics` read by a real Prometheus parser, and the token.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;
use support::{wait_for, ConfigDir};

/// Fails on even runs, sends one log (with a secret the processing rule masks), a gauge, a
/// service check and a version on every run.
const FLAKY: &str = r#"
from datadog_checks.base import AgentCheck

class Flaky(AgentCheck):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.n = 0

    def check(self, instance):
        self.n += 1
        self.gauge('flaky.value', self.n)
        self.service_check('flaky.ok', AgentCheck.OK)
        self.set_metadata('version', '1.2.3')
        self.send_log({'message': 'run %d password=hunter2' % self.n})
        if self.n % 2 == 0:
            raise RuntimeError('even run %d' % self.n)
"#;

const WARNER: &str = r#"
from datadog_checks.base import AgentCheck

class Warner(AgentCheck):
    def check(self, instance):
        self.warning('disk almost full')
"#;

/// Sends `line <n>` with cursor n, resuming from its cursor.
const CURSOR: &str = r#"
from datadog_checks.base import AgentCheck

class Cursor(AgentCheck):
    def check(self, instance):
        cur = self.get_log_cursor()
        n = (cur or {}).get('n', 0) + 1
        self.send_log({'message': 'line %d' % n}, cursor={'n': n})
"#;

fn logs_conf(source: &str) -> String {
    format!(
        "init_config:\ninstances:\n  - min_collection_interval: 1\nlogs:\n  - type: integration\n    source: {source}\n    service: {source}_svc\n    log_processing_rules:\n      - type: mask_sequences\n        name: pw\n        pattern: 'password=\\w+'\n        replace_placeholder: 'password=[MASKED]'\n"
    )
}

fn status(dir: &ConfigDir) -> Value {
    let out = dir.cairn(&["status", "--json"]).run();
    out.assert_code(0);
    out.json()
}

fn check<'a>(st: &'a Value, name: &str) -> &'a Value {
    st["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {st:#}"))
}

/// A one-request-at-a-time HTTP server answering every request with `status`.
fn answering(status: u16) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut conn = conn;
                let mut buf = vec![0u8; 1 << 16];
                let mut got = Vec::new();
                loop {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                    let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if got.len() < end + 4 + len {
                        continue;
                    }
                    got.drain(..end + 4 + len);
                    let body = "{}";
                    let resp = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if conn.write_all(resp.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}

/// `cairn run` shipping to `url` (the test harness otherwise points every agent at its sink).
fn start_agent_shipping_to(dir: &ConfigDir, url: &str) -> support::Running {
    let mut agent = dir
        .cairn(&["run"])
        .env("DD_LOGS_CONFIG_LOGS_DD_URL", url)
        .env("DD_DD_URL", url)
        .spawn();
    agent.wait_for_stderr("cairn started", Duration::from_secs(30));
    agent
}

fn scenario_dir(datadog_yaml: &str) -> ConfigDir {
    let dir = ConfigDir::new();
    dir.datadog_yaml(datadog_yaml)
        .check_py("flaky", FLAKY)
        .conf("flaky", &logs_conf("flaky_src"))
        .check_py("warner", WARNER)
        .conf("warner", "instances:\n  - min_collection_interval: 1\n");
    dir
}

#[test]
fn status_shows_every_check_and_a_rejected_key_field_by_field() {
    let intake = answering(403);
    let dir = scenario_dir(
        "logs_enabled: true\nhostname: test-host\napi_key: 0123456789abcdef0123456789abcdef\nlogs_config:\n  sender_backoff_max: 7\n",
    );
    let agent = start_agent_shipping_to(&dir, &intake);
    assert!(
        wait_for(Duration::from_secs(30), || {
            let st = status(&dir);
            check(&st, "flaky")["total_runs"].as_u64().unwrap_or(0) >= 4
                && st["logs_agent"]["intake"]["api_key_rejected"] == true
        }),
        "flaky never ran 4 times or the key was never rejected\n{}",
        agent.stderr_so_far()
    );
    let st = status(&dir);
    let a = &st["agent"];
    assert_eq!(a["pid"], agent.pid());
    assert_eq!(a["hostname"], "test-host");
    assert_eq!(a["version"], env!("CARGO_PKG_VERSION"));
    assert!(
        a["python_version"].as_str().unwrap().starts_with("3.11"),
        "{a}"
    );
    // Four runs a second apart took at least 3 s.
    assert!(a["uptime_secs"].as_f64().unwrap() >= 2.0, "{a}");
    assert_eq!(
        PathBuf::from(a["config_dir"].as_str().unwrap()),
        dir.path().canonicalize().unwrap()
    );
    assert_eq!(st["endpoints"]["api_key"], "…bcdef");
    let text = st.to_string();
    assert!(
        !text.contains("0123456789abcdef0123456789abcdef"),
        "the key leaked: {text}"
    );
    assert!(st["endpoints"]["logs"]
        .as_str()
        .unwrap()
        .starts_with(&intake));

    let f = check(&st, "flaky");
    let runs = f["total_runs"].as_u64().unwrap();
    let errors = f["total_errors"].as_u64().unwrap();
    assert_eq!(errors, runs / 2, "{f:#}");
    assert!(f["check_id"].as_str().unwrap().starts_with("flaky:"));
    assert!(f["config_file"]
        .as_str()
        .unwrap()
        .ends_with("conf.d/flaky.d/conf.yaml"));
    assert_eq!(f["interval_secs"], 1.0);
    let expected_state = if runs.is_multiple_of(2) {
        "ERROR"
    } else {
        "OK"
    };
    // One snapshot: the state is that of the run counted last.
    assert_eq!(f["state"], expected_state, "{f:#}");
    assert_eq!(f["last_run"]["metric_samples"], 1);
    assert_eq!(f["last_run"]["service_checks"], 1);
    assert_eq!(f["last_run"]["logs"], 1);
    assert_eq!(f["last_run"]["events"], 0);
    assert_eq!(f["total"]["metric_samples"], runs);
    assert_eq!(f["total"]["logs"], runs);
    assert_eq!(f["metadata"]["version.raw"], "1.2.3");
    assert_eq!(f["metadata"]["version.major"], "1");
    assert!(f["last_duration_ms"].as_f64().unwrap() > 0.0);
    assert!(f["average_duration_ms"].as_f64().unwrap() > 0.0);
    assert!(f["last_run_at"].as_str().unwrap().ends_with('Z'));
    if expected_state == "ERROR" {
        let e = &f["last_error"];
        assert!(e["message"].as_str().unwrap().contains("even run"), "{e}");
        assert!(
            e["traceback"].as_str().unwrap().contains("RuntimeError"),
            "{e}"
        );
    } else {
        assert!(f["last_error"].is_null(), "{f:#}");
    }

    let w = check(&st, "warner");
    assert_eq!(w["state"], "WARNING");
    assert_eq!(w["last_warnings"], serde_json::json!(["disk almost full"]));
    assert_eq!(w["total_errors"], 0);
    assert!(w["total_warning_runs"].as_u64().unwrap() >= 1);

    let l = &st["logs_agent"];
    assert_eq!(l["logs_sent"], 0, "nothing is accepted with a rejected key");
    assert!(l["logs_processed"].as_u64().unwrap() >= runs);
    assert!(l["buffer"]["records"].as_u64().unwrap() >= 1, "{l:#}");
    let state = l["intake"]["state"].as_str().unwrap();
    assert!(
        state.starts_with("API key rejected (401/403) since ")
            && state.contains("retrying every 7 s"),
        "{state}"
    );
    let src = l["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["check_id"] == f["check_id"])
        .unwrap_or_else(|| panic!("no logs source for flaky: {l:#}"));
    assert_eq!(src["type"], "integration");
    assert_eq!(src["source"], "flaky_src");
    assert_eq!(src["service"], "flaky_src_svc");
    assert!(st["local_intake"].is_null());

    // The text layout names the same things, the way `agent status` does.
    let out = dir.cairn(&["status"]).run();
    out.assert_code(0);
    let text = out.stdout.clone();
    for needle in [
        "Running Checks",
        "Instance ID: flaky:",
        "Configuration Source: ",
        "Total Runs: ",
        "Metric Samples: Last Run: 1",
        "API key ending with bcdef",
        "Logs Agent",
        "API key rejected",
        "disk almost full",
        "version.raw: 1.2.3",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from\n{text}");
    }
    let out = agent.sigterm(Duration::from_secs(20));
    out.assert_code(0);
}

#[test]
fn status_during_an_intake_outage_says_since_when_and_keeps_logs() {
    // A port nobody listens on.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let dir = scenario_dir(
        "logs_enabled: true\nhostname: test-host\nlogs_config:\n  sender_backoff_max: 2\n",
    );
    let agent = start_agent_shipping_to(&dir, &closed);
    assert!(
        wait_for(Duration::from_secs(30), || {
            let st = status(&dir);
            st["logs_agent"]["intake"]["state"]
                .as_str()
                .is_some_and(|s| s.starts_with("failing since"))
        }),
        "the outage never showed\n{}",
        agent.stderr_so_far()
    );
    let st = status(&dir);
    let l = &st["logs_agent"];
    assert_eq!(l["logs_sent"], 0);
    assert!(l["retry_count"].as_u64().unwrap() >= 1);
    assert!(l["buffer"]["records"].as_u64().unwrap() >= 1);
    assert!(l["buffer"]["oldest_unsent_age_secs"].as_f64().unwrap() > 0.0);
    assert!(st["endpoints"]["api_key"].is_null());
    agent.sigterm(Duration::from_secs(20)).assert_code(0);
}

#[test]
fn status_without_an_agent_says_so_and_exits_1() {
    let dir = ConfigDir::new();
    let out = dir.cairn(&["status"]).run();
    out.assert_code(1);
    let err = out.stderr.clone();
    assert!(err.contains("no agent is running"), "{err}");
    // A token left by an agent that is gone: the port does not answer.
    dir.write("run/auth_token", "x".repeat(40).as_str());
    let out = dir.cairn(&["reload"]).run();
    out.assert_code(1);
    let err = out.stderr.clone();
    assert!(
        err.contains("no agent is running: nothing answers on"),
        "{err}"
    );
}

/// One raw HTTP/1.1 request; the status code and body.
fn raw(port: u16, head: &str) -> (u16, String) {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(format!("{head}Connection: close\r\n\r\n").as_bytes())
        .unwrap();
    let mut out = String::new();
    let _ = c.read_to_string(&mut out);
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_owned();
    (code, body)
}

#[test]
fn every_request_needs_the_token_and_web_pages_are_refused() {
    let dir = ConfigDir::new();
    dir.check_py("warner", WARNER)
        .conf("warner", "instances:\n  - min_collection_interval: 1\n");
    let agent = support::start_agent(&dir);
    let port = support::cmd_port(dir.path());
    let token_path = dir.join("run/auth_token");
    assert!(wait_for(Duration::from_secs(10), || token_path.exists()));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&token_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let token = std::fs::read_to_string(&token_path)
        .unwrap()
        .trim()
        .to_owned();
    let host = format!("Host: 127.0.0.1:{port}\r\n");
    for path in ["/status", "/checks", "/metrics", "/cursors", "/stream-logs"] {
        let (code, body) = raw(port, &format!("GET {path} HTTP/1.1\r\n{host}"));
        assert_eq!(code, 401, "{path} without a token: {body}");
        let (code, _) = raw(
            port,
            &format!(
                "GET {path} HTTP/1.1\r\n{host}Authorization: Bearer {}\r\n",
                "y".repeat(token.len())
            ),
        );
        assert_eq!(code, 401, "{path} with a wrong token");
    }
    let (code, _) = raw(
        port,
        &format!("POST /reload HTTP/1.1\r\n{host}Content-Length: 0\r\n"),
    );
    assert_eq!(code, 401);
    let auth = format!("Authorization: Bearer {token}\r\n");
    let (code, body) = raw(port, &format!("GET /checks HTTP/1.1\r\n{host}{auth}"));
    assert_eq!(code, 200, "{body}");
    let checks: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(checks["checks"][0]["check"], "warner");
    let (code, _) = raw(
        port,
        &format!("GET /status HTTP/1.1\r\n{host}{auth}Origin: http://evil.example\r\n"),
    );
    assert_eq!(code, 403, "a cross-origin request must be refused");
    let (code, _) = raw(
        port,
        &format!("GET /status HTTP/1.1\r\n{host}{auth}Sec-Fetch-Site: cross-site\r\n"),
    );
    assert_eq!(code, 403);
    let (code, _) = raw(
        port,
        &format!("GET /status HTTP/1.1\r\nHost: rebind.example:{port}\r\n{auth}"),
    );
    assert_eq!(code, 403, "a DNS-rebinding Host must be refused");
    let (code, body) = raw(port, &format!("GET /nope HTTP/1.1\r\n{host}{auth}"));
    assert_eq!(code, 404, "{body}");
    agent.sigterm(Duration::from_secs(20)).assert_code(0);
}

/// A virtualenv with the `prometheus_client` package, whose text parser reads `/metrics`.
fn prometheus_python() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        support::venv_with(
            Path::new(env!("CARGO_TARGET_TMPDIR")),
            "prometheus-client-venv",
            &["prometheus_client==0.21.1"],
        )
        .join("bin/python")
    })
}

const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        out.setdefault(fam.name + '|' + fam.type, []).append([s.name, s.labels, s.value])
print(json.dumps(out))
"#;

#[test]
fn metrics_are_prometheus_text_that_prometheus_client_parses() {
    let python = prometheus_python();
    let dir = scenario_dir(support::DEFAULT_DATADOG_YAML);
    let agent = support::start_agent(&dir);
    assert!(wait_for(Duration::from_secs(30), || {
        check(&status(&dir), "flaky")["total_runs"]
            .as_u64()
            .unwrap_or(0)
            >= 2
    }));
    let body = get_metrics(&dir);
    // Chunked or not: the body after the head; strip chunk framing if present.
    let body = dechunk(&body);
    let mut child = Command::new(python)
        .args(["-c", PARSE])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client refused the text: {}\n{body}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fams: Value = serde_json::from_slice(&out.stdout).unwrap();
    let samples = |key: &str| -> Vec<Value> {
        fams[key]
            .as_array()
            .unwrap_or_else(|| panic!("no family {key} in {fams:#}"))
            .clone()
    };
    let runs = samples("cairn_check_runs|counter");
    let flaky = runs
        .iter()
        .find(|s| s[1]["check"] == "flaky")
        .expect("a runs sample for flaky");
    assert!(flaky[2].as_f64().unwrap() >= 2.0);
    let errors = samples("cairn_check_errors|counter");
    assert!(errors
        .iter()
        .any(|s| s[1]["check"] == "flaky" && s[2].as_f64().unwrap() >= 1.0));
    let hist = samples("cairn_check_run_duration_seconds|histogram");
    assert!(hist
        .iter()
        .any(|s| s[0] == "cairn_check_run_duration_seconds_bucket"
            && s[1]["le"] == "+Inf"
            && s[1]["check"] == "warner"));
    assert!(hist
        .iter()
        .any(|s| s[0] == "cairn_check_run_duration_seconds_count"));
    for fam in [
        "cairn_logs_processed|counter",
        "cairn_logs_sent|counter",
        "cairn_buffer_bytes|gauge",
        "cairn_buffer_records|gauge",
        "cairn_buffer_oldest_unsent_age_seconds|gauge",
        "cairn_logs_api_key_rejected|gauge",
        "cairn_uptime_seconds|gauge",
    ] {
        assert!(!samples(fam).is_empty(), "{fam}");
    }
    agent.sigterm(Duration::from_secs(20)).assert_code(0);
}

/// `GET /metrics` of the agent of `dir`, with its token; the body as sent.
fn get_metrics(dir: &ConfigDir) -> String {
    let port = support::cmd_port(dir.path());
    let token = std::fs::read_to_string(dir.join("run/auth_token")).unwrap();
    let (code, body) = raw(
        port,
        &format!(
            "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {}\r\n",
            token.trim()
        ),
    );
    assert_eq!(code, 200, "{body}");
    body
}

fn dechunk(body: &str) -> String {
    // The server may answer with chunked encoding: hex size lines between chunks.
    let looks_chunked = body
        .lines()
        .next()
        .is_some_and(|l| !l.is_empty() && l.trim().chars().all(|c| c.is_ascii_hexdigit()));
    if !looks_chunked {
        return body.to_owned();
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&after[..n]);
        rest = &after[n + 2..];
    }
    out
}

#[test]
fn stream_logs_follows_what_the_pipeline_ships_after_processing_rules() {
    let dir = scenario_dir(support::DEFAULT_DATADOG_YAML);
    let agent = support::start_agent(&dir);
    let out = dir
        .cairn(&["stream-logs", "--check", "flaky", "--json", "--count", "2"])
        .timeout(Duration::from_secs(30))
        .run();
    out.assert_code(0);
    let stdout = out.stdout.clone();
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    for l in &lines {
        assert!(l["check_id"].as_str().unwrap().starts_with("flaky:"));
        let msg = l["log"]["message"].as_str().unwrap();
        assert!(
            msg.contains("password=[MASKED]") && !msg.contains("hunter2"),
            "{msg}"
        );
        assert_eq!(l["log"]["ddsource"], "flaky_src");
        assert_eq!(l["log"]["service"], "flaky_src_svc");
    }
    // Filters: a source nobody has gives nothing; the text form names check and message.
    let out = dir
        .cairn(&["stream-logs", "--source", "flaky_src", "--count", "1"])
        .timeout(Duration::from_secs(30))
        .run();
    out.assert_code(0);
    let text = out.stdout.clone();
    assert!(
        text.starts_with("Check: flaky:") && text.contains("Message: run "),
        "{text}"
    );
    let mut none = dir
        .cairn(&["stream-logs", "--service", "nobody", "--json"])
        .spawn();
    // Longer than the connection idle limit (10 s): the heartbeats keep the stream open.
    std::thread::sleep(Duration::from_secs(12));
    assert!(none.stdout_so_far().is_empty(), "{}", none.stdout_so_far());
    assert!(
        !none.has_exited(),
        "the stream ended: {}",
        none.stderr_so_far()
    );
    drop(none);
    agent.sigterm(Duration::from_secs(20)).assert_code(0);
}

fn runs_of(st: &Value, name: &str) -> u64 {
    check(st, name)["total_runs"].as_u64().unwrap_or(0)
}

fn ids(st: &Value) -> Vec<String> {
    let mut v: Vec<String> = st["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["check_id"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn reload_adds_changes_and_removes_checks_keeping_cursors_and_refuses_a_broken_config() {
    let dir = ConfigDir::new();
    dir.check_py("cursor", CURSOR)
        .conf("cursor", &logs_conf("cur"))
        .check_py("warner", WARNER)
        .conf(
            "warner",
            "instances:\n  - min_collection_interval: 1\n    tag_a: 1\n",
        )
        .check_py("flaky", FLAKY)
        .conf("flaky", &logs_conf("flaky_src"));
    let agent = support::start_agent(&dir);
    assert!(wait_for(Duration::from_secs(30), || runs_of(
        &status(&dir),
        "cursor"
    ) >= 3));
    let before = status(&dir);
    let cursor_id = check(&before, "cursor")["check_id"].clone();
    let warner_before = check(&before, "warner")["check_id"].clone();
    let sent_before = before["logs_agent"]["logs_sent"].as_u64().unwrap();

    // Add `warner2`, change warner's instance, remove flaky.
    dir.check_py("warner2", WARNER)
        .conf("warner2", "instances:\n  - min_collection_interval: 1\n")
        .conf(
            "warner",
            "instances:\n  - min_collection_interval: 1\n    tag_a: 2\n",
        );
    std::fs::remove_dir_all(dir.join("conf.d/flaky.d")).unwrap();
    let out = dir.cairn(&["reload", "--json"]).run();
    out.assert_code(0);
    let answer = out.json();
    assert_eq!(answer["ok"], true, "{answer:#}");
    assert!(
        answer["kept"].as_array().unwrap().contains(&cursor_id),
        "{answer:#}"
    );
    assert!(answer["stopped"]
        .as_array()
        .unwrap()
        .contains(&warner_before));
    assert!(answer["stopped"]
        .as_array()
        .unwrap()
        .iter()
        .any(|id| id.as_str().unwrap().starts_with("flaky:")));
    assert_eq!(answer["started"].as_array().unwrap().len(), 2, "{answer:#}");

    let after = status(&dir);
    let names: Vec<&str> = after["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert!(!names.contains(&"flaky"), "{names:?}");
    assert!(names.contains(&"warner2"));
    assert_ne!(check(&after, "warner")["check_id"], warner_before);
    // The unchanged instance kept its history and its cursor: runs go on counting, and the
    // lines it sends continue the sequence instead of starting over.
    let cursor_runs = runs_of(&before, "cursor");
    assert!(runs_of(&after, "cursor") >= cursor_runs);
    assert!(wait_for(Duration::from_secs(20), || {
        let st = status(&dir);
        runs_of(&st, "cursor") >= cursor_runs + 2
            && st["logs_agent"]["logs_sent"].as_u64().unwrap() > sent_before
    }));
    let line = dir
        .cairn(&["stream-logs", "--check", "cursor", "--json", "--count", "1"])
        .timeout(Duration::from_secs(30))
        .run()
        .json();
    let n: u64 = line["log"]["message"]
        .as_str()
        .unwrap()
        .trim_start_matches("line ")
        .parse()
        .unwrap();
    assert!(
        n > cursor_runs,
        "the cursor restarted: line {n} after {cursor_runs} runs"
    );

    // A broken file: the running config stays, the answer names file:line.
    dir.conf("warner2", "instances:\n  - min_collection_interval: [1\n");
    let ids_before = ids(&status(&dir));
    let out = dir.cairn(&["reload"]).run();
    out.assert_code(1);
    let text = out.stdout.clone();
    assert!(text.contains("reload refused"), "{text}");
    assert!(text.contains("conf.d/warner2.d/conf.yaml:"), "{text}");
    let st = status(&dir);
    assert_eq!(ids(&st), ids_before);
    assert_eq!(st["last_reload"]["ok"], false);
    assert!(st["last_reload"]["errors"][0]
        .as_str()
        .unwrap()
        .contains("warner2.d/conf.yaml:"));
    // A check file with a syntax error is refused before anything stops.
    dir.conf("warner2", "instances:\n  - min_collection_interval: 1\n");
    dir.check_py("cursor", "def broken(:\n");
    let out = dir.cairn(&["reload"]).run();
    out.assert_code(1);
    let text = out.stdout.clone();
    assert!(text.contains("checks.d/cursor.py:1"), "{text}");
    assert_eq!(ids(&status(&dir)), ids_before);

    // SIGHUP reloads too, and a fixed file is then taken.
    dir.check_py("cursor", CURSOR);
    let at_before = status(&dir)["last_reload"]["at"].clone();
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(agent.pid() as i32, libc::SIGHUP) };
    assert!(wait_for(Duration::from_secs(20), || {
        let st = status(&dir);
        st["last_reload"]["at"] != at_before && st["last_reload"]["ok"] == true
    }));
    agent.sigterm(Duration::from_secs(20)).assert_code(0);
}

#[test]
fn status_and_metrics_show_the_embedded_intake_store() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = scenario_dir(&format!(
        "logs_enabled: true\nhostname: test-host\nlogs_config:\n  batch_wait: 1\n  intake:\n    listen: 127.0.0.1:{port}\n"
    ));
    let mut agent = dir
        .cairn(&["run"])
        .env_remove("DD_LOGS_CONFIG_LOGS_DD_URL")
        .spawn();
    agent.wait_for_stderr("cairn started", Duration::from_secs(30));
    // Stats are refreshed every 5 s by the agent.
    assert!(
        wait_for(Duration::from_secs(30), || {
            let st = status(&dir);
            st["local_intake"]["stored_logs"].as_u64().unwrap_or(0) >= 1
        }),
        "{}",
        agent.stderr_so_far()
    );
    let st = status(&dir);
    let i = &st["local_intake"];
    assert_eq!(i["url"], format!("http://127.0.0.1:{port}"));
    assert!(i["store_bytes"].as_u64().unwrap() > 0);
    assert!(i["logs_stored_since_start"].as_u64().unwrap() >= 1);
    assert_eq!(
        st["endpoints"]["logs"],
        format!("http://127.0.0.1:{port}/api/v2/logs")
    );
    let body = get_metrics(&dir);
    assert!(body.contains("cairn_intake_logs_stored_total "), "{body}");
    assert!(body.contains("cairn_intake_stored_logs "), "{body}");
    agent.sigterm(Duration::from_secs(20)).assert_code(0);
}
