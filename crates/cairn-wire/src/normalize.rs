//! What the store keeps of an attribute value: only JSON that every reader can read back.
//!
//! SQLite's JSON functions refuse a document nested deeper than 1,000 levels ("malformed
//! JSON"), and a search evaluates them on every row it considers, so one such log made every
//! `@attr` search a 500 until retention deleted it. serde_json (which reads attributes back
//! for the search API) refuses more than 128 levels, numbers beyond `f64` (`1e999`) and lone
//! surrogate escapes (`"\ud800"`), and those logs came back with `{}` for attributes. SQLite
//! also reads an integer beyond `i64` as an approximate real, so `@id:<that integer>` could
//! match its neighbours. Rules, applied to each attribute value (and to reserved fields that
//! are strings):
//!
//! - **depth**: an object or array nested more than [`MAX_DEPTH`] levels inside an attribute
//!   value (the attribute's own value, if a container, is level 1) is replaced by a string
//!   holding its JSON text: compact, as the sender wrote it, lone surrogates replaced.
//! - **number**: an integer outside `i64`, or a number whose `f64` value is infinite, becomes
//!   a string holding its text as written (`10000…0`, `1e999`).
//! - **surrogate**: a `\u` escape of a lone surrogate becomes `\ufffd` (U+FFFD), in keys and
//!   values alike.
//!
//! A log changed by any rule gets the attribute [`MARKER_KEY`]`.`[`MARKER_FIELD`]: the list
//! of the rules that applied (`@_cairn.normalized:depth`). The agent applies the same rules
//! before sending (`cairn-checks/src/pyjson.rs`), so its logs pass through unchanged.
//!
//! The walk is a loop over the text with a counter, never a recursion, so no depth is refused
//! and no depth overflows the stack: the input is at most one payload (5 MB), and the output
//! at most twice its size (escaping the quotes of a stringified part).

use std::fmt::Write as _;

/// Levels of objects/arrays kept inside an attribute value. SQLite allows 1,000 and serde_json
/// 128 (counting the attributes object itself); 64 is far from both and deeper than any
/// structured log in practice. It is also the agent's limit.
pub const MAX_DEPTH: usize = 64;

/// The top-level attribute holding the marker object.
pub const MARKER_KEY: &str = "_cairn";
/// The marker object's member listing what was changed.
pub const MARKER_FIELD: &str = "normalized";

/// Which rules changed something.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Changes {
    pub depth: bool,
    pub number: bool,
    pub surrogate: bool,
}

impl Changes {
    pub fn any(&self) -> bool {
        self.depth || self.number || self.surrogate
    }

