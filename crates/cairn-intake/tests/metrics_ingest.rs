//! Issue 9 item 3, the receiving side: `/api/v2/series` (protobuf and JSON, every encoding),
//! `/api/v1/series`, `/api/v1/check_run`, `/api/v1/events` over real HTTP, what each stores
//! (read back through the query APIs), bad bodies as 4xx naming the culprit, and retention.
//! The protobuf is written by a small encoder here, from the `.proto`, not by the intake.

mod common;

use common::*;
use serde_json::{json, Value};

// ---- a MetricPayload encoder (agent-payload's proto/metrics/agent_payload.proto) ----

fn varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push(v as u8 | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn key(buf: &mut Vec<u8>, field: u64, wire: u64) {
    varint(buf, field << 3 | wire);
}

fn bytes_field(buf: &mut Vec<u8>, field: u64, b: &[u8]) {
    key(buf, field, 2);
    varint(buf, b.len() as u64);
    buf.extend_from_slice(b);
}

struct Pb<'a> {
    metric: &'a str,
    kind: u64,
    host: &'a str,
    device: Option<&'a str>,
    tags: &'a [&'a str],
    points: &'a [(i64, f64)],
    interval: u64,
    unit: &'a str,
}

fn encode_series(s: &Pb) -> Vec<u8> {
    let mut m = Vec::new();
    let resource = |kind: &str, name: &str, m: &mut Vec<u8>| {
        let mut r = Vec::new();
        bytes_field(&mut r, 1, kind.as_bytes());
        bytes_field(&mut r, 2, name.as_bytes());
        bytes_field(m, 1, &r);
    };
    resource("host", s.host, &mut m);
    if let Some(d) = s.device {
        resource("device", d, &mut m);
    }
    bytes_field(&mut m, 2, s.metric.as_bytes());
    for t in s.tags {
        bytes_field(&mut m, 3, t.as_bytes());
    }
    for (ts, v) in s.points {
        let mut p = Vec::new();
        key(&mut p, 1, 1);
        p.extend_from_slice(&v.to_bits().to_le_bytes());
        key(&mut p, 2, 0);
        varint(&mut p, *ts as u64);
        bytes_field(&mut m, 4, &p);
    }
    key(&mut m, 5, 0);
    varint(&mut m, s.kind);
    if !s.unit.is_empty() {
        bytes_field(&mut m, 6, s.unit.as_bytes());
    }
    bytes_field(&mut m, 7, b"cairn");
    key(&mut m, 8, 0);
    varint(&mut m, s.interval);
    // metadata { origin { origin_product = 10 } }, as the Agent sends it: unknown to the
    // intake's schema use, so it must be skipped.
    let mut origin = Vec::new();
    key(&mut origin, 4, 0);
    varint(&mut origin, 10);
    let mut meta = Vec::new();
    bytes_field(&mut meta, 1, &origin);
    bytes_field(&mut m, 9, &meta);
    m
}

fn payload(series: &[Pb]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in series {
        bytes_field(&mut out, 1, &encode_series(s));
    }
    out
}

/// An encoding's name, its `Content-Encoding`, and how to apply it.
type Encoded = (&'static str, Option<&'static str>, fn(&[u8]) -> Vec<u8>);
/// Path, Content-Type, Content-Encoding, body, expected status, what the error must name.
type BadCase = (
    &'static str,
    &'static str,
    Option<&'static str>,
    Vec<u8>,
    u16,
    &'static str,
);

fn now_s() -> i64 {
    now_ms() / 1000
}

