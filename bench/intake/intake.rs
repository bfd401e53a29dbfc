//! Intake benchmarks: ingest rate over HTTP with zstd bodies of 1,000 seed-shaped logs, then
//! search and aggregate latencies over the filled store, each beside a reference measured in
//! the same run (raw SQLite inserts; a trivial HTTP round trip).
//!
//! `cargo bench -p cairn-intake --bench intake` (5,000,000 logs; set CAIRN_BENCH_LOGS for
//! fewer). Data goes to a temporary directory under CAIRN_BENCH_DIR or /tmp.

use std::time::{Duration, Instant};

use cairn_intake::{IntakeConfig, RunningIntake};

#[path = "common.rs"]
mod common;
use common::*;
use serde_json::json;

const LOGS_PER_BODY: usize = 1000;
const DAY_MS: i64 = 86_400_000;

/// Concurrent requests in flight (CAIRN_BENCH_SENDERS, default 4).
fn senders() -> usize {
    std::env::var("CAIRN_BENCH_SENDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4)
}

/// Bodies of 1,000 logs, zstd level 1 as the sender sends them, timestamps spread evenly over
/// the last day in arrival order. Returns the bodies and the plain JSON bytes they carry.
fn make_bodies(total: usize, now_ms: i64) -> (Vec<Vec<u8>>, usize) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut bodies = Vec::with_capacity(total / LOGS_PER_BODY + 1);
    let mut plain = 0;
    let step = DAY_MS as f64 / total as f64;
    let mut i = 0;
    while i < total {
        let n = LOGS_PER_BODY.min(total - i);
        let logs: Vec<_> = (0..n)
            .map(|k| seed_log(&mut rng, now_ms - DAY_MS + ((i + k) as f64 * step) as i64))
            .collect();
        let json = serde_json::to_vec(&logs).expect("logs serialise");
        plain += json.len();
        bodies.push(zstd::encode_all(&json[..], 1).expect("zstd in memory"));
        i += n;
    }
    (bodies, plain)
}

/// Inserts the same rows into a plain table (no index, no full-text) in 1,000-row
/// transactions: the floor that the store's own insert path is measured against.
fn raw_sqlite_rate(dir: &std::path::Path, n: usize) -> f64 {
    let conn = rusqlite::Connection::open(dir.join("raw.sqlite3")).expect("open");
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
         CREATE TABLE t (id INTEGER PRIMARY KEY, ts INTEGER, status TEXT, host TEXT, service TEXT,
                         source TEXT, message TEXT, tags TEXT, attributes TEXT);",
    )
    .expect("schema");
    let mut rng = Rng(1);
    let rows: Vec<serde_json::Value> = (0..n).map(|i| seed_log(&mut rng, i as i64)).collect();
    let started = Instant::now();
    for chunk in rows.chunks(LOGS_PER_BODY) {
        conn.execute_batch("BEGIN").expect("begin");
        let mut stmt = conn
            .prepare_cached("INSERT INTO t (ts, status, host, service, source, message, tags, attributes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
            .expect("prepare");
        for r in chunk {
            stmt.execute(rusqlite::params![
                r["timestamp"].as_i64(),
                r["status"].as_str(),
                r["hostname"].as_str(),
                r["service"].as_str(),
                r["ddsource"].as_str(),
                r["message"].as_str(),
                r["ddtags"].as_str(),
                "{\"query_duration_ms\":145,\"rows_returned\":1024,\"duration_ms\":42,\"http\":{\"status\":200,\"method\":\"GET\"},\"user\":{\"id\":\"u4242\"}}",
            ])
            .expect("insert");
        }
        conn.execute_batch("COMMIT").expect("commit");
    }
    n as f64 / started.elapsed().as_secs_f64()
}

struct Stats {
    p50: Duration,
    p95: Duration,
}

async fn time_requests(
    client: &reqwest::Client,
    url: &str,
    body: Option<&serde_json::Value>,
    runs: usize,
) -> (Stats, serde_json::Value) {
    let mut times = Vec::with_capacity(runs);
    let mut last = serde_json::Value::Null;
    for _ in 0..runs {
        let started = Instant::now();
        let resp = match body {
            Some(b) => client.post(url).json(b).send().await,
            None => client.get(url).send().await,
        }
        .expect("intake reachable");
        // A build that refuses the request (an older one, for a before figure) is reported,
        // not fatal.
        if !resp.status().is_success() {
            let status = resp.status().as_u16();
            return (
                Stats {
                    p50: Duration::ZERO,
                    p95: Duration::ZERO,
                },
                json!({"refused": status, "detail": resp.text().await.unwrap_or_default()}),
            );
        }
        last = resp.json().await.expect("json answer");
        times.push(started.elapsed());
    }
    times.sort();
    (
        Stats {
            p50: times[runs / 2],
            p95: times[(runs * 95 / 100).min(runs - 1)],
        },
        last,
    )
}

