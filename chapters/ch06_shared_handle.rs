//! Chapter 6: `SharedHandle` and UDP — the primary binds, every worker gets the same socket,
//! listens on it and accepts for itself; the kernel decides who wins each connection. Run it
//! with `cargo run --bin ch06-shared-handle`.

use std::process::ExitCode;

use cluster_walkthrough::chapter::{self, Chapter, ChapterError, Ctx};
use cluster_walkthrough::lab::{LabArgs, PolicyArg};
use cluster_walkthrough::trace;

pub static CHAPTER: Chapter = Chapter {
    number: 6,
    slug: "shared-handle",
    title: "SharedHandle and UDP: one socket in every worker",
    intro: "With NODE_CLUSTER_SCHED_POLICY=none the primary only binds, and sends the bound socket to every\n\
            worker; each one listens and accepts on it. UDP sockets are always shared this way. Four workers\n\
            and twelve connections, then two UDP workers and four datagrams: the split is the kernel's.",
    outro: "A shared socket has one accept queue and many takers: no hand-off cost, but no say in who gets what.",
    run,
    role: None,
};

#[allow(dead_code)]
fn main() -> ExitCode {
    chapter::main(&CHAPTER)
}

/// The lines the book shows before its fold (see `trace::keys`), in 6a: the primary only binds,
/// the socket travels to worker 1, which listens on it itself.
const TCP_KEY_LINES: &[&str] = &[
    "primary # new SharedHandle",
    "primary socket(",
    "primary setsockopt(",
    "primary bind(",
    "primary reply to worker 1",
    "primary sendmsg(",
    "worker 1 recvmsg(",
    "worker 1 shared():",
    "worker 1 getsockname(",
    "worker 1 listen(",
];

/// In 6b: a UDP socket is shared whatever the policy, and the primary sets no option on it.
const UDP_KEY_LINES: &[&str] = &[
    "primary # new SharedHandle",
    "primary socket(",
    "primary bind(",
];

fn run(ctx: &Ctx) -> Result<(), ChapterError> {
    trace::heading("6a. TCP under SCHED_NONE");
    let tcp = LabArgs {
        workers: 4,
        policy: Some(PolicyArg::None),
        port: ctx.pick_port()?,
        connections: 12,
        ..LabArgs::default()
    };
    let keys = trace::keys(TCP_KEY_LINES);
    ctx.lab(&tcp)?;
    drop(keys);
    trace::heading("6b. UDP (always shared)");
    let udp = LabArgs {
        workers: 2,
        udp: true,
        connections: 4,
        ..LabArgs::default()
    };
    let _keys = trace::keys(UDP_KEY_LINES);
    ctx.lab(&udp)?;
    Ok(())
}
