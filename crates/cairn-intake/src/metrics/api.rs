//! The read side: `GET /api/v1/query` (time series), `/api/v1/metrics` and `/api/v1/search`
//! (names), `/api/v1/check_run` (latest status), `/api/v1/events` (search), in the shapes of
//! Datadog's API.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};

use super::ingest::{tags_list, MetricKind};
use super::query::{parse_queries, Agg, AsMode, ContextTags, MetricQuery};
use crate::IntakeError;

/// Buckets a query aims at when it picks its own interval.
pub const TARGET_POINTS: i64 = 300;
/// The most buckets an explicit `.rollup(_, seconds)` may ask for.
pub const MAX_POINTS: i64 = 1_500;
/// Rollup intervals the intake picks from: the smallest giving at most [`TARGET_POINTS`].
pub const INTERVALS_S: &[i64] = &[
    1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1_200, 1_800, 3_600, 7_200, 10_800, 14_400,
    21_600, 43_200, 86_400, 172_800, 604_800,
];
/// Contexts one query may read; beyond, a 400 asks for a narrower scope.
pub const MAX_CONTEXTS: usize = 100_000;
pub const MAX_EVENTS: usize = 1_000;
/// Series one query may answer with.
pub const MAX_SERIES: usize = 10_000;
const MAX_FILTER_TAGS: usize = 64;

/// The interval for `[from, to]`: the smallest of [`INTERVALS_S`] that yields at most
/// [`TARGET_POINTS`] buckets, else whole weeks.
pub fn pick_interval(from_s: i64, to_s: i64) -> i64 {
    let span = (to_s - from_s).max(1);
    INTERVALS_S
        .iter()
        .copied()
        .find(|i| (span + i - 1) / i <= TARGET_POINTS)
        .unwrap_or_else(|| {
            let week = 604_800;
            (span / TARGET_POINTS + week - 1) / week * week
        })
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq)]
pub struct Series {
    pub metric: String,
    pub display_name: String,
    pub expression: String,
    pub scope: String,
    pub tag_set: Vec<String>,
    /// `[timestamp ms, value]`, bucket starts, oldest first, only buckets with data;
    /// `start`/`end` are the first and last of them.
    pub pointlist: Vec<[f64; 2]>,
    pub start: i64,
    pub end: i64,
    pub interval: i64,
    pub length: usize,
    pub aggr: String,
    pub unit: Option<String>,
    pub query_index: usize,
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq)]
pub struct QueryResponse {
    pub status: String,
    pub res_type: String,
    pub from_date: i64,
    pub to_date: i64,
    pub query: String,
    pub series: Vec<Series>,
}

/// Epoch seconds, or what the log API takes (`now-1h`, ISO-8601); digits are seconds here,
/// as in Datadog's v1 API.
pub fn time_param(name: &str, v: Option<&String>, now_s: i64) -> Result<i64, IntakeError> {
    let v = v.ok_or_else(|| {
        IntakeError::BadRequest(format!("the parameter {name} is required (epoch seconds)"))
    })?;
    let v = v.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        return v
            .parse::<i64>()
            .map(|s| s.clamp(0, super::ingest::MAX_TS_S))
            .map_err(|_| IntakeError::BadRequest(format!("{name}: {v:?} is not epoch seconds")));
    }
    crate::timefmt::parse_time(v, now_s * 1000)
        .map(|ms| ms.div_euclid(1000).clamp(0, super::ingest::MAX_TS_S))
        .map_err(|e| IntakeError::BadRequest(format!("{name}: {e}")))
}

struct Context {
    kind: MetricKind,
    host: String,
    device: String,
    tags: Vec<String>,
    interval_s: i64,
    unit: String,
    id: i64,
}

/// `GET /api/v1/query`.
pub fn query(
    conn: &Connection,
    params: &HashMap<String, String>,
    now_s: i64,
) -> Result<QueryResponse, IntakeError> {
    let from = time_param("from", params.get("from"), now_s)?;
    let to = time_param("to", params.get("to"), now_s)?;
    if from > to {
        return Err(IntakeError::BadRequest(format!(
            "from ({from}) is after to ({to})"
        )));
    }
    let text = params
        .get("query")
        .ok_or_else(|| IntakeError::BadRequest("the parameter query is required".into()))?;
    let queries = parse_queries(text)?;
    let mut series = Vec::new();
    for (i, q) in queries.iter().enumerate() {
        series.extend(run_one(conn, q, i, from, to)?);
    }
    Ok(QueryResponse {
        status: "ok".into(),
        res_type: "time_series".into(),
        from_date: from * 1000,
        to_date: to * 1000,
        query: text.clone(),
        series,
    })
}