async fn post(h: &Harness, path: &str, ct: &str, enc: Option<&str>, body: Vec<u8>) -> (u16, Value) {
    let mut req = h.http.post(h.url(path)).header("content-type", ct);
    if let Some(e) = enc {
        req = req.header("content-encoding", e);
    }
    let resp = req.body(body).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn get(h: &Harness, path: &str, params: &[(&str, String)]) -> Value {
    let resp = h.http.get(h.url(path)).query(params).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{path}");
    resp.json().await.unwrap()
}

async fn series_of(h: &Harness, q: &str, from: i64, to: i64) -> Vec<Value> {
    let body = get(
        h,
        "/api/v1/query",
        &[
            ("from", from.to_string()),
            ("to", to.to_string()),
            ("query", q.into()),
        ],
    )
    .await;
    body["series"].as_array().unwrap().clone()
}

fn values(s: &Value) -> Vec<f64> {
    s["pointlist"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_f64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn protobuf_series_arrive_in_every_encoding() {
    let h = Harness::start().await;
    let t = now_s() - 120;
    let encodings: [Encoded; 5] = [
        ("none", None, |b| b.to_vec()),
        ("zstd", Some("zstd"), zstd),
        ("gzip", Some("gzip"), gzip),
        ("deflate", Some("deflate"), zlib),
        ("raw-deflate", Some("deflate"), raw_deflate),
    ];
    for (i, (name, enc, compress)) in encodings.iter().enumerate() {
        let host = format!("h{i}");
        let body = payload(&[
            Pb {
                metric: "pb.gauge",
                kind: 3,
                host: &host,
                device: Some("sda1"),
                tags: &["enc:x", "b:2", "a:1", "a:1"],
                points: &[(t, 1.25), (t + 15, -2.5)],
                interval: 0,
                unit: "byte",
            },
            Pb {
                metric: "pb.rate",
                kind: 2,
                host: &host,
                device: None,
                tags: &["device:eth0"],
                points: &[(t, 4.0)],
                interval: 15,
                unit: "",
            },
        ]);
        let (status, resp) = post(
            &h,
            "/api/v2/series",
            "application/x-protobuf",
            *enc,
            compress(&body),
        )
        .await;
        assert_eq!((status, &resp), (202, &json!({"errors": []})), "{name}");
    }
    let got = series_of(&h, "avg:pb.gauge{*} by {host,device,a}", t - 10, t + 30).await;
    assert_eq!(got.len(), 5);
    for (i, s) in got.iter().enumerate() {
        assert_eq!(
            s["tag_set"],
            json!([format!("host:h{i}"), "device:sda1", "a:1"])
        );
        assert_eq!(values(s), [1.25, -2.5]);
        assert_eq!(s["unit"], "byte");
    }
    // The `device:` tag became the device; the rate's interval is kept for as_count().
    let got = series_of(
        &h,
        "sum:pb.rate{device:eth0,host:h0}.as_count()",
        t - 10,
        t + 30,
    )
    .await;
    assert_eq!(values(&got[0]), [60.0]);
    // Tags are de-duplicated: the duplicate a:1 made no second context.
    let got = series_of(&h, "sum:pb.gauge{host:h0} by {a}", t - 10, t + 30).await;
    assert_eq!(got.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn json_series_v2_and_v1_are_accepted() {
    let h = Harness::start().await;
    let t = now_s() - 60;
    let v2 = json!({"series": [{
        "metric": "json.v2", "type": 1, "interval": 10,
        "points": [{"timestamp": t, "value": 3}, {"timestamp": t + 10, "value": 4}],
        "resources": [{"name": "web1", "type": "host"}], "tags": ["env:prod"], "unit": "request"
    }]});
    let (status, resp) = post(
        &h,
        "/api/v2/series",
        "application/json",
        Some("gzip"),
        gzip(&serde_json::to_vec(&v2).unwrap()),
    )
    .await;
    assert_eq!((status, resp), (202, json!({"errors": []})));
    let v1 = json!({"series": [
        {"metric": "json.v1", "points": [[t, 1.5], [t + 10, null], [t + 20, 2.5]], "type": "rate",
         "host": "web2", "tags": ["env:dev"], "interval": 10},
        {"metric": "json.v1", "points": [[t as f64, 7]], "host": "web3"}
    ]});
    let (status, resp) = post(
        &h,
        "/api/v1/series",
        "application/json",
        Some("zstd"),
        zstd(&serde_json::to_vec(&v1).unwrap()),
    )
    .await;
    assert_eq!((status, resp), (202, json!({"errors": []})));
    let got = series_of(&h, "sum:json.v2{env:prod}", t - 5, t + 25).await;
    assert_eq!(values(&got[0]), [3.0, 4.0]);
    let got = series_of(&h, "max:json.v1{*} by {host}", t - 5, t + 25).await;
    assert_eq!(got.len(), 2);
    assert_eq!(values(&got[0]), [1.5, 2.5], "the null point is skipped");
    assert_eq!(values(&got[1]), [7.0], "type defaults to gauge");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_bodies_are_4xx_naming_the_culprit() {
    let h = Harness::start().await;
    let t = now_s();
    let good = encode_series(&Pb {
        metric: "x",
        kind: 3,
        host: "h",
        device: None,
        tags: &[],
        points: &[(t, 1.0)],
        interval: 0,
        unit: "",
    });
    let mut truncated = Vec::new();
    bytes_field(&mut truncated, 1, &good);
    truncated.truncate(truncated.len() - 3);
    let mut bad_type = Vec::new();
    bytes_field(&mut bad_type, 1, &good);
    bytes_field(&mut bad_type, 1, &{
        let mut s = Vec::new();
        bytes_field(&mut s, 2, b"y");
        key(&mut s, 5, 0);
        varint(&mut s, 9);
        s
    });
    let nan = payload(&[Pb {
        metric: "x",
        kind: 3,
        host: "h",
        device: None,
        tags: &[],
        points: &[(t, 1.0), (t + 1, f64::NAN)],
        interval: 0,
        unit: "",
    }]);
    let no_name = payload(&[Pb {
        metric: "",
        kind: 3,
        host: "h",
        device: None,
        tags: &[],
        points: &[(t, 1.0)],
        interval: 0,
        unit: "",
    }]);
    let overlong = {
        let mut b = vec![0x0a];
        b.extend([0xff; 11]);
        b
    };
    let pb = "application/x-protobuf";
    let js = "application/json";
    let cases: Vec<BadCase> = vec![
        ("/api/v2/series", pb, None, truncated, 400, "series[0]"),
        (
            "/api/v2/series",
            pb,
            None,
            bad_type,
            400,
            "series[1]: type 9",
        ),
        ("/api/v2/series", pb, None, nan, 400, "series[0].points[1]"),
        ("/api/v2/series", pb, None, no_name, 400, "metric name"),
        ("/api/v2/series", pb, None, overlong, 400, "varint"),
        (
            "/api/v2/series",
            pb,
            Some("zstd"),
            b"not zstd".to_vec(),
            400,
            "decompress",
        ),
        (
            "/api/v2/series",
            pb,
            Some("br"),
            b"x".to_vec(),
            415,
            "Content-Encoding",
        ),
        (
            "/api/v2/series",
            "text/html",
            None,
            b"x".to_vec(),
            415,
            "Content-Type",
        ),
        (
            "/api/v2/series",
            js,
            None,
            br#"{"series":[{"metric":"m","type":7}]}"#.to_vec(),
            400,
            "series[0].type",
        ),
        (
            "/api/v2/series",
            js,
            None,
            br#"{"series":[{"metric":"m","points":[{"timestamp":1}]}]}"#.to_vec(),
            400,
            "series[0]",
        ),
        ("/api/v2/series", js, None, b"[1,2]".to_vec(), 400, "series"),
        (
            "/api/v1/series",
            js,
            None,
            br#"{"series":[{"metric":"m","type":"histogram"}]}"#.to_vec(),
            400,
            "series[0].type",
        ),
        (
            "/api/v1/series",
            js,
            None,
            br#"{"series":[{"metric":"m","points":[[1.5,2]]}]}"#.to_vec(),
            400,
            "series[0].points[0]",
        ),
        (
            "/api/v1/series",
            js,
            None,
            br#"{"series":[{"metric":"m","points":[[-5,2]]}]}"#.to_vec(),
            400,
            "series[0].points[0]",
        ),
        (
            "/api/v1/check_run",
            js,
            None,
            br#"[{"check":"a","status":0},{"check":"b","status":7}]"#.to_vec(),
            400,
            "[1].status",
        ),
        (
            "/api/v1/check_run",
            js,
            None,
            br#"[{"check":"","status":0}]"#.to_vec(),
            400,
            "[0].check",
        ),
        (
            "/api/v1/check_run",
            js,
            None,
            br#"[{"status":0}]"#.to_vec(),
            400,
            "check",
        ),
        (
            "/api/v1/check_run",
            js,
            None,
            br#"{"check":"a"}"#.to_vec(),
            400,
            "array",
        ),
        (
            "/api/v1/events",
            js,
            None,
            br#"{"text":"no title"}"#.to_vec(),
            400,
            "title",
        ),
        (
            "/api/v1/events",
            js,
            None,
            br#"{"title":"t","alert_type":"panic"}"#.to_vec(),
            400,
            "alert_type",
        ),
        (
            "/api/v1/events",
            js,
            None,
            br#"{"title":"t","priority":"high"}"#.to_vec(),
            400,
            "priority",
        ),
        (
            "/api/v1/events",
            js,
            None,
            br#"{"title":"t","date_happened":"soon"}"#.to_vec(),
            400,
            "event JSON",
        ),
    ];
    for (path, ct, enc, body, want, needle) in cases {
        let (status, resp) = post(&h, path, ct, enc, body).await;
        let detail = resp["errors"][0]
            .as_str()
            .or(resp["errors"][0]["detail"].as_str())
            .unwrap_or_default()
            .to_owned();
        assert_eq!(status, want, "{path} {needle}: {resp}");
        assert!(
            detail.contains(needle),
            "{path}: {detail:?} should name {needle:?}"
        );
    }
    // Nothing of a refused payload was stored, not even its good first series.
    assert!(series_of(&h, "sum:x{*}", t - 10, t + 10).await.is_empty());
    let checks = get(&h, "/api/v1/check_run", &[]).await;
    assert_eq!(checks["checks"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_payload_over_5_242_880_bytes_decompressed_is_413() {
    let h = Harness::start().await;
    // One series whose tag is 5.3 MB of 'a': tiny compressed, too large expanded.
    let big = "a".repeat(5_300_000);
    let body = payload(&[Pb {
        metric: "m",
        kind: 3,
        host: "h",
        device: None,
        tags: &[&big],
        points: &[(now_s(), 1.0)],
        interval: 0,
        unit: "",
    }]);
    let (status, resp) = post(
        &h,
        "/api/v2/series",
        "application/x-protobuf",
        Some("zstd"),
        zstd(&body),
    )
    .await;
    assert_eq!(status, 413, "{resp}");
    assert!(
        resp["errors"][0].as_str().unwrap().contains("5242880"),
        "{resp}"
    );
    // Just under the limit is fine.
    let ok = "a".repeat(5_200_000);
    let body = payload(&[Pb {
        metric: "m",
        kind: 3,
        host: "h",
        device: None,
        tags: &[&ok],
        points: &[(now_s(), 1.0)],
        interval: 0,
        unit: "",
    }]);
    let (status, resp) = post(
        &h,
        "/api/v2/series",
        "application/x-protobuf",
        Some("zstd"),
        zstd(&body),
    )
    .await;
    assert_eq!(status, 202, "{resp}");
}

#[tokio::test(flavor = "multi_thread")]
async fn service_checks_keep_the_latest_status_per_check_host_and_tags() {
    let h = Harness::start().await;
    let t = now_s();
    let first = json!([
        {"check": "db.can_connect", "host_name": "db1", "timestamp": t - 30, "status": 0, "message": "", "tags": ["port:5432"]},
        {"check": "db.can_connect", "host_name": "db1", "timestamp": t - 10, "status": 2, "message": "refused", "tags": ["port:5432"]},
        {"check": "db.can_connect", "host_name": "db1", "timestamp": t - 20, "status": 1, "tags": ["port:5433"]},
        {"check": "web.up", "host_name": "web1", "status": 3}
    ]);
    let (status, resp) = post(
        &h,
        "/api/v1/check_run",
        "application/json",
        Some("zstd"),
        zstd(&serde_json::to_vec(&first).unwrap()),
    )
    .await;
    assert_eq!((status, resp), (202, json!({"status": "ok"})));
    // An older report arriving later does not replace the newer status.
    let late = json!([{"check": "db.can_connect", "host_name": "db1", "timestamp": t - 25, "status": 0, "tags": ["port:5432"]}]);
    let (status, _) = post(
        &h,
        "/api/v1/check_run",
        "application/json",
        Some("gzip"),
        gzip(&serde_json::to_vec(&late).unwrap()),
    )
    .await;
    assert_eq!(status, 202);
    let all = get(&h, "/api/v1/check_run", &[]).await;
    let rows: Vec<(String, String, Value, i64, String)> = all["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["check"].as_str().unwrap().into(),
                c["host_name"].as_str().unwrap().into(),
                c["tags"].clone(),
                c["status"].as_i64().unwrap(),
                c["status_name"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (
                "db.can_connect".into(),
                "db1".into(),
                json!(["port:5432"]),
                2,
                "CRITICAL".into()
            ),
            (
                "db.can_connect".into(),
                "db1".into(),
                json!(["port:5433"]),
                1,
                "WARNING".into()
            ),
            (
                "web.up".into(),
                "web1".into(),
                json!([]),
                3,
                "UNKNOWN".into()
            ),
        ]
    );
    assert_eq!(all["checks"][0]["message"], "refused");
    assert_eq!(all["checks"][0]["timestamp"], t - 10);
    // Missing timestamp: now.
    assert!((all["checks"][2]["timestamp"].as_i64().unwrap() - t).abs() <= 2);
    let only = get(&h, "/api/v1/check_run", &[("check", "web.*".into())]).await;
    assert_eq!(only["checks"].as_array().unwrap().len(), 1);
    let only = get(
        &h,
        "/api/v1/check_run",
        &[("tags", "port:5433".into()), ("host", "db1".into())],
    )
    .await;
    assert_eq!(only["checks"][0]["status"], 1);
    assert_eq!(only["checks"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn events_are_answered_like_datadog_and_listed_newest_first() {
    let h = Harness::start().await;
    let t = now_s();
    let (status, resp) = post(
        &h,
        "/api/v1/events",
        "application/json",
        None,
        serde_json::to_vec(&json!({
            "title": "Deploy", "text": "v2 rolled out", "date_happened": t - 100,
            "priority": "low", "host": "web1", "tags": ["env:prod", "team:a"],
            "alert_type": "success", "aggregation_key": "deploy-1", "source_type_name": "Jenkins"
        }))
        .unwrap(),
    )
    .await;
    assert_eq!(status, 202, "{resp}");
    assert_eq!(resp["status"], "ok");
    assert_eq!(resp["event"]["title"], "Deploy");
    assert_eq!(resp["event"]["date_happened"], t - 100);
    assert_eq!(resp["event"]["tags"], json!(["env:prod", "team:a"]));
    assert!(resp["event"]["id"].as_i64().unwrap() > 0);
    let long = "x".repeat(5_000);
    let (status, resp) = post(
        &h,
        "/api/v1/events",
        "application/json",
        Some("zstd"),
        zstd(&serde_json::to_vec(&json!({"title": "Disk full", "text": long, "tags": ["env:dev"], "source_type_name": "cairn"})).unwrap()),
    )
    .await;
    assert_eq!(status, 202, "{resp}");
    // Datadog's defaults and limits.
    assert_eq!(resp["event"]["priority"], "normal");
    assert_eq!(resp["event"]["alert_type"], "info");
    assert_eq!(resp["event"]["text"].as_str().unwrap().len(), 4_000);
    let range = [
        ("start", (t - 3_600).to_string()),
        ("end", (t + 60).to_string()),
    ];
    let all = get(&h, "/api/v1/events", &range).await;
    let titles: Vec<&str> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Disk full", "Deploy"], "newest first");
    for (extra, want) in [
        (("tags", "env:prod".to_string()), vec!["Deploy"]),
        (("tags", "env:*,team:a".to_string()), vec!["Deploy"]),
        (("sources", "jenkins".to_string()), vec!["Deploy"]),
        (("priority", "normal".to_string()), vec!["Disk full"]),
        (("tags", "env:none".to_string()), vec![]),
    ] {
        let mut params = range.to_vec();
        params.push((extra.0, extra.1.clone()));
        let got = get(&h, "/api/v1/events", &params).await;
        let titles: Vec<&str> = got["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["title"].as_str().unwrap())
            .collect();
        assert_eq!(titles, want, "{extra:?}");
    }
    // start and end are required, as at Datadog.
    let resp = h.http.get(h.url("/api/v1/events")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_removes_old_points_checks_and_events_by_timestamp() {
    let h = Harness::start_with(|c| c.retention = std::time::Duration::from_secs(3_600)).await;
    let t = now_s();
    let body = payload(&[
        Pb {
            metric: "ret.m",
            kind: 3,
            host: "old",
            device: None,
            tags: &[],
            points: &[(t - 7_200, 1.0)],
            interval: 0,
            unit: "",
        },
        Pb {
            metric: "ret.m",
            kind: 3,
            host: "mixed",
            device: None,
            tags: &[],
            points: &[(t - 7_200, 1.0), (t - 60, 2.0)],
            interval: 0,
            unit: "",
        },
    ]);
    assert_eq!(
        post(&h, "/api/v2/series", "application/x-protobuf", None, body)
            .await
            .0,
        202
    );
    let checks = json!([
        {"check": "old", "timestamp": t - 7_200, "status": 0},
        {"check": "new", "timestamp": t - 60, "status": 0}
    ]);
    assert_eq!(
        post(
            &h,
            "/api/v1/check_run",
            "application/json",
            None,
            serde_json::to_vec(&checks).unwrap()
        )
        .await
        .0,
        202
    );
    for (title, ts) in [("old", t - 7_200), ("new", t - 60)] {
        let ev = json!({"title": title, "date_happened": ts});
        assert_eq!(
            post(
                &h,
                "/api/v1/events",
                "application/json",
                None,
                serde_json::to_vec(&ev).unwrap()
            )
            .await
            .0,
            202
        );
    }
    let report = h.intake.enforce_retention().await.unwrap();
    // 2 points, the old check's history and latest rows, 1 event.
    assert_eq!(report.deleted_metric_rows, 5, "{report:?}");
    let got = series_of(&h, "sum:ret.m{*} by {host}", t - 10_000, t).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["tag_set"], json!(["host:mixed"]));
    assert_eq!(values(&got[0]), [2.0]);
    let names = get(&h, "/api/v1/search", &[("q", "hosts:".into())]).await;
    assert_eq!(
        names["results"]["hosts"],
        json!(["mixed"]),
        "the emptied context is gone"
    );
    let checks = get(&h, "/api/v1/check_run", &[]).await;
    assert_eq!(checks["checks"].as_array().unwrap().len(), 1);
    let events = get(
        &h,
        "/api/v1/events",
        &[("start", "0".into()), ("end", t.to_string())],
    )
    .await;
    assert_eq!(events["events"].as_array().unwrap().len(), 1);
    assert_eq!(events["events"][0]["title"], "new");
}

#[tokio::test(flavor = "multi_thread")]
async fn senders_may_put_the_key_in_the_url_on_ingest_routes_only() {
    let h = Harness::start_with(|c| {
        c.auth = cairn_intake::IntakeAuth::Disabled;
        c.api_keys = vec!["url-key-0123456789".into()];
    })
    .await;
    let bare = reqwest::Client::new();
    let t = now_s();
    for (path, body) in [
        (
            "/api/v1/series",
            json!({"series": [{"metric": "k.m", "points": [[t, 1]]}]}),
        ),
        ("/api/v1/check_run", json!([{"check": "k", "status": 0}])),
        ("/api/v1/events", json!({"title": "k"})),
    ] {
        let resp = bare
            .post(h.url(&format!("{path}?dd-api-key=url-key-0123456789")))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 202, "{path}");
    }
    for path in [
        "/api/v1/query",
        "/api/v1/check_run",
        "/api/v1/events",
        "/api/v1/metrics",
    ] {
        let resp = bare
            .get(h.url(&format!("{path}?dd-api-key=url-key-0123456789")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_explorer_reads_tags_and_scoped_metric_lists() {
    let h = Harness::start().await;
    let t = now_s();
    let series = json!({"series": [
        {"metric": "app.hits", "host": "web-1", "tags": ["service:shop", "env:prod"], "points": [[t - 60, 1.0]]},
        {"metric": "app.hits", "host": "web-2", "device": "sda", "tags": ["service:shop", "env:dev"], "points": [[t - 60, 2.0]]},
        {"metric": "db.rows", "host": "db-1", "tags": ["service:db", "env:prod"], "points": [[t - 60, 3.0]]},
    ]});
    let (status, resp) = post(
        &h,
        "/api/v1/series",
        "application/json",
        None,
        serde_json::to_vec(&series).unwrap(),
    )
    .await;
    assert_eq!(status, 202, "{resp}");

    // Datadog's all-tags shape, host and device included as tags.
    let tags = get(&h, "/api/v2/metrics/app.hits/all-tags", &[]).await;
    assert_eq!(tags["data"]["id"], "app.hits");
    assert_eq!(tags["data"]["type"], "metrics");
    assert_eq!(
        tags["data"]["attributes"]["tags"],
        json!([
            "device:sda",
            "env:dev",
            "env:prod",
            "host:web-1",
            "host:web-2",
            "service:shop"
        ])
    );
    let resp = h
        .http
        .get(h.url("/api/v2/metrics/no.such/all-tags"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["errors"][0].as_str().unwrap().contains("no.such"),
        "{body}"
    );

    // The metric list by host and by tags (host: matches the host; wildcards; all must hold).
    let from = (t - 3600).to_string();
    for (host, tag_filter, want) in [
        (None, None, json!(["app.hits", "db.rows"])),
        (Some("db-1"), None, json!(["db.rows"])),
        (Some("web-2"), Some("env:dev"), json!(["app.hits"])),
        (None, Some("host:web-*"), json!(["app.hits"])),
        (None, Some("env:prod,service:db"), json!(["db.rows"])),
        (None, Some("env:dev,service:db"), json!([])),
    ] {
        let mut params = vec![("from", from.clone())];
        params.extend(host.map(|h| ("host", h.to_string())));
        params.extend(tag_filter.map(|f| ("tag_filter", f.to_string())));
        let got = get(&h, "/api/v1/metrics", &params).await;
        assert_eq!(got["metrics"], want, "{params:?}");
    }

    // Service checks and events: `host:` in tags matches the host they came from.
    let checks = json!([
        {"check": "shop.up", "host_name": "web-1", "status": 0, "tags": ["service:shop"]},
        {"check": "shop.up", "host_name": "web-2", "status": 2, "tags": ["service:shop"]},
    ]);
    let (status, _) = post(
        &h,
        "/api/v1/check_run",
        "application/json",
        None,
        serde_json::to_vec(&checks).unwrap(),
    )
    .await;
    assert_eq!(status, 202);
    let got = get(&h, "/api/v1/check_run", &[("tags", "host:web-2".into())]).await;
    let hosts: Vec<&str> = got["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["host_name"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["web-2"]);
    let event = json!({"title": "deploy", "host": "web-1", "tags": ["service:shop"], "date_happened": t - 10});
    let (status, _) = post(
        &h,
        "/api/v1/events",
        "application/json",
        None,
        serde_json::to_vec(&event).unwrap(),
    )
    .await;
    assert_eq!(status, 202);
    let range = |tags: &str| {
        vec![
            ("start", (t - 60).to_string()),
            ("end", t.to_string()),
            ("tags", tags.to_string()),
        ]
    };
    assert_eq!(
        get(&h, "/api/v1/events", &range("host:web-1")).await["events"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        get(&h, "/api/v1/events", &range("host:web-2")).await["events"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}
