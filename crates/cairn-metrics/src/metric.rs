//! Per-context metric state, one variant per submission type, each following the Agent's
//! `pkg/metrics/<type>.go` (cited on each variant). `flush` runs at every commit (end of a
//! check run) and emits zero or more points through a callback.

use crate::config::{Aggregate, AggregatorConfig};
use crate::sampler::{MetricKind, SeriesKind};

/// What `flush` hands out: name suffix (an index, see [`AggregatorConfig::suffix`]), series
/// type, timestamp, value.
pub(crate) type Emit<'a> = dyn FnMut(u8, SeriesKind, f64, f64) + 'a;

#[derive(Debug)]
pub(crate) enum Metric {
    /// `gauge.go`: last value of the run, at the commit timestamp.
    Gauge { value: f64, sampled: bool },
    /// `count.go`: sum of the run, sent as COUNT at the commit timestamp.
    Count { value: f64, sampled: bool },
    /// `counter.go` with the check sampler's interval of 1: sum of the run, sent as RATE.
    Counter { value: f64, sampled: bool },
    /// `rate.go`: `(v2 - v1) / (t2 - t1)` of the last two samples, at the last sample's
    /// timestamp, sent as GAUGE. Samples are the values and submission times of `add`.
    /// Boxed, as is `Historate`: both are rare and twice the size of the common kinds, and
    /// the enum is as large as its largest variant in every context.
    Rate(Box<RateState>),
    /// `monotonic_count.go`, field for field.
    MonotonicCount {
        previous: f64,
        current: f64,
        value: f64,
        flags: MonoFlags,
    },
    /// `histogram.go`: the run's samples, every sample weighing 1 (checks have no sample rate).
    Histogram { samples: Vec<f64>, last_len: u32 },
    /// `historate.go`: the rate between consecutive samples goes into a histogram.
    /// Unlike the Agent, which forgets the previous sample at every flush that had a rate (so
    /// a check sending one sample per run gets a value only every other run), the previous
    /// sample is kept across commits: every run after the first feeds its rate (the issue's
    /// "per-run rates"). Negative rates are kept, as in the Agent.
    Historate(Box<HistorateState>),
}

// Every context pays for the largest variant: keep it at four words.
const _: () = assert!(std::mem::size_of::<Metric>() <= 32);

#[derive(Debug, Default)]
pub(crate) struct RateState {
    previous: Option<(f64, f64)>,
    current: Option<(f64, f64)>,
}

#[derive(Debug, Default)]
pub(crate) struct HistorateState {
    samples: Vec<f64>,
    last_len: u32,
    previous: Option<(f64, f64)>,
}

/// `monotonic_count.go`'s three booleans, packed so the variant fits in four words.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct MonoFlags(u8);

impl MonoFlags {
    const SAMPLED_SINCE_FLUSH: u8 = 1;
    const HAS_PREVIOUS: u8 = 2;
    const FLUSH_FIRST_VALUE: u8 = 4;

    fn get(self, bit: u8) -> bool {
        self.0 & bit != 0
    }

    fn set(&mut self, bit: u8, on: bool) {
        if on {
            self.0 |= bit;
        } else {
            self.0 &= !bit;
        }
    }
}

/// A buffer at most this large is kept between runs; a larger one is freed at flush (else a
/// histogram sampled 100 times a run would hold 800 bytes between runs, four times a
/// context's whole budget) and allocated again at its last size by the next run's first
/// sample: one allocation per run.
const KEEP_SAMPLES: usize = 8;

impl Metric {
    pub(crate) fn new(kind: MetricKind) -> Metric {
        match kind {
            MetricKind::Gauge => Metric::Gauge {
                value: 0.0,
                sampled: false,
            },
            MetricKind::Count => Metric::Count {
                value: 0.0,
                sampled: false,
            },
            MetricKind::Counter => Metric::Counter {
                value: 0.0,
                sampled: false,
            },
            MetricKind::Rate => Metric::Rate(Box::default()),
            MetricKind::MonotonicCount => Metric::MonotonicCount {
                previous: 0.0,
                current: 0.0,
                value: 0.0,
                flags: MonoFlags::default(),
            },
            MetricKind::Histogram => Metric::Histogram {
                samples: Vec::new(),
                last_len: 0,
            },
            MetricKind::Historate => Metric::Historate(Box::default()),
        }
    }

    /// The Agent's `isStateful`: state that must outlive one run.
    pub(crate) fn is_stateful(&self) -> bool {
        matches!(
            self,
            Metric::Rate(_) | Metric::MonotonicCount { .. } | Metric::Historate(_)
        )
    }

    pub(crate) fn add(&mut self, v: f64, ts: f64, flush_first: bool) {
        match self {
            Metric::Gauge { value, sampled } => {
                *value = v;
                *sampled = true;
            }
            Metric::Count { value, sampled } | Metric::Counter { value, sampled } => {
                *value += v;
                *sampled = true;
            }
            Metric::Rate(r) => {
                if r.current.is_some() {
                    r.previous = r.current;
                }
                r.current = Some((v, ts));
            }
            Metric::MonotonicCount {
                previous,
                current,
                value,
                flags,
            } => {
                if !flags.get(MonoFlags::SAMPLED_SINCE_FLUSH) {
                    *current = v;
                    flags.set(MonoFlags::SAMPLED_SINCE_FLUSH, true);
                } else {
                    *previous = *current;
                    *current = v;
                    flags.set(MonoFlags::HAS_PREVIOUS, true);
                }
                flags.set(MonoFlags::FLUSH_FIRST_VALUE, flush_first);
                let diff = *current - *previous;
                if (flags.get(MonoFlags::HAS_PREVIOUS) || flush_first) && diff >= 0.0 {
                    *value += diff;
                } else if flush_first {
                    // A decrease with flush_first_value: the counter restarted from 0, so its
                    // whole current value is new (the Agent's rule).
                    *value = *current;
                }
            }
            Metric::Histogram { samples, last_len } => hist_add(samples, *last_len, v),
            Metric::Historate(h) => {
                if let Some((pv, pts)) = h.previous {
                    // Two samples at one timestamp have no rate (the Agent would divide by 0).
                    if ts != pts {
                        hist_add(&mut h.samples, h.last_len, (v - pv) / (ts - pts));
                    }
                }
                h.previous = Some((v, ts));
            }
        }
    }

