use super::*;
use std::path::PathBuf;

fn opts(dir: &Path, max: u64, when_full: WhenFull) -> BufferOptions {
    let mut o = BufferOptions::new(dir, max, when_full);
    o.segment_bytes = 4096;
    o.sync_interval = Duration::from_millis(20);
    o
}

fn open(dir: &Path, max: u64, when_full: WhenFull) -> (Arc<Buffer>, Arc<Counters>) {
    let counters = Arc::new(Counters::default());
    (
        Buffer::open(opts(dir, max, when_full), counters.clone()).unwrap(),
        counters,
    )
}

fn log_json(n: u64) -> String {
    format!("{{\"message\":\"log {n}\",\"n\":{n}}}")
}

/// Stages logs `from..to`, then the cursor `{"n": to}`.
fn stage_run(from: u64, to: u64) -> Staging {
    let mut s = Staging::new();
    for n in from..to {
        s.push_log_with(|b| b.extend_from_slice(log_json(n).as_bytes()));
    }
    s.push_cache("log_cursor_default", &format!("{{\"n\":{to}}}"));
    s
}

/// Reads every log until the reader idles, returning their `n`s.
fn read_all(reader: &mut Reader) -> Vec<u64> {
    let mut got = Vec::new();
    loop {
        match reader
            .next(Instant::now() + Duration::from_millis(50))
            .unwrap()
        {
            ReadOutcome::Record(r) if r.kind == KIND_LOG => {
                let v: serde_json::Value = serde_json::from_slice(r.payload).unwrap();
                got.push(v["n"].as_u64().unwrap());
            }
            ReadOutcome::Record(_) | ReadOutcome::Skipped { .. } => {}
            ReadOutcome::Idle | ReadOutcome::Closed => return got,
        }
    }
}

fn cursor(state: &CacheState) -> u64 {
    state
        .get("log_cursor_default")
        .map(|v| {
            serde_json::from_str::<serde_json::Value>(v).unwrap()["n"]
                .as_u64()
                .unwrap()
        })
        .unwrap_or(0)
}

#[test]
fn committed_records_and_cursors_survive_a_reopen_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let (b, _) = open(tmp.path(), 1 << 20, WhenFull::Block);
        for run in 0..10 {
            b.append("c:1", &mut stage_run(run * 30, run * 30 + 30))
                .unwrap();
            b.commit("c:1").unwrap();
        }
        b.close().unwrap();
    }
    let (b, _) = open(tmp.path(), 1 << 20, WhenFull::Block);
    assert_eq!(cursor(&b.load_state("c:1").unwrap()), 300);
    assert_eq!(read_all(&mut b.reader()), (0..300).collect::<Vec<_>>());
    assert_eq!(
        read_state_snapshot(tmp.path(), "c:1").unwrap(),
        b.load_state("c:1").unwrap()
    );
    let mode = |p: &Path| {
        std::os::unix::fs::PermissionsExt::mode(&fs::metadata(p).unwrap().permissions()) & 0o777
    };
    assert_eq!(mode(&tmp.path().join("buffer")), 0o700);
    for (_, seg) in list_segments(&tmp.path().join("buffer")).unwrap() {
        assert_eq!(mode(&seg), 0o600);
    }
}

/// The first segment of `run`'s buffer that holds anything, and its bytes.
fn first_written_segment(run: &Path) -> (PathBuf, Vec<u8>) {
    let segs = list_segments(&run.join("buffer")).unwrap();
    let (_, last) = segs
        .iter()
        .find(|(_, p)| fs::metadata(p).unwrap().len() > 0)
        .unwrap()
        .clone();
    let full = fs::read(&last).unwrap();
    (last, full)
}

