//! The HTTP face: intake endpoints, search endpoints, the Explorer's static files.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::api;
use crate::ingest::{self, Encoding, Reject};
use crate::store::Store;
use crate::timefmt::now_ms;
use crate::{wire, IntakeError};

/// Compressed bodies are smaller than what they expand to, so the raw body never needs to be
/// much over the decompressed limit; the slack covers incompressible data's framing.
const MAX_RAW_BODY_BYTES: usize = wire::MAX_PAYLOAD_BYTES + 1_000_000;
/// Requests decoded or waiting for the writer at once; more wait their turn, which bounds
/// memory at about this many payloads.
const MAX_INGEST_IN_FLIGHT: usize = 16;

pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub struct AppState {
    pub store: Arc<Store>,
    pub api_keys: Vec<String>,
    ingest_permits: Semaphore,
    /// `Host` values accepted when bound to loopback, so a web page that rebinds its DNS name
    /// to 127.0.0.1 cannot read the Explorer's answers.
    allowed_hosts: Option<Vec<String>>,
}

pub fn router(store: Arc<Store>, api_keys: Vec<String>, local: std::net::SocketAddr) -> Router {
    let allowed_hosts = local.ip().is_loopback().then(|| {
        let port = local.port();
        vec![
            format!("127.0.0.1:{port}"),
            format!("localhost:{port}"),
            format!("[::1]:{port}"),
            local.to_string(),
        ]
    });
    let state = Arc::new(AppState {
        store,
        api_keys,
        ingest_permits: Semaphore::new(MAX_INGEST_IN_FLIGHT),
        allowed_hosts,
    });
    Router::new()
        .route("/api/v2/logs", post(ingest_handler))
        .route("/v1/input", post(ingest_handler))
        .route("/v1/input/{key}", post(ingest_with_path_key))
        .route("/api/v2/logs/events/search", post(search_handler))
        .route("/api/v2/logs/events/tail", get(tail_handler))
        .route("/api/v2/logs/analytics/aggregate", post(aggregate_handler))
        .route("/api/v1/validate", get(validate_handler))
        .route(
            "/",
            get(|| {
                static_file(
                    "text/html; charset=utf-8",
                    include_str!("explorer/index.html"),
                )
            }),
        )
        .route(
            "/app.js",
            get(|| {
                static_file(
                    "text/javascript; charset=utf-8",
                    include_str!("explorer/app.js"),
                )
            }),
        )
        .route(
            "/app.css",
            get(|| static_file("text/css; charset=utf-8", include_str!("explorer/app.css"))),
        )
        .layer(DefaultBodyLimit::max(MAX_RAW_BODY_BYTES))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

async fn static_file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// Every response carries the security headers; requests with a foreign `Host` are refused.
async fn guard(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if let (Some(allowed), Some(host)) = (&st.allowed_hosts, req.headers().get(header::HOST)) {
        let host = host.to_str().unwrap_or("");
        if !allowed.iter().any(|a| a.eq_ignore_ascii_case(host)) {
            return error(
                StatusCode::MISDIRECTED_REQUEST,
                format!("this intake answers to 127.0.0.1, not {host:?}"),
            );
        }
    }
    // Browsers send `Origin` on cross-site POSTs (even "simple" text/plain ones that skip the
    // CORS preflight): refuse any origin but the Explorer's own, so another web page cannot
    // inject logs into, or query, this intake. Agents and the CLI send no Origin.
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let same_origin = origin
            .strip_prefix("http://")
            .is_some_and(|o| !host.is_empty() && o.eq_ignore_ascii_case(host));
        if !same_origin {
            return error(
                StatusCode::FORBIDDEN,
                format!("requests from origin {origin:?} are refused"),
            );
        }
    }
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

#[derive(Serialize)]
struct ErrorBody {
    errors: Vec<ErrorItem>,
}

#[derive(Serialize)]
struct ErrorItem {
    status: String,
    title: String,
    detail: String,
}

fn error(status: StatusCode, detail: String) -> Response {
    let body = ErrorBody {
        errors: vec![ErrorItem {
            status: status.as_u16().to_string(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            detail,
        }],
    };
    (status, axum::Json(body)).into_response()
}

fn reject(r: Reject) -> Response {
    match r {
        Reject::BadBody(m) => error(StatusCode::BAD_REQUEST, m),
        Reject::TooLarge(m) => error(StatusCode::PAYLOAD_TOO_LARGE, m),
        Reject::UnsupportedEncoding(m) => error(StatusCode::UNSUPPORTED_MEDIA_TYPE, m),
    }
}

fn store_error(e: IntakeError) -> Response {
    match e {
        IntakeError::Syntax(q) => error(StatusCode::BAD_REQUEST, q.to_string()),
        IntakeError::BadRequest(m) => error(StatusCode::BAD_REQUEST, m),
        IntakeError::WriterGone => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        other => {
            tracing::warn!(error = %other, "intake request failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, other.to_string())
        }
    }
}

/// Compares without an early exit so that response time does not reveal how much of a key
/// was right.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn authorised(st: &AppState, headers: &HeaderMap, query_key: Option<&str>) -> bool {
    if st.api_keys.is_empty() {
        return true;
    }
    let given = headers
        .get(wire::API_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .or(query_key);
    given.is_some_and(|g| st.api_keys.iter().any(|k| same_secret(k, g.trim())))
}

fn forbidden() -> Response {
    error(
        StatusCode::FORBIDDEN,
        "missing or unknown DD-API-KEY".into(),
    )
}

async fn ingest_with_path_key(
    State(st): State<Arc<AppState>>,
    axum::extract::Path(key): axum::extract::Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    ingest(st, headers, Some(key), body).await
}

async fn ingest_handler(
    State(st): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    ingest(st, headers, q.get(wire::API_KEY_PARAM).cloned(), body).await
}

async fn ingest(
    st: Arc<AppState>,
    headers: HeaderMap,
    query_key: Option<String>,
    body: Bytes,
) -> Response {
    if !authorised(&st, &headers, query_key.as_deref()) {
        return forbidden();
    }
    let encoding = match Encoding::from_header(
        headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok()),
    ) {
        Ok(e) => e,
        Err(r) => return reject(r),
    };
    let Ok(_permit) = st.ingest_permits.acquire().await else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "intake is shutting down".into(),
        );
    };
    let now = now_ms();
    let parsed = tokio::task::spawn_blocking(move || {
        let plain = ingest::decode_capped(encoding, &body, wire::MAX_PAYLOAD_BYTES)?;
        ingest::parse_logs(&plain, now)
    })
    .await;
    let logs = match parsed {
        Ok(Ok(logs)) => logs,
        Ok(Err(r)) => return reject(r),
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("decoding task failed: {e}"),
            )
        }
    };
    if !logs.is_empty() {
        if let Err(e) = st.store.append(logs).await {
            return store_error(e);
        }
    }
    (
        StatusCode::ACCEPTED,
        [(header::CONTENT_TYPE, "application/json")],
        "{}",
    )
        .into_response()
}

