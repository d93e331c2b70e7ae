//! A TCP server socket the way libuv holds one: the fd plus a *delayed error*.
//!
//! Mirrors `uv_tcp_t` and the two libuv functions Node's listen path goes through,
//! `uv__tcp_bind` and `uv__tcp_listen` in libuv's `src/unix/tcp.c` (v1.46.0, the libuv inside
//! Node v20.20.2). The surprising part is in [`TcpHandle::bind`]: when `bind(2)` fails with
//! `EADDRINUSE`, libuv does not report it. It stores the error, says "bound", and hands the
//! error back only from `listen` — which is why Node's message says `listen EADDRINUSE`
//! although `listen(2)` is never called.

use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use crate::sys::Errno;

use crate::sys::{self, Transport};
use crate::trace;

/// Node's default backlog: 511 (`setupListenHandle` in `lib/net.js`; Node's comment says the
/// kernel rounds it up to 512 anyway).
pub(crate) const DEFAULT_BACKLOG: i32 = 511;

/// A TCP socket plus libuv's `delayed_error`.
#[derive(Debug)]
pub struct TcpHandle {
    fd: OwnedFd,
    /// `tcp->delayed_error`: a bind `EADDRINUSE` that libuv keeps until `listen`.
    delayed_error: Option<Errno>,
}

impl TcpHandle {
    // ANCHOR: uv_tcp_bind
    /// `uv__tcp_bind`: socket, `SO_REUSEADDR` (always), `SO_REUSEPORT` with
    /// `UV_TCP_REUSEPORT` (libuv 1.49+), bind. A bind `EADDRINUSE` is *kept*, not returned;
    /// any other bind error is returned at once.
    pub fn bind(addr: SocketAddr, reuse_port: bool) -> Result<TcpHandle, Errno> {
        let fd = sys::socket(addr.ip(), Transport::Tcp)?;
        sys::set_reuseaddr(fd.as_fd())?;
        if reuse_port {
            sys::set_reuseport(fd.as_fd())?;
        }
        match sys::bind(fd.as_fd(), addr) {
            Ok(()) => Ok(TcpHandle {
                fd,
                delayed_error: None,
            }),
            Err(Errno::EADDRINUSE) => Ok(TcpHandle {
                fd,
                delayed_error: Some(Errno::EADDRINUSE),
            }),
            Err(e) => Err(e),
        }
    }
    // ANCHOR_END: uv_tcp_bind

    // ANCHOR: uv_tcp_listen
    /// `uv__tcp_listen`: the delayed error comes first, so `listen(2)` is never reached.
    pub fn listen(&self, backlog: i32) -> Result<(), Errno> {
        if let Some(e) = self.delayed_error {
            let args = format!("{}, {backlog}", self.fd.as_raw_fd());
            let why = format!("libuv returns the {e:?} that bind kept");
            trace::syscall_skipped(&trace::Syscall::new("listen", &args), &why);
            return Err(e);
        }
        sys::listen(self.fd.as_fd(), backlog)
    }
    // ANCHOR_END: uv_tcp_listen

    /// Wrap an fd that arrived from another process (Node's `handle.open(fd)` / a passed
    /// `TCPWrap`). It has no delayed error: that lived in the sender's `uv_tcp_t`.
    pub fn open(fd: OwnedFd) -> TcpHandle {
        TcpHandle {
            fd,
            delayed_error: None,
        }
    }

    /// The error `bind` kept, if any.
    pub fn delayed_error(&self) -> Option<Errno> {
        self.delayed_error
    }

    /// The socket.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Give up the handle and keep the socket.
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }
}
