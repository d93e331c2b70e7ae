//! Sockets: create, bind, listen, accept, and the IPC channel's `sendmsg`/`recvmsg` with
//! `SCM_RIGHTS`, as libuv's `src/unix/tcp.c`, `src/unix/stream.c` and `src/unix/udp.c` make
//! them.
//!
//! The calls a chapter wants to show (socket, setsockopt, bind, listen, accept4,
//! getsockname, sendmsg/recvmsg with an fd, close) print themselves as a syscall line
//! through [`crate::trace`], in the form `strace` would use.

use std::io::IoSlice;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{
    self, AddressFamily, Backlog, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag,
    SockType, SockaddrIn, SockaddrIn6, SockaddrStorage, sockopt,
};

use super::{errno_result, fd_result, retry, show_addr, unit_result};
use crate::trace;

/// Which transport a socket speaks: the `addressType` values `4`/`6` vs `udp4`/`udp6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Udp,
}

fn family_of(ip: IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn family_name(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "AF_INET",
        IpAddr::V6(_) => "AF_INET6",
    }
}

/// `socket(2)` with `SOCK_NONBLOCK | SOCK_CLOEXEC`, as libuv's `uv__socket` does.
pub fn socket(ip: IpAddr, transport: Transport) -> Result<OwnedFd, Errno> {
    let (ty, ty_name) = match transport {
        Transport::Tcp => (SockType::Stream, "SOCK_STREAM"),
        Transport::Udp => (SockType::Datagram, "SOCK_DGRAM"),
    };
    let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
    let res = socket::socket(family_of(ip), ty, flags, None);
    let call = format!(
        "socket({}, {ty_name}|SOCK_NONBLOCK|SOCK_CLOEXEC, 0)",
        family_name(ip)
    );
    trace::syscall(&call, &fd_result(&res));
    res
}

/// `setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, 1)`: libuv sets it on every TCP socket it binds.
pub fn set_reuseaddr(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    let res = socket::setsockopt(&fd, sockopt::ReuseAddr, &true);
    let call = format!(
        "setsockopt({}, SOL_SOCKET, SO_REUSEADDR, [1])",
        fd.as_raw_fd()
    );
    trace::syscall(&call, &unit_result(&res));
    res
}

/// `setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, 1)`: never used by Node v20; here for the
/// chapter that shows what the kernel can do without Node.
pub fn set_reuseport(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    let res = socket::setsockopt(&fd, sockopt::ReusePort, &true);
    let call = format!(
        "setsockopt({}, SOL_SOCKET, SO_REUSEPORT, [1])",
        fd.as_raw_fd()
    );
    trace::syscall(&call, &unit_result(&res));
    res
}

/// `bind(2)` to an IP address and port.
pub fn bind(fd: BorrowedFd<'_>, addr: SocketAddr) -> Result<(), Errno> {
    let res = match addr {
        SocketAddr::V4(a) => socket::bind(fd.as_raw_fd(), &SockaddrIn::from(a)),
        SocketAddr::V6(a) => socket::bind(fd.as_raw_fd(), &SockaddrIn6::from(a)),
    };
    let call = format!("bind({}, {})", fd.as_raw_fd(), show_addr(addr));
    trace::syscall(&call, &unit_result(&res));
    res
}

/// `listen(2)`. Node always asks for 511 unless the user gave a backlog.
pub fn listen(fd: BorrowedFd<'_>, backlog: i32) -> Result<(), Errno> {
    let backlog_arg = Backlog::new(backlog).unwrap_or(Backlog::MAXCONN);
    let res = socket::listen(&fd, backlog_arg);
    let call = format!("listen({}, {backlog})", fd.as_raw_fd());
    trace::syscall(&call, &unit_result(&res));
    res
}

