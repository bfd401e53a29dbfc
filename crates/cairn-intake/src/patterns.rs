//! Log patterns: a Drain-style template miner over the messages of the logs a filter matches.
//!
//! Each message is split on whitespace and its obvious variables (numbers, hex, UUIDs, IPs,
//! times, quoted strings, the values of `key=value`) are masked to `<*>` first. Messages are
//! then routed through a fixed-depth prefix tree (token count, then the first token) to a leaf
//! holding a few clusters; the most similar cluster (share of the positions not masked in
//! both that hold the same token) takes the message if it reaches [`SIMILARITY`], and the
//! positions where the two differ become `<*>`. Otherwise the message starts a cluster of its own.
//!
//! Why a tree keyed on the first token only (Drain's depth 3): with a second token level, a
//! variable word in second place ("user alice …", "user bob …") splits one template into a
//! leaf per value until the leaf fan-out cap is reached; the similarity test merges them anyway.
//!
//! No crate was used: crates.io search was not reachable from this machine (`cargo search`
//! answers 404 here), and the miner is small enough that owning it costs less than fitting one.

use std::collections::HashMap;
use std::time::Instant;

use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use crate::api::{row_to_event, sql_error, Filter, LogEvent, SELECT_COLUMNS};
use crate::query::{self, Sql, TextMode};
use crate::IntakeError;

/// Most logs clustered by one request.
pub const MAX_LOGS: u32 = 100_000;
pub const DEFAULT_MAX_PATTERNS: u32 = 50;
pub const MAX_PATTERNS: u32 = 1_000;
/// Share of equal positions a message needs to join a cluster (Drain3's default).
pub const SIMILARITY: f64 = 0.4;
/// Distinct first tokens per token count before new ones share the `<*>` branch, so that a
/// variable first word cannot grow the tree without bound.
const MAX_CHILDREN: usize = 100;
/// Tokens of a message taken into account; the rest is one trailing `<*>`. Bounds the work per
/// message (stack traces can be thousands of tokens).
const MAX_TOKENS: usize = 128;
/// Clusters one leaf holds; past it a message joins its most similar cluster even below
/// [`SIMILARITY`], so that messages alike in shape but not in words (free text with the same
/// first word and length) cost a bounded scan each rather than one growing with every message.
const MAX_LEAF_CLUSTERS: usize = 64;
/// Distinct tokens remembered; later new ones count as variables. Bounds memory when nearly
/// every token is unique and escaped the masking.
const MAX_WORDS: usize = 500_000;
/// Characters of a message read (a message may be 1 MB); a longer one ends in `<*>`.
pub const MAX_MESSAGE_CHARS: usize = 8_192;
/// Longest `query` returned: it is ANDed with the Explorer's query, which has its own limit.
const MAX_QUERY_CHARS: usize = 2_000;

