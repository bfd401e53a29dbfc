//! Notifications: the message template, the agent log line, and webhook deliveries on a task
//! of their own behind a bounded queue (an evaluation never waits for a receiver).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::config::WebhookSpec;
use super::state::State;

/// Notifications waiting for delivery; beyond this they are dropped, counted and logged.
pub const QUEUE: usize = 1024;
/// Tries per webhook delivery: 1 s, 2 s, 4 s, 8 s apart (15 s in all, within five minutes).
pub const TRIES: u32 = 5;
const TIMEOUT: Duration = Duration::from_secs(10);
/// Deliveries in flight at once, so a slow receiver cannot pile up connections.
const IN_FLIGHT: usize = 16;

#[derive(Debug, Default)]
pub struct NotifyCounters {
    pub sent: AtomicU64,
    pub retried: AtomicU64,
    /// Deliveries given up after every try: a notification lost.
    pub failed: AtomicU64,
    /// Notifications dropped because the queue was full.
    pub dropped: AtomicU64,
    pub suppressed_muted: AtomicU64,
}

/// What one transition (or re-notification) says.
#[derive(Debug, Clone, Serialize)]
pub struct Notification {
    pub monitor_id: i64,
    pub monitor_name: String,
    pub group: String,
    /// `Triggered`, `Warn`, `No Data`, `Recovered` or `Renotify`.
    pub transition: String,
    pub from: State,
    pub to: State,
    pub value: Option<f64>,
    pub threshold: f64,
    pub warning_threshold: Option<f64>,
    pub query: String,
    pub message: String,
    pub priority: Option<i64>,
    pub tags: Vec<String>,
    /// Epoch ms of the evaluation that saw it.
    pub date_ms: i64,
    pub date: String,
    /// Since when the group has been in `to`.
    pub since_ms: i64,
    pub is_renotify: bool,
    pub muted: bool,
}

/// Where the values of one rendering come from.
pub struct TemplateCtx<'a> {
    pub value: Option<f64>,
    pub threshold: f64,
    pub warn_threshold: Option<f64>,
    pub group: &'a str,
    /// facet → value of the group (`host` → `web-1`).
    pub group_values: &'a [(String, String)],
    pub query: &'a str,
    pub monitor_name: &'a str,
    pub monitor_id: i64,
    pub from: State,
    pub to: State,
    pub renotify: bool,
    pub priority: Option<i64>,
}

impl TemplateCtx<'_> {
    fn flag(&self, name: &str) -> Option<bool> {
        let recovery = self.to == State::Ok && self.from != State::Ok;
        Some(match name {
            "is_alert" => self.to == State::Alert,
            "is_warning" => self.to == State::Warn,
            "is_no_data" => self.to == State::NoData,
            "is_recovery" => recovery,
            "is_alert_recovery" => recovery && self.from == State::Alert,
            "is_warning_recovery" => recovery && self.from == State::Warn,
            "is_no_data_recovery" => recovery && self.from == State::NoData,
            "is_alert_to_warning" => self.from == State::Alert && self.to == State::Warn,
            "is_warning_to_alert" => self.from == State::Warn && self.to == State::Alert,
            "is_renotify" => self.renotify,
            _ => return None,
        })
    }

    fn var(&self, name: &str) -> Option<String> {
        let num = |v: f64| super::eval::number_text(v);
        Some(match name {
            "value" => self.value.map(num).unwrap_or_default(),
            "threshold" => num(self.threshold),
            "warn_threshold" => self.warn_threshold.map(num).unwrap_or_default(),
            "group" | "monitor.group" => self.group.to_owned(),
            "query" | "monitor.query" => self.query.to_owned(),
            "monitor.name" => self.monitor_name.to_owned(),
            "monitor.id" => self.monitor_id.to_string(),
            "monitor.priority" => self.priority.map(|p| format!("P{p}")).unwrap_or_default(),
            "status" | "monitor.status" => self.to.as_str().to_owned(),
            other => {
                // `{{host.name}}` (Datadog's tag variables) or `{{host}}`, for a facet of by().
                let facet = other.strip_suffix(".name").unwrap_or(other);
                return self
                    .group_values
                    .iter()
                    .find(|(f, _)| f == facet || f.strip_prefix('@') == Some(facet))
                    .map(|(_, v)| v.clone());
            }
        })
    }
}

/// Renders Datadog's message template: `{{var}}`, and the `{{#flag}}…{{/flag}}` and
/// `{{^flag}}…{{/flag}}` sections. Unknown variables are left as written, so a typo shows.
pub fn render(template: &str, ctx: &TemplateCtx) -> String {
    let mut out = String::with_capacity(template.len());
    render_into(template, ctx, &mut out);
    out
}