/// `accept4(2)` with `SOCK_NONBLOCK | SOCK_CLOEXEC`, as libuv's `uv__accept` does. Returns
/// `Ok(None)` when the accept queue is empty (`EAGAIN`), which is how a loser of a
/// SCHED_NONE wake-up race finds out it lost.
pub fn accept4(fd: BorrowedFd<'_>, traced: bool) -> Result<Option<OwnedFd>, Errno> {
    let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
    let res = retry(|| socket::accept4(fd, flags));
    if traced && trace::syscalls_enabled() && res.as_ref().err() != Some(&Errno::EAGAIN) {
        let call = format!("accept4({}, SOCK_NONBLOCK|SOCK_CLOEXEC)", fd.as_raw_fd());
        trace::syscall(&call, &fd_result(&res));
    }
    match res {
        Ok(conn) => Ok(Some(conn)),
        Err(Errno::EAGAIN) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The address a socket is bound to, or `None` for an unbound socket (port 0).
pub fn getsockname(fd: BorrowedFd<'_>) -> Result<SocketAddr, Errno> {
    let storage: SockaddrStorage = socket::getsockname(fd.as_raw_fd())?;
    if let Some(v4) = storage.as_sockaddr_in() {
        return Ok(SocketAddr::V4((*v4).into()));
    }
    if let Some(v6) = storage.as_sockaddr_in6() {
        return Ok(SocketAddr::V6((*v6).into()));
    }
    Err(Errno::EAFNOSUPPORT)
}

/// `getsockname(2)` printed as a syscall line, for the places where the book wants the
/// reader to see it (Node's `checkBindError`).
pub fn getsockname_traced(fd: BorrowedFd<'_>) -> Result<SocketAddr, Errno> {
    let res = getsockname(fd);
    let call = format!("getsockname({})", fd.as_raw_fd());
    let shown = match &res {
        Ok(addr) => format!("0 ({})", show_addr(*addr)),
        Err(e) => errno_result(*e),
    };
    trace::syscall(&call, &shown);
    res
}

/// A connected `AF_UNIX` stream pair, both ends CLOEXEC: the IPC channel between a primary
/// and one worker (libuv's `uv_socketpair` in `uv_spawn`).
pub fn socketpair() -> Result<(OwnedFd, OwnedFd), Errno> {
    socket::socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
}

/// Put an fd into non-blocking mode (sockets handed to a peer must be non-blocking).
pub fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> Result<(), Errno> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    let flags = if on {
        flags | OFlag::O_NONBLOCK
    } else {
        flags & !OFlag::O_NONBLOCK
    };
    fcntl(fd, FcntlArg::F_SETFL(flags)).map(|_| ())
}

/// `sendmsg(2)` with one `SCM_RIGHTS` control message holding exactly one fd: how libuv's
/// `uv_write2` sends a handle. Returns how many bytes went out.
pub fn sendmsg_with_fd(chan: BorrowedFd<'_>, bytes: &[u8], fd: RawFd) -> Result<usize, Errno> {
    let iov = [IoSlice::new(bytes)];
    let fds = [fd];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    // The line is built only for a reader: the primary calls this once per connection.
    let call = match trace::syscalls_enabled() {
        true => format!(
            "sendmsg({}, [{} bytes], SCM_RIGHTS [{fd}])",
            chan.as_raw_fd(),
            bytes.len()
        ),
        false => String::new(),
    };
    // Printed before the call: once it returns, the receiver may already be printing what it
    // got, and its line must come after ours. A result other than "all of it" gets a line too.
    if trace::syscalls_enabled() {
        trace::syscall(&call, &bytes.len().to_string());
    }
    let res = retry(|| {
        socket::sendmsg::<()>(chan.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None)
    });
    match &res {
        Ok(n) if *n == bytes.len() => {}
        Ok(n) => trace::syscall(
            &call,
            &format!("{n} (short: the rest follows without the fd)"),
        ),
        Err(e) => trace::syscall(&call, &errno_result(*e)),
    }
    res
}

/// A plain `write` of channel bytes (`send` with `MSG_NOSIGNAL`, so a dead peer gives
/// `EPIPE` instead of killing us with `SIGPIPE`).
pub fn send(chan: BorrowedFd<'_>, bytes: &[u8]) -> Result<usize, Errno> {
    retry(|| socket::send(chan.as_raw_fd(), bytes, MsgFlags::MSG_NOSIGNAL))
}

/// What one `recvmsg` on the channel brought: bytes, and any fds that rode along.
pub struct Received {
    pub len: usize,
    pub fds: Vec<OwnedFd>,
    /// The kernel cut the control data short (`MSG_CTRUNC`): an fd was lost.
    pub truncated: bool,
}

/// `recvmsg(2)` with `MSG_CMSG_CLOEXEC`, room for a few fds, as libuv reads an IPC pipe.
pub fn recvmsg(chan: BorrowedFd<'_>, buf: &mut [u8]) -> Result<Received, Errno> {
    let mut cmsg_space = nix::cmsg_space!([RawFd; 4]);
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let (bytes, raw_fds, truncated) = retry(|| {
        let msg = socket::recvmsg::<()>(
            chan.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg_space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )?;
        let mut raw_fds = Vec::new();
        for cmsg in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(raw) = cmsg {
                raw_fds.extend(raw);
            }
        }
        Ok((msg.bytes, raw_fds, msg.flags.contains(MsgFlags::MSG_CTRUNC)))
    })?;
    // SAFETY: SCM_RIGHTS just installed these fds in our table; we are their only owner.
    let fds: Vec<OwnedFd> = raw_fds
        .into_iter()
        .map(|r| unsafe { OwnedFd::from_raw_fd(r) })
        .collect();
    if !fds.is_empty() && trace::syscalls_enabled() {
        // Only the reads that bring an fd are worth a line: the same socket, a new number.
        let got: Vec<String> = fds.iter().map(|f| f.as_raw_fd().to_string()).collect();
        let call = format!("recvmsg({}, MSG_CMSG_CLOEXEC)", chan.as_raw_fd());
        let shown = format!("{bytes} + SCM_RIGHTS [{}]", got.join(", "));
        trace::syscall(&call, &shown);
    }
    Ok(Received {
        len: bytes,
        fds,
        truncated,
    })
}

