//! Model 2, pre-fork with an inherited listening socket: what the source article's *text*
//! describes ("one process binds, forks, and shares the listening socket with children").
//!
//! The parent binds and listens once, then forks the children. Each child inherits a
//! descriptor for the same socket and blocks in `accept` on it. When a connection arrives,
//! the kernel wakes one of the blocked children and hands it the connection; the parent
//! never accepts. This is the classic Unix pre-forking server.
//!
//! It is close to Node's `SCHED_NONE` (chapter 6): one socket, one accept queue, many
//! takers. The differences are in how the socket gets there. Node's workers are fresh
//! programs (fork *and* exec), so they inherit no listening socket; a `SharedHandle` sends
//! them the bound socket over the IPC channel with `SCM_RIGHTS`, and each worker calls
//! `listen` itself. And libuv waits with epoll and a non-blocking `accept`, so every waiting
//! worker wakes and races for the connection, where a blocking `accept` wakes one.

use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd};

use super::children::Children;
use super::{ModelError, Split, accept_loop, listen_socket, sequential_clients};
use crate::loopback::LOOPBACK;
use crate::trace;

// ANCHOR: prefork
/// Bind and listen once, fork `workers` children that all accept on the inherited socket,
/// make `connections` connections, then stop the children.
pub fn run(port: u16, workers: usize, connections: usize) -> Result<Split, ModelError> {
    let addr = SocketAddr::new(LOOPBACK, port);
    trace::set_label("parent");
    let listener = listen_socket(addr, false)?;
    let mut children = Children::new();
    for n in 1..=workers {
        children.fork(n, |turn| {
            let fd = listener.as_raw_fd();
            trace::step(&format!(
                "started (pid {}): inherited the listening socket as fd {fd}, blocks in accept({fd})",
                std::process::id()
            ));
            turn.ready();
            accept_loop(listener.as_fd(), n)
        })?;
    }
    trace::note("the parent never accepts: the kernel hands each connection to one child");
    let split = sequential_clients(addr, 1, connections, workers)?;
    trace::set_label("parent");
    children.stop_all()?;
    Ok(split)
}
// ANCHOR_END: prefork
