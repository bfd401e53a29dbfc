//! `logs_dd_url` secrets (a query string refused, a password never echoed) and the payload
//! size limits, from the file and from `DD_*` overrides. Error lines are asserted exactly:
//! they are the operator's interface.

use cairn_config::{load, redact_url, LoadedConfig};

fn load_with(yaml: &str, env: &[(&str, &str)]) -> Result<LoadedConfig, String> {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("datadog.yaml"), yaml).expect("write datadog.yaml");
    let env_fn = |name: &str| {
        env.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    };
    load(dir.path(), &env_fn).map_err(|e| e.to_string())
}

fn error_of(yaml: &str, env: &[(&str, &str)]) -> String {
    match load_with(yaml, env) {
        Err(e) => e,
        Ok(_) => panic!("expected {yaml:?} / {env:?} to be refused"),
    }
}

const QUERY_REFUSED: &str = "a query string is not supported (Cairn appends /api/v2/logs to \
    this base URL); give the API key as api_key (or DD_API_KEY), not as ?dd-api-key=";

#[test]
fn a_query_string_in_logs_dd_url_is_refused_without_echoing_it() {
    let yaml = "logs_config:\n  logs_dd_url: https://intake.example/?dd-api-key=KEY0123456789\n";
    let e = error_of(yaml, &[]);
    assert_eq!(
        e,
        format!("datadog.yaml:2:16: logs_config.logs_dd_url: {QUERY_REFUSED}")
    );
    let e = error_of(
        "",
        &[(
            "DD_LOGS_CONFIG_LOGS_DD_URL",
            "http://127.0.0.1:9?dd-api-key=KEY0123456789",
        )],
    );
    assert_eq!(e, format!("DD_LOGS_CONFIG_LOGS_DD_URL: {QUERY_REFUSED}"));
    // The scheme-less form too.
    let e = error_of(
        "logs_config:\n  logs_dd_url: host:10516?k=KEY0123456789\n",
        &[],
    );
    assert!(e.contains(QUERY_REFUSED) && !e.contains("KEY0123"), "{e}");
    let e = error_of(
        "logs_config:\n  logs_dd_url: http://host:1/#KEY0123456789\n",
        &[],
    );
    assert_eq!(
        e,
        "datadog.yaml:2:16: logs_config.logs_dd_url: a fragment (#...) is not supported in the \
         base URL of the logs intake"
    );
}

#[test]
fn a_url_password_keeps_working_but_never_shows_in_errors() {
    let l = load_with(
        "logs_config:\n  logs_dd_url: http://user:SECRETPASS@127.0.0.1:9/base\n",
        &[],
    )
    .expect("a URL with userinfo is accepted");
    assert_eq!(
        l.agent.logs_intake_url().as_deref(),
        Some("http://user:SECRETPASS@127.0.0.1:9/base")
    );
    assert_eq!(
        redact_url(&l.agent.logs_intake_url().unwrap()),
        "http://user:********@127.0.0.1:9/base"
    );
    let debug = format!("{l:?}");
    assert!(
        !debug.contains("SECRETPASS") && debug.contains("user:********@127.0.0.1:9"),
        "{debug}"
    );
    // Refused for its shape: the value is quoted, masked.
    let e = error_of(
        "logs_config:\n  logs_dd_url: ftp://user:SECRETPASS@host\n",
        &[],
    );
    assert_eq!(
        e,
        "datadog.yaml:2:16: logs_config.logs_dd_url: expected host:port or an http:// or \
         https:// URL, got \"ftp://user:********@host\""
    );
    let e = error_of(
        "",
        &[(
            "DD_LOGS_CONFIG_LOGS_DD_URL",
            "user:SECRETPASS@host-without-port",
        )],
    );
    assert_eq!(
        e,
        "DD_LOGS_CONFIG_LOGS_DD_URL: expected host:port or an http:// or https:// URL, got \
         \"user:********@host-without-port\""
    );
    let e = error_of(
        "logs_config:\n  logs_dd_url: \"http://u:SECRETPASS@\"\n",
        &[],
    );
    assert!(!e.contains("SECRETPASS"), "{e}");
    // Any other string value refused for its type is masked as well.
    let e = error_of("cmd_port: \"http://u:SECRETPASS@h\"\n", &[]);
    assert!(
        !e.contains("SECRETPASS") && e.contains("u:********@h"),
        "{e}"
    );
}

#[test]
fn payload_limits_are_bounded_by_what_the_buffer_can_hold() {
    let e = error_of("logs_config:\n  batch_max_content_size: 100000000\n", &[]);
    assert_eq!(
        e,
        "datadog.yaml:2:27: logs_config.batch_max_content_size: expected an integer between 1 \
         and 33554432, got 100000000"
    );
    let e = error_of("", &[("DD_LOGS_CONFIG_BATCH_MAX_CONTENT_SIZE", "67108864")]);
    assert_eq!(
        e,
        "DD_LOGS_CONFIG_BATCH_MAX_CONTENT_SIZE: expected an integer between 1 and 33554432, got \
         \"67108864\""
    );
    let e = error_of("logs_config:\n  max_message_size_bytes: 40000000\n", &[]);
    assert_eq!(
        e,
        "datadog.yaml:2:27: logs_config.max_message_size_bytes: expected an integer between 1 \
         and 33554432, got 40000000"
    );
    let e = error_of("logs_config:\n  batch_max_size: 0\n", &[]);
    assert_eq!(
        e,
        "datadog.yaml:2:19: logs_config.batch_max_size: expected an integer >= 1, got 0"
    );
    let l = load_with("logs_config:\n  batch_max_content_size: 33554432\n", &[]).unwrap();
    assert_eq!(l.agent.logs.batch_max_content_size, 32 << 20);
}
