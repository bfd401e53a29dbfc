//! What the sampler reads from `datadog.yaml`: `histogram_aggregates`, `histogram_percentiles`,
//! and the Agent's two check-sampler expiry knobs. Built once, validated, shared by every
//! [`crate::CheckSampler`] through an `Arc`.

/// One histogram aggregate (`histogram_aggregates` entry). Names and types as in the Agent's
/// `pkg/metrics/histogram.go`: every aggregate is a gauge except `count`, which is a rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    Max,
    Min,
    Median,
    Avg,
    Sum,
    Count,
}

impl Aggregate {
    /// The name used in `datadog.yaml`.
    pub fn name(self) -> &'static str {
        match self {
            Aggregate::Max => "max",
            Aggregate::Min => "min",
            Aggregate::Median => "median",
            Aggregate::Avg => "avg",
            Aggregate::Sum => "sum",
            Aggregate::Count => "count",
        }
    }

    /// The suffix appended to the metric name (`.max`, ...).
    pub(crate) fn suffix(self) -> &'static str {
        match self {
            Aggregate::Max => ".max",
            Aggregate::Min => ".min",
            Aggregate::Median => ".median",
            Aggregate::Avg => ".avg",
            Aggregate::Sum => ".sum",
            Aggregate::Count => ".count",
        }
    }

    /// Parses one `histogram_aggregates` entry.
    pub fn parse(name: &str) -> Result<Aggregate, ConfigError> {
        Ok(match name {
            "max" => Aggregate::Max,
            "min" => Aggregate::Min,
            "median" => Aggregate::Median,
            "avg" => Aggregate::Avg,
            "sum" => Aggregate::Sum,
            "count" => Aggregate::Count,
            other => return Err(ConfigError::UnknownAggregate(other.to_string())),
        })
    }
}

/// A bad `histogram_*` value, naming it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("histogram_aggregates: unknown aggregate `{0}` (expected max, min, median, avg, sum or count)")]
    UnknownAggregate(String),
    #[error("histogram_percentiles: {0} is not between 0 and 1")]
    PercentileOutOfRange(f64),
}

/// The sampler's configuration. [`Default`] is the Agent's.
#[derive(Debug, Clone)]
pub struct AggregatorConfig {
    pub(crate) aggregates: Vec<Aggregate>,
    /// Percentiles as integers 0..=100 with their series suffix (`.95percentile`), sorted.
    pub(crate) percentiles: Vec<(u32, String)>,
    /// `check_sampler_bucket_commits_count_expiry` (Agent default 2): a context not sampled
    /// for this many commits is expired.
    pub(crate) expiry_commits: u64,
    /// `check_sampler_stateful_metric_expiration_time` (Agent default 25 h): how long the
    /// state of an expired rate / monotonic_count / historate is kept, so a check that sends
    /// a metric only now and then still gets rates and deltas.
    pub(crate) stateful_timeout_secs: f64,
}

/// Agent default of `histogram_aggregates`.
pub const DEFAULT_HISTOGRAM_AGGREGATES: [&str; 4] = ["max", "median", "avg", "count"];
/// Agent default of `histogram_percentiles`.
pub const DEFAULT_HISTOGRAM_PERCENTILES: [f64; 1] = [0.95];
/// Agent default of `check_sampler_bucket_commits_count_expiry`.
pub const DEFAULT_EXPIRY_COMMITS: u64 = 2;
/// Agent default of `check_sampler_stateful_metric_expiration_time` (25 h).
pub const DEFAULT_STATEFUL_TIMEOUT_SECS: f64 = 25.0 * 3600.0;

impl Default for AggregatorConfig {
    fn default() -> Self {
        AggregatorConfig::new(
            &DEFAULT_HISTOGRAM_AGGREGATES,
            &DEFAULT_HISTOGRAM_PERCENTILES,
        )
        .expect("the defaults are valid")
    }
}

impl AggregatorConfig {
    /// From `histogram_aggregates` and `histogram_percentiles` (fractions in `0..=1`, as in
    /// `datadog.yaml`). A percentile becomes `round(p * 100)` (the Agent adds 0.5 and
    /// truncates so that 0.29 is 29, not 28); duplicates are kept once, order is ascending.
    pub fn new<S: AsRef<str>>(aggregates: &[S], percentiles: &[f64]) -> Result<Self, ConfigError> {
        let mut aggs = Vec::with_capacity(aggregates.len());
        for a in aggregates {
            let a = Aggregate::parse(a.as_ref())?;
            if !aggs.contains(&a) {
                aggs.push(a);
            }
        }
        let mut pcts = Vec::with_capacity(percentiles.len());
        for &p in percentiles {
            if !(0.0..=1.0).contains(&p) {
                return Err(ConfigError::PercentileOutOfRange(p));
            }
            pcts.push((p * 100.0 + 0.5) as u32);
        }
        pcts.sort_unstable();
        pcts.dedup();
        Ok(AggregatorConfig {
            aggregates: aggs,
            percentiles: pcts
                .into_iter()
                .map(|p| (p, format!(".{p}percentile")))
                .collect(),
            expiry_commits: DEFAULT_EXPIRY_COMMITS,
            stateful_timeout_secs: DEFAULT_STATEFUL_TIMEOUT_SECS,
        })
    }

    /// Overrides `check_sampler_bucket_commits_count_expiry` (at least 1).
    pub fn with_expiry_commits(mut self, commits: u64) -> Self {
        self.expiry_commits = commits.max(1);
        self
    }

    /// Overrides `check_sampler_stateful_metric_expiration_time`.
    pub fn with_stateful_timeout_secs(mut self, secs: f64) -> Self {
        self.stateful_timeout_secs = secs;
        self
    }

    /// The series name suffix of index `i` as `Metric::flush` emits it: 0 is none, then the
    /// aggregates, then the percentiles (a byte, so a pending series stays 32 bytes).
    pub(crate) fn suffix(&self, i: u8) -> &str {
        let i = usize::from(i);
        match i.checked_sub(1) {
            None => "",
            Some(a) if a < self.aggregates.len() => self.aggregates[a].suffix(),
            Some(a) => &self.percentiles[a - self.aggregates.len()].1,
        }
    }

    pub fn aggregates(&self) -> &[Aggregate] {
        &self.aggregates
    }

    /// Configured percentiles as integers 0..=100, ascending.
    pub fn percentiles(&self) -> impl Iterator<Item = u32> + '_ {
        self.percentiles.iter().map(|(p, _)| *p)
    }
}
