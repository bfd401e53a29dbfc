//! The search, aggregate and tail APIs, and retention, against a real store over HTTP.

mod common;

use std::collections::BTreeMap;

use common::*;
use serde_json::{json, Value};

fn spread_logs(base: i64, n: i64, step_ms: i64) -> Value {
    let services = ["web", "api", "db"];
    Value::Array(
        (0..n)
            .map(|i| {
                json!({
                    "message": format!("request {i} done"), "timestamp": base + i * step_ms,
                    "service": services[(i % 3) as usize], "status": if i % 5 == 0 { "error" } else { "info" },
                    "ddsource": "app", "hostname": format!("h{}", i % 2),
                    "ddtags": format!("env:prod,shard:{}", i % 4), "i": i, "route": {"name": format!("/r{}", i % 2)}
                })
            })
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_follow_the_cursor_without_gaps_or_repeats_in_both_orders() {
    let h = Harness::start().await;
    let base = now_ms() - 3_600_000;
    h.ingest(&spread_logs(base, 95, 1_000)).await;
    for sort in ["-timestamp", "timestamp"] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let r = h
                .api(
                    "/api/v2/logs/events/search",
                    json!({"filter": {"query": "request", "from": base, "to": "now"}, "sort": sort, "page": {"limit": 10, "cursor": cursor}}),
                )
                .await;
            for l in r["data"].as_array().unwrap() {
                seen.push(l["attributes"]["attributes"]["i"].as_i64().unwrap());
            }
            match r["meta"]["page"]["after"].as_str() {
                Some(a) => cursor = Some(a.to_owned()),
                None => break,
            }
        }
        let mut want: Vec<i64> = (0..95).collect();
        if sort == "-timestamp" {
            want.reverse();
        }
        assert_eq!(seen, want, "{sort}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn time_bounds_take_relative_iso_and_epoch_forms() {
    let h = Harness::start().await;
    let now = now_ms();
    h.ingest(&json!([
        {"message": "old", "timestamp": now - 2 * 3_600_000},
        {"message": "recent", "timestamp": now - 60_000},
    ]))
    .await;
    let count = |filter: Value| {
        let h = &h;
        async move {
            h.api(
                "/api/v2/logs/events/search",
                json!({"filter": filter, "page": {"limit": 100}}),
            )
            .await["data"]
                .as_array()
                .unwrap()
                .len()
        }
    };
    assert_eq!(
        count(json!({})).await,
        1,
        "the default range is the last 15 minutes"
    );
    assert_eq!(count(json!({"from": "now-3h"})).await, 2);
    assert_eq!(
        count(json!({"from": now - 3 * 3_600_000, "to": now - 3_600_000})).await,
        1
    );
    let iso = cairn_intake::timefmt::format_rfc3339_ms(now - 3 * 3_600_000);
    assert_eq!(count(json!({"from": iso, "to": "now"})).await, 2);
    let (status, body) = h
        .api_status(
            "/api/v2/logs/events/search",
            json!({"filter": {"from": "yesterday"}}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
}

async fn aggregate(h: &Harness, body: Value) -> Vec<Value> {
    h.api("/api/v2/logs/analytics/aggregate", body).await["data"]["buckets"]
        .as_array()
        .unwrap()
        .clone()
}

fn by_group(buckets: &[Value], facet: &str) -> BTreeMap<String, i64> {
    buckets
        .iter()
        .map(|b| {
            (
                b["by"][facet].as_str().unwrap().to_owned(),
                b["computes"]["c0"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn counts_group_by_reserved_fields_tags_and_attributes() {
    let h = Harness::start().await;
    let base = now_ms() - 3_600_000;
    h.ingest(&spread_logs(base, 120, 20_000)).await;
    let filter = json!({"query": "*", "from": base - 1, "to": "now"});
    let services = by_group(
        &aggregate(
            &h,
            json!({"filter": filter, "group_by": [{"facet": "service"}]}),
        )
        .await,
        "service",
    );
    assert_eq!(
        services,
        BTreeMap::from([("web".into(), 40), ("api".into(), 40), ("db".into(), 40)])
    );
    let shards = by_group(
        &aggregate(
            &h,
            json!({"filter": filter, "group_by": [{"facet": "shard"}]}),
        )
        .await,
        "shard",
    );
    assert_eq!(shards.values().sum::<i64>(), 120);
    assert_eq!(shards.len(), 4);
    let routes = by_group(
        &aggregate(
            &h,
            json!({"filter": filter, "group_by": [{"facet": "@route.name"}]}),
        )
        .await,
        "@route.name",
    );
    assert_eq!(
        routes,
        BTreeMap::from([("/r0".into(), 60), ("/r1".into(), 60)])
    );
    let tags = by_group(
        &aggregate(
            &h,
            json!({"filter": filter, "group_by": [{"facet": "tags", "limit": 3}]}),
        )
        .await,
        "tags",
    );
    assert_eq!(tags.len(), 3);
    assert_eq!(tags["env:prod"], 120);
    let total = aggregate(
        &h,
        json!({"filter": {"query": "service:web status:error", "from": base - 1, "to": "now"}}),
    )
    .await;
    assert_eq!(total[0]["computes"]["c0"], 8);
}

/// The rollup answers whole minutes and the logs table the partial minutes at each end; the
/// sum must equal a plain count for any range, aligned or not.
#[tokio::test(flavor = "multi_thread")]
async fn rollup_counts_equal_a_plain_count_for_unaligned_ranges() {
    let h = Harness::start().await;
    let base = (now_ms() / 60_000 - 30) * 60_000;
    h.ingest(&spread_logs(base, 600, 2_345)).await;
    for (from_off, to_off) in [
        (0, 600 * 2_345),
        (17_000, 1_000_000),
        (59_999, 60_001),
        (123_456, 123_457),
        (61_000, 119_000),
    ] {
        let (from, to) = (base + from_off, base + to_off);
        let want = (0..600)
            .filter(|i| (from..=to).contains(&(base + i * 2_345)))
            .count() as i64;
        for query in ["*", "service:web OR status:error", "-host:h1"] {
            let want = (0..600)
                .filter(|i| (from..=to).contains(&(base + i * 2_345)))
                .filter(|i| match query {
                    "*" => true,
                    "service:web OR status:error" => i % 3 == 0 || i % 5 == 0,
                    _ => i % 2 == 0,
                })
                .count() as i64;
            let got = aggregate(
                &h,
                json!({"filter": {"query": query, "from": from, "to": to}}),
            )
            .await;
            assert_eq!(
                got[0]["computes"]["c0"], want,
                "{query} over [{from_off}, {to_off}]"
            );
        }
        let series = aggregate(
            &h,
            json!({"filter": {"from": from, "to": to}, "compute": [{"aggregation": "count", "type": "timeseries", "interval": "5m"}]}),
        )
        .await;
        let points = series[0]["computes"]["c0"].as_array().unwrap();
        assert_eq!(
            points
                .iter()
                .map(|p| p["value"].as_i64().unwrap())
                .sum::<i64>(),
            want
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn timeseries_buckets_align_to_the_interval() {
    let h = Harness::start().await;
    let base = (now_ms() / 3_600_000 - 2) * 3_600_000;
    h.ingest(&json!([
        {"message": "a", "timestamp": base + 1_000, "service": "x"},
        {"message": "b", "timestamp": base + 2_000, "service": "x"},
        {"message": "c", "timestamp": base + 600_000 + 5, "service": "y"},
    ]))
    .await;
    let buckets = aggregate(
        &h,
        json!({"filter": {"from": base, "to": base + 3_600_000}, "compute": [{"type": "timeseries", "interval": "10m"}], "group_by": [{"facet": "service"}]}),
    )
    .await;
    let x = buckets.iter().find(|b| b["by"]["service"] == "x").unwrap();
    assert_eq!(
        x["computes"]["c0"],
        json!([{"time": cairn_intake::timefmt::format_rfc3339_ms(base), "value": 2}])
    );
    let y = buckets.iter().find(|b| b["by"]["service"] == "y").unwrap();
    assert_eq!(
        y["computes"]["c0"][0]["time"],
        cairn_intake::timefmt::format_rfc3339_ms(base + 600_000)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tail_returns_logs_in_arrival_order_after_the_last_seen() {
    let h = Harness::start().await;
    h.ingest(&json!([{"message": "first", "service": "t"}, {"message": "other", "service": "u"}]))
        .await;
    let get = |query: &'static str, after: Option<String>| {
        let h = &h;
        async move {
            let mut req = h
                .http
                .get(h.url("/api/v2/logs/events/tail"))
                .query(&[("query", query)]);
            if let Some(a) = after {
                req = req.query(&[("after", a)]);
            }
            req.send().await.unwrap().json::<Value>().await.unwrap()
        }
    };
    let start = get("service:t", None).await;
    assert_eq!(start["data"].as_array().unwrap().len(), 1);
    let after = start["meta"]["page"]["after"].as_str().unwrap().to_owned();
    // Arrival order, not timestamp order: an old timestamp arriving late still shows up.
    h.ingest(&json!([{"message": "second", "service": "t", "timestamp": 1000}, {"message": "third", "service": "t"}])).await;
    let next = get("service:t", Some(after)).await;
    let msgs: Vec<&str> = next["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["attributes"]["message"].as_str().unwrap())
        .collect();
    assert_eq!(msgs, ["second", "third"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_deletes_logs_past_the_age_and_keeps_counts_exact() {
    let h = Harness::start_with(|c| c.retention = std::time::Duration::from_secs(3600)).await;
    let now = now_ms();
    h.ingest(&json!([
        {"message": "ancient", "timestamp": now - 2 * 86_400_000, "service": "s"},
        {"message": "stale", "timestamp": now - 7_200_000, "service": "s"},
        {"message": "fresh", "timestamp": now - 60_000, "service": "s"},
    ]))
    .await;
    let report = h.intake.enforce_retention().await.unwrap();
    assert_eq!(report.deleted_by_age, 2);
    let left = h.search("service:s").await;
    assert_eq!(left.len(), 1);
    let total = aggregate(&h, json!({"filter": {"from": now - 3 * 86_400_000, "to": "now"}, "group_by": [{"facet": "service"}]})).await;
    assert_eq!(
        total[0]["computes"]["c0"], 1,
        "the rollup forgets deleted logs too"
    );
    assert_eq!(
        h.search("ancient OR stale").await.len(),
        0,
        "and so does the full-text index"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_by_size_deletes_the_oldest_first() {
    let h = Harness::start_with(|c| c.max_size_bytes = 1 << 20).await;
    let base = now_ms() - 3_600_000;
    for chunk in 0..8 {
        let logs: Vec<Value> = (0..500)
            .map(|i| json!({"message": format!("{} {}", "padding words here".repeat(20), chunk * 500 + i), "timestamp": base + chunk * 500 + i, "n": chunk * 500 + i}))
            .collect();
        h.ingest(&Value::Array(logs)).await;
    }
    let report = h.intake.enforce_retention().await.unwrap();
    assert!(report.deleted_by_size > 0, "{report:?}");
    // Each pass deletes one estimate's worth and measures again at the next, so the store
    // converges on the budget within a few passes.
    let mut passes = 1;
    let mut report = report;
    while report.used_bytes > 1 << 20 && passes < 10 {
        report = h.intake.enforce_retention().await.unwrap();
        passes += 1;
    }
    assert!(
        report.used_bytes <= 1 << 20,
        "{report:?} after {passes} passes"
    );
    let kept = h
        .api("/api/v2/logs/events/search", json!({"filter": {"from": base - 1, "to": "now"}, "sort": "timestamp", "page": {"limit": 1}}))
        .await;
    let oldest_kept = kept["data"][0]["attributes"]["attributes"]["n"]
        .as_i64()
        .unwrap();
    let newest = h
        .api(
            "/api/v2/logs/events/search",
            json!({"filter": {"from": base - 1, "to": "now"}, "page": {"limit": 1}}),
        )
        .await;
    assert!(oldest_kept > 0);
    assert_eq!(
        newest["data"][0]["attributes"]["attributes"]["n"], 3999,
        "the newest survive"
    );
}

/// A NUL in a query used to end FTS5's query string inside its literal: a 500 from search and
/// tail (found by tests/fuzz.rs). It is a separator, as it is in a stored message.
#[tokio::test(flavor = "multi_thread")]
async fn a_nul_in_a_query_is_a_separator_not_a_500() {
    let h = Harness::start().await;
    h.ingest(&json!([{"message": "before\u{0}alpha after", "timestamp": now_ms() - 1_000}]))
        .await;
    for q in ["\u{0}alpha", "\"before\u{0}alpha\"", "alpha\u{0}"] {
        assert_eq!(h.search(q).await.len(), 1, "{q:?}");
        let resp = h
            .http
            .get(h.url("/api/v2/logs/events/tail"))
            .query(&[("query", q)])
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status().as_u16(),
            200,
            "{q:?}: {}",
            resp.text().await.unwrap()
        );
    }
}