fn run_one(
    conn: &Connection,
    q: &MetricQuery,
    index: usize,
    from: i64,
    to: i64,
) -> Result<Vec<Series>, IntakeError> {
    let interval = match q.rollup_secs {
        Some(secs) => {
            let buckets = (to - from) / secs + 1;
            if buckets > MAX_POINTS {
                return Err(IntakeError::BadRequest(format!(
                    "{}: .rollup(_, {secs}) over {} s makes {buckets} points, over the limit of {MAX_POINTS}; use a larger interval or a shorter range",
                    q.text,
                    to - from
                )));
            }
            secs
        }
        None => pick_interval(from, to),
    };
    let contexts = matching_contexts(conn, q, from)?;
    // group key (tag_set) → bucket start → per-context values to aggregate across.
    let mut groups: BTreeMap<Vec<String>, BTreeMap<i64, Vec<f64>>> = BTreeMap::new();
    let mut units: BTreeMap<Vec<String>, Option<String>> = BTreeMap::new();
    let mut stmt = conn.prepare_cached(
        "SELECT ts_s, value FROM metric_points WHERE context_id = ?1 AND ts_s BETWEEN ?2 AND ?3 ORDER BY ts_s",
    )?;
    for c in &contexts {
        let tags = ContextTags {
            host: &c.host,
            device: &c.device,
            tags: &c.tags,
        };
        let buckets = context_buckets(&mut stmt, c, q, from, to, interval)?;
        if buckets.is_empty() {
            continue;
        }
        for key in group_keys(q, &tags)? {
            if groups.len() == MAX_SERIES && !groups.contains_key(&key) {
                return Err(IntakeError::BadRequest(format!(
                    "{}: more than {MAX_SERIES} series; group by fewer keys or narrow the scope",
                    q.text
                )));
            }
            let g = groups.entry(key.clone()).or_default();
            for (b, v) in &buckets {
                g.entry(*b).or_default().push(*v);
            }
            let unit = units.entry(key).or_insert_with(|| Some(c.unit.clone()));
            if unit.as_deref() != Some(c.unit.as_str()) {
                *unit = None;
            }
        }
    }
    let modifiers = modifiers_text(q);
    let mut out = Vec::with_capacity(groups.len());
    for (tag_set, buckets) in groups {
        let pointlist: Vec<[f64; 2]> = buckets
            .into_iter()
            .filter_map(|(b, vals)| q.agg.fold(vals.into_iter()).map(|v| [(b * 1000) as f64, v]))
            .collect();
        let scope = scope_of(q, &tag_set);
        let unit = units
            .get(&tag_set)
            .cloned()
            .flatten()
            .filter(|u| !u.is_empty());
        out.push(Series {
            metric: q.metric.clone(),
            display_name: q.metric.clone(),
            expression: format!("{}:{}{{{scope}}}{modifiers}", q.agg.name(), q.metric),
            scope,
            start: pointlist.first().map_or(from * 1000, |p| p[0] as i64),
            end: pointlist.last().map_or(to * 1000, |p| p[0] as i64),
            length: pointlist.len(),
            pointlist,
            tag_set,
            interval,
            aggr: q.agg.name().into(),
            unit,
            query_index: index,
        });
    }
    Ok(out)
}

fn modifiers_text(q: &MetricQuery) -> String {
    let mut s = String::new();
    match q.as_mode {
        Some(AsMode::Count) => s.push_str(".as_count()"),
        Some(AsMode::Rate) => s.push_str(".as_rate()"),
        None => {}
    }
    if let Some(m) = q.rollup {
        match q.rollup_secs {
            Some(secs) => s.push_str(&format!(".rollup({}, {secs})", m.name())),
            None => s.push_str(&format!(".rollup({})", m.name())),
        }
    }
    s
}

/// The filter as written plus the group's tags; `*` when both are empty.
fn scope_of(q: &MetricQuery, tag_set: &[String]) -> String {
    let mut parts: Vec<&str> = Vec::new();
    if q.scope_text != "*" {
        parts.push(&q.scope_text);
    }
    parts.extend(tag_set.iter().map(String::as_str));
    if parts.is_empty() {
        "*".into()
    } else {
        parts.join(",")
    }
}

