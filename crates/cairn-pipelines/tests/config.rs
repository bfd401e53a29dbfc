//! Reading pipeline files: the shapes accepted, Datadog's defaults, and errors that name the
//! pipeline, the processor and the field.

use cairn_pipelines::{Config, Pipelines};
use serde_json::json;

#[test]
fn yaml_json_lists_and_single_pipelines_all_read() {
    let shapes = [
        "pipelines:\n  - name: a\n    processors: []\n",
        "- name: a\n",
        "name: a\nprocessors: []\n",
        r#"{"pipelines": [{"name": "a"}]}"#,
        r#"[{"name": "a", "processors": []}]"#,
        r#"{"name": "a"}"#,
    ];
    for text in shapes {
        let config = Config::from_text(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(config.pipelines.len(), 1, "{text}");
        assert_eq!(config.pipelines[0]["name"], json!("a"), "{text}");
    }
    for empty in [
        "",
        "   \n",
        "# only a comment\n",
        "pipelines: []",
        "pipelines:",
        "[]",
    ] {
        let config = Config::from_text(empty).unwrap_or_else(|e| panic!("{empty:?}: {e}"));
        assert!(config.pipelines.is_empty(), "{empty:?}");
        assert!(Pipelines::compile(&config).expect("compiles").is_empty());
    }
}

#[test]
fn to_json_fills_in_datadogs_defaults_and_keeps_unknown_fields() {
    let config = Config::from_text(
        r#"
pipelines:
  - name: web
    description: kept as written
    processors:
      - type: grok-parser
        grok:
          match_rules: 'r %{word:x}'
      - type: url-parser
      - type: user-agent-parser
        is_enabled: false
      - type: attribute-remapper
        sources: [a]
        target: b
      - type: arithmetic-processor
        expression: a + 1
        target: b
      - type: message-remapper
      - type: pipeline
        name: inner
        processors:
          - type: date-remapper
"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = config.to_json();
    let p = &out[0];
    assert!(p["id"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(p["type"], json!("pipeline"));
    assert_eq!(p["is_enabled"], json!(true));
    assert_eq!(p["is_read_only"], json!(false));
    assert_eq!(p["filter"], json!({"query": ""}));
    assert_eq!(p["description"], json!("kept as written"));
    let procs = &p["processors"];
    assert_eq!(
        procs[0],
        json!({"type": "grok-parser", "name": "", "is_enabled": true, "source": "message", "samples": [],
               "grok": {"match_rules": "r %{word:x}", "support_rules": ""}})
    );
    assert_eq!(
        procs[1],
        json!({"type": "url-parser", "name": "", "is_enabled": true, "sources": ["http.url"],
               "target": "http.url_details", "normalize_ending_slashes": false})
    );
    assert_eq!(procs[2]["is_enabled"], json!(false));
    assert_eq!(procs[2]["sources"], json!(["http.useragent"]));
    assert_eq!(procs[2]["target"], json!("http.useragent_details"));
    assert_eq!(procs[2]["is_encoded"], json!(false));
    assert_eq!(
        procs[3],
        json!({"type": "attribute-remapper", "name": "", "is_enabled": true, "sources": ["a"], "target": "b",
               "source_type": "attribute", "target_type": "attribute", "preserve_source": false,
               "override_on_conflict": false})
    );
    assert_eq!(procs[4]["is_replace_missing"], json!(false));
    assert_eq!(procs[5]["sources"], json!(["msg"]));
    assert_eq!(procs[6]["filter"], json!({"query": ""}));
    assert_eq!(
        procs[6]["processors"][0]["sources"],
        json!([
            "timestamp",
            "date",
            "_timestamp",
            "Timestamp",
            "eventTime",
            "published_date"
        ])
    );
    // what to_json shows reads back to the same thing
    let again = Config::from_json(out.clone()).expect("reads back");
    assert_eq!(again.to_json(), out);
}

#[test]
fn generated_ids_are_stable_and_distinct_and_given_ids_are_kept() {
    let text = "- name: a\n- name: b\n- name: c\n  id: mine\n";
    let one = Config::from_text(text).expect("reads").to_json();
    let two = Config::from_text(text).expect("reads").to_json();
    assert_eq!(one, two);
    assert_ne!(one[0]["id"], one[1]["id"]);
    assert_eq!(one[2]["id"], json!("mine"));
}

#[test]
fn bad_definitions_name_pipeline_processor_and_field() {
    let cases: &[(&str, &str, &str)] = &[
        ("pipelines: 3", "pipelines", "expected a list"),
        ("42", "top level", "expected"),
        ("{\"pipelines\": [", "line 1", "invalid JSON"),
        ("pipelines:\n  - name: [unclosed\n", "line", "invalid YAML"),
        ("- processors: []", "pipeline \"\" (#1) › name", "required"),
        ("- name: 7", "pipeline \"\" (#1) › name", "expected a string"),
        ("- name: a\n  is_enabled: yes please", "pipeline \"a\" (#1) › is_enabled", "true or false"),
        ("- name: a\n  filter: {query: 'service:(a'}", "pipeline \"a\" (#1) › filter.query", "query error"),
        ("- name: a\n  filter: nope", "pipeline \"a\" (#1) › filter", "mapping"),
        ("- name: a\n  processors: {}", "pipeline \"a\" (#1) › processors", "list"),
        ("- name: a\n  type: other", "pipeline \"a\" (#1) › type", "pipeline"),
        (
            "- name: ok\n- name: web\n  processors:\n    - type: date-remapper\n    - type: frobnicator\n      name: frob",
            "pipeline \"web\" (#2) › processor \"frob\" (#2, frobnicator) › type",
            "unknown processor type",
        ),
        ("- name: a\n  processors: [{name: x}]", "processor \"x\" (#1, ?) › type", "required"),
        ("- name: a\n  processors: [{type: geo-ip-parser}]", "processor #1 (geo-ip-parser) › type", "not supported by Cairn"),
        ("- name: a\n  processors: [7]", "pipeline \"a\" (#1) › processor #1 (?)", "mapping"),
        (
            "- name: a\n  processors: [{type: grok-parser}]",
            "pipeline \"a\" (#1) › processor #1 (grok-parser) › grok",
            "required",
        ),
        (
            "- name: a\n  processors: [{type: grok-parser, grok: {support_rules: ''}}]",
            "processor #1 (grok-parser) › grok.match_rules",
            "required",
        ),
        (
            "- name: a\n  processors: [{type: grok-parser, grok: {match_rules: 5}}]",
            "processor #1 (grok-parser) › grok.match_rules",
            "expected a string",
        ),
        (
            "- name: a\n  processors: [{type: grok-parser, source: 'a..b', grok: {match_rules: 'r x'}}]",
            "processor #1 (grok-parser) › source",
            "not an attribute name",
        ),
        ("- name: a\n  processors: [{type: status-remapper}]", "processor #1 (status-remapper) › sources", "required"),
        ("- name: a\n  processors: [{type: status-remapper, sources: []}]", "› sources", "at least one"),
        ("- name: a\n  processors: [{type: status-remapper, sources: level}]", "› sources", "list of strings"),
        ("- name: a\n  processors: [{type: service-remapper, sources: [ok, 3]}]", "› sources[1]", "expected a string"),
        ("- name: a\n  processors: [{type: date-remapper, is_enabled: 1}]", "processor #1 (date-remapper) › is_enabled", "true or false"),
        ("- name: a\n  processors: [{type: attribute-remapper, sources: [a]}]", "(attribute-remapper) › target", "required"),
        ("- name: a\n  processors: [{type: attribute-remapper, target: b}]", "(attribute-remapper) › sources", "required"),
        ("- name: a\n  processors: [{type: attribute-remapper, sources: [a], target: host}]", "› target", "host cannot be remapped"),
        ("- name: a\n  processors: [{type: attribute-remapper, sources: [a], target: status}]", "› target", "status-remapper"),
        ("- name: a\n  processors: [{type: attribute-remapper, sources: [a], target: 'a:b'}]", "› target", "not allowed"),
        ("- name: a\n  processors: [{type: attribute-remapper, sources: [a], target: b, source_type: field}]", "› source_type", "attribute"),
        ("- name: a\n  processors: [{type: attribute-remapper, sources: [a], target: b, target_type: field}]", "› target_type", "attribute"),
        ("- name: a\n  processors: [{type: attribute-remapper, sources: [a], target: b, target_format: long}]", "› target_format", "integer"),
        ("- name: a\n  processors: [{type: category-processor, target: t}]", "(category-processor) › categories", "required"),
        ("- name: a\n  processors: [{type: category-processor, categories: []}]", "(category-processor) › target", "required"),
        ("- name: a\n  processors: [{type: category-processor, target: t, categories: [{filter: {query: x}}]}]", "› categories[0].name", "required"),
        ("- name: a\n  processors: [{type: category-processor, target: t, categories: [{name: n, filter: {query: '(('}}]}]", "› categories[0].filter.query", "query error"),
        ("- name: a\n  processors: [{type: arithmetic-processor, target: t}]", "(arithmetic-processor) › expression", "required"),
        ("- name: a\n  processors: [{type: arithmetic-processor, expression: 'a +', target: t}]", "› expression", "expected a number or an attribute"),
        ("- name: a\n  processors: [{type: arithmetic-processor, expression: '(a', target: t}]", "› expression", "')'"),
        ("- name: a\n  processors: [{type: arithmetic-processor, expression: 'a b', target: t}]", "› expression", "unexpected"),
        ("- name: a\n  processors: [{type: arithmetic-processor, expression: 'a', target: t, is_replace_missing: 'no'}]", "› is_replace_missing", "true or false"),
        ("- name: a\n  processors: [{type: string-builder-processor, target: t}]", "(string-builder-processor) › template", "required"),
        ("- name: a\n  processors: [{type: string-builder-processor, template: '%{}', target: t}]", "› template", "not an attribute name"),
        ("- name: a\n  processors: [{type: lookup-processor, source: s, target: t}]", "(lookup-processor) › lookup_table", "required"),
        ("- name: a\n  processors: [{type: lookup-processor, source: s, target: t, lookup_table: ['nocomma']}]", "› lookup_table[0]", "key,value"),
        ("- name: a\n  processors: [{type: lookup-processor, target: t, lookup_table: []}]", "(lookup-processor) › source", "required"),
        ("- name: a\n  processors: [{type: url-parser, target: 3}]", "(url-parser) › target", "expected a string"),
        (
            "- name: a\n  processors:\n    - type: pipeline\n      name: inner\n      processors:\n        - type: pipeline\n          name: deeper",
            "pipeline \"a\" (#1) › processor \"inner\" (#1, pipeline) › processor \"deeper\" (#1, pipeline) › type",
            "one level",
        ),
        (
            "- name: a\n  processors:\n    - type: pipeline\n      name: inner\n      processors:\n        - type: status-remapper",
            "pipeline \"a\" (#1) › processor \"inner\" (#1, pipeline) › processor #1 (status-remapper) › sources",
            "required",
        ),
        // a disabled processor is checked all the same
        ("- name: a\n  processors: [{type: status-remapper, is_enabled: false}]", "› sources", "required"),
    ];
    let mut wrong = Vec::new();
    for (text, location, message) in cases {
        match Config::from_text(text) {
            Ok(_) => wrong.push(format!("{text:?} was accepted")),
            Err(e) => {
                if !e.location.contains(location) || !e.message.contains(message) {
                    wrong.push(format!(
                        "{text:?}\n   got  {} | {}\n   want {location} | {message}",
                        e.location, e.message
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn compile_checks_configs_built_without_from_text() {
    let config = Config {
        pipelines: vec![json!({"name": "raw", "processors": [{"type": "nope"}]})],
    };
    let e = Pipelines::compile(&config).expect_err("refused");
    assert_eq!(
        e.location,
        "pipeline \"raw\" (#1) › processor #1 (nope) › type"
    );
    assert_eq!(e.to_string(), format!("{}: {}", e.location, e.message));
}

#[test]
fn disabled_pipelines_are_not_run() {
    let config = Config::from_text("- name: off\n  is_enabled: false\n").expect("reads");
    assert!(Pipelines::compile(&config).expect("compiles").is_empty());
}

#[test]
fn an_id_that_is_not_a_path_segment_is_refused() {
    for id in ["../../etc/x", "a/b", "", "with space"] {
        let text = serde_json::json!([{"id": id, "name": "p", "processors": []}]).to_string();
        let err = cairn_pipelines::Config::from_text(&text).expect_err(id);
        assert!(err.location.ends_with("› id"), "{id}: {}", err.location);
    }
    let ok = serde_json::json!([{"id": "OOXA7bfeR2O8-uUX_Qm6", "name": "p", "processors": []}]);
    cairn_pipelines::Config::from_text(&ok.to_string()).expect("a Datadog-style id");
}

#[test]
fn a_misspelt_field_is_warned_about_naming_where_it_is() {
    let text = r#"
pipelines:
  - name: web
    bogus: 1
    processors:
      - type: grok-parser
        name: parse
        sourcee: msg
        grok: {match_rules: "r %{word:w}", support_rules: "", extra: 1}
      - type: status-remapper
        sources: [level]
"#;
    let config = Config::from_text(text).expect("unknown fields are not errors");
    let w = config.warnings();
    assert_eq!(w.len(), 3, "{w:#?}");
    assert!(
        w[0].starts_with("pipeline \"web\" (#1): unknown field \"bogus\""),
        "{}",
        w[0]
    );
    assert!(
        w[1].starts_with("pipeline \"web\" (#1) › processor \"parse\" (#1, grok-parser): unknown field \"sourcee\""),
        "{}",
        w[1]
    );
    assert!(w[2].contains("› grok: unknown field \"extra\""), "{}", w[2]);
    // What Datadog exports has no unknown field.
    let export = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/datadog-export-nginx.json"
    ))
    .unwrap();
    assert_eq!(
        Config::from_text(&export).unwrap().warnings(),
        Vec::<String>::new()
    );
}
