//! `Pipelines::process`: order, filters, nesting, the trace, and the log left as it arrived
//! when a processor fails.

use cairn_pipelines::{Config, Event, Pipelines, Step};
use serde_json::json;

fn event(message: &str, attributes: serde_json::Value) -> Event {
    Event {
        timestamp_ms: 1_000,
        status: "info".into(),
        host: "web-1".into(),
        service: "web".into(),
        source: "nginx".into(),
        message: message.into(),
        tags: vec!["env:prod".into()],
        attributes: attributes.as_object().expect("an object").clone(),
    }
}

fn compile(yaml: &str) -> Pipelines {
    let config = Config::from_text(yaml).unwrap_or_else(|e| panic!("{e}"));
    Pipelines::compile(&config).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn pipelines_run_in_order_and_each_sees_the_previous_ones_work() {
    let p = compile(
        r#"
pipelines:
  - name: first
    processors:
      - type: status-remapper
        sources: [level]
      - type: service-remapper
        name: svc
        sources: [app]
  - name: only errors
    filter: {query: "status:error"}
    processors:
      - type: category-processor
        target: severity
        categories:
          - filter: {query: "status:error"}
            name: bad
  - name: never
    filter: {query: "service:nothing"}
    processors:
      - type: lookup-processor
        source: app
        target: x
        lookup_table: ["a,b"]
"#,
    );
    let mut e = event("boom", json!({"level": "ERROR", "app": "checkout"}));
    let trace = p.process(&mut e);
    assert_eq!(trace.error, None);
    assert_eq!(e.status, "error");
    assert_eq!(e.service, "checkout");
    assert_eq!(e.attributes["severity"], json!("bad"));
    assert!(e.attributes.get("x").is_none());
    assert_eq!(
        trace.steps,
        vec![
            Step {
                pipeline: "first".into(),
                processors: vec!["status-remapper".into(), "svc".into()],
            },
            Step {
                pipeline: "only errors".into(),
                processors: vec!["category-processor".into()],
            },
        ]
    );
}

#[test]
fn a_failing_processor_leaves_the_log_as_it_arrived_and_names_itself() {
    let p = compile(
        r#"
- name: first
  processors:
    - type: service-remapper
      sources: [app]
- name: second
  processors:
    - type: string-builder-processor
      name: build
      template: "x"
      target: a.b
    - type: status-remapper
      sources: [level]
- name: third
  processors:
    - type: status-remapper
      sources: [level]
"#,
    );
    let arrived = event(
        "m",
        json!({"app": "checkout", "a": "a string", "level": "error"}),
    );
    let mut e = arrived.clone();
    let trace = p.process(&mut e);
    assert_eq!(e, arrived, "restored as it arrived");
    assert_eq!(
        trace.error.as_deref(),
        Some("second › build: cannot set a.b: a holds a string, not an object")
    );
    // the steps up to the failure stay, to show where it happened
    assert_eq!(trace.steps.len(), 2);
    assert_eq!(
        trace.steps[0].processors,
        vec!["service-remapper".to_string()]
    );
    // The variant for callers that keep their own copy: the same trace, no restoring.
    let mut e = arrived.clone();
    assert_eq!(p.process_discarding_on_error(&mut e), trace);
    assert_ne!(e, arrived);
}

#[test]
fn nested_pipelines_run_under_their_own_filter_and_show_in_the_trace() {
    let p = compile(
        r#"
- name: outer
  filter: {query: "source:nginx"}
  processors:
    - type: pipeline
      name: errors only
      filter: {query: "@code:>=500"}
      processors:
        - type: lookup-processor
          source: code
          target: kind
          lookup_table: ["503,unavailable"]
    - type: pipeline
      name: never
      filter: {query: "@code:<100"}
      processors:
        - type: lookup-processor
          source: code
          target: never
          lookup_table: ["503,x"]
    - type: service-remapper
      sources: [app]
"#,
    );
    let mut e = event("m", json!({"code": 503, "app": "lb"}));
    let trace = p.process(&mut e);
    assert_eq!(trace.error, None);
    assert_eq!(e.attributes["kind"], json!("unavailable"));
    assert!(e.attributes.get("never").is_none());
    assert_eq!(e.service, "lb");
    assert_eq!(
        trace.steps,
        vec![
            Step {
                pipeline: "outer".into(),
                processors: vec!["errors only".into(), "service-remapper".into()],
            },
            Step {
                pipeline: "errors only".into(),
                processors: vec!["lookup-processor".into()],
            },
        ]
    );
    // a log the outer filter does not select is untouched and leaves no step
    let mut other = event("m", json!({"code": 503, "app": "lb"}));
    other.source = "apache".into();
    let before = other.clone();
    let trace = p.process(&mut other);
    assert_eq!(other, before);
    assert!(trace.steps.is_empty());
}

#[test]
fn an_error_inside_a_nested_pipeline_names_both_pipelines() {
    let p = compile(
        r#"
- name: outer
  processors:
    - type: pipeline
      name: inner
      processors:
        - type: category-processor
          name: cat
          target: a.b
          categories: [{filter: {query: ""}, name: x}]
"#,
    );
    let mut e = event("m", json!({"a": 1}));
    let trace = p.process(&mut e);
    assert_eq!(
        trace.error.as_deref(),
        Some("outer › inner › cat: cannot set a.b: a holds a number, not an object")
    );
    assert_eq!(e.attributes["a"], json!(1));
}

#[test]
fn the_first_status_remapper_and_the_last_date_remapper_that_apply_count() {
    let p = compile(
        r#"
- name: one
  processors:
    - type: status-remapper
      sources: [absent]
    - type: status-remapper
      sources: [level]
    - type: date-remapper
      sources: [ts]
- name: two
  processors:
    - type: status-remapper
      sources: [other_level]
    - type: date-remapper
      sources: [other_ts]
"#,
    );
    let mut e = event(
        "m",
        json!({"level": "warn", "other_level": "error", "ts": 5000, "other_ts": 9000}),
    );
    p.process(&mut e);
    assert_eq!(e.status, "warn");
    assert_eq!(e.timestamp_ms, 9_000_000);
}

#[test]
fn unchanged_logs_record_the_step_but_no_processor() {
    let p = compile(
        "- name: quiet\n  processors:\n    - type: service-remapper\n      sources: [app]\n",
    );
    let mut e = event("m", json!({}));
    let trace = p.process(&mut e);
    assert_eq!(
        trace.steps,
        vec![Step {
            pipeline: "quiet".into(),
            processors: vec![]
        }]
    );
}

#[test]
fn filters_see_the_log_as_earlier_pipelines_left_it() {
    let p = compile(
        r#"
- name: set service
  processors: [{type: service-remapper, sources: [app]}]
- name: by service
  filter: {query: "service:checkout"}
  processors: [{type: lookup-processor, source: app, target: seen, lookup_table: ["checkout,yes"]}]
"#,
    );
    let mut e = event("m", json!({"app": "checkout"}));
    p.process(&mut e);
    assert_eq!(e.attributes["seen"], json!("yes"));
}

#[test]
fn pipelines_are_shared_across_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Pipelines>();
    let p = std::sync::Arc::new(compile(
        "- name: a\n  processors: [{type: status-remapper, sources: [level]}]\n",
    ));
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let p = p.clone();
            std::thread::spawn(move || {
                let mut e = event("m", json!({"level": i}));
                p.process(&mut e);
                e.status
            })
        })
        .collect();
    let statuses: Vec<String> = handles
        .into_iter()
        .map(|h| h.join().expect("no panic"))
        .collect();
    assert_eq!(statuses, ["emerg", "alert", "critical", "error"]);
}

