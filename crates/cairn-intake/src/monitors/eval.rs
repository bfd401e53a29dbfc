//! One monitor's value per group over its window, computed by the Logs Aggregate engine
//! (`api::aggregate`): counts by service, source or status come from the per-minute rollup,
//! host, tags and short attribute values from `attr_values`, measures from `attr_measure`;
//! only the partial minutes at the window's edges, and queries those tables cannot answer,
//! scan logs, through the timestamp index.

use std::collections::{BTreeMap, HashMap, HashSet};

use rusqlite::Connection;
use serde::Serialize;

use super::config::{MissingData, Monitor};
use super::query::Rollup;
use super::state::{next_state, GroupState, State};
use crate::api::{self, AggregateRequest, Compute, Filter, GroupBy, TimeArg};
use crate::IntakeError;

/// The group of a monitor without `by()` (Datadog's simple alert).
pub const ALL: &str = "*";
/// A group that is OK and has had no log for this long is forgotten (a host that went away
/// must not be listed for ever). Groups in Alert, Warn or No Data stay until they recover.
pub const GROUP_EXPIRY_MS: i64 = 24 * 3_600_000;

#[derive(Debug, Clone, Serialize)]
pub struct GroupValue {
    pub group: String,
    /// facet → value, in by() order.
    #[serde(skip)]
    pub values: Vec<(String, String)>,
    pub value: Option<f64>,
}