#[test]
fn cursor_is_never_durable_before_its_logs() {
    // Cut the buffer at every byte of the written tail (a crash can leave any prefix): the
    // recovered cursor never points past a log that did not survive.
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    {
        let (b, _) = open(&run, 1 << 20, WhenFull::Block);
        for r in 0..3 {
            b.append("c:1", &mut stage_run(r * 2, r * 2 + 2)).unwrap();
        }
        b.close().unwrap();
    }
    let (last, full) = first_written_segment(&run);
    // Every byte of the last records, every third byte before (each cut is a full reopen).
    for cut in (0..=full.len()).filter(|c| c % 3 == 0 || c + 60 > full.len()) {
        let copy = tmp.path().join(format!("cut{cut}"));
        let _ = fs::remove_dir_all(&copy);
        fs::create_dir_all(copy.join("buffer")).unwrap();
        fs::write(
            copy.join("buffer").join(last.file_name().unwrap()),
            &full[..cut],
        )
        .unwrap();
        fs::copy(run.join("buffer/head"), copy.join("buffer/head")).unwrap();
        let (b, counters) = open(&copy, 1 << 20, WhenFull::Block);
        let logs = read_all(&mut b.reader());
        let cur = cursor(&b.load_state("c:1").unwrap());
        assert!(
            logs.len() as u64 >= cur,
            "cut {cut}: cursor {cur} but only {} logs",
            logs.len()
        );
        assert_eq!(
            logs,
            (0..logs.len() as u64).collect::<Vec<_>>(),
            "cut {cut}: logs out of order"
        );
        // Everything written was durable (clean close), so the head file says how much is
        // missing: counted, as an estimate from its bytes (no later segment's intro
        // describes this one).
        let lost = 6 - logs.len() as u64;
        let counted = counters.dropped(LossReason::Corrupt);
        if lost > 0 {
            assert!(counted >= 1, "cut {cut}: {lost} lost, counted {counted}");
        }
        b.close().unwrap();
        drop(b);
        fs::remove_dir_all(&copy).unwrap();
    }
}

#[test]
fn a_corrupt_tail_is_cut_counted_and_the_agent_carries_on() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let (b, _) = open(tmp.path(), 1 << 20, WhenFull::Block);
        b.append("c:1", &mut stage_run(0, 5)).unwrap();
        b.append("c:1", &mut stage_run(5, 10)).unwrap();
        b.close().unwrap();
    }
    let (_, seg) = list_segments(&tmp.path().join("buffer"))
        .unwrap()
        .into_iter()
        .find(|(_, p)| fs::metadata(p).unwrap().len() > 0)
        .unwrap();
    let mut bytes = fs::read(&seg).unwrap();
    let at = bytes.len() - 20;
    bytes[at] ^= 0xff;
    fs::write(&seg, &bytes).unwrap();
    let (b, counters) = open(tmp.path(), 1 << 20, WhenFull::Block);
    // The flipped byte is in the last record, the second run's cursor: no log is lost.
    assert_eq!(counters.dropped(LossReason::Corrupt), 0);
    assert!(counters.corrupt_bytes.load(Relaxed) > 0);
    // The second run's cursor was in the corrupt record: the state is the first run's.
    assert_eq!(cursor(&b.load_state("c:1").unwrap()), 5);
    assert_eq!(read_all(&mut b.reader()), (0..10).collect::<Vec<_>>());
    b.append("c:1", &mut stage_run(10, 12)).unwrap();
    b.commit("c:1").unwrap();
    assert_eq!(cursor(&b.load_state("c:1").unwrap()), 12);
}

#[test]
fn delivered_segments_are_deleted_and_their_cursors_survive_in_the_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let (b, _) = open(tmp.path(), 1 << 20, WhenFull::Block);
        let mut reader = b.reader();
        for r in 0..100 {
            b.append("c:1", &mut stage_run(r * 10, r * 10 + 10))
                .unwrap();
            b.append("other:2", &mut stage_run(0, 1)).unwrap();
            b.commit("c:1").unwrap();
        }
        let start = reader.position();
        let mut end = start;
        let mut logs = 0;
        while let ReadOutcome::Record(r) = reader
            .next(Instant::now() + Duration::from_millis(50))
            .unwrap()
        {
            end = r.end;
            logs += (r.kind == KIND_LOG) as u64;
        }
        assert_eq!(logs, 1100);
        b.ack(start, end, logs);
        let deadline = Instant::now() + Duration::from_secs(5);
        while b.gauges().segments > 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(b.gauges().segments, 1, "delivered segments are deleted");
        assert_eq!(b.gauges().undelivered_logs, 0);
        b.close().unwrap();
    }
    let (b, _) = open(tmp.path(), 1 << 20, WhenFull::Block);
    assert_eq!(cursor(&b.load_state("c:1").unwrap()), 1000);
    assert_eq!(cursor(&b.load_state("other:2").unwrap()), 1);
    assert!(
        read_all(&mut b.reader()).is_empty(),
        "nothing is resent after a full ack"
    );
    assert_eq!(
        cursor(&read_state_snapshot(tmp.path(), "c:1").unwrap()),
        1000
    );
}

