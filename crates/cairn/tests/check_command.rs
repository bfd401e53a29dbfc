//! `cairn check` and `cairn configcheck` as a check author uses them: the exact output shapes,
//! check ids, what the AgentCheck API submits, and how the agent's settings (logs_enabled,
//! hostname, processing rules, message size) shape the logs that would be shipped.

mod support;

use std::collections::BTreeSet;

use regex::Regex;
use serde_json::{json, Value};
use support::{assert_ms_between, messages, now_ms, runs, without, ConfigDir, HOSTNAME};

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect()
}

fn set<'a>(items: &[&'a str]) -> BTreeSet<&'a str> {
    items.iter().copied().collect()
}

/// A check that uses every submission kind of the AgentCheck API.
const SUBMITTING_CHECK: &str = r#"
from datadog_checks.base import AgentCheck


class SubmittingCheck(AgentCheck):
    __NAMESPACE__ = 'ns'

    def check(self, instance):
        self.gauge('g', 1.5, tags=['a:b'])
        self.count('c', 2)
        self.monotonic_count('mc', 3, hostname='other-host')
        self.rate('r', 4, raw=True)
        self.histogram('h', 5, device_name='sda')
        self.historate('hr', 6)
        for status in (self.OK, self.WARNING, self.CRITICAL, self.UNKNOWN):
            self.service_check('can_connect', status, tags=['x:y'], message='m%d' % status)
        self.service_check('raw_sc', self.OK, raw=True)
        self.event({'msg_title': 'title', 'msg_text': 'body', 'tags': ['e:1']})
        self.warning('careful with %s', 'that')
        self.send_log({'message': 'submitted'})
"#;

const TWO_INSTANCES: &str = "instances:\n  - tags: [\"env:dev\", \"solo\"]\n  - name: second\n    tags: [\"env:prod\"]\nlogs:\n  - type: integration\n    source: sub\n    service: subsvc\n";

fn submitting_dir() -> ConfigDir {
    let dir = ConfigDir::new();
    dir.conf("sub", TWO_INSTANCES)
        .check_py("sub", SUBMITTING_CHECK);
    dir
}

#[test]
fn json_output_has_exactly_the_documented_shape() {
    let dir = submitting_dir();
    let (out, json) = dir.check_json("sub", &[]);
    out.assert_code(0);
    assert_eq!(keys(&json), set(&["check", "runs"]));
    assert_eq!(json["check"], "sub");
    let runs = runs(&json);
    assert_eq!(runs.len(), 2, "one run per instance");
    for run in runs {
        assert_eq!(
            keys(run),
            set(&[
                "check_id",
                "instance",
                "duration_ms",
                "error",
                "warnings",
                "metrics",
                "service_checks",
                "events",
                "metadata",
                "logs"
            ])
        );
        assert!(
            run["duration_ms"].as_f64().is_some_and(|d| d >= 0.0),
            "{run:#}"
        );
        assert_eq!(run["error"], Value::Null);
        for m in run["metrics"].as_array().unwrap() {
            assert_eq!(
                keys(m),
                set(&["name", "type", "value", "tags", "hostname"]),
                "{m}"
            );
        }
        for sc in run["service_checks"].as_array().unwrap() {
            assert_eq!(
                keys(sc),
                set(&["name", "status", "tags", "hostname", "message"]),
                "{sc}"
            );
        }
    }
    assert_eq!(runs[0]["instance"], json!({"tags": ["env:dev", "solo"]}));
    assert_eq!(
        runs[1]["instance"],
        json!({"name": "second", "tags": ["env:prod"]})
    );
}

#[test]
fn failing_run_error_is_message_and_traceback_and_exit_code_is_1() {
    let dir = ConfigDir::new();
    dir.conf("fails", "instances:\n  - {}\n")
        .check_py("fails", "from datadog_checks.base import AgentCheck\n\n\nclass Fails(AgentCheck):\n    def check(self, instance):\n        raise KeyError('port')\n");
    let (out, json) = dir.check_json("fails", &[]);
    out.assert_code(1);
    let error = &runs(&json)[0]["error"];
    assert_eq!(keys(error), set(&["message", "traceback"]));
    assert_eq!(error["message"], "'port'");
    let tb = error["traceback"].as_str().unwrap();
    assert!(
        tb.starts_with("Traceback (most recent call last):\n")
            && tb.ends_with("KeyError: 'port'\n"),
        "{tb}"
    );
    assert!(
        tb.contains(&format!(
            "{}\", line 6, in check",
            dir.join("checks.d/fails.py").display()
        )),
        "{tb}"
    );
}

