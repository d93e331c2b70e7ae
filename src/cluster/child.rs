//! Mirror of [`lib/internal/cluster/child.js`](https://github.com/nodejs/node/blob/v24.22.3/lib/internal/cluster/child.js#L36):
//! the worker's side. It starts by saying `online`, asks the primary for servers
//! (`_getServer`), turns each answer into a handle (`rr()`: a fake one; `shared()`: the real
//! socket), answers `newconn` with `{accepted}`, and closes its servers on `disconnect`.
//!
//! [`Runtime`] is `cluster.worker` plus the process's channel. The program that uses it (the
//! lab's worker) owns the servers; the runtime tells it what the primary said, as
//! [`WorkerEvent`]s.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::sys::Errno;
use serde::{Deserialize as _, Serialize};
use serde_json::Value;

use super::NODE_UNIQUE_ID;
use super::message::{Accepted, Act, Port, QueryReply, ServerMessage, ServerQuery};
use super::path;
use super::utils::{self, Callbacks, Internal};
use crate::channel::{Channel, ChannelError, HandleType, Incoming};
use crate::sys;
use crate::trace;

static SET_UP: AtomicBool = AtomicBool::new(false);

/// How many `queryServer` requests may wait for their answers at once. A program that
/// listens this many times before the primary answers once has a bug; the bound keeps the
/// table from growing without end.
const MAX_PENDING_QUERIES: usize = 4096;

/// Whether `_setupWorker` ran in this process (it removes `NODE_UNIQUE_ID` from the
/// environment, but the process stays a worker, as Node's `cluster` module stays the child one).
pub(crate) fn is_set_up() -> bool {
    SET_UP.load(Ordering::Relaxed)
}

/// What the primary's answer to `queryServer` gave us.
#[derive(Debug)]
pub(crate) enum GotHandle {
    /// `rr()`: round robin; connections will come as `newconn`. What `net` needs to build
    /// its fake handle: the key, and the primary's address.
    RoundRobin {
        key: String,
        sockname: Option<SocketAddr>,
    },
    /// `shared()`: the primary's bound socket, ours to listen on (TCP) or read (UDP).
    Shared(OwnedFd),
}

/// What the runtime tells the program.
#[derive(Debug)]
pub(crate) enum WorkerEvent {
    /// The answer to `get_server(slot, ...)`.
    Server {
        slot: usize,
        key: String,
        result: Result<GotHandle, Errno>,
    },
    /// A round-robin connection for the server in `slot`, already accepted (`{accepted:true}`).
    Connection { fd: OwnedFd },
    /// The primary said `disconnect`: servers are closed; finish up and exit.
    Disconnect,
    /// The channel closed: the primary is gone. Node's worker exits with code 0.
    PrimaryGone,
    /// A user message from the primary.
    Message(Value),
}

/// What a `queryServer` reply must be matched with.
struct PendingQuery {
    slot: usize,
    indexes_key: String,
    index: u64,
    /// The query object itself: Node reuses it, with `act: 'listening'`, once listening.
    message: ServerMessage,
}

/// A cluster-managed server: where it lives in the program, and how it was asked for.
struct Registered {
    slot: usize,
    indexes_key: String,
    index: u64,
    message: ServerMessage,
}

/// `indexes`: per `address:port:addressType:fd`, the next index and the ones in use.
#[derive(Default)]
struct Indexes {
    next_index: u64,
    set: Vec<u64>,
}

/// `cluster.worker` and its channel.
pub(crate) struct Runtime {
    pub id: u32,
    channel: Channel,
    callbacks: Callbacks<PendingQuery>,
    indexes: HashMap<String, Indexes>,
    /// `handles`: the cluster-managed servers by key.
    handles: BTreeMap<String, Registered>,
    exited_after_disconnect: bool,
}

/// Why `setup_worker` failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SetupError {
    #[error("NODE_CHANNEL_FD is not a file descriptor number: {0:?}")]
    BadChannelFd(String),
    #[error("NODE_UNIQUE_ID is not a worker id: {0:?}")]
    BadId(String),
    #[error("the IPC channel cannot be used: {0}")]
    Channel(ChannelError),
}

