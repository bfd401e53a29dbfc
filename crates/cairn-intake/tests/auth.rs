//! Issue 8, items 2, 3, 4 and 8 against a real intake over HTTP: the token on every route,
//! its cookie exchange, cross-site and foreign-origin refusals, the Host check, listening
//! beyond loopback, and the security headers on error answers.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;

use common::*;
use serde_json::json;

const TOKEN: &str = "test-token-0123456789abcdef";

async fn with_token() -> Harness {
    Harness::start_with(|c| c.auth = cairn_intake::IntakeAuth::Token(TOKEN.into())).await
}

/// A client that sends nothing it is not told to.
fn bare() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn request(h: &Harness, c: &reqwest::Client, method: &str, route: &str) -> reqwest::RequestBuilder {
    let path = route.replace("{key}", "k");
    let url = h.url(&path);
    match method {
        "GET" => c.get(url),
        _ => c
            .post(url)
            .header("content-type", "application/json")
            .body("[]"),
    }
}

fn assert_security_headers(resp: &reqwest::Response, what: &str) {
    let h = resp.headers();
    let csp = h
        .get("content-security-policy")
        .unwrap_or_else(|| panic!("{what}: no CSP"));
    assert_eq!(csp, cairn_intake::CONTENT_SECURITY_POLICY, "{what}");
    assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
    assert_eq!(h["x-frame-options"], "DENY", "{what}");
    assert_eq!(h["referrer-policy"], "no-referrer", "{what}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_needs_the_token_and_says_so_with_security_headers() {
    let h = with_token().await;
    let c = bare();
    for (method, route) in cairn_intake::ROUTES {
        let resp = request(&h, &c, method, route).send().await.unwrap();
        // `/v1/input/k` presents the key `k`: a wrong credential, so 403 rather than 401.
        let expected = if route.contains("{key}") { 403 } else { 401 };
        assert_eq!(resp.status().as_u16(), expected, "{method} {route}");
        assert_security_headers(&resp, route);
        if expected == 401 {
            assert!(resp.headers().contains_key("www-authenticate"));
        }
        let body = resp.text().await.unwrap();
        assert!(!body.contains(TOKEN), "{body}");
        // A wrong token is 403, also on every route.
        let resp = request(&h, &c, method, route)
            .bearer_auth("wrong-token-0123456789")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 403, "{method} {route}");
    }
    // Nothing was stored by any of those.
    assert!(h.search("*").await.is_empty());
    // Unknown paths too: the guard runs before routing answers 404.
    let resp = c.get(h.url("/nope")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let resp = c
        .get(h.url("/nope"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    assert_security_headers(&resp, "404");
}

#[tokio::test(flavor = "multi_thread")]
async fn cookie_dd_api_key_and_bearer_are_each_accepted() {
    let h = with_token().await;
    let c = bare();
    let port = h.intake.local_addr().port();
    let cookie = format!("other=1; {}={TOKEN}", cairn_intake::cookie_name(port));
    let tries: [(&str, String); 3] = [
        ("cookie", cookie),
        ("dd-api-key", TOKEN.to_string()),
        ("authorization", format!("Bearer {TOKEN}")),
    ];
    for (name, value) in &tries {
        let resp = c
            .post(h.url("/api/v2/logs"))
            .header(*name, value)
            .body(format!(r#"[{{"message":"via {name}"}}]"#))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 202, "{name}");
        let resp = c
            .get(h.url("/api/v2/logs/events/tail?query=via"))
            .header(*name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{name}");
    }
    assert_eq!(h.search("via").await.len(), 3);
    // A cookie of another port's intake is not this one's.
    let resp = c
        .get(h.url("/api/v1/validate"))
        .header(
            "cookie",
            format!("{}={TOKEN}", cairn_intake::cookie_name(port + 1)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_url_token_becomes_a_strict_http_only_cookie_and_leaves_the_url() {
    let h = with_token().await;
    let c = bare();
    let url = h.intake.explorer_url();
    assert!(url.ends_with(&format!("/?token={TOKEN}")), "{url}");
    let resp = c.get(&url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    assert_security_headers(&resp, "303");
    assert_eq!(resp.headers()["location"], "/");
    let set = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    let name = cairn_intake::cookie_name(h.intake.local_addr().port());
    assert!(set.starts_with(&format!("{name}={TOKEN};")), "{set}");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    // The cookie opens the page.
    let cookie = set.split(';').next().unwrap().to_owned();
    let page = c
        .get(h.url("/"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.unwrap().contains("<html"));
    // A wrong one gets no cookie.
    let resp = c
        .get(h.url("/?token=not-the-token-at-all"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    assert!(!resp.headers().contains_key("set-cookie"));
}

#[tokio::test(flavor = "multi_thread")]
async fn other_sites_are_refused_on_get_and_post_even_with_the_cookie() {
    let h = with_token().await;
    let c = bare();
    let cookie = format!(
        "{}={TOKEN}",
        cairn_intake::cookie_name(h.intake.local_addr().port())
    );
    for site in ["cross-site", "same-site"] {
        for (method, route) in [
            ("GET", "/api/v2/logs/events/tail"),
            ("POST", "/api/v2/logs"),
            ("GET", "/"),
        ] {
            let resp = request(&h, &c, method, route)
                .header("cookie", &cookie)
                .header("sec-fetch-site", site)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status().as_u16(), 403, "{site} {method} {route}");
            assert_security_headers(&resp, site);
        }
    }
    for origin in ["http://evil.example", "null", "http://127.0.0.1:1"] {
        for (method, route) in [
            ("GET", "/api/v2/logs/events/tail"),
            ("POST", "/api/v2/logs"),
        ] {
            let resp = request(&h, &c, method, route)
                .header("cookie", &cookie)
                .header("origin", origin)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status().as_u16(), 403, "{origin} {method} {route}");
        }
    }
    // The Explorer's own requests pass.
    for site in ["same-origin", "none"] {
        let resp = c
            .get(h.url("/api/v2/logs/events/tail"))
            .header("cookie", &cookie)
            .header("sec-fetch-site", site)
            .header("origin", format!("http://{}", h.intake.local_addr()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{site}");
    }
}

/// Sends `raw` as is and returns the status line and the headers.
fn raw_http(addr: std::net::SocketAddr, raw: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_without_host_or_with_a_foreign_host_is_refused() {
    let h = with_token().await;
    let addr = h.intake.local_addr();
    let out = tokio::task::spawn_blocking(move || {
        raw_http(
            addr,
            &format!(
                "GET /api/v2/logs/events/tail HTTP/1.0\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
            ),
        )
    })
    .await
    .unwrap();
    assert!(
        out.starts_with("HTTP/1.0 400") || out.starts_with("HTTP/1.1 400"),
        "{out}"
    );
    assert!(
        out.to_ascii_lowercase().contains("content-security-policy"),
        "{out}"
    );
    let resp = h
        .http
        .get(h.url("/api/v2/logs/events/tail"))
        .header("host", format!("rebind.example:{}", addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 421);
    assert_security_headers(&resp, "421");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_too_large_body_is_413_with_security_headers() {
    let h = with_token().await;
    let resp = h
        .http
        .post(h.url("/api/v2/logs"))
        .body(vec![b' '; 7_000_000])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    assert_security_headers(&resp, "413");
}

#[tokio::test(flavor = "multi_thread")]
async fn beyond_loopback_needs_a_token_or_key_and_keeps_host_checks_strict() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = cairn_intake::IntakeConfig::new(dir.path().join("intake"));
    cfg.listen = "0.0.0.0:0".parse().unwrap();
    cfg.auth = cairn_intake::IntakeAuth::Disabled;
    let err = cairn_intake::start(cfg.clone())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("refusing to listen on 0.0.0.0") && err.contains("token"),
        "{err}"
    );
    cfg.auth = cairn_intake::IntakeAuth::Token(TOKEN.into());
    let intake = cairn_intake::start(cfg).await.unwrap();
    let url = intake.explorer_url();
    assert!(!url.contains("0.0.0.0"), "{url}");
    let c = client_for(&intake);
    let port = intake.local_addr().port();
    let ok = c
        .get(format!("{}/api/v1/validate", intake.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    for host in [format!("0.0.0.0:{port}"), format!("rebind.example:{port}")] {
        let resp = c
            .get(format!("{}/api/v1/validate", intake.url()))
            .header("host", &host)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 421, "{host}");
    }
    intake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_generated_token_is_private_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = cairn_intake::IntakeConfig::new(dir.path().join("intake"));
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    let first = cairn_intake::start(cfg.clone()).await.unwrap();
    let token = first.token().unwrap().to_owned();
    assert_eq!(token.len(), 64);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    let file = dir.path().join("intake").join("auth_token");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    first.shutdown().await;
    let again = cairn_intake::start(cfg).await.unwrap();
    assert_eq!(again.token(), Some(token.as_str()));
    let resp = bare()
        .post(format!("{}/api/v2/logs/events/search", again.url()))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    again.shutdown().await;
}
