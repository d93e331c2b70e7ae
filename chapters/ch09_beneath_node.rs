//! Chapter 9: beneath Node, three ways the operating system lets processes share a port:
//! fork per connection (the source article's C program, fixed), pre-fork with an inherited
//! listening socket (what the article's text describes), and `SO_REUSEPORT` (what Node
//! ≥ 22.12 offers as `reusePort`). Run it with `cargo run --bin ch09-beneath-node`.
//!
//! The models live in `src/os_models/`. They fork without exec, which is safe here because
//! a chapter program has one thread (`sys::fork_single_threaded` checks).

use std::process::ExitCode;

use cluster_walkthrough::chapter::{self, Chapter, ChapterError, Ctx};
use cluster_walkthrough::os_models::{ModelError, fork_per_connection, prefork, reuseport};
use cluster_walkthrough::trace;

pub static CHAPTER: Chapter = Chapter {
    number: 9,
    slug: "beneath-node",
    title: "Beneath Node: three ways to share a port",
    intro: "Node shares a port through its primary. The kernel offers three older ways, with plain fork()\n\
            and no IPC channel: a child per connection, children that inherit one listening socket, and\n\
            a socket per child with SO_REUSEPORT. Then a child dies with connections in its queue.",
    outro: "One socket with many takers, or many sockets with one taker each: who balances, and what a death costs.",
    run,
    role: None,
};

/// How many children the pre-fork and SO_REUSEPORT models start.
const CHILDREN: usize = 3;

#[allow(dead_code)]
fn main() -> ExitCode {
    chapter::main(&CHAPTER)
}

/// The lines the book shows before its folds (see `trace::keys`). Only lines whose place does
/// not depend on which child the kernel woke: a child's own lines only before the clients
/// start. 9a: the first connection's whole life, and what the parent is left with.
const FORK_KEY_LINES: &[&str] = &[
    "client connection 1:",
    "parent accept4(",
    "parent fork()",
    "child 1 started",
    "child 1 close(3)",
    "parent close(5)",
    "client sends",
    "child 1 got",
    "client ok: answered by child 1",
    "client shutdown(",
    "child 1 read(",
    "child 1 close(5)",
    "parent waitpid(",
    "parent after 3 connections",
];

/// 9b: one socket, the children that inherit it, the split, the stop.
const PREFORK_KEY_LINES: &[&str] = &[
    "parent socket(",
    "parent listen(",
    "parent fork()",
    "child 1 started",
    "parent fork()",
    "child 2 started",
    "parent fork()",
    "child 3 started",
    "parent # the parent never accepts",
    "client answered by",
    "client counts",
    "parent kill(",
    "parent waitpid(",
];

/// 9c: a socket per child, each bound to the same port, and the split.
const REUSEPORT_KEY_LINES: &[&str] = &[
    "parent # no socket in the parent",
    "parent fork()",
    "child 1 socket(",
    "child 1 setsockopt(",
    "child 1 setsockopt(",
    "child 1 bind(",
    "child 1 listen(",
    "child 1 ok:",
    "child 2 bind(",
    "child 3 bind(",
    "client answered by",
    "client counts",
];

/// 9d: child 2 stops, connections wait in its queue, it dies, they are reset.
const DEAD_CHILD_KEY_LINES: &[&str] = &[
    "parent # child 2 stops",
    "parent kill(",
    "parent waitpid(",
    "client connects until",
    "client connection",
    "client connection",
    "client meanwhile",
    "parent # child 2 dies",
    "parent kill(",
    "parent waitpid(",
    "client error:",
    "client error:",
    "client child 2 answered none",
];

fn run(ctx: &Ctx) -> Result<(), ChapterError> {
    let port = ctx.pick_port()?;
    trace::heading("9a. Fork per connection: the article's C program, done right");
    let keys = trace::keys(FORK_KEY_LINES);
    fork_per_connection::run(port, 3).map_err(failed)?;
    drop(keys);
    trace::heading("9b. Pre-fork: one listening socket, inherited by every child");
    let keys = trace::keys(PREFORK_KEY_LINES);
    prefork::run(port, CHILDREN, 8).map_err(failed)?;
    drop(keys);
    trace::heading("9c. SO_REUSEPORT: a socket per child, one port");
    let keys = trace::keys(REUSEPORT_KEY_LINES);
    reuseport::run(port, CHILDREN, 8).map_err(failed)?;
    drop(keys);
    trace::heading("9d. SO_REUSEPORT: a child dies with connections in its queue");
    let _keys = trace::keys(DEAD_CHILD_KEY_LINES);
    reuseport::dead_child(port, CHILDREN, 2, 2, 6).map_err(failed)?;
    Ok(())
}

fn failed(e: ModelError) -> ChapterError {
    ChapterError::Failed(e.to_string())
}
