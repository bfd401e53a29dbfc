//! Faults at the hand-off: records the buffer's reader could not read back are refused in the
//! check, and what a check cannot encode is named. Real `cairn` binary, real Python checks.
//!
//! - A log whose wire JSON exceeds `batch_max_content_size` (it could never be sent), and a
//!   cursor or persistent-cache entry over 1 MiB, raise a `ValueError` naming the size and the
//!   limit; nothing of that call is recorded (a refused cursor takes its log with it), and the
//!   rest of the run is kept.
//! - A key holding a lone surrogate raises a `ValueError` naming the key; so does a cursor or
//!   persistent-cache value. A log's str value is sent with U+FFFD in its place (the intake's
//!   rule, docs/intake.md).
//! - Under `cairn run`, a check that tries all of that leaves the buffer readable: after a
//!   restart every log of another check is still there and delivered, nothing counted corrupt.

mod pipeline_common;
mod support;

use std::time::Duration;

use regex::Regex;
use serde_json::Value;
use support::{messages, runs, ConfigDir};

/// Over the buffer reader's 64 MiB record limit, as in the issue.
const BIG: usize = 70_000_000;

const CONF: &str = "instances:\n  - {}\nlogs:\n  - type: integration\n    source: fault\n";

/// Runs the call and returns `<ExceptionType>: <message>`, or `accepted`.
const PRELUDE: &str = r#"
import json

import datadog_agent
from datadog_checks.base import AgentCheck


def outcome(call):
    try:
        call()
    except Exception as e:
        return '%s: %s' % (type(e).__name__, e)
    return 'accepted'
"#;

/// On its first run, a good log with a cursor, then each oversized call (reporting how it
/// went as a small log), then a last log. Every run first logs the cursor and cache it finds.
const FAT_CHECK: &str = r#"
class FatCheck(AgentCheck):
    runs = 0

    def check(self, instance):
        FatCheck.runs += 1
        n = FatCheck.runs
        self.send_log(
            {'message': 'run %d saw cursor %r cache %r' % (n, self.get_log_cursor(), self.read_persistent_cache('k'))},
            cursor={'run': n},
        )
        if n == 1:
            self.write_persistent_cache('k', 'small')
            big = 'x' * BIG
            for name, call in [
                ('attribute', lambda: self.send_log({'message': 'fat attribute', 'blob': big}, cursor={'run': 100})),
                ('cursor', lambda: self.send_log({'message': 'fat cursor'}, cursor={'blob': big})),
                ('cache', lambda: self.write_persistent_cache('k', big)),
                ('host cache', lambda: datadog_agent.write_persistent_cache(self.check_id + '_k', big)),
                ('host log', lambda: datadog_agent.send_log(json.dumps({'message': 'fat host log', 'blob': big}), self.check_id)),
            ]:
                self.send_log({'message': '%s -> %s' % (name, outcome(call))})
        self.send_log({'message': 'run %d end' % n})
"#;

fn fat_check_py() -> String {
    format!("{PRELUDE}\nBIG = {BIG}\n{FAT_CHECK}")
}

#[track_caller]
fn assert_matches(pattern: &str, text: &str) {
    let re = Regex::new(&format!("^(?:{pattern})$")).expect("a valid test regex");
    assert!(re.is_match(text), "expected /{pattern}/\n     got {text}");
}

/// The number in `text` captured by the first group of `pattern`.
fn captured(pattern: &str, text: &str) -> usize {
    Regex::new(pattern)
        .expect("a valid test regex")
        .captures(text)
        .unwrap_or_else(|| panic!("/{pattern}/ in {text}"))[1]
        .parse()
        .expect("a number")
}

