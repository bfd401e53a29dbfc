//! Say who did it: a check that kills the agent is named at the next start, a check that
//! overruns (holding the GIL in C, or spinning in Python) is named by the watchdog while it
//! runs, a leaking check is named by the memory guard. Real `cairn run` processes, real
//! signals, real Python.
//!
//! The crash tests run a numbered-log check next to the one that kills the agent, with the
//! intake failing in the first life, so that what the numbered check committed is still in the
//! buffer at the crash: the restart must deliver all of it.

mod pipeline_common;
mod support;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use pipeline_common::{Intake, Mode, API_KEY, NUMBERS_PY};
use support::{ConfigDir, Output, Running};

/// Starts `cairn run` with these extra args and environment, shipping to `intake`.
fn spawn(dir: &ConfigDir, intake: &Intake, args: &[&str], env: &[(&str, &str)]) -> Running {
    let mut all = vec!["run", "--grace-secs", "1"];
    all.extend_from_slice(args);
    let mut cmd = dir
        .cairn(&all)
        .env("DD_LOGS_CONFIG_LOGS_DD_URL", &intake.url())
        .env("CAIRN_LOG", "info");
    for (k, v) in env {
        cmd = cmd.env(k, v);
    }
    cmd.spawn()
}

fn datadog_yaml(extra: &str) -> String {
    format!(
        "logs_enabled: true\napi_key: {API_KEY}\nhostname: test-host\n{extra}logs_config:\n  batch_wait: 0.1\n  sender_backoff_base: 0.05\n  sender_backoff_max: 0.3\n  http_timeout: 2\n"
    )
}

/// The error lines of `stderr` (tracing's format: `<time> ERROR <message> <fields>`).
fn errors(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains(" ERROR ")).collect()
}

