//! One table per processor: an event, the processor as Datadog's API writes it, the event
//! after. Rows follow the behaviour Datadog documents for each processor.

mod common;

use common::{apply, table};
use serde_json::json;

// 2024-03-05T14:30:15Z
const T: i64 = 1_709_649_015_000;

#[test]
fn date_remapper_reads_the_first_source_that_holds_a_date() {
    table(
        json!({"type": "date-remapper", "sources": ["ts", "when"]}),
        &[
            (
                json!({"ts": "2024-03-05T14:30:15Z"}),
                json!({"ts": "2024-03-05T14:30:15Z", "timestamp_ms": T}),
            ),
            (
                json!({"ts": "2024-03-05T14:30:15.123Z"}),
                json!({"ts": "2024-03-05T14:30:15.123Z", "timestamp_ms": T + 123}),
            ),
            (
                json!({"ts": "2024-03-05T14:30:15.123456789Z"}),
                json!({"ts": "2024-03-05T14:30:15.123456789Z", "timestamp_ms": T + 123}),
            ),
            (
                json!({"ts": "2024-03-05T14:30:15"}),
                json!({"ts": "2024-03-05T14:30:15", "timestamp_ms": T}),
            ),
            (
                json!({"ts": "2024-03-05 14:30:15,123"}),
                json!({"ts": "2024-03-05 14:30:15,123", "timestamp_ms": T + 123}),
            ),
            (
                json!({"ts": "2024-03-05T16:30:15+02:00"}),
                json!({"ts": "2024-03-05T16:30:15+02:00", "timestamp_ms": T}),
            ),
            (
                json!({"ts": "2024-03-05T16:30:15+0200"}),
                json!({"ts": "2024-03-05T16:30:15+0200", "timestamp_ms": T}),
            ),
            (
                json!({"ts": "2024-03-05T09:30:15-05"}),
                json!({"ts": "2024-03-05T09:30:15-05", "timestamp_ms": T}),
            ),
            (
                json!({"ts": "2024-03-05"}),
                json!({"ts": "2024-03-05", "timestamp_ms": 1_709_596_800_000_i64}),
            ),
            (
                json!({"ts": "2024/03/05 14:30:15"}),
                json!({"ts": "2024/03/05 14:30:15", "timestamp_ms": T}),
            ),
            // epoch seconds, milliseconds, as numbers or numeric strings
            (
                json!({"ts": 1_709_649_015}),
                json!({"ts": 1_709_649_015, "timestamp_ms": T}),
            ),
            (
                json!({"ts": 1_709_649_015.5}),
                json!({"ts": 1_709_649_015.5, "timestamp_ms": T + 500}),
            ),
            (json!({"ts": T}), json!({"ts": T, "timestamp_ms": T})),
            (
                json!({"ts": "1709649015123"}),
                json!({"ts": "1709649015123", "timestamp_ms": T + 123}),
            ),
            (
                json!({"ts": "1709649015"}),
                json!({"ts": "1709649015", "timestamp_ms": T}),
            ),
            // Apache's access log, RFC 2822, ctime
            (
                json!({"ts": "10/Oct/2000:13:55:36 -0700"}),
                json!({"ts": "10/Oct/2000:13:55:36 -0700", "timestamp_ms": 971_211_336_000_i64}),
            ),
            (
                json!({"ts": "Tue, 05 Mar 2024 14:30:15 GMT"}),
                json!({"ts": "Tue, 05 Mar 2024 14:30:15 GMT", "timestamp_ms": T}),
            ),
            (
                json!({"ts": "Tue, 5 Mar 2024 15:30:15 +0100"}),
                json!({"ts": "Tue, 5 Mar 2024 15:30:15 +0100", "timestamp_ms": T}),
            ),
            (
                json!({"ts": "5 Mar 2024 14:30:15"}),
                json!({"ts": "5 Mar 2024 14:30:15", "timestamp_ms": T}),
            ),
            (
                json!({"ts": "Tue Mar  5 14:30:15 2024"}),
                json!({"ts": "Tue Mar  5 14:30:15 2024", "timestamp_ms": T}),
            ),
            // the first source that parses wins; the sources stay
            (
                json!({"when": "2024-03-05T14:30:15Z"}),
                json!({"when": "2024-03-05T14:30:15Z", "timestamp_ms": T}),
            ),
            (
                json!({"ts": "yesterday", "when": "2024-03-05T14:30:15Z"}),
                json!({"ts": "yesterday", "when": "2024-03-05T14:30:15Z", "timestamp_ms": T}),
            ),
            // nothing that parses: the date is kept
            (
                json!({"ts": "not a date", "timestamp_ms": 5}),
                json!({"ts": "not a date", "timestamp_ms": 5}),
            ),
            (
                json!({"ts": "2024-13-05T14:30:15Z", "timestamp_ms": 5}),
                json!({"ts": "2024-13-05T14:30:15Z", "timestamp_ms": 5}),
            ),
            (
                json!({"ts": "2024-02-30", "timestamp_ms": 5}),
                json!({"ts": "2024-02-30", "timestamp_ms": 5}),
            ),
            (
                json!({"ts": {"nested": 1}, "timestamp_ms": 5}),
                json!({"ts": {"nested": 1}, "timestamp_ms": 5}),
            ),
            (
                json!({"ts": 1e300, "timestamp_ms": 5}),
                json!({"ts": 1e300, "timestamp_ms": 5}),
            ),
            (
                json!({"ts": -1, "timestamp_ms": 5}),
                json!({"ts": -1, "timestamp_ms": 5}),
            ),
            (
                json!({"other": 1, "timestamp_ms": 5}),
                json!({"other": 1, "timestamp_ms": 5}),
            ),
        ],
    );
}

