//! The series protobuf decoded by a decoder written here from `agent_payload.proto`'s field
//! numbers (varint, length-delimited, fixed64), sharing nothing with the encoder; payload
//! splitting within the limits; the service-check JSON.

use std::io::Read;

use cairn_metrics::wire::{
    self, Compression, Limits, ServiceCheck, SERIES_LIMITS, SERVICE_CHECK_LIMITS,
};
use cairn_metrics::{Serie, SeriesKind};

// ---- a minimal protobuf wire decoder ----

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Varint(u64),
    Fixed64(u64),
    Bytes(Vec<u8>),
}

fn read_varint(b: &[u8], pos: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let byte = b[*pos];
        *pos += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return v;
        }
        shift += 7;
        assert!(shift < 64, "varint too long");
    }
}

/// Every (field number, value) of one message, in wire order.
fn fields(b: &[u8]) -> Vec<(u64, Value)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < b.len() {
        let key = read_varint(b, &mut pos);
        let (field, wire_type) = (key >> 3, key & 7);
        let v = match wire_type {
            0 => Value::Varint(read_varint(b, &mut pos)),
            1 => {
                let v = u64::from_le_bytes(b[pos..pos + 8].try_into().unwrap());
                pos += 8;
                Value::Fixed64(v)
            }
            2 => {
                let len = read_varint(b, &mut pos) as usize;
                let v = b[pos..pos + len].to_vec();
                pos += len;
                Value::Bytes(v)
            }
            other => panic!("unexpected wire type {other} for field {field}"),
        };
        out.push((field, v));
    }
    assert_eq!(pos, b.len(), "message ends on a field boundary");
    out
}

fn bytes(v: &Value) -> &[u8] {
    match v {
        Value::Bytes(b) => b,
        other => panic!("expected length-delimited, got {other:?}"),
    }
}

fn string(v: &Value) -> String {
    String::from_utf8(bytes(v).to_vec()).unwrap()
}

fn varint(v: &Value) -> u64 {
    match v {
        Value::Varint(n) => *n,
        other => panic!("expected varint, got {other:?}"),
    }
}

/// `MetricPayload.MetricSeries` as the schema defines it.
#[derive(Debug, Default, PartialEq)]
struct Series {
    resources: Vec<(String, String)>, // 1: Resource { type = 1, name = 2 }
    metric: String,                   // 2
    tags: Vec<String>,                // 3
    points: Vec<(f64, i64)>, // 4: MetricPoint { value = 1 (double), timestamp = 2 (int64) }
    r#type: u64,             // 5: MetricType
    unit: Option<String>,    // 6
    source_type_name: String, // 7
    interval: i64,           // 8
    origin_product: Option<u64>, // 9: Metadata { origin = 1: Origin { origin_product = 4 } }
}

fn decode_payload(b: &[u8]) -> Vec<Series> {
    fields(b)
        .into_iter()
        .map(|(f, v)| {
            assert_eq!(f, 1, "MetricPayload has only `series = 1`");
            decode_series(bytes(&v))
        })
        .collect()
}

fn decode_series(b: &[u8]) -> Series {
    let mut s = Series::default();
    for (f, v) in fields(b) {
        match f {
            1 => {
                let (mut t, mut n) = (String::new(), String::new());
                for (rf, rv) in fields(bytes(&v)) {
                    match rf {
                        1 => t = string(&rv),
                        2 => n = string(&rv),
                        other => panic!("Resource field {other}"),
                    }
                }
                s.resources.push((t, n));
            }
            2 => s.metric = string(&v),
            3 => s.tags.push(string(&v)),
            4 => {
                let (mut val, mut ts) = (0.0, 0);
                for (pf, pv) in fields(bytes(&v)) {
                    match (pf, pv) {
                        (1, Value::Fixed64(bits)) => val = f64::from_bits(bits),
                        (2, Value::Varint(n)) => ts = n as i64,
                        other => panic!("MetricPoint field {other:?}"),
                    }
                }
                s.points.push((val, ts));
            }
            5 => s.r#type = varint(&v),
            6 => s.unit = Some(string(&v)),
            7 => s.source_type_name = string(&v),
            8 => s.interval = varint(&v) as i64,
            9 => {
                for (mf, mv) in fields(bytes(&v)) {
                    assert_eq!(mf, 1, "Metadata.origin");
                    for (of, ov) in fields(bytes(&mv)) {
                        if of == 4 {
                            s.origin_product = Some(varint(&ov));
                        }
                    }
                }
            }
            other => panic!("MetricSeries field {other}"),
        }
    }
    s
}

// ---- tests ----