// ANCHOR: setup_worker
/// `setupChildProcessIpcChannel` + `_setupWorker`: open the channel named by
/// `NODE_CHANNEL_FD`, remove the three variables so our own children start as primaries,
/// and say `online` — all before user code. `None` when this process is not a worker.
///
/// Call it first thing in `main`, while the process has a single thread.
pub(crate) fn setup_worker() -> Option<Result<Runtime, SetupError>> {
    let id = std::env::var(NODE_UNIQUE_ID).ok()?;
    let fd = std::env::var("NODE_CHANNEL_FD").unwrap_or_default();
    for var in [
        NODE_UNIQUE_ID,
        "NODE_CHANNEL_FD",
        "NODE_CHANNEL_SERIALIZATION_MODE",
    ] {
        // SAFETY: called at the start of main, before any thread exists, so nothing can be
        // reading the environment concurrently.
        unsafe { std::env::remove_var(var) };
    }
    SET_UP.store(true, Ordering::Relaxed);
    Some(open_channel(&id, &fd))
}
// ANCHOR_END: setup_worker

fn open_channel(id: &str, fd: &str) -> Result<Runtime, SetupError> {
    let id: u32 = id.parse().map_err(|_| SetupError::BadId(id.to_string()))?;
    let raw: i32 = fd
        .parse()
        .ok()
        .filter(|f| *f >= 0)
        .ok_or_else(|| SetupError::BadChannelFd(fd.to_string()))?;
    // SAFETY: the primary put the channel on this fd for us; nothing else in this process
    // owns it. (Kept out of our own children, as libuv keeps it.)
    let owned = unsafe { sys::adopt_inherited_fd(raw) }
        .map_err(|_| SetupError::BadChannelFd(fd.to_string()))?;
    let channel = Channel::new(owned, "primary").map_err(SetupError::Channel)?;
    let mut rt = Runtime {
        id,
        channel,
        callbacks: Callbacks::new(MAX_PENDING_QUERIES),
        indexes: HashMap::new(),
        handles: BTreeMap::new(),
        exited_after_disconnect: false,
    };
    trace::step(&format!(
        "started (pid {}) with NODE_UNIQUE_ID={id}, NODE_CHANNEL_FD={raw}; both removed from env",
        std::process::id()
    ));
    trace::step("online -> primary (before any user code)");
    rt.send(&Act::Online);
    Ok(rt)
}

