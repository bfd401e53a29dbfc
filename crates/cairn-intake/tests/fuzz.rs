//! Bounded property tests of what a stranger controls: the query text (any web page can make a
//! browser send one) and the ingest body. Neither may panic, overflow the stack, or earn a 5xx:
//! every refusal is the sender's fault, a 4xx.
//!
//! Case counts are set so that the whole file runs in well under a minute in a debug build on
//! two cores. For a longer run set `PROPTEST_CASES` (each property then runs that many cases),
//! e.g. `PROPTEST_CASES=20000 cargo test -p cairn-intake --release --test fuzz`.

mod common;

use std::io::Write;

use cairn_intake::ingest::{self, Encoding, Reject};
use cairn_intake::query::{self, Sql, TextMode};
use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::json;

/// `default` cases, or `PROPTEST_CASES` when set.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn config(default: u32) -> Config {
    Config {
        cases: cases(default),
        // A failure prints its minimal input; the suite keeps no regression files in the tree.
        failure_persistence: None,
        ..Config::default()
    }
}

// ---- Query text.

/// Pieces of the query language, and pieces that look like it but are not.
const FRAGMENTS: &[&str] = &[
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "\"",
    "\\",
    ":",
    "@",
    "*",
    "?",
    ">",
    "<",
    ">=",
    "<=",
    "-",
    "--",
    "NOT",
    "AND",
    "OR",
    "TO",
    "&&",
    "||",
    "not",
    "and",
    "or",
    "to",
    "*:*",
    "@:",
    ":x",
    "@.",
    "@a.",
    "@a..b",
    "@a.\"b",
    "\\:",
    "\\*",
    "\\\\",
    "\\\"",
    "\\ ",
    "a\\",
    "service:",
    "status:",
    "host:",
    "source:",
    "env:prod",
    "status:ERROR",
    "status:warn*",
    "service:web",
    "host:db*",
    "@http.status_code:500",
    "@duration_ms:>100",
    "@duration_ms:>=-1.5e3",
    "@n:<1e308",
    "@n:>1e999",
    "@n:>NaN",
    "@n:>inf",
    "@n:[1 TO 5]",
    "@n:{* TO 10]",
    "@n:[-5 TO *}",
    "@n:[a TO b]",
    "@n:[1 5]",
    "@n:[1 TO",
    "[1 TO 5]",
    "service:(web OR api)",
    "@list:(1 OR two)",
    "@flag:true",
    "@flag:false",
    "w?r*",
    "*o*",
    "?",
    "**",
    "hel*",
    "日本*",
    "\"timed out\"",
    "\"a \\\" b\"",
    "\"unclosed",
    "é",
    "日本語",
    "\u{202E}",
    "\u{0}",
    "\u{FEFF}",
    "\u{10FFFF}",
    "e\u{301}",
    "🦀",
    "\u{2028}",
    "'",
    "%",
    "_",
    "%_\\",
    "$.\"a\"",
    "?1",
    "'; DROP TABLE logs; --",
    "\"\"",
    "\" \"",
    "-)",
    "-(",
    "()",
    "(a",
    "a)",
    "a:b:c",
    "@a:b:c",
];

fn fragment() -> impl Strategy<Value = String> {
    prop::sample::select(FRAGMENTS).prop_map(str::to_owned)
}

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9_.*?]{1,8}",
        "[a-z]{1,6}[:][a-z0-9*]{0,6}",
        "@[a-z]{1,5}(\\.[a-z]{1,5}){0,3}:[a-z0-9<>=.*-]{1,6}",
        // Any characters but controls, and then any characters at all.
        "\\PC{1,6}",
        prop::collection::vec(any::<char>(), 1..6).prop_map(|c| c.into_iter().collect()),
    ]
}

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(
            &[
                "service",
                "status",
                "host",
                "source",
                "env",
                "@a",
                "@http.status_code",
                "@list",
                "@n"
            ][..]
        )
        .prop_map(str::to_owned),
        "@?[a-z]{1,6}",
    ]
}

fn atom() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => fragment(),
        3 => word(),
        1 => "[a-z \\\\\"*?:()]{0,10}".prop_map(|s| format!("\"{s}\"")),
        1 => (field_name(), word()).prop_map(|(f, w)| format!("{f}:{w}")),
        1 => (field_name(), any::<f64>(), any::<f64>(), any::<bool>(), any::<bool>()).prop_map(
            |(f, lo, hi, a, b)| format!("{f}:{}{lo} TO {hi}{}", if a { '[' } else { '{' }, if b { ']' } else { '}' })
        ),
    ]
}

