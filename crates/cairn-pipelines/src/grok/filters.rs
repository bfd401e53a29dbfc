//! Filters (`%{matcher:attr:filter}`): post-processing of what a matcher extracted.

use serde_json::{Map, Value};

use super::syntax::{Arg, Call};

#[derive(Debug, Clone)]
pub(crate) enum Filter {
    Number,
    Integer,
    Boolean,
    NullIf(String),
    Json,
    Lowercase,
    Uppercase,
    DecodeUriComponent,
    QueryString,
    KeyValue(KeyValue),
    Scale(f64),
    Csv(Csv),
    Array(Array),
    Url,
    RubyHash,
    Xml,
    /// The user-agent parser processor's details object; `true` percent-decodes first.
    UserAgent(bool),
}

impl Filter {
    pub(crate) fn from_call(call: &Call) -> Result<Filter, String> {
        let arity = |max: usize| {
            if call.args.len() > max {
                Err(format!(
                    "filter `{}` takes at most {max} argument(s), {} given",
                    call.name,
                    call.args.len()
                ))
            } else {
                Ok(())
            }
        };
        let filter = match call.name.as_str() {
            "number" => Filter::Number,
            "integer" => Filter::Integer,
            "boolean" => Filter::Boolean,
            "json" => Filter::Json,
            "lowercase" => Filter::Lowercase,
            "uppercase" => Filter::Uppercase,
            "decodeuricomponent" => Filter::DecodeUriComponent,
            "querystring" => Filter::QueryString,
            "nullIf" => {
                arity(1)?;
                let v =
                    str_arg(call, 0)?.ok_or("filter `nullIf` needs the value to treat as null")?;
                Filter::NullIf(v.to_string())
            }
            "scale" => {
                arity(1)?;
                let factor = match call.args.first() {
                    Some(Arg::Num(n)) => *n,
                    Some(Arg::Str(s)) => s
                        .trim()
                        .parse()
                        .map_err(|_| format!("filter `scale` needs a number, not {s:?}"))?,
                    _ => return Err("filter `scale` needs a factor, e.g. scale(1000)".to_string()),
                };
                Filter::Scale(factor)
            }
            "keyvalue" => {
                arity(4)?;
                Filter::KeyValue(KeyValue::from_args(call)?)
            }
            "csv" => {
                arity(3)?;
                Filter::Csv(Csv::from_args(call)?)
            }
            "array" => {
                arity(3)?;
                Filter::Array(Array::from_args(call)?)
            }
            "url" => Filter::Url,
            "rubyhash" => Filter::RubyHash,
            "xml" => Filter::Xml,
            "useragent" => {
                arity(1)?;
                let decode = match call.args.first().and_then(Arg::as_str) {
                    None if call.args.is_empty() => false,
                    Some("false") => false,
                    Some("true" | "decodeuricomponent") => true,
                    _ => {
                        return Err(
                            "filter `useragent` takes true or false (decode the text as a URI component first)"
                                .to_string(),
                        )
                    }
                };
                // Built now rather than on the first log, which would wait for it.
                crate::useragent::warm();
                Filter::UserAgent(decode)
            }
            other => return Err(format!("unknown filter `{other}`")),
        };
        if !matches!(
            filter,
            Filter::NullIf(_)
                | Filter::Scale(_)
                | Filter::KeyValue(_)
                | Filter::Csv(_)
                | Filter::Array(_)
                | Filter::UserAgent(_)
        ) && !call.args.is_empty()
        {
            return Err(format!("filter `{}` takes no arguments", call.name));
        }
        Ok(filter)
    }