#[test]
fn date_remapper_defaults_to_datadogs_date_attributes() {
    for name in [
        "timestamp",
        "date",
        "_timestamp",
        "Timestamp",
        "eventTime",
        "published_date",
    ] {
        let (got, _) = apply(
            &json!({"type": "date-remapper"}),
            json!({name: "2024-03-05T14:30:15Z"}),
        );
        assert_eq!(got["timestamp_ms"], json!(T), "{name}");
    }
}

#[test]
fn syslog_dates_without_a_year_take_the_most_recent_year() {
    let (got, _) = apply(
        &json!({"type": "date-remapper", "sources": ["ts"]}),
        json!({"ts": "Mar  5 14:30:15"}),
    );
    let ms = got["timestamp_ms"].as_i64().expect("a date");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64;
    assert!(
        ms <= now + 86_400_000 && ms > now - 367 * 86_400_000,
        "{ms}"
    );
    // 14:30:15 on 5 March of some year
    assert_eq!(ms.rem_euclid(86_400_000), 52_215_000);
}

#[test]
fn status_remapper_maps_syslog_numbers_and_prefixes_to_stored_statuses() {
    let rows: Vec<_> = [
        (json!(0), "emerg"),
        (json!(1), "alert"),
        (json!(2), "critical"),
        (json!(3), "error"),
        (json!(4), "warn"),
        (json!(5), "notice"),
        (json!(6), "info"),
        (json!(7), "debug"),
        (json!(8), "info"),
        (json!("3"), "error"),
        (json!("emergency"), "emerg"),
        (json!("EMERG"), "emerg"),
        (json!("fatal"), "emerg"),
        (json!("F"), "emerg"),
        (json!("alert"), "alert"),
        (json!("A"), "alert"),
        (json!("crit"), "critical"),
        (json!("CRITICAL"), "critical"),
        (json!("err"), "error"),
        (json!("Error"), "error"),
        (json!("e"), "error"),
        (json!("warning"), "warn"),
        (json!("WARN"), "warn"),
        (json!("notice"), "notice"),
        (json!("info"), "info"),
        (json!("Information"), "info"),
        (json!("debug"), "debug"),
        (json!("trace"), "debug"),
        (json!("verbose"), "debug"),
        (json!("ok"), "ok"),
        (json!("OK"), "ok"),
        (json!("success"), "ok"),
        (json!("Successful"), "ok"),
        (json!("bogus"), "info"),
        (json!(""), "info"),
        (json!(true), "info"),
    ]
    .into_iter()
    .map(|(level, want)| {
        (
            json!({"level": level.clone(), "status": "info"}),
            json!({"level": level, "status": want}),
        )
    })
    .collect();
    table(
        json!({"type": "status-remapper", "sources": ["level"]}),
        &rows,
    );
}

