//! The client side of `cairn monitors list|show|test`: the running intake's monitor routes.

use std::io::Write;

use serde_json::Value;

use crate::client::{printable, Client, ClientConfig};
use crate::IntakeError;

/// The intake's own client (auth, errors named as for `cairn logs`) on the monitor routes.
struct Api(Client);

impl Api {
    fn new(cfg: ClientConfig) -> Result<Api, IntakeError> {
        Client::new(cfg).map(Api)
    }

    async fn get(&self, path: &str, params: &[(&str, String)]) -> Result<Value, IntakeError> {
        self.0.get_json(path, params).await
    }

    /// The monitor named `key`: its id if `key` is one, else its exact name.
    async fn find(&self, key: &str) -> Result<Value, IntakeError> {
        let list = self.get("/api/v1/monitor", &[]).await?;
        let all = list.as_array().cloned().unwrap_or_default();
        if let Ok(id) = key.trim().parse::<i64>() {
            if let Some(m) = all.iter().find(|m| m["id"].as_i64() == Some(id)) {
                return Ok(m.clone());
            }
        }
        let named: Vec<&Value> = all.iter().filter(|m| m["name"] == key).collect();
        match named.as_slice() {
            [m] => Ok((*m).clone()),
            [] => Err(IntakeError::NotFound(format!(
                "no monitor with the id or name {key:?} ({} monitors; `cairn monitors list` shows them)",
                all.len()
            ))),
            _ => Err(IntakeError::BadRequest(format!(
                "{} monitors are named {key:?}; give the id",
                named.len()
            ))),
        }
    }
}

fn write_err(e: std::io::Error) -> IntakeError {
    IntakeError::Runtime(e)
}

fn seconds(v: &Value) -> String {
    match v.as_i64() {
        Some(n) if n > 0 => format!("{n} s"),
        _ => "none".into(),
    }
}

fn num(v: &Value) -> String {
    match v.as_f64() {
        Some(f) => super::eval::number_text(f),
        None => "-".into(),
    }
}

fn json_out(out: &mut dyn Write, v: &Value) -> Result<(), IntakeError> {
    let text = crate::client::json_text(v).map_err(|e| write_err(std::io::Error::other(e)))?;
    writeln!(out, "{text}").map_err(write_err)
}

/// `cairn monitors list`: one line per monitor: id, overall state, groups not OK, name.
pub fn run_list(cfg: ClientConfig, json: bool, out: &mut dyn Write) -> Result<usize, IntakeError> {
    let list = crate::client::runtime()?
        .block_on(async { Api::new(cfg)?.get("/api/v1/monitor", &[]).await })?;
    let all = list.as_array().cloned().unwrap_or_default();
    if json {
        for m in &all {
            json_out(out, m)?;
        }
        return Ok(all.len());
    }
    out.write_all(list_table(&all).as_bytes())
        .map_err(write_err)?;
    Ok(all.len())
}

