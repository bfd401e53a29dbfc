//! The per-instance state the host modules reach by check id: its log context and what the
//! current run submitted.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use cairn_logs::CheckLogs;
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

/// What one run submitted besides logs.
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
}

impl CheckContext {
    pub fn take_submissions(&self) -> Submissions {
        std::mem::take(&mut self.submissions.lock())
    }
}

fn registry() -> &'static RwLock<HashMap<String, Arc<CheckContext>>> {
    static REGISTRY: OnceLock<RwLock<HashMap<String, Arc<CheckContext>>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

pub fn register(ctx: Arc<CheckContext>) {
    registry().write().insert(ctx.check_id.clone(), ctx);
}

pub fn unregister(check_id: &str) {
    registry().write().remove(check_id);
}

pub fn lookup(check_id: &str) -> Option<Arc<CheckContext>> {
    registry().read().get(check_id).cloned()
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
