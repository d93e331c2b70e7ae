//! The lab worker's epoll set: each fd registered once, as libuv's loop does.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Duration;

use crate::http;
use crate::sys::{self, Errno};

/// The token of the channel in the worker's epoll set; a listening socket's is
/// `SLOT + its slot`, a connection's `CONN + its fd`.
pub(super) const CHANNEL: u64 = 0;
pub(super) const SLOT: u64 = 1;
pub(super) const CONN: u64 = 1 << 32;

/// The worker's epoll set and what is in it. As libuv's loop does, each fd is registered
/// once, changed only when what we wait for changes (the channel wants `EPOLLOUT` while it
/// has bytes queued), and removed before it is closed (a connection from the primary, or a
/// shared listening socket, lives on in another process, and epoll would go on reporting
/// it). The changes are applied just before each wait, as `uv__io_poll` applies its
/// watcher queue.
pub(super) struct Watched {
    epoll: sys::Epoll,
    /// `Some(wants_write)` once the channel is registered.
    channel: Option<bool>,
    /// Which slots' sockets are registered, by slot.
    slots: Vec<bool>,
    /// What the last wait said: allocated once, reused every turn.
    ready: Vec<sys::Ready>,
}

impl Watched {
    /// A new epoll instance, with nothing in it yet.
    pub(super) fn new() -> Result<Self, Errno> {
        Ok(Self {
            epoll: sys::Epoll::new()?,
            channel: None,
            slots: Vec::new(),
            ready: Vec::new(),
        })
    }

    /// Register `fd` under `token`. A failure leaves it unregistered, to be tried next turn.
    pub(super) fn add(&self, fd: BorrowedFd<'_>, token: u64, writable: bool) -> bool {
        self.epoll.add(fd, token, writable).is_ok()
    }

    /// Tell epoll the channel's interest, if it changed since the last turn.
    pub(super) fn channel(&mut self, fd: BorrowedFd<'_>, wants_write: bool) {
        let ok = match self.channel {
            Some(w) if w == wants_write => return,
            Some(_) => self.epoll.modify(fd, CHANNEL, wants_write).is_ok(),
            None => self.add(fd, CHANNEL, wants_write),
        };
        if ok {
            self.channel = Some(wants_write);
        }
    }

    /// Register slot `s`'s socket, the first time it has one.
    pub(super) fn slot(&mut self, s: usize, fd: BorrowedFd<'_>) {
        if self.slots.len() <= s {
            self.slots.resize(s + 1, false);
        }
        if !self.slots[s] {
            self.slots[s] = self.add(fd, SLOT + s as u64, false);
        }
    }

    /// Register a connection.
    pub(super) fn conn(&self, conn: &http::Conn) {
        let _ = self.add(conn.fd.as_fd(), conn_token(conn), false);
    }

    /// Remove a connection before it closes.
    pub(super) fn forget(&self, conn: &http::Conn) {
        let _ = self.epoll.delete(conn.fd.as_fd());
    }

    /// Wait for the next event (at most `timeout`). An error reads as "nothing ready".
    pub(super) fn wait(&mut self, timeout: Duration) {
        if self.epoll.wait(timeout, &mut self.ready).is_err() {
            self.ready.clear();
        }
    }

    /// Whether the last wait found `token` readable.
    pub(super) fn readable(&self, token: u64) -> bool {
        self.ready.iter().any(|r| r.token == token && r.readable)
    }

    /// What the last wait said about `token`.
    pub(super) fn get(&self, token: u64) -> sys::Ready {
        let found = self.ready.iter().find(|r| r.token == token);
        found.copied().unwrap_or_default()
    }
}

/// A connection's token: its fd is unique among our open fds.
pub(super) fn conn_token(conn: &http::Conn) -> u64 {
    CONN + u64::try_from(conn.fd.as_raw_fd()).unwrap_or(0)
}
