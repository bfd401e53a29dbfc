//! `cairn cursors list/show/reset` with the real binary and a real `cairn run`: cursors a check
//! wrote are listed after the agent stops, a reset (offline: one record in the buffer) makes the
//! check start over at its next run, a reset is refused while an agent runs and its local API
//! does not answer, and `persistent_cache_id()` keeps a cursor across an instance change.

mod support;

use std::net::TcpListener;
use std::time::Duration;

use serde_json::{json, Value};
use support::*;

/// Each run records what `get_log_cursor()` returned for both streams (one JSON line in
/// `out`), then sends one log per stream with the cursor `{"n": previous + 1}`.
const CURSOR_CHECK: &str = r#"
import json
from datadog_checks.base import AgentCheck


class CursorCheck(AgentCheck):
    def check(self, instance):
        seen = {'default': self.get_log_cursor(), 'other': self.get_log_cursor('other')}
        with open(instance['out'], 'a') as f:
            f.write(json.dumps(seen) + '\n')
        n = (seen['default'] or {}).get('n', 0) + 1
        self.send_log({'message': 'log %d' % n}, cursor={'n': n})
        self.send_log({'message': 'other %d' % n}, cursor={'n': n}, stream='other')
"#;

/// The same, with a cache identity that only the instance's `source_id` decides.
const KEPT_CHECK: &str = r#"
import json
from datadog_checks.base import AgentCheck


class KeptCheck(AgentCheck):
    def persistent_cache_id(self):
        return 'src-' + str(self.instance['source_id'])

    def check(self, instance):
        seen = {'default': self.get_log_cursor()}
        with open(instance['out'], 'a') as f:
            f.write(json.dumps(seen) + '\n')
        n = (seen['default'] or {}).get('n', 0) + 1
        self.send_log({'message': 'kept %d' % n}, cursor={'n': n})
"#;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn conf(dir: &ConfigDir, name: &str, tag: &str, extra: &str) {
    let out = dir.join(&format!("{name}.out"));
    dir.conf(
        name,
        &format!(
            "instances:\n  - min_collection_interval: 0.2\n    tags: [\"{tag}\"]\n    out: {}\n{extra}logs:\n  - type: integration\n    source: {name}\n",
            serde_json::to_string(&out.display().to_string()).unwrap()
        ),
    );
}

fn setup() -> ConfigDir {
    let dir = ConfigDir::new();
    dir.datadog_yaml(&format!(
        "{DEFAULT_DATADOG_YAML}cmd_port: {}\n",
        free_port()
    ));
    dir.check_py("cur", CURSOR_CHECK);
    conf(&dir, "cur", "v:1", "");
    dir
}

