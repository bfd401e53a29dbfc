//! `/api/v1/monitor…`: Datadog's Monitors API shape (integer ids, `overall_state`, v1 errors
//! `{"errors": ["…"]}`), plus Cairn's history and evaluate-now routes. The token was checked
//! by the intake's guard before any of these runs.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use super::config::{self, Monitor};
use super::state::GroupState;
use super::{overall_state, GroupView, Monitors};
use crate::http::AppState;
use crate::IntakeError;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/monitor", get(list).post(create))
        .route("/api/v1/monitor/validate", post(validate))
        .route(
            "/api/v1/monitor/{id}",
            get(get_one).put(update).delete(delete),
        )
        .route("/api/v1/monitor/{id}/mute", post(mute))
        .route("/api/v1/monitor/{id}/unmute", post(unmute))
        .route("/api/v1/monitor/{id}/history", get(history))
        .route("/api/v1/monitor/{id}/evaluate", post(evaluate))
}

fn v1_error(status: StatusCode, detail: String) -> Response {
    (status, axum::Json(json!({ "errors": [detail] }))).into_response()
}

fn fail(e: IntakeError) -> Response {
    match e {
        IntakeError::BadRequest(m) => v1_error(StatusCode::BAD_REQUEST, m),
        IntakeError::Syntax(q) => v1_error(StatusCode::BAD_REQUEST, q.to_string()),
        IntakeError::NotFound(m) => v1_error(StatusCode::NOT_FOUND, m),
        other => {
            tracing::warn!(error = %other, "monitor request failed");
            v1_error(StatusCode::INTERNAL_SERVER_ERROR, other.to_string())
        }
    }
}

fn parse_id(id: &str) -> Result<i64, Box<Response>> {
    id.parse::<i64>().map_err(|_| {
        Box::new(v1_error(
            StatusCode::NOT_FOUND,
            format!("monitor id {id:?} is not an integer"),
        ))
    })
}

fn body_json(body: &Bytes) -> Result<Value, Box<Response>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|e| {
        Box::new(v1_error(
            StatusCode::BAD_REQUEST,
            format!("invalid JSON: {e}"),
        ))
    })
}

/// A monitor as Datadog's API shows it, with its group states.
pub fn monitor_json(
    m: &Monitor,
    groups: Option<&HashMap<String, GroupState>>,
    now_ms: i64,
) -> Value {
    let mut v = serde_json::to_value(&m.spec).unwrap_or(Value::Null);
    let mut views: Vec<GroupView> = groups
        .into_iter()
        .flat_map(|g| g.iter())
        .map(|(name, s)| GroupView {
            name: name.clone(),
            status: s.state,
            value: s.value,
            last_triggered_ts: s.last_triggered_ms.map(|t| t / 1000),
            last_nodata_ts: (s.state == super::State::NoData).then_some(s.since_ms / 1000),
            since_ts: s.since_ms / 1000,
            last_eval_ts: s.last_eval_ms / 1000,
            muted: m.muted(name, now_ms),
        })
        .collect();
    views.sort_by(|a, b| a.name.cmp(&b.name));
    let by_name: serde_json::Map<String, Value> = views
        .into_iter()
        .map(|g| {
            (
                g.name.clone(),
                serde_json::to_value(g).unwrap_or(Value::Null),
            )
        })
        .collect();
    if let Value::Object(o) = &mut v {
        o.insert("id".into(), json!(m.id));
        o.insert("overall_state".into(), json!(overall_state(groups)));
        o.insert("muted".into(), json!(m.muted("*", now_ms)));
        o.insert("state".into(), json!({ "groups": by_name }));
    }
    v
}

async fn list(State(st): State<Arc<AppState>>) -> Response {
    let mons = &st.monitors;
    let states = match mons.states().await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let now = crate::timefmt::now_ms();
    let file = mons.file();
    let out: Vec<Value> = file
        .monitors
        .iter()
        .map(|m| monitor_json(m, states.get(&m.id), now))
        .collect();
    let mut resp = axum::Json(out).into_response();
    // As the pipelines list does: the monitors listed are those in effect, not the file's.
    if let Some(e) = mons.load_error() {
        let clean: String = e
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .take(1000)
            .collect();
        if let Ok(v) = axum::http::HeaderValue::from_str(&clean) {
            resp.headers_mut().insert("x-cairn-monitors-error", v);
        }
    }
    resp
}