#[test]
fn submissions_follow_the_agentcheck_api() {
    let dir = submitting_dir();
    let (out, json) = dir.check_json("sub", &[]);
    out.assert_code(0);
    let run = &runs(&json)[0];
    // __NAMESPACE__ prefixes names unless raw=True; instance tags are not added to metrics.
    assert_eq!(
        run["metrics"],
        json!([
            {"name": "ns.g", "type": "gauge", "value": 1.5, "tags": ["a:b"], "hostname": HOSTNAME},
            {"name": "ns.c", "type": "count", "value": 2.0, "tags": [], "hostname": HOSTNAME},
            {"name": "ns.mc", "type": "monotonic_count", "value": 3.0, "tags": [], "hostname": "other-host"},
            {"name": "r", "type": "rate", "value": 4.0, "tags": [], "hostname": HOSTNAME},
            {"name": "ns.h", "type": "histogram", "value": 5.0, "tags": ["device:sda"], "hostname": HOSTNAME},
            {"name": "ns.hr", "type": "historate", "value": 6.0, "tags": [], "hostname": HOSTNAME},
        ])
    );
    let sc = |status: i64| json!({"name": "ns.can_connect", "status": status, "tags": ["x:y"], "hostname": HOSTNAME, "message": format!("m{status}")});
    assert_eq!(
        run["service_checks"],
        json!([sc(0), sc(1), sc(2), sc(3), {"name": "raw_sc", "status": 0, "tags": [], "hostname": HOSTNAME, "message": ""}])
    );
    assert_eq!(
        run["events"],
        json!([{"msg_title": "title", "msg_text": "body", "tags": ["e:1"]}])
    );
    assert_eq!(run["warnings"], json!(["careful with that"]));
    // Logs do get the instance's key:value tags (not `solo`) by default.
    assert_eq!(run["logs"][0]["ddtags"], "env:dev");
    assert_eq!(runs(&json)[1]["logs"][0]["ddtags"], "env:prod");
}

#[test]
fn warnings_belong_to_the_run_that_made_them() {
    let dir = ConfigDir::new();
    dir.conf("warn", "instances:\n  - {}\n").check_py(
        "warn",
        "from datadog_checks.base import AgentCheck\n\n\nclass Warn(AgentCheck):\n    n = 0\n\n    def check(self, instance):\n        Warn.n += 1\n        if Warn.n == 1:\n            self.warning('first only')\n",
    );
    let (out, json) = dir.check_json("warn", &["--times", "2"]);
    out.assert_code(0);
    assert_eq!(runs(&json)[0]["warnings"], json!(["first only"]));
    assert_eq!(runs(&json)[1]["warnings"], json!([]));
}

#[test]
fn summary_format_prints_one_line_per_run() {
    let dir = submitting_dir();
    dir.conf("fails", "instances:\n  - {}\nlogs:\n  - type: integration\n").check_py(
        "fails",
        "from datadog_checks.base import AgentCheck\n\n\nclass Fails(AgentCheck):\n    def check(self, instance):\n        self.send_log({'message': 'x'})\n        raise RuntimeError('db down')\n",
    );
    let out = dir
        .cairn(&["check", "sub", "--format", "summary", "--times", "2"])
        .run();
    out.assert_code(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "2 instances x 2 runs\n{}", out.dump());
    let first = Regex::new(r"^sub:[0-9a-f]{16} \d+\.\dms metrics=6 service_checks=5 events=1 logs=1 warnings=1 error=-$").unwrap();
    let second = Regex::new(r"^sub:second:[0-9a-f]{16} \d+\.\dms metrics=6 service_checks=5 events=1 logs=1 warnings=1 error=-$").unwrap();
    for (i, line) in lines.iter().enumerate() {
        let re = if i % 2 == 0 { &first } else { &second };
        assert!(re.is_match(line), "line {i}: {line}");
    }

    let out = dir.cairn(&["check", "fails", "--format", "summary"]).run();
    out.assert_code(1);
    let re = Regex::new(r"^fails:[0-9a-f]{16} \d+\.\dms metrics=0 service_checks=0 events=0 logs=1 warnings=0 error=db down\n$").unwrap();
    assert!(re.is_match(&out.stdout), "{}", out.dump());
}

#[test]
fn full_format_prints_each_log_as_its_wire_json() {
    let dir = ConfigDir::new();
    dir.conf("wire", "instances:\n  - tags: [\"env:dev\"]\nlogs:\n  - type: integration\n    source: wsrc\n    service: wsvc\n")
        .check_py(
            "wire",
            "from datadog_checks.base import AgentCheck\n\n\nclass Wire(AgentCheck):\n    def check(self, instance):\n        self.send_log({'zeta': 1, 'message': 'hi', 'alpha': [1, 2], 'timestamp': 1700000000.5})\n",
        );
    let out = dir.cairn(&["check", "wire"]).run();
    out.assert_code(0);
    let line = out
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("{\"message\""))
        .unwrap_or_else(|| panic!("{}", out.dump()));
    // Reserved fields first, in wire order, then the check's attributes in its own order.
    assert_eq!(
        line.trim(),
        r#"{"message":"hi","status":"info","timestamp":1700000000500,"hostname":"test-host","service":"wsvc","ddsource":"wsrc","ddtags":"env:dev","zeta":1,"alpha":[1,2]}"#
    );
}

