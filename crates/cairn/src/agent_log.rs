//! The agent's own log: stderr for every command, and for `cairn run` also
//! `log_file` (default `<run_path>/logs/agent.log`), rotated by size.
//!
//! The subscriber is installed before any config is read, so the level is a reload layer and
//! the console and file layers are gated by flags that [`start_agent_log`] sets once the
//! config is known. Writing the file never blocks or fails the agent: a line the disk refuses
//! is dropped and counted, and the first drop is said once on stderr (never through tracing,
//! which would re-enter the writer).

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use tracing_subscriber::filter::{EnvFilter, FilterFn};
use tracing_subscriber::fmt::format::{DefaultFields, Writer};
use tracing_subscriber::fmt::{FormatFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::Registry;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, Layer};

/// The env-filter a developer sets to override every configured level.
pub const ENV_FILTER_VAR: &str = "CAIRN_LOG";

static CONSOLE_ON: AtomicBool = AtomicBool::new(true);
static FILE_ON: AtomicBool = AtomicBool::new(false);
static LEVEL: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();
static FILE: Mutex<Option<RotatingFile>> = Mutex::new(None);
static DROPPED_LINES: AtomicU64 = AtomicU64::new(0);

/// A Datadog level name as an env-filter directive.
fn directive(level: &str) -> &str {
    match level {
        "warning" => "warn",
        "critical" => "error",
        other => other,
    }
}

/// Installs the global subscriber: `level` (a command's `--log-level`) wins, else
/// `CAIRN_LOG`, else `info`.
pub fn install(level: Option<&str>) {
    let filter = match level {
        Some(l) => EnvFilter::new(directive(l)),
        None => EnvFilter::try_from_env(ENV_FILTER_VAR).unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let (filter, handle) = reload::Layer::new(filter);
    use std::io::IsTerminal;
    let console = tracing_subscriber::fmt::layer()
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .with_target(false)
        .with_filter(FilterFn::new(|_| CONSOLE_ON.load(Ordering::Relaxed)));
    let file = tracing_subscriber::fmt::layer()
        .fmt_fields(PlainFields::default())
        .with_writer(FileWriter)
        .with_ansi(false)
        .with_target(false)
        .with_filter(FilterFn::new(|_| FILE_ON.load(Ordering::Relaxed)));
    Registry::default()
        .with(filter)
        .with(console)
        .with(file)
        .init();
    let _ = LEVEL.set(handle);
}

/// A field formatter of its own type: span fields formatted for one layer are cached per
/// formatter type, and the console's may carry ANSI colours the file must not get.
#[derive(Default)]
struct PlainFields(DefaultFields);

impl<'w> FormatFields<'w> for PlainFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        writer: Writer<'w>,
        fields: R,
    ) -> std::fmt::Result {
        self.0.format_fields(writer, fields)
    }
}

/// What `cairn run` logs to, as started from its config.
#[derive(Debug)]
pub struct AgentLog {
    /// The file written, `None` when file logging is off or the file could not be opened.
    /// For `cairn status` (issue 10), which does not read it yet.
    #[allow(dead_code)]
    pub file: Option<PathBuf>,
}

impl AgentLog {
    /// Lines the log file refused (disk full, file gone) since the start.
    pub fn dropped_lines(&self) -> u64 {
        DROPPED_LINES.load(Ordering::Relaxed)
    }
}

impl Drop for AgentLog {
    fn drop(&mut self) {
        let dropped = self.dropped_lines();
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "agent log: lines were dropped (the log file refused them)"
            );
        }
    }
}

/// Applies `log_level` (unless `CAIRN_LOG` is set: a developer's filter wins), opens the log
/// file unless `disable_file_logging`, and turns stderr off when `log_to_console: false`.
/// A file that cannot be opened (a symlink at its name, a directory another user owns) is
/// reported and skipped: the agent runs on, logging to stderr.
pub fn start_agent_log(agent: &cairn_config::AgentConfig) -> anyhow::Result<AgentLog> {
    if std::env::var_os(ENV_FILTER_VAR).is_none() {
        if let Some(handle) = LEVEL.get() {
            handle
                .reload(EnvFilter::new(directive(&agent.log_level)))
                .map_err(|e| anyhow::anyhow!("applying log_level: {e}"))?;
        }
    }
    let cfg = &agent.agent_log;
    let mut file = None;
    if !cfg.disable_file_logging {
        match RotatingFile::open(cfg, &agent.run_path) {
            Ok(f) => {
                file = Some(f.path.clone());
                *FILE.lock().unwrap_or_else(|e| e.into_inner()) = Some(f);
                FILE_ON.store(true, Ordering::Relaxed);
            }
            Err(e) => tracing::warn!(
                path = %cfg.file.display(),
                error = %e,
                "agent log: not writing the log file (logging to stderr only)"
            ),
        }
    }
    if !cfg.to_console {
        if file.is_none() {
            tracing::warn!("log_to_console is false but there is no log file: keeping stderr");
        } else {
            tracing::info!(path = %cfg.file.display(), "log_to_console is false: logging to the file only");
            CONSOLE_ON.store(false, Ordering::Relaxed);
        }
    }
    Ok(AgentLog { file })
}

