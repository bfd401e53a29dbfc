//! The durable buffer under faults, through the real `cairn run`: bytes flipped and segments
//! deleted on disk, a truncated snapshot, a full disk (a real 30 MB tmpfs), the run_path
//! deleted or made unusable while running, 1,100 idle connections against a low descriptor
//! limit, symlinks planted in run_path, and `kill -9` during recovery itself.
//!
//! "Nothing lost" here: every log the check sent is delivered or counted as dropped, and the
//! counts name the check; a log is lost only if its own bytes were destroyed.

mod pipeline_common;

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pipeline_common::*;

fn segments(run: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(run.join("buffer"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .filter(|p| std::fs::metadata(p).unwrap().len() > 0)
        .collect();
    v.sort();
    v
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// An agent whose numbered check sends `total` logs, buffered (intake failing) in segments of
/// `max_size_bytes / 8`.
fn backlogged_agent(intake: &Intake, total: u64, max_size_bytes: u64) -> Agent {
    intake.set_mode(Mode::Status(500));
    let mut agent = Agent::new(
        intake,
        &format!("  buffer:\n    max_size_bytes: {max_size_bytes}\n"),
        &format!("    per_run: 500\n    total: {total}"),
    );
    agent.start();
    wait_for(
        &agent,
        Duration::from_secs(60),
        "the check to send everything",
        || agent.counter("logs_processed") >= total,
    );
    agent.sigterm(Duration::from_secs(10));
    agent
}

fn drain(agent: &mut Agent, intake: &Intake, want_at_least: u64) -> BTreeMap<u64, u32> {
    intake.set_mode(Mode::Accept);
    agent.start();
    wait_for(
        agent,
        Duration::from_secs(60),
        "the backlog to be delivered",
        || {
            let n = intake.delivered_numbers();
            n.len() as u64 >= want_at_least && agent.counter("buffer_records") == 0
        },
    );
    intake.delivered_numbers()
}

#[test]
fn one_flipped_byte_loses_only_its_own_log_and_later_segments_are_kept() {
    let intake = Intake::start();
    let run = |a: &Agent| a.path().join("run");
    let mut agent = backlogged_agent(&intake, 6000, 4 << 20);
    let segs = segments(&run(&agent));
    assert!(segs.len() >= 3, "the test needs several segments: {segs:?}");
    // A byte inside log 1000's payload, in an early segment; and the first byte of the second
    // segment (its first record).
    let (seg, at) = segs
        .iter()
        .find_map(|p| {
            let bytes = std::fs::read(p).unwrap();
            find(&bytes, b"\"number 1000 ").map(|at| (p.clone(), at + 20))
        })
        .expect("log 1000 in some segment");
    assert_ne!(
        seg,
        *segs.last().unwrap(),
        "log 1000 must be in an early segment"
    );
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[at] ^= 0x01;
    std::fs::write(&seg, &bytes).unwrap();
    let mut bytes = std::fs::read(&segs[1]).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&segs[1], &bytes).unwrap();

    let numbers = drain(&mut agent, &intake, 5999);
    assert_eq!(missing(&numbers), vec![1000], "only log 1000 may be lost");
    assert_eq!(*numbers.keys().next_back().unwrap(), 5999);
    assert_eq!(agent.dropped("corrupt"), 1, "counted in logs, not segments");
    let c = agent.counters();
    let per_check: u64 = c["checks"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v["logs_dropped"]["corrupt"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(per_check, 1, "the check is named: {c}");
    assert!(c["buffer_corrupt_bytes"].as_u64().unwrap() > 0);
    assert!(
        agent.log().contains("records after them are kept"),
        "{}",
        agent.log()
    );
}

#[test]
fn a_deleted_middle_segment_loses_only_its_logs_counted_exactly() {
    let intake = Intake::start();
    let mut agent = backlogged_agent(&intake, 7000, 4 << 20);
    let segs = segments(&agent.path().join("run"));
    assert!(segs.len() >= 3, "the test needs several segments: {segs:?}");
    let gone_bytes = std::fs::read(&segs[1]).unwrap();
    let gone = gone_bytes.windows(8).filter(|w| w == b"\"number ").count() as u64;
    std::fs::remove_file(&segs[1]).unwrap();
    let numbers = drain(&mut agent, &intake, 7000 - gone);
    assert_eq!(missing(&numbers).len() as u64, gone);
    assert_eq!(*numbers.keys().next_back().unwrap(), 6999);
    assert_eq!(agent.dropped("corrupt"), gone, "{}", agent.counters());
    assert!(
        agent.counters()["logs_dropped_unattributed"]
            .as_object()
            .is_none_or(|m| m.is_empty()),
        "the next segment's intro names the check: {}",
        agent.counters()
    );
}

#[test]
fn a_truncated_snapshot_does_not_stop_the_agent() {
    let intake = Intake::start();
    intake.set_mode(Mode::Accept);
    // Small segments, so delivered ones are deleted and a snapshot written.
    let mut agent = Agent::new(
        &intake,
        "  buffer:\n    max_size_bytes: 100000\n",
        "    per_run: 200\n    total: 3000",
    );
    agent.start();
    let snap = agent.path().join("run/buffer/state.snapshot");
    wait_for(&agent, Duration::from_secs(60), "a snapshot", || {
        snap.exists() && intake.delivered_numbers().len() >= 3000
    });
    agent.sigterm(Duration::from_secs(10));
    let bytes = std::fs::read(&snap).unwrap();
    std::fs::write(&snap, &bytes[..bytes.len() / 3]).unwrap();
    let _ = std::fs::remove_file(agent.path().join("run/buffer/state.snapshot.prev"));
    // More to send after the restart: the agent starts, and the check carries on.
    let conf = agent.path().join("conf.d/numbers.d/conf.yaml");
    let text = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(&conf, text.replace("total: 3000", "total: 4000")).unwrap();
    agent.start();
    wait_for(&agent, Duration::from_secs(60), "the new logs", || {
        intake.delivered_numbers().contains_key(&3999)
    });
    assert!(agent.is_running());
    let log = agent.log();
    assert!(log.contains("state.snapshot is unreadable"), "{log}");
    assert!(missing(&intake.delivered_numbers()).is_empty());
}

/// A tmpfs of `mb` MB, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, mb: u32) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mb}m,mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .status()
            .expect("running mount");
        assert!(
            ok.success(),
            "mounting a tmpfs needs root (CAP_SYS_ADMIN); this test runs a real full disk"
        );
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A check that sends numbered ~1 KB logs without cursors and records how many it sent.
const NO_CURSOR_PY: &str = r#"
import os
from datadog_checks.base import AgentCheck

PAD = 'z' * 900
HERE = os.path.dirname(__file__)

class NoCursorCheck(AgentCheck):
    n = 0
    def check(self, instance):
        if os.path.exists(os.path.join(HERE, 'STOP')):
            return
        for _ in range(int(instance.get('per_run', 500))):
            self.send_log({'message': 'nc %d %s' % (NoCursorCheck.n, PAD), 'num': NoCursorCheck.n})
            NoCursorCheck.n += 1
        with open(os.path.join(HERE, 'PRODUCED.tmp'), 'w') as f:
            f.write(str(NoCursorCheck.n))
        os.replace(os.path.join(HERE, 'PRODUCED.tmp'), os.path.join(HERE, 'PRODUCED'))
"#;

fn no_cursor_agent(intake: &Intake, when_full: &str, run_path: &Path) -> Agent {
    let agent = Agent::new(
        intake,
        &format!("  buffer:\n    max_size_bytes: 64000000\n    when_full: {when_full}\n"),
        "",
    );
    let p = agent.path();
    std::fs::remove_dir_all(p.join("conf.d/numbers.d")).unwrap();
    std::fs::create_dir_all(p.join("conf.d/nocursor.d")).unwrap();
    std::fs::write(
        p.join("conf.d/nocursor.d/conf.yaml"),
        "init_config:\ninstances:\n  - min_collection_interval: 0.05\n    per_run: 500\nlogs:\n  - type: integration\n    source: nc\n    service: nc\n",
    )
    .unwrap();
    std::fs::write(p.join("checks.d/nocursor.py"), NO_CURSOR_PY).unwrap();
    let yaml = p.join("datadog.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap();
    std::fs::write(&yaml, format!("run_path: {}\n{text}", run_path.display())).unwrap();
    agent
}

fn produced(agent: &Agent) -> u64 {
    std::fs::read_to_string(agent.path().join("checks.d/PRODUCED"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn full_disk_case(when_full: &str) {
    let intake = Intake::start();
    intake.set_mode(Mode::Status(500));
    let base = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(&base.path().join("disk"), 30);
    let mut agent = no_cursor_agent(&intake, when_full, &disk.0.join("run"));
    agent.start();
    wait_for(&agent, Duration::from_secs(60), "the disk to fill", || {
        agent.counters()["buffer_disk_full"] == true
    });
    // Keep it full for a while: the agent must stay up and say so.
    std::thread::sleep(Duration::from_secs(2));
    assert!(agent.is_running(), "{}", agent.log());
    assert!(agent.log().contains("the disk is full"), "{}", agent.log());
    if when_full == "block" {
        assert_eq!(
            agent.counters()["logs_dropped"],
            serde_json::json!({}),
            "block never drops"
        );
    } else {
        assert!(agent.dropped("disk_full") > 0, "{}", agent.counters());
    }
    // Space returns as the intake comes back: the agent recovers by itself.
    intake.set_mode(Mode::Accept);
    wait_for(
        &agent,
        Duration::from_secs(60),
        "the disk to free up",
        || agent.counters()["buffer_disk_full"] == false,
    );
    agent.stop_sending();
    std::thread::sleep(Duration::from_millis(500));
    let sent = produced(&agent);
    wait_for(&agent, Duration::from_secs(60), "delivery", || {
        agent.counter("buffer_records") == 0 && agent.counter("buffer_bytes") < 10_000
    });
    let (status, _) = agent.sigterm(Duration::from_secs(10));
    assert!(status.success());
    let delivered = intake.delivered_numbers();
    let dropped = agent.dropped("disk_full") + agent.dropped("buffer_full");
    let undelivered = (0..sent).filter(|n| !delivered.contains_key(n)).count() as u64;
    assert!(
        sent > 20_000,
        "the check sent {sent} logs, not enough to fill 30 MB"
    );
    if when_full == "block" {
        assert_eq!(undelivered, 0, "block loses nothing");
        assert_eq!(dropped, 0);
    } else {
        assert!(
            undelivered <= dropped,
            "{undelivered} logs neither delivered nor counted (dropped {dropped})"
        );
        let per_check: u64 = agent.counters()["checks"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v["logs_dropped"]["disk_full"].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(per_check, agent.dropped("disk_full"), "per check adds up");
    }
    drop(disk);
}

#[test]
fn a_full_disk_blocks_the_check_until_space_returns_and_loses_nothing() {
    full_disk_case("block");
}

#[test]
fn a_full_disk_with_drop_oldest_drops_counted_and_recovers() {
    full_disk_case("drop_oldest");
}

#[test]
fn a_deleted_run_path_is_recreated_and_nothing_is_lost() {
    let intake = Intake::start();
    intake.set_mode(Mode::Status(500));
    let mut agent = Agent::new(&intake, "", "    per_run: 200\n    total: 20000");
    agent.start();
    wait_for(&agent, Duration::from_secs(30), "a backlog", || {
        agent.counter("logs_processed") >= 2000
    });
    std::fs::remove_dir_all(agent.path().join("run")).unwrap();
    wait_for(
        &agent,
        Duration::from_secs(10),
        "the agent to notice",
        || agent.log().contains("directory recreated"),
    );
    assert!(agent.log().contains("was deleted or replaced"));
    // The recreated buffer is a real one: files are back on disk, private.
    let buf = agent.path().join("run/buffer");
    assert_eq!(
        std::fs::metadata(&buf).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert!(!segments(&agent.path().join("run")).is_empty());

    // Now make it unusable: a file where the directory was. Runs fail (nothing is reported
    // durable that is not), status says why; removing the file lets it carry on.
    std::thread::sleep(Duration::from_millis(600));
    std::fs::remove_dir_all(agent.path().join("run")).unwrap();
    std::fs::write(agent.path().join("run"), "in the way").unwrap();
    wait_for(
        &agent,
        Duration::from_secs(10),
        "the problem in status",
        || agent.counters()["buffer_problem"].is_string(),
    );
    assert!(
        agent.log().contains("cannot be recreated"),
        "{}",
        agent.log()
    );
    std::fs::remove_file(agent.path().join("run")).unwrap();
    wait_for(&agent, Duration::from_secs(10), "recovery", || {
        agent.counters()["buffer_problem"].is_null()
    });
    agent.sigterm(Duration::from_secs(10));
    // Restart on the recreated buffer and deliver everything.
    let numbers = drain(&mut agent, &intake, 20000);
    assert_eq!(missing(&numbers), Vec::<u64>::new());
    assert_eq!(*numbers.keys().next_back().unwrap(), 19999);
}

#[test]
fn idle_connections_to_the_embedded_intake_cannot_starve_the_buffer_of_descriptors() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let intake = Intake::start(); // only to build the config dir
    let agent = Agent::new(&intake, "", "    per_run: 100");
    let p = agent.path();
    // No api_key, no logs_dd_url: the embedded intake. Small segments (512 KiB): a segment
    // opened every second or so, and a budget that the few seconds of the test do not fill
    // even if nothing is delivered meanwhile.
    std::fs::write(
        p.join("datadog.yaml"),
        format!("logs_enabled: true\nhostname: test-host\nlogs_config:\n  batch_wait: 0.1\n  intake:\n    listen: 127.0.0.1:{port}\n  buffer:\n    max_size_bytes: 4194304\n"),
    )
    .unwrap();
    let log_path = p.join("agent.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut cmd = Command::new(CAIRN);
    cmd.arg("-c")
        .arg(p)
        .args(["run", "--counters-file"])
        .arg(agent.counters_path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .env("CAIRN_LOG", "info");
    // A hard limit of 1,024 descriptors, as on many hosts.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 1024,
                rlim_max: 1024,
            };
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "intake did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Connections past the cap wait in the kernel's backlog, and past the backlog a connect
    // hangs: bound each attempt.
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut conns = Vec::new();
    for _ in 0..1100 {
        if let Ok(c) = TcpStream::connect_timeout(&addr, Duration::from_millis(20)) {
            conns.push(c);
        }
    }
    assert!(
        conns.len() >= 600,
        "only {} connections opened",
        conns.len()
    );
    let before = agent.counter("logs_processed");
    let sent_before = agent.counter("logs_sent");
    std::thread::sleep(Duration::from_secs(4));
    let after = agent.counter("logs_processed");
    // Idle connections are closed after 10 s, so the agent's own sender gets a slot again
    // while the attacker's connections are still open on its side.
    let t = Instant::now();
    while agent.counter("logs_sent") < sent_before + 100 && t.elapsed() < Duration::from_secs(25) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let sent_after = agent.counter("logs_sent");
    let text = std::fs::read_to_string(&log_path).unwrap();
    let alive = child.try_wait().unwrap().is_none();
    drop(conns);
    let _ = child.kill();
    let _ = child.wait();
    assert!(alive, "the agent died: {text}");
    assert!(
        !text.contains("Too many open files"),
        "descriptors ran out: {text}"
    );
    assert!(
        after > before + 500,
        "checks kept running ({before} → {after}): {text}"
    );
    assert!(
        !text.contains("run's logs could not be committed"),
        "{text}"
    );
    assert!(
        sent_after >= sent_before + 100,
        "delivery to the embedded intake resumed ({sent_before} → {sent_after}): {text}"
    );
}

#[test]
fn run_path_that_another_user_could_swap_is_refused_and_symlinks_are_never_followed() {
    let intake = Intake::start();
    // A parent writable by everyone and not sticky: refused, with the reason.
    let shared = tempfile::tempdir().unwrap();
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut agent = Agent::new(&intake, "", "    per_run: 10\n    total: 10");
    let yaml = agent.path().join("datadog.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap();
    std::fs::write(
        &yaml,
        format!("run_path: {}\n{text}", shared.path().join("run").display()),
    )
    .unwrap();
    let out = Command::new(CAIRN)
        .arg("-c")
        .arg(agent.path())
        .arg("run")
        .env_remove("DD_API_KEY")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "started in a shared directory: {err}"
    );
    assert!(err.contains("not sticky"), "{err}");

    // Symlinks planted in run_path (owned by us) are never written through.
    std::fs::write(&yaml, &text).unwrap();
    let victim = agent.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let buf = agent.path().join("run/buffer");
    std::fs::create_dir_all(&buf).unwrap();
    std::os::unix::fs::symlink(&victim, buf.join("head")).unwrap();
    let out = Command::new(CAIRN)
        .arg("-c")
        .arg(agent.path())
        .arg("run")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("head"), "the error names the file: {err}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    std::fs::remove_file(buf.join("head")).unwrap();
    std::os::unix::fs::symlink(&victim, buf.join("state.snapshot.tmp")).unwrap();
    std::os::unix::fs::symlink(&victim, buf.join("reserve")).unwrap();
    agent.start();
    wait_for(&agent, Duration::from_secs(30), "delivery", || {
        intake.delivered_numbers().len() >= 10
    });
    agent.sigterm(Duration::from_secs(10));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
}

#[test]
fn kill_9_during_recovery_loses_nothing_that_was_readable() {
    let intake = Intake::start();
    let mut agent = backlogged_agent(&intake, 30000, 64 << 20);
    // Damage to repair: log 7000's payload.
    let segs = segments(&agent.path().join("run"));
    let (seg, at) = segs
        .iter()
        .find_map(|p| {
            let bytes = std::fs::read(p).unwrap();
            find(&bytes, b"\"number 7000 ").map(|at| (p.clone(), at + 20))
        })
        .expect("log 7000");
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[at] ^= 0x01;
    std::fs::write(&seg, &bytes).unwrap();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..12 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        agent.start();
        std::thread::sleep(Duration::from_millis(5 + rng % 120));
        agent.kill9();
    }
    let numbers = drain(&mut agent, &intake, 29999);
    assert_eq!(missing(&numbers), vec![7000]);
    assert_eq!(*numbers.keys().next_back().unwrap(), 29999);
}
