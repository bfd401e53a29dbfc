//! The HTTP face: intake endpoints, search endpoints, the Explorer's static files.

use std::sync::Arc;

use crate::api;
use crate::auth::same_secret;
use crate::ingest::{self, Encoding, Reject};
use crate::limit::{self, BodyBudget, IntakeLimits};
use crate::store::Store;
use crate::timefmt::now_ms;
use crate::{wire, IntakeError};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Serialize;

pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub struct AppState {
    pub store: Arc<Store>,
    pub monitors: Arc<crate::monitors::Monitors>,
    access: Access,
    /// The pipelines applied at ingest (issue 12); `pipelines::routes()` edits them.
    pub pipelines: Arc<crate::pipelines::PipelineState>,
}

/// Who may use the intake, and under which names.
pub struct Access {
    /// The session token; `None` when disabled.
    pub token: Option<String>,
    /// Accepted besides the token (SPEC §6).
    pub api_keys: Vec<String>,
    /// `Host` values answered to (see `auth::allowed_hosts`): a web page that rebinds its
    /// DNS name to this machine sends its own name and is refused.
    pub allowed_hosts: Vec<String>,
    /// Name of the cookie the Explorer gets for the token.
    pub cookie: String,
}

impl Access {
    fn open(&self) -> bool {
        self.token.is_none() && self.api_keys.is_empty()
    }

    fn accepts(&self, given: &str) -> bool {
        let given = given.trim().as_bytes();
        // Every secret is compared, so timing does not tell which one (or whether any) matched.
        let mut ok = false;
        if let Some(t) = &self.token {
            ok |= same_secret(t.as_bytes(), given);
        }
        for k in &self.api_keys {
            ok |= same_secret(k.as_bytes(), given);
        }
        ok
    }
}

