//! The Explorer's APIs of issue 11 against a real store over HTTP: patterns, view in context,
//! saved views and export.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use common::*;
use serde_json::{json, Value};

const PATTERNS: &str = "/api/v2/logs/analytics/patterns";
const EXPORT: &str = "/api/v2/logs/events/export";

/// Percent-encodes everything but unreserved characters, as a browser's encodeURIComponent.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

const NAMES: [&str; 8] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
];
const WORDS: [&str; 6] = ["alpha", "beta", "gamma", "delta", "omega", "sigma"];

/// (template index, message, status) for a corpus whose templates are known.
fn corpus() -> (Vec<(usize, String, &'static str)>, Vec<&'static str>) {
    let templates = vec![
        "user <*> logged in from <*>",
        "payment <*> failed: card declined after <*> retries",
        "GET <*> returned <*> in <*>",
        "cache flush key=<*> size=<*> done",
        "job said <*> and stopped",
        "shutdown requested by operator",
    ];
    let mut lines = Vec::new();
    for i in 0..40 {
        lines.push((
            0,
            format!("user {} logged in from 10.1.{}.{}", NAMES[i % 8], i % 7, i),
            "info",
        ));
    }
    for i in 0..25 {
        lines.push((
            1,
            format!(
                "payment pay-{}{} failed: card declined after {} retries",
                WORDS[i % 6],
                NAMES[i % 8],
                i % 4 + 1
            ),
            if i % 5 == 0 { "warn" } else { "error" },
        ));
    }
    for i in 0..30 {
        lines.push((
            2,
            format!(
                "GET /api/{}/{} returned {} in {}ms",
                WORDS[i % 3],
                i,
                [200, 404, 500][i % 3],
                i * 7
            ),
            if i % 3 == 2 { "error" } else { "info" },
        ));
    }
    for i in 0..20 {
        lines.push((
            3,
            format!("cache flush key={} size={} done", WORDS[i % 6], i * 100),
            "debug",
        ));
    }
    for i in 0..15 {
        lines.push((
            4,
            format!(
                "job said \"{} is {} today\" and stopped",
                NAMES[i % 8],
                WORDS[i % 6]
            ),
            "info",
        ));
    }
    for _ in 0..3 {
        lines.push((5, "shutdown requested by operator".into(), "critical"));
    }
    (lines, templates)
}

#[tokio::test(flavor = "multi_thread")]
async fn patterns_put_every_line_in_its_template_and_their_queries_list_exactly_those_lines() {
    let h = Harness::start().await;
    let (lines, templates) = corpus();
    let base = now_ms() - 600_000;
    // Interleaved in time, so that no template is one contiguous run.
    let mut order: Vec<usize> = (0..lines.len()).collect();
    order.sort_by_key(|i| (i * 7919) % lines.len());
    let logs: Vec<Value> = order
        .iter()
        .enumerate()
        .map(|(k, &i)| {
            let (t, msg, status) = &lines[i];
            json!({"message": msg, "status": status, "service": "web", "hostname": "h1",
                   "timestamp": base + k as i64 * 1_000, "t": t})
        })
        .collect();
    h.ingest(&Value::Array(logs)).await;
    let filter = json!({"query": "service:web", "from": "now-1h", "to": "now"});
    let r = h.api(PATTERNS, json!({"filter": filter})).await;
    assert_eq!(r["meta"]["status"], "done");
    assert_eq!(r["meta"]["scanned"], lines.len());
    assert_eq!(r["meta"]["truncated"], false);
    let patterns = r["data"]["patterns"].as_array().unwrap();
    assert_eq!(patterns.len(), templates.len(), "{patterns:#?}");
    let mut want_counts: HashMap<usize, u64> = HashMap::new();
    let mut want_status: HashMap<usize, BTreeMap<String, u64>> = HashMap::new();
    for (t, _, s) in &lines {
        *want_counts.entry(*t).or_default() += 1;
        *want_status
            .entry(*t)
            .or_default()
            .entry(s.to_string())
            .or_default() += 1;
    }
    let mut counts: Vec<u64> = Vec::new();
    for (k, p) in patterns.iter().enumerate() {
        assert_eq!(p["id"], format!("p{}", k + 1));
        let template = p["template"].as_str().unwrap();
        let t = templates
            .iter()
            .position(|x| *x == template)
            .unwrap_or_else(|| panic!("unexpected template {template:?}"));
        assert_eq!(p["count"].as_u64().unwrap(), want_counts[&t], "{template}");
        let status: BTreeMap<String, u64> = serde_json::from_value(p["status"].clone()).unwrap();
        assert_eq!(status, want_status[&t], "{template}");
        counts.push(want_counts[&t]);
        // ANDed with the filter's query, the pattern's query lists exactly its lines.
        let q = p["query"].as_str().unwrap();
        let found = h.search(&format!("service:web {q}")).await;
        assert_eq!(found.len() as u64, want_counts[&t], "{template}: {q}");
        assert!(
            found
                .iter()
                .all(|l| l["attributes"]["attributes"]["t"] == t),
            "{template}: {q}"
        );
        // The sample is the newest of its logs, exactly as search returns it.
        assert_eq!(p["sample"], found[0], "{template}");
    }
    let mut sorted = counts.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(counts, sorted, "most frequent first");

    // Newest first up to `limit`; max_patterns keeps the most frequent.
    let r = h
        .api(
            PATTERNS,
            json!({"filter": filter, "limit": 10, "max_patterns": 2}),
        )
        .await;
    assert_eq!(r["meta"]["scanned"], 10);
    assert_eq!(r["meta"]["truncated"], true);
    assert!(r["data"]["patterns"].as_array().unwrap().len() <= 2);
    // Nothing matching: no patterns.
    let r = h
        .api(PATTERNS, json!({"filter": {"query": "service:none"}}))
        .await;
    assert_eq!(r["data"]["patterns"], json!([]));
    for (body, word) in [
        (json!({"limit": 0}), "limit"),
        (json!({"max_patterns": 5000}), "max_patterns"),
        (json!({"filter": {"query": "(a"}}), "column"),
        (json!({"filter": {"from": "soon"}}), "soon"),
    ] {
        let (status, resp) = h.api_status(PATTERNS, body.clone()).await;
        assert_eq!(status, 400, "{body}: {resp}");
        assert!(resp.to_string().contains(word), "{body}: {resp}");
    }
}

async fn get(h: &Harness, path: &str) -> (u16, Value) {
    let resp = h.http.get(h.url(path)).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn context_lists_the_same_host_and_service_around_a_log_oldest_first() {
    let h = Harness::start().await;
    let base = now_ms() - 3_600_000;
    let mut logs = Vec::new();
    for i in 0..60i64 {
        let msg = format!("step {i}");
        logs.push(json!({"message": msg, "hostname": "h1", "service": "web", "timestamp": base + i * 1_000, "i": i}));
        // Same time, other host or other service: never in the context.
        logs.push(json!({"message": msg, "hostname": "h2", "service": "web", "timestamp": base + i * 1_000, "i": i}));
        logs.push(json!({"message": msg, "hostname": "h1", "service": "api", "timestamp": base + i * 1_000, "i": i}));
    }
    // Two more at the very time of log 30: ordered by id after it.
    for k in 0..2 {
        logs.push(json!({"message": "tie", "hostname": "h1", "service": "web", "timestamp": base + 30_000, "i": 100 + k}));
    }
    h.ingest(&Value::Array(logs)).await;
    let hit = h.search("host:h1 service:web @i:30").await;
    assert_eq!(hit.len(), 1);
    let id = hit[0]["id"].as_str().unwrap().to_owned();
    let is = |v: &Value| -> Vec<i64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|l| {
                assert_eq!(l["attributes"]["host"], "h1");
                assert_eq!(l["attributes"]["service"], "web");
                l["attributes"]["attributes"]["i"].as_i64().unwrap()
            })
            .collect()
    };
    let (status, r) = get(
        &h,
        &format!("/api/v2/logs/events/{id}/context?before=5&after=4"),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["data"]["log"], hit[0]);
    assert_eq!(is(&r["data"]["before"]), [25, 26, 27, 28, 29]);
    assert_eq!(is(&r["data"]["after"]), [100, 101, 31, 32]);
    // Defaults: 25 each way; a query in the URL is not a filter here.
    let (_, r) = get(
        &h,
        &format!("/api/v2/logs/events/{id}/context?query=nothing"),
    )
    .await;
    assert_eq!(is(&r["data"]["before"]), (5..30).collect::<Vec<_>>());
    assert_eq!(
        is(&r["data"]["after"]),
        [100, 101].into_iter().chain(31..54).collect::<Vec<_>>()
    );
    // At the edges, and none asked for.
    let (_, r) = get(
        &h,
        &format!("/api/v2/logs/events/{id}/context?before=0&after=500"),
    )
    .await;
    assert_eq!(is(&r["data"]["before"]), Vec::<i64>::new());
    assert_eq!(is(&r["data"]["after"]).len(), 31);
    for q in ["before=501", "after=-1", "before=abc", "after=1.5"] {
        let (status, r) = get(&h, &format!("/api/v2/logs/events/{id}/context?{q}")).await;
        assert_eq!(status, 400, "{q}: {r}");
        assert!(r.to_string().contains("500"), "{q}: {r}");
    }
    for bad in ["999999999", "abc", "-1"] {
        let (status, r) = get(&h, &format!("/api/v2/logs/events/{bad}/context")).await;
        assert_eq!(status, 404, "{bad}: {r}");
    }
}

