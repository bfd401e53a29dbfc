//! The memory budget of a live context (issue 9: ≤ 200 bytes), counted by a global allocator
//! in this test binary, so that a change that makes contexts bigger fails here rather than in
//! a benchmark nobody reruns. Its own binary: the counter sees every allocation of the
//! process, so no other test may run beside it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use cairn_metrics::{AggregatorConfig, CheckSampler, MetricKind, Sample};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            LIVE.fetch_add(l.size(), Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size(), Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            LIVE.fetch_add(new, Relaxed);
            LIVE.fetch_sub(l.size(), Relaxed);
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const BUDGET_BYTES_PER_CONTEXT: usize = 200;

/// Contexts as a check makes them: 20 metric names × `n / 20` entities, 4 tags of about 15
/// bytes (two instance tags, the entity's, one of 5 status values), one host, every kind.
fn contexts(n: usize) -> Vec<(String, MetricKind, Vec<String>)> {
    (0..n)
        .map(|c| {
            let e = c / 20;
            let kind = [
                MetricKind::Gauge,
                MetricKind::Gauge,
                MetricKind::Count,
                MetricKind::MonotonicCount,
                MetricKind::Histogram,
                MetricKind::Rate,
            ][c % 20 % 6];
            let tags = vec![
                format!("endpoint:/v1/{e:05}"),
                "env:production".to_string(),
                "service:checkout".to_string(),
                format!("status:{}xx", 1 + e % 5),
            ];
            (format!("checkout.requests.m{:02}", c % 20), kind, tags)
        })
        .collect()
}

fn live_context_bytes(n: usize) -> f64 {
    let ctxs = contexts(n);
    let before = LIVE.load(Relaxed);
    let mut cs = CheckSampler::new(Arc::new(AggregatorConfig::default()));
    for run in 0..3 {
        let ts = 1_800_000_000.0 + 15.0 * run as f64;
        for (i, (name, kind, tags)) in ctxs.iter().enumerate() {
            // Two samples per context per run, the second to let rates have a value.
            for k in 0..2 {
                let mut s = Sample::new(name, *kind, (run * 10 + k + i) as f64);
                s.tags = tags;
                s.host = "web-prod-042.example.com";
                cs.add(&s, ts + k as f64).expect("finite");
            }
        }
        cs.commit(ts + 14.0);
        drop(cs.flush());
    }
    assert_eq!(cs.contexts(), n);
    let bytes = LIVE.load(Relaxed) - before;
    drop(cs);
    bytes as f64 / n as f64
}

#[test]
fn a_live_context_costs_at_most_200_heap_bytes() {
    for n in [1_000, 10_000, 100_000] {
        let per = live_context_bytes(n);
        assert!(
            per <= BUDGET_BYTES_PER_CONTEXT as f64,
            "{n} contexts: {per:.1} heap bytes per live context, budget {BUDGET_BYTES_PER_CONTEXT}"
        );
        eprintln!("{n} contexts: {per:.1} heap bytes per live context");
    }
}
