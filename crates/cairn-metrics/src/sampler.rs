//! The check sampler: one per check instance, the Agent's `pkg/aggregator/check_sampler.go`.
//!
//! - [`CheckSampler::add`] routes a sample to its context (name + host + sorted de-duplicated
//!   tags, `device_name` as a `device:` tag). The first sample of a context fixes its type,
//!   as in the Agent (the context key has no type in it).
//! - [`CheckSampler::commit`] ends a check run: every context's metric is flushed into series
//!   (held until the next [`CheckSampler::flush`]), then contexts not sampled for
//!   `expiry_commits` (2) commits expire. Stateless metrics go with their context; the state
//!   of a rate, monotonic_count or historate is kept `stateful_timeout_secs` (25 h) longer,
//!   and a sample in that time revives it with its state (`check_metrics.go`).
//! - [`CheckSampler::flush`] hands out the series of every commit since the last flush (one
//!   series per context, suffix and commit, as the Agent does).
//!
//! Storage, sized for ≤ 200 bytes per live context (measured in BENCHMARKS.md, enforced by
//! `tests/memory.rs`): a context is 64 bytes of ids into the sampler's intern tables (names,
//! hosts, tags, tag sets), its 32-byte metric state and its hash; an index maps the hash to
//! its slot and every hit is confirmed by comparing the text. The hash of the tags does not
//! depend on their order, so a sample of a known context is found without sorting its tags. `add` allocates nothing once
//! its context exists.
//!
//! Keeping state across reloads of an unchanged instance is the caller's part: keep the
//! sampler of a check id that is still configured (the Agent re-uses the sampler of an id
//! that registers again).

use std::sync::Arc;

use hashbrown::HashTable;

use crate::config::AggregatorConfig;
use crate::intern::{hash_field, same, Interner, SEED};
use crate::metric::Metric;
use crate::wire::{self, Compression, Limits, Payloads, SerieView, WireError, DEVICE_TAG_PREFIX};
use crate::CHECKS_SOURCE_TYPE_NAME;

/// A submission type, as in `aggregator.GAUGE..HISTORATE` (SPEC §3), flushed as:
///
/// | kind | flushed as | value | timestamp |
/// |---|---|---|---|
/// | `Gauge` | GAUGE | last value of the run | commit |
/// | `Count` | COUNT | sum of the run | commit |
/// | `Counter` (`increment`/`decrement`) | RATE | sum of the run (the check sampler's counter interval is 1) | commit |
/// | `Rate` | GAUGE | `(v2-v1)/(t2-t1)` of the last two samples, within or across runs; the first sample gives nothing; negative dropped | last sample |
/// | `MonotonicCount` | COUNT | sum of non-negative deltas between consecutive samples, within and across runs; a decrease is a reset (skipped); the first value counts only with `flush_first_value` | commit |
/// | `Histogram` | `.max .median .avg` GAUGE, `.count` RATE, `.95percentile` GAUGE (configurable) | over the run's samples | commit |
/// | `Historate` | as `Histogram` | over the rates between consecutive samples | commit |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Gauge,
    Rate,
    Count,
    MonotonicCount,
    Counter,
    Histogram,
    Historate,
}

impl MetricKind {
    /// From the `aggregator` module's constants (`GAUGE=0 .. HISTORATE=6`).
    pub fn from_aggregator_code(code: i64) -> Option<MetricKind> {
        Some(match code {
            0 => MetricKind::Gauge,
            1 => MetricKind::Rate,
            2 => MetricKind::Count,
            3 => MetricKind::MonotonicCount,
            4 => MetricKind::Counter,
            5 => MetricKind::Histogram,
            6 => MetricKind::Historate,
            _ => return None,
        })
    }
}

/// The type of a flushed series (`MetricPayload.MetricType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesKind {
    Count,
    Rate,
    Gauge,
}

