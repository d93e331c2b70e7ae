//! Mirror of Node's [`lib/net.js`](https://github.com/nodejs/node/blob/v24.22.3/lib/net.js#L2489):
//! the path from `server.listen(...)` to a listening socket, or to a question for the primary.
//!
//! The call chain is Node's, name for name:
//!
//! ```text
//! Server::listen  ->  listen_in_cluster  ->  primary (or exclusive): Server::listen2
//!                                        \->  worker: a ServerQuery for cluster::child::get_server
//! Server::listen2 (setupListenHandle) -> create_server_handle (bind only) -> TcpHandle::listen
//! ```
//!
//! What the listen path does *not* decide is the interesting part: whether this process is a
//! cluster worker. That is [`crate::cluster::is_primary`], read from the environment.
//!
//! A path instead of a port (`listen('/dir/app.sock')`) takes the same road with a `Pipe`
//! handle (`crate::pipe_wrap`): [`Server::listen_pipe`], [`Server::listen2_pipe`],
//! [`create_pipe_handle`], [`listen_pipe_on_primary_handle`].

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::BorrowedFd;

use crate::sys::Errno;

use crate::cluster;
pub use crate::cluster::message::{AddressType, Port, ServerQuery};
use crate::errors::{NetError, Shape};
use crate::pipe_wrap::{Libuv, PipeHandle};
use crate::sys::{self, UnixName};
use crate::tcp_wrap::{DEFAULT_BACKLOG, TcpHandle};
use crate::trace;

/// What a caller passes to `listen`: `server.listen({ port, host, exclusive, backlog })`.
#[derive(Debug, Clone)]
pub struct ListenOptions {
    /// An IP literal. Our programs always pass one (`127.0.0.1` unless the user chose another):
    /// Node with no host binds `::`, every interface, which a teaching tool should not do.
    pub host: IpAddr,
    pub port: u16,
    /// `exclusive: true`: bind in this process even in a cluster worker.
    pub exclusive: bool,
    /// 0 means "Node's default", 511.
    pub backlog: i32,
    /// `reusePort: true` (Node 22.23.5+, 24, 26): `SO_REUSEPORT` on the socket, and, in a
    /// worker, `exclusive` too — each worker binds its own socket and the kernel balances.
    pub reuse_port: bool,
}

impl ListenOptions {
    /// `listen(port, host)`.
    pub fn new(host: IpAddr, port: u16) -> Self {
        Self {
            host,
            port,
            exclusive: false,
            backlog: 0,
            reuse_port: false,
        }
    }
}

/// The fake handle `rr()` gives a worker under round robin: no socket, only the key and the
/// primary's address. Connections arrive by IPC (`newconn`). Node's `child.js` builds it as
/// a plain object; it lives here because only a server ever holds one.
#[derive(Debug, Clone)]
pub struct FakeHandle {
    pub key: String,
    pub sockname: Option<SocketAddr>,
}

impl FakeHandle {
    /// `listen(backlog)`: does nothing and succeeds; the primary already listens.
    pub fn listen(&self, _backlog: i32) -> Result<(), Errno> {
        Ok(())
    }

    /// `getsockname(out)`: the primary's address, copied from the reply's `sockname`.
    pub fn getsockname(&self) -> Option<SocketAddr> {
        self.sockname
    }
}

/// What is behind `server._handle`.
#[derive(Debug)]
pub enum ServerHandle {
    /// A real socket: ours (primary, exclusive) or the primary's shared one (SCHED_NONE).
    Tcp(TcpHandle),
    /// A real unix socket, for a path: ours, or the primary's shared one.
    Pipe(PipeHandle),
    /// The worker's fake round-robin handle: no socket at all, connections arrive by IPC.
    RoundRobin(FakeHandle),
}

/// Where a server listens, as `server.address()` says: an address and port, or, for a pipe,
/// its path (`\0name` for an abstract one, shown as `@name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Ip(SocketAddr),
    Pipe(String),
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Ip(a) => write!(f, "{a}"),
            Address::Pipe(p) => match p.strip_prefix('\0') {
                Some(name) => write!(f, "@{name}"),
                None => f.write_str(p),
            },
        }
    }
}

/// What a caller passes to `listen` for a pipe: `server.listen({ path, readableAll,
/// writableAll, exclusive, backlog })`.
#[derive(Debug, Clone)]
pub struct PipeOptions {
    /// A path, or `\0name` for an abstract socket (Linux).
    pub path: String,
    pub exclusive: bool,
    /// 0 means "Node's default", 511.
    pub backlog: i32,
    /// `readableAll: true`: the socket file readable by everyone.
    pub readable_all: bool,
    /// `writableAll: true`: the socket file writable by everyone (which is what lets
    /// another user connect).
    pub writable_all: bool,
    /// Which libuv's pipes to behave like, when this process binds (see `Libuv`).
    pub libuv: Libuv,
}

