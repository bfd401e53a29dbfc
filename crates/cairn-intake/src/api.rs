//! The search side, shaped like Datadog's Logs Search and Aggregate APIs.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rusqlite::types::Value as SqlValue;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use crate::query::{self, Node, Sql, TextMode};
use crate::store::{split_tags, BUCKET_MS};
use crate::timefmt::{format_rfc3339_ms, parse_duration, parse_time};
use crate::IntakeError;

pub const DEFAULT_FROM: &str = "now-15m";
pub const DEFAULT_LIMIT: u32 = 10;
pub const MAX_LIMIT: u32 = 5000;
const MAX_BUCKETS: i64 = 5000;

/// How long a first-page search may probe the full-text index row by row before it switches
/// to collecting all matches first (see [`TextMode`]).
const CORRELATED_BUDGET: Duration = Duration::from_millis(30);

/// A time bound as JSON allows it: a string (`now-15m`, ISO-8601, digits) or epoch ms.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum TimeArg {
    Ms(i64),
    Text(String),
}

impl TimeArg {
    fn resolve(&self, now_ms: i64) -> Result<i64, IntakeError> {
        match self {
            TimeArg::Ms(ms) => Ok(crate::timefmt::clamp_ms(*ms)),
            TimeArg::Text(s) => parse_time(s, now_ms)
                .map(crate::timefmt::clamp_ms)
                .map_err(IntakeError::BadRequest),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Filter {
    #[serde(default)]
    pub query: Option<String>,
    #[serde(default)]
    pub from: Option<TimeArg>,
    #[serde(default)]
    pub to: Option<TimeArg>,
}

impl Filter {
    /// The query parsed, and `[from, to]` in epoch ms (both inclusive).
    fn resolve(&self, now_ms: i64) -> Result<(Node, i64, i64), IntakeError> {
        let node = query::parse(self.query.as_deref().unwrap_or(""))?;
        let from = match &self.from {
            Some(t) => t.resolve(now_ms)?,
            None => parse_time(DEFAULT_FROM, now_ms).map_err(IntakeError::BadRequest)?,
        };
        let to = match &self.to {
            Some(t) => t.resolve(now_ms)?,
            None => now_ms,
        };
        if from > to {
            return Err(IntakeError::BadRequest(format!(
                "filter.from ({}) is after filter.to ({})",
                format_rfc3339_ms(from),
                format_rfc3339_ms(to)
            )));
        }
        Ok((node, from, to))
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Page {
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct SearchRequest {
    #[serde(default)]
    pub filter: Filter,
    /// `timestamp` (oldest first) or `-timestamp` (newest first, the default).
    #[serde(default)]
    pub sort: Option<String>,
    #[serde(default)]
    pub page: Page,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct LogEvent {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub attributes: EventAttributes,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct EventAttributes {
    pub timestamp: String,
    pub status: String,
    pub service: String,
    pub host: String,
    pub message: String,
    /// The log's tags; Datadog lists the source here as `source:<name>`.
    pub tags: Vec<String>,
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

impl EventAttributes {
    pub fn source(&self) -> &str {
        self.tags
            .iter()
            .find_map(|t| t.strip_prefix("source:"))
            .unwrap_or("")
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct MetaPage {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub after: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Meta {
    #[serde(default)]
    pub page: MetaPage,
    #[serde(default)]
    pub elapsed: u64,
    #[serde(default)]
    pub status: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct SearchResponse {
    pub data: Vec<LogEvent>,
    pub meta: Meta,
}

const SELECT_COLUMNS: &str =
    "SELECT id, timestamp_ms, status, host, service, source, message, tags, attributes FROM logs AS logs";

fn row_to_event(r: &rusqlite::Row) -> rusqlite::Result<(i64, i64, LogEvent)> {
    let id: i64 = r.get(0)?;
    let ts: i64 = r.get(1)?;
    let source: String = r.get(5)?;
    let tags_text: String = r.get(7)?;
    let attrs_text: Option<String> = r.get(8)?;
    let mut tags: Vec<String> = split_tags(&tags_text).map(str::to_owned).collect();
    if !source.is_empty() {
        tags.insert(0, format!("source:{source}"));
    }
    let attributes = attrs_text
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    Ok((
        id,
        ts,
        LogEvent {
            id: id.to_string(),
            kind: "log".into(),
            attributes: EventAttributes {
                timestamp: format_rfc3339_ms(ts),
                status: r.get(2)?,
                host: r.get(3)?,
                service: r.get(4)?,
                message: r.get(6)?,
                tags,
                attributes,
            },
        },
    ))
}

fn cursor_text(ts: i64, id: i64) -> String {
    format!("{ts}_{id}")
}

fn parse_cursor(s: &str) -> Result<(i64, i64), IntakeError> {
    s.split_once('_')
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        .ok_or_else(|| {
            IntakeError::BadRequest(format!(
                "page.cursor {s:?} is not a cursor this intake gave out"
            ))
        })
}

/// A query the parser accepted can still pass one of SQLite's own limits (expression depth,
/// parameters, parser stack): that is the query's fault, a 400 naming the limit, not a 500.
fn sql_error(e: rusqlite::Error) -> IntakeError {
    if let rusqlite::Error::SqliteFailure(f, Some(msg)) = &e {
        let limit = f.code == rusqlite::ErrorCode::Unknown
            && ["too large", "too many", "stack overflow", "too big"]
                .iter()
                .any(|m| msg.contains(m));
        if limit || f.code == rusqlite::ErrorCode::TooBig {
            return IntakeError::BadRequest(format!("query is too complex for the store: {msg}"));
        }
    }
    IntakeError::Query(e)
}

fn is_interrupt(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::OperationInterrupted)
}

/// `POST /api/v2/logs/events/search`.
pub fn search(
    conn: &Connection,
    req: &SearchRequest,
    now_ms: i64,
) -> Result<SearchResponse, IntakeError> {
    let started = Instant::now();
    let (node, from, to) = req.filter.resolve(now_ms)?;
    let descending = match req.sort.as_deref() {
        None | Some("-timestamp") => true,
        Some("timestamp") => false,
        Some(other) => {
            return Err(IntakeError::BadRequest(format!(
                "sort {other:?}: use \"timestamp\" or \"-timestamp\""
            )))
        }
    };
    let limit = req.page.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let cursor = req.page.cursor.as_deref().map(parse_cursor).transpose()?;

    let build = |mode: TextMode| {
        let mut sql = Sql::default();
        sql.push(SELECT_COLUMNS)
            .push(" WHERE timestamp_ms >= ")
            .bind(from)
            .push(" AND timestamp_ms <= ")
            .bind(to);
        if let Some((ts, id)) = cursor {
            sql.push(if descending {
                " AND (timestamp_ms, id) < ("
            } else {
                " AND (timestamp_ms, id) > ("
            })
            .bind(ts)
            .push(", ")
            .bind(id)
            .push(")");
        }
        sql.push(" AND ");
        query::to_sql(&node, mode, &mut sql);
        sql.push(if descending {
            " ORDER BY timestamp_ms DESC, id DESC LIMIT "
        } else {
            " ORDER BY timestamp_ms ASC, id ASC LIMIT "
        })
        .bind(i64::from(limit));
        sql
    };
    let run = |sql: &Sql| -> rusqlite::Result<Vec<(i64, i64, LogEvent)>> {
        let mut stmt = conn.prepare_cached(&sql.text)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(sql.params.iter()), row_to_event)?;
        rows.collect()
    };

    let rows = if query::has_text(&node) {
        let deadline = Instant::now() + CORRELATED_BUDGET;
        conn.progress_handler(2_000, Some(move || Instant::now() > deadline));
        let first = run(&build(TextMode::Correlated));
        conn.progress_handler(0, None::<fn() -> bool>);
        match first {
            Err(e) if is_interrupt(&e) => run(&build(TextMode::Materialized)).map_err(sql_error)?,
            other => other.map_err(sql_error)?,
        }
    } else {
        run(&build(TextMode::Correlated)).map_err(sql_error)?
    };

    let after = if rows.len() == limit as usize {
        rows.last().map(|(id, ts, _)| cursor_text(*ts, *id))
    } else {
        None
    };
    Ok(SearchResponse {
        data: rows.into_iter().map(|(_, _, e)| e).collect(),
        meta: Meta {
            page: MetaPage { after },
            elapsed: started.elapsed().as_millis() as u64,
            status: "done".into(),
        },
    })
}

/// Live tail: logs stored after the log `after` (an id from an earlier answer), oldest first,
/// in arrival order rather than timestamp order, as a tail should be.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct TailRequest {
    #[serde(default)]
    pub query: Option<String>,
    #[serde(default)]
    pub after: Option<i64>,
    #[serde(default)]
    pub limit: Option<u32>,
}

pub fn tail(conn: &Connection, req: &TailRequest) -> Result<SearchResponse, IntakeError> {
    let started = Instant::now();
    let node = query::parse(req.query.as_deref().unwrap_or(""))?;
    let limit = req.limit.unwrap_or(100).clamp(1, MAX_LIMIT);
    let mut sql = Sql::default();
    sql.push(SELECT_COLUMNS).push(" WHERE ");
    match req.after {
        Some(after) => {
            sql.push("id > ").bind(after).push(" AND ");
            query::to_sql(&node, TextMode::Correlated, &mut sql);
            sql.push(" ORDER BY id ASC LIMIT ").bind(i64::from(limit));
        }
        None => {
            query::to_sql(&node, TextMode::Correlated, &mut sql);
            sql.push(" ORDER BY id DESC LIMIT ").bind(i64::from(limit));
        }
    }
    let mut stmt = conn.prepare_cached(&sql.text).map_err(sql_error)?;
    let mut rows = stmt
        .query_map(rusqlite::params_from_iter(sql.params.iter()), row_to_event)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    if req.after.is_none() {
        rows.reverse();
    }
    let last = rows.last().map(|(id, _, _)| *id).or(req.after);
    if last.is_none() {
        // Nothing matches yet: start the tail from the newest log so that old ones are skipped.
        let newest: Option<i64> = conn.query_row("SELECT max(id) FROM logs", [], |r| r.get(0))?;
        return Ok(SearchResponse {
            data: Vec::new(),
            meta: Meta {
                page: MetaPage {
                    after: Some(newest.unwrap_or(0).to_string()),
                },
                elapsed: started.elapsed().as_millis() as u64,
                status: "done".into(),
            },
        });
    }
    Ok(SearchResponse {
        data: rows.into_iter().map(|(_, _, e)| e).collect(),
        meta: Meta {
            page: MetaPage {
                after: last.map(|id| id.to_string()),
            },
            elapsed: started.elapsed().as_millis() as u64,
            status: "done".into(),
        },
    })
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Compute {
    #[serde(default)]
    pub aggregation: Option<String>,
    /// `total` (default) or `timeseries`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// Bucket width for `timeseries`: `1m`, `5m`, `1h`, … or milliseconds.
    #[serde(default)]
    pub interval: Option<TimeArg>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct GroupBy {
    /// `service`, `source`, `status`, `host`, `@attribute.path`, a tag key, or `tags` (every
    /// tag of the log is a group).
    pub facet: String,
    #[serde(default)]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct AggregateRequest {
    #[serde(default)]
    pub filter: Filter,
    #[serde(default)]
    pub compute: Vec<Compute>,
    #[serde(default)]
    pub group_by: Vec<GroupBy>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Point {
    pub time: String,
    pub value: i64,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum ComputeValue {
    Total(i64),
    Series(Vec<Point>),
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Bucket {
    pub by: serde_json::Map<String, serde_json::Value>,
    pub computes: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct AggregateData {
    pub buckets: Vec<Bucket>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct AggregateResponse {
    pub data: AggregateData,
    pub meta: Meta,
}

/// What to group by, as the SQL needs it.
enum Facet {
    None,
    Column(&'static str),
    Tag(String),
    AllTags,
    Attr(String),
}

impl Facet {
    fn from_name(name: Option<&str>) -> Result<Facet, IntakeError> {
        let Some(name) = name.map(str::trim) else {
            return Ok(Facet::None);
        };
        Ok(match name {
            "service" => Facet::Column("service"),
            "source" => Facet::Column("source"),
            "status" => Facet::Column("status"),
            "host" => Facet::Column("host"),
            "tags" => Facet::AllTags,
            "" => return Err(IntakeError::BadRequest("group_by.facet is empty".into())),
            n if n.starts_with('@') => {
                let parts: Vec<String> = n[1..].split('.').map(str::to_owned).collect();
                if parts.iter().any(|p| p.is_empty() || p.contains('"')) {
                    return Err(IntakeError::BadRequest(format!(
                        "group_by.facet {n:?} is not an attribute path"
                    )));
                }
                Facet::Attr(query::json_path_of(&parts))
            }
            n => Facet::Tag(n.to_owned()),
        })
    }

    /// Appends the SQL expression whose value is the group.
    fn push_expr(&self, sql: &mut Sql) {
        match self {
            Facet::None => sql.push("NULL"),
            Facet::Column(c) => sql.push(c),
            Facet::Tag(key) => sql
                .push("cairn_tag_value(tags, ")
                .bind(key.clone())
                .push(")"),
            Facet::AllTags => sql.push("tags"),
            Facet::Attr(path) => sql
                .push("json_extract(attributes, ")
                .bind(path.clone())
                .push(")"),
        };
    }
}

fn sql_value_text(v: SqlValue) -> Option<String> {
    match v {
        SqlValue::Null => None,
        SqlValue::Integer(i) => Some(i.to_string()),
        SqlValue::Real(f) => Some(f.to_string()),
        SqlValue::Text(s) if s.is_empty() => None,
        SqlValue::Text(s) => Some(s),
        SqlValue::Blob(_) => None,
    }
}

/// A nice bucket width giving about 60 bars over the range.
pub fn default_interval_ms(from: i64, to: i64) -> i64 {
    let ideal = ((to - from) / 60).max(1);
    const STEPS: [i64; 15] = [
        1_000,
        5_000,
        10_000,
        30_000,
        60_000,
        300_000,
        600_000,
        1_800_000,
        3_600_000,
        10_800_000,
        21_600_000,
        43_200_000,
        86_400_000,
        604_800_000,
        2_592_000_000,
    ];
    STEPS
        .iter()
        .copied()
        .find(|s| *s >= ideal)
        .unwrap_or(STEPS[STEPS.len() - 1])
}

/// `POST /api/v2/logs/analytics/aggregate`: counts, in total or per time bucket, optionally
/// grouped by one facet.
pub fn aggregate(
    conn: &Connection,
    req: &AggregateRequest,
    now_ms: i64,
) -> Result<AggregateResponse, IntakeError> {
    let started = Instant::now();
    let (node, from, to) = req.filter.resolve(now_ms)?;
    if req.group_by.len() > 1 {
        return Err(IntakeError::BadRequest(
            "group_by takes at most one facet".into(),
        ));
    }
    let compute = req.compute.first().cloned().unwrap_or_default();
    if let Some(a) = compute.aggregation.as_deref().filter(|a| *a != "count") {
        return Err(IntakeError::BadRequest(format!(
            "compute.aggregation {a:?}: only \"count\" is supported"
        )));
    }
    let interval = match compute.kind.as_deref() {
        None | Some("total") => None,
        Some("timeseries") => Some(match &compute.interval {
            None => default_interval_ms(from, to),
            Some(TimeArg::Ms(ms)) => *ms,
            Some(TimeArg::Text(s)) => parse_duration(s)
                .map_err(IntakeError::BadRequest)?
                .as_millis() as i64,
        }),
        Some(other) => {
            return Err(IntakeError::BadRequest(format!(
                "compute.type {other:?}: use \"total\" or \"timeseries\""
            )))
        }
    };
    if let Some(i) = interval {
        if i <= 0 || (to - from) / i > MAX_BUCKETS {
            return Err(IntakeError::BadRequest(format!(
                "compute.interval gives more than {MAX_BUCKETS} buckets over this range"
            )));
        }
    }
    let group = req.group_by.first();
    let facet = Facet::from_name(group.map(|g| g.facet.as_str()))?;
    let group_limit = group.and_then(|g| g.limit).unwrap_or(10).clamp(1, 1000) as usize;

    // counts[(group, bucket)]
    let mut counts: HashMap<(Option<String>, i64), i64> = HashMap::new();
    let rollup_ok = query::only_reserved(&node)
        && matches!(
            facet,
            Facet::None | Facet::Column("service" | "source" | "status")
        )
        && interval.is_none_or(|i| i % BUCKET_MS == 0);
    let end = to.saturating_add(1);
    // Whole minutes come from the rollup; the partial minutes at either end from logs.
    let first_full = -(-from).div_euclid(BUCKET_MS) * BUCKET_MS;
    let last_full = end.div_euclid(BUCKET_MS) * BUCKET_MS;
    let ranges: &[(&str, i64, i64)] = if rollup_ok && first_full < last_full {
        &[
            ("rollup", first_full, last_full),
            ("logs", from, first_full),
            ("logs", last_full, end),
        ]
    } else {
        &[("logs", from, end)]
    };
    for &(table, lo, hi) in ranges {
        count_into(conn, &mut counts, table, &node, &facet, interval, lo, hi)?;
    }

    let mut totals: HashMap<Option<String>, i64> = HashMap::new();
    for ((g, _), n) in &counts {
        *totals.entry(g.clone()).or_insert(0) += n;
    }
    let mut groups: Vec<(Option<String>, i64)> = totals.into_iter().collect();
    groups.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    if !matches!(facet, Facet::None) {
        groups.retain(|(g, _)| g.is_some());
        groups.truncate(group_limit);
    } else if groups.is_empty() {
        groups.push((None, 0));
    }
    let facet_name = group.map(|g| g.facet.clone());
    let buckets = groups
        .into_iter()
        .map(|(g, total)| {
            let mut by = serde_json::Map::new();
            if let (Some(name), Some(value)) = (&facet_name, &g) {
                by.insert(name.clone(), serde_json::Value::String(value.clone()));
            }
            let value = match interval {
                None => ComputeValue::Total(total),
                Some(_) => {
                    let mut points: Vec<(i64, i64)> = counts
                        .iter()
                        .filter(|((cg, _), _)| *cg == g)
                        .map(|((_, b), n)| (*b, *n))
                        .collect();
                    points.sort_unstable();
                    ComputeValue::Series(
                        points
                            .into_iter()
                            .map(|(b, n)| Point {
                                time: format_rfc3339_ms(b),
                                value: n,
                            })
                            .collect(),
                    )
                }
            };
            let mut computes = serde_json::Map::new();
            computes.insert(
                "c0".into(),
                serde_json::to_value(value).expect("counts serialise"),
            );
            Bucket { by, computes }
        })
        .collect();
    Ok(AggregateResponse {
        data: AggregateData { buckets },
        meta: Meta {
            page: MetaPage::default(),
            elapsed: started.elapsed().as_millis() as u64,
            status: "done".into(),
        },
    })
}

/// Adds the counts of `[lo, hi)` from `table` (`logs`, or `rollup` for whole minutes).
#[allow(clippy::too_many_arguments)]
fn count_into(
    conn: &Connection,
    counts: &mut HashMap<(Option<String>, i64), i64>,
    table: &str,
    node: &Node,
    facet: &Facet,
    interval: Option<i64>,
    lo: i64,
    hi: i64,
) -> Result<(), IntakeError> {
    if lo >= hi {
        return Ok(());
    }
    let (time_col, count_expr, from_clause) = if table == "rollup" {
        ("bucket_ms", "sum(count)", " FROM rollup WHERE ")
    } else {
        ("timestamp_ms", "count(*)", " FROM logs AS logs WHERE ")
    };
    let mut sql = Sql::default();
    sql.push("SELECT ");
    facet.push_expr(&mut sql);
    sql.push(" AS g, ");
    match interval {
        Some(i) => {
            sql.push("(")
                .push(time_col)
                .push(" / ")
                .bind(i)
                .push(") * ")
                .bind(i);
        }
        None => {
            sql.push("0");
        }
    }
    sql.push(" AS b, ")
        .push(count_expr)
        .push(from_clause)
        .push(time_col)
        .push(" >= ")
        .bind(lo)
        .push(" AND ")
        .push(time_col)
        .push(" < ")
        .bind(hi)
        .push(" AND ");
    query::to_sql(node, TextMode::Materialized, &mut sql);
    sql.push(" GROUP BY g, b");
    let mut stmt = conn.prepare_cached(&sql.text).map_err(sql_error)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(sql.params.iter()))?;
    while let Some(r) = rows.next()? {
        let g: SqlValue = r.get(0)?;
        let b: i64 = r.get(1)?;
        let n: i64 = r.get(2)?;
        if let Facet::AllTags = facet {
            if let SqlValue::Text(tags) = g {
                for tag in split_tags(&tags) {
                    *counts.entry((Some(tag.to_owned()), b)).or_insert(0) += n;
                }
            }
        } else {
            *counts.entry((sql_value_text(g), b)).or_insert(0) += n;
        }
    }
    Ok(())
}
