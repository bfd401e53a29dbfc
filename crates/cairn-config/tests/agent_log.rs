//! The agent's own log keys: defaults, sizes as the Datadog Agent writes them, `DD_*`
//! overrides, `get`, and bad values reported with their position.

use std::path::Path;

use cairn_config::{load, AgentLogConfig, LoadedConfig};
use serde_json::json;

fn load_in(
    dir: &Path,
    yaml: Option<&str>,
    env: &[(&str, &str)],
) -> Result<LoadedConfig, cairn_config::ConfigError> {
    if let Some(text) = yaml {
        std::fs::write(dir.join("datadog.yaml"), text).expect("write datadog.yaml");
    }
    let env_fn = |name: &str| {
        env.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    };
    load(dir, &env_fn)
}

fn agent_log(yaml: Option<&str>, env: &[(&str, &str)]) -> (tempfile::TempDir, AgentLogConfig) {
    let dir = tempfile::tempdir().expect("tempdir");
    let loaded = load_in(dir.path(), yaml, env).expect("config loads");
    (dir, loaded.agent.agent_log)
}

fn error(yaml: Option<&str>, env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    match load_in(dir.path(), yaml, env) {
        Err(e) => e.to_string(),
        Ok(loaded) => panic!("expected an error, got {:?}", loaded.agent.agent_log),
    }
}

#[test]
fn defaults_are_the_datadog_agents_under_run_path() {
    let (dir, log) = agent_log(None, &[]);
    assert_eq!(
        log,
        AgentLogConfig {
            file: dir.path().join("run/logs/agent.log"),
            max_size_bytes: 10 * 1024 * 1024,
            max_rolls: 1,
            disable_file_logging: false,
            to_console: true,
        }
    );
}

#[test]
fn the_default_file_follows_run_path() {
    let (_dir, log) = agent_log(Some("run_path: /var/lib/cairn\n"), &[]);
    assert_eq!(log.file, Path::new("/var/lib/cairn/logs/agent.log"));
    let (_dir, log) = agent_log(None, &[("DD_RUN_PATH", "/srv/cairn")]);
    assert_eq!(log.file, Path::new("/srv/cairn/logs/agent.log"));
}

#[test]
fn sizes_are_read_as_the_datadog_agent_reads_them() {
    #[rustfmt::skip]
    let cases: &[(&str, u64)] = &[
        ("log_file_max_size: 2000", 2000),
        ("log_file_max_size: \"2000\"", 2000),
        ("log_file_max_size: 10Mb", 10 << 20),
        ("log_file_max_size: 10MB", 10 << 20),
        ("log_file_max_size: 1GB", 1 << 30),
        ("log_file_max_size: 512kb", 512 << 10),
        ("log_file_max_size: \"64 KB\"", 64 << 10),
        ("log_file_max_size: 300B", 300),
    ];
    for (yaml, want) in cases {
        let (_dir, log) = agent_log(Some(&format!("{yaml}\n")), &[]);
        assert_eq!(log.max_size_bytes, *want, "{yaml}");
    }
}

#[test]
fn every_key_can_be_set_in_the_file_and_overridden_by_env_and_get_answers_it() {
    let yaml = "log_file: logs/cairn.log\nlog_file_max_size: 1MB\nlog_file_max_rolls: 3\n\
                disable_file_logging: true\nlog_to_console: false\nlog_level: warning\n";
    let (dir, log) = agent_log(Some(yaml), &[]);
    assert_eq!(
        log,
        AgentLogConfig {
            file: dir.path().join("logs/cairn.log"),
            max_size_bytes: 1 << 20,
            max_rolls: 3,
            disable_file_logging: true,
            to_console: false,
        }
    );

    let env = [
        ("DD_LOG_FILE", "/var/log/cairn/agent.log"),
        ("DD_LOG_FILE_MAX_SIZE", "5mb"),
        ("DD_LOG_FILE_MAX_ROLLS", "0"),
        ("DD_DISABLE_FILE_LOGGING", "false"),
        ("DD_LOG_TO_CONSOLE", "yes"),
        ("DD_LOG_LEVEL", "DEBUG"),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    let a = load_in(dir.path(), Some(yaml), &env)
        .expect("config loads")
        .agent;
    assert_eq!(a.log_level, "debug");
    assert_eq!(
        a.agent_log,
        AgentLogConfig {
            file: "/var/log/cairn/agent.log".into(),
            max_size_bytes: 5 << 20,
            max_rolls: 0,
            disable_file_logging: false,
            to_console: true,
        }
    );
    assert_eq!(a.get("log_level"), Some(json!("debug")));
    assert_eq!(a.get("log_file"), Some(json!("/var/log/cairn/agent.log")));
    assert_eq!(a.get("log_file_max_size"), Some(json!(5 << 20)));
    assert_eq!(a.get("log_file_max_rolls"), Some(json!(0)));
    assert_eq!(a.get("disable_file_logging"), Some(json!(false)));
    assert_eq!(a.get("log_to_console"), Some(json!(true)));
}

#[test]
fn get_answers_the_defaults() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = load_in(dir.path(), None, &[]).expect("config loads").agent;
    assert_eq!(
        a.get("log_file"),
        Some(json!(dir
            .path()
            .join("run/logs/agent.log")
            .display()
            .to_string()))
    );
    assert_eq!(a.get("log_file_max_size"), Some(json!(10485760)));
    assert_eq!(a.get("log_file_max_rolls"), Some(json!(1)));
    assert_eq!(a.get("log_to_console"), Some(json!(true)));
}

