//! Chapter 0: the puzzle, run. Four `listen()` calls on one port in one process: three fail.
//! Four cluster workers each `listen()` on one port: all succeed, and all answer. Run it with
//! `cargo run --bin ch00-puzzle`.

use std::process::ExitCode;

use cluster_walkthrough::chapter::{self, Chapter, ChapterError, Ctx};
use cluster_walkthrough::lab::LabArgs;
use cluster_walkthrough::loopback::LOOPBACK;
use cluster_walkthrough::net::{ListenOptions, ListenStep, Server};
use cluster_walkthrough::trace;

pub static CHAPTER: Chapter = Chapter {
    number: 0,
    slug: "puzzle",
    title: "The puzzle",
    intro: "Four servers listening on one port in one process: three get EADDRINUSE. Four cluster workers,\n\
            each listening on the same port: no error, and all four answer. The rest of the tour explains\n\
            the difference, one step of Node's code at a time.",
    outro: "Same listen() call, same port: three failures without cluster, none with it.",
    run,
    role: None,
};

#[allow(dead_code)]
fn main() -> ExitCode {
    chapter::main(&CHAPTER)
}

/// The lines the book shows before its fold (see `trace::keys`): the three failures, then
/// the first worker's listen as the primary answers it, the second worker's, and who answered.
const KEY_LINES: &[&str] = &[
    "process ok: server 1 listening",
    "process error: listen EADDRINUSE",
    "process error: listen EADDRINUSE",
    "process error: listen EADDRINUSE",
    "primary queryServer from worker 1",
    "primary # new RoundRobinHandle",
    "primary reply to worker 1",
    "worker 1 rr(): a fake handle",
    "worker 1 ok: server 1 listening",
    "primary # the key is known",
    "summary answered by",
];

fn run(ctx: &Ctx) -> Result<(), ChapterError> {
    let _quiet = trace::Scoped::syscalls(false);
    let _keys = trace::keys(KEY_LINES);
    let port = ctx.pick_port()?;
    trace::heading("0a. Without cluster: four servers, one process");
    trace::set_label("process");
    let mut servers = Vec::new();
    for i in 1..=4 {
        let mut server = Server::new(&format!("server {i}"));
        match server.listen(&ListenOptions::new(LOOPBACK, port)) {
            ListenStep::Listening(addr) => trace::ok(&format!("server {i} listening on {addr}")),
            ListenStep::Failed(e) if i == 1 => {
                return Err(ChapterError::Failed(format!("cannot listen at all: {e}")));
            }
            ListenStep::Failed(e) => e.trace(),
            ListenStep::AskPrimary(_) => unreachable!("not a cluster worker"),
        }
        servers.push(server);
    }
    drop(servers);
    trace::heading("0b. With cluster: four workers, one port");
    let args = LabArgs {
        workers: 4,
        port,
        connections: 4,
        ..LabArgs::default()
    };
    ctx.lab(&args)?;
    Ok(())
}
