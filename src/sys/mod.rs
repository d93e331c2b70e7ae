//! The one place that talks to the kernel.
//!
//! Node never calls `socket(2)` itself: libuv does, in `src/unix/tcp.c`, `src/unix/stream.c`,
//! `src/unix/process.c` and `src/unix/linux.c`. This module plays libuv's part for our
//! mirror. Every other module asks here for a socket, a bind, a `sendmsg` with `SCM_RIGHTS`,
//! a wait, and so on, which keeps all `unsafe` and all errno handling in one place:
//!
//! * `socket.rs`: sockets, the channel's fd passing, reads and writes;
//! * `process.rs`: what a worker does before `exec`, signals, reaping;
//! * `poll.rs`: waiting until an fd is ready;
//! * `unix.rs`: unix sockets with a name (Node's pipes), their files and modes.
//!
//! The functions that a chapter wants to show (socket, setsockopt, bind, listen, accept4,
//! getsockname) print themselves as a syscall line through [`crate::trace`], in the form
//! `strace` would use, so a reader sees exactly which process made which call.

mod poll;
mod process;
mod socket;
mod unix;

pub use poll::*;
pub use process::*;
pub use socket::*;
pub use unix::*;

/// The error every call here returns: the kernel's `errno`, by name (`Errno::EADDRINUSE`).
/// Re-exported so that no module above this one names `nix` (see `tests/kernel_calls.rs`).
pub use nix::errno::Errno;
/// A signal by name (`Signal::SIGKILL`), for [`kill`] and for reading how a child ended.
pub use nix::sys::signal::Signal;

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};

use crate::trace;

/// Make a call again for as long as a signal interrupts it (`EINTR`), as libuv wraps its
/// `read`, `write`, `accept4`, `sendmsg` and `recvmsg` in `do … while (r == -1 && errno ==
/// EINTR)`. Only for calls that are safe to repeat: not `close` (on Linux the fd is gone
/// even when it says `EINTR`), not a blocking `connect`, and not a wait whose caller must
/// see the interrupt to notice Ctrl-C (see [`Epoll::wait`]).
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

/// Print one syscall line through [`trace::syscall`]: `name(args) = value`, or a failure in
/// strace's way, `-1 EADDRINUSE (Address already in use)`.
pub fn trace_call(call: &trace::Syscall<'_>, result: Result<String, Errno>) {
    if !trace::syscalls_enabled() {
        return;
    }
    match result {
        Ok(value) => trace::syscall(call, trace::Returned::Value(&value)),
        Err(e) => {
            let errno = format!("{e:?}");
            let desc = e.desc();
            trace::syscall(
                call,
                trace::Returned::Error {
                    errno: &errno,
                    desc,
                },
            );
        }
    }
}

/// What a call that returns 0 or fails shows.
fn zero(res: &Result<(), Errno>) -> Result<String, Errno> {
    res.map(|()| "0".to_string())
}

/// What a call that returns a new fd shows: its number.
fn fd_number(res: &Result<OwnedFd, Errno>) -> Result<String, Errno> {
    res.as_ref()
        .map(|fd| fd.as_raw_fd().to_string())
        .map_err(|e| *e)
}
