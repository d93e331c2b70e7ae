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
    self, AddressFamily, Backlog, ControlMessage, MsgFlags, SockFlag, SockType, SockaddrIn,
    SockaddrIn6, SockaddrStorage, sockopt,
};

use super::{fd_number, retry, show_addr, trace_call, zero};
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
    let args = format!(
        "{}, {ty_name}|SOCK_NONBLOCK|SOCK_CLOEXEC, 0",
        family_name(ip)
    );
    trace_call(&trace::Syscall::new("socket", &args), fd_number(&res));
    res
}

/// `setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, 1)`: libuv sets it on every TCP socket it binds.
pub fn set_reuseaddr(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    let res = socket::setsockopt(&fd, sockopt::ReuseAddr, &true);
    let args = format!("{}, SOL_SOCKET, SO_REUSEADDR, [1]", fd.as_raw_fd());
    let call = trace::Syscall::new("setsockopt", &args).with_option("SO_REUSEADDR");
    trace_call(&call, zero(&res));
    res
}

/// `setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, 1)`: never used by Node v20; here for the
/// chapter that shows what the kernel can do without Node.
pub fn set_reuseport(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    let res = socket::setsockopt(&fd, sockopt::ReusePort, &true);
    let args = format!("{}, SOL_SOCKET, SO_REUSEPORT, [1]", fd.as_raw_fd());
    let call = trace::Syscall::new("setsockopt", &args).with_option("SO_REUSEPORT");
    trace_call(&call, zero(&res));
    res
}

/// `bind(2)` to an IP address and port.
pub fn bind(fd: BorrowedFd<'_>, addr: SocketAddr) -> Result<(), Errno> {
    let res = match addr {
        SocketAddr::V4(a) => socket::bind(fd.as_raw_fd(), &SockaddrIn::from(a)),
        SocketAddr::V6(a) => socket::bind(fd.as_raw_fd(), &SockaddrIn6::from(a)),
    };
    let args = format!("{}, {}", fd.as_raw_fd(), show_addr(addr));
    trace_call(&trace::Syscall::new("bind", &args), zero(&res));
    res
}

/// `listen(2)`. Node always asks for 511 unless the user gave a backlog.
pub fn listen(fd: BorrowedFd<'_>, backlog: i32) -> Result<(), Errno> {
    let backlog_arg = Backlog::new(backlog).unwrap_or(Backlog::MAXCONN);
    let res = socket::listen(&fd, backlog_arg);
    let args = format!("{}, {backlog}", fd.as_raw_fd());
    trace_call(&trace::Syscall::new("listen", &args), zero(&res));
    res
}