/// `cairn monitors list`'s table: each column as wide as its widest cell (header included),
/// the name last and unpadded.
pub fn list_table(all: &[Value]) -> String {
    let mut rows: Vec<[String; 5]> = vec![[
        "ID".into(),
        "STATE".into(),
        "NOT OK".into(),
        "MUTED".into(),
        "NAME".into(),
    ]];
    for m in all {
        let groups = m["state"]["groups"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let bad = groups.values().filter(|g| g["status"] != "OK").count();
        rows.push([
            m["id"]
                .as_i64()
                .map_or_else(|| "-".to_owned(), |i| i.to_string()),
            printable(m["overall_state"].as_str().unwrap_or("-")).to_string(),
            format!("{bad}/{}", groups.len()),
            if m["muted"] == true { "yes" } else { "" }.into(),
            printable(m["name"].as_str().unwrap_or("")).to_string(),
        ]);
    }
    let mut width = [0usize; 4];
    for r in &rows {
        for (w, cell) in width.iter_mut().zip(r.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (w, cell) in width.iter().zip(r.iter()) {
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', w - cell.chars().count() + 1));
        }
        line.push_str(&r[4]);
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `cairn monitors show`: the monitor, its groups and its last transitions.
pub fn run_show(
    cfg: ClientConfig,
    key: &str,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), IntakeError> {
    let (m, hist) = crate::client::runtime()?.block_on(async {
        let api = Api::new(cfg)?;
        let m = api.find(key).await?;
        let id = m["id"].as_i64().unwrap_or_default();
        let hist = api
            .get(
                &format!("/api/v1/monitor/{id}/history"),
                &[("limit", "20".to_owned())],
            )
            .await?;
        Ok::<_, IntakeError>((m, hist))
    })?;
    if json {
        let mut m = m;
        m["history"] = hist["history"].clone();
        return json_out(out, &m);
    }
    let s = |v: &Value| printable(v.as_str().unwrap_or(""));
    let t = &m["options"]["thresholds"];
    let lines = [
        format!("Monitor {} ({})", m["id"], s(&m["name"])),
        format!(
            "  State: {}{}",
            s(&m["overall_state"]),
            if m["muted"] == true { " (muted)" } else { "" }
        ),
        format!("  Query: {}", s(&m["query"])),
        format!(
            "  Thresholds: critical {}, warning {}, critical recovery {}, warning recovery {}",
            num(&t["critical"]),
            num(&t["warning"]),
            num(&t["critical_recovery"]),
            num(&t["warning_recovery"])
        ),
        format!(
            "  No data: {}  Renotify: {}",
            match m["options"]["on_missing_data"].as_str() {
                // Datadog's newer option decides alone when given.
                Some(choice) => format!("on missing data {choice}"),
                None if m["options"]["notify_no_data"] == true => format!(
                    "notify after {}",
                    m["options"]["no_data_timeframe"]
                        .as_i64()
                        .map(|n| format!("{n} min"))
                        .unwrap_or_else(|| "twice the window".into())
                ),
                None => "not notified".into(),
            },
            m["options"]["renotify_interval"]
                .as_i64()
                .map(|n| format!("every {n} min"))
                .unwrap_or_else(|| "no".into())
        ),
        format!(
            "  Evaluation delay: {}  New group delay: {}",
            seconds(&m["options"]["evaluation_delay"]),
            // Datadog's older name counts when the newer one is not given, as in evaluation.
            seconds(match &m["options"]["new_group_delay"] {
                Value::Null => &m["options"]["new_host_delay"],
                v => v,
            })
        ),
        format!("  Message: {}", s(&m["message"])),
    ];
    for l in lines {
        writeln!(out, "{l}").map_err(write_err)?;
    }
    // Read back as the intake reads them, so the list is the one its log names.
    let options: super::config::Options =
        serde_json::from_value(m["options"].clone()).unwrap_or_default();
    let kept = options.unapplied();
    if !kept.is_empty() {
        writeln!(out, "  Kept, not applied: {}", printable(&kept.join(", "))).map_err(write_err)?;
    }
    let groups = m["state"]["groups"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    writeln!(out, "  Groups ({}):", groups.len()).map_err(write_err)?;
    for (name, g) in &groups {
        writeln!(
            out,
            "    {:<8} {:>12}  {}  since {}",
            s(&g["status"]),
            num(&g["value"]),
            printable(name),
            g["since_ts"]
                .as_i64()
                .map(|t| crate::timefmt::format_rfc3339_ms(t * 1000))
                .unwrap_or_default()
        )
        .map_err(write_err)?;
    }
    let rows = hist["history"].as_array().cloned().unwrap_or_default();
    writeln!(out, "  Last transitions ({}):", rows.len()).map_err(write_err)?;
    for r in &rows {
        writeln!(
            out,
            "    {} {} {} -> {} ({})",
            s(&r["date"]),
            s(&r["group"]),
            s(&r["from"]),
            s(&r["to"]),
            num(&r["value"])
        )
        .map_err(write_err)?;
    }
    Ok(())
}

/// `cairn monitors test`: evaluates now, prints the value per group and the state each would
/// be in (nothing is stored).
pub fn run_test(
    cfg: ClientConfig,
    key: &str,
    json: bool,
    out: &mut dyn Write,
) -> Result<usize, IntakeError> {
    let r = crate::client::runtime()?.block_on(async {
        let api = Api::new(cfg)?;
        let m = api.find(key).await?;
        let id = m["id"].as_i64().unwrap_or_default();
        api.0
            .post_json(
                &format!("/api/v1/monitor/{id}/evaluate"),
                &serde_json::json!({}),
            )
            .await
    })?;
    if json {
        json_out(out, &r)?;
        return Ok(r["groups"].as_array().map_or(0, Vec::len));
    }
    let groups = r["groups"].as_array().cloned().unwrap_or_default();
    writeln!(
        out,
        "Monitor {} ({}): {}  threshold {}",
        r["monitor_id"],
        printable(r["name"].as_str().unwrap_or("")),
        printable(r["query"].as_str().unwrap_or("")),
        num(&r["threshold"])
    )
    .map_err(write_err)?;
    writeln!(
        out,
        "{:<40} {:>12}  {:<8} NOW",
        "GROUP", "VALUE", "WOULD BE"
    )
    .map_err(write_err)?;
    for g in &groups {
        writeln!(
            out,
            "{:<40} {:>12}  {:<8} {}",
            printable(g["group"].as_str().unwrap_or("")),
            num(&g["value"]),
            printable(g["state"].as_str().unwrap_or("")),
            printable(g["current_state"].as_str().unwrap_or(""))
        )
        .map_err(write_err)?;
    }
    Ok(groups.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_list_columns_line_up_whatever_the_widths() {
        let all = [
            json!({"id": 556744057, "name": "web errors", "overall_state": "Alert", "muted": true,
                   "state": {"groups": {"host:a": {"status": "Alert"}, "host:b": {"status": "OK"}}}}),
            json!({"id": 4, "name": "quiet", "overall_state": "No Data", "muted": false,
                   "state": {"groups": {}}}),
        ];
        let t = list_table(&all);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        // Every column starts where its header does.
        for (col, cells) in [
            ("STATE", ["Alert", "No Data"]),
            ("NOT OK", ["1/2", "0/0"]),
            ("NAME", ["web errors", "quiet"]),
        ] {
            let at = lines[0].find(col).unwrap();
            for (line, cell) in lines[1..].iter().zip(cells) {
                assert_eq!(line.get(at..at + cell.len()), Some(cell), "{col}:\n{t}");
                assert_eq!(&line[at - 1..at], " ", "{col}:\n{t}");
            }
        }
        assert!(lines[1].starts_with("556744057 Alert"), "{t}");
        assert!(lines[2].starts_with("4         No Data"), "{t}");
    }
}
