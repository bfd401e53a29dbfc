#![allow(dead_code)]

use std::io::Write;

use cairn_intake::{IntakeConfig, RunningIntake};
use serde_json::{json, Value};

pub struct Harness {
    pub intake: RunningIntake,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

impl Harness {
    pub async fn start() -> Harness {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut IntakeConfig)) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = IntakeConfig::new(dir.path().join("intake"));
        cfg.listen = "127.0.0.1:0".parse().unwrap();
        tweak(&mut cfg);
        let intake = cairn_intake::start(cfg).await.unwrap();
        let http = client_for(&intake);
        Harness { intake, dir, http }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.intake.url())
    }

    pub async fn post_raw(
        &self,
        path: &str,
        encoding: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, String) {
        let mut req = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json");
        if let Some(e) = encoding {
            req = req.header("content-encoding", e);
        }
        let resp = req.body(body).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    }

    pub async fn ingest(&self, logs: &Value) {
        let (status, body) = self
            .post_raw("/api/v2/logs", None, serde_json::to_vec(logs).unwrap())
            .await;
        assert_eq!(status, 202, "{body}");
    }

    pub async fn api(&self, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        assert_eq!(status, 200, "{path} {body}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    pub async fn api_status(&self, path: &str, body: Value) -> (u16, Value) {
        let resp = self
            .http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// All logs matching `query` over the last day, newest first.
    pub async fn search(&self, query: &str) -> Vec<Value> {
        let r = self
            .api(
                "/api/v2/logs/events/search",
                json!({"filter": {"query": query, "from": "now-1d", "to": "now+1h"}, "page": {"limit": 1000}}),
            )
            .await;
        r["data"].as_array().unwrap().clone()
    }
}

/// A client that sends the intake's token (if it has one) with every request.
pub fn client_for(intake: &RunningIntake) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(t) = intake.token() {
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {t}").parse().unwrap(),
        );
    }
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn raw_deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 1).unwrap()
}

pub fn now_ms() -> i64 {
    cairn_intake::timefmt::now_ms()
}
