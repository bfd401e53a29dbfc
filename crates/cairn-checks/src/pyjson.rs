//! Python objects to JSON bytes and back, without going through Python's `json` module.
//! Only what JSON can carry is accepted; anything else is a `TypeError` (a wrong type) or a
//! `ValueError` (a right type with a value JSON cannot carry) naming where it sits.

use std::fmt::Write as _;

use pyo3::exceptions::{PyTypeError, PyUnicodeEncodeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

use cairn_logs::wire;

/// Levels of dicts/lists kept in a value: a cursor or an event deeper than this is refused;
/// in a log's attribute (whose own value is level 1) the part below is sent as its JSON text,
/// the rule the intake applies (`cairn_wire::normalize`), so the intake stores what
/// the agent sent.
pub const MAX_DEPTH: usize = cairn_wire::normalize::MAX_DEPTH;

/// Levels walked at all, even to make text of a log's deep part: the walk recurses, and a
/// check runs on a 2 MiB thread shared with Python's own frames (400 levels overflowed it in a
/// debug build). serde_json, on the library's `send_log` path, refuses deeper than 128 too.
pub const MAX_WALK_DEPTH: usize = 128;

/// The top-level attribute marking a log the agent changed.
pub const MARKER_KEY: &str = cairn_wire::normalize::MARKER_KEY;

/// Characters of a key shown in a message; a longer key is cut (it may be megabytes).
const MAX_SHOWN_CHARS: usize = 100;

/// Why a value could not be written, and where (innermost segment first).
pub struct WalkError {
    pub path: Vec<Segment>,
    pub kind: WalkErrorKind,
}

pub enum Segment {
    Key(String),
    Index(usize),
}

pub enum WalkErrorKind {
    NotSerializable(String),
    NonFinite(f64),
    KeyNotStr(String),
    /// A str key with no UTF-8 form (a lone surrogate); its repr.
    KeyNotUtf8(String),
    /// A str value with no UTF-8 form: where its first lone surrogate is.
    NotUtf8(Unencodable),
    TooDeep(usize),
    /// A dict or list that holds itself.
    Cycle,
    Python(PyErr),
}

impl WalkError {
    fn new(kind: WalkErrorKind) -> Self {
        WalkError {
            path: Vec::new(),
            kind,
        }
    }

    fn at(mut self, seg: Segment) -> Self {
        self.path.push(seg);
        self
    }

    pub fn at_key(self, key: &str) -> Self {
        self.at(Segment::Key(key.to_string()))
    }

    /// Turns the error into the exception raised in the check. `root` names the argument
    /// (`data` or `cursor`), `suffix` says what happened to the log.
    pub fn into_pyerr(self, root: &str, suffix: &str) -> PyErr {
        let place = place(root, self.path.iter().rev());
        match self.kind {
            WalkErrorKind::NotSerializable(t) => PyTypeError::new_err(format!(
                "send_log: {place} is not JSON-serializable (type {t}){suffix}"
            )),
            WalkErrorKind::NonFinite(v) => PyValueError::new_err(format!(
                "send_log: {place} is {v}, which JSON cannot carry{suffix}"
            )),
            WalkErrorKind::KeyNotStr(t) => PyTypeError::new_err(format!(
                "send_log: {place} has a key of type {t}; keys must be str{suffix}"
            )),
            WalkErrorKind::KeyNotUtf8(key) => PyValueError::new_err(format!(
                "send_log: key {key} at {place} cannot be encoded as UTF-8 (it holds a lone surrogate){suffix}"
            )),
            WalkErrorKind::NotUtf8(u) => PyValueError::new_err(format!(
                "send_log: {place} is a str that cannot be encoded as UTF-8 ({u}){suffix}"
            )),
            WalkErrorKind::TooDeep(limit) => PyValueError::new_err(format!(
                "send_log: {place} is nested more than {limit} levels deep{suffix}"
            )),
            WalkErrorKind::Cycle => PyValueError::new_err(format!(
                "send_log: {place} refers back to a dict or list that holds it (a reference cycle), which JSON cannot carry{suffix}"
            )),
            WalkErrorKind::Python(e) => e,
        }
    }
}

/// `root` then each segment (outermost first) as Python indexing: `data['a'][0]`.
pub fn place<'a>(root: &str, path: impl Iterator<Item = &'a Segment>) -> String {
    let mut place = root.to_string();
    for seg in path {
        match seg {
            Segment::Key(k) => {
                place.push('[');
                push_repr(&mut place, k);
                place.push(']');
            }
            Segment::Index(i) => {
                let _ = write!(place, "[{i}]");
            }
        }
    }
    place
}

