//! Monitor states per group, their threshold semantics, and their tables in the store
//! (`monitor_state`, `monitor_history`), so states survive a restart.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::config::Thresholds;
use super::query::Op;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum State {
    #[serde(rename = "OK")]
    Ok,
    #[serde(rename = "Warn")]
    Warn,
    #[serde(rename = "Alert")]
    Alert,
    #[serde(rename = "No Data")]
    NoData,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Ok => "OK",
            State::Warn => "Warn",
            State::Alert => "Alert",
            State::NoData => "No Data",
        }
    }

    pub fn parse(s: &str) -> State {
        match s {
            "Warn" => State::Warn,
            "Alert" => State::Alert,
            "No Data" => State::NoData,
            _ => State::Ok,
        }
    }

    /// For a monitor's overall state, the worst of its groups: Alert, then No Data, then Warn.
    pub fn severity(self) -> u8 {
        match self {
            State::Ok => 0,
            State::Warn => 1,
            State::NoData => 2,
            State::Alert => 3,
        }
    }

    /// Whether a group in this state is re-notified (Datadog's default renotify statuses).
    pub fn renotifies(self) -> bool {
        matches!(self, State::Alert | State::NoData)
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state a value puts a group in, given the state it is in: a group alerts when the value
/// crosses the critical threshold and, when a critical recovery threshold is set, stays in
/// Alert until the value no longer crosses that one; warning likewise. "Crosses" is the
/// query's comparison, so for `<` everything is mirrored.
pub fn next_state(prev: State, value: f64, critical: f64, t: &Thresholds, op: Op) -> State {
    if op.holds(value, critical) {
        return State::Alert;
    }
    if prev == State::Alert {
        if let Some(r) = t.critical_recovery {
            if op.holds(value, r) {
                return State::Alert;
            }
        }
    }
    if let Some(w) = t.warning {
        if op.holds(value, w) {
            return State::Warn;
        }
        // From Alert or Warn, the warning recovery threshold keeps it in Warn.
        if matches!(prev, State::Warn | State::Alert) {
            if let Some(r) = t.warning_recovery {
                if op.holds(value, r) {
                    return State::Warn;
                }
            }
        }
    }
    State::Ok
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupState {
    pub state: State,
    pub value: Option<f64>,
    pub since_ms: i64,
    pub last_notified_ms: Option<i64>,
    pub last_eval_ms: i64,
    pub last_triggered_ms: Option<i64>,
    /// The last evaluation that found logs for the group.
    pub last_data_ms: Option<i64>,
    /// Re-notifications sent since the group entered its state (for `renotify_occurrences`).
    pub renotified: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct HistoryRow {
    pub monitor_id: i64,
    pub group: String,
    pub from: State,
    pub to: State,
    pub value: Option<f64>,
    pub ts_ms: i64,
    pub date: String,
}

/// Transitions older than this are deleted.
pub const HISTORY_KEEP_MS: i64 = 30 * 86_400_000;

pub fn init_schema(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS monitor_state (
             monitor_id INTEGER NOT NULL,
             grp TEXT NOT NULL,
             state TEXT NOT NULL,
             value REAL,
             since_ms INTEGER NOT NULL,
             last_notified_ms INTEGER,
             last_eval_ms INTEGER NOT NULL,
             last_triggered_ms INTEGER,
             last_data_ms INTEGER,
             renotified INTEGER NOT NULL DEFAULT 0,
             PRIMARY KEY (monitor_id, grp)
         ) WITHOUT ROWID;
         CREATE TABLE IF NOT EXISTS monitor_history (
             id INTEGER PRIMARY KEY,
             monitor_id INTEGER NOT NULL,
             grp TEXT NOT NULL,
             from_state TEXT NOT NULL,
             to_state TEXT NOT NULL,
             value REAL,
             ts_ms INTEGER NOT NULL
         );
         CREATE INDEX IF NOT EXISTS monitor_history_by_monitor ON monitor_history (monitor_id, ts_ms);
         CREATE INDEX IF NOT EXISTS monitor_history_by_time ON monitor_history (ts_ms);",
    )?;
    Ok(())
}

pub fn load_all(conn: &Connection) -> rusqlite::Result<HashMap<i64, HashMap<String, GroupState>>> {
    let mut stmt = conn.prepare_cached(
        "SELECT monitor_id, grp, state, value, since_ms, last_notified_ms, last_eval_ms, last_triggered_ms, last_data_ms,
                renotified
         FROM monitor_state",
    )?;
    let mut out: HashMap<i64, HashMap<String, GroupState>> = HashMap::new();
    let rows = stmt.query_map([], |r| {
        let state: String = r.get(2)?;
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            GroupState {
                state: State::parse(&state),
                value: r.get(3)?,
                since_ms: r.get(4)?,
                last_notified_ms: r.get(5)?,
                last_eval_ms: r.get(6)?,
                last_triggered_ms: r.get(7)?,
                last_data_ms: r.get(8)?,
                renotified: r.get(9)?,
            },
        ))
    })?;
    for row in rows {
        let (id, g, s) = row?;
        out.entry(id).or_default().insert(g, s);
    }
    Ok(out)
}