#[test]
fn acks_out_of_order_move_the_head_only_over_contiguous_ranges() {
    let tmp = tempfile::tempdir().unwrap();
    let (b, _) = open(tmp.path(), 1 << 20, WhenFull::Block);
    b.append("c:1", &mut stage_run(0, 3)).unwrap();
    let mut reader = b.reader();
    let mut ranges = Vec::new();
    while let ReadOutcome::Record(r) = reader
        .next(Instant::now() + Duration::from_millis(50))
        .unwrap()
    {
        ranges.push((r.start, r.end, (r.kind == KIND_LOG) as u64));
    }
    let h0 = b.head();
    b.ack(ranges[2].0, ranges[2].1, ranges[2].2);
    assert_eq!(b.head(), h0);
    b.ack(ranges[0].0, ranges[1].1, 1);
    assert_eq!(b.head(), ranges[2].1);
}

#[test]
fn block_makes_append_wait_until_an_ack_frees_room() {
    let tmp = tempfile::tempdir().unwrap();
    let (b, _) = open(tmp.path(), 8192, WhenFull::Block);
    let mut reader = b.reader();
    let mut n = 0;
    // Fill the budget.
    while b.gauges().undelivered_bytes + 1200 <= 8192 {
        b.append("c:1", &mut stage_run(n, n + 20)).unwrap();
        n += 20;
    }
    let b2 = b.clone();
    let waiter = std::thread::spawn(move || {
        let t = Instant::now();
        b2.append("c:1", &mut stage_run(10_000, 10_020)).unwrap();
        t.elapsed()
    });
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !waiter.is_finished(),
        "append waits while the buffer is full"
    );
    let start = reader.position();
    let mut end = start;
    let mut logs = 0;
    while let ReadOutcome::Record(r) = reader
        .next(Instant::now() + Duration::from_millis(20))
        .unwrap()
    {
        end = r.end;
        logs += (r.kind == KIND_LOG) as u64;
    }
    b.ack(start, end, logs);
    assert!(waiter.join().unwrap() >= Duration::from_millis(150));
}

#[test]
fn drop_oldest_drops_undelivered_logs_with_a_count_and_keeps_cursors() {
    let tmp = tempfile::tempdir().unwrap();
    let (b, counters) = open(tmp.path(), 8192, WhenFull::DropOldest);
    for r in 0..100 {
        b.append("c:1", &mut stage_run(r * 10, r * 10 + 10))
            .unwrap();
        b.commit("c:1").unwrap();
    }
    let dropped = counters.dropped(LossReason::BufferFull);
    let left = read_all(&mut b.reader());
    assert!(dropped > 0);
    assert_eq!(
        dropped + left.len() as u64,
        1000,
        "every log is either buffered or counted as dropped"
    );
    assert_eq!(*left.last().unwrap(), 999, "the newest logs are kept");
    assert!(b.gauges().undelivered_bytes <= 8192);
    b.close().unwrap();
    drop(b);
    let (b, _) = open(tmp.path(), 8192, WhenFull::DropOldest);
    assert_eq!(cursor(&b.load_state("c:1").unwrap()), 1000);
}

#[test]
fn a_second_agent_cannot_open_the_same_buffer() {
    let tmp = tempfile::tempdir().unwrap();
    let (_b, _) = open(tmp.path(), 1 << 20, WhenFull::Block);
    let again = Buffer::open(
        opts(tmp.path(), 1 << 20, WhenFull::Block),
        Arc::new(Counters::default()),
    );
    assert!(again.is_err());
}

/// Writes `runs` runs of 5 logs + a cursor for each of two checks, into 4 KiB segments.
fn write_many(dir: &Path, runs: u64) {
    let (b, _) = open(dir, 1 << 20, WhenFull::Block);
    for r in 0..runs {
        b.append("c:1", &mut stage_run(r * 5, r * 5 + 5)).unwrap();
        b.append("c:2", &mut stage_run(100_000 + r * 5, 100_000 + r * 5 + 5))
            .unwrap();
    }
    b.close().unwrap();
}

fn nonempty_segments(dir: &Path) -> Vec<PathBuf> {
    list_segments(&dir.join("buffer"))
        .unwrap()
        .into_iter()
        .filter(|(_, p)| fs::metadata(p).unwrap().len() > 0)
        .map(|(_, p)| p)
        .collect()
}

