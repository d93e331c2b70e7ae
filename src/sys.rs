//! The one place that talks to the kernel.
//!
//! Node never calls `socket(2)` itself: libuv does, in `src/unix/tcp.c`, `src/unix/stream.c`
//! and `src/unix/process.c`. This file plays libuv's part for our mirror. Every other module
//! asks here for a socket, a bind, a `sendmsg` with `SCM_RIGHTS`, and so on, which keeps all
//! `unsafe` and all errno handling in one file.
//!
//! The functions that a chapter wants to show (socket, setsockopt, bind, listen, accept4,
//! getsockname) print themselves as a syscall line through [`crate::trace`], in the form
//! `strace` would use, so a reader sees exactly which process made which call.

use std::io::IoSlice;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{
    self, AddressFamily, Backlog, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag,
    SockType, SockaddrIn, SockaddrIn6, SockaddrStorage, sockopt,
};

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
    let res = loop {
        match socket::accept4(fd.as_raw_fd(), flags) {
            Err(Errno::EINTR) => continue,
            other => break other,
        }
    };
    // SAFETY: accept4 just returned this fd to us and nobody else owns it.
    let res = res.map(|raw| unsafe { OwnedFd::from_raw_fd(raw) });
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
    let res = loop {
        match socket::sendmsg::<()>(chan.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None) {
            Err(Errno::EINTR) => continue,
            other => break other,
        }
    };
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
    loop {
        match socket::send(chan.as_raw_fd(), bytes, MsgFlags::MSG_NOSIGNAL) {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
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
    let msg = loop {
        match socket::recvmsg::<()>(
            chan.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg_space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(Errno::EINTR) => continue,
            other => break other?,
        }
    };
    let mut fds = Vec::new();
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(raw) = cmsg {
            // SAFETY: SCM_RIGHTS just installed these fds in our table; we are their only owner.
            fds.extend(raw.into_iter().map(|r| unsafe { OwnedFd::from_raw_fd(r) }));
        }
    }
    if !fds.is_empty() && trace::syscalls_enabled() {
        // Only the reads that bring an fd are worth a line: the same socket, a new number.
        let got: Vec<String> = fds.iter().map(|f| f.as_raw_fd().to_string()).collect();
        let call = format!("recvmsg({}, MSG_CMSG_CLOEXEC)", chan.as_raw_fd());
        let shown = format!("{} + SCM_RIGHTS [{}]", msg.bytes, got.join(", "));
        trace::syscall(&call, &shown);
    }
    Ok(Received {
        len: msg.bytes,
        fds,
        truncated: msg.flags.contains(MsgFlags::MSG_CTRUNC),
    })
}