#[test]
fn oversized_logs_cursors_and_cache_values_raise_value_error_and_the_rest_of_the_run_is_kept() {
    let dir = ConfigDir::new();
    dir.conf("fat", CONF).check_py("fat", &fat_check_py());
    let (out, json) = dir.check_json("fat", &["--times", "2"]);
    let runs = runs(&json);
    assert_eq!(runs.len(), 2, "{}", out.dump());
    for run in runs {
        assert_eq!(run["error"], Value::Null, "{}", out.dump());
    }
    let first = messages(&runs[0]);
    assert_eq!(first.len(), 7, "{first:#?}");
    assert_eq!(first[0], "run 1 saw cursor None cache ''");
    let log_limit =
        r"over the 5000000-byte limit of one payload \(logs_config\.batch_max_content_size\)";
    assert_matches(
        &format!(r"attribute -> ValueError: send_log: log is (\d+) bytes as JSON, {log_limit}"),
        &first[1],
    );
    // The blob and its JSON framing: the size is the log's, not a guess.
    let size = captured(r"log is (\d+) bytes", &first[1]);
    assert!((BIG..BIG + 200).contains(&size), "{size}");
    assert_matches(
        r"cursor -> ValueError: send_log: cursor of stream 'default' is (\d+) bytes as JSON with its key 'log_cursor_default', over the 1048576-byte limit of a persistent-cache entry; the log was not recorded",
        &first[2],
    );
    assert_eq!(
        captured(r"is (\d+) bytes", &first[2]),
        "log_cursor_default".len() + BIG + r#"{"blob":""}"#.len()
    );
    assert_eq!(
        first[3],
        format!("cache -> ValueError: write_persistent_cache: key 'k' with its value is {} bytes, over the 1048576-byte limit of a persistent-cache entry", BIG + 1)
    );
    assert_eq!(
        first[4],
        format!("host cache -> ValueError: write_persistent_cache: key 'k' with its value is {} bytes, over the 1048576-byte limit of a persistent-cache entry", BIG + 1)
    );
    assert_matches(
        &format!(r"host log -> ValueError: send_log: log is \d+ bytes as JSON, {log_limit}"),
        &first[5],
    );
    assert_eq!(first[6], "run 1 end");

    // Nothing of the refused calls was kept: not the logs, not the attribute log's cursor
    // ({'run': 100}), not the big cursor, not the big cache values.
    assert_eq!(
        messages(&runs[1]),
        ["run 2 saw cursor {'run': 1} cache 'small'", "run 2 end"],
        "{}",
        out.dump()
    );
}

/// Each call and the messages it leaves: its exception, or (one per line) the log it recorded
/// and `accepted`. `'\udcff'` is what `surrogateescape` decoding leaves for a byte 0xff.
const SURROGATE_CALLS: &[(&str, &str)] = &[
    (
        r"self.send_log({'message': 'x', '\udcff': 1})",
        r"ValueError: send_log: key '\udcff' at data cannot be encoded as UTF-8 (it holds a lone surrogate)",
    ),
    (
        r"self.send_log({'message': 'x', 'a': [{'b\udcff': 1}]})",
        r"ValueError: send_log: key 'b\udcff' at data['a'][0] cannot be encoded as UTF-8 (it holds a lone surrogate)",
    ),
    (
        r"self.send_log({'message': 'x', 'a': {'b': 'va\udcff'}})",
        "x\naccepted",
    ),
    (
        r"self.send_log({'message': 'm\udcff'})",
        "m\u{fffd}\naccepted",
    ),
    (
        r"self.send_log({'message': 'x', 'service': '\udcff'})",
        "x\naccepted",
    ),
    (
        r"self.send_log({'message': 'x'}, cursor={'pos': 1, '\udcff': 2})",
        r"ValueError: send_log: key '\udcff' at cursor cannot be encoded as UTF-8 (it holds a lone surrogate); the log was not recorded",
    ),
    (
        r"self.write_persistent_cache('k\udcff', 'v')",
        r"ValueError: write_persistent_cache: key 'k\udcff' cannot be encoded as UTF-8 (it holds a lone surrogate)",
    ),
    (
        r"self.write_persistent_cache('k', 'v\udcff')",
        r"ValueError: write_persistent_cache: the value of key 'k' is a str that cannot be encoded as UTF-8 (lone surrogate '\udcff' at index 1)",
    ),
    (
        r"datadog_agent.send_log(json.dumps({'message': 'x', 'a': {'\udcff': 1}}), self.check_id)",
        // The library's JSON line is normalised as the intake would store it: the key's lone
        // surrogate becomes U+FFFD (cairn_wire::normalize).
        "x\naccepted",
    ),
    (
        r"datadog_agent.write_persistent_cache(self.check_id + '_k', '\udcff')",
        r"ValueError: write_persistent_cache: the value of key '{check_id}_k' is a str that cannot be encoded as UTF-8 (lone surrogate '\udcff' at index 0)",
    ),
];

