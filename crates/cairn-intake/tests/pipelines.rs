//! Pipelines end to end over HTTP: a pipelines file with a grok parser, a status remapper and
//! a category processor, logs posted to /api/v2/logs and searched back from the SQLite store;
//! reload on change; the pipelines API (PUT/GET/POST/DELETE, validation, the file on disk);
//! processor errors; the preview route.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::Harness;
use serde_json::{json, Value};

const NGINX: &str = r#"pipelines:
  - name: nginx
    is_enabled: true
    filter:
      query: "source:nginx"
    processors:
      - type: grok-parser
        name: parse access
        is_enabled: true
        source: message
        samples: []
        grok:
          support_rules: ""
          match_rules: |
            access_line access %{ip:network.client.ip} %{word:http.method} %{notSpace:http.url} %{integer:http.status_code} %{word:level}
      - type: status-remapper
        name: status from level
        is_enabled: true
        sources: [level]
      - type: category-processor
        name: status class
        is_enabled: true
        target: http.status_category
        categories:
          - filter: {query: "@http.status_code:[200 TO 299]"}
            name: OK
          - filter: {query: "@http.status_code:[500 TO 599]"}
            name: error
"#;

fn pipelines_file(cfg: &cairn_intake::IntakeConfig) -> PathBuf {
    cfg.pipelines_file.clone()
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    // Through a rename, as editors and config tools do, so the poller sees one whole file.
    let tmp = path.with_extension("tmp-test");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn start_with_file(text: Option<&str>) -> (Harness, PathBuf) {
    let mut file = PathBuf::new();
    let h = Harness::start_with(|cfg| {
        file = pipelines_file(cfg);
        if let Some(t) = text {
            write(&file, t);
        }
    })
    .await;
    (h, file)
}

fn ingest_line(message: &str, source: &str) -> Value {
    json!({"message": message, "ddsource": source, "service": "web", "hostname": "h1", "ddtags": "env:test"})
}

async fn one(h: &Harness, query: &str) -> Value {
    let found = h.search(query).await;
    assert_eq!(found.len(), 1, "{query}: {found:?}");
    found[0]["attributes"].clone()
}

/// The one stored log whose message contains `needle`.
async fn with_message(h: &Harness, needle: &str) -> Value {
    let found: Vec<Value> = h
        .search("*")
        .await
        .into_iter()
        .filter(|l| {
            l["attributes"]["message"]
                .as_str()
                .unwrap_or("")
                .contains(needle)
        })
        .collect();
    assert_eq!(found.len(), 1, "{needle}: {found:?}");
    found[0]["attributes"].clone()
}

async fn get(h: &Harness, path: &str) -> (u16, Value) {
    let resp = h.http.get(h.url(path)).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn send(h: &Harness, method: reqwest::Method, path: &str, body: &Value) -> (u16, Value) {
    let resp = h
        .http
        .request(method, h.url(path))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Polls until `done` holds on the pipelines list, for the file poller (every 2 s).
async fn wait_for_list(h: &Harness, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, list) = get(h, "/api/v1/logs/config/pipelines").await;
        assert_eq!(status, 200);
        if done(&list) {
            return list;
        }
        assert!(Instant::now() < deadline, "not reloaded: {list}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn parsed_logs_are_stored_with_their_attributes_status_and_provenance() {
    let (h, _) = start_with_file(Some(NGINX)).await;
    h.ingest(&json!([
        ingest_line("access 10.0.0.1 GET /index.html 200 warn", "nginx"),
        ingest_line("access 10.0.0.2 POST /pay 503 error", "nginx"),
        ingest_line("access 10.0.0.3 GET /other 200 warn", "other"),
    ]))
    .await;

    let a = with_message(&h, "10.0.0.1 ").await;
    assert_eq!(a["status"], "warn");
    assert_eq!(a["message"], "access 10.0.0.1 GET /index.html 200 warn");
    let attrs = &a["attributes"];
    assert_eq!(attrs["http"]["method"], "GET");
    assert_eq!(attrs["http"]["url"], "/index.html");
    assert_eq!(attrs["http"]["status_code"], 200);
    assert_eq!(attrs["http"]["status_category"], "OK");
    assert_eq!(attrs["level"], "warn");
    assert_eq!(
        attrs["_cairn"]["pipelines"],
        json!([{"pipeline": "nginx", "processors": ["parse access", "status from level", "status class"]}])
    );
    assert_eq!(a["tags"], json!(["source:nginx", "env:test"]));

    // The stored form is queryable as any sent attribute: facets, status, ranges.
    let b = one(&h, "status:error @http.status_code:>=500").await;
    assert_eq!(b["attributes"]["http"]["status_category"], "error");
    assert_eq!(b["service"], "web");

    // A log no filter matches is stored as it arrived, without provenance.
    let c = one(&h, "source:other").await;
    assert_eq!(c["status"], "info");
    assert!(c["attributes"].get("_cairn").is_none(), "{c}");
    assert!(c["attributes"].get("http").is_none(), "{c}");
}

#[tokio::test]
async fn without_a_file_logs_are_stored_as_they_arrive() {
    let (h, file) = start_with_file(None).await;
    assert!(!file.exists());
    let (status, list) = get(&h, "/api/v1/logs/config/pipelines").await;
    assert_eq!((status, list), (200, json!([])));
    h.ingest(&json!([ingest_line(
        "access 10.0.0.1 GET / 200 warn",
        "nginx"
    )]))
    .await;
    let a = one(&h, "source:nginx").await;
    assert_eq!(a["status"], "info");
    assert_eq!(a["attributes"], json!({}));
}

#[tokio::test]
async fn an_invalid_file_at_start_is_refused_naming_the_file_and_the_location() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = cairn_intake::IntakeConfig::new(dir.path().join("intake"));
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    let bad = NGINX.replace("%{word:level}", "%{nosuchmatcher:level}");
    write(&cfg.pipelines_file, &bad);
    let err = match cairn_intake::start(cfg.clone()).await {
        Ok(_) => panic!("started with an invalid pipelines file"),
        Err(e) => e,
    };
    let text = err.to_string();
    assert!(
        text.contains(&cfg.pipelines_file.display().to_string()),
        "{text}"
    );
    assert!(text.contains("nginx") && text.contains("grok"), "{text}");
}

#[tokio::test]
async fn a_changed_file_is_reloaded_and_an_invalid_one_keeps_the_running_pipelines() {
    let (h, file) = start_with_file(Some(NGINX)).await;
    write(&file, &NGINX.replace("name: OK", "name: fine"));
    wait_for_list(&h, |l| l.to_string().contains("\"fine\"")).await;
    h.ingest(&json!([ingest_line(
        "access 10.0.0.9 GET / 204 info",
        "nginx"
    )]))
    .await;
    let a = with_message(&h, "10.0.0.9 ").await;
    assert_eq!(a["attributes"]["http"]["status_category"], "fine");

    // Broken on disk: the running pipelines stay, the error is reported.
    write(
        &file,
        "pipelines: [ {name: x, processors: [ {type: no-such-processor} ] } ]",
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        let (_, s) = get(&h, "/api/v1/logs/config/pipelines/_status").await;
        if s["error"].is_string() {
            break s;
        }
        assert!(Instant::now() < deadline, "no error reported: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        status["error"]
            .as_str()
            .unwrap()
            .contains("no-such-processor"),
        "{status}"
    );
    let resp = h
        .http
        .get(h.url("/api/v1/logs/config/pipelines"))
        .send()
        .await
        .unwrap();
    assert!(resp.headers().contains_key("x-cairn-pipelines-error"));
    let list: Value = resp.json().await.unwrap();
    assert!(list.to_string().contains("\"fine\""), "{list}");
    h.ingest(&json!([ingest_line(
        "access 10.0.0.10 GET / 500 error",
        "nginx"
    )]))
    .await;
    let b = with_message(&h, "10.0.0.10 ").await;
    assert_eq!(b["attributes"]["http"]["status_category"], "error");

    // Removing the file removes the pipelines.
    std::fs::remove_file(&file).unwrap();
    wait_for_list(&h, |l| l == &json!([])).await;
}

#[tokio::test]
async fn the_api_round_trip_rewrites_the_file_and_runs_at_once() {
    let (h, file) = start_with_file(None).await;
    let base = "/api/v1/logs/config/pipelines";
    let mut nginx = cairn_pipelines::Config::from_text(NGINX).unwrap().to_json()[0].clone();
    nginx.as_object_mut().unwrap().remove("id");

    // PUT all (the {pipelines: [...]} form), then the list and the file agree.
    let (status, put) = send(
        &h,
        reqwest::Method::PUT,
        base,
        &json!({"pipelines": [nginx]}),
    )
    .await;
    assert_eq!(status, 200, "{put}");
    let id = put[0]["id"].as_str().expect("an id is given").to_owned();
    assert_eq!(put[0]["name"], "nginx");
    assert_eq!(put[0]["type"], "pipeline");
    let (_, list) = get(&h, base).await;
    assert_eq!(list, put);
    let on_disk = cairn_pipelines::Config::from_text(&std::fs::read_to_string(&file).unwrap())
        .unwrap()
        .to_json();
    assert_eq!(on_disk, put);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // No reload needed: the next log is parsed.
    h.ingest(&json!([ingest_line(
        "access 10.0.0.1 GET / 200 warn",
        "nginx"
    )]))
    .await;
    assert_eq!(one(&h, "source:nginx").await["status"], "warn");

    // GET and PUT one.
    let (status, got) = get(&h, &format!("{base}/{id}")).await;
    assert_eq!((status, &got), (200, &put[0]));
    let mut renamed = got.clone();
    renamed["name"] = json!("nginx access");
    let (status, replaced) =
        send(&h, reqwest::Method::PUT, &format!("{base}/{id}"), &renamed).await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(
        (replaced["id"].as_str(), &replaced["name"]),
        (Some(id.as_str()), &json!("nginx access"))
    );
    assert!(std::fs::read_to_string(&file)
        .unwrap()
        .contains("nginx access"));

    // POST one more: it gets a new id and comes after.
    let extra = json!({"name": "second", "is_enabled": true, "filter": {"query": "service:db"}, "processors": []});
    let (status, created) = send(&h, reqwest::Method::POST, base, &extra).await;
    assert_eq!(status, 200, "{created}");
    let id2 = created["id"].as_str().unwrap().to_owned();
    assert_ne!(id2, id);
    let (_, list) = get(&h, base).await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[1]["name"], "second");

    // DELETE, then it is gone from the list, the file and the routes.
    let resp = h
        .http
        .delete(h.url(&format!("{base}/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let (_, list) = get(&h, base).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], json!(id2));
    assert!(!std::fs::read_to_string(&file)
        .unwrap()
        .contains("nginx access"));
    let (status, body) = get(&h, &format!("{base}/{id}")).await;
    assert_eq!(status, 404);
    assert!(body["errors"][0].as_str().unwrap().contains(&id), "{body}");
    let resp = h
        .http
        .delete(h.url(&format!("{base}/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);

    // A bare array replaces all too.
    let (status, put) = send(&h, reqwest::Method::PUT, base, &json!([])).await;
    assert_eq!((status, put), (200, json!([])));
}

#[tokio::test]
async fn an_invalid_write_is_refused_naming_the_location_and_changes_nothing() {
    let (h, file) = start_with_file(Some(NGINX)).await;
    let base = "/api/v1/logs/config/pipelines";
    let before_file = std::fs::read_to_string(&file).unwrap();
    let (_, before) = get(&h, base).await;
    let mut bad = before.clone();
    bad[0]["processors"][0]["grok"]["match_rules"] = json!("access %{nosuchmatcher:x}");
    let (status, body) = send(&h, reqwest::Method::PUT, base, &bad).await;
    assert_eq!(status, 400, "{body}");
    let detail = body["errors"][0].as_str().expect("Datadog's error shape");
    assert!(
        detail.contains("nginx") && detail.contains("grok"),
        "{detail}"
    );

    let (status, body) = send(&h, reqwest::Method::PUT, base, &json!({"not": "pipelines"})).await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = send(&h, reqwest::Method::POST, base, &json!("a string")).await;
    assert_eq!(status, 400);
    let resp = h
        .http
        .put(h.url(base))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);

    let resp = h
        .http
        .put(h.url(base))
        .header("content-type", "application/json")
        .body(format!(
            "[{}]",
            " ".repeat(cairn_intake::pipelines::MAX_CONFIG_BYTES)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413);

    let (_, after) = get(&h, base).await;
    assert_eq!(after, before);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before_file);
    h.ingest(&json!([ingest_line(
        "access 10.0.0.1 GET / 200 warn",
        "nginx"
    )]))
    .await;
    assert_eq!(one(&h, "source:nginx").await["status"], "warn");
}

/// Parses and remaps the status, then writes `meta.kind`, which a log holding `"meta": "flat"`
/// refuses: the earlier processors' changes must be undone too.
const FAILS_LATE: &str = r#"pipelines:
  - name: late failure
    filter: {query: "source:nginx"}
    processors:
      - type: grok-parser
        name: parse
        source: message
        grok: {match_rules: 'line access %{ip:network.client.ip} %{data:rest} %{word:level}'}
      - type: status-remapper
        name: status
        sources: [level]
      - type: category-processor
        name: kind
        target: meta.kind
        categories: [{filter: {query: "*"}, name: any}]
"#;

#[tokio::test]
async fn a_processor_error_stores_the_log_as_it_arrived_with_the_error() {
    let (h, _) = start_with_file(Some(FAILS_LATE)).await;
    let mut broken = ingest_line("access 10.0.0.7 GET / 200 warn", "nginx");
    broken["meta"] = json!("flat");
    h.ingest(&json!([
        broken,
        ingest_line("access 10.0.0.8 GET / 200 warn", "nginx")
    ]))
    .await;
    let a = with_message(&h, "10.0.0.7 ").await;
    assert_eq!(a["status"], "info");
    assert_eq!(a["attributes"]["meta"], "flat");
    assert!(a["attributes"].get("network").is_none(), "{a}");
    assert!(a["attributes"].get("level").is_none(), "{a}");
    let err = a["attributes"]["_cairn"]["pipeline_error"]
        .as_str()
        .expect("the error is noted");
    assert!(
        err.contains("late failure") && err.contains("meta"),
        "{err}"
    );
    assert!(a["attributes"]["_cairn"].get("pipelines").is_none(), "{a}");

    // The next log of the same batch is processed as usual.
    let b = with_message(&h, "10.0.0.8 ").await;
    assert_eq!(b["status"], "warn");
    assert_eq!(b["attributes"]["meta"]["kind"], "any");
    assert!(
        b["attributes"]["_cairn"].get("pipeline_error").is_none(),
        "{b}"
    );
}

#[tokio::test]
async fn preview_runs_given_or_running_pipelines_without_storing() {
    let (h, _) = start_with_file(Some(NGINX)).await;
    let path = "/api/v1/logs/config/pipelines/preview";
    let logs = json!([
        ingest_line("access 10.0.0.1 GET / 200 warn", "nginx"),
        ingest_line("nothing to parse", "app"),
    ]);
    let out = h.api(path, json!({"logs": logs})).await;
    let out = out.as_array().unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(out[0]["log"]["status"], "warn");
    assert_eq!(
        out[0]["log"]["attributes"]["network"]["client"]["ip"],
        "10.0.0.1"
    );
    assert_eq!(out[0]["trace"]["steps"][0]["pipeline"], "nginx");
    assert_eq!(out[0]["trace"]["error"], Value::Null);
    assert_eq!(out[1]["trace"]["steps"], json!([]));
    assert_eq!(out[1]["log"]["message"], "nothing to parse");

    // Given pipelines win over the running ones.
    let given = json!([{"name": "all", "filter": {"query": "*"}, "processors": [
        {"type": "category-processor", "name": "tag", "target": "kind",
         "categories": [{"filter": {"query": "*"}, "name": "any"}]}]}]);
    let out = h.api(path, json!({"pipelines": given, "logs": logs})).await;
    assert_eq!(out[1]["log"]["attributes"]["kind"], "any");
    assert_eq!(out[0]["log"]["status"], "info");

    let (status, body) = h
        .api_status(
            path,
            json!({"pipelines": [{"name": "b", "processors": [{"type": "nope"}]}], "logs": logs}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = h.api_status(path, json!({"logs": "x"})).await;
    assert_eq!(status, 400);
    assert!(h.search("*").await.is_empty(), "preview stores nothing");
}

#[tokio::test]
async fn concurrent_creates_are_all_kept() {
    let (h, file) = start_with_file(None).await;
    let base = "/api/v1/logs/config/pipelines";
    let creates = (0..8).map(|i| {
        let h = &h;
        async move {
            let p = json!({"name": format!("p{i}"), "filter": {"query": "*"}, "processors": []});
            send(h, reqwest::Method::POST, base, &p).await
        }
    });
    let mut ids = Vec::new();
    for (status, created) in futures_join(creates.collect()).await {
        assert_eq!(status, 200, "{created}");
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 8);
    let (_, list) = get(&h, base).await;
    assert_eq!(list.as_array().unwrap().len(), 8);
    let on_disk = cairn_pipelines::Config::from_text(&std::fs::read_to_string(&file).unwrap())
        .unwrap()
        .to_json();
    assert_eq!(on_disk, list);
}

/// All futures at once on this task (the tests need no futures crate).
async fn futures_join<F: std::future::Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut futs: Vec<_> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in futs.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter()
        .map(|v| v.expect("every future finished"))
        .collect()
}

/// A pipelines file that is a link to an endless source must not take the intake's memory
/// (nor hang its reload poller): refused by type, the running pipelines kept, and a good file
/// put back afterwards is picked up.
#[tokio::test]
async fn a_file_linked_to_dev_zero_or_over_the_cap_is_refused_and_the_pipelines_kept() {
    let (h, file) = start_with_file(Some(NGINX)).await;
    let good = std::fs::read_to_string(&file).unwrap();
    let wait_error = |needle: &'static str| {
        let h = &h;
        async move {
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                let (_, s) = get(h, "/api/v1/logs/config/pipelines/_status").await;
                if s["error"].as_str().is_some_and(|e| e.contains(needle)) {
                    return s;
                }
                assert!(Instant::now() < deadline, "no {needle:?} error: {s}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    std::fs::remove_file(&file).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &file).unwrap();
    let s = wait_error("not a regular file").await;
    assert_eq!(s["pipelines"], 1, "{s}");

    std::fs::remove_file(&file).unwrap();
    write(
        &file,
        &" ".repeat(cairn_intake::pipelines::MAX_CONFIG_BYTES + 1),
    );
    wait_error("may hold").await;

    write(&file, &good.replace("name: OK", "name: back"));
    wait_for_list(&h, |l| l.to_string().contains("\"back\"")).await;
}

/// Datadog's `pipeline-order`: the ids in the order they run; a new order must name every
/// pipeline once, and the pipelines then run (and are listed, and written) in it.
#[tokio::test]
async fn the_pipeline_order_is_read_and_rewritten_as_datadog_s() {
    let (h, file) = start_with_file(None).await;
    let base = "/api/v1/logs/config/pipelines";
    let order = "/api/v1/logs/config/pipeline-order";
    let mut ids = Vec::new();
    for name in ["first", "second", "third"] {
        let (status, p) = send(
            &h,
            reqwest::Method::POST,
            base,
            &json!({"name": name, "filter": {"query": "source:order"}, "processors": [
                {"type": "string-builder-processor", "template": name, "target": "last", "is_replace_missing": true}
            ]}),
        )
        .await;
        assert_eq!(status, 200, "{p}");
        ids.push(p["id"].as_str().unwrap().to_owned());
    }
    let (status, got) = get(&h, order).await;
    assert_eq!(status, 200);
    assert_eq!(got, json!({"pipeline_ids": ids}));

    let new = vec![ids[2].clone(), ids[0].clone(), ids[1].clone()];
    let (status, got) = send(
        &h,
        reqwest::Method::PUT,
        order,
        &json!({"pipeline_ids": new}),
    )
    .await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got, json!({"pipeline_ids": new}));
    let (_, list) = get(&h, base).await;
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["third", "first", "second"]);
    assert!(
        std::fs::read_to_string(&file).unwrap().find("third")
            < std::fs::read_to_string(&file).unwrap().find("first")
    );
    // The last pipeline to run writes `last`.
    h.ingest(&json!([{"message": "ordered", "ddsource": "order"}]))
        .await;
    let a = with_message(&h, "ordered").await;
    assert_eq!(a["attributes"]["last"], "second");

    for bad in [
        json!({"pipeline_ids": [ids[0], ids[1]]}),
        json!({"pipeline_ids": [ids[0], ids[0], ids[1], ids[2]]}),
        json!({"pipeline_ids": [ids[0], ids[1], ids[2], "nope"]}),
        json!({"ids": []}),
    ] {
        let (status, body) = send(&h, reqwest::Method::PUT, order, &bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body["errors"][0]
                .as_str()
                .unwrap()
                .starts_with("pipeline_ids"),
            "{body}"
        );
    }
    let (_, got) = get(&h, order).await;
    assert_eq!(
        got,
        json!({"pipeline_ids": new}),
        "a refused order changes nothing"
    );
}
