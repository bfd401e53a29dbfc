//! Issue 8 against the real binaries: `cairn intake` and `cairn run` print an Explorer URL
//! with a token, keep the token in a 0600 file reused across restarts, refuse every route
//! without it, refuse 0.0.0.0 without a token, never log a key given in a URL; `cairn run`'s
//! own sender and `cairn logs search` use the token; another Unix user can do nothing.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

fn cairn() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
    for (k, _) in std::env::vars() {
        if k.starts_with("DD_") || k.starts_with("CAIRN_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// A running `cairn` whose stdout+stderr lines are kept.
struct Proc {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    explorer: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Spawns and waits for `Log Explorer: <url>` and then a line containing `ready`.
    fn start(mut cmd: Command, ready: &str) -> Proc {
        let mut child = cmd
            .env("CAIRN_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<String>();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        for stream in [
            Box::new(out) as Box<dyn std::io::Read + Send>,
            Box::new(err) as Box<dyn std::io::Read + Send>,
        ] {
            let (tx, lines) = (tx.clone(), lines.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line.clone());
                    let _ = tx.send(line);
                }
            });
        }
        drop(tx);
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut explorer = None;
        let mut is_ready = false;
        loop {
            let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            else {
                panic!("did not start:\n{}", lines.lock().unwrap().join("\n"));
            };
            if let Some(url) = line.strip_prefix("Log Explorer: ") {
                explorer = Some(url.trim().to_owned());
            }
            is_ready |= line.contains(ready);
            if is_ready && explorer.is_some() {
                break;
            }
        }
        Proc {
            child,
            lines,
            explorer: explorer.unwrap(),
        }
    }

    fn base(&self) -> String {
        self.explorer.split("/?").next().unwrap().to_owned()
    }

    fn token(&self) -> String {
        self.explorer
            .split("?token=")
            .nth(1)
            .expect("the URL carries the token")
            .to_owned()
    }

    fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }
}