/// One submission from a check. Tags are owned strings or borrowed ones (`T = &str`: a caller
/// holding them elsewhere, such as the native module borrowing Python's, copies nothing).
#[derive(Debug)]
pub struct Sample<'a, T = String> {
    pub name: &'a str,
    pub kind: MetricKind,
    pub value: f64,
    pub tags: &'a [T],
    /// The resolved hostname (the caller applies the agent's default).
    pub host: &'a str,
    /// `device_name=`: becomes the tag `device:<name>`.
    pub device: Option<&'a str>,
    /// `monotonic_count(..., flush_first_value=True)`.
    pub flush_first_value: bool,
}

// By hand: derived, they would require `T: Copy`, which the slice does not need.
impl<T> Clone for Sample<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Sample<'_, T> {}

impl<'a> Sample<'a> {
    pub fn new(name: &'a str, kind: MetricKind, value: f64) -> Self {
        Sample {
            name,
            kind,
            value,
            tags: &[],
            host: "",
            device: None,
            flush_first_value: false,
        }
    }
}

/// A sample the sampler refused; nothing else of the run is affected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SampleError {
    #[error("metric `{metric}`: value {value} is not a finite number; sample dropped")]
    NotFinite { metric: String, value: f64 },
}

/// Submissions Cairn accepts but cannot ship yet; counted, one warning per check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsupported {
    /// `submit_histogram_bucket` (the Agent turns buckets into sketches).
    HistogramBucket,
    /// `submit_event_platform_event`.
    EventPlatformEvent,
}

/// One flushed series: a context, a suffix and the points of one commit.
#[derive(Debug, Clone, PartialEq)]
pub struct Serie {
    pub name: String,
    pub host: String,
    /// Sorted, de-duplicated; a `device:` tag is moved to a resource by the wire encoder.
    pub tags: Vec<String>,
    pub kind: SeriesKind,
    /// Seconds; 0 for check series, as the Agent sends them (only DogStatsD's time sampler
    /// sets an interval).
    pub interval: i64,
    /// (seconds since the epoch, value).
    pub points: Vec<(i64, f64)>,
    pub source_type_name: String,
}

/// One series waiting for the flush: its context's ids (one reference each), the suffix index
/// ([`AggregatorConfig::suffix`]) and its one point.
struct Pending {
    name: u32,
    host: u32,
    tags: u32,
    suffix: u8,
    kind: SeriesKind,
    point: (i64, f64),
}

const _: () = assert!(std::mem::size_of::<Pending>() <= 32);

/// One context: ids into the sampler's [`Interner`] and its metric, 64 bytes.
struct Context {
    /// [`context_hash`] of name, host and tags: the key in the index, kept to rehash it and to
    /// reject most non-matching entries before comparing text.
    hash: u64,
    metric: Metric,
    name: u32,
    host: u32,
    /// A tag set id: sorted, de-duplicated tag string ids.
    tags: u32,
    /// The low 32 bits of the commit count when last sampled; ages are computed wrapping,
    /// which is exact for any age below 2^32 commits (> 2,000 years at 15 s).
    last_seen: u32,
    /// Set (not NaN) once the context expired while its metric keeps state: removed after
    /// this time. NaN rather than an `Option` saves a word in every context.
    retain_until: f64,
}

// The budget above counts on this (and on `Option` taking no room beside it).
const _: () = assert!(std::mem::size_of::<Option<Context>>() <= 64);

impl Context {
    fn retained(&self) -> bool {
        !self.retain_until.is_nan()
    }

    fn matches<T: AsRef<str>>(
        &self,
        strings: &Interner,
        name: &str,
        host: &str,
        tags: &OrderedTags<'_, T>,
    ) -> bool {
        let ids = strings.tag_set(self.tags);
        same(strings.str(self.name), name)
            && same(strings.str(self.host), host)
            && ids.len() == tags.len()
            && ids
                .iter()
                .zip(tags.iter())
                .all(|(&id, t)| same(strings.str(id), t))
    }
}

/// Samples with more tags than this (the device tag included) are looked up sorted: the hit
/// path's scan grows with the square of the count, and its set of matched members is a `u32`.
const MAX_UNSORTED_TAGS: usize = 16;