pub const WILDCARD: &str = "<*>";

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct PatternsRequest {
    #[serde(default)]
    pub filter: Filter,
    /// Most logs clustered, newest first (capped at [`MAX_LOGS`]).
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub max_patterns: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Pattern {
    pub id: String,
    pub template: String,
    pub count: u64,
    pub status: std::collections::BTreeMap<String, u64>,
    pub sample: LogEvent,
    pub query: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct PatternsData {
    pub patterns: Vec<Pattern>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct PatternsMeta {
    pub elapsed: u64,
    pub status: String,
    pub scanned: u64,
    /// More logs matched than were clustered.
    pub truncated: bool,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct PatternsResponse {
    pub data: PatternsData,
    pub meta: PatternsMeta,
}

/// Token ids; `0` is always `<*>`.
type Tok = u32;
const WILD: Tok = 0;

struct Cluster {
    tokens: Vec<Tok>,
    count: u64,
    /// Per status id.
    status: HashMap<u32, u64>,
    /// The first log that joined, the newest when logs come newest first.
    sample_id: i64,
}

/// The miner's state; feed it messages with [`Miner::add`].
pub struct Miner {
    words: HashMap<String, Tok>,
    names: Vec<String>,
    statuses: HashMap<String, u32>,
    status_names: Vec<String>,
    clusters: Vec<Cluster>,
    /// (token count, first-token key) → clusters in that leaf.
    leaves: HashMap<(usize, Tok), Vec<usize>>,
    /// Token count → distinct first-token keys seen.
    children: HashMap<usize, usize>,
    scratch: Vec<Tok>,
}

impl Default for Miner {
    fn default() -> Self {
        Miner {
            words: HashMap::from([(WILDCARD.to_owned(), WILD)]),
            names: vec![WILDCARD.to_owned()],
            statuses: HashMap::new(),
            status_names: Vec::new(),
            clusters: Vec::new(),
            leaves: HashMap::new(),
            children: HashMap::new(),
            scratch: Vec::new(),
        }
    }
}

/// One mined template.
#[derive(Debug, Clone, PartialEq)]
pub struct Mined {
    pub template: String,
    pub count: u64,
    pub status: std::collections::BTreeMap<String, u64>,
    pub sample_id: i64,
    /// The template's constant parts, in order.
    pub fragments: Vec<String>,
}

impl Miner {
    fn intern(&mut self, word: &str) -> Tok {
        if let Some(t) = self.words.get(word) {
            return *t;
        }
        if self.names.len() >= MAX_WORDS {
            return WILD;
        }
        let t = self.names.len() as Tok;
        self.names.push(word.to_owned());
        self.words.insert(word.to_owned(), t);
        t
    }

    /// Adds one message; returns the index of the cluster it joined. `cut`: the message was
    /// longer than what is given, so its last token may be a part of a word.
    pub fn add(&mut self, id: i64, status: &str, message: &str, cut: bool) -> usize {
        let mut toks = std::mem::take(&mut self.scratch);
        toks.clear();
        for_each_token(message, |t| {
            if toks.len() < MAX_TOKENS {
                let tok = self.intern(&t);
                toks.push(tok);
                true
            } else {
                if toks.len() == MAX_TOKENS {
                    toks.push(WILD);
                }
                false
            }
        });
        if cut && toks.len() <= MAX_TOKENS {
            match toks.last_mut() {
                Some(last) => *last = WILD,
                None => toks.push(WILD),
            }
        }
        let status_id = match self.statuses.get(status) {
            Some(s) => *s,
            None => {
                let s = self.status_names.len() as u32;
                self.status_names.push(status.to_owned());
                self.statuses.insert(status.to_owned(), s);
                s
            }
        };
        let len = toks.len();
        let first = toks.first().copied().unwrap_or(WILD);
        let mut key = if first != WILD && !self.names[first as usize].contains(WILDCARD) {
            first
        } else {
            WILD
        };
        if !self.leaves.contains_key(&(len, key)) {
            let n = self.children.entry(len).or_insert(0);
            if *n >= MAX_CHILDREN {
                key = WILD;
            } else {
                *n += 1;
            }
        }
        let leaf = self.leaves.entry((len, key)).or_default();
        let mut best: Option<(usize, f64, usize)> = None;
        for &ci in leaf.iter() {
            let c = &self.clusters[ci];
            let (mut same, mut params, mut both_wild) = (0usize, 0usize, 0usize);
            for (a, b) in c.tokens.iter().zip(&toks) {
                if a == b {
                    if *a == WILD {
                        both_wild += 1;
                    } else {
                        same += 1;
                    }
                } else if *a == WILD {
                    params += 1;
                }
            }
            // Positions masked in both say nothing about the template: two messages that
            // share only their numbers are not alike. All masked: alike.
            let counted = len - both_wild;
            let sim = if counted == 0 {
                1.0
            } else {
                same as f64 / counted as f64
            };
            let better = match best {
                None => true,
                Some((_, s, p)) => sim > s || (sim == s && params > p),
            };
            if better {
                best = Some((ci, sim, params));
            }
        }
        let full = leaf.len() >= MAX_LEAF_CLUSTERS;
        let joined = match best {
            Some((ci, sim, _)) if sim >= SIMILARITY || full => {
                let c = &mut self.clusters[ci];
                for (a, b) in c.tokens.iter_mut().zip(&toks) {
                    if a != b {
                        *a = WILD;
                    }
                }
                c.count += 1;
                *c.status.entry(status_id).or_insert(0) += 1;
                ci
            }
            _ => {
                let ci = self.clusters.len();
                self.clusters.push(Cluster {
                    tokens: toks.clone(),
                    count: 1,
                    status: HashMap::from([(status_id, 1)]),
                    sample_id: id,
                });
                leaf.push(ci);
                ci
            }
        };
        self.scratch = toks;
        joined
    }

    /// The templates, most frequent first (ties by template text).
    pub fn finish(&self) -> Vec<Mined> {
        let mut out: Vec<Mined> = self
            .clusters
            .iter()
            .map(|c| {
                let words: Vec<&str> = c
                    .tokens
                    .iter()
                    .map(|t| self.names[*t as usize].as_str())
                    .collect();
                Mined {
                    template: words.join(" "),
                    count: c.count,
                    status: c
                        .status
                        .iter()
                        .map(|(s, n)| (self.status_names[*s as usize].clone(), *n))
                        .collect(),
                    sample_id: c.sample_id,
                    fragments: fragments(&words),
                }
            })
            .collect();
        out.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.template.cmp(&b.template))
        });
        out
    }

    /// The current template of cluster `ci` (see [`Miner::add`]).
    pub fn template_of(&self, ci: usize) -> String {
        self.clusters[ci]
            .tokens
            .iter()
            .map(|t| self.names[*t as usize].as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Calls `f` with each whitespace-separated token of `message`, variables masked, until it
/// returns false. A quoted string is one token even with spaces inside.
pub fn for_each_token(message: &str, mut f: impl FnMut(std::borrow::Cow<'_, str>) -> bool) {
    let b = message.as_bytes();
    let mut i = 0;
    // Once a quote character has no closing one after some point, it has none after any
    // later point either: remembering that keeps the scan linear.
    let (mut no_double, mut no_single) = (false, false);
    while i < b.len() {
        // Whitespace: ASCII fast path; other Unicode spaces are handled by char decoding.
        let c = message[i..]
            .chars()
            .next()
            .expect("i is on a char boundary");
        if c.is_whitespace() {
            i += c.len_utf8();
            continue;
        }
        let start = i;
        // A quote opening the token, or right after `key=`, runs to its closing quote.
        let mut quoted: Option<(usize, usize)> = None;
        let mut j = i;
        while j < b.len() {
            let c = message[j..].chars().next().expect("char boundary");
            if c.is_whitespace() {
                break;
            }
            let opens = (c == '"' && !no_double) || (c == '\'' && !no_single);
            if opens && (j == start || b[j - 1] == b'=' || b[j - 1] == b':') {
                if let Some(end) = message[j + 1..].find(c) {
                    let close = j + 1 + end;
                    quoted = Some((j, close + 1));
                    j = close + 1;
                    continue;
                }
                if c == '"' {
                    no_double = true;
                } else {
                    no_single = true;
                }
            }
            j += c.len_utf8();
        }
        let token = &message[start..j];
        i = j;
        let masked = match quoted {
            Some((q0, q1)) => {
                let mut s = String::with_capacity(token.len());
                s.push_str(&message[start..q0]);
                s.push_str(WILDCARD);
                s.push_str(&message[q1..j]);
                std::borrow::Cow::Owned(mask_word(&s).unwrap_or(s))
            }
            None => match mask_word(token) {
                Some(m) => std::borrow::Cow::Owned(m),
                None => std::borrow::Cow::Borrowed(token),
            },
        };
        if !f(masked) {
            return;
        }
    }
}

/// The token with its variable part masked, or `None` when it is a constant.
fn mask_word(token: &str) -> Option<String> {
    // key=value: the value is the variable (an empty value stays as it is).
    if let Some(eq) = token.find('=') {
        let key = &token[..eq];
        let value = &token[eq + 1..];
        if !key.is_empty()
            && !value.is_empty()
            && value != WILDCARD
            && key
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '@' | '[' | ']'))
        {
            return Some(format!("{key}={WILDCARD}"));
        }
    }
    // Punctuation around the core stays: `(123)` → `(<*>)`, `12,` → `<*>,`.
    let core_start = token
        .find(|c: char| c.is_alphanumeric() || c == '-' || c == '+')
        .unwrap_or(token.len());
    let core_end = token
        .rfind(|c: char| c.is_alphanumeric() || c == '%')
        .map(|e| e + token[e..].chars().next().map_or(1, char::len_utf8))
        .unwrap_or(core_start);
    if core_start >= core_end {
        return None;
    }
    let core = &token[core_start..core_end];
    if core != WILDCARD && is_variable(core) {
        Some(format!(
            "{}{WILDCARD}{}",
            &token[..core_start],
            &token[core_end..]
        ))
    } else {
        None
    }
}

/// Numbers (with units, separators, dates, times, IPv4 and ports), hex, UUIDs, IPv6.
fn is_variable(core: &str) -> bool {
    let body = core.strip_prefix(['-', '+']).unwrap_or(core);
    let Some(first) = body.chars().next() else {
        return false;
    };
    if !body.chars().any(|c| c.is_ascii_digit()) {
        return false;
    }
    if body.len() > 2 && (body.starts_with("0x") || body.starts_with("0X")) {
        return body[2..].chars().all(|c| c.is_ascii_hexdigit());
    }
    // Hex ids, UUIDs, IPv6: hex digits with `-` or `:` between, at least 6 of them.
    let hexish = body
        .chars()
        .all(|c| c.is_ascii_hexdigit() || c == '-' || c == ':');
    if hexish && body.chars().filter(char::is_ascii_hexdigit).count() >= 6 {
        return true;
    }
    if !first.is_ascii_digit() {
        return false;
    }
    // Starts with a digit: a number, a date or time, an address, with a short unit at most
    // (`12ms`, `3.5s`, `2026-01-02T10:00:00Z`, `10.0.0.1:80`, `75%`).
    let mut letters = 0;
    for c in body.chars() {
        if c.is_ascii_alphabetic() {
            letters += 1;
        } else if !(c.is_ascii_digit()
            || matches!(c, '.' | ',' | ':' | '-' | '_' | '/' | '+' | '%'))
        {
            return false;
        }
    }
    letters <= 4
}

/// The constant runs of a template: adjacent constant tokens joined by a space, cut at every
/// `<*>` (also one inside a token, as in `id=<*>`).
fn fragments(words: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for w in words {
        let parts = w.split(WILDCARD);
        let mut first = true;
        for p in parts {
            if !first {
                // A `<*>` was between the previous part and this one.
                if !cur.trim().is_empty() {
                    out.push(std::mem::take(&mut cur).trim().to_owned());
                }
                cur.clear();
            }
            if !p.is_empty() {
                if first && !cur.is_empty() {
                    cur.push(' ');
                }
                cur.push_str(p);
            }
            first = false;
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_owned());
    }
    out
}

/// A search query that matches every log of a template: its constant runs as quoted phrases.
/// Runs without a letter or digit are left out when others exist (they only add substring
/// scans); a template made only of variables gives `*`.
pub fn query_of(fragments: &[String]) -> String {
    let useful: Vec<&String> = fragments
        .iter()
        .filter(|f| f.chars().any(char::is_alphanumeric))
        .collect();
    let chosen: Vec<&String> = if useful.is_empty() {
        fragments.iter().collect()
    } else {
        useful
    };
    let mut out = String::new();
    for f in chosen {
        let mut phrase = String::with_capacity(f.len() + 2);
        phrase.push('"');
        for c in f.chars() {
            if c == '"' || c == '\\' {
                phrase.push('\\');
            }
            phrase.push(c);
        }
        phrase.push('"');
        if out.len() + phrase.len() + 1 > MAX_QUERY_CHARS {
            // A prefix of a phrase (cut between words) is a looser phrase that still matches.
            if out.is_empty() {
                let mut cut = String::from("\"");
                for w in f.split(' ') {
                    let esc: String = w
                        .chars()
                        .flat_map(|c| {
                            let e = (c == '"' || c == '\\').then_some('\\');
                            e.into_iter().chain(std::iter::once(c))
                        })
                        .collect();
                    if cut.len() + esc.len() + 2 > MAX_QUERY_CHARS {
                        break;
                    }
                    if cut.len() > 1 {
                        cut.push(' ');
                    }
                    cut.push_str(&esc);
                }
                cut.push('"');
                if cut.len() > 2 {
                    out = cut;
                }
            }
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&phrase);
    }
    if out.is_empty() {
        "*".into()
    } else {
        out
    }
}

/// `POST /api/v2/logs/analytics/patterns`.
pub fn patterns(
    conn: &Connection,
    req: &PatternsRequest,
    now_ms: i64,
) -> Result<PatternsResponse, IntakeError> {
    let started = Instant::now();
    let (node, from, to) = req.filter.resolve(now_ms)?;
    let limit = match req.limit {
        None => MAX_LOGS,
        Some(0) => {
            return Err(IntakeError::BadRequest(format!(
                "limit must be between 1 and {MAX_LOGS}"
            )))
        }
        Some(n) => n.min(MAX_LOGS),
    };
    let max_patterns = match req.max_patterns {
        None => DEFAULT_MAX_PATTERNS,
        Some(n) if (1..=MAX_PATTERNS).contains(&n) => n,
        Some(_) => {
            return Err(IntakeError::BadRequest(format!(
                "max_patterns must be between 1 and {MAX_PATTERNS}"
            )))
        }
    };
    let mut sql = Sql::default();
    // One character more than is read tells that the message was cut.
    sql.push("SELECT id, status, substr(message, 1, ")
        .bind(MAX_MESSAGE_CHARS as i64 + 1)
        .push(") FROM logs AS logs WHERE timestamp_ms >= ")
        .bind(from)
        .push(" AND timestamp_ms <= ")
        .bind(to)
        .push(" AND ");
    // Up to 100,000 rows are read whatever matches, so the index's matches are collected once
    // rather than probed per row.
    query::to_sql(&node, TextMode::Materialized, &mut sql);
    // One more than the limit tells whether the answer is truncated.
    sql.push(" ORDER BY timestamp_ms DESC, id DESC LIMIT ")
        .bind(i64::from(limit) + 1);
    let mut miner = Miner::default();
    let mut scanned = 0u64;
    let mut truncated = false;
    {
        let mut stmt = conn.prepare_cached(&sql.text).map_err(sql_error)?;
        let mut rows = stmt
            .query(rusqlite::params_from_iter(sql.params.iter()))
            .map_err(sql_error)?;
        while let Some(r) = rows.next().map_err(sql_error)? {
            if scanned == u64::from(limit) {
                truncated = true;
                break;
            }
            let id: i64 = r.get(0)?;
            let status = r.get_ref(1)?.as_str().unwrap_or("");
            let message = r.get_ref(2)?.as_str().unwrap_or("");
            let (message, cut) = match message.char_indices().nth(MAX_MESSAGE_CHARS) {
                Some((at, _)) => (&message[..at], true),
                None => (message, false),
            };
            miner.add(id, status, message, cut);
            scanned += 1;
        }
    }
    let mined = miner.finish();
    let mut sample = conn.prepare_cached(&format!("{SELECT_COLUMNS} WHERE id = ?1"))?;
    let mut patterns = Vec::new();
    for (i, m) in mined.into_iter().take(max_patterns as usize).enumerate() {
        let (_, _, event) = sample.query_row([m.sample_id], row_to_event)?;
        patterns.push(Pattern {
            id: format!("p{}", i + 1),
            query: query_of(&m.fragments),
            template: m.template,
            count: m.count,
            status: m.status,
            sample: event,
        });
    }
    Ok(PatternsResponse {
        data: PatternsData { patterns },
        meta: PatternsMeta {
            elapsed: started.elapsed().as_millis() as u64,
            status: "done".into(),
            scanned,
            truncated,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(message: &str) -> Vec<String> {
        let mut out = Vec::new();
        for_each_token(message, |t| {
            out.push(t.into_owned());
            true
        });
        out
    }

    #[test]
    fn obvious_variables_are_masked_before_clustering() {
        assert_eq!(
            masked("took 12ms from 10.0.0.1:8080 id=abc (42) 0xdeadBEEF"),
            ["took", "<*>", "from", "<*>", "id=<*>", "(<*>)", "<*>"]
        );
        assert_eq!(
            masked("req 3f2b9c1e-1d2a-4c3b-9e8f-0123456789ab at 2026-12-02T20:45:00.123Z"),
            ["req", "<*>", "at", "<*>"]
        );
        assert_eq!(
            masked(r#"said "hello there" to name='a b' v2 route /api/v1"#),
            ["said", "<*>", "to", "name=<*>", "v2", "route", "/api/v1"]
        );
        assert_eq!(
            masked("fe80::1ff:fe23:4567:890a -5 +7"),
            ["<*>", "<*>", "<*>"]
        );
        assert_eq!(masked("don't stop  at 75%"), ["don't", "stop", "at", "<*>"]);
    }

    #[test]
    fn variable_words_merge_and_every_message_keeps_its_cluster() {
        let mut m = Miner::default();
        let mut a = Vec::new();
        for (i, name) in ["alice", "bob", "carol", "dave"].iter().enumerate() {
            a.push(m.add(
                i as i64,
                "info",
                &format!("user {name} logged in from 10.0.0.{i}"),
                false,
            ));
        }
        let b = m.add(9, "error", "disk full on /var", false);
        assert!(a.iter().all(|c| *c == a[0]));
        assert_ne!(a[0], b);
        assert_eq!(m.template_of(a[0]), "user <*> logged in from <*>");
        let out = m.finish();
        assert_eq!(out[0].count, 4);
        assert_eq!(out[0].sample_id, 0);
        assert_eq!(out[0].fragments, ["user", "logged in from"]);
        assert_eq!(query_of(&out[0].fragments), r#""user" "logged in from""#);
    }

    #[test]
    fn shared_numbers_alone_do_not_make_messages_alike() {
        let mut m = Miner::default();
        let picked = m.add(
            1,
            "info",
            "worker 3 picked task 0a1b2c3d4e from queue orders",
            false,
        );
        let finished = m.add(
            2,
            "info",
            "worker 5 finished task 9f8e7d6c5b in 12 ms",
            false,
        );
        assert_ne!(picked, finished);
        let n1 = m.add(3, "info", "12345", false);
        let n2 = m.add(4, "info", "777", false);
        assert_eq!(n1, n2);
        assert_eq!(m.template_of(n1), "<*>");
    }

    #[test]
    fn a_leaf_holds_a_bounded_number_of_clusters_and_cut_messages_end_in_a_wildcard() {
        let mut m = Miner::default();
        let mut rng = 7u64;
        for i in 0..5_000 {
            let words: Vec<String> = (0..6)
                .map(|_| {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    format!("w{}", char::from(b'a' + (rng % 26) as u8))
                        .repeat(1 + (rng % 3) as usize)
                })
                .collect();
            m.add(i, "info", &format!("same {}", words.join(" ")), false);
        }
        assert!(
            m.clusters.len() <= MAX_LEAF_CLUSTERS,
            "{}",
            m.clusters.len()
        );
        let c = m.add(1, "info", "a long message cut in the midd", true);
        assert_eq!(m.template_of(c), "a long message cut in the <*>");
        let c = m.add(1, "info", "unclosed \"quote and 'another here", false);
        assert_eq!(m.template_of(c), "unclosed \"quote and 'another here");
    }

    #[test]
    fn fragments_cut_inside_tokens_and_queries_escape_quotes() {
        assert_eq!(
            fragments(&["GET", "id=<*>", "took", "(<*>)", "ms"]),
            ["GET id=", "took (", ") ms"]
        );
        assert_eq!(query_of(&[r#"a "b" \c"#.to_owned()]), r#""a \"b\" \\c""#);
        assert_eq!(query_of(&["-".to_owned()]), r#""-""#);
        assert_eq!(query_of(&[]), "*");
        let long = vec!["word ".repeat(1_000)];
        let q = query_of(&long);
        assert!(q.len() <= MAX_QUERY_CHARS && q.starts_with("\"word word"));
        crate::query::parse(&q).unwrap();
    }
}