    /// `None` drops the attribute: Datadog does not show null values, and a value that does
    /// not convert (`number` on `abc`) is left out rather than failing the whole rule.
    pub(crate) fn apply(&self, value: Value) -> Option<Value> {
        match self {
            Filter::Number => parse_number(&text(&value)),
            Filter::Integer => parse_integer(&text(&value)),
            Filter::Boolean => match value {
                Value::Bool(b) => Some(Value::Bool(b)),
                v => {
                    let t = text(&v);
                    if t.eq_ignore_ascii_case("true") {
                        Some(Value::Bool(true))
                    } else if t.eq_ignore_ascii_case("false") {
                        Some(Value::Bool(false))
                    } else {
                        None
                    }
                }
            },
            Filter::NullIf(null) => (text(&value) != *null).then_some(value),
            Filter::Json => serde_json::from_str(&text(&value)).ok(),
            Filter::Lowercase => Some(Value::String(text(&value).to_lowercase())),
            Filter::Uppercase => Some(Value::String(text(&value).to_uppercase())),
            Filter::DecodeUriComponent => Some(Value::String(percent_decode(&text(&value), false))),
            Filter::QueryString => Some(Value::Object(query_string(&text(&value)))),
            Filter::KeyValue(kv) => Some(Value::Object(kv.parse(&text(&value)))),
            Filter::Scale(factor) => {
                let n = match &value {
                    Value::Number(n) => n.as_f64()?,
                    v => text(v).trim().parse::<f64>().ok()?,
                };
                Some(number_value(n * factor))
            }
            Filter::Csv(csv) => Some(Value::Object(csv.parse(&text(&value)))),
            Filter::Array(array) => array.parse(&text(&value)),
            Filter::Url => url_details(&text(&value)).map(Value::Object),
            Filter::RubyHash => ruby_hash(&text(&value)),
            Filter::Xml => super::xml::parse(&text(&value)),
            Filter::UserAgent(decode) => crate::useragent::details(&text(&value), *decode),
        }
    }
}

fn str_arg(call: &Call, i: usize) -> Result<Option<&str>, String> {
    match call.args.get(i) {
        None => Ok(None),
        Some(a) => a.as_str().map(Some).ok_or_else(|| {
            format!(
                "argument {} of `{}` must be a quoted string",
                i + 1,
                call.name
            )
        }),
    }
}

fn text(value: &Value) -> std::borrow::Cow<'_, str> {
    match value {
        Value::String(s) => std::borrow::Cow::Borrowed(s),
        other => std::borrow::Cow::Owned(other.to_string()),
    }
}

/// A double as JSON: whole values print as integers (`200`, not `200.0`), as Datadog shows them.
pub(crate) fn number_value(n: f64) -> Value {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if n.fract() == 0.0 && n.abs() < EXACT {
        Value::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}

pub(crate) fn parse_number(s: &str) -> Option<Value> {
    let n: f64 = s.trim().parse().ok()?;
    n.is_finite().then(|| number_value(n))
}

pub(crate) fn parse_integer(s: &str) -> Option<Value> {
    let t = s.trim();
    let t = t.strip_prefix('+').unwrap_or(t);
    if let Ok(i) = t.parse::<i64>() {
        return Some(Value::from(i));
    }
    // `integerExt` reads `1e3`; anything with a fraction is not an integer.
    let n: f64 = t.parse().ok()?;
    (n.is_finite() && n.fract() == 0.0 && n.abs() < 9.2e18).then(|| Value::from(n as i64))
}

/// `%41` → `A`; invalid escapes are kept as written. `plus_is_space` for query strings.
pub(crate) fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                    }
                    _ => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `?a=1&b=x%20y` (or a whole URL, or `a=1&b=2`) → `{"a": "1", "b": "x y"}`.
fn query_string(s: &str) -> Map<String, Value> {
    let query = match s.find('?') {
        Some(at) => &s[at + 1..],
        None => s,
    };
    let query = query.split('#').next().unwrap_or("");
    let mut out = Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(k, true);
        if key.is_empty() {
            continue;
        }
        out.insert(key, Value::String(percent_decode(v, true)));
    }
    out
}

/// A URL's parts as Datadog's URL parser names them: `scheme`, `host`, `port` (the scheme's
/// default when not written), `path`, `queryString` (an object) and `auth` when there is one.
/// `None` when the text has no `scheme://host`.
pub fn url_details(url: &str) -> Option<Map<String, Value>> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return None;
    }
    let rest = rest.split('#').next().unwrap_or("");
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (auth, host_port) = match authority.rsplit_once('@') {
        Some((a, h)) => (Some(a), h),
        None => (None, authority),
    };
    let (host, port) = match host_port.rsplit_once(':') {
        Some((h, p))
            if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') =>
        {
            (h, p.parse::<u16>().ok().map(i64::from))
        }
        _ => (host_port, None),
    };
    if host.is_empty() {
        return None;
    }
    let port = port.or(match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        "ftp" => Some(21),
        _ => None,
    });
    let (path, query) = match tail.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (tail, None),
    };
    let mut out = Map::new();
    out.insert("scheme".to_string(), Value::String(scheme.to_string()));
    out.insert("host".to_string(), Value::String(host.to_string()));
    if let Some(port) = port {
        out.insert("port".to_string(), Value::from(port));
    }
    out.insert(
        "path".to_string(),
        Value::String(if path.is_empty() {
            "/".to_string()
        } else {
            path.to_string()
        }),
    );
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        out.insert("queryString".to_string(), Value::Object(query_string(q)));
    }
    if let Some(a) = auth.filter(|a| !a.is_empty()) {
        out.insert("auth".to_string(), Value::String(a.to_string()));
    }
    Some(out)
}