/// Bytes this process has caused to be written to storage so far (Linux /proc/self/io).
fn disk_bytes_written() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("write_bytes:")
                    .map(|v| v.trim().parse().unwrap_or(0))
            })
        })
        .unwrap_or(0)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let total: usize = std::env::var("CAIRN_BENCH_LOGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000_000);
    let base = std::env::var("CAIRN_BENCH_DIR")
        .unwrap_or_else(|_| std::env::temp_dir().display().to_string());
    let dir = tempfile::Builder::new()
        .prefix("cairn-intake-bench")
        .tempdir_in(base)
        .expect("temp dir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!("cairn-intake bench: {total} logs, {} concurrent senders, {LOGS_PER_BODY} logs per zstd body", senders());

    let raw_n = 200_000;
    let raw_rate = raw_sqlite_rate(dir.path(), raw_n);
    println!("reference  raw SQLite insert (no index, no FTS, 1000/txn): {raw_rate:>10.0} rows/s");

    let now_ms = cairn_intake::timefmt::now_ms();
    let gen_started = Instant::now();
    let (bodies, plain_bytes) = make_bodies(total, now_ms);
    let wire_bytes: usize = bodies.iter().map(Vec::len).sum();
    println!(
        "generated  {} bodies in {:.1}s: {:.0} bytes/log as JSON, {:.0} bytes/log zstd",
        bodies.len(),
        gen_started.elapsed().as_secs_f64(),
        plain_bytes as f64 / total as f64,
        wire_bytes as f64 / total as f64
    );

    rt.block_on(async {
        let mut cfg = IntakeConfig::new(dir.path().join("intake"));
        cfg.listen = "127.0.0.1:0".parse().expect("addr");
        cfg.max_size_bytes = u64::MAX;
        cfg.retention = Duration::from_secs(30 * 86_400);
        // A scan reference over 5M logs can take longer than the 10 s a connection may stay
        // silent.
        cfg.limits.idle_timeout = Duration::from_secs(300);
        let intake = cairn_intake::start(cfg).await.expect("intake starts");
        let client = authed_client(&intake);

        let (rtt, _) = time_requests(&client, &format!("{}/api/v1/validate", intake.url()), None, 200).await;
        println!("reference  trivial HTTP round trip (GET /api/v1/validate): p50 {}", ms(rtt.p50));

        let written_before = disk_bytes_written();
        let first_n = (500_000 / LOGS_PER_BODY).min(bodies.len());
        let t_first = post_all(&intake, &bodies[..first_n], senders()).await;
        let first_rate = (first_n * LOGS_PER_BODY) as f64 / t_first.as_secs_f64();
        println!(
            "ingest     first {} logs: {first_rate:>10.0} logs/s ({:.2}x the raw SQLite rate)",
            first_n * LOGS_PER_BODY,
            first_rate / raw_rate
        );
        let t_rest = post_all(&intake, &bodies[first_n..], senders()).await;
        let all_rate = total as f64 / (t_first + t_rest).as_secs_f64();
        println!("ingest     all {total} logs: {all_rate:>10.0} logs/s overall ({:.1}s)", (t_first + t_rest).as_secs_f64());
        drop(bodies);
        println!(
            "ingest     {:.0} bytes written to disk per log (WAL, database, checkpoints)",
            (disk_bytes_written() - written_before) as f64 / total as f64
        );

        if std::env::var_os("CAIRN_BENCH_INGEST_ONLY").is_some() {
            intake.shutdown().await;
            return;
        }
        let report = intake.enforce_retention().await.expect("maintenance");
        let files: u64 = std::fs::read_dir(dir.path().join("intake"))
            .expect("data dir")
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.len())
            .sum();
        println!(
            "store      {:.0} bytes/log on disk ({:.2} GB for {total}; {:.0} bytes/log in use), {:.2}x the JSON size",
            files as f64 / total as f64,
            files as f64 / 1e9,
            report.used_bytes as f64 / total as f64,
            files as f64 / plain_bytes as f64
        );

        let search_url = format!("{}/api/v2/logs/events/search", intake.url());
        let agg_url = format!("{}/api/v2/logs/analytics/aggregate", intake.url());
        let runs = 21;
        for (label, query) in [
            ("facet + common term", "service:orders-db timeout"),
            ("facet + rare term  ", "service:orders-db deadlock"),
            ("term only          ", "completed"),
            ("facet + @attr range", "service:auth @query_duration_ms:>1900"),
            ("tag + status       ", "team:growth status:error"),
        ] {
            let body = json!({"filter": {"query": query, "from": "now-1d", "to": "now"}, "page": {"limit": 50}});
            let (s, answer) = time_requests(&client, &search_url, Some(&body), runs).await;
            println!(
                "search     {label} first page of 50: p50 {:>9} p95 {:>9}  ({} rows) `{query}`",
                ms(s.p50),
                ms(s.p95),
                answer["data"].as_array().map_or(0, Vec::len)
            );
        }
        for (label, query, compute) in [
            ("count by service, 24h, *          ", "*", json!([{"aggregation": "count"}])),
            ("count by service, 24h, status:error", "status:error", json!([{"aggregation": "count"}])),
            ("count by service, 24h, free text  ", "deadlock", json!([{"aggregation": "count"}])),
            ("count by service, 24h, @attr range", "@query_duration_ms:>1990", json!([{"aggregation": "count"}])),
            ("volume by 30m, 24h, *             ", "*", json!([{"aggregation": "count", "type": "timeseries", "interval": "30m"}])),
        ] {
            let group = if label.starts_with("volume") { json!([]) } else { json!([{"facet": "service"}]) };
            let body = json!({"filter": {"query": query, "from": "now-1d", "to": "now"}, "compute": compute, "group_by": group});
            let (s, answer) = time_requests(&client, &agg_url, Some(&body), if query == "*" || query == "status:error" { runs } else { 5 }).await;
            println!(
                "aggregate  {label}: p50 {:>9} p95 {:>9}  ({} groups)",
                ms(s.p50),
                ms(s.p95),
                answer["data"]["buckets"].as_array().map_or(0, Vec::len)
            );
        }
        issue11_queries(&client, &agg_url).await;
        hold_for_browser(&intake).await;
        intake.shutdown().await;
    });
}

