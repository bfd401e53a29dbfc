//! Issue 9 through the real `cairn run`: a check submitting every kind is aggregated and its
//! series, service checks and events arrive at a recording intake over real HTTP, as
//! `/api/v2/series` protobuf (decoded here by a decoder written from `agent_payload.proto`'s
//! field numbers, sharing nothing with the encoder), `/api/v1/check_run` and `/api/v1/events`;
//! an outage loses nothing; a `kill -9` loses no flush that reached the spool.

mod pipeline_common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pipeline_common::{Intake, Mode, API_KEY, CAIRN};
use serde_json::Value;

// ---- protobuf, from the schema: MetricPayload { repeated MetricSeries series = 1 };
// MetricSeries { repeated Resource resources = 1; string metric = 2; repeated string tags = 3;
// repeated MetricPoint points = 4; MetricType type = 5; string unit = 6;
// string source_type_name = 7; int64 interval = 8; Metadata metadata = 9 };
// Resource { string type = 1; string name = 2 }; MetricPoint { double value = 1;
// int64 timestamp = 2 }; MetricType { UNSPECIFIED = 0; COUNT = 1; RATE = 2; GAUGE = 3 }.

fn varint(b: &[u8], pos: &mut usize) -> u64 {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = b[*pos];
        *pos += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return v;
        }
    }
    panic!("varint over 10 bytes");
}

enum Field<'a> {
    Int(u64),
    Double(f64),
    Bytes(&'a [u8]),
}

fn fields(b: &[u8]) -> Vec<(u64, Field<'_>)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < b.len() {
        let key = varint(b, &mut pos);
        let f = match key & 7 {
            0 => Field::Int(varint(b, &mut pos)),
            1 => {
                let v = f64::from_le_bytes(b[pos..pos + 8].try_into().unwrap());
                pos += 8;
                Field::Double(v)
            }
            2 => {
                let len = varint(b, &mut pos) as usize;
                pos += len;
                Field::Bytes(&b[pos - len..pos])
            }
            t => panic!("wire type {t}"),
        };
        out.push((key >> 3, f));
    }
    out
}

fn text(f: &Field<'_>) -> String {
    match f {
        Field::Bytes(b) => String::from_utf8(b.to_vec()).unwrap(),
        _ => panic!("expected a string"),
    }
}

#[derive(Debug, Clone, Default)]
struct Series {
    metric: String,
    host: String,
    tags: Vec<String>,
    kind: u64,
    points: Vec<(i64, f64)>,
    source_type_name: String,
}

fn decode(body: &[u8]) -> Vec<Series> {
    let mut out = Vec::new();
    for (n, f) in fields(body) {
        assert_eq!(n, 1);
        let Field::Bytes(b) = f else { panic!() };
        let mut s = Series::default();
        for (n, f) in fields(b) {
            match (n, &f) {
                (1, Field::Bytes(r)) => {
                    let r = fields(r);
                    let get = |k| r.iter().find(|(n, _)| *n == k).map(|(_, f)| text(f));
                    if get(1).as_deref() == Some("host") {
                        s.host = get(2).unwrap_or_default();
                    }
                }
                (2, _) => s.metric = text(&f),
                (3, _) => s.tags.push(text(&f)),
                (4, Field::Bytes(p)) => {
                    let (mut v, mut t) = (f64::NAN, 0);
                    for (n, f) in fields(p) {
                        match (n, f) {
                            (1, Field::Double(d)) => v = d,
                            (2, Field::Int(i)) => t = i as i64,
                            _ => panic!("MetricPoint field {n}"),
                        }
                    }
                    s.points.push((t, v));
                }
                (5, Field::Int(k)) => s.kind = *k,
                (7, _) => s.source_type_name = text(&f),
                _ => {}
            }
        }
        out.push(s);
    }
    out
}

const CHECK: &str = r#"
import os
import time
from datadog_checks.base import AgentCheck

class Kinds(AgentCheck):
    def check(self, instance):
        here = os.path.dirname(__file__)
        if os.path.exists(os.path.join(here, 'STOP')):
            return
        path = os.path.join(here, 'runs.txt')
        n = len(open(path).read().split()) if os.path.exists(path) else 0
        n += 1
        tags = ['env:test', 'env:test', 'team:a']
        self.gauge('kinds.gauge', n, tags=tags)
        self.gauge('kinds.nan', float('nan'))
        self.count('kinds.count', 2, tags=tags)
        self.count('kinds.count', 3, tags=tags)
        self.monotonic_count('kinds.mono', 10 * n)
        self.increment('kinds.counter')
        self.increment('kinds.counter', 4)
        for v in range(1, 101):
            self.histogram('kinds.hist', v, device_name='sda')
        self.service_check('kinds.can_connect', AgentCheck.OK if n % 2 else AgentCheck.WARNING,
                           tags=['port:1'], message='run %d' % n)
        if n == 1:
            self.event({'msg_title': 'started', 'msg_text': 'first run', 'timestamp': time.time(),
                        'alert_type': 'info', 'tags': ['env:test']})
        with open(path, 'a') as f:
            f.write('%d\n' % n)
