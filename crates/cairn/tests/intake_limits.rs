//! Issue 8, item 5, against the real binaries with their default limits: 100 connections
//! each sending 5.9 MB of a 6 MB body and then stalling, plus 200 connections trickling a
//! request head, neither grow `cairn intake` or `cairn run` to hundreds of megabytes nor
//! stop them from serving; trickled heads are cut after the 10 s head timeout; without the
//! token no body byte is buffered; `cairn run` delivers its check's logs once the attack ends.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use support::*;

/// The peak resident memory of process `pid` so far, in MiB.
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib / 1024
}

fn addr_and_token(explorer: &str) -> (SocketAddr, String) {
    let rest = explorer.strip_prefix("http://").unwrap();
    let (host, token) = rest.split_once("/?token=").unwrap();
    (host.parse().unwrap(), token.to_owned())
}

/// Status code of a request sent over a fresh connection.
fn request(addr: SocketAddr, raw: &str) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n])
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn validate(addr: SocketAddr, token: &str) -> u16 {
    request(
        addr,
        &format!(
            "GET /api/v1/validate HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
             Connection: close\r\n\r\n"
        ),
    )
}

/// The attack of the issue: `n` connections each announcing 6 MB, sending 5.9 MB of it, then
/// stalling until `stop`. Counts the 503s seen.
struct Stallers {
    threads: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    refused: Arc<AtomicUsize>,
}

impl Stallers {
    fn start(addr: SocketAddr, token: Option<&str>, n: usize) -> Stallers {
        let stop = Arc::new(AtomicBool::new(false));
        let refused = Arc::new(AtomicUsize::new(0));
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let threads = (0..n)
            .map(|_| {
                let (stop, refused, auth) = (stop.clone(), refused.clone(), auth.clone());
                std::thread::spawn(move || {
                    let Ok(mut s) = TcpStream::connect(addr) else {
                        return;
                    };
                    let head = format!(
                        "POST /api/v2/logs HTTP/1.1\r\nHost: {addr}\r\n{auth}\
                         Content-Type: application/json\r\nContent-Length: 6000000\r\n\r\n"
                    );
                    if s.write_all(head.as_bytes()).is_ok() {
                        let chunk = vec![b' '; 100_000];
                        for _ in 0..59 {
                            if s.write_all(&chunk).is_err() {
                                break;
                            }
                        }
                    }
                    s.set_read_timeout(Some(Duration::from_millis(200)))
                        .unwrap();
                    let mut buf = [0u8; 512];
                    while !stop.load(Ordering::Relaxed) {
                        match s.read(&mut buf) {
                            Ok(0) => break,
                            Ok(n) => {
                                if String::from_utf8_lossy(&buf[..n]).contains(" 503 ") {
                                    refused.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                            Err(_) => break,
                        }
                    }
                })
            })
            .collect();
        Stallers {
            threads,
            stop,
            refused,
        }
    }

    fn end(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        self.refused.load(Ordering::Relaxed)
    }
}

/// `n` connections that send a request head one byte at a time, every 500 ms; returns how
/// many the server had closed by the end of `for_`.
fn trickle_heads(addr: SocketAddr, n: usize, for_: Duration) -> JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut conns: Vec<Option<TcpStream>> = (0..n)
            .map(|_| {
                let s = TcpStream::connect(addr).unwrap();
                s.set_nonblocking(true).unwrap();
                Some(s)
            })
            .collect();
        let head =
            b"POST /api/v2/logs HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        let started = Instant::now();
        let mut i = 0;
        while started.elapsed() < for_ {
            for slot in &mut conns {
                let Some(s) = slot else { continue };
                let mut buf = [0u8; 64];
                let closed = match s.read(&mut buf) {
                    Ok(0) => true,
                    Ok(_) => false,
                    Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
                };
                if closed || s.write_all(&head[i % head.len()..][..1]).is_err() {
                    *slot = None;
                }
            }
            i += 1;
            std::thread::sleep(Duration::from_millis(500));
        }
        conns.iter().filter(|c| c.is_none()).count()
    })
}

