//! The client side of `cairn logs search` and `cairn logs tail`.

use std::io::Write;
use std::time::Duration;

use crate::api::{LogEvent, SearchRequest, SearchResponse};
use crate::{wire, IntakeError};

pub const DEFAULT_URL: &str = "http://127.0.0.1:10518";
/// Logs `cairn logs tail` shows from before it started.
const TAIL_BACKLOG: u32 = 10;

/// Where the intake is and how to talk to it.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub url: String,
    pub api_key: Option<String>,
    /// The intake's session token, sent as `Authorization: Bearer`.
    pub token: Option<String>,
    pub timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            url: DEFAULT_URL.into(),
            api_key: None,
            token: None,
            timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SearchOptions {
    pub query: String,
    /// How far back: `15m`, `2h`, or anything `filter.from` takes (`now-1d`, ISO-8601).
    pub from: String,
    pub to: Option<String>,
    pub limit: u32,
    pub json: bool,
}

#[derive(Debug, Clone)]
pub struct TailOptions {
    pub query: String,
    pub json: bool,
    pub poll_every: Duration,
    /// Stop after this long; `None` follows until interrupted.
    pub stop_after: Option<Duration>,
}

/// `15m` means `now-15m`; anything else is passed on as written.
pub fn from_arg(from: &str) -> String {
    if from.starts_with(|c: char| c.is_ascii_digit())
        && crate::timefmt::parse_duration(from).is_ok()
    {
        format!("now-{from}")
    } else {
        from.to_owned()
    }
}

pub(crate) struct Client {
    http: reqwest::Client,
    cfg: ClientConfig,
}

impl Client {
    pub(crate) fn new(cfg: ClientConfig) -> Result<Self, IntakeError> {
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| IntakeError::Client {
                url: cfg.url.clone(),
                reason: e.to_string(),
            })?;
        Ok(Client { http, cfg })
    }

    pub(crate) fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.cfg.url.trim_end_matches('/'))
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<SearchResponse, IntakeError> {
        self.send_json(req, url).await
    }

    /// `POST <url>` with a JSON body, answer decoded as `T`.
    pub(crate) async fn post_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T, IntakeError> {
        let url = self.endpoint(path);
        self.send_json(self.http.post(&url).json(body), &url).await
    }

    /// `GET <url>?<params>`, answer decoded as `T`.
    pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<T, IntakeError> {
        let url = self.endpoint(path);
        self.send_json(self.http.get(&url).query(params), &url)
            .await
    }

    async fn send_json<T: serde::de::DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<T, IntakeError> {
        let req = match &self.cfg.api_key {
            Some(k) => req.header(wire::API_KEY_HEADER, k),
            None => req,
        };
        let req = match &self.cfg.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let fail = |reason: String| IntakeError::Client {
            url: url.to_owned(),
            reason,
        };
        let resp = req
            .send()
            .await
            .map_err(|e| fail(format!("cannot reach the intake: {e}")))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| fail(e.to_string()))?;
        if !status.is_success() {
            // The intake's errors carry the reason (e.g. the query error with its column):
            // `{"errors":[{"detail"}]}` on the log routes, `{"errors":["..."]}` on Datadog's v1.
            let detail = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| {
                    let e = &v["errors"][0];
                    e["detail"].as_str().or(e.as_str()).map(str::to_owned)
                })
                .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(300).collect());
            return Err(fail(format!("{status}: {detail}")));
        }
        serde_json::from_slice(&body).map_err(|e| fail(format!("unexpected answer: {e}")))
    }

    async fn search(&self, req: &SearchRequest) -> Result<SearchResponse, IntakeError> {
        let url = self.endpoint("/api/v2/logs/events/search");
        self.send(self.http.post(&url).json(req), &url).await
    }

    async fn tail(
        &self,
        query: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<SearchResponse, IntakeError> {
        let url = self.endpoint("/api/v2/logs/events/tail");
        let mut params = vec![("query", query.to_owned()), ("limit", limit.to_string())];
        if let Some(a) = after {
            params.push(("after", a.to_owned()));
        }
        self.send(self.http.get(&url).query(&params), &url).await
    }
}

/// Pages through a search until `limit` logs; newest first.
pub async fn search(cfg: ClientConfig, opts: &SearchOptions) -> Result<Vec<LogEvent>, IntakeError> {
    let client = Client::new(cfg)?;
    let mut out = Vec::new();
    let mut cursor = None;
    while out.len() < opts.limit as usize {
        let mut req = SearchRequest::default();
        req.filter.query = Some(opts.query.clone());
        req.filter.from = Some(crate::api::TimeArg::Text(from_arg(&opts.from)));
        req.filter.to = opts.to.clone().map(crate::api::TimeArg::Text);
        req.page.limit = Some((opts.limit as usize - out.len()).min(1000) as u32);
        req.page.cursor = cursor;
        let resp = client.search(&req).await?;
        out.extend(resp.data);
        match resp.meta.page.after {
            Some(after) => cursor = Some(after),
            None => break,
        }
    }
    Ok(out)
}

