//! `cairn logs search` / `tail` as library calls against a real intake.

mod common;

use std::time::Duration;

use cairn_intake::client::{run_search, run_tail, ClientConfig, SearchOptions, TailOptions};
use serde_json::json;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn search_opts(query: &str, limit: u32, json: bool) -> SearchOptions {
    SearchOptions {
        query: query.into(),
        from: "15m".into(),
        to: None,
        limit,
        json,
    }
}

#[test]
fn search_prints_one_line_per_log_newest_first_and_pages_past_one_request() {
    let rt = runtime();
    let h = rt.block_on(common::Harness::start());
    let now = common::now_ms();
    let logs: Vec<_> = (0..1500)
        .map(|i| json!({"message": format!("line {i}\nsecond\x1b[31m"), "timestamp": now - 60_000 + i, "service": "cli", "ddsource": "test", "hostname": "h1", "status": "warn"}))
        .collect();
    rt.block_on(h.ingest(&serde_json::Value::Array(logs[..1000].to_vec())));
    rt.block_on(h.ingest(&serde_json::Value::Array(logs[1000..].to_vec())));
    let cfg = ClientConfig {
        url: h.intake.url(),
        token: h.intake.token().map(str::to_owned),
        ..ClientConfig::default()
    };

    let mut out = Vec::new();
    let n = run_search(
        cfg.clone(),
        &search_opts("service:cli", 1200, false),
        &mut out,
    )
    .unwrap();
    assert_eq!(n, 1200);
    let text = String::from_utf8(out).unwrap();
    let first = text.lines().next().unwrap();
    assert!(
        first.ends_with(" warn  cli test h1 line 1499\\nsecond\\u{1b}[31m"),
        "{first}"
    );
    assert!(first.starts_with(&cairn_intake::timefmt::format_rfc3339_ms(
        now - 60_000 + 1499
    )));
    assert_eq!(text.lines().count(), 1200);

    let mut out = Vec::new();
    run_search(cfg.clone(), &search_opts("service:cli", 2, true), &mut out).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(String::from_utf8(out).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(v["attributes"]["service"], "cli");

    let err = run_search(
        cfg,
        &search_opts("service:(a OR", 2, false),
        &mut Vec::new(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("query error at column 13"),
        "{err}"
    );
}

#[test]
fn tail_prints_the_backlog_then_new_logs() {
    let rt = runtime();
    let h = rt.block_on(common::Harness::start());
    rt.block_on(h.ingest(
        &json!([{"message": "before", "service": "tl"}, {"message": "noise", "service": "zz"}]),
    ));
    let cfg = ClientConfig {
        url: h.intake.url(),
        token: h.intake.token().map(str::to_owned),
        ..ClientConfig::default()
    };
    let opts = TailOptions {
        query: "service:tl".into(),
        json: false,
        poll_every: Duration::from_millis(100),
        stop_after: Some(Duration::from_millis(1500)),
    };
    let writer = std::thread::spawn(move || {
        let mut out = Vec::new();
        run_tail(cfg, &opts, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    });
    std::thread::sleep(Duration::from_millis(500));
    rt.block_on(h.ingest(
        &json!([{"message": "after", "service": "tl"}, {"message": "noise", "service": "zz"}]),
    ));
    let text = writer.join().unwrap();
    let msgs: Vec<&str> = text
        .lines()
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    assert_eq!(msgs, ["before", "after"]);
}
