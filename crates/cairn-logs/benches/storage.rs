//! Storage choice for the durable buffer: Cairn's segment log against SQLite (WAL), on the
//! buffer's workload: appends of ~300-byte records in batches (one batch per check run or
//! staging flush), a durable commit (fsync) per batch, then reading in order and deleting from
//! the head as payloads are acknowledged.
//!
//! `cargo bench -p cairn-logs --bench storage [-- RECORDS]`. Prints one line per store and
//! batch size: records/s for append+commit and for read+ack, and CPU seconds per million.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_config::WhenFull;
use cairn_logs::buffer::record::KIND_LOG;
use cairn_logs::buffer::{ReadOutcome, Reader};
use cairn_logs::{Buffer, BufferOptions, Counters, RecordSink, Staging};

/// utime + stime of this process, in seconds (clock ticks of 10 ms).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn record(n: u64) -> String {
    // The seed's structured example as the hand-off encodes it: ~300 bytes.
    format!(
        r#"{{"message":"Database query completed","status":"info","timestamp":{},"hostname":"bench-host","service":"my-custom-integration","ddsource":"custom_check","ddtags":"env:dev,team:db","query_duration_ms":145,"rows_returned":1024,"n":{n},"pad":"{}"}}"#,
        1_700_000_000_000u64 + n,
        "p".repeat(40)
    )
}

struct Figures {
    write_rate: f64,
    write_cpu_per_m: f64,
    read_rate: f64,
    read_cpu_per_m: f64,
}

fn segment_log(records: u64, batch: u64) -> Figures {
    let tmp = tempfile::tempdir().expect("tempdir");
    let opts = BufferOptions::new(tmp.path(), 1 << 40, WhenFull::Block);
    let buffer = Buffer::open(opts, Arc::new(Counters::default())).expect("open buffer");
    let mut staging = Staging::new();
    let (t, c) = (Instant::now(), cpu_secs());
    let mut n = 0;
    while n < records {
        for _ in 0..batch {
            let r = record(n);
            staging.push_log_with(|b| b.extend_from_slice(r.as_bytes()));
            n += 1;
        }
        staging.push_cache("log_cursor_default", &format!("{{\"n\":{n}}}"));
        buffer.append("bench:1", &mut staging).expect("append");
        buffer.commit("bench:1").expect("commit");
    }
    let (wt, wc) = (t.elapsed(), cpu_secs() - c);
    let mut reader: Reader = buffer.reader();
    let (t, c) = (Instant::now(), cpu_secs());
    let mut read = 0;
    let mut start = reader.position();
    let mut logs = 0;
    while let ReadOutcome::Record(r) = reader
        .next(Instant::now() + Duration::from_millis(50))
        .expect("read")
    {
        if r.kind == KIND_LOG {
            std::hint::black_box(r.payload);
            logs += 1;
            read += 1;
        }
        if logs == 1000 {
            let end = r.end;
            buffer.ack(start, end, logs);
            start = end;
            logs = 0;
        }
    }
    buffer.ack(start, reader.position(), logs);
    // Deletion runs on the syncer thread: wait for it so its cost is in the figure.
    while buffer.gauges().segments > 1 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let (rt, rc) = (t.elapsed(), cpu_secs() - c);
    assert_eq!(read, records);
    buffer.close().expect("close");
    figures(records, wt, wc, rt, rc)
}

fn sqlite(records: u64, batch: u64) -> Figures {
    let tmp = tempfile::tempdir().expect("tempdir");
    let db = rusqlite::Connection::open(tmp.path().join("buffer.db")).expect("open sqlite");
    db.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
         CREATE TABLE rec (id INTEGER PRIMARY KEY, check_id INTEGER NOT NULL, kind INTEGER NOT NULL, payload BLOB NOT NULL);",
    )
    .expect("schema");
    let (t, c) = (Instant::now(), cpu_secs());
    let mut n = 0;
    while n < records {
        let tx = db.unchecked_transaction().expect("tx");
        {
            let mut ins = tx
                .prepare_cached("INSERT INTO rec (check_id, kind, payload) VALUES (1, ?1, ?2)")
                .expect("prepare");
            for _ in 0..batch {
                ins.execute(rusqlite::params![0, record(n).as_bytes()])
                    .expect("insert");
                n += 1;
            }
            ins.execute(rusqlite::params![
                1,
                format!("log_cursor_default{{\"n\":{n}}}").as_bytes()
            ])
            .expect("insert cursor");
        }
        tx.commit().expect("commit");
    }
    let (wt, wc) = (t.elapsed(), cpu_secs() - c);
    let (t, c) = (Instant::now(), cpu_secs());
    let mut last = 0i64;
    let mut read = 0;
    loop {
        let mut rows: Vec<(i64, i64)> = Vec::with_capacity(1000);
        {
            let mut q = db
                .prepare_cached(
                    "SELECT id, kind, payload FROM rec WHERE id > ?1 ORDER BY id LIMIT 1001",
                )
                .expect("select");
            let mut it = q.query([last]).expect("query");
            while let Some(row) = it.next().expect("row") {
                let payload: Vec<u8> = row.get(2).expect("payload");
                std::hint::black_box(&payload);
                rows.push((row.get(0).expect("id"), row.get(1).expect("kind")));
            }
        }
        if rows.is_empty() {
            break;
        }
        read += rows.iter().filter(|(_, k)| *k == 0).count() as u64;
        last = rows.last().expect("non-empty").0;
        let tx = db.unchecked_transaction().expect("tx");
        tx.execute("DELETE FROM rec WHERE id <= ?1", [last])
            .expect("delete");
        tx.commit().expect("commit");
    }
    let (rt, rc) = (t.elapsed(), cpu_secs() - c);
    assert_eq!(read, records);
    figures(records, wt, wc, rt, rc)
}

fn figures(records: u64, wt: Duration, wc: f64, rt: Duration, rc: f64) -> Figures {
    let m = records as f64 / 1e6;
    Figures {
        write_rate: records as f64 / wt.as_secs_f64(),
        write_cpu_per_m: wc / m,
        read_rate: records as f64 / rt.as_secs_f64(),
        read_cpu_per_m: rc / m,
    }
}

fn main() {
    let records: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(300_000);
    println!(
        "{records} records of ~300 bytes; one fsync'd commit per batch; read + ack 1000 at a time"
    );
    println!(
        "{:<14} {:>6} {:>14} {:>14} {:>14} {:>14}",
        "store", "batch", "append rec/s", "append cpu/M", "read+ack rec/s", "read cpu/M"
    );
    for batch in [100u64, 1000] {
        for (name, f) in [
            ("segment-log", segment_log as fn(u64, u64) -> Figures),
            ("sqlite-wal", sqlite),
        ] {
            let r = f(records, batch);
            println!(
                "{name:<14} {batch:>6} {:>14.0} {:>13.2}s {:>14.0} {:>13.2}s",
                r.write_rate, r.write_cpu_per_m, r.read_rate, r.read_cpu_per_m
            );
        }
    }
}
