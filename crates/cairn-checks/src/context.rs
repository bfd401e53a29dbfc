//! The per-instance state the host modules reach by check id: its log context and what the
//! current run submitted.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use cairn_logs::CheckLogs;

use crate::metrics::{CheckMetrics, Flushed};
use parking_lot::{Mutex, RwLock};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Metric {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub value: f64,
    pub tags: Vec<String>,
    pub hostname: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ServiceCheck {
    pub name: String,
    pub status: i64,
    pub tags: Vec<String>,
    pub hostname: String,
    pub message: String,
}

/// What one run submitted besides logs, as submitted: kept only for `cairn check`
/// ([`keep_raw_submissions`]); `cairn run` aggregates and forgets.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Submissions {
    pub metrics: Vec<Metric>,
    pub service_checks: Vec<ServiceCheck>,
    pub events: Vec<serde_json::Value>,
    pub metadata: Vec<(String, String)>,
}

pub struct CheckContext {
    pub name: String,
    pub check_id: String,
    pub logs: CheckLogs,
    pub submissions: Mutex<Submissions>,
    /// Aggregated metrics, service checks and events waiting for the next flush.
    pub metrics: Mutex<CheckMetrics>,
    /// Held for the whole of each run ([`crate::run_once`]); work on the check's state from
    /// outside its runs (`cairn cursors reset` through the local API) takes it so that it
    /// never lands in the middle of one. Never taken with the GIL held by a waiter.
    pub run_lock: Mutex<()>,
}

impl CheckContext {
    pub fn take_submissions(&self) -> Submissions {
        std::mem::take(&mut self.submissions.lock())
    }
}

static KEEP_RAW: AtomicBool = AtomicBool::new(false);

/// Whether runs also keep every submission as made, for `cairn check` to show. Off in
/// `cairn run`, where a check may submit a million samples a run.
pub fn keep_raw_submissions(on: bool) {
    KEEP_RAW.store(on, Ordering::Relaxed);
}

pub fn keeps_raw_submissions() -> bool {
    KEEP_RAW.load(Ordering::Relaxed)
}

/// Every registered check instance, for the flusher.
pub fn all() -> Vec<Arc<CheckContext>> {
    registry().read().values().cloned().collect()
}

fn registry() -> &'static RwLock<HashMap<String, Arc<CheckContext>>> {
    static REGISTRY: OnceLock<RwLock<HashMap<String, Arc<CheckContext>>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

pub fn register(ctx: Arc<CheckContext>) {
    registry().write().insert(ctx.check_id.clone(), ctx);
}

/// Removes a check instance. What it committed and the flush has not taken yet is kept for
/// the next flush, so unloading a check (at a stop, before the last flush) loses nothing.
pub fn unregister(check_id: &str) {
    let removed = registry().write().remove(check_id);
    if let Some(ctx) = removed {
        let left = ctx.metrics.lock().flush();
        if !left.is_empty() {
            unregistered().lock().append(left);
        }
    }
}

fn unregistered() -> &'static Mutex<Flushed> {
    static LEFT: OnceLock<Mutex<Flushed>> = OnceLock::new();
    LEFT.get_or_init(Default::default)
}

/// What unregistered checks left for the flush.
pub fn take_unregistered() -> Flushed {
    std::mem::take(&mut *unregistered().lock())
}

pub fn lookup(check_id: &str) -> Option<Arc<CheckContext>> {
    registry().read().get(check_id).cloned()
}

/// The check whose cache identity (`CheckLogs::cache_id`, the check id unless the check
/// overrides `persistent_cache_id()`) prefixes `key` as `<identity>_`, the longest one when
/// several do; with the key that follows the prefix.
pub fn lookup_cache_owner(key: &str) -> Option<(Arc<CheckContext>, String)> {
    let mut best: Option<(usize, Arc<CheckContext>)> = None;
    for ctx in registry().read().values() {
        let id = ctx.logs.cache_id();
        let prefixed = key
            .strip_prefix(id)
            .is_some_and(|rest| rest.starts_with('_'));
        if prefixed && best.as_ref().is_none_or(|(len, _)| id.len() > *len) {
            best = Some((id.len(), ctx.clone()));
        }
    }
    best.map(|(len, ctx)| (ctx, key[len + 1..].to_string()))
}

thread_local! {
    /// The check being constructed or run on this thread: host calls that carry no usable
    /// check id (the library's calls made before the id is set) belong to it.
    static CURRENT: RefCell<Option<Arc<CheckContext>>> = const { RefCell::new(None) };
}

/// Marks `ctx` as this thread's current check until the guard drops.
pub fn enter(ctx: &Arc<CheckContext>) -> CurrentGuard {
    let prev = CURRENT.with(|c| c.replace(Some(ctx.clone())));
    CurrentGuard { prev }
}

pub struct CurrentGuard {
    prev: Option<Arc<CheckContext>>,
}

impl Drop for CurrentGuard {
    fn drop(&mut self) {
        CURRENT.with(|c| *c.borrow_mut() = self.prev.take());
    }
}

pub fn current() -> Option<Arc<CheckContext>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// The context a host call is about: by id when registered, else the thread's current check.
pub fn resolve(check_id: &str) -> Option<Arc<CheckContext>> {
    lookup(check_id).or_else(current)
}