    /// The names stored in the marker, in a fixed order.
    pub fn names(&self) -> impl Iterator<Item = &'static str> {
        [
            (self.depth, "depth"),
            (self.number, "number"),
            (self.surrogate, "surrogate"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
    }
}

/// Appends the normalised form of `raw`, one JSON value that serde_json already accepted
/// (so its syntax is valid), to `out`.
pub fn value(raw: &str, out: &mut String, changes: &mut Changes) {
    // Most values are a string with no `\u` escape or a small number: nothing to change, and
    // serde_json already checked the syntax, so they are copied without a walk.
    match raw.as_bytes().first() {
        Some(b'"') if !raw.contains("\\u") => out.push_str(raw),
        Some(b'-' | b'0'..=b'9') if carried(raw) => out.push_str(raw),
        _ => walk(raw.as_bytes(), out, changes, Some(MAX_DEPTH)),
    }
}

/// A JSON string token (quotes included, syntax already valid) decoded, with lone surrogates
/// as U+FFFD; `changes.surrogate` is set when there was one.
pub fn string(raw: &str, changes: &mut Changes) -> Option<String> {
    if !raw.starts_with('"') {
        return None;
    }
    if !raw.contains('\\') {
        return Some(raw[1..raw.len() - 1].to_owned());
    }
    if !raw.contains("\\u") {
        return serde_json::from_str(raw).ok();
    }
    let mut fixed = String::with_capacity(raw.len());
    walk(raw.as_bytes(), &mut fixed, changes, None);
    serde_json::from_str(&fixed).ok()
}

/// The marker value to store: the sender's own `_cairn` object (if `existing` is one) with
/// `normalized` extended by `changes`, else a new object.
pub fn marker(existing: Option<&str>, changes: &Changes) -> String {
    use serde_json::{Map, Value};
    let mut obj = match existing.and_then(|t| serde_json::from_str::<Value>(t).ok()) {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let mut names: Vec<Value> = match obj.remove(MARKER_FIELD) {
        Some(Value::Array(a)) => a.into_iter().filter(Value::is_string).collect(),
        _ => Vec::new(),
    };
    for n in changes.names() {
        if !names.iter().any(|v| v == n) {
            names.push(Value::from(n));
        }
    }
    obj.insert(MARKER_FIELD.to_owned(), Value::Array(names));
    Value::Object(obj).to_string()
}

/// Copies `b` to `out` without whitespace, fixing lone surrogate escapes; with `limit`, also
/// stringifies containers opened past it and numbers JSON readers cannot carry.
fn walk(b: &[u8], out: &mut String, changes: &mut Changes, limit: Option<usize>) {
    let mut depth = 0usize;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'{' | b'[' if limit.is_some_and(|l| depth == l) => {
                let end = container_end(b, i);
                let mut text = String::with_capacity(end - i);
                walk(&b[i..end], &mut text, changes, None);
                push_json_str(out, &text);
                changes.depth = true;
                i = end;
            }
            c @ (b'{' | b'[') => {
                depth += 1;
                out.push(c as char);
                i += 1;
            }
            c @ (b'}' | b']') => {
                depth -= 1;
                out.push(c as char);
                i += 1;
            }
            b'"' => i = copy_string(b, i, out, changes),
            b'-' | b'0'..=b'9' => {
                let end = b[i..]
                    .iter()
                    .position(|c| !matches!(c, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
                    .map_or(b.len(), |n| i + n);
                let num = text_of(&b[i..end]);
                if limit.is_some() && !carried(num) {
                    push_json_str(out, num);
                    changes.number = true;
                } else {
                    out.push_str(num);
                }
                i = end;
            }
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            // `,` `:` and the letters of true/false/null.
            c => {
                out.push(c as char);
                i += 1;
            }
        }
    }
}

/// Whether SQLite and serde_json both read `num` as the number it is.
fn carried(num: &str) -> bool {
    if num.bytes().all(|c| c == b'-' || c.is_ascii_digit()) {
        num.parse::<i64>().is_ok()
    } else {
        num.parse::<f64>().is_ok_and(f64::is_finite)
    }
}

/// The index just past the container opening at `start`.
fn container_end(b: &[u8], start: usize) -> usize {
    let mut depth = 0usize;
    let mut i = start;
    while i < b.len() {
        match b[i] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            b'"' => {
                i = string_end(b, i);
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    b.len()
}

/// The index just past the string opening at `start`.
fn string_end(b: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

/// Copies the string opening at `start`; returns the index just past it.
fn copy_string(b: &[u8], start: usize, out: &mut String, changes: &mut Changes) -> usize {
    let end = string_end(b, start);
    let s = &b[start..end];
    let mut from = 0;
    let mut i = 0;
    while i < s.len() {
        if s[i] != b'\\' {
            i += 1;
            continue;
        }
        if s.get(i + 1) != Some(&b'u') {
            i += 2;
            continue;
        }
        let unit = hex4(s, i + 2);
        let len = match unit {
            Some(0xD800..=0xDBFF)
                if matches!(hex4(s, i + 8), Some(0xDC00..=0xDFFF))
                    && s.get(i + 6..i + 8) == Some(&b"\\u"[..]) =>
            {
                12
            }
            Some(0xD800..=0xDFFF) => {
                out.push_str(text_of(&s[from..i]));
                out.push_str("\\ufffd");
                changes.surrogate = true;
                i += 6;
                from = i;
                continue;
            }
            _ => 6,
        };
        i += len;
    }
    out.push_str(text_of(&s[from..]));
    end
}

fn hex4(s: &[u8], at: usize) -> Option<u32> {
    let digits = s.get(at..at + 4)?;
    u32::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}

/// `b` is a slice of valid UTF-8 cut at ASCII bytes, so it is valid UTF-8 too.
fn text_of(b: &[u8]) -> &str {
    std::str::from_utf8(b).expect("cut at ASCII bytes of valid UTF-8")
}

/// Appends `s` as a JSON string.
pub fn push_json_str(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn norm(raw: &str) -> (String, Changes) {
        let mut out = String::new();
        let mut ch = Changes::default();
        value(raw, &mut out, &mut ch);
        (out, ch)
    }

    fn nested(levels: usize, leaf: &str) -> String {
        format!("{}{leaf}{}", "[".repeat(levels), "]".repeat(levels))
    }

    #[test]
    fn ordinary_values_only_lose_whitespace() {
        for raw in [
            r#"{"a": [1, -2.5e3, true, null, "x \" \\ \u00e9 \ud83d\ude00"], "b": {}}"#,
            "9223372036854775807",
            "-9223372036854775808",
            "1e308",
            "1e-999",
            r#""plain""#,
        ] {
            let (out, ch) = norm(raw);
            assert_eq!(ch, Changes::default(), "{raw}");
            assert_eq!(
                serde_json::from_str::<Value>(&out).unwrap(),
                serde_json::from_str::<Value>(raw).unwrap()
            );
            assert!(!out.contains(": ") && !out.contains(", "), "{out}");
        }
    }

    #[test]
    fn sixty_four_levels_are_kept_and_the_sixty_fifth_becomes_its_text() {
        let (out, ch) = norm(&nested(MAX_DEPTH, "1"));
        assert_eq!((out, ch.depth), (nested(MAX_DEPTH, "1"), false));

        let (out, ch) = norm(&nested(1001, "1"));
        assert!(ch.depth && !ch.number && !ch.surrogate);
        let expected = nested(MAX_DEPTH, &format!("\"{}\"", nested(1001 - MAX_DEPTH, "1")));
        assert_eq!(out, expected);

        // The stringified part is compact JSON text of the same value; objects too, with
        // their quotes escaped.
        let deep_obj = format!("{}1{}", r#"{"k": "#.repeat(70), "}".repeat(70));
        let (out, ch) = norm(&deep_obj);
        assert!(ch.depth);
        let mut v = &serde_json::from_str::<Value>(&out).unwrap();
        for _ in 0..MAX_DEPTH {
            v = &v["k"];
        }
        let text = v.as_str().unwrap();
        assert_eq!(text, format!("{}1{}", r#"{"k":"#.repeat(6), "}".repeat(6)));
    }

    #[test]
    fn a_deep_part_anywhere_is_cut_while_its_siblings_stay() {
        let raw = format!(r#"{{"deep":{},"n":1,"s":"x"}}"#, nested(100, "2"));
        let (out, ch) = norm(&raw);
        assert!(ch.depth);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!((&v["n"], &v["s"]), (&json!(1), &json!("x")));
        // The attribute object here is level 1, so its `deep` member keeps 63 levels.
        let mut d = &v["deep"];
        for _ in 0..MAX_DEPTH - 1 {
            d = &d[0];
        }
        assert_eq!(d, &json!(nested(100 - (MAX_DEPTH - 1), "2")));
    }

    #[test]
    fn numbers_readers_cannot_carry_become_their_text() {
        let huge = format!("1{}", "0".repeat(400));
        for raw in [
            huge.as_str(),
            "9223372036854775808",
            "-9223372036854775809",
            "18446744073709551616",
            "1e999",
            "-1E+400",
            "1.5e309",
        ] {
            let (out, ch) = norm(raw);
            assert!(ch.number && !ch.depth && !ch.surrogate, "{raw}");
            assert_eq!(out, format!("\"{raw}\""));
        }
        let (out, _) = norm(r#"{"a":[1e999, 2]}"#);
        assert_eq!(out, r#"{"a":["1e999",2]}"#);
    }

    #[test]
    fn lone_surrogates_become_the_replacement_character() {
        for (raw, want) in [
            (r#""\ud800""#, "\u{fffd}"),
            (r#""a\udc00b""#, "a\u{fffd}b"),
            (r#""\ud800\ud83d\ude00""#, "\u{fffd}\u{1f600}"),
            (r#""\ud800\n""#, "\u{fffd}\n"),
            (r#""\uDBFF\uDBFF""#, "\u{fffd}\u{fffd}"),
        ] {
            let (out, ch) = norm(raw);
            assert!(ch.surrogate, "{raw}");
            assert_eq!(serde_json::from_str::<String>(&out).unwrap(), want, "{raw}");
            let mut ch = Changes::default();
            assert_eq!(string(raw, &mut ch).as_deref(), Some(want));
            assert!(ch.surrogate);
        }
        let (out, ch) = norm(r#"{"\udfff":1}"#);
        assert!(ch.surrogate);
        assert_eq!(
            serde_json::from_str::<Value>(&out).unwrap(),
            json!({"\u{fffd}": 1})
        );
        let mut ch = Changes::default();
        assert_eq!(string(r#""\ud83d\ude00""#, &mut ch).as_deref(), Some("😀"));
        assert!(!ch.any());
    }

    #[test]
    fn normalising_twice_changes_nothing_more() {
        let raw = format!(
            r#"{{"a":{},"b":1e999,"c":"\ud800","d":{}}}"#,
            nested(300, "\"\\udc00\""),
            "1".repeat(30)
        );
        let (once, ch) = norm(&raw);
        assert!(ch.depth && ch.number && ch.surrogate);
        let (twice, ch) = norm(&once);
        assert_eq!((twice, ch), (once, Changes::default()));
    }

    #[test]
    fn the_marker_lists_the_rules_and_merges_with_the_senders_own() {
        let all = Changes {
            depth: true,
            number: false,
            surrogate: true,
        };
        assert_eq!(
            marker(None, &all),
            r#"{"normalized":["depth","surrogate"]}"#
        );
        assert_eq!(
            serde_json::from_str::<Value>(&marker(
                Some(r#"{"normalized":["number","depth"],"x":1}"#),
                &all
            ))
            .unwrap(),
            json!({"normalized":["number","depth","surrogate"],"x":1})
        );
        assert_eq!(
            marker(Some("5"), &all),
            r#"{"normalized":["depth","surrogate"]}"#
        );
    }
}