/// `read(2)` that retries on `EINTR`.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize, Errno> {
    loop {
        match nix::unistd::read(fd, buf) {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

/// `write(2)` that retries on `EINTR`.
pub fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> Result<usize, Errno> {
    loop {
        match nix::unistd::write(fd, buf) {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

/// `recvfrom(2)` on a UDP socket.
/// A datagram and who sent it, read with `recvmsg(2)` as libuv's `uv__udp_recvmsg` does.
pub fn recv_from(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<(usize, Option<SocketAddr>), Errno> {
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let msg =
        socket::recvmsg::<SockaddrStorage>(fd.as_raw_fd(), &mut iov, None, MsgFlags::empty())?;
    let from = msg.address.and_then(|s| {
        s.as_sockaddr_in()
            .map(|a| SocketAddr::V4((*a).into()))
            .or_else(|| s.as_sockaddr_in6().map(|a| SocketAddr::V6((*a).into())))
    });
    let shown = match from {
        Some(a) => format!("{} from {}", msg.bytes, show_addr(a)),
        None => msg.bytes.to_string(),
    };
    trace::syscall(&format!("recvmsg({})", fd.as_raw_fd()), &shown);
    Ok((msg.bytes, from))
}

/// A datagram to `to`, with `sendmsg(2)` as libuv's `uv__udp_sendmsg` does.
pub fn send_to(fd: BorrowedFd<'_>, buf: &[u8], to: SocketAddr) -> Result<usize, Errno> {
    let iov = [IoSlice::new(buf)];
    match to {
        SocketAddr::V4(a) => {
            let addr = SockaddrIn::from(a);
            socket::sendmsg(fd.as_raw_fd(), &iov, &[], MsgFlags::empty(), Some(&addr))
        }
        SocketAddr::V6(a) => {
            let addr = SockaddrIn6::from(a);
            socket::sendmsg(fd.as_raw_fd(), &iov, &[], MsgFlags::empty(), Some(&addr))
        }
    }
}

/// Set `SO_RCVTIMEO`/`SO_SNDTIMEO` so a blocking client socket can never hang a test.
pub fn set_timeouts(fd: BorrowedFd<'_>, timeout: Duration) -> Result<(), Errno> {
    let tv = nix::sys::time::TimeVal::new(timeout.as_secs() as _, timeout.subsec_micros() as _);
    socket::setsockopt(&fd, sockopt::ReceiveTimeout, &tv)?;
    socket::setsockopt(&fd, sockopt::SendTimeout, &tv)
}

/// `poll(2)` over a set of fds; returns the revents per entry. `EINTR` counts as "nothing
/// ready" so the caller's loop simply goes round again.
pub fn poll(fds: &[(BorrowedFd<'_>, bool)], timeout: Duration) -> Result<Vec<PollReady>, Errno> {
    use nix::poll::{PollFd, PollFlags, PollTimeout};
    let mut pfds: Vec<PollFd<'_>> = fds
        .iter()
        .map(|(fd, want_write)| {
            let mut flags = PollFlags::POLLIN;
            if *want_write {
                flags |= PollFlags::POLLOUT;
            }
            PollFd::new(*fd, flags)
        })
        .collect();
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
    match nix::poll::poll(&mut pfds, timeout) {
        Ok(_) => {}
        Err(Errno::EINTR) => {}
        Err(e) => return Err(e),
    }
    Ok(pfds
        .iter()
        .map(|p| {
            let r = p.revents().unwrap_or(PollFlags::empty());
            PollReady {
                readable: r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR),
                writable: r.intersects(PollFlags::POLLOUT | PollFlags::POLLERR),
            }
        })
        .collect())
}

/// What `poll` said about one fd.
#[derive(Debug, Clone, Copy, Default)]
pub struct PollReady {
    pub readable: bool,
    pub writable: bool,
}

/// A `poll(2)` set that is filled again before every wait and keeps its memory, so an event
/// loop that turns once per connection allocates nothing to wait. (The fds are plain
/// numbers: the caller keeps each one open from [`PollSet::push`] until the next
/// [`PollSet::clear`].)
#[derive(Debug, Default)]
pub struct PollSet {
    fds: Vec<libc::pollfd>,
}

impl PollSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forget the previous set (its memory stays).
    pub fn clear(&mut self) {
        self.fds.clear();
    }

    /// Watch `fd` for reading, and for writing too if `want_write`.
    pub fn push(&mut self, fd: RawFd, want_write: bool) {
        let mut events = libc::POLLIN;
        if want_write {
            events |= libc::POLLOUT;
        }
        self.fds.push(libc::pollfd {
            fd,
            events,
            revents: 0,
        });
    }

    /// How many fds are in the set.
    pub fn len(&self) -> usize {
        self.fds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }

    /// Wait (at most `timeout`) until one of them is ready. `EINTR` counts as "nothing ready",
    /// as in [`poll`].
    pub fn wait(&mut self, timeout: Duration) -> Result<(), Errno> {
        for p in &mut self.fds {
            p.revents = 0;
        }
        let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
        // SAFETY: the pointer and length describe our own Vec of pollfd, which poll only
        // reads and writes in place; the fds are integers, checked by the kernel.
        let n = unsafe { libc::poll(self.fds.as_mut_ptr(), self.fds.len() as libc::nfds_t, ms) };
        match Errno::result(n) {
            Ok(_) | Err(Errno::EINTR) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// What the last [`PollSet::wait`] said about entry `i` (nothing, for an `i` not there).
    pub fn ready(&self, i: usize) -> PollReady {
        let r = self.fds.get(i).map_or(0, |p| p.revents);
        PollReady {
            readable: r & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0,
            writable: r & (libc::POLLOUT | libc::POLLERR) != 0,
        }
    }
}

/// Runs in a freshly forked worker, between `fork` and `exec`: put the channel on `target`
/// (Node's fd 3) without `FD_CLOEXEC`, let no other fd through the exec, and ask the kernel
/// to kill us if the primary dies (a backstop for the channel EOF that normally ends a worker).
///
/// Only async-signal-safe calls are allowed here.
pub fn prepare_worker_child(channel: RawFd, target: RawFd, parent: u32) -> std::io::Result<()> {
    // SAFETY: dup2, fcntl, close_range, prctl and getppid are async-signal-safe syscalls
    // that take plain integers.
    unsafe {
        if channel == target {
            if libc::fcntl(target, libc::F_SETFD, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
        } else if libc::dup2(channel, target) == -1 {
            return Err(std::io::Error::last_os_error());
        }
        // Nothing but stdio and the channel may reach the worker, not even fds our own parent
        // forgot to mark close-on-exec: mark everything above the channel (Linux >= 5.11;
        // older kernels just skip this).
        let _ = libc::syscall(
            libc::SYS_close_range,
            target + 1,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::getppid() as u32 != parent {
            libc::_exit(0); // the primary died before we could ask
        }
    }
    Ok(())
}

/// `kill(2)`; a process that is already gone is not an error here.
pub fn kill(pid: u32, signal: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal);
}

/// `SIGKILL` for 9.
pub fn signal_name(signo: i32) -> String {
    nix::sys::signal::Signal::try_from(signo)
        .map(|s| format!("{s:?}"))
        .unwrap_or_else(|_| signo.to_string())
}

/// [`poll`] over raw fds that the caller keeps open for the duration of the call.
pub fn poll_raw(fds: &[(RawFd, bool)], timeout: Duration) -> Result<Vec<PollReady>, Errno> {
    // SAFETY: every fd belongs to an object the caller holds across this call, so each
    // stays open while it is borrowed here.
    let borrowed: Vec<(BorrowedFd<'_>, bool)> = fds
        .iter()
        .map(|&(fd, w)| (unsafe { BorrowedFd::borrow_raw(fd) }, w))
        .collect();
    poll(&borrowed, timeout)
}

static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Ctrl-C and SIGTERM set a flag (and interrupt `poll`) instead of killing the primary at
/// once, so it can stop its workers and reap them before it exits.
pub fn install_interrupt_handler() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let action = SigAction::new(
        SigHandler::Handler(on_interrupt),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        let _ = unsafe { sigaction(sig, &action) };
    }
}

/// Whether Ctrl-C or SIGTERM arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::Relaxed)
}

// ---------------------------------------------------------------------------------------
// Processes without exec, for chapter 9's models of what lies beneath Node
// (`src/os_models/`). Node itself never does this: it forks *and* execs a fresh `node`.

/// What `fork(2)` returned, seen from the process that is reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    /// This is the new process.
    Child,
    /// This is the old process; the new one has this pid.
    Parent(u32),
}

/// How many threads this process has (`Threads:` in `/proc/self/status`).
pub fn thread_count() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
}

/// `fork(2)` without `exec`, and only from a process that has exactly one thread: in a
/// threaded process the child may inherit a lock that another thread held, and deadlock.
/// Refuses with `EDEADLK` otherwise (or when `/proc` cannot say). The parent prints the
/// syscall line; the child prints nothing.
pub fn fork_single_threaded() -> Result<Forked, Errno> {
    if thread_count() != Some(1) {
        trace::syscall_skipped("fork()", "this process has more than one thread");
        return Err(Errno::EDEADLK);
    }
    // SAFETY: the process has one thread (checked just above), so the child's copy of
    // memory holds no lock that some other thread was in the middle of using.
    let res = unsafe { nix::unistd::fork() };
    match res {
        Ok(nix::unistd::ForkResult::Child) => Ok(Forked::Child),
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            trace::syscall("fork()", &child.as_raw().to_string());
            Ok(Forked::Parent(child.as_raw() as u32))
        }
        Err(e) => {
            trace::syscall("fork()", &errno_result(e));
            Err(e)
        }
    }
}

/// `_exit(2)`: end a forked child at once, without running the destructors and exit hooks
/// of the parent's state that the child merely copied.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit takes an integer and never returns.
    unsafe { libc::_exit(code) }
}

/// In a forked child: ask the kernel to `SIGKILL` us if the parent dies, so no child can
/// outlive a parent that crashed (and exit at once if it is already gone).
pub fn die_with_parent(parent: u32) {
    // SAFETY: prctl and getppid take plain integers.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::getppid() as u32 != parent {
            libc::_exit(0);
        }
    }
}

/// How a child ended, as `waitpid(2)` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildExit {
    Code(i32),
    Signal(String),
}

impl std::fmt::Display for ChildExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChildExit::Code(c) => write!(f, "exited with code {c}"),
            ChildExit::Signal(s) => write!(f, "killed by {s}"),
        }
    }
}

