//! `cairn cursors list|show|reset`: the log cursors checks keep (`send_log(cursor=...)`,
//! stored under `log_cursor_<stream>` in the check's persistent cache).
//!
//! With no agent on the run_path, `list`/`show` replay the durable buffer read-only and
//! `reset` appends one reset record per check instance to it (the buffer's `flock` refuses
//! it if an agent starts meanwhile). With an agent running, all three go through its local
//! API, whose handlers call [`live_list`] and [`live_reset`] here: a reset is then staged in
//! the check's own ordered stream, between two of its runs, so it never races one.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use cairn_checks::context::{self, CheckContext};
use cairn_logs::check_logs::cursor_key;
use cairn_logs::{Buffer, BufferOptions, CacheState, Counters, RecordSink, Staging};
use serde_json::{json, Value};

use crate::api_client::ApiClient;
use crate::common;

const CURSOR_PREFIX: &str = "log_cursor_";
const API_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(clap::Args)]
pub struct CursorsArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Every check instance that has cursors: check, check id, stream, cursor.
    List {
        /// Only this check (its name or a check id).
        check: Option<String>,
        /// Print `{"cursors": [...]}`.
        #[arg(long)]
        json: bool,
    },
    /// The full cursors of one check (its name or a check id).
    Show {
        check: String,
        /// Only this stream.
        #[arg(long)]
        stream: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Removes the cursors of a check (all its streams, or one), so that its next run starts
    /// over (`get_log_cursor()` returns None). Through the local API while an agent runs.
    Reset {
        check: String,
        /// Only this stream.
        #[arg(long)]
        stream: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(config_dir: &Path, args: CursorsArgs) -> anyhow::Result<ExitCode> {
    let loaded = common::load_config(config_dir)?;
    let agent = &loaded.agent;
    let running = common::running_agent(&agent.run_path);
    match args.action {
        Action::List { check, json } => {
            let answer = read(agent, running, check.as_deref())?;
            print_cursors(&answer, json, false);
        }
        Action::Show {
            check,
            stream,
            json,
        } => {
            let mut answer = read(agent, running, Some(&check))?;
            if let Some(s) = &stream {
                retain_stream(&mut answer, s);
                if cursors(&answer).is_empty() {
                    bail!("check {check} has no cursor for stream {s:?}");
                }
            }
            print_cursors(&answer, json, true);
        }
        Action::Reset {
            check,
            stream,
            json,
        } => {
            let answer = match running {
                Some(pid) => reset_live(agent, pid, &check, stream.as_deref())?,
                None => reset_offline(agent, &check, stream.as_deref())?,
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&answer)?);
            } else {
                let count = answer["count"].as_u64().unwrap_or(0);
                if count == 0 {
                    println!("{check}: no cursor to reset");
                }
                for r in answer["reset"].as_array().into_iter().flatten() {
                    println!(
                        "reset {} stream {}",
                        r["check_id"].as_str().unwrap_or_default(),
                        r["stream"].as_str().unwrap_or_default()
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The cursors, from the running agent when there is one and it answers, else from the buffer.
fn read(
    agent: &cairn_config::AgentConfig,
    running: Option<u32>,
    check: Option<&str>,
) -> anyhow::Result<Value> {
    if let Some(pid) = running {
        let path = match check {
            Some(c) => format!("/cursors?check={}", query_escape(c)),
            None => "/cursors".to_string(),
        };
        match ApiClient::new(agent).and_then(|c| c.get(&path, API_TIMEOUT)) {
            Ok(v) => return Ok(v),
            Err(e) if e.downcast_ref::<crate::api_client::ApiError>().is_some() => return Err(e),
            Err(e) => {
                // Reading the buffer never disturbs the agent; it may lag its last run.
                tracing::warn!(pid, error = %format!("{e:#}"), "the running agent's local API does not answer; reading its buffer instead");
            }
        }
    }
    offline_list(&agent.run_path, check)
}

/// `{"cursors": [...]}` as the buffer of `run_path` holds them.
fn offline_list(run_path: &Path, check: Option<&str>) -> anyhow::Result<Value> {
    let states = cairn_logs::read_all_states(run_path)
        .with_context(|| format!("reading the buffer in {}", run_path.display()))?;
    let mut ids: Vec<&String> = states
        .iter()
        .filter(|(_, s)| s.keys().any(|k| k.starts_with(CURSOR_PREFIX)))
        .map(|(id, _)| id)
        .collect();
    ids.sort();
    if let Some(c) = check {
        let known: Vec<&str> = ids.iter().map(|id| check_name(id)).collect();
        ids.retain(|id| matches(c, check_name(id), &[id]));
        if ids.is_empty() {
            bail!(unknown_check(c, &known, Some(run_path)));
        }
    }
    let mut out = Vec::new();
    for id in ids {
        push_cursors(&mut out, check_name(id), id, id, &states[id]);
    }
    Ok(json!({ "cursors": out }))
}

fn reset_offline(
    agent: &cairn_config::AgentConfig,
    check: &str,
    stream: Option<&str>,
) -> anyhow::Result<Value> {
    let listed = offline_list(&agent.run_path, Some(check))?;
    let mut by_owner: Vec<(String, Vec<String>)> = Vec::new();
    for c in cursors(&listed) {
        let s = c["stream"].as_str().unwrap_or_default();
        if stream.is_some_and(|want| want != s) {
            continue;
        }
        let owner = c["cache_id"].as_str().unwrap_or_default().to_string();
        match by_owner.iter_mut().find(|(o, _)| *o == owner) {
            Some((_, streams)) => streams.push(s.to_string()),
            None => by_owner.push((owner, vec![s.to_string()])),
        }
    }
    let mut reset = Vec::new();
    if by_owner.is_empty() {
        return Ok(json!({ "reset": reset, "count": 0 }));
    }
    let opts = BufferOptions::for_agent(agent);
    let buffer = Buffer::open(opts, Arc::new(Counters::default())).with_context(|| {
        format!(
            "cannot open the buffer in {} (did an agent start on it? reset through it then)",
            agent.run_path.display()
        )
    })?;
    for (owner, streams) in by_owner {
        let keys: Vec<String> = streams.iter().map(|s| cursor_key(s)).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        // One record for all the streams of this instance: replay applies it whole or not.
        let mut staging = Staging::new();
        staging.push_reset(&keys);
        buffer
            .append(&owner, &mut staging)
            .context("writing the reset")?;
        buffer.commit(&owner).context("syncing the reset")?;
        for s in streams {
            reset.push(json!({ "check": check_name(&owner), "check_id": owner, "stream": s }));
        }
    }
    buffer.close().context("closing the buffer")?;
    let count = reset.len();
    Ok(json!({ "reset": reset, "count": count }))
}

fn reset_live(
    agent: &cairn_config::AgentConfig,
    pid: u32,
    check: &str,
    stream: Option<&str>,
) -> anyhow::Result<Value> {
    let client = ApiClient::new(agent).and_then(|c| {
        c.post(
            "/cursors/reset",
            &json!({ "check": check, "stream": stream }),
            API_TIMEOUT,
        )
    });
    match client {
        Ok(v) => Ok(v),
        // The agent answered and refused (unknown check, ...): its reason.
        Err(e) if e.downcast_ref::<crate::api_client::ApiError>().is_some() => Err(e),
        Err(e) => bail!(
            "an agent (pid {pid}) is running on run_path {}; reset through it: it is not reachable: {e:#}",
            agent.run_path.display()
        ),
    }
}

/// The cursors of the loaded checks (all, or those whose name, check id or cache identity is
/// `check`), as `{"cursors": [{"check", "check_id", "cache_id", "stream", "cursor"}]}`.
///
/// Runs inside the agent (the local API's `GET /cursors`); takes only short locks, never the
/// GIL, so any thread may call it. An unknown `check` is an error naming the known checks.
#[allow(dead_code)] // called by the local API's handlers (crates/cairn/src/api/)
pub fn live_list(check: Option<&str>) -> anyhow::Result<Value> {
    let ctxs = matching_contexts(check)?;
    let mut out = Vec::new();
    for ctx in ctxs {
        let state: CacheState = ctx.logs.cache_entries().into_iter().collect();
        push_cursors(
            &mut out,
            &ctx.name,
            &ctx.check_id,
            ctx.logs.cache_id(),
            &state,
        );
    }
    Ok(json!({ "cursors": out }))
}

/// Removes the cursors of `check` (its name, check id or cache identity; every instance that
/// matches), all its streams or only `stream`, and waits until the removal is durable.
/// Answers `{"reset": [{"check", "check_id", "stream"}], "count": n}`.
///
/// Runs inside the agent (the local API's `POST /cursors/reset`). It must be called on a
/// thread that does not hold the GIL and may block (a `spawn_blocking` task): it waits for
/// the check's current run to end (the check's `run_lock`), then stages one reset record in
/// the check's ordered stream and commits it like a run's cursors (flush + fsync). The check's
/// next `get_log_cursor()` returns None; a reset that could not be made durable is an error
/// and the check's in-memory cursors go back to what the buffer holds.
#[allow(dead_code)] // called by the local API's handlers (crates/cairn/src/api/)
pub fn live_reset(check: &str, stream: Option<&str>) -> anyhow::Result<Value> {
    let ctxs = matching_contexts(Some(check))?;
    let mut reset = Vec::new();
    for ctx in ctxs {
        let _between_runs = ctx.run_lock.lock();
        let keys: Vec<String> = match stream {
            Some(s) => vec![cursor_key(s)],
            None => ctx
                .logs
                .cache_entries()
                .into_iter()
                .map(|(k, _)| k)
                .filter(|k| k.starts_with(CURSOR_PREFIX))
                .collect(),
        };
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let removed = ctx.logs.reset_cache(&keys);
        if removed.is_empty() {
            continue;
        }
        ctx.logs.finish_run().with_context(|| {
            format!(
                "check {}: the reset could not be made durable",
                ctx.check_id
            )
        })?;
        for key in removed {
            let s = key.strip_prefix(CURSOR_PREFIX).unwrap_or(&key);
            reset.push(json!({ "check": ctx.name, "check_id": ctx.check_id, "stream": s }));
        }
    }
    let count = reset.len();
    Ok(json!({ "reset": reset, "count": count }))
}

fn matching_contexts(check: Option<&str>) -> anyhow::Result<Vec<Arc<CheckContext>>> {
    let mut all = context::all();
    all.sort_by(|a, b| a.check_id.cmp(&b.check_id));
    let Some(c) = check else {
        return Ok(all);
    };
    let known: Vec<&str> = all.iter().map(|x| x.name.as_str()).collect();
    let found: Vec<_> = all
        .iter()
        .filter(|x| matches(c, &x.name, &[&x.check_id, x.logs.cache_id()]))
        .cloned()
        .collect();
    if found.is_empty() {
        bail!(unknown_check(c, &known, None));
    }
    Ok(found)
}

fn matches(check: &str, name: &str, ids: &[&str]) -> bool {
    check == name || ids.contains(&check)
}

fn unknown_check(check: &str, known: &[&str], run_path: Option<&Path>) -> String {
    let mut names: Vec<&str> = known.to_vec();
    names.sort_unstable();
    names.dedup();
    let known = if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    };
    match run_path {
        Some(p) => format!(
            "unknown check {check}: no cursors of it in {} (checks with cursors: {known})",
            p.display()
        ),
        None => format!("unknown check {check} (loaded checks: {known})"),
    }
}

/// A check id (or cache identity) starts with the check's name.
fn check_name(id: &str) -> &str {
    id.split(':').next().unwrap_or(id)
}

fn push_cursors(
    out: &mut Vec<Value>,
    name: &str,
    check_id: &str,
    cache_id: &str,
    state: &CacheState,
) {
    let mut keys: Vec<&String> = state
        .keys()
        .filter(|k| k.starts_with(CURSOR_PREFIX))
        .collect();
    keys.sort();
    for key in keys {
        let text = &state[key];
        // Stored as the JSON text the check's cursor encoded to; shown decoded.
        let cursor = serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.clone()));
        out.push(json!({
            "check": name,
            "check_id": check_id,
            "cache_id": cache_id,
            "stream": &key[CURSOR_PREFIX.len()..],
            "cursor": cursor,
        }));
    }
}

fn cursors(answer: &Value) -> &[Value] {
    answer["cursors"].as_array().map_or(&[], Vec::as_slice)
}

fn retain_stream(answer: &mut Value, stream: &str) {
    if let Some(list) = answer["cursors"].as_array_mut() {
        list.retain(|c| c["stream"] == stream);
    }
}

fn print_cursors(answer: &Value, json: bool, full: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(answer).expect("a JSON value always serializes")
        );
        return;
    }
    let list = cursors(answer);
    if list.is_empty() {
        println!("no cursors");
        return;
    }
    if full {
        for c in list {
            println!(
                "{} stream {}:\n{}",
                c["check_id"].as_str().unwrap_or_default(),
                c["stream"].as_str().unwrap_or_default(),
                serde_json::to_string_pretty(&c["cursor"]).expect("a JSON value always serializes")
            );
        }
        return;
    }
    let rows: Vec<[String; 4]> = list
        .iter()
        .map(|c| {
            [
                c["check"].as_str().unwrap_or_default().to_string(),
                c["check_id"].as_str().unwrap_or_default().to_string(),
                c["stream"].as_str().unwrap_or_default().to_string(),
                c["cursor"].to_string(),
            ]
        })
        .collect();
    let header = ["CHECK", "CHECK ID", "STREAM", "CURSOR"];
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 4]| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i == 3 {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        s
    };
    println!("{}", line(header));
    for r in &rows {
        println!("{}", line([&r[0], &r[1], &r[2], &r[3]]));
    }
}

