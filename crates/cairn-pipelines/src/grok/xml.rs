//! The `xml` filter: a well-formed XML document as JSON, the way Datadog shapes it. An element
//! with only text is a string; attributes and child elements are keys of an object, the text
//! beside them is `value`, and a repeated child becomes an array. Values stay strings.
//!
//! Small on purpose: no namespaces, DTDs or processing instructions beyond skipping them.

use serde_json::{Map, Value};

pub(crate) fn parse(text: &str) -> Option<Value> {
    let mut p = Parser {
        s: text,
        pos: 0,
        depth: 0,
    };
    p.misc();
    let (name, value) = p.element()?;
    p.misc();
    if p.pos != p.s.len() {
        return None;
    }
    let mut root = Map::new();
    root.insert(name, value);
    Some(Value::Object(root))
}

/// Deeper documents are refused rather than risking the stack on hostile input.
const MAX_DEPTH: usize = 128;

struct Parser<'a> {
    s: &'a str,
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.s[self.pos..]
    }

    fn spaces(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.s.len() - trimmed.len();
    }

    /// Skips whitespace, comments, `<?…?>` and `<!DOCTYPE …>` between elements.
    fn misc(&mut self) {
        loop {
            self.spaces();
            let rest = self.rest();
            let end = if rest.starts_with("<!--") {
                rest.find("-->").map(|i| i + 3)
            } else if rest.starts_with("<?") {
                rest.find("?>").map(|i| i + 2)
            } else if rest.starts_with("<!DOCTYPE") {
                rest.find('>').map(|i| i + 1)
            } else {
                None
            };
            match end {
                Some(n) => self.pos += n,
                None => return,
            }
        }
    }

    fn name(&mut self) -> Option<String> {
        let rest = self.rest();
        let n = rest
            .find(|c: char| !(c.is_alphanumeric() || "_-.:".contains(c)))
            .unwrap_or(rest.len());
        if n == 0 {
            return None;
        }
        let name = rest[..n].to_string();
        self.pos += n;
        Some(name)
    }

    fn element(&mut self) -> Option<(String, Value)> {
        self.depth += 1;
        if self.depth > MAX_DEPTH || !self.rest().starts_with('<') {
            return None;
        }
        self.pos += 1;
        let name = self.name()?;
        let mut fields = Map::new();
        loop {
            self.spaces();
            if self.rest().starts_with("/>") {
                self.pos += 2;
                self.depth -= 1;
                return Some((name, shape(fields, String::new())));
            }
            if self.rest().starts_with('>') {
                self.pos += 1;
                break;
            }
            let attr = self.name()?;
            self.spaces();
            self.rest().starts_with('=').then_some(())?;
            self.pos += 1;
            self.spaces();
            let quote = self
                .rest()
                .chars()
                .next()
                .filter(|c| *c == '"' || *c == '\'')?;
            self.pos += 1;
            let end = self.rest().find(quote)?;
            let raw = &self.rest()[..end];
            let value = unescape(raw);
            self.pos += end + 1;
            fields.insert(attr, Value::String(value));
        }
        let mut text = String::new();
        loop {
            let rest = self.rest();
            if let Some(after) = rest.strip_prefix("</") {
                let close = after.find('>')?;
                if after[..close].trim() != name {
                    return None;
                }
                self.pos += 2 + close + 1;
                break;
            }
            if rest.starts_with("<![CDATA[") {
                let end = rest.find("]]>")?;
                text.push_str(&rest[9..end]);
                self.pos += end + 3;
            } else if rest.starts_with("<!--") || rest.starts_with("<?") {
                self.misc();
            } else if rest.starts_with('<') {
                let (child, value) = self.element()?;
                match fields.get_mut(&child) {
                    None => {
                        fields.insert(child, value);
                    }
                    Some(Value::Array(items)) => items.push(value),
                    Some(existing) => {
                        let first = existing.take();
                        *existing = Value::Array(vec![first, value]);
                    }
                }
            } else {
                let end = rest.find('<')?;
                text.push_str(&unescape(&rest[..end]));
                self.pos += end;
            }
        }
        self.depth -= 1;
        Some((name, shape(fields, text)))
    }
}

fn shape(mut fields: Map<String, Value>, text: String) -> Value {
    let text = text.trim();
    if fields.is_empty() {
        return Value::String(text.to_string());
    }
    if !text.is_empty() {
        fields.insert("value".to_string(), Value::String(text.to_string()));
    }
    Value::Object(fields)
}

fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let decoded = rest.find(';').and_then(|end| {
            let entity = &rest[1..end];
            let c = match entity {
                "lt" => Some('<'),
                "gt" => Some('>'),
                "amp" => Some('&'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => entity
                    .strip_prefix("#x")
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            }?;
            Some((c, end + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}