/// Queries built like real ones: nested groups, negations, operators, field groups.
fn structured() -> impl Strategy<Value = String> {
    atom().prop_recursive(6, 48, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(|e| format!("({e})")),
            inner.clone().prop_map(|e| format!("NOT {e}")),
            inner.clone().prop_map(|e| format!("-{e}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} AND {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} OR {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} {b}")),
            (field_name(), inner).prop_map(|(f, e)| format!("{f}:({e})")),
        ]
    })
}

/// Tokens in any order, with or without space between them.
fn soup() -> impl Strategy<Value = String> {
    let sep = prop::sample::select(&["", " ", " ", "  ", "\t", "\n", "\u{3000}"][..]);
    prop::collection::vec((atom(), sep), 0..40).prop_map(|parts| {
        parts
            .into_iter()
            .flat_map(|(a, s)| [a, s.to_owned()])
            .collect()
    })
}

/// Nesting and repetition far past the parser's limits, balanced or not.
fn deep() -> impl Strategy<Value = String> {
    (0usize..3000, 0u8..9, atom()).prop_map(|(n, kind, a)| match kind {
        0 => "(".repeat(n) + &a + &")".repeat(n),
        1 => "NOT ".repeat(n) + &a,
        2 => "-".repeat(n) + &a,
        3 => "(".repeat(n) + &a,
        4 => a + &")".repeat(n),
        5 => format!("service:({}{a}{})", "(".repeat(n), ")".repeat(n)),
        6 => format!("{}{a}", "a OR ".repeat(n)),
        7 => format!("{}{a}{}", "-(".repeat(n), ")".repeat(n)),
        _ => format!("{}{a}", "\\".repeat(n)),
    })
}

/// A structured query with characters inserted and deleted at random places.
fn mutated() -> impl Strategy<Value = String> {
    let edit = (
        any::<prop::sample::Index>(),
        prop::option::of(any::<char>()),
    );
    (structured(), prop::collection::vec(edit, 1..6)).prop_map(|(q, edits)| {
        let mut chars: Vec<char> = q.chars().collect();
        for (at, insert) in edits {
            let i = at.index(chars.len() + 1);
            match insert {
                Some(c) => chars.insert(i, c),
                None if i < chars.len() => {
                    chars.remove(i);
                }
                None => {}
            }
        }
        chars.into_iter().collect()
    })
}

fn any_query() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => any::<String>(),
        3 => structured(),
        3 => soup(),
        1 => deep(),
        2 => mutated(),
    ]
}

/// The parser's contract: a tree, or an error whose column points into the query; and a tree
/// always translates to SQL whose placeholders are exactly its parameters.
fn check_query(q: &str) -> Result<(), TestCaseError> {
    let len = q.chars().count();
    match query::parse(q) {
        Ok(node) => {
            query::only_reserved(&node);
            query::has_text(&node);
            for mode in [TextMode::Correlated, TextMode::Materialized] {
                let mut sql = Sql::default();
                query::to_sql(&node, mode, &mut sql);
                let used = placeholders(&sql.text);
                prop_assert_eq!(
                    used.iter().max().copied().unwrap_or(0),
                    sql.params.len(),
                    "{:?} → {}",
                    q,
                    sql.text
                );
                for i in 1..=sql.params.len() {
                    prop_assert!(used.contains(&i), "?{} unused in {}", i, sql.text);
                }
            }
        }
        Err(e) => {
            prop_assert!(
                (1..=len.max(1)).contains(&e.column),
                "column {} outside a query of {} characters: {:?} → {}",
                e.column,
                len,
                q,
                e
            );
            prop_assert!(!e.message.is_empty());
        }
    }
    Ok(())
}

