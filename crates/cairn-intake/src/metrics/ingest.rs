//! Request bodies of `/api/v2/series` (protobuf or JSON), `/api/v1/series`, `/api/v1/check_run`
//! and `/api/v1/events` → rows. Every refusal names the item (`series[3].points[1]`) and the
//! field, so a 400 says what to fix.

use serde::Deserialize;
use serde_json::Value;

use crate::ingest::Reject;

/// Largest decompressed series or service-check body: the Agent's
/// `serializer_max_series_uncompressed_payload_size`, which is also what Datadog's intake takes.
pub const MAX_SERIES_PAYLOAD_BYTES: usize = 5_242_880;
/// Largest decompressed event body (one event). Datadog caps an event's text at 4,000
/// characters; 1 MiB leaves room for any tags while bounding the parse.
pub const MAX_EVENT_PAYLOAD_BYTES: usize = 1 << 20;
/// Datadog shortens longer event titles and texts; so does this intake.
pub const MAX_EVENT_TITLE_CHARS: usize = 100;
pub const MAX_EVENT_TEXT_CHARS: usize = 4_000;
/// Latest second a point, check or event may carry: 9999-12-31T23:59:59Z, so that every
/// stored time can be printed and bucket arithmetic cannot overflow.
pub const MAX_TS_S: i64 = 253_402_300_799;

/// `MetricPayload.MetricType`; the number is what the store keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetricKind {
    #[default]
    Unspecified = 0,
    Count = 1,
    Rate = 2,
    Gauge = 3,
}

impl MetricKind {
    pub fn from_code(c: i64) -> MetricKind {
        match c {
            1 => MetricKind::Count,
            2 => MetricKind::Rate,
            3 => MetricKind::Gauge,
            _ => MetricKind::Unspecified,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            MetricKind::Unspecified => "unspecified",
            MetricKind::Count => "count",
            MetricKind::Rate => "rate",
            MetricKind::Gauge => "gauge",
        }
    }
}

/// One series as the store wants it. After [`finish_series`]: tags sorted, de-duplicated, in
/// `,a,b,` form in `tags_text`, and a `device:` tag moved into `device`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewSeries {
    pub name: String,
    pub kind: MetricKind,
    pub host: String,
    pub device: String,
    pub tags: Vec<String>,
    pub tags_text: String,
    pub unit: String,
    pub source_type_name: String,
    pub interval_s: i64,
    /// `(timestamp seconds, value)`.
    pub points: Vec<(i64, f64)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewServiceCheck {
    pub check: String,
    pub host: String,
    pub tags_text: String,
    pub status: i64,
    pub message: String,
    pub ts_s: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub ts_s: i64,
    pub title: String,
    pub text: String,
    pub priority: String,
    pub host: String,
    pub tags_text: String,
    pub alert_type: String,
    pub aggregation_key: String,
    pub source_type_name: String,
}

/// Tags as stored: sorted, de-duplicated, `,a,b,` (commas inside a tag, which Datadog uses
/// as its separator, become `_`), so a tag test is a substring test for `,tag,`.
pub fn tags_text(tags: &mut Vec<String>) -> String {
    for t in tags.iter_mut() {
        if t.contains(',') {
            *t = t.replace(',', "_");
        }
    }
    tags.retain(|t| !t.is_empty());
    tags.sort_unstable();
    tags.dedup();
    if tags.is_empty() {
        return String::new();
    }
    let mut s = String::with_capacity(tags.iter().map(|t| t.len() + 1).sum::<usize>() + 1);
    s.push(',');
    for t in tags.iter() {
        s.push_str(t);
        s.push(',');
    }
    s
}

fn bad(msg: String) -> Reject {
    Reject::BadBody(msg)
}

/// Checks a decoded series and puts its tags in stored form.
pub fn finish_series(index: usize, mut s: NewSeries) -> Result<NewSeries, Reject> {
    let at = |what: &str| format!("series[{index}]{what}");
    if s.name.trim().is_empty() {
        return Err(bad(format!("{}: metric name is missing or empty", at(""))));
    }
    if s.device.is_empty() {
        // The Agent sends the device as a resource; a `device:` tag means the same.
        if let Some(i) = s.tags.iter().position(|t| t.starts_with("device:")) {
            s.device = s.tags.remove(i)["device:".len()..].to_owned();
        }
    }
    for (i, &(ts, v)) in s.points.iter().enumerate() {
        if !v.is_finite() {
            return Err(bad(format!(
                "{}: value {v} is not a finite number",
                at(&format!(".points[{i}]"))
            )));
        }
        if !(0..=MAX_TS_S).contains(&ts) {
            return Err(bad(format!(
                "{}: timestamp {ts} is not in seconds since 1970 (0 to {MAX_TS_S})",
                at(&format!(".points[{i}]"))
            )));
        }
    }
    if s.interval_s < 0 {
        return Err(bad(format!(
            "{}: interval {} is negative",
            at(""),
            s.interval_s
        )));
    }
    s.tags_text = tags_text(&mut s.tags);
    Ok(s)
}