pub fn router(
    store: Arc<Store>,
    monitors: Arc<crate::monitors::Monitors>,
    access: Access,
    limits: &IntakeLimits,
    pipelines: Arc<crate::pipelines::PipelineState>,
) -> Router {
    let state = Arc::new(AppState {
        store,
        monitors,
        access,
        pipelines,
    });
    let budget = Arc::new(BodyBudget::new(limits));
    Router::new()
        .route("/api/v2/logs", post(ingest_handler))
        .route("/v1/input", post(ingest_handler))
        .route("/v1/input/{key}", post(ingest_handler))
        .route("/api/v2/logs/events/search", post(search_handler))
        .route("/api/v2/logs/events/tail", get(tail_handler))
        .route("/api/v2/logs/analytics/aggregate", post(aggregate_handler))
        .route("/api/v2/logs/attributes", get(attributes_handler))
        .route("/api/v2/logs/analytics/patterns", post(patterns_handler))
        .route("/api/v2/logs/events/{id}/context", get(context_handler))
        .route("/api/v2/logs/events/export", post(export_handler))
        .route("/api/v2/logs/views", get(views_list_handler))
        .route(
            "/api/v2/logs/views/{name}",
            get(view_get_handler)
                .put(view_put_handler)
                .delete(view_delete_handler),
        )
        .route("/api/v1/validate", get(validate_handler))
        .route("/api/v2/series", post(series_v2_handler))
        .route("/api/v1/series", post(series_v1_handler))
        .route(
            "/api/v1/check_run",
            post(check_run_handler).get(check_status_handler),
        )
        .route("/api/v1/events", post(event_handler).get(events_handler))
        .route("/api/v1/query", get(metric_query_handler))
        .route("/api/v1/metrics", get(active_metrics_handler))
        .route("/api/v1/search", get(metric_search_handler))
        .route("/api/v2/metrics/{name}/all-tags", get(all_tags_handler))
        .merge(crate::pipelines::routes())
        .merge(crate::monitors::routes())
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
            "/metrics.js",
            get(|| {
                static_file(
                    "text/javascript; charset=utf-8",
                    include_str!("explorer/metrics.js"),
                )
            }),
        )
        .route(
            "/app.css",
            get(|| static_file("text/css; charset=utf-8", include_str!("explorer/app.css"))),
        )
        .route(
            "/analytics.js",
            get(|| {
                static_file(
                    "text/javascript; charset=utf-8",
                    include_str!("explorer/analytics.js"),
                )
            }),
        )
        .route(
            "/pipelines.js",
            get(|| {
                static_file(
                    "text/javascript; charset=utf-8",
                    include_str!("explorer/pipelines.js"),
                )
            }),
        )
        .route(
            "/monitors.js",
            get(|| {
                static_file(
                    "text/javascript; charset=utf-8",
                    include_str!("explorer/monitors.js"),
                )
            }),
        )
        .route(
            "/admin.css",
            get(|| {
                static_file(
                    "text/css; charset=utf-8",
                    include_str!("explorer/admin.css"),
                )
            }),
        )
        .route(
            "/analytics.css",
            get(|| {
                static_file(
                    "text/css; charset=utf-8",
                    include_str!("explorer/analytics.css"),
                )
            }),
        )
        // `bound_body` has already received the whole body within its limits.
        .layer(DefaultBodyLimit::disable())
        // Inside the guard: no byte of a body is read before the token is checked.
        .layer(middleware::from_fn_with_state(budget, limit::bound_body))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        // Outermost, so that every answer carries the security headers: the guard's 400, 401,
        // 403 and 421, the body limits' 408, 413 and 503, and whatever other layers answer themselves.
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// The routes, for tests that must cover every one of them.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/v2/logs"),
    ("POST", "/v1/input"),
    ("POST", "/v1/input/{key}"),
    ("POST", "/api/v2/logs/events/search"),
    ("GET", "/api/v2/logs/events/tail"),
    ("POST", "/api/v2/logs/analytics/aggregate"),
    ("GET", "/api/v2/logs/attributes"),
    ("POST", "/api/v2/logs/analytics/patterns"),
    ("GET", "/api/v2/logs/events/{id}/context"),
    ("POST", "/api/v2/logs/events/export"),
    ("GET", "/api/v2/logs/views"),
    ("GET", "/api/v2/logs/views/{name}"),
    ("PUT", "/api/v2/logs/views/{name}"),
    ("DELETE", "/api/v2/logs/views/{name}"),
    ("GET", "/api/v1/validate"),
    // pipelines (issue 12)
    ("GET", "/api/v1/logs/config/pipelines"),
    ("PUT", "/api/v1/logs/config/pipelines"),
    ("POST", "/api/v1/logs/config/pipelines"),
    ("POST", "/api/v1/logs/config/pipelines/preview"),
    ("GET", "/api/v1/logs/config/pipelines/_status"),
    ("GET", "/api/v1/logs/config/pipelines/{id}"),
    ("PUT", "/api/v1/logs/config/pipelines/{id}"),
    ("DELETE", "/api/v1/logs/config/pipelines/{id}"),
    ("GET", "/api/v1/logs/config/pipeline-order"),
    ("PUT", "/api/v1/logs/config/pipeline-order"),
    // monitors (issue 12)
    ("GET", "/api/v1/monitor"),
    ("POST", "/api/v1/monitor"),
    ("POST", "/api/v1/monitor/validate"),
    ("GET", "/api/v1/monitor/{id}"),
    ("PUT", "/api/v1/monitor/{id}"),
    ("DELETE", "/api/v1/monitor/{id}"),
    ("POST", "/api/v1/monitor/{id}/mute"),
    ("POST", "/api/v1/monitor/{id}/unmute"),
    ("GET", "/api/v1/monitor/{id}/history"),
    ("POST", "/api/v1/monitor/{id}/evaluate"),
    ("POST", "/api/v2/series"),
    ("POST", "/api/v1/series"),
    ("POST", "/api/v1/check_run"),
    ("GET", "/api/v1/check_run"),
    ("POST", "/api/v1/events"),
    ("GET", "/api/v1/events"),
    ("GET", "/api/v1/query"),
    ("GET", "/api/v1/metrics"),
    ("GET", "/api/v1/search"),
    ("GET", "/api/v2/metrics/{name}/all-tags"),
    ("GET", "/"),
    ("GET", "/app.js"),
    ("GET", "/metrics.js"),
    ("GET", "/app.css"),
    ("GET", "/analytics.js"),
    ("GET", "/analytics.css"),
    ("GET", "/pipelines.js"),
    ("GET", "/monitors.js"),
    ("GET", "/admin.css"),
];

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

