//! Issue 8 item 6 against the real binaries: a log holding what JSON readers cannot carry (an
//! attribute nested 1,001 deep, `1e999`, an integer of 401 digits, lone surrogates) is accepted
//! and stored normalised (docs/intake.md, "What is stored of an attribute"), so every `@attr`
//! search still answers 200, the values read back as documented, and `@_cairn.normalized:…`
//! finds the changed logs. Once through `cairn intake` over HTTP, once from a Python check
//! through `cairn run` and its embedded intake.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const MAX_DEPTH: usize = 64;

fn cairn() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
    for (k, _) in std::env::vars() {
        if k.starts_with("DD_") || k.starts_with("CAIRN_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// A running `cairn` (killed on drop) and the Explorer URL it printed.
struct Proc {
    child: Child,
    explorer: String,
    /// Kept so that the reader threads never see a closed channel.
    _lines: mpsc::Receiver<String>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn start(mut cmd: Command, ready: &str) -> Proc {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let (mut explorer, mut is_ready, mut seen) = (None, false, Vec::new());
        while !(is_ready && explorer.is_some()) {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("did not start:\n{}", seen.join("\n")));
            if let Some(url) = line.strip_prefix("Log Explorer: ") {
                explorer = Some(url.trim().to_owned());
            }
            is_ready |= line.contains(ready);
            seen.push(line);
        }
        Proc {
            child,
            explorer: explorer.unwrap(),
            _lines: rx,
        }
    }

    fn base(&self) -> &str {
        self.explorer.split("/?").next().unwrap()
    }

    fn token(&self) -> &str {
        self.explorer.split("?token=").nth(1).unwrap()
    }

    /// `(status, body)` of a POST with a JSON body (sent on stdin: it may be large).
    fn post(&self, path: &str, body: &[u8]) -> (u16, String) {
        let mut child = Command::new("curl")
            .args(["-s", "-w", "\n%{http_code}", "-X", "POST"])
            .args(["-H", "content-type: application/json"])
            .arg("-H")
            .arg(format!("Authorization: Bearer {}", self.token()))
            .args(["--data-binary", "@-"])
            .arg(format!("{}{path}", self.base()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("curl is installed");
        child.stdin.take().unwrap().write_all(body).unwrap();
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (code.trim().parse().unwrap(), body.to_owned())
    }

    /// The logs a search finds, newest first; the search must answer 200.
    fn search(&self, query: &str) -> Vec<Value> {
        let req = json!({"filter": {"query": query, "from": "now-1d", "to": "now+1h"},
                         "page": {"limit": 100}});
        let (status, body) = self.post("/api/v2/logs/events/search", req.to_string().as_bytes());
        assert_eq!(status, 200, "{query} at {}: {body}", self.explorer);
        let v: Value = serde_json::from_str(&body).unwrap();
        v["data"].as_array().unwrap().clone()
    }

    fn messages(&self, query: &str) -> Vec<String> {
        let mut m: Vec<String> = self
            .search(query)
            .iter()
            .map(|l| l["attributes"]["message"].as_str().unwrap().to_owned())
            .collect();
        m.sort();
        m
    }

    fn attributes_of(&self, message: &str) -> Value {
        let found = self.search(&format!("\"{message}\""));
        let log = found
            .iter()
            .find(|l| l["attributes"]["message"] == message)
            .unwrap_or_else(|| panic!("{message} not found"));
        log["attributes"]["attributes"].clone()
    }
}

fn nested(levels: usize, leaf: &str) -> String {
    format!("{}{leaf}{}", "[".repeat(levels), "]".repeat(levels))
}

/// Follows the first element `levels` times.
fn dig(mut v: &Value, levels: usize) -> &Value {
    for _ in 0..levels {
        v = &v[0];
    }
    v
}

/// Every kind of `@attr` leaf, on the poisoned attribute and on others, plus the aggregate
/// and tail routes: each must answer 200.
fn every_attr_search_answers(p: &Proc) {
    for q in [
        "@user:bob",
        "@n:>1",
        "@n:[1 TO 10]",
        "@deep:*",
        "@deep:1",
        "@user:b*",
        "-@deep:x",
        "@big:*",
    ] {
        p.search(q);
    }
    let req = json!({"filter": {"query": "*", "from": "now-1d", "to": "now+1h"},
        "compute": [{"aggregation": "count", "type": "total"}],
        "group_by": [{"facet": "@deep"}]});
    let (status, body) = p.post(
        "/api/v2/logs/analytics/aggregate",
        req.to_string().as_bytes(),
    );
    assert_eq!(status, 200, "{body}");
}

#[test]
fn cairn_intake_stores_poisoned_attributes_so_every_attr_search_still_answers() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = cairn();
    cmd.args(["intake", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("intake"));
    let p = Proc::start(cmd, "local intake started");

    let big = format!("1{}", "0".repeat(400));
    // Written by hand: serde_json would neither write these numbers nor the lone surrogates.
    let body = format!(
        r#"[
        {{"message":"deep one","deep":{deep}}},
        {{"message":"deeper still","deep":{deeper}}},
        {{"message":"infinite one","inf":1e999,"ninf":-1E400}},
        {{"message":"big one","big":{big},"u64":18446744073709551616,"ok":9223372036854775807}},
        {{"message":"lone \ud800 one","s":"x\udc00y","\udbffk":1,"service":"svc\ud800"}},
        {{"message":"healthy one","user":"bob","n":5}}
        ]"#,
        deep = nested(1001, r#"{"leaf":"\ud800"}"#),
        deeper = nested(200_000, "1"),
    );
    let (status, text) = p.post("/api/v2/logs", body.as_bytes());
    assert_eq!(status, 202, "{text}");

    every_attr_search_answers(&p);
    assert_eq!(p.messages("@user:bob"), ["healthy one"]);
    assert_eq!(p.messages("@n:>1"), ["healthy one"]);
    assert_eq!(p.messages("@deep:*"), ["deep one", "deeper still"]);
    assert_eq!(
        p.messages("@_cairn.normalized:depth"),
        ["deep one", "deeper still"]
    );
    assert_eq!(
        p.messages("@_cairn.normalized:number"),
        ["big one", "infinite one"]
    );
    assert_eq!(
        p.messages("@_cairn.normalized:surrogate"),
        ["deep one", "lone \u{fffd} one"]
    );
    assert_eq!(p.messages("@_cairn.normalized:*").len(), 5);
    assert_eq!(p.messages("@inf:1e999"), ["infinite one"]);
    assert_eq!(p.messages(&format!("@big:{big}")), ["big one"]);
    assert_eq!(p.messages("service:svc\u{fffd}"), ["lone \u{fffd} one"]);

    // The 1,001-deep value: 64 levels kept, the rest (with its own lone surrogate replaced)
    // as its JSON text.
    let a = p.attributes_of("deep one");
    let text = dig(&a["deep"], MAX_DEPTH).as_str().expect("a string");
    assert_eq!(
        text,
        nested(1001 - MAX_DEPTH, r#"{"leaf":"\ufffd"}"#),
        "compact JSON text of the part below level {MAX_DEPTH}"
    );
    assert_eq!(a["_cairn"], json!({"normalized": ["depth", "surrogate"]}));
    let a = p.attributes_of("deeper still");
    assert_eq!(
        dig(&a["deep"], MAX_DEPTH).as_str().map(str::len),
        Some(2 * (200_000 - MAX_DEPTH) + 1)
    );

    let a = p.attributes_of("infinite one");
    assert_eq!((&a["inf"], &a["ninf"]), (&json!("1e999"), &json!("-1E400")));
    let a = p.attributes_of("big one");
    assert_eq!(
        (&a["big"], &a["u64"], &a["ok"]),
        (
            &json!(big),
            &json!("18446744073709551616"),
            &json!(9223372036854775807i64)
        )
    );
    let a = p.attributes_of("lone \u{fffd} one");
    assert_eq!(
        a,
        json!({"s": "x\u{fffd}y", "\u{fffd}k": 1, "_cairn": {"normalized": ["surrogate"]}})
    );
    assert_eq!(
        p.attributes_of("healthy one"),
        json!({"user": "bob", "n": 5})
    );
}

const CHECK: &str = r#"
from datadog_checks.base import AgentCheck

def nested(levels, leaf):
    v = leaf
    for _ in range(levels):
        v = [v]
    return v

class PoisonCheck(AgentCheck):
    def check(self, instance):
        if getattr(PoisonCheck, 'sent', False):
            return
        PoisonCheck.sent = True
        self.send_log({'message': 'py deep', 'deep': nested(120, {'leaf': 'x\ud800'})})
        self.send_log({'message': 'py big', 'big': 10 ** 400, 'u64': 2 ** 64,
                       'neg': -(2 ** 63) - 1, 'ok': 2 ** 63 - 1})
        self.send_log({'message': 'py lone \udcff', 's': 'a\ud800b', 'service': 'svc\udfff'})
        self.send_log({'message': 'py own marker', 'big': 10 ** 30,
                       '_cairn': {'normalized': ['depth'], 'by': 'check'}})
        self.send_log({'message': 'py healthy', 'user': 'bob', 'n': 5})
"#;

#[test]
fn a_python_check_sends_poisoned_attributes_through_cairn_run_normalised_the_same_way() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("datadog.yaml"), "logs_enabled: true\n").unwrap();
    std::fs::create_dir_all(d.join("checks.d")).unwrap();
    std::fs::create_dir_all(d.join("conf.d/poison.d")).unwrap();
    std::fs::write(d.join("checks.d/poison.py"), CHECK).unwrap();
    std::fs::write(
        d.join("conf.d/poison.d/conf.yaml"),
        "init_config:\ninstances:\n  - min_collection_interval: 1\n\
         logs:\n  - type: integration\n    source: poison\n    service: poison-svc\n",
    )
    .unwrap();
    let mut cmd = cairn();
    cmd.arg("-c")
        .arg(d)
        .arg("run")
        .env("DD_LOGS_CONFIG_INTAKE_LISTEN", "127.0.0.1:0")
        .env("DD_LOGS_CONFIG_BATCH_WAIT", "1");
    let p = Proc::start(cmd, "cairn started");
    let deadline = Instant::now() + Duration::from_secs(20);
    while p.search("source:poison").len() < 5 {
        assert!(Instant::now() < deadline, "the check's logs never arrived");
        std::thread::sleep(Duration::from_millis(200));
    }

    every_attr_search_answers(&p);
    assert_eq!(
        p.messages("@_cairn.normalized:depth"),
        ["py deep", "py own marker"]
    );
    assert_eq!(
        p.messages("@_cairn.normalized:number"),
        ["py big", "py own marker"]
    );
    assert_eq!(
        p.messages("@_cairn.normalized:surrogate"),
        ["py deep", "py lone \u{fffd}"]
    );
    assert_eq!(p.messages("@user:bob"), ["py healthy"]);

    // The agent's own cut: the attribute's list is level 1, 64 levels kept, the rest as text
    // the way the intake writes it (compact, lone surrogates as U+FFFD).
    let a = p.attributes_of("py deep");
    assert_eq!(
        dig(&a["deep"], MAX_DEPTH).as_str(),
        Some(nested(120 - MAX_DEPTH, "{\"leaf\":\"x\u{fffd}\"}").as_str())
    );
    assert_eq!(a["_cairn"], json!({"normalized": ["depth", "surrogate"]}));
    let a = p.attributes_of("py big");
    assert_eq!(
        a,
        json!({"big": format!("1{}", "0".repeat(400)), "u64": "18446744073709551616",
               "neg": "-9223372036854775809", "ok": 9223372036854775807i64,
               "_cairn": {"normalized": ["number"]}})
    );
    let found = p.search("@s:*");
    let lone = &found[0]["attributes"];
    assert_eq!(lone["message"], "py lone \u{fffd}");
    assert_eq!(lone["service"], "svc\u{fffd}");
    assert_eq!(lone["attributes"]["s"], "a\u{fffd}b");
    let a = p.attributes_of("py own marker");
    assert_eq!(
        a["_cairn"],
        json!({"normalized": ["depth", "number"], "by": "check"})
    );
    assert_eq!(
        p.attributes_of("py healthy"),
        json!({"user": "bob", "n": 5})
    );
}
