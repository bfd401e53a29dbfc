//! `_cairn.CheckBase`: the native base of the bundled `AgentCheck`. `send_log` walks the
//! check's dict once, straight into the check's staging area (SPEC §2, send_log rules 1–7).

use std::cell::RefCell;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyString, PyTuple};

use cairn_logs::check_logs::HandoffError;
use cairn_logs::{wire, LogFields};

use cairn_metrics::MetricKind;

use crate::context::{self, CheckContext};
use crate::pyjson::{self, WalkError};

#[pyclass(subclass, frozen, module = "_cairn", name = "CheckBase")]
pub struct CheckBase {
    ctx: OnceLock<Arc<CheckContext>>,
    check_id: Mutex<String>,
    /// The class's `__NAMESPACE__`, read at the first metric: it is a class constant.
    namespace: OnceLock<String>,
}

/// Tags of one sample borrowed from the Python strings, without allocating for a few.
const INLINE_TAGS: usize = 16;

thread_local! {
    /// Reused buffers for the attributes and the cursor of one `send_log`; taken out while in
    /// use so a re-entrant call simply gets fresh ones.
    static SCRATCH: RefCell<(Vec<u8>, Vec<u8>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// A scratch buffer that grew past this (one huge, probably refused, log) is freed after the
/// call rather than kept by the thread for good.
const SCRATCH_KEEP_BYTES: usize = 1 << 20;

fn keep_scratch(mut buf: Vec<u8>) -> Vec<u8> {
    if buf.capacity() > SCRATCH_KEEP_BYTES {
        buf = Vec::new();
    }
    buf
}

/// The exception raised in the check for a record the hand-off refused: a `ValueError` (the
/// value is what is wrong), naming the size and the limit. `api` is the call that was made.
pub(crate) fn refused(api: &str, e: HandoffError) -> PyErr {
    PyValueError::new_err(match e {
        HandoffError::LogTooLarge { .. } => format!("{api}: {e}"),
        HandoffError::CacheTooLarge { key, size, limit } => {
            match key.strip_prefix(cairn_logs::check_logs::cursor_key("").as_str()) {
                // Only `send_log` stages a cursor together with its log.
                Some(stream) if api == "send_log" => format!(
                    "send_log: cursor of stream {} is {size} bytes as JSON with its key {}, over the {limit}-byte limit of a persistent-cache entry; the log was not recorded",
                    pyjson::repr(stream),
                    pyjson::repr(&key),
                ),
                _ => format!(
                    "{api}: key {} with its value is {size} bytes, over the {limit}-byte limit of a persistent-cache entry",
                    pyjson::repr(&key)
                ),
            }
        }
    })
}

fn not_bound() -> PyErr {
    PyRuntimeError::new_err(
        "this check is not bound to the agent (was it constructed outside cairn?)",
    )
}

impl CheckBase {
    fn ctx(&self) -> PyResult<&Arc<CheckContext>> {
        self.ctx.get().ok_or_else(not_bound)
    }
}

/// A reserved key's value: a str (lone surrogates as U+FFFD, as in attributes), or None
/// meaning "not given".
fn opt_str<'a>(
    key: &str,
    v: &'a Bound<'_, PyAny>,
    changes: &mut pyjson::Changes,
) -> PyResult<Option<std::borrow::Cow<'a, str>>> {
    if v.is_none() {
        return Ok(None);
    }
    match v.cast::<PyString>() {
        Ok(s) => Ok(Some(
            pyjson::log_str(s, changes).map_err(|e| e.at_key(key).into_pyerr("data", ""))?,
        )),
        Err(_) => Err(PyTypeError::new_err(format!(
            "send_log: data['{key}'] must be a str, got {}",
            pyjson::type_name(v)
        ))),
    }
}