/// Every group a context is in: one per combination of its values of the group-by keys.
fn group_keys(q: &MetricQuery, c: &ContextTags) -> Result<Vec<Vec<String>>, IntakeError> {
    let mut keys: Vec<Vec<String>> = vec![Vec::new()];
    for key in &q.group_by {
        let vals = super::query::group_values(key, c);
        // A context with many values of several keys would multiply into more groups than
        // any answer could hold; refused before the product is built.
        if keys.len().saturating_mul(vals.len()) > MAX_SERIES {
            return Err(IntakeError::BadRequest(format!(
                "{}: one context falls into more than {MAX_SERIES} groups",
                q.text
            )));
        }
        keys = keys
            .into_iter()
            .flat_map(|k| {
                vals.iter().map(move |v| {
                    let mut k = k.clone();
                    k.push(format!("{key}:{v}"));
                    k
                })
            })
            .collect();
    }
    Ok(keys)
}

fn matching_contexts(
    conn: &Connection,
    q: &MetricQuery,
    from: i64,
) -> Result<Vec<Context>, IntakeError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, type, host, device, tags, interval_s, unit FROM metric_contexts
         WHERE name = ?1 AND last_ts >= ?2",
    )?;
    let rows = stmt.query_map(params![q.metric, from], |r| {
        Ok(Context {
            id: r.get(0)?,
            kind: MetricKind::from_code(r.get(1)?),
            host: r.get(2)?,
            device: r.get(3)?,
            tags: tags_list(&r.get::<_, String>(4)?),
            interval_s: r.get(5)?,
            unit: r.get(6)?,
        })
    })?;
    let mut out = Vec::new();
    for row in rows {
        let c = row?;
        let tags = ContextTags {
            host: &c.host,
            device: &c.device,
            tags: &c.tags,
        };
        if q.matches(&tags) {
            if out.len() == MAX_CONTEXTS {
                return Err(IntakeError::BadRequest(format!(
                    "{}: more than {MAX_CONTEXTS} contexts match; narrow the scope",
                    q.text
                )));
            }
            out.push(c);
        }
    }
    Ok(out)
}

/// One context's value per bucket (the time rollup):
///
/// | type | no modifier | `.as_count()` | `.as_rate()` |
/// |---|---|---|---|
/// | gauge, unspecified | avg | avg (no effect) | avg (no effect) |
/// | count | sum | sum | sum ÷ bucket seconds |
/// | rate | avg | each value × its interval, then sum | avg |
///
/// `.rollup(m)` replaces the method (avg/sum) in the table; the conversions stay.
/// The interval of a rate is the series' own, see [`rate_interval`] when it sent none.
fn context_buckets(
    stmt: &mut rusqlite::CachedStatement<'_>,
    c: &Context,
    q: &MetricQuery,
    from: i64,
    to: i64,
    interval: i64,
) -> Result<Vec<(i64, f64)>, IntakeError> {
    let points: Vec<(i64, f64)> = stmt
        .query_map(params![c.id, from, to], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, f64>(1)?))
        })?
        .collect::<Result<_, _>>()?;
    let (scale, default_method, per_second) = match (c.kind, q.as_mode) {
        (MetricKind::Count, Some(AsMode::Rate)) => (1.0, Agg::Sum, true),
        (MetricKind::Count, _) => (1.0, Agg::Sum, false),
        (MetricKind::Rate, Some(AsMode::Count)) => {
            (rate_interval(c, &points, interval) as f64, Agg::Sum, false)
        }
        _ => (1.0, Agg::Avg, false),
    };
    let method = q.rollup.unwrap_or(default_method);
    let mut out: Vec<(i64, f64)> = Vec::new();
    let mut current: Option<i64> = None;
    let mut vals: Vec<f64> = Vec::new();
    let flush = |bucket: i64, vals: &mut Vec<f64>, out: &mut Vec<(i64, f64)>| {
        if let Some(v) = method.fold(vals.drain(..)) {
            out.push((bucket, if per_second { v / interval as f64 } else { v }));
        }
    };
    for (ts, v) in points {
        let bucket = ts.div_euclid(interval) * interval;
        if current != Some(bucket) {
            if let Some(b) = current {
                flush(b, &mut vals, &mut out);
            }
            current = Some(bucket);
        }
        vals.push(v * scale);
    }
    if let Some(b) = current {
        flush(b, &mut vals, &mut out);
    }
    Ok(out)
}