#[test]
fn a_key_with_a_lone_surrogate_raises_value_error_naming_the_key_and_a_log_value_is_replaced() {
    let calls: String = SURROGATE_CALLS
        .iter()
        .map(|(call, _)| format!("            lambda: {call},\n"))
        .collect();
    let py = format!(
        r#"{PRELUDE}

class SurrogateCheck(AgentCheck):
    runs = 0

    def check(self, instance):
        SurrogateCheck.runs += 1
        if SurrogateCheck.runs == 1:
            self.send_log({{'message': 'before'}}, cursor={{'pos': 0}})
            for call in [
{calls}            ]:
                self.send_log({{'message': outcome(call)}})
        else:
            self.send_log({{'message': 'run 2 saw cursor %r cache %r' % (self.get_log_cursor(), self.read_persistent_cache('k'))}})
"#
    );
    let dir = ConfigDir::new();
    dir.conf("surrogate", CONF).check_py("surrogate", &py);
    let (out, json) = dir.check_json("surrogate", &["--times", "2"]);
    let runs = runs(&json);
    assert_eq!(runs.len(), 2, "{}", out.dump());
    let check_id = runs[0]["check_id"].as_str().expect("a check id");
    let got = messages(&runs[0]);
    let want: Vec<String> = std::iter::once("before".to_string())
        .chain(
            SURROGATE_CALLS
                .iter()
                .flat_map(|(_, m)| m.split('\n'))
                .map(|m| m.replace("{check_id}", check_id)),
        )
        .collect();
    assert_eq!(got, want, "{}", out.dump());
    assert_eq!(
        messages(&runs[1]),
        ["run 2 saw cursor {'pos': 0} cache ''"],
        "the refused calls recorded nothing"
    );
}

/// Sends the oversized records of [`FAT_CHECK`] on its first run under `cairn run`, then one
/// small log per run up to run 5; writes `fat.done` once the first run is over; does nothing
/// once `STOP` exists.
const FAT_RUN_CHECK: &str = r#"
import os


class FatRunCheck(AgentCheck):
    runs = 0

    def check(self, instance):
        if os.path.exists(os.path.join(os.path.dirname(__file__), 'STOP')):
            return
        FatRunCheck.runs += 1
        n = FatRunCheck.runs
        if n == 1:
            big = 'x' * BIG
            for name, call in [
                ('attribute', lambda: self.send_log({'message': 'fat attribute', 'blob': big}, cursor={'run': 100})),
                ('cursor', lambda: self.send_log({'message': 'fat cursor'}, cursor={'blob': big})),
                ('cache', lambda: self.write_persistent_cache('k', big)),
                ('host cache', lambda: datadog_agent.write_persistent_cache(self.check_id + '_k', big)),
                ('host log', lambda: datadog_agent.send_log(json.dumps({'message': 'fat host log', 'blob': big}), self.check_id)),
            ]:
                self.send_log({'message': '%s -> %s' % (name, outcome(call)), 'fat': True})
            open(os.path.join(os.path.dirname(__file__), 'fat.done'), 'w').close()
        elif n <= 5:
            self.send_log({'message': 'fat run %d' % n, 'fat': True}, cursor={'run': n})
"#;

/// Numbered logs with a cursor `{'n': next}`, 10 per run up to `TOTAL`, sent only once
/// `fat.done` exists (so they sit behind the oversized records in the buffer) and never once
/// `STOP` exists (so a number lost in the buffer is not simply sent again after the restart).
const STEADY_CHECK: &str = r#"
import os

from datadog_checks.base import AgentCheck


class SteadyCheck(AgentCheck):
    def check(self, instance):
        here = os.path.dirname(__file__)
        if not os.path.exists(os.path.join(here, 'fat.done')) or os.path.exists(os.path.join(here, 'STOP')):
            return
        cur = self.get_log_cursor()
        start = cur['n'] if cur else 0
        for i in range(start, min(start + 10, TOTAL)):
            self.send_log({'message': 'number %d' % i, 'num': i}, cursor={'n': i + 1})
"#;