/// Seconds since the epoch (int or float) as milliseconds; None means now.
pub fn timestamp_ms(v: &Bound<'_, PyAny>, scale: f64) -> PyResult<i64> {
    if v.is_none() {
        return Ok(wire::now_ms());
    }
    let secs = if let Ok(f) = v.cast::<PyFloat>() {
        f.value()
    } else if v.cast::<PyInt>().is_ok() && v.cast::<PyBool>().is_err() {
        match v.extract::<i64>() {
            Ok(i) => return Ok(i.saturating_mul(scale as i64)),
            Err(_) => {
                return Err(PyValueError::new_err(
                    "send_log: data['timestamp'] is out of range for seconds since the epoch",
                ))
            }
        }
    } else {
        return Err(PyTypeError::new_err(format!(
            "send_log: data['timestamp'] must be a number of seconds since the epoch, got {}",
            pyjson::type_name(v)
        )));
    };
    if !secs.is_finite() {
        return Err(PyValueError::new_err(format!(
            "send_log: data['timestamp'] must be a finite number, got {secs}"
        )));
    }
    Ok((secs * scale) as i64)
}

#[pymethods]
impl CheckBase {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> Self {
        let ctx = OnceLock::new();
        let mut check_id = String::new();
        if let Some(c) = context::current() {
            check_id = c.check_id.clone();
            let _ = ctx.set(c);
        }
        CheckBase {
            ctx,
            check_id: Mutex::new(check_id),
            namespace: OnceLock::new(),
        }
    }

    #[getter]
    fn check_id(&self) -> String {
        self.check_id.lock().clone()
    }

    #[setter]
    fn set_check_id(&self, value: String) {
        if self.ctx.get().is_none() {
            if let Some(c) = context::lookup(&value) {
                let _ = self.ctx.set(c);
            }
        }
        *self.check_id.lock() = value;
    }

    /// Submit a log. See `AgentCheck` for the rules.
    #[pyo3(signature = (data, cursor=None, stream="default"))]
    fn send_log(
        slf: &Bound<'_, Self>,
        data: &Bound<'_, PyAny>,
        cursor: Option<&Bound<'_, PyAny>>,
        stream: &str,
    ) -> PyResult<()> {
        let ctx = slf.get().ctx()?;
        let owned;
        let dict = match data.cast::<PyDict>() {
            Ok(d) => d,
            Err(_) => {
                owned = as_dict(data)?;
                &owned
            }
        };
        let (mut attrs, mut cursor_buf) = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
        attrs.clear();
        cursor_buf.clear();
        let result = stage(ctx, dict, cursor, stream, &mut attrs, &mut cursor_buf);
        SCRATCH.with(|s| *s.borrow_mut() = (keep_scratch(attrs), keep_scratch(cursor_buf)));
        if result? {
            let py = slf.py();
            py.detach(|| ctx.logs.flush())
                .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        }
        Ok(())
    }

    /// Sample a gauge metric.
    #[pyo3(signature = (name, value, tags=None, hostname=None, device_name=None, raw=false))]
    fn gauge(
        slf: &Bound<'_, Self>,
        name: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        tags: Option<&Bound<'_, PyAny>>,
        hostname: Option<&Bound<'_, PyAny>>,
        device_name: Option<&Bound<'_, PyAny>>,
        raw: bool,
    ) -> PyResult<()> {
        submit(
            slf,
            MetricKind::Gauge,
            name,
            value,
            tags,
            hostname,
            device_name,
            raw,
            false,
        )
    }

    /// Sample a raw count metric.
    #[pyo3(signature = (name, value, tags=None, hostname=None, device_name=None, raw=false))]
    fn count(
        slf: &Bound<'_, Self>,
        name: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        tags: Option<&Bound<'_, PyAny>>,
        hostname: Option<&Bound<'_, PyAny>>,
        device_name: Option<&Bound<'_, PyAny>>,
        raw: bool,
    ) -> PyResult<()> {
        submit(
            slf,
            MetricKind::Count,
            name,
            value,
            tags,
            hostname,
            device_name,
            raw,
            false,
        )
    }