#[test]
fn remapped_statuses_are_what_status_queries_find() {
    for stored in [
        "emerg", "alert", "critical", "error", "warn", "notice", "info", "debug", "ok",
    ] {
        assert_eq!(cairn_query::normalise_status(stored), stored);
    }
}

#[test]
fn status_remapper_takes_the_first_present_source() {
    table(
        json!({"type": "status-remapper", "sources": ["severity", "level"]}),
        &[
            (
                json!({"level": "error", "status": "info"}),
                json!({"level": "error", "status": "error"}),
            ),
            (
                json!({"severity": "warning", "level": "error", "status": "info"}),
                json!({"severity": "warning", "level": "error", "status": "warn"}),
            ),
            (json!({"status": "info"}), json!({"status": "info"})),
        ],
    );
}

#[test]
fn service_message_trace_and_span_remappers_copy_the_first_source() {
    table(
        json!({"type": "service-remapper", "sources": ["app", "svc"]}),
        &[
            (
                json!({"app": "checkout"}),
                json!({"app": "checkout", "service": "checkout"}),
            ),
            (
                json!({"svc": "cart", "service": "web"}),
                json!({"svc": "cart", "service": "cart"}),
            ),
            (json!({"app": 42}), json!({"app": 42, "service": "42"})),
            (
                json!({"app": {"o": 1}, "service": "web"}),
                json!({"app": {"o": 1}, "service": "web"}),
            ),
            (json!({"service": "web"}), json!({"service": "web"})),
        ],
    );
    table(
        json!({"type": "message-remapper"}),
        &[
            (
                json!({"msg": "hello", "message": "{\"msg\":\"hello\"}"}),
                json!({"msg": "hello", "message": "hello"}),
            ),
            (json!({"message": "kept"}), json!({"message": "kept"})),
        ],
    );
    table(
        json!({"type": "message-remapper", "sources": ["event.text"]}),
        &[(
            json!({"event": {"text": "deep"}}),
            json!({"event": {"text": "deep"}, "message": "deep"}),
        )],
    );
    table(
        json!({"type": "trace-id-remapper", "sources": ["trace_id"]}),
        &[
            (
                json!({"trace_id": "abc123"}),
                json!({"trace_id": "abc123", "dd": {"trace_id": "abc123"}}),
            ),
            (
                json!({"trace_id": 1234567890123_i64}),
                json!({"trace_id": 1234567890123_i64, "dd": {"trace_id": "1234567890123"}}),
            ),
            (json!({}), json!({})),
        ],
    );
    table(
        json!({"type": "span-id-remapper", "sources": ["span"]}),
        &[(
            json!({"span": "s1"}),
            json!({"span": "s1", "dd": {"span_id": "s1"}}),
        )],
    );
}

