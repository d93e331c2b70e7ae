//! Mirror of [`lib/internal/cluster/shared_handle.js`](https://github.com/nodejs/node/blob/v24.22.3/lib/internal/cluster/shared_handle.js#L13):
//! the primary binds one socket and sends it to every worker. Each worker then calls
//! `listen(2)` on it and accepts for itself: N listens on one socket, one accept queue, and
//! whichever worker the kernel wakes takes the connection.
//!
//! The primary only *binds* (Node's `createServerHandle`), it never listens. So a bind that
//! libuv delayed (`EADDRINUSE`) still gives a "handle" here, with `errno` 0: the worker finds
//! out alone, through `checkBindError`. UDP sockets are always shared, and bind at once.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;
use std::rc::Rc;

use crate::sys::Errno;

use crate::channel::HandleType;
use crate::net;
use crate::pipe_wrap::{Libuv, SocketFile};
use crate::sys::{self, Transport};

/// One bound socket for one key, sent to every worker that asks.
#[derive(Debug)]
pub(crate) struct SharedHandle {
    /// `this.key` ([`shared_handle.js` L14](https://github.com/nodejs/node/blob/v24.22.3/lib/internal/cluster/shared_handle.js#L14)):
    /// kept as Node keeps it, and, as in Node, read by nobody.
    #[expect(
        dead_code,
        reason = "mirrors Node's this.key, which Node never reads either"
    )]
    key: String,
    /// `handle.data`: the first worker's `data`, sent to every worker (set by the primary).
    pub data: serde_json::Value,
    workers: Vec<u32>,
    /// The bound socket (`null` in Node when the bind failed).
    handle: Option<Rc<OwnedFd>>,
    /// `this.errno`: 0 in Node on success; a *delayed* EADDRINUSE is also 0.
    errno: Option<Errno>,
    handle_type: HandleType,
    /// A pipe's socket file: removed when the primary closes its copy, once the last worker
    /// has gone (libuv unlinks on close; the workers' copies have no name to remove).
    file: Option<SocketFile>,
}

impl SharedHandle {
    // ANCHOR: new
    /// The constructor: `net._createServerHandle` (TCP: socket, SO_REUSEADDR, bind — no listen;
    /// with no address, `::` or else `0.0.0.0`) or `dgram._createSocketHandle` (UDP: socket,
    /// bind; a UDP query always has an address, which the worker looked up).
    pub(crate) fn new(key: &str, address: Option<IpAddr>, port: u16, udp: bool) -> Self {
        let any = IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED);
        let (result, handle_type) = match (udp, address) {
            (true, address) => {
                let addr = SocketAddr::new(address.unwrap_or(any), port);
                (udp_bind(addr), HandleType::DgramNative)
            }
            (false, Some(address)) => {
                let tcp = net::create_server_handle(address, port, false).map(|h| h.into_fd());
                (tcp, HandleType::NetNative)
            }
            (false, None) => {
                let tcp = net::create_server_handle_no_host(port, false).map(|h| h.0.into_fd());
                (tcp, HandleType::NetNative)
            }
        };
        let (handle, errno) = match result {
            Ok(fd) => (Some(Rc::new(fd)), None),
            Err(e) => (None, Some(e)),
        };
        Self::made(key, handle, errno, handle_type, None)
    }
    // ANCHOR_END: new

    // ANCHOR: new_pipe
    /// The constructor for a pipe: `net._createServerHandle(path, -1, -1)`, a bound `Pipe`,
    /// sent as `net.Native`. No delayed error here: a path in use fails at once. Nor
    /// `readableAll`/`writableAll`: `SharedHandle` does not pass them on.
    pub(crate) fn new_pipe(key: &str, path: &str, libuv: Libuv) -> Self {
        let (handle, errno, file) = match net::create_pipe_handle(path, libuv) {
            Ok(h) => {
                let (fd, file) = h.into_parts();
                (Some(Rc::new(fd)), None, file)
            }
            Err(e) => (None, Some(e), None),
        };
        Self::made(key, handle, errno, HandleType::NetNative, file)
    }
    // ANCHOR_END: new_pipe

    fn made(
        key: &str,
        handle: Option<Rc<OwnedFd>>,
        errno: Option<Errno>,
        handle_type: HandleType,
        file: Option<SocketFile>,
    ) -> Self {
        Self {
            key: key.to_string(),
            data: serde_json::Value::Null,
            workers: Vec::new(),
            handle,
            errno,
            handle_type,
            file,
        }
    }

    // ANCHOR: add
    /// `add(worker, send)`: every worker gets the errno and the same socket.
    pub(crate) fn add(
        &mut self,
        worker: u32,
    ) -> (Option<Errno>, Option<(Rc<OwnedFd>, HandleType)>) {
        assert!(!self.workers.contains(&worker), "worker added twice");
        self.workers.push(worker);
        let handle = self.handle.clone().map(|h| (h, self.handle_type));
        (self.errno, handle)
    }
    // ANCHOR_END: add

    /// Whether the worker uses this handle.
    pub(crate) fn contains(&self, worker: u32) -> bool {
        self.workers.contains(&worker)
    }

    /// `remove(worker)`: true when it was the last one; the socket is closed then.
    pub(crate) fn remove(&mut self, worker: u32) -> bool {
        let Some(i) = self.workers.iter().position(|&w| w == worker) else {
            return false;
        };
        self.workers.remove(i);
        if !self.workers.is_empty() {
            return false;
        }
        self.handle = None;
        self.file = None;
        true
    }
}

/// `uv_udp_bind` without flags: socket, bind. No SO_REUSEADDR (libuv sets it only when asked).
fn udp_bind(addr: SocketAddr) -> Result<OwnedFd, Errno> {
    let fd = sys::socket(addr.ip(), Transport::Udp)?;
    sys::bind(std::os::fd::AsFd::as_fd(&fd), addr)?;
    Ok(fd)
}
