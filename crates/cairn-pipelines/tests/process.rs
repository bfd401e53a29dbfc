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