fn serie(name: &str, kind: SeriesKind, tags: &[&str], points: &[(i64, f64)]) -> Serie {
    Serie {
        name: name.into(),
        host: "web-1".into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        kind,
        interval: 0,
        points: points.to_vec(),
        source_type_name: "System".into(),
    }
}

#[test]
fn series_decode_field_by_field_with_an_independent_decoder() {
    let mut with_interval = serie("a.rate", SeriesKind::Rate, &[], &[(1_700_000_000, 0.25)]);
    with_interval.interval = 15;
    with_interval.host = String::new();
    let input = vec![
        serie(
            "disk.used",
            SeriesKind::Gauge,
            &["a:1", "device:sda1", "z:2"],
            &[(1_700_000_015, 42.5), (1_700_000_030, -1e-3)],
        ),
        serie(
            "req.count",
            SeriesKind::Count,
            &["env:dev"],
            &[(1_700_000_015, 7.0)],
        ),
        with_interval,
    ];
    let got = decode_payload(&wire::encode_series(&input));
    let want = vec![
        Series {
            resources: vec![
                ("host".into(), "web-1".into()),
                ("device".into(), "sda1".into()),
            ],
            metric: "disk.used".into(),
            tags: vec!["a:1".into(), "z:2".into()],
            points: vec![(42.5, 1_700_000_015), (-1e-3, 1_700_000_030)],
            r#type: 3, // GAUGE
            unit: None,
            source_type_name: "System".into(),
            interval: 0,
            origin_product: Some(10),
        },
        Series {
            resources: vec![("host".into(), "web-1".into())],
            metric: "req.count".into(),
            tags: vec!["env:dev".into()],
            points: vec![(7.0, 1_700_000_015)],
            r#type: 1, // COUNT
            unit: None,
            source_type_name: "System".into(),
            interval: 0,
            origin_product: Some(10),
        },
        Series {
            resources: vec![("host".into(), String::new())],
            metric: "a.rate".into(),
            tags: vec![],
            points: vec![(0.25, 1_700_000_000)],
            r#type: 2, // RATE
            unit: None,
            source_type_name: "System".into(),
            interval: 15,
            origin_product: Some(10),
        },
    ];
    assert_eq!(got, want);
}

#[test]
fn long_names_and_many_points_keep_lengths_right() {
    let long = "x".repeat(300); // a two-byte length prefix
    let points: Vec<(i64, f64)> = (0..200).map(|i| (i * 1000, i as f64)).collect();
    let tags: Vec<String> = (0..40).map(|i| format!("{long}:{i}")).collect();
    let tag_refs: Vec<&str> = tags.iter().map(String::as_str).collect();
    let s = serie(&long, SeriesKind::Gauge, &tag_refs, &points);
    let got = decode_payload(&wire::encode_series(&[s]));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].metric, long);
    assert_eq!(got[0].tags, tags);
    assert_eq!(got[0].points.len(), 200);
    assert_eq!(got[0].points[199], (199.0, 199_000));
}

fn decompress(c: Compression, body: &[u8]) -> Vec<u8> {
    match c {
        Compression::None => body.to_vec(),
        Compression::Zstd { .. } => zstd::decode_all(body).unwrap(),
        Compression::Gzip { .. } => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .unwrap();
            out
        }
    }
}

/// Tags that do not compress, so compressed limits bite.
fn noisy(i: usize) -> String {
    let mut x = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (0..64)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect()
}

#[test]
fn payloads_stay_within_points_bytes_and_compressed_limits_and_lose_nothing() {
    let series: Vec<Serie> = (0..500)
        .map(|i| {
            let t = noisy(i);
            serie(
                &format!("m.{i}"),
                SeriesKind::Gauge,
                &[&t],
                &[(i as i64, i as f64)],
            )
        })
        .collect();
    let cases = [
        (
            Compression::None,
            Limits {
                max_compressed_bytes: usize::MAX,
                max_uncompressed_bytes: usize::MAX,
                max_points: 64,
            },
        ),
        (
            Compression::None,
            Limits {
                max_compressed_bytes: usize::MAX,
                max_uncompressed_bytes: 4_000,
                max_points: usize::MAX,
            },
        ),
        (
            Compression::Zstd { level: 1 },
            Limits {
                max_compressed_bytes: 3_000,
                max_uncompressed_bytes: usize::MAX,
                max_points: usize::MAX,
            },
        ),
        (
            Compression::Gzip { level: 6 },
            Limits {
                max_compressed_bytes: 3_000,
                max_uncompressed_bytes: 20_000,
                max_points: 100,
            },
        ),
        (Compression::Zstd { level: 1 }, SERIES_LIMITS),
    ];
    for (c, limits) in cases {
        let out = wire::series_payloads(&series, c, limits).unwrap();
        assert_eq!(out.dropped, 0, "{c:?} {limits:?}");
        let mut names = Vec::new();
        for p in &out.payloads {
            assert!(p.body.len() <= limits.max_compressed_bytes, "{c:?}");
            assert!(
                p.uncompressed_bytes <= limits.max_uncompressed_bytes,
                "{c:?}"
            );
            assert!(p.points <= limits.max_points, "{c:?}");
            let raw = decompress(c, &p.body);
            assert_eq!(raw.len(), p.uncompressed_bytes);
            let decoded = decode_payload(&raw);
            assert_eq!(decoded.len(), p.items);
            names.extend(decoded.into_iter().map(|s| s.metric));
        }
        let want: Vec<String> = (0..500).map(|i| format!("m.{i}")).collect();
        assert_eq!(names, want, "every series once, in order ({c:?})");
        if limits != SERIES_LIMITS {
            assert!(out.payloads.len() > 1, "the limit split the series ({c:?})");
        } else {
            assert_eq!(out.payloads.len(), 1);
        }
    }
}