/// A Ruby hash literal (`{name => "John", :id => 3, "tags" => ["a"], x: nil}`) as JSON.
fn ruby_hash(s: &str) -> Option<Value> {
    let mut p = Ruby {
        s: s.as_bytes(),
        pos: 0,
    };
    let v = p.value()?;
    p.spaces();
    (p.pos == p.s.len()).then_some(v)
}

struct Ruby<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Ruby<'_> {
    fn spaces(&mut self) {
        while self.s.get(self.pos).is_some_and(u8::is_ascii_whitespace) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, token: &[u8]) -> bool {
        self.spaces();
        if self.s[self.pos..].starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Option<Value> {
        self.spaces();
        match *self.s.get(self.pos)? {
            b'{' => {
                self.pos += 1;
                let mut map = Map::new();
                if self.eat(b"}") {
                    return Some(Value::Object(map));
                }
                loop {
                    let key = self.key()?;
                    let value = self.value()?;
                    map.insert(key, value);
                    if self.eat(b",") {
                        continue;
                    }
                    return self.eat(b"}").then_some(Value::Object(map));
                }
            }
            b'[' => {
                self.pos += 1;
                let mut items = Vec::new();
                if self.eat(b"]") {
                    return Some(Value::Array(items));
                }
                loop {
                    items.push(self.value()?);
                    if self.eat(b",") {
                        continue;
                    }
                    return self.eat(b"]").then_some(Value::Array(items));
                }
            }
            q @ (b'"' | b'\'') => self.string(q).map(Value::String),
            b':' => {
                self.pos += 1;
                Some(Value::String(self.bare()?))
            }
            _ => {
                let word = self.bare()?;
                Some(match word.as_str() {
                    "nil" => Value::Null,
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    w => parse_number(w).unwrap_or(Value::String(word)),
                })
            }
        }
    }

    /// `"k" =>`, `:k =>`, `k =>` or `k:`.
    fn key(&mut self) -> Option<String> {
        self.spaces();
        let key = match *self.s.get(self.pos)? {
            q @ (b'"' | b'\'') => self.string(q)?,
            b':' => {
                self.pos += 1;
                self.bare()?
            }
            _ => self.bare()?,
        };
        if self.eat(b"=>") || self.eat(b":") {
            Some(key)
        } else {
            None
        }
    }

    fn bare(&mut self) -> Option<String> {
        let start = self.pos;
        while self
            .s
            .get(self.pos)
            .is_some_and(|b| b.is_ascii_alphanumeric() || b"_.+-?!".contains(b))
        {
            self.pos += 1;
        }
        (self.pos > start).then(|| String::from_utf8_lossy(&self.s[start..self.pos]).into_owned())
    }

    fn string(&mut self, quote: u8) -> Option<String> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let b = *self.s.get(self.pos)?;
            self.pos += 1;
            match b {
                b'\\' => {
                    out.push(*self.s.get(self.pos)?);
                    self.pos += 1;
                }
                b if b == quote => return String::from_utf8(out).ok(),
                b => out.push(b),
            }
        }
    }
}

/// `keyvalue([separatorStr[, characterAllowList[, quotingStr[, delimiter]]]])`.
#[derive(Debug, Clone)]
pub(crate) struct KeyValue {
    separator: String,
    allowed: Vec<char>,
    /// (open, close) pairs; Datadog's defaults are `<>`, `""` and `''`.
    quotes: Vec<(char, char)>,
    /// `None`: space, `,` and `;`.
    delimiter: Option<String>,
}

impl Default for KeyValue {
    fn default() -> KeyValue {
        KeyValue {
            separator: "=".to_string(),
            allowed: Vec::new(),
            quotes: vec![('<', '>'), ('"', '"'), ('\'', '\'')],
            delimiter: None,
        }
    }
}