fn render_into(mut t: &str, ctx: &TemplateCtx, out: &mut String) {
    while let Some(open) = t.find("{{") {
        out.push_str(&t[..open]);
        let rest = &t[open + 2..];
        let Some(close) = rest.find("}}") else {
            out.push_str(&t[open..]);
            return;
        };
        let tag = rest[..close].trim();
        let after = &rest[close + 2..];
        if let Some((inverted, name)) = tag
            .strip_prefix('#')
            .map(|n| (false, n.trim()))
            .or_else(|| tag.strip_prefix('^').map(|n| (true, n.trim())))
        {
            let end_tag = format!("{{{{/{name}}}}}");
            if let (Some(flag), Some(end)) = (ctx.flag(name), after.find(&end_tag)) {
                if flag != inverted {
                    render_into(&after[..end], ctx, out);
                }
                t = &after[end + end_tag.len()..];
                continue;
            }
        }
        match ctx.var(tag) {
            Some(v) => out.push_str(&v),
            None => out.push_str(&t[open..open + 2 + close + 2]),
        }
        t = after;
    }
    out.push_str(t);
}

/// The webhooks a message names, as Datadog does: `@webhook-NAME`.
pub fn webhook_names(message: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut rest = message;
    while let Some(at) = rest.find("@webhook-") {
        let tail = &rest[at + "@webhook-".len()..];
        let end = tail
            .find(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.')))
            .unwrap_or(tail.len());
        let name = tail[..end].trim_end_matches('.');
        if !name.is_empty() && !out.iter().any(|n| n == name) {
            out.push(name.to_owned());
        }
        rest = &tail[end..];
    }
    out
}

/// A URL fit for a log line: the userinfo password and every query value masked.
pub fn redact_url(url: &str) -> String {
    let Ok(mut u) = reqwest::Url::parse(url) else {
        return "<unparsable url>".into();
    };
    if u.password().is_some() {
        let _ = u.set_password(Some("********"));
    }
    if u.query().is_some() {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, _)| (k.into_owned(), "********".to_owned()))
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

/// One delivery: a notification for one webhook.
struct Delivery {
    hook: WebhookSpec,
    body: Arc<Notification>,
}

/// The sending side: `send` queues without waiting; a task posts and retries.
pub struct Notifier {
    queue: tokio::sync::mpsc::Sender<(Arc<Notification>, Vec<WebhookSpec>)>,
    pub counters: Arc<NotifyCounters>,
}

impl Notifier {
    /// Starts the delivery task on the current runtime; `first_backoff` is 1 s (tests may
    /// shorten it).
    pub fn start(first_backoff: Duration) -> Notifier {
        let (queue, mut rx) =
            tokio::sync::mpsc::channel::<(Arc<Notification>, Vec<WebhookSpec>)>(QUEUE);
        let counters = Arc::new(NotifyCounters::default());
        let c = counters.clone();
        tokio::spawn(async move {
            let http = match reqwest::Client::builder()
                .timeout(TIMEOUT)
                .user_agent(concat!("cairn-monitors/", env!("CARGO_PKG_VERSION")))
                .build()
            {
                Ok(h) => h,
                Err(e) => {
                    tracing::error!(error = %e, "monitor webhooks disabled: no http client");
                    return;
                }
            };
            let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
            while let Some((body, hooks)) = rx.recv().await {
                for hook in hooks {
                    let Ok(permit) = slots.clone().acquire_owned().await else {
                        return;
                    };
                    let d = Delivery {
                        hook,
                        body: body.clone(),
                    };
                    let (http, c) = (http.clone(), c.clone());
                    tokio::spawn(async move {
                        deliver(&http, d, first_backoff, &c).await;
                        drop(permit);
                    });
                }
            }
        });
        Notifier { queue, counters }
    }

    /// Queues `n` for `hooks`; never waits. A full queue drops it (counted, logged at error:
    /// a notification is lost).
    pub fn send(&self, n: Notification, hooks: Vec<WebhookSpec>) {
        if hooks.is_empty() {
            return;
        }
        let (id, group) = (n.monitor_id, n.group.clone());
        if self.queue.try_send((Arc::new(n), hooks)).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::error!(monitor_id = id, group = %group, "monitor notification dropped: the webhook queue is full");
        }
    }
}

