//! Loading real config directories: defaults, overrides, discovery rules, lookups.

use std::path::Path;

use cairn_config::{load, AgentConfig, CompressionKind, LoadedConfig, RuleKind, Secret, WhenFull};
use serde_json::json;

fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (rel, text) in files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent dir");
        }
        std::fs::write(path, text).expect("write config file");
    }
}

fn load_with(files: &[(&str, &str)], env: &[(&str, &str)]) -> (tempfile::TempDir, LoadedConfig) {
    let dir = tempfile::tempdir().expect("tempdir");
    write_files(dir.path(), files);
    let env_fn = |name: &str| {
        env.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    };
    let loaded = load(dir.path(), &env_fn).expect("config loads");
    (dir, loaded)
}

fn os_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string())
}

#[test]
fn empty_dir_gives_documented_defaults() {
    let (dir, loaded) = load_with(&[], &[]);
    let a = &loaded.agent;
    assert!(a.api_key.is_none());
    assert_eq!(a.site, "datadoghq.com");
    assert_eq!(a.dd_url, "https://app.datadoghq.com");
    assert_eq!(a.hostname, os_hostname());
    assert!(!a.logs_enabled);
    assert_eq!(a.run_path, dir.path().join("run"));
    assert_eq!(a.check_runners, 4);
    assert_eq!((a.cmd_host.as_str(), a.cmd_port), ("localhost", 5001));
    assert!(a.python_env.is_none());
    assert_eq!(a.log_level, "info");
    let l = &a.logs;
    assert_eq!(l.logs_dd_url, None);
    assert!(!l.logs_no_ssl);
    assert!(l.use_compression);
    assert_eq!(l.compression_kind, CompressionKind::Zstd);
    assert_eq!((l.zstd_compression_level, l.compression_level), (1, 6));
    assert_eq!(l.batch_wait_secs, 5.0);
    assert_eq!(l.batch_max_size, 1000);
    assert_eq!(l.batch_max_content_size, 5_000_000);
    assert_eq!(l.max_message_size_bytes, 900_000);
    assert!(l.processing_rules.is_empty());
    assert_eq!(
        (
            l.sender_backoff_base_secs,
            l.sender_backoff_factor,
            l.sender_backoff_max_secs
        ),
        (1.0, 2.0, 120.0)
    );
    assert_eq!(l.http_timeout_secs, 10.0);
    assert_eq!(l.buffer.max_size_bytes, 1 << 30);
    assert_eq!(l.buffer.when_full, WhenFull::Block);
    assert_eq!(l.intake_listen, "127.0.0.1:10518");
    assert!(loaded.integrations.is_empty() && loaded.errors.is_empty());
    assert!(loaded.warnings.is_empty());

    let defaults = AgentConfig::defaults(dir.path());
    assert_eq!(format!("{defaults:?}"), format!("{a:?}"));
}