impl KeyValue {
    pub(crate) fn from_args(call: &Call) -> Result<KeyValue, String> {
        let mut kv = KeyValue::default();
        if let Some(sep) = str_arg(call, 0)? {
            if sep.is_empty() {
                return Err("the keyvalue separator cannot be empty".to_string());
            }
            kv.separator = sep.to_string();
        }
        if let Some(allowed) = str_arg(call, 1)? {
            kv.allowed = allowed.chars().collect();
        }
        if let Some(quoting) = str_arg(call, 2)? {
            // An empty quotingStr keeps the default quotes, as Datadog documents.
            if !quoting.is_empty() {
                let chars: Vec<char> = quoting.chars().collect();
                if !chars.len().is_multiple_of(2) {
                    return Err(format!(
                        "the keyvalue quotingStr {quoting:?} must list open/close pairs, e.g. \"<>\" or \"{{}}\""
                    ));
                }
                kv.quotes = chars.chunks(2).map(|p| (p[0], p[1])).collect();
            }
        }
        if let Some(delimiter) = str_arg(call, 3)? {
            if !delimiter.is_empty() {
                kv.delimiter = Some(delimiter.to_string());
            }
        }
        Ok(kv)
    }

    fn is_value_char(&self, c: char) -> bool {
        c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '@') || self.allowed.contains(&c)
    }

    fn delimiter_at(&self, rest: &str) -> usize {
        match &self.delimiter {
            Some(d) if rest.starts_with(d.as_str()) => d.len(),
            Some(_) => 0,
            None => match rest.chars().next() {
                Some(c @ (' ' | ',' | ';' | '\t' | '\n' | '\r')) => c.len_utf8(),
                _ => 0,
            },
        }
    }

    /// A quoted run at the start of `rest`: (content, bytes consumed).
    fn quoted<'a>(&self, rest: &'a str) -> Option<(&'a str, usize)> {
        let first = rest.chars().next()?;
        let &(_, close) = self.quotes.iter().find(|(open, _)| *open == first)?;
        let body = &rest[first.len_utf8()..];
        let end = body.find(close)?;
        Some((&body[..end], first.len_utf8() + end + close.len_utf8()))
    }

    fn word_len(&self, rest: &str) -> usize {
        rest.char_indices()
            .find(|&(_, c)| !self.is_value_char(c))
            .map_or(rest.len(), |(i, _)| i)
    }

    pub(crate) fn parse(&self, s: &str) -> Map<String, Value> {
        let mut out = Map::new();
        let mut pos = 0;
        while pos < s.len() {
            let rest = &s[pos..];
            let d = self.delimiter_at(rest);
            if d > 0 {
                pos += d;
                continue;
            }
            let (key, key_len) = match self.quoted(rest) {
                Some(q) => q,
                None => {
                    let n = self.word_len(rest);
                    (&rest[..n], n)
                }
            };
            let after_key = &rest[key_len..];
            if key.is_empty() || !after_key.starts_with(self.separator.as_str()) {
                // Not a pair: skip one character so text between pairs is passed over.
                pos += rest.chars().next().map_or(1, |c| c.len_utf8()).max(key_len);
                continue;
            }
            let value_start = &after_key[self.separator.len()..];
            let (value, value_len) = match self.quoted(value_start) {
                Some(q) => q,
                None => {
                    let n = self.word_len(value_start);
                    (&value_start[..n], n)
                }
            };
            pos += key_len + self.separator.len() + value_len;
            // Datadog leaves out empty (`key=`) and `null` values.
            if value.is_empty() || value == "null" {
                continue;
            }
            insert_repeated(&mut out, key.to_string(), Value::String(value.to_string()));
        }
        out
    }
}

/// A key seen twice keeps both values, as an array.
fn insert_repeated(out: &mut Map<String, Value>, key: String, value: Value) {
    match out.get_mut(&key) {
        None => {
            out.insert(key, value);
        }
        Some(Value::Array(items)) => items.push(value),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, value]);
        }
    }
}

/// `csv(headers[, separator[, quotingcharacter]])`.
#[derive(Debug, Clone)]
pub(crate) struct Csv {
    headers: Vec<String>,
    separator: char,
    quote: char,
}