async fn validate_handler(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if !authorised(&st, &headers, None) {
        return forbidden();
    }
    axum::Json(serde_json::json!({"valid": true})).into_response()
}

fn json_body<T: serde::de::DeserializeOwned + Default>(body: &Bytes) -> Result<T, Box<Response>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| Box::new(error(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}"))))
}

/// The POST read endpoints: key check, JSON body, a query on a read connection, JSON answer.
async fn read_json<Req, Resp>(
    st: &AppState,
    headers: &HeaderMap,
    body: &Bytes,
    run: fn(&rusqlite::Connection, &Req, i64) -> Result<Resp, IntakeError>,
) -> Response
where
    Req: serde::de::DeserializeOwned + Default + Send + 'static,
    Resp: Serialize + Send + 'static,
{
    if !authorised(st, headers, None) {
        return forbidden();
    }
    let req: Req = match json_body(body) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let now = now_ms();
    match st.store.read(move |c| run(c, &req, now)).await {
        Ok(r) => axum::Json(r).into_response(),
        Err(e) => store_error(e),
    }
}

async fn search_handler(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    read_json(&st, &headers, &body, api::search).await
}

async fn tail_handler(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(req): Query<api::TailRequest>,
) -> Response {
    if !authorised(&st, &headers, None) {
        return forbidden();
    }
    match st.store.read(move |c| api::tail(c, &req)).await {
        Ok(r) => axum::Json(r).into_response(),
        Err(e) => store_error(e),
    }
}

async fn aggregate_handler(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    read_json(&st, &headers, &body, api::aggregate).await
}