impl Runtime {
    /// The channel's socket, for polling.
    pub(crate) fn channel_fd(&self) -> BorrowedFd<'_> {
        self.channel.fd()
    }

    /// Whether the channel has bytes waiting to go out.
    pub(crate) fn wants_write(&self) -> bool {
        self.channel.wants_write()
    }

    /// `sendHelper` in the worker.
    fn send<T: Serialize>(&mut self, message: &T) -> u64 {
        let (msg, seq) = utils::envelope(message);
        self.channel.send(msg);
        seq
    }

    /// `process.send(msg)`: a user message to the primary.
    pub(crate) fn send_user(&mut self, msg: Value) {
        self.channel.send(msg);
    }

    // ANCHOR: get_server
    /// `cluster._getServer`: number this listen (`index`, per `address:port:addressType:fd`),
    /// and send `queryServer`. The answer comes back as [`WorkerEvent::Server`].
    pub(crate) fn get_server(&mut self, slot: usize, query: &ServerQuery) {
        let mut query = query.clone();
        // "Resolve unix socket paths to absolute paths" (child.js L70–73 at v24.22.3).
        if let (Port::Pipe, Some(address)) = (query.port, &query.address) {
            let cwd = std::env::current_dir().unwrap_or_default();
            query.address = Some(path::resolve(&cwd.to_string_lossy(), address));
        }
        // Array.prototype.join turns null and undefined into empty strings.
        let indexes_key = format!(
            "{}:{}:{}:{}",
            query.address.as_deref().unwrap_or(""),
            query.port,
            query.address_type,
            query.fd.map(|f| f.to_string()).unwrap_or_default()
        );
        let entry = self.indexes.entry(indexes_key.clone()).or_default();
        let index = entry.next_index;
        entry.next_index += 1;
        entry.set.push(index);
        let message = ServerMessage {
            index: Some(index),
            data: Value::Null,
            query,
        };
        trace::step(&format!(
            "cluster._getServer: queryServer index {index} -> primary"
        ));
        let seq = self.send(&Act::QueryServer(message.clone()));
        let pending = PendingQuery {
            slot,
            indexes_key,
            index,
            message,
        };
        if self.callbacks.insert(seq, pending).is_err() {
            trace::problem("too many queryServer requests wait for an answer; this one is dropped");
        }
    }
    // ANCHOR_END: get_server

    /// Once the server listens: the same message, `act` now `listening`, with the real port
    /// (`-1` for a pipe: `obj.address()?.port || options.port`).
    pub(crate) fn send_listening(&mut self, key: &str, port: Port) {
        let Some(r) = self.handles.get(key) else {
            return;
        };
        let mut message = r.message.clone();
        message.query.port = port;
        self.send(&Act::Listening(message));
    }

    // ANCHOR: close
    /// Closing a cluster-managed server: tell the primary (`{act:'close', key}`, no reply)
    /// and free the index so the next listen on this address starts at 0 again.
    pub(crate) fn close_server(&mut self, key: &str) {
        let Some(r) = self.handles.remove(key) else {
            return;
        };
        self.send(&Act::Close {
            key: key.to_string(),
        });
        self.remove_indexes_key(&r.indexes_key, r.index);
    }
    // ANCHOR_END: close

    fn remove_indexes_key(&mut self, indexes_key: &str, index: u64) {
        let Some(e) = self.indexes.get_mut(indexes_key) else {
            return;
        };
        e.set.retain(|&i| i != index);
        if e.set.is_empty() {
            self.indexes.remove(indexes_key);
        }
    }

    /// Keys of the cluster-managed servers.
    pub(crate) fn keys(&self) -> Vec<String> {
        self.handles.keys().cloned().collect()
    }

    /// Read the channel and turn what came into events.
    pub(crate) fn on_readable(&mut self) -> Result<Vec<WorkerEvent>, ChannelError> {
        let messages = match self.channel.read()? {
            Some(m) => m,
            None => return Ok(vec![WorkerEvent::PrimaryGone]),
        };
        let mut events = Vec::new();
        for m in messages {
            events.extend(self.on_message(m));
        }
        for what in self.channel.take_warnings() {
            trace::problem(&format!("the primary {what}"));
        }
        if self.channel.is_closed() {
            events.push(WorkerEvent::PrimaryGone);
        }
        Ok(events)
    }

    /// Flush pending output (on `POLLOUT`).
    pub(crate) fn flush(&mut self) {
        self.channel.flush();
    }

    // ANCHOR: onmessage
    /// `onmessage` in the worker: replies by `ack`, then `newconn` and `disconnect`.
    fn on_message(&mut self, m: Incoming) -> Option<WorkerEvent> {
        match utils::internal(&mut self.callbacks, &m.msg) {
            Internal::User => Some(WorkerEvent::Message(m.msg)),
            Internal::Reply { cb, .. } => {
                let reply = QueryReply::deserialize(&m.msg).ok()?;
                Some(self.on_query_reply(cb, reply, m.fd, m.handle_type))
            }
            Internal::Request {
                act: Ok(Act::Newconn { key }),
                seq,
            } => self.on_connection(&key, seq, m.fd),
            Internal::Request {
                act: Ok(Act::Disconnect),
                ..
            } => Some(self.disconnect()),
            _ => None,
        }
    }
    // ANCHOR_END: onmessage

    // ANCHOR: rr_shared
    /// The `queryServer` callback: an fd means `shared()`, none means `rr()` — the presence of
    /// the fd decides, not the policy.
    fn on_query_reply(
        &mut self,
        p: PendingQuery,
        reply: QueryReply,
        fd: Option<OwnedFd>,
        ty: Option<HandleType>,
    ) -> WorkerEvent {
        let key = reply.key;
        let errno = reply.errno.unwrap_or(0);
        // rr() hands the errno back and keeps the index taken, as Node does: a retried listen
        // gets the next index (a new key).
        let result = if errno != 0 {
            Err(Errno::from_raw(errno.saturating_neg()))
        } else if let (Some(fd), Some(_)) = (fd, ty) {
            Ok(GotHandle::Shared(fd)) // shared()
        } else {
            let sockname = reply.sockname.and_then(|s| s.to_addr());
            Ok(GotHandle::RoundRobin {
                key: key.clone(),
                sockname,
            }) // rr()
        };
        if result.is_ok() && self.handles.contains_key(&key) {
            internal_assertion(&key); // never returns
        }
        if result.is_ok() {
            let r = Registered {
                slot: p.slot,
                indexes_key: p.indexes_key,
                index: p.index,
                message: p.message,
            };
            self.handles.insert(key.clone(), r);
        }
        WorkerEvent::Server {
            slot: p.slot,
            key,
            result,
        }
    }
    // ANCHOR_END: rr_shared

    // ANCHOR: onconnection
    /// `onconnection`: is the server still here? Say so (`{ack, accepted}`) before using the
    /// connection; if not, close our copy and the primary gives it to someone else.
    fn on_connection(
        &mut self,
        key: &str,
        seq: Option<u64>,
        fd: Option<OwnedFd>,
    ) -> Option<WorkerEvent> {
        let slot = self.handles.get(key).map(|r| r.slot);
        let accepted = slot.is_some() && fd.is_some();
        trace::step(&format!(
            "newconn for {}{}: accepted {accepted}",
            utils::printable(key),
            fd.as_ref()
                .map(|f| format!(" (fd {})", f.as_raw_fd()))
                .unwrap_or_default()
        ));
        if let Some(ack) = seq {
            self.send(&Accepted { ack, accepted });
        }
        match (slot, fd) {
            (Some(_), Some(fd)) if accepted => Some(WorkerEvent::Connection { fd }),
            _ => None, // dropping fd closes the worker's copy
        }
    }
    // ANCHOR_END: onconnection

    // ANCHOR: disconnect
    /// `_disconnect(primaryInitiated = true)`: close every cluster-managed server, then the
    /// channel. Servers the cluster does not manage (`exclusive`) are the program's business.
    fn disconnect(&mut self) -> WorkerEvent {
        self.exited_after_disconnect = true;
        trace::step("disconnect from the primary: closing cluster servers");
        for key in self.keys() {
            self.close_server(&key);
        }
        WorkerEvent::Disconnect
    }
    // ANCHOR_END: disconnect

    /// `process.disconnect()` after `disconnect` from the primary, as the worker's last act:
    /// see [`Channel::close_after_peer`]. Call it instead of dropping the runtime, just
    /// before exiting.
    pub(crate) fn close_channel(self) {
        self.channel
            .close_after_peer(std::time::Duration::from_secs(2));
    }
}