#[test]
fn datadog_yaml_values_are_read_with_lenient_types() {
    let yaml = r#"
api_key: "abc123"
site: datadoghq.eu
hostname: web-1
logs_enabled: "yes"
run_path: state
check_runners: 8
cmd_port: 5002
python_env: /opt/venv
log_level: DEBUG
logs_config:
  logs_dd_url: intake.local:10516
  logs_no_ssl: true
  use_compression: "false"
  compression_kind: gzip
  compression_level: 9
  batch_wait: 2
  batch_max_size: 10
  sender_backoff_factor: 1.5
  http_timeout: 2.5
  buffer:
    max_size_bytes: 1048576
    when_full: drop_oldest
  intake:
    listen: 0.0.0.0:9000
  processing_rules:
    - type: mask_sequences
      name: mask_tokens
      pattern: "token=\\w+"
      replace_placeholder: "token=[REDACTED]"
    - {type: exclude_at_match, name: no_health, pattern: healthcheck}
"#;
    let (dir, loaded) = load_with(&[("datadog.yaml", yaml)], &[]);
    let a = &loaded.agent;
    assert_eq!(a.api_key.as_ref().map(Secret::expose), Some("abc123"));
    assert_eq!(a.site, "datadoghq.eu");
    assert_eq!(a.dd_url, "https://app.datadoghq.eu");
    assert_eq!(a.hostname, "web-1");
    assert!(a.logs_enabled);
    assert_eq!(a.run_path, dir.path().join("state"));
    assert_eq!(a.check_runners, 8);
    assert_eq!(a.cmd_port, 5002);
    assert_eq!(a.python_env.as_deref(), Some(Path::new("/opt/venv")));
    assert_eq!(a.log_level, "debug");
    let l = &a.logs;
    assert_eq!(l.logs_dd_url.as_deref(), Some("intake.local:10516"));
    assert!(l.logs_no_ssl && !l.use_compression);
    assert_eq!(l.compression_kind, CompressionKind::Gzip);
    assert_eq!(l.compression_level, 9);
    assert_eq!(l.batch_wait_secs, 2.0);
    assert_eq!(l.batch_max_size, 10);
    assert_eq!(l.sender_backoff_factor, 1.5);
    assert_eq!(l.http_timeout_secs, 2.5);
    assert_eq!(l.buffer.max_size_bytes, 1_048_576);
    assert_eq!(l.buffer.when_full, WhenFull::DropOldest);
    assert_eq!(l.intake_listen, "0.0.0.0:9000");
    let rules = &l.processing_rules;
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0].kind, RuleKind::MaskSequences);
    assert_eq!(rules[0].name, "mask_tokens");
    assert_eq!(rules[0].replace_placeholder, "token=[REDACTED]");
    assert_eq!(
        rules[0]
            .pattern
            .replace_all("a token=xyz b", rules[0].replace_placeholder.as_str()),
        "a token=[REDACTED] b"
    );
    assert_eq!(
        rules[0]
            .location
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some("datadog.yaml:27:7")
    );
    assert_eq!(rules[1].kind, RuleKind::ExcludeAtMatch);
    assert_eq!(rules[1].replace_placeholder, "");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn scalars_that_look_like_numbers_keep_their_text_for_string_keys() {
    let (_dir, loaded) = load_with(&[("datadog.yaml", "api_key: 1234e5\nhostname: 007\n")], &[]);
    assert_eq!(
        loaded.agent.api_key.as_ref().map(Secret::expose),
        Some("1234e5")
    );
    assert_eq!(loaded.agent.hostname, "007");
}

