//! Patterns benchmark (issue 11): stores 100,000 varied logs in a fresh intake over HTTP, then
//! times `POST /api/v2/logs/analytics/patterns` over all of them, beside references measured
//! in the same run: reading the same rows' id, status and message straight from the SQLite
//! file (the floor any clustering of them pays), and a search request for one full page
//! (5,000 logs, the most one search answers).
//!
//! `cargo bench -p cairn-intake --bench patterns` (CAIRN_BENCH_LOGS, default 100,000;
//! CAIRN_BENCH_RUNS, default 9). Data goes to a temporary directory under CAIRN_BENCH_DIR or /tmp.

use std::time::{Duration, Instant};

use cairn_intake::IntakeConfig;

#[path = "common.rs"]
mod common;
use common::*;
use serde_json::{json, Value};

const DAY_MS: i64 = 86_400_000;
const GOAL: Duration = Duration::from_secs(2);

const USERS: [&str; 12] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "oscar",
];
const WORDS: [&str; 16] = [
    "orders",
    "customers",
    "invoices",
    "items",
    "sessions",
    "events",
    "carts",
    "refunds",
    "shipments",
    "coupons",
    "reviews",
    "accounts",
    "tokens",
    "reports",
    "exports",
    "imports",
];
const SERVICES: [&str; 6] = ["web", "api", "db", "worker", "auth", "billing"];

