//! Check sampler benchmark (issue 9): one check submitting 1,000,000 samples per run over
//! 10,000 contexts (then 100,000), 40 % gauge, 20 % count, 20 % monotonic_count, 20 %
//! histogram, 3–6 tags per context (~15 bytes each, in the order a check builds them, not
//! sorted) and one shared host. Every run ends with `commit`, `flush` and the encoding of the
//! series into zstd `/api/v2/series` payloads, as a 15 s flush does.
//!
//! Printed beside each figure, measured in the same run: a no-op floor (build the `Sample`,
//! hand it to `black_box`) and a plain `HashMap<u64, f64>` insert per sample for `add`;
//! zstd alone and a `memcpy` of the same bytes for the encoding.
//!
//! `cargo bench -p cairn-metrics --bench metrics` (CAIRN_BENCH_RUNS runs, default 10).
//! Instruction counts: `bench/metrics/callgrind.sh`, which runs this binary under callgrind and
//! reads the inclusive cost of the `phase_*` functions below.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use cairn_metrics::wire::{self, Compression, SERIES_LIMITS};
use cairn_metrics::{AggregatorConfig, CheckSampler, MetricKind, Sample};

/// Live heap bytes as requested by the program: a figure that does not depend on the
/// allocator's rounding or on what it keeps resident after a free, unlike RSS.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = LIVE.fetch_add(l.size(), Relaxed) + l.size();
            PEAK.fetch_max(now, Relaxed);
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
            if new >= l.size() {
                let now = LIVE.fetch_add(new - l.size(), Relaxed) + new - l.size();
                PEAK.fetch_max(now, Relaxed);
            } else {
                LIVE.fetch_sub(l.size() - new, Relaxed);
            }
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> usize {
    LIVE.load(Relaxed)
}

extern "C" {
    /// glibc: returns freed heap pages to the kernel. RSS after it is what the program holds,
    /// not what the allocator kept from the last run's histogram samples and payloads.
    fn malloc_trim(pad: usize) -> i32;
}

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

const SAMPLES_PER_RUN: usize = 1_000_000;
/// Coprime with both context counts, so each stretch of `contexts` samples visits every
/// context once, in an order with no locality.
const STRIDE: usize = 7919;
const HOST: &str = "web-prod-042.example.com";

const NAMES: [&str; 40] = [
    "queue.messages.ready",
    "queue.messages.unacked",
    "queue.consumers",
    "queue.memory",
    "queue.latency",
    "queue.published",
    "queue.delivered",
    "queue.redelivered",
    "queue.acked",
    "queue.size",
    "conn.active",
    "conn.idle",
    "conn.opened",
    "conn.closed",
    "conn.wait",
    "disk.free",
    "disk.reads",
    "disk.writes",
    "disk.read_bytes",
    "disk.queue_time",
    "proc.threads",
    "proc.fds",
    "proc.ctx_switches",
    "proc.minor_faults",
    "proc.gc_pause",
    "net.rx_bytes",
    "net.tx_bytes",
    "net.errors",
    "net.drops",
    "net.rtt",
    "cache.hit_ratio",
    "cache.evictions",
    "cache.gets",
    "cache.sets",
    "cache.get_time",
    "jobs.pending",
    "jobs.failed",
    "jobs.done",
    "jobs.retries",
    "jobs.duration",
];

struct Ctx {
    name: String,
    kind: MetricKind,
    tags: Vec<String>,
}

/// Context `c`: metric name `c % 40` (so a name always has one kind), entity `c / 40`.
/// Tags as a check builds them: the entity's own tag first, then the instance tags, then
/// 0–3 optional ones; ~15 bytes each.
fn contexts(n: usize) -> Vec<Ctx> {
    (0..n)
        .map(|c| {
            let e = c / NAMES.len();
            let kind = match c % 5 {
                0 | 1 => MetricKind::Gauge,
                2 => MetricKind::Count,
                3 => MetricKind::MonotonicCount,
                _ => MetricKind::Histogram,
            };
            let mut tags = vec![
                format!("queue:orders-{e:05}"),
                "env:production".to_string(),
                "service:orders-api".to_string(),
            ];
            let extra = e % 4;
            if extra >= 1 {
                tags.push(
                    ["region:us-east-1", "region:eu-west-1", "region:ap-south-1"][e % 3].into(),
                );
            }
            if extra >= 2 {
                tags.push(format!("consumer:group-{:02}", e % 16));
            }
            if extra >= 3 {
                tags.push(
                    if e.is_multiple_of(2) {
                        "priority:high"
                    } else {
                        "priority:low"
                    }
                    .into(),
                );
            }
            Ctx {
                name: format!("rabbitmq.{}", NAMES[c % NAMES.len()]),
                kind,
                tags,
            }
        })
        .collect()
}

