//! What one client can hold (issue 8, item 5), over real TCP with short limits: a request
//! head or body trickled byte by byte is cut, bodies in flight are bounded in number and
//! bytes (503 with `Retry-After`), a body is never read before the token is checked, and the
//! intake serves normally again once the offenders are gone.

mod common;

use std::time::{Duration, Instant};

use cairn_intake::IntakeLimits;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn short_limits() -> IntakeLimits {
    IntakeLimits {
        idle_timeout: Duration::from_secs(5),
        header_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_secs(2),
        max_bodies: 4,
        max_body_bytes_total: 3 << 20,
        ..IntakeLimits::default()
    }
}

async fn start() -> Harness {
    Harness::start_with(|c| c.limits = short_limits()).await
}

async fn connect(h: &Harness) -> TcpStream {
    TcpStream::connect(h.intake.local_addr()).await.unwrap()
}

fn head(h: &Harness, token: bool, content_length: usize) -> String {
    let auth = match (token, h.intake.token()) {
        (true, Some(t)) => format!("Authorization: Bearer {t}\r\n"),
        _ => String::new(),
    };
    format!(
        "POST /api/v2/logs HTTP/1.1\r\nHost: {}\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {content_length}\r\n\r\n",
        h.intake.local_addr()
    )
}

/// Reads until the peer closes (or `within` passes) and returns what arrived, and whether the
/// connection was closed.
async fn read_until_closed(s: &mut TcpStream, within: Duration) -> (String, bool) {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), false),
        }
    }
}

fn status_of(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_head_trickled_byte_by_byte_is_cut() {
    let h = start().await;
    let mut dribblers = Vec::new();
    for _ in 0..50 {
        let mut s = connect(&h).await;
        s.write_all(b"POST /api/v2/logs HTTP/1.1\r\n")
            .await
            .unwrap();
        dribblers.push(s);
    }
    let started = Instant::now();
    // One byte each every 200 ms: never idle, so only a deadline on the whole head ends it.
    let mut open = dribblers.len();
    while open > 0 && started.elapsed() < Duration::from_secs(6) {
        open = 0;
        for s in &mut dribblers {
            if s.write_all(b"X").await.is_ok() {
                let mut b = [0u8; 64];
                match tokio::time::timeout(Duration::from_millis(1), s.read(&mut b)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => {}
                    _ => open += 1,
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        open,
        0,
        "{open} trickling connections still open after {:?}",
        started.elapsed()
    );
    // The intake still serves.
    h.ingest(&serde_json::json!([{"message": "after the dribblers"}]))
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_trickled_byte_by_byte_gets_408() {
    let h = start().await;
    let mut s = connect(&h).await;
    s.write_all(head(&h, true, 1000).as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut answer = String::new();
    while started.elapsed() < Duration::from_secs(6) {
        if s.write_all(b" ").await.is_err() {
            break;
        }
        let mut b = [0u8; 4096];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(200), s.read(&mut b)).await {
            answer.push_str(&String::from_utf8_lossy(&b[..n]));
            if n == 0 || answer.contains("\r\n\r\n") {
                break;
            }
        }
    }
    assert_eq!(status_of(&answer), 408, "{answer:?}");
    assert!(answer.contains("within 2 s"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test(flavor = "multi_thread")]
async fn stalled_bodies_are_bounded_and_the_rest_get_503_then_service_resumes() {
    let h = start().await;
    // Four bodies (the limit) of 0.5 MB each, half sent, then stalled.
    let mut stalled = Vec::new();
    for _ in 0..4 {
        let mut s = connect(&h).await;
        s.write_all(head(&h, true, 500_000).as_bytes())
            .await
            .unwrap();
        s.write_all(&vec![b' '; 250_000]).await.unwrap();
        stalled.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, text) = h
        .post_raw(
            "/api/v2/logs",
            None,
            br#"[{"message":"one too many"}]"#.to_vec(),
        )
        .await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("4 request bodies"), "{text}");
    let resp = h
        .http
        .post(h.url("/api/v2/logs"))
        .body(r#"[{"message":"one too many"}]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    // The stalled ones time out and give their place back.
    for s in &mut stalled {
        let (answer, _) = read_until_closed(s, Duration::from_secs(5)).await;
        assert_eq!(status_of(&answer), 408, "{answer:?}");
    }
    h.ingest(&serde_json::json!([{"message": "after the stall"}]))
        .await;
    assert_eq!(h.search("after the stall").await.len(), 1);
    assert!(h.search("\"one too many\"").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn bytes_reserved_by_bodies_in_flight_are_bounded() {
    let h = start().await;
    // Two declared bodies of 1.4 MB reserve 2.8 of the 3 MiB allowed.
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let mut s = connect(&h).await;
        s.write_all(head(&h, true, 1_400_000).as_bytes())
            .await
            .unwrap();
        stalled.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let big = format!(r#"[{{"message":"{}"}}]"#, "x".repeat(500_000));
    let (status, text) = h.post_raw("/api/v2/logs", None, big.into_bytes()).await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("bytes allowed"), "{text}");
    // A small body still fits.
    h.ingest(&serde_json::json!([{"message": "small fits"}]))
        .await;
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_body_is_read_before_the_token_is_checked() {
    let h = start().await;
    assert!(h.intake.token().is_some());
    let mut s = connect(&h).await;
    // Announce 5 MB and send none of it: the answer comes at once, from the headers alone.
    s.write_all(head(&h, false, 5_000_000).as_bytes())
        .await
        .unwrap();
    let mut b = [0u8; 4096];
    let n = tokio::time::timeout(Duration::from_millis(1500), s.read(&mut b))
        .await
        .expect("answered without the body")
        .unwrap();
    let answer = String::from_utf8_lossy(&b[..n]);
    assert_eq!(status_of(&answer), 401, "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_declared_body_over_the_limit_is_413_and_the_client_sees_it() {
    let h = start().await;
    let max = IntakeLimits::default().max_body_bytes;
    let body = vec![b' '; max + 10];
    let (status, text) = h.post_raw("/api/v2/logs", None, body).await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains(&format!("limit of {max} bytes")), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_are_closed() {
    let h = Harness::start_with(|c| {
        c.limits = IntakeLimits {
            idle_timeout: Duration::from_secs(1),
            ..short_limits()
        }
    })
    .await;
    let mut s = connect(&h).await;
    let started = Instant::now();
    let (_, closed) = read_until_closed(&mut s, Duration::from_secs(4)).await;
    assert!(closed, "an idle connection stayed open");
    assert!(started.elapsed() >= Duration::from_millis(900));
}