impl PipeOptions {
    /// `listen(path)`.
    pub fn new(path: &str) -> Self {
        Self {
            path: path.to_string(),
            exclusive: false,
            backlog: 0,
            readable_all: false,
            writable_all: false,
            libuv: Libuv::default(),
        }
    }
}

/// Where a `listen` call got to.
#[derive(Debug)]
pub enum ListenStep {
    /// Listening now.
    Listening(Address),
    /// The `'error'` event.
    Failed(NetError),
    /// A cluster worker must ask the primary (`cluster._getServer`).
    AskPrimary(ServerQuery),
}

/// `net.Server`: a name for the trace, and its handle once it has one.
#[derive(Debug)]
pub struct Server {
    pub name: String,
    handle: Option<ServerHandle>,
    /// `server._connectionKey`: `4:127.0.0.1:8000`, set once listening.
    connection_key: Option<String>,
    address: Option<SocketAddr>,
    /// `UV_TCP_REUSEPORT` in the `flags` Node passes down to `bind` (`getFlags`). Node hands
    /// the flags from call to call; we keep them on the server, which makes one call.
    reuse_port: bool,
    /// `server._pipeName`: the path a pipe server listens on.
    pipe_name: Option<String>,
}

impl Server {
    /// `net.createServer()`.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            handle: None,
            connection_key: None,
            address: None,
            reuse_port: false,
            pipe_name: None,
        }
    }

    // ANCHOR: listen
    /// `Server.prototype.listen` with a host: Node resolves the host (`lookupAndListen`),
    /// then calls `listenInCluster` with the address, port, family and `exclusive`.
    pub fn listen(&mut self, opts: &ListenOptions) -> ListenStep {
        let address_type = AddressType::tcp_for(opts.host);
        // `if (options.reusePort === true) options.exclusive = true;` (net.js, v22.23.5+)
        self.reuse_port = opts.reuse_port;
        let exclusive = opts.exclusive || opts.reuse_port;
        listen_in_cluster(
            self,
            opts.host,
            opts.port,
            address_type,
            opts.backlog,
            exclusive,
        )
    }
    // ANCHOR_END: listen

    /// The address it listens on, as `server.address()` reports it (TCP).
    pub fn address(&self) -> Option<SocketAddr> {
        self.address
    }

    /// A pipe server's path (`server.address()` for a pipe), once it listens.
    pub fn pipe_name(&self) -> Option<&str> {
        self.connection_key.as_ref().and(self.pipe_name.as_deref())
    }

    /// `server._connectionKey`.
    pub fn connection_key(&self) -> Option<&str> {
        self.connection_key.as_deref()
    }

    /// The handle, once listening.
    pub fn handle(&self) -> Option<&ServerHandle> {
        self.handle.as_ref()
    }

    /// The real listening socket, if this server has one (not for a round-robin worker).
    pub fn listening_fd(&self) -> Option<BorrowedFd<'_>> {
        self.handle.as_ref().and_then(handle_fd)
    }

    /// `server.close()`: drop the handle (closing a real socket).
    pub fn close(&mut self) -> Option<ServerHandle> {
        self.address = None;
        self.connection_key = None;
        self.handle.take()
    }

    // ANCHOR: listen2
    /// `setupListenHandle` (`Server.prototype._listen2`): make a handle unless one was given
    /// (by the primary), then `listen(backlog || 511)`. A failure is a `listen` error.
    pub fn listen2(
        &mut self,
        address: IpAddr,
        port: u16,
        backlog: i32,
    ) -> Result<SocketAddr, NetError> {
        let host = address.to_string();
        if self.handle.is_none() {
            let handle = create_server_handle(address, port, self.reuse_port)
                .map_err(|e| NetError::uv("listen", e, Some(&host), port))?;
            self.handle = Some(ServerHandle::Tcp(handle));
        }
        let backlog = if backlog > 0 {
            backlog
        } else {
            DEFAULT_BACKLOG
        };
        let listened = match &self.handle {
            Some(ServerHandle::Tcp(h)) => h.listen(backlog),
            Some(ServerHandle::RoundRobin(fake)) => fake.listen(backlog),
            Some(ServerHandle::Pipe(_)) | None => Err(Errno::EINVAL),
        };
        if let Err(e) = listened {
            self.handle = None; // Node closes the handle and emits 'error' on nextTick.
            return Err(NetError::uv("listen", e, Some(&host), port));
        }
        let bound = self
            .bound_address()
            .unwrap_or(SocketAddr::new(address, port));
        self.connection_key = Some(format!(
            "{}:{}:{}",
            AddressType::tcp_for(address),
            address,
            bound.port()
        ));
        self.address = Some(bound);
        Ok(bound)
    }
    // ANCHOR_END: listen2

    /// `setupListenHandle` with no address (`listen(port)`): the handle from
    /// [`create_server_handle_no_host`], then [`Server::listen2`] on the address it chose.
    /// Errors name that address (`listen EACCES: permission denied 0.0.0.0:80`).
    pub fn listen2_no_host(&mut self, port: u16, backlog: i32) -> Result<SocketAddr, NetError> {
        let mut address = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
        if self.handle.is_none() {
            let (handle, chosen) = create_server_handle_no_host(port, self.reuse_port)
                .map_err(|e| NetError::uv("listen", e, Some("0.0.0.0"), port))?;
            self.handle = Some(ServerHandle::Tcp(handle));
            address = chosen;
        }
        self.listen2(address, port, backlog)
    }

    fn bound_address(&self) -> Option<SocketAddr> {
        match &self.handle {
            Some(ServerHandle::Tcp(h)) => sys::getsockname(h.fd()).ok(),
            Some(ServerHandle::RoundRobin(fake)) => fake.getsockname(),
            Some(ServerHandle::Pipe(_)) | None => None,
        }
    }

    // ANCHOR: listen_pipe
    /// `Server.prototype.listen` with a path: `listenInCluster(this, pipeName, -1, -1,
    /// backlog, undefined, exclusive, undefined, {readableAll, writableAll})`, then, only if
    /// the handle came at once (a primary, or `exclusive`), `fchmod` for `readableAll` /
    /// `writableAll`. A worker's handle comes later, from the primary, which does the chmod
    /// itself under round robin, and nobody does under `SCHED_NONE` (checked with Node 20
    /// and 24). Node refuses `readableAll`/`writableAll` with an abstract name before any of
    /// this (`ERR_INVALID_ARG_VALUE`); callers do too.
    pub fn listen_pipe(&mut self, opts: &PipeOptions) -> ListenStep {
        self.pipe_name = Some(opts.path.clone());
        if !cluster::is_primary() && !opts.exclusive {
            return ListenStep::AskPrimary(ServerQuery {
                address: Some(opts.path.clone()),
                port: Port::Pipe,
                address_type: AddressType::Pipe,
                fd: None,
                flags: None,
                backlog: Some(opts.backlog),
                readable_all: opts.readable_all.then_some(true),
                writable_all: opts.writable_all.then_some(true),
            });
        }
        if let Err(e) = self.listen2_pipe(&opts.path, opts.backlog, opts.libuv) {
            return ListenStep::Failed(e);
        }
        if (opts.readable_all || opts.writable_all)
            && let Some(ServerHandle::Pipe(h)) = &self.handle
            && let Err(e) = h.chmod(opts.readable_all, opts.writable_all, opts.libuv)
        {
            self.close(); // Node closes the handle and throws
            return ListenStep::Failed(NetError::pipe(
                Shape::Plain,
                "uv_pipe_chmod",
                e,
                &opts.path,
            ));
        }
        ListenStep::Listening(Address::Pipe(opts.path.clone()))
    }
    // ANCHOR_END: listen_pipe

    // ANCHOR: listen2_pipe
    /// `setupListenHandle` for a pipe: a bound `Pipe` unless one was given (by the primary),
    /// then `listen(backlog || 511)`. `_connectionKey` is `-1:<path>:-1`.
    pub fn listen2_pipe(&mut self, path: &str, backlog: i32, libuv: Libuv) -> Result<(), NetError> {
        let failed = |e| NetError::pipe(Shape::Uv, "listen", e, path);
        if self.handle.is_none() {
            let handle = create_pipe_handle(path, libuv).map_err(failed)?;
            self.handle = Some(ServerHandle::Pipe(handle));
        }
        let backlog = if backlog > 0 {
            backlog
        } else {
            DEFAULT_BACKLOG
        };
        let listened = match &self.handle {
            Some(ServerHandle::Pipe(h)) => h.listen(backlog),
            Some(ServerHandle::RoundRobin(fake)) => fake.listen(backlog),
            Some(ServerHandle::Tcp(_)) | None => Err(Errno::EINVAL),
        };
        if let Err(e) = listened {
            self.handle = None;
            return Err(failed(e));
        }
        self.pipe_name = Some(path.to_string());
        self.connection_key = Some(format!("-1:{path}:-1"));
        Ok(())
    }
    // ANCHOR_END: listen2_pipe

    /// Give the server a handle that came from the primary (`server._handle = handle`).
    pub fn set_handle(&mut self, handle: ServerHandle) {
        self.handle = Some(handle);
    }
}

