//! Python objects to JSON bytes and back, without going through Python's `json` module.
//! Only what JSON can carry is accepted; anything else is a `TypeError` naming where it sits.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

use cairn_logs::wire;

/// Deeper than this is almost surely a reference cycle.
const MAX_DEPTH: usize = 64;

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
    TooDeep,
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
        let mut place = root.to_string();
        for seg in self.path.iter().rev() {
            match seg {
                Segment::Key(k) => place.push_str(&format!("['{k}']")),
                Segment::Index(i) => place.push_str(&format!("[{i}]")),
            }
        }
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
            WalkErrorKind::TooDeep => PyValueError::new_err(format!(
                "send_log: {place} is nested more than {MAX_DEPTH} levels deep (a reference cycle?){suffix}"
            )),
            WalkErrorKind::Python(e) => e,
        }
    }
}

impl From<PyErr> for WalkError {
    fn from(e: PyErr) -> Self {
        WalkError::new(WalkErrorKind::Python(e))
    }
}

pub fn type_name(v: &Bound<'_, PyAny>) -> String {
    v.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// Appends `v` as JSON.
pub fn write_value(out: &mut Vec<u8>, v: &Bound<'_, PyAny>, depth: usize) -> Result<(), WalkError> {
    if let Ok(s) = v.cast_exact::<PyString>() {
        wire::write_str(out, s.to_str()?);
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
        } else {
            // Beyond 64 bits: Python's own decimal form is valid JSON.
            out.extend_from_slice(i.str()?.to_str()?.as_bytes());
        }
    } else if let Ok(f) = v.cast::<PyFloat>() {
        write_f64(out, f.value())?;
    } else if let Ok(d) = v.cast::<PyDict>() {
        write_dict(out, d, depth)?;
    } else if let Ok(l) = v.cast::<PyList>() {
        write_seq(out, l.iter(), depth)?;
    } else if let Ok(t) = v.cast::<PyTuple>() {
        write_seq(out, t.iter(), depth)?;
    } else if let Ok(s) = v.cast::<PyString>() {
        wire::write_str(out, s.to_str()?);
    } else {
        return Err(WalkError::new(WalkErrorKind::NotSerializable(type_name(v))));
    }
    Ok(())
}

pub fn write_f64(out: &mut Vec<u8>, f: f64) -> Result<(), WalkError> {
    if !f.is_finite() {
        return Err(WalkError::new(WalkErrorKind::NonFinite(f)));
    }
    serde_json::to_writer(&mut *out, &f).expect("a finite f64 always serializes");
    Ok(())
}

fn write_dict(out: &mut Vec<u8>, d: &Bound<'_, PyDict>, depth: usize) -> Result<(), WalkError> {
    if depth >= MAX_DEPTH {
        return Err(WalkError::new(WalkErrorKind::TooDeep));
    }
    out.push(b'{');
    let mut first = true;
    for (k, v) in d.iter() {
        let key = dict_key(&k)?;
        if !first {
            out.push(b',');
        }
        first = false;
        wire::write_key(out, key);
        write_value(out, &v, depth + 1).map_err(|e| e.at(Segment::Key(key.to_string())))?;
    }
    out.push(b'}');
    Ok(())
}

fn write_seq<'py>(
    out: &mut Vec<u8>,
    items: impl Iterator<Item = Bound<'py, PyAny>>,
    depth: usize,
) -> Result<(), WalkError> {
    if depth >= MAX_DEPTH {
        return Err(WalkError::new(WalkErrorKind::TooDeep));
    }
    out.push(b'[');
    for (i, v) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_value(out, &v, depth + 1).map_err(|e| e.at(Segment::Index(i)))?;
    }
    out.push(b']');
    Ok(())
}

/// A dict key as `&str`; JSON object keys must be strings.
pub fn dict_key<'a>(k: &'a Bound<'_, PyAny>) -> Result<&'a str, WalkError> {
    match k.cast::<PyString>() {
        Ok(s) => Ok(s.to_str()?),
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
