//! Mirror of [`lib/internal/cluster/round_robin_handle.js`](https://github.com/nodejs/node/blob/v24.22.3/lib/internal/cluster/round_robin_handle.js#L17):
//! the primary owns the one listening socket, accepts every connection itself and hands each
//! one to a worker over IPC.
//!
//! "Round robin" is not a modulo over worker ids. It is an idle queue: a worker that is given
//! a connection leaves the queue until it answers `{accepted}`, then rejoins at the back. So at
//! most one connection is in flight per worker, and idle workers are served first in, first
//! out. Under sequential load that looks like a strict rotation.
//!
//! This type keeps the bookkeeping and the `newconn` message; it returns [`Handoff`]s and the
//! primary's event loop does the sending (Node calls `sendHelper` from `handoff`, with a
//! callback that is our [`NewConnCallback`]).

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::sys::Errno;

use super::message::{Act, ServerQuery};
use super::utils;
use crate::framing::{Control, HandleType};
use crate::net::{ListenStep, PipeOptions, Server};
use crate::pipe_wrap::Libuv;

/// The most accepted connections one round-robin socket keeps waiting for a free worker:
/// 512. At the bound the primary stops accepting on that socket (the event loop no longer
/// watches it) until a worker takes one, so the rest wait in the kernel's accept queue,
/// which the listen backlog bounds (Node asks for 511, the kernel caps it at
/// `net.core.somaxconn`); past that, the kernel drops new SYNs and clients retry.
///
/// Not Node: Node's `handles` queue has no bound. A worker that never answers its `newconn`
/// stays busy, and with every worker busy a Node primary accepts every connection the
/// kernel completes, one fd each, until `accept` fails with `EMFILE` for every socket it
/// has. Why 512: the same order as the backlog in front of it, so the primary holds at most
/// about as many connections as the kernel does; far above an honest run, where each worker
/// takes its connection within a round trip and the queue grows only while every worker is
/// busy (the benchmark's most clients, 256 at once, cannot fill it); and well under the
/// usual 1024 fds a process may open.
pub(crate) const MAX_UNDELIVERED: usize = 512;

/// A connection to give to a worker: the primary sends it as `newconn` + fd.
#[derive(Debug)]
pub(crate) struct Handoff {
    pub worker: u32,
    pub conn: OwnedFd,
}

/// What `handoff`'s callback needs when the worker's `{accepted}` comes back.
#[derive(Debug)]
pub(crate) struct NewConnCallback {
    pub worker: u32,
    /// The handle's key (shared, not copied: one callback per connection).
    pub key: Rc<str>,
    /// The primary's copy of the connection: closed on `accepted: true`, handed to another
    /// worker on `false`.
    pub conn: Rc<OwnedFd>,
}

// ANCHOR: newconn_line
/// A key's `newconn` line, rendered once. Every connection sends the same bytes but for its
/// `seq`, so per connection only that number is written: no JSON is built. (Node builds the
/// object each time; the bytes on the wire are the same.)
#[derive(Debug)]
pub(crate) struct NewConnLine {
    /// `{"cmd":"NODE_HANDLE","type":"net.Native","msg":{"cmd":"NODE_CLUSTER","act":"newconn","key":"K","seq":`
    head: Vec<u8>,
}

impl NewConnLine {
    fn new(key: &str) -> Self {
        // Rendered by serde itself, so the key is escaped exactly as any message would be;
        // `seq` 0 marks where the number goes.
        let msg = utils::with_seq(&Act::Newconn { key: key.into() }, 0);
        let ty = HandleType::NetNative;
        let line = Control::Handle { ty, msg }.to_line();
        let head = line.strip_suffix(b"0}}").expect("seq is the last field");
        Self {
            head: head.to_vec(),
        }
    }

    /// The whole line for one connection (without its `\n`).
    pub(crate) fn line(&self, seq: u64) -> Vec<u8> {
        use std::io::Write as _;
        let mut line = Vec::with_capacity(self.head.len() + 24);
        line.extend_from_slice(&self.head);
        let _ = write!(line, "{seq}}}}}");
        line
    }
}
// ANCHOR_END: newconn_line