#[test]
fn instances_get_distinct_check_ids_stable_across_processes_and_changed_by_config() {
    let dir = submitting_dir();
    let ids = |dir: &ConfigDir| -> Vec<String> {
        let (out, json) = dir.check_json("sub", &[]);
        out.assert_code(0);
        runs(&json)
            .iter()
            .map(|r| r["check_id"].as_str().unwrap().to_string())
            .collect()
    };
    let first = ids(&dir);
    assert!(
        Regex::new(r"^sub:[0-9a-f]{16}$")
            .unwrap()
            .is_match(&first[0]),
        "{first:?}"
    );
    assert!(
        Regex::new(r"^sub:second:[0-9a-f]{16}$")
            .unwrap()
            .is_match(&first[1]),
        "{first:?}"
    );
    assert_ne!(
        first[0][4..],
        first[1][11..],
        "distinct instances, distinct hashes"
    );

    assert_eq!(ids(&dir), first, "same config, same ids in another process");
    let out = dir.cairn(&["configcheck", "--json"]).run();
    out.assert_code(0);
    let shown: Vec<String> = out.json()["checks"][0]["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["check_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        shown, first,
        "configcheck shows the ids the checks run with"
    );

    // Changing an instance changes its id only.
    dir.conf(
        "sub",
        &TWO_INSTANCES.replace("\"solo\"", "\"solo\", \"extra:1\""),
    );
    let changed = ids(&dir);
    assert_ne!(changed[0], first[0]);
    assert_eq!(changed[1], first[1]);
    // init_config is part of every id.
    dir.conf(
        "sub",
        &format!("init_config:\n  timeout: 5\n{TWO_INSTANCES}"),
    );
    let with_init = ids(&dir);
    assert_ne!(with_init[0], first[0]);
    assert_ne!(with_init[1], first[1]);
}

#[test]
fn imports_helpers_cursor_and_cache_defaults_work_in_a_check() {
    let dir = ConfigDir::new();
    dir.conf(
        "imports",
        "instances:\n  - {}\nlogs:\n  - type: integration\n",
    )
    .check_py(
        "imports",
        r#"
from datadog_checks.checks import AgentCheck
from datadog_checks.base import AgentCheck as BaseAgentCheck, ConfigurationError, is_affirmative


class Imports(AgentCheck):
    def check(self, instance):
        facts = {
            'same_class': AgentCheck is BaseAgentCheck,
            'configuration_error_is_exception': issubclass(ConfigurationError, Exception),
            'affirmative': [is_affirmative(v) for v in ('yes', 'true', '1', True, 'no', None, 0)],
            'cursor': self.get_log_cursor(),
            'cursor_stream': self.get_log_cursor('other'),
            'cache': self.read_persistent_cache('never_written'),
        }
        data = {'message': 'facts', 'facts': facts}
        self.send_log(data)
        self.send_log({'message': 'untouched', 'data': data})
"#,
    );
    let (out, json) = dir.check_json("imports", &[]);
    out.assert_code(0);
    assert_eq!(
        runs(&json)[0]["logs"][0]["facts"],
        json!({
            "same_class": true,
            "configuration_error_is_exception": true,
            "affirmative": [true, true, true, true, false, false, false],
            "cursor": null,
            "cursor_stream": null,
            "cache": "",
        })
    );
    let logs = runs(&json)[0]["logs"].as_array().unwrap();
    assert_eq!(
        logs[1]["data"],
        json!({"message": "facts", "facts": logs[0]["facts"]}),
        "send_log works on a copy of data"
    );
}

const CURSOR_STREAMS_CHECK: &str = r#"
from datadog_checks.base import AgentCheck


class Streams(AgentCheck):
    n = 0

    def check(self, instance):
        Streams.n += 1
        seen = {
            'default': self.get_log_cursor(),
            's1': self.get_log_cursor('s1'),
            's2': self.get_log_cursor(stream='s2'),
            'cache': self.read_persistent_cache('my_key'),
        }
        self.send_log({'message': 'seen', 'seen': seen})
        n = Streams.n
        self.send_log({'message': 'a'}, cursor={'s1': n}, stream='s1')
        self.send_log({'message': 'b'}, cursor=['s2', n], stream='s2')
        self.send_log({'message': 'c'})
        self.write_persistent_cache('my_key', 'value %d' % n)
"#;

#[test]
fn cursors_are_kept_per_stream_and_the_persistent_cache_round_trips() {
    let dir = ConfigDir::new();
    dir.conf(
        "streams",
        "instances:\n  - {}\nlogs:\n  - type: integration\n",
    )
    .check_py("streams", CURSOR_STREAMS_CHECK);
    let (out, json) = dir.check_json("streams", &["--times", "2"]);
    out.assert_code(0);
    let seen = |run: &Value| run["logs"][0]["seen"].clone();
    assert_eq!(
        seen(&runs(&json)[0]),
        json!({"default": null, "s1": null, "s2": null, "cache": ""})
    );
    assert_eq!(
        seen(&runs(&json)[1]),
        json!({"default": null, "s1": {"s1": 1}, "s2": ["s2", 1], "cache": "value 1"})
    );
    assert_eq!(messages(&runs(&json)[1]), ["seen", "a", "b", "c"]);

    // Persisted, both survive into the next process.
    dir.check_json("streams", &["--persist"]).0.assert_code(0);
    let (out, json) = dir.check_json("streams", &[]);
    out.assert_code(0);
    assert_eq!(
        seen(&runs(&json)[0]),
        json!({"default": null, "s1": {"s1": 1}, "s2": ["s2", 1], "cache": "value 1"})
    );
}

