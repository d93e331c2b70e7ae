//! Waiting for an fd to become ready.

use std::os::fd::{BorrowedFd, RawFd};
use std::time::Duration;

use nix::errno::Errno;

/// `poll(2)` over a set of fds; returns the revents per entry. `EINTR` counts as "nothing
/// ready" so the caller's loop simply goes round again (deliberately not `retry`: a loop
/// that waits must see the Ctrl-C flag that the interrupting signal set).
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
    /// as in [`poll`], and deliberately is not retried: the caller's loop must see the flag
    /// that Ctrl-C set.
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
