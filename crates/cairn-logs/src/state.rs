//! Persistent-cache state (cursors included) of each check, kept as one small JSON file per
//! check id under `<run_path>/state/`. Files are written whole to a temporary name, synced and
//! renamed, so a crash leaves either the old or the new state, never a torn one.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::sink::SinkError;

/// Cache key → value of one check.
pub type CacheState = HashMap<String, String>;

#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
}

impl StateStore {
    /// Opens (and creates, 0700) `<run_path>/state`.
    pub fn open(run_path: &Path) -> Result<Self, SinkError> {
        let dir = run_path.join("state");
        create_private_dir(run_path)?;
        create_private_dir(&dir)?;
        Ok(StateStore { dir })
    }

    fn file_for(&self, check_id: &str) -> PathBuf {
        // Check ids hold ':' and instance names may hold anything: keep file names portable.
        let safe: String = check_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.join(format!("{safe}.json"))
    }

    /// The stored state of `check_id`; empty when there is none. A file that cannot be read is
    /// an error, not an empty state: starting over would silently rewind cursors.
    pub fn load(&self, check_id: &str) -> Result<CacheState, SinkError> {
        let path = self.file_for(check_id);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| SinkError::State {
                path: path.clone(),
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(CacheState::new()),
            Err(e) => Err(SinkError::Io { path, source: e }),
        }
    }

    pub fn save(&self, check_id: &str, state: &CacheState) -> Result<(), SinkError> {
        let path = self.file_for(check_id);
        let tmp = path.with_extension("json.tmp");
        let io = |e| SinkError::Io {
            path: tmp.clone(),
            source: e,
        };
        let bytes = serde_json::to_vec(state).expect("a map of strings always serializes");
        let mut f = private_file(&tmp).map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
        fs::rename(&tmp, &path).map_err(|e| SinkError::Io {
            path: path.clone(),
            source: e,
        })?;
        Ok(())
    }
}

/// Creates `dir` with mode 0700 (and tightens it if it already exists).
pub fn create_private_dir(dir: &Path) -> Result<(), SinkError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let io = |e| SinkError::Io {
        path: dir.to_path_buf(),
        source: e,
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io)
}

/// Opens `path` for writing, truncated, mode 0600.
pub fn private_file(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn state_survives_a_reopen_and_files_are_private() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().join("run");
        let store = StateStore::open(&run).unwrap();
        let mut st = CacheState::new();
        st.insert("log_cursor_default".into(), "{\"position\":3}".into());
        store.save("my_check:0123456789abcdef", &st).unwrap();
        let again = StateStore::open(&run).unwrap();
        assert_eq!(again.load("my_check:0123456789abcdef").unwrap(), st);
        assert!(again.load("other:1").unwrap().is_empty());
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&run.join("state")), 0o700);
        assert_eq!(
            mode(&run.join("state/my_check_0123456789abcdef.json")),
            0o600
        );
    }
}