/// One line per log for people: `timestamp status service source host message`. Control
/// characters are escaped so that a log cannot move the cursor or recolour the terminal.
pub fn format_line(ev: &LogEvent) -> String {
    let a = &ev.attributes;
    let dash = |s: &str| {
        if s.is_empty() {
            "-".to_owned()
        } else {
            printable(s)
        }
    };
    format!(
        "{} {:<5} {} {} {} {}",
        a.timestamp,
        a.status,
        dash(&a.service),
        dash(a.source()),
        dash(&a.host),
        printable(&a.message)
    )
}

/// Characters that reorder the text around them (embeddings, overrides, isolates, marks):
/// `"\u{202E}0001$"` would display as `$1000`. Shown as `<U+202E>`, never applied.
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
    )
}

pub(crate) fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c if is_bidi_control(c) => out.push_str(&format!("<U+{:04X}>", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// One JSON object per line, with direction controls written as `\u202e` escapes: the value
/// a JSON reader gets is unchanged, but a terminal shows the escape instead of obeying it.
/// (In JSON text such characters can only occur inside strings, so replacing them there is
/// the same as replacing them everywhere.)
pub fn json_line(ev: &LogEvent) -> Result<String, serde_json::Error> {
    json_text(ev)
}

/// [`json_line`] for any value.
pub fn json_text<T: serde::Serialize>(v: &T) -> Result<String, serde_json::Error> {
    let text = serde_json::to_string(v)?;
    if !text.chars().any(is_bidi_control) {
        return Ok(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_bidi_control(c) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

fn write_event(out: &mut dyn Write, ev: &LogEvent, json: bool) -> std::io::Result<()> {
    if json {
        let line = json_line(ev).map_err(std::io::Error::other)?;
        writeln!(out, "{line}")
    } else {
        writeln!(out, "{}", format_line(ev))
    }
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, IntakeError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(IntakeError::Runtime)
}

/// `cairn logs search`: prints matching logs, oldest of the page last (newest first).
pub fn run_search(
    cfg: ClientConfig,
    opts: &SearchOptions,
    out: &mut dyn Write,
) -> Result<usize, IntakeError> {
    let events = runtime()?.block_on(search(cfg, opts))?;
    for ev in &events {
        write_event(out, ev, opts.json).map_err(IntakeError::Runtime)?;
    }
    Ok(events.len())
}

/// `cairn logs tail`: prints logs as they arrive, until interrupted or `stop_after`.
pub fn run_tail(
    cfg: ClientConfig,
    opts: &TailOptions,
    out: &mut dyn Write,
) -> Result<usize, IntakeError> {
    runtime()?.block_on(async {
        let client = Client::new(cfg)?;
        let started = std::time::Instant::now();
        // Like `tail -f`: the last few matching logs, then whatever arrives.
        let first = client.tail(&opts.query, None, TAIL_BACKLOG).await?;
        let mut printed = 0;
        for ev in &first.data {
            write_event(out, ev, opts.json).map_err(IntakeError::Runtime)?;
            printed += 1;
        }
        let mut after = first.meta.page.after;
        loop {
            if opts.stop_after.is_some_and(|d| started.elapsed() >= d) {
                return Ok(printed);
            }
            tokio::time::sleep(opts.poll_every).await;
            let resp = client.tail(&opts.query, after.as_deref(), 1000).await?;
            for ev in &resp.data {
                write_event(out, ev, opts.json).map_err(IntakeError::Runtime)?;
                printed += 1;
            }
            out.flush().map_err(IntakeError::Runtime)?;
            if resp.meta.page.after.is_some() {
                after = resp.meta.page.after;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::EventAttributes;

    fn event(message: &str, host: &str) -> LogEvent {
        LogEvent {
            id: "1".into(),
            kind: "log".into(),
            attributes: EventAttributes {
                timestamp: "2024-01-01T00:00:00.000Z".into(),
                status: "info".into(),
                service: "web".into(),
                host: host.into(),
                message: message.into(),
                tags: vec!["rlo:\u{202E}nimda".into()],
                attributes: serde_json::Map::new(),
            },
        }
    }

    #[test]
    fn direction_controls_are_shown_not_obeyed() {
        let ev = event(
            "amount: \u{202E}0001$ \u{202D}ok",
            "h\u{2067}x\u{200F}\u{061C}",
        );
        let line = format_line(&ev);
        assert!(line.contains("amount: <U+202E>0001$ <U+202D>ok"), "{line}");
        assert!(line.contains("h<U+2067>x<U+200F><U+061C>"), "{line}");
        assert!(!line.chars().any(is_bidi_control));
        let json = json_line(&ev).unwrap();
        assert!(!json.chars().any(is_bidi_control), "{json}");
        assert!(json.contains(r"\u202e0001$"), "{json}");
        // The value read back is the stored one.
        let back: LogEvent = serde_json::from_str(&json).unwrap();
        assert_eq!(back.attributes, ev.attributes);
    }
}
