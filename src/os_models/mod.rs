//! Beneath Node: three ways the operating system lets several processes serve one port,
//! without Node and without its IPC channel. Chapter 9 runs them side by side with Node's
//! two policies (chapters 5 and 6).
//!
//! | model | file | who owns the listening socket |
//! |---|---|---|
//! | fork per connection | [`fork_per_connection`] | the parent; a child gets one *connection* |
//! | pre-fork | [`prefork`] | one socket, inherited by every child |
//! | `SO_REUSEPORT` | [`reuseport`] | one socket *per child*, in one group |
//!
//! The first is the C program that closes the source article, *"Why Doesn't Listening on the
//! Same Port in Multiple Node.js Cluster Workers Throw EADDRINUSE?"* by HUANG Cheng (2022),
//! done correctly. The second is what that article's text describes. The third is what Node
//! ≥ 22.12 offers as `listen({reusePort: true})`; Node v20, the version this book mirrors,
//! has none of them: its workers are fresh processes (fork *and* exec, see
//! [`crate::cluster`]) and inherit no listening socket.
//!
//! Unlike the rest of the crate these models call `fork(2)` without `exec`, which is safe
//! only in a process with one thread: [`crate::sys::fork_single_threaded`] checks that. The
//! children are in [`children::Children`], which kills and reaps them even on an error path.

use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::sys::Errno;

use crate::sys::{self, Transport};
use crate::trace;

pub mod children;
pub mod echo;
pub mod fork_per_connection;
pub mod prefork;
pub mod reuseport;
pub mod serve;

/// The longest any single wait in these models may take: an accept, a read, a child's
/// start. Nothing here can hang a reader for longer.
pub const WAIT_LIMIT: Duration = Duration::from_secs(5);

/// How long a pre-forked child serves before it gives up on its own, in case its parent
/// forgot it (the parent normally stops it much sooner; see [`children::Children`]).
pub const CHILD_LIFETIME: Duration = Duration::from_secs(30);

/// The backlog the models listen with: room for every connection a chapter makes.
pub const BACKLOG: i32 = 64;

/// Why a model could not run to the end.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{call} failed: {errno} ({})", errno.desc())]
    Sys { call: &'static str, errno: Errno },
    #[error("client: {what}: {source}")]
    Client {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Failed(String),
}

impl ModelError {
    /// A failed syscall, with the call's name: `move |e| ModelError::sys("bind", e)`.
    pub fn sys(call: &'static str, errno: Errno) -> Self {
        ModelError::Sys { call, errno }
    }
}

/// Which child answered each connection, in order: the kernel's choice in the pre-fork and
/// `SO_REUSEPORT` models, so the chapter prints it as a tally.
#[derive(Debug, Clone, Default)]
pub struct Split {
    /// Child numbers (1-based), one per answered connection.
    pub order: Vec<usize>,
    /// How many children could have answered, for the counts line.
    pub children: usize,
}

impl Split {
    pub fn new(children: usize) -> Self {
        Split {
            order: Vec::new(),
            children,
        }
    }

    /// How many connections child `n` answered.
    pub fn count(&self, n: usize) -> usize {
        self.order.iter().filter(|&&c| c == n).count()
    }

    /// `answered by: 1 3 2 2 ...`
    pub fn order_line(&self) -> String {
        let order: Vec<String> = self.order.iter().map(usize::to_string).collect();
        format!("answered by: {}", order.join(" "))
    }

    /// `counts: child 1: 3, child 2: 3, child 3: 2`
    pub fn counts_line(&self) -> String {
        let counts: Vec<String> = (1..=self.children)
            .map(|n| format!("child {n}: {}", self.count(n)))
            .collect();
        format!("counts: {}", counts.join(", "))
    }
}

/// How long a blocked `accept` waits before it returns `EAGAIN` (`SO_RCVTIMEO`), so that a
/// child can look at the clock now and then.
const ACCEPT_TICK: Duration = Duration::from_millis(500);

// ANCHOR: listen_socket
/// `socket`, `SO_REUSEADDR` (libuv sets it on every TCP server socket), `SO_REUSEPORT` when
/// asked (Node v20 never asks), `bind`, `listen`. Every result is checked: the article's
/// program ignores a failed `bind`, and `listen` then quietly picks a random port.
pub fn listen_socket(addr: SocketAddr, reuseport: bool) -> Result<OwnedFd, ModelError> {
    let fd = sys::socket(addr.ip(), Transport::Tcp).map_err(|e| ModelError::sys("socket", e))?;
    sys::set_reuseaddr(fd.as_fd()).map_err(|e| ModelError::sys("setsockopt", e))?;
    if reuseport {
        sys::set_reuseport(fd.as_fd()).map_err(|e| ModelError::sys("setsockopt", e))?;
    }
    sys::bind(fd.as_fd(), addr).map_err(|e| ModelError::sys("bind", e))?;
    sys::listen(fd.as_fd(), BACKLOG).map_err(|e| ModelError::sys("listen", e))?;
    // A blocking accept, as in the C programs, but one that gives up now and then.
    sys::set_nonblocking(fd.as_fd(), false).map_err(|e| ModelError::sys("fcntl", e))?;
    sys::set_timeouts(fd.as_fd(), ACCEPT_TICK).map_err(|e| ModelError::sys("setsockopt", e))?;
    Ok(fd)
}
// ANCHOR_END: listen_socket

/// Accept one connection, waiting at most [`WAIT_LIMIT`].
pub fn accept_one(listener: BorrowedFd<'_>) -> Result<OwnedFd, ModelError> {
    let deadline = Instant::now() + WAIT_LIMIT;
    while Instant::now() < deadline {
        if let Some(conn) =
            sys::accept4(listener, true).map_err(|e| ModelError::sys("accept4", e))?
        {
            return Ok(conn);
        }
    }
    Err(ModelError::Failed(format!(
        "no connection within {WAIT_LIMIT:?}"
    )))
}

// ANCHOR: accept_loop
/// A pre-forked child's life: block in `accept`, serve the connection, close it, and again,
/// until the parent stops it (or [`CHILD_LIFETIME`] passes, if the parent forgot).
pub fn accept_loop(listener: BorrowedFd<'_>, n: usize) -> i32 {
    let deadline = Instant::now() + CHILD_LIFETIME;
    while Instant::now() < deadline {
        match sys::accept4(listener, true) {
            Ok(Some(conn)) => {
                echo::serve(&conn, n);
                sys::close_traced(conn);
            }
            Ok(None) => continue, // no connection for a while: look at the clock
            Err(_) => return 1,
        }
    }
    0
}
// ANCHOR_END: accept_loop

// ANCHOR: clients
/// `count` clients, one after another (numbered from `first`): each sends a line, reads who
/// answered, and ends with end of file. Returns who answered which.
pub fn sequential_clients(
    addr: SocketAddr,
    first: usize,
    count: usize,
    children: usize,
) -> Result<Split, ModelError> {
    trace::set_label("client");
    trace::step(&format!("{count} connections to {addr}, one after another"));
    let mut split = Split::new(children);
    for i in first..first + count {
        let mut client = echo::Client::connect(addr)?;
        let (answer, _) = client.ask(&format!("hello {i}"))?;
        trace::ok(&format!(
            "connection {i} answered by child {} (pid {})",
            answer.child, answer.pid
        ));
        split.order.push(answer.child);
        client.finish()?;
    }
    trace::step(&split.order_line());
    trace::step(&split.counts_line());
    Ok(split)
}
// ANCHOR_END: clients