/// Where JSON text that does not parse goes wrong, as `data['a'][0]` (and whether inside a
/// key there): for the message only, so the fast path parses without tracking anything.
pub fn json_error_place(text: &str, root: &str) -> Option<(String, bool)> {
    use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
    use std::cell::RefCell;

    #[derive(Default)]
    struct Where {
        path: Vec<Segment>,
        in_key: bool,
    }
    #[derive(Clone, Copy)]
    struct Walk<'a>(&'a RefCell<Where>);

    impl<'de> DeserializeSeed<'de> for Walk<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Walk<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut i = 0;
            loop {
                self.0.borrow_mut().path.push(Segment::Index(i));
                // On an error the path is left as it is: it says where.
                if seq.next_element_seed(self)?.is_none() {
                    self.0.borrow_mut().path.pop();
                    return Ok(());
                }
                self.0.borrow_mut().path.pop();
                i += 1;
            }
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            loop {
                self.0.borrow_mut().in_key = true;
                let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? else {
                    self.0.borrow_mut().in_key = false;
                    return Ok(());
                };
                let mut w = self.0.borrow_mut();
                w.in_key = false;
                w.path.push(Segment::Key(key.into_owned()));
                drop(w);
                map.next_value_seed(self)?;
                self.0.borrow_mut().path.pop();
            }
        }
    }

    let at = RefCell::new(Where::default());
    let mut d = serde_json::Deserializer::from_str(text);
    match Walk(&at).deserialize(&mut d).and_then(|()| d.end()) {
        Ok(()) => None,
        Err(_) => {
            let at = at.into_inner();
            Some((place(root, at.path.iter()), at.in_key))
        }
    }
}

impl From<PyErr> for WalkError {
    fn from(e: PyErr) -> Self {
        WalkError::new(WalkErrorKind::Python(e))
    }
}

/// Where a str that has no UTF-8 form goes wrong: its first lone surrogate (what
/// `surrogateescape` decoding leaves for an undecodable byte), as Python shows it.
pub struct Unencodable {
    /// The surrogate's repr, e.g. `'\udcff'`.
    pub surrogate: String,
    /// Its index in the str, in code points.
    pub index: usize,
}

impl std::fmt::Display for Unencodable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "lone surrogate {} at index {}",
            self.surrogate, self.index
        )
    }
}

/// `s` as UTF-8; a str holding a lone surrogate has none, and JSON cannot carry it.
pub fn utf8<'a>(s: &'a Bound<'_, PyString>) -> Result<&'a str, WalkError> {
    s.to_str().map_err(|e| match unencodable(s, &e) {
        Some(u) => WalkError::new(WalkErrorKind::NotUtf8(u)),
        None => WalkError::from(e),
    })
}

/// `s` as UTF-8, or a `ValueError` for the check: `{what} is a str that cannot be encoded…`.
pub fn utf8_arg<'a>(
    s: &'a Bound<'_, PyString>,
    what: impl FnOnce() -> String,
) -> PyResult<&'a str> {
    s.to_str().map_err(|e| match unencodable(s, &e) {
        Some(u) => PyValueError::new_err(format!(
            "{} is a str that cannot be encoded as UTF-8 ({u})",
            what()
        )),
        None => e,
    })
}

/// A key argument as UTF-8, or a `ValueError` naming it: `{api}: key '\udcff' cannot be…`.
pub fn utf8_key<'a>(key: &'a Bound<'_, PyString>, api: &str) -> PyResult<&'a str> {
    key.to_str().map_err(|e| {
        if e.is_instance_of::<PyUnicodeEncodeError>(key.py()) {
            PyValueError::new_err(format!(
                "{api}: key {} cannot be encoded as UTF-8 (it holds a lone surrogate)",
                str_repr(key)
            ))
        } else {
            e
        }
    })
}

/// Why `s.to_str()` failed with `e`, when it is the encoding (not, say, memory).
fn unencodable(s: &Bound<'_, PyString>, e: &PyErr) -> Option<Unencodable> {
    let py = s.py();
    if !e.is_instance_of::<PyUnicodeEncodeError>(py) {
        return None;
    }
    let index: usize = e.value(py).getattr("start").ok()?.extract().ok()?;
    // `str`'s own methods, never a subclass's: no check code runs while an error is built.
    let str_type = py.get_type::<PyString>();
    let surrogate = str_type
        .getattr("__getitem__")
        .and_then(|get| get.call1((s, index)))
        .and_then(|c| Ok(c.cast_into::<PyString>()?))
        .map(|c| str_repr(&c))
        .unwrap_or_else(|_| "'?'".into());
    Some(Unencodable { surrogate, index })
}