/// `waitpid(pid, WNOHANG)` until the child has ended or `limit` has passed (`Ok(None)`).
/// Reaping is what frees a dead child's entry in the process table: without it, a zombie.
pub fn waitpid_limit(pid: u32, limit: Duration, traced: bool) -> Result<Option<ChildExit>, Errno> {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    let start = std::time::Instant::now();
    let target = nix::unistd::Pid::from_raw(pid as i32);
    loop {
        let status = match waitpid(target, Some(WaitPidFlag::WNOHANG)) {
            Err(Errno::EINTR) => continue,
            Err(e) => {
                if traced {
                    trace::syscall(&format!("waitpid({pid})"), &errno_result(e));
                }
                return Err(e);
            }
            Ok(s) => s,
        };
        let exit = match status {
            WaitStatus::Exited(_, code) => ChildExit::Code(code),
            WaitStatus::Signaled(_, sig, _) => ChildExit::Signal(format!("{sig:?}")),
            _ if start.elapsed() < limit => {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
            _ => return Ok(None),
        };
        if traced {
            trace::syscall(&format!("waitpid({pid})"), &format!("{pid} ({exit})"));
        }
        return Ok(Some(exit));
    }
}

/// `kill(2)`, printed as a syscall line.
pub fn kill_traced(pid: u32, signal: nix::sys::signal::Signal) -> Result<(), Errno> {
    let res = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal);
    trace::syscall(&format!("kill({pid}, {signal:?})"), &unit_result(&res));
    res
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

/// `waitpid(pid, WUNTRACED)` until the child has actually stopped (a `SIGSTOP` is only
/// queued when `kill` returns), at most `limit`. Returns whether it stopped. A syscall line.
pub fn wait_until_stopped(pid: u32, limit: Duration) -> Result<bool, Errno> {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    let start = std::time::Instant::now();
    let target = nix::unistd::Pid::from_raw(pid as i32);
    let flags = WaitPidFlag::WUNTRACED | WaitPidFlag::WNOHANG;
    loop {
        match waitpid(target, Some(flags)) {
            Err(Errno::EINTR) => continue,
            Err(e) => {
                trace::syscall(&format!("waitpid({pid}, WUNTRACED)"), &errno_result(e));
                return Err(e);
            }
            Ok(WaitStatus::Stopped(_, sig)) => {
                let call = format!("waitpid({pid}, WUNTRACED)");
                trace::syscall(&call, &format!("{pid} (stopped by {sig:?})"));
                return Ok(true);
            }
            Ok(_) if start.elapsed() < limit => std::thread::sleep(Duration::from_millis(1)),
            Ok(_) => return Ok(false),
        }
    }
}

// ---------------------------------------------------------------------------------------
// For the benchmark (`src/bench/`): a client socket with a time limit on every step, reaping
// whichever child ended, and the unit of the CPU times in `/proc/PID/stat`.

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

/// `waitpid(-1, WNOHANG)`: collect one child that has ended, if there is one; its pid.
pub fn reap_any() -> Option<u32> {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Err(Errno::EINTR) => continue,
            Ok(WaitStatus::StillAlive) | Err(_) => return None,
            Ok(status) => return status.pid().map(|p| p.as_raw() as u32),
        }
    }
}

