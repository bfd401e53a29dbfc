//! What the intake benches share: the deterministic generator, the seed-shaped log of
//! `bench/intake` (so every bench stores the same logs), and posting bodies with N senders.
//! Each bench includes it with `#[path]`; not every bench uses every item.

#![allow(dead_code)]

use std::future::Future;
use std::time::{Duration, Instant};

use cairn_intake::RunningIntake;
use serde_json::json;

pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// xorshift64*: deterministic and dependency-free.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

pub const SERVICES: [&str; 8] = [
    "orders-db",
    "payments-api",
    "inventory",
    "auth",
    "search",
    "billing-worker",
    "gateway",
    "reports",
];
pub const TABLES: [&str; 6] = [
    "orders",
    "customers",
    "invoices",
    "items",
    "sessions",
    "events",
];
/// Weighted by repetition: mostly 200s, some redirects and client errors, a few 5xx.
const HTTP_STATUS: [u16; 16] = [
    200, 200, 200, 200, 200, 200, 200, 200, 201, 204, 301, 304, 400, 404, 500, 503,
];

/// Request latencies with a long tail, as services show them: 85 % under 150 ms, 12 % from
/// 150 to 600 ms, 3 % up to 5 s (about 6 % over 500 ms). Whole milliseconds.
pub fn duration_ms(rng: &mut Rng) -> u64 {
    match rng.below(100) {
        0..=84 => 1 + rng.below(150),
        85..=96 => 150 + rng.below(450),
        _ => 600 + rng.below(4400),
    }
}

/// One log shaped like the seed page's structured example, about 300 bytes as JSON.
pub fn seed_log(rng: &mut Rng, timestamp_ms: i64) -> serde_json::Value {
    let table = TABLES[rng.below(TABLES.len() as u64) as usize];
    let id = rng.below(1_000_000);
    let roll = rng.below(1000);
    let (status, message) = match roll {
        0 => ("error", format!("Database query failed: deadlock detected on {table} while updating id {id}")),
        1..=49 => ("error", format!("Database query failed: timeout after 5000 ms on SELECT * FROM {table} WHERE id = {id}")),
        50..=149 => ("warn", format!("Database query slow: SELECT * FROM {table} WHERE customer_id = {id} took longer than expected")),
        _ => ("info", format!("Database query completed: SELECT * FROM {table} WHERE customer_id = {id} LIMIT 100")),
    };
    let duration = duration_ms(rng);
    let http_status = HTTP_STATUS[rng.below(HTTP_STATUS.len() as u64) as usize];
    let method = ["GET", "GET", "GET", "POST", "PUT", "DELETE"][rng.below(6) as usize];
    json!({
        "message": message,
        "status": status,
        "timestamp": timestamp_ms,
        "hostname": format!("db-host-{:02}", rng.below(20)),
        "service": SERVICES[rng.below(SERVICES.len() as u64) as usize],
        "ddsource": "custom_check",
        "ddtags": format!("env:prod,team:{},db:{table}", ["payments", "core", "growth"][rng.below(3) as usize]),
        "query_duration_ms": rng.below(2000),
        "rows_returned": rng.below(5000),
        "duration_ms": duration,
        "http": {"status": http_status, "method": method},
        "user": {"id": format!("u{}", rng.below(100_000))},
    })
}

pub fn authed_client(intake: &RunningIntake) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(t) = intake.token() {
        headers.insert("DD-API-KEY", t.parse().expect("a token is a header value"));
    }
    reqwest::Client::builder()
        .default_headers(headers)
        .timeout(Duration::from_secs(600))
        .build()
        .expect("client")
}

pub async fn post_all(intake: &RunningIntake, bodies: &[Vec<u8>], senders: usize) -> Duration {
    let url = format!("{}/api/v2/logs", intake.url());
    let client = authed_client(intake);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let started = Instant::now();
    let sender = || async {
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(body) = bodies.get(i) else { return };
            let resp = client
                .post(&url)
                .header("content-type", "application/json")
                .header("content-encoding", "zstd")
                .body(body.clone())
                .send()
                .await
                .expect("intake reachable");
            assert_eq!(resp.status().as_u16(), 202);
        }
    };
    let mut futs: Vec<_> = (0..senders).map(|_| Box::pin(sender())).collect();
    std::future::poll_fn(|cx| {
        futs.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if futs.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    started.elapsed()
}