/// One message from about 40 template families with numbers, ids, addresses, quoted text,
/// key=value pairs and variable words in them, plus 2 % free text that fits no family.
fn message(rng: &mut Rng) -> (&'static str, String) {
    let u = rng.pick(&USERS);
    let w = rng.pick(&WORDS);
    let n = rng.below(100_000);
    let ip = format!(
        "10.{}.{}.{}",
        rng.below(256),
        rng.below(256),
        rng.below(256)
    );
    let uuid = format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        rng.next() as u32,
        rng.below(0x10000),
        rng.below(0x1000),
        rng.below(0x1000),
        rng.next() & 0xffff_ffff_ffff
    );
    let family = rng.below(42);
    let (status, m) = match family {
        0 => ("info", format!("user {u} logged in from {ip}")),
        1 => ("info", format!("user {u} logged out after {n} s")),
        2 => (
            "warn",
            format!("user {u} failed to log in from {ip}: bad password"),
        ),
        3 => (
            "info",
            format!("GET /api/{w}/{n} returned 200 in {}ms", n % 900),
        ),
        4 => (
            "warn",
            format!("GET /api/{w}/{n} returned 404 in {}ms", n % 900),
        ),
        5 => (
            "error",
            format!("POST /api/{w} returned 500 in {}ms", n % 3000),
        ),
        6 => (
            "info",
            format!("PUT /api/{w}/{n} returned 204 in {}ms", n % 900),
        ),
        7 => (
            "error",
            format!("Database query failed: deadlock detected on {w} while updating id {n}"),
        ),
        8 => (
            "error",
            format!(
                "Database query failed: timeout after 5000 ms on SELECT * FROM {w} WHERE id = {n}"
            ),
        ),
        9 => (
            "warn",
            format!(
                "Database query slow: SELECT * FROM {w} WHERE customer_id = {n} took {} ms",
                n % 10_000
            ),
        ),
        10 => (
            "info",
            format!(
                "Database query completed: SELECT * FROM {w} WHERE customer_id = {n} LIMIT 100"
            ),
        ),
        11 => ("info", format!("request {uuid} started for {u}")),
        12 => (
            "info",
            format!("request {uuid} finished in {}ms with status 200", n % 2000),
        ),
        13 => (
            "error",
            format!("request {uuid} aborted: client {ip} went away"),
        ),
        14 => ("debug", format!("cache hit key={w}:{n} ttl={}s", n % 3600)),
        15 => ("debug", format!("cache miss key={w}:{n} loading from db")),
        16 => (
            "info",
            format!("cache evicted {} entries in {} ms", n % 500, n % 40),
        ),
        17 => (
            "info",
            format!(
                "job {w}-sync scheduled at 2026-12-0{}T{:02}:00:00Z",
                n % 9 + 1,
                n % 24
            ),
        ),
        18 => (
            "info",
            format!(
                "job {w}-sync completed: {} rows in {}.{} s",
                n,
                n % 60,
                n % 10
            ),
        ),
        19 => (
            "error",
            format!(
                "job {w}-sync failed: \"connection reset by peer\" after {} retries",
                n % 5
            ),
        ),
        20 => (
            "warn",
            format!("disk usage at {}% on /var/lib/{w}", 70 + n % 30),
        ),
        21 => (
            "info",
            format!(
                "payment {uuid} authorised for {}.{:02} EUR by {u}",
                n % 1000,
                n % 100
            ),
        ),
        22 => (
            "error",
            format!("payment {uuid} declined: card expired for {u}"),
        ),
        23 => (
            "info",
            format!("email sent to {u}@example.com subject=\"Your {w} receipt\" id={n}"),
        ),
        24 => (
            "warn",
            format!(
                "rate limit exceeded for {ip}: {} requests in 60 s",
                100 + n % 900
            ),
        ),
        25 => (
            "info",
            format!("connection accepted from {ip}:{}", 1024 + n % 60000),
        ),
        26 => (
            "info",
            format!(
                "connection closed from {ip}:{} after {} bytes",
                1024 + n % 60000,
                n
            ),
        ),
        27 => (
            "error",
            format!("TLS handshake failed with {ip}: certificate has expired"),
        ),
        28 => (
            "info",
            format!("worker {} picked task {uuid} from queue {w}", n % 16),
        ),
        29 => (
            "info",
            format!("worker {} finished task {uuid} in {} ms", n % 16, n % 5000),
        ),
        30 => (
            "warn",
            format!(
                "worker {} is lagging: {} tasks queued in {w}",
                n % 16,
                n % 10_000
            ),
        ),
        31 => (
            "info",
            format!(
                "config reloaded from /etc/cairn/{w}.yaml with {} keys",
                n % 200
            ),
        ),
        32 => ("info", format!("health check ok for {w} in {}ms", n % 100)),
        33 => (
            "error",
            format!("health check failed for {w}: upstream {ip} unreachable"),
        ),
        34 => (
            "info",
            format!(
                "session {:x} created for {u} expires in {} s",
                rng.next(),
                n % 86_400
            ),
        ),
        35 => (
            "info",
            format!("session {:x} destroyed for {u}", rng.next()),
        ),
        36 => (
            "debug",
            format!(
                "trace span={:x} parent={:x} name={w}.load dur={}us",
                rng.next(),
                rng.next(),
                n
            ),
        ),
        37 => (
            "info",
            format!("exported {} {w} to s3://bucket/{w}/{n}.csv", n % 10_000),
        ),
        38 => (
            "warn",
            format!("slow consumer {u} on topic {w}: offset lag {}", n),
        ),
        39 => (
            "critical",
            format!(
                "out of memory: killed process {} ({w}-worker) total-vm:{}kB",
                n,
                n * 4
            ),
        ),
        40 => (
            "info",
            format!(
                "user {u} changed setting {w}.notifications to {}",
                ["on", "off"][(n % 2) as usize]
            ),
        ),
        _ => {
            // Free text that fits no family: a few random words.
            let k = 3 + rng.below(8);
            let words: Vec<&str> = (0..k)
                .map(|_| {
                    if rng.below(2) == 0 {
                        rng.pick(&USERS)
                    } else {
                        rng.pick(&WORDS)
                    }
                })
                .collect();
            ("info", words.join(" "))
        }
    };
    (status, m)
}