    /// Sample an increasing counter; the agent submits the difference between samples.
    #[pyo3(signature = (name, value, tags=None, hostname=None, device_name=None, raw=false, flush_first_value=false))]
    #[allow(clippy::too_many_arguments)]
    fn monotonic_count(
        slf: &Bound<'_, Self>,
        name: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        tags: Option<&Bound<'_, PyAny>>,
        hostname: Option<&Bound<'_, PyAny>>,
        device_name: Option<&Bound<'_, PyAny>>,
        raw: bool,
        flush_first_value: bool,
    ) -> PyResult<()> {
        submit(
            slf,
            MetricKind::MonotonicCount,
            name,
            value,
            tags,
            hostname,
            device_name,
            raw,
            flush_first_value,
        )
    }

    /// Sample a point; the agent submits the rate of change per second.
    #[pyo3(signature = (name, value, tags=None, hostname=None, device_name=None, raw=false))]
    fn rate(
        slf: &Bound<'_, Self>,
        name: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        tags: Option<&Bound<'_, PyAny>>,
        hostname: Option<&Bound<'_, PyAny>>,
        device_name: Option<&Bound<'_, PyAny>>,
        raw: bool,
    ) -> PyResult<()> {
        submit(
            slf,
            MetricKind::Rate,
            name,
            value,
            tags,
            hostname,
            device_name,
            raw,
            false,
        )
    }

    /// Sample a histogram metric.
    #[pyo3(signature = (name, value, tags=None, hostname=None, device_name=None, raw=false))]
    fn histogram(
        slf: &Bound<'_, Self>,
        name: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        tags: Option<&Bound<'_, PyAny>>,
        hostname: Option<&Bound<'_, PyAny>>,
        device_name: Option<&Bound<'_, PyAny>>,
        raw: bool,
    ) -> PyResult<()> {
        submit(
            slf,
            MetricKind::Histogram,
            name,
            value,
            tags,
            hostname,
            device_name,
            raw,
            false,
        )
    }

    /// Sample a histogram of the rates between samples.
    #[pyo3(signature = (name, value, tags=None, hostname=None, device_name=None, raw=false))]
    fn historate(
        slf: &Bound<'_, Self>,
        name: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        tags: Option<&Bound<'_, PyAny>>,
        hostname: Option<&Bound<'_, PyAny>>,
        device_name: Option<&Bound<'_, PyAny>>,
        raw: bool,
    ) -> PyResult<()> {
        submit(
            slf,
            MetricKind::Historate,
            name,
            value,
            tags,
            hostname,
            device_name,
            raw,
            false,
        )
    }

    /// Add to a counter; the agent sends the run's total as a rate.
    #[pyo3(signature = (name, value=None, tags=None, hostname=None, device_name=None, raw=false))]
    fn increment(
        slf: &Bound<'_, Self>,
        name: &Bound<'_, PyAny>,
        value: Option<&Bound<'_, PyAny>>,
        tags: Option<&Bound<'_, PyAny>>,
        hostname: Option<&Bound<'_, PyAny>>,
        device_name: Option<&Bound<'_, PyAny>>,
        raw: bool,
    ) -> PyResult<()> {
        let one = PyFloat::new(slf.py(), 1.0).into_any();
        let value = value.unwrap_or(&one);
        submit(
            slf,
            MetricKind::Counter,
            name,
            value,
            tags,
            hostname,
            device_name,
            raw,
            false,
        )
    }

    /// Add `value` (default -1) to a counter.
    #[pyo3(signature = (name, value=None, tags=None, hostname=None, device_name=None, raw=false))]
    fn decrement(
        slf: &Bound<'_, Self>,
        name: &Bound<'_, PyAny>,
        value: Option<&Bound<'_, PyAny>>,
        tags: Option<&Bound<'_, PyAny>>,
        hostname: Option<&Bound<'_, PyAny>>,
        device_name: Option<&Bound<'_, PyAny>>,
        raw: bool,
    ) -> PyResult<()> {
        let minus_one = PyFloat::new(slf.py(), -1.0).into_any();
        let value = value.unwrap_or(&minus_one);
        submit(
            slf,
            MetricKind::Counter,
            name,
            value,
            tags,
            hostname,
            device_name,
            raw,
            false,
        )
    }