#[test]
fn cairn_intake_stays_small_and_serving_under_stalled_bodies_and_trickled_heads() {
    let dir = ConfigDir::empty();
    let data = dir.join("intake");
    let mut intake = dir
        .cairn(&[
            "intake",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
        ])
        .timeout(Duration::from_secs(120))
        .spawn();
    let (addr, token) = addr_and_token(&intake.explorer_url(Duration::from_secs(30)));
    intake.wait_for_stderr("local intake started", Duration::from_secs(30));
    let before = peak_rss_mib(intake.pid());

    // Without the token: refused from the headers, nothing buffered.
    let anonymous = Stallers::start(addr, None, 100);
    std::thread::sleep(Duration::from_secs(2));
    anonymous.end();
    let after_anonymous = peak_rss_mib(intake.pid());
    assert!(
        after_anonymous < before + 40,
        "100 unauthenticated 6 MB bodies grew the intake from {before} to {after_anonymous} MiB"
    );

    let trickled = trickle_heads(addr, 200, Duration::from_secs(14));
    let stallers = Stallers::start(addr, Some(&token), 100);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(validate(addr, &token), 200, "the intake stopped serving");
    let peak = peak_rss_mib(intake.pid());
    let closed = trickled.join().unwrap();
    let refused = stallers.end();
    assert!(
        peak < 250,
        "100 stalled 6 MB bodies took the intake to {peak} MiB (was {before} MiB)"
    );
    assert!(
        refused >= 50,
        "only {refused} of 100 stalled bodies were answered 503"
    );
    assert_eq!(closed, 200, "trickling connections left open after 14 s");
    assert_eq!(validate(addr, &token), 200);
    assert!(!intake.has_exited());
    eprintln!(
        "intake peak RSS: {before} MiB idle, {after_anonymous} MiB after unauthenticated bodies, \
         {peak} MiB under attack; {refused} bodies answered 503; {closed} trickled heads cut"
    );
}

const CHECK: &str = r#"
from datadog_checks.base import AgentCheck

class Steady(AgentCheck):
    def check(self, instance):
        n = int(self.get_log_cursor() or 0) + 1
        self.send_log({"message": "steady %d" % n}, cursor=str(n))
"#;

#[test]
fn cairn_run_keeps_its_checks_and_delivers_after_an_attack_on_its_intake() {
    let dir = ConfigDir::new();
    dir.check_py("steady", CHECK)
        .conf(
            "steady",
            "instances:\n  - min_collection_interval: 1\nlogs:\n  - type: integration\n    source: steady\n    service: steady\n",
        );
    let mut agent = dir
        .cairn(&["run"])
        .env_remove("DD_LOGS_CONFIG_LOGS_DD_URL")
        .env("DD_LOGS_CONFIG_INTAKE_LISTEN", "127.0.0.1:0")
        .env("DD_LOGS_CONFIG_BATCH_WAIT", "1")
        .timeout(Duration::from_secs(120))
        .spawn();
    let explorer = agent.explorer_url(Duration::from_secs(30));
    agent.wait_for_stderr("cairn started", Duration::from_secs(30));
    let (addr, token) = addr_and_token(&explorer);
    assert_eq!(
        std::fs::read_to_string(dir.join("run/auth_token"))
            .unwrap()
            .trim(),
        token
    );
    let before = peak_rss_mib(agent.pid());
    let stallers = Stallers::start(addr, Some(&token), 100);
    std::thread::sleep(Duration::from_secs(4));
    let peak = peak_rss_mib(agent.pid());
    assert_eq!(validate(addr, &token), 200);
    stallers.end();
    assert!(
        peak < 300,
        "100 stalled 6 MB bodies took cairn run to {peak} MiB (was {before} MiB)"
    );
    // The check kept running during the attack, and what it sent arrives once it ends.
    let base = format!("http://{addr}");
    let delivered = wait_for(Duration::from_secs(20), || {
        let out = dir
            .cairn(&[
                "logs", "search", "steady", "--json", "--from", "1h", "--url", &base,
            ])
            .run();
        out.stdout.lines().count() >= 6
    });
    assert!(
        delivered,
        "the check's logs did not arrive after the attack:\n{}",
        agent.stderr_so_far()
    );
    assert!(!agent.has_exited());
    eprintln!("cairn run peak RSS: {before} MiB before, {peak} MiB under attack");
}