#[test]
fn env_overrides_beat_the_file_and_show_in_get() {
    let (_dir, loaded) = load_with(
        &[(
            "datadog.yaml",
            "logs_enabled: false\nhostname: from-file\nlogs_config:\n  batch_wait: 3\n",
        )],
        &[
            ("DD_API_KEY", "envkey"),
            ("DD_LOGS_ENABLED", "TRUE"),
            ("DD_HOSTNAME", "from-env"),
            ("DD_CHECK_RUNNERS", "2"),
            ("DD_RUN_PATH", "/var/lib/cairn"),
            ("DD_PYTHON_ENV", "venv"),
            ("DD_LOGS_CONFIG_LOGS_DD_URL", "https://logs.example.com/"),
            ("DD_LOGS_CONFIG_BATCH_WAIT", "0.5"),
            ("DD_LOGS_CONFIG_BUFFER_MAX_SIZE_BYTES", "4096"),
            ("DD_LOGS_CONFIG_USE_COMPRESSION", "no"),
            ("DD_LOGS_CONFIG_COMPRESSION_KIND", "GZIP"),
            ("DD_LOGS_CONFIG_INTAKE_LISTEN", "127.0.0.1:1"),
            (
                "DD_LOGS_CONFIG_PROCESSING_RULES",
                r#"[{"type":"include_at_match","name":"only_err","pattern":"ERROR"}]"#,
            ),
            ("DD_SITE", ""),
        ],
    );
    let a = &loaded.agent;
    assert_eq!(a.api_key.as_ref().map(Secret::expose), Some("envkey"));
    assert!(a.logs_enabled);
    assert_eq!(a.hostname, "from-env");
    assert_eq!(a.check_runners, 2);
    assert_eq!(a.run_path, Path::new("/var/lib/cairn"));
    assert_eq!(a.python_env, Some(a.config_dir.join("venv")));
    assert_eq!(a.site, "datadoghq.com", "an empty variable is ignored");
    assert_eq!(a.logs.batch_wait_secs, 0.5);
    assert_eq!(a.logs.buffer.max_size_bytes, 4096);
    assert!(!a.logs.use_compression);
    assert_eq!(a.logs.compression_kind, CompressionKind::Gzip);
    assert_eq!(a.logs.intake_listen, "127.0.0.1:1");
    assert_eq!(a.logs.processing_rules.len(), 1);
    assert_eq!(a.logs.processing_rules[0].kind, RuleKind::IncludeAtMatch);
    assert!(a.logs.processing_rules[0].location.is_none());

    assert_eq!(a.get("logs_config.batch_wait"), Some(json!(0.5)));
    assert_eq!(a.get("logs_enabled"), Some(json!(true)));
    assert_eq!(a.get("hostname"), Some(json!("from-env")));
    assert_eq!(
        a.get("logs_config.processing_rules"),
        Some(json!([{"type":"include_at_match","name":"only_err","pattern":"ERROR"}]))
    );
    assert_eq!(
        a.get("logs_config"),
        Some(json!({
            "batch_wait": 0.5,
            "logs_dd_url": "https://logs.example.com/",
            "buffer": {"max_size_bytes": 4096},
            "use_compression": false,
            "compression_kind": "gzip",
            "intake": {"listen": "127.0.0.1:1"},
            "processing_rules": [{"type":"include_at_match","name":"only_err","pattern":"ERROR"}],
        }))
    );
    assert_eq!(
        a.logs_intake_url().as_deref(),
        Some("https://logs.example.com")
    );
}

#[test]
fn api_key_never_appears_in_output() {
    const KEY: &str = "s3cr3t-api-key-0123456789";
    let (dir, loaded) = load_with(
        &[
            (
                "datadog.yaml",
                &format!("api_key: {KEY}\nlogs_config:\n  api_key: {KEY}\nbogus: 1\n"),
            ),
            ("conf.d/bad.yaml", "instances: nope\n"),
        ],
        &[],
    );
    let rendered = format!(
        "{:?}\n{:?}\n{}\n{}",
        loaded,
        loaded.agent.api_key,
        loaded
            .agent
            .api_key
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        loaded
            .errors
            .iter()
            .chain(std::iter::empty())
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n"),
    );
    assert!(!rendered.contains(KEY), "{rendered}");
    assert!(rendered.contains("********"));
    assert_eq!(loaded.agent.get("api_key"), None);
    assert_eq!(loaded.agent.get("logs_config.api_key"), None);
    assert!(!loaded
        .agent
        .get("logs_config")
        .expect("section")
        .to_string()
        .contains(KEY));

    // An env key with a bad value elsewhere: the error names the variable, not the key.
    let env = |name: &str| match name {
        "DD_API_KEY" => Some(KEY.to_string()),
        "DD_CMD_PORT" => Some("0".to_string()),
        _ => None,
    };
    let err = load(dir.path(), &env).expect_err("bad port");
    assert_eq!(
        err.to_string(),
        "DD_CMD_PORT: expected an integer between 1 and 65535, got \"0\""
    );
    assert!(!format!("{err:?}").contains(KEY));
}

#[test]
fn blank_api_key_counts_as_absent() {
    let (_dir, loaded) = load_with(&[("datadog.yaml", "api_key: \"  \"\n")], &[]);
    assert!(loaded.agent.api_key.is_none());
    let (_dir, loaded) = load_with(&[("datadog.yaml", "api_key:\n")], &[]);
    assert!(loaded.agent.api_key.is_none());
    assert!(Secret::new("").is_none());
}

