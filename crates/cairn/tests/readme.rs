//! README.md's commands, run for real, and the quickstart's three checks.
//!
//! `every_readme_command_runs`: every line of every fenced `sh` block of README.md is either run
//! (against the real binary, in a temporary copy of `examples/`, on free ports) or skipped
//! because it is on the explicit list below (`cargo` other than `cargo run`, `scripts/test-all`,
//! `sudo`, `systemctl`, `apt-get`, `journalctl`). A line the test does not recognise fails it,
//! so a new kind of command in the README needs a decision here. `cairn run` is started in the
//! background (and must print the Log Explorer URL), the commands after it run while it runs,
//! and it is stopped with SIGTERM at the end. A command whose comment says `exits N` must exit
//! with N; every other one must exit 0. Every failure is collected and reported with its output.

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::{messages, runs, Cairn, ConfigDir, Output, Running};

/// The file `examples/quickstart`'s `tail_file` check tails, as the README names it.
const QUICKSTART_LOG: &str = "/tmp/cairn-quickstart.log";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding a free port")
        .port()
}

/// One command line of a `sh` block: where it is, its words, and its trailing `# comment`.
#[derive(Debug)]
struct ReadmeCommand {
    line: usize,
    text: String,
    words: Vec<String>,
    comment: String,
}

/// Splits a shell line into words (single and double quotes, no expansion) and its comment.
fn shell_words(line: &str) -> (Vec<String>, String) {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quote: Option<char> = None;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.get_or_insert_with(String::new).push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                word.get_or_insert_with(String::new);
            }
            (None, '#') if word.is_none() => {
                return (words, line[i + 1..].trim().to_string());
            }
            (None, c) if c.is_whitespace() => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            (None, c) => word.get_or_insert_with(String::new).push(c),
        }
    }
    assert!(quote.is_none(), "unbalanced quote in README line {line:?}");
    if let Some(w) = word.take() {
        words.push(w);
    }
    (words, String::new())
}

/// Every command line of README.md's fenced `sh` blocks (indented blocks too).
fn readme_commands(readme: &str) -> Vec<ReadmeCommand> {
    let mut out = Vec::new();
    let mut in_sh = false;
    let mut in_other = false;
    for (i, raw) in readme.lines().enumerate() {
        let line = raw.trim();
        if let Some(info) = line.strip_prefix("```") {
            if in_sh || in_other {
                in_sh = false;
                in_other = false;
            } else if info.trim() == "sh" {
                in_sh = true;
            } else {
                in_other = true;
            }
            continue;
        }
        if !in_sh || line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (words, comment) = shell_words(line);
        out.push(ReadmeCommand {
            line: i + 1,
            text: line.to_string(),
            words,
            comment,
        });
    }
    out
}

/// What the test does with a README command.
#[derive(Debug, PartialEq)]
enum Action {
    /// Not run here, with the reason (needs root, a package install, or is the test suite).
    Skip(&'static str),
    /// The binary with these arguments.
    Cairn(Vec<String>),
    /// A plain shell command (`echo ... >> file`, `cat file`), run with `sh -c`.
    Shell,
}

/// The explicit list: anything else fails the test.
fn classify(cmd: &ReadmeCommand) -> Option<Action> {
    let words: Vec<&str> = cmd.words.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["cargo", "run", rest @ ..] => {
            let dashes = rest.iter().position(|w| *w == "--")?;
            Some(Action::Cairn(
                rest[dashes + 1..].iter().map(|w| w.to_string()).collect(),
            ))
        }
        ["cargo", ..] => Some(Action::Skip("builds or installs with cargo")),
        ["scripts/test-all", ..] => {
            Some(Action::Skip("the whole test suite, which runs this test"))
        }
        ["sudo", ..] => Some(Action::Skip("needs root")),
        ["systemctl", ..] | ["journalctl", ..] => Some(Action::Skip("needs systemd")),
        ["apt-get", ..] => Some(Action::Skip("installs packages")),
        ["cairn", rest @ ..] => Some(Action::Cairn(rest.iter().map(|w| w.to_string()).collect())),
        ["echo", ..] | ["cat", ..] => Some(Action::Shell),
        _ => None,
    }
}