    /// The last cursor saved for `stream`, decoded, or None.
    #[pyo3(signature = (stream="default"))]
    fn get_log_cursor<'py>(slf: &Bound<'py, Self>, stream: &str) -> PyResult<Bound<'py, PyAny>> {
        let ctx = slf.get().ctx()?;
        match ctx
            .logs
            .read_cache(&cairn_logs::check_logs::cursor_key(stream))
        {
            Some(text) if !text.is_empty() => pyjson::json_to_py(slf.py(), &text),
            _ => Ok(slf.py().None().into_bound(slf.py())),
        }
    }

    /// The value stored with `write_persistent_cache(key, ...)`, or '' when there is none.
    fn read_persistent_cache(&self, key: &str) -> PyResult<String> {
        Ok(self.ctx()?.logs.read_cache(key).unwrap_or_default())
    }

    /// Stores a string that survives restarts, ordered after the logs sent before it. Key and
    /// value together may be at most 1 MiB (`MAX_CACHE_VALUE_BYTES`); more is a `ValueError`.
    fn write_persistent_cache(
        slf: &Bound<'_, Self>,
        key: &Bound<'_, PyString>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        const API: &str = "write_persistent_cache";
        let ctx = slf.get().ctx()?;
        let key = pyjson::utf8_key(key, API)?;
        let value = value.cast::<PyString>().map_err(|_| {
            PyTypeError::new_err(format!(
                "{API}: value must be a str, got {}",
                pyjson::type_name(value)
            ))
        })?;
        let value = pyjson::utf8_arg(value, || {
            format!("{API}: the value of key {}", pyjson::repr(key))
        })?;
        if ctx
            .logs
            .write_cache(key, value)
            .map_err(|e| refused(API, e))?
        {
            slf.py()
                .detach(|| ctx.logs.flush())
                .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        }
        Ok(())
    }
}

/// Keeps `item` for [`submit`] if it is a str (false otherwise: the tags are converted).
fn hold_str_tag<'py>(
    held: &mut [Option<Bound<'py, PyAny>>; INLINE_TAGS],
    spill: &mut Vec<Bound<'py, PyAny>>,
    n: &mut usize,
    item: Bound<'py, PyAny>,
) -> bool {
    if !item.is_instance_of::<PyString>() {
        return false;
    }
    match held.get_mut(*n) {
        Some(slot) => *slot = Some(item),
        None => spill.push(item),
    }
    *n += 1;
    true
}

