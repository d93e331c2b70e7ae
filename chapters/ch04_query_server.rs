//! Chapter 4: `queryServer` — the worker's question, the primary's key
//! (`address:port:addressType:fd`, plus `:index` for port 0), the policy decision, the reply. Run it with
//! `cargo run --bin ch04-query-server`.

use std::process::ExitCode;

use cluster_walkthrough::chapter::{self, Chapter, ChapterError, Ctx};
use cluster_walkthrough::lab::LabArgs;
use cluster_walkthrough::trace;

pub static CHAPTER: Chapter = Chapter {
    number: 4,
    slug: "query-server",
    title: "queryServer: the worker asks, the primary keys",
    intro: "A worker's listen() becomes a queryServer message. The primary builds a key from address, port,\n\
            address type, fd and the listen's index, and keeps one socket per key. Two workers each listen\n\
            twice on port 0: every worker's first server shares one port, every second server another.",
    outro: "Same key, same socket: the index in the key is why listen(0) is shared across workers but not within one.",
    run,
    role: None,
};

#[allow(dead_code)]
fn main() -> ExitCode {
    chapter::main(&CHAPTER)
}

/// The lines the book shows before its fold (see `trace::keys`): worker 1's first question
/// and the primary's answer, the key of its second, and worker 2's first meeting a known key.
const KEY_LINES: &[&str] = &[
    r#"worker 1 -> primary {"cmd":"NODE_CLUSTER","act":"queryServer""#,
    "primary queryServer from worker 1",
    "primary queryServer from worker 1",
    "primary # new RoundRobinHandle",
    "primary bind(",
    "primary listen(",
    "primary reply to worker 1",
    r#"primary -> worker 1 {"cmd":"NODE_CLUSTER","errno""#,
    "worker 1 rr():",
    "worker 1 ok:",
    r#"worker 1 -> primary {"cmd":"NODE_CLUSTER","act":"listening""#,
    "primary # the key is known",
];

fn run(ctx: &Ctx) -> Result<(), ChapterError> {
    let _keys = trace::keys(KEY_LINES);
    let _wire = trace::Scoped::wire(true);
    let args = LabArgs {
        workers: 2,
        servers_per_worker: 2,
        port: 0,
        ..LabArgs::default()
    };
    ctx.lab(&args)?;
    Ok(())
}
