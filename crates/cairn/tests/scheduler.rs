//! `cairn run` as a real process: instances run on their own `min_collection_interval`, a slow
//! check holds one runner and delays nobody else, a failing check keeps being scheduled, SIGTERM
//! stops the agent cleanly (exit 0), and cursors survive a restart.
//!
//! Checks count their runs by appending the time to a file, which the test reads while the agent
//! runs; intervals are 1 s so that each test takes a few seconds.

mod support;

use std::time::{Duration, Instant};

use support::{counting_conf, run_times, start_agent, wait_for_lines, ConfigDir, COUNTING_CHECK};

/// Gaps between consecutive run times.
fn gaps(times: &[f64]) -> Vec<f64> {
    times.windows(2).map(|w| w[1] - w[0]).collect()
}

#[test]
fn each_instance_runs_every_min_collection_interval() {
    let dir = ConfigDir::new();
    let conf = format!(
        "instances:\n  - {{min_collection_interval: 1, out: {a}}}\n  - {{min_collection_interval: 1, out: {b}, name: b}}\n  - {{min_collection_interval: 2, out: {c}, name: c}}\nlogs:\n  - type: integration\n",
        a = dir.join("a.out").display(),
        b = dir.join("b.out").display(),
        c = dir.join("c.out").display(),
    );
    dir.conf("ticker", &conf).check_py("ticker", COUNTING_CHECK);

    let agent = start_agent(&dir);
    let ok = wait_for_lines(&dir, "a.out", 4, Duration::from_secs(15))
        && wait_for_lines(&dir, "b.out", 4, Duration::from_secs(5))
        && wait_for_lines(&dir, "c.out", 2, Duration::from_secs(5));
    let out = agent.sigterm(Duration::from_secs(15));
    assert!(ok, "every instance must run on its own\n{}", out.dump());
    out.assert_code(0);
    assert!(out.stderr.contains("cairn stopped"), "{}", out.dump());

    for (file, interval) in [("a.out", 1.0), ("b.out", 1.0), ("c.out", 2.0)] {
        let times = run_times(&dir, file);
        for gap in gaps(&times) {
            assert!(
                (interval * 0.75..=interval * 1.5).contains(&gap),
                "{file}: runs {gap:.3}s apart, expected about {interval}s: {times:?}"
            );
        }
    }
    let (a, c) = (run_times(&dir, "a.out"), run_times(&dir, "c.out"));
    let span = a.last().unwrap() - a.first().unwrap();
    let c_in_span = c.iter().filter(|t| **t <= a.last().unwrap() + 0.1).count();
    assert!(
        c_in_span <= (span / 2.0).floor() as usize + 1,
        "the 2 s instance ran {c_in_span} times in {span:.1}s: {c:?}"
    );
}

const SLOW_CHECK: &str = r#"
import time
from datadog_checks.base import AgentCheck


class Slow(AgentCheck):
    def check(self, instance):
        with open(instance['out'], 'a') as f:
            f.write('%.6f\n' % time.time())
        time.sleep(3)
"#;

fn slow_and_fast(check_runners: usize) -> ConfigDir {
    let dir = ConfigDir::new();
    dir.datadog_yaml(&format!(
        "logs_enabled: true\nhostname: test-host\ncheck_runners: {check_runners}\n"
    ))
    .conf("fast", &counting_conf(&dir.join("fast.out"), 1.0))
    .check_py("fast", COUNTING_CHECK)
    .conf("slow", &counting_conf(&dir.join("slow.out"), 1.0))
    .check_py("slow", SLOW_CHECK);
    dir
}

#[test]
fn a_slow_check_does_not_delay_a_fast_one() {
    let dir = slow_and_fast(2);
    let agent = dir.cairn(&["run", "--grace-secs", "1"]).spawn();
    let mut agent = agent;
    agent.wait_for_stderr("cairn started", Duration::from_secs(30));
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(3500).saturating_sub(started.elapsed()));
    let fast = run_times(&dir, "fast.out");
    let slow = run_times(&dir, "slow.out");
    let out = agent.sigterm(Duration::from_secs(15));
    out.assert_code(0);
    assert!(
        fast.len() >= 3,
        "the fast check ran {} times in 3.5 s next to a 3 s check: {fast:?}\n{}",
        fast.len(),
        out.dump()
    );
    assert!(
        (1..=2).contains(&slow.len()),
        "the slow check started {} times in 3.5 s: ticks that fall due while it runs are skipped, not queued: {slow:?}",
        slow.len()
    );
}

#[test]
fn with_one_runner_a_slow_check_does_hold_the_fast_one_back() {
    // The contrast that shows the test above measures the runners, not luck.
    let dir = slow_and_fast(1);
    let mut agent = dir.cairn(&["run", "--grace-secs", "1"]).spawn();
    agent.wait_for_stderr("cairn started", Duration::from_secs(30));
    assert!(
        wait_for_lines(&dir, "slow.out", 1, Duration::from_secs(10)),
        "the slow check starts"
    );
    std::thread::sleep(Duration::from_millis(2500));
    let fast = run_times(&dir, "fast.out");
    let out = agent.sigterm(Duration::from_secs(15));
    out.assert_code(0);
    assert!(
        fast.len() <= 2,
        "one runner busy for 3 s leaves no room for the fast check: {fast:?}\n{}",
        out.dump()
    );
}

