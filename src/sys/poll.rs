//! Waiting until an fd is ready: epoll, as libuv's `uv__io_poll` (`src/unix/linux.c`) waits.
//!
//! libuv registers each fd once (`epoll_ctl` `EPOLL_CTL_ADD`), changes the registration when
//! what it waits for changes (`EPOLL_CTL_MOD`, e.g. a stream with bytes queued also wants
//! `EPOLLOUT`), removes it before the fd is closed (`EPOLL_CTL_DEL`), and waits with
//! `epoll_pwait` for at most 1024 events a turn. `strace -f node` shows exactly that, and so
//! does `strace` of our worker: [`Epoll`] is that loop's kernel half.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::epoll::{EpollCreateFlags, EpollEvent, EpollFlags};

/// What one wait said about one registered fd.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ready {
    /// The number the fd was registered with: how the caller knows which of its fds this is
    /// (epoll hands back `epoll_event.data`, never the fd itself).
    pub token: u64,
    /// Reading will not block: data, a connection to accept, end of file, or an error to
    /// collect (`EPOLLIN`, `EPOLLHUP`, `EPOLLERR`, `EPOLLRDHUP`).
    pub readable: bool,
    /// Writing will not block, or will fail at once (`EPOLLOUT`, `EPOLLERR`).
    pub writable: bool,
}

/// How many events one wait can return: libuv's `uv__io_poll` has room for 1024.
const EVENTS: usize = 1024;

/// An epoll instance (level-triggered), as libuv's loop uses.
#[derive(Debug)]
pub struct Epoll {
    /// The instance itself: an fd (CLOEXEC) that closes on drop.
    epoll: nix::sys::epoll::Epoll,
    /// Where the kernel writes what it found: allocated once, reused by every wait.
    events: Vec<EpollEvent>,
}

impl Epoll {
    /// `epoll_create1(EPOLL_CLOEXEC)`, as libuv's `uv__platform_loop_init`, moved to an fd
    /// number of 100 or more (see `QUIET_FDS`: the chapters follow the low numbers).
    pub fn new() -> Result<Self, Errno> {
        let mut epoll = Self::with_room(EVENTS)?;
        if let Ok(high) = move_up(&epoll.epoll.0) {
            epoll.epoll = nix::sys::epoll::Epoll(high);
        }
        Ok(epoll)
    }

    /// An instance whose waits return at most `room` events.
    fn with_room(room: usize) -> Result<Self, Errno> {
        let epoll = nix::sys::epoll::Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        Ok(Self {
            epoll,
            events: vec![EpollEvent::empty(); room.max(1)],
        })
    }

    /// Start watching `fd` (`EPOLL_CTL_ADD`): for reading, and for writing too if `writable`.
    pub fn add(&self, fd: BorrowedFd<'_>, token: u64, writable: bool) -> Result<(), Errno> {
        self.epoll.add(fd, interest(token, writable))
    }

    /// Change what `fd` is watched for (`EPOLL_CTL_MOD`), e.g. `EPOLLOUT` on or off as a
    /// queue of bytes to write fills or empties.
    pub fn modify(&self, fd: BorrowedFd<'_>, token: u64, writable: bool) -> Result<(), Errno> {
        self.epoll.modify(fd, &mut interest(token, writable))
    }

    /// Stop watching `fd` (`EPOLL_CTL_DEL`). Call it *before* closing an fd whose socket
    /// another process (or another fd of ours) still holds: epoll forgets an fd only when
    /// the last reference to its socket closes, and would go on reporting a number that
    /// is no longer ours.
    pub fn delete(&self, fd: BorrowedFd<'_>) -> Result<(), Errno> {
        self.epoll.delete(fd)
    }

