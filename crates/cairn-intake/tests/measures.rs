//! Measures in the aggregate API (issue 11): exact values over known data, and the same
//! answers from the per-minute tables as from scanning every log.

mod common;

use common::*;
use serde_json::{json, Value};

const MINUTE: i64 = 60_000;

/// A minute boundary two hours ago, so that a range starting there is made of whole minutes.
fn base() -> i64 {
    (now_ms() - 2 * 3_600_000) / MINUTE * MINUTE
}

async fn buckets(h: &Harness, body: Value) -> Vec<Value> {
    let r = h.api("/api/v2/logs/analytics/aggregate", body).await;
    r["data"]["buckets"].as_array().unwrap().clone()
}

/// The same request answered twice: as written (whole minutes come from the per-minute
/// tables) and with `host:*` added (every log holds a host), which only a scan answers.
async fn both_ways(h: &Harness, body: Value) -> Vec<Value> {
    let fast = buckets(h, body.clone()).await;
    let mut slow_body = body.clone();
    let q = slow_body["filter"]["query"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    slow_body["filter"]["query"] = json!(format!("host:* {q}"));
    let slow = buckets(h, slow_body).await;
    assert_eq!(fast, slow, "per-minute tables and scan differ for {body}");
    fast
}

fn close(v: &Value, want: f64) {
    let got = v.as_f64().unwrap_or_else(|| panic!("{v} is not a number"));
    assert!((got - want).abs() < 1e-9, "got {got}, want {want}");
}

/// Five durations, one string duration (ignored), one log without it.
async fn known(h: &Harness, base: i64) {
    let logs: Vec<Value> = [10, 20, 30, 40, 100]
        .iter()
        .enumerate()
        .map(|(i, d)| {
            json!({"message": format!("req {i}"), "timestamp": base + 1000 * i as i64, "service": "web",
                   "hostname": "h1", "status": "info", "duration_ms": d, "user": {"id": format!("u{}", i % 3)}})
        })
        .chain([
            json!({"message": "odd", "timestamp": base + 10_000, "service": "web", "hostname": "h1", "duration_ms": "n/a", "user": {"id": "u9"}}),
            json!({"message": "none", "timestamp": base + 11_000, "service": "api", "hostname": "h1"}),
        ])
        .collect();
    h.ingest(&Value::Array(logs)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn known_values_give_exact_measures_percentiles_and_cardinality() {
    let h = Harness::start().await;
    let base = base();
    known(&h, base).await;
    let filter = json!({"from": base, "to": base + 3 * MINUTE - 1});
    let b = both_ways(
        &h,
        json!({"filter": filter, "compute": [
            {"aggregation": "avg", "metric": "@duration_ms"},
            {"aggregation": "sum", "metric": "@duration_ms"},
            {"aggregation": "min", "metric": "@duration_ms"},
            {"aggregation": "max", "metric": "@duration_ms"}]}),
    )
    .await;
    assert_eq!(b.len(), 1);
    let c = &b[0]["computes"];
    close(&c["c0"], 40.0);
    close(&c["c1"], 200.0);
    close(&c["c2"], 10.0);
    close(&c["c3"], 100.0);

    // Linear interpolation between closest ranks over 10 20 30 40 100.
    let b = both_ways(
        &h,
        json!({"filter": filter, "compute": [
            {"aggregation": "median", "metric": "@duration_ms"},
            {"aggregation": "pc75", "metric": "@duration_ms"},
            {"aggregation": "pc90", "metric": "@duration_ms"},
            {"aggregation": "pc99", "metric": "@duration_ms"}]}),
    )
    .await;
    let c = &b[0]["computes"];
    close(&c["c0"], 30.0);
    close(&c["c1"], 40.0);
    close(&c["c2"], 76.0);
    close(&c["c3"], 97.6);

    let b = both_ways(
        &h,
        json!({"filter": filter, "compute": [
            {"aggregation": "count"},
            {"aggregation": "cardinality", "metric": "@user.id"},
            {"aggregation": "cardinality", "metric": "service"},
            {"aggregation": "pc95", "metric": "@duration_ms"}]}),
    )
    .await;
    let c = &b[0]["computes"];
    assert_eq!(c["c0"], 7);
    assert_eq!(c["c1"], 4, "u0 u1 u2 u9");
    assert_eq!(c["c2"], 2);
    close(&c["c3"], 88.0);

    // A group without any number has null measures but still counts.
    let b = both_ways(
        &h,
        json!({"filter": filter, "compute": [{"aggregation": "avg", "metric": "@duration_ms"}, {"aggregation": "count"}],
               "group_by": [{"facet": "service"}]}),
    )
    .await;
    assert_eq!(b.len(), 2);
    assert_eq!(b[0]["by"]["service"], "web");
    close(&b[0]["computes"]["c0"], 40.0);
    assert_eq!(b[0]["computes"]["c1"], 6);
    assert_eq!(b[1]["by"]["service"], "api");
    assert_eq!(b[1]["computes"]["c0"], Value::Null);
    assert_eq!(b[1]["computes"]["c1"], 1);
}

/// 600 logs over 100 minutes, 3 services, 2 statuses, durations 0..=999, http.status numeric,
/// a string method and a user id.
fn varied(base: i64) -> Value {
    Value::Array(
        (0..600i64)
            .map(|i| {
                let service = ["web", "api", "db"][(i % 3) as usize];
                let code = [200, 200, 404, 500][(i % 4) as usize];
                let method = ["GET", "POST"][(i % 2) as usize];
                json!({"message": format!("request {i}"), "timestamp": base + i * 10_000,
                       "service": service, "hostname": format!("h{}", i % 2),
                       "status": if i % 7 == 0 { "error" } else { "info" }, "ddsource": "app",
                       "duration_ms": (i * 37) % 1000, "http": {"status": code, "method": method},
                       "user": {"id": format!("u{}", i % 50)}})
            })
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn timeseries_groups_sorts_and_missing_agree_with_a_scan() {
    let h = Harness::start().await;
    let base = base();
    h.ingest(&varied(base)).await;
    // Unaligned ends: partial minutes come from logs, the rest from the per-minute tables.
    let filter = json!({"from": base + 25_000, "to": base + 95 * MINUTE + 7_000});

    let b = both_ways(
        &h,
        json!({"filter": filter, "compute": [
            {"aggregation": "avg", "metric": "@duration_ms", "type": "timeseries", "interval": "1m"},
            {"aggregation": "count", "type": "timeseries", "interval": "5m"},
            {"aggregation": "pc90", "metric": "@duration_ms"}],
            "group_by": [{"facet": "service", "limit": 2}]}),
    )
    .await;
    assert_eq!(b.len(), 2, "limit 2");
    let points = b[0]["computes"]["c0"].as_array().unwrap();
    assert!(points.len() >= 90, "{}", points.len());
    let times: Vec<&str> = points.iter().map(|p| p["time"].as_str().unwrap()).collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "points sorted by time");
    let fives = b[0]["computes"]["c1"].as_array().unwrap();
    let total: i64 = fives.iter().map(|p| p["value"].as_i64().unwrap()).sum();
    assert!(total > 150, "{total}");

    // Two group_bys: the limit of the second applies within each group of the first.
    let b = both_ways(
        &h,
        json!({"filter": filter, "compute": [{"aggregation": "count"}, {"aggregation": "max", "metric": "@duration_ms"}],
               "group_by": [{"facet": "service", "limit": 3}, {"facet": "status", "limit": 1}]}),
    )
    .await;
    assert_eq!(b.len(), 3);
    for x in &b {
        assert_eq!(x["by"]["status"], "info", "{x}");
    }

    // Sorts: alphabetical, ascending count, by a measure not among the computes.
    let b = both_ways(
        &h,
        json!({"filter": filter, "group_by": [{"facet": "service", "sort": {"type": "alphabetical", "order": "desc"}}]}),
    )
    .await;
    let names: Vec<&str> = b
        .iter()
        .map(|x| x["by"]["service"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web", "db", "api"]);
    let b = both_ways(
        &h,
        json!({"filter": filter, "group_by": [{"facet": "@http.status", "sort": {"aggregation": "count", "order": "asc"}}]}),
    )
    .await;
    let names: Vec<&str> = b
        .iter()
        .map(|x| x["by"]["@http.status"].as_str().unwrap())
        .collect();
    assert_eq!(
        names[2], "200",
        "200 is the most frequent, last in ascending order: {names:?}"
    );
    let b = both_ways(
        &h,
        json!({"filter": filter, "group_by": [{"facet": "service", "sort": {"aggregation": "min", "metric": "@duration_ms", "order": "asc"}}]}),
    )
    .await;
    assert_eq!(b.len(), 3);

    // Range filters, and facets of attributes.
    for q in [
        "@duration_ms:>500",
        "@duration_ms:[100 TO 200}",
        "status:error @duration_ms:<=300",
    ] {
        let mut f = filter.clone();
        f["query"] = json!(q);
        let b = both_ways(
            &h,
            json!({"filter": f, "compute": [{"aggregation": "count"}, {"aggregation": "avg", "metric": "@duration_ms"}], "group_by": [{"facet": "service"}]}),
        )
        .await;
        assert!(!b.is_empty(), "{q}");
    }
    let b = both_ways(
        &h,
        json!({"filter": filter, "group_by": [{"facet": "@http.method"}, {"facet": "@http.status"}]}),
    )
    .await;
    assert_eq!(b.len(), 4, "GET 200, GET 500, POST 200, POST 404: {b:?}");

    // missing: logs without the facet form their own group.
    h.ingest(&json!([{"message": "bare", "timestamp": base + 30 * MINUTE, "service": "web", "hostname": "h1"}]))
        .await;
    let b = both_ways(
        &h,
        json!({"filter": filter, "group_by": [{"facet": "@http.status", "missing": "none", "limit": 10}]}),
    )
    .await;
    let none: Vec<&Value> = b
        .iter()
        .filter(|x| x["by"]["@http.status"] == "none")
        .collect();
    assert_eq!(none.len(), 1);
    assert_eq!(none[0]["computes"]["c0"], 1);
    let b = both_ways(
        &h,
        json!({"filter": filter, "group_by": [{"facet": "@http.status"}]}),
    )
    .await;
    assert!(b.iter().all(|x| x["by"]["@http.status"] != "none"));
    let b = buckets(
        &h,
        json!({"filter": filter, "group_by": [{"facet": "@user.id", "limit": 1000}]}),
    )
    .await;
    assert_eq!(b.len(), 50);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_are_400s_naming_the_field() {
    let h = Harness::start().await;
    let cases = [
        (
            json!({"compute": [{"aggregation": "mode", "metric": "@x"}]}),
            "compute[0].aggregation",
        ),
        (
            json!({"compute": [{"aggregation": "avg"}]}),
            "compute[0].metric",
        ),
        (
            json!({"compute": [{"aggregation": "avg", "metric": "service"}]}),
            "compute[0].metric",
        ),
        (
            json!({"compute": [{}, {}, {}, {}, {}]}),
            "compute takes at most 4",
        ),
        (
            json!({"group_by": [{"facet": "service"}, {"facet": "host"}, {"facet": "status"}]}),
            "group_by takes at most 2",
        ),
        (
            json!({"group_by": [{"facet": "service", "limit": 0}]}),
            "group_by[0].limit",
        ),
        (
            json!({"group_by": [{"facet": "service", "limit": 1001}]}),
            "1 to 1000",
        ),
        (
            json!({"group_by": [{"facet": "@a..b"}]}),
            "group_by[0].facet",
        ),
        (
            json!({"group_by": [{"facet": "service", "sort": {"order": "up"}}]}),
            "group_by[0].sort.order",
        ),
        (
            json!({"group_by": [{"facet": "service", "sort": {"aggregation": "avg"}}]}),
            "group_by[0].sort.metric",
        ),
        (
            json!({"group_by": [{"facet": "service", "missing": [1]}]}),
            "group_by[0].missing",
        ),
        (
            json!({"compute": [{"type": "timeseries", "interval": 1}], "filter": {"from": "now-1d"}}),
            "compute[0].interval",
        ),
        (json!({"compute": [{"type": "pie"}]}), "compute[0].type"),
    ];
    for (body, want) in cases {
        let (status, resp) = h
            .api_status("/api/v2/logs/analytics/aggregate", body.clone())
            .await;
        assert_eq!(status, 400, "{body} → {resp}");
        let detail = resp["errors"][0]["detail"].as_str().unwrap_or("");
        assert!(
            detail.contains(want),
            "{body}: {detail:?} should name {want}"
        );
    }
}

async fn attributes(h: &Harness, query: &str) -> (u16, String) {
    let resp = h
        .http
        .get(h.url(&format!("/api/v2/logs/attributes{query}")))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn attributes_lists_paths_with_types_and_counts_never_values() {
    let h = Harness::start().await;
    h.ingest(&json!([
        {"message": "a", "service": "s", "http": {"status": 500, "method": "GET-SECRET"}, "ok": true, "tagsx": ["x"]},
        {"message": "b", "service": "s", "http": {"status": "oops"}, "ok": false},
        {"message": "c", "service": "s", "http": {"status": 200}, "duration_ms": 3.5},
    ]))
    .await;
    let (status, body) = attributes(&h, "").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        !body.contains("SECRET") && !body.contains("oops"),
        "values leaked: {body}"
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    let list = v["data"].as_array().unwrap();
    let get = |p: &str| {
        list.iter()
            .find(|x| x["path"] == p)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(
        list[0]["path"], "http.status",
        "most frequent first: {body}"
    );
    assert_eq!(
        get("http.status"),
        json!({"path": "http.status", "type": "mixed", "count": 3})
    );
    assert_eq!(
        get("http.method"),
        json!({"path": "http.method", "type": "string", "count": 1})
    );
    assert_eq!(
        get("ok"),
        json!({"path": "ok", "type": "boolean", "count": 2})
    );
    assert_eq!(
        get("duration_ms"),
        json!({"path": "duration_ms", "type": "number", "count": 1})
    );
    assert_eq!(get("tagsx")["type"], "mixed");
    assert!(
        list.iter().all(|x| x["path"] != "http"),
        "objects are not leaves"
    );

    let (_, body) = attributes(&h, "?prefix=http.&limit=1").await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["data"],
        json!([{"path": "http.status", "type": "mixed", "count": 3}])
    );
    let (_, body) = attributes(&h, "?prefix=%40http.m").await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["data"][0]["path"], "http.method");
    for bad in ["?limit=0", "?limit=5000", "?limit=x"] {
        let (status, body) = attributes(&h, bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.contains("limit"), "{body}");
    }
}

fn side_rows(h: &Harness) -> (i64, i64) {
    let conn = rusqlite::Connection::open_with_flags(
        h.dir.path().join("intake").join("intake.sqlite3"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let values: i64 = conn
        .query_row("SELECT ifnull(sum(n), 0) FROM attr_measure", [], |r| {
            r.get(0)
        })
        .unwrap();
    let listed: i64 = conn
        .query_row(
            "SELECT ifnull(sum(n_number + n_string + n_boolean + n_other), 0) FROM attr_paths",
            [],
            |r| r.get(0),
        )
        .unwrap();
    (values, listed)
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_removes_measure_rows_and_path_counts() {
    let h = Harness::start_with(|c| c.retention = std::time::Duration::from_secs(3600)).await;
    let now = now_ms();
    // Retention cuts at an instant: "stale" and "edge" may share a minute, of which only
    // one value must go.
    let cut = now - 3_600_000;
    h.ingest(&json!([
        {"message": "ancient", "timestamp": now - 2 * 86_400_000, "service": "s", "hostname": "h", "d": 1000},
        {"message": "stale", "timestamp": cut - 5_000, "service": "s", "hostname": "h", "d": 1, "k": "x"},
        {"message": "edge", "timestamp": cut + 30_000, "service": "s", "hostname": "h", "d": 7},
        {"message": "fresh", "timestamp": now - 60_000, "service": "s", "hostname": "h", "d": 5},
    ]))
    .await;
    assert_eq!(side_rows(&h), (4, 5));
    let report = h.intake.enforce_retention().await.unwrap();
    assert_eq!(report.deleted_by_age, 2);
    assert_eq!(
        side_rows(&h),
        (2, 2),
        "the deleted logs' values and paths are gone"
    );
    let (_, body) = attributes(&h, "").await;
    assert!(
        !body.contains("\"k\""),
        "a path no stored log holds is not listed: {body}"
    );
    let filter = json!({"from": now - 3 * 86_400_000, "to": "now"});
    let b = both_ways(
        &h,
        json!({"filter": filter, "compute": [{"aggregation": "min", "metric": "@d"}, {"aggregation": "max", "metric": "@d"},
               {"aggregation": "sum", "metric": "@d"}, {"aggregation": "count"}]}),
    )
    .await;
    let c = &b[0]["computes"];
    close(&c["c0"], 5.0);
    close(&c["c1"], 7.0);
    close(&c["c2"], 12.0);
    assert_eq!(c["c3"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn deep_huge_and_odd_attributes_still_aggregate() {
    let h = Harness::start().await;
    let mut deep = json!(1);
    for _ in 0..70 {
        deep = json!({ "d": deep });
    }
    let body = format!(
        r#"[{{"message": "m", "service": "s", "hostname": "h", "deep": {deep}, "n": 1e999, "big": 1{zeros}, "k": "\ud800"}},
            {{"message": "m2", "service": "s", "hostname": "h", "n": 3, "deep": 2}}]"#,
        zeros = "0".repeat(400)
    );
    let (status, text) = h.post_raw("/api/v2/logs", None, body.into_bytes()).await;
    assert_eq!(status, 202, "{text}");
    for group in ["@deep", "@n", "@big", "@k"] {
        let b = buckets(
            &h,
            json!({"filter": {"from": "now-1h", "to": "now+1h"},
                   "compute": [{"aggregation": "count"}, {"aggregation": "avg", "metric": group}, {"aggregation": "pc99", "metric": "@n"}],
                   "group_by": [{"facet": group}]}),
        )
        .await;
        assert!(!b.is_empty(), "{group}");
    }
    let (status, _) = attributes(&h, "").await;
    assert_eq!(status, 200);
}

fn value_rows(h: &Harness, path: &str) -> (i64, i64) {
    let conn = rusqlite::Connection::open_with_flags(
        h.dir.path().join("intake").join("intake.sqlite3"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    conn.query_row(
        "SELECT ifnull(sum(v.n), 0), p.values_capped FROM attr_paths p
         LEFT JOIN attr_values v ON v.path_id = p.id WHERE p.json_path = ?1 GROUP BY p.id",
        [path],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn text_facets_come_from_per_minute_values_and_agree_with_a_scan() {
    let h = Harness::start().await;
    let base = base();
    h.ingest(&varied(base)).await;
    // Every log holds @http.method (a short text): all 600 counted per minute.
    assert_eq!(value_rows(&h, "$.\"http\".\"method\""), (600, 0));
    let filter = json!({"from": base + 5_000, "to": base + 6_000_000 - 5_000});
    for body in [
        json!({"filter": filter, "compute": [{"aggregation": "count"}], "group_by": [{"facet": "@http.method"}]}),
        json!({"filter": filter, "compute": [{"aggregation": "count", "type": "timeseries", "interval": "5m"}],
               "group_by": [{"facet": "@http.method"}, {"facet": "service"}]}),
        json!({"filter": {"query": "status:error service:web", "from": base, "to": "now"},
               "compute": [{"aggregation": "count"}, {"aggregation": "cardinality", "metric": "service"}],
               "group_by": [{"facet": "@user.id", "limit": 5}]}),
    ] {
        let b = both_ways(&h, body.clone()).await;
        assert!(!b.is_empty(), "{body}");
    }
    let b = both_ways(
        &h,
        json!({"filter": {"from": base, "to": "now"}, "compute": [{"aggregation": "count"}], "group_by": [{"facet": "@http.method"}]}),
    )
    .await;
    assert_eq!(b.len(), 2);
    assert_eq!(b[0]["computes"]["c0"], 300);
    // The host is kept the same way (a path of its own, never listed as an attribute).
    assert_eq!(value_rows(&h, "host"), (600, 0));
    for body in [
        json!({"filter": filter, "compute": [{"aggregation": "count"}], "group_by": [{"facet": "host"}]}),
        json!({"filter": {"query": "service:web", "from": base, "to": "now"}, "compute": [{"aggregation": "count"}],
               "group_by": [{"facet": "host"}, {"facet": "status"}]}),
    ] {
        let b = both_ways(&h, body.clone()).await;
        assert!(!b.is_empty(), "{body}");
    }
    let (_, listed) = attributes(&h, "").await;
    assert!(!listed.contains("\"host\""), "{listed}");

    // A path with more distinct values than the cap is left to scans, and says so.
    for chunk in 0..2 {
        let many: Vec<Value> = (chunk * 550..(chunk + 1) * 550)
            .map(|i| json!({"message": "m", "timestamp": base + i, "service": "ids", "hostname": "h", "req": format!("r{i}")}))
            .collect();
        h.ingest(&Value::Array(many)).await;
    }
    assert_eq!(value_rows(&h, "$.\"req\""), (0, 1));
    let b = both_ways(
        &h,
        json!({"filter": {"from": base, "to": "now"}, "compute": [{"aggregation": "count"}], "group_by": [{"facet": "@req", "limit": 3}]}),
    )
    .await;
    assert_eq!(b.len(), 3);
    // A value too long to keep caps its path too.
    h.ingest(&json!([{"message": "m", "timestamp": base, "service": "s", "hostname": "h", "long": "x".repeat(200)}]))
        .await;
    assert_eq!(value_rows(&h, "$.\"long\""), (0, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_takes_text_values_out() {
    let h = Harness::start_with(|c| c.retention = std::time::Duration::from_secs(3600)).await;
    let now = now_ms();
    h.ingest(&json!([
        {"message": "old", "timestamp": now - 7_200_000, "service": "s", "hostname": "h", "k": "a"},
        {"message": "old2", "timestamp": now - 7_200_000, "service": "s", "hostname": "h", "k": "b"},
        {"message": "new", "timestamp": now - 60_000, "service": "s", "hostname": "h", "k": "a"},
    ]))
    .await;
    assert_eq!(value_rows(&h, "$.\"k\""), (3, 0));
    h.intake.enforce_retention().await.unwrap();
    assert_eq!(value_rows(&h, "$.\"k\""), (1, 0));
    assert_eq!(value_rows(&h, "host"), (1, 0));
    let b = both_ways(
        &h,
        json!({"filter": {"from": now - 86_400_000, "to": "now"}, "compute": [{"aggregation": "count"}], "group_by": [{"facet": "@k"}]}),
    )
    .await;
    assert_eq!(b.len(), 1);
    assert_eq!(b[0]["by"]["@k"], "a");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_tags_facet_comes_from_per_minute_values_and_retention_takes_them_out() {
    let h = Harness::start_with(|c| c.retention = std::time::Duration::from_secs(3600)).await;
    let now = now_ms();
    let logs: Vec<Value> = (0..300i64)
        .map(|i| {
            let ts = if i < 100 { now - 7_200_000 } else { now - 3_000_000 + i * 1_000 };
            let service = ["a", "b"][(i % 2) as usize];
            let env = ["prod", "dev"][(i % 2) as usize];
            json!({"message": "m", "timestamp": ts, "service": service, "hostname": "h",
                   "ddtags": format!("env:{env},team:t{},shard:{}", i % 3, i % 5)})
        })
        .chain([json!({"message": "untagged", "timestamp": now - 60_000, "service": "a", "hostname": "h"})])
        .collect();
    h.ingest(&Value::Array(logs)).await;
    assert_eq!(value_rows(&h, "tags"), (900, 0));
    let filter = json!({"from": now - 86_400_000, "to": "now"});
    for body in [
        json!({"filter": filter, "compute": [{"aggregation": "count"}], "group_by": [{"facet": "tags", "limit": 20}]}),
        json!({"filter": {"query": "service:a", "from": now - 86_400_000, "to": "now"},
               "compute": [{"aggregation": "count", "type": "timeseries", "interval": "10m"}],
               "group_by": [{"facet": "tags", "limit": 5}, {"facet": "status"}]}),
    ] {
        let b = both_ways(&h, body.clone()).await;
        assert!(!b.is_empty(), "{body}");
    }
    h.intake.enforce_retention().await.unwrap();
    assert_eq!(value_rows(&h, "tags"), (600, 0));
    let b = both_ways(
        &h,
        json!({"filter": filter, "compute": [{"aggregation": "count"}], "group_by": [{"facet": "tags", "limit": 20}]}),
    )
    .await;
    let env_prod = b.iter().find(|b| b["by"]["tags"] == "env:prod").unwrap();
    assert_eq!(env_prod["computes"]["c0"], 100);
}