/// `read(2)` that retries on `EINTR`.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize, Errno> {
    retry(|| nix::unistd::read(fd, buf))
}

/// `write(2)` that retries on `EINTR`.
pub fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> Result<usize, Errno> {
    retry(|| nix::unistd::write(fd, buf))
}

/// A datagram and who sent it, read with `recvmsg(2)` as libuv's `uv__udp_recvmsg` does.
pub fn recv_from(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<(usize, Option<SocketAddr>), Errno> {
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let (bytes, address) = retry(|| {
        socket::recvmsg::<SockaddrStorage>(fd.as_raw_fd(), &mut iov, None, MsgFlags::empty())
            .map(|msg| (msg.bytes, msg.address))
    })?;
    let from = address.and_then(|s| {
        s.as_sockaddr_in()
            .map(|a| SocketAddr::V4((*a).into()))
            .or_else(|| s.as_sockaddr_in6().map(|a| SocketAddr::V6((*a).into())))
    });
    let shown = match from {
        Some(a) => format!("{} from {}", bytes, show_addr(a)),
        None => bytes.to_string(),
    };
    trace::syscall(&format!("recvmsg({})", fd.as_raw_fd()), &shown);
    Ok((bytes, from))
}

/// A datagram to `to`, with `sendmsg(2)` as libuv's `uv__udp_sendmsg` does.
pub fn send_to(fd: BorrowedFd<'_>, buf: &[u8], to: SocketAddr) -> Result<usize, Errno> {
    let iov = [IoSlice::new(buf)];
    let raw = fd.as_raw_fd();
    match to {
        SocketAddr::V4(a) => {
            let addr = SockaddrIn::from(a);
            retry(|| socket::sendmsg(raw, &iov, &[], MsgFlags::empty(), Some(&addr)))
        }
        SocketAddr::V6(a) => {
            let addr = SockaddrIn6::from(a);
            retry(|| socket::sendmsg(raw, &iov, &[], MsgFlags::empty(), Some(&addr)))
        }
    }
}

/// Set `SO_RCVTIMEO`/`SO_SNDTIMEO` so a blocking client socket can never hang a test.
pub fn set_timeouts(fd: BorrowedFd<'_>, timeout: Duration) -> Result<(), Errno> {
    let tv = nix::sys::time::TimeVal::new(timeout.as_secs() as _, timeout.subsec_micros() as _);
    socket::setsockopt(&fd, sockopt::ReceiveTimeout, &tv)?;
    socket::setsockopt(&fd, sockopt::SendTimeout, &tv)
}

/// `close(2)`, printed as a syscall line. The line goes out *before* the close: closing a
/// connection is what its peer is waiting for, and a line printed after it could be
/// overtaken by the peer's. On Linux, close of a socket always releases the fd; the
/// result is checked in debug builds.
pub fn close_traced(fd: OwnedFd) {
    let raw = fd.as_raw_fd();
    trace::syscall(&format!("close({raw})"), "0");
    let res = nix::unistd::close(fd);
    debug_assert!(res.is_ok(), "close({raw}) = {res:?}");
}

/// A blocking TCP client connected to `addr`, CLOEXEC, with `limit` on the connect and on
/// every later read and write: `SO_SNDTIMEO` also bounds a blocking `connect` on Linux, so a
/// server whose accept queue is full cannot hang the caller. Not traced.
pub fn connect_with_limit(addr: SocketAddr, limit: Duration) -> Result<OwnedFd, Errno> {
    let fd = socket::socket(
        family_of(addr.ip()),
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    set_timeouts(fd.as_fd(), limit)?;
    match addr {
        SocketAddr::V4(a) => socket::connect(fd.as_raw_fd(), &SockaddrIn::from(a))?,
        SocketAddr::V6(a) => socket::connect(fd.as_raw_fd(), &SockaddrIn6::from(a))?,
    }
    Ok(fd)
}

/// `shutdown(fd, SHUT_WR)`: send our end of file now, whoever else still holds the socket.
pub fn shutdown_write(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    socket::shutdown(fd.as_raw_fd(), socket::Shutdown::Write)
}
