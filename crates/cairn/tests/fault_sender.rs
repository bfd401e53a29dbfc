//! The sender against a faulty intake, with a real `cairn run`: a `Retry-After` is capped at
//! `sender_backoff_max`; refused, reset and timed-out requests are each named for what they
//! are, with their whole cause; a URL password never shows; a `?dd-api-key=` in
//! `logs_dd_url` is refused at start. The intake here is scripted per request, so each test
//! decides exactly what the agent meets.

mod pipeline_common;

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use pipeline_common::{API_KEY, CAIRN, NUMBERS_PY};
use serde_json::Value;

/// What the scripted intake does with one request.
#[derive(Debug, Clone, PartialEq)]
enum Act {
    /// 202 `{}`.
    Accept,
    /// This status, with these extra header lines (each ending in `\r\n`).
    Respond(u16, String),
    /// Read the request, then reset the connection (SO_LINGER 0 and close: an RST, no FIN).
    Reset,
    /// Read the request and never answer.
    Hang,
}

#[derive(Debug, Clone)]
struct Request {
    at: Instant,
    headers: HashMap<String, String>,
    /// Logs in the (uncompressed) body.
    logs: usize,
    act: Act,
}

struct Script {
    /// Taken one per request; `then` once empty.
    next: VecDeque<Act>,
    then: Act,
}

struct ScriptedIntake {
    addr: SocketAddr,
    script: Arc<Mutex<Script>>,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
}