/// Offsets (within the file) and `n` of every log record of a segment, read independently
/// of the buffer's own scanner: header layout per record.rs.
fn log_records(path: &Path) -> Vec<(usize, usize, u64)> {
    let bytes = fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut at = 0;
    while at + HEADER_BYTES <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at + 7..at + 11].try_into().unwrap()) as usize;
        if bytes[at + 2] == KIND_LOG {
            let v: serde_json::Value =
                serde_json::from_slice(&bytes[at + HEADER_BYTES..at + HEADER_BYTES + len]).unwrap();
            out.push((at, at + HEADER_BYTES + len, v["n"].as_u64().unwrap()));
        }
        at += HEADER_BYTES + len;
    }
    out
}

fn all_ns(runs: u64) -> Vec<u64> {
    let mut v: Vec<u64> = (0..runs * 5).collect();
    v.extend(100_000..100_000 + runs * 5);
    v.sort_unstable();
    v
}

fn sorted(mut v: Vec<u64>) -> Vec<u64> {
    v.sort_unstable();
    v
}

#[test]
fn a_flipped_byte_in_an_early_segment_loses_only_its_own_record() {
    let tmp = tempfile::tempdir().unwrap();
    write_many(tmp.path(), 40);
    let segs = nonempty_segments(tmp.path());
    assert!(segs.len() >= 4, "the test needs several segments");
    let recs = log_records(&segs[0]);
    let (b0, e0, lost_n) = recs[recs.len() / 2];
    let mut bytes = fs::read(&segs[0]).unwrap();
    bytes[(b0 + e0) / 2] ^= 0x40;
    fs::write(&segs[0], &bytes).unwrap();
    let (b, counters) = open(tmp.path(), 1 << 20, WhenFull::Block);
    let want: Vec<u64> = all_ns(40).into_iter().filter(|n| *n != lost_n).collect();
    assert_eq!(sorted(read_all(&mut b.reader())), want);
    assert_eq!(counters.dropped(LossReason::Corrupt), 1);
    let snap = counters.snapshot();
    let owner = if lost_n >= 100_000 { "c:2" } else { "c:1" };
    assert_eq!(snap.checks[owner].logs_dropped["corrupt"], 1);
    assert_eq!(snap.buffer_corrupt_bytes, (e0 - b0) as u64);
    // Cursors of the later segments are kept: the region was durable (a disk fault).
    assert_eq!(cursor(&b.load_state("c:1").unwrap()), 200);
    b.close().unwrap();
    drop(b);
    // Patched over: a second start counts nothing more.
    let (b, counters) = open(tmp.path(), 1 << 20, WhenFull::Block);
    assert_eq!(counters.dropped(LossReason::Corrupt), 0);
    assert_eq!(sorted(read_all(&mut b.reader())), want);
}

#[test]
fn a_garbled_header_or_a_segments_first_record_resynchronises_at_the_next_record() {
    let tmp = tempfile::tempdir().unwrap();
    write_many(tmp.path(), 40);
    let segs = nonempty_segments(tmp.path());
    // The header of a log in the middle of segment 1, and the very first bytes of segment 2.
    let recs = log_records(&segs[1]);
    let (b1, _, lost1) = recs[recs.len() / 2];
    let mut bytes = fs::read(&segs[1]).unwrap();
    bytes[b1 + 8] ^= 0xff;
    fs::write(&segs[1], &bytes).unwrap();
    let mut bytes = fs::read(&segs[3]).unwrap();
    bytes[0] ^= 0xff;
    bytes[1] ^= 0xff;
    fs::write(&segs[3], &bytes).unwrap();
    let (b, counters) = open(tmp.path(), 1 << 20, WhenFull::Block);
    let got = sorted(read_all(&mut b.reader()));
    let want: Vec<u64> = all_ns(40).into_iter().filter(|n| *n != lost1).collect();
    // Segment 3's first record is its intro: no log is lost there.
    assert_eq!(got, want);
    // Exactly one log lost, and counted exactly, thanks to segment 2's intro (it holds the
    // log count of segment 1); segment 3's intro is not a log.
    assert_eq!(counters.dropped(LossReason::Corrupt), 1);
}

