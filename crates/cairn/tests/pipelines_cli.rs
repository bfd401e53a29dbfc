//! `cairn pipelines test|check` as a pipeline author uses them: the real binary on a real
//! pipelines file, with logs given inline, from a file and on stdin.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

const FILE: &str = r#"pipelines:
  - name: nginx
    filter:
      query: "source:nginx"
    processors:
      - type: grok-parser
        name: parse access
        source: message
        grok:
          support_rules: ""
          match_rules: |
            access_line access %{ip:network.client.ip} %{word:http.method} %{integer:http.status_code} %{word:level}
      - type: status-remapper
        name: status from level
        sources: [level]
"#;

fn cairn(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Pretty JSON values printed one after another.
fn values(out: &[u8]) -> Vec<Value> {
    serde_json::Deserializer::from_slice(out)
        .into_iter::<Value>()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn test_prints_the_processed_log_and_which_processors_touched_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pipelines.yaml");
    std::fs::write(&file, FILE).unwrap();
    let f = file.to_str().unwrap();
    let log =
        r#"{"message": "access 10.0.0.1 GET 404 warn", "ddsource": "nginx", "service": "web"}"#;
    let out = cairn(&["pipelines", "test", f, "--log", log], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let logs = values(&out.stdout);
    assert_eq!(logs.len(), 1, "{}", text(&out.stdout));
    assert_eq!(logs[0]["status"], "warn");
    assert_eq!(logs[0]["service"], "web");
    assert_eq!(logs[0]["attributes"]["http"]["status_code"], 404);
    assert_eq!(logs[0]["attributes"]["network"]["client"]["ip"], "10.0.0.1");
    let err = text(&out.stderr);
    assert!(
        err.contains("pipeline nginx: parse access, status from level"),
        "{err}"
    );

    // --json: log and trace together; logs from a file (one per line) and from stdin.
    let lines = dir.path().join("logs.jsonl");
    std::fs::write(
        &lines,
        format!(
            "{log}\n{}\n",
            json!({"message": "other", "ddsource": "app"})
        ),
    )
    .unwrap();
    let at = format!("@{}", lines.display());
    let out = cairn(
        &["pipelines", "test", f, "--json", "--log", &at, "--log", "-"],
        Some(r#"[{"message": "access 10.0.0.2 POST 500 error", "ddsource": "nginx"}]"#),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let r = values(&out.stdout);
    assert_eq!(r.len(), 3);
    assert_eq!(
        r[0]["trace"]["steps"],
        json!([{"pipeline": "nginx", "processors": ["parse access", "status from level"]}])
    );
    assert_eq!(r[1]["trace"]["steps"], json!([]));
    assert_eq!(r[1]["log"]["message"], "other");
    assert_eq!(r[2]["log"]["status"], "error");
}

#[test]
fn an_invalid_file_exits_2_naming_the_location() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pipelines.yaml");
    std::fs::write(
        &file,
        FILE.replace("%{word:level}", "%{nosuchmatcher:level}"),
    )
    .unwrap();
    let f = file.to_str().unwrap();
    for args in [
        vec!["pipelines", "check", f],
        vec!["pipelines", "test", f, "--log", r#"{"message":"m"}"#],
    ] {
        let out = cairn(&args, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        assert!(
            err.contains(f) && err.contains("nginx") && err.contains("grok"),
            "{err}"
        );
    }
    std::fs::write(&file, FILE).unwrap();
    let out = cairn(&["pipelines", "check", f], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(": ok, 1 pipeline"));

    let out = cairn(&["pipelines", "test", f, "--log", "{not json"], None);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a bad log is bad input, not a processor failure"
    );
    assert!(text(&out.stderr).contains("not a JSON log"));
}

#[test]
fn cairn_intake_refuses_to_start_with_an_invalid_pipelines_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pipelines.yaml");
    std::fs::write(
        &file,
        FILE.replace("%{word:level}", "%{nosuchmatcher:level}"),
    )
    .unwrap();
    let data = dir.path().join("data");
    let out = cairn(
        &[
            "intake",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
            "--pipelines",
            file.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(file.to_str().unwrap()) && err.contains("nginx") && err.contains("grok"),
        "{err}"
    );
}

/// Exit 2 is "what you gave me is wrong" (the file, or a log), 1 only "a processor failed":
/// a script can tell the two apart. An endless file is refused by its type, not read.
#[test]
fn a_file_or_log_that_cannot_be_used_exits_2_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("pipelines.yaml");
    std::fs::write(&good, FILE).unwrap();
    let zero = dir.path().join("zero.yaml");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let garbage = dir.path().join("garbage.yaml");
    std::fs::write(&garbage, [0xff, 0xfe, 0x00, 0x80]).unwrap();
    let missing = dir.path().join("missing.yaml");
    for (args, says) in [
        (
            vec!["pipelines", "check", zero.to_str().unwrap()],
            "not a regular file",
        ),
        (
            vec!["pipelines", "check", garbage.to_str().unwrap()],
            "not UTF-8",
        ),
        (
            vec!["pipelines", "check", missing.to_str().unwrap()],
            "no such file",
        ),
        (
            vec![
                "pipelines",
                "test",
                good.to_str().unwrap(),
                "--log",
                "{not json",
            ],
            "error",
        ),
    ] {
        let out = cairn(&args, None);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
