//! Export of the logs a filter matches as CSV or NDJSON (`POST /api/v2/logs/events/export`),
//! streamed: a blocking task reads the rows and hands the body over in chunks of about
//! [`CHUNK_BYTES`] through a small channel, so at most a few chunks are ever in memory and a
//! slow client holds back the reader rather than filling the heap.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Bytes, HttpBody};
use hyper::body::Frame;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::api::{row_to_event, sql_error, Filter, LogEvent, SELECT_COLUMNS};
use crate::query::{self, Sql, TextMode};
use crate::IntakeError;

pub const MAX_LOGS: u32 = 100_000;
pub const MAX_COLUMNS: usize = 100;
pub const MAX_COLUMN_CHARS: usize = 256;
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks queued between the reader and the connection.
pub const QUEUED_CHUNKS: usize = 4;
pub const CSV_HEADER: [&str; 7] = [
    "timestamp",
    "status",
    "host",
    "service",
    "source",
    "message",
    "tags",
];

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ExportRequest {
    #[serde(default)]
    pub filter: Filter,
    /// `csv` (the default) or `ndjson`.
    #[serde(default)]
    pub format: Option<String>,
    /// Extra CSV columns after the fixed ones: `@attribute.path`, a reserved field or a tag key.
    #[serde(default)]
    pub columns: Vec<String>,
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub sort: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Ndjson,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Ndjson => "application/x-ndjson",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
        }
    }
}

/// A checked request: the SQL to run and how to write each row.
pub struct Plan {
    pub format: Format,
    columns: Vec<String>,
    sql: Sql,
}

pub fn plan(req: &ExportRequest, now_ms: i64) -> Result<Plan, IntakeError> {
    let (node, from, to) = req.filter.resolve(now_ms)?;
    let format = match req.format.as_deref() {
        None | Some("csv") => Format::Csv,
        Some("ndjson") => Format::Ndjson,
        Some(other) => {
            return Err(IntakeError::BadRequest(format!(
                "format {other:?}: use \"csv\" or \"ndjson\""
            )))
        }
    };
    let limit = match req.limit {
        None => MAX_LOGS,
        Some(0) => {
            return Err(IntakeError::BadRequest(format!(
                "limit must be between 1 and {MAX_LOGS}"
            )))
        }
        Some(n) => n.min(MAX_LOGS),
    };
    let descending = match req.sort.as_deref() {
        None | Some("-timestamp") => true,
        Some("timestamp") => false,
        Some(other) => {
            return Err(IntakeError::BadRequest(format!(
                "sort {other:?}: use \"timestamp\" or \"-timestamp\""
            )))
        }
    };
    if req.columns.len() > MAX_COLUMNS {
        return Err(IntakeError::BadRequest(format!(
            "columns: at most {MAX_COLUMNS}, not {}",
            req.columns.len()
        )));
    }
    for c in &req.columns {
        let n = c.chars().count();
        if n == 0 || n > MAX_COLUMN_CHARS || c == "@" {
            return Err(IntakeError::BadRequest(format!(
                "columns: each must be a field name of 1 to {MAX_COLUMN_CHARS} characters, not {c:?}"
            )));
        }
    }
    let mut sql = Sql::default();
    sql.push(SELECT_COLUMNS)
        .push(" WHERE timestamp_ms >= ")
        .bind(from)
        .push(" AND timestamp_ms <= ")
        .bind(to)
        .push(" AND ");
    // Up to 100,000 rows: the index's matches are collected once, not probed per row.
    query::to_sql(&node, TextMode::Materialized, &mut sql);
    sql.push(if descending {
        " ORDER BY timestamp_ms DESC, id DESC LIMIT "
    } else {
        " ORDER BY timestamp_ms ASC, id ASC LIMIT "
    })
    .bind(i64::from(limit));
    Ok(Plan {
        format,
        columns: req.columns.clone(),
        sql,
    })
}

pub type Chunk = Result<Bytes, std::io::Error>;

/// Runs `plan` on `conn` (a blocking call): tells `ready` whether the query started, then
/// sends the body in chunks until done or the receiver is gone (the client went away).
/// Holds one statement open for the whole export; its read snapshot is bounded by the
/// 100,000-row cap and by the client reading.
pub fn run(
    conn: &Connection,
    plan: &Plan,
    ready: oneshot::Sender<Result<(), IntakeError>>,
    tx: mpsc::Sender<Chunk>,
) -> Result<(), IntakeError> {
    let mut stmt = match conn.prepare(&plan.sql.text) {
        Ok(s) => s,
        Err(e) => {
            let _ = ready.send(Err(sql_error(e)));
            return Ok(());
        }
    };
    let mut rows = match stmt.query(rusqlite::params_from_iter(plan.sql.params.iter())) {
        Ok(r) => r,
        Err(e) => {
            let _ = ready.send(Err(sql_error(e)));
            return Ok(());
        }
    };
    if ready.send(Ok(())).is_err() {
        return Ok(());
    }
    let mut buf = String::with_capacity(CHUNK_BYTES + 4096);
    if plan.format == Format::Csv {
        let header = CSV_HEADER
            .iter()
            .copied()
            .chain(plan.columns.iter().map(String::as_str));
        write_record(&mut buf, header);
    }
    loop {
        let row = match rows.next() {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(error = %e, "log export stopped by a store error");
                let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                return Ok(());
            }
        };
        let (_, _, event) = match row_to_event(row) {
            Ok(e) => e,
            Err(e) => {
                let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                return Ok(());
            }
        };
        match plan.format {
            Format::Ndjson => {
                buf.push_str(&serde_json::to_string(&event).expect("events serialise"));
                buf.push('\n');
            }
            Format::Csv => write_csv_row(&mut buf, &event, &plan.columns),
        }
        if buf.len() >= CHUNK_BYTES {
            let chunk = Bytes::from(std::mem::replace(
                &mut buf,
                String::with_capacity(CHUNK_BYTES + 4096),
            ));
            if tx.blocking_send(Ok(chunk)).is_err() {
                return Ok(());
            }
        }
    }
    if !buf.is_empty() {
        let _ = tx.blocking_send(Ok(Bytes::from(buf)));
    }
    Ok(())
}