/// Percent-escapes a query value (check names and ids are mostly `[a-z0-9_:.-]`).
fn query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_logs::{CheckLogs, CheckLogsConfig, LogFields};

    /// Registers a check instance named `name` whose cache goes to a real buffer in `dir`.
    fn register(name: &str, dir: &Path) -> (Arc<CheckContext>, Arc<Buffer>) {
        let opts = BufferOptions::new(dir, 1 << 20, cairn_config::WhenFull::Block);
        let buffer = Buffer::open(opts, Arc::new(Counters::default())).unwrap();
        let id = format!("{name}:0123456789abcdef");
        let logs = CheckLogs::new(
            CheckLogsConfig {
                check_id: id.clone(),
                hostname: "h".into(),
                logs_enabled: true,
                has_logs_entry: true,
                ..Default::default()
            },
            buffer.clone(),
        )
        .unwrap();
        let ctx = Arc::new(CheckContext {
            name: name.into(),
            check_id: id.clone(),
            logs,
            submissions: Default::default(),
            metrics: cairn_checks::metrics::CheckMetrics::new(&id, Vec::new()).into(),
            run_lock: Default::default(),
        });
        context::register(ctx.clone());
        (ctx, buffer)
    }

    fn send(ctx: &CheckContext, stream: &str, cursor: &str) {
        let fields = LogFields {
            message: "m",
            timestamp_ms: 1,
            ..Default::default()
        };
        ctx.logs
            .push_log(&fields, b"", Some((stream, cursor)))
            .unwrap();
        ctx.logs.finish_run().unwrap();
    }

    #[test]
    fn live_reset_waits_for_the_run_then_the_next_read_sees_no_cursor_and_it_is_durable() {
        let tmp = tempfile::tempdir().unwrap();
        let (ctx, buffer) = register("live_reset_check", tmp.path());
        send(&ctx, "default", "{\"n\":3}");
        send(&ctx, "other", "{\"n\":4}");
        let listed = live_list(Some("live_reset_check")).unwrap();
        assert_eq!(listed["cursors"][0]["cursor"], json!({ "n": 3 }));
        assert_eq!(listed["cursors"][1]["stream"], "other");

        // A run in progress holds the lock: the reset waits for it.
        let run = ctx.run_lock.lock();
        let resetter = std::thread::spawn(|| live_reset("live_reset_check", None).unwrap());
        std::thread::sleep(Duration::from_millis(200));
        assert!(!resetter.is_finished(), "a reset never lands inside a run");
        assert!(ctx.logs.read_cache(&cursor_key("default")).is_some());
        drop(run);
        let answer = resetter.join().unwrap();
        assert_eq!(answer["count"], 2, "{answer}");
        assert_eq!(ctx.logs.read_cache(&cursor_key("default")), None);
        assert_eq!(ctx.logs.read_cache(&cursor_key("other")), None);
        assert!(live_list(Some("live_reset_check")).unwrap()["cursors"]
            .as_array()
            .unwrap()
            .is_empty());
        // Durable: committed before the answer.
        let durable = buffer.load_state(&ctx.check_id).unwrap();
        assert!(durable.is_empty(), "{durable:?}");
        context::unregister(&ctx.check_id);
        buffer.close().unwrap();
        assert!(cairn_logs::read_all_states(tmp.path()).unwrap().is_empty());
    }

    #[test]
    fn live_calls_on_an_unknown_check_name_the_loaded_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let (ctx, buffer) = register("live_known_check", tmp.path());
        let e = live_reset("live_no_such_check", None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown check live_no_such_check") && e.contains("live_known_check"),
            "{e}"
        );
        assert!(live_list(Some("live_no_such_check")).is_err());
        // One stream only; a stream without a cursor resets nothing.
        send(&ctx, "a", "1");
        send(&ctx, "b", "2");
        assert_eq!(live_reset(&ctx.check_id, Some("zzz")).unwrap()["count"], 0);
        let one = live_reset(&ctx.check_id, Some("a")).unwrap();
        assert_eq!(
            one["reset"],
            json!([{ "check": "live_known_check", "check_id": ctx.check_id, "stream": "a" }])
        );
        assert_eq!(ctx.logs.read_cache(&cursor_key("b")).as_deref(), Some("2"));
        context::unregister(&ctx.check_id);
        buffer.close().unwrap();
    }
}