const _: () = assert!(MAX_UNSORTED_TAGS <= 32 && MAX_UNSORTED_TAGS <= u8::MAX as usize);

/// The tags of one sample in context order (sorted, de-duplicated), as positions in the
/// sample's slice (the device tag after it), so that nothing is copied or allocated.
struct OrderedTags<'a, T> {
    tags: &'a [T],
    device: &'a str,
    /// (first 8 bytes big-endian, position): sorting on the integer first makes most
    /// comparisons one instruction, since the tags of one context rarely share 8 bytes
    /// (`env:prod`, `service:`, `region:u`).
    order: &'a [(u64, u32)],
}

impl<'a, T: AsRef<str>> OrderedTags<'a, T> {
    fn new(tags: &'a [T], device: Option<&'a str>, order: &'a mut Vec<(u64, u32)>) -> Self {
        order.clear();
        order.extend(
            tags.iter()
                .enumerate()
                .map(|(i, t)| (prefix(t.as_ref()), i as u32)),
        );
        if let Some(d) = device {
            order.push((prefix(d), tags.len() as u32));
        }
        let device = device.unwrap_or("");
        let at = |i: u32| -> &str { tags.get(i as usize).map_or(device, T::as_ref) };
        // Checks usually send one tag list in one order, rarely sorted: an insertion sort on
        // the prefixes alone, then a pass that settles equal prefixes on the whole string
        // and drops duplicates. Both passes are a few integer comparisons for 3–6 tags.
        for i in 1..order.len() {
            let mut j = i;
            while j > 0 && order[j - 1].0 > order[j].0 {
                order.swap(j - 1, j);
                j -= 1;
            }
        }
        if order.windows(2).any(|w| w[0].0 == w[1].0) {
            order.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| at(a.1).cmp(at(b.1))));
            order.dedup_by(|b, a| a.0 == b.0 && at(a.1) == at(b.1));
        }
        OrderedTags {
            tags,
            device,
            order,
        }
    }

    fn len(&self) -> usize {
        self.order.len()
    }

    fn iter(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.order
            .iter()
            .map(|&(_, i)| self.tags.get(i as usize).map_or(self.device, T::as_ref))
    }
}

/// The first 8 bytes as a big-endian integer, zero-padded: ordered as the strings are
/// whenever two prefixes differ.
#[inline]
fn prefix(t: &str) -> u64 {
    let b = t.as_bytes();
    if b.len() >= 8 {
        return u64::from_be_bytes(b[..8].try_into().expect("8 bytes"));
    }
    b.iter()
        .enumerate()
        .fold(0, |x, (i, &c)| x | u64::from(c) << (56 - 8 * i))
}

/// Aggregates the metrics of one check instance. See the module docs.
pub struct CheckSampler {
    cfg: Arc<AggregatorConfig>,
    strings: Interner,
    /// Contexts by slot; `None` slots are on `free_slots`, reused first.
    slots: Vec<Option<Context>>,
    free_slots: Vec<u32>,
    /// Slot numbers by context hash.
    index: HashTable<u32>,
    live: usize,
    commits: u64,
    /// Series of the commits since the last flush, 32 bytes each: ids into `strings` (each
    /// holding a reference), not owned strings, so a flush's transient memory is a few
    /// dozen bytes per series rather than the ~400 of a [`Serie`].
    pending: Vec<Pending>,
    unsupported: [u64; 2],
    /// Reused for the `device:` tag, so that a sample with a device allocates nothing.
    device_tag: String,
    /// Reused by [`OrderedTags`].
    tag_order: Vec<(u64, u32)>,
    /// For each position of a sample's tags, where in its context's set the last hit found
    /// it (see [`same_set`]).
    tag_hint: [u8; MAX_UNSORTED_TAGS],
}