/// How many clock ticks a second the CPU times in `/proc/PID/stat` count
/// (`sysconf(_SC_CLK_TCK)`, almost always 100).
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf takes an integer and returns one; it touches no memory of ours.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(hz).ok().filter(|&h| h > 0).unwrap_or(100)
}

// TEMPORARY: replaced by sys/poll.rs's Epoll at merge.
/// What one wait said about one registered fd.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ready {
    pub token: u64,
    pub readable: bool,
    pub writable: bool,
}

/// An epoll instance (level-triggered).
pub struct Epoll {
    fd: OwnedFd,
    buf: Vec<libc::epoll_event>,
}

impl Epoll {
    pub fn new() -> Result<Self, Errno> {
        // SAFETY: plain syscall.
        let fd = Errno::result(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: fresh fd we own.
        let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        Ok(Self {
            fd,
            buf: vec![libc::epoll_event { events: 0, u64: 0 }; 64],
        })
    }
    fn ctl(&self, op: i32, fd: BorrowedFd<'_>, token: u64, writable: bool) -> Result<(), Errno> {
        let mut events = (libc::EPOLLIN | libc::EPOLLRDHUP) as u32;
        if writable {
            events |= libc::EPOLLOUT as u32;
        }
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: valid pointers.
        Errno::result(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd.as_raw_fd(), &mut ev) })
            .map(drop)
    }
    pub fn add(&self, fd: BorrowedFd<'_>, token: u64, writable: bool) -> Result<(), Errno> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, token, writable)
    }
    pub fn modify(&self, fd: BorrowedFd<'_>, token: u64, writable: bool) -> Result<(), Errno> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, token, writable)
    }
    pub fn delete(&self, fd: BorrowedFd<'_>) -> Result<(), Errno> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0, false)
    }
    pub fn wait(&mut self, timeout: Duration, out: &mut Vec<Ready>) -> Result<(), Errno> {
        out.clear();
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: buffer is ours.
        let n = unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                self.buf.as_mut_ptr(),
                self.buf.len() as i32,
                ms,
            )
        };
        let n = match Errno::result(n) {
            Ok(n) => n as usize,
            Err(Errno::EINTR) => 0,
            Err(e) => return Err(e),
        };
        for ev in &self.buf[..n] {
            let e = ev.events as i32;
            out.push(Ready {
                token: ev.u64,
                readable: e & (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR | libc::EPOLLRDHUP)
                    != 0,
                writable: e & (libc::EPOLLOUT | libc::EPOLLERR) != 0,
            });
        }
        Ok(())
    }
}
