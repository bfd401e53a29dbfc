//! Issue 12 item 6 against the real agent: `cairn run` evaluates `logs_config.intake.monitors`
//! on its embedded intake, `cairn status` shows the monitors section (counts by state, each
//! group not OK), and `cairn monitors list` finds the intake the config names.

mod support;

use std::path::Path;
use std::time::Duration;

use support::{wait_for, Cairn, ConfigDir};

#[test]
fn cairn_status_shows_the_monitors_of_the_embedded_intake() {
    let dir = ConfigDir::copy_of(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/seed"),
        &["run"],
    );
    let file = dir.join("monitors.yaml");
    dir.write(
        "monitors.yaml",
        "monitors:\n  - id: 11\n    name: any log\n    query: 'logs(\"*\").rollup(\"count\").last(\"5m\") > 0'\n  - id: 12\n    name: never\n    query: 'logs(\"service:nothing-logs-this\").rollup(\"count\").last(\"5m\") > 0'\n",
    );
    let mut agent = Cairn::new(dir.path(), &["run"])
        // The embedded intake runs only when no logs destination is configured.
        .env_remove("DD_LOGS_CONFIG_LOGS_DD_URL")
        .env("DD_LOGS_CONFIG_INTAKE_LISTEN", "127.0.0.1:0")
        .env("DD_LOGS_CONFIG_BATCH_WAIT", "1")
        .env(
            "DD_LOGS_CONFIG_INTAKE_MONITORS",
            &file.display().to_string(),
        )
        .env("DD_LOGS_CONFIG_INTAKE_MONITOR_INTERVAL", "1")
        .spawn();
    let explorer = agent.explorer_url(Duration::from_secs(30));
    agent.wait_for_stderr("cairn started", Duration::from_secs(30));

    let mut text = String::new();
    let alerting = wait_for(Duration::from_secs(60), || {
        text = Cairn::new(dir.path(), &["status"]).run().stdout;
        text.contains("Alert: 1")
    });
    assert!(alerting, "no alerting monitor in status:\n{text}");
    assert!(text.contains("Monitors\n========"), "{text}");
    assert!(
        text.contains("Monitors: 2  OK: 1  Warn: 0  Alert: 1  No Data: 0"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("Alert") && l.contains("any log (11) *")),
        "{text}"
    );

    let base = explorer.split("/?").next().unwrap().trim_end_matches('/');
    let out = Cairn::new(dir.path(), &["monitors", "list", "--url", base]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("11 ") && l.contains("Alert")),
        "{}",
        out.stdout
    );
}
