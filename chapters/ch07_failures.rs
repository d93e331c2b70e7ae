//! Chapter 7: when the primary cannot bind, and when a worker dies. Run it with
//! `cargo run --bin ch07-failures`.

use std::net::TcpListener;
use std::process::ExitCode;

use cluster_walkthrough::chapter::{self, Chapter, ChapterError, Ctx};
use cluster_walkthrough::lab::{LabArgs, PolicyArg};
use cluster_walkthrough::loopback::LOOPBACK;
use cluster_walkthrough::trace;

pub static CHAPTER: Chapter = Chapter {
    number: 7,
    slug: "failures",
    title: "Failures: a port taken, a worker killed",
    intro: "We hold the port ourselves, then start a cluster on it: under round robin the primary's bind fails\n\
            and every worker gets `bind EADDRINUSE`; under SCHED_NONE the primary binds once, hands out a dud\n\
            socket, and each worker finds out alone (our workers handle 'error' and stay up). Last, a worker is\n\
            killed mid-run.",
    outro: "The errno travels back to every worker; a killed worker just leaves the rotation - no message is exchanged.",
    run,
    role: None,
};

#[allow(dead_code)]
fn main() -> ExitCode {
    chapter::main(&CHAPTER)
}

/// The lines the book shows before its fold (see `trace::keys`), in 7a: the primary's bind
/// fails, the error travels to worker 1.
const RR_KEY_LINES: &[&str] = &[
    "primary bind(",
    "primary listen(",
    "primary reply to worker 1",
    "worker 1 error:",
];

/// In 7b: the same bind fails, a socket is sent anyway, and worker 1 finds out.
const NONE_KEY_LINES: &[&str] = &[
    "primary bind(",
    "primary reply to worker 1",
    "worker 1 getsockname(",
];

/// In 7c: the kill, and what the primary learns of it.
const KILL_KEY_LINES: &[&str] = &[
    "primary kill worker 2",
    "primary worker 2 disconnected",
    "primary worker 2 exited",
];

fn run(ctx: &Ctx) -> Result<(), ChapterError> {
    let port = ctx.pick_port()?;
    let holder =
        TcpListener::bind((LOOPBACK, port)).map_err(|e| ChapterError::io("hold the port", e))?;
    trace::set_label("primary");
    trace::heading("7a. The port is taken, round robin");
    trace::step(&format!(
        "(another program already listens on 127.0.0.1:{port})"
    ));
    let taken = |policy| LabArgs {
        workers: 2,
        policy: Some(policy),
        port,
        // Our workers listen for 'error' and stay up, as a real server would.
        handle_errors: true,
        ..LabArgs::default()
    };
    let keys = trace::keys(RR_KEY_LINES);
    ctx.lab(&taken(PolicyArg::Rr))?;
    drop(keys);
    trace::heading("7b. The port is taken, SCHED_NONE");
    let keys = trace::keys(NONE_KEY_LINES);
    ctx.lab(&taken(PolicyArg::None))?;
    drop(keys);
    drop(holder);
    trace::heading("7c. A worker is killed mid-run");
    let kill = LabArgs {
        workers: 3,
        policy: Some(PolicyArg::Rr),
        port: ctx.pick_port()?,
        connections: 6,
        kill_worker: Some(2),
        after: Some(2),
        no_syscalls: true,
        ..LabArgs::default()
    };
    let _quiet = trace::Scoped::syscalls(false);
    let _keys = trace::keys(KILL_KEY_LINES);
    ctx.lab(&kill)?;
    Ok(())
}