/// Polls the running agent's stderr until `pred` holds for one line; that line.
#[track_caller]
fn wait_for_line(agent: &Running, within: Duration, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + within;
    loop {
        let so_far = agent.stderr_so_far();
        if let Some(l) = so_far.lines().find(|l| pred(l)) {
            return l.to_string();
        }
        if Instant::now() > deadline {
            panic!("no such line on stderr after {within:?}\n--- stderr ---\n{so_far}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

const DOOMED_PY: &str = r#"
import ctypes
import os
from datadog_checks.base import AgentCheck


class Doomed(AgentCheck):
    def check(self, instance):
        if not os.path.exists(instance['trigger']):
            return
        self.send_log({'message': 'last words'})
        if instance['how'] == 'exit':
            os._exit(3)
        ctypes.string_at(0)
"#;

/// Life 1: the numbered check commits logs that the (failing) intake does not take, then the
/// doomed check kills the agent (`how`: `exit` or `segv`). Life 2: intake up, no trigger.
/// Returns both lives' outputs and the numbers life 1 had committed.
fn crash_then_restart(how: &str) -> (Output, Output, u64, Intake) {
    let intake = Intake::start();
    intake.set_mode(Mode::Status(503));
    let dir = ConfigDir::empty();
    let trigger = dir.join("trigger");
    dir.datadog_yaml(&datadog_yaml(""))
        .conf(
            "numbers",
            "instances:\n  - min_collection_interval: 0.2\n    per_run: 20\nlogs:\n  - type: integration\n    source: numbers\n",
        )
        .check_py("numbers", NUMBERS_PY)
        .conf(
            "doomed",
            &format!(
                "instances:\n  - min_collection_interval: 0.2\n    how: {how}\n    trigger: {}\nlogs:\n  - type: integration\n    source: doomed\n",
                trigger.display()
            ),
        )
        .check_py("doomed", DOOMED_PY);
    let counters = dir.join("counters.json");
    let counters_arg = counters.display().to_string();

    let mut first = spawn(&dir, &intake, &["--counters-file", &counters_arg], &[]);
    first.wait_for_stderr("cairn started", Duration::from_secs(30));
    let processed = || -> u64 {
        std::fs::read(&counters)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["logs_processed"].as_u64())
            .unwrap_or(0)
    };
    assert!(
        support::wait_for(Duration::from_secs(15), || processed() >= 100),
        "the numbered check commits logs\n{}",
        first.stderr_so_far()
    );
    // Counted only once committed (the run reports after its commit): all durable.
    let committed = processed();
    std::fs::write(&trigger, "").unwrap();
    let first = first.wait();
    assert!(
        intake.delivered_logs().is_empty(),
        "nothing delivered in life 1"
    );

    std::fs::remove_file(&trigger).unwrap();
    intake.set_mode(Mode::Accept);
    let mut second = spawn(&dir, &intake, &[], &[]);
    second.wait_for_stderr("cairn started", Duration::from_secs(30));
    let delivered = support::wait_for(Duration::from_secs(20), || {
        let got = intake.delivered_numbers();
        (0..committed).all(|n| got.contains_key(&n))
    });
    let second = second.sigterm(Duration::from_secs(15));
    assert!(
        delivered,
        "every log committed before the crash ({committed}) is delivered after it\n{}",
        second.dump()
    );
    (first, second, committed, intake)
}

#[test]
fn a_check_calling_os_exit_is_named_then_and_at_the_next_start() {
    let (first, second, _, _) = crash_then_restart("exit");
    assert_eq!(first.code, Some(3), "{}", first.dump());
    assert!(
        errors(&first.stderr)
            .iter()
            .any(|l| l.contains("check doomed:") && l.contains("called os._exit(3)")),
        "the call is logged at error before the exit\n{}",
        first.dump()
    );
    let named: Vec<&str> = errors(&second.stderr)
        .into_iter()
        .filter(|l| l.contains("the agent died while running check doomed:"))
        .collect();
    assert_eq!(named.len(), 1, "{}", second.dump());
    assert!(named[0].contains("(os._exit(3))"), "{}", second.dump());
    assert!(
        !second.stderr.contains("running check numbers:")
            || second.stderr.contains("was also running"),
        "the numbered check is not blamed\n{}",
        second.dump()
    );
}

#[test]
fn a_check_that_segfaults_is_named_at_the_next_start() {
    let (first, second, _, _) = crash_then_restart("segv");
    assert_eq!(first.signal, Some(11), "dies of SIGSEGV\n{}", first.dump());
    assert!(
        first
            .stderr
            .contains("Fatal Python error: Segmentation fault")
            && first.stderr.contains("doomed.py"),
        "faulthandler prints the Python stack into the agent log\n{}",
        first.dump()
    );
    assert!(
        first
            .stderr
            .contains("cairn: fatal signal 11 (SIGSEGV) while running check doomed:"),
        "the dying agent names the check\n{}",
        first.dump()
    );
    let named: Vec<&str> = errors(&second.stderr)
        .into_iter()
        .filter(|l| l.contains("the agent died while running check doomed:"))
        .collect();
    assert_eq!(named.len(), 1, "{}", second.dump());
    assert!(
        named[0].contains("(signal 11, SIGSEGV)"),
        "{}",
        second.dump()
    );
}

const SLEEPER_PY: &str = r#"
import os
import time
from datadog_checks.base import AgentCheck


class Sleeper(AgentCheck):
    def check(self, instance):
        if os.path.exists(instance['trigger']):
            with open(instance['trigger'] + '.started', 'a') as f:
                f.write('x\n')
            time.sleep(30)
"#;

#[test]
fn a_clean_stop_reports_nothing_and_a_kill_9_names_what_was_running() {
    let intake = Intake::start();
    let dir = ConfigDir::empty();
    let trigger = dir.join("trigger");
    dir.datadog_yaml(&datadog_yaml(""))
        .conf(
            "sleeper",
            &format!(
                "instances:\n  - min_collection_interval: 0.2\n    trigger: {}\nlogs:\n  - type: integration\n",
                trigger.display()
            ),
        )
        .check_py("sleeper", SLEEPER_PY);

    let mut first = spawn(&dir, &intake, &[], &[]);
    first.wait_for_stderr("cairn started", Duration::from_secs(30));
    first.sigterm(Duration::from_secs(15)).assert_code(0);
    let record = dir.join("run/running");
    let meta = std::fs::symlink_metadata(&record).expect("the crash record exists");
    assert!(meta.file_type().is_file());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    let mut second = spawn(&dir, &intake, &[], &[]);
    second.wait_for_stderr("cairn started", Duration::from_secs(30));
    let after_clean = second.stderr_so_far();
    assert!(
        !after_clean.contains("died") && !after_clean.contains("did not stop cleanly"),
        "a clean stop leaves nothing to report\n{after_clean}"
    );
    std::fs::write(&trigger, "").unwrap();
    assert!(
        support::wait_for_lines(&dir, "trigger.started", 1, Duration::from_secs(10)),
        "the sleeper starts sleeping"
    );
    drop(second); // SIGKILL: no handler runs, only the record tells

    std::fs::remove_file(&trigger).unwrap();
    let mut third = spawn(&dir, &intake, &[], &[]);
    third.wait_for_stderr("cairn started", Duration::from_secs(30));
    let third = third.sigterm(Duration::from_secs(15));
    third.assert_code(0);
    assert!(
        errors(&third.stderr).iter().any(|l| l
            .contains("the agent died while running check sleeper:")
            && l.contains("(killed or crashed without a signal it could record, e.g. SIGKILL)")),
        "{}",
        third.dump()
    );
}

const TICKER_PY: &str = r#"
from datadog_checks.base import AgentCheck


class Ticker(AgentCheck):
    def check(self, instance):
        pass
"#;

const GIL_HOG_PY: &str = r#"
from datadog_checks.base import AgentCheck


class GilHog(AgentCheck):
    def check(self, instance):
        sum(range(10 ** 12))  # C code that never lets go of the GIL
"#;

#[test]
fn a_check_holding_the_gil_is_named_while_it_freezes_the_others() {
    let intake = Intake::start();
    let dir = ConfigDir::empty();
    dir.datadog_yaml(&datadog_yaml(""))
        .conf("gilhog", "instances:\n  - min_collection_interval: 1\n")
        .check_py("gilhog", GIL_HOG_PY)
        .conf("ticker", "instances:\n  - min_collection_interval: 0.5\n")
        .check_py("ticker", TICKER_PY);
    let agent = spawn(&dir, &intake, &[], &[("CAIRN_WATCHDOG_MIN_SECS", "1")]);
    let started = Instant::now();
    // Limit: max(3 × 1 s, 1 s) = 3 s.
    let line = wait_for_line(&agent, Duration::from_secs(30), |l| {
        l.contains(" ERROR ") && l.contains("check gilhog:")
    });
    assert!(
        line.contains("holds the GIL") && line.contains("every other check is blocked"),
        "{line}"
    );
    assert!(started.elapsed() < Duration::from_secs(20), "{line}");
    // Once, not every tick; and the checks waiting for the GIL are not blamed on their own.
    std::thread::sleep(Duration::from_millis(2500));
    let so_far = agent.stderr_so_far();
    let reports = errors(&so_far)
        .iter()
        .filter(|l| l.contains("has been running"))
        .count();
    assert_eq!(reports, 1, "{so_far}");
    assert!(
        !errors(&so_far).iter().any(|l| l.contains("check ticker:")),
        "{so_far}"
    );
}

const SPINNER_PY: &str = r#"
import time
from datadog_checks.base import AgentCheck


class Spinner(AgentCheck):
    def check(self, instance):
        if getattr(self, 'spun', False):
            return
        self.spun = True
        end = time.time() + float(instance['secs'])
        while time.time() < end:
            pass
"#;

#[test]
fn a_pure_python_runaway_is_named_with_the_checks_it_holds_up() {
    let intake = Intake::start();
    let dir = ConfigDir::empty();
    dir.datadog_yaml(&datadog_yaml("check_runners: 1\n"))
        .conf(
            "spinner",
            "instances:\n  - min_collection_interval: 1\n    secs: 6\n",
        )
        .check_py("spinner", SPINNER_PY)
        .conf("ticker", "instances:\n  - min_collection_interval: 0.5\n")
        .check_py("ticker", TICKER_PY);
    let agent = spawn(&dir, &intake, &[], &[("CAIRN_WATCHDOG_MIN_SECS", "1")]);
    let line = wait_for_line(&agent, Duration::from_secs(30), |l| {
        l.contains(" ERROR ") && l.contains("check spinner:")
    });
    assert!(
        line.contains("has been running for")
            && line.contains("other checks are blocked")
            && line.contains("waiting=ticker:"),
        "{line}"
    );
    assert!(
        !line.contains("GIL"),
        "a Python loop lets go of the GIL: {line}"
    );
    let done = wait_for_line(&agent, Duration::from_secs(15), |l| {
        l.contains(" WARN ") && l.contains("check spinner:") && l.contains("finished after")
    });
    assert!(done.contains("past its limit"), "{done}");
    let out = agent.sigterm(Duration::from_secs(15));
    out.assert_code(0);
}

const LEAKY_PY: &str = r#"
from datadog_checks.base import AgentCheck


class Leaky(AgentCheck):
    def check(self, instance):
        hog = self.__dict__.setdefault('hog', [])
        if self.__dict__.get('freed'):
            return
        if len(hog) >= int(instance['chunks']):
            hog.clear()  # 40 MiB blocks are mmapped: freeing them gives the memory back
            self.freed = True
            return
        hog.append(bytearray(40 << 20))
"#;

#[test]
fn the_memory_guard_names_a_leaking_check_and_its_growth() {
    let intake = Intake::start();
    let dir = ConfigDir::empty();
    // 160 MiB: well above an idle agent, crossed after a few 40 MiB runs.
    dir.datadog_yaml(&datadog_yaml("memory_limit_bytes: 167772160\n"))
        .conf(
            "leaky",
            "instances:\n  - min_collection_interval: 0.3\n    chunks: 6\n",
        )
        .check_py("leaky", LEAKY_PY)
        .conf("ticker", "instances:\n  - min_collection_interval: 0.5\n")
        .check_py("ticker", TICKER_PY);
    let agent = spawn(&dir, &intake, &[], &[]);
    let line = wait_for_line(&agent, Duration::from_secs(30), |l| {
        l.contains(" ERROR ") && l.contains("over memory_limit_bytes")
    });
    assert!(
        line.contains("largest growth over their last run: leaky:") && line.contains("+40.0 MiB"),
        "{line}"
    );
    let back = wait_for_line(&agent, Duration::from_secs(20), |l| {
        l.contains(" INFO ") && l.contains("back under memory_limit_bytes")
    });
    assert!(back.contains("RSS"), "{back}");
    agent.sigterm(Duration::from_secs(15)).assert_code(0);
}
