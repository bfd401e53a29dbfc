//! Log monitors end to end: logs ingested over HTTP with chosen timestamps, rounds run at
//! chosen times (`Monitors::evaluate_at`), transitions read back from the API and from a
//! recording webhook receiver on 127.0.0.1.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{now_ms, Harness};
use serde_json::{json, Value};

const MIN: i64 = 60_000;

/// A webhook receiver that records every POST body and fails the first `fail_first` ones.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<(Instant, Value)>>>,
    attempts: Arc<Mutex<Vec<Instant>>>,
}

async fn receiver(fail_first: usize) -> Receiver {
    use axum::http::StatusCode;
    let got: Arc<Mutex<Vec<(Instant, Value)>>> = Arc::default();
    let attempts: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let (g, a) = (got.clone(), attempts.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let (g, a) = (g.clone(), a.clone());
            async move {
                let n = {
                    let mut a = a.lock().unwrap();
                    a.push(Instant::now());
                    a.len()
                };
                if n <= fail_first {
                    return StatusCode::INTERNAL_SERVER_ERROR;
                }
                let v: Value = serde_json::from_slice(&body).unwrap();
                g.lock().unwrap().push((Instant::now(), v));
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Receiver {
        url: format!("http://user:hunter2@{addr}/hook?key=s3cret"),
        got,
        attempts,
    }
}

impl Receiver {
    async fn wait_for(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got: Vec<Value> = self
                .got
                .lock()
                .unwrap()
                .iter()
                .map(|x| x.1.clone())
                .collect();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// An intake whose monitors file is `text` and whose own rounds never come during a test.
async fn harness(text: &str) -> Harness {
    let text = text.to_owned();
    Harness::start_with(move |cfg| {
        let file = cfg.data_dir.parent().unwrap().join("monitors.yaml");
        std::fs::write(&file, text).unwrap();
        cfg.monitors_file = file;
        cfg.monitor_interval = Duration::from_secs(3600);
    })
    .await
}

/// A recording receiver, and an intake whose monitors file is `text` with `URL` its address.
async fn hooked(text: &str) -> (Receiver, Harness) {
    let rec = receiver(0).await;
    let h = harness(&text.replace("URL", &rec.url)).await;
    (rec, h)
}

/// POSTs a monitor with `options` to `path` and expects a 400 whose first error holds
/// `needle`.
async fn refused(h: &Harness, path: &str, options: Value, needle: &str) {
    let body = json!({"name": "x", "query": "logs(\"*\").rollup(\"count\").last(\"5m\") > 1",
                      "options": options});
    let (status, err) = send(h, "POST", path, body).await;
    assert_eq!(status, 400, "{options}: {err}");
    let msg = err["errors"][0].as_str().unwrap_or_default();
    assert!(msg.contains(needle), "{options}: {msg}");
}

/// Minute-aligned, two hours ago: well inside retention, and the rounds' windows fall on
/// whole minutes, as they would not in production (both paths give the same answer).
fn base() -> i64 {
    (now_ms() - 2 * 3_600_000) / MIN * MIN
}

async fn errors(h: &Harness, host: &str, n: usize, from: i64) {
    let logs: Vec<Value> = (0..n)
        .map(|i| {
            json!({"message": format!("boom {i}"), "timestamp": from + 1_000 + i as i64 * 100,
                   "service": "web", "status": "error", "hostname": host})
        })
        .collect();
    h.ingest(&Value::Array(logs)).await;
}

async fn get(h: &Harness, path: &str) -> (u16, Value) {
    let r = h.http.get(h.url(path)).send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn send(h: &Harness, method: &str, path: &str, body: Value) -> (u16, Value) {
    let req = match method {
        "POST" => h.http.post(h.url(path)),
        "PUT" => h.http.put(h.url(path)),
        "DELETE" => h.http.delete(h.url(path)),
        _ => unreachable!(),
    };
    let r = req.json(&body).send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

fn transitions(history: &Value) -> Vec<(String, String, String)> {
    let mut rows: Vec<(String, String, String)> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["group"].as_str().unwrap().to_owned(),
                r["from"].as_str().unwrap().to_owned(),
                r["to"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    rows.reverse();
    rows
}

const BY_HOST: &str = r#"
monitors:
  - id: 1
    name: web errors by host
    type: log alert
    query: 'logs("service:web status:error").index("*").rollup("count").by("host").last("5m") > 10'
    message: "{{#is_alert}}ALERT {{host.name}} {{value}} > {{threshold}}{{/is_alert}}{{#is_warning}}WARN {{host.name}} {{value}}{{/is_warning}}{{#is_recovery}}RECOVERED {{group}}{{/is_recovery}}{{#is_no_data}}NODATA {{group}}{{/is_no_data}} @webhook-rec"
    tags: [team:web]
    options:
      thresholds: {critical: 10, warning: 5, critical_recovery: 8, warning_recovery: 3}
      notify_no_data: true
      no_data_timeframe: 10
webhooks:
  - name: rec
    url: URL
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeline_goes_ok_warn_alert_and_back_through_the_recovery_thresholds_per_host() {
    let (rec, h) = hooked(BY_HOST).await;
    let t = base();
    let mons = h.intake.monitors().clone();
    // Per 5-minute window: host a's error count; host b only logs in the first.
    let a_counts = [3usize, 7, 12, 9, 6, 4, 1];
    for (i, n) in a_counts.iter().enumerate() {
        errors(&h, "a", *n, t + i as i64 * 5 * MIN).await;
    }
    errors(&h, "b", 2, t).await;
    // Noise the search must leave out.
    h.ingest(&json!([{"message": "fine", "timestamp": t + 1000, "service": "web", "status": "info", "hostname": "a"},
                     {"message": "other", "timestamp": t + 1000, "service": "db", "status": "error", "hostname": "a"}]))
        .await;

    let mut states = Vec::new();
    for i in 1..=a_counts.len() as i64 {
        let r = mons.evaluate_at(t + i * 5 * MIN).await.unwrap();
        assert_eq!(r.errors, 0);
        let (_, m) = get(&h, "/api/v1/monitor/1").await;
        states.push((
            m["state"]["groups"]["host:a"]["status"]
                .as_str()
                .unwrap_or("-")
                .to_owned(),
            m["state"]["groups"]["host:b"]["status"]
                .as_str()
                .unwrap_or("-")
                .to_owned(),
            m["overall_state"].as_str().unwrap().to_owned(),
        ));
    }
    let want = [
        ("OK", "OK", "OK"),
        ("Warn", "OK", "Warn"), // 7 > 5; b had data within no_data_timeframe: count 0
        ("Alert", "No Data", "Alert"), // 12 > 10; b silent for 10 minutes
        ("Alert", "No Data", "Alert"), // 9: above critical_recovery 8, still Alert
        ("Warn", "No Data", "No Data"), // 6: recovered from Alert, above warning
        ("Warn", "No Data", "No Data"), // 4: above warning_recovery 3, still Warn
        ("OK", "No Data", "No Data"),
    ];
    let got: Vec<(&str, &str, &str)> = states
        .iter()
        .map(|(a, b, o)| (a.as_str(), b.as_str(), o.as_str()))
        .collect();
    assert_eq!(got, want);

    let (status, hist) = get(&h, "/api/v1/monitor/1/history").await;
    assert_eq!(status, 200);
    let s = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
    assert_eq!(
        transitions(&hist),
        vec![
            s("host:a", "OK", "Warn"),
            s("host:a", "Warn", "Alert"),
            s("host:b", "OK", "No Data"),
            s("host:a", "Alert", "Warn"),
            s("host:a", "Warn", "OK"),
        ]
    );

    let bodies = rec.wait_for(5).await;
    assert_eq!(bodies.len(), 5, "{bodies:?}");
    let alert = bodies.iter().find(|b| b["to"] == "Alert").unwrap();
    assert_eq!(alert["monitor_id"], 1);
    assert_eq!(alert["monitor_name"], "web errors by host");
    assert_eq!(alert["group"], "host:a");
    assert_eq!(alert["transition"], "Triggered");
    assert_eq!(alert["value"], 12.0);
    assert_eq!(alert["threshold"], 10.0);
    assert_eq!(alert["tags"], json!(["team:web"]));
    assert!(alert["query"]
        .as_str()
        .unwrap()
        .starts_with("logs(\"service:web"));
    assert_eq!(alert["message"], "ALERT a 12 > 10 @webhook-rec");
    assert_eq!(alert["date_ms"], t + 15 * MIN);
    let nodata = bodies.iter().find(|b| b["to"] == "No Data").unwrap();
    assert_eq!(nodata["message"], "NODATA host:b @webhook-rec");
    let ok = bodies.iter().find(|b| b["to"] == "OK").unwrap();
    assert_eq!(ok["transition"], "Recovered");
    assert_eq!(ok["message"], "RECOVERED host:a @webhook-rec");
    let warn = bodies.iter().find(|b| b["to"] == "Warn").unwrap();
    assert_eq!(warn["message"], "WARN a 7 @webhook-rec");

    // Evaluate-now reports values and would-be states without changing anything.
    let (status, preview) = send(
        &h,
        "POST",
        &format!("/api/v1/monitor/1/evaluate?now={}", t + 15 * MIN),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{preview}");
    let a = preview["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == "host:a")
        .unwrap();
    assert_eq!(a["value"], 12.0);
    assert_eq!(a["state"], "Alert");
    assert_eq!(a["current_state"], "OK");
    let (_, hist2) = get(&h, "/api/v1/monitor/1/history").await;
    assert_eq!(transitions(&hist2).len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renotify_repeats_an_alert_and_mute_records_transitions_but_sends_nothing() {
    let rec = receiver(0).await;
    let text = format!(
        r#"
monitors:
  - id: 7
    name: any error
    query: 'logs("status:error").rollup("count").last("10m") > 0'
    message: "{{{{#is_renotify}}}}again {{{{/is_renotify}}}}{{{{value}}}} errors @webhook-rec"
    options:
      renotify_interval: 5
webhooks:
  - name: rec
    url: {}
"#,
        rec.url
    );
    let h = harness(&text).await;
    let t = base();
    let mons = h.intake.monitors().clone();
    errors(&h, "a", 2, t).await;
    errors(&h, "a", 1, t + 10 * MIN).await;
    errors(&h, "a", 1, t + 20 * MIN).await;

    mons.evaluate_at(t + 5 * MIN).await.unwrap(); // Alert, notified
    mons.evaluate_at(t + 8 * MIN).await.unwrap(); // still Alert, 3 min: not yet
    mons.evaluate_at(t + 10 * MIN).await.unwrap(); // 5 min: renotified
    let bodies = rec.wait_for(2).await;
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert_eq!(bodies[0]["message"], "2 errors @webhook-rec");
    assert_eq!(bodies[0]["is_renotify"], false);
    assert_eq!(bodies[1]["transition"], "Renotify");
    assert_eq!(bodies[1]["is_renotify"], true);
    assert_eq!(bodies[1]["message"], "again 2 errors @webhook-rec");

    let (status, m) = send(&h, "POST", "/api/v1/monitor/7/mute", json!({})).await;
    assert_eq!(status, 200, "{m}");
    assert_eq!(m["muted"], true);
    assert_eq!(m["options"]["silenced"], json!({"*": null}));
    mons.evaluate_at(t + 16 * MIN).await.unwrap(); // renotify due, muted
    mons.evaluate_at(t + 45 * MIN).await.unwrap(); // no logs: Alert -> OK, muted
    let (_, hist) = get(&h, "/api/v1/monitor/7/history").await;
    assert_eq!(
        transitions(&hist),
        vec![
            ("*".to_owned(), "OK".to_owned(), "Alert".to_owned()),
            ("*".to_owned(), "Alert".to_owned(), "OK".to_owned()),
        ]
    );
    let (status, m) = send(&h, "POST", "/api/v1/monitor/7/unmute", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(m["muted"], false);
    mons.evaluate_at(t + 25 * MIN).await.unwrap(); // the log at t+20m: Alert again, sent
    let bodies = rec.wait_for(3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let bodies_now = rec.wait_for(3).await;
    assert_eq!(
        bodies.len(),
        3,
        "muted notifications must not be sent: {bodies:?}"
    );
    assert_eq!(bodies_now.len(), 3);
    assert_eq!(bodies[2]["to"], "Alert");
    assert!(
        mons.notify_counters()
            .suppressed_muted
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_webhook_is_retried_with_growing_waits() {
    let rec = receiver(2).await;
    let text = format!(
        "monitors:\n  - id: 3\n    name: e\n    query: 'logs(\"*\").rollup(\"count\").last(\"5m\") >= 1'\n    message: hi @webhook-rec\nwebhooks:\n  - name: rec\n    url: {}\n    headers: {{X-Test: \"1\"}}\n",
        rec.url
    );
    let h = harness(&text).await;
    let t = base();
    errors(&h, "a", 1, t).await;
    h.intake.monitors().evaluate_at(t + 5 * MIN).await.unwrap();
    let bodies = rec.wait_for(1).await;
    assert_eq!(bodies.len(), 1);
    let attempts = rec.attempts.lock().unwrap().clone();
    assert_eq!(attempts.len(), 3, "two failures, then the delivery");
    let first_wait = attempts[1] - attempts[0];
    let second_wait = attempts[2] - attempts[1];
    assert!(first_wait >= Duration::from_millis(900), "{first_wait:?}");
    assert!(
        second_wait >= Duration::from_millis(1900),
        "{second_wait:?}"
    );
    assert!(second_wait > first_wait);
    let c = h.intake.monitors().notify_counters();
    assert_eq!(c.sent.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(c.retried.load(std::sync::atomic::Ordering::Relaxed), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_creates_edits_validates_and_deletes_and_rewrites_the_file() {
    let h = harness("").await;
    let file = h.dir.path().join("monitors.yaml");
    let q = r#"logs("service:web").rollup("avg","@duration").by("service").last("15m") > 100"#;
    let (status, created) = send(
        &h,
        "POST",
        "/api/v1/monitor",
        json!({
            "name": "slow web", "type": "log alert", "query": q, "message": "slow",
            "options": {"thresholds": {"critical": 100, "warning": 50}}
        }),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["overall_state"], "OK");
    assert_eq!(created["options"]["thresholds"]["warning"], 50.0);

    // The file holds it, privately, and loads back.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let back = cairn_intake::monitors::config::parse(&file, &text).unwrap();
    assert_eq!(back.monitors[0].id, id);

    let (status, edited) = send(
        &h,
        "PUT",
        &format!("/api/v1/monitor/{id}"),
        json!({"message": "slower", "options": {"thresholds": {"critical": 100, "warning": 80}}}),
    )
    .await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(edited["message"], "slower");
    assert_eq!(edited["options"]["thresholds"]["warning"], 80.0);
    assert_eq!(edited["query"], q);

    let (_, list) = get(&h, "/api/v1/monitor").await;
    assert_eq!(list.as_array().unwrap().len(), 1);

    for (body, needle) in [
        (json!({"query": q}), "name: is required"),
        (
            json!({"name": "x", "query": "logs(\"a\").rollup(\"count\").last(\"5m\") >"}),
            "query: column",
        ),
        (
            json!({"name": "x", "query": q, "options": {"thresholds": {"warning": 200}}}),
            "options.thresholds.warning",
        ),
        (
            json!({"name": "x", "query": q, "options": {"notify_no_data": "yes"}}),
            "options.notify_no_data",
        ),
        (
            json!({"name": "x", "query": q, "type": "metric alert"}),
            "type:",
        ),
    ] {
        for path in ["/api/v1/monitor/validate", "/api/v1/monitor"] {
            let (status, err) = send(&h, "POST", path, body.clone()).await;
            assert_eq!(status, 400, "{path} {body}: {err}");
            let msg = err["errors"][0].as_str().unwrap();
            assert!(msg.contains(needle), "{body}: {msg}");
        }
    }
    let (status, _) = send(
        &h,
        "POST",
        "/api/v1/monitor/validate",
        json!({"name": "ok", "query": q}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = send(
        &h,
        "PUT",
        &format!("/api/v1/monitor/{id}"),
        json!({"query": "nope"}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(get(&h, "/api/v1/monitor/999").await.0, 404);
    assert_eq!(get(&h, "/api/v1/monitor/abc").await.0, 404);

    let (status, del) = send(&h, "DELETE", &format!("/api/v1/monitor/{id}"), json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(del["deleted_monitor_id"], id);
    assert_eq!(get(&h, &format!("/api/v1/monitor/{id}")).await.0, 404);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(cairn_intake::monitors::config::parse(&file, &text)
        .unwrap()
        .monitors
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_is_reloaded_on_change_and_a_bad_one_keeps_the_monitors_in_effect() {
    let one = "monitors:\n  - {id: 1, name: a, query: 'logs(\"*\").rollup(\"count\").last(\"5m\") > 1'}\n";
    let h = harness(one).await;
    let file = h.dir.path().join("monitors.yaml");
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&get(&h, "/api/v1/monitor").await.1), ["a"]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    std::fs::write(&file, format!("{one}  - {{id: 2, name: b, query: 'logs(\"*\").rollup(\"count\").last(\"5m\") > 1'}}\n")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        if names(&get(&h, "/api/v1/monitor").await.1) == ["a", "b"] {
            break;
        }
        assert!(Instant::now() < deadline, "the change was never loaded");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    std::fs::write(
        &file,
        "monitors:\n  - {name: c, query: 'logs(\"*\").rollup(\"count\")'}\n",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(names(&get(&h, "/api/v1/monitor").await.1), ["a", "b"]);
    assert!(
        h.intake
            .monitors()
            .counters
            .reload_errors
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_file_is_refused_at_start_naming_file_monitor_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("monitors.yaml");
    std::fs::write(&file, "monitors:\n  - name: broken\n    query: 'logs(\"*\").rollup(\"count\").last(\"5m\") > 5'\n    options: {thresholds: {warning: 9}}\n").unwrap();
    let mut cfg = cairn_intake::IntakeConfig::new(dir.path().join("intake"));
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    cfg.monitors_file = file.clone();
    let err = cairn_intake::start(cfg)
        .await
        .err()
        .expect("a bad file must refuse the start")
        .to_string();
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(err.contains("\"broken\""), "{err}");
    assert!(err.contains("options.thresholds.warning"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn states_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("monitors.yaml");
    std::fs::write(&file, "monitors:\n  - {id: 5, name: e, query: 'logs(\"status:error\").rollup(\"count\").by(\"host\").last(\"5m\") > 1'}\n").unwrap();
    let cfg = || {
        let mut c = cairn_intake::IntakeConfig::new(dir.path().join("intake"));
        c.listen = "127.0.0.1:0".parse().unwrap();
        c.monitors_file = file.clone();
        c.monitor_interval = Duration::from_secs(3600);
        c
    };
    let t = base();
    let intake = cairn_intake::start(cfg()).await.unwrap();
    let h = Harness {
        http: common::client_for(&intake),
        intake,
        dir: tempfile::tempdir().unwrap(),
    };
    errors(&h, "a", 3, t).await;
    let r = h.intake.monitors().evaluate_at(t + 5 * MIN).await.unwrap();
    assert_eq!(r.transitions.len(), 1);
    h.intake.shutdown().await;

    let intake = cairn_intake::start(cfg()).await.unwrap();
    let h = Harness {
        http: common::client_for(&intake),
        intake,
        dir: tempfile::tempdir().unwrap(),
    };
    let (_, m) = get(&h, "/api/v1/monitor/5").await;
    assert_eq!(m["state"]["groups"]["host:a"]["status"], "Alert");
    assert_eq!(m["overall_state"], "Alert");
    let r = h.intake.monitors().evaluate_at(t + 5 * MIN).await.unwrap();
    assert!(r.transitions.is_empty(), "{:?}", r.transitions);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grouped_monitor_without_any_group_is_no_data_overall_until_groups_appear() {
    let rec = receiver(0).await;
    let text = format!(
        "monitors:\n  - id: 2\n    name: n\n    query: 'logs(\"service:web\").rollup(\"count\").by(\"host\").last(\"5m\") > 100'\n    message: '{{{{#is_no_data}}}}silent{{{{/is_no_data}}}}{{{{#is_no_data_recovery}}}}back{{{{/is_no_data_recovery}}}} @webhook-rec'\n    options: {{notify_no_data: true, no_data_timeframe: 5}}\nwebhooks:\n  - {{name: rec, url: '{}'}}\n",
        rec.url
    );
    let h = harness(&text).await;
    let t = base();
    let mons = h.intake.monitors().clone();
    // The first evaluation starts the no_data_timeframe's clock: not No Data yet.
    mons.evaluate_at(t).await.unwrap();
    let (_, m) = get(&h, "/api/v1/monitor/2").await;
    assert_eq!(m["overall_state"], "OK");
    mons.evaluate_at(t + 5 * MIN).await.unwrap();
    let (_, m) = get(&h, "/api/v1/monitor/2").await;
    assert_eq!(m["overall_state"], "No Data");
    assert_eq!(m["state"]["groups"]["*"]["status"], "No Data");
    // Still no logs a minute later: it stays No Data (the clock does not restart).
    mons.evaluate_at(t + 6 * MIN).await.unwrap();
    let (_, m) = get(&h, "/api/v1/monitor/2").await;
    assert_eq!(m["overall_state"], "No Data");

    errors(&h, "a", 1, t + 6 * MIN).await; // status error, service web
    mons.evaluate_at(t + 8 * MIN).await.unwrap();
    let (_, m) = get(&h, "/api/v1/monitor/2").await;
    assert_eq!(m["overall_state"], "OK");
    let groups = m["state"]["groups"].as_object().unwrap();
    assert_eq!(groups.keys().collect::<Vec<_>>(), ["host:a"], "{m}");

    let (_, hist) = get(&h, "/api/v1/monitor/2/history").await;
    assert_eq!(
        transitions(&hist),
        vec![
            ("*".to_owned(), "OK".to_owned(), "No Data".to_owned()),
            ("*".to_owned(), "No Data".to_owned(), "OK".to_owned()),
        ]
    );
    let bodies = rec.wait_for(2).await;
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert_eq!(bodies[0]["message"], "silent @webhook-rec");
    assert_eq!(bodies[1]["message"], "back @webhook-rec");
    assert_eq!(bodies[1]["group"], "*");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_ok_and_silent_for_a_day_is_forgotten_but_one_in_alert_is_kept() {
    let h = harness("monitors:\n  - {id: 6, name: e, query: 'logs(\"status:error\").rollup(\"count\").by(\"host\").last(\"5m\") > 2'}\n").await;
    let t = base();
    let mons = h.intake.monitors().clone();
    errors(&h, "quiet", 1, t).await;
    errors(&h, "loud", 3, t).await;
    mons.evaluate_at(t + 5 * MIN).await.unwrap();
    let groups = |m: &Value| -> Vec<String> {
        let mut g: Vec<String> = m["state"]["groups"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        g.sort();
        g
    };
    assert_eq!(
        groups(&get(&h, "/api/v1/monitor/6").await.1),
        ["host:loud", "host:quiet"]
    );
    // Still within the day: both kept (loud recovers to OK on a count of 0).
    mons.evaluate_at(t + 23 * 60 * MIN).await.unwrap();
    assert_eq!(
        groups(&get(&h, "/api/v1/monitor/6").await.1),
        ["host:loud", "host:quiet"]
    );
    mons.evaluate_at(t + 25 * 60 * MIN).await.unwrap();
    assert!(groups(&get(&h, "/api/v1/monitor/6").await.1).is_empty());

    // A group that stays in Alert is never forgotten, however long it is silent: here a `<`
    // monitor, in Alert on a count of 0.
    let h = harness("monitors:\n  - {id: 8, name: low, query: 'logs(\"status:error\").rollup(\"count\").by(\"host\").last(\"5m\") < 1'}\n").await;
    errors(&h, "a", 1, t).await;
    let mons = h.intake.monitors().clone();
    mons.evaluate_at(t + 5 * MIN).await.unwrap(); // 1: OK
    mons.evaluate_at(t + 10 * MIN).await.unwrap(); // 0: Alert
    mons.evaluate_at(t + 48 * 60 * MIN).await.unwrap();
    let (_, m) = get(&h, "/api/v1/monitor/8").await;
    assert_eq!(m["state"]["groups"]["host:a"]["status"], "Alert", "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn free_text_monitors_count_late_logs_and_partial_minutes_exactly() {
    let h = harness("monitors:\n  - {id: 4, name: t, query: 'logs(\"deadlock orders\").rollup(\"count\").by(\"host\").last(\"5m\") > 100'}\n").await;
    let t = base();
    let log = |msg: &str, ts: i64, host: &str| json!({"message": msg, "timestamp": ts, "hostname": host, "service": "db"});
    // In the window [t+5m+30s, t+10m+30s): 3 on a, 1 on b; around it, matches outside it
    // and non-matches inside it.
    h.ingest(&json!([
        log("deadlock detected on orders", t + 5 * MIN + 31_000, "a"),
        log("deadlock detected on orders", t + 7 * MIN, "a"),
        log("deadlock on invoices", t + 7 * MIN, "a"),
        log("orders fine", t + 8 * MIN, "a"),
        log("deadlock detected on orders", t + 5 * MIN + 29_000, "a"),
        log("deadlock detected on orders", t + 10 * MIN + 30_000, "a"),
    ]))
    .await;
    for i in 0..50 {
        h.ingest(&json!([log("noise", t + i * 1000, "c")])).await;
    }
    // Late: arrives after the others (higher ids) with timestamps inside the window.
    h.ingest(&json!([
        log("orders: deadlock again", t + 10 * MIN + 29_000, "a"),
        log("deadlock, orders", t + 6 * MIN, "b"),
    ]))
    .await;
    let now = t + 10 * MIN + 30_000;
    let (status, v) = send(
        &h,
        "POST",
        &format!("/api/v1/monitor/4/evaluate?now={now}"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let value = |g: &str| {
        v["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["group"] == g)
            .map(|x| x["value"].clone())
    };
    assert_eq!(value("host:a"), Some(json!(3.0)), "{v}");
    assert_eq!(value("host:b"), Some(json!(1.0)), "{v}");
    assert_eq!(value("host:c"), None, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_data_waits_for_the_no_data_timeframe_from_the_first_evaluation() {
    let rec = receiver(0).await;
    let text = format!(
        "monitors:\n  - id: 5\n    name: quiet\n    query: 'logs(\"service:web\").rollup(\"count\").last(\"5m\") > 100'\n    message: 'nodata @webhook-rec'\n    options: {{notify_no_data: true, no_data_timeframe: 2}}\nwebhooks:\n  - {{name: rec, url: '{}'}}\n",
        rec.url
    );
    let h = harness(&text).await;
    let t = base();
    let mons = h.intake.monitors().clone();
    // The QA case: the first rounds after a start, nothing ever logged.
    for at in [t, t + 5_000, t + MIN, t + 2 * MIN - 1] {
        let r = mons.evaluate_at(at).await.unwrap();
        assert!(r.transitions.is_empty(), "at +{}ms: {r:?}", at - t);
    }
    let (_, m) = get(&h, "/api/v1/monitor/5").await;
    assert_eq!(m["overall_state"], "OK");
    let r = mons.evaluate_at(t + 2 * MIN).await.unwrap();
    assert_eq!(r.transitions.len(), 1, "{r:?}");
    assert_eq!(r.transitions[0].to, cairn_intake::monitors::State::NoData);
    let bodies = rec.wait_for(1).await;
    assert_eq!(bodies.len(), 1, "{bodies:?}");

    // Logs come back: OK; then silent again, No Data only once the timeframe has passed
    // since the last evaluation that saw them.
    errors(&h, "a", 1, t + 3 * MIN).await;
    let r = mons.evaluate_at(t + 4 * MIN).await.unwrap();
    assert_eq!(r.transitions[0].to, cairn_intake::monitors::State::Ok);
    // The log at t+3m leaves the 5-minute window after t+8m: last seen by the round at t+8m.
    mons.evaluate_at(t + 8 * MIN).await.unwrap();
    let r = mons.evaluate_at(t + 9 * MIN).await.unwrap();
    assert!(r.transitions.is_empty(), "{r:?}");
    let r = mons.evaluate_at(t + 10 * MIN).await.unwrap();
    assert_eq!(r.transitions.len(), 1, "{r:?}");
    assert_eq!(r.transitions[0].to, cairn_intake::monitors::State::NoData);
}

const ONE: &str =
    "monitors:\n  - {id: 1, name: a, query: 'logs(\"*\").rollup(\"count\").last(\"5m\") > 1'}\n";

async fn start_err(file: &std::path::Path, dir: &std::path::Path) -> cairn_intake::IntakeError {
    let mut cfg = cairn_intake::IntakeConfig::new(dir.join("intake"));
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    cfg.monitors_file = file.to_owned();
    tokio::time::timeout(Duration::from_secs(20), cairn_intake::start(cfg))
        .await
        .expect("the start must not read without end")
        .err()
        .expect("the file must refuse the start")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitors_file_leading_to_dev_zero_or_over_the_cap_is_refused_without_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("monitors.yaml");
    std::os::unix::fs::symlink("/dev/zero", &file).unwrap();
    let err = start_err(&file, dir.path()).await.to_string();
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(err.contains("character device"), "{err}");
    assert!(err.contains("not a regular file"), "{err}");

    std::fs::remove_file(&file).unwrap();
    let big = format!("{ONE}# {}\n", "x".repeat(4 << 20));
    std::fs::write(&file, &big).unwrap();
    let err = start_err(&file, dir.path()).await.to_string();
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(err.contains(&format!("{} bytes", big.len())), "{err}");
    assert!(
        err.contains(&format!("limit of {} bytes", 4 << 20)),
        "{err}"
    );

    // A file at the cap is read.
    let at_cap = format!("{ONE}#{}\n", "x".repeat((4 << 20) - ONE.len() - 2));
    assert_eq!(at_cap.len(), 4 << 20);
    std::fs::write(&file, &at_cap).unwrap();
    let f = cairn_intake::monitors::config::load(&file).unwrap();
    assert_eq!(f.monitors.len(), 1);
}

/// The x-cairn-monitors-error header of GET /api/v1/monitor, once the watcher has seen the
/// change.
async fn wait_for_error_header(h: &Harness, needle: &str) -> (String, Value) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = h.http.get(h.url("/api/v1/monitor")).send().await.unwrap();
        let e = r
            .headers()
            .get("x-cairn-monitors-error")
            .map(|v| v.to_str().unwrap().to_owned());
        let body: Value = r.json().await.unwrap();
        if let Some(e) = e.filter(|e| e.contains(needle)) {
            return (e, body);
        }
        assert!(Instant::now() < deadline, "no error header with {needle:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_onto_dev_zero_or_a_huge_file_keeps_the_monitors_and_says_so_in_a_header() {
    let h = harness(ONE).await;
    let file = h.dir.path().join("monitors.yaml");
    let r = h.http.get(h.url("/api/v1/monitor")).send().await.unwrap();
    assert!(r.headers().get("x-cairn-monitors-error").is_none());

    std::fs::remove_file(&file).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &file).unwrap();
    let (e, body) = wait_for_error_header(&h, "character device").await;
    assert!(e.contains(&file.display().to_string()), "{e}");
    assert_eq!(body.as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body[0]["name"], "a");

    std::fs::remove_file(&file).unwrap();
    std::fs::write(&file, format!("{ONE}# {}\n", "x".repeat(5 << 20))).unwrap();
    let (e, body) = wait_for_error_header(&h, "over the limit").await;
    assert!(e.contains(&format!("limit of {} bytes", 4 << 20)), "{e}");
    assert_eq!(body.as_array().unwrap().len(), 1, "{body}");

    // Said once, not once per error in the chain.
    std::fs::write(
        &file,
        "monitors:\n  - {name: x, query: 'logs(\"*\").rollup(\"count\")'}\n",
    )
    .unwrap();
    let (e, _) = wait_for_error_header(&h, "\"x\"").await;
    assert_eq!(e.matches("monitors[0] \"x\"").count(), 1, "{e}");

    // A good file again: loaded, the header gone.
    std::fs::write(&file, ONE.replace("name: a", "name: b")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = h.http.get(h.url("/api/v1/monitor")).send().await.unwrap();
        let clean = r.headers().get("x-cairn-monitors-error").is_none();
        let body: Value = r.json().await.unwrap();
        if clean && body[0]["name"] == "b" {
            break;
        }
        assert!(Instant::now() < deadline, "the good file was never loaded");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The intake still works (no reader left spinning on the device).
    tokio::time::timeout(
        Duration::from_secs(10),
        h.intake.monitors().evaluate_at(base()),
    )
    .await
    .unwrap()
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_error_is_said_once_along_its_chain() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("monitors.yaml");
    std::fs::write(&file, "monitors:\n  - {name: x}\n").unwrap();
    let err = start_err(&file, dir.path()).await;
    let mut chain = vec![err.to_string()];
    let mut src = std::error::Error::source(&err);
    while let Some(s) = src {
        chain.push(s.to_string());
        src = s.source();
    }
    let all = chain.join(": ");
    assert_eq!(all.matches("query: is required").count(), 1, "{all}");
    assert_eq!(all.matches(&file.display().to_string()).count(), 1, "{all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_refuses_a_message_naming_an_unknown_webhook_and_the_file_only_warns() {
    let h = harness(
        "monitors:\n  - {id: 1, name: a, message: 'to @webhook-ghost', query: 'logs(\"*\").rollup(\"count\").last(\"5m\") > 1'}\nwebhooks:\n  - {name: ops, url: 'http://127.0.0.1:9/hook'}\n  - {name: pager, url: 'http://127.0.0.1:9/page'}\n",
    )
    .await;
    // The file was loaded, its monitor with it.
    let (_, list) = get(&h, "/api/v1/monitor").await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");

    let q = r#"logs("*").rollup("count").last("5m") > 1"#;
    let (status, body) = send(
        &h,
        "POST",
        "/api/v1/monitor",
        json!({"name": "b", "query": q, "message": "hi @webhook-nosuch @webhook-ops"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let e = body["errors"][0].as_str().unwrap();
    assert!(e.contains("@webhook-nosuch"), "{e}");
    assert!(!e.contains("@webhook-ops"), "{e}");
    assert!(e.contains("ops, pager"), "{e}");
    let (_, list) = get(&h, "/api/v1/monitor").await;
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "refused, not created: {list}"
    );

    let (status, made) = send(
        &h,
        "POST",
        "/api/v1/monitor",
        json!({"name": "b", "query": q, "message": "hi @webhook-ops"}),
    )
    .await;
    assert_eq!(status, 200, "{made}");
    let id = made["id"].as_i64().unwrap();
    let (status, body) = send(
        &h,
        "PUT",
        &format!("/api/v1/monitor/{id}"),
        json!({"message": "now @webhook-nosuch"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["errors"][0]
        .as_str()
        .unwrap()
        .contains("@webhook-nosuch"));
    // An edit that leaves the file's message alone is not refused for it.
    let (status, body) = send(&h, "PUT", "/api/v1/monitor/1", json!({"tags": ["t:1"]})).await;
    assert_eq!(status, 200, "{body}");
}

const DELAYS: &str = r#"
monitors:
  - id: 1
    name: late logs
    query: 'logs("service:web status:error").rollup("count").by("host").last("5m") > 10'
    options: {evaluation_delay: 300}
  - id: 2
    name: new hosts wait
    query: 'logs("service:web status:error").rollup("count").by("host").last("5m") > 10'
    options: {new_group_delay: 600}
  - id: 3
    name: the deprecated name
    query: 'logs("service:web status:error").rollup("count").by("host").last("5m") > 10'
    options: {new_host_delay: 600}
"#;

fn group_status(m: &Value, group: &str) -> String {
    m["state"]["groups"][group]["status"]
        .as_str()
        .unwrap_or("-")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluation_delay_shifts_the_window_and_new_group_delay_holds_new_groups() {
    let h = harness(DELAYS).await;
    let t = base();
    let mons = h.intake.monitors().clone();
    // Host a errs in every 5-minute slice; host c joins in the third.
    for i in 0..4 {
        errors(&h, "a", 12, t + i * 5 * MIN).await;
    }
    errors(&h, "c", 12, t + 10 * MIN).await;
    errors(&h, "c", 12, t + 15 * MIN).await;

    let mut rows = Vec::new();
    for i in 1..=4i64 {
        let r = mons.evaluate_at(t + i * 5 * MIN).await.unwrap();
        assert_eq!(r.errors, 0);
        let (_, m1) = get(&h, "/api/v1/monitor/1").await;
        let (_, m2) = get(&h, "/api/v1/monitor/2").await;
        let (_, m3) = get(&h, "/api/v1/monitor/3").await;
        rows.push((
            group_status(&m1, "host:a"),
            group_status(&m2, "host:a"),
            group_status(&m2, "host:c"),
            group_status(&m3, "host:a"),
        ));
    }
    let want = [
        // delayed: [t-5m, t) is empty; new a held (tracked from t+5m)
        ("-", "OK", "-", "OK"),
        // delayed window [t, t+5m) holds 12; a tracked 5 of its 10 minutes
        ("Alert", "OK", "-", "OK"),
        // a tracked 10 minutes: alerts; c is new and held, though its count is the same
        ("Alert", "Alert", "OK", "Alert"),
        ("Alert", "Alert", "OK", "Alert"),
    ];
    let got: Vec<(&str, &str, &str, &str)> = rows
        .iter()
        .map(|(a, b, c, d)| (a.as_str(), b.as_str(), c.as_str(), d.as_str()))
        .collect();
    assert_eq!(got, want);
    // The held group's value is still recorded, and `evaluate` shows the same decision.
    let (_, m2) = get(&h, "/api/v1/monitor/2").await;
    assert_eq!(m2["state"]["groups"]["host:c"]["value"], 12.0, "{m2}");
    let (_, e) = send(
        &h,
        "POST",
        &format!("/api/v1/monitor/2/evaluate?now={}", t + 25 * MIN),
        json!({}),
    )
    .await;
    assert!(e.to_string().contains("host:c"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datadog_options_cairn_does_not_apply_are_kept_through_api_writes() {
    let h = harness("").await;
    let file = h.dir.path().join("monitors.yaml");
    let q = r#"logs("service:web").rollup("count").last("5m") > 100"#;
    // As Datadog exports a monitor: options Cairn acts on and some it only keeps.
    let (status, created) = send(
        &h,
        "POST",
        "/api/v1/monitor",
        json!({
            "name": "kept", "type": "log alert", "query": q,
            "options": {"thresholds": {"critical": 100}, "evaluation_delay": 60,
                        "new_group_delay": null, "include_tags": true, "notify_audit": false,
                        "escalation_message": "still down", "enable_logs_sample": true,
                        "groupby_simple_monitor": false}
        }),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["options"]["evaluation_delay"], 60);
    assert_eq!(created["options"]["escalation_message"], "still down");
    assert_eq!(created["options"]["include_tags"], true);

    // An edit of one option keeps the others, in the answer and in the file.
    let (status, edited) = send(
        &h,
        "PUT",
        &format!("/api/v1/monitor/{id}"),
        json!({"options": {"notify_audit": true}}),
    )
    .await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(edited["options"]["notify_audit"], true);
    assert_eq!(edited["options"]["escalation_message"], "still down");
    assert_eq!(edited["options"]["evaluation_delay"], 60);
    let text = std::fs::read_to_string(&file).unwrap();
    let back = cairn_intake::monitors::config::parse(&file, &text).unwrap();
    let o = &back.monitors[0].spec.options;
    assert_eq!(o.evaluation_delay, Some(60));
    assert_eq!(
        o.unapplied(),
        ["enable_logs_sample", "include_tags", "notify_audit"]
    );

    for (options, needle) in [
        (
            json!({"evaluation_delay": -1}),
            "options.evaluation_delay: -1 seconds is out of range",
        ),
        (
            json!({"new_group_delay": 90000}),
            "options.new_group_delay: 90000 seconds",
        ),
        (
            json!({"evaluation_delay": "5m"}),
            "options.evaluation_delay",
        ),
    ] {
        refused(&h, "/api/v1/monitor/validate", options, needle).await;
    }
}

const MISSING: &str = r#"
monitors:
  - id: 1
    name: told
    query: 'logs("service:web status:error").rollup("count").by("host").last("5m") > 10'
    message: "@webhook-rec"
    options: {on_missing_data: show_and_notify_no_data}
  - id: 2
    name: shown only
    query: 'logs("service:web status:error").rollup("count").by("host").last("5m") > 10'
    message: "@webhook-rec"
    options: {on_missing_data: show_no_data}
  - id: 3
    name: resolved
    query: 'logs("service:web status:error").rollup("max", "@n").by("host").last("5m") > 10'
    message: "@webhook-rec"
    options: {on_missing_data: resolve}
  - id: 4
    name: last state
    query: 'logs("service:web status:error").rollup("max", "@n").by("host").last("5m") > 10'
    message: "@webhook-rec"
    options: {on_missing_data: default, notify_no_data: true}
webhooks:
  - name: rec
    url: URL
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_missing_data_shows_notifies_resolves_or_keeps_the_last_state() {
    let (rec, h) = hooked(MISSING).await;
    let t = base();
    let mons = h.intake.monitors().clone();
    // Host a logs in the first and third 5-minute slices only.
    for slice in [0, 2] {
        let logs: Vec<Value> = (0..12)
            .map(|i| {
                json!({"message": "boom", "timestamp": t + slice * 5 * MIN + 1_000 + i * 100,
                       "service": "web", "status": "error", "hostname": "a", "n": 12})
            })
            .collect();
        h.ingest(&Value::Array(logs)).await;
    }
    let mut rows = Vec::new();
    for i in 1..=4i64 {
        mons.evaluate_at(t + i * 5 * MIN).await.unwrap();
        let mut row = Vec::new();
        for id in 1..=4 {
            let (_, m) = get(&h, &format!("/api/v1/monitor/{id}")).await;
            row.push(group_status(&m, "host:a"));
        }
        rows.push(row.join(" "));
    }
    assert_eq!(
        rows,
        [
            "Alert Alert Alert Alert",
            // a silent for one window: No Data (told, or only shown), OK, or as it was
            "No Data No Data OK Alert",
            "Alert Alert Alert Alert",
            "No Data No Data OK Alert",
        ]
    );
    // Monitor 1 tells every transition; monitor 2 only its alerts; 3 its alerts and
    // recoveries; 4 only its first alert (on_missing_data wins over notify_no_data).
    rec.wait_for(11).await;
    // A twelfth, which must not come, would come about as soon.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let bodies: Vec<Value> = rec
        .got
        .lock()
        .unwrap()
        .iter()
        .map(|x| x.1.clone())
        .collect();
    let told = |id: i64| -> Vec<String> {
        let mut v: Vec<(i64, String)> = bodies
            .iter()
            .filter(|b| b["monitor_id"] == id)
            .map(|b| {
                (
                    b["date_ms"].as_i64().unwrap(),
                    b["to"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        v.sort();
        v.into_iter().map(|x| x.1).collect()
    };
    assert_eq!(
        told(1),
        ["Alert", "No Data", "Alert", "No Data"],
        "{bodies:?}"
    );
    assert_eq!(told(2), ["Alert", "Alert"], "{bodies:?}");
    assert_eq!(told(3), ["Alert", "OK", "Alert", "OK"], "{bodies:?}");
    assert_eq!(told(4), ["Alert"], "{bodies:?}");

    refused(
        &h,
        "/api/v1/monitor/validate",
        json!({"on_missing_data": "ignore"}),
        "options.on_missing_data: \"ignore\" is not one of default, show_no_data, show_and_notify_no_data, resolve",
    )
    .await;
}

const TIMEOUT: &str = r#"
monitors:
  - id: 1
    name: resolves after an hour
    query: 'logs("service:web status:error").rollup("max", "@n").by("host").last("5m") > 10'
    message: "@webhook-rec"
    options: {timeout_h: 1, renotify_interval: 10, renotify_statuses: [warn]}
  - id: 2
    name: renotified
    query: 'logs("service:web status:error").rollup("max", "@n").by("host").last("5m") > 10'
    message: "@webhook-rec"
    options: {renotify_interval: 10, renotify_statuses: [alert], escalation_message: "ESCALATED {{group}}"}
  - id: 3
    name: renotified twice
    query: 'logs("service:web status:error").rollup("max", "@n").by("host").last("5m") > 10'
    message: "@webhook-rec"
    options: {renotify_interval: 10, renotify_occurrences: 2}
webhooks:
  - name: rec
    url: URL
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_h_resolves_a_silent_alert_and_renotify_statuses_choose_what_is_repeated() {
    let (rec, h) = hooked(TIMEOUT).await;
    let t = base();
    let mons = h.intake.monitors().clone();
    let logs: Vec<Value> = (0..3)
        .map(|i| {
            json!({"message": "boom", "timestamp": t + 1_000 + i * 100, "service": "web",
                   "status": "error", "hostname": "a", "n": 12})
        })
        .collect();
    h.ingest(&Value::Array(logs)).await;
    let mut rows = Vec::new();
    // Rounds at 5, 15, 25, … 65 minutes: the last is an hour after the round that saw logs.
    for minute in [5i64, 15, 25, 35, 45, 55, 65] {
        mons.evaluate_at(t + minute * MIN).await.unwrap();
        let (_, m1) = get(&h, "/api/v1/monitor/1").await;
        let (_, m2) = get(&h, "/api/v1/monitor/2").await;
        rows.push(format!(
            "{} {}",
            group_status(&m1, "host:a"),
            group_status(&m2, "host:a")
        ));
    }
    assert_eq!(
        rows,
        [
            "Alert Alert",
            "Alert Alert",
            "Alert Alert",
            "Alert Alert",
            "Alert Alert",
            "Alert Alert",
            "OK Alert"
        ]
    );
    // Monitor 1: its alert and its recovery (alerts are not among its renotify statuses);
    // monitor 2: its alert and a renotification every 10 minutes.
    rec.wait_for(12).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let bodies: Vec<Value> = rec
        .got
        .lock()
        .unwrap()
        .iter()
        .map(|x| x.1.clone())
        .collect();
    let got: Vec<(i64, String)> = bodies
        .iter()
        .map(|b| {
            (
                b["monitor_id"].as_i64().unwrap(),
                b["transition"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    // The escalation message is added to re-notifications only.
    for b in bodies.iter().filter(|b| b["monitor_id"] == 2) {
        let escalated = b["message"] == "@webhook-rec\n\nESCALATED host:a";
        assert_eq!(escalated, b["is_renotify"] == true, "{b}");
    }
    let of = |id: i64| -> Vec<&str> {
        got.iter()
            .filter(|(m, _)| *m == id)
            .map(|(_, t)| t.as_str())
            .collect()
    };
    assert_eq!(of(1), ["Triggered", "Recovered"], "{got:?}");
    assert_eq!(
        of(2),
        [
            "Triggered",
            "Renotify",
            "Renotify",
            "Renotify",
            "Renotify",
            "Renotify",
            "Renotify"
        ],
        "{got:?}"
    );
    // Monitor 3: renotify_occurrences stops the repeats at two.
    assert_eq!(of(3), ["Triggered", "Renotify", "Renotify"], "{got:?}");

    for (options, needle) in [
        (
            json!({"timeout_h": 25}),
            "options.timeout_h: 25 hours is out of range: 0 to 24",
        ),
        (
            json!({"renotify_statuses": ["alert", "ok"]}),
            "options.renotify_statuses: \"ok\" is not one of alert, warn, no data",
        ),
        (
            json!({"renotify_occurrences": 0}),
            "options.renotify_occurrences: 0 must be at least 1",
        ),
        (
            json!({"escalation_message": "@webhook-nope"}),
            "options.escalation_message: @webhook-nope names no configured webhook; the webhooks configured: rec",
        ),
    ] {
        refused(&h, "/api/v1/monitor", options, needle).await;
    }
}