// ANCHOR: listen_in_cluster
/// `listenInCluster`: the fork in the road. A primary — which, by Node's definition, is
/// every process not started by `cluster.fork()` — or an `exclusive` listen binds right
/// here. A worker asks the primary instead.
pub fn listen_in_cluster(
    server: &mut Server,
    address: IpAddr,
    port: u16,
    address_type: AddressType,
    backlog: i32,
    exclusive: bool,
) -> ListenStep {
    if cluster::is_primary() || exclusive {
        return match server.listen2(address, port, backlog) {
            Ok(addr) => ListenStep::Listening(Address::Ip(addr)),
            Err(e) => ListenStep::Failed(e),
        };
    }
    let address = Some(address.to_string());
    let query = ServerQuery::ip(address, port, address_type, None, Some(backlog));
    ListenStep::AskPrimary(query)
}
// ANCHOR_END: listen_in_cluster

// ANCHOR: create_server_handle
/// `createServerHandle`: a new TCP handle, bound but **not** listening. The primary's
/// `SharedHandle` uses exactly this, so what it sends workers is a bound, silent socket.
pub fn create_server_handle(
    address: IpAddr,
    port: u16,
    reuse_port: bool,
) -> Result<TcpHandle, Errno> {
    TcpHandle::bind(SocketAddr::new(address, port), reuse_port)
}
// ANCHOR_END: create_server_handle