#[test]
fn attribute_remapper_moves_copies_and_casts() {
    let remap = |extra: serde_json::Value| {
        let mut p = json!({"type": "attribute-remapper", "sources": ["user", "usr_name"], "target": "usr.name"});
        for (k, v) in extra.as_object().expect("object") {
            p[k] = v.clone();
        }
        p
    };
    table(
        remap(json!({})),
        &[
            // moved: the source goes away
            (json!({"user": "ann"}), json!({"usr": {"name": "ann"}})),
            // the first present source
            (json!({"usr_name": "bob"}), json!({"usr": {"name": "bob"}})),
            // the target is kept when override_on_conflict is false
            (
                json!({"user": "ann", "usr": {"name": "old"}}),
                json!({"user": "ann", "usr": {"name": "old"}}),
            ),
            // no source, nothing happens
            (json!({"other": 1}), json!({"other": 1})),
            // objects move whole
            (
                json!({"user": {"first": "a"}}),
                json!({"usr": {"name": {"first": "a"}}}),
            ),
        ],
    );
    table(
        remap(json!({"preserve_source": true, "override_on_conflict": true})),
        &[
            (
                json!({"user": "ann"}),
                json!({"user": "ann", "usr": {"name": "ann"}}),
            ),
            (
                json!({"user": "ann", "usr": {"name": "old"}}),
                json!({"user": "ann", "usr": {"name": "ann"}}),
            ),
        ],
    );
    let cast = |format: &str| json!({"type": "attribute-remapper", "sources": ["v"], "target": "n", "target_format": format});
    table(
        cast("integer"),
        &[
            (json!({"v": "42"}), json!({"n": 42})),
            (json!({"v": 42.9}), json!({"n": 42})),
            (json!({"v": "4x"}), json!({"n": "4x"})),
            (json!({"v": 7}), json!({"n": 7})),
        ],
    );
    table(
        cast("double"),
        &[
            (json!({"v": "4.5"}), json!({"n": 4.5})),
            (json!({"v": 4}), json!({"n": 4.0})),
            (json!({"v": "4,5"}), json!({"n": "4,5"})),
        ],
    );
    table(
        cast("string"),
        &[
            (json!({"v": 200}), json!({"n": "200"})),
            (json!({"v": true}), json!({"n": "true"})),
            (json!({"v": "x"}), json!({"n": "x"})),
        ],
    );
    table(cast("auto"), &[(json!({"v": "200"}), json!({"n": "200"}))]);
    // casting in place: the source is its own target
    table(
        json!({"type": "attribute-remapper", "sources": ["code"], "target": "code", "target_format": "integer"}),
        &[(json!({"code": "200"}), json!({"code": 200}))],
    );
}

#[test]
fn attribute_remapper_moves_between_tags_and_attributes() {
    table(
        json!({"type": "attribute-remapper", "source_type": "tag", "sources": ["env"], "target": "environment"}),
        &[
            (
                json!({"tags": ["env:prod", "team:a"]}),
                json!({"tags": ["team:a"], "environment": "prod"}),
            ),
            (json!({"tags": ["team:a"]}), json!({"tags": ["team:a"]})),
        ],
    );
    table(
        json!({"type": "attribute-remapper", "sources": ["region"], "target": "region", "target_type": "tag"}),
        &[
            (
                json!({"region": "eu-west-1"}),
                json!({"tags": ["region:eu-west-1"]}),
            ),
            (
                json!({"region": "eu", "tags": ["region:us"]}),
                json!({"region": "eu", "tags": ["region:us"]}),
            ),
        ],
    );
    table(
        json!({"type": "attribute-remapper", "sources": ["region"], "target": "region", "target_type": "tag", "override_on_conflict": true, "preserve_source": true}),
        &[(
            json!({"region": "eu", "tags": ["region:us"]}),
            json!({"region": "eu", "tags": ["region:eu"]}),
        )],
    );
    table(
        json!({"type": "attribute-remapper", "source_type": "tag", "sources": ["env"], "target": "environment", "target_type": "tag"}),
        &[(
            json!({"tags": ["env:prod"]}),
            json!({"tags": ["environment:prod"]}),
        )],
    );
    // a reserved field is copied, never emptied
    table(
        json!({"type": "attribute-remapper", "sources": ["service"], "target": "app"}),
        &[(
            json!({"service": "web"}),
            json!({"service": "web", "app": "web"}),
        )],
    );
    // `source` is no dedicated-remapper attribute: the remapper writes the log's source
    table(
        json!({"type": "attribute-remapper", "sources": ["logger"], "target": "source"}),
        &[(json!({"logger": "java"}), json!({"source": "java"}))],
    );
}