#[test]
fn unknown_keys_warn_with_location_but_known_datadog_keys_do_not() {
    let yaml = "\
api_key: x
tags: [a:b]
apm_config:
  enabled: false
integration_profiling: true
dogstatsd_port: 8125
colour: blue
logs_config:
  use_http: true
  batchwait: 3
  buffer:
    max_size: 10
";
    let (_dir, loaded) = load_with(&[("datadog.yaml", yaml)], &[]);
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "datadog.yaml:7:1: unknown key \"colour\" (ignored)",
            "datadog.yaml:10:3: unknown key \"logs_config.batchwait\" (ignored)",
            "datadog.yaml:12:5: unknown key \"logs_config.buffer.max_size\" (ignored)",
        ]
    );
    assert_eq!(loaded.agent.get("colour"), Some(json!("blue")));
    assert_eq!(loaded.agent.get("apm_config.enabled"), Some(json!(false)));
}

#[test]
fn get_answers_dotted_paths_defaults_and_none() {
    let (_dir, loaded) = load_with(
        &[(
            "datadog.yaml",
            "custom:\n  nested:\n    value: [1, 2]\nlogs_config:\n  batch_max_size: 50\n",
        )],
        &[],
    );
    let a = &loaded.agent;
    assert_eq!(a.get("custom.nested.value"), Some(json!([1, 2])));
    assert_eq!(a.get("logs_config.batch_max_size"), Some(json!(50)));
    assert_eq!(a.get("logs_config.batch_wait"), Some(json!(5.0)));
    assert_eq!(a.get("logs_config.buffer.when_full"), Some(json!("block")));
    assert_eq!(
        a.get("logs_config.buffer.max_size_bytes"),
        Some(json!(1u64 << 30))
    );
    assert_eq!(a.get("logs_config.processing_rules"), Some(json!([])));
    assert_eq!(a.get("check_runners"), Some(json!(4)));
    assert_eq!(a.get("site"), Some(json!("datadoghq.com")));
    assert_eq!(a.get("logs_config.logs_dd_url"), None);
    assert_eq!(a.get("python_env"), None);
    assert_eq!(a.get("custom.missing"), None);
    assert_eq!(a.get("nothing_here"), None);
    assert_eq!(a.get(""), None);
}

/// (datadog.yaml, environment, expected URL)
type UrlCase<'a> = (&'a str, &'a [(&'a str, &'a str)], Option<&'a str>);

#[test]
fn logs_intake_url_variants() {
    #[rustfmt::skip]
    let cases: &[UrlCase] = &[
        ("", &[], None),
        ("api_key: k\n", &[], Some("https://http-intake.logs.datadoghq.com")),
        ("api_key: k\nsite: us5.datadoghq.com\n", &[], Some("https://http-intake.logs.us5.datadoghq.com")),
        ("logs_config:\n  logs_dd_url: host:10516\n", &[], Some("https://host:10516")),
        ("logs_config:\n  logs_dd_url: host:8080\n  logs_no_ssl: true\n", &[], Some("http://host:8080")),
        ("logs_config:\n  logs_dd_url: http://127.0.0.1:9/\n", &[], Some("http://127.0.0.1:9")),
        ("logs_config:\n  logs_dd_url: https://x.example/intake\n  logs_no_ssl: true\n", &[], Some("https://x.example/intake")),
        ("", &[("DD_API_KEY", "k"), ("DD_SITE", "datadoghq.eu")], Some("https://http-intake.logs.datadoghq.eu")),
        ("", &[("DD_LOGS_CONFIG_LOGS_DD_URL", "h:1"), ("DD_LOGS_CONFIG_LOGS_NO_SSL", "1")], Some("http://h:1")),
    ];
    for (yaml, env, expected) in cases {
        let (_dir, loaded) = load_with(&[("datadog.yaml", yaml)], env);
        assert_eq!(
            loaded.agent.logs_intake_url().as_deref(),
            *expected,
            "yaml {yaml:?} env {env:?}"
        );
    }
}

