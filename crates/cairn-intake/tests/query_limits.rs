//! Query limits over HTTP: any web page can make a browser send a query (an `<img>`, a link to
//! `/#q=`), so a hostile one must get a 400 that names the limit and the column, never a
//! crash or a 500, on every route that takes a query.

mod common;

use common::*;
use serde_json::json;

fn search_body(query: &str) -> serde_json::Value {
    json!({"filter": {"query": query, "from": "now-1d", "to": "now+1h"}, "page": {"limit": 10}})
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_queries_are_400s_that_name_the_limit_and_the_intake_stays_up() {
    let h = Harness::start().await;
    h.ingest(&json!([{"message": "hello", "service": "web", "timestamp": now_ms()}]))
        .await;
    let many_ors = (0..999)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" OR ");
    // Short words, so that these stay under the length limit and hit the term limit.
    let many_nots = vec!["-a"; 3000].join(" ");
    let many_values = format!("service:({})", vec!["s"; 5000].join(" "));
    let cases: Vec<(String, &str)> = vec![
        (
            "(".repeat(2000) + "a" + &")".repeat(2000),
            "nesting deeper than 64",
        ),
        ("NOT ".repeat(3000) + "a", "nesting deeper than 64"),
        ("-".repeat(3000) + "a", "nesting deeper than 64"),
        (many_ors, "more than 500 terms"),
        (many_nots, "more than 500 terms"),
        (many_values, "more than 500 terms"),
        ("a".repeat(20_000), "longer than 16384 characters"),
    ];
    for (query, want) in &cases {
        let (status, body) = h
            .api_status("/api/v2/logs/events/search", search_body(query))
            .await;
        assert_eq!(status, 400, "{want}: {body}");
        let text = body.to_string();
        assert!(text.contains(want), "{want}: {text}");
        assert!(text.contains("column"), "the column is named: {text}");
        let (status, body) = h
            .api_status(
                "/api/v2/logs/analytics/aggregate",
                json!({"filter": {"query": query, "from": "now-1d", "to": "now+1h"}, "compute": [{"aggregation": "count"}]}),
            )
            .await;
        assert_eq!(status, 400, "aggregate {want}: {body}");
        let resp = h
            .http
            .get(h.url("/api/v2/logs/events/tail"))
            .query(&[("query", query.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400, "tail {want}");
    }
    // Within the limits, real queries still work.
    let ok = (0..400)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" OR ")
        + " OR hello";
    assert_eq!(h.search(&ok).await.len(), 1);
    let nested = "(".repeat(60) + "hello" + &")".repeat(60);
    assert_eq!(h.search(&nested).await.len(), 1);
    assert_eq!(h.search("service:web").await.len(), 1);
}