fn placeholders(sql: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut rest = sql;
    while let Some(i) = rest.find('?') {
        rest = &rest[i + 1..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(n) = digits.parse() {
            out.push(n);
        }
    }
    out
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn the_parser_never_panics_and_points_into_the_query(q in any_query()) {
        check_query(&q)?;
    }
}

proptest! {
    #![proptest_config(config(200))]

    #[test]
    fn the_parser_refuses_deep_and_long_queries_without_overflowing(q in deep()) {
        check_query(&q)?;
    }
}

#[test]
fn the_parser_handles_the_worst_shapes_at_the_length_limit() {
    // Each of these is at or just past 16,384 characters, where the parser's work is largest.
    let n = 16_384;
    for q in [
        "(".repeat(n),
        ")".repeat(n),
        "-".repeat(n),
        "\\".repeat(n),
        "\"".repeat(n),
        "a ".repeat(n / 2),
        "NOT ".repeat(n / 4),
        "(".repeat(n / 2) + &")".repeat(n / 2),
        "a".repeat(n + 1),
        "日".repeat(n),
        "\u{10FFFF}".repeat(n + 1),
        format!("@{}:x", "a.".repeat(n / 2 - 2)),
    ] {
        check_query(&q).unwrap();
    }
}

// ---- Queries against a real intake over HTTP.

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Logs with every kind of value the queries can reach: reserved fields, tags, nested and
/// array attributes, odd keys, odd text, and timestamps at the ends of the range.
fn search_fixtures(now: i64) -> serde_json::Value {
    json!([
        {"message": "hello world timed out", "service": "web", "status": "error", "hostname": "db-1",
         "ddsource": "python", "ddtags": "env:prod,team:a,owner:<b>", "timestamp": now,
         "duration_ms": 120, "http": {"status_code": 500, "url": "/a?b=c"},
         "list": [1, "two", true, null, {"x": 1}], "flag": true, "n": -1.5e3, "ünï": "cödé"},
        {"message": "日本語のテキスト \u{202E}nimda 🦀", "service": "api", "status": "WARNING",
         "ddtags": "rlo:\u{202E}x,日本:語", "timestamp": now - 1000, "a.b": 1, "weird\"key": "q",
         "a": {"b": {"c": [[1, 2], {"d": "e"}]}}, "n": 1e308, "empty": "", "nil": null},
        {"message": "", "timestamp": now - 2000, "n": 0, "flag": false, "%_\\": "%_\\"},
        {"message": "%_\\*?[]{}()\"'", "status": "ok", "timestamp": now - 3000},
        // Clamped to year 1 and year 9999 when stored.
        {"message": "the far past", "timestamp": i64::MIN},
        {"message": "the far future", "timestamp": i64::MAX},
        {"message": "epoch", "timestamp": 0, "service": "web"},
    ])
}

/// A 1,001-deep attribute made every @-query a 500 ("malformed JSON") before attributes
/// were normalised at ingest; the search property's store holds one.
const STORE_A_DEEP_ATTRIBUTE: bool = true;

fn deep_attribute_log(now: i64, depth: usize) -> Vec<u8> {
    format!(
        r#"[{{"message":"deep","service":"deep","timestamp":{now},"deep":{}1{}}}]"#,
        "[".repeat(depth),
        "]".repeat(depth)
    )
    .into_bytes()
}

fn time_arg() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        4 => Just(json!("now-1d")),
        2 => prop::sample::select(&["now", "now-15m", "now+1h", "now-100000d", "now+100000d", "1970-01-01T00:00:00Z",
            "2024-02-30T00:00:00Z", "now-", "", "yesterday", "9999999999999999999", "-1", "now-1y"][..])
            .prop_map(|s| json!(s)),
        2 => any::<i64>().prop_map(|n| json!(n)),
        1 => prop::sample::select(&[i64::MIN, i64::MAX, 0, -1][..]).prop_map(|n| json!(n)),
        1 => any::<f64>().prop_map(|f| json!(f)),
    ]
}

fn search_body() -> impl Strategy<Value = serde_json::Value> {
    (
        any_query(),
        time_arg(),
        time_arg(),
        prop::option::of(prop::sample::select(
            &["timestamp", "-timestamp", "", "x"][..],
        )),
        prop::option::of(any::<u32>()),
        prop::option::of(prop_oneof![
            "[0-9]{1,20}_[0-9]{1,20}",
            "-?[0-9]{1,5}_-?[0-9]{1,5}",
            ".{0,8}"
        ]),
    )
        .prop_map(|(query, from, to, sort, limit, cursor)| {
            let mut body = json!({"filter": {"query": query, "from": from, "to": to}, "page": {}});
            if let Some(s) = sort {
                body["sort"] = json!(s);
            }
            if let Some(l) = limit {
                body["page"]["limit"] = json!(l % 6000);
            }
            if let Some(c) = cursor {
                body["page"]["cursor"] = json!(c);
            }
            body
        })
}