fn value(kind: MetricKind, run: usize, i: usize) -> f64 {
    match kind {
        MetricKind::Count => 1.0,
        MetricKind::MonotonicCount => (run * SAMPLES_PER_RUN + i) as f64,
        MetricKind::Histogram => ((i.wrapping_mul(2_654_435_761)) % 1000) as f64 * 0.1,
        _ => (i % 1000) as f64,
    }
}

#[inline(always)]
fn sample<'a>(ctxs: &'a [Ctx], run: usize, i: usize) -> Sample<'a> {
    let c = &ctxs[(i * STRIDE) % ctxs.len()];
    let mut s = Sample::new(&c.name, c.kind, value(c.kind, run, i));
    s.tags = &c.tags;
    s.host = HOST;
    s
}

fn run_ts(run: usize) -> f64 {
    1_800_000_000.0 + run as f64 * 15.0
}

#[inline(never)]
fn phase_floor_noop(ctxs: &[Ctx], run: usize) {
    for i in 0..SAMPLES_PER_RUN {
        let s = sample(ctxs, run, i);
        black_box(&s);
    }
}

/// Reads what `add` must read of each sample: the length and the first and last 8 bytes of
/// its name, host and every tag. With 10,000 contexts in a random order these reads miss the
/// cache (each tag is its own allocation, as in a check), and the no-op floor pays none.
#[inline(never)]
fn phase_floor_touch(ctxs: &[Ctx], run: usize) {
    let edge = |t: &str| {
        let b = t.as_bytes();
        let w = |x: &[u8]| x.iter().take(8).fold(0u64, |a, &c| a << 8 | u64::from(c));
        b.len() as u64 ^ w(b) ^ w(&b[b.len().saturating_sub(8)..])
    };
    let mut acc = 0u64;
    for i in 0..SAMPLES_PER_RUN {
        let s = sample(ctxs, run, i);
        let s = black_box(&s);
        acc ^= edge(s.name) ^ edge(s.host);
        for t in s.tags {
            acc ^= edge(t);
        }
    }
    black_box(acc);
}

#[inline(never)]
fn phase_floor_hashmap(ctxs: &[Ctx], run: usize, map: &mut HashMap<u64, f64>) {
    for i in 0..SAMPLES_PER_RUN {
        let s = sample(ctxs, run, i);
        map.insert(((i * STRIDE) % ctxs.len()) as u64, black_box(&s).value);
    }
}

#[inline(always)]
fn add_all(ctxs: &[Ctx], run: usize, cs: &mut CheckSampler) {
    let t0 = run_ts(run);
    for i in 0..SAMPLES_PER_RUN {
        let s = sample(ctxs, run, i);
        cs.add(&s, t0 + i as f64 * 1e-5).expect("finite values");
    }
}

/// The first run creates every context.
#[inline(never)]
fn phase_add_first(ctxs: &[Ctx], run: usize, cs: &mut CheckSampler) {
    add_all(ctxs, run, cs)
}

#[inline(never)]
fn phase_add(ctxs: &[Ctx], run: usize, cs: &mut CheckSampler) {
    add_all(ctxs, run, cs)
}

#[inline(never)]
fn phase_commit(cs: &mut CheckSampler, run: usize) {
    cs.commit(run_ts(run) + 14.0);
}

/// Hands the pending series over: nothing to time since the flush encodes them straight from
/// the sampler (`phase_encode`); kept so the phases stay those of earlier measurements.
#[inline(never)]
fn phase_flush(cs: &mut CheckSampler) -> usize {
    cs.pending_series()
}

#[inline(never)]
fn phase_encode(cs: &mut CheckSampler) -> wire::Payloads {
    cs.flush_payloads(Compression::Zstd { level: 1 }, SERIES_LIMITS)
        .expect("zstd in memory")
}

/// The uncompressed bytes of the payloads (for the references).
fn raw_payload_bytes(p: &wire::Payloads) -> Vec<u8> {
    let mut raw = Vec::new();
    for pl in &p.payloads {
        raw.extend(zstd::bulk::decompress(&pl.body, pl.uncompressed_bytes).expect("our zstd"));
    }
    raw
}

