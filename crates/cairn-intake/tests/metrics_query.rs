//! Issue 9 item 3: `GET /api/v1/query` over a store filled with known points, through a real
//! intake over HTTP. Each row of the table is a query and the series it must answer with.

mod common;

use common::*;
use serde_json::{json, Value};

/// A start time aligned to 600 s, so that buckets of 1, 10, 15 and 30 s all start on it.
fn t0() -> i64 {
    let now_s = now_ms() / 1000;
    (now_s - 3_600).div_euclid(600) * 600
}

/// `(host, device, tags, [(offset s, value)])`.
type Ctx<'a> = (&'a str, &'a str, &'a [&'a str], &'a [(i64, f64)]);

fn series(metric: &str, kind: i64, interval: i64, t0: i64, contexts: &[Ctx]) -> Vec<Value> {
    contexts
        .iter()
        .map(|(host, device, tags, points)| {
            let mut resources = vec![json!({"type": "host", "name": host})];
            if !device.is_empty() {
                resources.push(json!({"type": "device", "name": device}));
            }
            json!({
                "metric": metric,
                "type": kind,
                "interval": interval,
                "resources": resources,
                "tags": tags,
                "points": points.iter().map(|(o, v)| json!({"timestamp": t0 + o, "value": v})).collect::<Vec<_>>(),
            })
        })
        .collect()
}

async fn fill(h: &Harness, t0: i64) {
    let mut all = Vec::new();
    // Gauges: three contexts, one with a device, one with a bare tag.
    all.extend(series(
        "app.load",
        3,
        0,
        t0,
        &[
            (
                "a",
                "",
                &["env:prod", "role:web", "canary"],
                &[(0, 1.0), (10, 3.0), (20, 5.0)],
            ),
            (
                "b",
                "",
                &["env:prod", "role:db"],
                &[(0, 2.0), (10, 4.0), (20, 6.0)],
            ),
            (
                "c",
                "sda",
                &["env:dev", "role:web"],
                &[(0, 10.0), (20, 20.0)],
            ),
        ],
    ));
    // Counts flushed every 10 s.
    all.extend(series(
        "app.requests",
        1,
        10,
        t0,
        &[
            ("a", "", &["env:prod"], &[(0, 10.0), (10, 20.0), (20, 30.0)]),
            ("b", "", &["env:prod"], &[(0, 5.0), (10, 5.0), (20, 5.0)]),
        ],
    ));
    // A rate (per second) flushed every 10 s.
    all.extend(series(
        "app.bytes",
        2,
        10,
        t0,
        &[("a", "", &["env:prod"], &[(0, 1.5), (10, 2.5)])],
    ));
    // A check's rate: no interval sent (as the Agent sends check series), one point per run
    // of 15 s.
    all.extend(series(
        "app.check_rate",
        2,
        0,
        t0,
        &[
            ("a", "", &[], &[(0, 2.0), (15, 4.0)]),
            ("b", "", &[], &[(5, 1.0)]),
        ],
    ));
    let (status, body) = h
        .post_raw(
            "/api/v2/series",
            None,
            serde_json::to_vec(&json!({ "series": all })).unwrap(),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"errors": []})
    );
}

