//! A local HTTP sink for the pipeline benchmark: answers every request 202 and only counts
//! requests and body bytes, so that it is never the bottleneck.
//!
//! `count_sink ADDR` (e.g. 127.0.0.1:18600). Prints `requests bytes` on stdout every second.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18600".into());
    let listener = TcpListener::bind(&addr).expect("bind");
    let requests = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    {
        let (requests, bytes) = (requests.clone(), bytes.clone());
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_secs(1));
            println!("{} {}", requests.load(Relaxed), bytes.load(Relaxed));
        });
    }
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let (requests, bytes) = (requests.clone(), bytes.clone());
        std::thread::spawn(move || {
            let mut r = BufReader::new(stream.try_clone().expect("clone"));
            let mut w = stream;
            let mut line = String::new();
            let mut body = Vec::new();
            loop {
                let mut len = 0usize;
                loop {
                    line.clear();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let l = line.trim_end();
                    if l.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = l.split_once(':') {
                        if k.eq_ignore_ascii_case("content-length") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                }
                body.resize(len, 0);
                if r.read_exact(&mut body).is_err() {
                    return;
                }
                requests.fetch_add(1, Relaxed);
                bytes.fetch_add(len as u64, Relaxed);
                if w.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}")
                    .is_err()
                {
                    return;
                }
            }
        });
    }
}
