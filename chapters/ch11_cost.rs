//! Chapter 11: what each strategy costs. A taste of `cluster-walkthrough bench`, small enough
//! for the tour: our round robin against `SO_REUSEPORT`, two workers, one short round. Run it
//! with `cargo run --bin ch11-cost`; the real measurement is `cargo run --release -- bench`.
//!
//! The numbers differ from run to run and from machine to machine, so no test pins them;
//! a test only checks that the table comes out.

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use cluster_walkthrough::bench::report::{Machine, Report};
use cluster_walkthrough::bench::servers::{self, Strategy};
use cluster_walkthrough::bench::{self, Plan};
use cluster_walkthrough::chapter::{self, Chapter, ChapterError, Ctx, HelperRole};
use cluster_walkthrough::trace;

pub static CHAPTER: Chapter = Chapter {
    number: 11,
    slug: "cost",
    title: "What each strategy costs",
    intro: "Round robin pays for its fairness with an extra hop: the primary accepts every connection\n\
            and passes it on. How much? Two workers, our round robin against SO_REUSEPORT (no hop at\n\
            all), a few thousand new connections each. `cargo run --release -- bench` measures them all.",
    outro: "The hop costs a primary's accept, sendmsg, ack read and close per connection; the bench shows what that is worth.",
    run,
    role: Some(role),
};

#[allow(dead_code)]
fn main() -> ExitCode {
    chapter::main(&CHAPTER)
}

/// The benchmark's servers run as helper copies of this program (`bench-server ...`).
fn role(role: HelperRole) -> ExitCode {
    match role {
        HelperRole::BenchServer(spec) => servers::serve_role(&spec),
        other => chapter::unknown_role(&CHAPTER, &other),
    }
}

// ANCHOR: run
fn run(ctx: &Ctx) -> Result<(), ChapterError> {
    let plan = Plan {
        workers: vec![2],
        clients: 4,
        duration: Duration::from_millis(300),
        rounds: 1,
        strategies: vec![Strategy::Rr, Strategy::Reuseport],
        port: ctx.pick_port()?,
        node: None,
        syscalls: Vec::new(),
    };
    let started = SystemTime::now();
    let results = bench::run(&plan, &ctx.program, &mut |_| {})
        .map_err(|e| ChapterError::Failed(e.to_string()))?;
    let report = Report::new(&plan, results, Machine::this_one(&plan, started));
    for line in report.table().lines() {
        trace::raw(line);
    }
    if cfg!(debug_assertions) {
        trace::raw("(a debug build: every number is lower than a release build's)");
    }
    Ok(())
}
// ANCHOR_END: run