// ANCHOR: internal_assertion
/// `assert(handles.has(key) === false)` in `shared()` and `rr()`
/// ([child.js L156 at v24.22.3](https://github.com/nodejs/node/blob/v24.22.3/lib/internal/cluster/child.js#L156)):
/// the primary answered with a key this worker holds already. Unreachable under v20's
/// primary (its keys always carry the index); since v22, a worker that listens twice on one
/// fixed port under `SCHED_NONE` gets here (nodejs/node#64869). Node throws
/// `ERR_INTERNAL_ASSERTION` from a message callback, which nothing can catch: the worker
/// prints the error and exits with code 1. So does ours.
fn internal_assertion(key: &str) -> ! {
    trace::problem(&format!(
        "ERR_INTERNAL_ASSERTION at shared(): the primary answered with key {key}, which this worker holds already"
    ));
    // Node's own words on stderr, as a reader running the lab sees them (with --json the
    // event above says it, and stderr stays clean for the program reading the events).
    if trace::format() == trace::Format::Json {
        std::process::exit(1)
    }
    eprintln!(
        "Error [ERR_INTERNAL_ASSERTION]: This is caused by either a bug in Node.js or incorrect usage of Node.js internals.\n    at shared (node:internal/cluster/child:156:3)  [mirrored: key {key} is held already]"
    );
    std::process::exit(1)
}
// ANCHOR_END: internal_assertion