/// The common path of `gauge` & co.: as the bundled `AgentCheck._submit_metric` did in Python
/// (None is skipped, a value `float()` refuses is a warning, `__NAMESPACE__` prefixes the name
/// unless `raw`, `device_name` is a `device:` tag), with the tags borrowed from their Python
/// strings and no Python code run while the check's metrics are locked.
#[allow(clippy::too_many_arguments)]
fn submit(
    slf: &Bound<'_, CheckBase>,
    kind: MetricKind,
    name: &Bound<'_, PyAny>,
    value: &Bound<'_, PyAny>,
    tags: Option<&Bound<'_, PyAny>>,
    hostname: Option<&Bound<'_, PyAny>>,
    device_name: Option<&Bound<'_, PyAny>>,
    raw: bool,
    flush_first_value: bool,
) -> PyResult<()> {
    if value.is_none() {
        return Ok(());
    }
    let this = slf.get();
    let ctx = this.ctx()?;
    let v = if let Ok(f) = value.cast::<PyFloat>() {
        f.value()
    } else if let Ok(i) = value.cast::<PyInt>() {
        // An int too large for a float is refused as infinite, like any other.
        i.extract::<f64>().unwrap_or(f64::INFINITY)
    } else {
        match value.py().get_type::<PyFloat>().call1((value,)) {
            Ok(f) => f.extract::<f64>()?,
            Err(_) => {
                slf.call_method1(
                    "warning",
                    (
                        "Metric %r has a non-numeric value %r; it was not submitted",
                        name,
                        value,
                    ),
                )?;
                return Ok(());
            }
        }
    };
    let name = name.cast::<PyString>().map_err(|_| {
        PyTypeError::new_err(format!(
            "metric name must be a str, got {}",
            pyjson::type_name(name)
        ))
    })?;
    let name = pyjson::utf8_arg(name, || "the metric name".to_string())?;
    let namespace = match this.namespace.get() {
        Some(ns) => ns.as_str(),
        None => {
            let ns = slf
                .getattr(pyo3::intern!(slf.py(), "__NAMESPACE__"))
                .ok()
                .and_then(|n| n.extract::<String>().ok())
                .unwrap_or_default();
            this.namespace.get_or_init(|| ns).as_str()
        }
    };
    let full;
    let name = if raw || namespace.is_empty() {
        name
    } else {
        full = format!("{namespace}.{name}");
        full.as_str()
    };
    let host_owned;
    let host = match hostname.filter(|h| !h.is_none()) {
        Some(h) => {
            host_owned = h.str()?.to_string();
            if host_owned.is_empty() {
                crate::host::hostname_str()
            } else {
                host_owned.as_str()
            }
        }
        None => crate::host::hostname_str(),
    };
    let device_owned;
    let device = match device_name.filter(|d| !d.is_none()) {
        Some(d) => {
            device_owned = d.str()?.to_string();
            Some(device_owned.as_str()).filter(|d| !d.is_empty())
        }
        None => None,
    };
    // Tags that are all str are borrowed; anything else (bytes, numbers) is converted first,
    // running Python code before any lock is taken.
    let mut inline: [&str; INLINE_TAGS] = [""; INLINE_TAGS];
    let mut spill: Vec<&str> = Vec::new();
    let mut n = 0;
    let list = tags.filter(|t| !t.is_none());
    // The items are held while their text is borrowed: the first INLINE_TAGS on the stack, so
    // that the usual call allocates nothing, and the list is walked once (no iterator object).
    let mut held: [Option<Bound<'_, PyAny>>; INLINE_TAGS] = Default::default();
    let mut held_spill: Vec<Bound<'_, PyAny>> = Vec::new();
    let mut held_n = 0;
    let mut hold = |i| hold_str_tag(&mut held, &mut held_spill, &mut held_n, i);
    let all_str = match list {
        None => true,
        Some(t) => {
            if let Ok(l) = t.cast::<pyo3::types::PyList>() {
                l.iter().all(&mut hold)
            } else if let Ok(tu) = t.cast::<PyTuple>() {
                tu.iter().all(&mut hold)
            } else {
                false
            }
        }
    };
    let converted: Vec<String> = if all_str {
        Vec::new()
    } else {
        metric_tags(list)?
    };
    // `held` is filled in order and holds exactly `held_n` items with `held_spill`; a list
    // that was not all str was converted instead.
    let borrowed_items =
        held.iter()
            .flatten()
            .chain(&held_spill)
            .take(if all_str { held_n } else { 0 });
    let mut strs: Vec<&str> = Vec::new();
    for item in borrowed_items {
        let s = item
            .cast::<PyString>()
            .expect("checked above")
            .to_str()
            .map_err(|_| {
                PyValueError::new_err(format!(
                    "metric {name}: a tag holds a lone surrogate, which has no UTF-8 form"
                ))
            })?;
        if n < INLINE_TAGS {
            inline[n] = s;
        } else {
            strs.push(s);
        }
        n += 1;
    }
    for s in &converted {
        if n < INLINE_TAGS {
            inline[n] = s.as_str();
        } else {
            strs.push(s.as_str());
        }
        n += 1;
    }
    spill.extend(strs);
    let tags: &[&str] = if n <= INLINE_TAGS {
        &inline[..n]
    } else {
        spill.splice(0..0, inline.iter().copied());
        &spill
    };
    ctx.metrics
        .lock()
        .add_borrowed(name, kind, v, tags, device, host, flush_first_value);
    if context::keeps_raw_submissions() {
        let mut all: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        if let Some(d) = device {
            all.push(format!("device:{d}"));
        }
        ctx.submissions.lock().metrics.push(crate::context::Metric {
            name: name.to_string(),
            kind: kind_name(kind),
            value: v,
            tags: all,
            hostname: host.to_string(),
        });
    }
    Ok(())
}

fn kind_name(kind: MetricKind) -> &'static str {
    match kind {
        MetricKind::Gauge => "gauge",
        MetricKind::Rate => "rate",
        MetricKind::Count => "count",
        MetricKind::MonotonicCount => "monotonic_count",
        MetricKind::Counter => "counter",
        MetricKind::Histogram => "histogram",
        MetricKind::Historate => "historate",
    }
}