/// Seconds one value of a rate stands for. Check series carry no interval (the Agent sends 0
/// for them; only DogStatsD sets one), so it is taken from how far apart the context's points
/// are: the smallest gap in the range, which is the check's run interval. A lone point stands
/// for the bucket.
fn rate_interval(c: &Context, points: &[(i64, f64)], bucket_s: i64) -> i64 {
    if c.interval_s > 0 {
        return c.interval_s;
    }
    points
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .filter(|&g| g > 0)
        .min()
        .unwrap_or(bucket_s)
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq)]
pub struct MetricsList {
    pub metrics: Vec<String>,
    pub from: String,
}

/// `GET /api/v1/metrics?from=[&host=][&tag_filter=]`: names with a point since `from`, of a
/// context from `host` carrying every tag of `tag_filter` when those are given.
pub fn active_metrics(
    conn: &Connection,
    params: &HashMap<String, String>,
    now_s: i64,
) -> Result<MetricsList, IntakeError> {
    let from = time_param("from", params.get("from"), now_s)?;
    let host = params.get("host").filter(|h| !h.is_empty());
    let wanted = tag_list_param(params, "tag_filter")?;
    let metrics = if wanted.is_empty() {
        // Names only: the index answers without reading every context's tags (the Explorer
        // asks this at every graph).
        let mut stmt = conn.prepare_cached(
            "SELECT DISTINCT name FROM metric_contexts
             WHERE last_ts >= ?1 AND (?2 IS NULL OR host = ?2) ORDER BY name",
        )?;
        let rows = stmt.query_map(params![from, host], |r| r.get(0))?;
        rows.collect::<Result<Vec<String>, _>>()?
    } else {
        let mut stmt = conn.prepare_cached(
            "SELECT name, host, tags FROM metric_contexts
             WHERE last_ts >= ?1 AND (?2 IS NULL OR host = ?2) ORDER BY name",
        )?;
        let mut rows = stmt.query(params![from, host])?;
        let mut names: Vec<String> = Vec::new();
        while let Some(r) = rows.next()? {
            let name: String = r.get(0)?;
            if names.last() == Some(&name) {
                continue;
            }
            let ctx_host: String = r.get(1)?;
            if has_all_tags(&ctx_host, &tags_list(&r.get::<_, String>(2)?), &wanted) {
                names.push(name);
            }
        }
        names
    };
    Ok(MetricsList {
        metrics,
        from: from.to_string(),
    })
}

/// Most distinct tags `all_tags` answers: enough for any scope picker, bounded so that a
/// metric with a million contexts cannot make one answer huge.
pub const MAX_ALL_TAGS: usize = 10_000;

/// `GET /api/v2/metrics/{name}/all-tags`, in Datadog's shape: every tag of the metric's
/// contexts seen since `from` (default: the last day), with `host:` and `device:` as tags, as
/// Datadog lists them; sorted, at most [`MAX_ALL_TAGS`].
pub fn all_tags(
    conn: &Connection,
    name: &str,
    params: &HashMap<String, String>,
    now_s: i64,
) -> Result<serde_json::Value, IntakeError> {
    let from = match params.get("from") {
        Some(_) => time_param("from", params.get("from"), now_s)?,
        None => now_s - 86_400,
    };
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT host, device, tags FROM metric_contexts WHERE name = ?1 AND last_ts >= ?2",
    )?;
    let mut rows = stmt.query(params![name, from])?;
    let mut found = false;
    let mut tags = std::collections::BTreeSet::new();
    while let Some(r) = rows.next()? {
        found = true;
        let host: String = r.get(0)?;
        let device: String = r.get(1)?;
        if !host.is_empty() {
            tags.insert(format!("host:{host}"));
        }
        if !device.is_empty() {
            tags.insert(format!("device:{device}"));
        }
        tags.extend(tags_list(&r.get::<_, String>(2)?));
        if tags.len() >= MAX_ALL_TAGS {
            break;
        }
    }
    if !found {
        return Err(IntakeError::NotFound(format!(
            "no metric {name:?} was received since {from}"
        )));
    }
    let tags: Vec<String> = tags.into_iter().take(MAX_ALL_TAGS).collect();
    Ok(serde_json::json!({
        "data": { "type": "metrics", "id": name, "attributes": { "tags": tags } }
    }))
}