"#;

struct Agent {
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Agent {
    fn new(intake: &Intake) -> Agent {
        let dir = tempfile::Builder::new()
            .prefix("cairn-metrics-")
            .tempdir()
            .unwrap();
        let p = dir.path();
        std::fs::create_dir_all(p.join("conf.d/kinds.d")).unwrap();
        std::fs::create_dir_all(p.join("checks.d")).unwrap();
        std::fs::write(
            p.join("datadog.yaml"),
            format!(
                "api_key: {API_KEY}\nhostname: test-host\ndd_url: {}\nlogs_config:\n  logs_dd_url: {}\n  sender_backoff_base: 0.05\n  sender_backoff_max: 0.5\n  http_timeout: 2\n",
                intake.url(),
                intake.url()
            ),
        )
        .unwrap();
        std::fs::write(
            p.join("conf.d/kinds.d/conf.yaml"),
            "instances:\n  - min_collection_interval: 0.4\n",
        )
        .unwrap();
        std::fs::write(p.join("checks.d/kinds.py"), CHECK).unwrap();
        Agent { child: None, dir }
    }

    fn start(&mut self) {
        let mut cmd = Command::new(CAIRN);
        for (k, _) in std::env::vars() {
            if k.starts_with("DD_") || k.starts_with("CAIRN_") {
                cmd.env_remove(k);
            }
        }
        let child = cmd
            .arg("-c")
            .arg(self.dir.path())
            .args(["run", "--send-grace-secs", "3"])
            .env("CAIRN_METRICS_FLUSH_SECS", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    fn runs(&self) -> Vec<u64> {
        std::fs::read_to_string(self.dir.path().join("checks.d/runs.txt"))
            .unwrap_or_default()
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect()
    }

    fn wait_runs(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.runs().len() < n {
            assert!(Instant::now() < deadline, "the check did not run {n} times");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop_check(&self) {
        std::fs::write(self.dir.path().join("checks.d/STOP"), "").unwrap();
    }

    /// SIGTERM and the exit status; returns stderr.
    fn sigterm(&mut self) -> String {
        let mut child = self.child.take().unwrap();
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let out = wait_output(&mut child);
        assert!(out.0.success(), "cairn run failed:\n{}", out.1);
        out.1
    }

    fn kill9(&mut self) {
        let mut child = self.child.take().unwrap();
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let _ = child.wait();
    }

    fn spool_files(&self) -> usize {
        std::fs::read_dir(self.dir.path().join("run/forwarder"))
            .map(|d| {
                d.filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".payload"))
                })
                .count()
            })
            .unwrap_or(0)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_output(child: &mut Child) -> (std::process::ExitStatus, String) {
    use std::io::Read;
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    (child.wait().unwrap(), err)
}

/// Every delivered series, decoded.
fn delivered_series(intake: &Intake) -> Vec<Series> {
    intake
        .requests()
        .iter()
        .filter(|r| r.path == "/api/v2/series" && (200..300).contains(&r.status))
        .flat_map(|r| decode(&r.body))
        .collect()
}

fn delivered_json(intake: &Intake, path: &str) -> Vec<Value> {
    intake
        .requests()
        .iter()
        .filter(|r| r.path == path && (200..300).contains(&r.status))
        .flat_map(
            |r| match serde_json::from_slice::<Value>(&r.body).unwrap() {
                Value::Array(a) => a,
                one => vec![one],
            },
        )
        .collect()
}

fn points(series: &[Series], metric: &str) -> Vec<f64> {
    let mut pts: Vec<(i64, f64)> = series
        .iter()
        .filter(|s| s.metric == metric)
        .flat_map(|s| s.points.clone())
        .collect();
    pts.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    pts.into_iter().map(|p| p.1).collect()
}

#[test]
fn every_kind_is_aggregated_and_delivered_as_the_agent_ships_it() {
    let intake = Intake::start();
    let mut agent = Agent::new(&intake);
    agent.start();
    agent.wait_runs(4);
    agent.stop_check();
    std::thread::sleep(Duration::from_millis(600));
    let stderr = agent.sigterm();
    let runs = agent.runs();
    let n = runs.len();

    let reqs: Vec<_> = intake
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/v2/series")
        .collect();
    assert!(!reqs.is_empty(), "no series arrived:\n{stderr}");
    for r in &reqs {
        assert_eq!(r.headers["dd-api-key"], API_KEY);
        assert_eq!(r.headers["content-type"], "application/x-protobuf");
        assert_eq!(r.headers["content-encoding"], "zstd");
    }
    let series = delivered_series(&intake);
    // gauge: the last value of each run, one point per run.
    let gauge: Vec<f64> = points(&series, "kinds.gauge");
    assert_eq!(
        gauge,
        (1..=n).map(|i| i as f64).collect::<Vec<_>>(),
        "{stderr}"
    );
    let g = series.iter().find(|s| s.metric == "kinds.gauge").unwrap();
    assert_eq!(g.kind, 3, "GAUGE");
    assert_eq!(g.host, "test-host");
    assert_eq!(g.tags, ["env:test", "team:a"], "sorted, de-duplicated");
    assert_eq!(g.source_type_name, "System");
    // The agent's own gauge, at every flush, as the Datadog Agent sends it.
    let running = series
        .iter()
        .find(|s| s.metric == "datadog.agent.running")
        .unwrap();
    assert_eq!((running.kind, running.host.as_str()), (3, "test-host"));
    assert!(
        running.points.iter().all(|p| p.1 == 1.0),
        "{:?}",
        running.points
    );
    assert!(
        running.tags.iter().any(|t| t.starts_with("version:")),
        "{:?}",
        running.tags
    );
    // NaN is refused, named once, and nothing else lost.
    assert!(points(&series, "kinds.nan").is_empty());
    assert_eq!(
        stderr.matches("kinds.nan").count(),
        1,
        "warned once:\n{stderr}"
    );
    // count: summed per run, COUNT.
    assert_eq!(points(&series, "kinds.count"), vec![5.0; n]);
    assert_eq!(
        series
            .iter()
            .find(|s| s.metric == "kinds.count")
            .unwrap()
            .kind,
        1
    );
    // monotonic_count: the deltas between runs (10 each), the first value dropped.
    assert_eq!(points(&series, "kinds.mono"), vec![10.0; n - 1]);
    // counter (increment): summed per run, RATE.
    assert_eq!(points(&series, "kinds.counter"), vec![5.0; n]);
    assert_eq!(
        series
            .iter()
            .find(|s| s.metric == "kinds.counter")
            .unwrap()
            .kind,
        2
    );
    // histogram over 1..=100 each run, with device_name as a device resource or tag.
    assert_eq!(points(&series, "kinds.hist.max"), vec![100.0; n]);
    assert_eq!(points(&series, "kinds.hist.median"), vec![50.0; n]);
    assert_eq!(points(&series, "kinds.hist.avg"), vec![50.5; n]);
    assert_eq!(points(&series, "kinds.hist.95percentile"), vec![95.0; n]);
    assert_eq!(points(&series, "kinds.hist.count"), vec![100.0; n]);

    let checks = delivered_json(&intake, "/api/v1/check_run");
    let mine: Vec<&Value> = checks
        .iter()
        .filter(|c| c["check"] == "kinds.can_connect")
        .collect();
    assert_eq!(mine.len(), n, "{checks:?}");
    assert_eq!(mine[0]["host_name"], "test-host");
    assert_eq!(mine[0]["tags"], serde_json::json!(["port:1"]));
    assert!(mine
        .iter()
        .any(|c| c["status"] == 1 && c["message"] == "run 2"));
    assert!(checks
        .iter()
        .any(|c| c["check"] == "datadog.agent.up" && c["status"] == 0));

    let events = delivered_json(&intake, "/api/v1/events");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["title"], "started");
    assert_eq!(events[0]["text"], "first run");
    assert_eq!(events[0]["host"], "test-host");
    assert_eq!(events[0]["tags"], serde_json::json!(["env:test"]));
}

#[test]
fn an_outage_then_a_kill_9_lose_no_flush_that_reached_the_spool() {
    let intake = Intake::start();
    intake.set_mode(Mode::Status(503));
    let mut agent = Agent::new(&intake);
    agent.start();
    agent.wait_runs(6);
    agent.stop_check();
    // Let the last runs' flush reach the spool, then die without a word.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut spooled = 0;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1200));
        let now = agent.spool_files();
        if now == spooled && now > 0 {
            break;
        }
        spooled = now;
    }
    assert!(
        spooled >= 3,
        "only {spooled} payloads spooled during the outage"
    );
    let runs = agent.runs().len();
    agent.kill9();
    assert!(
        intake
            .requests()
            .iter()
            .all(|r| !(200..300).contains(&r.status)),
        "nothing was accepted during the outage"
    );

    intake.set_mode(Mode::Accept);
    agent.start();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut gauge = Vec::new();
    while Instant::now() < deadline {
        gauge = points(&delivered_series(&intake), "kinds.gauge");
        if gauge.len() >= runs && agent.spool_files() == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let stderr = agent.sigterm();
    // Every run was flushed (the check had stopped well before the kill), spooled and is
    // delivered now, exactly once.
    assert_eq!(
        gauge,
        (1..=runs).map(|i| i as f64).collect::<Vec<_>>(),
        "{stderr}"
    );
    assert!(stderr.contains("left by the previous run"), "{stderr}");
    let counts: BTreeMap<u64, usize> = delivered_json(&intake, "/api/v1/check_run")
        .iter()
        .filter(|c| c["check"] == "kinds.can_connect")
        .fold(BTreeMap::new(), |mut m, c| {
            *m.entry(c["timestamp"].as_u64().unwrap()).or_insert(0) += 1;
            m
        });
    assert_eq!(counts.values().sum::<usize>(), runs);
}