/// Python's `repr()` of a str by `str.__repr__` itself (so a subclass's override never runs),
/// cut after [`MAX_SHOWN_CHARS`] characters. Lone surrogates come out escaped (`'\udcff'`).
pub fn str_repr(s: &Bound<'_, PyString>) -> String {
    let py = s.py();
    let repr = py
        .get_type::<PyString>()
        .getattr("__repr__")
        .and_then(|r| r.call1((s,)))
        .and_then(|r| Ok(r.cast_into::<PyString>()?.to_str()?.to_string()));
    match repr {
        Ok(r) => cut(r),
        Err(_) => "<unprintable str>".into(),
    }
}

fn cut(mut s: String) -> String {
    if let Some((at, _)) = s.char_indices().nth(MAX_SHOWN_CHARS) {
        s.truncate(at);
        s.push_str("...");
    }
    s
}

/// Appends `s` quoted and escaped the way Python's `repr()` shows a str (printable characters
/// as they are), cut after [`MAX_SHOWN_CHARS`] characters.
pub fn push_repr(out: &mut String, s: &str) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for (i, c) in s.chars().enumerate() {
        if i == MAX_SHOWN_CHARS {
            out.push_str("...");
            break;
        }
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || (0x7f..0xa0).contains(&(c as u32)) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// [`push_repr`] into a new string.
pub fn repr(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_SHOWN_CHARS) + 2);
    push_repr(&mut out, s);
    out
}

pub fn type_name(v: &Bound<'_, PyAny>) -> String {
    v.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// What a log's walk changed so that the intake can store it: the intake's own type.
pub use cairn_wire::normalize::Changes;

/// `,"_cairn":{"normalized":[…]}`, the names in the intake's order; `existing` is the JSON the
/// check itself gave for `_cairn`, merged into when it is an object.
pub fn write_marker(changes: &Changes, out: &mut Vec<u8>, existing: Option<&[u8]>) {
    let existing = existing.and_then(|t| std::str::from_utf8(t).ok());
    out.push(b',');
    wire::write_key(out, MARKER_KEY);
    out.extend_from_slice(cairn_wire::normalize::marker(existing, changes).as_bytes());
}

/// How a walk treats what JSON readers cannot carry.
pub enum Mode<'a> {
    /// A cursor or an event: refused, as it must round-trip exactly.
    Strict,
    /// A log's attribute: normalised the intake's way, and recorded.
    Log(&'a mut Changes),
    /// Inside a log's too-deep part, which becomes text: only lone surrogates are replaced.
    Text(&'a mut Changes),
}

impl Mode<'_> {
    fn reborrow(&mut self) -> Mode<'_> {
        match self {
            Mode::Strict => Mode::Strict,
            Mode::Log(c) => Mode::Log(c),
            Mode::Text(c) => Mode::Text(c),
        }
    }

    fn changes(&mut self) -> Option<&mut Changes> {
        match self {
            Mode::Strict => None,
            Mode::Log(c) | Mode::Text(c) => Some(c),
        }
    }
}

/// The containers being walked, by address: a value met again among them is a cycle.
#[derive(Default)]
pub struct Path(Vec<usize>);

/// Appends `v` as JSON; `depth` is the level `v` sits at (1 for an attribute's value).
pub fn write_value(out: &mut Vec<u8>, v: &Bound<'_, PyAny>, depth: usize) -> Result<(), WalkError> {
    write_value_as(out, v, depth, &mut Mode::Strict, &mut Path::default())
}

