//! Who may talk to the intake: the session token (Jupyter-style), its file, the credentials a
//! request can carry, and the `Host` names the intake answers to.

use std::ffi::CStr;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::IntakeError;

/// The cookie the Explorer gets for the token. Cookies are shared by every port of a host, so
/// the name carries the port: two intakes on one machine keep their own.
pub fn cookie_name(port: u16) -> String {
    format!("cairn_intake_{port}")
}

/// Random bytes in a generated token (hex-encoded, so 64 characters).
const TOKEN_BYTES: usize = 32;
/// A configured token shorter than this is refused: it would be guessable.
pub const MIN_TOKEN_LEN: usize = 16;

/// Reads the token from `path`, or creates it there (0600, 32 random bytes as hex) when the
/// file does not exist. The file is never followed through a symlink, must belong to this
/// user and be unreadable by others, so another local account can neither read nor plant it.
pub fn load_or_create_token(path: &Path) -> Result<String, IntakeError> {
    let fail = |source: std::io::Error| IntakeError::TokenFile {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(fail)?;
        }
    }
    // Two tries: another process may create the file between our open and our create.
    for _ in 0..2 {
        match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
        {
            Ok(f) => return read_token(f, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(fail(e)),
        }
        let token = random_token().map_err(fail)?;
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
        {
            Ok(mut f) => {
                // The umask cannot widen 0600, but a reused descriptor's mode is set explicitly
                // so the file never exists readable by others.
                f.set_permissions(std::fs::Permissions::from_mode(0o600))
                    .and_then(|()| f.write_all(format!("{token}\n").as_bytes()))
                    .and_then(|()| f.sync_all())
                    .map_err(fail)?;
                tracing::info!(path = %path.display(), "created the local intake's token file");
                return Ok(token);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(fail(e)),
        }
    }
    Err(fail(std::io::Error::other(
        "the file keeps appearing and disappearing",
    )))
}

fn read_token(f: File, path: &Path) -> Result<String, IntakeError> {
    let bad = |reason: String| IntakeError::TokenFile {
        path: path.to_owned(),
        source: std::io::Error::other(reason),
    };
    let meta = f.metadata().map_err(|source| IntakeError::TokenFile {
        path: path.to_owned(),
        source,
    })?;
    if !meta.is_file() {
        return Err(bad("not a regular file".into()));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(bad(format!(
            "owned by uid {}, not by this user ({me}); remove it",
            meta.uid()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(bad(format!(
            "mode {:o} lets other users read it; chmod 600 it or remove it to get a new token",
            meta.mode() & 0o777
        )));
    }
    let mut text = String::new();
    f.take(4096)
        .read_to_string(&mut text)
        .map_err(|source| IntakeError::TokenFile {
            path: path.to_owned(),
            source,
        })?;
    let token = text.trim();
    check_token(token).map_err(bad)?;
    Ok(token.to_owned())
}

/// A token must be long enough not to be guessed, and fit in a header and a cookie as is.
pub fn check_token(token: &str) -> Result<(), String> {
    if token.len() < MIN_TOKEN_LEN {
        return Err(format!("a token needs at least {MIN_TOKEN_LEN} characters"));
    }
    if !token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.~+/=".contains(&b))
    {
        return Err("a token may only hold letters, digits and - _ . ~ + / =".into());
    }
    Ok(())
}

fn random_token() -> std::io::Result<String> {
    let mut bytes = [0u8; TOKEN_BYTES];
    File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Compares without an early exit so that response time does not reveal how much of a secret
/// was right. (The length is not secret: generated tokens all have the same.)
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The `Host` values the intake answers to: loopback names, the literal address(es) it
/// listens on, and names the operator configured. Anything else may be a DNS-rebinding page.
pub fn allowed_hosts(local: SocketAddr, extra: &[String]) -> Vec<String> {
    let port = local.port();
    let mut hosts = vec![
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ];
    let add_ip = |ip: IpAddr, hosts: &mut Vec<String>| {
        let h = SocketAddr::new(ip, port).to_string();
        if !hosts.contains(&h) {
            hosts.push(h);
        }
    };
    if local.ip().is_unspecified() {
        for ip in interface_addresses() {
            add_ip(ip, &mut hosts);
        }
    } else {
        add_ip(local.ip(), &mut hosts);
    }
    for name in extra {
        let name = name.trim().to_ascii_lowercase();
        if name.is_empty() {
            continue;
        }
        if name.contains(':') && !name.starts_with('[') {
            // Already host:port (an IPv6 literal without brackets would be ambiguous).
            hosts.push(name);
        } else {
            hosts.push(format!("{name}:{port}"));
        }
    }
    hosts
}

/// Every address of this host's interfaces (getifaddrs); empty if it fails.
pub fn interface_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below; each node's `ifa_addr` is
    // either null or points at a sockaddr of the family it names.
    unsafe {
        if libc::getifaddrs(&mut head) != 0 {
            return out;
        }
        let mut cur = head;
        while !cur.is_null() {
            let addr = (*cur).ifa_addr;
            if !addr.is_null() {
                match i32::from((*addr).sa_family) {
                    libc::AF_INET => {
                        let sin = &*(addr as *const libc::sockaddr_in);
                        out.push(IpAddr::from(sin.sin_addr.s_addr.to_ne_bytes()));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(addr as *const libc::sockaddr_in6);
                        out.push(IpAddr::from(sin6.sin6_addr.s6_addr));
                    }
                    _ => {}
                }
            }
            cur = (*cur).ifa_next;
        }
        libc::freeifaddrs(head);
    }
    out
}

/// The address a person on the network can open when the intake listens on every interface:
/// the host's primary non-loopback IP (the one its default route uses), else the first
/// non-loopback interface address, else the host name.
pub fn reachable_host(local: SocketAddr) -> String {
    if !local.ip().is_unspecified() {
        return local.to_string();
    }
    let port = local.port();
    // Connecting a UDP socket sends nothing; it only asks the kernel which source address
    // it would route from. 192.0.2.1 (TEST-NET-1) is never a real peer.
    let routed = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("192.0.2.1:9").map(|()| s))
        .and_then(|s| s.local_addr())
        .ok()
        .map(|a| a.ip())
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified());
    let ip = routed.or_else(|| {
        interface_addresses()
            .into_iter()
            .find(|ip| ip.is_ipv4() && !ip.is_loopback())
    });
    match ip {
        Some(ip) => SocketAddr::new(ip, port).to_string(),
        None => format!("{}:{port}", host_name()),
    }
}

pub fn host_name() -> String {
    let mut buf = [0 as libc::c_char; 256];
    // SAFETY: gethostname writes at most `len` bytes; the last byte stays 0 so the buffer is
    // always NUL-terminated.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr(), buf.len() - 1) } == 0;
    if !ok {
        return "localhost".into();
    }
    // SAFETY: NUL-terminated (see above) and lives for this call.
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// Where a standalone intake keeps its token when none is given.
pub fn default_token_file(data_dir: &Path) -> PathBuf {
    data_dir.join("auth_token")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("auth_token");
        let t1 = load_or_create_token(&path).unwrap();
        assert_eq!(t1.len(), 64);
        let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load_or_create_token(&path).unwrap(), t1);
    }

    #[test]
    fn a_readable_or_linked_token_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth_token");
        std::fs::write(&path, "0123456789abcdef0123").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load_or_create_token(&path).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(load_or_create_token(&link).is_err());
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"ab"));
    }

    #[test]
    fn unspecified_listen_allows_interface_literals_only() {
        let hosts = allowed_hosts("0.0.0.0:9000".parse().unwrap(), &["box.lan".into()]);
        assert!(hosts.contains(&"127.0.0.1:9000".to_string()));
        assert!(hosts.contains(&"box.lan:9000".to_string()));
        assert!(!hosts.iter().any(|h| h.starts_with("0.0.0.0")));
        assert!(!reachable_host("0.0.0.0:9000".parse().unwrap()).starts_with("0.0.0.0"));
    }
}