/// The primary's listening socket for one key, and who shares it.
#[derive(Debug)]
pub(crate) struct RoundRobinHandle {
    pub key: Rc<str>,
    /// `handle.data`: the first worker's `data`, sent to every worker (set by the primary).
    pub data: serde_json::Value,
    /// Which handle this is, among all made in this process: a key can be dropped and made
    /// again, with a new socket, and the event loop must tell the two apart.
    serial: u64,
    /// This key's `newconn` line.
    pub newconn: NewConnLine,
    /// The stolen `server._handle`: the primary's real listening socket.
    server: Server,
    /// What `getsockname` says of it; none for a pipe (a `Pipe` has no `getsockname`, so
    /// the reply has no `sockname`).
    sockname: Option<SocketAddr>,
    /// `all`: every worker using this handle, by id.
    all: Vec<u32>,
    /// `free`: idle workers; the order is the rotation.
    free: VecDeque<u32>,
    /// `handles`: accepted connections no worker has taken yet (at most
    /// [`MAX_UNDELIVERED`] from `accept`; a refused one may come back on top).
    handles: VecDeque<OwnedFd>,
}

impl RoundRobinHandle {
    // ANCHOR: new
    /// The constructor: an ordinary `net.Server.listen` *in the primary* (so the full bind and
    /// listen of chapter 1), whose handle is then kept for accepting. Bind errors come back
    /// as the errno the primary will send to the worker. No address (a worker's `listen(port)`)
    /// is `::`, or `0.0.0.0` without IPv6 ([`crate::net::no_host_address`]).
    pub(crate) fn new(
        key: &str,
        address: Option<IpAddr>,
        port: u16,
        backlog: i32,
    ) -> Result<Self, Errno> {
        let mut server = Server::new("primary");
        let sockname = match address {
            Some(address) => server.listen2(address, port, backlog),
            None => server.listen2_no_host(port, backlog),
        };
        let sockname = sockname.map_err(|e| e.raw_errno())?;
        Ok(Self::listening(key, server, Some(sockname)))
    }
    // ANCHOR_END: new

    // ANCHOR: new_pipe
    /// The constructor for a pipe: `server.listen({ path, backlog, readableAll, writableAll })`
    /// in the primary, with what the worker's query says, so the primary binds the socket
    /// file, listens, and (round robin only) applies `readableAll`/`writableAll`.
    pub(crate) fn new_pipe(
        key: &str,
        path: &str,
        q: &ServerQuery,
        libuv: Libuv,
    ) -> Result<Self, Errno> {
        let mut opts = PipeOptions::new(path);
        opts.backlog = q.backlog.unwrap_or(0);
        opts.readable_all = q.readable_all == Some(true);
        opts.writable_all = q.writable_all == Some(true);
        opts.libuv = libuv;
        let mut server = Server::new("primary");
        match server.listen_pipe(&opts) {
            ListenStep::Listening(_) => Ok(Self::listening(key, server, None)),
            ListenStep::Failed(e) => Err(e.raw_errno()),
            ListenStep::AskPrimary(_) => Err(Errno::EINVAL), // not in a primary
        }
    }
    // ANCHOR_END: new_pipe

    /// The handle, once its server listens.
    fn listening(key: &str, server: Server, sockname: Option<SocketAddr>) -> Self {
        static SERIAL: AtomicU64 = AtomicU64::new(0);
        Self {
            key: Rc::from(key),
            data: serde_json::Value::Null,
            serial: SERIAL.fetch_add(1, Ordering::Relaxed),
            newconn: NewConnLine::new(key),
            server,
            sockname,
            all: Vec::new(),
            free: VecDeque::new(),
            handles: VecDeque::new(),
        }
    }

    /// This handle's number (see the field).
    pub(crate) fn serial(&self) -> u64 {
        self.serial
    }