/// `curl` status code of one request; `args` are extra curl arguments.
fn curl(prefix: &[&str], method: &str, url: &str, args: &[&str]) -> u16 {
    let mut cmd = Command::new(prefix.first().copied().unwrap_or("curl"));
    if !prefix.is_empty() {
        cmd.args(&prefix[1..]).arg("curl");
    }
    let out = cmd
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", method])
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

fn routes_refuse_without_token(prefix: &[&str], base: &str) {
    for (method, route) in cairn_routes() {
        let url = format!("{base}{}", route.replace("{key}", ""));
        let body: &[&str] = if method == "POST" {
            &[
                "-H",
                "content-type: application/json",
                "-d",
                r#"[{"message":"forged"}]"#,
            ]
        } else {
            &[]
        };
        assert_eq!(curl(prefix, method, &url, body), 401, "{method} {route}");
    }
}

/// Every route of the intake, from the intake itself so a new route cannot be missed here,
/// except `/v1/input/{key}`, which needs a key in its path.
fn cairn_routes() -> impl Iterator<Item = (&'static str, &'static str)> {
    cairn_intake::ROUTES
        .iter()
        .copied()
        .filter(|(_, route)| !route.contains('{'))
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn search(extra: &[&str], base: &str, query: &str) -> std::process::Output {
    cairn()
        .args([
            "logs", "search", query, "--json", "--from", "1h", "--url", base,
        ])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn cairn_intake_needs_its_token_everywhere_and_keeps_it_private_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("intake");
    let start = || {
        let mut cmd = cairn();
        cmd.args([
            "intake",
            "--listen",
            "127.0.0.1:0",
            "--api-key",
            "url-key-0123456789",
        ])
        .arg("--data-dir")
        .arg(&data);
        Proc::start(cmd, "local intake started")
    };
    let p = start();
    let (base, token) = (p.base(), p.token());
    assert!(base.starts_with("http://127.0.0.1:"), "{}", p.explorer);
    let file = data.join("auth_token");
    assert_eq!(mode(&file), 0o600);
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), token);
    routes_refuse_without_token(&[], &base);
    let bearer = format!("Authorization: Bearer {token}");
    let ddkey = format!("DD-API-KEY: {token}");
    for h in [&bearer, &ddkey] {
        let code = curl(
            &[],
            "POST",
            &format!("{base}/api/v2/logs"),
            &["-H", h, "-d", r#"[{"message":"hello with token"}]"#],
        );
        assert_eq!(code, 202, "{h}");
    }
    // A key in the URL (Datadog compatibility) works and is never logged.
    for url in [
        format!("{base}/api/v2/logs?dd-api-key=url-key-0123456789"),
        format!("{base}/v1/input/url-key-0123456789"),
    ] {
        let code = curl(
            &[],
            "POST",
            &url,
            &["-d", r#"[{"message":"hello with key"}]"#],
        );
        assert_eq!(code, 202, "{url}");
    }
    let out = search(&["--token-file", file.to_str().unwrap()], &base, "hello");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 4);
    // Without the token the CLI is told what to do.
    let out = search(&[], &base, "hello");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    let logged = p.output();
    let without_url = logged.replace(&p.explorer, "<printed URL>");
    assert!(!without_url.contains(&token), "token logged:\n{logged}");
    assert!(
        !logged.contains("url-key-0123456789"),
        "key logged:\n{logged}"
    );
    drop(p);
    let again = start();
    assert_eq!(again.token(), token, "the token file is reused");
}

#[test]
fn listening_beyond_loopback_without_a_token_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = cairn()
        .args(["intake", "--listen", "0.0.0.0:0", "--no-auth", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to listen on 0.0.0.0:0 without a token"),
        "{err}"
    );
    // With the (default) token it starts, and the printed URL is reachable, not 0.0.0.0.
    let mut cmd = cairn();
    cmd.args(["intake", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path());
    let p = Proc::start(cmd, "local intake started");
    assert!(!p.explorer.contains("0.0.0.0"), "{}", p.explorer);
    let code = curl(
        &[],
        "GET",
        &format!("{}/?token={}", p.base(), p.token()),
        &[],
    );
    assert_eq!(code, 303, "{}", p.explorer);
}

fn seed_copy() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/seed");
    let status = Command::new("cp")
        .arg("-r")
        .arg(format!("{}/.", from.display()))
        .arg(tmp.path())
        .status()
        .unwrap();
    assert!(status.success());
    let _ = std::fs::remove_dir_all(tmp.path().join("run"));
    tmp
}

fn start_agent(dir: &Path) -> Proc {
    let mut cmd = cairn();
    cmd.arg("-c")
        .arg(dir)
        .arg("run")
        .env("DD_LOGS_CONFIG_INTAKE_LISTEN", "127.0.0.1:0")
        .env("DD_LOGS_CONFIG_BATCH_WAIT", "1");
    Proc::start(cmd, "cairn started")
}

#[test]
fn cairn_run_ships_to_its_intake_with_the_token_and_cairn_logs_finds_it_in_run_path() {
    let dir = seed_copy();
    let agent = start_agent(dir.path());
    let base = agent.base();
    let token = agent.token();
    let file = dir.path().join("run").join("auth_token");
    assert_eq!(mode(&file), 0o600);
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), token);
    routes_refuse_without_token(&[], &base);
    // The agent's own sender got in: its logs are there, found with the run_path token.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = cairn()
            .arg("-c")
            .arg(dir.path())
            .args([
                "logs",
                "search",
                "source:cursor_log",
                "--json",
                "--url",
                &base,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.stdout.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "no logs:\n{}", agent.output());
        std::thread::sleep(Duration::from_millis(200));
    }
    let logged = agent.output().replace(&agent.explorer, "<printed URL>");
    assert!(!logged.contains(&token), "token logged:\n{logged}");
    drop(agent);
    let again = start_agent(dir.path());
    assert_eq!(again.token(), token, "reused across restarts");
}

#[test]
fn another_unix_user_can_neither_read_the_token_nor_use_the_intake() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to create a second user with useradd");
        return;
    }
    let user = format!("cairnt{}", std::process::id() % 100_000);
    let made = Command::new("useradd")
        .args(["--no-create-home", "--shell", "/usr/sbin/nologin", &user])
        .status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("skipped: useradd {user} failed");
        return;
    }
    struct DelUser(String);
    impl Drop for DelUser {
        fn drop(&mut self) {
            let _ = Command::new("userdel").arg(&self.0).status();
        }
    }
    let _del = DelUser(user.clone());
    let dir = tempfile::tempdir().unwrap();
    // Let the other user reach the token file's directory, so only the file's mode stops it.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("intake");
    let mut cmd = cairn();
    cmd.args(["intake", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data);
    let p = Proc::start(cmd, "local intake started");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = data.join("auth_token");
    let as_other = ["runuser", "-u", user.as_str(), "--"];
    let cat = Command::new("runuser")
        .args(["-u", &user, "--", "cat"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!cat.status.success(), "the other user read the token file");
    let base = p.base();
    routes_refuse_without_token(&as_other, &base);
    let out = Command::new("runuser")
        .args([
            "-u",
            &user,
            "--",
            env!("CARGO_BIN_EXE_cairn"),
            "logs",
            "search",
            "*",
        ])
        .args(["--url", &base, "--token-file"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Nothing the other user sent landed.
    let out = search(&["--token", &p.token()], &base, "forged");
    assert!(out.status.success());
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