async fn put_view(h: &Harness, name: &str, body: &Value) -> (u16, Value) {
    let resp = h
        .http
        .put(h.url(&format!("/api/v2/logs/views/{}", encode(name))))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn delete_view(h: &Harness, name: &str) -> u16 {
    h.http
        .delete(h.url(&format!("/api/v2/logs/views/{}", encode(name))))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn saved_views_are_created_replaced_listed_and_deleted_by_any_name() {
    let h = Harness::start().await;
    let (_, r) = get(&h, "/api/v2/logs/views").await;
    assert_eq!(r, json!({"data": []}));
    let names = [
        "errors / web",
        "ünïcode ✓ 日本",
        "a%2Fb?c#d&e=f",
        "plain",
        "  spaced  ",
    ];
    for (i, name) in names.iter().enumerate() {
        let state = json!({"query": format!("status:error {i}"), "from": "now-1h", "to": "now",
                           "facets": ["@http.status"], "viz": "list", "an": {"x": [1, 2]}});
        let (status, r) = put_view(&h, name, &json!({ "state": state })).await;
        assert_eq!(status, 200, "{name}: {r}");
        assert_eq!(r["data"]["name"], *name);
        assert_eq!(r["data"]["state"], state);
        assert_eq!(r["data"]["created_at"], r["data"]["updated_at"]);
    }
    let (_, r) = get(&h, "/api/v2/logs/views").await;
    let listed: Vec<&str> = r["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    let mut sorted = names.to_vec();
    sorted.sort_unstable();
    assert_eq!(listed, sorted);

    // Replace keeps created_at and moves updated_at.
    let name = names[1];
    let (_, before) = get(&h, &format!("/api/v2/logs/views/{}", encode(name))).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let (status, r) = put_view(&h, name, &json!({"state": {"query": "new"}})).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["data"]["state"], json!({"query": "new"}));
    assert_eq!(r["data"]["created_at"], before["data"]["created_at"]);
    assert_ne!(r["data"]["updated_at"], before["data"]["updated_at"]);
    let (status, got) = get(&h, &format!("/api/v2/logs/views/{}", encode(name))).await;
    assert_eq!(status, 200);
    assert_eq!(got["data"], r["data"]);

    assert_eq!(delete_view(&h, names[2]).await, 204);
    assert_eq!(delete_view(&h, names[2]).await, 404);
    let (status, _) = get(&h, &format!("/api/v2/logs/views/{}", encode(names[2]))).await;
    assert_eq!(status, 404);
    let (_, r) = get(&h, "/api/v2/logs/views").await;
    assert_eq!(r["data"].as_array().unwrap().len(), names.len() - 1);

    // Limits, each a 400 naming it.
    let big = "x".repeat(64 * 1024);
    for (name, body, word) in [
        ("n".repeat(101), json!({"state": {}}), "100"),
        ("bad\u{1}name".to_owned(), json!({"state": {}}), "control"),
        ("ok".to_owned(), json!({"state": [1]}), "object"),
        ("ok".to_owned(), json!({}), "state"),
        ("ok".to_owned(), json!({"state": {"q": big}}), "64 KiB"),
    ] {
        let (status, r) = put_view(&h, &name, &body).await;
        assert_eq!(status, 400, "{name}: {r}");
        assert!(r.to_string().contains(word), "{word}: {r}");
    }
    let (status, _) = put_view(&h, &"é".repeat(100), &json!({"state": {}})).await;
    assert_eq!(status, 200, "100 characters, 200 bytes");
    let have = names.len();
    for i in have..1000 {
        let (status, r) = put_view(&h, &format!("v{i:04}"), &json!({"state": {}})).await;
        assert_eq!(status, 200, "{r}");
    }
    let (status, r) = put_view(&h, "one too many", &json!({"state": {}})).await;
    assert_eq!(status, 400, "{r}");
    assert!(r.to_string().contains("1000"), "{r}");
    // Replacing one is still allowed at the limit.
    let (status, _) = put_view(&h, "plain", &json!({"state": {"again": true}})).await;
    assert_eq!(status, 200);
}

async fn export(h: &Harness, body: Value) -> (reqwest::header::HeaderMap, String) {
    let resp = h.http.post(h.url(EXPORT)).json(&body).send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 200, "{body}: {text}");
    (headers, text)
}

#[tokio::test(flavor = "multi_thread")]
async fn export_writes_csv_that_a_parser_reads_back_and_ndjson_as_search_returns_it() {
    let h = Harness::start().await;
    let base = now_ms() - 600_000;
    let messages = [
        "plain message",
        "with, commas, inside",
        "with \"quotes\" inside",
        "two\nlines\r\nand crlf",
        "=HYPERLINK(\"http://evil\",\"x\")",
        "+1+1",
        "-2+3",
        "@SUM(A1)",
        "\tstarts with a tab",
        "\rstarts with cr",
        "ünïcode ✓",
    ];
    let logs: Vec<Value> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            json!({"message": m, "timestamp": base + i as i64 * 1_000, "service": "web",
                   "hostname": "h,1", "ddsource": "app", "ddtags": format!("env:prod,team:=cmd{i}"),
                   "status": "info", "http": {"status": 500 + i}, "user": {"name": format!("=u{i}")}, "i": i})
        })
        .collect();
    h.ingest(&Value::Array(logs)).await;
    let columns = ["@http.status", "@user.name", "team", "@missing"];
    let (headers, text) = export(
        &h,
        json!({"filter": {"query": "service:web", "from": "now-1h"}, "format": "csv",
               "columns": columns, "sort": "timestamp"}),
    )
    .await;
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    let disposition = headers["content-disposition"].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"cairn-logs-")
            && disposition.ends_with("Z.csv\""),
        "{disposition}"
    );
    let mut reader = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        header,
        [
            "timestamp",
            "status",
            "host",
            "service",
            "source",
            "message",
            "tags",
            "'@http.status",
            "'@user.name",
            "team",
            "'@missing"
        ],
        "header cells are guarded like any other"
    );
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), messages.len());
    let guarded = |s: &str| {
        if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            format!("'{s}")
        } else {
            s.to_owned()
        }
    };
    for (i, (rec, m)) in records.iter().zip(messages).enumerate() {
        assert_eq!(&rec[5], guarded(m), "message {i}");
        assert_eq!(&rec[1], "info");
        assert_eq!(&rec[2], "h,1");
        assert_eq!(&rec[3], "web");
        assert_eq!(&rec[4], "app");
        assert_eq!(&rec[6], format!("source:app,env:prod,team:=cmd{i}"));
        assert_eq!(&rec[7], (500 + i).to_string());
        assert_eq!(&rec[8], format!("'=u{i}"));
        assert_eq!(&rec[9], format!("'=cmd{i}"));
        assert_eq!(&rec[10], "");
    }
    // No cell of the file starts a formula.
    for rec in &records {
        for cell in rec {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "{cell:?}"
            );
        }
    }

    let (headers, text) = export(
        &h,
        json!({"filter": {"query": "service:web", "from": "now-1h"}, "format": "ndjson"}),
    )
    .await;
    assert_eq!(headers["content-type"], "application/x-ndjson");
    assert!(headers["content-disposition"]
        .to_str()
        .unwrap()
        .ends_with(".ndjson\""));
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), messages.len());
    assert_eq!(
        lines,
        h.search("service:web").await,
        "newest first, as search"
    );

    for (body, word) in [
        (json!({"format": "xml"}), "format"),
        (json!({"limit": 0}), "limit"),
        (json!({"sort": "host"}), "sort"),
        (json!({"columns": vec!["a"; 101]}), "100"),
        (json!({"columns": [""]}), "columns"),
        (json!({"filter": {"query": "a AND"}}), "column"),
    ] {
        let (status, r) = h.api_status(EXPORT, body.clone()).await;
        assert_eq!(status, 400, "{body}: {r}");
        assert!(r.to_string().contains(word), "{body}: {r}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn export_stops_at_100000_logs_and_streams_them() {
    let h = Harness::start().await;
    let total = 100_050usize;
    let base = now_ms() - 3_000_000;
    for chunk in 0..total.div_ceil(1000) {
        let logs: Vec<Value> = (chunk * 1000..((chunk + 1) * 1000).min(total))
            .map(|i| json!({"message": format!("row {i} of the export"), "timestamp": base + i as i64 * 10, "i": i}))
            .collect();
        h.ingest(&Value::Array(logs)).await;
    }
    let (_, text) = export(
        &h,
        json!({"filter": {"from": "now-1h"}, "format": "ndjson", "limit": 500_000}),
    )
    .await;
    assert_eq!(text.lines().count(), 100_000);
    // Pages follow each other without a gap or a repeat, newest first.
    for (k, line) in text.lines().enumerate() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(
            v["attributes"]["attributes"]["i"],
            total - 1 - k,
            "line {k}"
        );
    }
    // Oldest first too, and a limit that ends inside a page.
    let (_, text) = export(
        &h,
        json!({"filter": {"from": "now-1h"}, "format": "ndjson", "limit": 12_345, "sort": "timestamp"}),
    )
    .await;
    assert_eq!(text.lines().count(), 12_345);
    for (k, line) in text.lines().enumerate() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["attributes"]["attributes"]["i"], k, "line {k}");
    }

    // The first bytes arrive long before the last: the body is written as it is read.
    let started = Instant::now();
    let mut resp = h
        .http
        .post(h.url(EXPORT))
        .json(&json!({"filter": {"from": "now-1h"}, "format": "csv"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers().get("content-length").is_none());
    assert_eq!(resp.headers()["transfer-encoding"], "chunked");
    let first = resp.chunk().await.unwrap().unwrap();
    let first_at = started.elapsed();
    let mut bytes = first.len();
    let mut rows = first.iter().filter(|b| **b == b'\n').count();
    while let Some(c) = resp.chunk().await.unwrap() {
        bytes += c.len();
        rows += c.iter().filter(|b| **b == b'\n').count();
    }
    let all_at = started.elapsed();
    assert_eq!(rows, 100_001, "header and 100,000 rows");
    assert!(first.len() * 10 < bytes, "{} of {bytes}", first.len());
    assert!(
        first_at * 4 < all_at,
        "first bytes at {first_at:?}, all at {all_at:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn patterns_of_messages_longer_than_what_is_read_still_list_their_logs() {
    let h = Harness::start().await;
    let base = now_ms() - 60_000;
    let long = |i: i64| format!("big report: {}tail {i}", "alpha beta ".repeat(1_000));
    let mut logs: Vec<Value> = (0..3)
        .map(|i| json!({"message": long(i), "timestamp": base + i}))
        .collect();
    logs.push(json!({"message": "small report: alpha beta", "timestamp": base + 10}));
    h.ingest(&Value::Array(logs)).await;
    let r = h.api(PATTERNS, json!({"filter": {"from": "now-1h"}})).await;
    let patterns = r["data"]["patterns"].as_array().unwrap();
    assert_eq!(patterns.len(), 2, "{patterns:#?}");
    let big = &patterns[0];
    assert_eq!(big["count"], 3);
    assert!(big["template"].as_str().unwrap().ends_with(" <*>"));
    let q = big["query"].as_str().unwrap();
    assert!(
        q.len() <= 2_000 && q.starts_with("\"big report: alpha beta"),
        "{q}"
    );
    let found = h.search(q).await;
    assert_eq!(found.len(), 3, "{q}");
}

#[tokio::test(flavor = "multi_thread")]
async fn pattern_queries_escape_quotes_and_backslashes_in_constant_parts() {
    let h = Harness::start().await;
    let base = now_ms() - 60_000;
    let mut logs: Vec<Value> = (0..3)
        .map(|i| json!({"message": format!(r#"weird a"b c\d token {i}"#), "timestamp": base + i}))
        .collect();
    logs.push(json!({"message": "weird ab cd token", "timestamp": base + 5}));
    h.ingest(&Value::Array(logs)).await;
    let r = h.api(PATTERNS, json!({"filter": {"from": "now-1h"}})).await;
    let p = &r["data"]["patterns"][0];
    assert_eq!(p["template"], r#"weird a"b c\d token <*>"#);
    assert_eq!(p["query"], r#""weird a\"b c\\d token""#);
    let found = h.search(p["query"].as_str().unwrap()).await;
    assert_eq!(found.len(), 3);
}