async fn security_headers(req: Request, next: Next) -> Response {
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
    h.insert(
        header::HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    );
    resp
}

/// Refuses, before any body is read: a missing or foreign `Host` (DNS rebinding), requests a
/// browser marks as coming from another site, a foreign `Origin`, and requests without the
/// token or a key. Trades `/?token=` for a cookie.
async fn guard(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let access = &st.access;
    let headers = req.headers();
    // HTTP/1.1 requires Host; without one the check below could not tell a rebinding page
    // from a local client, so it is refused rather than skipped.
    let Some(host) = headers.get(header::HOST) else {
        return error(StatusCode::BAD_REQUEST, "a Host header is required".into());
    };
    let host = host.to_str().unwrap_or("");
    if !access
        .allowed_hosts
        .iter()
        .any(|a| a.eq_ignore_ascii_case(host))
    {
        return error(
            StatusCode::MISDIRECTED_REQUEST,
            format!("this intake does not answer to the name {host:?}"),
        );
    }
    // Browsers label every request with where it comes from. A no-cors `<img>` or a form
    // carries no Origin but does carry this, so it is what stops another page's GETs.
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.as_bytes();
        if site.eq_ignore_ascii_case(b"cross-site") || site.eq_ignore_ascii_case(b"same-site") {
            return error(
                StatusCode::FORBIDDEN,
                "requests from other web sites are refused; open the Explorer URL directly".into(),
            );
        }
    }
    // Browsers send `Origin` on cross-origin fetches and POSTs (even "simple" text/plain ones
    // that skip the CORS preflight); only the Explorer's own origin may be named.
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let same_origin = origin
            .strip_prefix("http://")
            .is_some_and(|o| o.eq_ignore_ascii_case(host));
        if !same_origin {
            return error(
                StatusCode::FORBIDDEN,
                format!("requests from origin {origin:?} are refused"),
            );
        }
    }
    if access.open() {
        return next.run(req).await;
    }
    let path = req.uri().path();
    let query = req.uri().query().unwrap_or("");
    if path == "/" && req.method() == Method::GET {
        if let Some(t) = query_param(query, "token") {
            return exchange_token(access, &t);
        }
    }
    let mut presented = false;
    let mut ok = false;
    let mut check = |given: &str| {
        presented = true;
        ok |= access.accepts(given);
    };
    if let Some(k) = headers
        .get(wire::API_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        check(k);
    }
    if let Some(b) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
    {
        check(b);
    }
    for cookies in headers.get_all(header::COOKIE) {
        let Ok(cookies) = cookies.to_str() else {
            continue;
        };
        for c in cookies.split(';') {
            if let Some((name, value)) = c.trim().split_once('=') {
                if name == access.cookie {
                    check(value);
                }
            }
        }
    }
    // Datadog's intake takes the key in the URL too; kept for its senders, on ingest only.
    // The URL is never logged, so the key does not end up in the intake's logs.
    if req.method() == Method::POST && is_ingest_path(path) {
        if let Some(k) = query_param(query, wire::API_KEY_PARAM) {
            check(&k);
        }
        if let Some(k) = path.strip_prefix("/v1/input/").filter(|k| !k.is_empty()) {
            check(&percent_decode(k));
        }
    }
    if ok {
        next.run(req).await
    } else if presented {
        error(StatusCode::FORBIDDEN, "unknown token or API key".into())
    } else {
        let mut resp = error(
            StatusCode::UNAUTHORIZED,
            "a token is required: open the Explorer URL that cairn printed (it ends in \
             ?token=...), or send Authorization: Bearer <token> or DD-API-KEY"
                .into(),
        );
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"cairn-intake\""),
        );
        resp
    }
}