// ANCHOR: no_host_address
/// Where a TCP server with no host ends up: Node first binds the unspecified IPv6 address
/// `::`, "to see if IPv6 is available", and if that gives any error binds `0.0.0.0` instead
/// (`addressType` 4). `bind6` is the IPv6 try's error: `EAFNOSUPPORT` on a machine without
/// IPv6, but `EACCES` or `EADDRNOTAVAIL` make the same switch. An `EADDRINUSE` never does:
/// libuv keeps it for `listen` (chapter 1), so the try looks like a success and the error
/// names `::`. Node has this twice, in `setupListenHandle`
/// ([v24.22.3 L2350–2362](https://github.com/nodejs/node/blob/v24.22.3/lib/net.js#L2350-L2362),
/// [v20.20.2 L1868–1880](https://github.com/nodejs/node/blob/v20.20.2/lib/net.js#L1868-L1880))
/// and in `createServerHandle` with no address, which the primary's `SharedHandle` calls
/// ([v24.22.3 L2315–2322](https://github.com/nodejs/node/blob/v24.22.3/lib/net.js#L2315-L2322),
/// [v20.20.2 L1833–1840](https://github.com/nodejs/node/blob/v20.20.2/lib/net.js#L1833-L1840);
/// v20's second try drops the `flags`, which only matters for flags v20 has no use for here).
pub fn no_host_address(bind6: Option<Errno>) -> IpAddr {
    match bind6 {
        None => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        Some(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    }
}
// ANCHOR_END: no_host_address

/// `createServerHandle(null, port)`: [`create_server_handle`] on `::`, or on `0.0.0.0` when
/// that fails (see [`no_host_address`]). Returns the handle and where it is bound.
pub fn create_server_handle_no_host(
    port: u16,
    reuse_port: bool,
) -> Result<(TcpHandle, IpAddr), Errno> {
    let v6 = create_server_handle(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port, reuse_port);
    let address = no_host_address(v6.as_ref().err().copied());
    match v6 {
        Ok(handle) => Ok((handle, address)),
        Err(_) => create_server_handle(address, port, reuse_port).map(|h| (h, address)),
    }
}

// ANCHOR: check_bind_error
/// `checkBindError`: the only way a worker can see that the primary's bind really failed
/// when it got a socket anyway (libuv delayed the error in the *primary's* handle). If the
/// handle is not on the port we asked for, call it `EADDRINUSE`. A round-robin fake handle
/// answers `getsockname` with the primary's `sockname`, so it is checked the same way.
pub fn check_bind_error(port: u16, handle: &ServerHandle) -> Result<(), Errno> {
    if port == 0 {
        return Ok(());
    }
    let bound = match handle {
        ServerHandle::Tcp(h) => sys::getsockname_traced(h.fd()),
        ServerHandle::RoundRobin(fake) => match fake.getsockname() {
            Some(addr) => Ok(addr),
            None => return Ok(()), // no getsockname without a sockname (pipes)
        },
        ServerHandle::Pipe(_) => return Ok(()), // Node: "FIXME ... pipes"
    };
    match bound {
        Ok(addr) if addr.port() != port => Err(Errno::EADDRINUSE),
        Ok(_) => Ok(()),
        Err(e) => Err(e), // Node returns getsockname's own error
    }
}
// ANCHOR_END: check_bind_error

// ANCHOR: listen_on_primary_handle
/// `listenOnPrimaryHandle`: the worker's callback for the primary's answer. An error from
/// the primary becomes `bind <CODE> address:port` (`ExceptionWithHostPort`, no uv text).
/// Otherwise the handle becomes `server._handle`, and `listen2` runs as in a primary — on a
/// handle that already exists.
pub fn listen_on_primary_handle(
    server: &mut Server,
    errno: Option<Errno>,
    handle: Option<ServerHandle>,
    address: IpAddr,
    port: u16,
    backlog: i32,
) -> Result<SocketAddr, NetError> {
    let host = address.to_string();
    let mut err = errno;
    if let (None, Some(h)) = (err, &handle) {
        err = check_bind_error(port, h).err();
    }
    if let Some(e) = err {
        return Err(NetError::plain("bind", e, Some(&host), port));
    }
    let Some(handle) = handle else {
        return Err(NetError::plain("bind", Errno::EINVAL, Some(&host), port));
    };
    server.set_handle(handle);
    server.listen2(address, port, backlog)
}
// ANCHOR_END: listen_on_primary_handle

// ANCHOR: create_pipe_handle
/// `createServerHandle(path, -1, -1)`: `new Pipe(PipeConstants.SERVER)` and `bind(path)`, no
/// listen. What the primary's `SharedHandle` sends for a pipe under `SCHED_NONE`.
pub fn create_pipe_handle(path: &str, libuv: Libuv) -> Result<PipeHandle, Errno> {
    PipeHandle::bind(&UnixName::from_node(path), libuv)
}
// ANCHOR_END: create_pipe_handle

// ANCHOR: listen_pipe_on_primary_handle
/// `listenOnPrimaryHandle` for a pipe: an error from the primary becomes `bind <CODE> <path>`;
/// there is no `checkBindError` for pipes (Node: "the cluster module doesn't really support
/// pipes anyway"). Otherwise the handle (the primary's shared `Pipe`, or round robin's fake
/// one) becomes `server._handle` and listens.
pub fn listen_pipe_on_primary_handle(
    server: &mut Server,
    errno: Option<Errno>,
    handle: Option<ServerHandle>,
    path: &str,
    backlog: i32,
) -> Result<(), NetError> {
    let err = |e| NetError::pipe(Shape::Plain, "bind", e, path);
    if let Some(e) = errno {
        return Err(err(e));
    }
    let Some(handle) = handle else {
        return Err(err(Errno::EINVAL));
    };
    server.set_handle(handle);
    server.listen2_pipe(path, backlog, Libuv::default())
}
// ANCHOR_END: listen_pipe_on_primary_handle

/// A handle's fd, for polling.
pub fn handle_fd(handle: &ServerHandle) -> Option<BorrowedFd<'_>> {
    match handle {
        ServerHandle::Tcp(h) => Some(h.fd()),
        ServerHandle::Pipe(h) => Some(h.fd()),
        ServerHandle::RoundRobin(_) => None,
    }
}

/// Trace the Node-level call, in the form a reader would type it.
pub fn trace_listen_call(server: &Server, opts: &ListenOptions) {
    let mut s = format!(
        "{}: listen({{ port: {}, host: '{}'",
        server.name, opts.port, opts.host
    );
    if opts.exclusive {
        s.push_str(", exclusive: true");
    }
    if opts.reuse_port {
        s.push_str(", reusePort: true");
    }
    s.push_str(" })");
    trace::step(&s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_host_binds_ipv6_and_falls_back_to_ipv4_on_any_error() {
        let v6 = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
        let v4 = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        assert_eq!(no_host_address(None), v6, "IPv6 is there");
        assert_eq!(no_host_address(Some(Errno::EAFNOSUPPORT)), v4, "no IPv6");
        assert_eq!(no_host_address(Some(Errno::EADDRNOTAVAIL)), v4);
        assert_eq!(
            no_host_address(Some(Errno::EACCES)),
            v4,
            "port 80, not root"
        );
    }
}