#[test]
fn a_series_too_big_for_any_payload_is_dropped_and_counted() {
    let big: Vec<(i64, f64)> = (0..11).map(|i| (i, 1.0)).collect();
    let series = vec![
        serie("small.a", SeriesKind::Gauge, &[], &[(1, 1.0)]),
        serie("too.many.points", SeriesKind::Gauge, &[], &big),
        serie("small.b", SeriesKind::Gauge, &[], &[(1, 1.0)]),
    ];
    let limits = Limits {
        max_compressed_bytes: usize::MAX,
        max_uncompressed_bytes: usize::MAX,
        max_points: 10,
    };
    let out = wire::series_payloads(&series, Compression::None, limits).unwrap();
    assert_eq!(out.dropped, 1);
    let names: Vec<String> = out
        .payloads
        .iter()
        .flat_map(|p| decode_payload(&p.body))
        .map(|s| s.metric)
        .collect();
    assert_eq!(names, ["small.a", "small.b"]);
}

#[test]
fn service_checks_are_a_json_array_of_the_check_run_fields() {
    let checks = vec![
        ServiceCheck {
            check: "my.can_connect".into(),
            host_name: "web-1".into(),
            timestamp: 1_700_000_000,
            status: 2,
            message: "refused \"quoted\"".into(),
            tags: vec!["env:dev".into()],
        },
        ServiceCheck {
            check: "my.ok".into(),
            host_name: "web-1".into(),
            timestamp: 1_700_000_001,
            status: 0,
            message: String::new(),
            tags: vec![],
        },
    ];
    let out = wire::service_check_payloads(
        &checks,
        Compression::Gzip { level: 6 },
        SERVICE_CHECK_LIMITS,
    )
    .unwrap();
    assert_eq!(out.payloads.len(), 1);
    let raw = decompress(Compression::Gzip { level: 6 }, &out.payloads[0].body);
    let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(
        v,
        serde_json::json!([
            {"check": "my.can_connect", "host_name": "web-1", "timestamp": 1_700_000_000,
             "status": 2, "message": "refused \"quoted\"", "tags": ["env:dev"]},
            {"check": "my.ok", "host_name": "web-1", "timestamp": 1_700_000_001,
             "status": 0, "message": "", "tags": []}
        ])
    );

    // Split by the uncompressed limit: each body is still a JSON array.
    let many: Vec<ServiceCheck> = (0..100)
        .map(|i| ServiceCheck {
            timestamp: i,
            ..checks[0].clone()
        })
        .collect();
    let limits = Limits {
        max_compressed_bytes: usize::MAX,
        max_uncompressed_bytes: 1_000,
        max_points: usize::MAX,
    };
    let out = wire::service_check_payloads(&many, Compression::None, limits).unwrap();
    assert!(out.payloads.len() > 1);
    let mut ts = Vec::new();
    for p in &out.payloads {
        assert!(p.body.len() <= 1_000);
        let arr: Vec<serde_json::Value> = serde_json::from_slice(&p.body).unwrap();
        ts.extend(arr.iter().map(|c| c["timestamp"].as_i64().unwrap()));
    }
    assert_eq!(ts, (0..100).collect::<Vec<_>>());
}

#[test]
fn content_encoding_names() {
    assert_eq!(Compression::None.content_encoding(), None);
    assert_eq!(
        Compression::Zstd { level: 1 }.content_encoding(),
        Some("zstd")
    );
    assert_eq!(
        Compression::Gzip { level: 6 }.content_encoding(),
        Some("gzip")
    );
}