/// Routes Datadog senders post data to, which may carry the key in the URL.
fn is_ingest_path(path: &str) -> bool {
    matches!(
        path,
        "/api/v2/logs"
            | "/api/v2/series"
            | "/api/v1/series"
            | "/api/v1/check_run"
            | "/api/v1/events"
    ) || path.starts_with("/v1/input")
}

/// `GET /?token=T`: a right token becomes an HttpOnly, SameSite=Strict cookie and the browser
/// is sent to `/`, so the token leaves the address bar and the history entry.
fn exchange_token(access: &Access, given: &str) -> Response {
    let right = access
        .token
        .as_deref()
        .is_some_and(|t| same_secret(t.as_bytes(), given.trim().as_bytes()));
    if !right {
        return error(StatusCode::FORBIDDEN, "unknown token".into());
    }
    let token = access.token.as_deref().unwrap_or_default();
    let cookie = format!(
        "{}={token}; HttpOnly; SameSite=Strict; Path=/",
        access.cookie
    );
    let Ok(cookie) = HeaderValue::from_str(&cookie) else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the token cannot be set as a cookie".into(),
        );
    };
    let mut resp = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    resp.headers_mut().insert(header::SET_COOKIE, cookie);
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The value of `name` in a query string, percent-decoded; borrowed when nothing is encoded.
fn query_param<'a>(query: &'a str, name: &str) -> Option<std::borrow::Cow<'a, str>> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return std::borrow::Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    std::borrow::Cow::Owned(String::from_utf8_lossy(&out).into_owned())
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

pub(crate) fn error(status: StatusCode, detail: String) -> Response {
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
        IntakeError::NotFound(m) => error(StatusCode::NOT_FOUND, m),
        IntakeError::WriterGone => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        other => {
            tracing::warn!(error = %other, "intake request failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, other.to_string())
        }
    }
}

/// The token or key was checked by `guard`, before the body was read.
async fn ingest_handler(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let encoding = match Encoding::from_header(
        headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok()),
    ) {
        Ok(e) => e,
        Err(r) => return reject(r),
    };
    let now = now_ms();
    // One version of the pipelines for the whole batch, taken before the blocking thread so
    // no lock is held while processing.
    let pipelines = st.pipelines.current();
    let parsed = tokio::task::spawn_blocking(move || {
        let plain = ingest::decode_capped(encoding, &body, wire::MAX_PAYLOAD_BYTES)?;
        let mut logs = ingest::parse_logs(&plain, now)?;
        crate::pipelines::apply(&pipelines.compiled, &mut logs);
        Ok(logs)
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

async fn validate_handler() -> Response {
    axum::Json(serde_json::json!({"valid": true})).into_response()
}

fn json_body<T: serde::de::DeserializeOwned + Default>(body: &Bytes) -> Result<T, Box<Response>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| Box::new(error(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}"))))
}

/// The POST read endpoints (the token was checked by `guard`): JSON body, a query on a read connection, JSON answer.
async fn read_json<Req, Resp>(
    st: &AppState,
    body: &Bytes,
    run: fn(&rusqlite::Connection, &Req, i64) -> Result<Resp, IntakeError>,
) -> Response
where
    Req: serde::de::DeserializeOwned + Default + Send + 'static,
    Resp: Serialize + Send + 'static,
{
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

async fn search_handler(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    read_json(&st, &body, api::search).await
}

async fn tail_handler(
    State(st): State<Arc<AppState>>,
    Query(req): Query<api::TailRequest>,
) -> Response {
    match st.store.read(move |c| api::tail(c, &req)).await {
        Ok(r) => axum::Json(r).into_response(),
        Err(e) => store_error(e),
    }
}

async fn aggregate_handler(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    read_json(&st, &body, api::aggregate).await
}

async fn attributes_handler(
    State(st): State<Arc<AppState>>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    // Parsed here rather than by the extractor, so a bad limit gets the usual JSON error.
    let limit = match q.get("limit").map(|l| l.parse::<u32>()) {
        None => None,
        Some(Ok(l)) => Some(l),
        Some(Err(_)) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "limit {:?} is not a number from 1 to {}",
                    q["limit"],
                    api::MAX_ATTRIBUTES_LIMIT
                ),
            )
        }
    };
    let params = api::AttributesParams {
        prefix: q.get("prefix").cloned(),
        limit,
    };
    match st.store.read(move |c| api::attributes(c, &params)).await {
        Ok(r) => axum::Json(r).into_response(),
        Err(e) => store_error(e),
    }
}

