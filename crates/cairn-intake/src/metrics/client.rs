//! The client side of `cairn metrics query`, `cairn events list` and `cairn checks status`.
//! Text output escapes control and direction characters like `cairn logs` does: tags, hosts,
//! titles and messages come from checks, and must not be able to rewrite the terminal.

use std::io::Write;

use super::api::{CheckStatusList, EventList, QueryResponse, Series};
use crate::client::{json_text, printable, runtime, Client, ClientConfig};
use crate::IntakeError;

/// A time range as the CLI takes it: `1h` (ago), `now-1h`, ISO-8601 or epoch ms.
#[derive(Debug, Clone)]
pub struct Range {
    pub from: String,
    pub to: Option<String>,
}

impl Range {
    /// `(from, to)` in epoch seconds.
    pub fn resolve(&self, now_ms: i64) -> Result<(i64, i64), IntakeError> {
        let at = |s: &str| {
            crate::timefmt::parse_time(&crate::client::from_arg(s), now_ms)
                .map(|ms| ms.div_euclid(1000))
                .map_err(IntakeError::BadRequest)
        };
        let from = at(&self.from)?;
        let to = match &self.to {
            Some(t) => at(t)?,
            None => now_ms.div_euclid(1000),
        };
        Ok((from, to))
    }
}

fn write_err(e: std::io::Error) -> IntakeError {
    IntakeError::Runtime(e)
}

/// A number for people: integers without a fraction, others with up to 6 significant digits.
pub fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{}", v as i64);
    }
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "0" || s == "-0" {
        format!("{v:.3e}")
    } else {
        s.to_owned()
    }
}

/// Rows of cells as aligned columns (two spaces apart); the last column is not padded.
fn table(rows: &[Vec<String>], out: &mut dyn Write) -> std::io::Result<()> {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; cols];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                line.push_str(c);
                line.extend(std::iter::repeat_n(' ', widths[i] - c.chars().count() + 2));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// `(last, min, max, avg)` of a series' points.
pub fn summary(s: &Series) -> Option<(f64, f64, f64, f64)> {
    let vals: Vec<f64> = s.pointlist.iter().map(|p| p[1]).collect();
    let last = *vals.last()?;
    let min = vals.iter().copied().fold(f64::INFINITY, f64::min);
    let max = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let avg = vals.iter().sum::<f64>() / vals.len() as f64;
    Some((last, min, max, avg))
}

/// `cairn metrics query`: one row per series (its group's tags, point count, last, min, max,
/// avg), or with `json` one series object per line. Returns the number of series.
pub fn run_metrics_query(
    cfg: ClientConfig,
    query: &str,
    range: &Range,
    json: bool,
    out: &mut dyn Write,
) -> Result<usize, IntakeError> {
    let (from, to) = range.resolve(crate::timefmt::now_ms())?;
    let resp: QueryResponse = runtime()?.block_on(async {
        Client::new(cfg)?
            .get_json(
                "/api/v1/query",
                &[
                    ("from", from.to_string()),
                    ("to", to.to_string()),
                    ("query", query.to_owned()),
                ],
            )
            .await
    })?;
    if json {
        for s in &resp.series {
            writeln!(
                out,
                "{}",
                json_text(s)
                    .map_err(std::io::Error::other)
                    .map_err(write_err)?
            )
            .map_err(write_err)?;
        }
        return Ok(resp.series.len());
    }
    if resp.series.is_empty() {
        writeln!(out, "no series for {} in this range", printable(query)).map_err(write_err)?;
        return Ok(0);
    }
    let mut rows = vec![
        ["SERIES", "POINTS", "LAST", "MIN", "MAX", "AVG", "INTERVAL"]
            .map(str::to_owned)
            .to_vec(),
    ];
    for s in &resp.series {
        let name = if s.tag_set.is_empty() {
            s.expression.clone()
        } else {
            s.tag_set.join(",")
        };
        let mut row = vec![printable(&name), s.length.to_string()];
        match summary(s) {
            Some((last, min, max, avg)) => {
                row.extend([last, min, max, avg].map(number));
            }
            None => row.extend(std::iter::repeat_n("-".to_owned(), 4)),
        }
        row.push(format!("{}s", s.interval));
        rows.push(row);
    }
    table(&rows, out).map_err(write_err)?;
    Ok(resp.series.len())
}