#[test]
fn the_log_keys_raise_no_unknown_key_warning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = "log_file: a.log\nlog_file_max_size: 10Mb\nlog_file_max_rolls: 1\n\
                disable_file_logging: false\nlog_to_console: true\n";
    let loaded = load_in(dir.path(), Some(yaml), &[]).expect("config loads");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

/// (datadog.yaml, environment, the exact error line)
type Case<'a> = (Option<&'a str>, &'a [(&'a str, &'a str)], String);

#[test]
fn bad_log_values_are_reported_with_position_key_and_expectation() {
    const SIZE: &str =
        "expected a size in bytes (an integer >= 1, or with a unit: \"10MB\", \"512KB\")";
    #[rustfmt::skip]
    let cases: &[Case] = &[
        (Some("log_level: loud\n"), &[],
         "datadog.yaml:1:12: log_level: expected one of trace, debug, info, warn, warning, error, critical, off, got \"loud\"".into()),
        (None, &[("DD_LOG_LEVEL", "verbose")],
         "DD_LOG_LEVEL: expected one of trace, debug, info, warn, warning, error, critical, off, got \"verbose\"".into()),
        (Some("log_file_max_size: 10 parsecs\n"), &[],
         format!("datadog.yaml:1:20: log_file_max_size: {SIZE}, got \"10 parsecs\"")),
        (Some("log_file_max_size: 0\n"), &[],
         format!("datadog.yaml:1:20: log_file_max_size: {SIZE}, got 0")),
        (Some("log_file_max_size: -5\n"), &[],
         format!("datadog.yaml:1:20: log_file_max_size: {SIZE}, got -5")),
        (Some("log_file_max_size: 1.5MB\n"), &[],
         format!("datadog.yaml:1:20: log_file_max_size: {SIZE}, got \"1.5MB\"")),
        (Some("log_file_max_size: [1]\n"), &[],
         format!("datadog.yaml:1:20: log_file_max_size: {SIZE}, got a list")),
        (None, &[("DD_LOG_FILE_MAX_SIZE", "huge")],
         format!("DD_LOG_FILE_MAX_SIZE: {SIZE}, got \"huge\"")),
        (None, &[("DD_LOG_FILE_MAX_SIZE", "99999999999GB")],
         format!("DD_LOG_FILE_MAX_SIZE: {SIZE}, got \"99999999999GB\"")),
        (Some("log_file_max_rolls: -1\n"), &[],
         "datadog.yaml:1:21: log_file_max_rolls: expected an integer between 0 and 100, got -1".into()),
        (Some("disable_file_logging: sometimes\n"), &[],
         "datadog.yaml:1:23: disable_file_logging: expected a boolean (true/false/yes/no/1/0), got \"sometimes\"".into()),
        (None, &[("DD_LOG_TO_CONSOLE", "perhaps")],
         "DD_LOG_TO_CONSOLE: expected a boolean (true/false/yes/no/1/0), got \"perhaps\"".into()),
    ];
    for (yaml, env, want) in cases {
        assert_eq!(&error(*yaml, env), want, "{yaml:?} {env:?}");
    }
}