/// `/api/v2/series` JSON: `{"series":[{"metric","type":0-3,"points":[{"timestamp","value"}],
/// "resources":[{"name","type"}],"tags","interval","unit","source_type_name"}]}`.
pub fn parse_series_v2_json(body: &[u8]) -> Result<Vec<NewSeries>, Reject> {
    let series = series_array(body)?;
    let mut out = Vec::with_capacity(series.len());
    for (i, item) in series.into_iter().enumerate() {
        #[derive(Deserialize)]
        struct Point {
            timestamp: i64,
            value: f64,
        }
        #[derive(Deserialize)]
        struct Resource {
            #[serde(default)]
            name: String,
            #[serde(default, rename = "type")]
            kind: String,
        }
        #[derive(Deserialize)]
        struct Series {
            metric: String,
            #[serde(default, rename = "type")]
            kind: i64,
            #[serde(default)]
            points: Vec<Point>,
            #[serde(default)]
            resources: Vec<Resource>,
            #[serde(default)]
            tags: Vec<String>,
            #[serde(default)]
            interval: i64,
            #[serde(default)]
            unit: Option<String>,
            #[serde(default)]
            source_type_name: Option<String>,
        }
        let v: Series = field_error(i, serde_json::from_value(item))?;
        if !(0..=3).contains(&v.kind) {
            return Err(bad(format!(
                "series[{i}].type: {} is not one of 0 (unspecified), 1 (count), 2 (rate), 3 (gauge)",
                v.kind
            )));
        }
        let mut s = NewSeries {
            name: v.metric,
            kind: MetricKind::from_code(v.kind),
            tags: v.tags,
            unit: v.unit.unwrap_or_default(),
            source_type_name: v.source_type_name.unwrap_or_default(),
            interval_s: v.interval,
            points: v.points.iter().map(|p| (p.timestamp, p.value)).collect(),
            ..NewSeries::default()
        };
        for r in v.resources {
            match r.kind.as_str() {
                "host" => s.host = r.name,
                "device" => s.device = r.name,
                k => s.tags.push(format!("{k}:{}", r.name)),
            }
        }
        out.push(finish_series(i, s)?);
    }
    Ok(out)
}

/// `/api/v1/series` JSON: `{"series":[{"metric","points":[[ts,v]],"type":"gauge|count|rate",
/// "host","tags","interval","device"}]}`. A `null` value is a missing point and is skipped.
pub fn parse_series_v1_json(body: &[u8]) -> Result<Vec<NewSeries>, Reject> {
    let series = series_array(body)?;
    let mut out = Vec::with_capacity(series.len());
    for (i, item) in series.into_iter().enumerate() {
        #[derive(Deserialize)]
        struct Series {
            metric: String,
            #[serde(default)]
            points: Vec<(f64, Option<f64>)>,
            #[serde(default, rename = "type")]
            kind: Option<String>,
            #[serde(default)]
            host: Option<String>,
            #[serde(default)]
            device: Option<String>,
            #[serde(default)]
            tags: Option<Vec<String>>,
            #[serde(default)]
            interval: Option<i64>,
            #[serde(default)]
            source_type_name: Option<String>,
        }
        let v: Series = field_error(i, serde_json::from_value(item))?;
        let kind = match v.kind.as_deref().unwrap_or("gauge") {
            "gauge" | "" => MetricKind::Gauge,
            "count" => MetricKind::Count,
            "rate" => MetricKind::Rate,
            other => {
                return Err(bad(format!(
                    "series[{i}].type: {other:?} is not gauge, count or rate"
                )))
            }
        };
        let mut points = Vec::with_capacity(v.points.len());
        for (j, (ts, value)) in v.points.into_iter().enumerate() {
            if !ts.is_finite() || ts.fract() != 0.0 {
                return Err(bad(format!(
                    "series[{i}].points[{j}]: timestamp {ts} is not whole seconds"
                )));
            }
            if let Some(value) = value {
                points.push((ts as i64, value));
            }
        }
        let s = NewSeries {
            name: v.metric,
            kind,
            host: v.host.unwrap_or_default(),
            device: v.device.unwrap_or_default(),
            tags: v.tags.unwrap_or_default(),
            interval_s: v.interval.unwrap_or(0),
            source_type_name: v.source_type_name.unwrap_or_default(),
            points,
            ..NewSeries::default()
        };
        out.push(finish_series(i, s)?);
    }
    Ok(out)
}