// ---- patterns, view in context, saved views, export (issue 11) ----

async fn patterns_handler(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    read_json(&st, &body, crate::patterns::patterns).await
}

async fn context_handler(
    State(st): State<Arc<AppState>>,
    axum::extract::Path(id): axum::extract::Path<String>,
    Query(p): Query<std::collections::HashMap<String, String>>,
) -> Response {
    match st
        .store
        .read(move |c| crate::context::context(c, &id, &p))
        .await
    {
        Ok(r) => axum::Json(r).into_response(),
        Err(e) => store_error(e),
    }
}

async fn views_list_handler(State(st): State<Arc<AppState>>) -> Response {
    match st.store.read(crate::views::list).await {
        Ok(r) => axum::Json(r).into_response(),
        Err(e) => store_error(e),
    }
}

async fn view_get_handler(
    State(st): State<Arc<AppState>>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Response {
    match st.store.read(move |c| crate::views::get(c, &name)).await {
        Ok(r) => axum::Json(r).into_response(),
        Err(e) => store_error(e),
    }
}

async fn view_put_handler(
    State(st): State<Arc<AppState>>,
    axum::extract::Path(name): axum::extract::Path<String>,
    body: Bytes,
) -> Response {
    let db = st.store.path().to_owned();
    let now = now_ms();
    let done = tokio::task::spawn_blocking(move || {
        let state = crate::views::parse_put(&body)?;
        crate::views::put(&db, &name, &state, now)
    })
    .await;
    match done {
        Ok(Ok(r)) => axum::Json(r).into_response(),
        Ok(Err(e)) => store_error(e),
        Err(e) => store_error(IntakeError::QueryPanicked(e.to_string())),
    }
}

async fn view_delete_handler(
    State(st): State<Arc<AppState>>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Response {
    let db = st.store.path().to_owned();
    match tokio::task::spawn_blocking(move || crate::views::delete(&db, &name)).await {
        Ok(Ok(())) => StatusCode::NO_CONTENT.into_response(),
        Ok(Err(e)) => store_error(e),
        Err(e) => store_error(IntakeError::QueryPanicked(e.to_string())),
    }
}

/// Answers once the first page is read (a query the store refuses is still a 400), then
/// streams the pages after it.
async fn export_handler(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    use crate::export;
    let req: export::ExportRequest = match json_body(&body) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let now = now_ms();
    let plan = match export::plan(&req, now) {
        Ok(p) => p,
        Err(e) => return store_error(e),
    };
    let format = plan.format;
    let first_plan = plan.clone();
    let want = plan.limit.min(export::PAGE_LOGS);
    let first = match st
        .store
        .read(move |c| export::page(c, &first_plan, None, want))
        .await
    {
        Ok(p) => p,
        Err(e) => return store_error(e),
    };
    let (tx, rx) = tokio::sync::mpsc::channel(export::QUEUED_PAGES);
    tokio::spawn(export::stream_rest(st.store.clone(), plan, first, tx));
    let disposition = format!(
        "attachment; filename=\"{}\"",
        export::file_name(format, now)
    );
    let mut resp = axum::body::Body::new(export::ChannelBody(rx)).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

// ---- metrics, service checks, events (issue 9) ----

/// Datadog's v1 error shape, `{"errors":["..."]}`, which its metric, check and event
/// endpoints answer with.
fn v1_error(status: StatusCode, detail: String) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "errors": [detail] })),
    )
        .into_response()
}