/// The log file and its rotation state. Only the writer touches it, under [`FILE`].
struct RotatingFile {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    max_size: u64,
    max_rolls: u32,
    /// Whether the current run of drops was reported on stderr.
    reported: bool,
}

impl RotatingFile {
    fn open(cfg: &cairn_config::AgentLogConfig, run_path: &Path) -> io::Result<RotatingFile> {
        let dir = cfg.file.parent().unwrap_or(Path::new("."));
        if dir.starts_with(run_path) {
            // Under run_path: private like the rest of it (0700, owned, no symlinks).
            cairn_logs::private_fs::prepare_run_path(run_path).map_err(io::Error::other)?;
            cairn_logs::private_fs::private_dir(dir).map_err(io::Error::other)?;
        } else if !dir.exists() {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        let file = open_append(&cfg.file)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            path: cfg.file.clone(),
            file: Some(file),
            size,
            max_size: cfg.max_size_bytes.max(1),
            max_rolls: cfg.max_rolls,
            reported: false,
        })
    }

    fn rolled(&self, n: u32) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    /// agent.log → agent.log.1 → … → agent.log.<max_rolls>; the oldest is replaced by the
    /// rename (a rename moves a symlink itself, never what it points to).
    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        // A file gone already (an operator removed it) is no reason to stop logging.
        let gone_is_fine = |r: io::Result<()>| match r {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        };
        if self.max_rolls == 0 {
            gone_is_fine(std::fs::remove_file(&self.path))?;
        } else {
            for n in (1..self.max_rolls).rev() {
                gone_is_fine(std::fs::rename(self.rolled(n), self.rolled(n + 1)))?;
            }
            gone_is_fine(std::fs::rename(&self.path, self.rolled(1)))?;
        }
        self.file = Some(open_append(&self.path)?);
        self.size = 0;
        Ok(())
    }

    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        // A line longer than a whole file is cut, so no file ever exceeds the limit.
        let line = &line[..line.len().min(self.max_size as usize)];
        if self.file.is_none() || (self.size > 0 && self.size + line.len() as u64 > self.max_size) {
            self.rotate()?;
        }
        let file = self.file.as_mut().expect("rotate leaves a file open");
        file.write_all(line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    fn write_event(&mut self, event: &[u8]) {
        let line = one_line(event);
        match self.write_line(&line) {
            Ok(()) => {
                if self.reported {
                    self.reported = false;
                    let dropped = DROPPED_LINES.load(Ordering::Relaxed);
                    eprintln!(
                        "cairn: agent log: writing {} again ({dropped} lines dropped so far)",
                        self.path.display()
                    );
                }
            }
            Err(e) => {
                DROPPED_LINES.fetch_add(1, Ordering::Relaxed);
                if !self.reported {
                    self.reported = true;
                    eprintln!(
                        "cairn: agent log: cannot write {}: {e}; its lines are dropped (counted) until writing works again",
                        self.path.display()
                    );
                }
            }
        }
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    cairn_logs::private_fs::options()
        .append(true)
        .create(true)
        .open(path)
}

/// One event, one line: newlines inside a message (a traceback) are written as `\n`.
fn one_line(event: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let body = event.strip_suffix(b"\n").unwrap_or(event);
    if !body.iter().any(|&b| b == b'\n' || b == b'\r') {
        return std::borrow::Cow::Borrowed(event);
    }
    let mut out = Vec::with_capacity(event.len() + 16);
    for &b in body {
        match b {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            other => out.push(other),
        }
    }
    out.push(b'\n');
    std::borrow::Cow::Owned(out)
}

/// The file layer's writer: the fmt layer writes each formatted event in one `write_all`.
struct FileWriter;

impl<'a> MakeWriter<'a> for FileWriter {
    type Writer = FileWriter;

    fn make_writer(&'a self) -> FileWriter {
        FileWriter
    }
}

impl Write for FileWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(f) = FILE.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            f.write_event(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multi_line_event_becomes_one_line() {
        assert_eq!(&*one_line(b"a\n"), b"a\n");
        assert_eq!(&*one_line(b"a\nb\r\nc\n"), b"a\\nb\\r\\nc\n");
    }
}
