//! The check sampler against the Agent's check-sampler semantics, table-driven: each case is
//! runs of samples, a commit after each run, and the series each commit must produce.

use std::sync::Arc;

use cairn_metrics::{
    AggregatorConfig, CheckSampler, ConfigError, MetricKind, Sample, SampleError, Serie,
    SeriesKind, Unsupported,
};

use MetricKind as K;
use SeriesKind as S;

/// One check run: samples `(value, submission ts)`, then a commit at `commit_ts`.
struct Run<'a> {
    samples: &'a [(f64, f64)],
    commit_ts: f64,
}

const fn run(samples: &[(f64, f64)], commit_ts: f64) -> Run<'_> {
    Run { samples, commit_ts }
}

/// Expected series of one commit: (name suffix, type, point ts, value).
type Expect = &'static [(&'static str, SeriesKind, i64, f64)];

struct Case<'a> {
    name: &'static str,
    kind: MetricKind,
    flush_first_value: bool,
    runs: &'a [Run<'a>],
    expect: &'a [Expect],
}

fn play(cfg: AggregatorConfig, case: &Case<'_>) -> Vec<Vec<(String, SeriesKind, i64, f64)>> {
    let mut sampler = CheckSampler::new(Arc::new(cfg));
    let mut got = Vec::new();
    for r in case.runs {
        for &(v, ts) in r.samples {
            let mut s = Sample::new("m", case.kind, v);
            s.host = "h";
            s.flush_first_value = case.flush_first_value;
            sampler.add(&s, ts).unwrap();
        }
        sampler.commit(r.commit_ts);
        let mut series: Vec<_> = sampler
            .flush()
            .into_iter()
            .map(|s| {
                assert_eq!(s.points.len(), 1, "{}: one point per commit", case.name);
                assert_eq!(s.host, "h");
                assert_eq!(s.source_type_name, "System");
                assert_eq!(s.interval, 0, "check series carry no interval");
                let suffix = s.name.strip_prefix('m').unwrap().to_string();
                (suffix, s.kind, s.points[0].0, s.points[0].1)
            })
            .collect();
        series.sort_by(|a, b| a.0.cmp(&b.0));
        got.push(series);
    }
    got
}

