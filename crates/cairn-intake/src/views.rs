//! Saved views of the Explorer: a name and an opaque JSON state, kept in the intake's store.
//!
//! Writes use a connection of their own with a busy timeout rather than a job on the store's
//! writer: a view is saved a few times a day, and a job variant would have to thread through
//! the writer's group commit, which only knows logs and metrics. SQLite serialises the two
//! writers; a view save waits at most for one group commit.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};

use crate::timefmt::format_rfc3339_ms;
use crate::IntakeError;

pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_STATE_BYTES: usize = 64 * 1024;
pub const MAX_VIEWS: i64 = 1_000;
/// A group commit of 50,000 logs takes well under this.
const BUSY_TIMEOUT: Duration = Duration::from_secs(15);

pub fn init_schema(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS saved_views (
             name TEXT PRIMARY KEY,
             state TEXT NOT NULL,
             created_ms INTEGER NOT NULL,
             updated_ms INTEGER NOT NULL
         );",
    )
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct View {
    pub name: String,
    pub state: serde_json::Value,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ViewList {
    pub data: Vec<View>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct OneView {
    pub data: View,
}

#[derive(Debug, Deserialize)]
struct PutBody {
    state: Option<serde_json::Value>,
}

pub fn check_name(name: &str) -> Result<(), IntakeError> {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS {
        return Err(IntakeError::BadRequest(format!(
            "view name must be 1 to {MAX_NAME_CHARS} characters, not {chars}"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(IntakeError::BadRequest(
            "view name must not contain control characters".into(),
        ));
    }
    Ok(())
}

fn row_to_view(r: &rusqlite::Row) -> rusqlite::Result<View> {
    let state: String = r.get(1)?;
    Ok(View {
        name: r.get(0)?,
        state: serde_json::from_str(&state).unwrap_or(serde_json::Value::Null),
        created_at: format_rfc3339_ms(r.get(2)?),
        updated_at: format_rfc3339_ms(r.get(3)?),
    })
}

const SELECT: &str = "SELECT name, state, created_ms, updated_ms FROM saved_views";

pub fn list(conn: &Connection) -> Result<ViewList, IntakeError> {
    let mut stmt = conn.prepare_cached(&format!("{SELECT} ORDER BY name"))?;
    let data = stmt
        .query_map([], row_to_view)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(ViewList { data })
}

pub fn get(conn: &Connection, name: &str) -> Result<OneView, IntakeError> {
    check_name(name)?;
    let mut stmt = conn.prepare_cached(&format!("{SELECT} WHERE name = ?1"))?;
    stmt.query_row([name], row_to_view)
        .optional()?
        .map(|data| OneView { data })
        .ok_or_else(|| IntakeError::NotFound(format!("no saved view named {name:?}")))
}

/// Parses and checks a PUT body: `{"state": {…}}`, the state at most [`MAX_STATE_BYTES`].
pub fn parse_put(body: &[u8]) -> Result<String, IntakeError> {
    let parsed: PutBody = serde_json::from_slice(body)
        .map_err(|e| IntakeError::BadRequest(format!("invalid JSON: {e}")))?;
    let state = match parsed.state {
        Some(s @ serde_json::Value::Object(_)) => s,
        Some(_) => {
            return Err(IntakeError::BadRequest(
                "state must be a JSON object".into(),
            ))
        }
        None => return Err(IntakeError::BadRequest("state is required".into())),
    };
    let text = state.to_string();
    if text.len() > MAX_STATE_BYTES {
        return Err(IntakeError::BadRequest(format!(
            "state is {} bytes as JSON; at most {MAX_STATE_BYTES} (64 KiB) are kept",
            text.len()
        )));
    }
    Ok(text)
}

fn open_writer(db: &Path) -> Result<Connection, IntakeError> {
    let sqlite = |source| IntakeError::Sqlite {
        path: db.to_owned(),
        source,
    };
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW,
    )
    .map_err(sqlite)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite)?;
    Ok(conn)
}

/// Creates or replaces the view `name`; `state` is its checked JSON text.
pub fn put(db: &Path, name: &str, state: &str, now_ms: i64) -> Result<OneView, IntakeError> {
    check_name(name)?;
    let mut conn = open_writer(db)?;
    // IMMEDIATE: the count and the insert see the same table, so two saves cannot both pass
    // the limit.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let exists: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM saved_views WHERE name = ?1)",
        [name],
        |r| r.get(0),
    )?;
    if !exists {
        let n: i64 = tx.query_row("SELECT count(*) FROM saved_views", [], |r| r.get(0))?;
        if n >= MAX_VIEWS {
            return Err(IntakeError::BadRequest(format!(
                "at most {MAX_VIEWS} saved views are kept; delete one first"
            )));
        }
    }
    tx.execute(
        "INSERT INTO saved_views (name, state, created_ms, updated_ms) VALUES (?1, ?2, ?3, ?3)
         ON CONFLICT (name) DO UPDATE SET state = excluded.state, updated_ms = excluded.updated_ms",
        params![name, state, now_ms],
    )?;
    let data = tx.query_row(&format!("{SELECT} WHERE name = ?1"), [name], row_to_view)?;
    tx.commit()?;
    Ok(OneView { data })
}

pub fn delete(db: &Path, name: &str) -> Result<(), IntakeError> {
    check_name(name)?;
    let conn = open_writer(db)?;
    let n = conn.execute("DELETE FROM saved_views WHERE name = ?1", [name])?;
    if n == 0 {
        return Err(IntakeError::NotFound(format!(
            "no saved view named {name:?}"
        )));
    }
    Ok(())
}
