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

fn run(ctx: &Ctx) -> Result<(), ChapterError> {
    let port = ctx.pick_port()?;
    trace::heading("9a. Fork per connection: the article's C program, done right");
    fork_per_connection::run(port, 3).map_err(failed)?;
    trace::heading("9b. Pre-fork: one listening socket, inherited by every child");
    prefork::run(port, CHILDREN, 8).map_err(failed)?;
    trace::heading("9c. SO_REUSEPORT: a socket per child, one port");
    reuseport::run(port, CHILDREN, 8).map_err(failed)?;
    trace::heading("9d. SO_REUSEPORT: a child dies with connections in its queue");
    reuseport::dead_child(port, CHILDREN, 2, 2, 6).map_err(failed)?;
    Ok(())
}

fn failed(e: ModelError) -> ChapterError {
    ChapterError::Failed(e.to_string())
}
