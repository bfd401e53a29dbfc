//! The intake protocol over real HTTP on 127.0.0.1: every status code, every encoding.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;
use serde_json::json;

fn body(n: usize) -> Vec<u8> {
    let logs: Vec<_> = (0..n)
        .map(|i| json!({"message": format!("hello {i}"), "status": "info", "timestamp": now_ms(), "service": "svc", "ddsource": "src", "hostname": "h", "ddtags": "env:test"}))
        .collect();
    serde_json::to_vec(&logs).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_encoding_is_accepted_with_202_and_an_empty_object() {
    let h = Harness::start().await;
    let plain = body(3);
    let cases: Vec<(Option<&str>, Vec<u8>)> = vec![
        (None, plain.clone()),
        (Some("identity"), plain.clone()),
        (Some("gzip"), gzip(&plain)),
        (Some("deflate"), zlib(&plain)),
        (Some("deflate"), raw_deflate(&plain)),
        (Some("zstd"), zstd(&plain)),
        (Some("ZSTD"), zstd(&plain)),
    ];
    let n = cases.len();
    for (encoding, payload) in cases {
        let (status, text) = h.post_raw("/api/v2/logs", encoding, payload).await;
        assert_eq!((status, text.as_str()), (202, "{}"), "{encoding:?}");
    }
    assert_eq!(h.search("service:svc").await.len(), 3 * n);
}

#[tokio::test(flavor = "multi_thread")]
async fn v1_input_and_a_single_object_are_accepted() {
    let h = Harness::start().await;
    let (status, _) = h
        .post_raw(
            "/v1/input",
            None,
            br#"{"message":"one object","service":"solo"}"#.to_vec(),
        )
        .await;
    assert_eq!(status, 202);
    let (status, _) = h
        .post_raw(
            "/api/v2/logs",
            Some("gzip"),
            gzip(br#"{"message":"two","service":"solo"}"#),
        )
        .await;
    assert_eq!(status, 202);
    let (status, _) = h.post_raw("/api/v2/logs", None, b"[]".to_vec()).await;
    assert_eq!(status, 202);
    assert_eq!(h.search("service:solo").await.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_json_is_400_with_the_reason() {
    let h = Harness::start().await;
    for bad in [
        &b"[{\"message\": "[..],
        b"not json",
        b"42",
        b"[1,2]",
        b"{\"message\":\"x\"} {}",
    ] {
        let (status, text) = h.post_raw("/api/v2/logs", None, bad.to_vec()).await;
        assert_eq!(status, 400, "{}", String::from_utf8_lossy(bad));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let detail = v["errors"][0]["detail"].as_str().unwrap();
        assert!(detail.contains("invalid JSON"), "{detail}");
        assert!(
            detail.contains("line 1 column"),
            "the reason says where: {detail}"
        );
    }
    let (status, _) = h
        .post_raw("/api/v2/logs", Some("gzip"), b"not gzip at all".to_vec())
        .await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn api_keys_are_checked_when_configured() {
    // Keys only, no token: what the keys alone let through.
    let h = Harness::start_with(|c| {
        c.api_keys = vec!["k-one".into(), "k-two".into()];
        c.auth = cairn_intake::IntakeAuth::Disabled;
    })
    .await;
    let url = h.url("/api/v2/logs");
    let post = |key: Option<&'static str>| {
        let mut req = h.http.post(&url).body(body(1));
        if let Some(k) = key {
            req = req.header("DD-API-KEY", k);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    // No credential at all is 401 (issue 8), a wrong one 403.
    assert_eq!(post(None).await, 401);
    assert_eq!(post(Some("wrong")).await, 403);
    assert_eq!(post(Some("k-on")).await, 403);
    assert_eq!(post(Some("k-one")).await, 202);
    assert_eq!(post(Some("k-two")).await, 202);
    let with_param = h
        .http
        .post(format!("{url}?dd-api-key=k-two"))
        .body(body(1))
        .send()
        .await
        .unwrap();
    assert_eq!(with_param.status().as_u16(), 202);
    let in_path = h
        .http
        .post(h.url("/v1/input/k-one"))
        .body(body(1))
        .send()
        .await
        .unwrap();
    assert_eq!(in_path.status().as_u16(), 202);
    // Searching needs the key too, or the logs would be readable by anyone who can connect.
    let (status, _) = h.api_status("/api/v2/logs/events/search", json!({})).await;
    assert_eq!(status, 401);
    let ok = h
        .http
        .post(h.url("/api/v2/logs/events/search"))
        .header("DD-API-KEY", "k-one")
        .json(&json!({"filter": {"from": "now-1h"}, "page": {"limit": 100}}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let v: serde_json::Value = ok.json().await.unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn payloads_over_the_limits_are_413() {
    let h = Harness::start().await;
    let (status, text) = h.post_raw("/api/v2/logs", None, body(1001)).await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("1000 entries"), "{text}");
    let (status, _) = h.post_raw("/api/v2/logs", None, body(1000)).await;
    assert_eq!(status, 202);

    // Just over 5,000,000 bytes, plain and compressed.
    let big = format!(r#"[{{"message":"{}"}}]"#, "x".repeat(5_000_000));
    let (status, _) = h
        .post_raw("/api/v2/logs", None, big.clone().into_bytes())
        .await;
    assert_eq!(status, 413);
    let (status, _) = h
        .post_raw("/api/v2/logs", Some("zstd"), zstd(big.as_bytes()))
        .await;
    assert_eq!(status, 413);
    // Far over: refused before the handler by the raw body limit. The server may answer 413
    // and close before the client finished writing the body, which the client then sees as a
    // broken pipe: both mean refused without reading it all.
    let sent = h
        .http
        .post(h.url("/api/v2/logs"))
        .header("content-type", "application/json")
        .body(vec![b' '; 8_000_000])
        .send()
        .await;
    match sent {
        Ok(resp) => assert_eq!(resp.status().as_u16(), 413),
        Err(e) => assert!(e.is_request() || e.is_body(), "unexpected error: {e:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_encoding_is_415() {
    let h = Harness::start().await;
    for enc in ["br", "compress", "gzip, zstd"] {
        let (status, text) = h.post_raw("/api/v2/logs", Some(enc), body(1)).await;
        assert_eq!(status, 415, "{enc}");
        assert!(text.contains("Content-Encoding"), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_over_1mb_is_stored_truncated_with_the_marker() {
    let h = Harness::start().await;
    let long = "y".repeat(1_500_000);
    h.ingest(&json!([{"message": long, "service": "big"}]))
        .await;
    let logs = h.search("service:big").await;
    let msg = logs[0]["attributes"]["message"].as_str().unwrap();
    assert!(msg.ends_with("...TRUNCATED..."));
    assert_eq!(msg.len(), 1_000_000 + "...TRUNCATED...".len());
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_keep_their_fields_tags_and_nested_attributes() {
    let h = Harness::start().await;
    let ts = now_ms() - 5_000;
    h.ingest(&json!([{
        "message": "user logged in", "status": "warn", "timestamp": ts, "hostname": "db-1",
        "service": "auth", "ddsource": "python", "ddtags": "env:prod,team:sec",
        "user": {"name": "bob", "roles": ["admin", "dev"]}, "latency_ms": 12.5
    }]))
    .await;
    let logs = h.search("service:auth").await;
    let a = &logs[0]["attributes"];
    assert_eq!(a["message"], "user logged in");
    assert_eq!(a["status"], "warn");
    assert_eq!(a["host"], "db-1");
    assert_eq!(a["timestamp"], cairn_intake::timefmt::format_rfc3339_ms(ts));
    assert_eq!(a["tags"], json!(["source:python", "env:prod", "team:sec"]));
    assert_eq!(
        a["attributes"],
        json!({"user": {"name": "bob", "roles": ["admin", "dev"]}, "latency_ms": 12.5})
    );
    assert_eq!(logs[0]["type"], "log");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_store_is_private_to_its_owner() {
    let h = Harness::start().await;
    h.ingest(&json!([{"message": "m"}])).await;
    let dir = h.dir.path().join("intake");
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    for entry in std::fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", entry.path().display());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn responses_carry_a_csp_and_foreign_hosts_are_refused() {
    let h = Harness::start().await;
    let resp = h.http.get(h.url("/")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(resp.text().await.unwrap().contains("<html"));
    let rebinding = h
        .http
        .post(h.url("/api/v2/logs/events/search"))
        .header("host", "evil.example:80")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(rebinding.status().as_u16(), 421);
}

#[tokio::test(flavor = "multi_thread")]
async fn other_web_pages_cannot_post_but_the_explorer_itself_can() {
    let h = Harness::start().await;
    let post = |origin: String| {
        h.http
            .post(h.url("/api/v2/logs"))
            .header("content-type", "text/plain")
            .header("origin", origin)
            .body(r#"[{"message":"injected"}]"#)
            .send()
    };
    let foreign = post("http://evil.example".into()).await.unwrap();
    assert_eq!(foreign.status().as_u16(), 403);
    let null = post("null".into()).await.unwrap();
    assert_eq!(null.status().as_u16(), 403);
    let own = format!("http://{}", h.intake.local_addr());
    let same = post(own).await.unwrap();
    assert_eq!(same.status().as_u16(), 202);
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_keeps_every_acknowledged_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = cairn_intake::IntakeConfig::new(dir.path());
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    let intake = cairn_intake::start(cfg.clone()).await.unwrap();
    let client = common::client_for(&intake);
    for _ in 0..5 {
        let r = client
            .post(format!("{}/api/v2/logs", intake.url()))
            .body(body(200))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
    }
    intake.shutdown().await;
    let again = cairn_intake::start(cfg).await.unwrap();
    let r: serde_json::Value = client
        .post(format!("{}/api/v2/logs/analytics/aggregate", again.url()))
        .json(&json!({"filter": {"from": "now-1h", "to": "now+1h"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["data"]["buckets"][0]["computes"]["c0"], 1000);
    again.shutdown().await;
}