#[test]
fn a_deleted_middle_segment_is_counted_per_check_and_later_segments_are_kept() {
    let tmp = tempfile::tempdir().unwrap();
    write_many(tmp.path(), 40);
    let segs = nonempty_segments(tmp.path());
    let gone: Vec<u64> = log_records(&segs[1]).iter().map(|r| r.2).collect();
    let gone_c1 = gone.iter().filter(|n| **n < 100_000).count() as u64;
    fs::remove_file(&segs[1]).unwrap();
    let (b, counters) = open(tmp.path(), 1 << 20, WhenFull::Block);
    let want: Vec<u64> = all_ns(40)
        .into_iter()
        .filter(|n| !gone.contains(n))
        .collect();
    assert_eq!(sorted(read_all(&mut b.reader())), want);
    let snap = counters.snapshot();
    assert_eq!(snap.dropped(LossReason::Corrupt), gone.len() as u64);
    assert_eq!(
        snap.checks["c:1"]
            .logs_dropped
            .get("corrupt")
            .copied()
            .unwrap_or(0),
        gone_c1
    );
    assert!(snap.logs_dropped_unattributed.is_empty());
    assert_eq!(cursor(&b.load_state("c:1").unwrap()), 200);
}

#[test]
fn a_torn_region_past_the_durable_offset_keeps_later_logs_but_not_their_cursors() {
    // Power loss: page-cache writeback is not ordered across files, so a later segment can
    // reach the disk while an earlier one's tail did not. The head file says what was durable.
    let tmp = tempfile::tempdir().unwrap();
    write_many(tmp.path(), 40);
    let segs = nonempty_segments(tmp.path());
    let recs = log_records(&segs[0]);
    let (b0, _, lost_n) = recs[recs.len() - 1];
    // Durable only up to the start of segment 0's last log.
    let seg0_start = record::parse_segment_file_name(&segs[0]).unwrap();
    let hf = HeadFile {
        head: 0,
        durable: seg0_start + b0 as u64,
    };
    fs::write(tmp.path().join("buffer/head"), hf.bytes()).unwrap();
    let mut bytes = fs::read(&segs[0]).unwrap();
    bytes[b0 + 3] ^= 0xff;
    fs::write(&segs[0], &bytes).unwrap();
    let (b, _) = open(tmp.path(), 1 << 20, WhenFull::Block);
    let got = sorted(read_all(&mut b.reader()));
    assert_eq!(
        got,
        all_ns(40)
            .into_iter()
            .filter(|n| *n != lost_n)
            .collect::<Vec<_>>()
    );
    // The cursor is the last one before the tear: never ahead of a lost log.
    let c = cursor(
        &b.load_state(if lost_n >= 100_000 { "c:2" } else { "c:1" })
            .unwrap(),
    );
    assert!(c <= lost_n, "cursor {c} is ahead of the lost log {lost_n}");
}

#[test]
fn an_unreadable_snapshot_does_not_stop_the_start() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let (b, _) = open(tmp.path(), 1 << 20, WhenFull::Block);
        for r in 0..40 {
            b.append("c:1", &mut stage_run(r * 5, r * 5 + 5)).unwrap();
            b.commit("c:1").unwrap();
            let mut reader = b.reader();
            let _ = read_all(&mut reader);
            let end = b.inner.lock().tail;
            b.ack(b.head(), end, 5);
        }
        std::thread::sleep(Duration::from_millis(200));
        b.close().unwrap();
    }
    let snap = tmp.path().join("buffer").join(SNAPSHOT_FILE);
    assert!(
        snap.exists(),
        "delivered segments were deleted after a snapshot"
    );
    let bytes = fs::read(&snap).unwrap();
    fs::write(&snap, &bytes[..bytes.len() / 2]).unwrap();
    let (b, _) = open(tmp.path(), 1 << 20, WhenFull::Block);
    // From state.snapshot.prev (or the segments): an older cursor, never a newer one, and
    // the agent runs.
    let c = cursor(&b.load_state("c:1").unwrap());
    assert!(c <= 200, "cursor {c}");
    b.append("c:1", &mut stage_run(200, 205)).unwrap();
    b.commit("c:1").unwrap();
    assert_eq!(cursor(&b.load_state("c:1").unwrap()), 205);
    // Both snapshot files garbage: still starts.
    b.close().unwrap();
    drop(b);
    fs::write(&snap, b"garbage").unwrap();
    let _ = fs::write(tmp.path().join("buffer").join(SNAPSHOT_PREV_FILE), b"junk");
    let (b, _) = open(tmp.path(), 1 << 20, WhenFull::Block);
    b.append("c:1", &mut stage_run(205, 206)).unwrap();
    b.commit("c:1").unwrap();
}

