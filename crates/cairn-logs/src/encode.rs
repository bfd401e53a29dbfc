//! Payload compression: zstd or gzip per `compression_kind`, or none.

use std::cell::RefCell;
use std::io::Write;

use cairn_config::{CompressionKind, LogsConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Zstd { level: i32 },
    Gzip { level: u32 },
}

impl Encoding {
    pub fn from_config(logs: &LogsConfig) -> Self {
        match (logs.use_compression, logs.compression_kind) {
            (false, _) => Encoding::Identity,
            (true, CompressionKind::Zstd) => Encoding::Zstd {
                level: logs.zstd_compression_level,
            },
            (true, CompressionKind::Gzip) => Encoding::Gzip {
                level: logs.compression_level,
            },
        }
    }

    /// The `Content-Encoding` header value; `None` when the body is sent as is.
    pub fn content_encoding(self) -> Option<&'static str> {
        match self {
            Encoding::Identity => None,
            Encoding::Zstd { .. } => Some("zstd"),
            Encoding::Gzip { .. } => Some("gzip"),
        }
    }

    /// Compresses `body`. Runs on a blocking thread: it is the pipeline's heaviest CPU work.
    pub fn encode(self, body: &[u8]) -> std::io::Result<Vec<u8>> {
        match self {
            Encoding::Identity => Ok(body.to_vec()),
            Encoding::Zstd { level } => {
                thread_local! {
                    // A zstd context costs allocations worth keeping across payloads.
                    static ZSTD: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
                }
                ZSTD.with(|cell| {
                    let mut cell = cell.borrow_mut();
                    if cell.as_ref().is_none_or(|(l, _)| *l != level) {
                        *cell = Some((level, zstd::bulk::Compressor::new(level)?));
                    }
                    let (_, c) = cell.as_mut().expect("set just above");
                    c.compress(body)
                })
            }
            Encoding::Gzip { level } => {
                let mut e = flate2::write::GzEncoder::new(
                    Vec::with_capacity(body.len() / 4 + 64),
                    flate2::Compression::new(level),
                );
                e.write_all(body)?;
                e.finish()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn every_encoding_round_trips_and_names_its_header() {
        let body = br#"[{"message":"hello","status":"info"},{"message":"hello","status":"info"}]"#
            .repeat(50);
        let z = Encoding::Zstd { level: 1 }.encode(&body).unwrap();
        assert_eq!(zstd::decode_all(&z[..]).unwrap(), body);
        let g = Encoding::Gzip { level: 6 }.encode(&body).unwrap();
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&g[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, body);
        assert!(z.len() < body.len() / 5 && g.len() < body.len() / 5);
        assert_eq!(Encoding::Identity.encode(&body).unwrap(), body);
        let names: Vec<_> = [
            Encoding::Identity,
            Encoding::Zstd { level: 1 },
            Encoding::Gzip { level: 6 },
        ]
        .iter()
        .map(|e| e.content_encoding())
        .collect();
        assert_eq!(names, vec![None, Some("zstd"), Some("gzip")]);
    }

    #[test]
    fn config_picks_the_encoding() {
        let mut logs = LogsConfig::default();
        assert_eq!(Encoding::from_config(&logs), Encoding::Zstd { level: 1 });
        logs.compression_kind = CompressionKind::Gzip;
        assert_eq!(Encoding::from_config(&logs), Encoding::Gzip { level: 6 });
        logs.use_compression = false;
        assert_eq!(Encoding::from_config(&logs), Encoding::Identity);
    }
}