fn check(cfg: impl Fn() -> AggregatorConfig, cases: &[Case<'_>]) {
    for case in cases {
        assert_eq!(
            case.runs.len(),
            case.expect.len(),
            "{}: table shape",
            case.name
        );
        let got = play(cfg(), case);
        for (i, (g, e)) in got.iter().zip(case.expect).enumerate() {
            let mut e: Vec<_> = e
                .iter()
                .map(|&(sfx, k, ts, v)| (sfx.to_string(), k, ts, v))
                .collect();
            e.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(g, &e, "case `{}`, commit {i}", case.name);
        }
    }
}

const ONE_TO_HUNDRED: [(f64, f64); 100] = {
    let mut a = [(0.0, 0.0); 100];
    let mut i = 0;
    while i < 100 {
        a[i] = ((i + 1) as f64, 1000.0 + i as f64 * 0.01);
        i += 1;
    }
    a
};

#[test]
fn every_kind_aggregates_as_the_agent_check_sampler() {
    check(
        AggregatorConfig::default,
        &[
            Case {
                name: "gauge keeps the last value, at the commit timestamp",
                kind: K::Gauge,
                flush_first_value: false,
                runs: &[run(&[(1.0, 10.0), (5.0, 11.0)], 12.5), run(&[], 27.0), run(&[(7.0, 40.0)], 42.0)],
                expect: &[&[("", S::Gauge, 12, 5.0)], &[], &[("", S::Gauge, 42, 7.0)]],
            },
            Case {
                name: "count sums the run, sent as count",
                kind: K::Count,
                flush_first_value: false,
                runs: &[run(&[(1.0, 10.0), (2.0, 10.0), (3.5, 11.0)], 12.0), run(&[], 27.0), run(&[(-2.0, 40.0)], 41.0)],
                expect: &[&[("", S::Count, 12, 6.5)], &[], &[("", S::Count, 41, -2.0)]],
            },
            Case {
                name: "counter (increment/decrement) sums the run, sent as rate with interval 1",
                kind: K::Counter,
                flush_first_value: false,
                runs: &[run(&[(1.0, 10.0), (1.0, 10.0), (-1.0, 11.0)], 12.0), run(&[(3.0, 25.0)], 26.0)],
                expect: &[&[("", S::Rate, 12, 1.0)], &[("", S::Rate, 26, 3.0)]],
            },
            Case {
                name: "rate: the first sample gives nothing, the next run's gives (v2-v1)/(t2-t1) at t2",
                kind: K::Rate,
                flush_first_value: false,
                runs: &[run(&[(10.0, 100.0)], 101.0), run(&[(40.0, 115.0)], 116.0), run(&[], 131.0), run(&[(70.0, 145.0)], 146.0)],
                expect: &[&[], &[("", S::Gauge, 115, 2.0)], &[], &[("", S::Gauge, 145, 1.0)]],
            },
            Case {
                name: "rate: two samples in one run make a rate from the last two",
                kind: K::Rate,
                flush_first_value: false,
                runs: &[run(&[(0.0, 100.0), (10.0, 105.0), (30.0, 110.0)], 111.0)],
                expect: &[&[("", S::Gauge, 110, 4.0)]],
            },
            Case {
                name: "rate: a negative rate (counter reset) is dropped and the new value is the base",
                kind: K::Rate,
                flush_first_value: false,
                runs: &[run(&[(100.0, 100.0)], 101.0), run(&[(40.0, 115.0)], 116.0), run(&[(70.0, 130.0)], 131.0)],
                expect: &[&[], &[], &[("", S::Gauge, 130, 2.0)]],
            },
            Case {
                name: "rate: two samples at one timestamp give no rate",
                kind: K::Rate,
                flush_first_value: false,
                runs: &[run(&[(1.0, 100.0), (2.0, 100.0)], 101.0)],
                expect: &[&[]],
            },
            Case {
                name: "monotonic_count: deltas within and across runs, first value dropped (2,3,6,7 -> 5; 10,11 -> 4)",
                kind: K::MonotonicCount,
                flush_first_value: false,
                runs: &[run(&[(2.0, 10.0), (3.0, 10.0), (6.0, 11.0), (7.0, 11.0)], 12.0), run(&[(10.0, 25.0), (11.0, 25.0)], 26.0)],
                expect: &[&[("", S::Count, 12, 5.0)], &[("", S::Count, 26, 4.0)]],
            },
            Case {
                name: "monotonic_count: one sample per run, the first run sends nothing",
                kind: K::MonotonicCount,
                flush_first_value: false,
                runs: &[run(&[(5.0, 10.0)], 11.0), run(&[(8.0, 25.0)], 26.0), run(&[], 41.0), run(&[(20.0, 55.0)], 56.0)],
                expect: &[&[], &[("", S::Count, 26, 3.0)], &[], &[("", S::Count, 56, 12.0)]],
            },
            Case {
                name: "monotonic_count: a decrease is a reset, skipped; later deltas count",
                kind: K::MonotonicCount,
                flush_first_value: false,
                runs: &[run(&[(5.0, 10.0)], 11.0), run(&[(8.0, 25.0), (2.0, 25.0), (4.0, 25.5)], 26.0), run(&[(1.0, 40.0)], 41.0)],
                expect: &[&[], &[("", S::Count, 26, 5.0)], &[("", S::Count, 41, 0.0)]],
            },
            Case {
                name: "monotonic_count with flush_first_value: the first value counts",
                kind: K::MonotonicCount,
                flush_first_value: true,
                runs: &[run(&[(5.0, 10.0)], 11.0), run(&[(8.0, 25.0)], 26.0)],
                expect: &[&[("", S::Count, 11, 5.0)], &[("", S::Count, 26, 3.0)]],
            },
            Case {
                name: "monotonic_count with flush_first_value: after a decrease the new value counts whole",
                kind: K::MonotonicCount,
                flush_first_value: true,
                runs: &[run(&[(5.0, 10.0)], 11.0), run(&[(2.0, 25.0)], 26.0)],
                expect: &[&[("", S::Count, 11, 5.0)], &[("", S::Count, 26, 2.0)]],
            },
            Case {
                name: "histogram over 1..=100: default aggregates and the 95th percentile",
                kind: K::Histogram,
                flush_first_value: false,
                runs: &[run(&ONE_TO_HUNDRED, 1001.0), run(&[], 1016.0)],
                expect: &[
                    &[
                        (".max", S::Gauge, 1001, 100.0),
                        (".median", S::Gauge, 1001, 50.0),
                        (".avg", S::Gauge, 1001, 50.5),
                        (".count", S::Rate, 1001, 100.0),
                        (".95percentile", S::Gauge, 1001, 95.0),
                    ],
                    &[],
                ],
            },
            Case {
                name: "histogram of one sample: every aggregate is that sample",
                kind: K::Histogram,
                flush_first_value: false,
                runs: &[run(&[(3.0, 10.0)], 11.0)],
                expect: &[&[
                    (".max", S::Gauge, 11, 3.0),
                    (".median", S::Gauge, 11, 3.0),
                    (".avg", S::Gauge, 11, 3.0),
                    (".count", S::Rate, 11, 1.0),
                    (".95percentile", S::Gauge, 11, 3.0),
                ]],
            },
            Case {
                name: "historate: rates between consecutive samples feed the histogram",
                kind: K::Historate,
                flush_first_value: false,
                runs: &[run(&[(0.0, 0.0), (10.0, 10.0), (30.0, 20.0)], 21.0), run(&[(60.0, 35.0)], 36.0)],
                expect: &[
                    &[
                        (".max", S::Gauge, 21, 2.0),
                        (".median", S::Gauge, 21, 1.0),
                        (".avg", S::Gauge, 21, 1.5),
                        (".count", S::Rate, 21, 2.0),
                        (".95percentile", S::Gauge, 21, 2.0),
                    ],
                    // One sample in the run: its rate against the previous run's last sample.
                    &[
                        (".max", S::Gauge, 36, 2.0),
                        (".median", S::Gauge, 36, 2.0),
                        (".avg", S::Gauge, 36, 2.0),
                        (".count", S::Rate, 36, 1.0),
                        (".95percentile", S::Gauge, 36, 2.0),
                    ],
                ],
            },
        ],
    );
}

#[test]
fn custom_histogram_aggregates_and_percentiles() {
    check(
        || AggregatorConfig::new(&["min", "sum", "count"], &[0.99, 0.5, 0.0, 1.0, 0.29]).unwrap(),
        &[Case {
            name: "min/sum/count and 0, 29, 50, 99, 100 percentiles over 1..=100",
            kind: K::Histogram,
            flush_first_value: false,
            runs: &[run(&ONE_TO_HUNDRED, 1001.0)],
            expect: &[&[
                (".min", S::Gauge, 1001, 1.0),
                (".sum", S::Gauge, 1001, 5050.0),
                (".count", S::Rate, 1001, 100.0),
                (".0percentile", S::Gauge, 1001, 1.0),
                (".29percentile", S::Gauge, 1001, 29.0),
                (".50percentile", S::Gauge, 1001, 50.0),
                (".99percentile", S::Gauge, 1001, 99.0),
                (".100percentile", S::Gauge, 1001, 100.0),
            ]],
        }],
    );
}

#[test]
fn bad_histogram_settings_are_refused_naming_the_value() {
    let cases: &[(&[&str], &[f64], ConfigError)] = &[
        (
            &["max", "p75"],
            &[0.95],
            ConfigError::UnknownAggregate("p75".into()),
        ),
        (&["max"], &[1.5], ConfigError::PercentileOutOfRange(1.5)),
        (&["max"], &[95.0], ConfigError::PercentileOutOfRange(95.0)),
        (&["max"], &[-0.1], ConfigError::PercentileOutOfRange(-0.1)),
    ];
    for (aggs, pcts, want) in cases {
        let err = AggregatorConfig::new(aggs, pcts).unwrap_err();
        assert_eq!(&err, want);
    }
    let msg = AggregatorConfig::new(&["p75"], &[])
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("histogram_aggregates") && msg.contains("p75"),
        "{msg}"
    );
    let msg = AggregatorConfig::new(&["max"], &[f64::NAN])
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("histogram_percentiles") && msg.contains("NaN"),
        "{msg}"
    );
}

