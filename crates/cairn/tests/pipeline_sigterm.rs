//! SIGTERM: the agent exits 0 promptly, and what was staged is delivered after the restart.

mod pipeline_common;

use std::time::Duration;

use pipeline_common::*;

#[test]
fn sigterm_exits_zero_promptly_and_nothing_staged_is_lost_across_the_restart() {
    let intake = Intake::start();
    let mut agent = Agent::new(&intake, "", "    per_run: 100");
    intake.set_mode(Mode::Refuse);
    agent.start();
    wait_for(&agent, Duration::from_secs(20), "a backlog", || {
        agent.counter("logs_processed") >= 1000
    });
    let (status, took) = agent.sigterm(Duration::from_secs(10));
    assert!(status.success(), "exit status {status:?}");
    // Checks finish at once; payloads in flight get `--send-grace-secs` (2 s) and stay buffered.
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let processed = agent.counter("logs_processed");
    assert_eq!(agent.counter("logs_sent"), 0);

    intake.set_mode(Mode::Accept);
    agent.stop_sending();
    agent.start();
    wait_for(&agent, Duration::from_secs(30), "the staged logs", || {
        intake.delivered_numbers().len() as u64 >= processed
    });
    let (status, _) = agent.sigterm(Duration::from_secs(10));
    assert!(status.success());
    let numbers = intake.delivered_numbers();
    assert_eq!(
        numbers.keys().copied().collect::<Vec<_>>(),
        (0..processed).collect::<Vec<_>>()
    );
    assert!(
        numbers.values().all(|&c| c == 1),
        "nothing is sent twice after a clean stop"
    );
}