#[test]
fn refused_records_leave_the_buffer_readable_across_a_restart_and_other_checks_lose_nothing() {
    use pipeline_common::{Intake, Mode, API_KEY};
    const TOTAL: u64 = 300;

    let intake = Intake::start();
    // Nothing is delivered in the first life: every record stays in the buffer for the
    // restart to read back.
    intake.set_mode(Mode::Status(503));
    let dir = ConfigDir::new();
    dir.datadog_yaml(&format!(
        "logs_enabled: true\napi_key: {API_KEY}\nhostname: test-host\nlogs_config:\n  logs_dd_url: {}\n  batch_wait: 0.1\n  sender_backoff_base: 0.05\n  sender_backoff_max: 0.3\n  http_timeout: 2\n",
        intake.url()
    ))
    .conf("fat", "instances:\n  - min_collection_interval: 0.2\nlogs:\n  - type: integration\n    source: fat\n")
    .check_py("fat", &format!("{PRELUDE}\nBIG = {BIG}\n{FAT_RUN_CHECK}"))
    .conf(
        "steady",
        "instances:\n  - min_collection_interval: 0.1\nlogs:\n  - type: integration\n    source: steady\n",
    )
    .check_py("steady", &format!("TOTAL = {TOTAL}\n{STEADY_CHECK}"));
    let counters = dir.join("counters.json");
    let counters_arg = counters.display().to_string();
    let run_args = [
        "run",
        "--grace-secs",
        "5",
        "--counters-file",
        counters_arg.as_str(),
    ];
    let read_counters = || -> Value {
        std::fs::read(&counters)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null)
    };

    // First life: the fat check tries its oversized records while the other check's logs pile
    // up behind them in the buffer.
    let mut agent = dir
        .cairn(&run_args)
        .env("DD_LOGS_CONFIG_LOGS_DD_URL", &intake.url())
        .spawn();
    agent.wait_for_stderr("cairn started", Duration::from_secs(30));
    let staged = support::wait_for(Duration::from_secs(30), || {
        dir.join("checks.d/fat.done").exists()
            && read_counters()["logs_processed"].as_u64().unwrap_or(0) >= TOTAL + 5 + 4
    });
    assert!(
        staged,
        "the checks did not stage their logs: {}\n{}",
        read_counters(),
        agent.stderr_so_far()
    );
    let first = agent.sigterm(Duration::from_secs(15));
    first.assert_code(0);

    // Second life: the intake accepts and the checks send nothing new: everything buffered
    // must arrive.
    dir.write("checks.d/STOP", "");
    intake.set_mode(Mode::Accept);
    let mut agent = dir
        .cairn(&run_args)
        .env("DD_LOGS_CONFIG_LOGS_DD_URL", &intake.url())
        .spawn();
    agent.wait_for_stderr("cairn started", Duration::from_secs(30));
    let all_there = support::wait_for(Duration::from_secs(30), || {
        intake.delivered_numbers().len() as u64 == TOTAL
            && intake
                .delivered_logs()
                .iter()
                .filter(|l| l["fat"] == true)
                .count()
                >= 9
    });
    let second = agent.sigterm(Duration::from_secs(15));
    let numbers = intake.delivered_numbers();
    assert!(
        all_there,
        "{} of {TOTAL} numbers delivered after the restart (missing: {:?})\nfirst life:\n{}\nsecond life:\n{}",
        numbers.len(),
        (0..TOTAL)
            .filter(|n| !numbers.contains_key(n))
            .collect::<Vec<_>>(),
        first.dump(),
        second.dump()
    );
    assert_eq!(
        numbers.keys().copied().collect::<Vec<_>>(),
        (0..TOTAL).collect::<Vec<_>>()
    );

    let fat: Vec<String> = intake
        .delivered_logs()
        .iter()
        .filter(|l| l["fat"] == true)
        .map(|l| l["message"].as_str().unwrap_or_default().to_string())
        .collect();
    for (name, limit) in [
        ("attribute", "5000000-byte limit of one payload"),
        ("cursor", "1048576-byte limit of a persistent-cache entry"),
        ("cache", "1048576-byte limit of a persistent-cache entry"),
        (
            "host cache",
            "1048576-byte limit of a persistent-cache entry",
        ),
        ("host log", "5000000-byte limit of one payload"),
    ] {
        let prefix = format!("{name} -> ValueError: ");
        assert!(
            fat.iter()
                .any(|m| m.starts_with(&prefix) && m.contains(limit)),
            "no `{prefix}... {limit}` among {fat:#?}"
        );
    }
    assert!(
        !intake.delivered_logs().iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("fat ") && l.get("blob").is_some())),
        "no oversized log was recorded"
    );

    let c = read_counters();
    assert_eq!(c["logs_dropped"], serde_json::json!({}), "{c}");
    assert_eq!(c["buffer_corrupt_bytes"], 0, "{c}");
    for life in [&first, &second] {
        let log = life.stderr.to_lowercase();
        assert!(
            !log.contains("corrupt") && !log.contains("discarded"),
            "{}",
            life.dump()
        );
    }
}
