//! Events written as one JSON object: the reserved fields by name, everything else an
//! attribute, so a table row reads like the log it stands for.

#![allow(dead_code)]

use cairn_pipelines::{Config, Event, Pipelines, Trace};
use serde_json::{json, Map, Value};

pub fn event(v: Value) -> Event {
    let mut map = v.as_object().expect("an object").clone();
    let mut text = |k: &str| match map.remove(k) {
        Some(Value::String(s)) => s,
        Some(other) => panic!("{k} must be a string, got {other}"),
        None => String::new(),
    };
    let message = text("message");
    let status = text("status");
    let host = text("host");
    let service = text("service");
    let source = text("source");
    let tags = match map.remove("tags") {
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|t| t.as_str().expect("tags are strings").to_owned())
            .collect(),
        _ => Vec::new(),
    };
    let timestamp_ms = map
        .remove("timestamp_ms")
        .and_then(|v| v.as_i64())
        .unwrap_or(0);
    Event {
        timestamp_ms,
        status,
        host,
        service,
        source,
        message,
        tags,
        attributes: map,
    }
}

/// The inverse of [`event`], leaving out empty fields so rows stay short.
pub fn to_value(e: &Event) -> Value {
    let mut map: Map<String, Value> = e.attributes.clone();
    for (k, v) in [
        ("message", &e.message),
        ("status", &e.status),
        ("host", &e.host),
        ("service", &e.service),
        ("source", &e.source),
    ] {
        if !v.is_empty() {
            map.insert(k.into(), Value::String(v.clone()));
        }
    }
    if !e.tags.is_empty() {
        map.insert("tags".into(), json!(e.tags));
    }
    if e.timestamp_ms != 0 {
        map.insert("timestamp_ms".into(), json!(e.timestamp_ms));
    }
    Value::Object(map)
}

pub fn pipelines_of(processors: Value) -> Pipelines {
    let config = Config::from_json(json!([{"name": "p", "processors": processors}]))
        .unwrap_or_else(|e| panic!("{e}"));
    Pipelines::compile(&config).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs one processor on one event.
pub fn apply(processor: &Value, input: Value) -> (Value, Trace) {
    let p = pipelines_of(json!([processor]));
    let mut e = event(input);
    let trace = p.process(&mut e);
    (to_value(&e), trace)
}

/// Runs each row `(input, expected)` through `processor`, collecting every mismatch so one
/// run shows all of them.
pub fn table(processor: Value, rows: &[(Value, Value)]) {
    let mut wrong = Vec::new();
    for (i, (input, want)) in rows.iter().enumerate() {
        let (got, trace) = apply(&processor, input.clone());
        if trace.error.is_some() {
            wrong.push(format!("row {i}: error {:?}", trace.error));
        } else if &got != want {
            wrong.push(format!("row {i}: {input}\n   got  {got}\n   want {want}"));
        }
    }
    assert!(wrong.is_empty(), "{}\n{}", processor, wrong.join("\n"));
}