/// `GET /api/v1/search?q=metrics:<prefix>` (or `hosts:<prefix>`, or a bare prefix for both).
pub fn search(
    conn: &Connection,
    params: &HashMap<String, String>,
) -> Result<serde_json::Value, IntakeError> {
    let q = params.get("q").map(String::as_str).unwrap_or("");
    let (metrics, hosts, prefix) = if let Some(p) = q.strip_prefix("metrics:") {
        (true, false, p)
    } else if let Some(p) = q.strip_prefix("hosts:") {
        (false, true, p)
    } else {
        (true, true, q)
    };
    let names = |sql: &str| -> Result<Vec<String>, IntakeError> {
        let mut stmt = conn.prepare_cached(sql)?;
        let rows = stmt.query_map([prefix], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    };
    let mut results = serde_json::Map::new();
    if metrics {
        results.insert(
            "metrics".into(),
            names(
                "SELECT DISTINCT name FROM metric_contexts
                 WHERE substr(name, 1, length(?1)) = ?1 ORDER BY name LIMIT 1000",
            )?
            .into(),
        );
    }
    if hosts {
        results.insert(
            "hosts".into(),
            names(
                "SELECT DISTINCT host FROM metric_contexts
                 WHERE host != '' AND substr(host, 1, length(?1)) = ?1 ORDER BY host LIMIT 1000",
            )?
            .into(),
        );
    }
    Ok(serde_json::json!({ "results": results }))
}

pub const STATUS_NAMES: [&str; 4] = ["OK", "WARNING", "CRITICAL", "UNKNOWN"];

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq)]
pub struct CheckStatus {
    pub check: String,
    pub host_name: String,
    pub tags: Vec<String>,
    pub status: i64,
    pub status_name: String,
    pub message: String,
    pub timestamp: i64,
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq)]
pub struct CheckStatusList {
    pub checks: Vec<CheckStatus>,
}

fn filter_tags(params: &HashMap<String, String>) -> Result<Vec<String>, IntakeError> {
    tag_list_param(params, "tags")
}

fn tag_list_param(params: &HashMap<String, String>, key: &str) -> Result<Vec<String>, IntakeError> {
    let tags: Vec<String> = params
        .get(key)
        .map(|t| {
            t.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if tags.len() > MAX_FILTER_TAGS {
        return Err(IntakeError::BadRequest(format!(
            "{key}: more than {MAX_FILTER_TAGS} tags"
        )));
    }
    Ok(tags)
}

/// Every wanted tag (wildcards allowed) is present; `host:<pattern>` also matches the host the
/// item was sent from, as Datadog treats a host as a tag in a filter.
fn has_all_tags(host: &str, have: &[String], want: &[String]) -> bool {
    want.iter().all(|w| {
        w.strip_prefix("host:")
            .is_some_and(|h| crate::query::glob_matches(h, host))
            || have.iter().any(|t| crate::query::glob_matches(w, t))
    })
}

/// `GET /api/v1/check_run?check=&host=&tags=`: the latest status per check × host × tag set.
/// `check` and `host` may hold `*` wildcards; every tag of `tags` must be present.
pub fn check_status(
    conn: &Connection,
    params: &HashMap<String, String>,
) -> Result<CheckStatusList, IntakeError> {
    let check = params.get("check").filter(|s| !s.is_empty());
    let host = params.get("host").filter(|s| !s.is_empty());
    let tags = filter_tags(params)?;
    let mut stmt = conn.prepare_cached(
        "SELECT check_name, host, tags, status, message, ts_s FROM service_check_latest
         ORDER BY check_name, host, tags",
    )?;
    let rows = stmt.query_map([], |r| {
        let status: i64 = r.get(3)?;
        Ok(CheckStatus {
            check: r.get(0)?,
            host_name: r.get(1)?,
            tags: tags_list(&r.get::<_, String>(2)?),
            status,
            status_name: STATUS_NAMES
                .get(status as usize)
                .copied()
                .unwrap_or("UNKNOWN")
                .into(),
            message: r.get(4)?,
            timestamp: r.get(5)?,
        })
    })?;
    let mut checks = Vec::new();
    for row in rows {
        let c = row?;
        if check.is_some_and(|p| !crate::query::glob_matches(p, &c.check))
            || host.is_some_and(|p| !crate::query::glob_matches(p, &c.host_name))
            || !has_all_tags(&c.host_name, &c.tags, &tags)
        {
            continue;
        }
        checks.push(c);
    }
    Ok(CheckStatusList { checks })
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq)]
pub struct Event {
    pub id: i64,
    pub id_str: String,
    pub title: String,
    pub text: String,
    pub date_happened: i64,
    pub priority: String,
    pub host: String,
    pub tags: Vec<String>,
    pub alert_type: String,
    pub aggregation_key: String,
    pub source_type_name: String,
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq)]
pub struct EventList {
    pub events: Vec<Event>,
}