#[test]
fn print_in_a_check_does_not_corrupt_json_on_stdout() {
    let dir = ConfigDir::new();
    dir.conf("printer", "instances:\n  - {}\nlogs:\n  - type: integration\n").check_py(
        "printer",
        "from datadog_checks.base import AgentCheck\n\n\nclass Printer(AgentCheck):\n    def check(self, instance):\n        print('hello from the check')\n        self.send_log({'message': 'x'})\n",
    );
    let (out, json) = dir.check_json("printer", &[]);
    out.assert_code(0);
    assert_eq!(messages(&runs(&json)[0]), ["x"]);
    assert!(
        out.stderr.contains("hello from the check"),
        "{}",
        out.dump()
    );
}

/// A check that sends the logs given as `logs` (a list of send_log data dicts) in its instance.
const SENDING_CHECK: &str = r#"
from datadog_checks.base import AgentCheck


class Sending(AgentCheck):
    def check(self, instance):
        for data in instance['logs']:
            self.send_log(data)
"#;

fn sending_dir(
    datadog_yaml: &str,
    instance_extra: &str,
    logs_entry: &str,
    logs: Value,
) -> ConfigDir {
    let dir = ConfigDir::new();
    dir.datadog_yaml(datadog_yaml)
        .conf(
            "sending",
            &format!("instances:\n  - logs: {logs}\n{instance_extra}{logs_entry}"),
        )
        .check_py("sending", SENDING_CHECK);
    dir
}

const ENTRY: &str =
    "logs:\n  - type: integration\n    source: src\n    service: svc\n    tags: [\"extra:tag\"]\n";

#[test]
fn logs_disabled_drops_logs_with_a_warning_and_still_exits_0() {
    let dir = sending_dir(
        "logs_enabled: false\nhostname: test-host\n",
        "",
        ENTRY,
        json!([{"message": "a"}, {"message": "b"}]),
    );
    let (out, json) = dir.check_json("sending", &[]);
    out.assert_code(0);
    let run = &runs(&json)[0];
    assert_eq!(run["logs"], json!([]));
    assert_eq!(
        run["warnings"],
        json!(["2 logs dropped: logs_enabled is false in datadog.yaml"])
    );
    assert_eq!(run["error"], Value::Null);

    // The environment wins over the file, both ways.
    let out = dir
        .cairn(&["check", "sending", "--json"])
        .env("DD_LOGS_ENABLED", "true")
        .run();
    out.assert_code(0);
    assert_eq!(messages(&runs(&out.json())[0]), ["a", "b"]);
}

#[test]
fn missing_integration_logs_entry_drops_logs_with_a_warning_in_check_and_configcheck() {
    let dir = sending_dir(
        support::DEFAULT_DATADOG_YAML,
        "",
        "",
        json!([{"message": "a"}]),
    );
    let (out, json) = dir.check_json("sending", &[]);
    out.assert_code(0);
    let run = &runs(&json)[0];
    assert_eq!(run["logs"], json!([]));
    assert_eq!(
        run["warnings"],
        json!(["1 logs dropped: the check's config has no logs entry with `type: integration`"])
    );

    let out = dir.cairn(&["configcheck", "--json"]).run();
    out.assert_code(0);
    assert_eq!(
        out.json()["checks"][0]["warnings"],
        json!([format!(
            "{}: no logs entry with `type: integration`: this check's send_log logs will be dropped",
            dir.join("conf.d/sending.d/conf.yaml").display()
        )])
    );
}

#[test]
fn configcheck_json_shows_ids_locations_and_redacts_secrets() {
    let dir = ConfigDir::new();
    dir.conf(
        "secretive",
        "init_config:\n  password: initpw\ninstances:\n  - host: db\n    password: hunter2\n    token: tok123\n    min_collection_interval: 30\nlogs:\n  - type: integration\n    source: s\n    service: v\n    tags: [\"a:b\"]\n    log_processing_rules:\n      - {type: mask_sequences, name: mask_it, pattern: x, replace_placeholder: y}\n",
    )
    .check_py("secretive", SENDING_CHECK);
    let out = dir.cairn(&["configcheck", "--json"]).run();
    out.assert_code(0);
    for secret in ["initpw", "hunter2", "tok123"] {
        assert!(
            !out.stdout.contains(secret) && !out.stderr.contains(secret),
            "{secret} leaked\n{}",
            out.dump()
        );
    }
    let json = out.json();
    let check = &json["checks"][0];
    assert_eq!(check["name"], "secretive");
    assert_eq!(check["init_config"], json!({"password": "********"}));
    let instance = &check["instances"][0];
    assert!(
        Regex::new(r"^secretive:[0-9a-f]{16}$")
            .unwrap()
            .is_match(instance["check_id"].as_str().unwrap()),
        "{instance}"
    );
    assert_eq!(instance["source"], "conf.d/secretive.d/conf.yaml:4:5");
    assert_eq!(instance["min_collection_interval"], 30.0);
    assert_eq!(
        instance["config"],
        json!({"host": "db", "password": "********", "token": "********", "min_collection_interval": 30})
    );
    assert_eq!(
        check["logs"],
        json!([{
            "type": "integration", "source": "s", "service": "v", "tags": ["a:b"],
            "log_processing_rules": ["mask_it"], "location": "conf.d/secretive.d/conf.yaml:9:5",
        }])
    );
    assert_eq!(check["warnings"], json!([]));
    assert_eq!(json["errors"], json!([]));

    // The text form redacts too.
    let out = dir.cairn(&["configcheck"]).run();
    out.assert_code(0);
    for secret in ["initpw", "hunter2", "tok123"] {
        assert!(
            !out.stdout.contains(secret),
            "{secret} leaked\n{}",
            out.dump()
        );
    }
    assert!(
        out.stdout.contains(instance["check_id"].as_str().unwrap()),
        "{}",
        out.dump()
    );
}

