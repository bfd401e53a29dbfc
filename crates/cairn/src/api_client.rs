//! The client side of the agent's local API (`cmd_host:cmd_port`), used by `cairn status`,
//! `cairn reload`, `cairn stream-logs` and `cairn cursors` to talk to a running `cairn run`.
//!
//! The token is the agent's `<run_path>/auth_token`; a user who cannot read that file cannot
//! use the API, which is the point.

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use cairn_config::AgentConfig;

use crate::cmd_run::AUTH_TOKEN_FILE;

pub struct ApiClient {
    base: String,
    token: String,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
    run_path: std::path::PathBuf,
}

/// `cmd_host:cmd_port` as a URL authority; `localhost` is asked as 127.0.0.1 because the API
/// listens there only (an IPv6-first resolver would otherwise try ::1 first).
pub fn api_authority(agent: &AgentConfig) -> String {
    let host = match agent.cmd_host.as_str() {
        "localhost" | "" => "127.0.0.1",
        h => h,
    };
    if host.contains(':') {
        format!("[{host}]:{}", agent.cmd_port)
    } else {
        format!("{host}:{}", agent.cmd_port)
    }
}

impl ApiClient {
    /// A client for the agent configured by `agent`. Fails, naming the file, when the token
    /// cannot be read (no agent ever ran there, or another user's run_path).
    pub fn new(agent: &AgentConfig) -> anyhow::Result<ApiClient> {
        let path = agent.run_path.join(AUTH_TOKEN_FILE);
        let token = match cairn_logs::private_fs::read(&path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                bail!(
                    "no agent is running: {} does not exist (start one with `cairn run -c <config dir>`)",
                    path.display()
                )
            }
            Err(e) => {
                return Err(anyhow!(e).context(format!(
                    "reading the local API token {} (run this as the agent's user)",
                    path.display()
                )))
            }
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the client runtime")?;
        // The API is plain HTTP on loopback, but reqwest is built with rustls for the senders
        // and wants a provider all the same.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .no_proxy()
            .build()
            .context("building the HTTP client")?;
        Ok(ApiClient {
            base: format!("http://{}", api_authority(agent)),
            token,
            http,
            rt,
            run_path: agent.run_path.clone(),
        })
    }

    fn not_running(&self, e: &reqwest::Error) -> anyhow::Error {
        if e.is_connect() {
            anyhow!(
                "no agent is running: nothing answers on {} (the local API of the agent using run_path {}; start it with `cairn run`)",
                self.base,
                self.run_path.display()
            )
        } else {
            anyhow!("local API {}: {e}", self.base)
        }
    }

    /// GET `path`; the answer's JSON. A non-2xx answer is an error carrying its `error` text.
    pub fn get(&self, path: &str, timeout: Duration) -> anyhow::Result<serde_json::Value> {
        self.call(reqwest::Method::GET, path, None, timeout)
    }

    pub fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
        timeout: Duration,
    ) -> anyhow::Result<serde_json::Value> {
        self.call(reqwest::Method::POST, path, Some(body), timeout)
    }

    fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
        timeout: Duration,
    ) -> anyhow::Result<serde_json::Value> {
        self.rt.block_on(async {
            let mut req = self
                .http
                .request(method, format!("{}{path}", self.base))
                .bearer_auth(&self.token)
                .timeout(timeout);
            if let Some(b) = body {
                req = req
                    .header("content-type", "application/json")
                    .body(serde_json::to_vec(b)?);
            }
            let resp = req.send().await.map_err(|e| self.not_running(&e))?;
            let status = resp.status();
            let bytes = resp.bytes().await.map_err(|e| self.not_running(&e))?;
            let value: serde_json::Value = serde_json::from_slice(&bytes)
                .with_context(|| format!("{} {path}: the answer is not JSON", self.base))?;
            if !status.is_success() {
                let detail = value
                    .get("error")
                    .and_then(|e| e.as_str())
                    .map(str::to_owned)
                    .unwrap_or_else(|| value.to_string());
                return Err(ApiError {
                    status: status.as_u16(),
                    detail,
                    body: value,
                }
                .into());
            }
            Ok(value)
        })
    }

    /// GET `path` and hand each line of the streamed answer to `on_line` until it returns
    /// false or the agent ends the stream.
    pub fn stream_lines(
        &self,
        path: &str,
        mut on_line: impl FnMut(&str) -> bool,
    ) -> anyhow::Result<()> {
        self.rt.block_on(async {
            let mut resp = self
                .http
                .get(format!("{}{path}", self.base))
                .bearer_auth(&self.token)
                .send()
                .await
                .map_err(|e| self.not_running(&e))?;
            if !resp.status().is_success() {
                let status = resp.status().as_u16();
                let text = resp.text().await.unwrap_or_default();
                bail!("local API {path}: {status}: {text}");
            }
            let mut pending: Vec<u8> = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(|e| self.not_running(&e))? {
                pending.extend_from_slice(&chunk);
                while let Some(nl) = pending.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=nl).collect();
                    let line = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
                    if !on_line(&line) {
                        return Ok(());
                    }
                }
            }
            Ok(())
        })
    }
}

/// A non-2xx answer of the local API.
#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub detail: String,
    pub body: serde_json::Value,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.detail)
    }
}

impl std::error::Error for ApiError {}
