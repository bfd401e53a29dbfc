//! The forwarder against a real HTTP server on 127.0.0.1: SPEC §4's policy per answer, every
//! drop counted, a restart delivering what the spool kept, and a full disk (a real tmpfs,
//! root only) losing nothing while the agent runs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_forwarder::{Encoding, Endpoint, Forwarder, ForwarderConfig};
use cairn_logs::sender::Backoff;

/// (path, DD-API-KEY, body, status answered).
type Seen = Arc<Mutex<Vec<(String, String, Vec<u8>, u16)>>>;

/// A server answering each request with the next status of `script` (then 202), recording
/// (path, api key, body).
struct Server {
    url: String,
    seen: Seen,
}

impl Server {
    fn start(script: &[u16]) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen: Seen = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(script.to_vec()));
        let (s2, sc2) = (seen.clone(), script.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (seen, script) = (s2.clone(), sc2.clone());
                std::thread::spawn(move || {
                    let mut r = BufReader::new(conn.try_clone().unwrap());
                    let mut w = conn;
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let path = line.split(' ').nth(1).unwrap_or("").to_string();
                        let (mut len, mut key) = (0usize, String::new());
                        loop {
                            let mut h = String::new();
                            r.read_line(&mut h).unwrap();
                            let h = h.trim_end();
                            if h.is_empty() {
                                break;
                            }
                            let (k, v) = h.split_once(':').unwrap();
                            match k.to_ascii_lowercase().as_str() {
                                "content-length" => len = v.trim().parse().unwrap(),
                                "dd-api-key" => key = v.trim().to_string(),
                                _ => {}
                            }
                        }
                        let mut body = vec![0; len];
                        r.read_exact(&mut body).unwrap();
                        let status = {
                            let mut s = script.lock().unwrap();
                            if s.is_empty() {
                                202
                            } else {
                                s.remove(0)
                            }
                        };
                        seen.lock().unwrap().push((path, key, body, status));
                        let resp = format!(
                            "HTTP/1.1 {status} X\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{{}}"
                        );
                        if w.write_all(resp.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Server { url, seen }
    }

    fn delivered(&self) -> Vec<Vec<u8>> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|r| (200..300).contains(&r.3))
            .map(|r| r.2.clone())
            .collect()
    }
}

fn config(url: &str, spool: &Path) -> ForwarderConfig {
    ForwarderConfig {
        base_url: url.to_string(),
        api_key: cairn_config::Secret::new("fwd-key-0123456789"),
        spool_dir: spool.to_path_buf(),
        max_spool_bytes: 64 << 20,
        http_timeout: Duration::from_secs(2),
        backoff: Backoff {
            base: Duration::from_millis(20),
            factor: 2.0,
            max: Duration::from_millis(200),
        },
        version: "test".into(),
    }
}