#[test]
fn api_key_never_appears_in_any_output() {
    let file_key = "filekey0123456789abcdef";
    let env_key = "envkey0123456789abcdef";
    let inst_key = "instkey0123456789abcdef";
    let dir = sending_dir(
        &format!("logs_enabled: true\nhostname: test-host\napi_key: {file_key}\n"),
        &format!("    api_key: {inst_key}\n"),
        ENTRY,
        json!([{"message": "m"}]),
    );
    // The check itself asks the agent for the key (it must get None).
    dir.check_py(
        "sending",
        &format!("{SENDING_CHECK}\n        import datadog_agent\n        self.send_log({{'message': repr(datadog_agent.get_config('api_key'))}})\n"),
    );
    let invocations: [&[&str]; 5] = [
        &["configcheck"],
        &["configcheck", "--json"],
        &["check", "sending"],
        &["check", "sending", "--json"],
        &["check", "sending", "--format", "summary"],
    ];
    for args in invocations {
        for env in [false, true] {
            let mut cmd = dir.cairn(args);
            if env {
                cmd = cmd.env("DD_API_KEY", env_key);
            }
            let out = cmd.run();
            out.assert_code(0);
            for key in [file_key, env_key, inst_key] {
                assert!(
                    !out.stdout.contains(key) && !out.stderr.contains(key),
                    "api key {key} printed\n{}",
                    out.dump()
                );
            }
        }
    }
    // Trace-level agent logs, of `check` and of a running agent, do not carry it either.
    let out = dir
        .cairn(&["check", "sending", "--json"])
        .env("DD_API_KEY", env_key)
        .env("CAIRN_LOG", "trace")
        .run();
    out.assert_code(0);
    assert_eq!(
        messages(&runs(&out.json())[0]),
        ["m", "None"],
        "a check cannot read the key"
    );
    let mut agent = dir
        .cairn(&["run"])
        .env("DD_API_KEY", env_key)
        .env("CAIRN_LOG", "trace")
        .spawn();
    agent.wait_for_stderr("cairn started", std::time::Duration::from_secs(30));
    let out = agent.sigterm(std::time::Duration::from_secs(15));
    out.assert_code(0);
    for key in [file_key, env_key, inst_key] {
        assert!(
            !out.stdout.contains(key) && !out.stderr.contains(key),
            "api key {key} printed\n{}",
            out.dump()
        );
    }
}

#[test]
fn config_files_are_found_in_both_layouts_and_defaults_only_stand_in() {
    let dir = ConfigDir::new();
    let conf =
        |which: &str| format!("instances:\n  - {{which: {which}}}\nlogs:\n  - type: integration\n");
    let check = "from datadog_checks.base import AgentCheck\n\n\nclass Which(AgentCheck):\n    def check(self, instance):\n        self.send_log({'message': instance['which']})\n";
    dir.write("conf.d/only_default.d/conf.yaml.default", &conf("default"))
        .write("conf.d/both.d/conf.yaml.default", &conf("default"))
        .write("conf.d/both.d/conf.yaml", &conf("real"))
        .write("conf.d/both.d/auto_conf.yaml", &conf("auto"))
        .write("conf.d/flat.yaml", &conf("flat"))
        .check_py("only_default", check)
        .check_py("both", check)
        .check_py("flat", check);
    for (name, expected) in [
        ("only_default", vec!["default"]),
        ("both", vec!["real"]),
        ("flat", vec!["flat"]),
    ] {
        let (out, json) = dir.check_json(name, &[]);
        out.assert_code(0);
        let got: Vec<String> = runs(&json).iter().flat_map(messages).collect();
        assert_eq!(got, expected, "{name}\n{}", out.dump());
    }
}

#[test]
fn dd_hostname_overrides_the_hostname_of_shipped_logs_and_metrics() {
    let dir = sending_dir(
        support::DEFAULT_DATADOG_YAML,
        "",
        ENTRY,
        json!([{"message": "m"}]),
    );
    let out = dir
        .cairn(&["check", "sending", "--json"])
        .env("DD_HOSTNAME", "env-host")
        .run();
    out.assert_code(0);
    assert_eq!(runs(&out.json())[0]["logs"][0]["hostname"], "env-host");
    let (_, json) = dir.check_json("sending", &[]);
    assert_eq!(
        runs(&json)[0]["logs"][0]["hostname"],
        HOSTNAME,
        "without the variable, datadog.yaml's hostname"
    );
}