/// What each run of `name` saw, in order.
fn seen(dir: &ConfigDir, name: &str) -> Vec<Value> {
    dir.lines(&format!("{name}.out"))
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Runs the agent until `name` has run at least `runs` more times, then stops it cleanly.
fn run_agent_for(dir: &ConfigDir, name: &str, runs: usize) {
    let before = seen(dir, name).len();
    let agent = start_agent(dir);
    let ok = wait_for(Duration::from_secs(30), || {
        seen(dir, name).len() >= before + runs
    });
    let out = agent.sigterm(Duration::from_secs(15));
    assert!(ok, "{name} did not run {runs} times\n{}", out.dump());
    out.assert_code(0);
}

fn cursors_json(dir: &ConfigDir, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["cursors"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = dir.cairn(&all).run();
    out.assert_code(0);
    out.json()["cursors"].as_array().unwrap().clone()
}

fn streams_and_cursors(list: &[Value]) -> Vec<(String, Value)> {
    list.iter()
        .map(|c| {
            (
                c["stream"].as_str().unwrap().to_string(),
                c["cursor"].clone(),
            )
        })
        .collect()
}

#[test]
fn cursors_are_listed_after_a_stop_and_an_offline_reset_makes_the_check_start_over() {
    let dir = setup();
    run_agent_for(&dir, "cur", 3);
    let runs = seen(&dir, "cur").len() as u64;

    let list = cursors_json(&dir, &["list"]);
    assert_eq!(
        streams_and_cursors(&list),
        vec![
            ("default".to_string(), json!({ "n": runs })),
            ("other".to_string(), json!({ "n": runs })),
        ],
        "{list:?}"
    );
    assert_eq!(list[0]["check"], "cur");
    let check_id = list[0]["check_id"].as_str().unwrap().to_string();
    assert!(check_id.starts_with("cur:"), "{check_id}");

    // show, by name and by id; one stream.
    let shown = cursors_json(&dir, &["show", &check_id, "--stream", "other"]);
    assert_eq!(
        streams_and_cursors(&shown),
        vec![("other".to_string(), json!({ "n": runs }))]
    );
    let human = dir.cairn(&["cursors", "list"]).run();
    human.assert_code(0);
    assert!(
        human.stdout.contains("CHECK ID") && human.stdout.contains(&check_id),
        "{}",
        human.dump()
    );

    // An unknown check names the known ones.
    let unknown = dir.cairn(&["cursors", "show", "nope"]).run();
    unknown.assert_code(1);
    assert!(
        unknown.stderr.contains("unknown check nope") && unknown.stderr.contains("cur"),
        "{}",
        unknown.dump()
    );

    // Reset one stream, then the rest.
    let out = dir
        .cairn(&["cursors", "reset", "cur", "--stream", "other", "--json"])
        .run();
    out.assert_code(0);
    assert_eq!(out.json()["count"], 1, "{}", out.dump());
    assert_eq!(
        streams_and_cursors(&cursors_json(&dir, &["list", "cur"])),
        vec![("default".to_string(), json!({ "n": runs }))]
    );
    let out = dir.cairn(&["cursors", "reset", "cur", "--json"]).run();
    out.assert_code(0);
    assert_eq!(
        out.json()["reset"][0]["stream"],
        "default",
        "{}",
        out.dump()
    );
    assert!(cursors_json(&dir, &["list"]).is_empty());

    // The next run starts over.
    run_agent_for(&dir, "cur", 1);
    let after = &seen(&dir, "cur")[runs as usize];
    assert_eq!(after, &json!({ "default": null, "other": null }));
}

#[test]
fn a_reset_is_refused_while_an_agent_runs_and_its_local_api_does_not_answer() {
    let dir = setup();
    let agent = start_agent(&dir);
    assert!(wait_for(Duration::from_secs(30), || seen(&dir, "cur")
        .len()
        >= 2));
    // Without the token nothing can reach the agent's API.
    let _ = std::fs::remove_file(dir.join("run/auth_token"));
    let out = dir.cairn(&["cursors", "reset", "cur"]).run();
    let pid = agent.pid();
    let stopped = agent.sigterm(Duration::from_secs(15));
    stopped.assert_code(0);
    out.assert_code(1);
    assert!(
        out.stderr
            .contains(&format!("an agent (pid {pid}) is running on run_path"))
            && out
                .stderr
                .contains("reset through it: it is not reachable:"),
        "{}",
        out.dump()
    );
    // Nothing was reset.
    let runs = seen(&dir, "cur").len() as u64;
    assert_eq!(
        streams_and_cursors(&cursors_json(&dir, &["list", "cur"]))[0].1,
        json!({ "n": runs })
    );
}

#[test]
fn a_reset_through_the_local_api_is_seen_by_the_running_check_at_its_next_run() {
    let dir = setup();
    let agent = start_agent(&dir);
    assert!(wait_for(Duration::from_secs(30), || seen(&dir, "cur")
        .len()
        >= 2));
    let listed = dir.cairn(&["cursors", "list", "cur", "--json"]).run();
    let out = dir.cairn(&["cursors", "reset", "cur", "--json"]).run();
    let before = seen(&dir, "cur").len();
    let ok = wait_for(Duration::from_secs(30), || {
        seen(&dir, "cur")[before.saturating_sub(1)..]
            .iter()
            .any(|s| s["default"].is_null())
    });
    let stopped = agent.sigterm(Duration::from_secs(15));
    listed.assert_code(0);
    assert_eq!(listed.json()["cursors"].as_array().unwrap().len(), 2);
    out.assert_code(0);
    assert_eq!(out.json()["count"], 2, "{}", out.dump());
    assert!(
        ok,
        "the running check never saw its cursor reset\n{}",
        stopped.dump()
    );
}

#[test]
fn persistent_cache_id_keeps_the_cursor_across_an_instance_change_and_the_check_id_does_not() {
    let dir = setup();
    dir.check_py("kept", KEPT_CHECK);
    conf(&dir, "kept", "v:1", "    source_id: 7\n");
    run_agent_for(&dir, "kept", 3);
    let kept_runs = seen(&dir, "kept").len();
    let cur_runs = seen(&dir, "cur").len();

    let kept = cursors_json(&dir, &["list", "kept"]);
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0]["cache_id"], "kept:src-7", "{kept:?}");
    assert_eq!(kept[0]["cursor"], json!({ "n": kept_runs }));

    // A tag changes: both checks get a new check id.
    conf(&dir, "kept", "v:2", "    source_id: 7\n");
    conf(&dir, "cur", "v:2", "");
    run_agent_for(&dir, "kept", 1);
    assert_eq!(
        seen(&dir, "kept")[kept_runs],
        json!({ "default": { "n": kept_runs } }),
        "the overridden identity keeps the cursor"
    );
    let cur_after = seen(&dir, "cur");
    assert!(cur_after.len() > cur_runs);
    assert_eq!(
        cur_after[cur_runs],
        json!({ "default": null, "other": null }),
        "a new check id starts with a fresh cursor"
    );
}

#[test]
fn cairn_check_persist_writes_an_overridden_identity_s_cursor_where_cairn_run_reads_it() {
    let dir = setup();
    dir.check_py("kept", KEPT_CHECK);
    conf(&dir, "kept", "v:1", "    source_id: 9\n");
    dir.cairn(&["check", "kept", "--persist"])
        .run()
        .assert_code(0);
    let kept = cursors_json(&dir, &["show", "kept"]);
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0]["cache_id"], "kept:src-9");
    assert_eq!(kept[0]["cursor"], json!({ "n": 1 }));
    run_agent_for(&dir, "kept", 1);
    assert_eq!(seen(&dir, "kept")[1], json!({ "default": { "n": 1 } }));
}
