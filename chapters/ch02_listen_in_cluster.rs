//! Chapter 2: `listenInCluster` and `isPrimary` — how a process knows it is a worker, and what
//! `exclusive: true` does: every worker binds for itself, one wins, the others get
//! `EADDRINUSE`. Run it with `cargo run --bin ch02-listen-in-cluster`.

use std::process::ExitCode;

use cluster_walkthrough::chapter::{self, Chapter, ChapterError, Ctx};
use cluster_walkthrough::lab::LabArgs;
use cluster_walkthrough::{cluster, trace};

pub static CHAPTER: Chapter = Chapter {
    number: 2,
    slug: "listen-in-cluster",
    title: "listenInCluster: primary or worker?",
    intro: "A process is a cluster worker only if NODE_UNIQUE_ID is in its environment. A worker's listen()\n\
            asks the primary - unless it passes exclusive: true. We fork three workers that all listen\n\
            exclusively on one port: each binds for itself, exactly as separate programs would.",
    outro: "exclusive: true skips the primary: the first worker listens, the others get Node's non-cluster `listen EADDRINUSE`.",
    run,
    role: None,
};

#[allow(dead_code)]
fn main() -> ExitCode {
    chapter::main(&CHAPTER)
}

/// The lines the book shows before its fold (see `trace::keys`): worker 1 binds for itself,
/// worker 2 fails as a lone program would, and worker 1 serves on after disconnect.
const KEY_LINES: &[&str] = &[
    "primary cluster.isPrimary",
    "worker 1 socket(",
    "worker 1 setsockopt(",
    "worker 1 bind(",
    "worker 1 listen(",
    "worker 1 ok: server 1 listening",
    "primary worker 1 is listening",
    "worker 2 bind(",
    "worker 2 listen(",
    "worker 2 error:",
    "primary worker 1 still runs",
    "primary kill worker 1",
];

fn run(ctx: &Ctx) -> Result<(), ChapterError> {
    let _keys = trace::keys(KEY_LINES);
    trace::set_label("primary");
    trace::step(&format!(
        "cluster.isPrimary = {} (NODE_UNIQUE_ID is not set here)",
        cluster::is_primary()
    ));
    let args = LabArgs {
        workers: 3,
        port: ctx.pick_port()?,
        exclusive: true,
        ..LabArgs::default()
    };
    ctx.lab(&args)?;
    Ok(())
}