#[inline(never)]
fn phase_ref_zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(bytes, 1).expect("zstd in memory")
}

#[inline(never)]
fn phase_ref_memcpy(bytes: &[u8]) -> Vec<u8> {
    black_box(bytes).to_vec()
}

fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

struct Stats(Vec<f64>);
impl Stats {
    fn median(&self) -> f64 {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }
    fn min(&self) -> f64 {
        self.0.iter().copied().fold(f64::INFINITY, f64::min)
    }
    fn max(&self) -> f64 {
        self.0.iter().copied().fold(0.0, f64::max)
    }
    fn show(&self, unit_scale: f64, unit: &str) -> String {
        format!(
            "{:>9.1} {unit} (min {:.1}, max {:.1})",
            self.median() * unit_scale,
            self.min() * unit_scale,
            self.max() * unit_scale
        )
    }
}

fn scenario(n_ctx: usize, runs: usize) {
    let ctxs = contexts(n_ctx);
    let distinct_tagsets = {
        let mut t: Vec<_> = ctxs.iter().map(|c| &c.tags).collect();
        t.sort();
        t.dedup();
        t.len()
    };
    let avg_tags = ctxs.iter().map(|c| c.tags.len()).sum::<usize>() as f64 / n_ctx as f64;
    let avg_tag_bytes = ctxs
        .iter()
        .flat_map(|c| c.tags.iter().map(String::len))
        .sum::<usize>() as f64
        / ctxs.iter().map(|c| c.tags.len()).sum::<usize>() as f64;
    println!(
        "\n== {n_ctx} contexts, {SAMPLES_PER_RUN} samples per run, {runs} runs \
         ({avg_tags:.1} tags of {avg_tag_bytes:.1} bytes on average, {distinct_tagsets} distinct tag sets, one host)"
    );
    let mut map: HashMap<u64, f64> = HashMap::new();
    let cfg = Arc::new(AggregatorConfig::default());

    // SAFETY: as below.
    unsafe { malloc_trim(0) };
    let rss0 = rss_bytes();
    let heap0 = live();
    let mut cs = CheckSampler::new(cfg);
    let (mut noop, mut hmap, mut touch, mut add) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut commit, mut flush, mut encode, mut zstd_ref, mut memcpy_ref) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut first_add = 0.0;
    let mut heap_filled = 0;
    let mut rss_filled = 0;
    let mut peak_in_run = 0;
    let (mut series_n, mut raw_bytes, mut zst_bytes, mut payloads_n) = (0, 0, 0, 0);
    for run in 0..runs {
        let t = Instant::now();
        phase_floor_noop(&ctxs, run);
        noop.push(secs(t));
        let t = Instant::now();
        phase_floor_hashmap(&ctxs, run, &mut map);
        hmap.push(secs(t));
        let t = Instant::now();
        phase_floor_touch(&ctxs, run);
        touch.push(secs(t));

        PEAK.store(live(), Relaxed);
        let t = Instant::now();
        if run == 0 {
            phase_add_first(&ctxs, run, &mut cs);
            first_add = secs(t);
            heap_filled = live() - heap0;
            rss_filled = rss_bytes().saturating_sub(rss0);
        } else {
            phase_add(&ctxs, run, &mut cs);
            add.push(secs(t));
        }
        let t = Instant::now();
        phase_commit(&mut cs, run);
        commit.push(secs(t));
        let t = Instant::now();
        series_n = phase_flush(&mut cs);
        flush.push(secs(t));
        let t = Instant::now();
        let payloads = phase_encode(&mut cs);
        encode.push(secs(t));
        if run > 0 {
            peak_in_run = peak_in_run.max(PEAK.load(Relaxed) - heap0);
        }
        raw_bytes = payloads.payloads.iter().map(|p| p.uncompressed_bytes).sum();
        zst_bytes = payloads.payloads.iter().map(|p| p.body.len()).sum();
        payloads_n = payloads.payloads.len();

        let raw = raw_payload_bytes(&payloads);
        let t = Instant::now();
        let z = phase_ref_zstd(&raw);
        zstd_ref.push(secs(t));
        let t = Instant::now();
        black_box(phase_ref_memcpy(&raw));
        memcpy_ref.push(secs(t));
        drop(z);
    }
    let live_ctx = cs.contexts();
    assert_eq!(live_ctx, n_ctx);
    let heap_steady = live() - heap0;
    let rss_steady = rss_bytes().saturating_sub(rss0);
    // SAFETY: glibc's malloc_trim has no preconditions.
    unsafe { malloc_trim(0) };
    let rss_trimmed = rss_bytes().saturating_sub(rss0);

    let per_sample = 1e9 / SAMPLES_PER_RUN as f64;
    let per_ctx = 1e9 / n_ctx as f64;
    let noop_s = Stats(noop);
    let hmap_s = Stats(hmap);
    let touch_s = Stats(touch);
    let add_s = Stats(add);
    println!("add, ns per sample (median of runs 2..{runs}; first run, which creates the contexts, apart)");
    println!(
        "  floor: no-op (build Sample, black_box)  {}",
        noop_s.show(per_sample, "ns")
    );
    println!(
        "  floor: HashMap<u64, f64>::insert        {}",
        hmap_s.show(per_sample, "ns")
    );
    println!(
        "  floor: read the strings' edges          {}",
        touch_s.show(per_sample, "ns")
    );
    println!(
        "  CheckSampler::add                       {}",
        add_s.show(per_sample, "ns")
    );
    println!(
        "  CheckSampler::add, first run            {:>9.1} ns",
        first_add * per_sample
    );
    println!(
        "  ratios: add / no-op {:.2}x, add / HashMap insert {:.2}x, add / string reads {:.2}x",
        add_s.median() / noop_s.median(),
        add_s.median() / hmap_s.median(),
        add_s.median() / touch_s.median()
    );
    let (c, f, e) = (Stats(commit), Stats(flush), Stats(encode));
    let total: Vec<f64> =
        c.0.iter()
            .zip(&f.0)
            .zip(&e.0)
            .map(|((a, b), c)| a + b + c)
            .collect();
    let total = Stats(total);
    println!("per context per run, ns ({series_n} series per run)");
    println!(
        "  commit                                  {}",
        c.show(per_ctx, "ns")
    );
    println!(
        "  flush (nothing: encoded from the sampler){}",
        f.show(per_ctx, "ns")
    );
    println!(
        "  encode: flush_payloads (protobuf+zstd 1){}",
        e.show(per_ctx, "ns")
    );
    println!(
        "  commit + flush + encode                 {}",
        total.show(per_ctx, "ns")
    );
    let z = Stats(zstd_ref);
    let m = Stats(memcpy_ref);
    println!(
        "  reference: zstd 1 of the same bytes     {}",
        z.show(per_ctx, "ns")
    );
    println!(
        "  reference: memcpy of the same bytes     {}",
        m.show(per_ctx, "ns")
    );
    println!(
        "  ratios: encode / zstd alone {:.2}x, commit+flush+encode / zstd alone {:.2}x",
        e.median() / z.median(),
        total.median() / z.median()
    );
    println!(
        "payload bytes per context per flush: {:.1} uncompressed, {:.1} zstd 1 ({payloads_n} payloads, {:.1}:1)",
        raw_bytes as f64 / n_ctx as f64,
        zst_bytes as f64 / n_ctx as f64,
        raw_bytes as f64 / zst_bytes as f64
    );
    println!("memory per live context ({live_ctx} live)");
    println!(
        "  heap (counted), after the first run      {:>7.1} bytes",
        heap_filled as f64 / n_ctx as f64
    );
    println!(
        "  heap (counted), steady, between runs     {:>7.1} bytes",
        heap_steady as f64 / n_ctx as f64
    );
    println!(
        "  heap (counted), peak within a run        {:>7.1} bytes (samples held, series, payloads)",
        peak_in_run as f64 / n_ctx as f64
    );
    println!(
        "  RSS growth, after the first run          {:>7.1} bytes",
        rss_filled as f64 / n_ctx as f64
    );
    println!(
        "  RSS growth, steady, after {runs} runs       {:>7.1} bytes",
        rss_steady as f64 / n_ctx as f64
    );
    println!(
        "  RSS growth, steady, after malloc_trim(0)  {:>7.1} bytes",
        rss_trimmed as f64 / n_ctx as f64
    );
    drop(cs);
    black_box(map);
}

fn main() {
    let runs: usize = std::env::var("CAIRN_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
        .max(2);
    let sizes: Vec<usize> = std::env::var("CAIRN_BENCH_CONTEXTS")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000]);
    println!("cairn-metrics check sampler bench: mix 40% gauge, 20% count, 20% monotonic_count, 20% histogram");
    for n in sizes {
        scenario(n, runs);
    }
}