async fn get(h: &Harness, path: &str, params: &[(&str, String)]) -> (u16, Value) {
    let resp = h.http.get(h.url(path)).query(params).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn query(h: &Harness, from: i64, to: i64, q: &str) -> (u16, Value) {
    get(
        h,
        "/api/v1/query",
        &[
            ("from", from.to_string()),
            ("to", to.to_string()),
            ("query", q.to_owned()),
        ],
    )
    .await
}

/// A series as answered: its tag set and `(offset s, value)` points.
type Got = (Vec<String>, Vec<(i64, f64)>);

/// `(tag_set, [(offset s, value)])` per expected series, in answer order.
type Expected<'a> = &'a [(&'a [&'a str], &'a [(i64, f64)])];

#[tokio::test(flavor = "multi_thread")]
async fn the_query_table_answers_the_expected_series() {
    let h = Harness::start().await;
    let t0 = t0();
    fill(&h, t0).await;
    // Over [t0, t0+29] the interval is 1 s: every point is its own bucket.
    let table: Vec<(&str, Expected)> = vec![
        (
            "avg:app.load{*}",
            &[(&[], &[(0, 13.0 / 3.0), (10, 3.5), (20, 31.0 / 3.0)])],
        ),
        (
            "sum:app.load{*}",
            &[(&[], &[(0, 13.0), (10, 7.0), (20, 31.0)])],
        ),
        (
            "min:app.load{*}",
            &[(&[], &[(0, 1.0), (10, 3.0), (20, 5.0)])],
        ),
        (
            "max:app.load{*}",
            &[(&[], &[(0, 10.0), (10, 4.0), (20, 20.0)])],
        ),
        (
            "avg:app.load{env:prod}",
            &[(&[], &[(0, 1.5), (10, 3.5), (20, 5.5)])],
        ),
        (
            "sum:app.load{!env:prod}",
            &[(&[], &[(0, 10.0), (20, 20.0)])],
        ),
        (
            "sum:app.load{*} by {host}",
            &[
                (&["host:a"], &[(0, 1.0), (10, 3.0), (20, 5.0)]),
                (&["host:b"], &[(0, 2.0), (10, 4.0), (20, 6.0)]),
                (&["host:c"], &[(0, 10.0), (20, 20.0)]),
            ],
        ),
        (
            "max:app.load{role:web} by {env}",
            &[
                (&["env:dev"], &[(0, 10.0), (20, 20.0)]),
                (&["env:prod"], &[(0, 1.0), (10, 3.0), (20, 5.0)]),
            ],
        ),
        (
            "sum:app.load{host:a}",
            &[(&[], &[(0, 1.0), (10, 3.0), (20, 5.0)])],
        ),
        (
            "sum:app.load{host:b*}",
            &[(&[], &[(0, 2.0), (10, 4.0), (20, 6.0)])],
        ),
        (
            "sum:app.load{!host:a}",
            &[(&[], &[(0, 12.0), (10, 4.0), (20, 26.0)])],
        ),
        (
            "sum:app.load{device:sda}",
            &[(&[], &[(0, 10.0), (20, 20.0)])],
        ),
        (
            "sum:app.load{*} by {device}",
            &[
                (&["device:N/A"], &[(0, 3.0), (10, 7.0), (20, 11.0)]),
                (&["device:sda"], &[(0, 10.0), (20, 20.0)]),
            ],
        ),
        (
            "sum:app.load{env:prod,role:web}",
            &[(&[], &[(0, 1.0), (10, 3.0), (20, 5.0)])],
        ),
        (
            "sum:app.load{ env:prod , role:web }",
            &[(&[], &[(0, 1.0), (10, 3.0), (20, 5.0)])],
        ),
        (
            "sum:app.load{env:pr*}",
            &[(&[], &[(0, 3.0), (10, 7.0), (20, 11.0)])],
        ),
        (
            "sum:app.load{role:web,!host:c}",
            &[(&[], &[(0, 1.0), (10, 3.0), (20, 5.0)])],
        ),
        (
            "sum:app.load{canary}",
            &[(&[], &[(0, 1.0), (10, 3.0), (20, 5.0)])],
        ),
        (
            "sum:app.load{!canary}",
            &[(&[], &[(0, 12.0), (10, 4.0), (20, 26.0)])],
        ),
        ("sum:app.load{nosuch:tag}", &[]),
        ("sum:no.such.metric{*}", &[]),
        (
            "sum:app.load{*} by {role}",
            &[
                (&["role:db"], &[(0, 2.0), (10, 4.0), (20, 6.0)]),
                (&["role:web"], &[(0, 11.0), (10, 3.0), (20, 25.0)]),
            ],
        ),
        (
            "sum:app.load{*} by {host,env}",
            &[
                (&["host:a", "env:prod"], &[(0, 1.0), (10, 3.0), (20, 5.0)]),
                (&["host:b", "env:prod"], &[(0, 2.0), (10, 4.0), (20, 6.0)]),
                (&["host:c", "env:dev"], &[(0, 10.0), (20, 20.0)]),
            ],
        ),
        // Time rollups over one 30 s bucket.
        ("avg:app.load{*}.rollup(sum, 30)", &[(&[], &[(0, 17.0)])]),
        ("max:app.load{*}.rollup(max, 30)", &[(&[], &[(0, 20.0)])]),
        ("min:app.load{*}.rollup(min, 30)", &[(&[], &[(0, 1.0)])]),
        ("sum:app.load{*}.rollup(avg, 30)", &[(&[], &[(0, 22.0)])]),
        (
            "avg:app.load{*}.rollup(avg, 10)",
            &[(&[], &[(0, 13.0 / 3.0), (10, 3.5), (20, 31.0 / 3.0)])],
        ),
        // Counts: summed in time by default; as_rate divides by the bucket's seconds.
        (
            "sum:app.requests{*}",
            &[(&[], &[(0, 15.0), (10, 25.0), (20, 35.0)])],
        ),
        (
            "sum:app.requests{*}.rollup(sum, 30)",
            &[(&[], &[(0, 75.0)])],
        ),
        (
            "sum:app.requests{*}.as_rate().rollup(sum, 30)",
            &[(&[], &[(0, 2.5)])],
        ),
        (
            "sum:app.requests{*}.as_rate()",
            &[(&[], &[(0, 15.0), (10, 25.0), (20, 35.0)])],
        ),
        (
            "sum:app.requests{*}.as_count().rollup(sum, 30)",
            &[(&[], &[(0, 75.0)])],
        ),
        (
            "avg:app.requests{*} by {host}.as_count()",
            &[
                (&["host:a"], &[(0, 10.0), (10, 20.0), (20, 30.0)]),
                (&["host:b"], &[(0, 5.0), (10, 5.0), (20, 5.0)]),
            ],
        ),
        // Rates: per second by default; as_count multiplies by the series' interval.
        ("sum:app.bytes{*}", &[(&[], &[(0, 1.5), (10, 2.5)])]),
        (
            "sum:app.bytes{*}.as_rate()",
            &[(&[], &[(0, 1.5), (10, 2.5)])],
        ),
        (
            "sum:app.bytes{*}.as_count()",
            &[(&[], &[(0, 15.0), (10, 25.0)])],
        ),
        (
            "sum:app.bytes{*}.as_count().rollup(sum, 30)",
            &[(&[], &[(0, 40.0)])],
        ),
        ("avg:app.bytes{*}.rollup(avg, 30)", &[(&[], &[(0, 2.0)])]),
        // Without an interval, a rate's value stands for the gap between its points (15 s),
        // or, for a lone point, for the bucket (30 s).
        (
            "sum:app.check_rate{host:a}.as_count().rollup(sum, 30)",
            &[(&[], &[(0, 90.0)])],
        ),
        (
            "sum:app.check_rate{host:b}.as_count().rollup(sum, 30)",
            &[(&[], &[(0, 30.0)])],
        ),
        // Gauges ignore as_count/as_rate, as at Datadog.
        (
            "sum:app.load{host:a}.as_count()",
            &[(&[], &[(0, 1.0), (10, 3.0), (20, 5.0)])],
        ),
        // Several queries: the series of each, in order.
        (
            "sum:app.load{host:a}, sum:app.bytes{*}",
            &[
                (&[], &[(0, 1.0), (10, 3.0), (20, 5.0)]),
                (&[], &[(0, 1.5), (10, 2.5)]),
            ],
        ),
    ];
    assert!(table.len() >= 30);
    let mut failures = Vec::new();
    for (q, expected) in &table {
        let (status, body) = query(&h, t0, t0 + 29, q).await;
        if status != 200 {
            failures.push(format!("{q}: status {status}: {body}"));
            continue;
        }
        let got: Vec<Got> = body["series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let tags = s["tag_set"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_str().unwrap().to_owned())
                    .collect();
                let points = s["pointlist"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| {
                        let ms = p[0].as_f64().unwrap() as i64;
                        (ms / 1000 - t0, p[1].as_f64().unwrap())
                    })
                    .collect();
                (tags, points)
            })
            .collect();
        let same = got.len() == expected.len()
            && got.iter().zip(expected.iter()).all(|((gt, gp), (et, ep))| {
                gt == et
                    && gp.len() == ep.len()
                    && gp
                        .iter()
                        .zip(ep.iter())
                        .all(|(g, e)| g.0 == e.0 && (g.1 - e.1).abs() < 1e-9)
            });
        if !same {
            failures.push(format!("{q}:\n  expected {expected:?}\n  got      {got:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} queries wrong:\n{}",
        failures.len(),
        table.len(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_answer_has_datadogs_shape_and_picks_its_interval() {
    let h = Harness::start().await;
    let t0 = t0();
    fill(&h, t0).await;
    let (status, body) = query(
        &h,
        t0,
        t0 + 29,
        "sum:app.load{env:prod} by {host}.as_count()",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["res_type"], "time_series");
    assert_eq!(body["from_date"], t0 * 1000);
    assert_eq!(body["to_date"], (t0 + 29) * 1000);
    assert_eq!(body["query"], "sum:app.load{env:prod} by {host}.as_count()");
    let s = &body["series"][0];
    assert_eq!(s["metric"], "app.load");
    assert_eq!(s["display_name"], "app.load");
    assert_eq!(s["scope"], "env:prod,host:a");
    assert_eq!(s["expression"], "sum:app.load{env:prod,host:a}.as_count()");
    assert_eq!(s["tag_set"], json!(["host:a"]));
    assert_eq!(s["aggr"], "sum");
    assert_eq!(s["interval"], 1);
    assert_eq!(s["length"], 3);
    assert_eq!(s["start"], t0 * 1000);
    assert_eq!(s["end"], (t0 + 20) * 1000);
    assert_eq!(s["unit"], Value::Null);
    assert_eq!(s["query_index"], 0);
    // Over an hour the interval is 15 s (240 buckets, at most 300); the gauge is averaged
    // within each bucket.
    let (_, body) = query(&h, t0 + 29 - 3_599, t0 + 29, "sum:app.load{host:a}").await;
    let s = &body["series"][0];
    assert_eq!(s["interval"], 15);
    assert_eq!(
        s["pointlist"],
        json!([[(t0 * 1000) as f64, 2.0], [((t0 + 15) * 1000) as f64, 5.0]])
    );
    // Outside the points' range: no series.
    let (_, body) = query(&h, t0 + 100, t0 + 200, "sum:app.load{*}").await;
    assert_eq!(body["series"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_queries_are_400_naming_the_column() {
    let h = Harness::start().await;
    let t0 = t0();
    for (q, needle) in [
        ("median:app.load{*}", "column 1"),
        ("avg:app.load{*", "column 14"),
        ("avg:app.load{*} by {host", "column 24"),
        ("avg:app.load{*}.as_cnt()", "column 17"),
        ("avg:app.load{a:b,,c:d}", "column 18"),
        ("avg:app.load{*}.rollup(avg, 0)", "column 29"),
    ] {
        let (status, body) = query(&h, t0, t0 + 60, q).await;
        assert_eq!(status, 400, "{q}: {body}");
        let msg = body["errors"][0].as_str().unwrap_or_default();
        assert!(msg.contains(needle), "{q}: {msg}");
    }
    // Parameters.
    let (status, body) = get(&h, "/api/v1/query", &[("query", "avg:x{*}".into())]).await;
    assert_eq!(status, 400);
    assert!(
        body["errors"][0].as_str().unwrap().contains("from"),
        "{body}"
    );
    let (status, body) = query(&h, t0 + 60, t0, "avg:x{*}").await;
    assert_eq!(status, 400);
    assert!(
        body["errors"][0].as_str().unwrap().contains("after"),
        "{body}"
    );
    // A rollup that would make too many points.
    let (status, body) = query(&h, t0 - 86_400, t0, "avg:x{*}.rollup(avg, 1)").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["errors"][0].as_str().unwrap().contains("1500"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn active_metric_names_and_search_list_what_was_sent() {
    let h = Harness::start().await;
    let t0 = t0();
    fill(&h, t0).await;
    let (status, body) = get(&h, "/api/v1/metrics", &[("from", (t0 - 60).to_string())]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["metrics"],
        json!(["app.bytes", "app.check_rate", "app.load", "app.requests"])
    );
    assert_eq!(body["from"], (t0 - 60).to_string());
    // Nothing since after the last point.
    let (_, body) = get(&h, "/api/v1/metrics", &[("from", (t0 + 100).to_string())]).await;
    assert_eq!(body["metrics"], json!([]));
    let (_, body) = get(&h, "/api/v1/search", &[("q", "metrics:app.l".into())]).await;
    assert_eq!(body, json!({"results": {"metrics": ["app.load"]}}));
    let (_, body) = get(&h, "/api/v1/search", &[("q", "hosts:".into())]).await;
    assert_eq!(body, json!({"results": {"hosts": ["a", "b", "c"]}}));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_by_that_would_explode_is_refused_not_built() {
    let h = Harness::start().await;
    let t0 = t0();
    // One context with 200 values of `k`: by {k,k} would be 40,000 groups.
    let tags: Vec<String> = (0..200).map(|i| format!("k:{i}")).collect();
    let body = json!({"series": [{"metric": "wide", "type": 3, "tags": tags,
        "points": [{"timestamp": t0, "value": 1}]}]});
    let (status, text) = h
        .post_raw("/api/v2/series", None, serde_json::to_vec(&body).unwrap())
        .await;
    assert_eq!(status, 202, "{text}");
    let (status, body) = query(&h, t0, t0 + 29, "sum:wide{*} by {k}").await;
    assert_eq!(status, 200);
    assert_eq!(body["series"].as_array().unwrap().len(), 200);
    let (status, body) = query(&h, t0, t0 + 29, "sum:wide{*} by {k,k}").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["errors"][0].as_str().unwrap().contains("10000 groups"),
        "{body}"
    );
}