fn tail_params() -> impl Strategy<Value = Vec<(&'static str, String)>> {
    (
        any_query(),
        prop::option::of(prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            "[0-9]{1,3}",
            ".{0,4}"
        ]),
        prop::option::of(prop_oneof![
            (0u32..6000).prop_map(|n| n.to_string()),
            ".{0,4}"
        ]),
    )
        .prop_map(|(q, after, limit)| {
            let mut p = vec![("query", q)];
            p.extend(after.map(|a| ("after", a)));
            p.extend(limit.map(|l| ("limit", l)));
            p
        })
}

async fn assert_searchable(h: &Harness) {
    let r = h
        .api(
            "/api/v2/logs/events/search",
            json!({"filter": {"query": "service:web", "from": "now-1d", "to": "now+1h"}}),
        )
        .await;
    assert_eq!(r["data"].as_array().unwrap().len(), 1, "{r}");
}

fn not_5xx(what: &str, status: u16, body: &str) -> Result<(), TestCaseError> {
    prop_assert!(
        status == 200 || (400..500).contains(&status),
        "{} answered {}: {}",
        what,
        status,
        body
    );
    // The store answers a panicked query task with a 400 that says so: still a panic.
    prop_assert!(!body.contains("panicked"), "{} panicked: {}", what, body);
    Ok(())
}

fn compute() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        Just(json!([])),
        Just(json!([{"aggregation": "count"}])),
        prop::sample::select(&["1m", "1ms", "1s", "1h", "7d", "0s", "-1m", "x", ""][..])
            .prop_map(|i| json!([{"aggregation": "count", "type": "timeseries", "interval": i}])),
        any::<i64>()
            .prop_map(|i| json!([{"aggregation": "count", "type": "timeseries", "interval": i}])),
        Just(json!([{"aggregation": "count", "type": "timeseries"}])),
        Just(json!([{"aggregation": "avg"}])),
    ]
}

fn group_by() -> impl Strategy<Value = serde_json::Value> {
    (
        prop::sample::select(
            &[
                "status",
                "service",
                "source",
                "host",
                "tags",
                "@http.status_code",
                "@list",
                "x",
                "",
            ][..],
        ),
        prop::option::of(any::<i32>()),
    )
        .prop_map(|(facet, limit)| match limit {
            Some(l) => json!([{"facet": facet, "limit": l}]),
            None => json!([{"facet": facet}]),
        })
}

#[test]
fn searches_and_tails_over_http_are_200_or_4xx_and_the_intake_stays_up() {
    let rt = runtime();
    let h = rt.block_on(async {
        let h = Harness::start().await;
        h.ingest(&search_fixtures(now_ms())).await;
        if STORE_A_DEEP_ATTRIBUTE {
            let (status, text) = h
                .post_raw("/api/v2/logs", None, deep_attribute_log(now_ms(), 1001))
                .await;
            assert_eq!(status, 202, "{text}");
        }
        h
    });
    let strategy = (search_body(), tail_params(), compute(), group_by());
    let mut runner = TestRunner::new(config(400));
    runner
        .run(&strategy, |(body, tail, compute, group_by)| {
            rt.block_on(async {
                let resp = h
                    .http
                    .post(h.url("/api/v2/logs/events/search"))
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let status = resp.status().as_u16();
                not_5xx(
                    &format!("search {body}"),
                    status,
                    &resp.text().await.unwrap(),
                )?;

                let f = &body["filter"];
                let filter = json!({"query": f["query"], "from": f["from"], "to": f["to"]});
                let agg = json!({"filter": filter, "compute": compute, "group_by": group_by});
                let resp = h
                    .http
                    .post(h.url("/api/v2/logs/analytics/aggregate"))
                    .json(&agg)
                    .send()
                    .await
                    .unwrap();
                let status = resp.status().as_u16();
                not_5xx(
                    &format!("aggregate {agg}"),
                    status,
                    &resp.text().await.unwrap(),
                )?;

                let resp = h
                    .http
                    .get(h.url("/api/v2/logs/events/tail"))
                    .query(&tail)
                    .send()
                    .await
                    .unwrap();
                let status = resp.status().as_u16();
                not_5xx(
                    &format!("tail {tail:?}"),
                    status,
                    &resp.text().await.unwrap(),
                )
            })
        })
        .unwrap();
    rt.block_on(assert_searchable(&h));
}