async fn one(mons: &Arc<Monitors>, id: i64) -> Response {
    let Some(m) = mons.find(id) else {
        return v1_error(StatusCode::NOT_FOUND, format!("no monitor {id}"));
    };
    match mons.states().await {
        Ok(s) => axum::Json(monitor_json(&m, s.get(&id), crate::timefmt::now_ms())).into_response(),
        Err(e) => fail(e),
    }
}

async fn get_one(State(st): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    match parse_id(&id) {
        Ok(id) => one(&st.monitors, id).await,
        Err(r) => *r,
    }
}

/// A body checked into a monitor; the 400 names the field.
fn checked(v: Value) -> Result<(config::MonitorSpec, super::query::MonitorQuery), IntakeError> {
    let spec =
        config::spec_from_json(v).map_err(|(f, r)| IntakeError::BadRequest(format!("{f}: {r}")))?;
    let q =
        config::check_spec(&spec).map_err(|(f, r)| IntakeError::BadRequest(format!("{f}: {r}")))?;
    Ok((spec, q))
}

/// The `@webhook-<name>` handles of the message and of the escalation message must name
/// configured webhooks (a file that names an unknown one is loaded with a warning; the API
/// refuses it, naming the field).
fn known_webhooks(
    spec: &config::MonitorSpec,
    webhooks: &[config::WebhookSpec],
) -> Result<(), IntakeError> {
    let escalation = spec.options.escalation_message.as_deref().unwrap_or("");
    for (field, text) in [
        ("message", spec.message.as_str()),
        ("options.escalation_message", escalation),
    ] {
        let unknown = config::unknown_webhooks(text, webhooks);
        if unknown.is_empty() {
            continue;
        }
        let handles: Vec<String> = unknown.iter().map(|n| format!("@webhook-{n}")).collect();
        return Err(IntakeError::BadRequest(format!(
            "{field}: {} names no configured webhook; the webhooks configured: {}",
            handles.join(", "),
            config::webhook_list(webhooks)
        )));
    }
    Ok(())
}

