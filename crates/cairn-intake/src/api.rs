//! The search side, shaped like Datadog's Logs Search and Aggregate APIs.

use std::collections::{BTreeMap, HashMap, HashSet};
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
/// A scan over at most this much time bounds its full-text lookups by the range's ids: the
/// index pass that finds them costs more than it saves on longer ranges.
const ID_RANGE_SCAN_MS: i64 = 15 * 60_000;

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
    pub(crate) fn resolve(&self, now_ms: i64) -> Result<(Node, i64, i64), IntakeError> {
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

pub(crate) const SELECT_COLUMNS: &str =
    "SELECT id, timestamp_ms, status, host, service, source, message, tags, attributes FROM logs AS logs";

pub(crate) fn row_to_event(r: &rusqlite::Row) -> rusqlite::Result<(i64, i64, LogEvent)> {
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
pub(crate) fn sql_error(e: rusqlite::Error) -> IntakeError {
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
    /// `count` (default), `cardinality`, `avg`, `sum`, `min`, `max`, `median`, `pc75`, `pc90`,
    /// `pc95` or `pc99`.
    #[serde(default)]
    pub aggregation: Option<String>,
    /// An `@attribute` measure; for `cardinality`, any facet.
    #[serde(default)]
    pub metric: Option<String>,
    /// `total` (default) or `timeseries`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// Bucket width for `timeseries`: `1m`, `5m`, `1h`, … or milliseconds.
    #[serde(default)]
    pub interval: Option<TimeArg>,
}

/// How the groups of one `group_by` are ranked before its limit applies.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct GroupSort {
    #[serde(default)]
    pub aggregation: Option<String>,
    #[serde(default)]
    pub metric: Option<String>,
    /// `desc` (default for measures) or `asc` (default for alphabetical).
    #[serde(default)]
    pub order: Option<String>,
    /// `measure` (default) or `alphabetical`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct GroupBy {
    /// `service`, `source`, `status`, `host`, `@attribute.path`, a tag key, or `tags` (every
    /// tag of the log is a group).
    pub facet: String,
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub sort: Option<GroupSort>,
    /// The group of logs without the facet; absent, such logs are left out.
    #[serde(default)]
    pub missing: Option<serde_json::Value>,
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

pub const MAX_COMPUTES: usize = 4;
pub const MAX_GROUP_BYS: usize = 2;
pub const MAX_GROUP_LIMIT: u32 = 1000;

/// What to group by, as the SQL needs it.
#[derive(Debug, Clone, PartialEq)]
enum Facet {
    None,
    Column(&'static str),
    Tag(String),
    AllTags,
    /// A JSON path (`$."a"."b"`).
    Attr(String),
}

impl Facet {
    /// `field` names the request field in errors (`group_by[0].facet`).
    fn from_name(name: Option<&str>, field: &str) -> Result<Facet, IntakeError> {
        let Some(name) = name.map(str::trim) else {
            return Ok(Facet::None);
        };
        Ok(match name {
            "service" => Facet::Column("service"),
            "source" => Facet::Column("source"),
            "status" => Facet::Column("status"),
            "host" => Facet::Column("host"),
            "tags" => Facet::AllTags,
            "" => return Err(IntakeError::BadRequest(format!("{field} is empty"))),
            n if n.starts_with('@') => Facet::Attr(attr_path(n, field)?),
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
            Facet::Attr(path) => {
                // json_extract gives booleans as 1 and 0; a facet shows them as written.
                let p = sql.placeholder(path.clone());
                sql.push(&format!(
                    "CASE json_type(attributes, {p}) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' \
                     ELSE json_extract(attributes, {p}) END"
                ))
            }
        };
    }
}

/// `@a.b` → `$."a"."b"`, refusing empty steps and quotes (which a quoted step cannot hold).
fn attr_path(name: &str, field: &str) -> Result<String, IntakeError> {
    let parts = query::split_path_text(&name[1..]);
    if parts.iter().any(|p| p.is_empty() || p.contains('"')) {
        return Err(IntakeError::BadRequest(format!(
            "{field} {name:?} is not an attribute path"
        )));
    }
    Ok(query::json_path_of(&parts))
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

#[derive(Debug, Clone, Copy, PartialEq)]
enum Agg {
    Count,
    Cardinality,
    Avg,
    Sum,
    Min,
    Max,
    /// A percentile, 0..1.
    Pct(f64),
}

impl Agg {
    fn parse(name: &str, field: &str) -> Result<Agg, IntakeError> {
        Ok(match name {
            "count" => Agg::Count,
            "cardinality" => Agg::Cardinality,
            "avg" => Agg::Avg,
            "sum" => Agg::Sum,
            "min" => Agg::Min,
            "max" => Agg::Max,
            "median" => Agg::Pct(0.5),
            "pc75" => Agg::Pct(0.75),
            "pc90" => Agg::Pct(0.9),
            "pc95" => Agg::Pct(0.95),
            "pc99" => Agg::Pct(0.99),
            other => {
                return Err(IntakeError::BadRequest(format!(
                    "{field} {other:?} is not an aggregation: use count, cardinality, avg, sum, \
                     min, max, median, pc75, pc90, pc95 or pc99"
                )))
            }
        })
    }
}

/// What one compute reads from each log.
#[derive(Debug, Clone, PartialEq)]
enum Metric {
    None,
    /// The JSON numbers at this path (other values are ignored).
    Measure(String),
    /// The distinct values of a facet.
    Distinct(Facet),
}

#[derive(Debug, Clone)]
struct Spec {
    agg: Agg,
    metric: Metric,
    interval: Option<i64>,
}

impl Spec {
    fn parse(
        aggregation: Option<&str>,
        metric: Option<&str>,
        field: &str,
    ) -> Result<Spec, IntakeError> {
        let agg = Agg::parse(
            aggregation.unwrap_or("count"),
            &format!("{field}.aggregation"),
        )?;
        let metric_field = format!("{field}.metric");
        let metric = match (agg, metric.map(str::trim)) {
            (Agg::Count, _) => Metric::None,
            (_, None | Some("")) => {
                return Err(IntakeError::BadRequest(format!(
                    "{metric_field} is required for {}",
                    aggregation.unwrap_or("count")
                )))
            }
            (Agg::Cardinality, Some(m)) => {
                Metric::Distinct(Facet::from_name(Some(m), &metric_field)?)
            }
            (_, Some(m)) if m.starts_with('@') => Metric::Measure(attr_path(m, &metric_field)?),
            (_, Some(m)) => {
                return Err(IntakeError::BadRequest(format!(
                    "{metric_field} {m:?} is not a measure: use a numeric @attribute"
                )))
            }
        };
        Ok(Spec {
            agg,
            metric,
            interval: None,
        })
    }
}

/// One compute's state for one group (or one time bucket of it).
#[derive(Debug, Default, Clone)]
struct Acc {
    rows: i64,
    n: i64,
    sum: f64,
    min: f64,
    max: f64,
    vals: Vec<f64>,
    distinct: HashSet<String>,
}

impl Acc {
    fn add_stats(&mut self, n: i64, sum: f64, min: f64, max: f64) {
        if n <= 0 {
            return;
        }
        if self.n == 0 {
            self.min = min;
            self.max = max;
        } else {
            self.min = self.min.min(min);
            self.max = self.max.max(max);
        }
        self.n += n;
        self.sum += sum;
    }

    fn value(&mut self, agg: Agg) -> serde_json::Value {
        let num = |v: f64| {
            serde_json::Number::from_f64(v)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null)
        };
        match agg {
            Agg::Count => self.rows.into(),
            Agg::Cardinality => (self.distinct.len() as u64).into(),
            _ if self.n == 0 => serde_json::Value::Null,
            Agg::Avg => num(self.sum / self.n as f64),
            Agg::Sum => num(self.sum),
            Agg::Min => num(self.min),
            Agg::Max => num(self.max),
            Agg::Pct(p) => {
                self.vals.sort_unstable_by(f64::total_cmp);
                num(percentile(&self.vals, p))
            }
        }
    }

    /// The number a sort ranks by: none sorts after every number.
    fn rank(&mut self, agg: Agg) -> Option<f64> {
        self.value(agg).as_f64()
    }
}

/// Linear interpolation between the closest ranks of sorted values: the value at rank
/// `p × (n − 1)`, so the median of 1, 2, 3, 4 is 2.5 and pc99 of one value is that value.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let h = p * (sorted.len() - 1) as f64;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// What one contribution (a log, or pre-counted rows of a table) adds to one compute.
#[derive(Default)]
struct Part<'a> {
    rows: i64,
    n: i64,
    sum: f64,
    min: f64,
    max: f64,
    vals: &'a [f64],
    distinct: &'a [String],
}

impl Part<'_> {
    fn apply(&self, acc: &mut Acc, keep_vals: bool) {
        acc.rows += self.rows;
        acc.add_stats(self.n, self.sum, self.min, self.max);
        if keep_vals {
            acc.vals.extend_from_slice(self.vals);
        }
        for d in self.distinct {
            if !acc.distinct.contains(d) {
                acc.distinct.insert(d.clone());
            }
        }
    }
}

type GroupKey = [Option<String>; 2];

#[derive(Default)]
struct GroupState {
    totals: Vec<Acc>,
    series: Vec<BTreeMap<i64, Acc>>,
}

struct Engine<'a> {
    specs: &'a [Spec],
    levels: usize,
    groups: HashMap<GroupKey, GroupState>,
    /// With two group_bys, the first one's groups ranked by their own sort compute.
    outer: HashMap<Option<String>, Acc>,
    outer_spec: Option<usize>,
}

impl<'a> Engine<'a> {
    /// Adds to the group `key` at time `ts`: `part(i)` is what compute `i` receives (None:
    /// nothing, but the group and its time bucket still exist, as they hold logs).
    fn add<'p>(
        &mut self,
        key: &GroupKey,
        ts: i64,
        mut part: impl FnMut(usize) -> Option<Part<'p>>,
    ) {
        let specs = self.specs;
        let state = match self.groups.get_mut(key) {
            Some(s) => s,
            None => self
                .groups
                .entry(key.clone())
                .or_insert_with(|| GroupState {
                    totals: vec![Acc::default(); specs.len()],
                    series: vec![BTreeMap::new(); specs.len()],
                }),
        };
        for (i, spec) in specs.iter().enumerate() {
            let p = part(i);
            let keep = matches!(spec.agg, Agg::Pct(_));
            let bucket = spec.interval.map(|iv| ts.div_euclid(iv) * iv);
            if let Some(b) = bucket {
                let acc = state.series[i].entry(b).or_default();
                if let Some(p) = &p {
                    p.apply(acc, keep);
                }
            }
            if let Some(p) = &p {
                p.apply(&mut state.totals[i], keep);
                if self.outer_spec == Some(i) {
                    p.apply(self.outer.entry(key[0].clone()).or_default(), keep);
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum SortBy {
    Alpha { desc: bool },
    Measure { spec: usize, desc: bool },
}

fn sort_by(
    sort: Option<&GroupSort>,
    specs: &mut Vec<Spec>,
    field: &str,
) -> Result<SortBy, IntakeError> {
    let Some(sort) = sort else {
        return Ok(SortBy::Measure {
            spec: find_or_add(
                specs,
                Spec {
                    agg: Agg::Count,
                    metric: Metric::None,
                    interval: None,
                },
            ),
            desc: true,
        });
    };
    let desc = match sort.order.as_deref() {
        None => None,
        Some("desc") => Some(true),
        Some("asc") => Some(false),
        Some(o) => {
            return Err(IntakeError::BadRequest(format!(
                "{field}.order {o:?}: use \"asc\" or \"desc\""
            )))
        }
    };
    match sort.kind.as_deref() {
        Some("alphabetical") => Ok(SortBy::Alpha {
            desc: desc.unwrap_or(false),
        }),
        None | Some("measure") => {
            let spec = Spec::parse(sort.aggregation.as_deref(), sort.metric.as_deref(), field)?;
            Ok(SortBy::Measure {
                spec: find_or_add(specs, spec),
                desc: desc.unwrap_or(true),
            })
        }
        Some(t) => Err(IntakeError::BadRequest(format!(
            "{field}.type {t:?}: use \"measure\" or \"alphabetical\""
        ))),
    }
}

fn find_or_add(specs: &mut Vec<Spec>, spec: Spec) -> usize {
    if let Some(i) = specs
        .iter()
        .position(|s| s.agg == spec.agg && s.metric == spec.metric)
    {
        return i;
    }
    specs.push(spec);
    specs.len() - 1
}

/// Ranks groups: by a number (none last) then by name, or by name.
fn rank_order(
    by: SortBy,
    a: (&Option<String>, Option<f64>),
    b: (&Option<String>, Option<f64>),
) -> std::cmp::Ordering {
    match by {
        SortBy::Alpha { desc } => {
            let o = a.0.cmp(b.0);
            if desc {
                o.reverse()
            } else {
                o
            }
        }
        SortBy::Measure { desc, .. } => {
            let o = match (a.1, b.1) {
                (Some(x), Some(y)) => {
                    let o = x.total_cmp(&y);
                    if desc {
                        o.reverse()
                    } else {
                        o
                    }
                }
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            };
            o.then_with(|| a.0.cmp(b.0))
        }
    }
}

fn resolve_interval(
    c: &Compute,
    from: i64,
    to: i64,
    field: &str,
) -> Result<Option<i64>, IntakeError> {
    let interval = match c.kind.as_deref() {
        None | Some("total") => return Ok(None),
        Some("timeseries") => match &c.interval {
            None => default_interval_ms(from, to),
            Some(TimeArg::Ms(ms)) => *ms,
            Some(TimeArg::Text(s)) => parse_duration(s)
                .map_err(|e| IntakeError::BadRequest(format!("{field}.interval: {e}")))?
                .as_millis() as i64,
        },
        Some(other) => {
            return Err(IntakeError::BadRequest(format!(
                "{field}.type {other:?}: use \"total\" or \"timeseries\""
            )))
        }
    };
    if interval <= 0 || (to - from) / interval > MAX_BUCKETS {
        return Err(IntakeError::BadRequest(format!(
            "{field}.interval gives more than {MAX_BUCKETS} buckets over this range"
        )));
    }
    Ok(Some(interval))
}

/// The text a `missing` value stands for in `by`.
fn missing_text(v: &serde_json::Value, field: &str) -> Result<String, IntakeError> {
    match v {
        serde_json::Value::String(s) => Ok(s.clone()),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        serde_json::Value::Bool(b) => Ok(b.to_string()),
        _ => Err(IntakeError::BadRequest(format!(
            "{field}.missing must be a string or a number"
        ))),
    }
}

/// `POST /api/v2/logs/analytics/aggregate`: counts, measures (sum, avg, min, max,
/// percentiles) and cardinalities, in total or per time bucket, grouped by up to two facets.
pub fn aggregate(
    conn: &Connection,
    req: &AggregateRequest,
    now_ms: i64,
) -> Result<AggregateResponse, IntakeError> {
    let started = Instant::now();
    let (node, from, to) = req.filter.resolve(now_ms)?;
    if req.compute.len() > MAX_COMPUTES {
        return Err(IntakeError::BadRequest(format!(
            "compute takes at most {MAX_COMPUTES} entries ({} given)",
            req.compute.len()
        )));
    }
    if req.group_by.len() > MAX_GROUP_BYS {
        return Err(IntakeError::BadRequest(format!(
            "group_by takes at most {MAX_GROUP_BYS} facets ({} given)",
            req.group_by.len()
        )));
    }
    let default_compute = [Compute::default()];
    let computes: &[Compute] = if req.compute.is_empty() {
        &default_compute
    } else {
        &req.compute
    };
    let mut specs = Vec::new();
    for (i, c) in computes.iter().enumerate() {
        let field = format!("compute[{i}]");
        let mut spec = Spec::parse(c.aggregation.as_deref(), c.metric.as_deref(), &field)?;
        spec.interval = resolve_interval(c, from, to, &field)?;
        specs.push(spec);
    }
    let outputs = specs.len();
    let mut facets = Vec::new();
    let mut sorts = Vec::new();
    let mut limits = Vec::new();
    let mut missing = Vec::new();
    for (i, g) in req.group_by.iter().enumerate() {
        let field = format!("group_by[{i}]");
        facets.push(Facet::from_name(Some(&g.facet), &format!("{field}.facet"))?);
        let limit = g.limit.unwrap_or(10);
        if !(1..=MAX_GROUP_LIMIT).contains(&limit) {
            return Err(IntakeError::BadRequest(format!(
                "{field}.limit {limit} is out of range: 1 to {MAX_GROUP_LIMIT}"
            )));
        }
        limits.push(limit as usize);
        sorts.push(sort_by(
            g.sort.as_ref(),
            &mut specs,
            &format!("{field}.sort"),
        )?);
        missing.push(
            g.missing
                .as_ref()
                .map(|m| missing_text(m, &field).map(|t| (t, m.clone())))
                .transpose()?,
        );
    }
    let outer_spec = match (sorts.first(), facets.len()) {
        (Some(SortBy::Measure { spec, .. }), 2) => Some(*spec),
        _ => None,
    };
    let mut engine = Engine {
        specs: &specs,
        levels: facets.len(),
        groups: HashMap::new(),
        outer: HashMap::new(),
        outer_spec,
    };
    let ctx = Ctx {
        node: &node,
        facets: &facets,
        missing: &missing,
    };

    // One read transaction: the rollups and the path table are seen at the same commit.
    let tx = conn.unchecked_transaction()?;
    let end = to.saturating_add(1);
    let plan = plan(&tx, &ctx, &specs)?;
    let first_full = -(-from).div_euclid(BUCKET_MS) * BUCKET_MS;
    let last_full = end.div_euclid(BUCKET_MS) * BUCKET_MS;
    match plan {
        Some(plan) if first_full < last_full => {
            scan_logs(&tx, &ctx, &mut engine, from, first_full)?;
            run_plan(&tx, &ctx, &plan, &mut engine, first_full, last_full)?;
            scan_logs(&tx, &ctx, &mut engine, last_full, end)?;
        }
        _ => scan_logs(&tx, &ctx, &mut engine, from, end)?,
    }
    drop(tx);

    let buckets = finish(engine, &req.group_by, &sorts, &limits, &missing, outputs);
    Ok(AggregateResponse {
        data: AggregateData { buckets },
        meta: Meta {
            page: MetaPage::default(),
            elapsed: started.elapsed().as_millis() as u64,
            status: "done".into(),
        },
    })
}

struct Ctx<'a> {
    node: &'a Node,
    facets: &'a [Facet],
    missing: &'a [Option<(String, serde_json::Value)>],
}

impl Ctx<'_> {
    /// The group key of one row's facet values; None when the row is left out (a facet is
    /// missing and there is no `missing` value for it).
    fn key(&self, values: [Option<String>; 2]) -> Option<GroupKey> {
        let mut key: GroupKey = [None, None];
        for (i, v) in values.into_iter().enumerate().take(self.facets.len()) {
            key[i] = match v {
                Some(v) => Some(v),
                None => Some(self.missing[i].as_ref()?.0.clone()),
            };
        }
        Some(key)
    }
}

/// Builds the buckets: groups ranked and cut to their limits (per first-level group for the
/// second group_by, as Datadog does).
fn finish(
    mut engine: Engine,
    group_by: &[GroupBy],
    sorts: &[SortBy],
    limits: &[usize],
    missing: &[Option<(String, serde_json::Value)>],
    outputs: usize,
) -> Vec<Bucket> {
    let specs = engine.specs;
    let rank = |state: &mut GroupState, by: SortBy| match by {
        SortBy::Measure { spec, .. } => state.totals[spec].rank(specs[spec].agg),
        SortBy::Alpha { .. } => None,
    };
    let mut keys: Vec<GroupKey> = match engine.levels {
        0 => {
            engine
                .groups
                .entry([None, None])
                .or_insert_with(|| GroupState {
                    totals: vec![Acc::default(); specs.len()],
                    series: vec![BTreeMap::new(); specs.len()],
                });
            vec![[None, None]]
        }
        1 => {
            let mut ranked: Vec<(GroupKey, Option<f64>)> = engine
                .groups
                .iter_mut()
                .map(|(k, s)| (k.clone(), rank(s, sorts[0])))
                .collect();
            ranked.sort_by(|a, b| rank_order(sorts[0], (&a.0[0], a.1), (&b.0[0], b.1)));
            ranked.truncate(limits[0]);
            ranked.into_iter().map(|(k, _)| k).collect()
        }
        _ => {
            let mut outer: Vec<(Option<String>, Option<f64>)> = match sorts[0] {
                SortBy::Measure { spec, .. } => engine
                    .outer
                    .iter_mut()
                    .map(|(k, acc)| (k.clone(), acc.rank(specs[spec].agg)))
                    .collect(),
                SortBy::Alpha { .. } => {
                    let set: HashSet<Option<String>> =
                        engine.groups.keys().map(|k| k[0].clone()).collect();
                    set.into_iter().map(|k| (k, None)).collect()
                }
            };
            outer.sort_by(|a, b| rank_order(sorts[0], (&a.0, a.1), (&b.0, b.1)));
            outer.truncate(limits[0]);
            let mut inner: HashMap<Option<String>, Vec<(GroupKey, Option<f64>)>> = HashMap::new();
            for (k, s) in engine.groups.iter_mut() {
                inner
                    .entry(k[0].clone())
                    .or_default()
                    .push((k.clone(), rank(s, sorts[1])));
            }
            let mut keys = Vec::new();
            for (o, _) in outer {
                let mut list = inner.remove(&o).unwrap_or_default();
                list.sort_by(|a, b| rank_order(sorts[1], (&a.0[1], a.1), (&b.0[1], b.1)));
                list.truncate(limits[1]);
                keys.extend(list.into_iter().map(|(k, _)| k));
            }
            keys
        }
    };
    keys.drain(..)
        .map(|key| {
            let state = engine.groups.get_mut(&key).expect("ranked keys exist");
            let mut by = serde_json::Map::new();
            for (i, g) in group_by.iter().enumerate() {
                let text = key[i].clone().unwrap_or_default();
                // A missing value is given back as the request wrote it (a number stays one).
                let value = match &missing[i] {
                    Some((t, v)) if *t == text => v.clone(),
                    _ => serde_json::Value::String(text),
                };
                by.insert(g.facet.clone(), value);
            }
            let mut computes = serde_json::Map::new();
            for (i, spec) in specs.iter().enumerate().take(outputs) {
                let value = match spec.interval {
                    None => state.totals[i].value(spec.agg),
                    Some(_) => serde_json::Value::Array(
                        state.series[i]
                            .iter_mut()
                            .map(|(t, acc)| {
                                serde_json::json!({"time": format_rfc3339_ms(*t), "value": acc.value(spec.agg)})
                            })
                            .collect(),
                    ),
                };
                computes.insert(format!("c{i}"), value);
            }
            Bucket { by, computes }
        })
        .collect()
}

/// The general path: every matching log of `[lo, hi)` is read and its values extracted.
fn scan_logs(
    conn: &Connection,
    ctx: &Ctx,
    engine: &mut Engine,
    lo: i64,
    hi: i64,
) -> Result<(), IntakeError> {
    if lo >= hi {
        return Ok(());
    }
    let specs = engine.specs;
    let mut sql = Sql::default();
    sql.push("SELECT timestamp_ms");
    for i in 0..2 {
        sql.push(", ");
        ctx.facets
            .get(i)
            .unwrap_or(&Facet::None)
            .push_expr(&mut sql);
    }
    // One column per distinct metric.
    let mut metrics: Vec<&Metric> = Vec::new();
    let mut column_of = Vec::new();
    for spec in specs {
        let idx = match metrics.iter().position(|m| **m == spec.metric) {
            Some(i) => i,
            None => {
                metrics.push(&spec.metric);
                metrics.len() - 1
            }
        };
        column_of.push(idx);
    }
    for m in &metrics {
        sql.push(", ");
        match m {
            Metric::None => {
                sql.push("NULL");
            }
            Metric::Measure(path) => {
                let p = sql.placeholder(path.clone());
                sql.push(&format!(
                    "CASE WHEN json_type(attributes, {p}) IN ('integer', 'real') THEN json_extract(attributes, {p}) END"
                ));
            }
            Metric::Distinct(f) => f.push_expr(&mut sql),
        }
    }
    sql.push(" FROM logs AS logs WHERE timestamp_ms >= ")
        .bind(lo)
        .push(" AND timestamp_ms < ")
        .bind(hi)
        .push(" AND ");
    let mode = if hi - lo <= ID_RANGE_SCAN_MS && query::has_text(ctx.node) {
        // Every row the scan can see has its id in this range (found through the time
        // index), so the full-text lookups may stay inside it.
        let range: (Option<i64>, Option<i64>) = conn
            .query_row(
                "SELECT min(id), max(id) FROM logs WHERE timestamp_ms >= ?1 AND timestamp_ms < ?2",
                [lo, hi],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(sql_error)?;
        match range {
            (Some(first), Some(last)) => TextMode::MaterializedWithin(first, last),
            _ => return Ok(()),
        }
    } else {
        TextMode::Materialized
    };
    query::to_sql(ctx.node, mode, &mut sql);
    let mut stmt = conn.prepare_cached(&sql.text).map_err(sql_error)?;
    let mut rows = stmt
        .query(rusqlite::params_from_iter(sql.params.iter()))
        .map_err(sql_error)?;
    let mut numbers: Vec<Option<f64>> = vec![None; metrics.len()];
    let mut distincts: Vec<Vec<String>> = vec![Vec::new(); metrics.len()];
    while let Some(r) = rows.next().map_err(sql_error)? {
        let ts: i64 = r.get(0)?;
        for (j, m) in metrics.iter().enumerate() {
            let v: SqlValue = r.get(3 + j)?;
            numbers[j] = None;
            distincts[j].clear();
            match m {
                Metric::None => {}
                Metric::Measure(_) => {
                    numbers[j] = match v {
                        SqlValue::Integer(i) => Some(i as f64),
                        SqlValue::Real(f) => Some(f),
                        _ => None,
                    }
                }
                Metric::Distinct(Facet::AllTags) => {
                    if let SqlValue::Text(t) = v {
                        distincts[j].extend(split_tags(&t).map(str::to_owned));
                    }
                }
                Metric::Distinct(_) => distincts[j].extend(sql_value_text(v)),
            }
        }
        let mut facet_values: [Vec<Option<String>>; 2] = [vec![None], vec![None]];
        for (i, facet) in ctx.facets.iter().enumerate() {
            let v: SqlValue = r.get(1 + i)?;
            facet_values[i] = match facet {
                Facet::AllTags => match v {
                    SqlValue::Text(t) if !split_tags(&t).any(|_| true) => vec![None],
                    SqlValue::Text(t) => split_tags(&t).map(|s| Some(s.to_owned())).collect(),
                    _ => vec![None],
                },
                _ => vec![sql_value_text(v)],
            };
        }
        for a in &facet_values[0] {
            for b in &facet_values[1] {
                let Some(key) = ctx.key([a.clone(), b.clone()]) else {
                    continue;
                };
                engine.add(&key, ts, |i| {
                    let j = column_of[i];
                    let n = numbers[j];
                    let one = numbers[j].as_slice();
                    Some(Part {
                        rows: 1,
                        n: i64::from(n.is_some()),
                        sum: n.unwrap_or(0.0),
                        min: n.unwrap_or(0.0),
                        max: n.unwrap_or(0.0),
                        vals: one,
                        distinct: &distincts[j],
                    })
                });
            }
        }
    }
    Ok(())
}

/// A request the per-minute tables can answer for whole minutes.
struct Plan {
    /// The reserved-field part of the query (it applies to those tables' columns).
    reserved: Node,
    /// Set when the logs that count are those holding a number at this path (a range filter
    /// on it, or a group_by on it): path id, and the range.
    universe: Option<(i64, Option<Node>)>,
    /// Path ids of the measures read (without a universe).
    measures: Vec<(String, i64)>,
    /// Set when the groups are the text values of this path, read from `attr_values`.
    values: Option<i64>,
}

/// Whether the per-minute tables answer this request, and how.
fn plan(conn: &Connection, ctx: &Ctx, specs: &[Spec]) -> Result<Option<Plan>, IntakeError> {
    if specs
        .iter()
        .any(|s| s.interval.is_some_and(|i| i % BUCKET_MS != 0))
    {
        return Ok(None);
    }
    let conjuncts: Vec<&Node> = match ctx.node {
        Node::And(items) => items.iter().collect(),
        n => vec![n],
    };
    let mut reserved = Vec::new();
    let mut range: Option<(String, Node)> = None;
    for c in conjuncts {
        if query::only_reserved(c) {
            reserved.push(c.clone());
            continue;
        }
        match c {
            Node::Match {
                field: query::Field::Attr(path),
                value: query::Value::Compare(..) | query::Value::Range { .. },
                ..
            } if range.is_none() => range = Some((query::json_path_of(path), c.clone())),
            _ => return Ok(None),
        }
    }
    let mut universe_path: Option<String> = range.as_ref().map(|(p, _)| p.clone());
    if let Some(values) = text_facet_plan(conn, ctx, specs, &range, &reserved)? {
        return Ok(Some(values));
    }
    for (i, f) in ctx.facets.iter().enumerate() {
        match f {
            Facet::Column("service" | "source" | "status") => {}
            Facet::Attr(p) => {
                if ctx.missing[i].is_some() || universe_path.as_ref().is_some_and(|u| u != p) {
                    return Ok(None);
                }
                // Groups of a path that also holds strings or booleans need those values.
                if !numbers_only(conn, p)? {
                    return Ok(None);
                }
                universe_path = Some(p.clone());
            }
            _ => return Ok(None),
        }
    }
    let columns_ok = |m: &Metric| {
        matches!(
            m,
            Metric::Distinct(Facet::Column("service" | "source" | "status"))
        )
    };
    let mut measures = Vec::new();
    for s in specs {
        let ok = match (&s.metric, &universe_path) {
            (Metric::None, _) => true,
            (m, _) if columns_ok(m) => true,
            (Metric::Measure(p), Some(u)) | (Metric::Distinct(Facet::Attr(p)), Some(u)) => p == u,
            (Metric::Measure(p), None) => {
                if !measures.iter().any(|(q, _)| q == p) {
                    measures.push((p.clone(), path_id_of(conn, p)?));
                }
                true
            }
            _ => false,
        };
        if !ok {
            return Ok(None);
        }
    }
    let universe = match universe_path {
        Some(p) => Some((path_id_of(conn, &p)?, range.map(|(_, n)| n))),
        None => None,
    };
    Ok(Some(Plan {
        reserved: if reserved.is_empty() {
            Node::All
        } else {
            Node::And(reserved)
        },
        universe,
        measures,
        values: None,
    }))
}

/// A count grouped by one text-only path (and maybe a reserved field) whose values are kept
/// per minute: read from `attr_values`.
fn text_facet_plan(
    conn: &Connection,
    ctx: &Ctx,
    specs: &[Spec],
    range: &Option<(String, Node)>,
    reserved: &[Node],
) -> Result<Option<Plan>, IntakeError> {
    if range.is_some() || ctx.missing.iter().any(Option::is_some) {
        return Ok(None);
    }
    let mut path = None;
    for f in ctx.facets {
        match f {
            Facet::Column("service" | "source" | "status") => {}
            Facet::Attr(p) if path.is_none() => path = Some(p.as_str()),
            Facet::Column("host") if path.is_none() => path = Some(crate::store::HOST_PATH),
            Facet::AllTags if path.is_none() => path = Some(crate::store::TAGS_PATH),
            _ => return Ok(None),
        }
    }
    let Some(path) = path else { return Ok(None) };
    let counts_only = specs.iter().all(|s| {
        matches!(
            s.metric,
            Metric::None | Metric::Distinct(Facet::Column("service" | "source" | "status"))
        )
    });
    if !counts_only {
        return Ok(None);
    }
    let mut stmt = conn.prepare_cached(
        "SELECT id FROM attr_paths WHERE json_path = ?1 AND values_capped = 0
         AND n_number + n_boolean + n_other = 0",
    )?;
    let mut rows = stmt.query([path])?;
    let Some(r) = rows.next()? else {
        return Ok(None);
    };
    Ok(Some(Plan {
        reserved: if reserved.is_empty() {
            Node::All
        } else {
            Node::And(reserved.to_vec())
        },
        universe: None,
        measures: Vec::new(),
        values: Some(r.get(0)?),
    }))
}

fn path_id_of(conn: &Connection, json_path: &str) -> Result<i64, IntakeError> {
    let mut stmt = conn.prepare_cached("SELECT id FROM attr_paths WHERE json_path = ?1")?;
    let mut rows = stmt.query([json_path])?;
    // An unknown path holds no values: an id no row has.
    Ok(match rows.next()? {
        Some(r) => r.get(0)?,
        None => -1,
    })
}

fn numbers_only(conn: &Connection, json_path: &str) -> Result<bool, IntakeError> {
    let mut stmt = conn.prepare_cached(
        "SELECT n_string + n_boolean + n_other FROM attr_paths WHERE json_path = ?1",
    )?;
    let mut rows = stmt.query([json_path])?;
    Ok(match rows.next()? {
        Some(r) => r.get::<_, i64>(0)? == 0,
        None => true,
    })
}

/// The numbers of one group gathered before they reach the engine.
#[derive(Debug, Default)]
struct Local {
    n: i64,
    sum: f64,
    min: f64,
    max: f64,
    vals: Vec<f64>,
    distinct: HashSet<u64>,
}

impl Local {
    fn add(&mut self, v: f64, keep_vals: bool, keep_distinct: bool) {
        if self.n == 0 || v < self.min {
            self.min = v;
        }
        if self.n == 0 || v > self.max {
            self.max = v;
        }
        self.n += 1;
        self.sum += v;
        if keep_vals {
            self.vals.push(v);
        }
        if keep_distinct {
            self.distinct.insert(v.to_bits());
        }
    }

    fn merge(&mut self, other: Local) {
        if other.n == 0 {
            return;
        }
        if self.n == 0 || other.min < self.min {
            self.min = other.min;
        }
        if self.n == 0 || other.max > self.max {
            self.max = other.max;
        }
        self.n += other.n;
        self.sum += other.sum;
        self.vals.extend(other.vals);
        self.distinct.extend(other.distinct);
    }
}

/// The groups of one row's values: a list while they are few (a facet's values usually
/// are: status codes, methods), a hash map past that.
#[derive(Default)]
struct SmallMap {
    list: Vec<(u64, Local)>,
    map: HashMap<u64, Local>,
    last: usize,
}

impl SmallMap {
    const LIST_MAX: usize = 32;

    fn clear(&mut self) {
        self.list.clear();
        self.map.clear();
        self.last = 0;
    }

    fn slot(&mut self, k: u64) -> &mut Local {
        if !self.map.is_empty() {
            return self.map.entry(k).or_default();
        }
        if self.list.get(self.last).is_some_and(|(b, _)| *b == k) {
            return &mut self.list[self.last].1;
        }
        if let Some(i) = self.list.iter().position(|(b, _)| *b == k) {
            self.last = i;
            return &mut self.list[i].1;
        }
        if self.list.len() < Self::LIST_MAX {
            self.list.push((k, Local::default()));
            self.last = self.list.len() - 1;
            return &mut self.list[self.last].1;
        }
        self.map.extend(self.list.drain(..));
        self.map.entry(k).or_default()
    }

    fn drain(&mut self) -> impl Iterator<Item = (u64, Local)> + '_ {
        self.list.drain(..).chain(self.map.drain())
    }
}

/// A compare or range leaf as two optional bounds, tested without matching the node per value.
struct Bounds {
    low: Option<(f64, bool)>,
    high: Option<(f64, bool)>,
}

impl Bounds {
    fn of(node: &Node) -> Bounds {
        let (low, high) = match node {
            Node::Match {
                value: query::Value::Compare(op, n),
                ..
            } => match op {
                query::CmpOp::Gt => (Some((*n, false)), None),
                query::CmpOp::Ge => (Some((*n, true)), None),
                query::CmpOp::Lt => (None, Some((*n, false))),
                query::CmpOp::Le => (None, Some((*n, true))),
            },
            Node::Match {
                value: query::Value::Range { low, high },
                ..
            } => (*low, *high),
            _ => (None, None),
        };
        Bounds { low, high }
    }

    fn holds(&self, v: f64) -> bool {
        self.low
            .is_none_or(|(n, inc)| if inc { v >= n } else { v > n })
            && self
                .high
                .is_none_or(|(n, inc)| if inc { v <= n } else { v < n })
    }
}

/// The group text of a number, as `json_extract` gives it back (`500`, `1.5`).
fn number_text(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        (v as i64).to_string()
    } else {
        v.to_string()
    }
}

/// Whole minutes `[lo, hi)` from `rollup` and `attr_measure`.
fn run_plan(
    conn: &Connection,
    ctx: &Ctx,
    plan: &Plan,
    engine: &mut Engine,
    lo: i64,
    hi: i64,
) -> Result<(), IntakeError> {
    let specs = engine.specs;
    let column = |f: &Facet| match f {
        Facet::Column("service") => 0,
        Facet::Column("source") => 1,
        Facet::Column("status") => 2,
        _ => 3,
    };
    let select = |sql: &mut Sql, table: &str, extra: &str, path: Option<i64>| {
        sql.push("SELECT service, source, status, bucket_ms")
            .push(extra)
            .push(" FROM ")
            .push(table)
            .push(" WHERE ");
        if let Some(p) = path {
            sql.push("path_id = ").bind(p).push(" AND ");
        }
        sql.push("bucket_ms >= ")
            .bind(lo)
            .push(" AND bucket_ms < ")
            .bind(hi)
            .push(" AND ");
        query::to_sql(&plan.reserved, TextMode::Materialized, sql);
    };
    let columns_key = |cols: &[Option<String>; 3]| {
        let mut vals: [Option<String>; 2] = [None, None];
        for (i, f) in ctx.facets.iter().enumerate() {
            vals[i] = cols.get(column(f)).cloned().flatten();
        }
        ctx.key(vals)
    };
    let read_cols = |r: &rusqlite::Row| -> rusqlite::Result<[Option<String>; 3]> {
        Ok([
            sql_value_text(r.get(0)?),
            sql_value_text(r.get(1)?),
            sql_value_text(r.get(2)?),
        ])
    };
    let distinct_of = |i: usize, cols: &[Option<String>; 3]| -> Vec<String> {
        match &specs[i].metric {
            Metric::Distinct(f) if column(f) < 3 => cols[column(f)].iter().cloned().collect(),
            _ => Vec::new(),
        }
    };

    if let Some((path, range)) = &plan.universe {
        let group_by_value = ctx.facets.iter().any(|f| matches!(f, Facet::Attr(_)));
        let keep_vals = specs.iter().any(|s| matches!(s.agg, Agg::Pct(_)));
        let keep_distinct = specs
            .iter()
            .any(|s| matches!(s.metric, Metric::Distinct(Facet::Attr(_))));
        // Without a timeseries compute, the minute of a row does not matter: rows of one
        // group are merged before they reach the engine.
        let by_minute = specs.iter().any(|s| s.interval.is_some());
        let bounds = range.as_ref().map(Bounds::of);
        let mut sql = Sql::default();
        select(&mut sql, "attr_measure", ", vals", Some(*path));
        let mut stmt = conn.prepare_cached(&sql.text).map_err(sql_error)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(sql.params.iter()))?;
        let mut local = SmallMap::default();
        // A facet's top values only count: the loop over values does nothing else.
        let count_only = specs.iter().all(|s| s.agg == Agg::Count);
        // Cardinality of a column needs the rows' columns kept apart.
        let distinct_cols = specs
            .iter()
            .any(|s| matches!(&s.metric, Metric::Distinct(f) if column(f) < 3));
        type PendingKey = (GroupKey, i64, Option<[Option<String>; 3]>);
        let mut pending: HashMap<PendingKey, Local> = HashMap::new();
        while let Some(r) = rows.next()? {
            let cols = read_cols(r)?;
            let ts: i64 = r.get(3)?;
            let blob = r.get_ref(4)?.as_blob().unwrap_or(&[]);
            local.clear();
            for v in crate::store::values_of(blob) {
                if bounds.as_ref().is_none_or(|b| b.holds(v)) {
                    let k = if group_by_value { v.to_bits() } else { 0 };
                    let l = local.slot(k);
                    if count_only {
                        l.n += 1;
                    } else {
                        l.add(v, keep_vals, keep_distinct);
                    }
                }
            }
            for (bits, l) in local.drain() {
                let text = group_by_value.then(|| number_text(f64::from_bits(bits)));
                let mut fv: [Option<String>; 2] = [None, None];
                for (i, f) in ctx.facets.iter().enumerate() {
                    fv[i] = match f {
                        Facet::Attr(_) => text.clone(),
                        f => cols[column(f)].clone(),
                    };
                }
                let Some(key) = ctx.key(fv) else { continue };
                let cols_key = distinct_cols.then(|| cols.clone());
                pending
                    .entry((key, if by_minute { ts } else { 0 }, cols_key))
                    .or_default()
                    .merge(l);
            }
        }
        let no_cols: [Option<String>; 3] = [None, None, None];
        for ((key, ts, cols), l) in pending {
            let cols = cols.as_ref().unwrap_or(&no_cols);
            let distinct_values: Vec<Vec<String>> = (0..specs.len())
                .map(|i| match &specs[i].metric {
                    Metric::Distinct(Facet::Attr(_)) => l
                        .distinct
                        .iter()
                        .map(|b| number_text(f64::from_bits(*b)))
                        .collect(),
                    _ => distinct_of(i, cols),
                })
                .collect();
            engine.add(&key, ts, |i| {
                Some(Part {
                    rows: l.n,
                    n: l.n,
                    sum: l.sum,
                    min: l.min,
                    max: l.max,
                    vals: &l.vals,
                    distinct: &distinct_values[i],
                })
            });
        }
        return Ok(());
    }

    if let Some(path) = plan.values {
        let mut sql = Sql::default();
        select(&mut sql, "attr_values", ", value, n", Some(path));
        let mut stmt = conn.prepare_cached(&sql.text).map_err(sql_error)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(sql.params.iter()))?;
        while let Some(r) = rows.next()? {
            let cols = read_cols(r)?;
            let ts: i64 = r.get(3)?;
            let value: String = r.get(4)?;
            let count: i64 = r.get(5)?;
            let mut fv: [Option<String>; 2] = [None, None];
            for (i, f) in ctx.facets.iter().enumerate() {
                fv[i] = match f {
                    Facet::Attr(_) | Facet::Column("host") | Facet::AllTags => Some(value.clone()),
                    f => cols[column(f)].clone(),
                };
            }
            let Some(key) = ctx.key(fv) else { continue };
            let distinct: Vec<Vec<String>> =
                (0..specs.len()).map(|i| distinct_of(i, &cols)).collect();
            engine.add(&key, ts, |i| {
                Some(Part {
                    rows: count,
                    distinct: &distinct[i],
                    ..Part::default()
                })
            });
        }
        return Ok(());
    }

    // Counts (and the groups and time buckets that exist) from the rollup.
    let mut sql = Sql::default();
    select(&mut sql, "rollup", ", count", None);
    let mut stmt = conn.prepare_cached(&sql.text).map_err(sql_error)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(sql.params.iter()))?;
    while let Some(r) = rows.next()? {
        let cols = read_cols(r)?;
        let ts: i64 = r.get(3)?;
        let count: i64 = r.get(4)?;
        let Some(key) = columns_key(&cols) else {
            continue;
        };
        let distinct: Vec<Vec<String>> = (0..specs.len()).map(|i| distinct_of(i, &cols)).collect();
        engine.add(&key, ts, |i| match specs[i].metric {
            Metric::Measure(_) => None,
            _ => Some(Part {
                rows: count,
                distinct: &distinct[i],
                ..Part::default()
            }),
        });
    }
    // Then each measure from its own rows.
    for (path, id) in &plan.measures {
        let wants_vals = specs
            .iter()
            .any(|s| matches!(s.agg, Agg::Pct(_)) && s.metric == Metric::Measure(path.clone()));
        let mut sql = Sql::default();
        select(
            &mut sql,
            "attr_measure",
            if wants_vals {
                ", n, sum, min, max, vals"
            } else {
                ", n, sum, min, max, NULL"
            },
            Some(*id),
        );
        let mut stmt = conn.prepare_cached(&sql.text).map_err(sql_error)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(sql.params.iter()))?;
        let mut vals = Vec::new();
        while let Some(r) = rows.next()? {
            let cols = read_cols(r)?;
            let ts: i64 = r.get(3)?;
            let Some(key) = columns_key(&cols) else {
                continue;
            };
            let (n, sum, min, max): (i64, f64, f64, f64) =
                (r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?);
            vals.clear();
            if wants_vals {
                vals.extend(crate::store::values_of(
                    r.get_ref(8)?.as_blob().unwrap_or(&[]),
                ));
            }
            engine.add(&key, ts, |i| match &specs[i].metric {
                Metric::Measure(p) if p == path => Some(Part {
                    n,
                    sum,
                    min,
                    max,
                    vals: &vals,
                    ..Part::default()
                }),
                _ => None,
            });
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct AttributesParams {
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct AttributePath {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub count: i64,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct AttributesResponse {
    pub data: Vec<AttributePath>,
}

pub const MAX_ATTRIBUTES_LIMIT: u32 = 1000;

/// `GET /api/v2/logs/attributes`: the attribute paths of stored logs, most frequent first,
/// from the path table the writer keeps (never a value).
pub fn attributes(
    conn: &Connection,
    params: &AttributesParams,
) -> Result<AttributesResponse, IntakeError> {
    let limit = params.limit.unwrap_or(100);
    if !(1..=MAX_ATTRIBUTES_LIMIT).contains(&limit) {
        return Err(IntakeError::BadRequest(format!(
            "limit {limit} is out of range: 1 to {MAX_ATTRIBUTES_LIMIT}"
        )));
    }
    let prefix = params.prefix.as_deref().unwrap_or("");
    let prefix = prefix.strip_prefix('@').unwrap_or(prefix);
    let mut stmt = conn.prepare_cached(
        "SELECT dotted, n_number, n_string, n_boolean, n_other,
                n_number + n_string + n_boolean + n_other AS total
         FROM attr_paths
         WHERE total > 0 AND substr(dotted, 1, length(?1)) = ?1
         ORDER BY total DESC, dotted LIMIT ?2",
    )?;
    let rows = stmt.query_map(rusqlite::params![prefix, i64::from(limit)], |r| {
        let counts: [i64; 4] = [r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?];
        let kinds: Vec<usize> = (0..4).filter(|i| counts[*i] > 0).collect();
        let kind = match kinds.as_slice() {
            [0] => "number",
            [1] => "string",
            [2] => "boolean",
            _ => "mixed",
        };
        Ok(AttributePath {
            path: r.get(0)?,
            kind: kind.into(),
            count: r.get(5)?,
        })
    })?;
    Ok(AttributesResponse {
        data: rows.collect::<rusqlite::Result<_>>()?,
    })
}