pub fn upsert(conn: &Connection, id: i64, group: &str, s: &GroupState) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO monitor_state (monitor_id, grp, state, value, since_ms, last_notified_ms, last_eval_ms, last_triggered_ms, last_data_ms, renotified)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (monitor_id, grp) DO UPDATE SET state = excluded.state, value = excluded.value,
             since_ms = excluded.since_ms, last_notified_ms = excluded.last_notified_ms,
             last_eval_ms = excluded.last_eval_ms, last_triggered_ms = excluded.last_triggered_ms,
             last_data_ms = excluded.last_data_ms, renotified = excluded.renotified",
    )?
    .execute(params![
        id,
        group,
        s.state.as_str(),
        s.value,
        s.since_ms,
        s.last_notified_ms,
        s.last_eval_ms,
        s.last_triggered_ms,
        s.last_data_ms,
        s.renotified
    ])?;
    Ok(())
}

pub fn remove_group(conn: &Connection, id: i64, group: &str) -> rusqlite::Result<()> {
    conn.execute(
        "DELETE FROM monitor_state WHERE monitor_id = ?1 AND grp = ?2",
        params![id, group],
    )?;
    Ok(())
}

pub fn record(
    conn: &Connection,
    id: i64,
    group: &str,
    from: State,
    to: State,
    value: Option<f64>,
    ts_ms: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO monitor_history (monitor_id, grp, from_state, to_state, value, ts_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![id, group, from.as_str(), to.as_str(), value, ts_ms])?;
    Ok(())
}

/// A deleted monitor's states and history go with it.
pub fn forget(conn: &Connection, id: i64) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM monitor_state WHERE monitor_id = ?1", [id])?;
    conn.execute("DELETE FROM monitor_history WHERE monitor_id = ?1", [id])?;
    Ok(())
}

pub fn trim_history(conn: &Connection, now_ms: i64) -> rusqlite::Result<usize> {
    conn.execute(
        "DELETE FROM monitor_history WHERE ts_ms < ?1",
        [now_ms - HISTORY_KEEP_MS],
    )
}

pub fn history(conn: &Connection, id: i64, limit: u32) -> rusqlite::Result<Vec<HistoryRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT grp, from_state, to_state, value, ts_ms FROM monitor_history
         WHERE monitor_id = ?1 ORDER BY ts_ms DESC, id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![id, limit], |r| {
        let from: String = r.get(1)?;
        let to: String = r.get(2)?;
        let ts: i64 = r.get(4)?;
        Ok(HistoryRow {
            monitor_id: id,
            group: r.get(0)?,
            from: State::parse(&from),
            to: State::parse(&to),
            value: r.get(3)?,
            ts_ms: ts,
            date: crate::timefmt::format_rfc3339_ms(ts),
        })
    })?;
    rows.collect()
}

pub fn group_states(conn: &Connection, id: i64) -> rusqlite::Result<Option<()>> {
    conn.query_row(
        "SELECT 1 FROM monitor_state WHERE monitor_id = ?1 LIMIT 1",
        [id],
        |_| Ok(()),
    )
    .optional()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_and_recoveries_follow_datadog() {
        let t = Thresholds {
            critical: Some(10.0),
            warning: Some(5.0),
            critical_recovery: Some(8.0),
            warning_recovery: Some(3.0),
        };
        use State::*;
        for (prev, v, want) in [
            (Ok, 4.0, Ok),
            (Ok, 5.0, Ok),
            (Ok, 6.0, Warn),
            (Ok, 11.0, Alert),
            (Alert, 9.0, Alert), // above critical_recovery: still Alert
            (Alert, 8.0, Warn),  // recovered from Alert, still above warning
            (Alert, 2.0, Ok),
            (Warn, 4.0, Warn), // above warning_recovery: still Warn
            (Warn, 3.0, Ok),
            (Ok, 4.0, Ok), // 4 does not enter Warn from OK
            (NoData, 9.0, Warn),
        ] {
            assert_eq!(next_state(prev, v, 10.0, &t, Op::Gt), want, "{prev} {v}");
        }
        let below = Thresholds {
            critical: Some(1.0),
            warning: Some(3.0),
            critical_recovery: Some(2.0),
            warning_recovery: None,
        };
        for (prev, v, want) in [
            (Ok, 5.0, Ok),
            (Ok, 2.5, Warn),
            (Ok, 0.0, Alert),
            (Alert, 1.5, Alert),
            (Alert, 2.0, Warn),
            (Alert, 4.0, Ok),
        ] {
            assert_eq!(
                next_state(prev, v, 1.0, &below, Op::Lt),
                want,
                "< {prev} {v}"
            );
        }
    }
}