fn sampler() -> CheckSampler {
    CheckSampler::new(Arc::new(AggregatorConfig::default()))
}

fn gauge<'a>(name: &'a str, tags: &'a [String]) -> Sample<'a> {
    let mut s = Sample::new(name, K::Gauge, 1.0);
    s.tags = tags;
    s.host = "h";
    s
}

fn tags(t: &[&str]) -> Vec<String> {
    t.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_context_unseen_for_two_commits_expires() {
    let mut cs = sampler();
    cs.add(&gauge("a", &[]), 1.0).unwrap();
    cs.add(&gauge("b", &[]), 1.0).unwrap();
    cs.commit(2.0);
    assert_eq!(cs.contexts(), 2);
    cs.add(&gauge("b", &[]), 16.0).unwrap();
    cs.commit(17.0); // `a` missed one commit: kept
    assert_eq!(cs.contexts(), 2);
    cs.commit(32.0); // `a` missed two: expired; `b` missed one
    assert_eq!(cs.contexts(), 1);
    cs.commit(47.0);
    assert_eq!(cs.contexts(), 0);
    assert_eq!(cs.retained_stateful(), 0, "gauges keep no state");
    assert_eq!(
        cs.flush().len(),
        3,
        "a, b, then b again: expiry loses no series"
    );
}

#[test]
fn rate_state_outlives_its_context_for_the_stateful_timeout() {
    for (timeout, want_rate) in [(25.0 * 3600.0, Some(1.0)), (10.0, None)] {
        let cfg = AggregatorConfig::default().with_stateful_timeout_secs(timeout);
        let mut cs = CheckSampler::new(Arc::new(cfg));
        let mut s = Sample::new("r", K::Rate, 0.0);
        s.host = "h";
        cs.add(&s, 100.0).unwrap();
        cs.commit(101.0);
        cs.commit(116.0);
        cs.commit(131.0); // expired here; state kept until 131 + timeout
        assert_eq!(cs.contexts(), 0);
        assert_eq!(cs.retained_stateful(), 1);
        cs.commit(146.0);
        s.value = 60.0;
        cs.add(&s, 160.0).unwrap();
        cs.commit(161.0);
        let got: Vec<_> = cs.flush().iter().map(|s| s.points[0].1).collect();
        assert_eq!(
            got,
            want_rate.into_iter().collect::<Vec<_>>(),
            "timeout {timeout}"
        );
        assert_eq!(cs.contexts(), 1);
    }
}

#[test]
fn tags_are_sorted_and_deduplicated_into_one_context() {
    let mut cs = sampler();
    let t1 = tags(&["b:2", "a:1", "b:2"]);
    let t2 = tags(&["a:1", "b:2"]);
    cs.add(&gauge("m", &t1), 1.0).unwrap();
    cs.add(&gauge("m", &t2), 1.0).unwrap();
    assert_eq!(cs.contexts(), 1);
    let mut other_host = gauge("m", &t2);
    other_host.host = "h2";
    cs.add(&other_host, 1.0).unwrap();
    cs.add(&gauge("m", &tags(&["a:1"])), 1.0).unwrap();
    assert_eq!(cs.contexts(), 3, "host and tags are part of the context");
    cs.commit(2.0);
    let series = cs.flush();
    let s = series
        .iter()
        .find(|s| s.host == "h" && s.tags.len() == 2)
        .unwrap();
    assert_eq!(s.tags, tags(&["a:1", "b:2"]));
}

#[test]
fn any_order_or_repetition_of_a_tag_set_is_one_context() {
    // (tags of the sample that creates the context, tags of each later one): the hit path
    // looks contexts up unsorted, so every later spelling must land in the first context,
    // whichever spelling came first.
    let spellings: &[&[&str]] = &[
        &["a:1", "b:2", "c:3", "d:4"],
        &["d:4", "c:3", "b:2", "a:1"],
        &["c:3", "a:1", "d:4", "b:2"],
        &["a:1", "b:2", "c:3", "d:4", "a:1"],
        &["d:4", "d:4", "c:3", "b:2", "a:1", "c:3"],
        &["b:2", "a:1", "c:3", "d:4", "b:2", "b:2", "a:1"],
    ];
    for first in spellings {
        let mut cs = sampler();
        cs.add(&gauge("m", &tags(first)), 1.0).unwrap();
        for later in spellings {
            cs.add(&gauge("m", &tags(later)), 1.0).unwrap();
            assert_eq!(cs.contexts(), 1, "{first:?} then {later:?}");
        }
        // Four tags with one repeated (the set of three), that set, a superset: not the first.
        for other in [
            &["a:1", "b:2", "c:3", "c:3"][..],
            &["a:1", "b:2", "c:3"],
            &["a:1", "b:2", "c:3", "d:4", "e:5"],
        ] {
            cs.add(&gauge("m", &tags(other)), 1.0).unwrap();
        }
        assert_eq!(cs.contexts(), 3, "after {first:?}");
        cs.commit(2.0);
        let series = cs.flush();
        let s = series.iter().find(|s| s.tags.len() == 4).unwrap();
        assert_eq!(s.tags, tags(&["a:1", "b:2", "c:3", "d:4"]));
        assert_eq!(s.points[0].1, 1.0);
    }
}

#[test]
fn device_name_becomes_a_device_tag() {
    let mut cs = sampler();
    let t = tags(&["z:1", "a:1"]);
    let mut s = gauge("disk.used", &t);
    s.device = Some("sda1");
    cs.add(&s, 1.0).unwrap();
    // The same context, spelled with the tag.
    cs.add(
        &gauge("disk.used", &tags(&["device:sda1", "a:1", "z:1"])),
        1.0,
    )
    .unwrap();
    assert_eq!(cs.contexts(), 1);
    cs.commit(2.0);
    assert_eq!(cs.flush()[0].tags, tags(&["a:1", "device:sda1", "z:1"]));
}

#[test]
fn many_tags_make_one_context_too() {
    let mut cs = sampler();
    let mut t: Vec<String> = (0..50).map(|i| format!("k{i}:v")).collect();
    cs.add(&gauge("m", &t), 1.0).unwrap();
    t.reverse();
    t.push("k7:v".into());
    cs.add(&gauge("m", &t), 1.0).unwrap();
    assert_eq!(cs.contexts(), 1);
    cs.commit(2.0);
    assert_eq!(cs.flush()[0].tags.len(), 50);
}

#[test]
fn nan_and_infinity_are_refused_naming_the_metric_and_nothing_else_is_lost() {
    let mut cs = sampler();
    cs.add(&gauge("ok.before", &[]), 1.0).unwrap();
    for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        for kind in [
            K::Gauge,
            K::Count,
            K::Rate,
            K::MonotonicCount,
            K::Counter,
            K::Histogram,
            K::Historate,
        ] {
            let err = cs
                .add(&Sample::new("bad.metric", kind, v), 1.0)
                .unwrap_err();
            let SampleError::NotFinite { metric, .. } = &err;
            assert_eq!(metric, "bad.metric");
            assert!(err.to_string().contains("bad.metric"), "{err}");
        }
    }
    cs.add(&gauge("ok.after", &[]), 1.0).unwrap();
    assert_eq!(cs.contexts(), 2);
    cs.commit(2.0);
    let mut names: Vec<_> = cs.flush().into_iter().map(|s| s.name).collect();
    names.sort();
    assert_eq!(names, ["ok.after", "ok.before"]);
}

