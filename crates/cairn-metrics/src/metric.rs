//! Per-context metric state, one variant per submission type, each following the Agent's
//! `pkg/metrics/<type>.go` (cited on each variant). `flush` runs at every commit (end of a
//! check run) and emits zero or more points through a callback.

use crate::config::{Aggregate, AggregatorConfig};
use crate::sampler::{MetricKind, SeriesKind};

/// What `flush` hands out: name suffix, series type, timestamp, value.
pub(crate) type Emit<'a> = dyn FnMut(&str, SeriesKind, f64, f64) + 'a;

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
    Rate {
        previous: Option<(f64, f64)>,
        current: Option<(f64, f64)>,
    },
    /// `monotonic_count.go`, field for field.
    MonotonicCount {
        previous: f64,
        current: f64,
        sampled_since_flush: bool,
        has_previous: bool,
        value: f64,
        flush_first_value: bool,
    },
    /// `histogram.go`: the run's samples, every sample weighing 1 (checks have no sample rate).
    Histogram(Hist),
    /// `historate.go`: the rate between consecutive samples goes into a histogram.
    /// Unlike the Agent, which forgets the previous sample at every flush that had a rate (so
    /// a check sending one sample per run gets a value only every other run), the previous
    /// sample is kept across commits: every run after the first feeds its rate (the issue's
    /// "per-run rates"). Negative rates are kept, as in the Agent.
    Historate {
        hist: Hist,
        previous: Option<(f64, f64)>,
    },
}

#[derive(Debug, Default)]
pub(crate) struct Hist {
    samples: Vec<f64>,
    sum: f64,
}

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
            MetricKind::Rate => Metric::Rate {
                previous: None,
                current: None,
            },
            MetricKind::MonotonicCount => Metric::MonotonicCount {
                previous: 0.0,
                current: 0.0,
                sampled_since_flush: false,
                has_previous: false,
                value: 0.0,
                flush_first_value: false,
            },
            MetricKind::Histogram => Metric::Histogram(Hist::default()),
            MetricKind::Historate => Metric::Historate {
                hist: Hist::default(),
                previous: None,
            },
        }
    }

    /// The Agent's `isStateful`: state that must outlive one run.
    pub(crate) fn is_stateful(&self) -> bool {
        matches!(
            self,
            Metric::Rate { .. } | Metric::MonotonicCount { .. } | Metric::Historate { .. }
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
            Metric::Rate { previous, current } => {
                if current.is_some() {
                    *previous = *current;
                }
                *current = Some((v, ts));
            }
            Metric::MonotonicCount {
                previous,
                current,
                sampled_since_flush,
                has_previous,
                value,
                flush_first_value,
            } => {
                if !*sampled_since_flush {
                    *current = v;
                    *sampled_since_flush = true;
                } else {
                    *previous = *current;
                    *current = v;
                    *has_previous = true;
                }
                *flush_first_value = flush_first;
                let diff = *current - *previous;
                if (*has_previous || *flush_first_value) && diff >= 0.0 {
                    *value += diff;
                } else if *flush_first_value {
                    // A decrease with flush_first_value: the counter restarted from 0, so its
                    // whole current value is new (the Agent's rule).
                    *value = *current;
                }
            }
            Metric::Histogram(h) => h.add(v),
            Metric::Historate { hist, previous } => {
                if let Some((pv, pts)) = *previous {
                    // Two samples at one timestamp have no rate (the Agent would divide by 0).
                    if ts != pts {
                        hist.add((v - pv) / (ts - pts));
                    }
                }
                *previous = Some((v, ts));
            }
        }
    }

    /// One commit. `ts` is the commit timestamp.
    pub(crate) fn flush(&mut self, ts: f64, cfg: &AggregatorConfig, emit: &mut Emit<'_>) {
        match self {
            Metric::Gauge { value, sampled } => {
                if std::mem::take(sampled) {
                    emit("", SeriesKind::Gauge, ts, std::mem::take(value));
                }
            }
            Metric::Count { value, sampled } => {
                if std::mem::take(sampled) {
                    emit("", SeriesKind::Count, ts, std::mem::take(value));
                }
            }
            Metric::Counter { value, sampled } => {
                if std::mem::take(sampled) {
                    // The check sampler gives counters an interval of 1: value / 1.
                    emit("", SeriesKind::Rate, ts, std::mem::take(value));
                }
            }
            Metric::Rate { previous, current } => {
                let (Some((pv, pts)), Some((cv, cts))) = (*previous, *current) else {
                    return;
                };
                if cts == pts {
                    // Sampled twice at one timestamp: no rate, state unchanged (Agent).
                    return;
                }
                *previous = *current;
                *current = None;
                let rate = (cv - pv) / (cts - pts);
                // A negative rate means the underlying counter was reset: dropped.
                if rate >= 0.0 {
                    emit("", SeriesKind::Gauge, cts, rate);
                }
            }
            Metric::MonotonicCount {
                previous,
                current,
                sampled_since_flush,
                has_previous,
                value,
                flush_first_value,
            } => {
                if !*sampled_since_flush || !(*has_previous || *flush_first_value) {
                    return;
                }
                let v = std::mem::take(value);
                *previous = std::mem::take(current);
                *has_previous = true;
                *sampled_since_flush = false;
                *flush_first_value = false;
                emit("", SeriesKind::Count, ts, v);
            }
            Metric::Histogram(h) => h.flush(ts, cfg, emit),
            Metric::Historate { hist, .. } => hist.flush(ts, cfg, emit),
        }
    }
}

impl Hist {
    fn add(&mut self, v: f64) {
        self.samples.push(v);
        self.sum += v;
    }

    /// `histogram.go`'s flush with weights of 1: samples sorted ascending; median is the
    /// sample at index `(n - 1) / 2`, percentile `p` (0..=100) the one at `(p * n - 1) / 100`
    /// (integer division, truncating); `.count` is `n / interval` with the check sampler's
    /// interval of 1, typed RATE; the rest are gauges.
    fn flush(&mut self, ts: f64, cfg: &AggregatorConfig, emit: &mut Emit<'_>) {
        if self.samples.is_empty() {
            return;
        }
        self.samples.sort_unstable_by(f64::total_cmp);
        let s = &self.samples;
        let n = s.len() as i64;
        for agg in &cfg.aggregates {
            let (kind, v) = match agg {
                Aggregate::Max => (SeriesKind::Gauge, s[s.len() - 1]),
                Aggregate::Min => (SeriesKind::Gauge, s[0]),
                Aggregate::Median => (SeriesKind::Gauge, s[((n - 1) / 2) as usize]),
                Aggregate::Avg => (SeriesKind::Gauge, self.sum / n as f64),
                Aggregate::Sum => (SeriesKind::Gauge, self.sum),
                Aggregate::Count => (SeriesKind::Rate, n as f64),
            };
            emit(agg.suffix(), kind, ts, v);
        }
        for (p, suffix) in &cfg.percentiles {
            let idx = ((*p as i64 * n - 1) / 100).clamp(0, n - 1) as usize;
            emit(suffix, SeriesKind::Gauge, ts, s[idx]);
        }
        self.samples.clear();
        self.sum = 0.0;
    }
}
