//! Chapter 5: `RoundRobinHandle` — the primary binds once, accepts every connection, and hands
//! each to a worker with `SCM_RIGHTS`; the worker's `{accepted}` lets it close its copy. Run it
//! with `cargo run --bin ch05-round-robin`.

use std::process::ExitCode;

use cluster_walkthrough::chapter::{self, Chapter, ChapterError, Ctx};
use cluster_walkthrough::lab::{LabArgs, PolicyArg};
use cluster_walkthrough::trace;

pub static CHAPTER: Chapter = Chapter {
    number: 5,
    slug: "round-robin",
    title: "RoundRobinHandle: one socket, accepted by the primary",
    intro: "Under round robin (the default on Linux) only the primary has a socket. It accepts each\n\
            connection and sends the fd to the next idle worker over the channel. Four workers, twelve\n\
            connections one after another: watch the rotation and the hand-offs.",
    outro: "Workers never bind, listen or accept: the primary does, and passes each connection's fd on - a strict rotation.",
    run,
    role: None,
};

#[allow(dead_code)]
fn main() -> ExitCode {
    chapter::main(&CHAPTER)
}

/// The lines the book shows before its fold (see `trace::keys`): the primary's one listen and
/// worker 1's fake handle, the key known to worker 2, the first connection's trip, and the
/// rotation.
const KEY_LINES: &[&str] = &[
    "primary listen(",
    "primary reply to worker 1",
    "worker 1 rr():",
    "worker 1 ok:",
    "primary # the key is known",
    "primary accept4(",
    "primary newconn -> worker 1",
    "primary sendmsg(",
    "worker 1 recvmsg(",
    "worker 1 newconn for",
    "primary worker 1 accepted",
    "summary answered by",
];

fn run(ctx: &Ctx) -> Result<(), ChapterError> {
    let _keys = trace::keys(KEY_LINES);
    let args = LabArgs {
        workers: 4,
        policy: Some(PolicyArg::Rr),
        port: ctx.pick_port()?,
        connections: 12,
        ..LabArgs::default()
    };
    ctx.lab(&args)?;
    Ok(())
}