#[test]
fn category_processor_writes_the_first_matching_category() {
    table(
        json!({
            "type": "category-processor",
            "target": "http.status_category",
            "categories": [
                {"filter": {"query": "@http.status_code:[200 TO 299]"}, "name": "OK"},
                {"filter": {"query": "@http.status_code:[300 TO 399]"}, "name": "notice"},
                {"filter": {"query": "@http.status_code:[400 TO 499]"}, "name": "warning"},
                {"filter": {"query": "@http.status_code:>=500"}, "name": "error"},
                {"filter": {"query": "service:web"}, "name": "web"}
            ]
        }),
        &[
            (
                json!({"http": {"status_code": 204}}),
                json!({"http": {"status_code": 204, "status_category": "OK"}}),
            ),
            (
                json!({"http": {"status_code": 404}}),
                json!({"http": {"status_code": 404, "status_category": "warning"}}),
            ),
            (
                json!({"http": {"status_code": 503}, "service": "web"}),
                json!({"http": {"status_code": 503, "status_category": "error"}, "service": "web"}),
            ),
            (
                json!({"service": "web"}),
                json!({"service": "web", "http": {"status_category": "web"}}),
            ),
            (json!({"service": "db"}), json!({"service": "db"})),
        ],
    );
    table(
        json!({
            "type": "category-processor",
            "target": "kind",
            "categories": [
                {"filter": {"query": "\"connection refused\""}, "name": "network"},
                {"filter": {"query": "timeout OR timed"}, "name": "slow"},
                {"filter": {"query": ""}, "name": "other"}
            ]
        }),
        &[
            (
                json!({"message": "Connection refused by upstream"}),
                json!({"message": "Connection refused by upstream", "kind": "network"}),
            ),
            (
                json!({"message": "request timed out"}),
                json!({"message": "request timed out", "kind": "slow"}),
            ),
            (
                json!({"message": "fine"}),
                json!({"message": "fine", "kind": "other"}),
            ),
        ],
    );
}

