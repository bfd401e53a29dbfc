//! Datadog's log search syntax against a fixed set of logs in a real store, over HTTP.

mod common;

use common::*;
use serde_json::{json, Value};

fn fixtures() -> Value {
    let t = now_ms() - 60_000;
    let log = |n: i64,
               service: &str,
               source: &str,
               status: &str,
               host: &str,
               tags: &str,
               message: &str,
               extra: Value| {
        let mut v = json!({"message": message, "status": status, "timestamp": t + n, "hostname": host, "n": n});
        if !service.is_empty() {
            v["service"] = json!(service);
        }
        if !source.is_empty() {
            v["ddsource"] = json!(source);
        }
        if !tags.is_empty() {
            v["ddtags"] = json!(tags);
        }
        for (k, val) in extra.as_object().unwrap() {
            v[k] = val.clone();
        }
        v
    };
    json!([
        log(
            1,
            "web",
            "nginx",
            "info",
            "a",
            "env:prod,team:core",
            "GET /index.html 200 OK",
            json!({"http": {"status_code": 200, "method": "GET"}, "duration_ms": 12, "user": "alice"})
        ),
        log(
            2,
            "web",
            "nginx",
            "error",
            "a",
            "env:prod,team:core",
            "GET /login 500 Internal Server Error",
            json!({"http": {"status_code": 500, "method": "GET"}, "duration_ms": 340, "user": "bob"})
        ),
        log(
            3,
            "webapp",
            "python",
            "WARNING",
            "b",
            "env:staging,team:core",
            "slow query took 1500 ms",
            json!({"duration_ms": 1500, "user": "bobby", "db": {"rows": 10}})
        ),
        log(
            4,
            "api",
            "python",
            "info",
            "b",
            "env:prod,team:api,version:1.2",
            "user login succeeded for alice",
            json!({"duration_ms": 20, "user": "alice", "ok": true})
        ),
        log(
            5,
            "api",
            "python",
            "error",
            "c",
            "env:prod,team:api",
            "connection refused by upstream",
            json!({"duration_ms": 5000, "user": "carol", "tags_list": ["a", "b"]})
        ),
        log(
            6,
            "db",
            "postgres",
            "critical",
            "c",
            "env:prod,team:db",
            "FATAL: password authentication failed for user \"postgres\"",
            json!({"duration_ms": 0, "user": "postgres"})
        ),
        log(
            7,
            "db",
            "postgres",
            "info",
            "d",
            "env:dev",
            "checkpoint complete: wrote 42 buffers",
            json!({"duration_ms": 100, "rows": 42})
        ),
        log(
            8,
            "worker",
            "custom",
            "debug",
            "d",
            "",
            "job_id=77 finished in 2.5s",
            json!({"duration_ms": 2500, "job": {"id": 77, "name": "nightly-report"}})
        ),
        log(
            9,
            "worker",
            "custom",
            "info",
            "d",
            "env:dev,team:data",
            "Connection refused? retrying (attempt 3)",
            json!({"duration_ms": 10.5, "user": "Bob"})
        ),
        log(
            10,
            "",
            "",
            "info",
            "e",
            "",
            "plain log without service",
            json!({})
        ),
        log(
            11,
            "web",
            "nginx",
            "warn",
            "a",
            "env:prod,team:core",
            "<img src=x onerror=alert(1)> weird user agent",
            json!({"duration_ms": 101, "ua": "<script>alert(1)</script>"})
        ),
        log(
            12,
            "api",
            "python",
            "ok",
            "b",
            "env:staging,team:api",
            "health check ok 100%",
            json!({"duration_ms": 20.0, "http": {"status_code": 204}})
        ),
        // Keys that hold the query language's own characters: a dot that is not nesting, a
        // space, a colon, a backslash.
        log(
            13,
            "keys",
            "",
            "info",
            "f",
            "",
            "odd keys",
            json!({"a.b": "flat", "a": {"b": "nested"}, "two words": "x y", "k:v": 1, "back\\slash": "bs"})
        ),
    ])
}

const ALL: &[i64] = &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13];