impl ScriptedIntake {
    fn start(first: &[Act], then: Act) -> ScriptedIntake {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the scripted intake");
        listener.set_nonblocking(true).expect("nonblocking");
        let intake = ScriptedIntake {
            addr: listener.local_addr().expect("local addr"),
            script: Arc::new(Mutex::new(Script {
                next: first.iter().cloned().collect(),
                then,
            })),
            requests: Arc::new(Mutex::new(Vec::new())),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (script, requests, stop) = (
            intake.script.clone(),
            intake.requests.clone(),
            intake.stop.clone(),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (script, requests, stop) =
                            (script.clone(), requests.clone(), stop.clone());
                        std::thread::spawn(move || serve(stream, &script, &requests, &stop));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        intake
    }

    fn set_then(&self, act: Act) {
        let mut s = self.script.lock().unwrap();
        s.next.clear();
        s.then = act;
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    fn delivered_logs(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.act == Act::Accept)
            .map(|r| r.logs)
            .sum()
    }
}

impl Drop for ScriptedIntake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn serve(
    stream: TcpStream,
    script: &Mutex<Script>,
    requests: &Mutex<Vec<Request>>,
    stop: &AtomicBool,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let act = {
            let mut s = script.lock().unwrap();
            let then = s.then.clone();
            s.next.pop_front().unwrap_or(then)
        };
        let logs = serde_json::from_slice::<Vec<Value>>(&body).map_or(0, |v| v.len());
        requests.lock().unwrap().push(Request {
            at: Instant::now(),
            headers,
            logs,
            act: act.clone(),
        });
        let (status, extra) = match act {
            Act::Accept => (202, String::new()),
            Act::Respond(status, extra) => (status, extra),
            Act::Reset => {
                reset(writer);
                return;
            }
            Act::Hang => {
                while !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                return;
            }
        };
        let resp = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: 2\r\n{extra}\r\n{{}}"
        );
        if writer.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

/// Closes with an RST: a zero linger time makes `close` abort the connection.
fn reset(stream: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket descriptor and a correctly sized `linger`.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setting SO_LINGER");
    drop(stream);
}

/// A config dir with the numbered check sending `total` logs, shipping to `url`.
fn config_dir(url: &str, logs_config_extra: &str, total: u32) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("cairn-fault-")
        .tempdir()
        .expect("temp dir");
    let p = dir.path();
    let timeout = if logs_config_extra.contains("http_timeout") {
        ""
    } else {
        "  http_timeout: 2\n"
    };
    std::fs::create_dir_all(p.join("conf.d/numbers.d")).unwrap();
    std::fs::create_dir_all(p.join("checks.d")).unwrap();
    std::fs::write(
        p.join("datadog.yaml"),
        format!(
            "logs_enabled: true\napi_key: {API_KEY}\nhostname: test-host\nlogs_config:\n  logs_dd_url: {url}\n  use_compression: false\n  batch_wait: 0.1\n  sender_backoff_base: 0.05\n{timeout}{logs_config_extra}"
        ),
    )
    .unwrap();
    std::fs::write(
        p.join("conf.d/numbers.d/conf.yaml"),
        format!(
            "init_config:\ninstances:\n  - min_collection_interval: 0.2\n    per_run: {total}\n    total: {total}\nlogs:\n  - type: integration\n    source: numbers\n"
        ),
    )
    .unwrap();
    std::fs::write(p.join("checks.d/numbers.py"), NUMBERS_PY).unwrap();
    dir
}

/// `cairn <args>` on `dir` at `CAIRN_LOG=debug`, stderr to a file, the environment cleaned.
struct Agent {
    child: Option<Child>,
    stderr: PathBuf,
    counters: PathBuf,
}

impl Agent {
    fn spawn(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Agent {
        let stderr = dir.join("stderr.log");
        let counters = dir.join("counters.json");
        let mut cmd = Command::new(CAIRN);
        cmd.arg("-c").arg(dir).args(args);
        if args.first() == Some(&"run") {
            cmd.arg("--counters-file").arg(&counters);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        for (k, _) in std::env::vars() {
            if k.starts_with("DD_") || k.starts_with("CAIRN_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("CAIRN_LOG", "debug");
        for (k, v) in env {
            cmd.env(k, v);
        }
        Agent {
            child: Some(cmd.spawn().expect("starting cairn")),
            stderr,
            counters,
        }
    }

    fn run(dir: &Path) -> Agent {
        Agent::spawn(dir, &["run", "--grace-secs", "2"], &[])
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn counters_text(&self) -> String {
        std::fs::read_to_string(&self.counters).unwrap_or_default()
    }

    fn counters(&self) -> Value {
        serde_json::from_str(&self.counters_text()).unwrap_or(Value::Null)
    }

    fn last_error(&self) -> String {
        self.counters()["last_error"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn wait_for(&self, limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
        let t = Instant::now();
        while !cond() {
            assert!(
                t.elapsed() < limit,
                "timed out after {limit:?} waiting for {what}; counters: {}\nstderr:\n{}",
                self.counters_text(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits up to `limit` for the process to exit by itself; `None` if it did not.
    fn exit_code(&mut self, limit: Duration) -> Option<i32> {
        let child = self.child.as_mut()?;
        let t = Instant::now();
        while t.elapsed() < limit {
            if let Some(status) = child.try_wait().expect("waiting for cairn") {
                return Some(status.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// SIGTERM, and the exit code.
    fn stop(&mut self) -> i32 {
        if let Some(c) = &self.child {
            // SAFETY: signalling our own child by its pid.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
        }
        self.exit_code(Duration::from_secs(10))
            .expect("cairn exits after SIGTERM")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `t` as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn http_date(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Time from the first request answered 429 to the request after it.
fn gap_after_first_429(intake: &ScriptedIntake) -> Duration {
    let reqs = intake.requests();
    let first = reqs
        .iter()
        .position(|r| matches!(r.act, Act::Respond(429, _)))
        .expect("a 429 was sent");
    reqs[first + 1].at - reqs[first].at
}

#[test]
fn a_429_asking_for_an_hour_waits_only_sender_backoff_max() {
    let too_many = Act::Respond(429, "Retry-After: 3600\r\n".into());
    let intake = ScriptedIntake::start(&[too_many], Act::Accept);
    let dir = config_dir(
        &format!("http://{}", intake.addr),
        "  sender_backoff_max: 2\n",
        5,
    );
    let mut agent = Agent::run(dir.path());
    agent.wait_for(Duration::from_secs(20), "the first 429", || {
        !intake.requests().is_empty()
    });
    agent.wait_for(
        Duration::from_secs(6),
        "delivery after a capped wait",
        || intake.delivered_logs() == 5,
    );
    let gap = gap_after_first_429(&intake);
    assert!(
        gap >= Duration::from_millis(1800) && gap < Duration::from_secs(4),
        "retried {gap:?} after the 429: expected sender_backoff_max (2 s)"
    );
    assert_eq!(agent.stop(), 0);
}

#[test]
fn a_429_with_an_http_date_is_honoured_and_a_garbage_one_falls_back_to_the_backoff() {
    // A date ~5 s ahead (1 s resolution), well below sender_backoff_max, while the backoff
    // itself would be 25-50 ms. It is fixed before the agent starts, and a loaded machine may
    // take a second or two to start it, so only "well over the backoff" is asserted.
    let date = http_date(SystemTime::now() + Duration::from_secs(5));
    let intake = ScriptedIntake::start(
        &[
            Act::Respond(429, format!("Retry-After: {date}\r\n")),
            Act::Respond(429, "Retry-After: whenever\r\n".into()),
        ],
        Act::Accept,
    );
    let dir = config_dir(
        &format!("http://{}", intake.addr),
        "  sender_backoff_max: 10\n",
        5,
    );
    let mut agent = Agent::run(dir.path());
    agent.wait_for(Duration::from_secs(25), "delivery", || {
        intake.delivered_logs() == 5
    });
    let reqs = intake.requests();
    let date_wait = reqs[1].at - reqs[0].at;
    assert!(
        date_wait >= Duration::from_millis(1000) && date_wait < Duration::from_secs(7),
        "an HTTP-date Retry-After ~5 s ahead waited {date_wait:?}"
    );
    let garbage_wait = reqs[2].at - reqs[1].at;
    assert!(
        garbage_wait < Duration::from_secs(1),
        "a garbage Retry-After falls back to the (50 ms) backoff, waited {garbage_wait:?}"
    );
    assert_eq!(agent.stop(), 0);
}

#[test]
fn a_refused_connection_is_reported_as_refused_with_its_cause() {
    // A port nobody listens on: bound, then closed.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = config_dir(
        &format!("http://127.0.0.1:{port}"),
        "  sender_backoff_max: 0.5\n",
        5,
    );
    let mut agent = Agent::run(dir.path());
    agent.wait_for(Duration::from_secs(20), "an error in the counters", || {
        !agent.last_error().is_empty()
    });
    let last = agent.last_error();
    assert!(
        last.starts_with("sending to the intake failed (connection refused): "),
        "{last}"
    );
    // The whole chain, down to the OS error.
    assert!(
        last.contains("tcp connect error") && last.contains("Connection refused"),
        "{last}"
    );
    assert_eq!(agent.stop(), 0);
    let log = agent.log();
    assert!(log.contains("kind=\"connection_refused\""), "{log}");
    assert!(!log.contains("kind=\"timeout\""), "{log}");
    assert_no_repeated_message(&log, "Connection refused");
}

#[test]
fn a_reset_connection_is_reported_as_a_reset_not_a_timeout_and_nothing_is_lost() {
    let intake = ScriptedIntake::start(&[Act::Reset, Act::Reset, Act::Reset], Act::Accept);
    let dir = config_dir(
        &format!("http://{}", intake.addr),
        "  sender_backoff_max: 0.5\n",
        5,
    );
    let mut agent = Agent::run(dir.path());
    agent.wait_for(Duration::from_secs(20), "delivery after the resets", || {
        intake.delivered_logs() == 5
    });
    assert_eq!(agent.stop(), 0);
    let log = agent.log();
    let failures: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("sending to the intake failed"))
        .collect();
    assert!(!failures.is_empty(), "{log}");
    for line in &failures {
        assert!(
            line.contains("kind=\"connection_reset\"") && line.contains("reset by peer"),
            "{line}"
        );
    }
    assert!(!log.contains("kind=\"timeout\""), "{log}");
}

#[test]
fn a_request_that_gets_no_answer_is_a_timeout() {
    let intake = ScriptedIntake::start(&[Act::Hang], Act::Accept);
    let dir = config_dir(
        &format!("http://{}", intake.addr),
        "  sender_backoff_max: 0.5\n  http_timeout: 1\n",
        5,
    );
    let mut agent = Agent::run(dir.path());
    agent.wait_for(
        Duration::from_secs(20),
        "delivery after the timeout",
        || intake.delivered_logs() == 5,
    );
    assert_eq!(agent.stop(), 0);
    let log = agent.log();
    let line = log
        .lines()
        .find(|l| l.contains("sending to the intake failed"))
        .unwrap_or_else(|| panic!("no failure logged: {log}"));
    // Named, and with its cause rather than only "error sending request".
    assert!(
        line.contains("kind=\"timeout\"") && line.contains("timed out"),
        "{line}"
    );
}

#[test]
fn a_url_password_works_and_appears_nowhere() {
    // Failing until the counters file (written every second) has shown the error.
    let intake = ScriptedIntake::start(&[Act::Respond(500, String::new())], Act::Reset);
    let url = format!("http://user:SECRETPASS@{}", intake.addr);
    let dir = config_dir(&url, "  sender_backoff_max: 0.5\n", 5);
    let mut agent = Agent::run(dir.path());
    agent.wait_for(Duration::from_secs(20), "an error in the counters", || {
        !agent.last_error().is_empty()
    });
    let counters_during_errors = agent.counters_text();
    intake.set_then(Act::Accept);
    agent.wait_for(Duration::from_secs(20), "delivery", || {
        intake.delivered_logs() == 5
    });
    assert_eq!(agent.stop(), 0);
    let log = agent.log();
    assert!(!log.contains("SECRETPASS"), "{log}");
    assert!(!counters_during_errors.contains("SECRETPASS"));
    assert!(!agent.counters_text().contains("SECRETPASS"));
    assert!(
        log.contains("http://user:********@127.0.0.1"),
        "the URL is shown redacted: {log}"
    );
    // It works: the userinfo became basic auth.
    for r in intake.requests() {
        assert_eq!(
            r.headers.get("authorization").map(String::as_str),
            Some("Basic dXNlcjpTRUNSRVRQQVNT")
        );
    }
    // Nor does configcheck print it.
    let mut check = Agent::spawn(dir.path(), &["configcheck"], &[]);
    assert_eq!(check.exit_code(Duration::from_secs(20)), Some(0));
    assert!(!check.log().contains("SECRETPASS"));
}

#[test]
fn a_query_string_in_logs_dd_url_is_refused_at_start_without_showing_the_key() {
    let dir = config_dir("http://127.0.0.1:9/?dd-api-key=SECRETKEY0123", "", 5);
    for args in [&["run"][..], &["configcheck"][..]] {
        let mut agent = Agent::spawn(dir.path(), args, &[]);
        let code = agent.exit_code(Duration::from_secs(15));
        let log = agent.log();
        assert!(
            code.is_some_and(|c| c != 0),
            "{args:?}: exit {code:?}; {log}"
        );
        assert!(
            log.contains(
                "datadog.yaml:5:16: logs_config.logs_dd_url: a query string is not supported"
            ) && log.contains("api_key"),
            "{args:?}: {log}"
        );
        assert!(!log.contains("SECRETKEY0123"), "{log}");
    }
    // The same through the environment override.
    let dir = config_dir("http://127.0.0.1:9", "", 5);
    let mut agent = Agent::spawn(
        dir.path(),
        &["run"],
        &[(
            "DD_LOGS_CONFIG_LOGS_DD_URL",
            "http://127.0.0.1:9?dd-api-key=SECRETKEY0123",
        )],
    );
    let code = agent.exit_code(Duration::from_secs(15));
    let log = agent.log();
    assert!(code.is_some_and(|c| c != 0), "exit {code:?}; {log}");
    assert!(
        log.contains("DD_LOGS_CONFIG_LOGS_DD_URL: a query string is not supported"),
        "{log}"
    );
    assert!(!log.contains("SECRETKEY0123"), "{log}");
}

/// No line holds the same cause twice (reqwest's wrappers tend to repeat their inner error).
fn assert_no_repeated_message(log: &str, needle: &str) {
    for line in log
        .lines()
        .filter(|l| l.contains("sending to the intake failed"))
    {
        assert!(
            line.matches(needle).count() <= 1,
            "{needle:?} printed twice: {line}"
        );
    }
}