pub fn event_by_id(conn: &Connection, id: i64) -> Result<Option<Event>, IntakeError> {
    let mut stmt = conn.prepare_cached(&format!("{EVENT_SELECT} WHERE id = ?1"))?;
    let mut rows = stmt.query_map([id], event_row)?;
    Ok(rows.next().transpose()?)
}

const EVENT_SELECT: &str = "SELECT id, ts_s, title, text, priority, host, tags, alert_type, \
     aggregation_key, source_type_name FROM events";

fn event_row(r: &rusqlite::Row) -> rusqlite::Result<Event> {
    let id: i64 = r.get(0)?;
    Ok(Event {
        id,
        id_str: id.to_string(),
        date_happened: r.get(1)?,
        title: r.get(2)?,
        text: r.get(3)?,
        priority: r.get(4)?,
        host: r.get(5)?,
        tags: tags_list(&r.get::<_, String>(6)?),
        alert_type: r.get(7)?,
        aggregation_key: r.get(8)?,
        source_type_name: r.get(9)?,
    })
}

/// `GET /api/v1/events?start=&end=[&tags=][&sources=][&priority=][&page=]`: newest first, at
/// most [`MAX_EVENTS`] per page. Every tag must be present (wildcards allowed); `sources`
/// matches `source_type_name`, case-insensitively, any of a comma-separated list.
pub fn events(
    conn: &Connection,
    params: &HashMap<String, String>,
    now_s: i64,
) -> Result<EventList, IntakeError> {
    let start = time_param("start", params.get("start"), now_s)?;
    let end = time_param("end", params.get("end"), now_s)?;
    let priority = params.get("priority").filter(|p| !p.is_empty());
    if let Some(p) = priority {
        if p != "normal" && p != "low" {
            return Err(IntakeError::BadRequest(format!(
                "priority: {p:?} is not normal or low"
            )));
        }
    }
    let sources: Vec<String> = params
        .get("sources")
        .map(|s| {
            s.split(',')
                .map(|s| s.trim().to_lowercase())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let tags = filter_tags(params)?;
    let page: usize = match params.get("page") {
        Some(p) => p
            .parse()
            .map_err(|_| IntakeError::BadRequest(format!("page: {p:?} is not a number")))?,
        None => 0,
    };
    let mut stmt = conn.prepare_cached(&format!(
        "{EVENT_SELECT} WHERE ts_s BETWEEN ?1 AND ?2 AND (?3 IS NULL OR priority = ?3)
         ORDER BY ts_s DESC, id DESC"
    ))?;
    let rows = stmt.query_map(params![start, end, priority], event_row)?;
    let mut skipped = 0;
    let mut events = Vec::new();
    for row in rows {
        let e = row?;
        if !sources.is_empty() && !sources.contains(&e.source_type_name.to_lowercase()) {
            continue;
        }
        if !has_all_tags(&e.host, &e.tags, &tags) {
            continue;
        }
        if skipped < page * MAX_EVENTS {
            skipped += 1;
            continue;
        }
        events.push(e);
        if events.len() == MAX_EVENTS {
            break;
        }
    }
    Ok(EventList { events })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_keeps_at_most_300_points() {
        assert_eq!(pick_interval(0, 3_600), 15);
        assert_eq!(pick_interval(0, 300), 1);
        assert_eq!(pick_interval(0, 86_400), 300);
        assert_eq!(pick_interval(0, 7 * 86_400), 3_600);
        for span in [1, 59, 601, 9_999, 1_000_000, 100_000_000] {
            let i = pick_interval(0, span);
            assert!((span + i - 1) / i <= TARGET_POINTS, "{span}: {i}");
        }
    }
}
