//! Chapter 5: `RoundRobinHandle` — the primary binds once, accepts every connection, and hands
//! each to a worker with `SCM_RIGHTS`; the worker's `{accepted}` lets it close its copy. Run it
//! with `cargo run --bin ch05-round-robin`.

use std::process::ExitCode;

use cluster_walkthrough::chapter::{self, Chapter, ChapterError, Ctx};
use cluster_walkthrough::lab::{LabArgs, PolicyArg};

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

fn run(ctx: &Ctx) -> Result<(), ChapterError> {
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
