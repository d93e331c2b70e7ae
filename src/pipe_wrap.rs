//! A pipe server socket the way libuv holds one: Node's "pipe" is a unix-domain stream socket
//! bound to a path (or, on Linux, an abstract name).
//!
//! Mirrors `uv_pipe_t` and the libuv functions Node's listen path goes through for
//! `server.listen('/dir/app.sock')` (`src/pipe_wrap.cc` → libuv's `src/unix/pipe.c`):
//! `uv_pipe_bind2`, `uv_pipe_listen`, `uv_pipe_chmod`, and the close that removes the socket
//! file. Unlike TCP there is no delayed error: a path that exists already (a stale socket
//! file, or any other file) fails the bind at once with `EADDRINUSE`, and nothing removes it.
//!
//! Two things changed in libuv between Node 20 (libuv 1.46) and Node 22+ (1.51, 1.52), both
//! seen under strace with the real binaries; [`Libuv`] says which one a handle follows.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::sys::{self, Errno, UnixName};

/// Which libuv's pipes a handle behaves like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Libuv {
    /// libuv 1.46 (Node 20): an abstract name fills all of `sun_path` (the padding NULs are
    /// part of the name), and `chmod` adds the asked bits to the file's mode, after a `stat`
    /// that skips it when they are there already.
    V1_46,
    /// libuv 1.51 and 1.52 (Node 22, 24, 26): an abstract name is as long as it is, and
    /// `chmod` sets the mode to exactly the asked bits (`fchmod` on the socket first, which
    /// Linux accepts and ignores, then `chmod` on the path).
    #[default]
    V1_51,
}

/// The socket file a bind made, removed when the handle that made it closes (libuv's
/// `uv__pipe_close` unlinks `pipe_fname`).
///
/// Not quite libuv: libuv unlinks the path whatever is there by then. Ours first checks that
/// the path still names the file the bind made (same device and inode, `lstat`), so a
/// primary never removes a file it did not make — a worker is untrusted input, and the
/// directory may be shared.
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    id: Option<(u64, u64)>,
}

impl SocketFile {
    /// The path, as it was bound (relative to the working directory, perhaps).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if self.id.is_some() && sys::file_id(&self.path) == self.id {
            let _ = sys::unlink(&self.path);
        }
    }
}

/// A pipe socket, as `uv_pipe_t` holds one.
#[derive(Debug)]
pub struct PipeHandle {
    fd: OwnedFd,
    /// The file this handle's bind made (none for an abstract name, or a socket that came
    /// from another process).
    file: Option<SocketFile>,
}

impl PipeHandle {
    // ANCHOR: uv_pipe_bind
    /// `uv_pipe_bind2`: socket, bind. No `SO_REUSEADDR`, nothing removed first: a path that
    /// exists already is `EADDRINUSE`, at once.
    pub fn bind(name: &UnixName, libuv: Libuv) -> Result<PipeHandle, Errno> {
        let fd = sys::unix_socket()?;
        sys::bind_unix(fd.as_fd(), name, libuv == Libuv::V1_46)?;
        let file = match name {
            UnixName::Path(path) => Some(SocketFile {
                id: sys::file_id(path),
                path: path.clone(),
            }),
            UnixName::Abstract(_) => None,
        };
        Ok(PipeHandle { fd, file })
    }
    // ANCHOR_END: uv_pipe_bind

    /// `uv_pipe_listen`.
    pub fn listen(&self, backlog: i32) -> Result<(), Errno> {
        sys::listen(self.fd.as_fd(), backlog)
    }

    // ANCHOR: uv_pipe_chmod
    /// `uv_pipe_chmod` (`readableAll`, `writableAll`): read and/or write for everyone.
    pub fn chmod(&self, readable: bool, writable: bool, libuv: Libuv) -> Result<(), Errno> {
        let mut want = 0;
        if readable {
            want |= 0o444;
        }
        if writable {
            want |= 0o222;
        }
        let Some(file) = &self.file else {
            return Err(Errno::EINVAL); // an abstract name has no file to change
        };
        match libuv {
            Libuv::V1_46 => {
                let mode = sys::stat_mode(&file.path)?;
                match mode & want == want {
                    true => Ok(()),
                    false => sys::chmod(&file.path, mode | want),
                }
            }
            Libuv::V1_51 => {
                let _ = sys::fchmod(self.fd.as_fd(), want);
                sys::chmod(&file.path, want)
            }
        }
    }
    // ANCHOR_END: uv_pipe_chmod

    /// Wrap a socket that arrived from another process (a `Pipe` passed as `net.Native`).
    /// It has no file to remove: the process that bound it does that.
    pub fn open(fd: OwnedFd) -> PipeHandle {
        PipeHandle { fd, file: None }
    }

    /// The socket.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The socket, and the file to remove once every copy that matters is closed (for a
    /// handle whose socket is shared with other processes).
    pub fn into_parts(self) -> (OwnedFd, Option<SocketFile>) {
        (self.fd, self.file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
    }

    #[test]
    fn the_file_goes_with_the_handle_unless_it_was_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.sock");
        let name = UnixName::Path(path.clone());
        drop(PipeHandle::bind(&name, Libuv::V1_51).expect("bind"));
        assert!(!path.exists(), "removed on close");
        let h = PipeHandle::bind(&name, Libuv::V1_51).expect("bind again");
        std::fs::remove_file(&path).expect("someone removes it");
        std::fs::write(&path, "someone else's").expect("and puts a file there");
        drop(h);
        assert!(path.exists(), "a file the handle did not make stays");
    }

    #[test]
    fn chmod_adds_bits_under_1_46_and_sets_them_under_1_51() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.sock");
        let name = UnixName::Path(path.clone());
        let h = PipeHandle::bind(&name, Libuv::V1_46).expect("bind");
        sys::chmod(&path, 0o700).expect("chmod");
        h.chmod(true, false, Libuv::V1_46).expect("uv_pipe_chmod");
        assert_eq!(mode(&path), 0o744);
        h.chmod(true, true, Libuv::V1_51).expect("uv_pipe_chmod");
        assert_eq!(mode(&path), 0o666);
        h.chmod(true, false, Libuv::V1_51).expect("uv_pipe_chmod");
        assert_eq!(mode(&path), 0o444);
    }
}