const TABLE: &[(&str, &[i64])] = &[
    ("*", ALL),
    ("", ALL),
    ("service:web", &[1, 2, 11]),
    ("service:web*", &[1, 2, 3, 11]),
    ("service:w?b", &[1, 2, 11]),
    ("service:webapp", &[3]),
    ("service:api", &[4, 5, 12]),
    ("-service:web", &[3, 4, 5, 6, 7, 8, 9, 10, 12, 13]),
    ("NOT service:web", &[3, 4, 5, 6, 7, 8, 9, 10, 12, 13]),
    ("source:nginx", &[1, 2, 11]),
    ("source:python", &[3, 4, 5, 12]),
    ("source:post*", &[6, 7]),
    ("status:error", &[2, 5]),
    ("status:ERROR", &[2, 5]),
    ("status:(error OR critical)", &[2, 5, 6]),
    ("status:warn", &[3, 11]),
    ("status:warning", &[3, 11]),
    ("status:info", &[1, 4, 7, 9, 10, 13]),
    ("host:d", &[7, 8, 9]),
    ("host:a OR host:b", &[1, 2, 3, 4, 11, 12]),
    ("host:(a OR c) -status:info", &[2, 5, 6, 11]),
    ("env:prod", &[1, 2, 4, 5, 6, 11]),
    ("env:staging", &[3, 12]),
    ("team:core env:prod", &[1, 2, 11]),
    ("env:prod AND team:api", &[4, 5]),
    ("env:pro*", &[1, 2, 4, 5, 6, 11]),
    ("env:*", &[1, 2, 3, 4, 5, 6, 7, 9, 11, 12]),
    ("-env:*", &[8, 10, 13]),
    ("version:1.2", &[4]),
    ("team:d*", &[6, 9]),
    ("team:core AND NOT status:info", &[2, 3, 11]),
    ("-(env:prod)", &[3, 7, 8, 9, 10, 12, 13]),
    ("error", &[2]),
    ("refused", &[5, 9]),
    ("\"connection refused\"", &[5, 9]),
    ("\"refused by\"", &[5]),
    ("conn*", &[5, 9]),
    ("*fused*", &[5, 9]),
    ("login", &[2, 4]),
    ("login alice", &[4]),
    ("login OR checkpoint", &[2, 4, 7]),
    ("login -service:api", &[2]),
    ("GET", &[1, 2]),
    ("get", &[1, 2]),
    ("job_id=77", &[8]),
    ("100%", &[12]),
    ("FATAL", &[6]),
    ("\"authentication failed\"", &[6]),
    ("postgres", &[6]),
    ("\"plain log\"", &[10]),
    ("<img", &[11]),
    ("alice OR bob", &[4]),
    ("env\\:prod", &[]),
    ("@user:alice", &[1, 4]),
    ("@user:\"alice\"", &[1, 4]),
    ("@user:bob", &[2]),
    ("@user:*bob*", &[2, 3]),
    ("@user:bob*", &[2, 3]),
    ("@user:*", &[1, 2, 3, 4, 5, 6, 9]),
    ("-@user:*", &[7, 8, 10, 11, 12, 13]),
    ("-@user:alice", &[2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13]),
    ("@duration_ms:>100", &[2, 3, 5, 8, 11]),
    ("@duration_ms:>=100", &[2, 3, 5, 7, 8, 11]),
    ("@duration_ms:<20", &[1, 6, 9]),
    ("@duration_ms:<=20", &[1, 4, 6, 9, 12]),
    ("@duration_ms:[10 TO 20]", &[1, 4, 9, 12]),
    ("@duration_ms:{10 TO 20}", &[1, 9]),
    ("@duration_ms:[1000 TO *]", &[3, 5, 8]),
    ("@duration_ms:>100 @duration_ms:<1000", &[2, 11]),
    ("@duration_ms:[-5 TO 0]", &[6]),
    ("@http.status_code:500", &[2]),
    ("@http.status_code:>=500", &[2]),
    ("@http.status_code:[200 TO 299]", &[1, 12]),
    ("@http.method:GET", &[1, 2]),
    ("@job.name:nightly*", &[8]),
    ("@job.id:77", &[8]),
    ("@ok:true", &[4]),
    ("@tags_list:a", &[5]),
    ("@db.rows:10", &[3]),
    ("@rows:42", &[7]),
    ("@ua:*script*", &[11]),
    ("@user:>5", &[]),
    ("service:(web OR api) status:error", &[2, 5]),
    (
        "(service:web OR service:api) -status:error",
        &[1, 4, 11, 12],
    ),
    ("service:web status:error OR service:db", &[2, 6, 7]),
    ("service:db OR service:web status:error", &[2, 6, 7]),
    ("service:db OR service:web AND status:error", &[2, 6, 7]),
    ("NOT (service:web OR service:api)", &[3, 6, 7, 8, 9, 10, 13]),
    ("((service:web))", &[1, 2, 11]),
    ("refused AND NOT service:api", &[9]),
    ("service:nothing", &[]),
    ("@a\\.b:flat", &[13]),
    ("@a\\.b:nested", &[]),
    ("@a.b:nested", &[13]),
    ("@a.b:flat", &[]),
    ("@two\\ words:\"x y\"", &[13]),
    ("@k\\:v:1", &[13]),
    ("@back\\\\slash:bs", &[13]),
];