/// [`write_value`] under `mode`.
pub fn write_value_as(
    out: &mut Vec<u8>,
    v: &Bound<'_, PyAny>,
    depth: usize,
    mode: &mut Mode<'_>,
    path: &mut Path,
) -> Result<(), WalkError> {
    if let Ok(s) = v.cast_exact::<PyString>() {
        write_py_str(out, s, mode)?;
    } else if v.is_none() {
        out.extend_from_slice(b"null");
    } else if let Ok(b) = v.cast_exact::<PyBool>() {
        out.extend_from_slice(if b.is_true() { b"true" } else { b"false" });
    } else if let Ok(i) = v.cast::<PyInt>() {
        if let Ok(n) = i.extract::<i64>() {
            wire::write_i64(out, n);
        } else if !v.is_exact_instance_of::<PyInt>() {
            // A subclass's str() could run Python code mid-walk; JSON needs a plain int.
            return Err(WalkError::new(WalkErrorKind::NotSerializable(type_name(v))));
        } else if let Mode::Log(c) = mode {
            // SQLite reads an integer beyond 64 bits as an approximate real (or infinity),
            // serde_json beyond `f64` not at all: the intake stores its digits as a string.
            c.number = true;
            wire::write_str(out, i.str()?.to_str()?);
        } else {
            // Beyond 64 bits: Python's own decimal form is valid JSON.
            out.extend_from_slice(i.str()?.to_str()?.as_bytes());
        }
    } else if let Ok(f) = v.cast::<PyFloat>() {
        write_f64(out, f.value())?;
    } else if let Ok(d) = v.cast::<PyDict>() {
        container(out, v, depth, mode, path, |out, mode, path| {
            write_dict(out, d, depth, mode, path)
        })?;
    } else if let Ok(l) = v.cast::<PyList>() {
        container(out, v, depth, mode, path, |out, mode, path| {
            write_seq(out, l.iter(), depth, mode, path)
        })?;
    } else if let Ok(t) = v.cast::<PyTuple>() {
        container(out, v, depth, mode, path, |out, mode, path| {
            write_seq(out, t.iter(), depth, mode, path)
        })?;
    } else if let Ok(s) = v.cast::<PyString>() {
        write_py_str(out, s, mode)?;
    } else {
        return Err(WalkError::new(WalkErrorKind::NotSerializable(type_name(v))));
    }
    Ok(())
}

/// Writes a dict or sequence at `depth` with `body`, or, in a log past [`MAX_DEPTH`], its
/// JSON text as a string.
fn container(
    out: &mut Vec<u8>,
    v: &Bound<'_, PyAny>,
    depth: usize,
    mode: &mut Mode<'_>,
    path: &mut Path,
    body: impl FnOnce(&mut Vec<u8>, &mut Mode<'_>, &mut Path) -> Result<(), WalkError>,
) -> Result<(), WalkError> {
    let addr = v.as_ptr() as usize;
    if path.0.contains(&addr) {
        return Err(WalkError::new(WalkErrorKind::Cycle));
    }
    let too_deep = match mode {
        Mode::Strict => depth >= MAX_DEPTH,
        Mode::Log(_) | Mode::Text(_) => depth > MAX_WALK_DEPTH,
    };
    if too_deep {
        let limit = match mode {
            Mode::Strict => MAX_DEPTH,
            _ => MAX_WALK_DEPTH,
        };
        return Err(WalkError::new(WalkErrorKind::TooDeep(limit)));
    }
    path.0.push(addr);
    let done = match mode {
        Mode::Log(c) if depth > MAX_DEPTH => {
            c.depth = true;
            let mut text = Vec::new();
            body(&mut text, &mut Mode::Text(c), path).map(|()| {
                wire::write_str(
                    out,
                    std::str::from_utf8(&text).expect("the walk writes UTF-8"),
                )
            })
        }
        _ => body(out, mode, path),
    };
    path.0.pop();
    done
}

/// `s` as UTF-8; in a log, with lone surrogates as U+FFFD (recorded in `changes`).
pub fn log_str<'a>(
    s: &'a Bound<'_, PyString>,
    changes: &mut Changes,
) -> Result<std::borrow::Cow<'a, str>, WalkError> {
    match utf8(s) {
        Ok(text) => Ok(std::borrow::Cow::Borrowed(text)),
        Err(WalkError {
            kind: WalkErrorKind::NotUtf8(_),
            ..
        }) => {
            changes.surrogate = true;
            Ok(std::borrow::Cow::Owned(lossy(s)?))
        }
        Err(e) => Err(e),
    }
}

/// A str as JSON; in a log, lone surrogates become U+FFFD, the intake's rule for `"\ud800"`.
fn write_py_str(
    out: &mut Vec<u8>,
    s: &Bound<'_, PyString>,
    mode: &mut Mode<'_>,
) -> Result<(), WalkError> {
    match (utf8(s), mode.changes()) {
        (Ok(text), _) => wire::write_str(out, text),
        (
            Err(WalkError {
                kind: WalkErrorKind::NotUtf8(_),
                ..
            }),
            Some(c),
        ) => {
            c.surrogate = true;
            wire::write_str(out, &lossy(s)?);
        }
        (Err(e), _) => return Err(e),
    }
    Ok(())
}