// ---- Ingest bodies.

/// Numbers no f64 or i64 holds, and their edges.
const ODD_NUMBERS: &[&str] = &[
    "1e400",
    "-1e400",
    "1e-400",
    "123456789012345678901234567890",
    "-123456789012345678901234567890",
    "18446744073709551616",
    "9223372036854775808",
    "-9223372036854775809",
    "9223372036854775807",
    "-0",
    "0.0",
    "-0.0e-0",
    "1.7976931348623157e308",
    "4.9e-324",
    "0.30000000000000004",
    "1E+2",
    "1e0000000000000000000000001",
];

/// Strings JSON allows that text handling often gets wrong.
const ODD_STRINGS: &[&str] = &[
    r#""""#,
    r#""\u0000""#,
    r#""\u202e0001$ \u202dok""#,
    r#""\ud83e\udd80""#,
    r#""\ufeff""#,
    r#""\uffff""#,
    r#""e\u0301""#,
    r#""\"\\\/\b\f\n\r\t""#,
    "\"\u{10FFFF}\"",
    "\"日本語\"",
    r#""\ud800""#,
    r#""\udc00x""#,
    r#""now-1d""#,
    r#""2024-01-01T00:00:00Z""#,
    r#""9999999999999999999""#,
];

fn json_leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("null".to_owned()),
        any::<bool>().prop_map(|b| b.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(|f| f.to_string()),
        prop::sample::select(ODD_NUMBERS).prop_map(str::to_owned),
        prop::sample::select(ODD_STRINGS).prop_map(str::to_owned),
        any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
    ]
}

fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(
            &[
                "message",
                "status",
                "timestamp",
                "hostname",
                "host",
                "service",
                "ddsource",
                "source",
                "ddtags",
                "",
                "a.b",
                "@",
                "__proto__",
                "message "
            ][..]
        )
        .prop_map(|s| serde_json::to_string(s).unwrap()),
        prop::sample::select(ODD_STRINGS).prop_map(str::to_owned),
        any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
    ]
}

fn json_value() -> impl Strategy<Value = String> {
    json_leaf().prop_recursive(5, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec((json_key(), inner), 0..5).prop_map(|kv| {
                let fields: Vec<String> = kv.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
                format!("{{{}}}", fields.join(","))
            }),
        ]
    })
}

fn log_object() -> impl Strategy<Value = String> {
    prop::collection::vec((json_key(), json_value()), 0..8).prop_map(|kv| {
        let fields: Vec<String> = kv.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
        format!("{{{}}}", fields.join(","))
    })
}

