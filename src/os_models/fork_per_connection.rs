//! Model 1, fork per connection: the C program that closes the source article (*"Why
//! Doesn't Listening on the Same Port in Multiple Node.js Cluster Workers Throw
//! EADDRINUSE?"*, HUANG Cheng, 2022), with its bugs fixed.
//!
//! The parent is the only process that listens and the only one that accepts. For each
//! connection it forks a child, which inherits the connected socket, serves it, and exits.
//! No two processes ever share the listening socket in a useful way: the child closes its
//! copy at once. So this is neither Node's model nor the pre-fork model the article's text
//! describes (see [`super::prefork`]).
//!
//! What the article's program gets wrong, and where this file does it differently:
//!
//! - `bind` and `listen` are not checked. If the port is taken, `bind` fails quietly and
//!   `listen` binds the socket to a random port on every interface.
//!   Here: [`super::listen_socket`] checks every call.
//! - `accept` gets `&addr_size` without initialising it (it must hold the buffer's size),
//!   and its result is not checked: on failure the parent forks anyway, with fd -1.
//!   Here: no address buffer at all, and an error ends the model.
//! - The parent never closes its copy of the connection (`newSocket`): one fd leaks per
//!   connection, and the client never sees end of file, because a TCP connection closes
//!   only when its last descriptor does. Here: `close` right after `fork`.
//! - The parent never calls `waitpid`: every finished child stays a zombie.
//!   Here: [`Children::reap`] after each conversation.
//! - The child ignores what `recv` returns. At end of file `recv` returns 0 and the loop
//!   spins for ever, sending 0 bytes. It compares and measures (`strcmp`, `strlen`) a
//!   buffer that `recv` does not terminate, so it echoes stale stack bytes and never sees
//!   `:exit` when the client sends a newline with it. Here: [`echo::serve`].
//! - After `:exit` the child leaves its loop but not the process: it falls back into the
//!   parent's `accept` loop, on a socket it has closed (`EBADF`, unchecked), and forks
//!   again. Here: the child always ends with `_exit`.

use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};

use super::children::{Children, Turn};
use super::echo::{self, Client, Ended};
use super::{ModelError, accept_one, listen_socket};
use crate::loopback::LOOPBACK;
use crate::sys;
use crate::trace;

/// Serve `connections` clients, one after another, with a fresh child for each. The last
/// client ends with `:exit`, the others with end of file.
pub fn run(port: u16, connections: usize) -> Result<(), ModelError> {
    let addr = SocketAddr::new(LOOPBACK, port);
    trace::set_label("parent");
    let mut listener = Some(listen_socket(addr, false)?);
    trace::ok(&format!("listening on {addr}: accept, fork, repeat"));
    let mut children = Children::new();
    for n in 1..=connections {
        one_connection(&mut children, &mut listener, addr, n, n == connections)?;
    }
    trace::set_label("parent");
    let sockets = open_sockets();
    let unreaped = children.unreaped();
    trace::step(&format!(
        "after {connections} connections: sockets open in the parent: {sockets}; children not reaped: {unreaped}"
    ));
    if let Some(listener) = listener.take() {
        sys::close_traced(listener);
    }
    Ok(())
}

// ANCHOR: accept_fork
/// Accept one connection, fork a child for it, close the parent's copy, reap the child.
fn one_connection(
    children: &mut Children,
    listener: &mut Option<OwnedFd>,
    addr: SocketAddr,
    n: usize,
    last: bool,
) -> Result<(), ModelError> {
    trace::set_label("client");
    trace::step(&format!("connection {n}: connect to {addr}"));
    let client = Client::connect(addr)?;

    trace::set_label("parent");
    let listening = listener
        .as_ref()
        .expect("the parent keeps its listening socket");
    let mut conn = Some(accept_one(listening.as_fd())?);
    // The child gets a copy of every fd: the listening socket, the connection, and (only
    // because this demo's client lives in the parent) the client's end, which it ignores.
    children.fork(n, |turn| child(listener, &mut conn, n, turn))?;
    // The child has its own copy now. Without this close, the fd leaks and the client
    // never sees end of file.
    sys::close_traced(conn.take().expect("the parent's copy is still here"));

    converse(client, n, last)?;
    trace::set_label("parent");
    children.reap(n)?; // no zombie
    Ok(())
}
// ANCHOR_END: accept_fork

// ANCHOR: child
/// The child: a copy of the parent, with the listening socket and the connection.
fn child(listener: &mut Option<OwnedFd>, conn: &mut Option<OwnedFd>, n: usize, turn: Turn) -> i32 {
    trace::step(&format!(
        "started (pid {}): a copy of the parent, listening socket and connection included",
        std::process::id()
    ));
    // Only the parent accepts. (The memory is a copy: `take` here changes nothing there.)
    if let Some(listening) = listener.take() {
        sys::close_traced(listening);
    }
    turn.ready();
    let Some(conn) = conn.take() else {
        return 1;
    };
    let ended = echo::serve(&conn, n);
    sys::close_traced(conn);
    // Then `_exit` (in `Children::fork`): never back into the parent's accept loop.
    match ended {
        Ended::Eof | Ended::Exit => 0,
        Ended::Broken => 1,
    }
}
// ANCHOR_END: child

/// The client's side: one line, then end of file (or `:exit` for the last one).
fn converse(mut client: Client, n: usize, last: bool) -> Result<(), ModelError> {
    trace::set_label("client");
    let line = format!("hello {n}");
    trace::step(&format!("sends {line:?}"));
    let (answer, _) = client.ask(&line)?;
    trace::ok(&format!(
        "answered by child {} (pid {})",
        answer.child, answer.pid
    ));
    if last {
        trace::step("sends \":exit\"");
        client.send_line(":exit")?;
        let bye = client.read_line().map_err(|e| ModelError::Client {
            what: "read".into(),
            source: e,
        })?;
        client.wait_for_close()?;
        trace::ok(&format!("{bye:?}, then end of file"));
    } else {
        trace::step("shutdown(SHUT_WR): no more lines from this client");
        client.finish()?;
    }
    Ok(())
}

/// How many sockets this process has open (`/proc/self/fd`), to show that none leaked.
fn open_sockets() -> usize {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("socket:"))
        .count()
}