impl Csv {
    fn from_args(call: &Call) -> Result<Csv, String> {
        let headers =
            str_arg(call, 0)?.ok_or("filter `csv` needs its headers, e.g. csv(\"a,b,c\")")?;
        let headers: Vec<String> = headers.split(',').map(|h| h.trim().to_string()).collect();
        if headers.iter().any(String::is_empty) {
            return Err("a csv header name is empty".to_string());
        }
        let one_char = |s: &str, what: &str| {
            let mut chars = s.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Ok(c),
                _ => Err(format!("the csv {what} must be one character, not {s:?}")),
            }
        };
        let separator = match str_arg(call, 1)? {
            None => ',',
            Some("tab") => '\t',
            Some(s) => one_char(s, "separator")?,
        };
        let quote = match str_arg(call, 2)? {
            None => '"',
            Some(s) => one_char(s, "quoting character")?,
        };
        Ok(Csv {
            headers,
            separator,
            quote,
        })
    }

    fn parse(&self, s: &str) -> Map<String, Value> {
        let mut fields: Vec<String> = Vec::new();
        let mut current = String::new();
        let mut chars = s.chars().peekable();
        let mut in_quotes = false;
        while let Some(c) = chars.next() {
            if in_quotes {
                if c == self.quote {
                    if chars.peek() == Some(&self.quote) {
                        current.push(c);
                        chars.next();
                    } else {
                        in_quotes = false;
                    }
                } else {
                    current.push(c);
                }
            } else if c == self.quote {
                in_quotes = true;
            } else if c == self.separator {
                fields.push(std::mem::take(&mut current));
            } else {
                current.push(c);
            }
        }
        fields.push(current);
        let mut out = Map::new();
        // Fewer values than headers fill the first ones; extra values are dropped.
        for (header, field) in self.headers.iter().zip(fields) {
            if field.is_empty() {
                continue;
            }
            let value = field
                .parse::<i64>()
                .map(Value::from)
                .ok()
                .or_else(|| {
                    field
                        .parse::<f64>()
                        .ok()
                        .filter(|f| f.is_finite())
                        .map(number_value)
                })
                .unwrap_or(Value::String(field));
            out.insert(header.clone(), value);
        }
        out
    }
}

/// `array([[openCloseStr, ] separator][, filter])`: `[a, b]` → `["a", "b"]`.
#[derive(Debug, Clone)]
pub(crate) struct Array {
    open_close: Option<(char, char)>,
    separator: String,
    item: Option<Box<Filter>>,
}

impl Array {
    fn from_args(call: &Call) -> Result<Array, String> {
        let mut strings: Vec<&str> = Vec::new();
        let mut item = None;
        for (i, arg) in call.args.iter().enumerate() {
            match arg {
                Arg::Str(s) if item.is_none() => strings.push(s),
                Arg::Ident(name) if i + 1 == call.args.len() => {
                    let sub = Call {
                        name: name.clone(),
                        args: Vec::new(),
                        has_parens: false,
                    };
                    item = Some(Box::new(Filter::from_call(&sub)?));
                }
                _ => {
                    return Err(
                        "array(…) takes [openCloseStr,] separator and an optional filter name"
                            .to_string(),
                    )
                }
            }
        }
        let (open_close, separator) = match strings.as_slice() {
            [] => (None, ","),
            [sep] => (None, *sep),
            [oc, sep] => {
                let chars: Vec<char> = oc.chars().collect();
                match chars.as_slice() {
                    [] => (None, *sep),
                    [o, c] => (Some((*o, *c)), *sep),
                    _ => {
                        return Err(format!(
                            "array openCloseStr {oc:?} must be two characters, e.g. \"[]\""
                        ))
                    }
                }
            }
            _ => return Err("array(…) takes at most two strings".to_string()),
        };
        if separator.is_empty() {
            return Err("the array separator cannot be empty".to_string());
        }
        Ok(Array {
            open_close,
            separator: separator.to_string(),
            item,
        })
    }

    fn parse(&self, s: &str) -> Option<Value> {
        let mut body = s.trim();
        if let Some((open, close)) = self.open_close {
            body = body.strip_prefix(open)?.strip_suffix(close)?;
        }
        if body.trim().is_empty() {
            return Some(Value::Array(Vec::new()));
        }
        let items = body
            .split(self.separator.as_str())
            .map(|item| Value::String(item.trim().to_string()))
            .filter_map(|v| match &self.item {
                Some(f) => f.apply(v),
                None => Some(v),
            })
            .collect();
        Some(Value::Array(items))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_keeps_bad_escapes() {
        assert_eq!(percent_decode("%2Fservice%2Ftest", false), "/service/test");
        assert_eq!(percent_decode("100%", false), "100%");
        assert_eq!(percent_decode("%zz%4", false), "%zz%4");
        assert_eq!(percent_decode("a+b", false), "a+b");
        assert_eq!(percent_decode("a+b", true), "a b");
    }
}