    /// One commit. `ts` is the commit timestamp.
    pub(crate) fn flush(&mut self, ts: f64, cfg: &AggregatorConfig, emit: &mut Emit<'_>) {
        match self {
            Metric::Gauge { value, sampled } => {
                if std::mem::take(sampled) {
                    emit(0, SeriesKind::Gauge, ts, std::mem::take(value));
                }
            }
            Metric::Count { value, sampled } => {
                if std::mem::take(sampled) {
                    emit(0, SeriesKind::Count, ts, std::mem::take(value));
                }
            }
            Metric::Counter { value, sampled } => {
                if std::mem::take(sampled) {
                    // The check sampler gives counters an interval of 1: value / 1.
                    emit(0, SeriesKind::Rate, ts, std::mem::take(value));
                }
            }
            Metric::Rate(r) => {
                let (Some((pv, pts)), Some((cv, cts))) = (r.previous, r.current) else {
                    return;
                };
                if cts == pts {
                    // Sampled twice at one timestamp: no rate, state unchanged (Agent).
                    return;
                }
                r.previous = r.current;
                r.current = None;
                let rate = (cv - pv) / (cts - pts);
                // A negative rate means the underlying counter was reset: dropped.
                if rate >= 0.0 {
                    emit(0, SeriesKind::Gauge, cts, rate);
                }
            }
            Metric::MonotonicCount {
                previous,
                current,
                value,
                flags,
            } => {
                if !flags.get(MonoFlags::SAMPLED_SINCE_FLUSH)
                    || !(flags.get(MonoFlags::HAS_PREVIOUS)
                        || flags.get(MonoFlags::FLUSH_FIRST_VALUE))
                {
                    return;
                }
                let v = std::mem::take(value);
                *previous = std::mem::take(current);
                *flags = MonoFlags(MonoFlags::HAS_PREVIOUS);
                emit(0, SeriesKind::Count, ts, v);
            }
            Metric::Histogram { samples, last_len } => hist_flush(samples, last_len, ts, cfg, emit),
            Metric::Historate(h) => hist_flush(&mut h.samples, &mut h.last_len, ts, cfg, emit),
        }
    }
}

/// Histogram samples are the run's samples in submission order; `last_len` is how many the
/// last run had, the size the next run's buffer starts at. (Fields of the variant rather than
/// a struct, so that the enum tag fits beside `last_len` and the variant in four words.)
fn hist_add(samples: &mut Vec<f64>, last_len: u32, v: f64) {
    if samples.capacity() == 0 {
        samples.reserve_exact((last_len as usize).max(1));
    }
    samples.push(v);
}

/// `histogram.go`'s flush with weights of 1: samples sorted ascending; median is the
/// sample at index `(n - 1) / 2`, percentile `p` (0..=100) the one at `(p * n - 1) / 100`
/// (integer division, truncating); `.count` is `n / interval` with the check sampler's
/// interval of 1, typed RATE; the rest are gauges.
fn hist_flush(
    samples: &mut Vec<f64>,
    last_len: &mut u32,
    ts: f64,
    cfg: &AggregatorConfig,
    emit: &mut Emit<'_>,
) {
    if samples.is_empty() {
        return;
    }
    // A fold from +0.0, as the running sum was (`Sum` starts from -0.0).
    let sum = samples.iter().fold(0.0, |a, &b| a + b);
    samples.sort_unstable_by(f64::total_cmp);
    let s = &samples;
    let n = s.len() as i64;
    for (i, agg) in cfg.aggregates.iter().enumerate() {
        let (kind, v) = match agg {
            Aggregate::Max => (SeriesKind::Gauge, s[s.len() - 1]),
            Aggregate::Min => (SeriesKind::Gauge, s[0]),
            Aggregate::Median => (SeriesKind::Gauge, s[((n - 1) / 2) as usize]),
            Aggregate::Avg => (SeriesKind::Gauge, sum / n as f64),
            Aggregate::Sum => (SeriesKind::Gauge, sum),
            Aggregate::Count => (SeriesKind::Rate, n as f64),
        };
        emit(1 + i as u8, kind, ts, v);
    }
    let first_pct = 1 + cfg.aggregates.len();
    for (j, (p, _)) in cfg.percentiles.iter().enumerate() {
        let idx = ((*p as i64 * n - 1) / 100).clamp(0, n - 1) as usize;
        emit((first_pct + j) as u8, SeriesKind::Gauge, ts, s[idx]);
    }
    *last_len = u32::try_from(samples.len()).unwrap_or(u32::MAX);
    if samples.capacity() > KEEP_SAMPLES {
        *samples = Vec::new();
    } else {
        samples.clear();
    }
}
