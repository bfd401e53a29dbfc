use super::*;

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
    let segs = list_segments(&run.join("buffer")).unwrap();
    let (_, last) = segs
        .iter()
        .find(|(_, p)| fs::metadata(p).unwrap().len() > 0)
        .unwrap()
        .clone();
    let full = fs::read(&last).unwrap();
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
        let torn = cut > 0 && logs.len() < 6 && !matches!(cut, c if c == full.len());
        if torn {
            // Some cuts land exactly on record boundaries: those lose nothing that was written.
            let lost = counters.dropped(LossReason::Corrupt);
            assert!(lost <= 1, "cut {cut}: counted {lost}");
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
    assert_eq!(counters.dropped(LossReason::Corrupt), 1);
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

#[test]
fn segments_after_a_torn_one_are_discarded_so_no_cursor_outlives_its_logs() {
    // Power loss can persist a later segment while an earlier one's tail is lost (page-cache
    // writeback is not ordered across files). Recovery must then keep only the prefix.
    let tmp = tempfile::tempdir().unwrap();
    {
        let (b, _) = open(tmp.path(), 1 << 20, WhenFull::Block);
        // Segments roll at 4 KiB: enough runs to fill several.
        for r in 0..40 {
            b.append("c:1", &mut stage_run(r * 5, r * 5 + 5)).unwrap();
        }
        b.close().unwrap();
    }
    let segs: Vec<_> = list_segments(&tmp.path().join("buffer"))
        .unwrap()
        .into_iter()
        .filter(|(_, p)| fs::metadata(p).unwrap().len() > 0)
        .collect();
    assert!(segs.len() >= 3, "the test needs several segments: {segs:?}");
    // Tear the tail of the first segment; the later ones are intact.
    let first = &segs[0].1;
    let mut bytes = fs::read(first).unwrap();
    let at = bytes.len() - 20;
    bytes[at] ^= 0xff;
    fs::write(first, &bytes).unwrap();
    let (b, counters) = open(tmp.path(), 1 << 20, WhenFull::Block);
    assert!(
        counters.dropped(LossReason::Corrupt) >= 2,
        "the torn record and the later segments count as lost"
    );
    let logs = read_all(&mut b.reader());
    let last_log = logs.last().copied().unwrap_or(0);
    let cursor = cursor(&b.load_state("c:1").unwrap());
    assert!(
        cursor <= last_log + 1,
        "cursor {cursor} is ahead of the last kept log {last_log}"
    );
    assert_eq!(
        logs,
        (0..logs.len() as u64).collect::<Vec<_>>(),
        "what is kept is a gapless prefix"
    );
}