fn v1_reject(r: Reject) -> Response {
    match r {
        Reject::BadBody(m) => v1_error(StatusCode::BAD_REQUEST, m),
        Reject::TooLarge(m) => v1_error(StatusCode::PAYLOAD_TOO_LARGE, m),
        Reject::UnsupportedEncoding(m) => v1_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, m),
    }
}

fn v1_store_error(e: IntakeError) -> Response {
    match e {
        IntakeError::Syntax(q) => v1_error(StatusCode::BAD_REQUEST, q.to_string()),
        IntakeError::BadRequest(m) => v1_error(StatusCode::BAD_REQUEST, m),
        IntakeError::NotFound(m) => v1_error(StatusCode::NOT_FOUND, m),
        IntakeError::WriterGone => v1_error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        other => {
            tracing::warn!(error = %other, "intake request failed");
            v1_error(StatusCode::INTERNAL_SERVER_ERROR, other.to_string())
        }
    }
}

/// How a metrics-side body is written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    Json,
    Protobuf,
}

fn body_kind(headers: &HeaderMap, protobuf_allowed: bool) -> Result<BodyKind, Reject> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match ct.as_str() {
        "application/json" | "text/json" => Ok(BodyKind::Json),
        // The Agent always names protobuf; a bare body on the protobuf route is taken as it.
        "application/x-protobuf" | "application/protobuf" | "" if protobuf_allowed => {
            Ok(BodyKind::Protobuf)
        }
        // Clients such as curl send form encoding by default; their bodies are JSON.
        "" | "application/x-www-form-urlencoded" | "text/plain" if !protobuf_allowed => {
            Ok(BodyKind::Json)
        }
        other => Err(Reject::UnsupportedEncoding(format!(
            "unsupported Content-Type {other:?}: use {}",
            if protobuf_allowed {
                "application/x-protobuf or application/json"
            } else {
                "application/json"
            }
        ))),
    }
}

/// Decompresses under `cap` and parses on a blocking thread.
async fn decode_body<T: Send + 'static>(
    headers: &HeaderMap,
    body: Bytes,
    cap: usize,
    parse: impl FnOnce(&[u8]) -> Result<T, Reject> + Send + 'static,
) -> Result<T, Response> {
    let encoding = Encoding::from_header(
        headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok()),
    )
    .map_err(v1_reject)?;
    let parsed = tokio::task::spawn_blocking(move || {
        let plain = ingest::decode_capped(encoding, &body, cap)?;
        parse(&plain)
    })
    .await;
    match parsed {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(r)) => Err(v1_reject(r)),
        Err(e) => Err(v1_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("decoding task failed: {e}"),
        )),
    }
}

fn accepted(body: serde_json::Value) -> Response {
    (StatusCode::ACCEPTED, axum::Json(body)).into_response()
}

async fn store_series(st: &AppState, series: Vec<crate::metrics::ingest::NewSeries>) -> Response {
    if !series.is_empty() {
        if let Err(e) = st
            .store
            .append_metrics(crate::store::MetricsBatch::Series(series))
            .await
        {
            return v1_store_error(e);
        }
    }
    accepted(serde_json::json!({ "errors": [] }))
}

async fn series_v2_handler(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let kind = match body_kind(&headers, true) {
        Ok(k) => k,
        Err(r) => return v1_reject(r),
    };
    let cap = crate::metrics::ingest::MAX_SERIES_PAYLOAD_BYTES;
    let series = decode_body(&headers, body, cap, move |b| match kind {
        BodyKind::Json => crate::metrics::ingest::parse_series_v2_json(b),
        BodyKind::Protobuf => {
            let decoded =
                crate::metrics::proto::decode_payload(b).map_err(|e| Reject::BadBody(e.0))?;
            decoded
                .into_iter()
                .enumerate()
                .map(|(i, s)| crate::metrics::ingest::finish_series(i, s))
                .collect()
        }
    })
    .await;
    match series {
        Ok(s) => store_series(&st, s).await,
        Err(resp) => resp,
    }
}

