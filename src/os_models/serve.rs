//! Chapter 9's three models as servers that stay up, for the benchmark of chapter 11: the
//! same sockets and the same shapes of processes, answering the lab's tiny HTTP response
//! instead of the echo line, until a deadline passes or they are told to stop.
//!
//! What differs from the chapter-9 versions, and why:
//!
//! - The backlog is 511, Node's default, instead of 64: under load a short accept queue
//!   drops connections, and every strategy must get the same queue.
//! - Nothing is printed per connection: a trace line per connection would measure the
//!   terminal, not the model.
//! - The answer names the child as the lab names a worker (`worker 2 (pid 4711)`), so one
//!   load generator reads every strategy's answers and counts each worker's share.
//!
//! As in chapter 9 these fork without exec, so the process that calls them must have one
//! thread: the benchmark runs each in a helper process of its own, never in its own
//! (threaded) process.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::sys::Errno;
use crate::sys::Signal;

use super::ModelError;
use super::children::Children;
use crate::http;
use crate::sys::{self, Forked, Transport};

/// Node's default backlog (`net.Server.listen` without one): every strategy gets this queue.
pub const SERVE_BACKLOG: i32 = 511;

/// How often a blocked `accept` gives up (`SO_RCVTIMEO`) to look at the clock and the stop
/// flag.
const TICK: Duration = Duration::from_millis(100);

/// The longest a connection may take to send its request.
const REQUEST_LIMIT: Duration = Duration::from_secs(5);

/// When a serving model stops: at `deadline`, or as soon as `stop` says so (the helper
/// process passes [`sys::interrupted`], set by `SIGTERM` or Ctrl-C).
#[derive(Clone, Copy)]
pub struct Until {
    pub deadline: Instant,
    pub stop: fn() -> bool,
}

impl Until {
    /// Serve for `lifetime` at most, or until [`sys::interrupted`].
    pub fn lifetime(lifetime: Duration) -> Self {
        Until {
            deadline: Instant::now() + lifetime,
            stop: sys::interrupted,
        }
    }

    fn over(&self) -> bool {
        Instant::now() >= self.deadline || (self.stop)()
    }

    /// Sleep until it is over, looking now and then.
    fn wait(&self) {
        while !self.over() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// [`super::listen_socket`] with Node's backlog and a shorter tick; nothing else differs.
fn serving_socket(addr: SocketAddr, reuseport: bool) -> Result<OwnedFd, ModelError> {
    let fd = sys::socket(addr.ip(), Transport::Tcp).map_err(|e| ModelError::sys("socket", e))?;
    sys::set_reuseaddr(fd.as_fd()).map_err(|e| ModelError::sys("setsockopt", e))?;
    if reuseport {
        sys::set_reuseport(fd.as_fd()).map_err(|e| ModelError::sys("setsockopt", e))?;
    }
    sys::bind(fd.as_fd(), addr).map_err(|e| ModelError::sys("bind", e))?;
    sys::listen(fd.as_fd(), SERVE_BACKLOG).map_err(|e| ModelError::sys("listen", e))?;
    sys::set_nonblocking(fd.as_fd(), false).map_err(|e| ModelError::sys("fcntl", e))?;
    sys::set_timeouts(fd.as_fd(), TICK).map_err(|e| ModelError::sys("setsockopt", e))?;
    Ok(fd)
}

// ANCHOR: serve_http
/// Serve one HTTP connection: read until the end of the request's headers (or end of file),
/// write the prepared `response`, and let the caller close. False if the client broke off.
pub fn serve_http(conn: BorrowedFd<'_>, response: &[u8]) -> bool {
    let mut buf = [0u8; 2048];
    let mut len = 0;
    while len < buf.len() {
        match sys::read(conn, &mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => {
                len += n;
                if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Err(Errno::EAGAIN) => {
                let ready = sys::wait_one(conn, false, REQUEST_LIMIT).unwrap_or_default();
                if !ready.readable {
                    return false;
                }
            }
            Err(_) => return false,
        }
    }
    sys::write(conn, response).is_ok_and(|n| n == response.len())
}
// ANCHOR_END: serve_http

/// A pre-forked (or `SO_REUSEPORT`) child's life as a server: block in `accept`, answer,
/// close, and again, until it is over.
fn accept_loop(listener: BorrowedFd<'_>, n: usize, until: Until) -> i32 {
    let response = http::response(n as u32, std::process::id());
    while !until.over() {
        match sys::accept4(listener, false) {
            Ok(Some(conn)) => {
                serve_http(conn.as_fd(), &response);
            }
            Ok(None) => {}
            Err(_) => return 1,
        }
    }
    0
}

/// Pre-fork: bind and listen once, fork `workers` children that all accept on the inherited
/// socket. `ready` runs once every child blocks in `accept`; then the parent only waits.
pub fn prefork(
    addr: SocketAddr,
    workers: usize,
    until: Until,
    ready: impl FnOnce(),
) -> Result<(), ModelError> {
    let listener = serving_socket(addr, false)?;
    let mut children = Children::new();
    for n in 1..=workers {
        children.fork(n, |turn| {
            turn.ready();
            accept_loop(listener.as_fd(), n, until)
        })?;
    }
    ready();
    until.wait();
    drop(children); // SIGKILL and reap, every one
    Ok(())
}

/// `SO_REUSEPORT`: fork `workers` children that each bind and listen on a socket of their
/// own, all on `addr`. `ready` runs once every child listens.
pub fn reuseport(
    addr: SocketAddr,
    workers: usize,
    until: Until,
    ready: impl FnOnce(),
) -> Result<(), ModelError> {
    let mut children = Children::new();
    for n in 1..=workers {
        children.fork(n, |turn| match serving_socket(addr, true) {
            Ok(listener) => {
                turn.ready();
                accept_loop(listener.as_fd(), n, until)
            }
            Err(_) => 1,
        })?;
    }
    ready();
    until.wait();
    drop(children);
    Ok(())
}

/// The children of [`fork_per_connection`] not yet reaped; dropping this kills and reaps
/// them, so an early return leaves none behind.
#[derive(Default)]
struct Live(HashSet<u32>);

impl Live {
    /// Collect every child that has ended.
    fn reap(&mut self) {
        while let Some(pid) = sys::reap_any() {
            self.0.remove(&pid);
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        for &pid in &self.0 {
            sys::kill(pid, Signal::SIGKILL);
            let _ = sys::waitpid_limit(pid, Duration::from_secs(5), false);
        }
    }
}

// ANCHOR: fork_per_connection
/// Fork per connection: the parent accepts each connection and forks a child that answers it
/// and exits; the parent closes its copy and reaps whoever has finished.
pub fn fork_per_connection(
    addr: SocketAddr,
    until: Until,
    ready: impl FnOnce(),
) -> Result<(), ModelError> {
    let listener = serving_socket(addr, false)?;
    let parent = std::process::id();
    let mut live = Live::default();
    ready();
    while !until.over() {
        let conn = sys::accept4(listener.as_fd(), false);
        if let Some(conn) = conn.map_err(|e| ModelError::sys("accept4", e))? {
            match sys::fork_single_threaded().map_err(|e| ModelError::sys("fork", e))? {
                Forked::Child => {
                    sys::die_with_parent(parent);
                    let response = http::response(1, std::process::id());
                    let served = serve_http(conn.as_fd(), &response);
                    sys::exit_now(if served { 0 } else { 1 })
                }
                Forked::Parent(pid) => {
                    live.0.insert(pid);
                    drop(conn); // the child has its own copy
                }
            }
        }
        live.reap();
    }
    Ok(())
}
// ANCHOR_END: fork_per_connection
