//! Every bad input is reported as one line naming the file, position, key, the problem and
//! what was expected. The strings are asserted exactly: they are the operator's interface.

use std::path::Path;

use cairn_config::{load, ConfigError};

fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (rel, text) in files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent dir");
        }
        std::fs::write(path, text).expect("write config file");
    }
}

/// The single error a config produces: fatal (`Err`) or the one skipped integration.
fn single_error(files: &[(&str, &str)], env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    write_files(dir.path(), files);
    let env_fn = |name: &str| {
        env.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    };
    match load(dir.path(), &env_fn) {
        Err(e) => e.to_string(),
        Ok(loaded) => {
            assert_eq!(
                loaded.errors.len(),
                1,
                "expected exactly one integration error, got {:?}",
                loaded.errors
            );
            assert!(loaded.integrations.iter().all(|i| i.name != "foo"));
            loaded.errors[0].to_string()
        }
    }
}

/// (what the case is, files to write, environment, the exact error line)
type Case<'a> = (
    &'a str,
    &'a [(&'a str, &'a str)],
    &'a [(&'a str, &'a str)],
    &'a str,
);

const FOO: &str = "conf.d/foo.d/conf.yaml";

#[test]
fn bad_input_is_reported_with_position_key_and_expectation() {
    #[rustfmt::skip]
    let cases: &[Case] = &[
        ("datadog.yaml syntax error",
         &[("datadog.yaml", "site: x\nlogs_config:\n  batch_wait: [1, 2\n")], &[],
         "datadog.yaml:4:1: invalid YAML: while parsing a flow sequence, expected ',' or ']'"),
        ("duplicate key",
         &[("datadog.yaml", "site: a\nsite: b\n")], &[],
         "datadog.yaml:2:1: invalid YAML: duplicated key in mapping"),
        ("datadog.yaml top level a list",
         &[("datadog.yaml", "- a\n- b\n")], &[],
         "datadog.yaml:1:1: expected a mapping at the top level, got a list"),
        ("negative check_runners",
         &[("datadog.yaml", "check_runners: -1\n")], &[],
         "datadog.yaml:1:16: check_runners: expected an integer >= 1, got -1"),
        ("float check_runners",
         &[("datadog.yaml", "check_runners: 2.5\n")], &[],
         "datadog.yaml:1:16: check_runners: expected an integer >= 1, got 2.5"),
        ("bool given a word",
         &[("datadog.yaml", "logs_enabled: maybe\n")], &[],
         "datadog.yaml:1:15: logs_enabled: expected a boolean (true/false/yes/no/1/0), got \"maybe\""),
        ("string key given a list",
         &[("datadog.yaml", "hostname: [a, b]\n")], &[],
         "datadog.yaml:1:11: hostname: expected a string, got a list"),
        ("float key given text",
         &[("datadog.yaml", "logs_config:\n  batch_wait: soon\n")], &[],
         "datadog.yaml:2:15: logs_config.batch_wait: expected a positive number, got \"soon\""),
        ("zero batch_wait",
         &[("datadog.yaml", "logs_config:\n  batch_wait: 0\n")], &[],
         "datadog.yaml:2:15: logs_config.batch_wait: expected a positive number, got 0"),
        ("port out of range",
         &[("datadog.yaml", "cmd_port: 70000\n")], &[],
         "datadog.yaml:1:11: cmd_port: expected an integer between 1 and 65535, got 70000"),
        ("bad compression_kind",
         &[("datadog.yaml", "logs_config:\n  compression_kind: brotli\n")], &[],
         "datadog.yaml:2:21: logs_config.compression_kind: expected one of zstd, gzip, got \"brotli\""),
        ("bad when_full",
         &[("datadog.yaml", "logs_config:\n  buffer:\n    when_full: never\n")], &[],
         "datadog.yaml:3:16: logs_config.buffer.when_full: expected one of block, drop_oldest, got \"never\""),
        ("section not a mapping",
         &[("datadog.yaml", "logs_config: [1]\n")], &[],
         "datadog.yaml:1:14: logs_config: expected a mapping, got a list"),
        ("logs_dd_url without port",
         &[("datadog.yaml", "logs_config:\n  logs_dd_url: intake.example.com\n")], &[],
         "datadog.yaml:2:16: logs_config.logs_dd_url: expected host:port or an http:// or https:// URL, got \"intake.example.com\""),
        ("global rule with bad regex",
         &[("datadog.yaml", "logs_config:\n  processing_rules:\n    - type: exclude_at_match\n      name: x\n      pattern: \"a(b\"\n")], &[],
         "datadog.yaml:5:16: logs_config.processing_rules[0].pattern: invalid regex: unclosed group"),
        ("rule with unknown type",
         &[("datadog.yaml", "logs_config:\n  processing_rules:\n    - {type: drop, name: x, pattern: a}\n")], &[],
         "datadog.yaml:3:14: logs_config.processing_rules[0].type: expected one of exclude_at_match, include_at_match, mask_sequences, got \"drop\""),
        ("rule without name",
         &[("datadog.yaml", "logs_config:\n  processing_rules:\n    - {type: exclude_at_match, pattern: a}\n")], &[],
         "datadog.yaml:3:7: logs_config.processing_rules[0].name: missing (every rule needs a name)"),
        ("env var with a bad integer",
         &[], &[("DD_CHECK_RUNNERS", "x")],
         "DD_CHECK_RUNNERS: expected an integer >= 1, got \"x\""),
        ("env var with a bad bool",
         &[], &[("DD_LOGS_ENABLED", "maybe")],
         "DD_LOGS_ENABLED: expected a boolean (true/false/yes/no/1/0), got \"maybe\""),
        ("env var with a bad enum",
         &[], &[("DD_LOGS_CONFIG_BUFFER_WHEN_FULL", "spill")],
         "DD_LOGS_CONFIG_BUFFER_WHEN_FULL: expected one of block, drop_oldest, got \"spill\""),
        ("env var beats a valid file value and is still checked",
         &[("datadog.yaml", "logs_config:\n  batch_wait: 2\n")], &[("DD_LOGS_CONFIG_BATCH_WAIT", "-3")],
         "DD_LOGS_CONFIG_BATCH_WAIT: expected a positive number, got \"-3\""),
        ("env rules with bad regex",
         &[], &[("DD_LOGS_CONFIG_PROCESSING_RULES", r#"[{"type":"exclude_at_match","name":"x","pattern":"("}]"#)],
         "DD_LOGS_CONFIG_PROCESSING_RULES: logs_config.processing_rules[0].pattern: invalid regex: unclosed group"),
        ("integration syntax error",
         &[(FOO, "instances:\n  - a: 1\n b: 2\n")], &[],
         "conf.d/foo.d/conf.yaml:3:2: invalid YAML: while parsing a block mapping, did not find expected key"),
        ("integration empty file",
         &[(FOO, "# nothing here\n")], &[],
         "conf.d/foo.d/conf.yaml: file is empty"),
        ("integration top level a list",
         &[(FOO, "- instances\n")], &[],
         "conf.d/foo.d/conf.yaml:1:1: expected a mapping at the top level, got a list"),
        ("missing instances",
         &[(FOO, "init_config:\n")], &[],
         "conf.d/foo.d/conf.yaml: instances: missing (a check needs at least one instance)"),
        ("instances null",
         &[(FOO, "init_config:\ninstances:\n")], &[],
         "conf.d/foo.d/conf.yaml: instances: missing (a check needs at least one instance)"),
        ("instances empty",
         &[(FOO, "instances: []\n")], &[],
         "conf.d/foo.d/conf.yaml:1:12: instances: empty list (a check needs at least one instance)"),
        ("instances not a list",
         &[(FOO, "instances:\n  host: x\n")], &[],
         "conf.d/foo.d/conf.yaml:2:3: instances: expected a list of mappings, got a mapping"),
        ("instance not a map",
         &[(FOO, "instances:\n  - {}\n  - localhost\n")], &[],
         "conf.d/foo.d/conf.yaml:3:5: instances[1]: expected a mapping, got \"localhost\""),
        ("min_collection_interval text",
         &[(FOO, "instances:\n  - host: x\n    min_collection_interval: abc\n")], &[],
         "conf.d/foo.d/conf.yaml:3:30: instances[0].min_collection_interval: expected a positive number, got \"abc\""),
        ("min_collection_interval negative",
         &[(FOO, "instances:\n  - min_collection_interval: -5\n")], &[],
         "conf.d/foo.d/conf.yaml:2:30: instances[0].min_collection_interval: expected a positive number, got -5"),
        ("instance tags a string",
         &[(FOO, "instances:\n  - tags: env:dev\n")], &[],
         "conf.d/foo.d/conf.yaml:2:11: instances[0].tags: expected a list of strings, got \"env:dev\""),
        ("instance tag a mapping",
         &[(FOO, "instances:\n  - tags: [a, {b: c}]\n")], &[],
         "conf.d/foo.d/conf.yaml:2:15: instances[0].tags[1]: expected a string, got a mapping"),
        ("instance name a list",
         &[(FOO, "instances:\n  - name: [a]\n")], &[],
         "conf.d/foo.d/conf.yaml:2:11: instances[0].name: expected a string, got a list"),
        ("init_config a list",
         &[(FOO, "init_config: [1]\ninstances: [{}]\n")], &[],
         "conf.d/foo.d/conf.yaml:1:14: init_config: expected a mapping or null, got a list"),
        ("logs not a list",
         &[(FOO, "instances: [{}]\nlogs: integration\n")], &[],
         "conf.d/foo.d/conf.yaml:2:7: logs: expected a list of mappings, got \"integration\""),
        ("logs entry without type",
         &[(FOO, "instances: [{}]\nlogs:\n  - source: foo\n")], &[],
         "conf.d/foo.d/conf.yaml:3:5: logs[0].type: missing (expected a string such as \"integration\")"),
        ("logs tags a mapping",
         &[(FOO, "instances: [{}]\nlogs:\n  - type: integration\n    tags: {a: b}\n")], &[],
         "conf.d/foo.d/conf.yaml:4:11: logs[0].tags: expected a list of strings or a comma-separated string, got a mapping"),
        ("logs rule with bad regex",
         &[(FOO, "instances: [{}]\nlogs:\n  - type: integration\n    log_processing_rules:\n      - {type: exclude_at_match, name: x, pattern: \"[z-a]\"}\n")], &[],
         "conf.d/foo.d/conf.yaml:5:52: logs[0].log_processing_rules[0].pattern: invalid regex: invalid character class range, the start must be <= the end"),
        ("mask rule without replace_placeholder",
         &[(FOO, "instances: [{}]\nlogs:\n  - type: integration\n    log_processing_rules:\n      - type: mask_sequences\n        name: m\n        pattern: secret\n")], &[],
         "conf.d/foo.d/conf.yaml:5:9: logs[0].log_processing_rules[0].replace_placeholder: missing (mask_sequences rules need a replace_placeholder)"),
        ("rules not a list",
         &[(FOO, "instances: [{}]\nlogs:\n  - type: integration\n    log_processing_rules: exclude\n")], &[],
         "conf.d/foo.d/conf.yaml:4:27: logs[0].log_processing_rules: expected a list of rules, got \"exclude\""),
        ("flat file error names the flat file",
         &[("conf.d/foo.yaml", "instances: 3\n")], &[],
         "conf.d/foo.yaml:1:12: instances: expected a list of mappings, got 3"),
    ];
    let mut failures = Vec::new();
    for (name, files, env, expected) in cases {
        let got = single_error(files, env);
        if got != *expected {
            failures.push(format!(
                "{name}:\n  expected: {expected}\n  got:      {got}"
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn missing_config_dir_is_fatal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope");
    let err = load(&missing, &|_| None).expect_err("missing dir must fail");
    assert!(matches!(err, ConfigError::DirNotFound { .. }));
    assert_eq!(
        err.to_string(),
        format!("{}: config directory not found", missing.display())
    );
}

#[test]
fn errors_carry_their_location() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_files(dir.path(), &[("datadog.yaml", "\n\ncheck_runners: 0\n")]);
    let err = load(dir.path(), &|_| None).expect_err("invalid value");
    let location = err.location().expect("file errors have a location");
    assert_eq!(
        (location.path.as_path(), location.line, location.column),
        (Path::new("datadog.yaml"), 3, 16)
    );
}

#[test]
fn histogram_settings_are_lists_checked_item_by_item() {
    let e = single_error(
        &[("datadog.yaml", "histogram_aggregates:\n  - max\n  - p99\n")],
        &[],
    );
    assert!(e.contains("datadog.yaml:3"), "{e}");
    assert!(e.contains("histogram_aggregates"), "{e}");
    assert!(e.contains("unknown aggregate \"p99\""), "{e}");
    let e = single_error(&[("datadog.yaml", "histogram_percentiles: 0.95\n")], &[]);
    assert!(e.contains("expected a list"), "{e}");
    let e = single_error(
        &[("datadog.yaml", "")],
        &[("DD_HISTOGRAM_PERCENTILES", "0.5 95")],
    );
    assert!(e.contains("DD_HISTOGRAM_PERCENTILES"), "{e}");
    assert!(e.contains("between 0 and 1"), "{e}");

    let dir = tempfile::tempdir().expect("tempdir");
    write_files(
        dir.path(),
        &[(
            "datadog.yaml",
            "histogram_aggregates: [max, sum]\nhistogram_percentiles: ['0.5', 0.99]\n",
        )],
    );
    let loaded = load(dir.path(), &|_: &str| None).expect("loads");
    assert_eq!(loaded.agent.histogram_aggregates, ["max", "sum"]);
    assert_eq!(loaded.agent.histogram_percentiles, [0.5, 0.99]);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let env = |k: &str| (k == "DD_HISTOGRAM_AGGREGATES").then(|| "min,avg count".to_string());
    let loaded = load(dir.path(), &env).expect("loads");
    assert_eq!(loaded.agent.histogram_aggregates, ["min", "avg", "count"]);
}