mod recovery_properties {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Fault {
        /// Flip the byte at this fraction of the segment.
        Flip(usize, f64),
        /// Cut the segment at this fraction.
        Truncate(usize, f64),
        Delete(usize),
    }

    fn fault() -> impl Strategy<Value = Fault> {
        prop_oneof![
            4 => (0usize..16, 0.0f64..1.0).prop_map(|(s, f)| Fault::Flip(s, f)),
            1 => (0usize..16, 0.0f64..1.0).prop_map(|(s, f)| Fault::Truncate(s, f)),
            1 => (0usize..16).prop_map(Fault::Delete),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Every log record whose bytes were not touched is read back exactly once, and the
        /// logs that were touched are all counted as dropped.
        #[test]
        fn every_valid_record_survives_and_every_lost_one_is_counted(
            runs in 10u64..40,
            faults in proptest::collection::vec(fault(), 1..5),
        ) {
            let tmp = tempfile::tempdir().unwrap();
            write_many(tmp.path(), runs);
            let segs = nonempty_segments(tmp.path());
            // Which log records each fault destroys, decided from the intact files.
            let records: Vec<Vec<(usize, usize, u64)>> = segs.iter().map(|p| log_records(p)).collect();
            let mut lost: std::collections::BTreeSet<u64> = Default::default();
            let mut deleted = vec![false; segs.len()];
            let mut cut: Vec<Option<usize>> = vec![None; segs.len()];
            let mut flipped: std::collections::BTreeSet<(usize, usize)> = Default::default();
            for f in &faults {
                match *f {
                    Fault::Flip(s, frac) => {
                        let s = s % segs.len();
                        if deleted[s] { continue; }
                        let mut bytes = fs::read(&segs[s]).unwrap();
                        if bytes.is_empty() { continue; }
                        let at = ((bytes.len() - 1) as f64 * frac) as usize;
                        bytes[at] ^= 0x5a;
                        fs::write(&segs[s], &bytes).unwrap();
                        // Two flips of one byte give it back: only an odd count damages.
                        if !flipped.insert((s, at)) {
                            flipped.remove(&(s, at));
                        }
                    }
                    Fault::Truncate(s, frac) => {
                        let s = s % segs.len();
                        if deleted[s] { continue; }
                        let len = fs::metadata(&segs[s]).unwrap().len() as usize;
                        let at = (len as f64 * frac) as usize;
                        let at = cut[s].map_or(at, |c| c.min(at));
                        cut[s] = Some(at);
                        fs::OpenOptions::new().write(true).open(&segs[s]).unwrap().set_len(at as u64).unwrap();
                        for (_, e, n) in &records[s] {
                            if *e > at { lost.insert(*n); }
                        }
                    }
                    Fault::Delete(s) => {
                        let s = s % segs.len();
                        if deleted[s] { continue; }
                        deleted[s] = true;
                        fs::remove_file(&segs[s]).unwrap();
                        for (_, _, n) in &records[s] { lost.insert(*n); }
                    }
                }
            }
            for (s, at) in &flipped {
                for (b, e, n) in &records[*s] {
                    if at >= b && at < e { lost.insert(*n); }
                }
            }
            let (b, counters) = open(tmp.path(), 1 << 20, WhenFull::Block);
            let got = read_all(&mut b.reader());
            let want: Vec<u64> = all_ns(runs).into_iter().filter(|n| !lost.contains(n)).collect();
            // Exactly once each, in each check's order.
            let mut seen = std::collections::HashSet::new();
            for n in &got { prop_assert!(seen.insert(*n), "log {} read twice", n); }
            prop_assert_eq!(sorted(got.clone()), want);
            let c1: Vec<u64> = got.iter().copied().filter(|n| *n < 100_000).collect();
            prop_assert_eq!(c1.clone(), sorted(c1));
            let counted = counters.dropped(LossReason::Corrupt);
            if got.is_empty() {
                // No log is left to tell how large the logs were: the head file says how many
                // bytes are missing, and the estimate assumes wire-sized logs (~320 bytes),
                // far larger than this test's.
                prop_assert!(counted >= 1, "{} lost, none counted", lost.len());
            } else {
                prop_assert!(counted >= lost.len() as u64, "{} lost, {} counted", lost.len(), counted);
            }
            // Per check and unattributed add up to the total.
            let snap = counters.snapshot();
            let per: u64 = snap.checks.values().map(|c| c.dropped_total()).sum::<u64>()
                + snap.logs_dropped_unattributed.values().sum::<u64>();
            prop_assert_eq!(per, counted);
            // Cursors never point past a lost log of their check.
            let cur = cursor(&b.load_state("c:1").unwrap());
            let first_lost = lost.iter().copied().find(|n| *n < 100_000);
            if let Some(l) = first_lost {
                // The region was durable (clean close): later cursors may stay, but only
                // cursors that were written, never beyond the last log written.
                prop_assert!(cur <= runs * 5, "cursor {} with first lost {}", cur, l);
            }
        }
    }
}

/// Two cursors, then one reset record removing both.
fn stage_two_cursors_then_reset() -> (Staging, Staging) {
    let mut s = stage_run(0, 5);
    s.push_cache("log_cursor_other", "{\"n\":7}");
    let mut reset = Staging::new();
    reset.push_reset(&["log_cursor_default", "log_cursor_other"]);
    (s, reset)
}

#[test]
fn a_reset_record_removes_every_key_it_names_at_recovery_and_in_a_read_only_replay() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let (b, _) = open(tmp.path(), 1 << 20, WhenFull::Block);
        let (mut s, mut reset) = stage_two_cursors_then_reset();
        b.append("c:1", &mut s).unwrap();
        b.commit("c:1").unwrap();
        assert_eq!(read_all_states(tmp.path()).unwrap()["c:1"].len(), 2);
        b.append("c:1", &mut reset).unwrap();
        b.commit("c:1").unwrap();
        assert!(
            b.load_state("c:1").unwrap().is_empty(),
            "a durable reset leaves the live state empty"
        );
        assert!(read_state_snapshot(tmp.path(), "c:1").unwrap().is_empty());
        assert!(
            !read_all_states(tmp.path()).unwrap().contains_key("c:1"),
            "a check whose entries were all reset is not listed"
        );
        // A write after the reset starts over.
        b.append("c:1", &mut stage_run(5, 6)).unwrap();
        b.commit("c:1").unwrap();
        b.close().unwrap();
    }
    let (b, _) = open(tmp.path(), 1 << 20, WhenFull::Block);
    let state = b.load_state("c:1").unwrap();
    assert_eq!(cursor(&state), 6);
    assert_eq!(state.get("log_cursor_other"), None);
    assert_eq!(read_all(&mut b.reader()), (0..6).collect::<Vec<_>>());
}