fn series_array(body: &[u8]) -> Result<Vec<Value>, Reject> {
    #[derive(Deserialize)]
    struct Body {
        series: Vec<Value>,
    }
    serde_json::from_slice::<Body>(body)
        .map(|b| b.series)
        .map_err(|e| {
            bad(format!(
                "invalid series JSON: {e} (expected {{\"series\":[...]}})"
            ))
        })
}

fn field_error<T>(i: usize, r: Result<T, serde_json::Error>) -> Result<T, Reject> {
    r.map_err(|e| bad(format!("series[{i}]: {e}")))
}

/// `/api/v1/check_run`: a JSON array of `{check, host_name, timestamp, status, message, tags}`.
pub fn parse_check_runs(body: &[u8], now_s: i64) -> Result<Vec<NewServiceCheck>, Reject> {
    let items: Vec<Value> = serde_json::from_slice(body).map_err(|e| {
        bad(format!(
            "invalid service check JSON: {e} (expected an array)"
        ))
    })?;
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        #[derive(Deserialize)]
        struct Check {
            check: String,
            #[serde(default)]
            host_name: Option<String>,
            #[serde(default)]
            timestamp: Option<i64>,
            status: i64,
            #[serde(default)]
            message: Option<String>,
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let c: Check = serde_json::from_value(item).map_err(|e| bad(format!("[{i}]: {e}")))?;
        if c.check.trim().is_empty() {
            return Err(bad(format!("[{i}].check: the check name is empty")));
        }
        if !(0..=3).contains(&c.status) {
            return Err(bad(format!(
                "[{i}].status: {} is not 0 (OK), 1 (WARNING), 2 (CRITICAL) or 3 (UNKNOWN)",
                c.status
            )));
        }
        let ts_s = c.timestamp.filter(|&t| t != 0).unwrap_or(now_s);
        if !(0..=MAX_TS_S).contains(&ts_s) {
            return Err(bad(format!(
                "[{i}].timestamp: {ts_s} is not in seconds since 1970"
            )));
        }
        let mut tags = c.tags.unwrap_or_default();
        out.push(NewServiceCheck {
            check: c.check,
            host: c.host_name.unwrap_or_default(),
            tags_text: tags_text(&mut tags),
            status: c.status,
            message: c.message.unwrap_or_default(),
            ts_s,
        });
    }
    Ok(out)
}

pub const ALERT_TYPES: &[&str] = &[
    "error",
    "warning",
    "info",
    "success",
    "user_update",
    "recommendation",
    "snapshot",
];

/// `/api/v1/events`: one event object in Datadog's public JSON.
pub fn parse_event(body: &[u8], now_s: i64) -> Result<NewEvent, Reject> {
    #[derive(Deserialize)]
    struct Event {
        title: String,
        #[serde(default)]
        text: Option<String>,
        #[serde(default)]
        date_happened: Option<i64>,
        #[serde(default)]
        priority: Option<String>,
        #[serde(default)]
        host: Option<String>,
        #[serde(default)]
        tags: Option<Vec<String>>,
        #[serde(default)]
        alert_type: Option<String>,
        #[serde(default)]
        aggregation_key: Option<String>,
        #[serde(default)]
        source_type_name: Option<String>,
    }
    let e: Event =
        serde_json::from_slice(body).map_err(|e| bad(format!("invalid event JSON: {e}")))?;
    if e.title.trim().is_empty() {
        return Err(bad("title: an event needs a title".into()));
    }
    let priority = e.priority.unwrap_or_else(|| "normal".into());
    if priority != "normal" && priority != "low" {
        return Err(bad(format!("priority: {priority:?} is not normal or low")));
    }
    let alert_type = e.alert_type.unwrap_or_else(|| "info".into());
    if !ALERT_TYPES.contains(&alert_type.as_str()) {
        return Err(bad(format!(
            "alert_type: {alert_type:?} is not one of {}",
            ALERT_TYPES.join(", ")
        )));
    }
    let ts_s = e.date_happened.unwrap_or(now_s);
    if !(0..=MAX_TS_S).contains(&ts_s) {
        return Err(bad(format!(
            "date_happened: {ts_s} is not in seconds since 1970"
        )));
    }
    let mut tags = e.tags.unwrap_or_default();
    Ok(NewEvent {
        ts_s,
        title: e.title.chars().take(MAX_EVENT_TITLE_CHARS).collect(),
        text: e
            .text
            .unwrap_or_default()
            .chars()
            .take(MAX_EVENT_TEXT_CHARS)
            .collect(),
        priority,
        host: e.host.unwrap_or_default(),
        tags_text: tags_text(&mut tags),
        alert_type,
        aggregation_key: e.aggregation_key.unwrap_or_default(),
        source_type_name: e.source_type_name.unwrap_or_default(),
    })
}

/// `,a,b,` → `["a","b"]`.
pub fn tags_list(text: &str) -> Vec<String> {
    crate::store::split_tags(text).map(str::to_owned).collect()
}