/// Tags as the bundled base's `_tags` took them: None skipped, bytes decoded (invalid UTF-8
/// replaced), anything else through `str()`.
fn metric_tags(tags: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<String>> {
    let Some(tags) = tags else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for t in tags.try_iter()? {
        let t = t?;
        if t.is_none() {
            continue;
        }
        if let Ok(b) = t.cast::<pyo3::types::PyBytes>() {
            out.push(String::from_utf8_lossy(b.as_bytes()).into_owned());
        } else {
            out.push(t.str()?.to_string());
        }
    }
    Ok(out)
}

/// Converts a non-dict mapping into a dict; anything else is the caller's mistake.
fn as_dict<'py>(data: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
    let py = data.py();
    let mapping = py.import("collections.abc")?.getattr("Mapping")?;
    if data.is_instance(&mapping)? {
        let d = PyDict::new(py);
        d.update(data.cast()?)?;
        return Ok(d);
    }
    Err(PyTypeError::new_err(format!(
        "send_log: data must be a dict with at least a 'message' key, got {}",
        pyjson::type_name(data)
    )))
}

/// The interned reserved keys, in slot order (see `stage`), as addresses. Each holds a leaked
/// strong reference, so the address stays valid for the life of the interpreter.
fn reserved_keys(py: Python<'_>) -> &'static [usize; 8] {
    static KEYS: OnceLock<[usize; 8]> = OnceLock::new();
    KEYS.get_or_init(|| {
        [
            wire::MESSAGE,
            wire::TIMESTAMP,
            wire::STATUS,
            wire::HOSTNAME,
            wire::SERVICE,
            wire::SOURCE,
            wire::DDSOURCE,
            wire::DDTAGS,
        ]
        .map(|k| PyString::intern(py, k).unbind().into_ptr() as usize)
    })
}

/// Validates and stages one log; returns whether the staging area wants a flush.
fn stage(
    ctx: &CheckContext,
    dict: &Bound<'_, PyDict>,
    cursor: Option<&Bound<'_, PyAny>>,
    stream: &str,
    attrs: &mut Vec<u8>,
    cursor_buf: &mut Vec<u8>,
) -> PyResult<bool> {
    // Reserved values are kept as objects during the walk and read as strs after it, so
    // the borrowed strs outlive the loop.
    let mut special: [Option<Bound<'_, PyAny>>; 8] = Default::default();
    const MESSAGE: usize = 0;
    const TIMESTAMP: usize = 1;
    const STATUS: usize = 2;
    const HOSTNAME: usize = 3;
    const SERVICE: usize = 4;
    const SOURCE: usize = 5;
    const DDSOURCE: usize = 6;
    const DDTAGS: usize = 7;
    let walk_err = |e: WalkError| e.into_pyerr("data", "");
    // Keys written as literals in a check are interned by Python's compiler, so the reserved
    // ones are usually recognised by pointer, without reading their text.
    let reserved = reserved_keys(dict.py());
    let mut changes = pyjson::Changes::default();
    let mut marker: Option<Vec<u8>> = None;
    // Strong references per item (PyO3's iterator): a value's text is read after the walk.
    for (k, v) in dict.iter() {
        if let Some(slot) = reserved.iter().position(|&p| p == k.as_ptr() as usize) {
            special[slot] = Some(v);
            continue;
        }
        let key = pyjson::dict_key(&k).map_err(walk_err)?;
        let slot = match key {
            wire::MESSAGE => MESSAGE,
            wire::TIMESTAMP => TIMESTAMP,
            wire::STATUS => STATUS,
            wire::HOSTNAME => HOSTNAME,
            wire::SERVICE => SERVICE,
            wire::SOURCE => SOURCE,
            wire::DDSOURCE => DDSOURCE,
            wire::DDTAGS => DDTAGS,
            _ => {
                // The check's own `_cairn` is written last, merged with the marker if any.
                let into = if key == pyjson::MARKER_KEY {
                    marker = Some(Vec::new());
                    marker.as_mut().expect("set just above")
                } else {
                    attrs.push(b',');
                    wire::write_key(attrs, key);
                    &mut *attrs
                };
                pyjson::write_value_as(
                    into,
                    &v,
                    1,
                    &mut pyjson::Mode::Log(&mut changes),
                    &mut pyjson::Path::default(),
                )
                .map_err(|e| e.at_key(key).into_pyerr("data", ""))?;
                continue;
            }
        };
        special[slot] = Some(v);
    }
    let Some(message) = &special[MESSAGE] else {
        return Err(PyValueError::new_err(
            "send_log: data must have a 'message' key",
        ));
    };
    let message = match message.cast::<PyString>() {
        Ok(s) => pyjson::log_str(s, &mut changes)
            .map_err(|e| e.at_key(wire::MESSAGE).into_pyerr("data", ""))?,
        Err(_) => {
            return Err(PyTypeError::new_err(format!(
                "send_log: data['message'] must be a str, got {}",
                pyjson::type_name(message)
            )))
        }
    };
    let mut text = |slot: usize, key: &str| match &special[slot] {
        Some(v) => opt_str(key, v, &mut changes),
        None => Ok(None),
    };
    let status = text(STATUS, wire::STATUS)?;
    let hostname = text(HOSTNAME, wire::HOSTNAME)?;
    let service = text(SERVICE, wire::SERVICE)?;
    let source = match text(SOURCE, wire::SOURCE)? {
        Some(s) => Some(s),
        None => text(DDSOURCE, wire::DDSOURCE)?,
    };
    let ddtags = text(DDTAGS, wire::DDTAGS)?;
    if changes.any() {
        pyjson::write_marker(&changes, attrs, marker.as_deref());
    } else if let Some(m) = &marker {
        attrs.push(b',');
        wire::write_key(attrs, pyjson::MARKER_KEY);
        attrs.extend_from_slice(m);
    }
    let f = LogFields {
        message: &message,
        status: status.as_deref(),
        timestamp_ms: match &special[TIMESTAMP] {
            Some(v) => timestamp_ms(v, 1000.0)?,
            None => wire::now_ms(),
        },
        hostname: hostname.as_deref(),
        service: service.as_deref(),
        source: source.as_deref(),
        ddtags: ddtags.as_deref(),
    };
    let cursor_json = match cursor {
        Some(c) if !c.is_none() => {
            pyjson::write_value(cursor_buf, c, 0)
                .map_err(|e| e.into_pyerr("cursor", "; the log was not recorded"))?;
            Some(std::str::from_utf8(cursor_buf).expect("the JSON writer only emits UTF-8"))
        }
        _ => None,
    };
    ctx.logs
        .push_log(&f, attrs, cursor_json.map(|c| (stream, c)))
        .map_err(|e| refused("send_log", e))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<CheckBase>()
}