#[test]
fn logs_get_defaults_and_a_log_may_override_them() {
    let before = now_ms();
    let dir = sending_dir(
        support::DEFAULT_DATADOG_YAML,
        "    tags: [\"team:b\", \"env:dev\", \"env:dev\", \"solo\", \"a:1\"]\n",
        ENTRY,
        json!([
            {"message": "defaults"},
            {"message": "own ddtags", "ddtags": "own:1, extra:tag,own:2"},
            {"message": "own everything", "hostname": "h2", "service": "s2", "source": "src2", "status": "error"},
            {"message": "ddsource key", "ddsource": "src3"},
            {"message": "float seconds", "timestamp": 1700000000.1234},
            {"message": "int seconds", "timestamp": 1700000000},
            {"message": "null timestamp", "timestamp": null},
            {"message": "attributes", "nested": {"a": [1, 2.5, null, true]}, "n": -7},
        ]),
    );
    let (out, json) = dir.check_json("sending", &[]);
    let after = now_ms();
    out.assert_code(0);
    let logs = runs(&json)[0]["logs"].as_array().unwrap().clone();
    assert_eq!(logs.len(), 8, "{}", out.dump());
    for i in [0, 1, 2, 3, 6, 7] {
        assert_ms_between(&logs[i]["timestamp"], before - 1_000, after + 1_000);
    }
    let base = |message: &str| json!({"message": message, "status": "info", "hostname": HOSTNAME, "service": "svc", "ddsource": "src", "ddtags": "a:1,env:dev,team:b,extra:tag"});
    let stripped: Vec<Value> = logs.iter().map(|l| without(l, &["timestamp"])).collect();
    assert_eq!(
        stripped[0],
        base("defaults"),
        "instance key:value tags deduped and sorted, then the entry's tags"
    );
    let mut own_tags = base("own ddtags");
    own_tags["ddtags"] = json!("own:1,extra:tag,own:2");
    assert_eq!(
        stripped[1], own_tags,
        "a log's ddtags replace the instance tags and merge with the entry's"
    );
    assert_eq!(
        stripped[2],
        json!({"message": "own everything", "status": "error", "hostname": "h2", "service": "s2", "ddsource": "src2", "ddtags": "a:1,env:dev,team:b,extra:tag"})
    );
    assert_eq!(stripped[3]["ddsource"], "src3");
    assert_eq!(logs[4]["timestamp"], 1700000000123i64);
    assert_eq!(logs[5]["timestamp"], 1700000000000i64);
    assert_eq!(stripped[6], base("null timestamp"));
    assert_eq!(logs[7]["nested"], json!({"a": [1, 2.5, null, true]}));
    assert_eq!(logs[7]["n"], json!(-7));
}

#[test]
fn long_messages_are_cut_at_max_message_size_bytes_and_marked_truncated() {
    let dir = sending_dir(
        "logs_enabled: true\nhostname: test-host\nlogs_config:\n  max_message_size_bytes: 10\n",
        "",
        ENTRY,
        json!([{"message": "0123456789abcdef"}, {"message": "0123456789"}, {"message": "ééééééé"}]),
    );
    let (out, json) = dir.check_json("sending", &[]);
    out.assert_code(0);
    // 'é' is 2 bytes: the cut never splits a character.
    assert_eq!(
        messages(&runs(&json)[0]),
        [
            "0123456789...TRUNCATED...",
            "0123456789",
            "ééééé...TRUNCATED..."
        ]
    );

    // The nested key can be overridden from the environment too.
    let out = dir
        .cairn(&["check", "sending", "--json"])
        .env("DD_LOGS_CONFIG_MAX_MESSAGE_SIZE_BYTES", "4")
        .run();
    out.assert_code(0);
    assert_eq!(
        messages(&runs(&out.json())[0]),
        [
            "0123...TRUNCATED...",
            "0123...TRUNCATED...",
            "éé...TRUNCATED..."
        ]
    );
}

#[test]
fn exclude_and_include_at_match_drop_logs_and_mask_sequences_rewrites() {
    let entry = "logs:\n  - type: integration\n    source: src\n    log_processing_rules:\n      - {type: exclude_at_match, name: no_debug, pattern: DEBUG}\n      - {type: include_at_match, name: only_keep, pattern: \"^keep\"}\n      - {type: mask_sequences, name: cards, pattern: \"\\\\d{4}\", replace_placeholder: \"####\"}\n";
    let dir = sending_dir(
        "logs_enabled: true\nhostname: test-host\nlogs_config:\n  processing_rules:\n    - {type: exclude_at_match, name: global_drop, pattern: secret}\n",
        "",
        entry,
        json!([
            {"message": "keep 1234 me"},
            {"message": "keep DEBUG noise"},
            {"message": "drop me"},
            {"message": "keep secret"},
            {"message": "keep too"},
        ]),
    );
    let (out, json) = dir.check_json("sending", &[]);
    out.assert_code(0);
    let run = &runs(&json)[0];
    assert_eq!(messages(run), ["keep #### me", "keep too"]);
    assert_eq!(
        run["warnings"],
        json!([]),
        "excluded logs are not a problem to warn about"
    );
}

// ---- known bugs: each asserts the correct behaviour --------------------------------------------