async fn deliver(http: &reqwest::Client, d: Delivery, first_backoff: Duration, c: &NotifyCounters) {
    let url = redact_url(&d.hook.url);
    let mut wait = first_backoff;
    let mut last_error = String::new();
    for attempt in 1..=TRIES {
        let mut req = http.post(&d.hook.url).json(&*d.body);
        for (k, v) in &d.hook.headers {
            req = req.header(k, v);
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => {
                c.sent.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(webhook = %d.hook.name, monitor_id = d.body.monitor_id, attempt, "monitor webhook delivered");
                return;
            }
            Ok(r) => last_error = format!("answered {}", r.status()),
            // reqwest's error text holds the URL; only the redacted one is logged.
            Err(e) if e.is_timeout() => last_error = "timed out".into(),
            Err(e) if e.is_connect() => last_error = "cannot connect".into(),
            Err(_) => last_error = "request failed".into(),
        }
        if attempt < TRIES {
            c.retried.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(webhook = %d.hook.name, url = %url, attempt, error = %last_error, "monitor webhook failed, retrying");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(300));
        }
    }
    c.failed.fetch_add(1, Ordering::Relaxed);
    tracing::error!(webhook = %d.hook.name, url = %url, monitor_id = d.body.monitor_id, group = %d.body.group, tries = TRIES, error = %last_error, "monitor notification lost: the webhook failed every try");
}

/// The webhooks of `names` found in `hooks`; unknown names are logged once per call.
pub fn resolve_hooks(
    names: &[String],
    hooks: &HashMap<String, WebhookSpec>,
    monitor_id: i64,
) -> Vec<WebhookSpec> {
    names
        .iter()
        .filter_map(|n| {
            let h = hooks.get(n).cloned();
            if h.is_none() {
                tracing::warn!(monitor_id, webhook = %n, "monitor message names an unknown webhook");
            }
            h
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(from: State, to: State) -> TemplateCtx<'static> {
        TemplateCtx {
            value: Some(12.0),
            threshold: 10.0,
            warn_threshold: Some(5.0),
            group: "host:web-1",
            group_values: Box::leak(Box::new([("host".to_owned(), "web-1".to_owned())])),
            query: "logs(\"x\")",
            monitor_name: "m",
            monitor_id: 7,
            from,
            to,
            renotify: false,
            priority: None,
        }
    }

    #[test]
    fn templates_render_variables_and_sections_by_transition() {
        let t = "{{#is_alert}}ALERT {{value}}>{{threshold}} on {{host.name}}{{/is_alert}}\
                 {{#is_recovery}}ok {{group}}{{/is_recovery}}{{^is_alert}}!{{/is_alert}} {{nope}}";
        assert_eq!(
            render(t, &ctx(State::Ok, State::Alert)),
            "ALERT 12>10 on web-1 {{nope}}"
        );
        assert_eq!(
            render(t, &ctx(State::Alert, State::Ok)),
            "ok host:web-1! {{nope}}"
        );
        assert_eq!(
            render(
                "{{#is_warning}}w{{/is_warning}}{{#is_no_data}}nd{{/is_no_data}}{{#is_alert_recovery}}ar{{/is_alert_recovery}}",
                &ctx(State::Warn, State::NoData)
            ),
            "nd"
        );
        assert_eq!(
            render("{{ query }} {{", &ctx(State::Ok, State::Ok)),
            "logs(\"x\") {{"
        );
    }

    #[test]
    fn webhook_names_and_redaction() {
        assert_eq!(
            webhook_names("x @webhook-ops, @webhook-a_b. @webhook-ops"),
            vec!["ops", "a_b"]
        );
        assert_eq!(
            redact_url("https://u:secret@h.example/p?token=abc&x=1"),
            "https://u:********@h.example/p?token=********&x=********"
        );
        assert!(!redact_url("nonsense").contains("nonsense"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_webhook_that_always_fails_is_given_up_after_every_try_and_counted() {
        let hits = Arc::new(AtomicU64::new(0));
        let h = hits.clone();
        let app = axum::Router::new().route(
            "/x",
            axum::routing::post(move || {
                h.fetch_add(1, Ordering::Relaxed);
                async { axum::http::StatusCode::SERVICE_UNAVAILABLE }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let n = Notifier::start(Duration::from_millis(20));
        let note = Notification {
            monitor_id: 1,
            monitor_name: "m".into(),
            group: "*".into(),
            transition: "Triggered".into(),
            from: State::Ok,
            to: State::Alert,
            value: Some(1.0),
            threshold: 0.0,
            warning_threshold: None,
            query: "q".into(),
            message: "m".into(),
            priority: None,
            tags: vec![],
            date_ms: 0,
            date: String::new(),
            since_ms: 0,
            is_renotify: false,
            muted: false,
        };
        let hook = WebhookSpec {
            name: "down".into(),
            url: format!("http://{addr}/x"),
            headers: Default::default(),
        };
        n.send(note, vec![hook]);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while n.counters.failed.load(Ordering::Relaxed) == 0 {
            assert!(std::time::Instant::now() < deadline, "never given up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(hits.load(Ordering::Relaxed), u64::from(TRIES));
        assert_eq!(
            n.counters.retried.load(Ordering::Relaxed),
            u64::from(TRIES - 1)
        );
        assert_eq!(n.counters.sent.load(Ordering::Relaxed), 0);
    }
}
