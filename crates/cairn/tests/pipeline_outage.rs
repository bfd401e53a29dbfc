//! Intake outages and the response policy of SPEC §4, against a real `cairn run`.

mod pipeline_common;

use std::time::Duration;

use pipeline_common::*;

/// Stops the check, waits for the backlog to drain, and returns the numbers delivered.
fn drain(agent: &mut Agent, intake: &Intake) -> std::collections::BTreeMap<u64, u32> {
    agent.stop_sending();
    std::thread::sleep(Duration::from_millis(300));
    wait_for(
        agent,
        Duration::from_secs(30),
        "the buffer to drain",
        || agent.counters()["buffer_records"] == 0,
    );
    let (status, _) = agent.sigterm(Duration::from_secs(10));
    assert!(status.success());
    intake.delivered_numbers()
}

#[test]
fn an_outage_of_500s_then_refused_connections_loses_nothing() {
    let intake = Intake::start();
    let mut agent = Agent::new(&intake, "", "    per_run: 50");
    intake.set_mode(Mode::Status(500));
    agent.start();
    wait_for(
        &agent,
        Duration::from_secs(20),
        "a backlog under 500s",
        || agent.counter("buffer_records") >= 300,
    );
    assert!(agent.counter("retry_count") > 0);
    intake.set_mode(Mode::Refuse);
    let before = agent.counter("logs_processed");
    wait_for(
        &agent,
        Duration::from_secs(20),
        "the check to keep running while refused",
        || agent.counter("logs_processed") >= before + 300,
    );
    assert!(
        agent.counter("buffer_records") >= 600,
        "the buffer grows during the outage"
    );
    assert_eq!(agent.counter("logs_sent"), 0);
    intake.set_mode(Mode::Accept);
    let numbers = drain(&mut agent, &intake);
    assert_eq!(missing(&numbers), Vec::<u64>::new());
    assert!(numbers.len() >= 600);
    assert!(agent.counters()["retry_time_spent_secs"].as_f64().unwrap() > 0.0);
}

#[test]
fn a_429_retry_after_is_honoured() {
    let intake = Intake::start();
    let mut agent = Agent::new(&intake, "", "    per_run: 5\n    total: 5");
    // Retry-After is capped at sender_backoff_max: raise the cap above the 2 s asked for.
    let yaml = agent.path().join("datadog.yaml");
    let text = std::fs::read_to_string(&yaml)
        .unwrap()
        .replace("sender_backoff_max: 0.5", "sender_backoff_max: 5");
    std::fs::write(&yaml, text).unwrap();
    intake.set_mode(Mode::TooManyRequests {
        retry_after_secs: 2,
    });
    agent.start();
    wait_for(&agent, Duration::from_secs(20), "a first 429", || {
        !intake.requests().is_empty()
    });
    intake.set_mode(Mode::Accept);
    wait_for(&agent, Duration::from_secs(20), "delivery", || {
        intake.delivered_numbers().len() == 5
    });
    let reqs = intake.requests();
    let first_429 = reqs.iter().find(|r| r.status == 429).unwrap().at;
    let next = reqs.iter().find(|r| r.at > first_429).unwrap().at;
    // The backoff here is at most 0.5 s: a wait of ~2 s can only be Retry-After.
    assert!(
        next - first_429 >= Duration::from_millis(1800),
        "retried after {:?}",
        next - first_429
    );
    agent.sigterm(Duration::from_secs(10));
}

#[test]
fn a_rejected_api_key_keeps_the_data_and_says_so() {
    let intake = Intake::start();
    let mut agent = Agent::new(&intake, "", "    per_run: 20\n    total: 100");
    intake.set_mode(Mode::Status(403));
    agent.start();
    wait_for(
        &agent,
        Duration::from_secs(20),
        "the key to be reported rejected",
        || agent.counters()["api_key_rejected"] == true,
    );
    let c = agent.counters();
    assert!(c["last_error"]
        .as_str()
        .unwrap()
        .contains("API key rejected"));
    assert!(
        !c.to_string().contains(API_KEY),
        "the key never appears in status"
    );
    intake.set_mode(Mode::Status(401));
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(agent.counter("logs_sent"), 0);
    intake.set_mode(Mode::Accept);
    wait_for(
        &agent,
        Duration::from_secs(20),
        "delivery after the key is accepted",
        || intake.delivered_numbers().len() == 100,
    );
    wait_for(
        &agent,
        Duration::from_secs(5),
        "the rejection to clear",
        || agent.counters()["api_key_rejected"] == false,
    );
    agent.sigterm(Duration::from_secs(10));
    assert!(!agent.log().contains(API_KEY));
}

#[test]
fn a_400_drops_only_that_payload() {
    let intake = Intake::start();
    let mut agent = Agent::new(
        &intake,
        "  batch_max_size: 10\n",
        "    per_run: 100\n    total: 100\n    poison_at: 25",
    );
    intake.set_mode(Mode::BadRequestIfContains("poison".into()));
    agent.start();
    wait_for(
        &agent,
        Duration::from_secs(20),
        "the 400 to be counted",
        || agent.dropped("bad_request") > 0,
    );
    wait_for(
        &agent,
        Duration::from_secs(20),
        "the rest to arrive",
        || intake.delivered_numbers().len() as u64 + agent.dropped("bad_request") == 100,
    );
    let numbers = intake.delivered_numbers();
    let rejected: Vec<u64> = intake
        .requests()
        .iter()
        .filter(|r| r.status == 400)
        .flat_map(|r| r.logs())
        .map(|l| l["num"].as_u64().unwrap())
        .collect();
    assert!(rejected.contains(&25) && rejected.len() <= 10);
    assert_eq!(agent.dropped("bad_request"), rejected.len() as u64);
    for n in 0..100 {
        assert_eq!(
            numbers.contains_key(&n),
            !rejected.contains(&n),
            "number {n}"
        );
    }
    let (status, _) = agent.sigterm(Duration::from_secs(10));
    assert!(status.success());
    assert!(
        agent.log().contains("bad payload"),
        "the error log carries a body excerpt"
    );
}

#[test]
fn a_413_splits_payloads_until_they_fit_and_drops_a_single_refused_log() {
    let intake = Intake::start();
    let mut agent = Agent::new(
        &intake,
        "  batch_max_size: 16\n",
        "    per_run: 64\n    total: 64\n    poison_at: 40",
    );
    intake.set_mode(Mode::TooLargeOver {
        max_entries: 3,
        text: "poison".into(),
    });
    agent.start();
    wait_for(&agent, Duration::from_secs(20), "63 logs", || {
        intake.delivered_numbers().len() == 63
    });
    wait_for(
        &agent,
        Duration::from_secs(5),
        "the refused log to be counted",
        || agent.dropped("too_large") == 1,
    );
    let numbers = intake.delivered_numbers();
    assert!(!numbers.contains_key(&40));
    assert!(numbers.values().all(|&c| c == 1));
    for r in intake.requests().iter().filter(|r| r.status == 202) {
        assert!(r.logs().len() <= 3);
    }
    agent.sigterm(Duration::from_secs(10));
}
