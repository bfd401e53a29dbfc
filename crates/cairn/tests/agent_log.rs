//! The agent's own log, with the real binary: `<run_path>/logs/agent.log` private and one line
//! per event, the level from `log_level` and `DD_LOG_LEVEL`, size rotation keeping
//! `log_file_max_rolls` files, a symlink at the file's name refused, `disable_file_logging`,
//! and no secret in the file or on stderr.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use support::*;

const LOG: &str = "run/logs/agent.log";

/// A check that fails at every run, with a multi-line traceback logged by the agent.
const FAILING_CHECK: &str = r#"
from datadog_checks.base import AgentCheck


class FailingCheck(AgentCheck):
    def check(self, instance):
        raise RuntimeError("first line\nsecond line")
"#;

fn run_and_stop(dir: &ConfigDir, env: &[(&str, &str)], settle: Duration) -> Output {
    let mut cmd = dir.cairn(&["run"]);
    for (k, v) in env {
        cmd = cmd.env(k, v);
    }
    let agent = cmd.spawn();
    // The pid file, not a log line: at `log_level: error` nothing is logged at start.
    assert!(
        wait_for(Duration::from_secs(30), || dir
            .join("run/cairn.pid")
            .exists()),
        "{}",
        agent.stderr_so_far()
    );
    std::thread::sleep(settle);
    let out = agent.sigterm(Duration::from_secs(20));
    out.assert_code(0);
    out
}

/// Every line starts with an RFC 3339 timestamp and a level: no event spilled over lines.
fn assert_one_line_per_event(text: &str) {
    let re =
        regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z +(TRACE|DEBUG|INFO|WARN|ERROR) ")
            .unwrap();
    for line in text.lines() {
        assert!(
            re.is_match(line),
            "not one event per line: {line:?}\n{text}"
        );
        assert!(
            !line.contains('\u{1b}'),
            "ANSI escape in the file: {line:?}"
        );
    }
}

#[test]
fn agent_log_is_private_and_holds_one_line_per_event() {
    let dir = ConfigDir::new();
    dir.check_py("failing", FAILING_CHECK)
        .conf("failing", "instances:\n  - min_collection_interval: 1\n");
    let out = run_and_stop(&dir, &[], Duration::from_millis(1500));
    let text = dir.read(LOG);
    assert!(text.contains("cairn started"), "{text}");
    assert!(
        text.contains("second line"),
        "the failure is logged: {text}"
    );
    assert_one_line_per_event(&text);
    // stderr keeps logging as before.
    assert!(out.stderr.contains("cairn started"), "{}", out.dump());
    let mode = |rel: &str| {
        std::fs::metadata(dir.join(rel))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(LOG), 0o600);
    assert_eq!(mode("run/logs"), 0o700);
}

#[test]
fn log_level_and_dd_log_level_decide_what_is_logged() {
    let has_debug = |text: &str| text.lines().any(|l| l.contains(" DEBUG "));
    let dir = ConfigDir::new();
    dir.datadog_yaml(&format!("{DEFAULT_DATADOG_YAML}log_level: debug\n"));
    run_and_stop(&dir, &[], Duration::from_millis(200));
    let text = dir.read(LOG);
    assert!(
        has_debug(&text),
        "log_level: debug logs debug lines: {text}"
    );

    let dir = ConfigDir::new();
    run_and_stop(&dir, &[], Duration::from_millis(200));
    let text = dir.read(LOG);
    assert!(!has_debug(&text), "info by default: {text}");
    assert!(text.contains(" INFO "), "{text}");

    let dir = ConfigDir::new();
    dir.datadog_yaml(&format!("{DEFAULT_DATADOG_YAML}log_level: info\n"));
    run_and_stop(
        &dir,
        &[("DD_LOG_LEVEL", "debug")],
        Duration::from_millis(200),
    );
    assert!(has_debug(&dir.read(LOG)), "DD_LOG_LEVEL beats the file");

    let dir = ConfigDir::new();
    run_and_stop(
        &dir,
        &[("DD_LOG_LEVEL", "error")],
        Duration::from_millis(200),
    );
    let text = dir.read(LOG);
    assert!(!text.contains(" INFO "), "error level: {text}");
}

#[test]
fn the_file_rotates_by_size_keeping_max_rolls_files() {
    let dir = ConfigDir::new();
    dir.datadog_yaml(&format!(
        "{DEFAULT_DATADOG_YAML}log_level: debug\nlog_file_max_size: 2000\nlog_file_max_rolls: 2\n"
    ));
    dir.check_py("failing", FAILING_CHECK)
        .conf("failing", "instances:\n  - min_collection_interval: 0.1\n");
    run_and_stop(&dir, &[], Duration::from_secs(3));
    for rel in [LOG, "run/logs/agent.log.1", "run/logs/agent.log.2"] {
        let len = std::fs::metadata(dir.join(rel))
            .unwrap_or_else(|e| panic!("{rel}: {e}"))
            .len();
        assert!(len <= 2000, "{rel} is {len} bytes");
        assert_one_line_per_event(&dir.read(rel));
    }
    assert!(!dir.join("run/logs/agent.log.3").exists());
    let full = std::fs::metadata(dir.join("run/logs/agent.log.1"))
        .unwrap()
        .len();
    assert!(
        full > 1000,
        "a rotated file was filled first ({full} bytes)"
    );
}