#[test]
fn odd_logs_never_panic() {
    let p = compile(
        r#"
- name: everything
  processors:
    - {type: grok-parser, grok: {match_rules: "r %{data:x}"}}
    - {type: date-remapper}
    - {type: status-remapper, sources: [level, status]}
    - {type: service-remapper, sources: [service, app]}
    - {type: message-remapper}
    - {type: trace-id-remapper}
    - {type: attribute-remapper, sources: [deep], target: deep2, target_format: integer}
    - {type: attribute-remapper, sources: [env], source_type: tag, target: env, target_type: tag}
    - {type: category-processor, target: c, categories: [{filter: {query: "@deep:* OR boom*"}, name: y}]}
    - {type: arithmetic-processor, expression: "big * big / tiny % 3", target: n, is_replace_missing: true}
    - {type: string-builder-processor, template: "%{deep}%{big}%{message}", target: s, is_replace_missing: true}
    - {type: url-parser, sources: [message, big]}
    - {type: user-agent-parser, sources: [message], is_encoded: true}
    - {type: lookup-processor, source: big, target: l, lookup_table: ["1e308,x"], default_lookup: d}
"#,
    );
    let mut deep = json!("leaf");
    for _ in 0..200 {
        deep = json!({ "d": deep });
    }
    let logs = [
        event("", json!({})),
        event(
            "\u{0}\u{ffff}%ZZ%",
            json!({"big": 1e308, "tiny": 1e-308, "level": -3, "msg": null}),
        ),
        event(
            "boom",
            json!({"deep": deep, "timestamp": "9999-12-31T23:59:59Z", "big": "NaN"}),
        ),
        event(
            &"ü".repeat(10_000),
            json!({"timestamp": u64::MAX, "date": i64::MIN, "level": 1e300}),
        ),
        event(
            "http://",
            json!({"timestamp": "", "status": [], "service": {}, "app": [1, [2]]}),
        ),
    ];
    for mut e in logs {
        let _ = p.process(&mut e);
    }
}

#[test]
fn an_unnamed_nested_pipeline_shows_by_its_type() {
    let p = compile(
        "- name: outer\n  processors:\n    - type: pipeline\n      processors: [{type: service-remapper, sources: [app]}]\n",
    );
    let mut e = event("m", json!({"app": "x"}));
    let trace = p.process(&mut e);
    assert_eq!(trace.steps[0].processors, vec!["pipeline".to_string()]);
    assert_eq!(trace.steps[1].pipeline, "pipeline");
}
