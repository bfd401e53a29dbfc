//! Crash consistency: `kill -9` the agent at random points, many times, and restart it.
//!
//! "Nothing lost": every number below the highest one received arrives (a cursor never became
//! durable ahead of its logs, and no buffered log was dropped). "Nothing duplicated at the check
//! boundary": a number arrives twice only when its payload was in flight at a kill, so the
//! duplicates stay within kills × payloads in flight × batch_max_size.

mod pipeline_common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pipeline_common::*;

const KILLS: u32 = 24;
const BATCH_MAX_SIZE: u64 = 50;
/// `cairn_logs::pipeline::MAX_IN_FLIGHT`.
const IN_FLIGHT: u64 = 4;

#[test]
fn kill_9_at_random_points_loses_nothing_and_duplicates_only_in_flight_payloads() {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("random seed {seed}");
    let mut rng = seed;
    let mut next = move |range: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % range
    };
    let intake = Intake::start();
    let mut agent = Agent::new(
        &intake,
        &format!("  batch_max_size: {BATCH_MAX_SIZE}\n"),
        "    per_run: 150",
    );
    for kill in 0..KILLS {
        // Every third life the intake fails, so that kills also land with a backlog in the buffer.
        intake.set_mode(if kill % 3 == 2 {
            Mode::Status(500)
        } else {
            Mode::Accept
        });
        agent.start();
        std::thread::sleep(Duration::from_millis(250 + next(900)));
        agent.kill9();
    }
    intake.set_mode(Mode::Accept);
    agent.start();
    std::thread::sleep(Duration::from_millis(500));
    agent.stop_sending();
    let t = Instant::now();
    wait_for(
        &agent,
        Duration::from_secs(60),
        "the backlog to drain",
        || {
            let c = agent.counters();
            c["logs_sent"].as_u64().unwrap_or(0) > 0 && c["buffer_records"] == 0
        },
    );
    let (status, _) = agent.sigterm(Duration::from_secs(10));
    assert!(status.success());
    let numbers = intake.delivered_numbers();
    let max = *numbers.keys().next_back().expect("numbers arrived");
    assert!(
        max > 1000,
        "the check made progress across restarts (max {max})"
    );
    assert_eq!(missing(&numbers), Vec::<u64>::new(), "numbers lost");
    let dups: u64 = numbers.values().map(|&c| (c - 1) as u64).sum();
    let bound = KILLS as u64 * IN_FLIGHT * BATCH_MAX_SIZE;
    eprintln!(
        "{KILLS} kills: {} numbers, {dups} duplicates (bound {bound}), drained in {:?}",
        numbers.len(),
        t.elapsed()
    );
    assert!(
        dups <= bound,
        "{dups} duplicates exceed what {KILLS} kills can leave in flight ({bound})"
    );
    assert!(
        !agent.log().contains("panicked"),
        "no panic in:\n{}",
        agent.log()
    );
}