#[test]
fn the_first_sample_fixes_a_contexts_type() {
    let mut cs = sampler();
    cs.add(&Sample::new("m", K::Count, 2.0), 1.0).unwrap();
    cs.add(&Sample::new("m", K::Gauge, 3.0), 1.0).unwrap();
    cs.commit(2.0);
    let s: Vec<Serie> = cs.flush();
    assert_eq!(s.len(), 1);
    assert_eq!((s[0].kind, s[0].points[0].1), (S::Count, 5.0));
}

#[test]
fn series_of_several_commits_wait_for_the_flush() {
    let mut cs = sampler();
    for i in 0..3 {
        cs.add(&Sample::new("m", K::Gauge, i as f64), 5.0 * i as f64)
            .unwrap();
        cs.commit(5.0 * i as f64 + 1.0);
    }
    let points: Vec<_> = cs.flush().iter().map(|s| s.points[0]).collect();
    assert_eq!(points, [(1, 0.0), (6, 1.0), (11, 2.0)]);
    assert!(cs.flush().is_empty());
}

#[test]
fn unsupported_submissions_are_counted_and_warned_once() {
    let mut cs = sampler();
    assert!(cs.drop_unsupported(Unsupported::HistogramBucket));
    assert!(!cs.drop_unsupported(Unsupported::HistogramBucket));
    assert!(cs.drop_unsupported(Unsupported::EventPlatformEvent));
    assert_eq!(cs.unsupported_count(Unsupported::HistogramBucket), 2);
    assert_eq!(cs.unsupported_count(Unsupported::EventPlatformEvent), 1);
}