#[test]
fn hostname_falls_back_to_env_then_os() {
    let (_dir, loaded) = load_with(&[("datadog.yaml", "hostname: \"\"\n")], &[]);
    assert_eq!(loaded.agent.hostname, os_hostname());
    let (_dir, loaded) = load_with(&[], &[("DD_HOSTNAME", "env-host")]);
    assert_eq!(loaded.agent.hostname, "env-host");
}

#[test]
fn explicit_dd_url_is_kept() {
    let (_dir, loaded) = load_with(
        &[(
            "datadog.yaml",
            "site: datadoghq.eu\ndd_url: https://metrics.internal\n",
        )],
        &[],
    );
    assert_eq!(loaded.agent.dd_url, "https://metrics.internal");
}

const INSTANCE: &str = "instances:\n  - host: a\n";

#[test]
fn integration_file_is_parsed_into_instances_and_logs() {
    let yaml = r#"init_config:
  service: shared
instances:
  - host: db1
    port: 5432
    min_collection_interval: 30
    tags: ["env:dev", "team:db"]
    name: primary
  - host: db2
logs:
  - type: integration
    source: my_integration
    service: my-service
    tags: "extra:tag, other:tag"
    log_processing_rules:
      - {type: mask_sequences, name: mask_tokens, pattern: "token=\\w+", replace_placeholder: "token=[REDACTED]"}
"#;
    let (dir, loaded) = load_with(&[("conf.d/pg.d/conf.yaml", yaml)], &[]);
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let pg = &loaded.integrations[0];
    assert_eq!(pg.name, "pg");
    assert_eq!(pg.path, dir.path().join("conf.d/pg.d/conf.yaml"));
    assert_eq!(pg.init_config, json!({"service": "shared"}));
    assert_eq!(pg.instances.len(), 2);
    let first = &pg.instances[0];
    assert_eq!(
        first.value,
        json!({"host": "db1", "port": 5432, "min_collection_interval": 30,
               "tags": ["env:dev", "team:db"], "name": "primary"})
    );
    assert_eq!(first.min_collection_interval_secs, 30.0);
    assert_eq!(first.tags, ["env:dev", "team:db"]);
    assert_eq!(first.name.as_deref(), Some("primary"));
    assert_eq!(first.location.to_string(), "conf.d/pg.d/conf.yaml:4:5");
    let second = &pg.instances[1];
    assert_eq!(second.min_collection_interval_secs, 15.0);
    assert!(second.tags.is_empty() && second.name.is_none());

    let entry = pg.integration_logs_entry().expect("integration entry");
    assert_eq!(entry.source.as_deref(), Some("my_integration"));
    assert_eq!(entry.service.as_deref(), Some("my-service"));
    assert_eq!(entry.tags, ["extra:tag", "other:tag"]);
    assert_eq!(entry.processing_rules.len(), 1);
    assert_eq!(entry.location.to_string(), "conf.d/pg.d/conf.yaml:11:5");
    assert!(loaded.warnings.is_empty());
}

#[test]
fn non_integration_logs_entries_warn() {
    let yaml =
        "instances: [{}]\nlogs:\n  - type: file\n    path: /var/log/x.log\n  - type: integration\n";
    let (_dir, loaded) = load_with(&[("conf.d/x.d/conf.yaml", yaml)], &[]);
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        ["conf.d/x.d/conf.yaml:3:5: logs[0]: type is 'file', only 'integration' entries receive send_log logs"]
    );
    let x = &loaded.integrations[0];
    assert_eq!(x.logs.len(), 2);
    assert_eq!(
        x.integration_logs_entry().map(|e| e.kind.as_str()),
        Some("integration")
    );
    assert!(x
        .integration_logs_entry()
        .is_some_and(|e| e.location.line == 5));
}