pub fn number_text(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn group_name(values: &[(String, String)]) -> String {
    if values.is_empty() {
        return ALL.into();
    }
    values
        .iter()
        .map(|(f, v)| format!("{f}:{v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The value of `rollup` per group over `[now - window_ms, now)`. Groups without logs are
/// absent; a monitor without by() always has its one group (count 0, or no value).
pub fn compute(
    conn: &Connection,
    m: &Monitor,
    rollup: &Rollup,
    window_ms: i64,
    now_ms: i64,
) -> Result<Vec<GroupValue>, IntakeError> {
    let (aggregation, metric) = rollup.compute();
    let req = AggregateRequest {
        filter: Filter {
            query: Some(m.query.search.clone()),
            from: Some(TimeArg::Ms(now_ms - window_ms)),
            to: Some(TimeArg::Ms(now_ms - 1)),
        },
        compute: vec![Compute {
            aggregation: Some(aggregation.into()),
            metric,
            kind: None,
            interval: None,
        }],
        group_by: m
            .query
            .by
            .iter()
            .map(|f| GroupBy {
                facet: f.clone(),
                limit: Some(api::MAX_GROUP_LIMIT),
                sort: None,
                missing: None,
            })
            .collect(),
    };
    let resp = api::aggregate(conn, &req, now_ms)?;
    let mut out = Vec::with_capacity(resp.data.buckets.len());
    for b in resp.data.buckets {
        let values: Vec<(String, String)> = m
            .query
            .by
            .iter()
            .map(|f| {
                let v = match b.by.get(f) {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => String::new(),
                };
                (f.clone(), v)
            })
            .collect();
        let value = b.computes.get("c0").and_then(serde_json::Value::as_f64);
        out.push(GroupValue {
            group: group_name(&values),
            values,
            value,
        });
    }
    Ok(out)
}

/// What one evaluation decides for one group.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub group: String,
    pub values: Vec<(String, String)>,
    pub value: Option<f64>,
    pub from: State,
    pub to: State,
    /// The group is no longer tracked (the placeholder of a grouped monitor once real groups
    /// exist, or a group OK and silent for [`GROUP_EXPIRY_MS`]).
    pub remove: bool,
    /// Logs were found for the group in the window.
    pub has_data: bool,
}

/// Evaluates `m` at `now_ms` against the states its groups are in (`known`), without writing
/// anything.
pub fn evaluate(
    conn: &Connection,
    m: &Monitor,
    known: &HashMap<String, GroupState>,
    now_ms: i64,
) -> Result<Vec<Outcome>, IntakeError> {
    let q = &m.query;
    let is_count = q.rollup == Rollup::Count;
    let grouped = !q.by.is_empty();
    // Datadog's evaluation_delay: the window ends that long before now (logs that arrive late
    // are counted); the states' own clocks stay on now.
    let window_end = now_ms - m.evaluation_delay_ms();
    let mut present: BTreeMap<String, GroupValue> = BTreeMap::new();
    for g in compute(conn, m, &q.rollup, q.window_ms, window_end)? {
        // No logs in the window is no data, whatever the rollup says (a count of 0).
        let has = match (is_count, g.value) {
            (true, Some(v)) => v > 0.0,
            (false, Some(_)) => true,
            (_, None) => false,
        };
        if has {
            present.insert(g.group.clone(), g);
        }
    }
    let mut groups: BTreeMap<String, Vec<(String, String)>> = present
        .iter()
        .map(|(k, g)| (k.clone(), g.values.clone()))
        .collect();
    for k in known.keys() {
        groups.entry(k.clone()).or_insert_with(|| values_of(k));
    }
    let opts = &m.spec.options;
    let missing = m.missing_data();
    let no_data_ms = match missing {
        MissingData::NoData { timeframe_ms, .. } => Some(timeframe_ms),
        MissingData::Default | MissingData::Resolve => None,
    };
    let mut recent: Option<HashSet<String>> = None;
    let missing_any = !grouped && !present.contains_key(ALL)
        || groups.keys().any(|g| !present.contains_key(g))
        || groups.is_empty();
    if let Some(timeframe_ms) = no_data_ms.filter(|_| missing_any) {
        let seen = compute(
            conn,
            m,
            &Rollup::Count,
            timeframe_ms.max(q.window_ms),
            window_end,
        )?;
        let mut set = HashSet::new();
        for g in seen {
            if g.value.is_some_and(|v| v > 0.0) {
                groups.entry(g.group.clone()).or_insert(g.values);
                set.insert(g.group);
            }
        }
        recent = Some(set);
    }
    if !grouped {
        groups.entry(ALL.into()).or_default();
    } else if groups.keys().any(|g| g != ALL) {
        // Real groups exist: the placeholder is resolved below.
    } else if no_data_ms.is_some() {
        groups.entry(ALL.into()).or_default();
    }

    let critical = m.critical();
    let new_group_ms = m.new_group_delay_ms();
    let t = &opts.thresholds;
    let real_groups = groups.keys().any(|g| g != ALL);
    let mut out = Vec::new();
    for (group, values) in groups {
        let prev = known.get(&group).map(|s| s.state).unwrap_or(State::Ok);
        if grouped && group == ALL && real_groups {
            out.push(Outcome {
                group,
                values,
                value: None,
                from: prev,
                to: State::Ok,
                remove: true,
                has_data: false,
            });
            continue;
        }
        let (value, to) = if let Some(g) = present.get(&group) {
            let v = g.value.unwrap_or(0.0);
            let to = next_state(prev, v, critical, t, q.op);
            // Datadog's new_group_delay: a group new to a grouped monitor does not warn or
            // alert until it has been tracked that long.
            let held =
                grouped && to != State::Ok && is_new(known.get(&group), new_group_ms, now_ms);
            (Some(v), if held { prev } else { to })
        } else if recent.as_ref().is_some_and(|r| !r.contains(&group))
            && silent_for_timeframe(known.get(&group), no_data_ms.unwrap_or(0), now_ms)
        {
            (None, State::NoData)
        } else if missing == MissingData::Resolve {
            (None, State::Ok)
        } else if is_count {
            (Some(0.0), next_state(prev, 0.0, critical, t, q.op))
        } else {
            // Not a count: without data the group keeps its last state, as Datadog does.
            (None, prev)
        };
        let has_data = present.contains_key(&group);
        let silent_since = known
            .get(&group)
            .map(|s| s.last_data_ms.unwrap_or(s.since_ms));
        // Datadog's timeout_h: a triggered group that has had no log for that long resolves.
        let timed_out = !has_data
            && matches!(to, State::Alert | State::Warn)
            && m.timeout_ms()
                .zip(silent_since)
                .is_some_and(|(timeout, since)| now_ms - since >= timeout);
        let to = if timed_out { State::Ok } else { to };
        let expired = !has_data
            && to == State::Ok
            && group != ALL
            && silent_since.is_some_and(|t| now_ms - t > GROUP_EXPIRY_MS);
        out.push(Outcome {
            group,
            values,
            value,
            from: prev,
            to,
            remove: expired,
            has_data,
        });
    }
    Ok(out)
}

/// Whether a group without logs in the last `no_data_timeframe` has also been known for that
/// long (Datadog's No Data: no data *for* the timeframe). The clock starts at the last
/// evaluation that saw logs for the group or, for a group never seen, at the first evaluation
/// that tracked it (its state's `since`); a group evaluated for the first time is not No Data,
/// and one already in No Data stays there until logs come back.
fn silent_for_timeframe(s: Option<&GroupState>, no_data_ms: i64, now_ms: i64) -> bool {
    s.is_some_and(|s| {
        let since = s.last_data_ms.unwrap_or(s.since_ms);
        s.state == State::NoData || now_ms - since >= no_data_ms
    })
}

/// Whether a group is within its first `delay_ms`: not tracked yet, or OK and never
/// triggered since the evaluation that first tracked it (its state's `since`).
fn is_new(s: Option<&GroupState>, delay_ms: i64, now_ms: i64) -> bool {
    delay_ms > 0
        && s.is_none_or(|s| {
            s.state == State::Ok && s.last_triggered_ms.is_none() && now_ms - s.since_ms < delay_ms
        })
}

/// `host:web-1,service:x` back into its facets (for groups known only from the state table).
fn values_of(group: &str) -> Vec<(String, String)> {
    if group == ALL {
        return Vec::new();
    }
    group
        .split(',')
        .filter_map(|p| p.split_once(':'))
        .map(|(f, v)| (f.to_owned(), v.to_owned()))
        .collect()
}