fn write_csv_row(buf: &mut String, e: &LogEvent, columns: &[String]) {
    let a = &e.attributes;
    let tags = a.tags.join(",");
    let fixed = [
        a.timestamp.as_str(),
        a.status.as_str(),
        a.host.as_str(),
        a.service.as_str(),
        a.source(),
        a.message.as_str(),
        tags.as_str(),
    ];
    let extra: Vec<String> = columns.iter().map(|c| column_value(e, c)).collect();
    write_record(
        buf,
        fixed
            .iter()
            .copied()
            .chain(extra.iter().map(String::as_str)),
    );
}

/// The text of column `name` for one log: `@a.b` is an attribute (nested objects, or a key
/// with dots in it), a reserved name a field, anything else a tag key (its values, joined).
fn column_value(e: &LogEvent, name: &str) -> String {
    let a = &e.attributes;
    if let Some(path) = name.strip_prefix('@') {
        return lookup(&a.attributes, path).map_or_else(String::new, |v| match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        });
    }
    match name {
        "id" => e.id.clone(),
        "timestamp" => a.timestamp.clone(),
        "status" => a.status.clone(),
        "host" => a.host.clone(),
        "service" => a.service.clone(),
        "source" => a.source().to_owned(),
        "message" => a.message.clone(),
        "tags" => a.tags.join(","),
        key => a
            .tags
            .iter()
            .filter_map(|t| t.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
            .collect::<Vec<_>>()
            .join(","),
    }
}

fn lookup<'a>(
    map: &'a serde_json::Map<String, serde_json::Value>,
    path: &str,
) -> Option<&'a serde_json::Value> {
    if let Some(v) = map.get(path) {
        return Some(v);
    }
    // Try each split point: `a.b.c` may be `a` → `b.c` or `a.b` → `c`.
    for (i, _) in path.match_indices('.') {
        if let Some(serde_json::Value::Object(inner)) = map.get(&path[..i]) {
            if let Some(v) = lookup(inner, &path[i + 1..]) {
                return Some(v);
            }
        }
    }
    None
}

/// Writes one CSV record (RFC 4180: CRLF line ends, fields with `,` `"` CR or LF quoted, quotes
/// doubled). A field starting with `=` `+` `-` `@` TAB or CR gets a leading `'` so that
/// spreadsheets show it as text instead of running it as a formula.
pub fn write_record<'a>(buf: &mut String, fields: impl Iterator<Item = &'a str>) {
    for (i, f) in fields.enumerate() {
        if i > 0 {
            buf.push(',');
        }
        let guard = f.starts_with(['=', '+', '-', '@', '\t', '\r']);
        let quote = f.contains([',', '"', '\r', '\n']);
        if quote {
            buf.push('"');
        }
        if guard {
            buf.push('\'');
        }
        if quote {
            for c in f.chars() {
                if c == '"' {
                    buf.push('"');
                }
                buf.push(c);
            }
            buf.push('"');
        } else {
            buf.push_str(f);
        }
    }
    buf.push_str("\r\n");
}

/// The response body: chunks as the reader sends them; an error ends the connection, so a
/// cut export never looks complete.
pub struct ChannelBody(pub mpsc::Receiver<Chunk>);

impl HttpBody for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|r| r.map(Frame::data)))
    }
}

/// `cairn-logs-20261202T204500Z.csv`.
pub fn file_name(format: Format, now_ms: i64) -> String {
    let iso = crate::timefmt::format_rfc3339_ms(now_ms);
    let stamp: String = iso
        .chars()
        .take(19)
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    format!("cairn-logs-{stamp}Z.{}", format.extension())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_never_formulas() {
        let mut b = String::new();
        write_record(
            &mut b,
            [
                "plain",
                "a,b",
                "say \"hi\"",
                "two\nlines",
                "=1+2",
                "-3",
                "@x",
                "\tt",
                "+1,2",
            ]
            .into_iter(),
        );
        assert_eq!(
            b,
            "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",'=1+2,'-3,'@x,'\tt,\"'+1,2\"\r\n"
        );
    }

    #[test]
    fn file_names_carry_the_utc_time() {
        assert_eq!(
            file_name(Format::Ndjson, 1_764_708_300_123),
            "cairn-logs-20251202T204500Z.ndjson"
        );
    }
}
