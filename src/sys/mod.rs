//! The one place that talks to the kernel.
//!
//! Node never calls `socket(2)` itself: libuv does, in `src/unix/tcp.c`, `src/unix/stream.c`,
//! `src/unix/process.c` and `src/unix/linux.c`. This module plays libuv's part for our
//! mirror. Every other module asks here for a socket, a bind, a `sendmsg` with `SCM_RIGHTS`,
//! a wait, and so on, which keeps all `unsafe` and all errno handling in one place:
//!
//! * [`socket`](self::socket): sockets, the channel's fd passing, reads and writes;
//! * [`process`](self::process): what a worker does before `exec`, signals, reaping;
//! * [`poll`](self::poll): waiting until an fd is ready.
//!
//! The functions that a chapter wants to show (socket, setsockopt, bind, listen, accept4,
//! getsockname) print themselves as a syscall line through [`crate::trace`], in the form
//! `strace` would use, so a reader sees exactly which process made which call.

mod poll;
mod process;
mod socket;

pub use poll::*;
pub use process::*;
pub use socket::*;

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;

/// Make a call again for as long as a signal interrupts it (`EINTR`), as libuv wraps its
/// `read`, `write`, `accept4`, `sendmsg` and `recvmsg` in `do … while (r == -1 && errno ==
/// EINTR)`. Only for calls that are safe to repeat: not `close` (on Linux the fd is gone
/// even when it says `EINTR`), not a blocking `connect`, and not a wait whose caller must
/// see the interrupt to notice Ctrl-C (see [`PollSet::wait`]).
fn retry<T>(mut call: impl FnMut() -> Result<T, Errno>) -> Result<T, Errno> {
    loop {
        match call() {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

/// Render an address as Node and strace print it: `127.0.0.1:8000`, `[::1]:8000`.
pub fn show_addr(addr: SocketAddr) -> String {
    addr.to_string()
}

fn fd_result(res: &Result<OwnedFd, Errno>) -> String {
    match res {
        Ok(fd) => fd.as_raw_fd().to_string(),
        Err(e) => errno_result(*e),
    }
}

fn unit_result(res: &Result<(), Errno>) -> String {
    match res {
        Ok(()) => "0".to_string(),
        Err(e) => errno_result(*e),
    }
}

/// `-1 EADDRINUSE (Address already in use)`, strace's way of showing a failure.
pub fn errno_result(e: Errno) -> String {
    format!("-1 {e:?} ({})", e.desc())
}