#[test]
fn a_logs_own_ddtags_are_normalized_whether_or_not_the_entry_has_tags() {
    let logs = json!([{"message": "m", "ddtags": "a:1, a:1,,b:2"}]);
    let no_entry_tags = sending_dir(
        support::DEFAULT_DATADOG_YAML,
        "",
        "logs:\n  - type: integration\n",
        logs.clone(),
    );
    let (out, json) = no_entry_tags.check_json("sending", &[]);
    out.assert_code(0);
    assert_eq!(runs(&json)[0]["logs"][0]["ddtags"], "a:1,b:2");
    let with_entry_tags = sending_dir(support::DEFAULT_DATADOG_YAML, "", ENTRY, logs);
    let (out, json) = with_entry_tags.check_json("sending", &[]);
    out.assert_code(0);
    assert_eq!(runs(&json)[0]["logs"][0]["ddtags"], "a:1,b:2,extra:tag");
}

#[test]
fn configcheck_redacts_every_password_like_value() {
    let dir = ConfigDir::new();
    dir.conf(
        "pw",
        "instances:\n  - pwd: leak-pwd\n    mysql_pwd: leak-mysql-pwd\n    passwords: [leak-list]\n    url: \"http://user:leak-url@db:5432/x\"\n    password: ok-1\n    auth_token: ok-2\n",
    )
    .check_py("pw", SENDING_CHECK);
    for args in [&["configcheck", "--json"][..], &["configcheck"]] {
        let out = dir.cairn(args).run();
        out.assert_code(0);
        for secret in [
            "ok-1",
            "ok-2",
            "leak-pwd",
            "leak-mysql-pwd",
            "leak-list",
            "leak-url",
        ] {
            assert!(
                !out.stdout.contains(secret),
                "{secret} printed\n{}",
                out.dump()
            );
        }
    }
}

#[test]
fn identical_instances_never_run_twice_under_one_check_id() {
    let dir = ConfigDir::new();
    dir.conf("twins", "instances:\n  - {host: a}\n  - {host: a}\nlogs:\n  - type: integration\n").check_py(
        "twins",
        "from datadog_checks.base import AgentCheck\n\n\nclass Twins(AgentCheck):\n    def check(self, instance):\n        self.send_log({'message': 'once'}, cursor={'c': 1})\n",
    );
    let (_, json) = dir.check_json("twins", &[]);
    let ids: Vec<&str> = runs(&json)
        .iter()
        .map(|r| r["check_id"].as_str().unwrap())
        .collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(
        ids.len(),
        unique.len(),
        "a check id must identify one instance: {ids:?}"
    );
}

/// The Datadog Agent's short flags: `-t/--check-times`, `-r/--check-rate`, `-d/--delay`.
#[test]
fn agent_check_flags_are_understood() {
    let dir = submitting_dir();
    for args in [
        &["check", "sub", "--format", "summary", "-t", "3"][..],
        &["check", "sub", "--format", "summary", "--check-times", "3"][..],
    ] {
        let out = dir.cairn(args).run();
        out.assert_code(0);
        assert_eq!(
            out.stdout.lines().count(),
            6,
            "2 instances x 3 runs\n{}",
            out.dump()
        );
    }
    let started = std::time::Instant::now();
    let out = dir
        .cairn(&[
            "check",
            "sub",
            "--format",
            "summary",
            "-r",
            "-d",
            "300",
            "--aggregated",
        ])
        .run();
    out.assert_code(0);
    assert_eq!(
        out.stdout.lines().filter(|l| l.starts_with("sub:")).count(),
        4,
        "-r runs twice\n{}",
        out.dump()
    );
    // Two runs a second apart, then the delay.
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(1300),
        "{:?}",
        started.elapsed()
    );
    assert!(out.stdout.contains("aggregated series"), "{}", out.dump());
}

const METADATA_CHECK: &str = r#"
from datadog_checks.base import AgentCheck


class MetaCheck(AgentCheck):
    def check(self, instance):
        self.collect()
        self.broken()
        self.set_metadata('flavor', 'vanilla')

    @AgentCheck.metadata_entrypoint
    def collect(self):
        self.set_metadata('version', instance_version(self.instance))

    @AgentCheck.metadata_entrypoint
    def broken(self):
        raise RuntimeError('no version endpoint')


def instance_version(instance):
    return instance['version']
"#;

/// Metadata is collected by default, as in the Datadog Agent (`enable_metadata_collection`),
/// `version` split the way the Datadog library splits it, and shown by `cairn check`; turned
/// off, nothing is collected; a failing metadata method does not fail the run.
#[test]
fn metadata_is_collected_by_default_and_shown() {
    let dir = ConfigDir::new();
    dir.conf("meta", "instances:\n  - version: 2.14.1-rc.1+b7\n")
        .check_py("meta", METADATA_CHECK);
    let (out, json) = dir.check_json("meta", &[]);
    out.assert_code(0);
    assert_eq!(
        runs(&json)[0]["metadata"],
        serde_json::json!({
            "version.major": "2", "version.minor": "14", "version.patch": "1",
            "version.release": "rc.1", "version.build": "b7",
            "version.raw": "2.14.1-rc.1+b7", "version.scheme": "semver", "flavor": "vanilla"
        }),
        "{}",
        out.dump()
    );
    let out = dir.cairn(&["check", "meta"]).run();
    out.assert_code(0);
    assert!(out.stdout.contains("metadata (8):\n"), "{}", out.dump());
    assert!(
        out.stdout.contains("  version.raw: 2.14.1-rc.1+b7\n"),
        "{}",
        out.dump()
    );

    dir.datadog_yaml("enable_metadata_collection: false\n");
    let (out, json) = dir.check_json("meta", &[]);
    out.assert_code(0);
    assert_eq!(
        runs(&json)[0]["metadata"],
        serde_json::json!({}),
        "{}",
        out.dump()
    );
}