#[test]
fn aggregator_codes_map_to_kinds() {
    let kinds: Vec<_> = (0..8).map(MetricKind::from_aggregator_code).collect();
    assert_eq!(
        kinds,
        [
            Some(K::Gauge),
            Some(K::Rate),
            Some(K::Count),
            Some(K::MonotonicCount),
            Some(K::Counter),
            Some(K::Histogram),
            Some(K::Historate),
            None
        ]
    );
}

/// `flush_payloads` encodes from the sampler's own strings; its bytes must be those of the
/// owned series `flush` hands out, packed the same way, and expiry between commit and flush
/// must not take the strings a pending series still reads.
#[test]
fn flush_payloads_is_the_encoding_of_flush() {
    use cairn_metrics::wire::{self, Compression, Limits};
    let limits = Limits {
        max_compressed_bytes: 1 << 20,
        max_uncompressed_bytes: 2_000,
        max_points: 7,
    };
    let play = |direct: bool| {
        let cfg = AggregatorConfig::new(&["max", "count", "avg"], &[0.5, 0.95]).unwrap();
        let mut cs = CheckSampler::new(Arc::new(cfg.with_expiry_commits(1)));
        let mut out = Vec::new();
        for run in 0..4 {
            for i in 0..30usize {
                let kind = [K::Gauge, K::Histogram, K::MonotonicCount, K::Rate][i % 4];
                let tags: Vec<String> = vec![format!("e:{}", i % 7), "device:sd".into()];
                let mut s = Sample::new(["a", "b.c", "d"][i % 3], kind, (run * i) as f64);
                s.tags = &tags;
                s.host = if run % 2 == 0 { "h1" } else { "h2" };
                cs.add(&s, 100.0 + run as f64).unwrap();
            }
            // Two commits before a flush: the second expires every context of the first.
            cs.commit(110.0 + run as f64);
            cs.commit(111.0 + run as f64);
            out.push(if direct {
                cs.flush_payloads(Compression::None, limits).unwrap()
            } else {
                wire::series_payloads(&cs.flush(), Compression::None, limits).unwrap()
            });
        }
        out
    };
    let (direct, owned) = (play(true), play(false));
    assert!(owned.iter().all(|p| p.payloads.len() > 1), "limits split");
    assert_eq!(direct, owned);
}