#[tokio::test(flavor = "multi_thread")]
async fn every_query_in_the_table_matches_exactly_its_rows() {
    assert!(TABLE.len() >= 60);
    let h = Harness::start().await;
    h.ingest(&fixtures()).await;
    let mut failures = Vec::new();
    for (query, want) in TABLE {
        let got: Vec<i64> = {
            let mut ns: Vec<i64> = h
                .search(query)
                .await
                .iter()
                .map(|l| l["attributes"]["attributes"]["n"].as_i64().unwrap())
                .collect();
            ns.sort_unstable();
            ns
        };
        if got != *want {
            failures.push(format!("{query:?}: want {want:?}, got {got:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} queries wrong:\n{}",
        failures.len(),
        TABLE.len(),
        failures.join("\n")
    );
}

const ERRORS: &[(&str, usize, &str)] = &[
    ("service:(a OR", 13, "expected ')' or a value after 'OR'"),
    (
        "service:(a",
        10,
        "expected ')' to close the '(' at column 9",
    ),
    (
        "(status:error",
        13,
        "expected ')' to close the '(' at column 1",
    ),
    ("status:error)", 13, "this ')' has no matching '('"),
    ("\"unterminated", 1, "this quote is never closed"),
    ("service: web", 9, "expected a value right after 'service:'"),
    ("a AND", 5, "expected a value after 'AND'"),
    ("OR a", 1, "expected a value, found 'OR'"),
    ("NOT", 3, "expected a value after 'NOT'"),
    ("@duration_ms:>abc", 15, "expected a number after '>'"),
    ("@duration_ms:>=", 15, "expected a number after '>='"),
    ("service:>5", 9, "comparisons apply to @attributes"),
    ("@d:[1 TO", 8, "expected a number or '*' in the range"),
    ("@d:[1 2]", 7, "expected 'TO' in the range"),
    ("@d:[1 TO 2", 10, "expected ']' or '}' to close the range"),
    ("service:[1 TO 2]", 9, "ranges apply to @attributes"),
    (":foo", 1, "expected a field name before ':'"),
    ("@:x", 1, "is not an attribute path"),
    ("@a..b:x", 1, "is not an attribute path"),
    (
        "service:(status:error)",
        10,
        "a field cannot be used inside",
    ),
    ("foo\\", 4, "a backslash must be followed"),
    ("()", 2, "expected a value inside '( )'"),
    ("a OR OR b", 6, "expected a value after 'OR', found 'OR'"),
    ("[1 TO 2]", 1, "a range needs an attribute"),
    ("serv*ce:web", 1, "a field name cannot contain wildcards"),
];

#[test]
fn malformed_queries_point_at_the_column() {
    for (query, column, message) in ERRORS {
        let err = cairn_intake::query::parse(query).expect_err(query);
        assert_eq!(err.column, *column, "{query:?}: {err}");
        assert!(err.message.contains(message), "{query:?}: {err}");
        assert_eq!(
            err.to_string(),
            format!("query error at column {column}: {}", err.message)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_query_is_a_400_that_carries_the_column() {
    let h = Harness::start().await;
    let (status, body) = h
        .api_status(
            "/api/v2/logs/events/search",
            json!({"filter": {"query": "service:(a OR"}}),
        )
        .await;
    assert_eq!(status, 400);
    let detail = body["errors"][0]["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("query error at column 13: expected ')'"),
        "{detail}"
    );
}

#[test]
fn generated_sql_carries_user_text_only_as_parameters() {
    use cairn_intake::query::{parse, to_sql, Sql, TextMode};
    let queries = [
        "service:zqsvc source:zqsrc* status:zqstatus host:zqhost",
        "zqfree \"zqphrase words\" zqpre* *zqin*fix*",
        "zqtag:zqval zqtag2:zqv* zqtag3:*",
        "@zqattr.zqpath:zqval @zqn:>42 @zqr:[7 TO 9] @zqw:*zqx* @zqe:*",
        "service:\"'); DROP TABLE logs; --\" OR @x:\"' OR 1=1 --\"",
        "-(zqa OR NOT zqb) AND @zqb:true",
    ];
    for q in queries {
        let node = parse(q).unwrap();
        for mode in [TextMode::Correlated, TextMode::Materialized] {
            let mut sql = Sql::default();
            to_sql(&node, mode, &mut sql);
            let lower = sql.text.to_lowercase();
            for needle in ["zq", "drop", "--", "1=1", "42"] {
                assert!(
                    !lower.contains(needle),
                    "{q:?} leaked {needle:?} into SQL: {}",
                    sql.text
                );
            }
            assert!(!sql.params.is_empty());
            // Only fixed fragments: the text is made of SQL words, placeholders and punctuation.
            assert!(
                sql.text
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || " ()?,._'*$<>=\\".contains(c)),
                "{}",
                sql.text
            );
        }
    }
}