impl CheckSampler {
    pub fn new(cfg: Arc<AggregatorConfig>) -> Self {
        CheckSampler {
            cfg,
            strings: Interner::new(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            index: HashTable::new(),
            live: 0,
            commits: 0,
            pending: Vec::new(),
            unsupported: [0; 2],
            device_tag: String::new(),
            tag_order: Vec::new(),
            tag_hint: [0; MAX_UNSORTED_TAGS],
        }
    }

    /// Adds one sample submitted at `ts` (seconds). NaN and infinities are refused with an
    /// error naming the metric; the sampler is unchanged then.
    pub fn add<T: AsRef<str>>(&mut self, s: &Sample<'_, T>, ts: f64) -> Result<(), SampleError> {
        if !s.value.is_finite() {
            return Err(SampleError::NotFinite {
                metric: s.name.to_string(),
                value: s.value,
            });
        }
        let mut device_tag = std::mem::take(&mut self.device_tag);
        let mut order = std::mem::take(&mut self.tag_order);
        if let Some(d) = s.device {
            device_tag.clear();
            device_tag.push_str(DEVICE_TAG_PREFIX);
            device_tag.push_str(d);
        }
        let device = s.device.map(|_| device_tag.as_str());
        if !self.add_to_known_context(s, device, ts) {
            let tags = OrderedTags::new(s.tags, device, &mut order);
            self.add_to_context(s, &tags, ts);
        }
        self.tag_order = order;
        self.device_tag = device_tag;
        Ok(())
    }

    /// The hit path: finds the context from the tags in the order given, without sorting
    /// them (the key's tag hash is order-independent). False when it finds none, which is
    /// not a definite miss (duplicate tags hash differently from their de-duplicated set):
    /// the caller then takes the path that sorts, which alone creates contexts.
    fn add_to_known_context<T: AsRef<str>>(
        &mut self,
        s: &Sample<'_, T>,
        device: Option<&str>,
        ts: f64,
    ) -> bool {
        let n = s.tags.len() + usize::from(device.is_some());
        if n > MAX_UNSORTED_TAGS {
            return false;
        }
        let given = || s.tags.iter().map(T::as_ref).chain(device);
        let hash = context_hash(s.name, s.host, given());
        let (slots, strings, hint) = (&self.slots, &self.strings, &mut self.tag_hint);
        let found = self.index.find(hash, |&i| {
            let c = slots[i as usize].as_ref().expect("indexed slots are full");
            c.hash == hash
                && same(strings.str(c.name), s.name)
                && same(strings.str(c.host), s.host)
                && same_set(strings, strings.tag_set(c.tags), n, given(), hint)
        });
        let Some(&i) = found else {
            return false;
        };
        self.sample_context(i, s, ts);
        true
    }

    fn sample_context<T>(&mut self, i: u32, s: &Sample<'_, T>, ts: f64) {
        let c = self.slots[i as usize]
            .as_mut()
            .expect("indexed slots are full");
        c.last_seen = self.commits as u32;
        if c.retained() {
            c.retain_until = f64::NAN;
            self.live += 1;
        }
        c.metric.add(s.value, ts, s.flush_first_value);
    }

    fn add_to_context<T: AsRef<str>>(
        &mut self,
        s: &Sample<'_, T>,
        tags: &OrderedTags<'_, T>,
        ts: f64,
    ) {
        let hash = context_hash(s.name, s.host, tags.iter());
        let commits = self.commits as u32;
        let (slots, strings) = (&self.slots, &self.strings);
        let found = self.index.find(hash, |&i| {
            let c = slots[i as usize].as_ref().expect("indexed slots are full");
            c.hash == hash && c.matches(strings, s.name, s.host, tags)
        });
        if let Some(&i) = found {
            self.sample_context(i, s, ts);
            return;
        }
        let mut metric = Metric::new(s.kind);
        metric.add(s.value, ts, s.flush_first_value);
        let name = self.strings.acquire_str(s.name);
        let host = self.strings.acquire_str(s.host);
        let ids: Vec<u32> = tags.iter().map(|t| self.strings.acquire_str(t)).collect();
        let tags = self.strings.acquire_tag_set(&ids);
        let c = Context {
            hash,
            metric,
            name,
            host,
            tags,
            last_seen: commits,
            retain_until: f64::NAN,
        };
        let slot = match self.free_slots.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(c);
                i
            }
            None => {
                // Grow by a quarter, not double: the spare capacity is paid per context.
                if self.slots.len() == self.slots.capacity() {
                    self.slots.reserve_exact((self.slots.len() / 4).max(16));
                }
                self.slots.push(Some(c));
                u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 contexts")
            }
        };
        let slots = &self.slots;
        self.index.insert_unique(hash, slot, |&i| {
            slots[i as usize]
                .as_ref()
                .expect("indexed slots are full")
                .hash
        });
        self.live += 1;
    }

    /// Ends one check run at `ts` (seconds): flushes every metric into pending series, then
    /// expires contexts (see the module docs).
    pub fn commit(&mut self, ts: f64) {
        let cfg = &*self.cfg;
        let pending = &mut self.pending;
        let strings = &mut self.strings;
        let ts_secs = ts as i64;
        for c in self.slots.iter_mut().flatten() {
            let (name, host, tags) = (c.name, c.host, c.tags);
            c.metric.flush(ts, cfg, &mut |suffix, kind, pts, value| {
                let pts = if pts == ts { ts_secs } else { pts as i64 };
                // The series holds its own references: its context may expire below, before
                // the flush encodes it.
                strings.retain_str(name);
                strings.retain_str(host);
                strings.retain_tag_set(tags);
                pending.push(Pending {
                    name,
                    host,
                    tags,
                    suffix,
                    kind,
                    point: (pts, value),
                });
            });
        }
        let expiry = u32::try_from(cfg.expiry_commits).unwrap_or(u32::MAX);
        let timeout = cfg.stateful_timeout_secs;
        let commits = self.commits as u32;
        for i in 0..self.slots.len() {
            let Some(c) = &mut self.slots[i] else {
                continue;
            };
            let remove = if c.retained() {
                // Kept while the deadline is not past; a NaN commit time removes it, as before.
                let keep = c.retain_until >= ts;
                !keep
            } else if commits.wrapping_sub(c.last_seen) >= expiry {
                self.live -= 1;
                if c.metric.is_stateful() {
                    c.retain_until = ts + timeout;
                    // A NaN deadline (a NaN commit time) would read as "not retained".
                    c.retain_until.is_nan()
                } else {
                    true
                }
            } else {
                false
            };
            if remove {
                self.remove_slot(i);
            }
        }
        self.commits += 1;
    }

    fn remove_slot(&mut self, i: usize) {
        let c = self.slots[i].take().expect("removing a full slot");
        let slot = i as u32;
        if let Ok(e) = self.index.find_entry(c.hash, |&s| s == slot) {
            e.remove();
        }
        self.strings.release_str(c.name);
        self.strings.release_str(c.host);
        self.strings.release_tag_set(c.tags);
        self.free_slots.push(slot);
    }

    /// The series of every commit since the last flush, as owned [`Serie`]s (for display and
    /// tests; [`flush_payloads`](Self::flush_payloads) encodes without building them).
    pub fn flush(&mut self) -> Vec<Serie> {
        let pending = std::mem::take(&mut self.pending);
        let series = pending
            .iter()
            .map(|p| {
                let v = self.view(p);
                Serie {
                    name: [v.name, v.suffix].concat(),
                    host: v.host.to_string(),
                    tags: v.tags.map(str::to_string).collect(),
                    kind: v.kind,
                    interval: v.interval,
                    points: v.points.to_vec(),
                    source_type_name: v.source_type_name.to_string(),
                }
            })
            .collect();
        self.release_pending(&pending);
        series
    }

    /// The series of every commit since the last flush, encoded straight from the sampler's
    /// strings into `/api/v2/series` payloads (as [`wire::series_payloads`] would pack the
    /// same series from [`flush`](Self::flush)).
    pub fn flush_payloads(
        &mut self,
        compression: Compression,
        limits: Limits,
    ) -> Result<Payloads, WireError> {
        let pending = std::mem::take(&mut self.pending);
        let out = wire::views_payloads(pending.iter().map(|p| self.view(p)), compression, limits);
        self.release_pending(&pending);
        out
    }

    /// Series waiting for the next flush.
    pub fn pending_series(&self) -> usize {
        self.pending.len()
    }

    fn view<'a>(&'a self, p: &'a Pending) -> SerieView<'a, impl Iterator<Item = &'a str> + Clone> {
        let strings = &self.strings;
        SerieView {
            name: strings.str(p.name),
            suffix: self.cfg.suffix(p.suffix),
            host: strings.str(p.host),
            tags: strings.tag_set(p.tags).iter().map(|&t| strings.str(t)),
            kind: p.kind,
            interval: 0,
            points: std::slice::from_ref(&p.point),
            source_type_name: CHECKS_SOURCE_TYPE_NAME,
        }
    }

    fn release_pending(&mut self, pending: &[Pending]) {
        for p in pending {
            self.strings.release_str(p.name);
            self.strings.release_str(p.host);
            self.strings.release_tag_set(p.tags);
        }
    }

    /// Live contexts (sampled within the last `expiry_commits` commits).
    pub fn contexts(&self) -> usize {
        self.live
    }

    /// Expired contexts whose rate / monotonic_count / historate state is still kept.
    pub fn retained_stateful(&self) -> usize {
        self.index.len() - self.live
    }

    /// Counts a submission that is accepted but not shipped. Returns true for the first one
    /// of its kind in this sampler's life: the caller logs one warning per check then.
    pub fn drop_unsupported(&mut self, what: Unsupported) -> bool {
        let n = &mut self.unsupported[what as usize];
        *n += 1;
        *n == 1
    }

    /// How many submissions of this kind were dropped.
    pub fn unsupported_count(&self, what: Unsupported) -> u64 {
        self.unsupported[what as usize]
    }
}