/// `cairn events list`: newest first, one line each (time, alert type, priority, host, source,
/// title, text, tags), or one JSON object per line.
pub fn run_events_list(
    cfg: ClientConfig,
    range: &Range,
    tags: Option<&str>,
    sources: Option<&str>,
    json: bool,
    out: &mut dyn Write,
) -> Result<usize, IntakeError> {
    let (from, to) = range.resolve(crate::timefmt::now_ms())?;
    let mut params = vec![("start", from.to_string()), ("end", to.to_string())];
    if let Some(t) = tags {
        params.push(("tags", t.to_owned()));
    }
    if let Some(s) = sources {
        params.push(("sources", s.to_owned()));
    }
    let resp: EventList = runtime()?
        .block_on(async { Client::new(cfg)?.get_json("/api/v1/events", &params).await })?;
    for e in &resp.events {
        if json {
            let line = json_text(e)
                .map_err(std::io::Error::other)
                .map_err(write_err)?;
            writeln!(out, "{line}").map_err(write_err)?;
            continue;
        }
        let dash = |s: &str| {
            if s.is_empty() {
                "-".to_owned()
            } else {
                printable(s)
            }
        };
        writeln!(
            out,
            "{} {:<7} {:<6} {} {} {}: {} [{}]",
            crate::timefmt::format_rfc3339_ms(e.date_happened * 1000),
            printable(&e.alert_type),
            printable(&e.priority),
            dash(&e.host),
            dash(&e.source_type_name),
            printable(&e.title),
            printable(&e.text),
            printable(&e.tags.join(","))
        )
        .map_err(write_err)?;
    }
    Ok(resp.events.len())
}

/// `cairn checks status`: the latest status per check × host × tag set, as a table or one
/// JSON object per line.
pub fn run_checks_status(
    cfg: ClientConfig,
    check: Option<&str>,
    json: bool,
    out: &mut dyn Write,
) -> Result<usize, IntakeError> {
    let mut params = Vec::new();
    if let Some(c) = check {
        params.push(("check", c.to_owned()));
    }
    let resp: CheckStatusList = runtime()?.block_on(async {
        Client::new(cfg)?
            .get_json("/api/v1/check_run", &params)
            .await
    })?;
    if json {
        for c in &resp.checks {
            let line = json_text(c)
                .map_err(std::io::Error::other)
                .map_err(write_err)?;
            writeln!(out, "{line}").map_err(write_err)?;
        }
        return Ok(resp.checks.len());
    }
    if resp.checks.is_empty() {
        writeln!(out, "no service checks").map_err(write_err)?;
        return Ok(0);
    }
    let mut rows = vec![["STATUS", "CHECK", "HOST", "TAGS", "LAST SEEN", "MESSAGE"]
        .map(str::to_owned)
        .to_vec()];
    for c in &resp.checks {
        let dash = |s: &str| {
            if s.is_empty() {
                "-".to_owned()
            } else {
                printable(s)
            }
        };
        rows.push(vec![
            printable(&c.status_name),
            printable(&c.check),
            dash(&c.host_name),
            dash(&c.tags.join(",")),
            crate::timefmt::format_rfc3339_ms(c.timestamp * 1000),
            dash(&c.message),
        ]);
    }
    table(&rows, out).map_err(write_err)?;
    Ok(resp.checks.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(number(3.0), "3");
        assert_eq!(number(2.5), "2.5");
        assert_eq!(number(1.0 / 3.0), "0.333333");
        assert_eq!(number(0.0000001), "1.000e-7");
    }
}
