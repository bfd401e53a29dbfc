//! Compression bombs are refused while decompressing: the answer is fast and memory stays
//! near the 5 MB cap, not the expanded size. Alone in its own binary so that the peak-memory
//! reading is not disturbed by other tests.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::*;

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn zstd_zeros(total: usize) -> Vec<u8> {
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..total / chunk.len() {
        enc.write_all(&chunk).unwrap();
    }
    enc.finish().unwrap()
}

fn gzip_zeros(total: usize) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..total / chunk.len() {
        enc.write_all(&chunk).unwrap();
    }
    enc.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn compression_bombs_are_refused_fast_with_bounded_memory() {
    let h = Harness::start().await;
    // 256 MiB of zeros in a few KB of zstd; 64 MiB in ~64 KB of gzip (gzip tops out near 1000:1).
    let zbomb = zstd_zeros(256 << 20);
    let gbomb = gzip_zeros(64 << 20);
    assert!(
        zbomb.len() < 64 * 1024,
        "zstd bomb is {} bytes",
        zbomb.len()
    );
    assert!(
        gbomb.len() < 128 * 1024,
        "gzip bomb is {} bytes",
        gbomb.len()
    );
    let before = peak_rss_kib();
    for (enc, bomb) in [("zstd", zbomb), ("gzip", gbomb)] {
        let started = Instant::now();
        let (status, text) = h.post_raw("/api/v2/logs", Some(enc), bomb).await;
        let took = started.elapsed();
        assert_eq!(status, 413, "{enc}: {text}");
        assert!(took < Duration::from_secs(1), "{enc} bomb took {took:?}");
    }
    let grew_mib = (peak_rss_kib().saturating_sub(before)) / 1024;
    // The cap is 5 MB per request; allow for the decoder's buffers and the allocator.
    assert!(
        grew_mib < 64,
        "peak memory grew by {grew_mib} MiB while refusing the bombs"
    );
}