const RAISING_CHECK: &str = r#"
import time
from datadog_checks.base import AgentCheck


class Raising(AgentCheck):
    def check(self, instance):
        with open(instance['out'], 'a') as f:
            f.write('%.6f\n' % time.time())
        self.send_log({'message': 'about to fail'})
        raise RuntimeError('boom every time')
"#;

#[test]
fn a_check_that_raises_every_run_keeps_being_scheduled_and_others_keep_running() {
    let dir = ConfigDir::new();
    dir.conf("raising", &counting_conf(&dir.join("raising.out"), 1.0))
        .check_py("raising", RAISING_CHECK)
        .conf("healthy", &counting_conf(&dir.join("healthy.out"), 1.0))
        .check_py("healthy", COUNTING_CHECK);
    let agent = start_agent(&dir);
    let ok = wait_for_lines(&dir, "raising.out", 3, Duration::from_secs(15))
        && wait_for_lines(&dir, "healthy.out", 3, Duration::from_secs(5));
    let out = agent.sigterm(Duration::from_secs(15));
    assert!(ok, "both checks keep running\n{}", out.dump());
    out.assert_code(0);
    for gap in gaps(&run_times(&dir, "raising.out")) {
        assert!(
            (0.75..=1.5).contains(&gap),
            "a failing check keeps its interval: {gap:.3}s"
        );
    }
    let failures = out
        .logged("WARN")
        .into_iter()
        .filter(|l| l.starts_with("check run failed"))
        .collect::<Vec<_>>();
    assert!(
        failures.len() >= 3,
        "each failed run is logged\n{}",
        out.dump()
    );
    for f in &failures {
        assert!(
            f.contains("check_id=raising:") && f.contains("boom every time"),
            "{f}"
        );
    }
    assert!(
        !failures.iter().any(|f| f.contains("healthy:")),
        "{}",
        out.dump()
    );
}

const CURSOR_CHECK: &str = r#"
from datadog_checks.base import AgentCheck


class Cursor(AgentCheck):
    def check(self, instance):
        cursor = self.get_log_cursor() or {'n': 0}
        with open(instance['out'], 'a') as f:
            f.write('%d\n' % cursor['n'])
        self.send_log({'message': 'entry %d' % (cursor['n'] + 1)}, cursor={'n': cursor['n'] + 1})
"#;

#[test]
fn cursors_written_under_run_survive_an_agent_restart() {
    let dir = ConfigDir::new();
    dir.conf("cursor", &counting_conf(&dir.join("seen.out"), 1.0))
        .check_py("cursor", CURSOR_CHECK);

    let agent = start_agent(&dir);
    let ok = wait_for_lines(&dir, "seen.out", 2, Duration::from_secs(15));
    let out = agent.sigterm(Duration::from_secs(15));
    assert!(ok, "{}", out.dump());
    out.assert_code(0);
    let first: Vec<u64> = dir
        .lines("seen.out")
        .iter()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(
        first,
        (0..first.len() as u64).collect::<Vec<_>>(),
        "each run sees the previous run's cursor"
    );

    let agent = start_agent(&dir);
    let ok = wait_for_lines(&dir, "seen.out", first.len() + 1, Duration::from_secs(15));
    let out = agent.sigterm(Duration::from_secs(15));
    assert!(ok, "{}", out.dump());
    out.assert_code(0);
    let all: Vec<u64> = dir
        .lines("seen.out")
        .iter()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(
        all[first.len()],
        first.len() as u64,
        "the restarted agent continues after the last cursor: {all:?}"
    );
}

const EXITING_CHECK: &str = r#"
import sys
import time
from datadog_checks.base import AgentCheck


class Exiting(AgentCheck):
    n = 0

    def check(self, instance):
        with open(instance['out'], 'a') as f:
            f.write('%.6f\n' % time.time())
        Exiting.n += 1
        if Exiting.n % 2:
            sys.exit(3)
        raise KeyboardInterrupt()
"#;

#[test]
fn a_check_raising_system_exit_or_keyboard_interrupt_is_a_failed_run_not_an_agent_exit() {
    let dir = ConfigDir::new();
    dir.conf("exiting", &counting_conf(&dir.join("exiting.out"), 1.0))
        .check_py("exiting", EXITING_CHECK)
        .conf("healthy", &counting_conf(&dir.join("healthy.out"), 1.0))
        .check_py("healthy", COUNTING_CHECK);
    let mut agent = start_agent(&dir);
    let ok = wait_for_lines(&dir, "exiting.out", 3, Duration::from_secs(15))
        && wait_for_lines(&dir, "healthy.out", 3, Duration::from_secs(5));
    assert!(
        !agent.has_exited(),
        "a check must not be able to end the agent\n{}",
        agent.stderr_so_far()
    );
    let out = agent.sigterm(Duration::from_secs(15));
    assert!(ok, "{}", out.dump());
    out.assert_code(0);
    let failures: Vec<String> = out
        .logged("WARN")
        .into_iter()
        .filter(|l| l.starts_with("check run failed"))
        .collect();
    assert!(
        failures.iter().any(|f| f.contains("SystemExit")),
        "{}",
        out.dump()
    );
    assert!(
        failures.iter().any(|f| f.contains("KeyboardInterrupt")),
        "{}",
        out.dump()
    );
}
