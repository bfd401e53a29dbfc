//! Export of the logs a filter matches as CSV or NDJSON (`POST /api/v2/logs/events/export`),
//! streamed in pages: each page is one search (at most [`PAGE_LOGS`] logs, the search API's own
//! path with its cursor) on a read connection taken for that page only, written out as text
//! and handed to the response body through a small channel. At most a few pages are ever in
//! memory, a slow client holds back the reader rather than filling the heap, and no read
//! snapshot stays open while the client reads (a long one would keep the checkpointer, and so
//! the writer, waiting).

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Bytes, HttpBody};
use hyper::body::Frame;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::api::{self, Filter, LogEvent, Page, SearchRequest};
use crate::IntakeError;

pub const MAX_LOGS: u32 = 100_000;
pub const MAX_COLUMNS: usize = 100;
pub const MAX_COLUMN_CHARS: usize = 256;
/// Logs per page: the most one search answers.
pub const PAGE_LOGS: u32 = api::MAX_LIMIT;
/// Pages queued between the reader and the connection.
pub const QUEUED_PAGES: usize = 2;
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

/// A checked request.
#[derive(Debug, Clone)]
pub struct Plan {
    pub format: Format,
    pub limit: u32,
    columns: Vec<String>,
    filter: Filter,
    sort: String,
    /// Relative bounds (`now-1h`) resolve against this for every page alike.
    now_ms: i64,
}

pub fn plan(req: &ExportRequest, now_ms: i64) -> Result<Plan, IntakeError> {
    // Resolved here only to refuse a bad filter before anything is sent.
    req.filter.resolve(now_ms)?;
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
    let sort = match req.sort.as_deref() {
        None | Some("-timestamp") => "-timestamp",
        Some("timestamp") => "timestamp",
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
    Ok(Plan {
        format,
        limit,
        columns: req.columns.clone(),
        filter: req.filter.clone(),
        sort: sort.into(),
        now_ms,
    })
}

/// One page of the export as text.
pub struct PageText {
    pub text: String,
    pub logs: u32,
    /// Where the next page starts; `None` after the last one.
    pub after: Option<String>,
}

/// Reads up to `want` logs from `cursor` on (a blocking call) and writes them; the first page
/// (`cursor` `None`) starts with the CSV header.
pub fn page(
    conn: &Connection,
    plan: &Plan,
    cursor: Option<String>,
    want: u32,
) -> Result<PageText, IntakeError> {
    let first = cursor.is_none();
    let req = SearchRequest {
        filter: plan.filter.clone(),
        sort: Some(plan.sort.clone()),
        page: Page {
            limit: Some(want.clamp(1, PAGE_LOGS)),
            cursor,
        },
    };
    let found = api::search(conn, &req, plan.now_ms)?;
    let mut text = String::with_capacity(found.data.len() * 320 + 128);
    if first && plan.format == Format::Csv {
        let header = CSV_HEADER
            .iter()
            .copied()
            .chain(plan.columns.iter().map(String::as_str));
        write_record(&mut text, header);
    }
    for event in &found.data {
        match plan.format {
            Format::Ndjson => {
                text.push_str(&serde_json::to_string(event).expect("events serialise"));
                text.push('\n');
            }
            Format::Csv => write_csv_row(&mut text, event, &plan.columns),
        }
    }
    Ok(PageText {
        text,
        logs: found.data.len() as u32,
        after: found.meta.page.after,
    })
}

pub type Chunk = Result<Bytes, std::io::Error>;

/// Sends `first` and the pages after it to `tx` until `plan.limit` logs, the last page, or the
/// client going away (the receiver dropped). A store error ends the body with an error, so the
/// connection is cut and a short export never looks complete.
pub async fn stream_rest(
    store: std::sync::Arc<crate::store::Store>,
    plan: Plan,
    first: PageText,
    tx: mpsc::Sender<Chunk>,
) {
    let mut sent = first.logs;
    let mut after = first.after;
    if tx.send(Ok(Bytes::from(first.text))).await.is_err() {
        return;
    }
    while let Some(cursor) = after.take() {
        if sent >= plan.limit {
            break;
        }
        let want = (plan.limit - sent).min(PAGE_LOGS);
        let p = plan.clone();
        let next = store.read(move |c| page(c, &p, Some(cursor), want)).await;
        match next {
            Ok(pt) => {
                sent += pt.logs;
                after = pt.after;
                if pt.text.is_empty() {
                    continue;
                }
                if tx.send(Ok(Bytes::from(pt.text))).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "log export stopped by a store error");
                let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                return;
            }
        }
    }
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
