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
    ctx.lab(&taken(PolicyArg::Rr))?;
    trace::heading("7b. The port is taken, SCHED_NONE");
    ctx.lab(&taken(PolicyArg::None))?;
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
    ctx.lab(&kill)?;
    Ok(())
}