/// Name and host, each hashed as its own field (see [`hash_field`]), then the tags as the
/// wrapping sum of their own hashes: the same in any order, so that the hit path needs no
/// sort. A set's sum is over its de-duplicated tags; a sample repeating a tag hashes
/// otherwise and is found by the sorting path.
fn context_hash<'t>(name: &str, host: &str, tags: impl Iterator<Item = &'t str>) -> u64 {
    let mut h = hash_field(SEED, name.as_bytes());
    h = hash_field(h, host.as_bytes());
    let sum = tags.fold(0u64, |sum, t| {
        sum.wrapping_add(hash_field(SEED, t.as_bytes()))
    });
    hash_field(h, &sum.to_le_bytes())
}

/// Whether `given` (`n` tags, in any order) is exactly the sorted, de-duplicated `set`: as
/// many tags, each matched to a distinct member (so a repeated tag never passes, whatever
/// the hashes say). A linear scan per tag: for the few tags of a context it costs less than
/// sorting them, and most tags differ from a non-matching member in their length.
fn same_set<'t>(
    strings: &Interner,
    set: &[u32],
    n: usize,
    given: impl Iterator<Item = &'t str>,
    hint: &mut [u8; MAX_UNSORTED_TAGS],
) -> bool {
    if set.len() != n {
        return false;
    }
    let mut matched: u32 = 0;
    for (i, t) in given.enumerate() {
        let at = |j: usize| matched & (1 << j) == 0 && same(strings.str(set[j]), t);
        // A check sends its tags in one order, usually the same for all its metrics (one
        // entity's tags, then the metric's): where the last hit found this position's tag.
        let hinted = usize::from(hint[i]);
        let Some(j) = (if hinted < n && at(hinted) {
            Some(hinted)
        } else {
            (0..n).find(|&j| at(j))
        }) else {
            return false;
        };
        hint[i] = j as u8;
        matched |= 1 << j;
    }
    true
}