fn bodies(total: usize, now_ms: i64) -> Vec<Vec<u8>> {
    let mut rng = Rng(0x5EED_0011);
    let step = DAY_MS as f64 / 2.0 / total as f64;
    let mut out = Vec::new();
    let mut i = 0;
    while i < total {
        let n = 1000.min(total - i);
        let logs: Vec<Value> = (0..n)
            .map(|k| {
                let (status, msg) = message(&mut rng);
                json!({
                    "message": msg, "status": status,
                    "timestamp": now_ms - DAY_MS / 2 + ((i + k) as f64 * step) as i64,
                    "service": rng.pick(&SERVICES), "hostname": format!("host-{:02}", rng.below(20)),
                    "ddsource": "bench", "ddtags": "env:bench",
                    "duration_ms": rng.below(5000),
                })
            })
            .collect();
        out.push(zstd::encode_all(&serde_json::to_vec(&logs).expect("json")[..], 1).expect("zstd"));
        i += n;
    }
    out
}

fn percentile(times: &mut [Duration], p: f64) -> Duration {
    times.sort_unstable();
    times[((times.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let total = env_usize("CAIRN_BENCH_LOGS", 100_000);
    let runs = env_usize("CAIRN_BENCH_RUNS", 9).max(1);
    let base = std::env::var_os("CAIRN_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(base).expect("temp dir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut cfg = IntakeConfig::new(dir.path().join("intake"));
        cfg.listen = "127.0.0.1:0".parse().expect("addr");
        let intake = cairn_intake::start(cfg).await.expect("intake starts");
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(t) = intake.token() {
            headers.insert("DD-API-KEY", t.parse().expect("header value"));
        }
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .expect("client");
        let now = cairn_intake::timefmt::now_ms();
        let started = Instant::now();
        for body in bodies(total, now) {
            let resp = client
                .post(format!("{}/api/v2/logs", intake.url()))
                .header("content-type", "application/json")
                .header("content-encoding", "zstd")
                .body(body)
                .send()
                .await
                .expect("intake reachable");
            assert_eq!(resp.status().as_u16(), 202);
        }
        println!("stored {total} logs in {:.1} s", started.elapsed().as_secs_f64());

        let filter = json!({"query": "*", "from": "now-1d", "to": "now"});
        let post = |path: &'static str, body: Value| {
            let client = client.clone();
            let url = format!("{}{path}", intake.url());
            async move {
                let t = Instant::now();
                let resp = client.post(url).json(&body).send().await.expect("reachable");
                assert_eq!(resp.status().as_u16(), 200);
                let v: Value = resp.json().await.expect("json");
                (t.elapsed(), v)
            }
        };
        // One warm-up of each, so the page cache holds the rows for every timed run.
        let (_, warm) = post(
            "/api/v2/logs/analytics/patterns",
            json!({"filter": filter, "limit": 100_000, "max_patterns": 50}),
        )
        .await;
        // A full-text filter: the index's matches first, then the rows (about 9.5 % of logs).
        let text_filter = json!({"query": "returned", "from": "now-1d", "to": "now"});
        let (_, text_warm) = post(
            "/api/v2/logs/analytics/patterns",
            json!({"filter": text_filter, "limit": 100_000}),
        )
        .await;
        let mut text_times = Vec::new();
        let mut pattern_times = Vec::new();
        let mut search_times = Vec::new();
        let mut raw_times = Vec::new();
        let db = dir.path().join("intake").join(cairn_intake::store::DB_FILE);
        for _ in 0..runs {
            let (t, _) = post(
                "/api/v2/logs/analytics/patterns",
                json!({"filter": filter, "limit": 100_000, "max_patterns": 50}),
            )
            .await;
            pattern_times.push(t);
            let (t, _) = post(
                "/api/v2/logs/analytics/patterns",
                json!({"filter": text_filter, "limit": 100_000}),
            )
            .await;
            text_times.push(t);
            let (t, _) = post(
                "/api/v2/logs/events/search",
                json!({"filter": filter, "page": {"limit": 5000}}),
            )
            .await;
            search_times.push(t);
            let db = db.clone();
            let t = tokio::task::spawn_blocking(move || raw_read(&db, now))
                .await
                .expect("raw read");
            raw_times.push(t);
        }
        let patterns = warm["data"]["patterns"].as_array().expect("patterns");
        println!(
            "patterns: scanned {}, truncated {}, {} patterns returned; top 12:",
            warm["meta"]["scanned"],
            warm["meta"]["truncated"],
            patterns.len()
        );
        for p in patterns.iter().take(12) {
            println!("  {:>6}  {}", p["count"], p["template"].as_str().unwrap_or(""));
        }
        let p50 = percentile(&mut pattern_times, 0.5);
        let p95 = percentile(&mut pattern_times, 0.95);
        let raw50 = percentile(&mut raw_times, 0.5);
        let search50 = percentile(&mut search_times, 0.5);
        println!("runs: {runs}");
        println!(
            "patterns over the newest {} of {total} stored logs: p50 {} p95 {} (goal {}: {:.2} of it)",
            warm["meta"]["scanned"],
            ms(p50),
            ms(p95),
            ms(GOAL),
            p50.as_secs_f64() / GOAL.as_secs_f64()
        );
        println!(
            "reference, raw SQLite read of the same rows' id, status, message: p50 {} (patterns = {:.1}x)",
            ms(raw50),
            p50.as_secs_f64() / raw50.as_secs_f64()
        );
        println!("reference, search of one 5,000-log page: p50 {}", ms(search50));
        let text50 = percentile(&mut text_times, 0.5);
        println!(
            "patterns with the full-text query \"returned\" ({} logs clustered, {} patterns): p50 {} p95 {}",
            text_warm["meta"]["scanned"],
            text_warm["data"]["patterns"].as_array().map_or(0, Vec::len),
            ms(text50),
            ms(percentile(&mut text_times, 0.95))
        );

        // Worst shape for the tree: 100,000 messages of 12 random words after the same first
        // word, none masked, so they share one leaf and almost none are alike.
        let mut rng = Rng(0xBAD_5EED);
        for chunk in 0..100 {
            let logs: Vec<Value> = (0..1000)
                .map(|k| {
                    let words: Vec<&str> = (0..12)
                        .map(|_| if rng.below(2) == 0 { rng.pick(&USERS) } else { rng.pick(&WORDS) })
                        .collect();
                    json!({"message": format!("note {}", words.join(" ")), "service": "worst",
                           "timestamp": now - DAY_MS / 2 + (chunk * 1000 + k) as i64})
                })
                .collect();
            let resp = client
                .post(format!("{}/api/v2/logs", intake.url()))
                .json(&logs)
                .send()
                .await
                .expect("intake reachable");
            assert_eq!(resp.status().as_u16(), 202);
        }
        let worst_filter = json!({"query": "service:worst", "from": "now-1d", "to": "now"});
        let mut worst_times = Vec::new();
        let mut worst_scanned = Value::Null;
        for _ in 0..runs {
            let (t, v) = post(
                "/api/v2/logs/analytics/patterns",
                json!({"filter": worst_filter, "limit": 100_000}),
            )
            .await;
            worst_scanned = v["meta"]["scanned"].clone();
            worst_times.push(t);
        }
        println!(
            "patterns over {worst_scanned} random-word messages sharing one leaf: p50 {} p95 {}",
            ms(percentile(&mut worst_times, 0.5)),
            ms(percentile(&mut worst_times, 0.95))
        );
        intake.shutdown().await;
    });
}

/// What the patterns request reads, straight from the file: the floor of any clustering.
fn raw_read(db: &std::path::Path, now: i64) -> Duration {
    let t = Instant::now();
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open");
    let mut stmt = conn
        .prepare(
            "SELECT id, status, message FROM logs WHERE timestamp_ms >= ?1 AND timestamp_ms <= ?2
             ORDER BY timestamp_ms DESC, id DESC LIMIT 100001",
        )
        .expect("prepare");
    let mut rows = stmt.query([now - DAY_MS, now]).expect("query");
    let mut bytes = 0usize;
    while let Some(r) = rows.next().expect("row") {
        bytes += r.get_ref(1).expect("status").as_str().map_or(0, str::len);
        bytes += r.get_ref(2).expect("message").as_str().map_or(0, str::len);
    }
    std::hint::black_box(bytes);
    t.elapsed()
}
