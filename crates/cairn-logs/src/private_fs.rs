//! Files under `run_path` that no other local user can read, replace or redirect.
//!
//! The agent may run as root, and `run_path` may sit in a directory other users can write to.
//! So: every file is opened with `O_NOFOLLOW` (a planted symlink makes the open fail instead of
//! redirecting a write to `/etc/...`), temporary files are created with `O_EXCL` after removing
//! whatever had the name (unlink removes a link, never its target), permissions are changed
//! through a descriptor opened without following links and only on what the agent's own user
//! owns, and a `run_path` that another user could swap under the agent is refused at start.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why `run_path` (or a directory in it) cannot be used safely.
#[derive(Debug, thiserror::Error)]
pub enum PrivateFsError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: {problem}; refusing to keep agent data there (another local user could read, replace or redirect it)")]
    Unsafe { path: PathBuf, problem: String },
}

fn io_at(path: &Path) -> impl Fn(io::Error) -> PrivateFsError + '_ {
    move |source| PrivateFsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Writable by someone other than its owner: by everyone, or by a group other than the
/// agent's own primary group (with user private groups, as Ubuntu's umask 002 makes them, a
/// group-writable home directory is writable by its owner alone).
fn others_can_write(mode: u32, gid: u32) -> bool {
    // SAFETY: getegid has no preconditions and cannot fail.
    let own_group = gid == unsafe { libc::getegid() };
    mode & 0o002 != 0 || (mode & 0o020 != 0 && !own_group)
}

/// Checks that a directory on the way to `run_path` cannot be used by another user to swap
/// what lies below it: owned by the agent's user or root, and writable by others only if it
/// is sticky (others then cannot rename or delete what the agent made, as in `/tmp`).
fn check_ancestor(path: &Path) -> Result<(), PrivateFsError> {
    let meta = fs::metadata(path).map_err(io_at(path))?;
    let (uid, mode, gid) = (meta.uid(), meta.mode(), meta.gid());
    if uid != euid() && uid != 0 {
        return Err(PrivateFsError::Unsafe {
            path: path.to_path_buf(),
            problem: format!(
                "owned by uid {uid}, not by the agent's user ({}) or root",
                euid()
            ),
        });
    }
    if others_can_write(mode, gid) && mode & libc::S_ISVTX == 0 {
        return Err(PrivateFsError::Unsafe {
            path: path.to_path_buf(),
            problem: format!(
                "writable by other users (mode {:o}) and not sticky",
                mode & 0o7777
            ),
        });
    }
    Ok(())
}

/// Opens a directory without following a symlink at its last component.
fn open_dir_nofollow(path: &Path) -> io::Result<File> {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// Creates `dir` (0700) if missing, then makes sure it is a real directory owned by the agent's
/// user and private (tightened to 0700 through a descriptor if it is ours and looser).
pub fn private_dir(dir: &Path) -> Result<(), PrivateFsError> {
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // Missing parents: create them too (0700), then this one.
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_at(dir))?;
        }
        Err(e) => return Err(io_at(dir)(e)),
    }
    let d = open_dir_nofollow(dir).map_err(|e| {
        if e.raw_os_error() == Some(libc::ELOOP) || e.raw_os_error() == Some(libc::ENOTDIR) {
            PrivateFsError::Unsafe {
                path: dir.to_path_buf(),
                problem: "is a symlink or not a directory".into(),
            }
        } else {
            io_at(dir)(e)
        }
    })?;
    let meta = d.metadata().map_err(io_at(dir))?;
    if meta.uid() != euid() {
        return Err(PrivateFsError::Unsafe {
            path: dir.to_path_buf(),
            problem: format!(
                "owned by uid {}, not by the agent's user ({})",
                meta.uid(),
                euid()
            ),
        });
    }
    if meta.mode() & 0o777 != 0o700 {
        d.set_permissions(fs::Permissions::from_mode(0o700))
            .map_err(io_at(dir))?;
    }
    Ok(())
}

/// Prepares `run_path` at start: refuses it when it, or the directory holding it, could be
/// swapped by another user; creates it private otherwise.
pub fn prepare_run_path(run_path: &Path) -> Result<(), PrivateFsError> {
    let abs = if run_path.is_absolute() {
        run_path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(io_at(run_path))?
            .join(run_path)
    };
    // The nearest existing ancestor and the parent must be safe; so must run_path itself when
    // it exists (private_dir then refuses symlinks and foreign owners).
    if let Some(parent) = abs.parent() {
        let mut existing = parent;
        while !existing.exists() {
            match existing.parent() {
                Some(p) => existing = p,
                None => break,
            }
        }
        check_ancestor(existing)?;
    }
    if let Ok(meta) = fs::symlink_metadata(&abs) {
        if meta.file_type().is_symlink() {
            return Err(PrivateFsError::Unsafe {
                path: abs,
                problem: "is a symlink".into(),
            });
        }
    }
    private_dir(&abs)
}

/// Open options for a private file: 0600 when created, never through a symlink.
pub fn options() -> fs::OpenOptions {
    let mut o = fs::OpenOptions::new();
    o.mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    o
}

/// Creates `path` anew (O_EXCL), removing whatever held the name first.
pub fn create_new(path: &Path) -> io::Result<File> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    options().write(true).create_new(true).open(path)
}

/// Reads a whole private file without following a symlink.
pub fn read(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut f = options().read(true).open(path)?;
    let mut out = Vec::new();
    f.read_to_end(&mut out)?;
    Ok(out)
}

/// Replaces `dir/name` with `bytes` atomically and durably: a fresh temporary file (O_EXCL),
/// fsync, rename, fsync of the directory. A crash leaves the old file or the new one.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = create_new(&tmp)?;
    let written = f.write_all(bytes).and_then(|()| f.sync_all());
    if let Err(e) = written {
        drop(f);
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

pub fn sync_dir(dir: &Path) -> io::Result<()> {
    open_dir_nofollow(dir)?.sync_all()
}

/// True for the errors that mean "the disk (or the user's quota) is full".
pub fn is_disk_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_symlinked_file_is_never_written_through() {
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim");
        fs::write(&victim, "precious").unwrap();
        let dir = tmp.path().join("run");
        private_dir(&dir).unwrap();
        symlink(&victim, dir.join("state.snapshot.tmp")).unwrap();
        symlink(&victim, dir.join("head")).unwrap();
        write_atomic(&dir, "state.snapshot", b"new").unwrap();
        assert!(options()
            .write(true)
            .create(true)
            .open(dir.join("head"))
            .is_err());
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(fs::read(dir.join("state.snapshot")).unwrap(), b"new");
        let mode = fs::metadata(dir.join("state.snapshot")).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_symlinked_or_shared_run_path_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let elsewhere = tmp.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        let link = tmp.path().join("run");
        symlink(&elsewhere, &link).unwrap();
        let err = prepare_run_path(&link).unwrap_err().to_string();
        assert!(err.contains("symlink"), "{err}");

        let shared = tmp.path().join("shared");
        fs::create_dir(&shared).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o777)).unwrap();
        let err = prepare_run_path(&shared.join("run"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not sticky"), "{err}");
        // Sticky and ours, as /tmp is: fine.
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
        prepare_run_path(&shared.join("run")).unwrap();
        let mode = fs::metadata(shared.join("run")).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }
}
