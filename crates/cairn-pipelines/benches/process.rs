//! The cost per log of the issue's realistic pipeline (a grok parser with 3 rules, a date and
//! a status remapper, a category processor), beside a reference measured in the same run:
//! cloning the same log, the least any copy-on-write scheme would pay.
//!
//! `cargo bench -p cairn-pipelines --bench process`

use std::hint::black_box;
use std::time::Instant;

use cairn_pipelines::{Config, Event, Pipelines};
use serde_json::json;

const PIPELINE: &str = r#"
- name: web
  filter: {query: "source:nginx"}
  processors:
    - type: grok-parser
      grok:
        support_rules: "_method %{word:http.method}"
        match_rules: |
          access %{ipOrHost:network.client.ip} %{_method} %{notSpace:http.url} %{integer:http.status_code}
          error %{word:level}: %{data:error.message}
          other %{data:rest}
    - type: date-remapper
      sources: [ts]
    - type: status-remapper
      sources: [level]
    - type: category-processor
      target: http.status_category
      categories:
        - {filter: {query: "@http.status_code:[200 TO 299]"}, name: OK}
        - {filter: {query: "@http.status_code:[300 TO 399]"}, name: notice}
        - {filter: {query: "@http.status_code:[400 TO 499]"}, name: warning}
        - {filter: {query: "@http.status_code:[500 TO 599]"}, name: error}
"#;

fn log() -> Event {
    Event {
        timestamp_ms: 0,
        status: "info".into(),
        host: "web-1".into(),
        service: "web".into(),
        source: "nginx".into(),
        message: "10.0.0.1 GET /api/cart 503".into(),
        tags: vec!["env:prod".into(), "team:edge".into()],
        attributes: json!({
            "ts": "2024-03-05T14:30:15.123Z",
            "level": "error",
            "http": {"status_code": 503, "method": "GET", "url": "/api/cart"},
        })
        .as_object()
        .expect("an object")
        .clone(),
    }
}

fn per_log_ns(n: u32, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    start.elapsed().as_nanos() as f64 / f64::from(n)
}

fn main() {
    let pipelines =
        Pipelines::compile(&Config::from_text(PIPELINE).expect("reads")).expect("compiles");
    let template = log();
    let n = 200_000;
    // warm up
    per_log_ns(n / 10, || {
        let mut e = template.clone();
        black_box(pipelines.process(&mut e));
    });
    let clone_ns = per_log_ns(n, || {
        black_box(template.clone());
    });
    let run_ns = per_log_ns(n, || {
        let mut e = template.clone();
        black_box(pipelines.process(&mut e));
    });
    let mut skipped = template.clone();
    skipped.source = "apache".into();
    let skip_ns = per_log_ns(n, || {
        let mut e = skipped.clone();
        black_box(pipelines.process(&mut e));
    });
    println!("reference: clone of the log            {clone_ns:>8.0} ns");
    println!("pipeline applies (clone included)      {run_ns:>8.0} ns/log");
    println!("filter does not match (clone included) {skip_ns:>8.0} ns/log");
}
