//! A full buffer: `when_full: block` stalls the check and loses nothing; `drop_oldest` keeps the
//! check running and counts what it drops.

mod pipeline_common;

use std::time::Duration;

use pipeline_common::*;

const BUDGET: u64 = 64 << 10;

#[test]
fn block_stalls_the_check_until_the_intake_takes_data_and_loses_nothing() {
    let intake = Intake::start();
    let mut agent = Agent::new(
        &intake,
        &format!("  buffer:\n    max_size_bytes: {BUDGET}\n    when_full: block\n"),
        "    per_run: 50",
    );
    intake.set_mode(Mode::Refuse);
    agent.start();
    wait_for(
        &agent,
        Duration::from_secs(20),
        "the buffer to fill",
        || agent.counter("buffer_bytes") + 20_000 > BUDGET,
    );
    std::thread::sleep(Duration::from_millis(500));
    let stalled_at = agent.counter("logs_processed");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        agent.counter("logs_processed"),
        stalled_at,
        "the check is stalled while the buffer is full"
    );
    assert!(agent.counter("buffer_bytes") <= BUDGET);
    assert!(agent.is_running());
    intake.set_mode(Mode::Accept);
    wait_for(
        &agent,
        Duration::from_secs(20),
        "the check to run again",
        || agent.counter("logs_processed") > stalled_at + 500,
    );
    agent.stop_sending();
    std::thread::sleep(Duration::from_millis(300));
    wait_for(
        &agent,
        Duration::from_secs(30),
        "the buffer to drain",
        || agent.counters()["buffer_records"] == 0,
    );
    let (status, _) = agent.sigterm(Duration::from_secs(10));
    assert!(status.success());
    let numbers = intake.delivered_numbers();
    assert_eq!(missing(&numbers), Vec::<u64>::new());
    assert_eq!(numbers.len() as u64, agent.counter("logs_processed"));
    assert!(agent.counters()["logs_dropped"]
        .as_object()
        .unwrap()
        .is_empty());
}

#[test]
fn drop_oldest_keeps_the_check_running_and_counts_the_drops() {
    let intake = Intake::start();
    let mut agent = Agent::new(
        &intake,
        &format!("  buffer:\n    max_size_bytes: {BUDGET}\n    when_full: drop_oldest\n"),
        "    per_run: 50",
    );
    intake.set_mode(Mode::Refuse);
    agent.start();
    wait_for(&agent, Duration::from_secs(30), "drops", || {
        agent.dropped("buffer_full") > 500
    });
    let processed = agent.counter("logs_processed");
    wait_for(
        &agent,
        Duration::from_secs(20),
        "the check to keep running",
        || agent.counter("logs_processed") > processed + 500,
    );
    assert!(agent.counter("buffer_bytes") <= BUDGET);
    assert!(agent.log().contains("buffer full (when_full: drop_oldest)"));
    intake.set_mode(Mode::Accept);
    agent.stop_sending();
    std::thread::sleep(Duration::from_millis(300));
    wait_for(
        &agent,
        Duration::from_secs(30),
        "the buffer to drain",
        || agent.counters()["buffer_records"] == 0,
    );
    let (status, _) = agent.sigterm(Duration::from_secs(10));
    assert!(status.success());
    let numbers = intake.delivered_numbers();
    let (processed, dropped) = (
        agent.counter("logs_processed"),
        agent.dropped("buffer_full"),
    );
    assert_eq!(
        *numbers.keys().next_back().unwrap(),
        processed - 1,
        "the newest logs are kept"
    );
    // A payload in flight when its segment was dropped may still arrive: counted as both.
    assert!(
        numbers.len() as u64 + dropped >= processed,
        "{} delivered + {dropped} dropped < {processed}",
        numbers.len()
    );
    assert!(numbers.len() as u64 + dropped <= processed + 4 * 1000);
    // Per check, by reason, the drops add up to the pipeline's total.
    let c = agent.counters();
    let per_check: u64 = c["checks"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v["logs_dropped"]["buffer_full"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(per_check, dropped, "{c}");
}
