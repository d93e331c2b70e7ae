//! Chapter 3: `cluster.fork()` — re-run the same program with `NODE_UNIQUE_ID`, a socketpair
//! on fd 3 as the channel, and `online` before any user code. Run it with
//! `cargo run --bin ch03-fork`.

use std::process::ExitCode;

use cluster_walkthrough::chapter::{self, Chapter, ChapterError, Ctx};
use cluster_walkthrough::lab::LabArgs;
use cluster_walkthrough::trace;

pub static CHAPTER: Chapter = Chapter {
    number: 3,
    slug: "fork",
    title: "cluster.fork: a fresh process and a channel",
    intro: "cluster.fork() starts this same program again with NODE_UNIQUE_ID=<id> and an AF_UNIX socketpair\n\
            on fd 3. Nothing else is inherited - no listening socket exists yet. We fork two workers that\n\
            do not listen at all, and print every message on the channel.",
    outro: "A worker is a fresh process that knows its id and its channel, and says `online` before any user code runs.",
    run,
    role: None,
};

#[allow(dead_code)]
fn main() -> ExitCode {
    chapter::main(&CHAPTER)
}

/// The lines the book shows before its fold (see `trace::keys`): worker 1's start and its
/// messages, worker 2's `online`, and the primary's numbered `disconnect`s.
const KEY_LINES: &[&str] = &[
    "primary fork worker 1",
    "worker 1 started",
    "worker 1 online -> primary",
    r#"worker 1 -> primary {"cmd":"NODE_CLUSTER","act":"online""#,
    r#"worker 1 -> primary {"lab":"ready""#,
    r#"worker 2 -> primary {"cmd":"NODE_CLUSTER","act":"online""#,
    "primary cluster.disconnect()",
    "primary -> worker 1",
    "worker 1 disconnect from the primary",
    "primary worker 1 disconnected",
    "primary worker 1 exited",
    "primary -> worker 2",
];

fn run(ctx: &Ctx) -> Result<(), ChapterError> {
    let _keys = trace::keys(KEY_LINES);
    let _wire = trace::Scoped::wire(true);
    let args = LabArgs {
        workers: 2,
        servers_per_worker: 0,
        ..LabArgs::default()
    };
    ctx.lab(&args)?;
    Ok(())
}