#[test]
fn conf_yaml_default_is_used_only_without_other_files() {
    let (_dir, loaded) = load_with(
        &[
            (
                "conf.d/a.d/conf.yaml.default",
                "instances:\n  - from: default\n",
            ),
            (
                "conf.d/b.d/conf.yaml.default",
                "instances:\n  - from: default\n",
            ),
            ("conf.d/b.d/conf.yaml", "instances:\n  - from: user\n"),
            (
                "conf.d/c.d/conf.yaml.example",
                "instances:\n  - from: example\n",
            ),
            ("conf.d/c.d/README.md", "docs"),
        ],
        &[],
    );
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let got: Vec<(&str, &serde_json::Value)> = loaded
        .integrations
        .iter()
        .map(|i| (i.name.as_str(), &i.instances[0].value["from"]))
        .collect();
    assert_eq!(got, [("a", &json!("default")), ("b", &json!("user"))]);
    assert!(loaded.integrations[0]
        .path
        .ends_with("conf.d/a.d/conf.yaml.default"));
}

#[test]
fn flat_files_and_dirs_load_sorted_by_name() {
    let (_dir, loaded) = load_with(
        &[
            ("conf.d/zeta.yaml", INSTANCE),
            ("conf.d/alpha.yml", INSTANCE),
            ("conf.d/mid.d/conf.yaml", INSTANCE),
            ("conf.d/notes.txt", "ignored"),
            ("conf.d/old.yaml.example", "ignored"),
            ("conf.d/.hidden.yaml", "ignored: ["),
        ],
        &[],
    );
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let names: Vec<&str> = loaded
        .integrations
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    assert_eq!(names, ["alpha", "mid", "zeta"]);
}

#[test]
fn several_files_in_one_dir_each_contribute() {
    let (dir, loaded) = load_with(
        &[
            ("conf.d/web.d/b.yaml", "init_config: {from: b}\ninstances: [{n: 2}, {n: 3}]\nlogs:\n  - type: integration\n    source: b\n"),
            ("conf.d/web.d/a.yaml", "init_config: {from: a}\ninstances: [{n: 1}]\nlogs:\n  - type: integration\n    source: a\n"),
            ("conf.d/web.d/auto_conf.yaml", "ad_identifiers: [nginx]\n"),
        ],
        &[],
    );
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let web = &loaded.integrations[0];
    assert_eq!(web.path, dir.path().join("conf.d/web.d/a.yaml"));
    assert_eq!(web.init_config, json!({"from": "a"}));
    let ns: Vec<i64> = web
        .instances
        .iter()
        .filter_map(|i| i.value["n"].as_i64())
        .collect();
    assert_eq!(ns, [1, 2, 3]);
    assert_eq!(
        web.instances[1].location.to_string(),
        "conf.d/web.d/b.yaml:2:13"
    );
    assert_eq!(web.logs.len(), 2);
    assert_eq!(
        web.integration_logs_entry()
            .and_then(|e| e.source.as_deref()),
        Some("a")
    );
}

#[test]
fn a_broken_integration_does_not_stop_the_others() {
    let (_dir, loaded) = load_with(
        &[
            ("conf.d/good.d/conf.yaml", INSTANCE),
            ("conf.d/bad.d/conf.yaml", "instances: [\n"),
            ("conf.d/split.d/a.yaml", INSTANCE),
            ("conf.d/split.d/b.yaml", "init_config:\n"),
        ],
        &[],
    );
    let names: Vec<&str> = loaded
        .integrations
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    assert_eq!(names, ["good"]);
    let errors: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with("conf.d/bad.d/conf.yaml:2:1: invalid YAML: "),
        "{}",
        errors[0]
    );
    assert_eq!(
        errors[1],
        "conf.d/split.d/b.yaml: instances: missing (a check needs at least one instance)"
    );
}

#[test]
fn init_config_null_or_absent_is_null() {
    let (_dir, loaded) = load_with(
        &[
            ("conf.d/a.yaml", "init_config:\ninstances: [{}]\n"),
            ("conf.d/b.yaml", "instances: [{}]\n"),
        ],
        &[],
    );
    assert!(loaded.integrations.iter().all(|i| i.init_config.is_null()));
}