/// With CAIRN_BENCH_HOLD=<file>, writes the intake's URL and token to that file and keeps the
/// filled store served until the file is deleted, so that bench/explorer/first_paint.mjs can
/// time the Explorer against it.
async fn hold_for_browser(intake: &RunningIntake) {
    let Ok(path) = std::env::var("CAIRN_BENCH_HOLD") else {
        return;
    };
    let line = format!("{} {}\n", intake.url(), intake.token().unwrap_or_default());
    std::fs::write(&path, line).expect("CAIRN_BENCH_HOLD is writable");
    println!(
        "holding the store at {} until {path} is deleted",
        intake.url()
    );
    while std::path::Path::new(&path).exists() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Issue 11: an attribute facet's top values, a measure by service over time, and a count
/// filtered on an attribute range, each beside the same request with `host:*` added (every
/// log has a host), which no per-minute table answers: the cost of parsing every log's JSON,
/// measured in the same run.
async fn issue11_queries(client: &reqwest::Client, agg_url: &str) {
    // Fixed bounds, so that every run and its reference see the same logs.
    let now = cairn_intake::timefmt::now_ms();
    let day = |query: &str| json!({"query": query, "from": now - DAY_MS, "to": now});
    let cases = [
        (
            "facet @http.status top 15, 24h  ",
            json!({"filter": day("*"), "compute": [{"aggregation": "count"}], "group_by": [{"facet": "@http.status", "limit": 15}]}),
            json!({"filter": day("host:*"), "compute": [{"aggregation": "count"}], "group_by": [{"facet": "@http.status", "limit": 15}]}),
        ),
        (
            "avg @duration_ms by service, 1m ",
            json!({"filter": day("*"), "compute": [{"aggregation": "avg", "metric": "@duration_ms", "type": "timeseries", "interval": "1m"}], "group_by": [{"facet": "service"}]}),
            json!({"filter": day("host:*"), "compute": [{"aggregation": "avg", "metric": "@duration_ms", "type": "timeseries", "interval": "1m"}], "group_by": [{"facet": "service"}]}),
        ),
        (
            "count by service, @duration>500 ",
            json!({"filter": day("@duration_ms:>500"), "compute": [{"aggregation": "count"}], "group_by": [{"facet": "service"}]}),
            json!({"filter": day("host:* @duration_ms:>500"), "compute": [{"aggregation": "count"}], "group_by": [{"facet": "service"}]}),
        ),
        (
            "pc95 @duration_ms by service    ",
            json!({"filter": day("*"), "compute": [{"aggregation": "pc95", "metric": "@duration_ms"}], "group_by": [{"facet": "service"}]}),
            json!({"filter": day("host:*"), "compute": [{"aggregation": "pc95", "metric": "@duration_ms"}], "group_by": [{"facet": "service"}]}),
        ),
        (
            "facet @http.method (text), 24h  ",
            json!({"filter": day("*"), "compute": [{"aggregation": "count"}], "group_by": [{"facet": "@http.method", "limit": 15}]}),
            json!({"filter": day("host:*"), "compute": [{"aggregation": "count"}], "group_by": [{"facet": "@http.method", "limit": 15}]}),
        ),
    ];
    let runs: usize = std::env::var("CAIRN_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(11);
    for (label, body, reference) in cases {
        let (s, answer) = time_requests(client, agg_url, Some(&body), runs).await;
        let (r, ref_answer) = time_requests(client, agg_url, Some(&reference), 3).await;
        let shown = |a: &serde_json::Value| match a.get("refused") {
            Some(code) => format!("refused {code}"),
            None => format!(
                "{} groups",
                a["data"]["buckets"].as_array().map_or(0, Vec::len)
            ),
        };
        let same = answer["data"] == ref_answer["data"];
        println!(
            "issue11    {label}: p50 {:>9} p95 {:>9} ({}) | scan reference p50 {:>9} ({}){}",
            ms(s.p50),
            ms(s.p95),
            shown(&answer),
            ms(r.p50),
            shown(&ref_answer),
            if same {
                ", same answer"
            } else {
                ", ANSWERS DIFFER"
            }
        );
    }
}
