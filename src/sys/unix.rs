//! Unix-domain stream sockets with a name: what libuv's `src/unix/pipe.c` asks of the kernel
//! for Node's "pipes" (`server.listen('/dir/app.sock')`): the socket, its bind to a path or
//! an abstract name, the mode of its file, and the file's removal.
//!
//! The calls a chapter wants to show print themselves as a syscall line, as in `socket.rs`.

use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, UnixAddr};
use nix::sys::stat::Mode;

use super::{set_timeouts, trace_call, zero};
use crate::trace;

/// The most bytes a name may have: `sun_path` holds 108, and a path needs its closing NUL
/// (an abstract name its leading one).
pub const MAX_UNIX_NAME: usize = 107;

/// What a unix socket is bound to: a file in the filesystem, or (Linux) an abstract name,
/// which Node spells with a leading `\0` and which no file stands for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UnixName {
    Path(PathBuf),
    /// The name's bytes, without the leading NUL.
    Abstract(Vec<u8>),
}

impl UnixName {
    /// Node's spelling: a leading `\0` makes a name abstract.
    pub fn from_node(name: &str) -> UnixName {
        match name.strip_prefix('\0') {
            Some(rest) => UnixName::Abstract(rest.as_bytes().to_vec()),
            None => UnixName::Path(PathBuf::from(name)),
        }
    }

    /// As strace shows it: `"sock/app.sock"`, or `@"name"` for an abstract name.
    pub fn show(&self) -> String {
        match self {
            UnixName::Path(p) => format!("{:?}", p.display().to_string()),
            UnixName::Abstract(n) => format!("@{:?}", String::from_utf8_lossy(n)),
        }
    }

    /// The address, as libuv builds it. An abstract name is the bytes given (libuv 1.49 and
    /// later: `uv_pipe_bind2` passes its length), or, with `pad`, those bytes followed by NULs
    /// to fill all of `sun_path` (libuv 1.46, Node 20: it always passes `sizeof(sockaddr_un)`,
    /// which makes the padding part of the name). A name too long is `EINVAL`, as Node 22+
    /// says (`uv_pipe_bind2`). Not Node 20: its libuv cuts a long path short without a word
    /// and binds the shorter name (seen with a 135-byte path); we refuse under every line,
    /// so that a primary never makes a file the worker did not name.
    fn addr(&self, pad: bool) -> Result<UnixAddr, Errno> {
        match self {
            UnixName::Path(p) if p.as_os_str().len() > MAX_UNIX_NAME => Err(Errno::EINVAL),
            UnixName::Path(p) => UnixAddr::new(p.as_path()).map_err(|_| Errno::EINVAL),
            UnixName::Abstract(n) if n.len() > MAX_UNIX_NAME => Err(Errno::EINVAL),
            UnixName::Abstract(n) if pad => {
                let mut padded = n.clone();
                padded.resize(MAX_UNIX_NAME, 0);
                UnixAddr::new_abstract(&padded)
            }
            UnixName::Abstract(n) => UnixAddr::new_abstract(n),
        }
    }
}

/// `socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC)`, as libuv's `uv__socket`.
pub fn unix_socket() -> Result<OwnedFd, Errno> {
    let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
    let res = socket::socket(AddressFamily::Unix, SockType::Stream, flags, None);
    let args = "AF_UNIX, SOCK_STREAM|SOCK_NONBLOCK|SOCK_CLOEXEC, 0";
    let shown = res.as_ref().map(|fd| fd.as_raw_fd().to_string());
    trace_call(&trace::Syscall::new("socket", args), shown.map_err(|e| *e));
    res
}

/// `bind(2)` to a name (see `UnixName::addr` for `pad`). Binding a path creates its file;
/// a path that exists already, whatever it is, gives `EADDRINUSE`: nothing is removed first.
pub fn bind_unix(fd: BorrowedFd<'_>, name: &UnixName, pad: bool) -> Result<(), Errno> {
    let res = name
        .addr(pad)
        .and_then(|addr| socket::bind(fd.as_raw_fd(), &addr));
    let args = format!("{}, {}", fd.as_raw_fd(), name.show());
    trace_call(&trace::Syscall::new("bind", &args), zero(&res));
    res
}

/// A blocking client connected to `name`, CLOEXEC, with `limit` on the connect (a full
/// accept queue makes `connect` wait; `SO_SNDTIMEO` bounds it) and on every later read and
/// write. Not traced.
pub fn connect_unix_with_limit(
    name: &UnixName,
    pad: bool,
    limit: Duration,
) -> Result<OwnedFd, Errno> {
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    set_timeouts(fd.as_fd(), limit)?;
    socket::connect(fd.as_raw_fd(), &name.addr(pad)?)?;
    Ok(fd)
}