#[test]
fn arithmetic_processor_computes_formulas_over_attributes() {
    let arith = |expression: &str, replace: bool| json!({"type": "arithmetic-processor", "expression": expression, "target": "r", "is_replace_missing": replace});
    let rows = [
        ("a + b", json!({"a": 2, "b": 3}), Some(json!(5))),
        ("a - b", json!({"a": 2, "b": 3}), Some(json!(-1))),
        ("a * b / 4", json!({"a": 2, "b": 3}), Some(json!(1.5))),
        ("(a + b) * 2", json!({"a": 2, "b": 3}), Some(json!(10))),
        ("a + b * 2", json!({"a": 2, "b": 3}), Some(json!(8))),
        ("a % b", json!({"a": 7, "b": 3}), Some(json!(1))),
        ("-a + 1", json!({"a": 2}), Some(json!(-1))),
        (
            "(end-time - start-time) / 1000",
            json!({"end-time": 5000, "start-time": 1000}),
            Some(json!(4)),
        ),
        (
            "http.duration_ns / 1000000",
            json!({"http": {"duration_ns": 2_500_000}}),
            Some(json!(2.5)),
        ),
        ("a / 3", json!({"a": 1}), Some(json!(0.333333333))),
        ("a * 1", json!({"a": "12.5"}), Some(json!(12.5))),
        // missing or not a number: skipped
        ("a + b", json!({"a": 2}), None),
        ("a + b", json!({"a": 2, "b": "x"}), None),
        ("a + b", json!({"a": 2, "b": {"c": 1}}), None),
        // division by zero: skipped
        ("a / b", json!({"a": 2, "b": 0}), None),
        ("a % b", json!({"a": 2, "b": 0}), None),
        // overflow to infinity: skipped
        ("a * a", json!({"a": 1e300}), None),
    ];
    let mut wrong = Vec::new();
    for (expr, input, want) in rows {
        let (got, trace) = apply(&arith(expr, false), input.clone());
        assert_eq!(trace.error, None);
        if got.get("r") != want.as_ref() {
            wrong.push(format!(
                "{expr} on {input}: got {:?}, want {want:?}",
                got.get("r")
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    table(
        arith("a + b", true),
        &[
            (json!({"a": 2}), json!({"a": 2, "r": 2})),
            (json!({"a": 2, "b": "x"}), json!({"a": 2, "b": "x", "r": 2})),
        ],
    );
    // the target is overwritten
    table(
        arith("a", false),
        &[(json!({"a": 1, "r": "old"}), json!({"a": 1, "r": 1}))],
    );
}

#[test]
fn string_builder_fills_the_template() {
    let sb = |template: &str, replace: bool| json!({"type": "string-builder-processor", "template": template, "target": "out", "is_replace_missing": replace});
    table(
        sb(
            "Request %{http.method} %{http.url} was answered with %{http.status_code}",
            false,
        ),
        &[
            (
                json!({"http": {"method": "GET", "url": "/x", "status_code": 200}}),
                json!({"http": {"method": "GET", "url": "/x", "status_code": 200}, "out": "Request GET /x was answered with 200"}),
            ),
            // a missing attribute skips the whole processor
            (
                json!({"http": {"method": "GET"}}),
                json!({"http": {"method": "GET"}}),
            ),
        ],
    );
    table(
        sb("user %{user} did %{action}", true),
        &[
            (
                json!({"user": "ann"}),
                json!({"user": "ann", "out": "user ann did "}),
            ),
            (
                json!({"user": {"id": 1}, "action": "x"}),
                json!({"user": {"id": 1}, "action": "x", "out": "user  did x"}),
            ),
        ],
    );
    table(
        sb("ids: %{ids}; first: %{service}", false),
        &[
            (
                json!({"ids": [1, 2, 3], "service": "web"}),
                json!({"ids": [1, 2, 3], "service": "web", "out": "ids: 1,2,3; first: web"}),
            ),
            (
                json!({"ids": [{"a": 1}], "service": "web"}),
                json!({"ids": [{"a": 1}], "service": "web"}),
            ),
        ],
    );
    // no more than 256 characters
    let long = "x".repeat(300);
    let (got, _) = apply(&sb("%{v}", false), json!({"v": long}));
    assert_eq!(got["out"].as_str().map(str::len), Some(256));
    // text without references, and a `%{` that never closes, are literal
    table(
        sb("plain %{ text", false),
        &[(json!({}), json!({"out": "plain %{ text"}))],
    );
}

#[test]
fn url_parser_splits_urls() {
    table(
        json!({"type": "url-parser"}),
        &[
            (
                json!({"http": {"url": "https://shop.example.com:8443/cart/items?id=7&tag=a&tag=b#top"}}),
                json!({"http": {
                    "url": "https://shop.example.com:8443/cart/items?id=7&tag=a&tag=b#top",
                    "url_details": {
                        "scheme": "https", "host": "shop.example.com", "port": 8443,
                        "path": "/cart/items", "queryString": {"id": "7", "tag": ["a", "b"]}
                    }
                }}),
            ),
            (
                json!({"http": {"url": "http://example.com/a%20b/?q=hello%20world"}}),
                json!({"http": {
                    "url": "http://example.com/a%20b/?q=hello%20world",
                    "url_details": {"scheme": "http", "host": "example.com", "port": 80, "path": "/a%20b/", "queryString": {"q": "hello world"}}
                }}),
            ),
            (
                json!({"http": {"url": "/api/v1/users?limit=10"}}),
                json!({"http": {"url": "/api/v1/users?limit=10", "url_details": {"path": "/api/v1/users", "queryString": {"limit": "10"}}}}),
            ),
            (
                json!({"http": {"url": "http://[::1"}}),
                json!({"http": {"url": "http://[::1"}}),
            ),
            (json!({"http": {"url": 42}}), json!({"http": {"url": 42}})),
            (json!({}), json!({})),
        ],
    );
    table(
        json!({"type": "url-parser", "sources": ["link"], "target": "link_details", "normalize_ending_slashes": true}),
        &[(
            json!({"link": "http://example.com/docs/"}),
            json!({"link": "http://example.com/docs/", "link_details": {"scheme": "http", "host": "example.com", "port": 80, "path": "/docs"}}),
        )],
    );
}

#[test]
fn user_agent_parser_names_browser_os_and_device() {
    let chrome = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.109 Safari/537.36";
    let (got, trace) = apply(
        &json!({"type": "user-agent-parser"}),
        json!({"http": {"useragent": chrome}}),
    );
    assert_eq!(trace.error, None);
    assert_eq!(
        got["http"]["useragent_details"],
        json!({
            "browser": {"family": "Chrome", "major": "120", "minor": "0", "patch": "6099"},
            "os": {"family": "Mac OS X", "major": "10", "minor": "15", "patch": "7"},
            "device": {"family": "Mac", "category": "Desktop"}
        })
    );
    let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1";
    let (got, _) = apply(
        &json!({"type": "user-agent-parser", "sources": ["ua"], "target": "ua_details"}),
        json!({"ua": iphone}),
    );
    assert_eq!(
        got["ua_details"]["browser"]["family"],
        json!("Mobile Safari")
    );
    assert_eq!(got["ua_details"]["os"]["family"], json!("iOS"));
    assert_eq!(got["ua_details"]["device"]["category"], json!("Mobile"));
    let bot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
    let (got, _) = apply(
        &json!({"type": "user-agent-parser", "sources": ["ua"]}),
        json!({"ua": bot}),
    );
    assert_eq!(
        got["http"]["useragent_details"]["device"]["category"],
        json!("Bot")
    );
    // URL-encoded agents are decoded first when is_encoded is set
    let encoded = "Mozilla%2F5.0%20(Windows%20NT%2010.0%3B%20Win64%3B%20x64%3B%20rv%3A121.0)%20Gecko%2F20100101%20Firefox%2F121.0";
    let (got, _) = apply(
        &json!({"type": "user-agent-parser", "sources": ["ua"], "is_encoded": true}),
        json!({"ua": encoded}),
    );
    assert_eq!(
        got["http"]["useragent_details"]["browser"]["family"],
        json!("Firefox")
    );
    assert_eq!(
        got["http"]["useragent_details"]["os"]["family"],
        json!("Windows")
    );
    // no source: nothing written
    let (got, _) = apply(&json!({"type": "user-agent-parser"}), json!({}));
    assert_eq!(got, json!({}));
}

#[test]
fn lookup_processor_maps_through_its_table() {
    table(
        json!({
            "type": "lookup-processor", "source": "user.id", "target": "user.team",
            "lookup_table": ["1,payments", "2, search ", "3,a,b", "1,duplicate"],
        }),
        &[
            (
                json!({"user": {"id": "1"}}),
                json!({"user": {"id": "1", "team": "payments"}}),
            ),
            (
                json!({"user": {"id": 2}}),
                json!({"user": {"id": 2, "team": "search"}}),
            ),
            (
                json!({"user": {"id": 3}}),
                json!({"user": {"id": 3, "team": "a,b"}}),
            ),
            (json!({"user": {"id": 9}}), json!({"user": {"id": 9}})),
            (json!({}), json!({})),
        ],
    );
    table(
        json!({
            "type": "lookup-processor", "source": "code", "target": "country",
            "lookup_table": ["fr,France"], "default_lookup": "unknown",
        }),
        &[
            (
                json!({"code": "fr"}),
                json!({"code": "fr", "country": "France"}),
            ),
            (
                json!({"code": "zz"}),
                json!({"code": "zz", "country": "unknown"}),
            ),
            (json!({}), json!({})),
        ],
    );
}

#[test]
fn grok_parser_without_a_match_changes_nothing() {
    table(
        json!({"type": "grok-parser", "grok": {"match_rules": "rule %{word:verb} %{notSpace:path}"}}),
        &[(
            json!({"message": "no such shape here at all"}),
            json!({"message": "no such shape here at all"}),
        )],
    );
}

#[test]
#[ignore = "needs grok"]
fn grok_parser_merges_what_it_extracts() {
    table(
        json!({"type": "grok-parser", "grok": {
            "support_rules": "verb %{word:http.method}",
            "match_rules": "access %{verb} %{notSpace:http.url} %{integer:http.status_code}\nlevel %{word:level}: %{data:msg}"
        }}),
        &[
            (
                json!({"message": "GET /x 200", "http": {"version": "1.1"}}),
                json!({"message": "GET /x 200", "http": {"version": "1.1", "method": "GET", "url": "/x", "status_code": 200}}),
            ),
            (
                json!({"message": "ERROR: boom"}),
                json!({"message": "ERROR: boom", "level": "ERROR", "msg": "boom"}),
            ),
        ],
    );
    table(
        json!({"type": "grok-parser", "source": "raw", "grok": {"match_rules": "r %{word:status} %{data:message}"}}),
        &[(
            json!({"raw": "warning disk low"}),
            json!({"raw": "warning disk low", "status": "warn", "message": "disk low"}),
        )],
    );
}

#[test]
fn disabled_processors_do_nothing() {
    table(
        json!({"type": "service-remapper", "sources": ["app"], "is_enabled": false}),
        &[(json!({"app": "x"}), json!({"app": "x"}))],
    );
}
