//! Checks written against the real `datadog-checks-base` from PyPI run unmodified on Cairn's
//! native `datadog_agent` / `aggregator` modules. The test creates (once, cached under the
//! target dir) a virtualenv with `datadog-checks-base==38.7.0 lazy-loader pyyaml cachetools`
//! from Debian's python3.11, the interpreter the binary embeds.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

mod support;

const PACKAGES: &[&str] = &[
    "datadog-checks-base==38.7.0",
    "lazy-loader",
    "pyyaml",
    "cachetools",
];

fn venv() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        support::venv_with(
            Path::new(env!("CARGO_TARGET_TMPDIR")),
            "ddcb-38.7.0-venv",
            PACKAGES,
        )
    })
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// `datadog.yaml` with logs on and the real library's virtualenv as `python_env`.
fn write_datadog_yaml(root: &Path) {
    write(
        root,
        "datadog.yaml",
        &format!(
            "logs_enabled: true\nhostname: test-host\npython_env: {}\n",
            venv().display()
        ),
    );
}

fn config_dir() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write_datadog_yaml(root);
    write(
        root,
        "conf.d/plain.d/conf.yaml",
        "instances:\n  - tags: [\"env:test\", \"bare\", \"env:test\"]\nlogs:\n  - type: integration\n    source: plain\n    service: plain-svc\n",
    );
    write(
        root,
        "checks.d/plain.py",
        r#"
import datadog_checks.base
from datadog_checks.base import AgentCheck


class Plain(AgentCheck):
    __NAMESPACE__ = 'plain'

    def check(self, instance):
        self.gauge('up', 1, tags=['a:b'])
        self.monotonic_count('requests', 10)
        self.service_check('can_connect', AgentCheck.OK, message='fine')
        self.event({'msg_title': 'hello', 'msg_text': 'world'})
        before = self.get_log_cursor()
        self.send_log(
            {'message': 'hello from the real library', 'timestamp': 1700000000.5,
             'base_file': datadog_checks.base.__file__, 'extra': {'k': [1, 2]}},
            cursor={'pos': 7},
        )
        self.send_log({'message': 'second', 'ddtags': 'own:tag'})
        assert before is None, before
        assert self.get_log_cursor() == {'pos': 7}, self.get_log_cursor()
        self.write_persistent_cache('k', 'v')
        assert self.read_persistent_cache('k') == 'v'
        self.warning('careful %s', 'now')
"#,
    );
    write(root, "conf.d/crawler.d/conf.yaml", "instances:\n  - per_run: 2\nlogs:\n  - type: integration\n    source: crawler\n    service: crawler-svc\n");
    write(
        root,
        "checks.d/crawler.py",
        r#"
from datadog_checks.base.checks.logs.crawler.base import LogCrawlerCheck
from datadog_checks.base.checks.logs.crawler.stream import LogRecord, LogStream


class NumberStream(LogStream):
    def __init__(self, *, check, name, per_run):
        super().__init__(check=check, name=name)
        self.per_run = per_run

    def records(self, *, cursor=None):
        start = cursor['n'] if cursor else 0
        for n in range(start + 1, start + 1 + self.per_run):
            yield LogRecord({'message': f'{self.name} {n}', 'n': n}, cursor={'n': n})


class Crawler(LogCrawlerCheck):
    def get_log_streams(self):
        per_run = self.instance['per_run']
        return [NumberStream(check=self, name='alpha', per_run=per_run),
                NumberStream(check=self, name='beta', per_run=per_run)]
"#,
    );
    write(
        root,
        "conf.d/kinds.d/conf.yaml",
        "instances:\n  - tags: [\"inst:1\"]\n",
    );
    write(
        root,
        "checks.d/kinds.py",
        r#"
from datadog_checks.base import AgentCheck


class Kinds(AgentCheck):
    __NAMESPACE__ = 'kinds'

    def check(self, instance):
        self.n = getattr(self, 'n', 0) + 1
        n = self.n
        self.gauge('gauge', n, tags=['b:2', 'a:1', 'b:2'])
        self.count('count', 2)
        self.count('count', 3)
        self.monotonic_count('mono', 100 * n)
        self.monotonic_count('mono_first', 7, flush_first_value=True)
        self.rate('rate', 1000.0 * n)
        self.increment('counter')
        self.decrement('counter', -3)
        for v in range(1, 101):
            self.histogram('hist', v, device_name='sda')
        self.historate('historate', 50.0 * n)
        self.gauge('bad', float('inf'))
        self.service_check('can_connect', AgentCheck.CRITICAL, message='down')
        self.event({'msg_title': 'run', 'msg_text': str(n)})
"#,
    );
    write(
        root,
        "conf.d/poison.d/conf.yaml",
        "instances:\n  - {}\nlogs:\n  - type: integration\n    source: poison\n",
    );
    write(
        root,
        "checks.d/poison.py",
        r#"
from datadog_checks.base import AgentCheck


class Poison(AgentCheck):
    def check(self, instance):
        self.send_log({'message': 'lone \udcff here', 'big': 10 ** 400, 'neg': -(2 ** 70),
                       'ok': 1, 'attr': {'s': '\ud800'}})
"#,
    );
    write(
        root,
        "conf.d/broken.d/conf.yaml",
        "instances:\n  - {}\nlogs:\n  - type: integration\n    source: broken\n",
    );
    write(
        root,
        "checks.d/broken.py",
        "from datadog_checks.base import AgentCheck\n\nclass Broken(AgentCheck):\n    def check(self, instance):\n        self.send_log({'status': 'info'})\n",
    );
    tmp
}