/// `fchmod(2)` on a socket: Linux accepts it and changes nothing on disk (libuv 1.49+ tries
/// it first, then `chmod`s the path).
pub fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> Result<(), Errno> {
    let res = nix::sys::stat::fchmod(fd, Mode::from_bits_truncate(mode));
    let args = format!("{}, {mode:#05o}", fd.as_raw_fd());
    trace_call(&trace::Syscall::new("fchmod", &args), zero(&res));
    res
}

/// `chmod(2)`.
pub fn chmod(path: &Path, mode: u32) -> Result<(), Errno> {
    let res = nix::sys::stat::fchmodat(
        nix::fcntl::AT_FDCWD,
        path,
        Mode::from_bits_truncate(mode),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    );
    let args = format!("{:?}, {mode:#05o}", path.display().to_string());
    trace_call(&trace::Syscall::new("chmod", &args), zero(&res));
    res
}

/// `stat(2)`'s permission bits (libuv 1.46 reads them before it `chmod`s).
pub fn stat_mode(path: &Path) -> Result<u32, Errno> {
    let res = nix::sys::stat::stat(path).map(|st| st.st_mode & 0o7777);
    let args = format!("{:?}", path.display().to_string());
    let shown = res.map(|m| format!("0 (mode {m:#05o})"));
    trace_call(&trace::Syscall::new("stat", &args), shown);
    res
}

/// Which file `path` names, by device and inode, without following a symlink (`lstat`).
pub fn file_id(path: &Path) -> Option<(u64, u64)> {
    let st = nix::sys::stat::lstat(path).ok()?;
    Some((st.st_dev, st.st_ino))
}

/// `unlink(2)`.
pub fn unlink(path: &Path) -> Result<(), Errno> {
    let res = nix::unistd::unlink(path);
    let args = format!("{:?}", path.display().to_string());
    trace_call(&trace::Syscall::new("unlink", &args), zero(&res));
    res
}

/// A new directory only we may enter (mode 0700) in the system's temporary directory, its
/// name `prefix`, our pid and a number; made with `mkdir(2)`, which fails rather than reuse
/// a name someone else made first (as `mkdtemp(3)` does).
pub fn private_temp_dir(prefix: &str) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    loop {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("{prefix}{}-{nanos:x}-{n}", std::process::id());
        let path = std::env::temp_dir().join(name);
        match std::fs::DirBuilder::new().mode(0o700).create(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => continue,
            other => return other.map(|()| path),
        }
    }
}

/// A path's bytes, for a length check.
pub fn path_len(path: &Path) -> usize {
    OsStr::as_bytes(path.as_os_str()).len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_path_is_a_file_and_a_second_bind_fails_without_removing_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.sock");
        let name = UnixName::Path(path.clone());
        let a = unix_socket().expect("socket");
        bind_unix(a.as_fd(), &name, false).expect("bind");
        let id = file_id(&path).expect("the file exists");
        let b = unix_socket().expect("socket");
        assert_eq!(bind_unix(b.as_fd(), &name, false), Err(Errno::EADDRINUSE));
        assert_eq!(file_id(&path), Some(id), "the same file");
        unlink(&path).expect("unlink");
    }

    #[test]
    fn abstract_names_with_and_without_padding_are_different_names() {
        let name = UnixName::Abstract(format!("cw-test-{}", std::process::id()).into_bytes());
        let server = unix_socket().expect("socket");
        bind_unix(server.as_fd(), &name, true).expect("bind padded");
        socket::listen(&server, socket::Backlog::new(4).expect("backlog")).expect("listen");
        let limit = Duration::from_secs(1);
        assert!(connect_unix_with_limit(&name, true, limit).is_ok());
        assert_eq!(
            connect_unix_with_limit(&name, false, limit).err(),
            Some(Errno::ECONNREFUSED)
        );
    }

    #[test]
    fn names_too_long_for_sun_path_are_einval() {
        let long = UnixName::Path(PathBuf::from("x".repeat(MAX_UNIX_NAME + 1)));
        let fd = unix_socket().expect("socket");
        assert_eq!(bind_unix(fd.as_fd(), &long, false), Err(Errno::EINVAL));
        let fits = UnixName::Abstract(vec![b'y'; MAX_UNIX_NAME]);
        assert!(fits.addr(false).is_ok());
    }
}
