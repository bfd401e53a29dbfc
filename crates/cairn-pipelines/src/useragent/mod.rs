//! The user-agent parser, on the uap-core rules (the ones Datadog's output follows: browser,
//! os and device families with versions).
//!
//! Crate: `ua-parser`, the ua-parser project's own Rust implementation, kept with uap-core.
//! It takes the rules as data, and the crates.io package ships no copy usable from a
//! dependent, so `regexes.yaml` (uap-core, Apache-2.0, see LICENSE-uap-core beside it) is
//! bundled here. `woothee` was the self-contained fallback, but its families and version
//! fields differ from uap-core's, so its output would not match Datadog's.

use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::{Map, Value};

const REGEXES: &str = include_str!("regexes.yaml");

/// Built once per process, on the first pipeline that has a user-agent parser: about a
/// thousand regular expressions, too costly to build per reload or per log.
static EXTRACTOR: OnceLock<Option<ua_parser::Extractor<'static>>> = OnceLock::new();

fn extractor() -> Option<&'static ua_parser::Extractor<'static>> {
    EXTRACTOR.get_or_init(build).as_ref()
}

fn build() -> Option<ua_parser::Extractor<'static>> {
    let docs = <saphyr::Yaml as saphyr::LoadableYamlNode>::load_from_str(REGEXES).ok()?;
    let json = yaml_json(docs.first()?);
    let regexes = ua_parser::Regexes::deserialize(json).ok()?;
    ua_parser::Extractor::try_from(regexes).ok()
}

fn yaml_json(node: &saphyr::Yaml) -> Value {
    use saphyr::{Scalar, Yaml};
    match node {
        Yaml::Value(Scalar::String(s)) | Yaml::Representation(s, _, _) => {
            Value::String(s.to_string())
        }
        Yaml::Value(Scalar::Integer(i)) => Value::from(*i),
        Yaml::Value(Scalar::FloatingPoint(f)) => {
            serde_json::Number::from_f64(f.into_inner()).map_or(Value::Null, Value::Number)
        }
        Yaml::Value(Scalar::Boolean(b)) => Value::Bool(*b),
        Yaml::Sequence(items) => Value::Array(items.iter().map(yaml_json).collect()),
        Yaml::Mapping(map) => Value::Object(
            map.iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), yaml_json(v))))
                .collect(),
        ),
        _ => Value::Null,
    }
}

/// Builds the rules now, so that the first log does not pay for them.
pub(crate) fn warm() -> bool {
    extractor().is_some()
}

/// `{browser: {family, major, minor, patch}, os: {family, major, minor, patch}, device:
/// {family, category}}`, or `None` when the rules cannot be built.
pub(crate) fn details(ua: &str, is_encoded: bool) -> Option<Value> {
    let ua = ua.trim();
    if ua.is_empty() {
        return None;
    }
    let decoded;
    let ua = if is_encoded {
        decoded = percent_encoding::percent_decode_str(ua)
            .decode_utf8_lossy()
            .replace('+', " ");
        decoded.as_str()
    } else {
        ua
    };
    let ex = extractor()?;
    let (browser, os, device) = ex.extract(ua);
    let mut b = Map::new();
    match browser {
        Some(v) => {
            b.insert("family".into(), Value::String(v.family.to_string()));
            versions(&mut b, [v.major, v.minor, v.patch]);
        }
        None => {
            b.insert("family".into(), Value::String("Other".into()));
        }
    }
    let mut o = Map::new();
    let os_family = match os {
        Some(v) => {
            let family = v.os.to_string();
            o.insert("family".into(), Value::String(family.clone()));
            versions(
                &mut o,
                [v.major.as_deref(), v.minor.as_deref(), v.patch.as_deref()],
            );
            family
        }
        None => {
            o.insert("family".into(), Value::String("Other".into()));
            "Other".into()
        }
    };
    let device_family = device.map_or_else(|| "Other".to_owned(), |d| d.device.to_string());
    let category = category(ua, &os_family, &device_family);
    let mut d = Map::new();
    d.insert("family".into(), Value::String(device_family));
    d.insert("category".into(), Value::String(category.into()));
    let mut out = Map::new();
    out.insert("browser".into(), Value::Object(b));
    out.insert("os".into(), Value::Object(o));
    out.insert("device".into(), Value::Object(d));
    Some(Value::Object(out))
}

fn versions(into: &mut Map<String, Value>, parts: [Option<&str>; 3]) {
    for (key, part) in ["major", "minor", "patch"].into_iter().zip(parts) {
        if let Some(p) = part.filter(|p| !p.is_empty()) {
            into.insert(key.into(), Value::String(p.to_owned()));
        }
    }
}

/// uap-core has no device category; Datadog shows one, so it is inferred: crawlers are
/// bots, then tablets, phones, and everything else a desktop.
fn category(ua: &str, os: &str, device: &str) -> &'static str {
    if device == "Spider" {
        return "Bot";
    }
    let tablet = device.contains("iPad")
        || device.contains("Tablet")
        || device.contains("Kindle")
        || (os == "Android" && !ua.contains("Mobile"));
    if tablet {
        return "Tablet";
    }
    let mobile_os = matches!(
        os,
        "iOS" | "Android" | "Windows Phone" | "BlackBerry OS" | "KaiOS" | "Symbian OS"
    );
    if mobile_os || ua.contains("Mobile") {
        "Mobile"
    } else {
        "Desktop"
    }
}