/// Bodies a sender might really write, and a few it should not: a log, an array of them,
/// deep nesting, arrays of the wrong thing.
fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec(log_object(), 0..6).prop_map(|logs| format!("[{}]", logs.join(","))),
        1 => log_object(),
        1 => (0usize..3000, any::<bool>()).prop_map(|(n, arrays)| if arrays {
            format!(r#"[{{"message":"deep","a":{}1{}}}]"#, "[".repeat(n), "]".repeat(n))
        } else {
            format!(r#"[{{"message":"deep","a":{}1{}}}]"#, r#"{"a":"#.repeat(n), "}".repeat(n))
        }),
        1 => (0usize..3000).prop_map(|n| "[".repeat(n) + &"]".repeat(n)),
        1 => json_value(),
        1 => prop::collection::vec(json_value(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
    ]
    .prop_map(String::into_bytes)
}

fn compress(encoding: Encoding, raw_deflate_too: bool, data: &[u8]) -> Vec<u8> {
    match encoding {
        Encoding::Identity => data.to_vec(),
        Encoding::Gzip => gzip(data),
        Encoding::Deflate if raw_deflate_too => raw_deflate(data),
        Encoding::Deflate => zlib(data),
        Encoding::Zstd => common::zstd(data),
    }
}

#[derive(Debug, Clone)]
enum Damage {
    None,
    Truncate(prop::sample::Index),
    Flip(Vec<(prop::sample::Index, u8)>),
    /// Two compressed streams back to back, as gzip allows.
    Doubled,
    Garbage(Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        3 => Just(Damage::None),
        2 => any::<prop::sample::Index>().prop_map(Damage::Truncate),
        2 => prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4).prop_map(Damage::Flip),
        1 => Just(Damage::Doubled),
        1 => prop::collection::vec(any::<u8>(), 0..16).prop_map(Damage::Garbage),
    ]
}

fn apply(damage: &Damage, mut body: Vec<u8>) -> Vec<u8> {
    match damage {
        Damage::None => {}
        Damage::Truncate(at) => body.truncate(at.index(body.len() + 1)),
        Damage::Flip(flips) => {
            for (at, x) in flips {
                if !body.is_empty() {
                    let i = at.index(body.len());
                    body[i] ^= x;
                }
            }
        }
        Damage::Doubled => {
            let copy = body.clone();
            body.extend_from_slice(&copy);
        }
        Damage::Garbage(g) => body.extend_from_slice(g),
    }
    body
}

fn encoding() -> impl Strategy<Value = Encoding> {
    prop::sample::select(
        &[
            Encoding::Identity,
            Encoding::Gzip,
            Encoding::Deflate,
            Encoding::Zstd,
        ][..],
    )
}

const CAP: usize = 5_000_000;

/// Decoding and parsing in-process: any result but a panic is fine here, since every
/// [`Reject`] is a 4xx by construction.
fn decode_and_parse(encoding: Encoding, body: &[u8]) -> Result<Vec<ingest::NewLog>, Reject> {
    let decoded = ingest::decode_capped(encoding, body, CAP)?;
    ingest::parse_logs(&decoded, 1_700_000_000_000)
}

proptest! {
    #![proptest_config(config(1500))]

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder_or_parser(
        enc in encoding(),
        bytes in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let _ = decode_and_parse(enc, &bytes);
        // Bytes that start like a compressed stream reach further into the decoders.
        let mut framed = match enc {
            Encoding::Gzip => vec![0x1f, 0x8b, 8, 0],
            Encoding::Deflate => vec![0x78, 0x9c],
            Encoding::Zstd => vec![0x28, 0xb5, 0x2f, 0xfd],
            Encoding::Identity => b"[{\"message\":".to_vec(),
        };
        framed.extend_from_slice(&bytes);
        let _ = decode_and_parse(enc, &framed);
    }
}

proptest! {
    #![proptest_config(config(400))]

    #[test]
    fn payloads_compressed_and_damaged_never_panic_and_intact_ones_round_trip(
        body in payload(),
        enc in encoding(),
        raw_deflate_too in any::<bool>(),
        dmg in damage(),
    ) {
        let compressed = compress(enc, raw_deflate_too, &body);
        if matches!(dmg, Damage::None) {
            prop_assert_eq!(ingest::decode_capped(enc, &compressed, CAP).unwrap(), body.clone());
        }
        let sent = apply(&dmg, compressed);
        let _ = decode_and_parse(enc, &sent);
    }
}

#[test]
fn ingest_over_http_is_2xx_or_4xx_for_every_encoding_and_body() {
    let rt = runtime();
    let h = rt.block_on(Harness::start());
    let header = prop::sample::select(
        &[
            None,
            Some("identity"),
            Some("gzip"),
            Some("x-gzip"),
            Some("deflate"),
            Some("zstd"),
            Some("GZIP"),
            Some(" zstd "),
            Some("br"),
            Some("gzip, zstd"),
            Some(""),
        ][..],
    );
    let strategy = (payload(), header, any::<bool>(), damage());
    let mut runner = TestRunner::new(config(400));
    runner
        .run(&strategy, |(body, header, raw_deflate_too, dmg)| {
            let enc = Encoding::from_header(header).unwrap_or(Encoding::Identity);
            let sent = apply(&dmg, compress(enc, raw_deflate_too, &body));
            rt.block_on(async {
                let (status, text) = h.post_raw("/api/v2/logs", header, sent).await;
                prop_assert!(
                    (200..300).contains(&status) || (400..500).contains(&status),
                    "{:?} {:?} answered {}: {}",
                    header,
                    dmg,
                    status,
                    text
                );
                Ok(())
            })
        })
        .unwrap();
    rt.block_on(async {
        h.ingest(&json!([{"message": "still here", "service": "web", "timestamp": now_ms()}]))
            .await;
        assert_searchable(&h).await;
    });
}

#[test]
fn compressed_bodies_whose_checks_fail_are_400s() {
    // Random damage rarely lands on the few bytes that only the end of a stream checks: a gzip
    // trailer's CRC and size, a zstd frame's checksum.
    let rt = runtime();
    let h = rt.block_on(Harness::start());
    let body = br#"[{"message":"hi"}]"#;
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
    enc.include_checksum(true).unwrap();
    enc.write_all(body).unwrap();
    let mut zst = enc.finish().unwrap();
    let n = zst.len();
    zst[n - 1] ^= 0xff;
    let mut bad_size = gzip(body);
    let n = bad_size.len();
    bad_size[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
    let mut bad_crc = gzip(body);
    bad_crc[n - 8] ^= 0xff;
    rt.block_on(async {
        for (enc, sent) in [("zstd", zst), ("gzip", bad_size), ("gzip", bad_crc)] {
            let (status, text) = h.post_raw("/api/v2/logs", Some(enc), sent).await;
            assert_eq!(status, 400, "{enc}: {text}");
        }
        assert_search_answers(&h).await;
    });
}

async fn assert_search_answers(h: &Harness) {
    let (status, body) = h
        .api_status(
            "/api/v2/logs/events/search",
            json!({"filter": {"query": "*"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

// ---- Faults the properties found outside the parser, each pinned by a test of its own.

#[test]
fn searches_over_a_1001_deep_attribute_are_200_or_4xx() {
    let rt = runtime();
    rt.block_on(async {
        let h = Harness::start().await;
        let (status, text) = h
            .post_raw("/api/v2/logs", None, deep_attribute_log(now_ms(), 1001))
            .await;
        assert!(status < 500, "{status} {text}");
        for q in [
            "service:deep",
            "deep",
            "@deep:1",
            "@deep:*",
            "@deep.x:1",
            "-@deep:1",
            "@deep:[1 TO 2]",
        ] {
            let (status, body) = h
                .api_status(
                    "/api/v2/logs/events/search",
                    json!({"filter": {"query": q, "from": "now-1d", "to": "now+1h"}}),
                )
                .await;
            assert!(
                status == 200 || (400..500).contains(&status),
                "{q:?}: {status} {body}"
            );
        }
    });
}

#[test]
fn a_timestamp_at_i64_min_is_stored_or_refused() {
    let rt = runtime();
    rt.block_on(async {
        let h = Harness::start().await;
        for ts in [json!(i64::MIN), json!(-1e300)] {
            let body =
                serde_json::to_vec(&json!([{"message": "far past", "timestamp": ts}])).unwrap();
            let (status, text) = h.post_raw("/api/v2/logs", None, body).await;
            assert!(status < 500, "{ts}: {status} {text}");
        }
        // The writer is still there.
        h.ingest(&json!([{"message": "still here", "service": "web", "timestamp": now_ms()}]))
            .await;
        assert_searchable(&h).await;
    });
}

#[test]
fn aggregate_over_the_widest_range_is_a_400_or_200() {
    let rt = runtime();
    rt.block_on(async {
        let h = Harness::start().await;
        for (from, to, compute) in [
            (i64::MIN, 0, json!([{"aggregation": "count"}])),
            (
                i64::MIN,
                0,
                json!([{"aggregation": "count", "type": "timeseries", "interval": "1m"}]),
            ),
            (
                i64::MIN,
                i64::MAX,
                json!([{"aggregation": "count", "type": "timeseries"}]),
            ),
            (
                -(1 << 62),
                1 << 62,
                json!([{"aggregation": "count", "type": "timeseries", "interval": 1}]),
            ),
        ] {
            let body = json!({"filter": {"query": "", "from": from, "to": to}, "compute": compute});
            let (status, resp) = h
                .api_status("/api/v2/logs/analytics/aggregate", body.clone())
                .await;
            let text = resp.to_string();
            assert!(
                status == 200 || (400..500).contains(&status),
                "{body}: {status} {text}"
            );
            assert!(!text.contains("panicked"), "{body}: {text}");
        }
    });
}

// ---- Metric, service check and event reads (the Explorer's Metrics view sends these).

/// Pieces of the metric query syntax, and pieces that look like it but are not.
const METRIC_FRAGMENTS: &[&str] = &[
    "avg:",
    "sum:",
    "min:",
    "max:",
    "p99:",
    "avg",
    ":",
    "app.hits",
    "app.*",
    "{",
    "}",
    "{*}",
    "*",
    ",",
    "!",
    "host:web-1",
    "env:prod",
    "!env:dev",
    "host:*",
    " by ",
    "by",
    "{host}",
    "{host,env}",
    ".as_count()",
    ".as_rate()",
    ".rollup(sum)",
    ".rollup(avg,60)",
    ".rollup(max,0)",
    ".rollup(sum,-1)",
    ".rollup(",
    ")",
    "(",
    "\u{0}",
    "\u{202e}",
    "é",
    " ",
    "\"",
    "\\",
    "9999999999999999999999",
    "-",
    "/",
    "a:b:c",
];

fn metric_query() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::collection::vec(prop::sample::select(METRIC_FRAGMENTS), 0..14)
            .prop_map(|v| v.concat()),
        1 => (prop::sample::select(&["avg", "sum", "min", "max"][..]), word(), word(), word())
            .prop_map(|(a, m, s, b)| format!("{a}:{m}{{{s}}} by {{{b}}}")),
        1 => "\\PC{0,40}",
        1 => prop::collection::vec(any::<char>(), 0..20).prop_map(|c| c.into_iter().collect()),
    ]
}

fn time_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(&["now-1h", "now", "now-7d", "now+1h", "now-100000d", "",
            "1970-01-01T00:00:00Z", "2024-02-30T00:00:00Z", "-1", "0", "yesterday",
            "9999999999999999999", "-9223372036854775808", "253402300800"][..]).prop_map(str::to_owned),
        2 => any::<i64>().prop_map(|n| n.to_string()),
        1 => ".{0,6}",
    ]
}

#[test]
fn metric_reads_over_http_are_200_or_4xx() {
    let rt = runtime();
    let h = rt.block_on(async {
        let h = Harness::start().await;
        let now = now_ms() / 1000;
        let series = json!({"series": [
            {"metric": "app.hits", "type": "count", "interval": 10, "host": "web-1", "tags": ["env:prod", "odd:\u{202e}x", "bare"], "points": [[now - 60, 1.0], [now - 30, 2.0]]},
            {"metric": "app.hits", "type": "rate", "host": "web-2", "device": "sda", "tags": ["env:dev"], "points": [[now - 60, 1e300], [now - 30, -1e300]]},
            {"metric": "app.gauge", "host": "", "tags": [], "points": [[0, 0.0], [253402300799i64, 1.0]]},
        ]});
        let (status, text) = h
            .post_raw("/api/v1/series", None, serde_json::to_vec(&series).unwrap())
            .await;
        assert_eq!(status, 202, "{text}");
        h
    });
    let strategy = (metric_query(), time_text(), time_text(), word(), word());
    let mut runner = TestRunner::new(config(300));
    runner
        .run(&strategy, |(q, from, to, name, tags)| {
            rt.block_on(async {
                let reads: [(String, Vec<(&str, String)>); 5] = [
                    (
                        "/api/v1/query".into(),
                        vec![
                            ("query", q.clone()),
                            ("from", from.clone()),
                            ("to", to.clone()),
                        ],
                    ),
                    (
                        "/api/v1/metrics".into(),
                        vec![
                            ("from", from.clone()),
                            ("host", name.clone()),
                            ("tag_filter", tags.clone()),
                        ],
                    ),
                    (all_tags_url(&h, &name), vec![("from", from.clone())]),
                    (
                        "/api/v1/check_run".into(),
                        vec![("tags", tags.clone()), ("check", name.clone())],
                    ),
                    (
                        "/api/v1/events".into(),
                        vec![
                            ("start", from.clone()),
                            ("end", to.clone()),
                            ("tags", tags.clone()),
                        ],
                    ),
                ];
                for (path, params) in reads {
                    let url = if path.starts_with('/') {
                        h.url(&path)
                    } else {
                        path.clone()
                    };
                    let resp = h.http.get(url).query(&params).send().await.unwrap();
                    let status = resp.status().as_u16();
                    not_5xx(
                        &format!("{path} {params:?}"),
                        status,
                        &resp.text().await.unwrap(),
                    )?;
                }
                Ok(())
            })
        })
        .unwrap();
}

/// The metric name as one path segment, percent-encoded by the URL library, not by the test.
fn all_tags_url(h: &Harness, name: &str) -> String {
    let mut url = reqwest::Url::parse(&h.url("/api/v2/metrics")).unwrap();
    url.path_segments_mut().unwrap().push(name).push("all-tags");
    url.to_string()
}