    /// The listening socket, for the primary's accept loop.
    pub(crate) fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.server.listening_fd()
    }

    /// `sockname` in the reply: what `getsockname` says of the primary's socket (TCP).
    pub(crate) fn sockname(&self) -> Option<SocketAddr> {
        self.sockname
    }

    // ANCHOR: add
    /// `add(worker, send)`: remember the worker; the reply carries our address. Then
    /// `handoff(worker)` so the new worker takes a waiting connection or joins the idle queue.
    pub(crate) fn add(&mut self, worker: u32) -> Option<Handoff> {
        assert!(!self.all.contains(&worker), "worker added twice");
        self.all.push(worker);
        self.handoff(worker)
    }
    // ANCHOR_END: add

    // ANCHOR: remove
    /// `remove(worker)`: true when it was the last user; then queued connections are closed
    /// and so is the listening socket, and the primary forgets the key.
    pub(crate) fn remove(&mut self, worker: u32) -> bool {
        let Some(i) = self.all.iter().position(|&w| w == worker) else {
            return false;
        };
        self.all.remove(i);
        self.free.retain(|&w| w != worker);
        if !self.all.is_empty() {
            return false;
        }
        self.handles.clear();
        self.server.close();
        true
    }
    // ANCHOR_END: remove

    // ANCHOR: distribute
    /// `distribute(err, handle)`: queue the connection, and wake the first idle worker.
    pub(crate) fn distribute(&mut self, conn: OwnedFd) -> Option<Handoff> {
        self.handles.push_back(conn);
        let worker = self.free.pop_front()?;
        self.handoff(worker)
    }

    /// `handoff(worker)`: give the worker the oldest waiting connection, or put it back in the
    /// idle queue if there is none.
    pub(crate) fn handoff(&mut self, worker: u32) -> Option<Handoff> {
        if !self.all.contains(&worker) {
            return None; // the worker is closing, or has closed, the server
        }
        let Some(conn) = self.handles.pop_front() else {
            self.free.push_back(worker);
            return None;
        };
        Some(Handoff { worker, conn })
    }
    // ANCHOR_END: distribute

    // ANCHOR: on_reply
    /// The worker's `{accepted}` answer to a `newconn`: close our copy if it took the
    /// connection, re-queue it for someone else if not. Either way the worker is free again.
    /// At most two hand-offs follow: the refused connection's, and this worker's next one.
    pub(crate) fn on_reply(
        &mut self,
        worker: u32,
        conn: OwnedFd,
        accepted: bool,
    ) -> [Option<Handoff>; 2] {
        let refused = match accepted {
            true => {
                drop(conn); // close(2): the worker has its own copy now
                None
            }
            false => self.distribute(conn),
        };
        [refused, self.handoff(worker)]
    }
    // ANCHOR_END: on_reply

    /// Whether [`MAX_UNDELIVERED`] connections wait for a worker: then the primary accepts no
    /// more on this socket until one is taken.
    pub(crate) fn is_full(&self) -> bool {
        self.handles.len() >= MAX_UNDELIVERED
    }

    /// How many accepted connections wait for a worker.
    pub(crate) fn waiting(&self) -> usize {
        self.handles.len()
    }

    /// Whether the worker uses this handle.
    pub(crate) fn contains(&self, worker: u32) -> bool {
        self.all.contains(&worker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::Control;

    #[test]
    fn a_prerendered_newconn_is_what_send_handle_would_write() {
        for key in [
            "127.0.0.1:0:4:undefined:0",
            "null:8000:6:undefined:1",
            "odd \"key\" \\ \u{1} é:1:4:undefined:0",
        ] {
            let (msg, seq) = utils::envelope(&Act::Newconn { key: key.into() });
            let ty = HandleType::NetNative;
            let generic = Control::Handle { ty, msg }.to_line();
            assert_eq!(NewConnLine::new(key).line(seq), generic);
        }
    }
}