#[test]
fn a_reset_record_is_applied_whole_or_not_at_all_when_its_tail_is_torn() {
    // Cut the segment at every byte of the reset record: recovery either removes both keys
    // or neither, never one.
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let reset_len;
    {
        let (b, _) = open(&run, 1 << 20, WhenFull::Block);
        let (mut s, mut reset) = stage_two_cursors_then_reset();
        b.append("c:1", &mut s).unwrap();
        b.commit("c:1").unwrap();
        reset_len = reset.len_bytes();
        b.append("c:1", &mut reset).unwrap();
        b.close().unwrap();
    }
    let (last, full) = first_written_segment(&run);
    let from = full.len() - (reset_len - 5 + HEADER_BYTES);
    let mut outcomes = std::collections::BTreeSet::new();
    for cut in from..=full.len() {
        let copy = tmp.path().join(format!("cut{cut}"));
        fs::create_dir_all(copy.join("buffer")).unwrap();
        fs::write(
            copy.join("buffer").join(last.file_name().unwrap()),
            &full[..cut],
        )
        .unwrap();
        let (b, _) = open(&copy, 1 << 20, WhenFull::Block);
        let state = b.load_state("c:1").unwrap();
        let kept = state.len();
        assert!(
            kept == 0 || kept == 2,
            "cut {cut}: the reset was half applied: {state:?}"
        );
        if kept == 2 {
            assert_eq!(cursor(&state), 5, "cut {cut}");
        }
        outcomes.insert(kept);
        b.close().unwrap();
        drop(b);
        fs::remove_dir_all(&copy).unwrap();
    }
    assert_eq!(
        outcomes.into_iter().collect::<Vec<_>>(),
        vec![0, 2],
        "both outcomes were seen"
    );
}
