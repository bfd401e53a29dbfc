//! The URL parser's output, in the shape Datadog writes to `http.url_details`: `scheme`,
//! `host`, `port` (the scheme's default when not written), `path`, `queryString` (an object;
//! a repeated key holds a list) and `auth` when there is one, as grok's `url` filter writes
//! them. A relative URL (`/path?q=1`, common in access logs) gives path and query only.

use serde_json::{Map, Value};

pub(crate) fn details(text: &str, normalize_ending_slashes: bool) -> Option<Value> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let (parsed, relative) = match ::url::Url::parse(text) {
        Ok(u) => (u, false),
        Err(::url::ParseError::RelativeUrlWithoutBase) => {
            // Any base will do: only the parts the relative URL carries are reported.
            let base = ::url::Url::parse("http://relative.invalid").ok()?;
            (base.join(text).ok()?, true)
        }
        Err(_) => return None,
    };
    let mut out = Map::new();
    if !relative {
        out.insert("scheme".into(), Value::String(parsed.scheme().to_owned()));
        if let Some(host) = parsed.host_str() {
            out.insert("host".into(), Value::String(host.to_owned()));
        }
        if let Some(port) = parsed.port_or_known_default() {
            out.insert("port".into(), Value::from(port));
        }
        if !parsed.username().is_empty() {
            let auth = match parsed.password() {
                Some(p) => format!("{}:{p}", parsed.username()),
                None => parsed.username().to_owned(),
            };
            out.insert("auth".into(), Value::String(auth));
        }
    }
    let mut path = parsed.path().to_owned();
    if normalize_ending_slashes {
        while path.len() > 1 && path.ends_with('/') {
            path.pop();
        }
    }
    out.insert("path".into(), Value::String(path));
    if parsed.query().is_some() {
        let mut query = Map::new();
        for (k, v) in parsed.query_pairs() {
            let v = Value::String(v.into_owned());
            match query.get_mut(k.as_ref()) {
                Some(Value::Array(list)) => list.push(v),
                Some(first) => {
                    let first = first.take();
                    query.insert(k.into_owned(), Value::Array(vec![first, v]));
                }
                None => {
                    query.insert(k.into_owned(), v);
                }
            }
        }
        out.insert("queryString".into(), Value::Object(query));
    }
    Some(Value::Object(out))
}
