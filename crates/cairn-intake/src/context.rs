//! View in context: the logs just before and after one log from the same host and service,
//! whatever the query was (`GET /api/v2/logs/events/{id}/context`).

use std::collections::HashMap;

use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use crate::api::{row_to_event, LogEvent, SELECT_COLUMNS};
use crate::IntakeError;

pub const DEFAULT_AROUND: u32 = 25;
pub const MAX_AROUND: u32 = 500;

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ContextData {
    /// Oldest first.
    pub before: Vec<LogEvent>,
    pub log: LogEvent,
    /// Oldest first.
    pub after: Vec<LogEvent>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ContextResponse {
    pub data: ContextData,
}

fn count_param(params: &HashMap<String, String>, name: &str) -> Result<u32, IntakeError> {
    match params.get(name).map(|v| v.trim()) {
        None | Some("") => Ok(DEFAULT_AROUND),
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| *n <= MAX_AROUND)
            .ok_or_else(|| {
                IntakeError::BadRequest(format!(
                    "{name} must be a whole number from 0 to {MAX_AROUND}, not {v:?}"
                ))
            }),
    }
}

pub fn context(
    conn: &Connection,
    id: &str,
    params: &HashMap<String, String>,
) -> Result<ContextResponse, IntakeError> {
    let before_n = count_param(params, "before")?;
    let after_n = count_param(params, "after")?;
    let not_found = || IntakeError::NotFound(format!("no log with id {id:?}"));
    let id: i64 = id.trim().parse().map_err(|_| not_found())?;
    let mut one = conn.prepare_cached(&format!("{SELECT_COLUMNS} WHERE id = ?1"))?;
    let (id, ts, log) = match one.query_row([id], row_to_event) {
        Ok(r) => r,
        Err(rusqlite::Error::QueryReturnedNoRows) => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    let (host, service) = (log.attributes.host.clone(), log.attributes.service.clone());
    // `logs_by_service (service, timestamp_ms)` leads both scans; host is checked per row.
    let mut earlier = conn.prepare_cached(&format!(
        "{SELECT_COLUMNS} WHERE service = ?1 AND host = ?2 AND (timestamp_ms, id) < (?3, ?4)
         ORDER BY timestamp_ms DESC, id DESC LIMIT ?5"
    ))?;
    let mut before = earlier
        .query_map(
            rusqlite::params![service, host, ts, id, i64::from(before_n)],
            row_to_event,
        )?
        .map(|r| r.map(|(_, _, e)| e))
        .collect::<rusqlite::Result<Vec<_>>>()?;
    before.reverse();
    let mut later = conn.prepare_cached(&format!(
        "{SELECT_COLUMNS} WHERE service = ?1 AND host = ?2 AND (timestamp_ms, id) > (?3, ?4)
         ORDER BY timestamp_ms ASC, id ASC LIMIT ?5"
    ))?;
    let after = later
        .query_map(
            rusqlite::params![service, host, ts, id, i64::from(after_n)],
            row_to_event,
        )?
        .map(|r| r.map(|(_, _, e)| e))
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(ContextResponse {
        data: ContextData { before, log, after },
    })
}