/// `s` with each lone surrogate as U+FFFD (one each, as `String::from_utf16_lossy` counts).
pub fn lossy(s: &Bound<'_, PyString>) -> PyResult<String> {
    let py = s.py();
    // `str`'s own method, never a subclass's: no check code runs mid-walk.
    let units =
        py.get_type::<PyString>()
            .getattr("encode")?
            .call1((s, "utf-16-le", "surrogatepass"))?;
    let bytes: &[u8] = units.cast::<pyo3::types::PyBytes>()?.as_bytes();
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .collect();
    Ok(String::from_utf16_lossy(&units))
}

pub fn write_f64(out: &mut Vec<u8>, f: f64) -> Result<(), WalkError> {
    if !f.is_finite() {
        return Err(WalkError::new(WalkErrorKind::NonFinite(f)));
    }
    serde_json::to_writer(&mut *out, &f).expect("a finite f64 always serializes");
    Ok(())
}

fn write_dict(
    out: &mut Vec<u8>,
    d: &Bound<'_, PyDict>,
    depth: usize,
    mode: &mut Mode<'_>,
    path: &mut Path,
) -> Result<(), WalkError> {
    out.push(b'{');
    let mut first = true;
    for (k, v) in d.iter() {
        let key = dict_key(&k)?;
        if !first {
            out.push(b',');
        }
        first = false;
        wire::write_key(out, key);
        write_value_as(out, &v, depth + 1, &mut mode.reborrow(), path)
            .map_err(|e| e.at(Segment::Key(key.to_string())))?;
    }
    out.push(b'}');
    Ok(())
}

fn write_seq<'py>(
    out: &mut Vec<u8>,
    items: impl Iterator<Item = Bound<'py, PyAny>>,
    depth: usize,
    mode: &mut Mode<'_>,
    path: &mut Path,
) -> Result<(), WalkError> {
    out.push(b'[');
    for (i, v) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_value_as(out, &v, depth + 1, &mut mode.reborrow(), path)
            .map_err(|e| e.at(Segment::Index(i)))?;
    }
    out.push(b']');
    Ok(())
}

/// A dict key as `&str`; JSON object keys must be strings with a UTF-8 form.
pub fn dict_key<'a>(k: &'a Bound<'_, PyAny>) -> Result<&'a str, WalkError> {
    match k.cast::<PyString>() {
        Ok(s) => s.to_str().map_err(|e| {
            if e.is_instance_of::<PyUnicodeEncodeError>(k.py()) {
                WalkError::new(WalkErrorKind::KeyNotUtf8(str_repr(s)))
            } else {
                WalkError::from(e)
            }
        }),
        // Only the type name: repr() could run the object's own Python code mid-walk.
        Err(_) => Err(WalkError::new(WalkErrorKind::KeyNotStr(type_name(k)))),
    }
}

/// Decodes JSON text into Python objects.
pub fn json_to_py<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| PyValueError::new_err(format!("stored value is not valid JSON: {e}")))?;
    value_to_py(py, &v)
}

pub fn value_to_py<'py>(py: Python<'py>, v: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    use serde_json::Value;
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(a) => {
            let list = PyList::empty(py);
            for x in a {
                list.append(value_to_py(py, x)?)?;
            }
            list.into_any()
        }
        Value::Object(m) => {
            let d = PyDict::new(py);
            for (k, x) in m {
                d.set_item(k, value_to_py(py, x)?)?;
            }
            d.into_any()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_shown_the_way_python_repr_shows_them() {
        for (s, want) in [
            ("a", "'a'"),
            ("it's", "\"it's\""),
            ("both ' and \"", "'both \\' and \"'"),
            (
                "back\\slash\n\t\r\u{1}\u{7f}é",
                "'back\\\\slash\\n\\t\\r\\x01\\x7fé'",
            ),
        ] {
            assert_eq!(repr(s), want, "{s:?}");
        }
        let long = "k".repeat(MAX_SHOWN_CHARS + 1);
        assert_eq!(repr(&long), format!("'{}...'", "k".repeat(MAX_SHOWN_CHARS)));
    }

    #[test]
    fn json_that_does_not_parse_is_located_by_its_key_path() {
        let at = |t: &str| json_error_place(t, "data");
        assert_eq!(
            at(r#"{"message":"m","a":[1,{"b":"\udcff"}]}"#),
            Some(("data['a'][1]['b']".into(), false))
        );
        assert_eq!(
            at(r#"{"message":"m","a":{"\udcff":1}}"#),
            Some(("data['a']".into(), true))
        );
        assert_eq!(
            at(r#"{"message":"m"} trailing"#),
            Some(("data".into(), false))
        );
        assert_eq!(at(r#"{"message":"m","a":[{}]}"#), None);
    }
}