async fn series_v1_handler(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = body_kind(&headers, false) {
        return v1_reject(r);
    }
    let cap = crate::metrics::ingest::MAX_SERIES_PAYLOAD_BYTES;
    match decode_body(
        &headers,
        body,
        cap,
        crate::metrics::ingest::parse_series_v1_json,
    )
    .await
    {
        Ok(s) => store_series(&st, s).await,
        Err(resp) => resp,
    }
}

async fn check_run_handler(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = body_kind(&headers, false) {
        return v1_reject(r);
    }
    let now_s = now_ms() / 1000;
    let cap = crate::metrics::ingest::MAX_SERIES_PAYLOAD_BYTES;
    let checks = match decode_body(&headers, body, cap, move |b| {
        crate::metrics::ingest::parse_check_runs(b, now_s)
    })
    .await
    {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    if !checks.is_empty() {
        if let Err(e) = st
            .store
            .append_metrics(crate::store::MetricsBatch::ServiceChecks(checks))
            .await
        {
            return v1_store_error(e);
        }
    }
    accepted(serde_json::json!({ "status": "ok" }))
}

async fn event_handler(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = body_kind(&headers, false) {
        return v1_reject(r);
    }
    let now_s = now_ms() / 1000;
    let cap = crate::metrics::ingest::MAX_EVENT_PAYLOAD_BYTES;
    let event = match decode_body(&headers, body, cap, move |b| {
        crate::metrics::ingest::parse_event(b, now_s)
    })
    .await
    {
        Ok(e) => e,
        Err(resp) => return resp,
    };
    let id = match st
        .store
        .append_metrics(crate::store::MetricsBatch::Event(event))
        .await
    {
        Ok(id) => id,
        Err(e) => return v1_store_error(e),
    };
    match st
        .store
        .read(move |c| crate::metrics::api::event_by_id(c, id))
        .await
    {
        Ok(Some(ev)) => accepted(serde_json::json!({ "status": "ok", "event": ev })),
        // Retention could only have removed it if it was already past retention.
        Ok(None) => accepted(serde_json::json!({ "status": "ok", "event": { "id": id } })),
        Err(e) => v1_store_error(e),
    }
}

type Params = Query<std::collections::HashMap<String, String>>;

async fn v1_read<T: Serialize + Send + 'static>(
    st: &AppState,
    run: impl FnOnce(&rusqlite::Connection) -> Result<T, IntakeError> + Send + 'static,
) -> Response {
    match st.store.read(run).await {
        Ok(r) => axum::Json(r).into_response(),
        Err(e) => v1_store_error(e),
    }
}

async fn metric_query_handler(State(st): State<Arc<AppState>>, Query(p): Params) -> Response {
    let now_s = now_ms() / 1000;
    v1_read(&st, move |c| crate::metrics::api::query(c, &p, now_s)).await
}

async fn active_metrics_handler(State(st): State<Arc<AppState>>, Query(p): Params) -> Response {
    let now_s = now_ms() / 1000;
    v1_read(&st, move |c| {
        crate::metrics::api::active_metrics(c, &p, now_s)
    })
    .await
}

async fn metric_search_handler(State(st): State<Arc<AppState>>, Query(p): Params) -> Response {
    v1_read(&st, move |c| crate::metrics::api::search(c, &p)).await
}

async fn all_tags_handler(
    State(st): State<Arc<AppState>>,
    axum::extract::Path(name): axum::extract::Path<String>,
    Query(p): Params,
) -> Response {
    let now_s = now_ms() / 1000;
    v1_read(&st, move |c| {
        crate::metrics::api::all_tags(c, &name, &p, now_s)
    })
    .await
}

async fn check_status_handler(State(st): State<Arc<AppState>>, Query(p): Params) -> Response {
    v1_read(&st, move |c| crate::metrics::api::check_status(c, &p)).await
}

async fn events_handler(State(st): State<Arc<AppState>>, Query(p): Params) -> Response {
    let now_s = now_ms() / 1000;
    v1_read(&st, move |c| crate::metrics::api::events(c, &p, now_s)).await
}