fn cairn_check(dir: &Path, args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("-c")
        .arg(dir)
        .arg("check")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "bad json ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (
        out.status.code().unwrap_or(-1),
        v,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_plain_agent_check_on_the_real_library_submits_everything() {
    let dir = config_dir();
    let (code, v, stderr) = cairn_check(dir.path(), &["plain"]);
    let run = &v["runs"][0];
    assert_eq!(run["error"], Value::Null, "stderr: {stderr}");
    assert_eq!(code, 0);
    let logs = run["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 2);
    let first = &logs[0];
    let base_file = first["base_file"].as_str().unwrap();
    assert!(
        base_file.contains("site-packages/datadog_checks/base"),
        "the real library must win over the bundled copy: {base_file}"
    );
    assert_eq!(first["message"], "hello from the real library");
    assert_eq!(first["timestamp"], 1700000000500i64);
    assert_eq!(first["hostname"], "test-host");
    assert_eq!(first["service"], "plain-svc");
    assert_eq!(first["ddsource"], "plain");
    assert_eq!(first["ddtags"], "env:test");
    assert_eq!(first["status"], "info");
    assert_eq!(first["extra"], serde_json::json!({"k": [1, 2]}));
    assert_eq!(logs[1]["ddtags"], "own:tag");
    let metrics = run["metrics"].as_array().unwrap();
    assert!(metrics.iter().any(|m| m["name"] == "plain.up"
        && m["type"] == "gauge"
        && m["value"] == 1.0
        && m["tags"] == serde_json::json!(["a:b"])));
    assert!(metrics
        .iter()
        .any(|m| m["name"] == "plain.requests" && m["type"] == "monotonic_count"));
    assert_eq!(run["service_checks"][0]["name"], "plain.can_connect");
    assert_eq!(run["service_checks"][0]["status"], 0);
    assert_eq!(run["service_checks"][0]["message"], "fine");
    assert_eq!(run["events"][0]["msg_title"], "hello");
    assert_eq!(run["warnings"], serde_json::json!(["careful now"]));
}

#[test]
fn a_log_crawler_check_resumes_both_streams_from_their_cursors() {
    let dir = config_dir();
    let (code, v, stderr) = cairn_check(dir.path(), &["crawler", "--times", "2"]);
    assert_eq!(code, 0, "stderr: {stderr}");
    let messages: Vec<Vec<String>> = v["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["logs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["message"].as_str().unwrap().to_string())
                .collect()
        })
        .collect();
    assert_eq!(
        messages,
        vec![
            vec!["alpha 1", "alpha 2", "beta 1", "beta 2"],
            vec!["alpha 3", "alpha 4", "beta 3", "beta 4"]
        ]
    );

    // Without --persist nothing moved: a new process starts over. With it, the next continues.
    let (_, again, _) = cairn_check(dir.path(), &["crawler"]);
    assert_eq!(again["runs"][0]["logs"][0]["message"], "alpha 1");
    let (_, _, _) = cairn_check(dir.path(), &["crawler", "--persist"]);
    let (_, next, _) = cairn_check(dir.path(), &["crawler"]);
    assert_eq!(next["runs"][0]["logs"][0]["message"], "alpha 3");
    assert_eq!(next["runs"][0]["logs"][2]["message"], "beta 3");
}

