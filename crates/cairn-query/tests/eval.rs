//! The in-memory evaluation agrees with what a search finds: one table of query, log, verdict.

use cairn_query::eval::{matches, PlainLog};
use serde_json::json;

fn log() -> PlainLog {
    PlainLog {
        message: "GET /api/users 200 took 12ms — Connection reset by peer at the Café, deja vu"
            .into(),
        status: "error".into(),
        host: "web-1".into(),
        service: "checkout".into(),
        source: "nginx".into(),
        tags: vec!["env:prod".into(), "team:payments".into(), "canary".into()],
        attributes: json!({
            "http": {"status_code": 200, "method": "GET", "url": "/api/users"},
            "duration": 12.5,
            "retries": "3",
            "ok": true,
            "nothing": null,
            "users": ["alice", "bob"],
            "codes": [1, 2, 3],
            "a.b": "dotted key"
        })
        .as_object()
        .expect("an object")
        .clone(),
    }
}

#[test]
fn queries_select_the_logs_a_search_would_find() {
    let l = log();
    let table: &[(&str, bool)] = &[
        // empty and match-all
        ("", true),
        ("*", true),
        // free text: whole words, case-insensitive, phrases in order
        ("connection", true),
        ("CONNECTION", true),
        ("connect", false),
        ("connect*", true),
        ("\"connection reset\"", true),
        ("\"reset connection\"", false),
        ("\"by peer\"", true),
        ("users", true),
        ("/api/users", true),
        ("*reset by*", true),
        ("*RESET BY*", true),
        ("*api/u?ers*", true),
        ("missing", false),
        ("—", true),
        ("café", true),
        ("CAFE", true),
        ("\"déjà vu\"", true),
        ("cafés", false),
        // reserved fields are exact
        ("service:checkout", true),
        ("service:Checkout", false),
        ("service:check*", true),
        ("service:*", true),
        ("host:web-1", true),
        ("host:web-?", true),
        ("source:nginx", true),
        ("source:apache", false),
        // status is folded on both sides
        ("status:error", true),
        ("status:ERROR", true),
        ("status:err", true),
        ("status:warn", false),
        ("status:e*", true),
        // tags
        ("env:prod", true),
        ("env:staging", false),
        ("env:pro*", true),
        ("env:*", true),
        ("region:*", false),
        ("team:payments", true),
        // attributes: strings, numbers, booleans, arrays, presence
        ("@http.method:GET", true),
        ("@http.method:get", false),
        ("@http.status_code:200", true),
        ("@http.status_code:200.0", true),
        ("@http.status_code:404", false),
        ("@http.status_code:>199", true),
        ("@http.status_code:>=200", true),
        ("@http.status_code:<200", false),
        ("@http.status_code:[200 TO 299]", true),
        ("@http.status_code:{200 TO 299]", false),
        ("@http.status_code:[* TO 100]", false),
        ("@duration:>12", true),
        ("@duration:[12 TO 13]", true),
        ("@retries:3", true),
        ("@retries:>1", false),
        ("@ok:true", true),
        ("@ok:false", false),
        ("@nothing:*", true),
        ("@absent:*", false),
        ("@http:*", true),
        ("@users:bob", true),
        ("@users:carol", false),
        ("@codes:2", true),
        ("@http.url:/api/*", true),
        ("@http.status_code:2*", true),
        ("@a\\.b:\"dotted key\"", true),
        // boolean structure
        ("service:checkout AND env:prod", true),
        ("service:checkout env:staging", false),
        ("service:web OR env:prod", true),
        ("-env:prod", false),
        ("NOT env:staging", true),
        ("-@absent:*", true),
        (
            "(service:web OR service:checkout) AND @http.status_code:>=200",
            true,
        ),
        ("service:(web OR checkout)", true),
    ];
    let mut wrong = Vec::new();
    for (query, want) in table {
        let node = cairn_query::parse(query).unwrap_or_else(|e| panic!("{query}: {e}"));
        if matches(&node, &l) != *want {
            wrong.push(format!("{query:?} should be {want}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn an_unfolded_status_is_folded_before_comparing() {
    let mut l = log();
    l.status = "WARNING".into();
    let node = cairn_query::parse("status:warn").expect("parses");
    assert!(matches(&node, &l));
}

#[test]
fn an_empty_reserved_field_is_absent() {
    let mut l = log();
    l.service.clear();
    let node = cairn_query::parse("service:*").expect("parses");
    assert!(!matches(&node, &l));
    let node = cairn_query::parse("-service:*").expect("parses");
    assert!(matches(&node, &l));
}