/// `accept4(2)` with `SOCK_NONBLOCK | SOCK_CLOEXEC`, as libuv's `uv__accept` does. Returns
/// `Ok(None)` when the accept queue is empty (`EAGAIN`), which is how a loser of a
/// SCHED_NONE wake-up race finds out it lost.
pub fn accept4(fd: BorrowedFd<'_>, traced: bool) -> Result<Option<OwnedFd>, Errno> {
    let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
    let res = retry(|| socket::accept4(fd, flags));
    if traced && trace::syscalls_enabled() && res.as_ref().err() != Some(&Errno::EAGAIN) {
        let args = format!("{}, SOCK_NONBLOCK|SOCK_CLOEXEC", fd.as_raw_fd());
        trace_call(&trace::Syscall::new("accept4", &args), fd_number(&res));
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
    let args = fd.as_raw_fd().to_string();
    let shown = res.map(|addr| format!("0 ({})", show_addr(addr)));
    trace_call(&trace::Syscall::new("getsockname", &args), shown);
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
    let args = match trace::syscalls_enabled() {
        true => format!(
            "{}, [{} bytes], SCM_RIGHTS [{fd}]",
            chan.as_raw_fd(),
            bytes.len()
        ),
        false => String::new(),
    };
    let call = trace::Syscall::new("sendmsg", &args);
    // Printed before the call: once it returns, the receiver may already be printing what it
    // got, and its line must come after ours. A result other than "all of it" gets a line too.
    if trace::syscalls_enabled() {
        trace_call(&call, Ok(bytes.len().to_string()));
    }
    let res = retry(|| {
        socket::sendmsg::<()>(chan.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None)
    });
    match res {
        Ok(n) if n == bytes.len() => {}
        Ok(n) => trace_call(
            &call,
            Ok(format!("{n} (short: the rest follows without the fd)")),
        ),
        Err(e) => trace_call(&call, Err(e)),
    }
    res
}

/// A plain `write` of channel bytes (`send` with `MSG_NOSIGNAL`, so a dead peer gives
/// `EPIPE` instead of killing us with `SIGPIPE`).
pub fn send(chan: BorrowedFd<'_>, bytes: &[u8]) -> Result<usize, Errno> {
    retry(|| socket::send(chan.as_raw_fd(), bytes, MsgFlags::MSG_NOSIGNAL))
}

/// How many fds one `recvmsg` on the channel has room for. The protocol sends one fd per
/// message and a read may bring a few messages; a peer that sends more than this in one
/// `sendmsg` gets its fds cut off (`MSG_CTRUNC`, see [`Received::truncated`]).
pub const FDS_PER_READ: usize = 4;

/// What one `recvmsg` on the channel brought: bytes, and any fds that rode along.
#[derive(Debug)]
pub struct Received {
    pub len: usize,
    /// Every fd the kernel installed for us, owned from the moment `recvmsg` returned, so
    /// that none can leak whatever the caller does next.
    pub fds: Vec<OwnedFd>,
    /// The kernel cut the control data short (`MSG_CTRUNC`): the peer sent more fds than
    /// [`FDS_PER_READ`], the rest were never installed, and which line each fd that did
    /// arrive belongs to is lost. The caller drops `fds` (closing them) and treats the peer
    /// as broken.
    pub truncated: bool,
}

/// Room for the control data of one read, in `u64`s so that the `cmsghdr`s in it are aligned.
type Control = [u64; CONTROL_WORDS];
// SAFETY: CMSG_SPACE only computes a size from its argument.
const CONTROL_BYTES: usize =
    unsafe { libc::CMSG_SPACE((FDS_PER_READ * std::mem::size_of::<RawFd>()) as u32) } as usize;
const CONTROL_WORDS: usize = CONTROL_BYTES.div_ceil(8);

/// `recvmsg(2)` with `MSG_CMSG_CLOEXEC`, room for [`FDS_PER_READ`] fds, as libuv's
/// `uv__read` reads an IPC pipe.
pub fn recvmsg(chan: BorrowedFd<'_>, buf: &mut [u8]) -> Result<Received, Errno> {
    let mut control: Control = [0; CONTROL_WORDS];
    let got = retry(|| recvmsg_raw(chan, buf, &mut control))?;
    // Owned before anything else happens: from here on, every fd closes on every path.
    let fds = take_fds(&control, got.control_len);
    let truncated = got.flags & libc::MSG_CTRUNC != 0;
    trace_recvmsg(chan, got.bytes, &fds, truncated);
    Ok(Received {
        len: got.bytes,
        fds,
        truncated,
    })
}

/// What the kernel said about one `recvmsg`, besides the bytes it wrote.
struct MsgHeader {
    bytes: usize,
    flags: libc::c_int,
    /// How much of the control buffer it filled.
    control_len: usize,
}

/// The call itself. (nix's `recvmsg` refuses to parse control data that the kernel cut
/// short, and the fds that did arrive would then leak: so this reads it with libc.)
fn recvmsg_raw(
    chan: BorrowedFd<'_>,
    buf: &mut [u8],
    control: &mut Control,
) -> Result<MsgHeader, Errno> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut hdr = msghdr_for(control.as_mut_ptr().cast(), std::mem::size_of::<Control>());
    hdr.msg_iov = &mut iov;
    hdr.msg_iovlen = 1;
    // SAFETY: every pointer in `hdr` points into our own `buf` and `control`, which outlive
    // the call, with their true lengths; the kernel writes only within them.
    let n = unsafe { libc::recvmsg(chan.as_raw_fd(), &mut hdr, libc::MSG_CMSG_CLOEXEC) };
    Ok(MsgHeader {
        bytes: usize::try_from(Errno::result(n)?).unwrap_or(0),
        flags: hdr.msg_flags,
        control_len: hdr.msg_controllen as usize,
    })
}

/// A `msghdr` with no name and no iovecs, and `len` bytes of control data at `control`.
fn msghdr_for(control: *mut libc::c_void, len: usize) -> libc::msghdr {
    // SAFETY: all zeroes is a valid msghdr (null pointers, zero lengths).
    let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
    hdr.msg_control = control;
    hdr.msg_controllen = len as _;
    hdr
}

/// Every fd of the `SCM_RIGHTS` messages in the first `len` bytes of `control`, owned. The
/// `CMSG_*` macros never step past `len`, even when the kernel cut the data short.
fn take_fds(control: &Control, len: usize) -> Vec<OwnedFd> {
    let len = len.min(std::mem::size_of::<Control>());
    let hdr = msghdr_for(control.as_ptr().cast_mut().cast(), len);
    let end = control.as_ptr() as usize + len;
    let mut fds = Vec::new();
    // SAFETY: `hdr` describes the part of our buffer that the kernel filled; CMSG_FIRSTHDR
    // returns a header within it, or null.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&hdr) };
    while !cmsg.is_null() {
        // SAFETY: a non-null header from the CMSG macros lies whole within the buffer.
        let head = unsafe { cmsg.read_unaligned() };
        if head.cmsg_level == libc::SOL_SOCKET && head.cmsg_type == libc::SCM_RIGHTS {
            let claimed = (cmsg as usize).saturating_add(head.cmsg_len as usize);
            fds.extend(rights(cmsg, claimed.min(end)));
        }
        // SAFETY: as for CMSG_FIRSTHDR: the next header within `len`, or null.
        cmsg = unsafe { libc::CMSG_NXTHDR(&hdr, cmsg) };
    }
    fds
}