#[test]
fn the_real_library_send_log_without_message_is_a_clear_error() {
    let dir = config_dir();
    let (code, v, _) = cairn_check(dir.path(), &["broken"]);
    assert_eq!(code, 1);
    assert_eq!(
        v["runs"][0]["error"]["message"],
        "send_log: data must have a 'message' key"
    );
    assert_eq!(v["runs"][0]["logs"], serde_json::json!([]));
}

#[test]
fn every_kind_from_the_real_library_aggregates_as_the_agent_does() {
    let dir = config_dir();
    let (code, v, stderr) = cairn_check(dir.path(), &["kinds", "--aggregated", "--check-rate"]);
    assert_eq!(code, 0, "stderr: {stderr}");
    assert_eq!(
        v["runs"].as_array().unwrap().len(),
        2,
        "--check-rate runs twice"
    );
    let series = v["aggregated"]["series"].as_array().unwrap();
    let find =
        |name: &str| -> Vec<&Value> { series.iter().filter(|s| s["metric"] == name).collect() };
    let values = |name: &str| -> Vec<f64> {
        find(name)
            .iter()
            .flat_map(|s| {
                s["points"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p[1].as_f64().unwrap())
            })
            .collect()
    };
    let gauge = find("kinds.gauge");
    assert_eq!(values("kinds.gauge"), [1.0, 2.0]);
    assert_eq!(gauge[0]["type"], "gauge");
    assert_eq!(gauge[0]["host"], "test-host");
    assert_eq!(
        gauge[0]["tags"],
        serde_json::json!(["a:1", "b:2", "inst:1"])
    );
    assert_eq!(values("kinds.count"), [5.0, 5.0]);
    assert_eq!(find("kinds.count")[0]["type"], "count");
    assert_eq!(values("kinds.mono"), [100.0], "the first value is dropped");
    assert_eq!(
        values("kinds.mono_first"),
        [7.0, 0.0],
        "flush_first_value counts it; then no change"
    );
    let rate = values("kinds.rate");
    assert_eq!(rate.len(), 1, "one rate from two runs: {rate:?}");
    assert!(
        rate[0] > 500.0 && rate[0] < 1100.0,
        "1000 per ~1 s: {rate:?}"
    );
    assert_eq!(values("kinds.counter"), [-2.0, -2.0]);
    assert_eq!(find("kinds.counter")[0]["type"], "rate");
    assert_eq!(values("kinds.hist.max"), [100.0, 100.0]);
    assert_eq!(values("kinds.hist.median"), [50.0, 50.0]);
    assert_eq!(values("kinds.hist.95percentile"), [95.0, 95.0]);
    assert_eq!(find("kinds.hist.count")[0]["type"], "rate");
    assert!(find("kinds.hist.max")[0]["tags"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("device:sda")));
    assert!(!find("kinds.historate.max").is_empty(), "{series:?}");
    assert!(find("kinds.bad").is_empty());
    assert!(
        stderr.contains("kinds.bad"),
        "the refused metric is named: {stderr}"
    );
    let checks = v["aggregated"]["service_checks"].as_array().unwrap();
    assert_eq!(checks.len(), 2);
    assert_eq!(checks[0]["check"], "kinds.can_connect");
    assert_eq!(checks[0]["status"], 2);
    assert_eq!(checks[0]["tags"], serde_json::json!(["inst:1"]));
    assert_eq!(v["aggregated"]["events"].as_array().unwrap().len(), 2);
    // The raw submissions are still shown per run.
    assert!(v["runs"][0]["metrics"].as_array().unwrap().len() > 100);
}

#[test]
fn the_real_library_s_log_line_is_normalised_as_the_intake_would_store_it() {
    let dir = config_dir();
    let (code, v, stderr) = cairn_check(dir.path(), &["poison"]);
    assert_eq!(code, 0, "stderr: {stderr}\n{v:#}");
    let log = &v["runs"][0]["logs"][0];
    assert_eq!(log["message"], "lone \u{fffd} here");
    assert_eq!(log["big"], format!("1{}", "0".repeat(400)));
    assert_eq!(log["neg"], "-1180591620717411303424");
    assert_eq!(log["ok"], 1);
    assert_eq!(log["attr"]["s"], "\u{fffd}");
    assert_eq!(
        log["_cairn"],
        serde_json::json!({"normalized": ["number", "surrogate"]})
    );
}