/// The exit code a command's comment promises (`# exits 1: ...`), else 0.
fn expected_code(cmd: &ReadmeCommand) -> i32 {
    cmd.comment
        .split_once("exits ")
        .and_then(|(_, rest)| {
            rest.trim_start()
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// A temp dir holding copies of `examples/quickstart` and `examples/seed` (without their
/// `run/`), each on its own free ports, with the quickstart's tailed file inside the temp dir.
struct Workspace {
    root: ConfigDir,
    tailed: PathBuf,
}

impl Workspace {
    fn new() -> Self {
        let root = ConfigDir::empty();
        for name in ["quickstart", "seed"] {
            let copy = ConfigDir::copy_of(&repo_root().join("examples").join(name), &["run"]);
            copy_dir(copy.path(), &root.join(&format!("examples/{name}")));
        }
        let tailed = root.join("cairn-quickstart.log");
        let quickstart_yaml = root
            .read("examples/quickstart/datadog.yaml")
            .replace("127.0.0.1:10518", &format!("127.0.0.1:{}", free_port()))
            .replace("cmd_port: 5001", &format!("cmd_port: {}", free_port()));
        assert!(
            !quickstart_yaml.contains("10518") && !quickstart_yaml.contains("5001"),
            "the quickstart's datadog.yaml names its ports as the test expects: {quickstart_yaml}"
        );
        root.write("examples/quickstart/datadog.yaml", &quickstart_yaml);
        let seed_yaml = format!(
            "{}\ncmd_port: {}\nlogs_config:\n  intake:\n    listen: 127.0.0.1:{}\n",
            root.read("examples/seed/datadog.yaml"),
            free_port(),
            free_port()
        );
        root.write("examples/seed/datadog.yaml", &seed_yaml);
        let conf = "examples/quickstart/conf.d/tail_file.d/conf.yaml";
        let tail_conf = root.read(conf);
        assert!(
            tail_conf.contains(QUICKSTART_LOG),
            "{conf} tails {QUICKSTART_LOG}"
        );
        root.write(
            conf,
            &tail_conf.replace(QUICKSTART_LOG, &tailed.display().to_string()),
        );
        Workspace { root, tailed }
    }

    /// The command's words with the README's tailed file replaced by this workspace's.
    fn localise(&self, word: &str) -> String {
        word.replace(QUICKSTART_LOG, &self.tailed.display().to_string())
    }

    /// `cairn ARGS` as the README writes it, run with its `-c DIR` resolved in the workspace.
    fn cairn(&self, args: &[String]) -> Cairn {
        let mut config_dir = self.root.path().to_path_buf();
        let mut rest = Vec::new();
        let mut words = args.iter().map(|w| self.localise(w));
        while let Some(w) = words.next() {
            if w == "-c" || w == "--config-dir" {
                let dir = words.next().expect("-c takes a directory");
                config_dir = self.root.join(&dir);
            } else if let Some(dir) = w.strip_prefix("--config-dir=") {
                config_dir = self.root.join(dir);
            } else {
                rest.push(w);
            }
        }
        let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
        // The README's agent ships to its embedded intake, not to the tests' sink.
        Cairn::new(&config_dir, &rest).env_remove("DD_LOGS_CONFIG_LOGS_DD_URL")
    }

    fn shell(&self, text: &str) -> std::process::Output {
        Command::new("sh")
            .arg("-c")
            .arg(self.localise(text))
            .current_dir(self.root.path())
            .stdin(Stdio::null())
            .output()
            .expect("running sh")
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("creating a dir");
    for entry in std::fs::read_dir(from).expect("reading a dir") {
        let entry = entry.expect("reading a dir entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copying a file");
        }
    }
}

/// Commands that follow until stopped: run for a few seconds, then killed.
fn follows(args: &[String]) -> bool {
    let words: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|w| !w.starts_with('-'))
        .collect();
    matches!(words.first(), Some(&"stream-logs")) || words.starts_with(&["logs", "tail"])
}

fn is_run(args: &[String]) -> bool {
    args.iter().any(|w| w == "run")
        && args
            .iter()
            .find(|w| !w.starts_with('-') && !w.contains('/'))
            == Some(&"run".to_string())
}

#[test]
fn every_readme_command_runs() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("reading README.md");
    let commands = readme_commands(&readme);
    // The README opens with exactly two commands: start the agent, run all tests.
    let first_two: Vec<Option<Action>> = commands.iter().take(2).map(classify).collect();
    assert!(
        matches!(&first_two[0], Some(Action::Cairn(a)) if is_run(a)),
        "README's first command starts the agent: {:?}",
        commands.first()
    );
    assert_eq!(
        first_two[1],
        Some(Action::Skip("the whole test suite, which runs this test")),
        "README's second command runs all tests"
    );

    let ws = Workspace::new();
    let mut agent: Option<Running> = None;
    let mut failures: Vec<String> = Vec::new();
    let mut ran = 0;
    let mut skipped = Vec::new();
    for cmd in &commands {
        let Some(action) = classify(cmd) else {
            panic!(
                "README.md:{}: `{}` is not a command this test knows how to run or skip; \
                 add it to `classify` in crates/cairn/tests/readme.rs",
                cmd.line, cmd.text
            );
        };
        let want = expected_code(cmd);
        match action {
            Action::Skip(why) => {
                skipped.push(format!("README.md:{}: {} ({why})", cmd.line, cmd.text))
            }
            Action::Shell => {
                ran += 1;
                let out = ws.shell(&cmd.text);
                if out.status.code() != Some(want) {
                    failures.push(format!(
                        "README.md:{}: `{}` exited {:?}, expected {want}\n--- stderr ---\n{}",
                        cmd.line,
                        cmd.text,
                        out.status.code(),
                        String::from_utf8_lossy(&out.stderr)
                    ));
                }
            }
            Action::Cairn(args) if is_run(&args) => {
                ran += 1;
                assert!(
                    agent.is_none(),
                    "README.md:{}: a second `cairn run`",
                    cmd.line
                );
                let running = ws.cairn(&args).spawn();
                let url = running.explorer_url(Duration::from_secs(30));
                assert!(
                    url.contains("?token="),
                    "the Explorer URL carries the token: {url}"
                );
                let mut running = running;
                running.wait_for_stderr("cairn started", Duration::from_secs(30));
                agent = Some(running);
            }
            Action::Cairn(args) if follows(&args) => {
                ran += 1;
                let mut running = ws.cairn(&args).spawn();
                std::thread::sleep(Duration::from_secs(3));
                if running.has_exited() {
                    let out = running.wait();
                    if out.code != Some(want) {
                        failures.push(format!(
                            "README.md:{}: `{}` stopped early\n{}",
                            cmd.line,
                            cmd.text,
                            out.dump()
                        ));
                    }
                }
                // Still following: as documented. Dropping it kills it.
            }
            Action::Cairn(args) => {
                ran += 1;
                let out: Output = ws.cairn(&args).run();
                if out.code != Some(want) {
                    failures.push(format!(
                        "README.md:{}: `{}` exited {:?}, expected {want}\n{}",
                        cmd.line,
                        cmd.text,
                        out.code,
                        out.dump()
                    ));
                }
            }
        }
    }
    if let Some(agent) = agent {
        let out = agent.sigterm(Duration::from_secs(30));
        if out.code != Some(0) {
            failures.push(format!(
                "`cairn run` did not stop cleanly on SIGTERM\n{}",
                out.dump()
            ));
        }
    }
    eprintln!(
        "ran {ran} README commands; skipped:\n  {}",
        skipped.join("\n  ")
    );
    assert!(
        ran >= 10,
        "the README shows at least ten runnable commands, found {ran}"
    );
    assert!(
        failures.is_empty(),
        "{} README command(s) failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn readme_shell_words_and_comments() {
    let cases: &[(&str, &[&str], &str)] = &[
        (
            "cairn check -c d x",
            &["cairn", "check", "-c", "d", "x"],
            "",
        ),
        (
            "cairn logs search \"service:a b\"   # find",
            &["cairn", "logs", "search", "service:a b"],
            "find",
        ),
        ("echo 'a # b' >> f", &["echo", "a # b", ">>", "f"], ""),
        (
            "cairn check x   # exits 1: boom",
            &["cairn", "check", "x"],
            "exits 1: boom",
        ),
        (
            "cairn metrics query \"avg:m{*}\"",
            &["cairn", "metrics", "query", "avg:m{*}"],
            "",
        ),
    ];
    for (line, words, comment) in cases {
        let (w, c) = shell_words(line);
        assert_eq!(w, *words, "{line}");
        assert_eq!(c, *comment, "{line}");
    }
    let cmd = |text: &str| {
        let (words, comment) = shell_words(text);
        ReadmeCommand {
            line: 1,
            text: text.to_string(),
            words,
            comment,
        }
    };
    assert_eq!(expected_code(&cmd("cairn check x # exits 1: boom")), 1);
    assert_eq!(expected_code(&cmd("cairn check x")), 0);
    assert_eq!(
        classify(&cmd("rm -rf /")),
        None,
        "an unknown command is not silently skipped"
    );
    assert_eq!(
        classify(&cmd(
            "cargo run --release -p cairn -- run -c examples/quickstart"
        )),
        Some(Action::Cairn(vec![
            "run".into(),
            "-c".into(),
            "examples/quickstart".into()
        ]))
    );
}

// ---- the quickstart's checks -------------------------------------------------------------

fn quickstart() -> (ConfigDir, PathBuf) {
    let dir = ConfigDir::copy_of(&repo_root().join("examples/quickstart"), &["run"]);
    let tailed = dir.join("tailed.log");
    let conf = "conf.d/tail_file.d/conf.yaml";
    let text = dir
        .read(conf)
        .replace(QUICKSTART_LOG, &tailed.display().to_string());
    dir.write(conf, &text);
    (dir, tailed)
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("opening the tailed file");
    f.write_all(text.as_bytes()).expect("appending");
}

/// One persisted run of `tail_file` (the cursor is written, as `cairn run` would): its logs.
#[track_caller]
fn tail_run(dir: &ConfigDir) -> (Vec<String>, Value) {
    let (out, json) = dir.check_json("tail_file", &["--persist"]);
    out.assert_code(0);
    let run = runs(&json)[0].clone();
    assert_eq!(run["error"], Value::Null, "{run:#}");
    (messages(&run), run)
}

#[test]
fn tail_file_sends_new_lines_once_and_restarts_after_rotation_or_truncation() {
    let (dir, tailed) = quickstart();

    // No file yet: a warning, no error.
    let (out, json) = dir.check_json("tail_file", &[]);
    out.assert_code(0);
    let warnings = runs(&json)[0]["warnings"].to_string();
    assert!(warnings.contains("does not exist yet"), "{json:#}");

    append(&tailed, "first\nsecond\n");
    let (logs, run) = tail_run(&dir);
    assert_eq!(logs, ["first", "second"]);
    let log = &run["logs"][0];
    assert_eq!(log["service"], "quickstart");
    assert_eq!(log["ddsource"], "tail_file");
    assert_eq!(log["file_path"], tailed.display().to_string());

    // The next run sends only what was appended; a half-written line waits.
    append(&tailed, "third\nfour");
    assert_eq!(tail_run(&dir).0, ["third"]);
    assert!(tail_run(&dir).0.is_empty(), "nothing new, nothing sent");
    append(&tailed, "th\n");
    assert_eq!(tail_run(&dir).0, ["fourth"]);

    // Within one process too (cursors carry over between --times runs).
    append(&tailed, "fifth\n");
    let (out, json) = dir.check_json("tail_file", &["--times", "2"]);
    out.assert_code(0);
    assert_eq!(messages(&runs(&json)[0]), ["fifth"]);
    assert!(messages(&runs(&json)[1]).is_empty(), "{json:#}");

    // Rotation: the old file moves away, a new one (another inode) takes its name.
    let old_inode = std::fs::metadata(&tailed).unwrap().ino();
    std::fs::rename(&tailed, dir.join("tailed.log.1")).unwrap();
    append(&tailed, "after rotation\n");
    assert_ne!(std::fs::metadata(&tailed).unwrap().ino(), old_inode);
    // ("fifth" was not persisted by the --times run, so it comes from the old file's cursor.)
    assert_eq!(tail_run(&dir).0, ["after rotation"]);

    // Truncation: same inode, shorter than the cursor.
    std::fs::write(&tailed, "").unwrap();
    append(&tailed, "t\n");
    assert_eq!(tail_run(&dir).0, ["t"]);
}

#[test]
fn system_stats_reports_proc_gauges_rates_a_service_check_and_the_kernel_version() {
    let (dir, _) = quickstart();
    let (out, json) = dir.check_json("system_stats", &["--check-rate"]);
    out.assert_code(0);
    let run = &runs(&json)[0];
    assert_eq!(run["error"], Value::Null, "{run:#}");
    let metrics = run["metrics"].as_array().expect("metrics");
    let kind_of = |name: &str| {
        metrics
            .iter()
            .find(|m| m["name"] == name)
            .map(|m| m["type"].as_str().unwrap_or("").to_string())
            .unwrap_or_else(|| panic!("no {name} in {run:#}"))
    };
    for gauge in [
        "quickstart.system.load.1",
        "quickstart.system.load.5",
        "quickstart.system.load.15",
        "quickstart.system.mem.total_kb",
        "quickstart.system.mem.available_kb",
        "quickstart.system.uptime",
    ] {
        assert_eq!(kind_of(gauge), "gauge", "{gauge}");
    }
    assert_eq!(
        kind_of("quickstart.system.cpu.busy_ticks"),
        "monotonic_count"
    );
    assert_eq!(kind_of("quickstart.system.cpu.idle_ticks"), "rate");
    let total = metrics
        .iter()
        .find(|m| m["name"] == "quickstart.system.mem.total_kb")
        .unwrap();
    assert!(total["value"].as_f64().unwrap() > 0.0, "{total}");
    assert_eq!(
        total["tags"],
        serde_json::json!(["env:dev", "example:quickstart"])
    );

    let checks = run["service_checks"].as_array().expect("service_checks");
    assert_eq!(checks.len(), 1, "{run:#}");
    assert_eq!(checks[0]["name"], "quickstart.can_read_proc");
    assert_eq!(checks[0]["status"], 0, "OK");
    let version = run["metadata"]["version.raw"]
        .as_str()
        .expect("version metadata");
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert!(release.starts_with(version), "{version} vs {release}");
}

#[test]
fn buggy_shows_its_error_with_a_traceback_and_exits_non_zero() {
    let (dir, _) = quickstart();
    let out = dir.cairn(&["check", "buggy"]).run();
    out.assert_code(1);
    for needle in [
        "ZeroDivisionError: division by zero",
        "Traceback (most recent call last)",
        "buggy.py",
        "return 100 / divisor",
    ] {
        assert!(
            out.stdout.contains(needle),
            "{needle:?} not shown\n{}",
            out.dump()
        );
    }

    // Every other run fails: the second of two runs succeeds, and the log sent before the
    // failure is still there.
    let (out, json) = dir.check_json("buggy", &["--times", "2"]);
    out.assert_code(1);
    let runs = runs(&json);
    assert!(
        runs[0]["error"].to_string().contains("ZeroDivisionError"),
        "{json:#}"
    );
    assert_eq!(runs[1]["error"], Value::Null, "{json:#}");
    assert_eq!(messages(&runs[0]), ["buggy run 1 starting"]);

    // An unknown instance key is a configuration error naming the key.
    let conf = "conf.d/buggy.d/conf.yaml";
    dir.write(
        conf,
        &dir.read(conf)
            .replace("divisor: 0", "divisor: 0\n    colour: red"),
    );
    let out = dir.cairn(&["check", "buggy"]).run();
    out.assert_code(1);
    assert!(
        out.stdout.contains("ConfigurationError") && out.stdout.contains("colour"),
        "{}",
        out.dump()
    );
}