/// The fds of one `SCM_RIGHTS` header, from its data up to `end`.
fn rights(cmsg: *const libc::cmsghdr, end: usize) -> Vec<OwnedFd> {
    // SAFETY: `cmsg` is a header within our buffer; CMSG_DATA only computes an address.
    let data = unsafe { libc::CMSG_DATA(cmsg) }.cast::<RawFd>();
    let n = end.saturating_sub(data as usize) / std::mem::size_of::<RawFd>();
    (0..n)
        .map(|i| {
            // SAFETY: fd `i` ends before `end`, within what the kernel wrote; read unaligned,
            // as CMSG_DATA promises no alignment.
            let raw = unsafe { data.add(i).read_unaligned() };
            // SAFETY: SCM_RIGHTS just installed this fd in our table; we are its only owner.
            unsafe { OwnedFd::from_raw_fd(raw) }
        })
        .collect()
}

/// Only the reads that bring an fd are worth a line: the same socket, a new number.
fn trace_recvmsg(chan: BorrowedFd<'_>, bytes: usize, fds: &[OwnedFd], truncated: bool) {
    if (fds.is_empty() && !truncated) || !trace::syscalls_enabled() {
        return;
    }
    let got: Vec<String> = fds.iter().map(|f| f.as_raw_fd().to_string()).collect();
    let args = format!("{}, MSG_CMSG_CLOEXEC", chan.as_raw_fd());
    let mut shown = format!("{bytes} + SCM_RIGHTS [{}]", got.join(", "));
    if truncated {
        shown.push_str(" + MSG_CTRUNC (more fds were sent; the rest are lost)");
    }
    trace_call(&trace::Syscall::new("recvmsg", &args), Ok(shown));
}

/// `sendmsg(2)` with any number of fds in one `SCM_RIGHTS`: what a peer that breaks the
/// protocol might do. Only tests need it.
#[cfg(test)]
pub(crate) fn sendmsg_with_fds(
    chan: BorrowedFd<'_>,
    bytes: &[u8],
    fds: &[RawFd],
) -> Result<usize, Errno> {
    let iov = [IoSlice::new(bytes)];
    let cmsg = [ControlMessage::ScmRights(fds)];
    socket::sendmsg::<()>(chan.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None)
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
    let args = fd.as_raw_fd().to_string();
    trace_call(&trace::Syscall::new("recvmsg", &args), Ok(shown));
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
    let args = raw.to_string();
    trace_call(&trace::Syscall::new("close", &args), Ok("0".to_string()));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// How many of this process's fds are `fd`'s socket. (Counting only these, not every
    /// entry of `/proc/self/fd`, keeps the count exact while other tests open and close fds
    /// in parallel threads.)
    fn copies_of(fd: BorrowedFd<'_>) -> usize {
        let me = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("link");
        std::fs::read_dir("/proc/self/fd")
            .expect("/proc/self/fd")
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|l| *l == me)
            .count()
    }

    #[test]
    fn fds_beyond_the_control_buffer_are_reported_and_none_leaks() {
        let (a, b) = socketpair().expect("socketpair");
        let (x, _y) = socketpair().expect("socketpair");
        let before = copies_of(x.as_fd());
        // Eight copies of x in one message: twice what one read has room for.
        let sent = [x.as_raw_fd(); 2 * FDS_PER_READ];
        sendmsg_with_fds(a.as_fd(), b"m", &sent).expect("sendmsg");
        let mut buf = [0u8; 16];
        let got = recvmsg(b.as_fd(), &mut buf).expect("recvmsg");
        assert!(got.truncated, "MSG_CTRUNC is reported");
        assert_eq!(got.len, 1);
        assert_eq!(
            got.fds.len(),
            FDS_PER_READ,
            "the ones that fit arrived, owned"
        );
        assert_eq!(copies_of(x.as_fd()), before + FDS_PER_READ);
        drop(got);
        assert_eq!(copies_of(x.as_fd()), before, "no fd leaked");
    }

    #[test]
    fn one_fd_arrives_whole() {
        let (a, b) = socketpair().expect("socketpair");
        let (x, _y) = socketpair().expect("socketpair");
        sendmsg_with_fd(a.as_fd(), b"line\n", x.as_raw_fd()).expect("sendmsg");
        let mut buf = [0u8; 16];
        let got = recvmsg(b.as_fd(), &mut buf).expect("recvmsg");
        assert_eq!((got.len, got.fds.len(), got.truncated), (5, 1, false));
        assert_eq!(&buf[..5], b"line\n");
    }
}