/// `enable_metadata_collection` answers true by default, as in the Datadog Agent, so the real
/// library's `@AgentCheck.metadata_entrypoint` methods run and their `set_metadata('version')`
/// reaches `cairn check` split the library's own way.
#[test]
fn the_real_library_s_metadata_entrypoints_run_and_are_shown() {
    let dir = config_dir();
    write(
        dir.path(),
        "conf.d/meta.d/conf.yaml",
        "instances:\n  - {}\n",
    );
    write(
        dir.path(),
        "checks.d/meta.py",
        "from datadog_checks.base import AgentCheck\n\n\nclass Meta(AgentCheck):\n    def check(self, instance):\n        self.collect()\n\n    @AgentCheck.metadata_entrypoint\n    def collect(self):\n        self.set_metadata('version', '3.4.5')\n",
    );
    let (code, v, stderr) = cairn_check(dir.path(), &["meta"]);
    let run = &v["runs"][0];
    assert_eq!(run["error"], Value::Null, "stderr: {stderr}");
    assert_eq!(code, 0);
    let meta = &run["metadata"];
    assert_eq!(meta["version.raw"], "3.4.5", "{meta} {stderr}");
    assert_eq!(meta["version.major"], "3", "{meta}");
    assert_eq!(meta["version.patch"], "5", "{meta}");
    assert_eq!(meta["version.scheme"], "semver", "{meta}");
}

/// A real-library check whose `persistent_cache_id()` only its `source_id` decides: its cursor
/// lives under `kept:src-<id>` and survives a change of the instance's tags (a new check id).
const KEPT_CHECK: &str = r#"
import json
from datadog_checks.base import AgentCheck


class Kept(AgentCheck):
    def persistent_cache_id(self):
        return 'src-' + str(self.instance['source_id'])

    def check(self, instance):
        seen = self.get_log_cursor()
        with open(instance['out'], 'a') as f:
            f.write(json.dumps(seen) + '\n')
        n = (seen or {}).get('n', 0) + 1
        self.send_log({'message': 'kept %d' % n}, cursor={'n': n})
"#;

fn kept_conf(root: &Path, tag: &str) {
    let out = root.join("kept.out");
    write(
        root,
        "conf.d/kept.d/conf.yaml",
        &format!(
            "instances:\n  - min_collection_interval: 0.2\n    source_id: 7\n    tags: [\"{tag}\"]\n    out: {}\nlogs:\n  - type: integration\n    source: kept\n",
            serde_json::to_string(&out.display().to_string()).unwrap()
        ),
    );
}

fn kept_seen(root: &Path) -> Vec<Value> {
    std::fs::read_to_string(root.join("kept.out"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn run_kept_for(root: &Path, runs: usize) {
    let before = kept_seen(root).len();
    let mut agent = support::Cairn::new(root, &["run"]).spawn();
    agent.wait_for_stderr("cairn started", std::time::Duration::from_secs(60));
    let ok = support::wait_for(std::time::Duration::from_secs(60), || {
        kept_seen(root).len() >= before + runs
    });
    let out = agent.sigterm(std::time::Duration::from_secs(15));
    assert!(ok, "kept did not run {runs} times\n{}", out.dump());
    out.assert_code(0);
}

#[test]
fn the_real_library_s_persistent_cache_id_keeps_a_cursor_across_an_instance_change() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write_datadog_yaml(root);
    write(root, "checks.d/kept.py", KEPT_CHECK);
    kept_conf(root, "v:1");
    run_kept_for(root, 2);
    let runs = kept_seen(root).len();
    assert_eq!(
        kept_seen(root)[0],
        Value::Null,
        "the first run has no cursor"
    );

    let listed = support::Cairn::new(root, &["cursors", "list", "kept", "--json"]).run();
    listed.assert_code(0);
    let cursors = listed.json()["cursors"].clone();
    assert_eq!(cursors[0]["cache_id"], "kept:src-7", "{cursors}");
    assert_eq!(cursors[0]["stream"], "default", "{cursors}");
    assert_eq!(cursors[0]["cursor"], serde_json::json!({ "n": runs }));

    kept_conf(root, "v:2");
    run_kept_for(root, 1);
    assert_eq!(
        kept_seen(root)[runs],
        serde_json::json!({ "n": runs }),
        "a new check id, the same persistent_cache_id: the cursor is kept"
    );
}