#[test]
fn a_symlink_at_the_log_file_is_not_followed() {
    let dir = ConfigDir::new();
    let victim = dir.join("victim");
    std::fs::write(&victim, "precious").unwrap();
    std::fs::create_dir_all(dir.join("run/logs")).unwrap();
    std::fs::set_permissions(dir.join("run"), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(&victim, dir.join(LOG)).unwrap();
    let out = run_and_stop(&dir, &[], Duration::from_millis(200));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    let warned = out
        .logged("WARN")
        .into_iter()
        .find(|l| l.contains("not writing the log file"))
        .unwrap_or_else(|| panic!("no warning about the log file\n{}", out.dump()));
    assert!(warned.contains("agent.log"), "{warned}");
    assert!(std::fs::symlink_metadata(dir.join(LOG))
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn disable_file_logging_writes_no_file_and_log_to_console_false_silences_stderr() {
    let dir = ConfigDir::new();
    dir.datadog_yaml(&format!(
        "{DEFAULT_DATADOG_YAML}disable_file_logging: true\n"
    ));
    let out = run_and_stop(&dir, &[], Duration::from_millis(200));
    assert!(!dir.join(LOG).exists());
    assert!(out.stderr.contains("cairn started"), "{}", out.dump());

    let dir = ConfigDir::new();
    let agent = dir
        .cairn(&["run"])
        .env("DD_LOG_TO_CONSOLE", "false")
        .spawn();
    assert!(
        wait_for(Duration::from_secs(30), || std::fs::read_to_string(
            dir.join(LOG)
        )
        .unwrap_or_default()
        .contains("cairn started")),
        "{}",
        agent.stderr_so_far()
    );
    let out = agent.sigterm(Duration::from_secs(20));
    out.assert_code(0);
    assert!(!out.stderr.contains("cairn started"), "{}", out.dump());
}

#[test]
fn the_api_key_and_url_passwords_are_never_logged() {
    const KEY: &str = "abcdef0123456789abcdef0123456789";
    // A closed port: every send fails and is logged, with the URL.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let dir = ConfigDir::new();
    dir.datadog_yaml(&format!(
        "{DEFAULT_DATADOG_YAML}api_key: {KEY}\nlog_level: trace\nlogs_config:\n  logs_dd_url: http://user:hunter2@127.0.0.1:{port}/\n  sender_backoff_base: 0.1\n  sender_backoff_max: 0.2\n"
    ));
    dir.check_py("failing", FAILING_CHECK).conf(
        "failing",
        "instances:\n  - min_collection_interval: 0.2\nlogs:\n  - type: integration\n    source: s\n    service: s\n",
    );
    dir.check_py("logging", "from datadog_checks.base import AgentCheck\n\nclass C(AgentCheck):\n    def check(self, instance):\n        self.send_log({'message': 'hello'})\n")
        .conf("logging", "instances:\n  - min_collection_interval: 0.2\nlogs:\n  - type: integration\n    source: s\n    service: s\n");
    let out = run_and_stop(
        &dir,
        &[(
            "DD_LOGS_CONFIG_LOGS_DD_URL",
            &format!("http://user:hunter2@127.0.0.1:{port}/"),
        )],
        Duration::from_secs(2),
    );
    let text = dir.read(LOG);
    assert!(text.lines().count() > 3, "{text}");
    for (what, hay) in [
        ("agent.log", text.as_str()),
        ("stderr", out.stderr.as_str()),
    ] {
        assert!(!hay.contains(KEY), "the api key is in {what}");
        assert!(!hay.contains("hunter2"), "the URL password is in {what}");
    }
}

#[test]
fn a_log_file_that_refuses_writes_drops_lines_and_says_so_once() {
    // /dev/full answers every write with ENOSPC, as a full disk does.
    let dir = ConfigDir::new();
    dir.datadog_yaml(&format!(
        "{DEFAULT_DATADOG_YAML}log_file: /dev/full\nlog_level: debug\n"
    ));
    dir.check_py("failing", FAILING_CHECK)
        .conf("failing", "instances:\n  - min_collection_interval: 0.1\n");
    let out = run_and_stop(&dir, &[], Duration::from_secs(1));
    let said = out
        .stderr
        .matches("agent log: cannot write /dev/full")
        .count();
    assert_eq!(said, 1, "{}", out.dump());
    assert!(out.stderr.contains("cairn stopped"), "{}", out.dump());
    assert!(
        out.logged("WARN")
            .iter()
            .any(|l| l.contains("lines were dropped")),
        "the count is logged at stop\n{}",
        out.dump()
    );
}