    /// Wait at most `timeout`; fills `out` (cleared first) with the ready fds. EINTR returns Ok
    /// with `out` empty, so a caller's loop sees the interrupt flag (libuv goes round again
    /// by itself; our loops must notice Ctrl-C, so this wait is deliberately not retried).
    /// readable includes EPOLLHUP/EPOLLERR/EPOLLRDHUP; writable includes EPOLLERR.
    pub fn wait(&mut self, timeout: Duration, out: &mut Vec<Ready>) -> Result<(), Errno> {
        out.clear();
        let room = libc::c_int::try_from(self.events.len()).unwrap_or(libc::c_int::MAX);
        // SAFETY: the pointer and `room` describe our own buffer of `EpollEvent`s, which is
        // `repr(transparent)` over `libc::epoll_event`; the kernel writes at most `room` of
        // them. A null signal mask leaves ours as it is (what libuv passes, too).
        let n = unsafe {
            libc::epoll_pwait(
                self.epoll.0.as_raw_fd(),
                self.events.as_mut_ptr().cast(),
                room,
                millis(timeout),
                std::ptr::null(),
            )
        };
        match Errno::result(n) {
            Ok(n) => {
                let n = usize::try_from(n).unwrap_or(0).min(self.events.len());
                out.extend(self.events[..n].iter().map(ready));
                Ok(())
            }
            Err(Errno::EINTR) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Where a long-lived epoll fd goes: above the numbers a reader follows. The chapters tell
/// the story of fds by number (a worker's channel is fd 3, the socket it is handed is fd 4),
/// and an event loop's own fd is bookkeeping, not part of that story; Node's loop has its
/// fds too, and the book does not follow them either.
const QUIET_FDS: RawFd = 100;

/// A copy of `fd` at [`QUIET_FDS`] or above, close-on-exec (`F_DUPFD_CLOEXEC`); dropping the
/// original then frees its low number. Fails (and the caller keeps the original) if the
/// process may not have that many fds.
fn move_up(fd: &OwnedFd) -> Result<OwnedFd, Errno> {
    use nix::fcntl::{FcntlArg, fcntl};
    let raw = fcntl(fd, FcntlArg::F_DUPFD_CLOEXEC(QUIET_FDS))?;
    // SAFETY: fcntl just made this fd for us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// What to watch an fd for: `EPOLLIN`, plus `EPOLLOUT` if `writable` (level-triggered, as
/// libuv's watchers are).
fn interest(token: u64, writable: bool) -> EpollEvent {
    let mut flags = EpollFlags::EPOLLIN;
    if writable {
        flags |= EpollFlags::EPOLLOUT;
    }
    EpollEvent::new(flags, token)
}

/// One event as the caller wants it.
fn ready(e: &EpollEvent) -> Ready {
    let got = e.events();
    let readable =
        EpollFlags::EPOLLIN | EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR | EpollFlags::EPOLLRDHUP;
    Ready {
        token: e.data(),
        readable: got.intersects(readable),
        writable: got.intersects(EpollFlags::EPOLLOUT | EpollFlags::EPOLLERR),
    }
}

/// A timeout as epoll wants it: milliseconds, rounded up (a wait of 0.5 ms must still
/// wait), at most `i32::MAX`.
fn millis(timeout: Duration) -> libc::c_int {
    let ms = timeout.as_nanos().div_ceil(1_000_000);
    libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
}

/// Wait for one fd (a convenience built on Epoll, not a second implementation).
/// Not ready within `timeout` (or interrupted by a signal): a [`Ready`] with both flags false.
pub fn wait_one(fd: BorrowedFd<'_>, writable: bool, timeout: Duration) -> Result<Ready, Errno> {
    let mut epoll = Epoll::with_room(1)?;
    epoll.add(fd, 0, writable)?;
    let mut out = Vec::with_capacity(1);
    epoll.wait(timeout, &mut out)?;
    Ok(out.first().copied().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;
    use std::time::Instant;

    use super::*;
    use crate::sys;

    const SHORT: Duration = Duration::from_millis(20);

    #[test]
    fn nothing_to_read_then_a_write_makes_it_readable_with_its_token() {
        let (a, b) = sys::socketpair().expect("socketpair");
        let mut epoll = Epoll::new().expect("epoll");
        epoll.add(b.as_fd(), 42, false).expect("add");
        let mut out = vec![Ready::default()];
        epoll.wait(SHORT, &mut out).expect("wait");
        assert_eq!(out, [], "nothing sent yet, and `out` is cleared first");
        sys::send(a.as_fd(), b"x").expect("send");
        epoll.wait(SHORT, &mut out).expect("wait");
        let want = Ready {
            token: 42,
            readable: true,
            writable: false,
        };
        assert_eq!(out, [want]);
    }

    #[test]
    fn modify_adds_writable_and_delete_forgets_the_fd() {
        let (a, _b) = sys::socketpair().expect("socketpair");
        let mut epoll = Epoll::new().expect("epoll");
        let mut out = Vec::new();
        epoll.add(a.as_fd(), 7, false).expect("add");
        epoll.wait(SHORT, &mut out).expect("wait");
        assert_eq!(out, []);
        epoll.modify(a.as_fd(), 8, true).expect("modify");
        epoll.wait(SHORT, &mut out).expect("wait");
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].token, out[0].writable), (8, true));
        epoll.delete(a.as_fd()).expect("delete");
        epoll.wait(SHORT, &mut out).expect("wait");
        assert_eq!(out, []);
    }

    #[test]
    fn a_wait_with_nothing_ready_returns_after_its_timeout() {
        let (_a, b) = sys::socketpair().expect("socketpair");
        let start = Instant::now();
        let r = wait_one(b.as_fd(), false, SHORT).expect("wait_one");
        assert_eq!(r, Ready::default());
        assert!(start.elapsed() >= SHORT, "{:?}", start.elapsed());
        // Sub-millisecond timeouts are rounded up, not down to a non-blocking wait.
        assert_eq!(millis(Duration::from_micros(1)), 1);
        assert_eq!(millis(Duration::MAX), libc::c_int::MAX);
    }

    #[test]
    fn a_long_lived_instance_keeps_out_of_the_low_fd_numbers() {
        let epoll = Epoll::new().expect("epoll");
        assert!(epoll.epoll.0.as_raw_fd() >= QUIET_FDS);
    }

    #[test]
    fn wait_one_sees_end_of_file_as_readable() {
        let (a, b) = sys::socketpair().expect("socketpair");
        drop(a);
        let r = wait_one(b.as_fd(), false, SHORT).expect("wait_one");
        assert!(r.readable, "{r:?}");
    }
}