async fn validate(body: Bytes) -> Response {
    let v = match body_json(&body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    match checked(v) {
        Ok(_) => axum::Json(json!({})).into_response(),
        Err(e) => fail(e),
    }
}

async fn create(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    let v = match body_json(&body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let (mut spec, query) = match checked(v) {
        Ok(x) => x,
        Err(e) => return fail(e),
    };
    let mons = st.monitors.clone();
    let made = mons
        .modify(move |file| {
            known_webhooks(&spec, &file.webhooks)?;
            // Datadog assigns the id; the next after the largest keeps them short and unique.
            let id = file.monitors.iter().map(|m| m.id).max().unwrap_or(0) + 1;
            spec.id = Some(id);
            file.monitors.push(Monitor { id, spec, query });
            Ok(id)
        })
        .await;
    match made {
        Ok(id) => one(&mons, id).await,
        Err(e) => fail(e),
    }
}

async fn update(State(st): State<Arc<AppState>>, Path(id): Path<String>, body: Bytes) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let patch = match body_json(&body) {
        Ok(Value::Object(o)) => o,
        Ok(_) => {
            return v1_error(
                StatusCode::BAD_REQUEST,
                "the body must be a JSON object".into(),
            )
        }
        Err(r) => return *r,
    };
    let message_given = patch.contains_key("message")
        || patch
            .get("options")
            .is_some_and(|o| o.get("escalation_message").is_some());
    let mons = st.monitors.clone();
    let done = mons
        .modify(move |file| {
            let Some(slot) = file.monitors.iter_mut().find(|m| m.id == id) else {
                return Err(IntakeError::NotFound(format!("no monitor {id}")));
            };
            // Datadog's edit changes the fields given; options are merged one level deep.
            let mut cur = serde_json::to_value(&slot.spec)
                .map_err(|e| IntakeError::BadRequest(e.to_string()))?;
            for (k, v) in patch {
                match (k.as_str(), cur.get_mut("options"), v) {
                    ("options", Some(Value::Object(o)), Value::Object(new)) => {
                        for (ok, ov) in new {
                            o.insert(ok, ov);
                        }
                    }
                    ("id", _, _) => {}
                    (_, _, v) => {
                        cur[k.as_str()] = v;
                    }
                }
            }
            let (mut spec, query) = checked(cur)?;
            if message_given {
                known_webhooks(&spec, &file.webhooks)?;
            }
            spec.id = Some(id);
            *slot = Monitor { id, spec, query };
            Ok(())
        })
        .await;
    match done {
        Ok(()) => one(&mons, id).await,
        Err(e) => fail(e),
    }
}

async fn delete(State(st): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let mons = st.monitors.clone();
    let done = mons
        .modify(move |file| {
            let before = file.monitors.len();
            file.monitors.retain(|m| m.id != id);
            if file.monitors.len() == before {
                return Err(IntakeError::NotFound(format!("no monitor {id}")));
            }
            Ok(())
        })
        .await;
    if let Err(e) = done {
        return fail(e);
    }
    if let Err(e) = mons.forget(id).await {
        return fail(e);
    }
    axum::Json(json!({ "deleted_monitor_id": id })).into_response()
}

async fn mute(State(st): State<Arc<AppState>>, Path(id): Path<String>, body: Bytes) -> Response {
    set_mute(st, id, body, true).await
}

async fn unmute(State(st): State<Arc<AppState>>, Path(id): Path<String>, body: Bytes) -> Response {
    set_mute(st, id, body, false).await
}

/// Mute: `{"scope": "host:web-1"?, "end": epoch_s?}` (default: the whole monitor, until
/// unmuted). Unmute: `{"scope"?}` or `{"all_scopes": true}`.
async fn set_mute(st: Arc<AppState>, id: String, body: Bytes, on: bool) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let b = match body_json(&body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let scope = match b.get("scope") {
        None | Some(Value::Null) => "*".to_owned(),
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
        Some(_) => {
            return v1_error(
                StatusCode::BAD_REQUEST,
                "scope: must be a group such as host:web-1, or *".into(),
            )
        }
    };
    let end = match b.get("end") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_i64() {
            Some(e) => Some(e),
            None => return v1_error(StatusCode::BAD_REQUEST, "end: must be epoch seconds".into()),
        },
    };
    let all = b
        .get("all_scopes")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mons = st.monitors.clone();
    let done = mons
        .modify(move |file| {
            let Some(m) = file.monitors.iter_mut().find(|m| m.id == id) else {
                return Err(IntakeError::NotFound(format!("no monitor {id}")));
            };
            let silenced = &mut m.spec.options.silenced;
            if on {
                silenced.insert(scope, end);
            } else if all {
                silenced.clear();
            } else {
                silenced.remove(&scope);
            }
            Ok(())
        })
        .await;
    match done {
        Ok(()) => one(&mons, id).await,
        Err(e) => fail(e),
    }
}

async fn history(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(p): Query<HashMap<String, String>>,
) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let limit = match p.get("limit").map(|l| l.parse::<u32>()) {
        None => 100,
        Some(Ok(l)) if (1..=10_000).contains(&l) => l,
        Some(_) => return v1_error(StatusCode::BAD_REQUEST, "limit: must be 1 to 10000".into()),
    };
    match st.monitors.history(id, limit).await {
        Ok(rows) => axum::Json(json!({ "monitor_id": id, "history": rows })).into_response(),
        Err(e) => fail(e),
    }
}

/// Evaluates now (or at `?now=` epoch ms, for tests and what-ifs) without changing a state.
async fn evaluate(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(p): Query<HashMap<String, String>>,
) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let now = match p.get("now").map(|n| n.parse::<i64>()) {
        None => crate::timefmt::now_ms(),
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            return v1_error(
                StatusCode::BAD_REQUEST,
                "now: must be epoch milliseconds".into(),
            )
        }
    };
    match st.monitors.preview(id, now).await {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => fail(e),
    }
}