/// `--table` prints each run's metrics as aligned columns, as `agent check --table`.
#[test]
fn table_prints_metrics_as_aligned_columns() {
    let dir = submitting_dir();
    let out = dir.cairn(&["check", "sub", "--table"]).run();
    out.assert_code(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    let head = lines
        .iter()
        .position(|l| l.trim_start().starts_with("NAME"))
        .unwrap_or_else(|| panic!("no table header\n{}", out.dump()));
    let header = lines[head];
    let col = |name: &str| header.find(name).unwrap();
    let (ty, value, tags) = (col("TYPE"), col("VALUE"), col("TAGS"));
    let gauge = lines[head + 1..]
        .iter()
        .find(|l| l.trim_start().starts_with("ns.g "))
        .unwrap_or_else(|| panic!("no ns.g row\n{}", out.dump()));
    // Every column starts where its header does.
    assert_eq!(&gauge[ty..ty + 5], "gauge", "{gauge}\n{header}");
    assert_eq!(&gauge[value..value + 3], "1.5", "{gauge}\n{header}");
    assert!(gauge[tags..].starts_with("a:b "), "{gauge}\n{header}");
    assert!(
        !out.stdout.contains(r#"{"name":"ns.g""#),
        "no JSON lines for metrics\n{}",
        out.dump()
    );
}

/// `-l/--log-level` sets the level of the check's own logger and of the command's log.
#[test]
fn log_level_flag_reaches_the_check_logger() {
    let dir = ConfigDir::new();
    dir.conf("chatty", "instances:\n  - {}\n").check_py(
        "chatty",
        "from datadog_checks.base import AgentCheck\n\n\nclass Chatty(AgentCheck):\n    def check(self, instance):\n        self.log.debug('debug detail %d', 42)\n        self.log.info('info line')\n",
    );
    let quiet = dir.cairn(&["check", "chatty", "--format", "summary"]).run();
    quiet.assert_code(0);
    assert!(!quiet.stderr.contains("debug detail"), "{}", quiet.dump());
    assert!(quiet.stderr.contains("info line"), "{}", quiet.dump());
    let loud = dir
        .cairn(&["check", "chatty", "-l", "debug", "--format", "summary"])
        .run();
    loud.assert_code(0);
    assert!(loud.stderr.contains("debug detail 42"), "{}", loud.dump());
    let errors_only = dir
        .cairn(&[
            "check",
            "chatty",
            "--log-level",
            "error",
            "--format",
            "summary",
        ])
        .run();
    errors_only.assert_code(0);
    assert!(
        !errors_only.stderr.contains("info line"),
        "{}",
        errors_only.dump()
    );
    let bad = dir.cairn(&["check", "chatty", "-l", "loud"]).run();
    assert!(
        bad.stderr.contains("invalid value 'loud'"),
        "{}",
        bad.dump()
    );
}

/// With no agent on the run_path there is no warning, also when a `kill -9` left its pid file.
#[test]
fn a_stale_pid_file_is_not_a_running_agent() {
    let dir = submitting_dir();
    let out = dir.cairn(&["check", "sub", "--format", "summary"]).run();
    assert!(
        !out.stderr.contains("an agent is running"),
        "{}",
        out.dump()
    );
    // A pid no process has (above the kernel's pid_max limit of 4,194,304).
    dir.write("run/cairn.pid", "4194305\n");
    let out = dir.cairn(&["check", "sub", "--format", "summary"]).run();
    out.assert_code(0);
    assert!(
        !out.stderr.contains("an agent is running"),
        "{}",
        out.dump()
    );
}

#[test]
fn breakpoint_stops_in_pdb_at_the_line_and_the_run_goes_on() {
    use std::io::Write;
    let dir = ConfigDir::new();
    dir.check_py(
        "dbg",
        "from datadog_checks.base import AgentCheck\n\nclass Dbg(AgentCheck):\n    def check(self, instance):\n        x = 41 + 1\n        y = x * 2\n        self.gauge('dbg.y', y)\n",
    )
    .conf("dbg", "instances:\n  - {}\n");
    let mut child = std::process::Command::new(support::CAIRN)
        .args(["-c"])
        .arg(dir.path())
        .args(["check", "dbg", "--json", "-b", "6"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // What a person types at the prompt: print x, continue.
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"p x * 1000\nc\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("dbg.py(6)check()"),
        "pdb did not stop at line 6: {stderr}"
    );
    assert!(stderr.contains("42000"), "{stderr}");
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs(&json)[0]["metrics"][0]["value"], 84.0);

    // A line that holds no code is refused by name, not ignored.
    let out = dir.cairn(&["check", "dbg", "-b", "600"]).run();
    out.assert_code(1);
    assert!(
        out.stdout.contains("--breakpoint 600") || out.stderr.contains("--breakpoint 600"),
        "{}",
        out.dump()
    );
}