fn wait(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

#[test]
fn each_answer_is_handled_as_spec_section_4_says_and_every_drop_is_counted() {
    // 503 and 429 retried, 401 kept and retried, 400 and 413 dropped.
    let server = Server::start(&[503, 429, 401, 400, 413]);
    let dir = tempfile::tempdir().unwrap();
    let fwd = Forwarder::start(config(&server.url, &dir.path().join("spool"))).unwrap();
    for i in 0..3u8 {
        fwd.enqueue(Endpoint::Series, Encoding::Identity, 10, vec![i; 50]);
    }
    assert!(wait(Duration::from_secs(10), || server.delivered().len() == 1));
    let snap = fwd.snapshot();
    // The first payload met 503, 429, 401 then 400: dropped; the second met 413: dropped;
    // the third was delivered.
    assert_eq!(server.delivered(), vec![vec![2u8; 50]]);
    assert_eq!(snap.series.items_dropped.get("rejected"), Some(&10));
    assert_eq!(snap.series.items_dropped.get("too_large"), Some(&10));
    assert_eq!(snap.series.items_sent, 10);
    assert_eq!(snap.series.retries, 3);
    assert_eq!(snap.series.payloads_queued, 0);
    let seen = server.seen.lock().unwrap().clone();
    assert!(seen
        .iter()
        .all(|r| r.0 == "/api/v2/series" && r.1 == "fwd-key-0123456789"));
    let last = snap.last_error.unwrap_or_default();
    assert!(!last.contains("fwd-key-0123456789"), "{last}");
    fwd.shutdown(Duration::from_secs(1));
}

#[test]
fn what_was_not_delivered_before_a_stop_is_delivered_after_the_restart() {
    let down = Server::start(&[503; 1000]);
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let fwd = Forwarder::start(config(&down.url, &spool)).unwrap();
    fwd.enqueue(Endpoint::Series, Encoding::Zstd, 3, b"series".to_vec());
    fwd.enqueue(Endpoint::CheckRun, Encoding::Identity, 2, b"[1,2]".to_vec());
    fwd.enqueue(Endpoint::Events, Encoding::Identity, 1, b"{}".to_vec());
    let snap = fwd.shutdown(Duration::from_millis(300));
    assert_eq!(snap.series.payloads_queued, 1);
    assert!(down.delivered().is_empty());

    let up = Server::start(&[]);
    let fwd = Forwarder::start(config(&up.url, &spool)).unwrap();
    assert!(wait(Duration::from_secs(5), || up.delivered().len() == 3));
    let paths: Vec<String> = up
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.0.clone())
        .collect();
    assert_eq!(
        paths,
        ["/api/v2/series", "/api/v1/check_run", "/api/v1/events"]
    );
    let snap = fwd.shutdown(Duration::from_secs(1));
    assert_eq!(
        (
            snap.series.items_sent,
            snap.service_checks.items_sent,
            snap.events.items_sent
        ),
        (3, 2, 1)
    );
    assert!(
        std::fs::read_dir(&spool).unwrap().next().is_none(),
        "spool emptied"
    );
}

#[test]
fn a_failing_endpoint_does_not_hold_the_others_up() {
    // The series' first attempt gets a 503 and backs off for 2.5-5 s; a service-check
    // payload enqueued meanwhile goes at once.
    let server = Server::start(&[503]);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&server.url, &dir.path().join("spool"));
    cfg.backoff.base = Duration::from_secs(5);
    cfg.backoff.max = Duration::from_secs(5);
    let fwd = Forwarder::start(cfg).unwrap();
    fwd.enqueue(Endpoint::Series, Encoding::Identity, 1, b"s".to_vec());
    assert!(wait(Duration::from_secs(2), || server
        .seen
        .lock()
        .unwrap()
        .len()
        == 1));
    fwd.enqueue(Endpoint::CheckRun, Encoding::Identity, 1, b"[]".to_vec());
    assert!(wait(Duration::from_secs(2), || server.delivered().len() == 1));
    let seen: Vec<(String, u16)> = server
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|r| (r.0.clone(), r.3))
        .collect();
    assert_eq!(
        seen,
        [
            ("/api/v2/series".to_string(), 503),
            ("/api/v1/check_run".to_string(), 202)
        ]
    );
    fwd.shutdown(Duration::from_millis(100));
}

/// A tmpfs, unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_keeps_payloads_in_memory_and_delivers_them() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: mounting a tmpfs needs root; this test runs a real full disk");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let at = dir.path().join("disk");
    std::fs::create_dir_all(&at).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs"])
        .arg(&at)
        .status()
        .unwrap();
    assert!(ok.success());
    let _tmpfs = Tmpfs(at.clone());
    let server = Server::start(&[503, 503, 503, 503, 503]);
    let fwd = Forwarder::start(config(&server.url, &at.join("spool"))).unwrap();
    // Fill what is left of the disk.
    let filler = std::fs::write(at.join("filler"), vec![0u8; 300 << 10]);
    assert!(filler.is_err(), "the tmpfs should be full");
    for i in 0..4u8 {
        fwd.enqueue(Endpoint::Series, Encoding::Identity, 5, vec![i; 40_000]);
    }
    assert!(wait(Duration::from_secs(10), || server.delivered().len() == 4));
    let snap = fwd.shutdown(Duration::from_secs(1));
    assert!(snap.series.not_durable_payloads >= 1, "{snap:?}");
    assert_eq!(snap.series.items_sent, 20);
    assert!(snap.series.items_dropped.is_empty(), "{snap:?}");
    let mut got = server.delivered();
    got.sort();
    assert_eq!(got, (0..4u8).map(|i| vec![i; 40_000]).collect::<Vec<_>>());
}
